"""Consumers catch up from the event store: the store is the record, the bus the doorbell.

docs/ARCHITECTURE.md, "Events are the source of truth". Before applying the message at
position q, a consumer applies the events of its types between its recorded position and q
that the bus never delivered; a message without its payload is read from the store; an idle
consumer finds what the bus never brought; a consumer whose lock connection breaks stops. So a
batch fetched by an instance that died, a purged stream or a lost message changes nothing.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import structlog
from prometheus_client import REGISTRY
from structlog.testing import LogCapture

from berth_common.bus import Bus
from berth_common.db import Connection
from berth_common.events import Event, FeedUpdated
from berth_common.eventstore import EventContext, EventStore, OutboxRelay, ProjectionConsumer
from berth_common.eventstore.consumer import ConsumerLockLost
from berth_common.eventstore.relay import bus_envelope
from tests.integration.test_consumer import append_mixed, envelopes, position, project
from tests.support.databases import NATS_URL, delete_stream, eventstore_pool, unique
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


@pytest.fixture
async def bus() -> AsyncIterator[Bus]:
    from berth_common.bus import connect_bus

    stream = unique("BERTH_CATCHUP_")
    b = await connect_bus(NATS_URL, stream, stream.lower(), catch_up_seconds=0.2)
    try:
        yield b
    finally:
        await b.close()
        await delete_stream(stream)


async def changes(pool: asyncpg.Pool) -> list[Any]:
    """``changes`` of every applied event, in the order applied."""
    return [json.loads(r["changes"]) for r in await pool.fetch("SELECT changes FROM applied ORDER BY n")]


async def append_updates(store: EventStore, values: range) -> None:
    for i in values:
        async with store.unit_of_work() as uow:
            await uow.emit("feed:f", FeedUpdated(feed="f", changes={"i": i}))


async def test_events_the_bus_skipped_are_applied_first_in_order(pool: asyncpg.Pool, bus: Bus) -> None:
    """The message at q arrives with p recorded: events of the consumer's types in (p, q) come
    from the store first; redeliveries of them later change nothing (before: lost)."""
    store = EventStore(pool)
    await append_mixed(store)  # feed.created, feed.updated i=0, 1, 2
    batch = await envelopes(store)
    consumer = ProjectionConsumer(pool, bus, "c1", "positions", project, TYPES)
    assert await consumer.handle(batch[3]) is True
    assert await changes(pool) == [{"i": 0}, {"i": 1}, {"i": 2}]
    assert (consumer.applied, consumer.from_store) == (3, 2)
    assert [await consumer.handle(e) for e in batch] == [False] * 4
    assert await position(pool, "c1") == batch[3]["position"]


async def test_an_omitted_payload_is_read_from_the_store(pool: asyncpg.Pool, bus: Bus) -> None:
    store = EventStore(pool)
    async with store.unit_of_work() as uow:
        await uow.emit("feed:f", FeedUpdated(feed="f", changes={"description": "x" * 10_000}))
    [event] = await store.read_all()
    envelope = json.loads(json.dumps(bus_envelope(event.envelope(), 4096)))
    assert envelope["payload_omitted"] and "payload" not in envelope
    consumer = ProjectionConsumer(pool, bus, "c1", "positions", project, TYPES)
    assert await consumer.handle(envelope) is True
    assert await changes(pool) == [{"description": "x" * 10_000}]
    row = await pool.fetchrow("SELECT event_id, occurred_at FROM applied")
    assert row is not None
    assert (str(row["event_id"]), row["occurred_at"]) == (str(event.event_id), event.recorded_at)


async def test_a_batch_fetched_by_an_instance_that_died_is_not_lost(pool: asyncpg.Pool, bus: Bus) -> None:
    """An instance fetched the first messages and died without acknowledging them: JetStream
    delivers the later ones to the next instance first (the early ones only after ack_wait).
    Before, the later ones were applied and the early ones then skipped by position."""
    store = EventStore(pool)
    await append_updates(store, range(6))
    assert await OutboxRelay(pool, bus).relay_once() == 6
    name = unique("c_")
    dead = ProjectionConsumer(pool, bus, name, "positions", project, TYPES)
    sub = await dead._subscribe()
    assert len(await sub.fetch(3, timeout=5)) == 3  # fetched, never acknowledged
    await sub.unsubscribe()
    last = (await store.read_all())[-1].position
    heir = ProjectionConsumer(pool, bus, name, "positions", project, TYPES)
    async with running(heir.run()):
        await until(lambda: _at(pool, name, last))
    assert await changes(pool) == [{"i": i} for i in range(6)]


async def test_an_idle_consumer_applies_what_the_bus_never_delivered(pool: asyncpg.Pool, bus: Bus) -> None:
    """Events in the store that never reach the bus (no relay here: a lost or purged stream)
    are applied by the idle check, in order, once."""
    store = EventStore(pool)
    name = unique("c_")
    consumer = ProjectionConsumer(pool, bus, name, "positions", project, TYPES)
    async with running(consumer.run()):
        await until(lambda: _active(consumer))
        await append_mixed(store)
        last = (await store.read_all())[-1].position
        await until(lambda: _at(pool, name, last))
        await append_updates(store, range(3, 5))
        last = (await store.read_all())[-1].position
        await until(lambda: _at(pool, name, last))
    assert await changes(pool) == [{"i": i} for i in range(5)]
    assert consumer.from_store == consumer.applied == 5


async def test_apply_failures_are_counted_and_logged_with_the_event(pool: asyncpg.Pool, bus: Bus) -> None:
    store, calls = EventStore(pool), []

    async def flaky(conn: Connection, event: Event, ctx: EventContext) -> None:
        calls.append(event)
        if len(calls) <= 3:
            raise ConnectionError("projection table locked away")
        await project(conn, event, ctx)

    await append_updates(store, range(1))
    [event] = await store.read_all()
    lines = LogCapture()
    name = unique("c_")
    consumer = ProjectionConsumer(
        pool, bus, name, "positions", flaky, TYPES, retry_seconds=0.01,
        logger=structlog.wrap_logger(None, processors=[lines]),
    )  # fmt: skip
    before = REGISTRY.get_sample_value("berth_consumer_apply_failures_total", {"consumer": name}) or 0
    assert await OutboxRelay(pool, bus).relay_once() == 1
    async with running(consumer.run()):
        await until(lambda: _at(pool, name, event.position))
    after = REGISTRY.get_sample_value("berth_consumer_apply_failures_total", {"consumer": name})
    assert after == before + 3 == consumer.failures
    [line, *_] = [e for e in lines.entries if e["event"] == "consumer.apply_failed"]
    assert (line["log_level"], line["position"], line["type"]) == ("error", event.position, "feed.updated")
    assert "projection table locked away" in line["error"] and line["consumer"] == name
    assert REGISTRY.get_sample_value("berth_consumer_lag_events", {"consumer": name}) == 0


async def test_a_consumer_whose_lock_connection_breaks_stops(pool: asyncpg.Pool, bus: Bus) -> None:
    """The advisory lock is what makes it the only active instance: when its connection goes
    (PostgreSQL restarted, the backend killed), another instance may start, so this one stops
    (and the supervisor restarts it as a candidate). Before, it consumed on alongside."""
    consumer = ProjectionConsumer(pool, bus, unique("c_"), "positions", project, TYPES)
    task = asyncio.ensure_future(consumer.run())
    try:
        await until(lambda: _active(consumer))
        holder = await pool.fetchval(  # pg_locks is the whole server's: this database only
            "SELECT l.pid FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
            " WHERE l.locktype = 'advisory' AND l.granted AND d.datname = current_database()"
            " AND l.pid <> pg_backend_pid()"
        )
        assert await pool.fetchval("SELECT pg_terminate_backend($1)", holder)
        with pytest.raises(ConsumerLockLost):
            await task
    finally:
        task.cancel()


async def _at(pool: asyncpg.Pool, name: str, last: int) -> bool:
    return (await position(pool, name) or 0) >= last


async def _active(consumer: ProjectionConsumer) -> bool:
    return consumer.active
