"""``gc.blob_references`` live equals its rebuild, row for row (issue 9, §4).

Two causes made them differ after chaos runs: (1) an instance that fetched a batch of
messages and died left them unacknowledged; JetStream delivered the later messages to the
next instance first, which applied them and then skipped the early ones as redeliveries (their
positions were below its own) — pushes and deletions were lost; (2) the projection ignored
``feed.deleted``, so a deleted feed's rows stayed forever (the api drops a feed's manifests
with the feed, without a ``manifest.deleted`` each). The relay and the gc consumer are run here
by hand, on a bus of their own, against an in-process Berth with real HTTP pushes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest

from berth_common.bus import Bus, connect_bus
from berth_common.eventstore import OutboxRelay, rebuild
from berth_gc.app import references_consumer
from berth_gc.projections.references import CONSUMER, SPEC
from tests.spec.helpers import Image, push_image
from tests.support.berth_app import BerthApp, berth_app
from tests.support.databases import NATS_URL, delete_stream, unique
from tests.support.tasks import running, until

pytestmark = pytest.mark.integration
Rows = set[tuple[str, str, str]]


@dataclass
class World:
    berth: BerthApp
    pool: asyncpg.Pool
    bus: Bus


@pytest.fixture
async def world() -> AsyncIterator[World]:
    """Berth without a bus of its own (no relay, no consumers), and a bus for the test."""
    stream = unique("BERTH_GCREF_")
    async with berth_app(with_bus=False) as berth:
        bus = await connect_bus(NATS_URL, stream, stream.lower(), catch_up_seconds=0.2)
        try:
            yield World(berth, berth.app.state.resources.pool, bus)
        finally:
            await bus.close()
            await delete_stream(stream)


async def references(pool: asyncpg.Pool) -> Rows:
    rows = await pool.fetch("SELECT repository, manifest, blob FROM gc.blob_references")
    return {(r["repository"], r["manifest"], r["blob"]) for r in rows}


def rows_of(repository: str, image: Image) -> Rows:
    from tests.spec.helpers import digest_of

    return {(repository, image.digest, digest_of(b)) for b in [image.config, *image.layers]}


async def caught_up(pool: asyncpg.Pool) -> bool:
    """gc's recorded position has reached the last event of its types."""
    last = await pool.fetchval(
        "SELECT coalesce(max(position), 0) FROM eventstore.events WHERE type = ANY($1::text[])",
        list(SPEC.types),
    )
    seen = await pool.fetchval("SELECT position FROM gc.consumer_positions WHERE name = $1", CONSUMER)
    return bool((seen or 0) >= last)


async def assert_live_equals_rebuilt(pool: asyncpg.Pool) -> Rows:
    live = await references(pool)
    await rebuild(pool, SPEC)
    assert await references(pool) == live
    return live


async def test_feed_deletion_removes_its_references_live_and_rebuilt(world: World) -> None:
    """Feed deleted, re-created, pushed to, a manifest deleted: only the new incarnation's
    rows remain, live and rebuilt (before: the old feed's rows stayed, in both)."""
    c = world.berth.client
    for feed in ("fr", "keep"):
        await world.berth.create_feed(feed)
    old = await push_image(c, "fr/img", "v1")
    kept = await push_image(c, "keep/img", "v1")
    assert (await c.delete("/api/feeds/fr")).status_code == 204
    await world.berth.create_feed("fr")
    new = await push_image(c, "fr/img", "v2")
    gone = await push_image(c, "fr/other", "x")
    assert (await c.delete(f"/v2/fr/other/manifests/{gone.digest}")).status_code == 202
    relay, consumer = OutboxRelay(world.pool, world.bus), references_consumer(world.pool, world.bus)
    async with running(relay.run()), running(consumer.run()):
        await until(lambda: caught_up(world.pool))
    live = await assert_live_equals_rebuilt(world.pool)
    assert live == rows_of("keep/img", kept) | rows_of("fr/img", new)
    assert not live & rows_of("fr/img", old)


async def test_an_instance_that_died_with_a_fetched_batch_loses_nothing(world: World) -> None:
    """The chaos-run difference, reproduced: the dead instance fetched every message of the
    gc durable but the last and never acknowledged them; the heir is delivered the last one
    first and must still apply all, in order (before: the pushes were lost)."""
    c = world.berth.client
    await world.berth.create_feed("chaos")
    images = [await push_image(c, f"chaos/img{i % 2}", f"t{i}") for i in range(4)]
    deleted = images[1]
    assert (await c.delete(f"/v2/chaos/img1/manifests/{deleted.digest}")).status_code == 202
    relay = OutboxRelay(world.pool, world.bus)
    while await relay.relay_once():
        pass
    dead = references_consumer(world.pool, world.bus)
    sub = await dead._subscribe()
    pending = (await world.bus.js.consumer_info(world.bus.stream, dead.name)).num_pending
    assert len(await sub.fetch(pending - 1, timeout=5)) == pending - 1  # all but the last
    await sub.unsubscribe()  # then it died: nothing acknowledged
    async with running(references_consumer(world.pool, world.bus).run()):
        await until(lambda: caught_up(world.pool))
    live = await assert_live_equals_rebuilt(world.pool)
    want: Rows = set()
    for i, image in enumerate(images):
        if image is not deleted:
            want |= rows_of(f"chaos/img{i % 2}", image)
    assert live == want
