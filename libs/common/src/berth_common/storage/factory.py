"""Build a storage driver from configuration: ``create_driver(kind, **options)``.

Kinds and their options (every option is documented in docs/CONFIGURATION.md, "Storage drivers"):

- ``"filesystem"``: ``root`` (a directory; created if missing).
- ``"s3"``: ``bucket``, ``prefix``, ``endpoint``, ``secure``, ``region``, ``access_key``,
  ``secret_key`` (each also ``*_file`` / ``*_env``), ``public_endpoint``, ``max_connections``,
  ``multipart_copy_threshold``, ``multipart_copy_part_size``, ``ca_file`` (``S3Settings.from_options``).
- ``"azure"``: ``account_name``, ``account_key`` (also ``_file`` / ``_env``), ``container``,
  ``prefix``, ``endpoint``, ``public_endpoint``, ``max_connections``, ``sync_copy_limit``,
  ``copy_block_size`` (``AzureSettings.from_options``).

Credentials are ``Secret`` values inside the drivers: no ``repr``, log line or error message
shows them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .base import StorageDriver


def _filesystem(options: dict[str, Any]) -> StorageDriver:
    from .filesystem import FilesystemDriver

    root = options.pop("root", None)
    if root is None:
        raise ValueError("filesystem storage needs the 'root' option")
    if options:
        raise ValueError(f"unknown filesystem storage options: {sorted(options)}")
    return FilesystemDriver(Path(root))


def _s3(options: dict[str, Any]) -> StorageDriver:
    from .s3 import S3Driver, S3Settings

    return S3Driver(S3Settings.from_options(options))


def _azure(options: dict[str, Any]) -> StorageDriver:
    from .azure import AzureDriver, AzureSettings

    return AzureDriver(AzureSettings.from_options(options))


_KINDS: dict[str, Callable[[dict[str, Any]], StorageDriver]] = {
    "filesystem": _filesystem,
    "s3": _s3,
    "azure": _azure,
}


def create_driver(kind: str, **options: Any) -> StorageDriver:
    """A new driver of ``kind`` configured by ``options`` (see the module docstring); the
    caller owns it (``await driver.close()``). Object-store drivers make no request here.

    Raises:
        ValueError: unknown ``kind``, or missing/unknown/invalid options for it.
    """
    try:
        build = _KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown storage driver {kind!r}; known: {sorted(_KINDS)}") from None
    return build(dict(options))
