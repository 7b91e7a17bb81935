"""Purge of incomplete uploads (the seed's "FeedCleanUp"; issue 15 §4).

An upload session idle for longer than ``uploads.max_age_seconds`` is expired: one
``UploadExpired`` event (``blob.end_upload`` drops the session's rows in the same transaction)
and then its bytes are removed from storage: its unfinished write (an S3 multipart upload,
uncommitted Azure blocks, filesystem segments: ``Writer.cancel`` of the recorded writer state)
and every object under its folder. Multipart uploads and blocks that no session names are the
storage sweep's (``sweep``). Runs online: a session that a request is writing to (a live
lease) or recording (its row locked: ``SKIP LOCKED``) is left alone (``berth_blob.contracts``,
rule 3). Sessions go in batches of ``BATCH`` per transaction until none is left.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import structlog

from berth_common.events import Metadata, UploadExpired
from berth_common.eventstore import EventStore
from berth_common.storage import Location, StorageDriver, Stores, WriterState, WriterStateInvalid
from berth_common.telemetry import gc_job
from berth_gc.contracts import UPLOAD_SESSIONS, apply_to_blob

BATCH: Final = 500
_IDLE = (
    f"SELECT id::text AS id, repository, feed, store, size, writer, generation FROM {UPLOAD_SESSIONS}"
    " WHERE updated_at < $1 AND (lease IS NULL OR lease_until < now()) {feed}"
)
_LOCK_BATCH = " ORDER BY updated_at LIMIT {limit} FOR UPDATE SKIP LOCKED"
log = structlog.get_logger("berth.gc")


@dataclass
class PurgeResult:
    """What one purge did: sessions expired and bytes freed, per feed (``{feed: [sessions,
    bytes]}``)."""

    expired: int = 0
    bytes_freed: int = 0
    feeds: dict[str, list[int]] = field(default_factory=dict)


@gc_job("upload_purge", lambda r: (r.expired, r.bytes_freed))
async def purge_expired_uploads(
    store: EventStore,
    stores: Stores,
    max_age: timedelta,
    *,
    now: datetime | None = None,
    feed: str | None = None,
    dry_run: bool = False,
    batch: int = BATCH,
    progress: Callable[[int], Any] | None = None,
) -> PurgeResult:
    """Expire every upload session idle since before ``now - max_age`` (of ``feed`` only, if
    given); with ``dry_run``, only count them. The caller holds the gc run lock.

    Returns a ``PurgeResult``. Raises what the pool or the drivers raise; a batch that
    committed stays expired (its bytes are the sweep's if their removal failed).
    """
    cutoff = (now or datetime.now(UTC)) - max_age
    result = PurgeResult()
    sql = _IDLE.format(feed="AND feed = $2" if feed else "")
    args: tuple[Any, ...] = (cutoff, feed) if feed else (cutoff,)
    if dry_run:
        for row in await store.pool.fetch(sql, *args):
            _count(result, row["feed"], int(row["size"]))
        return result
    while True:
        async with store.unit_of_work(apply_to_blob, Metadata(actor="system:gc")) as uow:
            rows = await uow.conn.fetch(sql + _LOCK_BATCH.format(limit=int(batch)), *args)
            for row in rows:
                await uow.emit(
                    f"upload:{row['id']}", UploadExpired(upload_id=row["id"], repository=row["repository"])
                )
        for row in rows:
            await _drop_data(stores.driver(Location.parse(row["store"])), row)
            _count(result, row["feed"], int(row["size"]))
        if progress is not None and rows:
            progress(len(rows))
        if len(rows) < batch:
            break
    if result.expired:
        log.info("uploads.expired", count=result.expired, bytes=result.bytes_freed)
    return result


def _count(result: PurgeResult, feed: str, size: int) -> None:
    result.expired, result.bytes_freed = result.expired + 1, result.bytes_freed + size
    counts = result.feeds.setdefault(feed, [0, 0])
    counts[0], counts[1] = counts[0] + 1, counts[1] + size


async def _drop_data(storage: StorageDriver, row: Any) -> None:
    """Cancel the session's unfinished write and remove its folder."""
    location = Location.parse(row["store"])
    if row["writer"] is not None or row["size"]:
        path = location.upload_data(row["id"], row["generation"])
        try:
            writer = await storage.writer(path, WriterState(int(row["size"]), row["writer"] or {}))
        except WriterStateInvalid:
            pass
        else:
            await writer.cancel()
    await storage.delete(location.upload_prefix(row["id"]))
