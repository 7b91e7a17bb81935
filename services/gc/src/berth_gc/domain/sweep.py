"""The storage sweep: files in a store that no row names (the last phase of a gc run).

Garbage collection by rows (``berth_gc.domain.collect``) only sees what the event store knows.
Two crash windows leave files it never learns of:

- **content without a blob**: the upload commit moves the verified bytes to their content
  address inside the transaction that records ``UploadCompleted``; if that transaction never
  commits, the file stays and no ``blob.v_blobs`` row names it;
- **session data without a session**: ``UploadCompleted``, ``UploadCancelled`` and
  ``UploadExpired`` commit before the session's folder (``uploads/<id>/``) is removed; a crash
  in between leaves the folder with no ``blob.v_upload_sessions`` row.

A file goes only when (1) no row names it, (2) it was last written before the grace cutoff,
and (3) for content, both are re-checked under the blob's advisory lock
(``berth_common.db.locks.blob_lock_key``), which the upload commit holds while it moves content
into place and commits (``berth_blob.contracts``, rule 2 and 4).

Cost (issue 15 §4): proportional to what may be garbage, not to the store's size. Content is
read with ``StorageDriver.list_created(…, since=watermark)``: only objects placed since the last
completed sweep's watermark (``gc.sweep_marks``; the filesystem skips unchanged folders, object
stores filter their listing on Last-Modified), and rows are checked in batches of 500. Upload
areas (``uploads/`` of each location: open sessions and orphans only) are listed whole, and
their unfinished writes (S3 multipart uploads, uncommitted Azure blocks, filesystem segments)
come from ``StorageDriver.pending`` of those areas only. The watermark is the earlier of the
cutoff and the sweep's start, minus ``CLOCK_SLACK`` (store clocks may differ from ours): every
object placed after it is either newer than this sweep's cutoff or was placed after it started.

Nothing here was ever registry state (no event named these files), so removals are logged and
counted, not recorded as events.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

import asyncpg
import structlog

from berth_common.db.locks import lock_blob
from berth_common.storage import ObjectInfo, PendingWrite, StorageDriver, Stores, is_upload_id, parse
from berth_common.storage.layout import LEGACY_STORE, Location
from berth_gc.contracts import BLOBS, UPLOAD_SESSIONS

CLOCK_SLACK: Final = timedelta(minutes=5)
BATCH: Final = 500
log = structlog.get_logger("berth.gc")


@dataclass
class SweepResult:
    """Files removed by one sweep: content files, upload session folders, and bytes freed;
    ``listed``: objects judged (what the sweep cost)."""

    content_files: int = 0
    upload_folders: int = 0
    bytes_freed: int = 0
    listed: int = 0


@dataclass
class _Session:
    prefix: str
    upload_id: str
    files: list[ObjectInfo] = field(default_factory=list)


async def sweep_orphans(
    pool: asyncpg.Pool, stores: Stores, cutoff: datetime, *, started: datetime | None = None
) -> SweepResult:
    """Remove content files and upload folders that no row names and that were last written
    before ``cutoff`` (timezone-aware), in every configured store; then record each store's new
    watermark. The caller holds the gc run lock (one sweep at a time).

    Raises what the pool or the drivers raise (each file is judged and removed on its own; a
    store whose sweep fails keeps its old watermark).
    """
    result = SweepResult()
    began = started or datetime.now(UTC)
    for name in stores.names:
        storage = stores.driver(name)
        since = await pool.fetchval("SELECT watermark FROM gc.sweep_marks WHERE store = $1", name)
        await _sweep_content(pool, storage, name, since, cutoff, result)
        for area in await _upload_areas(pool, name):
            await _sweep_uploads(pool, storage, name, area, cutoff, result)
        mark = min(cutoff, began) - CLOCK_SLACK
        await pool.execute(
            "INSERT INTO gc.sweep_marks(store, watermark, swept_at) VALUES ($1, $2, now())"
            " ON CONFLICT (store) DO UPDATE SET watermark = EXCLUDED.watermark, swept_at = now()",
            name,
            mark,
        )
    if result.content_files or result.upload_folders:
        log.info("gc.swept", content_files=result.content_files, upload_folders=result.upload_folders,
                 bytes=result.bytes_freed)  # fmt: skip
    return result


async def _sweep_content(
    pool: asyncpg.Pool, storage: StorageDriver, name: str, since: datetime | None, cutoff: datetime,
    result: SweepResult,
) -> None:  # fmt: skip
    batch: list[tuple[ObjectInfo, str, str]] = []
    async for info in storage.list_created("", since):
        parsed = parse(name, info.path)
        if parsed is None or parsed.digest is None:
            continue
        result.listed += 1
        if info.modified >= cutoff:
            continue
        batch.append((info, parsed.location.key, parsed.digest))
        if len(batch) >= BATCH:
            await _judge_content(pool, storage, batch, cutoff, result)
            batch = []
    await _judge_content(pool, storage, batch, cutoff, result)


async def _judge_content(
    pool: asyncpg.Pool, storage: StorageDriver, batch: list[tuple[ObjectInfo, str, str]], cutoff: datetime,
    result: SweepResult,
) -> None:  # fmt: skip
    if not batch:
        return
    known = {
        (r["store"], r["digest"])
        for r in await pool.fetch(
            f"SELECT b.store, b.digest FROM {BLOBS} b"
            " JOIN unnest($1::text[], $2::text[]) AS c(store, digest) USING (store, digest)",
            [key for _, key, _ in batch],
            [digest for _, _, digest in batch],
        )
    }
    for info, key, digest in batch:
        if (key, digest) not in known:
            size = await _remove_content(pool, storage, info.path, key, digest, cutoff)
            if size is not None:
                result.content_files, result.bytes_freed = result.content_files + 1, result.bytes_freed + size


async def _remove_content(
    pool: asyncpg.Pool, storage: StorageDriver, path: str, key: str, digest: str, cutoff: datetime
) -> int | None:
    """Remove one content file if, under the blob's lock, no row names it; its size, or None."""
    async with pool.acquire() as conn, conn.transaction():
        await lock_blob(conn, key, digest)
        if await conn.fetchval(f"SELECT 1 FROM {BLOBS} WHERE store = $1 AND digest = $2", key, digest):
            return None
        info = await storage.stat(path)
        if info is None or info.modified >= cutoff:
            return None
        await storage.delete(path)
    log.warning("gc.orphan_content_removed", store=key, digest=digest, bytes=info.size)
    return info.size


async def _upload_areas(pool: asyncpg.Pool, store: str) -> list[str]:
    """The upload folders of store ``store``: its root's, and for the default store each
    legacy location's (feeds created before named stores, from api's ``api.v_feeds``)."""
    areas = [Location(store).listing_prefixes()[1]]
    if store == LEGACY_STORE:
        rows = await pool.fetch("SELECT name, storage FROM api.v_feeds")
        for row in rows:
            location = Location.of_feed(row["name"], row["storage"])
            if location.store == store and location.prefix:
                areas.append(location.listing_prefixes()[1])
    return areas


async def _sweep_uploads(
    pool: asyncpg.Pool, storage: StorageDriver, name: str, area: str, cutoff: datetime, result: SweepResult
) -> None:
    sessions: dict[str, _Session] = {}
    async for info in storage.list_created(area, None):
        parsed = parse(name, info.path)
        if parsed is None or parsed.upload_id is None or parsed.session_prefix is None:
            continue
        result.listed += 1
        session = sessions.setdefault(
            parsed.session_prefix, _Session(parsed.session_prefix, parsed.upload_id)
        )
        session.files.append(info)
    pending: dict[str, list[PendingWrite]] = defaultdict(list)
    async for write in storage.pending(area):
        parsed = parse(name, write.path)
        if parsed is not None and parsed.upload_id is not None and parsed.session_prefix is not None:
            pending[parsed.session_prefix].append(write)
            sessions.setdefault(parsed.session_prefix, _Session(parsed.session_prefix, parsed.upload_id))
    live = await _live_sessions(pool, (s.upload_id for s in sessions.values()))
    for session in sessions.values():
        if session.upload_id in live:
            continue
        writes = pending.get(session.prefix, [])
        if any(i.modified >= cutoff for i in session.files) or any(w.started >= cutoff for w in writes):
            continue  # written lately
        for write in writes:
            await storage.abort_pending(write)
        await storage.delete(session.prefix)
        size = sum(i.size for i in session.files)
        result.upload_folders, result.bytes_freed = result.upload_folders + 1, result.bytes_freed + size
        log.warning("gc.orphan_upload_removed", upload_id=session.upload_id, bytes=size,
                    unfinished_writes=len(writes))  # fmt: skip


async def _live_sessions(pool: asyncpg.Pool, ids: Iterable[str]) -> set[str]:
    valid = [i for i in ids if is_upload_id(i)]
    if not valid:
        return set()
    rows = await pool.fetch(f"SELECT id::text AS id FROM {UPLOAD_SESSIONS} WHERE id = ANY($1::uuid[])", valid)
    return {r["id"] for r in rows}
