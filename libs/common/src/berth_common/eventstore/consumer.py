"""Durable JetStream consumers that apply events to a projection exactly once in effect.

DESIGN §2: a consumer applies an event to its projection and records its position **in the
same transaction**; a redelivered event whose position is not past the recorded one is
acknowledged and skipped, so redelivery is harmless.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable

import asyncpg
import nats.errors
import structlog
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from berth_common.bus import Bus
from berth_common.events import RecordedEvent, decode
from berth_common.eventstore.store import EventContext, Projector

log = structlog.get_logger("berth.consumer")


class ProjectionConsumer:
    """Feeds ``projector`` with the bus events of ``types``.

    Args:
        name: durable consumer name (unique per projection), also its checkpoint key.
        checkpoint_table: the owner's table ``(name text primary key, position bigint)``.
        types: event type names to apply; others are acknowledged and skipped.
    """

    def __init__(self, pool: asyncpg.Pool, bus: Bus, name: str, checkpoint_table: str,
                 projector: Projector, types: Iterable[str]) -> None:
        self.pool, self.bus, self.name = pool, bus, name
        self.table, self.projector, self.types = checkpoint_table, projector, frozenset(types)
        self.applied = 0

    async def run(self) -> None:
        """Run until cancelled."""
        sub = await self.bus.js.pull_subscribe(
            f"{self.bus.prefix}.>", durable=self.name, stream=self.bus.stream,
            config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.ALL,
                                  max_ack_pending=1000, ack_wait=60),
        )
        while True:
            try:
                msgs = await sub.fetch(100, timeout=1.0)
            except (nats.errors.TimeoutError, asyncio.TimeoutError):
                continue
            except nats.errors.Error as exc:
                log.warning("consumer.fetch_failed", consumer=self.name, error=repr(exc))
                await asyncio.sleep(1.0)
                continue
            for msg in msgs:
                await self.handle(json.loads(msg.data))
                await msg.ack()

    async def handle(self, envelope: dict[str, object]) -> bool:
        """Apply one envelope if it is new and of interest; return whether it was applied."""
        position = int(envelope["position"])  # type: ignore[call-overload]
        async with self.pool.acquire() as conn, conn.transaction():
            seen = await conn.fetchval(
                f"SELECT position FROM {self.table} WHERE name = $1 FOR UPDATE", self.name
            )
            if seen is not None and position <= seen:
                return False
            applied = envelope["type"] in self.types
            if applied:
                event = decode(str(envelope["type"]), int(envelope["schema_version"]),  # type: ignore[call-overload]
                               envelope["payload"])  # type: ignore[arg-type]
                meta = envelope.get("metadata") or {}
                ctx = EventContext(str(envelope["stream"]),
                                   _parse_time(str(envelope["recorded_at"])),
                                   str(envelope["event_id"]), meta.get("actor"))  # type: ignore[union-attr]
                await self.projector(conn, event, ctx)
                self.applied += 1
            await conn.execute(
                f"INSERT INTO {self.table}(name, position) VALUES ($1, $2) ON CONFLICT (name)"
                " DO UPDATE SET position = excluded.position", self.name, position,
            )
        return applied


def _parse_time(value: str):  # type: ignore[no-untyped-def]
    from datetime import datetime

    return datetime.fromisoformat(value)


async def apply_recorded(conn: asyncpg.Connection, projector: Projector, event: RecordedEvent) -> None:
    """Apply a recorded event read from the store (used by rebuilds)."""
    from berth_common.eventstore.store import context_of

    await projector(conn, event.payload, context_of(event))
