"""Purge of incomplete uploads (DESIGN §5, the seed's "FeedCleanUp").

An upload session idle for longer than ``uploads.max_age_seconds`` is expired: one
``UploadExpired`` event (the projection drops the session) and its bytes are removed from
storage. Runs online: pushes continue; a session that receives a chunk while being judged is
left alone (its row is locked and re-checked in the expiring transaction). One process
purges at a time (a transaction-scoped advisory lock).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

import structlog

from berth_blob.domain.layout import FeedLayout
from berth_blob.projections.tables import project
from berth_common.events import Metadata, UploadExpired
from berth_common.eventstore import EventStore
from berth_common.storage import StorageDriver

PURGE_LOCK: Final = 0x62657274_70757267  # "berthpurg"
log = structlog.get_logger("berth.cleanup")


@dataclass(frozen=True)
class PurgeResult:
    """What one purge run did: sessions expired and bytes freed."""

    expired: int
    bytes_freed: int


async def purge_expired_uploads(
    store: EventStore,
    storage: StorageDriver,
    max_age: timedelta,
    *,
    now: datetime | None = None,
    batch: int = 500,
) -> PurgeResult:
    """Expire every upload session idle since before ``now - max_age``.

    Returns a ``PurgeResult`` (zero when another process holds the purge lock).
    """
    cutoff = (now or datetime.now(UTC)) - max_age
    expired: list[tuple[str, str, int]] = []
    meta = Metadata(actor="system:cleanup")
    async with store.unit_of_work(project, meta) as uow:
        if not await uow.conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", PURGE_LOCK):
            return PurgeResult(0, 0)
        rows = await uow.conn.fetch(
            "SELECT id::text, repository, size FROM blob.uploads WHERE updated_at < $1"
            " ORDER BY updated_at LIMIT $2 FOR UPDATE SKIP LOCKED",
            cutoff,
            batch,
        )
        for row in rows:
            await uow.emit(
                f"upload:{row['id']}", UploadExpired(upload_id=row["id"], repository=row["repository"])
            )
            expired.append((row["id"], row["repository"], row["size"]))
    for upload_id, repository, _ in expired:
        await storage.delete(FeedLayout.of(repository).upload_prefix(upload_id))
    freed = sum(size for _, _, size in expired)
    if expired:
        log.info("uploads.expired", count=len(expired), bytes=freed)
    return PurgeResult(len(expired), freed)


async def purge_forever(
    store: EventStore, storage: StorageDriver, max_age: timedelta, interval: float
) -> None:
    """Run ``purge_expired_uploads`` every ``interval`` seconds until cancelled."""
    while True:
        await purge_expired_uploads(store, storage, max_age)
        await asyncio.sleep(interval)
