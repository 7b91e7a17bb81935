"""Proof that a session waits for a lock, from PostgreSQL itself (``pg_locks``), not from time.

Issue 12 §6: a test that "sees" locking because a task had not finished after a second proves
nothing on a slow machine and passes when nothing waits on a fast one. ``wait_until_blocked``
returns once PostgreSQL reports a lock request of this database that is not granted (an
advisory lock of a given key, or any), and fails if the task that should block finishes first.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

_WAITING = """
SELECT l.locktype, l.classid::bigint AS hi, l.objid::bigint AS lo
  FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
 WHERE NOT l.granted AND a.datname = current_database()
"""
LIMIT_SECONDS = 120.0  # a loud failure, never a silent pass


def _matches(row: asyncpg.Record, advisory_key: int | None) -> bool:
    if advisory_key is None:
        return True
    unsigned = advisory_key & 0xFFFFFFFFFFFFFFFF
    return row["locktype"] == "advisory" and (row["hi"], row["lo"]) == (unsigned >> 32, unsigned & 0xFFFFFFFF)


async def wait_until_blocked(
    pool: asyncpg.Pool, task: asyncio.Future[Any], *, advisory_key: int | None = None
) -> str:
    """Return the lock type once a session of the pool's database waits for a lock (for
    ``advisory_key``'s advisory lock, if given: ``pg_locks`` with ``granted = false``).

    Raises:
        AssertionError: ``task`` finished first (it did not wait), or nothing waited within
            ``LIMIT_SECONDS``.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + LIMIT_SECONDS
    while loop.time() < deadline:
        for row in await pool.fetch(_WAITING):
            if _matches(row, advisory_key):
                return str(row["locktype"])
        if task.done():
            raise AssertionError(f"finished without waiting for the lock: {task.result()!r}")
        await asyncio.sleep(0.02)
    raise AssertionError(f"no session waited for a lock within {LIMIT_SECONDS} s")
