"""The gc service's reference projection, applied from the bus by a durable consumer.

``gc.blob_references`` holds ``(repository, manifest, blob)`` for every manifest of every
existing feed: ``manifest.pushed`` adds a manifest's blobs, ``manifest.deleted`` removes them,
and ``feed.deleted`` removes every row of the feed's repositories (the api deletes a feed's
manifests with the feed, without a ``manifest.deleted`` each). Applied in position order, live
and by ``berth projections rebuild`` alike, so a feed deleted and re-created keeps only what
was pushed to the new one.
"""

from __future__ import annotations

from berth_common.db import Connection
from berth_common.events import FeedDeleted, ManifestCached, ManifestDeleted, ManifestPushed
from berth_common.eventstore import EventContext, Handlers, ProjectionSpec

TABLES = ("gc.blob_references",)
CONSUMER = "gc-references"
project = Handlers("gc")
"""Record (or forget) the blobs a manifest references; forget a deleted feed's."""


@project.on(ManifestPushed, ManifestCached)  # a connector's manifest references its blobs too
async def _manifest_pushed(conn: Connection, event: ManifestPushed, ctx: EventContext) -> None:
    rows = [(event.repository, event.digest, b) for b in dict.fromkeys(event.blobs)]
    if rows:
        await conn.executemany(
            "INSERT INTO gc.blob_references(repository, manifest, blob) VALUES ($1, $2, $3)"
            " ON CONFLICT DO NOTHING",
            rows,
        )


@project.on(ManifestDeleted)
async def _manifest_deleted(conn: Connection, event: ManifestDeleted, ctx: EventContext) -> None:
    await conn.execute(
        "DELETE FROM gc.blob_references WHERE repository = $1 AND manifest = $2",
        event.repository,
        event.digest,
    )


@project.on(FeedDeleted)
async def _feed_deleted(conn: Connection, event: FeedDeleted, ctx: EventContext) -> None:
    # Repositories of feed f are "f/…": in C collation the range ["f/", "f0") of the
    # primary key ('0' follows '/'), one index range scan.
    await conn.execute(
        "DELETE FROM gc.blob_references WHERE repository >= $1 AND repository < $2",
        f"{event.feed}/",
        f"{event.feed}0",
    )


BUS_TYPES = (ManifestPushed.type_name, ManifestCached.type_name, ManifestDeleted.type_name)
"""The durable's filter where NATS takes one filter subject (2.9): ``feed.deleted`` is rare
and comes by catch-up there."""

SPEC = ProjectionSpec(
    name="gc", tables=TABLES, projector=project, checkpoint=("gc.consumer_positions", CONSUMER)
)
