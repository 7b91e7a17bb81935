"""Build a storage driver from configuration: ``create_driver("filesystem", root=...)``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .base import StorageDriver
from .filesystem import FilesystemDriver


def _filesystem(root: str | Path | None = None, **options: Any) -> StorageDriver:
    if root is None:
        raise ValueError("filesystem storage needs the 'root' option")
    if options:
        raise ValueError(f"unknown filesystem storage options: {sorted(options)}")
    return FilesystemDriver(Path(root))


_KINDS = {"filesystem": _filesystem}


def create_driver(kind: str, **options: Any) -> StorageDriver:
    """A new driver of ``kind`` configured by ``options``; the caller owns it (``await close()``).

    Kinds: ``"filesystem"`` (option ``root``: directory path). S3 and Azure come later.

    Raises:
        ValueError: unknown ``kind``, or missing/unknown options for it.
    """
    try:
        build = _KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown storage driver {kind!r}; known: {sorted(_KINDS)}") from None
    return build(**options)
