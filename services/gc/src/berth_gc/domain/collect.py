"""Online garbage collection of blobs (DESIGN §5; issue 15 §4): pushes and pulls continue.

The gc service owns it (docs/ARCHITECTURE.md, "Who owns cleanup"); it reads and changes blob's
state only through ``berth_blob.contracts`` (names mirrored in ``berth_gc.contracts``) and
decides what is referenced from its own projection, ``gc.blob_references``. One run:

0. **Purge** upload sessions idle past ``uploads.max_age_seconds`` (``purge``), if asked.
1. **Unlink** each repository's link to a blob that no manifest of that repository references
   and that was linked before the grace cutoff (``BlobUnlinked``). Per batch of ``BATCH`` links,
   one transaction: lock the candidate links ``FOR UPDATE``, then bring the projection up to the
   store's head (``references.catch_up``), then re-read which are still unreferenced, emit.
   A manifest PUT holds ``FOR SHARE`` on the links it checked until it commits, so it either
   committed before our lock (and the catch-up sees its references) or waits and then finds the
   link gone: a committed manifest never references an unlinked blob.
2. **Delete** content no link names and stored before the cutoff (``BlobDeleted``, then the
   bytes). Per batch: take the batch's per-blob advisory locks (``blob_lock_key``, in key order,
   one round trip; blob's commit, mount and placement hold the same lock until their event
   commits), re-read under them, emit, delete the bytes (``StorageDriver.delete_objects``: S3
   DeleteObjects of up to 1,000 keys, Azure Blob Batch), commit.
3. **Sweep** storage for files no row names (``sweep``).

One run collects everything eligible: batches repeat until a batch comes back short. One
runner at a time across replicas (the session advisory lock ``GC_LOCK``). Every deletion is
an event (audited, in ``berth events tail``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import asyncpg
import structlog

from berth_common.db import Connection, keeps_session_state
from berth_common.db.locks import lock_blobs
from berth_common.events import BlobDeleted, BlobUnlinked, Metadata
from berth_common.eventstore import EventStore
from berth_common.storage import Location, Stores
from berth_common.telemetry import gc_job
from berth_gc.contracts import BLOBS, FORGET_BLOB, LINKS, REFERENCES, UNLINK
from berth_gc.domain import purge as purging
from berth_gc.domain.references import catch_up
from berth_gc.domain.sweep import sweep_orphans

GC_LOCK: Final = 0x62657274_67637275  # "berthgcru": one gc run at a time, across replicas
BATCH: Final = 500  # links or blobs per transaction
log = structlog.get_logger("berth.gc")

#: ``progress(phase, done)``: called after each batch (phase: purge, unlink, delete, sweep).
Progress = Callable[[str, int], Any]


@dataclass
class FeedTotals:
    """What a run did (or would do) for one feed: links removed, blobs deleted and their bytes,
    upload sessions expired and their bytes. Content in a store shared by feeds is counted for
    the feed whose link went in this run, else for the store (``store:<location>``)."""

    unlinked: int = 0
    deleted: int = 0
    bytes: int = 0
    expired: int = 0
    expired_bytes: int = 0


@dataclass
class GcResult:
    """What one collection did: links removed, blobs deleted, bytes freed (blobs, purged
    sessions and swept files), swept files (content files and upload folders no row named),
    sessions expired, per feed (``feeds``); ``ran`` is False when another runner held the lock
    (nothing was done); ``dry_run``: nothing was changed, the counts are what would go (the
    sweep is not counted)."""

    unlinked: int = 0
    deleted: int = 0
    bytes_freed: int = 0
    swept_files: int = 0
    expired: int = 0
    ran: bool = True
    dry_run: bool = False
    feeds: dict[str, FeedTotals] = field(default_factory=dict)

    def feed(self, name: str) -> FeedTotals:
        """The totals of ``name`` (made at zero)."""
        return self.feeds.setdefault(name, FeedTotals())


def feed_of(repository: str) -> str:
    """The feed of ``feed/image``."""
    return repository.split("/", 1)[0]


def _store_label(key: str) -> str:
    location = Location.parse(key)
    legacy = Location.legacy(location.prefix.rpartition("/")[2]) if location.prefix else None
    return location.prefix.rpartition("/")[2] if legacy == location else f"store:{key}"


@gc_job("gc", lambda r: (r.deleted + r.swept_files, r.bytes_freed))
async def collect_garbage(
    store: EventStore,
    stores: Stores,
    grace: timedelta,
    *,
    now: datetime | None = None,
    feed: str | None = None,
    dry_run: bool = False,
    purge_age: timedelta | None = None,
    sweep: bool = True,
    batch: int = BATCH,
    progress: Progress | None = None,
    on_locked: Callable[[], Awaitable[None]] | None = None,
) -> GcResult:
    """One gc run: purge (when ``purge_age`` is given), unlink, delete, then the storage sweep
    (not with ``feed`` or ``dry_run``: it is per store), until nothing eligible is left.

    ``feed`` limits unlinking and purging to that feed's repositories and deleting to content
    whose last link went in this run or in the feed's own location. ``on_locked`` runs once the
    run lock is held (``run_once`` closes the records of runs whose process died). Returns a ``GcResult``
    (``ran=False`` and zeros when another process is collecting). Raises what the pool or the
    drivers raise; every batch that committed stays done.
    """
    moment = now or datetime.now(UTC)
    cutoff = moment - grace
    started = datetime.now(UTC)
    tick: Progress = progress or (lambda phase, done: None)
    async with store.pool.acquire() as conn:
        keeps_session_state(conn)
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", GC_LOCK):
            return GcResult(ran=False, dry_run=dry_run)
        try:
            result = GcResult(dry_run=dry_run)
            if on_locked is not None:
                await on_locked()
            if purge_age is not None:
                purged = await purging.purge_expired_uploads(
                    store, stores, purge_age, now=moment, feed=feed, dry_run=dry_run, batch=batch,
                    progress=lambda n: tick("purge", n),
                )  # fmt: skip
                result.expired, result.bytes_freed = purged.expired, purged.bytes_freed
                for name, (count, size) in purged.feeds.items():
                    totals = result.feed(name)
                    totals.expired, totals.expired_bytes = count, size
            await catch_up(store.pool)
            if dry_run:
                await _dry_run(store.pool, cutoff, feed, result)
                return result
            owners = await _unlink_all(store, cutoff, feed, batch, result, tick)
            await _delete_all(store, stores, cutoff, feed, owners, batch, result, tick)
            if sweep and feed is None:
                swept = await sweep_orphans(store.pool, stores, cutoff, started=started)
                result.swept_files = swept.content_files + swept.upload_folders
                result.bytes_freed += swept.bytes_freed
                tick("sweep", result.swept_files)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", GC_LOCK)
    if result.unlinked or result.deleted:
        log.info("gc.collected", unlinked=result.unlinked, deleted=result.deleted, bytes=result.bytes_freed)
    return result


def _feed_range(feed: str | None, column: str, first: int) -> tuple[str, list[str]]:
    """``AND column`` in feed ``feed``'s repositories (C collation: ``["f/", "f0")``)."""
    if feed is None:
        return "", []
    return f" AND {column} >= ${first} AND {column} < ${first + 1}", [f"{feed}/", f"{feed}0"]


async def _unlink_all(
    store: EventStore, cutoff: datetime, feed: str | None, batch: int, result: GcResult, tick: Progress
) -> dict[tuple[str, str], str]:
    """Phase 1 in batches; the ``(store, digest)`` of every link removed, with its feed."""
    removed: dict[tuple[str, str], str] = {}
    after = ("", "")
    while True:
        done, after, count = await _unlink_batch(store, cutoff, feed, batch, after, result)
        removed |= done
        tick("unlink", len(done))
        if count < batch:
            return removed


async def _unlink_batch(
    store: EventStore,
    cutoff: datetime,
    feed: str | None,
    batch: int,
    after: tuple[str, str],
    result: GcResult,
) -> tuple[dict[tuple[str, str], str], tuple[str, str], int]:
    extra, args = _feed_range(feed, "l.repository", 5)
    removed: dict[tuple[str, str], str] = {}
    async with store.unit_of_work(None, Metadata(actor="system:gc")) as uow:
        locked = await uow.conn.fetch(
            f"SELECT l.repository, l.digest, l.store, l.size FROM {LINKS} l"
            f" WHERE l.linked_at < $1 AND (l.repository, l.digest) > ($2, $3){extra}"
            f" AND NOT EXISTS (SELECT 1 FROM {REFERENCES} r WHERE r.repository = l.repository"
            "  AND r.blob = l.digest)"
            " ORDER BY l.repository, l.digest LIMIT $4 FOR UPDATE OF l",
            cutoff, after[0], after[1], batch, *args,
        )  # fmt: skip
        if not locked:
            return removed, after, 0
        await catch_up(store.pool)  # after the locks: every committed manifest is now projected
        still = await _unreferenced(uow.conn, locked)
        gone = [row for row in locked if (row["repository"], row["digest"]) in still]
        await uow.conn.execute(  # what apply_to_blob does per event, in one round trip
            f"SELECT count({UNLINK}(r, d)) FROM unnest($1::text[], $2::text[]) AS c(r, d)",
            [row["repository"] for row in gone],
            [row["digest"] for row in gone],
        )
        for row in gone:
            await uow.emit(
                f"bloblink:{row['repository']}@{row['digest']}",
                BlobUnlinked(repository=row["repository"], digest=row["digest"]),
            )
            removed[(row["store"], row["digest"])] = feed_of(row["repository"])
            result.unlinked += 1
            result.feed(feed_of(row["repository"])).unlinked += 1
    last = locked[-1]
    return removed, (last["repository"], last["digest"]), len(locked)


async def _unreferenced(conn: Connection, rows: list[asyncpg.Record]) -> set[tuple[str, str]]:
    found = await conn.fetch(
        "SELECT c.repository, c.digest FROM unnest($1::text[], $2::text[]) AS c(repository, digest)"
        f" WHERE NOT EXISTS (SELECT 1 FROM {REFERENCES} r WHERE r.repository = c.repository"
        "  AND r.blob = c.digest)",
        [r["repository"] for r in rows],
        [r["digest"] for r in rows],
    )
    return {(r["repository"], r["digest"]) for r in found}


async def _delete_all(
    store: EventStore, stores: Stores, cutoff: datetime, feed: str | None, owners: dict[tuple[str, str], str],
    batch: int, result: GcResult, tick: Progress,
) -> None:  # fmt: skip
    """Phase 2 in batches: every unlinked blob (with ``feed``: those whose link went in this
    run, ``owners``, or in the feed's own legacy location)."""
    after = ("", "")
    legacy = Location.legacy(feed).key if feed else None
    while True:
        rows = await store.pool.fetch(
            f"SELECT b.store, b.digest FROM {BLOBS} b"
            " WHERE b.created_at < $1 AND (b.store, b.digest) > ($2, $3)"
            f" AND NOT EXISTS (SELECT 1 FROM {LINKS} l WHERE l.store = b.store AND l.digest = b.digest)"
            + (" AND (b.store = $5 OR (b.store, b.digest) IN (SELECT * FROM unnest($6::text[], $7::text[])))"
               if feed else "")
            + " ORDER BY b.store, b.digest LIMIT $4",
            cutoff, after[0], after[1], batch,
            *((legacy, [s for s, _ in owners], [d for _, d in owners]) if feed else ()),
        )  # fmt: skip
        if not rows:
            return
        after = (rows[-1]["store"], rows[-1]["digest"])
        blobs = [(r["store"], r["digest"]) for r in rows]
        deleted = await _delete_batch(store, stores, blobs, owners, result)
        tick("delete", deleted)
        if len(rows) < batch:
            return


async def _delete_batch(
    store: EventStore, stores: Stores, blobs: list[tuple[str, str]], owners: dict[tuple[str, str], str],
    result: GcResult,
) -> int:  # fmt: skip
    """Delete the content of ``blobs`` that, under their locks, are still recorded and unlinked."""
    async with store.unit_of_work(None, Metadata(actor="system:gc")) as uow:
        await lock_blobs(uow.conn, blobs)
        rows = await uow.conn.fetch(
            f"SELECT b.store, b.digest, b.size FROM {BLOBS} b"
            " JOIN unnest($1::text[], $2::text[]) AS c(store, digest) USING (store, digest)"
            f" WHERE NOT EXISTS (SELECT 1 FROM {LINKS} l WHERE l.store = b.store AND l.digest = b.digest)",
            [s for s, _ in blobs],
            [d for _, d in blobs],
        )
        await uow.conn.execute(  # what apply_to_blob does per event, in one round trip
            f"SELECT count({FORGET_BLOB}(s, d)) FROM unnest($1::text[], $2::text[]) AS c(s, d)",
            [row["store"] for row in rows],
            [row["digest"] for row in rows],
        )
        for row in rows:
            event = BlobDeleted(store=row["store"], digest=row["digest"], size=row["size"])
            await uow.emit(f"blob:{row['store']}@{row['digest']}", event)
        by_store: dict[str, list[str]] = {}
        for row in rows:
            location = Location.parse(row["store"])
            by_store.setdefault(location.store, []).append(location.blob(row["digest"]))
        for name, paths in by_store.items():  # the bytes go before the rows' deletion commits
            await stores.driver(name).delete_objects(paths)
    for row in rows:
        result.deleted += 1
        result.bytes_freed += int(row["size"])
        label = owners.get((row["store"], row["digest"])) or _store_label(row["store"])
        totals = result.feed(label)
        totals.deleted, totals.bytes = totals.deleted + 1, totals.bytes + int(row["size"])
    return len(rows)


async def _dry_run(pool: asyncpg.Pool, cutoff: datetime, feed: str | None, result: GcResult) -> None:
    """Count what phases 1 and 2 would remove now, changing nothing."""
    extra, args = _feed_range(feed, "l.repository", 2)
    links = await pool.fetch(
        f"SELECT l.repository, l.digest, l.store FROM {LINKS} l WHERE l.linked_at < $1{extra}"
        f" AND NOT EXISTS (SELECT 1 FROM {REFERENCES} r"
        "  WHERE r.repository = l.repository AND r.blob = l.digest)",
        cutoff, *args,
    )  # fmt: skip
    for row in links:
        result.unlinked += 1
        result.feed(feed_of(row["repository"])).unlinked += 1
    legacy = Location.legacy(feed).key if feed else None
    blobs = await pool.fetch(
        f"SELECT b.store, b.digest, b.size FROM {BLOBS} b WHERE b.created_at < $1 AND NOT EXISTS"
        f" (SELECT 1 FROM {LINKS} l WHERE l.store = b.store AND l.digest = b.digest"
        "   AND (l.repository, l.digest) NOT IN (SELECT * FROM unnest($2::text[], $3::text[])))"
        + (" AND (b.store = $4 OR (b.store, b.digest) IN (SELECT * FROM unnest($5::text[], $6::text[])))"
           if feed else ""),
        cutoff, [r["repository"] for r in links], [r["digest"] for r in links],
        *((legacy, [r["store"] for r in links], [r["digest"] for r in links]) if feed else ()),
    )  # fmt: skip
    owners = {(r["store"], r["digest"]): feed_of(r["repository"]) for r in links}
    for row in blobs:
        result.deleted += 1
        result.bytes_freed += int(row["size"])
        totals = result.feed(owners.get((row["store"], row["digest"])) or _store_label(row["store"]))
        totals.deleted, totals.bytes = totals.deleted + 1, totals.bytes + int(row["size"])
