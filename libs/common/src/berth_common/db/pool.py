"""The asyncpg connection pool, with JSON codecs, and creation of the database itself."""

from __future__ import annotations

import contextlib
import json
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg


async def _init_connection(conn: asyncpg.Connection) -> None:
    """Decode/encode ``json``/``jsonb`` as Python objects."""
    for typ in ("json", "jsonb"):
        await conn.set_type_codec(typ, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _connect(*args: Any, **kwargs: Any) -> asyncpg.Connection:
    """``asyncpg.connect``, with any ``OSError`` of reaching the server as ``ConnectionError``.

    A server that is gone over a unix socket raises ``FileNotFoundError`` (the socket file is
    removed), not ``ConnectionRefusedError``; both are the same outage to callers (503).
    """
    try:
        return await asyncpg.connect(*args, **kwargs)
    except OSError as exc:
        if isinstance(exc, ConnectionError):
            raise
        raise ConnectionRefusedError(f"PostgreSQL is not reachable: {exc}") from exc


async def create_pool(dsn: str, *, min_size: int = 2, max_size: int = 20) -> asyncpg.Pool:
    """Create the pool for ``dsn`` (asyncpg URL; unix sockets via ``?host=/dir``).

    Raises:
        OSError / asyncpg.PostgresError: when the server cannot be reached.
    """
    pool = await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, init=_init_connection,
        statement_cache_size=1024, command_timeout=60, connect=_connect,
    )
    assert pool is not None
    return pool


async def ensure_database(dsn: str) -> None:
    """Create the database named in ``dsn`` if it does not exist (connects to ``postgres``)."""
    parts = urlsplit(dsn)
    name = parts.path.lstrip("/") or "postgres"
    if name == "postgres":
        return
    admin = urlunsplit(parts._replace(path="/postgres"))
    conn = await asyncpg.connect(admin)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            with contextlib.suppress(asyncpg.DuplicateDatabaseError):
                await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
