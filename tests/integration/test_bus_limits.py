"""The bus limit is a tested property (issue 9, §2): the largest manifest Berth accepts flows
through the relay and every consumer.

A manifest of exactly ``uploads.max_manifest_bytes`` (4 MiB) listing as many descriptors as
fit (37,448; its ``manifest.pushed`` event is about 7 MB of JSON, over NATS's 1 MiB
``max_payload``) is pushed over HTTP. The relay publishes it without its payload and goes on;
gc's references projection reads it from the event store and records every reference;
``berth events tail`` prints it; deleting the feed then goes through the blob service's
feed consumer (one unlink per link) and gc's projection. Live projections equal a rebuild.
The blobs are linked by the blob service's own projector with ``blob.linked`` events, as its
upload path does, without content: 37,000 HTTP uploads would test uploads, not the bus.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os

import asyncpg
import nats.js.errors
import pytest

from berth_blob.domain.feeds import require_feed
from berth_blob.projections.tables import project as blob_project
from berth_common.bus import Bus
from berth_common.events import BlobLinked
from berth_common.eventstore import EventStore, rebuild
from berth_common.oci.reference import RepositoryName
from berth_common.settings import Settings
from berth_gc.projections.references import CONSUMER
from berth_gc.projections.references import SPEC as GC_SPEC
from tests.spec.helpers import OCI_MANIFEST, push_manifest
from tests.support.berth_app import berth_app
from tests.support.tasks import until

pytestmark = pytest.mark.integration
MAX_MANIFEST = Settings().uploads.max_manifest_bytes
LINKS_PER_TRANSACTION = 5000


def digest(i: int) -> str:
    return "sha256:" + hashlib.sha256(f"blob {i}".encode()).hexdigest()


def descriptor(i: int) -> bytes:
    """The smallest valid descriptor: a one-byte blob of media type ``a/b``."""
    return b'{"mediaType":"a/b","digest":"%s","size":1}' % digest(i).encode()


def largest_manifest() -> tuple[bytes, list[str]]:
    """An OCI image manifest of exactly ``MAX_MANIFEST`` bytes with as many layers as fit
    (padded to the byte by an annotation); returns it and its blobs (config first)."""
    head = b'{"schemaVersion":2,"mediaType":"%s","config":%s,"layers":[' % (
        OCI_MANIFEST.encode(),
        descriptor(0),
    )
    tail = b'],"annotations":{"p":"%s"}}'
    room = MAX_MANIFEST - len(head) - len(tail % b"")
    count = (room + 1) // (len(descriptor(1)) + 1)
    layers = b",".join(descriptor(i) for i in range(1, count + 1))
    body = head + layers + tail % (b"x" * (room - len(layers)))
    assert len(body) == MAX_MANIFEST
    return body, [digest(i) for i in range(count + 1)]


async def link(store: EventStore, repository: str, blobs: list[str]) -> None:
    """Link ``blobs`` to ``repository`` in its feed's current incarnation and store."""
    async with store.pool.acquire() as conn:
        feed = await require_feed(conn, RepositoryName.parse(repository))
    for start in range(0, len(blobs), LINKS_PER_TRANSACTION):
        async with store.unit_of_work(blob_project) as uow:
            for d in blobs[start : start + LINKS_PER_TRANSACTION]:
                linked = BlobLinked(
                    repository=repository,
                    digest=d,
                    size=1,
                    incarnation=feed.incarnation,
                    store=feed.location.key,
                )
                await uow.emit(f"bloblink:{repository}@{d}", linked)


async def gc_at(pool: asyncpg.Pool, position: int) -> bool:
    seen = await pool.fetchval("SELECT position FROM gc.consumer_positions WHERE name = $1", CONSUMER)
    return (seen or 0) >= position


async def tail(settings: Settings, last: int) -> str:
    """``berth events tail --last N`` against this Berth's NATS stream and database."""
    env = {
        **os.environ,
        "BERTH_NATS_URL": settings.nats_url or "",
        "BERTH_NATS_STREAM": settings.nats_stream,
        "BERTH_DATABASE_URL": settings.database_url or "",
    }
    proc = await asyncio.create_subprocess_exec(
        "uv", "run", "berth", "events", "tail", "--last", str(last),
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return out.decode()


@pytest.mark.timeout(900)  # ~35 s alone; minutes on a machine busy with other work
async def test_the_largest_manifest_flows_through_relay_and_every_consumer() -> None:
    body, blobs = largest_manifest()
    assert len(blobs) > 37_000
    async with berth_app() as berth:
        resources = berth.app.state.resources
        pool, store, bus = resources.pool, resources.store, resources.bus
        await berth.create_feed("big")
        await link(store, "big/img", blobs)
        r = await push_manifest(berth.client, "big/img", "v1", body, OCI_MANIFEST)
        assert r.status_code == 201, r.text
        pushed = await pool.fetchval(
            "SELECT max(position) FROM eventstore.events WHERE type = 'manifest.pushed'"
        )
        await until(lambda: gc_at(pool, pushed))
        manifest = r.headers["docker-content-digest"]
        rows = await pool.fetch("SELECT manifest, blob FROM gc.blob_references WHERE repository = 'big/img'")
        assert {(r["manifest"], r["blob"]) for r in rows} == {(manifest, b) for b in blobs}

        # gc's consumer may have applied the event by catching up from the event store (the
        # store is the record, the bus the doorbell) before the relay published it: wait for
        # the relay's message itself
        await until(lambda: _published(bus, "manifest.pushed"))
        msg = await bus.js.get_msg(bus.stream, subject=f"{bus.prefix}.manifest.pushed")
        envelope = json.loads(msg.data or b"")
        assert envelope["position"] == pushed and envelope["payload_omitted"] is True
        assert len(msg.data or b"") <= bus.message_limit

        lines = [line for line in (await tail(berth.settings, 5)).splitlines() if "manifest.pushed" in line]
        assert len(lines) == 1 and "big/img" in lines[0] and manifest in lines[0]
        assert f"{len(blobs)} items" in lines[0]

        assert (await berth.client.delete("/api/feeds/big")).status_code == 204
        deleted = await pool.fetchval(
            "SELECT max(position) FROM eventstore.events WHERE type = 'feed.deleted'"
        )
        await until(lambda: gc_at(pool, deleted))
        await until(lambda: _unlinked(pool, "big"))
        assert await pool.fetchval("SELECT count(*) FROM gc.blob_references") == 0
        assert await pool.fetchval(
            "SELECT count(*) FROM eventstore.events WHERE type = 'blob.unlinked'"
        ) == len(blobs)
        await rebuild(pool, GC_SPEC)
        assert await pool.fetchval("SELECT count(*) FROM gc.blob_references") == 0


async def _published(bus: Bus, event_type: str) -> bool:
    """Whether the stream holds a message of ``event_type``."""
    try:
        await bus.js.get_msg(bus.stream, subject=f"{bus.prefix}.{event_type}")
    except nats.js.errors.NotFoundError:
        return False
    return True


async def _unlinked(pool: asyncpg.Pool, feed: str) -> bool:
    return not await pool.fetchval("SELECT count(*) FROM blob.links WHERE feed = $1", feed)
