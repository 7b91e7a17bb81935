"""Append events with optimistic concurrency and update projections in the same transaction.

docs/DESIGN.md §2: the owner of an aggregate appends its events and updates its own projection tables
in one transaction, so a client that got ``201`` reads its own write at once.

Ordering: every appending transaction takes one transaction-scoped advisory lock just before
it inserts its events, and holds it until commit. Positions are therefore handed out in commit
order and a reader that has seen position *p* will never later see a smaller one commit — the
outbox relay and rebuilds can read ``position > checkpoint`` without skipping an event. The
cost is that commits of appending transactions are serialised, so the critical section is kept
free of client round trips: one simple-protocol message stages the events in a
transaction-local setting (the JSON inline as a dollar-quoted literal), then
``eventstore.append_staged()`` takes the lock, checks versions, inserts and notifies, and
``COMMIT`` follows, all server-side (migration ``0003_append_staged.sql``). Measured in
``docs/PERFORMANCE.md``.
"""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final, TypeVar

import asyncpg

from berth_common.db import Connection
from berth_common.events import Event, Metadata, RecordedEvent, decode
from berth_common.telemetry.tracing import traced_append

APPEND_LOCK: Final = 0x62657274_68657674  # "berthevt"
NOTIFY_CHANNEL: Final = "berth_events"
T = TypeVar("T")

ANY: Final = -1
NO_STREAM: Final = 0
CONFLICT_SQLSTATE: Final = "BE409"  # raised by eventstore.append_staged()
APPEND_AND_COMMIT_SQL = "SELECT eventstore.append_staged(); COMMIT"  # after the staging statement


class ConcurrencyError(Exception):
    """A stream's version was not what the writer expected (someone else wrote first)."""


@dataclass(frozen=True)
class EventContext:
    """What a projector knows about an event besides its payload."""

    stream: str
    occurred_at: datetime
    event_id: str
    actor: str | None


Projector = Callable[[Connection, Event, EventContext], Awaitable[None]]


@dataclass
class _Pending:
    stream: str
    event: Event
    expected_version: int
    metadata: Metadata


@dataclass
class UnitOfWork:
    """One transaction: reads, projection updates (through ``emit``) and the events to append.

    Use ``EventStore.unit_of_work()``; call ``emit`` for every state change. The projector runs
    at once (so later reads in the same transaction see it); the events are inserted at commit.
    """

    conn: Connection
    projector: Projector | None
    metadata: Metadata
    pending: list[_Pending] = field(default_factory=list)

    async def emit(
        self, stream_or_event: str | Event, event: Event | None = None, *, expected_version: int = ANY
    ) -> None:
        """Record an event on its stream and apply it to the projections now.

        Call ``emit(event)``: the stream is ``event.stream``. ``emit(stream, event)`` appends to
        the stream given (tests, and events of classes without a ``stream_template``).
        ``expected_version``: ``ANY``; ``NO_STREAM`` (the stream must not exist yet); or the
        stream's current version. Checked at commit; a mismatch raises ``ConcurrencyError``.

        Raises:
            TypeError: ``emit(stream)`` without an event.
        """
        if isinstance(stream_or_event, Event):
            event, stream = stream_or_event, stream_or_event.stream
        elif event is None:
            raise TypeError("emit(stream) needs an event")
        else:
            stream = stream_or_event
        meta = Metadata(
            actor=self.metadata.actor,
            request_id=self.metadata.request_id,
            traceparent=self.metadata.traceparent,
            occurred_at=self.metadata.occurred_at,
        )
        self.pending.append(_Pending(stream, event, expected_version, meta))
        if self.projector is not None:
            ctx = EventContext(stream, meta.occurred_at, str(meta.event_id), meta.actor)
            await self.projector(self.conn, event, ctx)


@contextlib.asynccontextmanager
async def joined_unit_of_work(
    conn: Connection, projector: Projector | None = None, metadata: Metadata | None = None
) -> AsyncIterator[UnitOfWork]:
    """A unit of work inside a transaction the caller already holds open on ``conn``.

    The emitted events are appended (under the append lock) when the block exits cleanly,
    without committing: they commit, or roll back, with the caller's transaction — a
    consumer's reaction and its recorded position are one transaction (exactly-once effect).

    Raises:
        ConcurrencyError: an expected version did not match (the caller must roll back).
    """
    uow = UnitOfWork(conn, projector, metadata or Metadata())
    yield uow
    await _append(conn, uow.pending, commit=False)


class EventStore:
    """The event store in PostgreSQL (schema ``eventstore``).

    Args:
        pool: the asyncpg pool (with the JSON codecs of ``berth_common.db``).
    """

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @contextlib.asynccontextmanager
    async def unit_of_work(
        self, projector: Projector | None = None, metadata: Metadata | None = None
    ) -> AsyncIterator[UnitOfWork]:
        """Open a transaction; on a clean exit append the emitted events and commit.

        Raises:
            ConcurrencyError: an expected version did not match (nothing is committed).
        """
        async with self.pool.acquire() as conn:
            await conn.execute("BEGIN")
            try:
                uow = UnitOfWork(conn, projector, metadata or Metadata())
                yield uow
                await _commit(conn, uow.pending)
            except BaseException:
                if not conn.is_closed() and conn.is_in_transaction():
                    with contextlib.suppress(Exception):  # the pool's reset rolls back anyway
                        await conn.execute("ROLLBACK")
                raise

    async def read_all(
        self, after: int = 0, limit: int = 1000, types: list[str] | None = None
    ) -> list[RecordedEvent]:
        """Committed events with ``position > after``, in position order (at most ``limit``)."""
        async with self.pool.acquire() as conn:
            return await read_all(conn, after, limit, types)

    async def read_stream(self, stream: str) -> list[RecordedEvent]:
        """Every event of ``stream`` in version order."""
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(_SELECT + " WHERE stream = $1 ORDER BY version", stream)
        return [recorded(r) for r in rows]


async def run_with_retry(
    store: EventStore,
    work: Callable[[UnitOfWork], Awaitable[T]],
    *,
    projector: Projector | None = None,
    metadata: Metadata | None = None,
    attempts: int = 5,
) -> T:
    """Run ``work`` in a unit of work, retrying on ``ConcurrencyError`` and serialization failures.

    Returns ``work``'s result. Raises the last ``ConcurrencyError`` after ``attempts`` tries.
    """
    for attempt in range(attempts):
        try:
            async with store.unit_of_work(projector, metadata) as uow:
                return await work(uow)
        except (
            ConcurrencyError,
            asyncpg.SerializationError,
            asyncpg.DeadlockDetectedError,
            asyncpg.UniqueViolationError,
        ):
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


@traced_append
async def _commit(conn: Connection, pending: list[_Pending]) -> None:
    """Commit the open transaction, appending ``pending`` (if any) under the append lock.

    Raises:
        ConcurrencyError: an expected version did not match (the caller rolls back).
    """
    await _append(conn, pending, commit=True)


async def _append(conn: Connection, pending: list[_Pending], *, commit: bool) -> None:
    """Append ``pending`` in the open transaction, and commit it if ``commit``."""
    if not pending:
        if commit:
            await conn.execute("COMMIT")
        return
    staged = _staged(pending)
    append = APPEND_AND_COMMIT_SQL if commit else "SELECT eventstore.append_staged()"
    try:
        await conn.execute(f"SELECT set_config('berth.append', {dollar_quoted(staged)}, true); {append}")
    except asyncpg.PostgresError as exc:
        if exc.sqlstate == CONFLICT_SQLSTATE:
            raise ConcurrencyError(str(exc)) from None
        raise


def dollar_quoted(text: str) -> str:
    """``text`` as a PostgreSQL dollar-quoted literal whose tag does not occur in it.

    Inside ``$tag$…$tag$`` nothing is an escape, so any text is safe once the tag is absent
    (PostgreSQL docs, "Dollar-Quoted String Constants"). Raises ``ValueError`` for NUL, which
    no PostgreSQL text can hold (``json.dumps`` never produces it).
    """
    if "\x00" in text:
        raise ValueError("text with NUL cannot be sent to PostgreSQL")
    while True:
        tag = f"$b{secrets.token_hex(8)}$"
        if tag not in text:
            return f"{tag}{text}{tag}"


def _staged(pending: list[_Pending]) -> str:
    """The JSON array ``eventstore.append_staged()`` reads (shape: see its migration)."""
    rows = []
    for i, p in enumerate(pending):
        at = p.metadata.occurred_at
        rows.append(
            {
                "i": i,
                "s": p.stream,
                "x": p.expected_version,
                "t": p.event.type_name,
                "sv": p.event.schema_version,
                "p": p.event.model_dump(mode="json"),
                "m": p.metadata.to_json(),
                "e": str(p.metadata.event_id),
                "r": (at if at.tzinfo else at.replace(tzinfo=UTC)).isoformat(),
            }
        )
    return json.dumps(rows)


_SELECT = (
    "SELECT position, stream, version, type, schema_version, payload, metadata, event_id,"
    " recorded_at FROM eventstore.events"
)


async def read_all(
    conn: Connection, after: int, limit: int, types: list[str] | None = None
) -> list[RecordedEvent]:
    """Committed events after ``after`` in position order (see ``EventStore.read_all``)."""
    if types is None:
        rows = await conn.fetch(_SELECT + " WHERE position > $1 ORDER BY position LIMIT $2", after, limit)
    else:
        rows = await conn.fetch(
            _SELECT + " WHERE position > $1 AND type = ANY($3::text[]) ORDER BY position LIMIT $2",
            after,
            limit,
            types,
        )
    return [recorded(r) for r in rows]


def recorded(row: asyncpg.Record) -> RecordedEvent:
    """A ``RecordedEvent`` from a row of ``eventstore.events`` (every column; payload upcast).

    Raises:
        UnknownEventType, ValueError: as ``decode``.
    """
    return RecordedEvent(
        position=row["position"],
        stream=row["stream"],
        version=row["version"],
        type=row["type"],
        schema_version=row["schema_version"],
        payload=decode(row["type"], row["schema_version"], row["payload"]),
        metadata=row["metadata"],
        event_id=row["event_id"],
        recorded_at=row["recorded_at"],
    )


def context_of(event: RecordedEvent) -> EventContext:
    """The projector context of a recorded event (for rebuilds and consumers)."""
    return EventContext(event.stream, event.recorded_at, str(event.event_id), event.metadata.get("actor"))
