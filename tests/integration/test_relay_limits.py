"""No single event can stop the relay, and a publish that keeps failing is visible (issue 9, §2).

A bus message is bounded (docs/EVENTS.md, "On the bus"): an event whose envelope would be over
the bound — the setting, never above the server's ``max_payload`` less a header margin — is
published without its payload. A publish that fails again and again is an error line with the
event's position, type and error (rate-limited) and moves ``berth_relay_publish_failures_total``
and the lag gauges.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import nats
import pytest
import structlog
from nats.js.api import DiscardPolicy, StreamConfig
from prometheus_client import REGISTRY
from structlog.testing import LogCapture

from berth_common.bus import Bus, connect_bus
from berth_common.events import FeedUpdated
from berth_common.eventstore import EventStore, OutboxRelay
from berth_common.eventstore.relay import checkpoint
from tests.integration.test_relay import (
    append,
    assert_published_once_in_order,
    caught_up,
    open_bus,
    running,
    stream_messages,
)
from tests.support.databases import NATS_URL, delete_stream, eventstore_pool, unique
from tests.support.tasks import until

pytestmark = pytest.mark.integration
MiB = 1024 * 1024


@pytest.fixture
async def pool() -> AsyncIterator[asyncpg.Pool]:
    async with eventstore_pool() as p:
        yield p


async def append_large(store: EventStore, size: int) -> None:
    """One ``feed.updated`` whose payload is about ``size`` bytes."""
    async with store.unit_of_work() as uow:
        await uow.emit("feed:f", FeedUpdated(feed="f", changes={"description": "x" * size}))


async def raw_sizes(bus: Bus) -> list[int]:
    """The data size of every message in the stream, in order."""
    info = await bus.js.stream_info(bus.stream)
    return [
        len((await bus.js.get_msg(bus.stream, seq=s)).data or b"") for s in range(1, info.state.last_seq + 1)
    ]


async def test_an_event_over_the_servers_max_payload_is_published_without_payload(pool: asyncpg.Pool) -> None:
    """A 2 MB event (over NATS's 1 MiB ``max_payload``) with the bound set above the server's:
    the server's limit wins, the event goes out without its payload, and the events after it
    follow (before: ``MaxPayloadError`` forever)."""
    store = EventStore(pool)
    await append_large(store, 2_000_000)
    await append(store, 2)
    async with open_bus() as bus:
        bus.max_message_bytes = 8 * MiB
        assert bus.message_limit <= bus.nc.max_payload - 4096
        relay = OutboxRelay(pool, bus)
        assert await relay.relay_once() == 3
        messages = await stream_messages(bus)
        big = messages[0]["envelope"]
        assert big["payload_omitted"] is True and "payload" not in big
        assert big["type"] == "feed.updated" and big["stream"] == "feed:f"
        assert [m["envelope"]["payload"]["changes"] for m in messages[1:]] == [{"i": 0}, {"i": 1}]
        assert max(await raw_sizes(bus)) <= bus.message_limit
        await assert_published_once_in_order(pool, bus)


async def test_the_default_bound_is_64_kib_of_utf8(pool: asyncpg.Pool, bus: Bus) -> None:
    """60 kB goes inline, 70 kB does not; 40,000 "é" are 80 kB in UTF-8: measured in bytes."""
    store = EventStore(pool)
    await append_large(store, 60_000)
    await append_large(store, 70_000)
    async with store.unit_of_work() as uow:
        await uow.emit("feed:f", FeedUpdated(feed="f", changes={"description": "é" * 40_000}))
    assert bus.message_limit == 64 * 1024
    assert await OutboxRelay(pool, bus).relay_once() == 3
    inline, *omitted = (m["envelope"] for m in await stream_messages(bus))
    assert len(inline["payload"]["changes"]["description"]) == 60_000
    assert all(o["payload_omitted"] and "payload" not in o for o in omitted)
    assert max(await raw_sizes(bus)) <= 64 * 1024


@pytest.fixture
async def bus() -> AsyncIterator[Bus]:
    async with open_bus() as b:
        yield b


@pytest.fixture
async def full_bus() -> AsyncIterator[Bus]:
    """A bus whose stream takes two messages and refuses the rest (``discard: new``)."""
    stream = unique("BERTH_FULL_")
    nc = await nats.connect(NATS_URL)
    try:
        config = StreamConfig(
            name=stream, subjects=[f"{stream.lower()}.>"], max_msgs=2, discard=DiscardPolicy.NEW
        )
        await nc.jetstream().add_stream(config)
        bus = await connect_bus(NATS_URL, stream, stream.lower())
        try:
            yield bus
        finally:
            await bus.close()
    finally:
        await nc.close()
        await delete_stream(stream)


def sample(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


async def test_a_publish_that_keeps_failing_is_logged_counted_and_measured(
    pool: asyncpg.Pool, full_bus: Bus
) -> None:
    store = EventStore(pool)
    await append(store, 4)
    third = (await store.read_all())[2]
    lines = LogCapture()
    logger = structlog.wrap_logger(None, processors=[lines])
    failures_before = sample("berth_relay_publish_failures_total")
    relay = OutboxRelay(pool, full_bus, poll_seconds=0.02, log_every_seconds=3600, logger=logger)
    async with running(relay):
        await until(lambda: _failed_times(relay, 4))
        errors = [e for e in lines.entries if e["event"] == "relay.publish_failed"]
        assert len(errors) == 1, errors  # rate-limited: one line however often it retries
        [error] = errors
        assert error["log_level"] == "error"
        assert (error["position"], error["type"], error["attempts"]) == (third.position, "feed.updated", 1)
        assert "maximum messages" in error["error"]
        assert sample("berth_relay_publish_failures_total") - failures_before >= 4
        assert sample("berth_relay_lag_events") == 2
        assert sample("berth_relay_lag_seconds") > 0
        stream = await full_bus.js.stream_info(full_bus.stream)
        stream.config.max_msgs = -1
        await full_bus.js.update_stream(stream.config)
        await until(lambda: caught_up(pool))
    assert sample("berth_relay_lag_events") == sample("berth_relay_lag_seconds") == 0
    async with pool.acquire() as conn:
        assert await checkpoint(conn) == (await store.read_all())[-1].position
    await assert_published_once_in_order(pool, full_bus)


async def _failed_times(relay: OutboxRelay, n: int) -> bool:
    return relay.failures >= n
