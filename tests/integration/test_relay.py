"""The outbox relay on real PostgreSQL and NATS JetStream (docs/DESIGN.md §2).

Every committed event is published once, in order, with ``Nats-Msg-Id`` = event id; nothing
from a rolled-back transaction is; a crash between publish and checkpoint, a NATS outage and
a second relay on the same database publish nothing twice and lose nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from berth_common.bus import Bus, connect_bus
from berth_common.events import FeedUpdated
from berth_common.eventstore import EventStore, OutboxRelay
from berth_common.eventstore.relay import bus_envelope, checkpoint
from tests.support.databases import NATS_URL, delete_stream, eventstore_pool, unique
from tests.support.nats_server import PrivateNats
from tests.support.net import free_port
from tests.support.tasks import running as run_task
from tests.support.tasks import until

pytestmark = pytest.mark.integration


@pytest.fixture
async def pool() -> AsyncIterator[asyncpg.Pool]:
    """A fresh database with the event store."""
    async with eventstore_pool() as p:
        yield p


@contextlib.asynccontextmanager
async def open_bus(url: str = NATS_URL) -> AsyncIterator[Bus]:
    """A bus on a fresh stream (deleted afterwards when on the shared server)."""
    stream = unique("BERTH_RELAY_")
    bus = await connect_bus(url, stream, stream.lower())
    try:
        yield bus
    finally:
        await bus.close()
        if url == NATS_URL:
            await delete_stream(stream)


@pytest.fixture
async def bus() -> AsyncIterator[Bus]:
    async with open_bus() as b:
        yield b


async def append(store: EventStore, n: int, stream: str = "feed:f") -> None:
    """``n`` events, one transaction each."""
    for i in range(n):
        async with store.unit_of_work() as uow:
            await uow.emit(stream, FeedUpdated(feed="f", changes={"i": i}))


async def stream_messages(bus: Bus) -> list[dict[str, Any]]:
    """Every message in the bus's stream, in stream order: ``{subject, msg_id, envelope}``."""
    info = await bus.js.stream_info(bus.stream)
    out = []
    for seq in range(info.state.first_seq or 1, info.state.last_seq + 1):
        msg = await bus.js.get_msg(bus.stream, seq=seq)
        out.append(
            {
                "subject": msg.subject,
                "msg_id": (msg.headers or {}).get("Nats-Msg-Id"),
                "envelope": json.loads(msg.data or b"{}"),
            }
        )
    return out


async def caught_up(pool: asyncpg.Pool) -> bool:
    """The relay's checkpoint has reached the last committed event."""
    async with pool.acquire() as conn:
        last = await conn.fetchval("SELECT coalesce(max(position), 0) FROM eventstore.events")
        return bool(await checkpoint(conn) >= last)


async def assert_published_once_in_order(pool: asyncpg.Pool, bus: Bus) -> None:
    """The stream holds exactly the committed events, once each, in position order."""
    rows = await pool.fetch("SELECT position, event_id, type FROM eventstore.events ORDER BY position")
    messages = await stream_messages(bus)
    assert [m["msg_id"] for m in messages] == [str(r["event_id"]) for r in rows]
    assert [m["envelope"]["position"] for m in messages] == [r["position"] for r in rows]
    assert [m["envelope"]["event_id"] for m in messages] == [m["msg_id"] for m in messages]
    assert [m["subject"] for m in messages] == [f"{bus.prefix}.{r['type']}" for r in rows]


def running(relay: OutboxRelay) -> contextlib.AbstractAsyncContextManager[asyncio.Future[None]]:
    """Run ``relay`` in a task for the ``with`` block; cancel it afterwards."""
    return run_task(relay.run())


async def test_publishes_committed_events_in_order(pool: asyncpg.Pool, bus: Bus) -> None:
    store = EventStore(pool)
    await append(store, 3)
    async with store.unit_of_work() as uow:
        await uow.emit("feed:g", FeedUpdated(feed="g", changes={}))
        await uow.emit("feed:f", FeedUpdated(feed="f", changes={"i": 3}))
    async with running(OutboxRelay(pool, bus, poll_seconds=0.1, batch=2)):
        await until(lambda: caught_up(pool))
        await append(store, 2)  # woken by NOTIFY while running
        await until(lambda: caught_up(pool))
    await assert_published_once_in_order(pool, bus)
    assert len(await stream_messages(bus)) == 7


async def test_rolled_back_events_are_never_published(pool: asyncpg.Pool, bus: Bus) -> None:
    store = EventStore(pool)
    with pytest.raises(RuntimeError):
        async with store.unit_of_work() as uow:
            await uow.emit("feed:f", FeedUpdated(feed="f", changes={"rolled": "back"}))
            raise RuntimeError("request failed after emit")
    await append(store, 1)
    relay = OutboxRelay(pool, bus)
    assert await relay.relay_once() == 1
    [message] = await stream_messages(bus)
    assert message["envelope"]["payload"]["changes"] == {"i": 0}


async def test_crash_between_publish_and_checkpoint(pool: asyncpg.Pool, bus: Bus) -> None:
    """A batch published without its checkpoint is re-sent and de-duplicated by JetStream."""
    store = EventStore(pool)
    await append(store, 5)
    for event in (await store.read_all())[:3]:  # the crashed relay got this far
        await bus.publish(bus_envelope(event.envelope()))
    restarted = OutboxRelay(pool, bus)
    assert await restarted.relay_once() == 5  # re-sends all five; JetStream keeps three once
    await assert_published_once_in_order(pool, bus)


async def test_restart_skips_what_the_stream_already_holds(pool: asyncpg.Pool, bus: Bus) -> None:
    """Even beyond the duplicate window: the restarted leader resumes after the stream's tail."""
    store = EventStore(pool)
    await append(store, 5)
    events = await store.read_all()
    for event in events[:3]:
        await bus.publish(bus_envelope(event.envelope()))
    restarted = OutboxRelay(pool, bus)
    assert await restarted.sync_checkpoint() == events[2].position
    assert await restarted.relay_once() == 2
    await assert_published_once_in_order(pool, bus)


async def test_only_one_leader(pool: asyncpg.Pool, bus: Bus) -> None:
    """Two relays on one database: one publishes, the other stands by and takes over."""
    store = EventStore(pool)
    first, second = (OutboxRelay(pool, bus, poll_seconds=0.1) for _ in range(2))
    async with running(first) as first_task, running(second) as second_task:
        await append(store, 4)
        await until(lambda: caught_up(pool))
        assert [first.leader, second.leader].count(True) == 1
        leader, standby = (first, second) if first.leader else (second, first)
        assert (leader.published, standby.published) == (4, 0)
        (first_task if leader is first else second_task).cancel()
        await until(lambda: _is_leader(standby))
        await append(store, 3)
        await until(lambda: caught_up(pool))
        assert standby.published == 3
    await assert_published_once_in_order(pool, bus)


async def _is_leader(relay: OutboxRelay) -> bool:
    return relay.leader


async def test_nats_outage(pool: asyncpg.Pool) -> None:
    """Events appended while NATS is down are published once, in order, after it returns."""
    store = EventStore(pool)
    with tempfile.TemporaryDirectory(prefix="berth-nats-") as tmp:
        server = PrivateNats(Path(tmp), free_port())
        server.start()
        bus = await connect_bus(f"nats://127.0.0.1:{server.port}", "BERTH_OUTAGE", "outage")
        relay = OutboxRelay(pool, bus, poll_seconds=0.1)
        try:
            async with running(relay):
                await append(store, 3)
                await until(lambda: caught_up(pool))
                server.stop()
                await until(lambda: _disconnected(bus))
                await append(store, 4)
                await append(store, 2, stream="feed:g")
                await until(lambda: _failed(relay))
                server.start()
                await until(lambda: caught_up(pool))
            await assert_published_once_in_order(pool, bus)
            assert len(await stream_messages(bus)) == 9
        finally:
            await bus.close()
            server.stop()


async def _disconnected(bus: Bus) -> bool:
    return not bus.nc.is_connected


async def _failed(relay: OutboxRelay) -> bool:
    return relay.failures > 0


async def test_checkpoint_is_kept_in_memory_and_saved_when_asked(pool: asyncpg.Pool, bus: Bus) -> None:
    """``relay_once`` does not write the table; ``save_checkpoint`` does (idle or timed), and a
    relay that starts from the stale table value re-publishes nothing new (de-duplicated)."""
    store = EventStore(pool)
    await append(store, 3)
    relay = OutboxRelay(pool, bus, save_seconds=60)
    assert await relay.relay_once() == 3
    async with pool.acquire() as conn:
        assert await checkpoint(conn) == 0
    assert await relay.relay_once() == 0  # the in-memory position moved on
    await append(store, 1)
    assert await relay.relay_once() == 1
    restarted = OutboxRelay(pool, bus)  # took over before anything was saved
    assert await restarted.sync_checkpoint() == (await store.read_all())[-1].position
    await relay.save_checkpoint()
    async with pool.acquire() as conn:
        assert await checkpoint(conn) == (await store.read_all())[-1].position
    await assert_published_once_in_order(pool, bus)


async def test_a_nats_that_never_answers_stops_the_first_connection_with_an_error() -> None:
    """A process whose NATS is unreachable at start gets NoServersError after a bounded number
    of tries (it waited for ever, not listening and ignoring SIGTERM: the breaker's finding);
    once connected, the client reconnects for ever (test_nats_outage)."""
    import nats.errors

    with pytest.raises(nats.errors.NoServersError):
        await connect_bus(f"nats://127.0.0.1:{free_port()}", "BERTH_NEVER", "never")
    stream = unique("BERTH_FOREVER_")
    bus = await connect_bus(NATS_URL, stream, stream.lower())
    try:
        assert bus.nc.options["max_reconnect_attempts"] == -1
    finally:
        await bus.close()
        await delete_stream(stream)
