"""The outbox relay: publishes committed events, in order, from the event store to JetStream.

DESIGN §2. One relay is active at a time (a session-level advisory lock elects it among all
processes and workers). It reads ``position > checkpoint`` in batches, publishes each with
``Nats-Msg-Id`` = event id, then advances its checkpoint. A crash between publish and
checkpoint re-publishes at most one batch, which JetStream de-duplicates. A NATS outage only
delays publishing: the relay retries from its checkpoint with backoff; nothing is lost.
It wakes on ``NOTIFY berth_events`` (sent by every append) and polls as a fallback.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Final

import asyncpg
import structlog

from berth_common.bus import Bus
from berth_common.eventstore.store import NOTIFY_CHANNEL, read_all

RELAY_LOCK: Final = 0x62657274_72656C61  # "berthrela"
CHECKPOINT: Final = "relay"
log = structlog.get_logger("berth.relay")


class OutboxRelay:
    """Publishes the event store to the bus.

    Args:
        pool: asyncpg pool; one connection is held for leadership and LISTEN while running.
        bus: the connected bus.
        poll_seconds: fallback polling interval when no notification arrives.
        batch: events per read.
    """

    def __init__(self, pool: asyncpg.Pool, bus: Bus, *, poll_seconds: float = 1.0, batch: int = 500):
        self.pool, self.bus, self.poll, self.batch = pool, bus, poll_seconds, batch
        self._wake = asyncio.Event()
        self.published = 0

    async def run(self) -> None:
        """Run until cancelled: wait for leadership, then relay forever."""
        async with self.pool.acquire() as conn:
            while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", RELAY_LOCK):
                await asyncio.sleep(self.poll)
            await conn.add_listener(NOTIFY_CHANNEL, self._notified)
            try:
                await self._relay_forever()
            finally:
                with contextlib.suppress(Exception):
                    await conn.remove_listener(NOTIFY_CHANNEL, self._notified)
                    await conn.execute("SELECT pg_advisory_unlock($1)", RELAY_LOCK)

    def _notified(self, *_: Any) -> None:
        self._wake.set()

    async def _relay_forever(self) -> None:
        backoff = self.poll
        while True:
            try:
                moved = await self.relay_once()
                backoff = self.poll
            except (OSError, asyncio.TimeoutError, Exception) as exc:  # noqa: BLE001
                if isinstance(exc, asyncio.CancelledError):
                    raise
                log.warning("relay.publish_failed", error=repr(exc), retry_in=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            if moved < self.batch:
                self._wake.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll)

    async def relay_once(self) -> int:
        """Publish one batch after the checkpoint; return how many events were published."""
        async with self.pool.acquire() as conn:
            after = await conn.fetchval(
                "SELECT position FROM eventstore.checkpoints WHERE name = $1", CHECKPOINT
            ) or 0
            events = await read_all(conn, after, self.batch)
        if not events:
            return 0
        for event in events:
            await self.bus.publish(bus_envelope(event.envelope()))
        async with self.pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO eventstore.checkpoints(name, position) VALUES ($1, $2) ON CONFLICT (name)"
                " DO UPDATE SET position = excluded.position, updated_at = now()",
                CHECKPOINT, events[-1].position,
            )
        self.published += len(events)
        return len(events)


def bus_envelope(envelope: dict[str, Any]) -> dict[str, Any]:
    """The envelope as published: large manifest bodies are left out (``body_omitted``)."""
    payload = envelope["payload"]
    if isinstance(payload.get("body"), str):
        envelope = {**envelope, "payload": {**payload, "body": ""}, "body_omitted": True}
    return envelope
