"""The bus recovers from losing its stream without a restart of Berth (issue 9, §4).

NATS restarted with an empty store, or the stream deleted under a running relay and consumer:
the relay makes the stream again (same configuration) and goes on from its checkpoint;
consumers make their durables again and catch up from the event store what the lost stream
held. Every event ends up applied once, in order. ``sync_checkpoint`` is not confused by the
new, empty stream.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from berth_common.bus import Bus, connect_bus
from berth_common.eventstore import EventStore, OutboxRelay, ProjectionConsumer
from berth_common.eventstore.relay import checkpoint
from tests.integration.test_consumer import position, project
from tests.integration.test_consumer_catchup import append_updates
from tests.integration.test_relay import stream_messages
from tests.support.databases import NATS_URL, delete_stream, eventstore_pool, unique
from tests.support.nats_server import PrivateNats
from tests.support.net import free_port
from tests.support.tasks import running, until

pytestmark = pytest.mark.integration
TYPES = ("feed.updated",)


@pytest.fixture
async def pool() -> AsyncIterator[asyncpg.Pool]:
    async with eventstore_pool(
        setup_sql=(
            "CREATE TABLE positions (name text PRIMARY KEY, position bigint NOT NULL);"
            "CREATE TABLE applied (n serial, event_id uuid PRIMARY KEY, stream text,"
            " actor text, occurred_at timestamptz, changes jsonb)"
        )
    ) as p:
        yield p


async def applied(pool: asyncpg.Pool) -> list[Any]:
    return [json.loads(r["changes"])["i"] for r in await pool.fetch("SELECT changes FROM applied ORDER BY n")]


async def at_last(pool: asyncpg.Pool, store: EventStore, name: str) -> bool:
    last = (await store.read_all(0, 100_000))[-1].position
    return (await position(pool, name) or 0) >= last


async def published_through_last(pool: asyncpg.Pool, bus: Bus) -> bool:
    """The stream's last message is the store's last event."""
    last = await pool.fetchval("SELECT max(position) FROM eventstore.events")
    try:
        messages = await stream_messages(bus)
    except Exception:
        return False
    return bool(messages) and messages[-1]["envelope"]["position"] == last


async def test_stream_deleted_under_a_running_relay_and_consumer(pool: asyncpg.Pool) -> None:
    store, stream, name = EventStore(pool), unique("BERTH_LOST_"), unique("c_")
    bus = await connect_bus(NATS_URL, stream, stream.lower(), catch_up_seconds=0.2)
    relay = OutboxRelay(pool, bus, poll_seconds=0.05)
    consumer = ProjectionConsumer(pool, bus, name, "positions", project, TYPES)
    try:
        async with running(relay.run()), running(consumer.run()):
            await append_updates(store, range(3))
            await until(lambda: at_last(pool, store, name))
            await bus.js.delete_stream(stream)  # the durable goes with it
            await append_updates(store, range(3, 6))
            await until(lambda: at_last(pool, store, name))
            await until(lambda: published_through_last(pool, bus))
            await append_updates(store, range(6, 8))  # the new durable delivers these
            await until(lambda: at_last(pool, store, name))
        assert await applied(pool) == list(range(8))
        assert consumer.durables_made >= 1
        info = await bus.js.consumer_info(stream, name)
        assert info.num_pending == 0 and info.delivered.stream_seq >= 2
        positions = [m["envelope"]["position"] for m in await stream_messages(bus)]
        assert positions == sorted(set(positions))  # once each, in order, in the new stream
    finally:
        await bus.close()
        await delete_stream(stream)


async def test_nats_restarted_with_an_empty_store(pool: asyncpg.Pool) -> None:
    """Before, the relay retried ``NotFoundError`` every 30 s and the consumer logged
    ``ServiceUnavailableError`` until Berth was restarted."""
    store, name = EventStore(pool), unique("c_")
    with tempfile.TemporaryDirectory(prefix="berth-nats-") as tmp:
        server = PrivateNats(Path(tmp), free_port())
        server.start()
        bus = await connect_bus(server.url, "BERTH_EMPTIED", "emptied", catch_up_seconds=0.2)
        relay = OutboxRelay(pool, bus, poll_seconds=0.05)
        consumer = ProjectionConsumer(pool, bus, name, "positions", project, TYPES)
        try:
            async with running(relay.run()), running(consumer.run()):
                await append_updates(store, range(3))
                await until(lambda: at_last(pool, store, name))
                server.stop()
                server.wipe()
                await append_updates(store, range(3, 5))
                server.start()
                await until(lambda: at_last(pool, store, name))
                await until(lambda: published_through_last(pool, bus))
                await append_updates(store, range(5, 7))
                await until(lambda: at_last(pool, store, name))
            assert await applied(pool) == list(range(7))
            assert consumer.durables_made >= 1
            await bus.js.consumer_info("BERTH_EMPTIED", name)  # the durable exists again
        finally:
            await bus.close()
            server.stop()


async def test_sync_checkpoint_is_not_confused_by_a_new_empty_stream(pool: asyncpg.Pool) -> None:
    """A relay taking over after the stream was lost and made again (empty) starts from the
    checkpoint in the table, publishes only what came after, and nothing twice."""
    store, stream = EventStore(pool), unique("BERTH_RENEWED_")
    bus = await connect_bus(NATS_URL, stream, stream.lower())
    try:
        await append_updates(store, range(4))
        first = OutboxRelay(pool, bus)
        assert await first.relay_once() == 4
        await first.save_checkpoint()
        await bus.js.delete_stream(stream)
        assert await bus.ensure_stream() is True
        await append_updates(store, range(4, 6))
        heir = OutboxRelay(pool, bus)
        events = await store.read_all()
        assert await heir.sync_checkpoint() == events[3].position
        assert await heir.relay_once() == 2
        messages = await stream_messages(bus)
        assert [m["envelope"]["position"] for m in messages] == [e.position for e in events[4:]]
        again = OutboxRelay(pool, bus)  # a new leader before the checkpoint was saved
        assert await again.sync_checkpoint() == events[-1].position
        async with pool.acquire() as conn:
            assert await checkpoint(conn) == events[-1].position
    finally:
        await bus.close()
        await delete_stream(stream)


async def test_the_relay_alone_makes_a_deleted_stream_again(pool: asyncpg.Pool) -> None:
    """With no consumer around to make it, the relay's next publish gets "no responders"
    (``NoStreamResponseError``); it makes the stream with the same configuration and publishes."""
    store, stream = EventStore(pool), unique("BERTH_ALONE_")
    bus = await connect_bus(NATS_URL, stream, stream.lower())
    relay = OutboxRelay(pool, bus, poll_seconds=0.05)
    try:
        async with running(relay.run()):
            await append_updates(store, range(2))
            await until(lambda: published_through_last(pool, bus))
            await bus.js.delete_stream(stream)
            await append_updates(store, range(2, 4))
            await until(lambda: published_through_last(pool, bus))
        assert relay.streams_made == 1 and relay.failures >= 1
        made, wanted = (await bus.js.stream_info(stream)).config, bus.stream_config()
        assert (made.subjects, made.storage, made.retention, made.duplicate_window) == (
            wanted.subjects,
            wanted.storage,
            wanted.retention,
            wanted.duplicate_window,
        )
        events = await store.read_all()
        positions = [m["envelope"]["position"] for m in await stream_messages(bus)]
        assert positions[-2:] == [e.position for e in events[2:]] and positions == sorted(set(positions))
    finally:
        await bus.close()
        await delete_stream(stream)
