"""``berth gc run``: collect garbage now (the blob service also does it on a schedule)."""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from berth.runfile import resolve

if TYPE_CHECKING:
    from berth_blob.domain.gc import GcResult
    from berth_common.settings import Settings

gc_app = typer.Typer(help="Garbage collection of unreferenced blobs.", no_args_is_help=True)
DataDir = Annotated[Path, typer.Option("--data-dir", envvar="BERTH_DATA_DIR")]


@gc_app.command("run")
def run(
    grace_seconds: Annotated[
        int | None,
        typer.Option(help="collect what has been unreferenced this long (default: gc.grace_seconds)"),
    ] = None,
    data_dir: DataDir = Path("berth-data"),
) -> None:
    """Unlink unreferenced blobs and delete unlinked content older than the grace period."""
    from berth_common.settings import Settings

    _, database_url, _ = resolve(data_dir)
    if not database_url:
        typer.echo("no database URL: set BERTH_DATABASE_URL or run berth up", err=True)
        raise typer.Exit(2)
    if not os.environ.get("BERTH_STORAGE__ROOT") and (data_dir / "storage").is_dir():
        os.environ["BERTH_STORAGE__ROOT"] = str(data_dir.resolve() / "storage")
    settings = Settings(database_url=database_url)
    if settings.storage.kind == "filesystem" and not settings.storage.root.is_dir():
        typer.echo(
            f"storage root {settings.storage.root} does not exist: set BERTH_STORAGE__ROOT"
            " or --data-dir to the server's",
            err=True,
        )
        raise typer.Exit(2)
    grace = timedelta(seconds=settings.gc.grace_seconds if grace_seconds is None else grace_seconds)
    result = asyncio.run(_collect(settings, grace))
    typer.echo(
        f"unlinked {result.unlinked} links, deleted {result.deleted} blobs,"
        f" swept {result.swept_files} orphaned files, freed {result.bytes_freed} bytes"
    )


async def _collect(settings: Settings, grace: timedelta) -> GcResult:
    from berth_blob.app import build_storage
    from berth_blob.domain.gc import collect_garbage
    from berth_common.db import create_pool
    from berth_common.eventstore import EventStore

    assert settings.database_url is not None
    pool = await create_pool(settings.database_url, min_size=1, max_size=2)
    storage = build_storage(settings)
    try:
        return await collect_garbage(EventStore(pool), storage, grace)
    finally:
        await storage.close()
        await pool.close()
