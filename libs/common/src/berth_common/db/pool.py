"""The asyncpg connection pool, with JSON codecs, and creation of the database itself."""

from __future__ import annotations

import contextlib
import json
import weakref
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


_SESSION_STATE: weakref.WeakSet[asyncpg.Connection[Any]] = weakref.WeakSet()


def keeps_session_state(conn: Any) -> None:
    """Mark a pooled connection that took session-level state (a session advisory lock, LISTEN).

    Its next release back to the pool runs asyncpg's full reset (``pg_advisory_unlock_all();
    CLOSE ALL; UNLISTEN *; RESET ALL``); other connections skip that round trip (see
    ``_reset``). ``conn`` is a pool proxy or a raw ``asyncpg.Connection``.
    """
    _SESSION_STATE.add(getattr(conn, "_con", None) or conn)


async def _reset(conn: asyncpg.Connection[Any]) -> None:
    """Release hook of the pool: the full reset only for connections marked by
    ``keeps_session_state``.

    asyncpg rolls back an open transaction and drops listener callbacks before calling this.
    Berth never sets session-level state otherwise (settings are ``set_config(…, true)``, i.e.
    transaction-local; no ``WITH HOLD`` cursors), so the default reset query — one more round
    trip on every release, ~4 % of a worker's CPU in a push (docs/PERFORMANCE.md) — is only
    needed after session advisory locks or LISTEN.
    """
    if conn in _SESSION_STATE:
        _SESSION_STATE.discard(conn)
        query = conn.get_reset_query()
        if query:
            await conn.execute(query)


async def create_pool(
    dsn: str, *, min_size: int = 2, max_size: int = 20, idle_transaction_seconds: float = 0
) -> asyncpg.Pool:
    """Create the pool for ``dsn`` (asyncpg URL; unix sockets via ``?host=/dir``).

    ``idle_transaction_seconds`` > 0: the server ends a session idle inside a transaction that
    long (``idle_in_transaction_session_timeout``; ``DatabaseSettings``).

    Raises:
        OSError / asyncpg.PostgresError: when the server cannot be reached.
    """
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        reset=_reset,
        statement_cache_size=1024,
        command_timeout=60,
        connect=_connect,
        server_settings=_server_settings(idle_transaction_seconds),
    )
    assert pool is not None
    return pool


def _server_settings(idle_transaction_seconds: float) -> dict[str, str]:
    if idle_transaction_seconds <= 0:
        return {}
    return {"idle_in_transaction_session_timeout": str(max(1, int(idle_transaction_seconds * 1000)))}


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
