"""The pool's release hook: the full reset only where session state was taken.

``berth_common.db.pool``: releasing a connection skips asyncpg's reset round trip unless the
connection was marked with ``keeps_session_state``; an open transaction is still rolled back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from berth_common.db import create_pool, keeps_session_state
from tests.support.databases import temporary_database

pytestmark = pytest.mark.integration
KEY = 0x7465737431


@pytest.fixture
async def pool() -> AsyncIterator[asyncpg.Pool]:
    async with temporary_database() as dsn:
        p = await create_pool(dsn, min_size=1, max_size=1)  # one connection: reuse is certain
        try:
            yield p
        finally:
            await p.close()


async def _locks_held(pool: asyncpg.Pool) -> int:
    async with pool.acquire() as conn:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
            )
        )


async def test_marked_connection_is_fully_reset(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        keeps_session_state(conn)
        assert await conn.fetchval("SELECT pg_try_advisory_lock($1)", KEY)
        await conn.execute("LISTEN berth_test")
    assert await _locks_held(pool) == 0
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM pg_listening_channels()") == 0


async def test_unmarked_connection_skips_the_reset_but_rolls_back(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await conn.execute("CREATE TABLE t (x int)")
        await conn.execute("BEGIN")
        await conn.execute("INSERT INTO t VALUES (1)")
        await conn.execute("SELECT set_config('berth.append', 'x', true)")
    async with pool.acquire() as conn:
        assert not conn.is_in_transaction()
        assert await conn.fetchval("SELECT count(*) FROM t") == 0
        assert await conn.fetchval("SELECT current_setting('berth.append', true)") in (None, "")
        # Proof that the reset query did not run: a session lock taken unmarked survives release.
        assert await conn.fetchval("SELECT pg_try_advisory_lock($1)", KEY)
    assert await _locks_held(pool) == 1
