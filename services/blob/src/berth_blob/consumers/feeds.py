"""The blob service's reaction to ``FeedDeleted`` (an api event, received from the bus).

When a feed is deleted, every repository link of that feed and every open upload session in
it go too, as events (``BlobUnlinked``, ``UploadCancelled``); garbage collection then reclaims
the content after its grace period. Only the deleted incarnation's links and sessions are
touched (``FeedDeleted.incarnation``; for links recorded before incarnations existed, and for
old events without one, those made before the deletion), so a feed re-created under the same
name keeps what is pushed to it however late this reaction runs. Readers never wait for it:
links and sessions of a deleted incarnation are invisible at once (docs/ARCHITECTURE.md,
"Feed incarnations"). The reaction runs in the consumer's transaction
(``joined_unit_of_work``): its events and the consumer's recorded position commit together, so
its effect is exactly once, like every projection's.
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
from berth_common.events import BlobUnlinked, FeedDeleted, Metadata, UploadCancelled
from berth_common.eventstore import EventContext, Handlers, ProjectionConsumer, joined_unit_of_work
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
    stores: Stores, conn: Connection, event: FeedDeleted, ctx: EventContext
) -> tuple[int, int]:
    """Unlink the feed's links and cancel its sessions older than ``ctx.occurred_at``, in the
    transaction open on ``conn`` (the consumer's: it records its position in the same one).

    The sessions' stored bytes are removed before that transaction commits: they belong to a
    deleted incarnation that no reader can reach, so a transaction that then rolls back only
    leaves sessions whose bytes are gone to be cancelled again (removal is idempotent).
    Returns ``(links removed, sessions cancelled)``.
    """
    meta = Metadata(actor="system:feed-deleted")
    async with joined_unit_of_work(conn, project, meta) as uow:
        links = await uow.conn.fetch(
            "SELECT repository, digest FROM blob.links"
            f" WHERE feed = $1 AND {_OF_INCARNATION % ('linked_at', 'linked_at')}"
            " ORDER BY repository, digest FOR UPDATE",
            event.feed,
            event.incarnation,
            ctx.occurred_at,
        )
        for row in links:
            await uow.emit(BlobUnlinked(repository=row["repository"], digest=row["digest"]))
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
                UploadCancelled(upload_id=row["id"], repository=row["repository"], reason="feed deleted")
            )
            await upload_sessions.forget(uow.conn, row["id"])
        for row in sessions:
            lease = Lease.of_row(row["id"], row)
            await drop_data(stores.driver(lease.location), lease)
    if links or sessions:
        log.info("feed.deleted.cleaned", feed=event.feed, links=len(links), sessions=len(sessions))
    return len(links), len(sessions)


def reactions(stores: Stores) -> Handlers:
    """The blob service's reactions to other services' events, as a projector for its consumer."""
    handlers = Handlers("blob-feeds")

    @handlers.on(FeedDeleted)
    async def _feed_deleted(conn: Connection, event: FeedDeleted, ctx: EventContext) -> None:
        await feed_deleted(stores, conn, event, ctx)

    return handlers


def feed_consumer(pool: asyncpg.Pool, bus: Bus, stores: Stores) -> ProjectionConsumer:
    """The durable consumer of ``feed.deleted`` for the blob service; the reaction appends its
    events in the consumer's own transaction."""
    name = f"{CONSUMER}-{bus.stream}".replace(".", "_")
    return ProjectionConsumer(
        pool, bus, name, "blob.consumer_positions", reactions(stores), checkpoint=CONSUMER
    )
