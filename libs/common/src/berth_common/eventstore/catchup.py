"""The consumers' read side of the event store: what a consumer missed, under its position lock.

docs/ARCHITECTURE.md, "Events are the source of truth": the store is the record, the bus the
carrier and the doorbell. A consumer applies an event in a transaction that first locks its
position row and reads, in the same query, the events of its types between its recorded
position and the event's (those the bus never delivered: a lost or purged stream, a durable
made again, a batch fetched by an instance that died, a message whose payload was omitted).
One statement: the row lock and, per type, an index range scan of ``(type, position)``
(``events_type_idx``), each at most ``limit`` rows, so a long backlog is read in batches at a
cost independent of its length.

Positions are handed out in commit order (``store``, "Ordering"), so every event below a
position the consumer has seen on the bus is committed and visible to this query.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from berth_common.db import Connection
from berth_common.events import RecordedEvent
from berth_common.eventstore.store import recorded

BATCH: Final = 1000  # events read (and applied in one transaction) at most per step
UNBOUNDED: Final = 2**63 - 1

_LOCKED_SQL = """
SELECT c.position AS seen, e.position, e.stream, e.version, e.type, e.schema_version, e.payload,
       e.metadata, e.event_id, e.recorded_at
  FROM (SELECT position FROM {table} WHERE name = $1 FOR UPDATE) c
  LEFT JOIN LATERAL (
       SELECT ev.* FROM unnest($2::text[]) AS t(type)
       CROSS JOIN LATERAL (
             SELECT * FROM eventstore.events x
              WHERE (x.type, x.position) > (t.type, c.position)
                AND (x.type, x.position) < (t.type, $3)
              ORDER BY x.type, x.position LIMIT $4) ev
        ORDER BY ev.position LIMIT $4) e ON true
 ORDER BY e.position
"""


async def lock_and_read(
    conn: Connection,
    table: str,
    key: str,
    types: Iterable[str],
    below: int = UNBOUNDED,
    limit: int = BATCH,
) -> tuple[int, list[RecordedEvent]]:
    """Lock the consumer's position row (made at 0 if missing) and read what it has not applied.

    Must run inside a transaction (the lock lasts until it ends). ``table``: the owner's
    ``(name text primary key, position bigint)`` table; ``key``: the consumer's row. Returns
    ``(recorded position, events of types with recorded < position < below)``, the latter in
    position order, at most ``limit`` (payloads upcast to the current schema version).

    Raises:
        UnknownEventType, ValueError: a stored event cannot be decoded.
    """
    sql, names = _LOCKED_SQL.format(table=table), sorted(types)
    rows = await conn.fetch(sql, key, names, below, limit)
    if not rows:  # no row yet: make it, so concurrent appliers serialise on its lock
        await conn.execute(
            f"INSERT INTO {table}(name, position) VALUES ($1, 0) ON CONFLICT (name) DO NOTHING", key
        )
        rows = await conn.fetch(sql, key, names, below, limit)
    return int(rows[0]["seen"]), [recorded(r) for r in rows if r["position"] is not None]


async def record(conn: Connection, table: str, key: str, position: int) -> None:
    """Set the consumer's recorded position (its row is locked by ``lock_and_read``)."""
    await conn.execute(f"UPDATE {table} SET position = $2 WHERE name = $1", key, position)
