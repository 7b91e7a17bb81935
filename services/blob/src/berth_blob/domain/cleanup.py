"""Purge of incomplete uploads (DESIGN §5, the seed's "FeedCleanUp").

An upload session idle for longer than ``uploads.max_age_seconds`` is expired: one
``UploadExpired`` event (the projection drops the session) and its bytes are removed from
storage. Runs online: pushes continue; a session that a request is writing to (a live lease,
``sessions``) or that receives a chunk while being judged is left alone (its rows are locked
and re-checked in the expiring transaction). One process
purges at a time (a transaction-scoped advisory lock).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

import structlog

from berth_blob.domain import sessions
from berth_blob.domain.commit import drop_data
from berth_blob.domain.sessions import Lease
from berth_blob.projections.tables import project
from berth_common.events import Metadata, UploadExpired
from berth_common.eventstore import EventStore
from berth_common.storage import Stores
from berth_common.telemetry import gc_job

PURGE_LOCK: Final = 0x62657274_70757267  # "berthpurg"
# Idle sessions nobody is writing to now (a live lease means a request is streaming a body).
_IDLE_SESSIONS = """
SELECT u.id::text AS id, u.repository, u.store, s.size, s.writer, s.generation
  FROM blob.uploads u JOIN blob.upload_state s ON s.id = u.id
 WHERE u.updated_at < $1 AND (s.lease IS NULL OR s.lease_until < now())
 ORDER BY u.updated_at LIMIT $2 FOR UPDATE OF u, s SKIP LOCKED
"""
log = structlog.get_logger("berth.cleanup")


@dataclass(frozen=True)
class PurgeResult:
    """What one purge run did: sessions expired and bytes freed."""

    expired: int
    bytes_freed: int


@gc_job("upload_purge", lambda r: (r.expired, r.bytes_freed))
async def purge_expired_uploads(
    store: EventStore,
    stores: Stores,
    max_age: timedelta,
    *,
    now: datetime | None = None,
    batch: int = 500,
) -> PurgeResult:
    """Expire every upload session idle since before ``now - max_age``.

    Returns a ``PurgeResult`` (zero when another process holds the purge lock).
    """
    cutoff = (now or datetime.now(UTC)) - max_age
    expired: list[Lease] = []
    meta = Metadata(actor="system:cleanup")
    async with store.unit_of_work(project, meta) as uow:
        if not await uow.conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", PURGE_LOCK):
            return PurgeResult(0, 0)
        rows = await uow.conn.fetch(_IDLE_SESSIONS, cutoff, batch)
        for row in rows:
            event = UploadExpired(upload_id=row["id"], repository=row["repository"])
            await uow.emit(f"upload:{row['id']}", event)
            await sessions.forget(uow.conn, row["id"])
            expired.append(sessions.Lease.of_row(row["id"], row))
    for lease in expired:
        await drop_data(stores.driver(lease.location), lease)
    freed = sum(lease.size for lease in expired)
    if expired:
        log.info("uploads.expired", count=len(expired), bytes=freed)
    return PurgeResult(len(expired), freed)


async def purge_forever(store: EventStore, stores: Stores, max_age: timedelta, interval: float) -> None:
    """Run ``purge_expired_uploads`` every ``interval`` seconds until cancelled."""
    while True:
        await purge_expired_uploads(store, stores, max_age)
        await asyncio.sleep(interval)
