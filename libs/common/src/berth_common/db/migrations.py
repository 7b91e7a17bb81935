"""A small, ordered SQL migrations runner.

Each component (the event store, each service) ships numbered ``.sql`` files in a package
folder: ``0001_create_tables.sql`` … They are applied in order, once, in a transaction each,
recorded in ``public.berth_migrations(component, version)``. An advisory lock serialises
concurrent starters (several workers or services starting at once).

With ``migrate_on_start: false`` (``set_wait_for_migrations(True)``, done by ``service_app``)
a service does not apply them but waits until another process has (``berth migrate``, a
Kubernetes Job run before the rollout). Every migration a process knows is remembered
(``known_migrations``), so its ``/readyz`` can check that the database has them all.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

import asyncpg
import structlog

from berth_common.db.pool import keeps_session_state

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_LOCK_KEY = 0x6265727468  # "berth"
_KNOWN: set[tuple[str, int]] = set()
_WAIT = False
log = structlog.get_logger("berth.migrations")


def set_wait_for_migrations(wait: bool) -> None:
    """``True``: ``apply_migrations`` waits for the migrations instead of applying them."""
    global _WAIT
    _WAIT = wait


def known_migrations() -> frozenset[tuple[str, int]]:
    """``(component, version)`` of every migration this process applied or waited for."""
    return frozenset(_KNOWN)


async def missing_migrations(conn: Any) -> list[str]:
    """``component/version`` of the known migrations the database has not recorded (sorted);
    ``conn`` is an asyncpg connection or pool connection."""
    try:
        rows = await conn.fetch("SELECT component, version FROM public.berth_migrations")
    except asyncpg.UndefinedTableError:
        rows = []
    recorded = {(r["component"], r["version"]) for r in rows}
    return sorted(f"{c}/{v:04d}" for c, v in _KNOWN - recorded)


async def wait_for_migrations(pool: asyncpg.Pool, migrations: list[Migration], poll: float = 2.0) -> None:
    """Return once every one of ``migrations`` is recorded (applied by another process).

    Logs ``migrations.waiting`` once with what is missing; polls every ``poll`` seconds.
    """
    _KNOWN.update((m.component, m.version) for m in migrations)
    wanted = {(m.component, m.version) for m in migrations}
    logged = False
    while True:
        async with pool.acquire() as conn:
            missing = [m for m in await missing_migrations(conn) if (m.split("/")[0], int(m[-4:])) in wanted]
        if not missing:
            return
        if not logged:
            log.warning("migrations.waiting", missing=missing, hint="run berth migrate")
            logged = True
        await asyncio.sleep(poll)


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


async def apply_migrations(
    pool: asyncpg.Pool, migrations: list[Migration], *, wait: bool | None = None
) -> list[str]:
    """Apply every migration not yet recorded; return the names applied (in order).

    ``wait`` (default: the mode set by ``set_wait_for_migrations``): apply nothing, return once
    another process has applied them all (``berth migrate`` passes ``False``).
    """
    if _WAIT if wait is None else wait:
        await wait_for_migrations(pool, migrations)
        return []
    _KNOWN.update((m.component, m.version) for m in migrations)
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
