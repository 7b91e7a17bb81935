"""The event store's invariants on real PostgreSQL (docs/DESIGN.md §2).

Append and read; optimistic concurrency (``NO_STREAM``, exact version, ``ANY``) that commits
nothing on conflict; concurrent appenders with retries; positions handed out in commit order
so a ``position > checkpoint`` reader never misses an event; the table is append-only.
"""

from __future__ import annotations

import asyncio
import random
import secrets
from collections.abc import AsyncIterator

import asyncpg
import pytest

from berth_common.db import Connection
from berth_common.events import Event, FeedCreated, FeedUpdated, Metadata
from berth_common.eventstore import (
    ANY,
    NO_STREAM,
    ConcurrencyError,
    EventContext,
    EventStore,
    UnitOfWork,
    run_with_retry,
)
from berth_common.eventstore import store as store_module
from tests.support.databases import eventstore_pool

pytestmark = pytest.mark.integration


@pytest.fixture
async def pool() -> AsyncIterator[asyncpg.Pool]:
    """A fresh database with the event store and a test projection ``public.seen``."""
    async with eventstore_pool(
        setup_sql="CREATE TABLE seen (event_id uuid PRIMARY KEY, stream text NOT NULL)"
    ) as p:
        yield p


async def record_seen(conn: Connection, event: Event, ctx: EventContext) -> None:
    """Test projector: one row per applied event."""
    await conn.execute("INSERT INTO seen(event_id, stream) VALUES ($1, $2)", ctx.event_id, ctx.stream)


def feed(n: int) -> FeedUpdated:
    """A small event whose payload says ``n``."""
    return FeedUpdated(feed="f", changes={"n": n})


async def test_append_and_read_stream(pool: asyncpg.Pool) -> None:
    store = EventStore(pool)
    meta = Metadata(actor="alice", request_id="req-1", traceparent="00-" + "1" * 32 + "-" + "2" * 16 + "-01")
    async with store.unit_of_work(record_seen, meta) as uow:
        await uow.emit("feed:f", FeedCreated(feed="f"), expected_version=NO_STREAM)
        await uow.emit("feed:f", feed(1), expected_version=1)
        await uow.emit("feed:g", FeedCreated(feed="g"))
    events = await store.read_stream("feed:f")
    assert [(e.version, e.type, e.payload) for e in events] == [
        (1, "feed.created", FeedCreated(feed="f")),
        (2, "feed.updated", feed(1)),
    ]
    assert len({e.event_id for e in events}) == 2
    assert events[0].metadata["actor"] == "alice" and events[0].metadata["request_id"] == "req-1"
    assert events[0].metadata["traceparent"] == meta.traceparent
    assert events[0].recorded_at == meta.occurred_at
    everything = await store.read_all()
    assert [e.position for e in everything] == sorted(e.position for e in everything)
    assert [e.stream for e in everything] == ["feed:f", "feed:f", "feed:g"]
    assert await pool.fetchval("SELECT count(*) FROM seen") == 3
    assert await store.read_stream("feed:nothing") == []


@pytest.mark.parametrize(
    ("expected", "conflicts"),
    [
        (NO_STREAM, True),
        (1, True),
        (3, True),
        (2, False),
        (ANY, False),
    ],
)
async def test_expected_version(pool: asyncpg.Pool, expected: int, conflicts: bool) -> None:
    """On a stream at version 2: a wrong expectation commits neither events nor projection rows."""
    store = EventStore(pool)
    async with store.unit_of_work(record_seen) as uow:
        await uow.emit("feed:f", feed(1), expected_version=NO_STREAM)
        await uow.emit("feed:f", feed(2), expected_version=1)
    before = await pool.fetchval("SELECT count(*) FROM seen")

    async def write() -> None:
        async with store.unit_of_work(record_seen) as uow:
            await uow.emit("feed:other", feed(0))
            await uow.emit("feed:f", feed(3), expected_version=expected)

    if conflicts:
        with pytest.raises(ConcurrencyError):
            await write()
        assert await pool.fetchval("SELECT count(*) FROM eventstore.events") == 2
        assert await pool.fetchval("SELECT count(*) FROM seen") == before
    else:
        await write()
        assert [e.version for e in await store.read_stream("feed:f")] == [1, 2, 3]
        assert await pool.fetchval("SELECT count(*) FROM seen") == before + 2


async def test_no_stream_twice_in_one_unit(pool: asyncpg.Pool) -> None:
    store = EventStore(pool)
    with pytest.raises(ConcurrencyError):
        async with store.unit_of_work(record_seen) as uow:
            await uow.emit("feed:f", feed(1), expected_version=NO_STREAM)
            await uow.emit("feed:f", feed(2), expected_version=NO_STREAM)
    assert await pool.fetchval("SELECT count(*) FROM eventstore.events") == 0
    assert await pool.fetchval("SELECT count(*) FROM seen") == 0


async def test_concurrent_appenders_with_retry(pool: asyncpg.Pool) -> None:
    """Each appender expects the version it read; with retries all succeed, versions gap-free.

    An attempt fails only if another appender committed during it, so ``attempts`` = the
    number of appenders always suffices.
    """
    store, n = EventStore(pool), 10

    async def append(i: int) -> int:
        async def work(uow: UnitOfWork) -> int:
            version = await uow.conn.fetchval(
                "SELECT coalesce(max(version), 0) FROM eventstore.events WHERE stream = 'feed:f'"
            )
            await asyncio.sleep(0)
            await uow.emit("feed:f", feed(i), expected_version=version)
            return int(version) + 1

        return int(await run_with_retry(store, work, projector=record_seen, attempts=n))

    versions = await asyncio.gather(*(append(i) for i in range(n)))
    assert sorted(versions) == list(range(1, n + 1))
    events = await store.read_stream("feed:f")
    assert [e.version for e in events] == list(range(1, n + 1))
    assert sorted(e.payload.changes["n"] for e in events) == list(range(n))  # type: ignore[attr-defined]
    assert await pool.fetchval("SELECT count(*) FROM seen") == n


async def test_concurrent_any_appenders_never_conflict(pool: asyncpg.Pool) -> None:
    store = EventStore(pool)

    async def append(i: int) -> None:
        async with store.unit_of_work() as uow:
            await uow.emit("feed:f", feed(i))

    await asyncio.gather(*(append(i) for i in range(12)))
    assert [e.version for e in await store.read_stream("feed:f")] == list(range(1, 13))


async def test_reader_after_checkpoint_sees_every_event_once(
    pool: asyncpg.Pool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Positions follow commit order: polling ``position > checkpoint`` never skips an event.

    Each commit is slowed down between its insert and its commit, under the lock (as a loaded
    server would be); a reader polls concurrently like the outbox relay and must see every
    event exactly once, in order.
    """
    monkeypatch.setattr(
        store_module,
        "APPEND_AND_COMMIT_SQL",
        "SELECT eventstore.append_staged(); SELECT pg_sleep(random() / 200); COMMIT",
    )
    store, writers, done = EventStore(pool), 40, asyncio.Event()
    seen: list[str] = []

    async def write(i: int) -> None:
        await asyncio.sleep(random.random() / 100)
        async with store.unit_of_work() as uow:
            for j in range(1 + i % 3):
                await uow.emit(f"feed:w{i}", feed(j))

    async def read(conn: Connection) -> None:
        checkpoint = 0
        while True:
            finished = done.is_set()
            batch = await store_module.read_all(conn, checkpoint, 7)
            assert all(e.position > checkpoint for e in batch)
            assert [e.position for e in batch] == sorted(e.position for e in batch)
            seen.extend(str(e.event_id) for e in batch)
            checkpoint = batch[-1].position if batch else checkpoint
            if finished and not batch:
                return
            await asyncio.sleep(0.001)

    async with pool.acquire() as conn:
        reader = asyncio.create_task(read(conn))
        await asyncio.gather(*(write(i) for i in range(writers)))
        done.set()
        await reader
    committed = [
        str(r["event_id"])
        for r in await pool.fetch("SELECT event_id FROM eventstore.events ORDER BY position")
    ]
    assert len(committed) == sum(1 + i % 3 for i in range(writers))
    assert seen == committed


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE eventstore.events SET type = 'feed.deleted'",
        "DELETE FROM eventstore.events",
        "TRUNCATE eventstore.events",
    ],
)
async def test_events_are_append_only(pool: asyncpg.Pool, statement: str) -> None:
    store = EventStore(pool)
    async with store.unit_of_work() as uow:
        await uow.emit("feed:f", feed(1))
    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await pool.execute(statement)
    [event] = await store.read_stream("feed:f")
    assert event.payload == feed(1)


async def test_payloads_with_quotes_and_dollars_round_trip(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The staged JSON travels as a dollar-quoted literal: quotes, backslashes, dollar signs and
    even the tag itself (forced to collide once) arrive unchanged."""
    tags = iter(["aaaa", "aaaa", "bbbb"])
    monkeypatch.setattr(secrets, "token_hex", lambda n: next(tags))
    nasty = {
        "q": "it's '; DROP TABLE eventstore.events; --",
        "d": "$$ $b$ $baaaa$ \\' \\\\",
        "u": "é ✓ \u2028",
        "nl": "a\nb\tc",
    }
    async with EventStore(pool).unit_of_work() as uow:
        await uow.emit("feed:f", FeedUpdated(feed="f", changes=nasty))
    [event] = await EventStore(pool).read_stream("feed:f")
    assert event.payload == FeedUpdated(feed="f", changes=nasty)


def test_dollar_quoted_refuses_nul() -> None:
    with pytest.raises(ValueError):
        store_module.dollar_quoted("a\x00b")
