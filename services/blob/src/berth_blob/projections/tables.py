"""The blob service's projector: the only code that writes its tables (docs/DESIGN.md §2)."""

from __future__ import annotations

from berth_common.db import Connection
from berth_common.events import (
    BlobCached,
    BlobDeleted,
    BlobLinked,
    BlobMounted,
    BlobUnlinked,
    ChunkReceived,
    UploadCancelled,
    UploadCompleted,
    UploadExpired,
    UploadStarted,
)
from berth_common.eventstore import EventContext, Handlers, ProjectionSpec

TABLES = ("blob.uploads", "blob.blobs", "blob.links")


def feed_of(repository: str) -> str:
    """The feed of ``feed/image``."""
    return repository.split("/", 1)[0]


project = Handlers("blob")
"""Apply an event to the blob tables; its handlers name the types it consumes."""


@project.on(UploadStarted)
async def _upload_started(conn: Connection, event: UploadStarted, ctx: EventContext) -> None:
    await conn.execute(
        "INSERT INTO blob.uploads(id, repository, feed, size, started_at, updated_at, incarnation,"
        " store) VALUES ($1, $2, $3, 0, $4, $4, $5, $6)",
        event.upload_id,
        event.repository,
        feed_of(event.repository),
        ctx.occurred_at,
        event.incarnation,
        event.store,
    )


@project.on(ChunkReceived)
async def _chunk_received(conn: Connection, event: ChunkReceived, ctx: EventContext) -> None:
    await conn.execute(
        "UPDATE blob.uploads SET size = $2, updated_at = $3 WHERE id = $1",
        event.upload_id,
        event.offset + event.length,
        ctx.occurred_at,
    )


@project.on(UploadCompleted)
async def _upload_completed(conn: Connection, event: UploadCompleted, ctx: EventContext) -> None:
    await conn.execute(  # one round trip: the session goes, the content is recorded
        "WITH done AS (DELETE FROM blob.uploads WHERE id = $1)"
        " INSERT INTO blob.blobs(store, digest, size, created_at) VALUES ($2, $3, $4, $5)"
        " ON CONFLICT (store, digest) DO NOTHING",
        event.upload_id,
        event.store,
        event.digest,
        event.size,
        ctx.occurred_at,
    )


@project.on(UploadCancelled, UploadExpired)
async def _upload_ended(conn: Connection, event: UploadCancelled | UploadExpired, ctx: EventContext) -> None:
    await conn.execute("DELETE FROM blob.uploads WHERE id = $1", event.upload_id)


@project.on(BlobLinked, BlobMounted, BlobCached)  # BlobCached: a link with an origin
async def _linked(conn: Connection, event: BlobLinked | BlobMounted, ctx: EventContext) -> None:
    if isinstance(event, BlobCached):
        await conn.execute(  # the content is in the store, as after UploadCompleted
            "INSERT INTO blob.blobs(store, digest, size, created_at) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (store, digest) DO NOTHING",
            event.store,
            event.digest,
            event.size,
            ctx.occurred_at,
        )
    await conn.execute(
        "INSERT INTO blob.links(repository, digest, feed, size, linked_at, incarnation, store,"
        " origin) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (repository, digest)"
        " DO UPDATE SET linked_at = GREATEST(blob.links.linked_at, EXCLUDED.linked_at),"
        " incarnation = EXCLUDED.incarnation, store = EXCLUDED.store,"  # a new feed life
        " origin = EXCLUDED.origin",  # pushed again: local; cached again: its origin
        event.repository,
        event.digest,
        feed_of(event.repository),
        event.size,
        ctx.occurred_at,
        event.incarnation,
        event.store,
        event.origin if isinstance(event, BlobCached) else None,
    )


@project.on(BlobUnlinked)
async def _unlinked(conn: Connection, event: BlobUnlinked, ctx: EventContext) -> None:
    await conn.execute(
        "DELETE FROM blob.links WHERE repository = $1 AND digest = $2", event.repository, event.digest
    )


@project.on(BlobDeleted)
async def _deleted(conn: Connection, event: BlobDeleted, ctx: EventContext) -> None:
    await conn.execute("DELETE FROM blob.blobs WHERE store = $1 AND digest = $2", event.store, event.digest)


SPEC = ProjectionSpec(name="blob", tables=TABLES, projector=project)
