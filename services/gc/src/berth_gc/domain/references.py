"""Bring gc's reference projection (``gc.blob_references``) up to the event store's head.

The durable consumer applies ``manifest.*`` and ``feed.deleted`` from the bus as they come;
the bus may lag. Before gc decides that a link is unreferenced it calls ``catch_up`` *after*
locking the link: every manifest PUT that committed before the lock is then in the store
(positions are handed out in commit order, ``berth_common.eventstore.catchup``) and so in the
projection, and one still in flight holds its share lock on the link, so it waits for gc and
then finds the link gone. Applying shares the consumer's position row lock, so the two never
apply an event twice.
"""

from __future__ import annotations

import asyncpg

from berth_common.eventstore.catchup import lock_and_read, record
from berth_common.eventstore.store import context_of
from berth_gc.projections.references import CONSUMER, project

POSITIONS = "gc.consumer_positions"


async def catch_up(pool: asyncpg.Pool) -> int:
    """Apply every reference event beyond the projection's position, in batches (one
    transaction each). Returns how many were applied."""
    count = 0
    while True:
        async with pool.acquire() as conn, conn.transaction():
            _, events = await lock_and_read(conn, POSITIONS, CONSUMER, project.types)
            for event in events:
                await project(conn, event.payload, context_of(event))
            if events:
                await record(conn, POSITIONS, CONSUMER, events[-1].position)
        count += len(events)
        if not events:
            return count
