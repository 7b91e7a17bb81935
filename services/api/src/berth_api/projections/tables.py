"""The api service's projector: the only code that writes its tables (docs/DESIGN.md §2).

Called in the same transaction as the append (live) and by ``berth projections rebuild``.
Uses only the event and its context (never ``now()``), so a rebuild gives the same rows.
"""

from __future__ import annotations

import json
from typing import Any

from berth_common.db import Connection
from berth_common.events import (
    ConnectorAdded,
    ConnectorRemoved,
    FeedCreated,
    FeedDeleted,
    FeedUpdated,
    ManifestCached,
    ManifestDeleted,
    ManifestPushed,
    TagDeleted,
    TagUpdated,
)
from berth_common.eventstore import EventContext, Handlers, ProjectionSpec

TABLES = (
    "api.feeds",
    "api.feed_connectors",
    "api.repositories",
    "api.manifests",
    "api.manifest_references",
    "api.tags",
)
project = Handlers("api")
"""Apply an event to the api tables; its handlers name the types it consumes."""


@project.on(FeedCreated)
async def _feed_created(conn: Connection, event: FeedCreated, ctx: EventContext) -> None:
    await conn.execute(
        "INSERT INTO api.feeds(name, description, public, storage, allow_sparse, created_at,"
        " incarnation) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        event.feed,
        event.description,
        event.public,
        event.storage,
        event.allow_sparse,
        ctx.occurred_at,
        ctx.event_id,  # the incarnation: this creation's event id (same in a rebuild)
    )


@project.on(FeedDeleted)
async def _feed_deleted(conn: Connection, event: FeedDeleted, ctx: EventContext) -> None:
    await conn.execute("DELETE FROM api.feeds WHERE name = $1", event.feed)


@project.on(ConnectorRemoved)
async def _connector_removed(conn: Connection, event: ConnectorRemoved, ctx: EventContext) -> None:
    await conn.execute("DELETE FROM api.feed_connectors WHERE id = $1", event.connector_id)


@project.on(ManifestDeleted)
async def _manifest_deleted(conn: Connection, event: ManifestDeleted, ctx: EventContext) -> None:
    await conn.execute(
        "DELETE FROM api.manifests WHERE repository = $1 AND digest = $2",
        event.repository,
        event.digest,
    )


@project.on(TagUpdated)
async def _tag_updated(conn: Connection, event: TagUpdated, ctx: EventContext) -> None:
    await conn.execute(
        "INSERT INTO api.tags(repository, tag, digest, updated_at, updated_by, origin)"
        " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (repository, tag) DO UPDATE SET"
        " digest = excluded.digest, updated_at = excluded.updated_at,"
        " updated_by = excluded.updated_by, origin = excluded.origin",
        event.repository,
        event.tag,
        event.digest,
        ctx.occurred_at,
        ctx.actor,
        event.origin,
    )


@project.on(TagDeleted)
async def _tag_deleted(conn: Connection, event: TagDeleted, ctx: EventContext) -> None:
    await conn.execute("DELETE FROM api.tags WHERE repository = $1 AND tag = $2", event.repository, event.tag)


@project.on(FeedUpdated)
async def _update_feed(conn: Connection, event: FeedUpdated, ctx: EventContext) -> None:
    allowed = {"description", "public", "storage", "allow_sparse"}
    for key, value in event.changes.items():
        if key in allowed:
            await conn.execute(f"UPDATE api.feeds SET {key} = $2 WHERE name = $1", event.feed, value)


@project.on(ConnectorAdded)
async def _connector_added(conn: Connection, event: ConnectorAdded, ctx: EventContext) -> None:
    """The new connector goes after the feed's others (the order of the events, also in a rebuild)."""
    await conn.execute(
        "INSERT INTO api.feed_connectors(id, feed, position, url, username, password_encrypted,"
        " namespace, tag_ttl_seconds, cache, added_at) SELECT $1, $2,"
        " coalesce((SELECT max(position) FROM api.feed_connectors WHERE feed = $2), 0) + 1,"
        " $3, $4, $5, $6, $7, $8, $9",
        event.connector_id,
        event.feed,
        event.url,
        event.username,
        event.password_encrypted,
        event.namespace,
        event.tag_ttl_seconds,
        event.cache,
        ctx.occurred_at,
    )


@project.on(ManifestPushed, ManifestCached)  # a cached one carries its origin
async def _manifest_pushed(conn: Connection, event: ManifestPushed, ctx: EventContext) -> None:
    feed = event.repository.split("/", 1)[0]
    await conn.execute(
        "INSERT INTO api.repositories(name, feed, created_at) VALUES ($1, $2, $3)"
        " ON CONFLICT (name) DO NOTHING",
        event.repository,
        feed,
        ctx.occurred_at,
    )
    await conn.execute(
        "INSERT INTO api.manifests(repository, digest, media_type, size, body, artifact_type,"
        " subject, annotations, pushed_at, origin) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        event.repository,
        event.digest,
        event.media_type,
        event.size,
        event.body.encode(),
        event.artifact_type,
        event.subject,
        _annotations(event.body),
        ctx.occurred_at,
        event.origin if isinstance(event, ManifestCached) else None,
    )
    refs = [(r, "blob") for r in dict.fromkeys(event.blobs)]
    refs += [(r, "manifest") for r in dict.fromkeys(event.manifests)]
    if refs:
        await conn.executemany(
            "INSERT INTO api.manifest_references(repository, digest, reference, kind)"
            " VALUES ($1, $2, $3, $4)",
            [(event.repository, event.digest, ref, kind) for ref, kind in refs],
        )


def _annotations(body: str) -> dict[str, Any] | None:
    value = json.loads(body).get("annotations")
    return value if isinstance(value, dict) and value else None


SPEC = ProjectionSpec(name="api", tables=TABLES, projector=project)
