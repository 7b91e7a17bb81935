"""The gc service's reference projection, applied from the bus by a durable consumer."""

from __future__ import annotations

from berth_common.db import Connection
from berth_common.events import Event, ManifestDeleted, ManifestPushed
from berth_common.eventstore import EventContext, ProjectionSpec

TABLES = ("gc.blob_references",)
TYPES = ("manifest.pushed", "manifest.deleted")
CONSUMER = "gc-references"


async def project(conn: Connection, event: Event, ctx: EventContext) -> None:
    """Record (or forget) the blobs a manifest references."""
    match event:
        case ManifestPushed():
            rows = [(event.repository, event.digest, b) for b in dict.fromkeys(event.blobs)]
            if rows:
                await conn.executemany(
                    "INSERT INTO gc.blob_references(repository, manifest, blob) VALUES ($1, $2, $3)"
                    " ON CONFLICT DO NOTHING",
                    rows,
                )
        case ManifestDeleted():
            await conn.execute(
                "DELETE FROM gc.blob_references WHERE repository = $1 AND manifest = $2",
                event.repository,
                event.digest,
            )
        case _:
            pass


SPEC = ProjectionSpec(
    name="gc", tables=TABLES, projector=project, types=TYPES, checkpoint=("gc.consumer_positions", CONSUMER)
)
