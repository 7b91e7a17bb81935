"""``berth gc run``: collect garbage now (the blob service also does it on a schedule).

``--purge-age AGE`` also expires, in the same run and before collecting, every upload session
idle for longer than ``AGE`` (``berth_blob.domain.cleanup``, as the scheduled purge does after
``uploads.max_age_seconds``): for operators who need the space of abandoned uploads now.
"""

from __future__ import annotations

import asyncio
import os
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated

import typer

from berth.cli_support import quiet_logging
from berth.client import connection

if TYPE_CHECKING:
    import asyncpg

    from berth_blob.domain.cleanup import PurgeResult
    from berth_blob.domain.gc import GcResult
    from berth_common.eventstore import EventStore
    from berth_common.settings import Settings
    from berth_common.storage import Stores

gc_app = typer.Typer(
    help="Garbage collection of unreferenced blobs.\n\nExample: berth gc run --grace-seconds 0",
    no_args_is_help=True,
)
_DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
PURGE_RETRIES = 10  # passes over sessions another process was purging or writing to


def parse_age(text: str) -> timedelta:
    """``"90"``/``"90s"`` seconds, ``"10m"``, ``"1h"``, ``"2d"``, ``"0"`` → a ``timedelta``.

    Raises:
        typer.BadParameter: anything else (exit status 2 with the message).
    """
    match = _DURATION.match(text.lower())
    if not match:
        raise typer.BadParameter(f"{text!r} is not an age: use seconds (90), or 90s, 10m, 1h, 2d")
    return timedelta(seconds=int(match[1]) * _UNIT_SECONDS[match[2]])


@dataclass
class _Run:
    """What ``berth gc run`` did: the purge (if asked for) and the collection."""

    purged: PurgeResult | None
    collected: GcResult


@gc_app.command("run")
def run(
    ctx: typer.Context,
    grace_seconds: Annotated[
        int | None,
        typer.Option(
            metavar="SECONDS", help="collect what has been unreferenced this long (default: gc.grace_seconds)"
        ),
    ] = None,
    purge_age: Annotated[
        str | None,
        typer.Option(
            metavar="AGE",
            help="first expire upload sessions idle longer than this (seconds, or 90s, 10m, 1h, 2d; 0: all)",
        ),
    ] = None,
) -> None:
    """Unlink unreferenced blobs and delete unlinked content older than the grace period;
    with --purge-age, first expire upload sessions idle longer than that.

    Runs here, against the database and storage of the berth up of --data-dir (or
    BERTH_DATABASE_URL and BERTH_STORAGE__ROOT).

    Examples:

    \b
      berth gc run --grace-seconds 0
      berth gc run --purge-age 1h
    """
    from berth_common.settings import Settings

    quiet_logging()
    data_dir = connection(ctx).data_dir_or_default
    database_url = connection(ctx).database_url()
    if not os.environ.get("BERTH_STORAGE__ROOT") and (data_dir / "storage").is_dir():
        os.environ["BERTH_STORAGE__ROOT"] = str(data_dir.resolve() / "storage")
    purge = parse_age(purge_age) if purge_age is not None else None
    settings = Settings(database_url=database_url)
    if settings.storage.kind == "filesystem" and not settings.storage.root.is_dir():
        typer.echo(
            f"storage root {settings.storage.root} does not exist: set BERTH_STORAGE__ROOT"
            " or --data-dir to the server's",
            err=True,
        )
        raise typer.Exit(2)
    grace = timedelta(seconds=settings.gc.grace_seconds if grace_seconds is None else grace_seconds)
    done = asyncio.run(_collect(settings, grace, purge))
    if done.purged is not None and purge_age is not None:
        typer.echo(
            f"purged {done.purged.expired} upload sessions idle longer than {purge_age},"
            f" freed {done.purged.bytes_freed} bytes"
        )
    result = done.collected
    typer.echo(
        f"unlinked {result.unlinked} links, deleted {result.deleted} blobs,"
        f" swept {result.swept_files} orphaned files, freed {result.bytes_freed} bytes"
    )


async def _collect(settings: Settings, grace: timedelta, purge: timedelta | None) -> _Run:
    from berth_blob.app import build_stores
    from berth_blob.domain.gc import collect_garbage
    from berth_common.db import create_pool
    from berth_common.eventstore import EventStore

    assert settings.database_url is not None
    pool = await create_pool(settings.database_url, min_size=1, max_size=2)
    stores = build_stores(settings)
    try:
        store = EventStore(pool)
        purged = await _purge(pool, store, stores, purge) if purge is not None else None
        return _Run(purged, await collect_garbage(store, stores, grace))
    finally:
        await stores.close()
        await pool.close()


async def _purge(pool: asyncpg.Pool, store: EventStore, stores: Stores, age: timedelta) -> PurgeResult:
    """Expire every upload session idle longer than ``age``, in batches, until none is left.

    A batch finds nothing while another process holds the purge lock (the scheduled purge) or
    a session's row is locked by a request writing to it; then it waits a little and looks again,
    at most ``PURGE_RETRIES`` times, and reports what it did purge.
    """
    from datetime import UTC, datetime

    from berth_blob.domain.cleanup import PurgeResult, purge_expired_uploads

    now = datetime.now(UTC)
    expired = freed = retries = 0
    while True:
        batch = await purge_expired_uploads(store, stores, age, now=now)
        expired, freed = expired + batch.expired, freed + batch.bytes_freed
        if batch.expired:
            continue
        left = await pool.fetchval("SELECT count(*) FROM blob.uploads WHERE updated_at < $1", now - age)
        if not left or retries >= PURGE_RETRIES:
            return PurgeResult(expired, freed)
        retries += 1
        await asyncio.sleep(0.5)
