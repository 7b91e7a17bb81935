"""Per-run PostgreSQL databases and NATS stream names, so test runs never collide."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator

import asyncpg
import nats

PG_ADMIN = os.environ.get("BERTH_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
NATS_URL = os.environ.get("BERTH_TEST_NATS", "nats://127.0.0.1:4222")


def unique(prefix: str) -> str:
    """``prefix`` + 10 random hex digits."""
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def database_url(name: str) -> str:
    """The URL of database ``name`` on the test server."""
    return PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"


@contextlib.asynccontextmanager
async def temporary_database(prefix: str = "berth_test_") -> AsyncIterator[str]:
    """Create a fresh database; yield its URL; drop it afterwards (even with open connections)."""
    name = unique(prefix)
    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        yield database_url(name)
    finally:
        conn = await asyncpg.connect(PG_ADMIN)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


@contextlib.asynccontextmanager
async def eventstore_pool(*, max_size: int = 6, setup_sql: str | None = None) -> AsyncIterator[asyncpg.Pool]:
    """A pool on a fresh database holding the event store schema (plus ``setup_sql``, if any)."""
    from berth_common.db import apply_migrations, create_pool, load_migrations

    async with temporary_database() as dsn:
        pool = await create_pool(dsn, min_size=1, max_size=max_size)
        try:
            await apply_migrations(pool, load_migrations("eventstore", "berth_common.eventstore.migrations"))
            if setup_sql:
                await pool.execute(setup_sql)
            yield pool
        finally:
            await pool.close()


async def delete_stream(name: str) -> None:
    """Delete a JetStream stream if it exists."""
    nc = await nats.connect(NATS_URL)
    try:
        with contextlib.suppress(Exception):
            await nc.jetstream().delete_stream(name)
    finally:
        await nc.close()
