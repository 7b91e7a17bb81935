"""Rebuilt projections equal the live ones row for row (docs/DESIGN.md §2, ``berth projections rebuild``).

A varied history is driven through the HTTP API of the in-process all-in-one app (tags moved,
manifests deleted by digest and by tag, an index with children, an artifact with a subject,
blobs deleted, a mount, cancelled and open uploads, a feed updated, a feed created and
deleted); then every table of the ``api``, ``blob`` and ``gc`` schemas is snapshotted, every
projection rebuilt from the event store, and the tables compared again.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import asyncpg
import httpx
import nats
import pytest

from berth.ops_cli import rebuild_all
from tests.spec.helpers import (
    OCI_INDEX,
    digest_of,
    index_manifest,
    push_blob,
    push_blob_chunked,
    push_image,
    push_manifest,
    random_blob,
    start_upload,
    to_bytes,
)
from tests.support.berth_app import BerthApp, berth_app
from tests.support.databases import NATS_URL

pytestmark = pytest.mark.integration
SCHEMAS = ("api", "blob", "gc")


async def drive_history(berth: BerthApp) -> None:
    """Many kinds of change through the public HTTP API (each asserts success)."""
    c = berth.client
    for feed in ("alpha", "beta", "gone"):
        await berth.create_feed(feed)
    assert (await c.patch("/api/feeds/beta", json={"description": "second", "public": True})).is_success
    assert (await c.post("/api/feeds", json={"name": "sparse", "allow_sparse": True})).is_success
    assert (await c.patch("/api/feeds/alpha", json={"allow_sparse": True})).is_success
    first = await push_image(c, "alpha/app", "v1")
    moved = await push_image(c, "alpha/app", "v1")  # the tag moves
    await push_image(c, "alpha/app", "latest", annotations={"org.example": "x"})
    assert (await c.delete(f"/v2/alpha/app/manifests/{first.digest}")).status_code == 202
    assert (await c.delete("/v2/alpha/app/manifests/latest")).status_code == 202
    await push_index(c, "alpha/multi")
    await push_image(
        c, "alpha/app", None, artifact_type="application/vnd.example.sbom", subject=moved.descriptor()
    )
    loose = await push_blob_chunked(c, "alpha/app", random_blob(3000), 1000)
    assert (await c.delete(f"/v2/alpha/app/blobs/{loose}")).status_code == 202
    r = await c.post(f"/v2/alpha/other/blobs/uploads/?mount={digest_of(moved.layers[0])}&from=alpha/app")
    assert r.status_code == 201, r.text
    await upload_chunk_then(c, "beta/lib", cancel=True)
    await upload_chunk_then(c, "beta/lib", cancel=False)
    await push_image(c, "gone/img", "v1")
    assert (await c.delete("/api/feeds/gone")).status_code == 204


async def push_index(c: httpx.AsyncClient, repo: str) -> None:
    """Two images by digest and an index of them, tagged ``multi``."""
    children = [await push_image(c, repo) for _ in range(2)]
    platforms = [{"architecture": a, "os": "linux"} for a in ("amd64", "arm64")]
    pairs = zip(children, platforms, strict=True)
    body = to_bytes(index_manifest([im.descriptor(platform=p) for im, p in pairs]))
    assert (await push_manifest(c, repo, "multi", body, OCI_INDEX)).status_code == 201
    await push_blob(c, repo, random_blob(64))  # linked, never referenced


async def upload_chunk_then(c: httpx.AsyncClient, repo: str, *, cancel: bool) -> None:
    """Start an upload, PATCH one chunk, then cancel it (DELETE) or leave it open."""
    location = (await start_upload(c, repo)).headers["location"]
    part = random_blob(100)
    r = await c.patch(
        location,
        content=part,
        headers={"Content-Type": "application/octet-stream", "Content-Range": f"0-{len(part) - 1}"},
    )
    assert r.status_code == 202, r.text
    if cancel:
        assert (await c.delete(r.headers["location"])).status_code == 204


async def snapshot(conn: asyncpg.Connection) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table in ``SCHEMAS``, ordered by all columns."""
    tables = await conn.fetch(
        "SELECT table_schema || '.' || table_name AS t FROM information_schema.tables"
        " WHERE table_schema = ANY($1::text[]) AND table_type = 'BASE TABLE' ORDER BY 1",
        list(SCHEMAS),
    )
    out = {}
    for row in tables:
        records = await conn.fetch(f"SELECT * FROM {row['t']}")
        out[row["t"]] = sorted((tuple(_comparable(v) for v in r.values()) for r in records), key=repr)
    return out


def _comparable(value: Any) -> Any:
    return json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else value


async def gc_caught_up(conn: asyncpg.Connection, stream: str) -> None:
    """Wait until the system is quiescent: the relay has published the last event, every bus
    consumer of ``stream`` (gc's projection, the blob service's reaction to ``feed.deleted``,
    which itself appends events) has nothing pending or unacknowledged and has recorded the
    last event of its types in the store (a type its durable does not receive, gc's
    ``feed.deleted`` on NATS 2.9, comes by catch-up), and no new event appeared meanwhile."""
    bus = await nats.connect(NATS_URL)
    try:
        js = bus.jetstream()
        while True:
            last = await conn.fetchval("SELECT max(position) FROM eventstore.events")
            relayed = (
                await conn.fetchval("SELECT position FROM eventstore.checkpoints WHERE name = 'relay'") or 0
            )
            consumers = await js.consumers_info(stream)
            idle = consumers and all(c.num_pending == 0 and c.num_ack_pending == 0 for c in consumers)
            if relayed >= last and idle and await _recorded_last(conn):
                await asyncio.sleep(0.3)
                if await conn.fetchval("SELECT max(position) FROM eventstore.events") == last:
                    return
            await asyncio.sleep(0.05)
    finally:
        await bus.close()


async def _recorded_last(conn: asyncpg.Connection) -> bool:
    """gc's and the blob feed consumer's positions have reached the last event of their types."""
    from berth_gc.projections.references import CONSUMER, SPEC

    return bool(
        await conn.fetchval(
            "SELECT coalesce((SELECT position FROM gc.consumer_positions WHERE name = $1), 0)"
            " >= coalesce((SELECT max(position) FROM eventstore.events WHERE type = ANY($2::text[])), 0)"
            " AND coalesce((SELECT position FROM blob.consumer_positions WHERE name = 'blob-feeds'), 0)"
            " >= coalesce((SELECT max(position) FROM eventstore.events WHERE type = 'feed.deleted'), 0)",
            CONSUMER,
            list(SPEC.types),
        )
    )


async def test_rebuild_equals_live_projections() -> None:
    async with berth_app() as berth:
        await drive_history(berth)
        dsn = berth.settings.database_url
        assert dsn
        conn = await asyncpg.connect(dsn)
        try:
            await gc_caught_up(conn, berth.settings.nats_stream)
            live = await snapshot(conn)
            assert all(
                live[t]
                for t in (
                    "api.feeds",
                    "api.manifests",
                    "api.tags",
                    "blob.links",
                    "blob.uploads",
                    "gc.blob_references",
                )
            ), live
            results = dict(await rebuild_all(dsn))
            assert set(results) >= {"api", "blob", "gc"} and all(results.values())
            assert await snapshot(conn) == live
            proc = await asyncio.create_subprocess_exec(
                "uv",
                "run",
                "berth",
                "projections",
                "rebuild",
                env={**os.environ, "BERTH_DATABASE_URL": dsn},
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await proc.communicate()
            assert proc.returncode == 0, err.decode()
            assert b"api:" in out and b"events applied" in out
            assert await snapshot(conn) == live
        finally:
            await conn.close()


async def test_rebuild_with_an_unknown_event_type_raises_and_changes_nothing() -> None:
    """A stored event of a type this code does not know fails the rebuild loudly (before, a
    projector's separate ``TYPES`` list could skip an event silently); the old rows stay."""
    from berth_common.events import FeedDeleted
    from berth_common.events.catalogue import UnknownEventType
    from berth_common.eventstore import EventStore, Handlers, ProjectionSpec, rebuild
    from tests.support.databases import eventstore_pool

    handlers = Handlers("t")

    @handlers.on(FeedDeleted)
    async def _deleted(conn: Any, event: FeedDeleted, ctx: Any) -> None:
        await conn.execute("INSERT INTO t(feed) VALUES ($1)", event.feed)

    async with eventstore_pool(setup_sql="CREATE TABLE t(feed text)") as pool:
        async with EventStore(pool).unit_of_work(handlers) as uow:
            await uow.emit(FeedDeleted(feed="a"))
        await pool.execute(
            "INSERT INTO eventstore.events(stream, version, type, schema_version, payload, metadata,"
            " event_id, recorded_at) VALUES ('x:1', 1, 'nonsense.happened', 1, '{}', '{}',"
            " gen_random_uuid(), now())"
        )
        spec = ProjectionSpec(name="t", tables=["t"], projector=handlers)
        with pytest.raises(UnknownEventType, match=r"nonsense\.happened"):
            await rebuild(pool, spec)
        assert await pool.fetchval("SELECT array_agg(feed) FROM t") == ["a"]
