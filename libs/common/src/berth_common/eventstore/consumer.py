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
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import asyncpg
import nats.errors
import structlog
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from berth_common.bus import Bus
from berth_common.db import Connection, keeps_session_state
from berth_common.events import RecordedEvent, decode
from berth_common.eventstore.store import EventContext, Projector

log = structlog.get_logger("berth.consumer")


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

    def __init__(
        self,
        pool: asyncpg.Pool,
        bus: Bus,
        name: str,
        checkpoint_table: str,
        projector: Projector,
        types: Iterable[str],
        *,
        retry_seconds: float = 0.5,
        checkpoint: str | None = None,
    ) -> None:
        self.pool, self.bus, self.name = pool, bus, name
        self.key = checkpoint or name
        self.table, self.projector, self.types = checkpoint_table, projector, frozenset(types)
        self.retry_seconds = retry_seconds
        self.applied = self.failures = 0
        self.active = False

    async def run(self) -> None:
        """Run until cancelled: wait to be the active instance, then fetch, apply, acknowledge."""
        async with self.pool.acquire() as conn:
            keeps_session_state(conn)
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

    @property
    def filter_subject(self) -> str:
        """The subjects this consumer needs, as one JetStream filter (NATS 2.9 takes one).

        ``{"manifest.pushed", "manifest.deleted"}`` → ``<prefix>.manifest.>``; one type →
        its subject; types of several aggregates → ``<prefix>.>`` (the rest is skipped here).
        """
        aggregates = {t.split(".", 1)[0] for t in self.types}
        if len(self.types) == 1:
            return f"{self.bus.prefix}.{next(iter(self.types))}"
        if len(aggregates) == 1:
            return f"{self.bus.prefix}.{aggregates.pop()}.>"
        return f"{self.bus.prefix}.>"

    async def _subscribe(self) -> Any:
        """Bind the durable pull consumer, filtered server-side to ``filter_subject``.

        A durable made with another filter (an older Berth delivered every event and skipped
        most) is replaced by one that starts after its acknowledged floor, so nothing is
        delivered twice or missed (redeliveries would be skipped by position anyway).
        """
        subject, start = self.filter_subject, None
        with contextlib.suppress(NotFoundError):
            info = await self.bus.js.consumer_info(self.bus.stream, self.name)
            if info.config.filter_subject != subject:
                start = (info.ack_floor.stream_seq or 0) + 1 if info.ack_floor else 1
                await self.bus.js.delete_consumer(self.bus.stream, self.name)
                log.info("consumer.refiltered", consumer=self.name, subject=subject, start=start)
        policy = (
            {"deliver_policy": DeliverPolicy.ALL}
            if start is None
            else {"deliver_policy": DeliverPolicy.BY_START_SEQUENCE, "opt_start_seq": start}
        )
        return await self.bus.js.pull_subscribe(
            subject,
            durable=self.name,
            stream=self.bus.stream,
            config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, max_ack_pending=1000, ack_wait=60, **policy),
        )

    async def _consume(self) -> None:
        sub = await self._subscribe()
        # Events of other types (only possible when ``filter_subject`` had to be the whole
        # stream) are acknowledged without a transaction: the recorded position is that of the
        # last event applied, as a rebuild records it.
        while True:
            try:
                msgs = await sub.fetch(100, timeout=1.0)
            except (TimeoutError, nats.errors.TimeoutError):
                continue
            except nats.errors.Error as exc:
                log.warning("consumer.fetch_failed", consumer=self.name, error=repr(exc))
                await asyncio.sleep(1.0)
                continue
            for msg in msgs:
                if not self._ignores(msg):
                    await self._apply_until_done(msg)
                with contextlib.suppress(nats.errors.Error):
                    await msg.ack()  # a lost ack means a redelivery, which is skipped

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
                log.warning("consumer.apply_failed", consumer=self.name, error=repr(exc), retry_in=backoff)
            with contextlib.suppress(nats.errors.Error):
                await msg.in_progress()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 30.0)

    async def handle(self, envelope: dict[str, Any]) -> bool:
        """Apply one bus envelope if it is new and of interest; return whether it was applied.

        The projection change and the new position commit together; if the projector raises,
        neither does (the exception propagates). Envelopes of other types, and envelopes at or
        below the recorded position (redeliveries), change nothing.
        """
        if envelope["type"] not in self.types:
            return False
        position = int(envelope["position"])
        async with self.pool.acquire() as conn, conn.transaction():
            seen = await conn.fetchval(
                f"SELECT position FROM {self.table} WHERE name = $1 FOR UPDATE", self.key
            )
            if seen is not None and position <= seen:
                return False
            event = decode(envelope["type"], int(envelope["schema_version"]), envelope["payload"])
            await self.projector(conn, event, context_of_envelope(envelope))
            await conn.execute(
                f"INSERT INTO {self.table}(name, position) VALUES ($1, $2) ON CONFLICT (name)"
                " DO UPDATE SET position = excluded.position",
                self.key,
                position,
            )
        self.applied += 1
        return True


def context_of_envelope(envelope: dict[str, Any]) -> EventContext:
    """The projector context of a bus envelope (the same as ``store.context_of`` gives)."""
    meta = envelope.get("metadata") or {}
    return EventContext(
        str(envelope["stream"]),
        datetime.fromisoformat(envelope["recorded_at"]),
        str(envelope["event_id"]),
        meta.get("actor"),
    )


async def apply_recorded(conn: Connection, projector: Projector, event: RecordedEvent) -> None:
    """Apply a recorded event read from the store (used by rebuilds)."""
    from berth_common.eventstore.store import context_of

    await projector(conn, event.payload, context_of(event))
