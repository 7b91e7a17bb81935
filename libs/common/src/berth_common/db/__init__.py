"""PostgreSQL access: the asyncpg pool and the migrations runner."""

from typing import TYPE_CHECKING, TypeAlias

import asyncpg

from berth_common.db.migrations import (
    Migration,
    apply_migrations,
    known_migrations,
    load_migrations,
    missing_migrations,
    set_wait_for_migrations,
)
from berth_common.db.pool import create_pool, ensure_database, keeps_session_state

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    #: A connection as handed out by the pool or opened directly (both speak the same API).
    Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"
else:
    Connection = asyncpg.Connection

__all__ = [
    "Connection",
    "Migration",
    "apply_migrations",
    "create_pool",
    "ensure_database",
    "keeps_session_state",
    "known_migrations",
    "load_migrations",
    "missing_migrations",
    "set_wait_for_migrations",
]
