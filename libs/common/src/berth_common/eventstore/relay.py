"""The outbox relay: publishes committed events, in order, from the event store to JetStream.

DESIGN §2. One relay is active at a time (a session-level advisory lock elects it among all
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
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass
from typing import Any, Final

import asyncpg
import structlog
from nats.js.errors import NotFoundError

from berth_common.bus import Bus
from berth_common.db import Connection, keeps_session_state
from berth_common.events.catalogue import event_class
from berth_common.eventstore.store import NOTIFY_CHANNEL, read_all

RELAY_LOCK: Final = 0x62657274_72656C61  # "berthrela"
CHECKPOINT: Final = "relay"
log = structlog.get_logger("berth.relay")


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

    ``published`` counts events sent (re-sends included), ``failures`` failed attempts (NATS or
    PostgreSQL errors, retried); ``leader`` says whether this relay holds the lock now.
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
    ):
        self.pool, self.bus, self.poll, self.batch = pool, bus, poll_seconds, batch
        self.save_seconds, self.settle = save_seconds, settle_seconds
        self._position: int | None = None  # published up to here (None: read it from the table)
        self._saved = 0  # the position last written to the table
        self._saved_at = 0.0
        self._wake = asyncio.Event()
        self.published = self.failures = 0
        self.leader = False

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
                if leader.is_closed():
                    raise LeadershipLost("relay lock connection closed") from exc
                self.failures += 1
                log.warning("relay.publish_failed", error=repr(exc), retry_in=backoff)
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

    async def relay_once(self) -> int:
        """Publish one batch after the checkpoint; return how many events were published.

        Only the leader may call this (``run`` does); raises whatever NATS or PostgreSQL raise.
        """
        async with self.pool.acquire() as conn:
            if self._position is None:
                self._position = self._saved = await checkpoint(conn)
            events = await read_encoded(conn, self._position, self.batch)
        for event in events:
            await self.bus.publish_encoded(*event.headers, data=event.data)
            self.published += 1
            self._position = event.position
        return len(events)

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

        Covers a crash between publish and checkpoint, however long ago. Returns the checkpoint.
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


@dataclass(frozen=True)
class EncodedEvent:
    """An event as the relay publishes it: ``data`` is the bus envelope's JSON."""

    position: int
    event_id: str
    type: str
    traceparent: str | None
    data: bytes

    @property
    def headers(self) -> tuple[str, int, str, str | None]:
        """``(type, position, event_id, traceparent)``: ``Bus.publish_encoded``'s leading args."""
        return self.type, self.position, self.event_id, self.traceparent


# The bus envelope (``RecordedEvent.envelope`` + ``bus_envelope``), built by PostgreSQL from the
# stored JSON: no decoding into models and re-encoding per event in the relay. Only events of
# an older schema version (to be upcast) take the Python path.
_ENCODED_SQL = """
SELECT position, event_id::text AS event_id, type, schema_version,
       metadata->>'traceparent' AS traceparent,
       (jsonb_build_object(
            'position', position, 'stream', stream, 'version', version, 'type', type,
            'schema_version', schema_version, 'event_id', event_id,
            'recorded_at', recorded_at, 'metadata', metadata,
            'payload', CASE WHEN jsonb_typeof(payload->'body') = 'string'
                            THEN jsonb_set(payload, '{body}', '""') ELSE payload END)
        || CASE WHEN jsonb_typeof(payload->'body') = 'string'
                THEN '{"body_omitted": true}'::jsonb ELSE '{}'::jsonb END)::text AS envelope
  FROM eventstore.events WHERE position > $1 ORDER BY position LIMIT $2
"""


async def read_encoded(conn: Connection, after: int, limit: int) -> list[EncodedEvent]:
    """Committed events after ``after`` in position order, as bus envelopes (JSON bytes).

    Events stored with an older schema version are upcast in Python (``read_all``), so the
    bus always carries the current version of every payload.
    """
    rows = await conn.fetch(_ENCODED_SQL, after, limit)
    out: list[EncodedEvent] = []
    for row in rows:
        if row["schema_version"] == event_class(row["type"]).schema_version:
            data = row["envelope"].encode()
        else:
            [old] = await read_all(conn, row["position"] - 1, 1)
            data = json.dumps(bus_envelope(old.envelope()), separators=(",", ":")).encode()
        out.append(EncodedEvent(row["position"], row["event_id"], row["type"], row["traceparent"], data))
    return out


def bus_envelope(envelope: dict[str, Any]) -> dict[str, Any]:
    """The envelope as published: large manifest bodies are left out (``body_omitted``)."""
    payload = envelope["payload"]
    if isinstance(payload.get("body"), str):
        envelope = {**envelope, "payload": {**payload, "body": ""}, "body_omitted": True}
    return envelope
