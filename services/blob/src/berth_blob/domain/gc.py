"""Online garbage collection of blobs (DESIGN §5): pushes and pulls continue while it runs.

Two phases, each decided per item inside its own transaction:

1. **Unlink** a repository's link to a blob that no manifest of that repository references and
   that was linked before the grace period (``BlobUnlinked``). The link row is locked first,
   then references are read in a new statement, so a manifest PUT that committed meanwhile is
   seen; a manifest PUT in flight holds a share lock on the links it checked
   (``berth_api.domain.manifests``), so it either commits first (and the link stays) or waits
   and then finds the blob unknown. A committed manifest never references an unlinked blob.
2. **Delete** a blob's content from its feed's store when no repository links it and it was
   stored before the grace period (``BlobDeleted``, then the file). The per-blob advisory lock
   (``blob_lock``) is the one the upload commit takes, so a concurrent push of the same
   content either lands first (and the blob is kept) or moves fresh content in afterwards.

Every deletion is an event, so it is audited and visible in ``berth events tail``.

3. **Sweep** storage for files that no row names (``berth_blob.domain.sweep``): content and
   upload folders left by a crash between a file operation and its commit. They were never
   registry state, so their removal is logged, not an event.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

import structlog

from berth_blob.domain.locks import blob_lock_key, lock_blob
from berth_blob.domain.sweep import sweep_orphans
from berth_blob.projections.tables import project
from berth_common.db import Connection, keeps_session_state
from berth_common.events import BlobDeleted, BlobUnlinked, Metadata
from berth_common.eventstore import EventStore
from berth_common.storage import Location, Stores
from berth_common.telemetry import gc_job

GC_LOCK: Final = 0x62657274_67637275  # "berthgcru"
log = structlog.get_logger("berth.gc")

__all__ = ["GC_LOCK", "GcResult", "blob_lock_key", "collect_forever", "collect_garbage", "lock_blob"]


@dataclass(frozen=True)
class GcResult:
    """What one collection did: links removed, blobs deleted, bytes freed (``bytes_freed``
    includes the sweep's), and what the storage sweep removed (``swept_files``: content files
    and upload folders that no row named)."""

    unlinked: int
    deleted: int
    bytes_freed: int
    swept_files: int = 0


@gc_job("gc", lambda r: (r.deleted + r.swept_files, r.bytes_freed))
async def collect_garbage(
    store: EventStore,
    stores: Stores,
    grace: timedelta,
    *,
    now: datetime | None = None,
    batch: int = 1000,
) -> GcResult:
    """Run both phases once, then the storage sweep (``berth_blob.domain.sweep``: files no row
    names, last written before the same cutoff).

    Returns zeros when another process is collecting.
    """
    cutoff = (now or datetime.now(UTC)) - grace
    async with store.pool.acquire() as conn:
        keeps_session_state(conn)
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", GC_LOCK):
            return GcResult(0, 0, 0)
        try:
            unlinked = await _unlink_unreferenced(store, conn, cutoff, batch)
            deleted, freed = await _delete_unlinked(store, stores, conn, cutoff, batch)
            swept = await sweep_orphans(store.pool, stores, cutoff)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", GC_LOCK)
    if unlinked or deleted:
        log.info("gc.collected", unlinked=unlinked, deleted=deleted, bytes=freed)
    return GcResult(unlinked, deleted, freed + swept.bytes_freed, swept.content_files + swept.upload_folders)


async def collect_forever(store: EventStore, stores: Stores, grace: timedelta, interval: float) -> None:
    """Run ``collect_garbage`` every ``interval`` seconds until cancelled (first run after one)."""
    while True:
        await asyncio.sleep(interval)
        await collect_garbage(store, stores, grace)


async def _unlink_unreferenced(store: EventStore, conn: Connection, cutoff: datetime, batch: int) -> int:
    rows = await conn.fetch(
        "SELECT l.repository, l.digest FROM blob.links l WHERE l.linked_at < $1 AND NOT EXISTS"
        " (SELECT 1 FROM api.v_manifest_references r WHERE r.repository = l.repository"
        "  AND r.reference = l.digest) ORDER BY l.repository, l.digest LIMIT $2",
        cutoff,
        batch,
    )
    count = 0
    for row in rows:
        if await _unlink_one(store, row["repository"], row["digest"], cutoff):
            count += 1
    return count


async def _unlink_one(store: EventStore, repository: str, digest: str, cutoff: datetime) -> bool:
    async with store.unit_of_work(project, Metadata(actor="system:gc")) as uow:
        locked = await uow.conn.fetchval(
            "SELECT 1 FROM blob.links WHERE repository = $1 AND digest = $2 AND linked_at < $3 FOR UPDATE",
            repository,
            digest,
            cutoff,
        )
        if not locked:
            return False
        referenced = await uow.conn.fetchval(
            "SELECT 1 FROM api.v_manifest_references WHERE repository = $1 AND reference = $2 LIMIT 1",
            repository,
            digest,
        )
        if referenced:
            return False
        await uow.emit(f"bloblink:{repository}@{digest}", BlobUnlinked(repository=repository, digest=digest))
        return True


async def _delete_unlinked(
    store: EventStore, stores: Stores, conn: Connection, cutoff: datetime, batch: int
) -> tuple[int, int]:
    rows = await conn.fetch(
        "SELECT b.store, b.digest FROM blob.blobs b WHERE b.created_at < $1 AND NOT EXISTS"
        " (SELECT 1 FROM blob.links l WHERE l.store = b.store AND l.digest = b.digest)"
        " ORDER BY b.store, b.digest LIMIT $2",
        cutoff,
        batch,
    )
    deleted = freed = 0
    for row in rows:
        size = await _delete_one(store, stores, row["store"], row["digest"])
        if size is not None:
            deleted, freed = deleted + 1, freed + size
    return deleted, freed


async def _delete_one(store: EventStore, stores: Stores, key: str, digest: str) -> int | None:
    """Delete the content of ``digest`` in location ``key`` if no link names it (its size)."""
    async with store.unit_of_work(project, Metadata(actor="system:gc")) as uow:
        await lock_blob(uow.conn, key, digest)
        size = await uow.conn.fetchval(
            "SELECT size FROM blob.blobs WHERE store = $1 AND digest = $2", key, digest
        )
        linked = await uow.conn.fetchval(
            "SELECT 1 FROM blob.links WHERE store = $1 AND digest = $2 LIMIT 1", key, digest
        )
        if size is None or linked:
            return None
        await uow.emit(f"blob:{key}@{digest}", BlobDeleted(store=key, digest=digest, size=size))
        location = Location.parse(key)
        await stores.driver(location).delete(location.blob(digest))
        return int(size)
