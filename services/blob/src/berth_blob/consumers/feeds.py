"""The blob service's reaction to ``FeedDeleted`` (an api event, received from the bus).

When a feed is deleted, every repository link of that feed and every open upload session in
it go too, as events (``BlobUnlinked``, ``UploadCancelled``); garbage collection then reclaims
the content after its grace period. Only the deleted incarnation's links and sessions are
touched (``FeedDeleted.incarnation``; for links recorded before incarnations existed, and for
old events without one, those made before the deletion), so a feed re-created under the same
name keeps what is pushed to it however late this reaction runs. Readers never wait for it:
links and sessions of a deleted incarnation are invisible at once (docs/ARCHITECTURE.md,
"Feed incarnations"). The reaction is idempotent — a redelivered event finds
nothing left to do — so it runs in its own transaction, at least once.
"""

from __future__ import annotations

from typing import Final

import asyncpg
import structlog

from berth_blob.domain import sessions as upload_sessions
from berth_blob.domain.commit import drop_data
from berth_blob.domain.sessions import Lease
from berth_blob.projections.tables import project
from berth_common.bus import Bus
from berth_common.db import Connection
from berth_common.events import BlobUnlinked, Event, FeedDeleted, Metadata, UploadCancelled
from berth_common.eventstore import EventContext, EventStore, ProjectionConsumer
from berth_common.storage import Stores

CONSUMER: Final = "blob-feeds"
# Rows of the deleted incarnation ($2), or — without one ($2 NULL: an old event), and for rows
# recorded before incarnations existed — rows made before the deletion ($3). %s: the time column.
_OF_INCARNATION = (
    "CASE WHEN $2::uuid IS NULL THEN %s <= $3"
    " ELSE (incarnation = $2::uuid OR (incarnation IS NULL AND %s <= $3)) END"
)
log = structlog.get_logger("berth.blob.feeds")


async def feed_deleted(
    store: EventStore, stores: Stores, event: FeedDeleted, ctx: EventContext
) -> tuple[int, int]:
    """Unlink the feed's links and cancel its sessions older than ``ctx.occurred_at``.

    Returns ``(links removed, sessions cancelled)``.
    """
    meta = Metadata(actor="system:feed-deleted")
    async with store.unit_of_work(project, meta) as uow:
        links = await uow.conn.fetch(
            "SELECT repository, digest FROM blob.links"
            f" WHERE feed = $1 AND {_OF_INCARNATION % ('linked_at', 'linked_at')}"
            " ORDER BY repository, digest FOR UPDATE",
            event.feed,
            event.incarnation,
            ctx.occurred_at,
        )
        for row in links:
            await uow.emit(
                f"bloblink:{row['repository']}@{row['digest']}",
                BlobUnlinked(repository=row["repository"], digest=row["digest"]),
            )
        sessions = await uow.conn.fetch(
            "SELECT u.id::text AS id, u.repository, u.store, s.size, s.writer, s.generation"
            " FROM blob.uploads u JOIN blob.upload_state s ON s.id = u.id"
            f" WHERE u.feed = $1 AND {_OF_INCARNATION % ('u.started_at', 'u.started_at')}"
            " ORDER BY u.id FOR UPDATE OF u, s",
            event.feed,
            event.incarnation,
            ctx.occurred_at,
        )
        for row in sessions:
            await uow.emit(
                f"upload:{row['id']}",
                UploadCancelled(upload_id=row["id"], repository=row["repository"], reason="feed deleted"),
            )
            await upload_sessions.forget(uow.conn, row["id"])
    for row in sessions:
        lease = Lease.of_row(row["id"], row)
        await drop_data(stores.driver(lease.location), lease)
    if links or sessions:
        log.info("feed.deleted.cleaned", feed=event.feed, links=len(links), sessions=len(sessions))
    return len(links), len(sessions)


def feed_consumer(pool: asyncpg.Pool, bus: Bus, store: EventStore, stores: Stores) -> ProjectionConsumer:
    """The durable consumer of ``feed.deleted`` for the blob service."""

    async def apply(conn: Connection, event: Event, ctx: EventContext) -> None:
        if isinstance(event, FeedDeleted):
            await feed_deleted(store, stores, event, ctx)

    name = f"{CONSUMER}-{bus.stream}".replace(".", "_")
    return ProjectionConsumer(
        pool, bus, name, "blob.consumer_positions", apply, ["feed.deleted"], checkpoint=CONSUMER
    )
