"""The storage sweep: files in a store that no row names (the third phase of GC; docs/ARCHITECTURE.md).

Garbage collection by rows (``berth_blob.domain.gc``) only sees what the event store knows.
Two crash windows leave files it never learns of:

- **content without a blob**: the upload commit moves the verified bytes to their content
  address (``blobs/<alg>/<xx>/<hex>`` of the feed's location) inside the transaction that records
  ``UploadCompleted``; if that transaction never commits (crash, lost connection), the file
  stays and no ``blob.blobs`` row points at it;
- **session data without a session**: ``UploadCompleted``, ``UploadCancelled`` and
  ``UploadExpired`` commit before the session's folder (``uploads/<id>/`` of its location) is
  removed; a crash in between leaves the folder with no ``blob.uploads`` row.

Distribution's garbage collector is a mark-and-sweep over storage; this is the sweep half,
limited to what no row names. A file goes only when (1) no row names it, (2) it was last written
before the grace cutoff, and (3) for content, both are re-checked while holding the blob's
advisory lock (``locks.lock_blob``) — the lock the upload commit holds while it moves content into
place and commits, so a commit in flight either committed (its row is seen) or has not moved
anything yet. An upload session's row is created before its first byte is written and its id is
never reused, so a folder without a row never gains one. Nothing here was ever registry state
(no event named these files), so removals are logged and counted, not recorded as events.
Temporary files of interrupted driver writes are not listed by the driver and not swept; the
bytes of an upload session's unfinished write (filesystem segments, an S3 multipart upload,
uncommitted Azure blocks) are not listed either: the driver reports them as pending writes
(``StorageDriver.pending``), and a session folder whose pending write no row names and that
started before the cutoff is aborted and removed like a listed one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import structlog

from berth_blob.domain.locks import lock_blob
from berth_common.storage import PendingWrite, StorageDriver, Stores, is_upload_id, parse

log = structlog.get_logger("berth.gc")


@dataclass(frozen=True)
class SweepResult:
    """Files removed by one sweep: content files, upload session folders, and bytes freed."""

    content_files: int = 0
    upload_folders: int = 0
    bytes_freed: int = 0


@dataclass(frozen=True)
class _Content:
    path: str
    store: str  # the location key
    digest: str


@dataclass(frozen=True)
class _Session:
    prefix: str
    upload_id: str
    files: tuple[str, ...]


async def sweep_orphans(pool: asyncpg.Pool, stores: Stores, cutoff: datetime) -> SweepResult:
    """Remove content files and upload folders that no row names and that were last written
    before ``cutoff`` (timezone-aware). The caller holds the GC lock (one sweep at a time).

    Returns a ``SweepResult``. Raises what the pool or the driver raise (nothing is half done:
    each file is judged and removed on its own).
    """
    content = uploads = freed = 0
    for name in stores.names:
        storage, removed = stores.driver(name), set[str]()
        async for item in _candidates(name, storage):
            size = await _remove(pool, storage, item, cutoff)
            if size is not None and isinstance(item, _Content):
                content, freed = content + 1, freed + size
            elif size is not None and isinstance(item, _Session):
                uploads, freed = uploads + 1, freed + size
                removed.add(item.prefix)
        async for pending in storage.pending(""):
            prefix = await _remove_pending(pool, storage, name, pending, cutoff)
            if prefix is not None and prefix not in removed:
                uploads += 1
                removed.add(prefix)
    if content or uploads:
        log.info("gc.swept", content_files=content, upload_folders=uploads, bytes=freed)
    return SweepResult(content, uploads, freed)


async def _remove(
    pool: asyncpg.Pool, storage: StorageDriver, item: _Content | _Session, cutoff: datetime
) -> int | None:
    if isinstance(item, _Content):
        return await _remove_content(pool, storage, item, cutoff)
    return await _remove_session(pool, storage, item, cutoff)


async def _candidates(store: str, storage: StorageDriver) -> AsyncIterator[_Content | _Session]:
    """Every content file, and every upload folder (its files together), of store ``store`` in
    listing order (``berth_common.storage.layout.parse`` says what each path is)."""
    session: _Session | None = None
    async for path in storage.list(""):
        parsed = parse(store, path)
        if parsed is None:
            continue
        if parsed.digest is not None:
            yield _Content(path, parsed.location.key, parsed.digest)
        elif parsed.upload_id is not None and parsed.session_prefix is not None:
            if session is not None and session.prefix == parsed.session_prefix:
                session = _Session(session.prefix, session.upload_id, (*session.files, path))
                continue
            if session is not None:
                yield session
            session = _Session(parsed.session_prefix, parsed.upload_id, (path,))
    if session is not None:
        yield session


async def _remove_content(
    pool: asyncpg.Pool, storage: StorageDriver, item: _Content, cutoff: datetime
) -> int | None:
    """Remove one content file if no blob row names it; its size, or None if it stays."""
    if await pool.fetchval(
        "SELECT 1 FROM blob.blobs WHERE store = $1 AND digest = $2", item.store, item.digest
    ):
        return None  # the common case, decided without a transaction
    async with pool.acquire() as conn, conn.transaction():
        await lock_blob(conn, item.store, item.digest)
        if await conn.fetchval(
            "SELECT 1 FROM blob.blobs WHERE store = $1 AND digest = $2", item.store, item.digest
        ):
            return None
        info = await storage.stat(item.path)
        if info is None or info.modified >= cutoff:
            return None
        await storage.delete(item.path)
    log.warning("gc.orphan_content_removed", store=item.store, digest=item.digest, bytes=info.size)
    return info.size


async def _remove_session(
    pool: asyncpg.Pool, storage: StorageDriver, item: _Session, cutoff: datetime
) -> int | None:
    """Remove one upload folder if no session row names it and none of its files was written
    since ``cutoff``; the bytes freed, or None if it stays."""
    if is_upload_id(item.upload_id) and await pool.fetchval(
        "SELECT 1 FROM blob.uploads WHERE id = $1", item.upload_id
    ):
        return None
    infos = [info for path in item.files if (info := await storage.stat(path)) is not None]
    if not infos or any(info.modified >= cutoff for info in infos):
        return None  # written lately, or gone meanwhile (a session that completed as we listed)
    size = sum(info.size for info in infos)
    await storage.delete(item.prefix)
    log.warning("gc.orphan_upload_removed", upload_id=item.upload_id, bytes=size)
    return size


async def _remove_pending(
    pool: asyncpg.Pool, storage: StorageDriver, store: str, pending: PendingWrite, cutoff: datetime
) -> str | None:
    """Abort an unfinished write under an upload folder that no session row names, started
    before ``cutoff``, and remove the folder; its prefix, or None if it stays."""
    parsed = parse(store, pending.path)
    if (
        parsed is None
        or parsed.upload_id is None
        or parsed.session_prefix is None
        or pending.started >= cutoff
    ):
        return None
    if is_upload_id(parsed.upload_id) and await pool.fetchval(
        "SELECT 1 FROM blob.uploads WHERE id = $1", parsed.upload_id
    ):
        return None
    await storage.abort_pending(pending)
    await storage.delete(parsed.session_prefix)
    log.warning("gc.orphan_upload_removed", upload_id=parsed.upload_id, unfinished_write=pending.path)
    return parsed.session_prefix
