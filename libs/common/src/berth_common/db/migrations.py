"""A small, ordered SQL migrations runner.

Each component (the event store, each service) ships numbered ``.sql`` files in a package
folder: ``0001_create_tables.sql`` … They are applied in order, once, in a transaction each,
recorded in ``public.berth_migrations(component, version)``. An advisory lock serialises
concurrent starters (several workers or services starting at once).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

from berth_common.db.pool import keeps_session_state

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_LOCK_KEY = 0x6265727468  # "berth"


@dataclass(frozen=True)
class Migration:
    """One migration: ``component`` (e.g. ``"api"``), ``version`` (its number), ``sql``."""

    component: str
    version: int
    name: str
    sql: str


def load_migrations(component: str, package: str) -> list[Migration]:
    """Read ``NNNN_name.sql`` files from the package folder ``package``, sorted by number.

    Raises:
        ValueError: two files with one number.
    """
    found: dict[int, Migration] = {}
    for entry in resources.files(package).iterdir():
        match = _NAME.match(entry.name)
        if not match:
            continue
        version = int(match.group(1))
        if version in found:
            raise ValueError(f"{package}: two migrations numbered {version}")
        found[version] = Migration(component, version, entry.name, entry.read_text())
    return [found[v] for v in sorted(found)]


async def apply_migrations(pool: asyncpg.Pool, migrations: list[Migration]) -> list[str]:
    """Apply every migration not yet recorded; return the names applied (in order)."""
    applied: list[str] = []
    async with pool.acquire() as conn:
        keeps_session_state(conn)
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS public.berth_migrations ("
                " component text NOT NULL, version int NOT NULL, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (component, version))"
            )
            for m in migrations:
                async with conn.transaction():
                    done = await conn.fetchval(
                        "SELECT 1 FROM public.berth_migrations WHERE component=$1 AND version=$2",
                        m.component,
                        m.version,
                    )
                    if done:
                        continue
                    await conn.execute(m.sql)
                    await conn.execute(
                        "INSERT INTO public.berth_migrations(component, version, name) VALUES ($1,$2,$3)",
                        m.component,
                        m.version,
                        m.name,
                    )
                    applied.append(f"{m.component}/{m.name}")
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    return applied
