"""Durable JetStream consumers that apply events to a projection exactly once in effect.

docs/DESIGN.md §2: a consumer applies an event to its projection and records its position **in the
same transaction**; an event at or below the recorded position (a redelivery) is acknowledged
and skipped, so redelivery is harmless. One instance per checkpoint is active at a time (a
session advisory lock; other replicas stand by; a lost lock connection stops the instance),
and a failing event is retried in place rather than skipped.

The event store is the source of truth, the bus the carrier and the doorbell
(``catchup``): before applying the message at position *q* with *p* recorded, the events of
the consumer's types with *p* < position < *q* that the bus never delivered are applied first,
in position order, in the same transaction; a message whose payload was omitted
(``envelopes``) is read from the store the same way. When idle, every ``catch_up_seconds``,
the consumer checks that its durable still exists (making it, and the stream, again if not)
and applies any event of its types beyond its position. So a lost stream, a purged stream or
a re-filtered durable is harmless.
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
from nats.js.errors import NotFoundError

from berth_common.bus import Bus
from berth_common.db import Connection, keeps_session_state
from berth_common.events import RecordedEvent, decode
from berth_common.eventstore.catchup import BATCH, lock_and_read, record
from berth_common.eventstore.durables import filter_subjects, one_filter, subscribe
from berth_common.eventstore.envelopes import is_omitted
from berth_common.eventstore.failures import FailureLog, connection_gone, describe
from berth_common.eventstore.handlers import Handlers
from berth_common.eventstore.store import EventContext, Projector, context_of
from berth_common.telemetry import CONSUMER_APPLY_FAILURES, CONSUMER_LAG_EVENTS
from berth_common.telemetry.tracing import traced_apply

log = structlog.get_logger("berth.consumer")


class ConsumerLockLost(RuntimeError):
    """The connection holding the consumer's advisory lock broke; another instance may be
    active now (the supervisor restarts this one, which then waits for the lock)."""


class EventMissing(LookupError):
    """A message names an event the event store does not hold (another database's stream?)."""


class ProjectionConsumer:
    """Feeds ``projector`` with the events of ``types``, from the bus and the event store.

    Args:
        name: durable consumer name (unique per projection).
        checkpoint_table: the owner's table ``(name text primary key, position bigint)``.
        projector: what applies an event; a ``Handlers`` registry names the types itself.
        types: event type names to apply (default: the ``Handlers``' types); others are
            acknowledged and skipped.
        retry_seconds: first delay before re-applying an event whose projector failed.
        checkpoint: the key of its row in ``checkpoint_table`` (default ``name``); must equal
            the ``ProjectionSpec.checkpoint`` name so that a rebuild moves this consumer on.
        catch_up_seconds: idle interval between checks of the durable and the store (default
            ``bus.catch_up_seconds``, setting ``bus.catch_up_seconds``).
        logger: where error lines about failing events go (default: ``berth.consumer``).
        bus_types: on a NATS server that takes one filter subject (2.9), the types the durable
            receives (default: all ``types``). The others then reach the consumer by catch-up
            only — before the next message it receives, or at the next idle check — so rare
            types of another aggregate (gc's ``feed.deleted``) need not open the durable to the
            whole stream.

    ``applied`` counts events applied (committed), ``from_store`` those of them the bus had not
    delivered (read from the store), ``failures`` failed attempts (each retried), ``durables_made``
    durables made again after they were lost; ``active`` says whether this instance holds its
    name's lock and consumes.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        bus: Bus,
        name: str,
        checkpoint_table: str,
        projector: Projector,
        types: Iterable[str] | None = None,
        *,
        retry_seconds: float = 0.5,
        checkpoint: str | None = None,
        catch_up_seconds: float | None = None,
        logger: Any = None,
        bus_types: Iterable[str] | None = None,
    ) -> None:
        self.pool, self.bus, self.name = pool, bus, name
        self.key = checkpoint or name
        self.table, self.projector = checkpoint_table, projector
        self.types = frozenset(_consumed(projector, types, name))
        self.bus_types = frozenset(bus_types) if bus_types is not None else self.types
        if not self.bus_types <= self.types:
            raise ValueError(f"{name}: bus types {sorted(self.bus_types - self.types)} are not applied")
        self.retry_seconds = retry_seconds
        self.catch_up_seconds = bus.catch_up_seconds if catch_up_seconds is None else catch_up_seconds
        self.applied = self.from_store = self.failures = self.durables_made = 0
        self.active = False
        self._failure_log = FailureLog(logger or log, "consumer.apply_failed")
        self._lock: Connection | None = None
        self._applying: tuple[int | None, str | None] = (None, None)  # for failure lines

    async def run(self) -> None:
        """Run until cancelled: wait to be the active instance, then fetch, apply, acknowledge.

        Raises:
            ConsumerLockLost: the lock connection broke (the supervisor restarts the consumer).
        """
        async with self.pool.acquire() as conn:
            keeps_session_state(conn)
            while True:
                if await conn.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", self.key):
                    break
                await asyncio.sleep(1.0)
            self.active, self._lock = True, conn
            try:
                await self._consume()
            finally:
                self.active, self._lock = False, None
                with contextlib.suppress(Exception):
                    await conn.execute("SELECT pg_advisory_unlock(hashtext($1))", self.key)

    def _check_lock(self) -> None:
        if self._lock is not None and connection_gone(self._lock):
            raise ConsumerLockLost(f"{self.name}: advisory lock connection closed")

    @property
    def filter_subject(self) -> str:
        """The durable's filter on a server that takes one (NATS 2.9): ``bus_types``'."""
        return one_filter(self.bus.prefix, self.bus_types)

    def filter_subjects(self) -> list[str]:
        """The durable's filter on the connected server (``durables.filter_subjects``)."""
        return filter_subjects(self.bus, self.types, self.bus_types)

    async def _subscribe(self) -> Any:
        """Bind the durable (``durables.subscribe``), making it and the stream if missing."""
        return await subscribe(self.bus, self.name, self.filter_subjects())

    async def _consume(self) -> None:
        sub = await self._subscribe()
        await self._catch_up_logged()
        due = time.monotonic() + self.catch_up_seconds
        while True:
            self._check_lock()
            if time.monotonic() >= due:
                sub = await self._checked(sub)
                due = time.monotonic() + self.catch_up_seconds
            try:
                msgs = await sub.fetch(100, timeout=1.0)
            except (TimeoutError, nats.errors.TimeoutError):
                continue
            except nats.errors.Error as exc:  # e.g. 503: the stream or durable is gone
                log.warning("consumer.fetch_failed", consumer=self.name, error=repr(exc))
                await asyncio.sleep(1.0)
                due = 0.0  # check the durable now
                continue
            for msg in msgs:
                if not self._ignores(msg) and await self._apply_until_done(msg):
                    due = time.monotonic() + self.catch_up_seconds  # caught up to here
                with contextlib.suppress(nats.errors.Error):
                    await msg.ack()  # a lost ack means a redelivery, which is skipped
            with contextlib.suppress(Exception):
                CONSUMER_LAG_EVENTS.labels(self.name).set(msgs[-1].metadata.num_pending)

    async def _checked(self, sub: Any) -> Any:
        """The idle check: make the durable again if it is gone (a lost stream takes its
        durables along), then apply what the store holds beyond the recorded position."""
        try:
            await self.bus.js.consumer_info(self.bus.stream, self.name)
        except NotFoundError:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
            try:
                sub = await self._subscribe()
            except nats.errors.Error as exc:  # tried again at the next check
                log.warning("consumer.check_failed", consumer=self.name, error=describe(exc))
            else:
                self.durables_made += 1
                log.warning("consumer.durable_recreated", consumer=self.name, stream=self.bus.stream)
        except nats.errors.Error as exc:  # NATS unreachable: the store check still runs
            log.warning("consumer.check_failed", consumer=self.name, error=describe(exc))
        await self._catch_up_logged()
        return sub

    async def _catch_up_logged(self) -> None:
        try:
            count = await self.catch_up()
        except Exception as exc:
            self._count_failure(exc)
            return
        CONSUMER_LAG_EVENTS.labels(self.name).set(0)
        if count:
            log.info("consumer.caught_up", consumer=self.name, events=count)

    def _ignores(self, msg: Msg) -> bool:
        """Whether ``msg`` is of a type this consumer does not apply (unparsable: not ignored)."""
        kind = (msg.headers or {}).get("Berth-Type")
        if kind is not None:
            return kind not in self.types
        try:
            return json.loads(msg.data)["type"] not in self.types
        except (ValueError, KeyError, TypeError):
            return False

    async def _apply_until_done(self, msg: Msg) -> bool:
        """Apply ``msg``, retrying with backoff: the projection never skips past a failure.

        Events must be applied in order, so a failing event (database down, a bug) holds the
        consumer back instead of being left for a redelivery that could come after later events.
        Each failure counts in ``berth_consumer_apply_failures_total`` and is an error line
        (rate-limited) with the event's position and type. Returns whether it was applied.

        Raises:
            ConsumerLockLost: the lock connection broke meanwhile.
        """
        backoff = self.retry_seconds
        while True:
            try:
                applied = await self.handle(json.loads(msg.data))
                self._failure_log.recovered()
                return applied
            except Exception as exc:
                self._count_failure(exc, backoff)
            with contextlib.suppress(nats.errors.Error):
                await msg.in_progress()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 30.0)
            self._check_lock()

    def _count_failure(self, exc: Exception, retry_in: float = 0.0) -> None:
        self.failures += 1
        CONSUMER_APPLY_FAILURES.labels(self.name).inc()
        position, kind = self._applying
        self._failure_log.failed(
            (position, type(exc)),
            consumer=self.name,
            position=position,
            type=kind,
            error=describe(exc),
            retry_in=retry_in,
        )

    @traced_apply
    async def handle(self, envelope: dict[str, Any]) -> bool:
        """Apply one bus envelope if it is new and of interest; return whether it was applied.

        First the events of this consumer's types that the store holds between the recorded
        position and the envelope's (``catchup``), then the envelope's event (read from the
        store when its payload was omitted), then the new position: one transaction (a very
        long gap commits in steps of ``catchup.BATCH`` events). If the projector raises,
        nothing of that transaction commits (the exception propagates). Envelopes of other
        types, and envelopes at or below the recorded position (redeliveries), change nothing.

        Raises:
            EventMissing: the envelope's payload was omitted and the store has no such event.
        """
        self._applying = (envelope.get("position"), envelope.get("type"))
        if envelope["type"] not in self.types:
            return False
        position = int(envelope["position"])
        inline = None if is_omitted(envelope) else envelope
        while True:
            done = await self._apply_through(position, inline)
            if done is not None:
                return done

    async def _apply_through(self, position: int, inline: dict[str, Any] | None) -> bool | None:
        """One transaction of ``handle``; ``None``: a batch of the gap committed, call again."""
        below = position if inline is not None else position + 1
        async with self.pool.acquire() as conn, conn.transaction():
            seen, events = await lock_and_read(conn, self.table, self.key, self.types, below, BATCH)
            if position <= seen:
                return False
            missed = [e for e in events if e.position < position]
            await self._apply_recorded(conn, missed)
            if len(events) == BATCH and events[-1].position < position:
                await record(conn, self.table, self.key, events[-1].position)
                self._counted(len(missed), len(missed))
                return None
            if inline is not None:
                self._applying = (position, inline["type"])
                event = decode(inline["type"], int(inline["schema_version"]), inline["payload"])
                await self.projector(conn, event, context_of_envelope(inline))
            elif not events or events[-1].position != position:
                raise EventMissing(f"{self.name}: no event at position {position} of {sorted(self.types)}")
            else:
                await self._apply_recorded(conn, events[-1:])
            await record(conn, self.table, self.key, position)
        self._counted(len(missed) + 1, len(missed))
        return True

    async def catch_up(self) -> int:
        """Apply every event of this consumer's types beyond its recorded position, from the
        store, in batches of ``catchup.BATCH`` (one transaction each). Returns how many."""
        count = 0
        while True:
            async with self.pool.acquire() as conn, conn.transaction():
                _, events = await lock_and_read(conn, self.table, self.key, self.types)
                if not events:
                    return count
                await self._apply_recorded(conn, events)
                await record(conn, self.table, self.key, events[-1].position)
            self._counted(len(events), len(events))
            count += len(events)
            if len(events) < BATCH:
                return count

    async def _apply_recorded(self, conn: Connection, events: list[RecordedEvent]) -> None:
        for event in events:
            self._applying = (event.position, event.type)
            await self.projector(conn, event.payload, context_of(event))

    def _counted(self, applied: int, from_store: int) -> None:
        self.applied += applied
        self.from_store += from_store


def _consumed(projector: Projector, types: Iterable[str] | None, name: str) -> list[str]:
    """The types a consumer applies: ``types``, or its ``Handlers``' types; each must have a
    handler when the projector is a ``Handlers`` (else a redelivered event would fail later).

    Raises:
        ValueError: no types given for a plain function, or a type without a handler.
    """
    if isinstance(projector, Handlers):
        wanted = list(projector.types if types is None else types)
        unhandled = [t for t in wanted if not projector.handles(t)]
        if unhandled:
            raise ValueError(f"{name}: no handler for {unhandled} in projector {projector.name!r}")
        return wanted
    if types is None:
        raise ValueError(f"{name}: a plain projector function needs its types")
    return list(types)


def context_of_envelope(envelope: dict[str, Any]) -> EventContext:
    """The projector context of a bus envelope (the same as ``store.context_of`` gives)."""
    meta = envelope.get("metadata") or {}
    return EventContext(
        str(envelope["stream"]),
        datetime.fromisoformat(envelope["recorded_at"]),
        str(envelope["event_id"]),
        meta.get("actor"),
    )
