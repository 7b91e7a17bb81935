"""One upstream fetch per missing object across every process (docs/ARCHITECTURE.md,
"Connectors: one fetch however many pull").

A fetch **lease** is a row of the owning service's table (``api.connector_fetches`` for
manifests, ``blob.connector_fetches`` for blobs; columns ``key``, ``lease``, ``lease_until``),
taken by one ``INSERT … ON CONFLICT DO UPDATE … WHERE lease_until < now()``: the first request
to miss an object becomes its **leader** and fetches it; a lease left by a process that died
expires after ``ttl`` and the next request takes it over. No database connection is held
while the leader fetches (a lease is renewed every third of ``ttl`` by a short statement), so
a thousand waiting pulls need no thousand pooled connections.

The others are **followers**: they wait until the lease row is gone (the leader recorded the
object, or failed) or expired, polling with a backoff from 10 ms to 250 ms, then look again
(and usually serve the object locally). Latency: a follower starts at most one poll interval
after the leader has stored the whole object — for a large layer, the time to fetch all of it —
instead of streaming along with the leader; in exchange it works with every storage driver
and any number of processes, and a follower never depends on another process's connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg

from berth_common.db import Connection
from berth_common.errors import Unavailable

FIRST_POLL, LAST_POLL = 0.01, 0.25  # seconds between a follower's looks


@dataclass(frozen=True)
class Lease:
    """A taken lease: ``key`` (what is fetched) and ``token`` (this leader's id)."""

    key: str
    token: uuid.UUID


class FetchLeases:
    """The leases of one table (``schema.table``, trusted: a constant of the owning service).

    ``ttl``: seconds a lease lasts unless renewed; ``wait_limit``: seconds a follower waits
    before giving up with ``503 UNAVAILABLE``.
    """

    def __init__(self, pool: asyncpg.Pool, table: str, ttl: float, wait_limit: float) -> None:
        self.pool, self.table, self.ttl, self.wait_limit = pool, table, ttl, wait_limit

    async def acquire(self, key: str) -> Lease | None:
        """Become the leader of ``key``'s fetch: the lease, or ``None`` if another holds it."""
        token = uuid.uuid4()
        taken = await self.pool.fetchval(
            f"INSERT INTO {self.table} AS f (key, lease, lease_until)"
            " VALUES ($1, $2, now() + make_interval(secs => $3))"
            " ON CONFLICT (key) DO UPDATE SET lease = EXCLUDED.lease, lease_until = EXCLUDED.lease_until"
            " WHERE f.lease_until < now() RETURNING lease",
            key, token, self.ttl,
        )  # fmt: skip
        return Lease(key, token) if taken == token else None

    async def renew(self, lease: Lease) -> bool:
        """Extend ``lease`` by ``ttl``; False if it was taken over (it expired meanwhile)."""
        result = await self.pool.execute(
            f"UPDATE {self.table} SET lease_until = now() + make_interval(secs => $3)"
            " WHERE key = $1 AND lease = $2",
            lease.key, lease.token, self.ttl,
        )  # fmt: skip
        return result.endswith(" 1")

    async def release(self, lease: Lease, conn: Connection | None = None) -> None:
        """End ``lease`` (in ``conn``'s transaction when given: with the object's events, so a
        follower that sees the lease gone sees the object)."""
        sql = f"DELETE FROM {self.table} WHERE key = $1 AND lease = $2"
        await (conn or self.pool).execute(sql, lease.key, lease.token)

    async def holder(self, key: str) -> bool:
        """Whether a live lease on ``key`` exists."""
        held = await self.pool.fetchval(
            f"SELECT true FROM {self.table} WHERE key = $1 AND lease_until >= now()", key
        )
        return bool(held)

    async def wait(self, key: str) -> None:
        """Return once nobody holds a live lease on ``key``. Raises ``Unavailable`` (503) after
        ``wait_limit`` seconds."""
        deadline, pause = time.monotonic() + self.wait_limit, FIRST_POLL
        while await self.holder(key):
            if time.monotonic() > deadline:
                raise Unavailable(
                    f"another request is still fetching {key} from upstream after {self.wait_limit:.0f} s;"
                    " retry later"
                )
            await asyncio.sleep(pause)
            pause = min(pause * 2, LAST_POLL)

    @contextlib.asynccontextmanager
    async def kept(self, lease: Lease) -> AsyncIterator[asyncio.Event]:
        """Renew ``lease`` every third of ``ttl`` while the block runs; the yielded event is
        set if the lease was lost (the caller should stop and record nothing)."""
        lost = asyncio.Event()

        async def renew_forever() -> None:
            while True:
                await asyncio.sleep(self.ttl / 3)
                with contextlib.suppress(OSError, asyncpg.PostgresError):
                    if not await self.renew(lease):
                        lost.set()
                        return

        task = asyncio.create_task(renew_forever(), name=f"lease-{lease.key}")
        try:
            yield lost
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
