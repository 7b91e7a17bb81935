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
from collections.abc import AsyncIterable, AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

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


class StorageBackendError(StorageError):
    """The store failed or refused an operation for a reason that is not the caller's input:
    unreachable, timed out, a 5xx, throttled, access denied, a missing bucket or container.

    Attributes:
        retryable: ``True`` when the same call may succeed later (connection errors, timeouts,
            5xx, throttling); ``False`` for refusals that need an operator (credentials, bucket).
    """

    def __init__(self, message: str, *, retryable: bool) -> None:
        self.retryable = retryable
        super().__init__(message)


class WriterStateInvalid(StorageError):
    """A writer could not resume from the given state: the bytes it names are gone or shorter
    than recorded, or an object store refused the recorded parts (e.g. a part was replaced)."""

    def __init__(self, path: str, why: str) -> None:
        self.path = path
        super().__init__(f"cannot resume the write of {path}: {why}")


@dataclass(frozen=True)
class WriterState:
    """Where a resumable write stands, as returned by ``Writer.flush``.

    Attributes:
        size: bytes written and durable so far.
        data: the driver's own bookkeeping, JSON-serialisable (e.g. an S3 multipart upload id
            and its parts with their ETags); opaque to callers, who store it (the upload session
            row) and hand it back to ``StorageDriver.writer`` to resume, in any process.
    """

    size: int
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PendingWrite:
    """An unfinished resumable write that ``list`` does not show (an S3 multipart upload and the
    small objects holding its flushed tails; an Azure blob with only uncommitted blocks).

    Attributes:
        path: the object path the write would commit to.
        started: when the oldest piece of it was stored, timezone-aware (UTC). Emulators may
            report a fixed time (moto answers every multipart upload with 2010-11-10).
        ref: the driver's handles on exactly the pieces seen (upload ids, tail keys), so
            ``abort_pending`` removes those and nothing stored later.
    """

    path: str
    started: datetime
    ref: tuple[str, ...] = ()


@runtime_checkable
class Writer(Protocol):
    """One resumable write of the object at ``path`` (the shape of an S3 multipart upload or an
    Azure block blob's staged blocks). Used for chunked uploads (OCI distribution spec v1.1,
    "Pushing a blob in chunks").

    ``write`` buffers and stores bytes; ``flush`` makes everything written durable and returns
    the ``WriterState`` another writer (in any process) resumes from; ``commit`` makes the bytes
    the object at ``path`` (visible whole, or not at all); ``cancel`` discards every byte of the
    write, flushed or not; ``close`` releases local resources and drops what was not flushed.
    Bytes written after the last ``flush`` are never part of a resumed write.

    One writer at a time per path: callers serialise writers (Berth's upload sessions do it in
    the database, never through the driver). Whether ``path`` shows partial bytes before
    ``commit`` is the driver's business: callers read only committed objects.
    """

    path: str

    @property
    def size(self) -> int:
        """Bytes written in total, resumed ones included."""
        ...

    async def write(self, data: bytes) -> None:
        """Append ``data`` (any length, empty included)."""
        ...

    async def flush(self) -> WriterState:
        """Make everything written durable; return the state to resume from."""
        ...

    async def commit(self) -> None:
        """Finish: the object at ``path`` holds exactly the ``size`` bytes written. Ends the writer."""
        ...

    async def cancel(self) -> None:
        """Discard everything this write stored (resumed bytes included). Ends the writer."""
        ...

    async def close(self) -> None:
        """Release local resources; what was flushed stays resumable. Ends the writer."""
        ...


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


@runtime_checkable
class StorageDriver(Protocol):
    """The operations every storage driver provides (filesystem, S3, Azure …).

    Errors: ``ValueError`` for an invalid path or argument; ``ObjectNotFound``;
    ``WriterStateInvalid``; ``StorageBackendError`` for a store that failed (object-store
    drivers map every exception of their client library to these; the filesystem driver lets
    ``OSError`` through, e.g. a full disk).
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

    async def writer(self, path: str, resume: WriterState | None = None) -> Writer:
        """A resumable writer of the object at ``path``: a new write (``resume=None``; anything a
        previous unfinished write of ``path`` stored is discarded) or the continuation of the
        write that returned ``resume`` from ``flush`` — in this process or another.

        Raises:
            WriterStateInvalid: the bytes ``resume`` names are gone or shorter than recorded.
        """
        ...

    async def move(self, src: str, dst: str) -> None:
        """Give ``src``'s bytes the name ``dst`` (replacing ``dst``), then remove ``src``.

        ``dst`` appears whole or not at all; on object stores this is a server-side copy and a
        delete, so a crash in between can leave both (callers tolerate a leftover ``src``).
        ``ObjectNotFound`` if there is no ``src``. The moved object's ``modified`` time becomes the
        time of the move (as an S3 copy does), so age-based cleanup (GC's storage sweep) measures
        from when the object got its new name.
        """
        ...

    async def delete(self, path: str) -> None:
        """Delete the object at ``path`` or every object below it; a missing path is not an error."""
        ...

    async def delete_objects(self, paths: Sequence[str]) -> None:
        """Delete exactly the objects at ``paths`` (not what is below them); missing ones are
        fine. For many at once (garbage collection): object stores send one request per 1,000
        (S3 DeleteObjects) or 256 (Azure Blob Batch) objects.

        Raises:
            ValueError: a path is invalid (nothing is deleted).
        """
        ...

    def list(self, prefix: str) -> AsyncIterator[str]:
        """Every object path at or below ``prefix`` (``""``: all), recursively, in sorted order."""
        ...

    def list_created(self, prefix: str, since: datetime | None) -> AsyncIterator[ObjectInfo]:
        """Objects at or below ``prefix`` placed (created, or moved into place) at or after
        ``since`` (``None``: all), with size and modification time, in sorted order, for a
        sweep whose cost follows what changed, not the store's size (the gc sweep).

        May also yield older objects (the caller filters on ``modified``); never misses one
        placed at or after ``since``. The filesystem skips folders whose mtime is before
        ``since`` (placing or removing an entry sets it); object stores list and filter on
        Last-Modified (objects are immutable), costing one listing request per 1,000 objects
        but no per-object request. Bytes appended in place to an older object are not seen.

        Raises:
            ValueError: ``prefix`` is not ``""`` or a valid path (at call time).
        """
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

    def pending(self, prefix: str) -> AsyncIterator[PendingWrite]:
        """Unfinished writes at or below ``prefix`` (``""``: all) whose bytes ``list`` does not
        show, one per path, sorted by path, for cleanup to find writes no one will resume.

        A driver whose in-progress bytes are ordinary objects (the filesystem: a writer writes
        its file in place) yields nothing: ``list`` and ``delete`` already reach them.
        Every unfinished write is found by ``list`` or by ``pending``; a write that is resumed
        or committed concurrently may be reported and must then not be aborted.

        Raises:
            ValueError: ``prefix`` is not ``""`` or a valid path (at call time).
        """
        ...

    async def abort_pending(self, pending: PendingWrite) -> None:
        """Discard the pieces ``pending`` names (as ``Writer.cancel`` would); a resume from any
        state of that write then raises ``WriterStateInvalid``. Already gone is not an error.
        The caller decides that no one will resume the write (Berth: no live upload session).
        """
        ...

    async def close(self) -> None:
        """Release clients and connections; the driver is unusable afterwards."""
        ...
