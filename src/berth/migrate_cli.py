"""``berth migrate``: apply every schema migration and exit (docs/OPERATIONS.md, "Upgrade").

Runs the migrations of the event store and of every service (api, blob, auth, gc) against
``BERTH_DATABASE_URL`` (or a running ``berth up``), serialised with any service starting at the
same time by the migrations' advisory lock, and prints what it applied. The Kubernetes
manifests run it as a Job before the rollout; services started with ``migrate_on_start:
false`` wait for it. Safe to run again: applied migrations are skipped.
"""

from __future__ import annotations

import asyncio

import typer

from berth.cli_support import quiet_logging
from berth.client import connection


def migrate(ctx: typer.Context) -> None:
    """Apply every pending schema migration (event store and all services), then exit.

    Works on BERTH_DATABASE_URL (or the database of the berth up of --data-dir).

    Example: BERTH_DATABASE_URL=postgresql://berth@db.internal/berth berth migrate
    """
    quiet_logging()
    database_url = connection(ctx).database_url()
    applied = asyncio.run(apply_all(database_url))
    for name in applied:
        typer.echo(f"applied {name}")
    typer.echo(f"{len(applied)} migration(s) applied; the schema is up to date")


async def apply_all(database_url: str) -> list[str]:
    """Create the database if needed, apply every component's pending migrations in order
    (event store first), and return their ``component/file`` names."""
    from berth.allinone import SERVICES
    from berth_common.db import apply_migrations, create_pool, ensure_database, load_migrations

    await ensure_database(database_url)
    pool = await create_pool(database_url, min_size=1, max_size=2)
    try:
        eventstore = load_migrations("eventstore", "berth_common.eventstore.migrations")
        applied = await apply_migrations(pool, eventstore, wait=False)
        for service in SERVICES:
            applied += await apply_migrations(pool, service.migrations(), wait=False)
        return applied
    finally:
        await pool.close()
