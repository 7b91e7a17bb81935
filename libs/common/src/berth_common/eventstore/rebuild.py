"""Rebuild a projection from the event store (``berth projections rebuild``).

docs/DESIGN.md §2: every projection can be rebuilt from the event store and the rebuilt tables equal
the live ones row for row. Projections are only ever changed through their projector, which
makes the rebuild the same computation as the live path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from berth_common.eventstore.handlers import Handlers
from berth_common.eventstore.store import context_of, read_all


@dataclass(frozen=True)
class ProjectionSpec:
    """A rebuildable projection: its tables (truncated first) and its projector, whose
    handlers say which events it applies (``types``).

    ``checkpoint``: for bus-fed projections, ``(table, consumer name)`` to reset to the end.
    """

    name: str
    tables: Sequence[str]
    projector: Handlers
    checkpoint: tuple[str, str] | None = None

    @property
    def types(self) -> tuple[str, ...]:
        """The event type names the projection applies (derived from its handlers)."""
        return self.projector.types


async def rebuild(pool: asyncpg.Pool, spec: ProjectionSpec, batch: int = 2000) -> int:
    """Truncate ``spec.tables`` and replay every matching event, in one transaction.

    Every stored event is decoded, so an event of a type this code does not know raises
    ``berth_common.events.catalogue.UnknownEventType`` (nothing is committed) instead of being
    skipped. Returns the number of events applied. Concurrent writers and the projection's consumer
    wait (the tables are locked); a bus-fed projection's checkpoint is set to the last event
    it applied (as its consumer records it), so the consumer skips what the rebuild applied.
    """
    applied = 0
    # The checkpoint table is locked first: a live consumer locks its checkpoint row, then the
    # projection tables; taking them in the same order cannot deadlock with it.
    locked = ([spec.checkpoint[0]] if spec.checkpoint else []) + list(spec.tables)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(f"LOCK TABLE {', '.join(locked)} IN ACCESS EXCLUSIVE MODE")
        await conn.execute(f"TRUNCATE {', '.join(spec.tables)}")
        after, last, types = 0, 0, frozenset(spec.types)
        while True:
            events = await read_all(conn, after, batch)
            if not events:
                break
            for event in events:
                if event.type in types:
                    await spec.projector(conn, event.payload, context_of(event))
                    applied += 1
                    last = event.position
            after = events[-1].position
        if spec.checkpoint is not None:
            table, name = spec.checkpoint
            await conn.execute(
                f"INSERT INTO {table}(name, position) VALUES ($1, $2) ON CONFLICT (name)"
                " DO UPDATE SET position = excluded.position",
                name,
                last,
            )
    return applied
