"""The outbox relay: publishes committed events, in order, from the event store to JetStream.

docs/DESIGN.md §2. One relay is active at a time (a session-level advisory lock elects it among all
processes and workers). It reads ``position > checkpoint`` in batches, publishes each with
``Nats-Msg-Id`` = event id, waiting for each acknowledgement before the next (so the stream
holds events in position order), then advances its checkpoint. The leader keeps the
checkpoint in memory and writes it to ``eventstore.checkpoints`` at most once per
``save_seconds`` under steady traffic and whenever it falls idle (a write with a WAL flush per
batch cost more than the publishes, docs/PERFORMANCE.md). A crash between publish and saved
checkpoint re-publishes what came after, which JetStream de-duplicates; and on becoming
leader, or after any failure, the relay first moves its checkpoint past the last event the
stream already holds (matched by position *and* event id), so nothing is published twice even
after the duplicate window. A NATS outage only delays publishing: the relay retries from its
checkpoint with backoff; nothing is lost. It wakes on ``NOTIFY berth_events`` (sent by every
append) and polls as a fallback.

A bus message is bounded (``envelopes``): an event too large to carry inline is published
without its payload, so no single event can stop the relay. A publish that keeps failing is
an error line with the event's position and type (rate-limited, ``failures.FailureLog``) and
the metric ``berth_relay_publish_failures_total``; ``berth_relay_lag_events`` and
``berth_relay_lag_seconds`` say how far the bus is behind the store (from the head position
read with each batch, no extra query). When the stream is gone (NATS restarted with an empty
store, a deleted stream: ``NotFoundError`` from ``stream_info``, "no responders" on publish),
the relay makes it again with the same configuration and goes on from its checkpoint;
consumers catch up what the lost stream held from the event store.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime
from typing import Any, Final

import asyncpg
import nats.errors
import structlog
from nats.js.errors import NoStreamResponseError, NotFoundError

from berth_common.bus import Bus
from berth_common.db import Connection, keeps_session_state
from berth_common.eventstore.envelopes import (
    EncodedBatch,
    EncodedEvent,
    bus_envelope,
    read_batch,
    read_encoded,
)
from berth_common.eventstore.failures import FailureLog, connection_gone, describe
from berth_common.eventstore.store import NOTIFY_CHANNEL
from berth_common.telemetry import RELAY_LAG_EVENTS, RELAY_LAG_SECONDS, RELAY_PUBLISH_FAILURES

RELAY_LOCK: Final = 0x62657274_72656C61  # "berthrela"
CHECKPOINT: Final = "relay"
log = structlog.get_logger("berth.relay")
__all__ = ["EncodedEvent", "LeadershipLost", "OutboxRelay", "bus_envelope", "read_encoded"]


class LeadershipLost(RuntimeError):
    """The connection holding the relay's advisory lock broke; another relay may lead now."""


class OutboxRelay:
    """Publishes the event store to the bus.

    Args:
        pool: asyncpg pool; one connection is held for leadership and LISTEN while running.
        bus: the connected bus.
        poll_seconds: fallback polling interval when no notification arrives; also how long
            the relay waits idle before saving its checkpoint.
        batch: events per read.
        save_seconds: longest interval between checkpoint writes under steady traffic.
        settle_seconds: pause after a notification before reading (requests go first).
        log_every_seconds: least interval between two error lines about one failing event.
        logger: where those lines go (default: the ``berth.relay`` structlog logger).

    ``published`` counts events sent (re-sends included), ``failures`` failed attempts (NATS or
    PostgreSQL errors, retried); ``leader`` says whether this relay holds the lock now;
    ``streams_made`` counts lost streams it made again.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        bus: Bus,
        *,
        poll_seconds: float = 1.0,
        batch: int = 500,
        save_seconds: float = 1.0,
        settle_seconds: float = 0.002,
        log_every_seconds: float = 10.0,
        logger: Any = None,
    ):
        self.pool, self.bus, self.poll, self.batch = pool, bus, poll_seconds, batch
        self.save_seconds, self.settle = save_seconds, settle_seconds
        self._position: int | None = None  # published up to here (None: read it from the table)
        self._saved = 0  # the position last written to the table
        self._saved_at = 0.0
        self._wake = asyncio.Event()
        self.published = self.failures = self.streams_made = 0
        self.leader = False
        self._current: EncodedEvent | None = None  # being published
        self._failure_log = FailureLog(logger or log, "relay.publish_failed", log_every_seconds)

    async def run(self) -> None:
        """Run until cancelled: wait for leadership, then relay forever.

        Raises:
            LeadershipLost: the lock connection broke (the supervisor restarts the relay).
        """
        async with self.pool.acquire() as conn:
            keeps_session_state(conn)
            while True:  # poll for the lock: a blocking lock would pin a backend forever
                if await conn.fetchval("SELECT pg_try_advisory_lock($1)", RELAY_LOCK):
                    break
                await asyncio.sleep(self.poll)
            self.leader = True
            await conn.add_listener(NOTIFY_CHANNEL, self._notified)
            try:
                await self._relay_forever(conn)
            finally:
                self.leader = False
                RELAY_LAG_EVENTS.set(0)  # the next leader reports
                RELAY_LAG_SECONDS.set(0)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.save_checkpoint(), 2.0)
                with contextlib.suppress(Exception):
                    await conn.remove_listener(NOTIFY_CHANNEL, self._notified)
                    await conn.execute("SELECT pg_advisory_unlock($1)", RELAY_LOCK)

    def _notified(self, *_: Any) -> None:
        self._wake.set()

    async def _relay_forever(self, leader: Connection) -> None:
        backoff, synced = self.poll, False
        while True:
            try:
                if not synced:
                    await self.sync_checkpoint()
                    synced = True
                moved = await self.relay_once()
                if moved and time.monotonic() - self._saved_at >= self.save_seconds:
                    await self.save_checkpoint()
                backoff = self.poll
            except Exception as exc:
                if connection_gone(leader):
                    raise LeadershipLost("relay lock connection closed") from exc
                await self._failed(exc, backoff)
                synced = False
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            if moved < self.batch:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), self.poll)
                except TimeoutError:  # idle: write the checkpoint down
                    with contextlib.suppress(Exception):  # retried at the next quiet moment
                        await self.save_checkpoint()
                else:
                    # The NOTIFY arrives while the committing request is still finishing in
                    # this process: let it send its response first (and let commits that
                    # follow at once join the batch) instead of reading in front of it.
                    await asyncio.sleep(self.settle)

    async def _failed(self, exc: Exception, retry_in: float) -> None:
        """Count and report a failed attempt; make the stream again if it is gone."""
        self.failures += 1
        RELAY_PUBLISH_FAILURES.inc()
        event = self._current
        self._failure_log.failed(
            event.position if event else ("read", self._position),
            position=event.position if event else None,
            type=event.type if event else None,
            after=self._position,
            error=describe(exc),
            retry_in=retry_in,
        )
        if stream_lost(exc):
            try:
                if await self.bus.ensure_stream():
                    self.streams_made += 1
                    log.warning("relay.stream_recreated", stream=self.bus.stream, checkpoint=self._position)
            except Exception as again:
                log.warning("relay.stream_recreate_failed", stream=self.bus.stream, error=repr(again))

    async def relay_once(self) -> int:
        """Publish one batch after the checkpoint; return how many events were published.

        Only the leader may call this (``run`` does); raises whatever NATS or PostgreSQL raise
        (the event being published is then ``_current``).
        """
        self._current = None
        async with self.pool.acquire() as conn:
            if self._position is None:
                self._position = self._saved = await checkpoint(conn)
            batch = await read_batch(conn, self._position, self.batch, self.bus.message_limit)
        self._observe_lag(batch)
        for event in batch.events:
            self._current = event
            await self.bus.publish_encoded(*event.headers, data=event.data)
            self.published += 1
            self._position = event.position
        self._current = None
        if batch.events:
            self._failure_log.recovered()
            RELAY_LAG_EVENTS.set(max(0, batch.head - batch.events[-1].position))
            if batch.head <= batch.events[-1].position:
                RELAY_LAG_SECONDS.set(0)
        return len(batch.events)

    def _observe_lag(self, batch: EncodedBatch) -> None:
        """Lag gauges as of the read: events after the checkpoint, age of the first of them."""
        position = self._position or 0
        RELAY_LAG_EVENTS.set(max(0, batch.head - position))
        if batch.events:
            age = (datetime.now(UTC) - batch.events[0].recorded_at).total_seconds()
            RELAY_LAG_SECONDS.set(max(0.0, age))
        else:
            RELAY_LAG_SECONDS.set(0)

    async def save_checkpoint(self) -> None:
        """Write the in-memory checkpoint to ``eventstore.checkpoints`` if it moved."""
        position = self._position
        if position is not None and position > self._saved:
            async with self.pool.acquire() as conn:
                await advance(conn, position)
            self._saved = position
        self._saved_at = time.monotonic()

    async def sync_checkpoint(self) -> int:
        """Move the checkpoint past the stream's last message if it is one of our events.

        Covers a crash between publish and checkpoint, however long ago. A stream that holds
        nothing (made again after it was lost) or whose last message is not ours (another
        database's) leaves the checkpoint where the table says. Returns the checkpoint.

        Raises:
            nats.js.errors.NotFoundError: the stream does not exist.
        """
        self._position = None  # until we know: the table and the stream say where we are
        async with self.pool.acquire() as conn:
            current = self._saved = await checkpoint(conn)
            self._position = current
            info = await self.bus.js.stream_info(self.bus.stream)
            if not info.state.last_seq:
                return current
            try:
                msg = await self.bus.js.get_msg(self.bus.stream, seq=info.state.last_seq)
            except NotFoundError:
                return current
            headers = msg.headers or {}
            position, msg_id = headers.get("Berth-Position"), headers.get("Nats-Msg-Id")
            if position is None or not position.isdigit() or int(position) <= current:
                return current
            event_id = await conn.fetchval(
                "SELECT event_id FROM eventstore.events WHERE position = $1", int(position)
            )
            if event_id is None or str(event_id) != msg_id:
                log.warning("relay.stream_mismatch", position=position, msg_id=msg_id)
                return current
            await advance(conn, int(position))
            self._position = self._saved = int(position)
            return int(position)


async def checkpoint(conn: Connection) -> int:
    """The relay's checkpoint: every event at or below it has been published (0 at first)."""
    value = await conn.fetchval("SELECT position FROM eventstore.checkpoints WHERE name = $1", CHECKPOINT)
    return int(value or 0)


async def advance(conn: Connection, position: int) -> None:
    """Move the relay's checkpoint forward to ``position`` (never backwards)."""
    await conn.execute(
        "INSERT INTO eventstore.checkpoints(name, position) VALUES ($1, $2) ON CONFLICT (name)"
        " DO UPDATE SET position = GREATEST(eventstore.checkpoints.position, excluded.position),"
        " updated_at = now()",
        CHECKPOINT,
        position,
    )


def stream_lost(exc: BaseException) -> bool:
    """Whether ``exc`` says the stream is gone: ``stream_info`` found nothing, or a publish got
    no answer from any stream ("no responders")."""
    return isinstance(exc, NotFoundError | NoStreamResponseError | nats.errors.NoRespondersError)
