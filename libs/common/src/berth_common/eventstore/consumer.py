"""Durable JetStream consumers that apply events to a projection exactly once in effect.

DESIGN §2: a consumer applies an event to its projection and records its position **in the
same transaction**; a redelivered event whose position is not past the recorded one is
acknowledged and skipped, so redelivery is harmless. Events are applied in stream order
(= position order, see ``relay``): one instance per checkpoint is active at a time (a
session advisory lock; other replicas stand by), and a failing event is retried in place
rather than skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import asyncpg
import nats.errors
import structlog
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from berth_common.bus import Bus
from berth_common.db import Connection
from berth_common.events import RecordedEvent, decode
from berth_common.eventstore.store import EventContext, Projector

log = structlog.get_logger("berth.consumer")
SKIP_RECORD_SECONDS = 1.0  # how long the position of ignored events may lag under steady traffic


class ProjectionConsumer:
    """Feeds ``projector`` with the bus events of ``types``.

    Args:
        name: durable consumer name (unique per projection), also its checkpoint key.
        checkpoint_table: the owner's table ``(name text primary key, position bigint)``.
        types: event type names to apply; others are acknowledged and skipped.
        retry_seconds: first delay before re-applying an event whose projector failed.
        checkpoint: the key of its row in ``checkpoint_table`` (default ``name``); must equal
            the ``ProjectionSpec.checkpoint`` name so that a rebuild moves this consumer on.

    ``applied`` counts events applied (committed), ``failures`` failed attempts (each retried);
    ``active`` says whether this instance holds its name's lock and consumes.
    """

    def __init__(self, pool: asyncpg.Pool, bus: Bus, name: str, checkpoint_table: str,
                 projector: Projector, types: Iterable[str], *, retry_seconds: float = 0.5,
                 checkpoint: str | None = None) -> None:
        self.pool, self.bus, self.name = pool, bus, name
        self.key = checkpoint or name
        self.table, self.projector, self.types = checkpoint_table, projector, frozenset(types)
        self.retry_seconds = retry_seconds
        self.applied = self.failures = 0
        self.active = False

    async def run(self) -> None:
        """Run until cancelled: wait to be the active instance, then fetch, apply, acknowledge."""
        async with self.pool.acquire() as conn:
            while True:
                if await conn.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", self.key):
                    break
                await asyncio.sleep(1.0)
            self.active = True
            try:
                await self._consume()
            finally:
                self.active = False
                with contextlib.suppress(Exception):
                    await conn.execute("SELECT pg_advisory_unlock(hashtext($1))", self.key)

    async def _consume(self) -> None:
        sub = await self.bus.js.pull_subscribe(
            f"{self.bus.prefix}.>", durable=self.name, stream=self.bus.stream,
            config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.ALL,
                                  max_ack_pending=1000, ack_wait=60),
        )
        # Events of other types are acknowledged without a transaction each: only the newest
        # one is remembered (``skipped``) and its position recorded when the bus goes quiet
        # or after ``SKIP_RECORD_SECONDS`` (an applied event records a later position anyway).
        # Losing that record in a crash only means the ignored events are ignored again.
        skipped: Msg | None = None
        skipped_since = 0.0
        while True:
            try:
                msgs = await sub.fetch(100, timeout=1.0)
            except (TimeoutError, nats.errors.TimeoutError):
                if skipped is not None:
                    await self._apply_until_done(skipped)
                    skipped = None
                continue
            except nats.errors.Error as exc:
                log.warning("consumer.fetch_failed", consumer=self.name, error=repr(exc))
                await asyncio.sleep(1.0)
                continue
            for msg in msgs:
                if self._ignores(msg):
                    skipped_since = skipped_since if skipped is not None else time.monotonic()
                    skipped = msg
                else:
                    await self._apply_until_done(msg)
                    skipped = None
                with contextlib.suppress(nats.errors.Error):
                    await msg.ack()  # a lost ack means a redelivery, which is skipped
            if skipped is not None and time.monotonic() - skipped_since >= SKIP_RECORD_SECONDS:
                await self._apply_until_done(skipped)
                skipped = None

    def _ignores(self, msg: Msg) -> bool:
        """Whether ``msg`` is of a type this consumer does not apply (unparsable: not ignored)."""
        try:
            return json.loads(msg.data)["type"] not in self.types
        except (ValueError, KeyError, TypeError):
            return False

    async def _apply_until_done(self, msg: Msg) -> None:
        """Apply ``msg``, retrying with backoff: the projection never skips past a failure.

        Events must be applied in order, so a failing event (database down, a bug) holds the
        consumer back instead of being left for a redelivery that could come after later events.
        """
        backoff = self.retry_seconds
        while True:
            try:
                await self.handle(json.loads(msg.data))
                return
            except Exception as exc:
                self.failures += 1
                log.warning("consumer.apply_failed", consumer=self.name, error=repr(exc),
                            retry_in=backoff)
            with contextlib.suppress(nats.errors.Error):
                await msg.in_progress()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 30.0)

    async def handle(self, envelope: dict[str, Any]) -> bool:
        """Apply one bus envelope if it is new and of interest; return whether it was applied.

        The projection change and the new position commit together; if the projector raises,
        neither does (the exception propagates). Envelopes at or below the recorded position
        (redeliveries) change nothing.
        """
        position = int(envelope["position"])
        async with self.pool.acquire() as conn, conn.transaction():
            seen = await conn.fetchval(
                f"SELECT position FROM {self.table} WHERE name = $1 FOR UPDATE", self.key
            )
            if seen is not None and position <= seen:
                return False
            applied = envelope["type"] in self.types
            if applied:
                event = decode(envelope["type"], int(envelope["schema_version"]), envelope["payload"])
                await self.projector(conn, event, context_of_envelope(envelope))
            await conn.execute(
                f"INSERT INTO {self.table}(name, position) VALUES ($1, $2) ON CONFLICT (name)"
                " DO UPDATE SET position = excluded.position", self.key, position,
            )
        self.applied += applied
        return applied


def context_of_envelope(envelope: dict[str, Any]) -> EventContext:
    """The projector context of a bus envelope (the same as ``store.context_of`` gives)."""
    meta = envelope.get("metadata") or {}
    return EventContext(str(envelope["stream"]), datetime.fromisoformat(envelope["recorded_at"]),
                        str(envelope["event_id"]), meta.get("actor"))


async def apply_recorded(conn: Connection, projector: Projector, event: RecordedEvent) -> None:
    """Apply a recorded event read from the store (used by rebuilds)."""
    from berth_common.eventstore.store import context_of

    await projector(conn, event.payload, context_of(event))
