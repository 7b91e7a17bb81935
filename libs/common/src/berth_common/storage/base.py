"""The storage driver protocol: a small async key/value store of byte objects.

A driver knows nothing about registries; ``layout`` maps blobs and upload sessions to paths.
Modelled on Distribution's ``registry/storage/driver.StorageDriver`` (one narrow interface, one
shared test suite in ``tests/drivers/suite.py`` that every driver must pass unchanged).

Paths are relative, ``/``-separated, with no leading or trailing slash. Each component matches
``[A-Za-z0-9._:-]+`` and is neither ``.`` nor ``..``; anything else (absolute paths, ``..``,
empty components, backslashes, NUL, non-ASCII) raises ``ValueError`` before any I/O.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol, runtime_checkable

_COMPONENT = re.compile(r"[A-Za-z0-9._:-]+")


@dataclass(frozen=True)
class ObjectInfo:
    """What ``stat`` knows about one object.

    Attributes:
        path: the object's path, as given to ``stat``.
        size: length in bytes.
        modified: last modification time, timezone-aware (UTC).
    """

    path: str
    size: int
    modified: datetime


class StorageError(Exception):
    """Base of the errors a driver raises on purpose (not ``ValueError`` for bad paths)."""


class ObjectNotFound(StorageError):
    """The path names no object (``read`` or ``move`` of a missing path)."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(f"object not found: {path}")


class InvalidOffset(StorageError):
    """``append`` was given an offset other than the object's current size.

    ``size`` is the current size, or ``None`` when another append holds the object.
    """

    def __init__(self, path: str, offset: int, size: int | None) -> None:
        self.path, self.offset, self.size = path, offset, size
        why = "another append is in progress" if size is None else f"current size is {size}"
        super().__init__(f"invalid offset {offset} for {path}: {why}")


def validate_path(path: str) -> str:
    """Return ``path`` unchanged if it is a valid object path, else raise ``ValueError``."""
    if not isinstance(path, str) or not path:
        raise ValueError(f"invalid storage path {path!r}: empty")
    for part in path.split("/"):
        if part in (".", "..") or not _COMPONENT.fullmatch(part):
            raise ValueError(f"invalid storage path {path!r}: bad component {part!r}")
    return path


def validate_prefix(prefix: str) -> str:
    """Normalise a ``list`` prefix: ``""`` (everything) or a valid path; one trailing ``/`` is dropped.

    Raises:
        ValueError: the prefix is not ``""`` and not a valid path.
    """
    if prefix == "":
        return prefix
    return validate_path(prefix[:-1] if prefix.endswith("/") else prefix)


def is_under(path: str, prefix: str) -> bool:
    """True if ``path`` equals ``prefix`` or lies below it (directory semantics, not string prefix)."""
    return prefix == "" or path == prefix or path.startswith(prefix + "/")


@runtime_checkable
class StorageDriver(Protocol):
    """The operations every storage driver provides (filesystem, S3, Azure …).

    Errors: ``ValueError`` for an invalid path or argument; ``ObjectNotFound``; ``InvalidOffset``;
    anything else is a backend failure the caller maps at its boundary.
    """

    name: str

    async def stat(self, path: str) -> ObjectInfo | None:
        """Size and modification time of the object at ``path``; ``None`` if there is none."""
        ...

    def read(
        self, path: str, offset: int = 0, length: int | None = None, chunk_size: int = 1 << 20
    ) -> AsyncIterator[bytes]:
        """Stream bytes ``[offset, offset+length)`` in chunks of at most ``chunk_size`` bytes.

        An offset at or beyond the end yields nothing; ``length=None`` reads to the end.
        Raises ``ObjectNotFound`` on the first iteration (or before) if ``path`` is missing.
        """
        ...

    async def write(self, path: str, chunks: AsyncIterable[bytes]) -> int:
        """Atomically replace the object at ``path`` with the streamed bytes; return their count.

        If ``chunks`` raises, the exception propagates and ``path`` is left as it was.
        """
        ...

    async def append(self, path: str, chunks: AsyncIterable[bytes], offset: int) -> int:
        """Append the streamed bytes at ``offset``; return the new total size in bytes.

        ``offset`` must equal the current size (``0`` creates the object), else ``InvalidOffset``
        and nothing changes. If ``chunks`` raises, the object is truncated back to ``offset``.
        Used for chunked uploads (OCI distribution spec v1.1, "Pushing a blob in chunks").
        """
        ...

    async def move(self, src: str, dst: str) -> None:
        """Atomically rename ``src`` to ``dst``, replacing ``dst``; ``ObjectNotFound`` if no ``src``.

        The moved object's ``modified`` time becomes the time of the move (as an S3 copy does), so
        age-based cleanup (GC's storage sweep) measures from when the object got its new name.
        """
        ...

    async def delete(self, path: str) -> None:
        """Delete the object at ``path`` or every object below it; a missing path is not an error."""
        ...

    def list(self, prefix: str) -> AsyncIterator[str]:
        """Every object path at or below ``prefix`` (``""``: all), recursively, in sorted order."""
        ...

    async def url_for(
        self,
        path: str,
        *,
        method: str = "GET",
        expires_in: int = 1200,
        external_host: str | None = None,
    ) -> str | None:
        """A presigned URL valid for ``expires_in`` seconds, or ``None`` if the driver cannot sign."""
        ...

    def local_path(self, path: str) -> Path | None:
        """The real file behind ``path`` for zero-copy serving, or ``None`` (non-local drivers)."""
        ...

    async def close(self) -> None:
        """Release clients and connections; the driver is unusable afterwards."""
        ...
