"""``berth gc run`` and ``berth gc runs``: cleanup through the gc service's admin API
(``/api/gc/runs``; docs/ARCHITECTURE.md, "Who owns cleanup").

``run`` asks the gc service for a run now and follows it: a progress bar while it runs (on a
terminal), then a table of what was (or, with ``--dry-run``, would be) deleted, per feed:
links, blobs and their bytes, upload sessions expired and their bytes; then one summary line.
"""

from __future__ import annotations

import re
import time
from datetime import timedelta
from typing import Annotated, Any

import typer

from berth.cli_support import out, print_table, quiet_logging
from berth.client import admin

gc_app = typer.Typer(
    help="Cleanup: garbage collection of unreferenced blobs, idle upload sessions, orphaned files."
    "\n\nExample: berth gc run --dry-run",
    no_args_is_help=True,
)
_DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
POLL_SECONDS = 0.5
PHASES = ("purge", "unlink", "delete", "sweep")


_MAX_AGE_SECONDS = 100 * 365 * 86_400  # as the admin API's limit


def parse_age(text: str) -> timedelta:
    """``"90"``/``"90s"`` seconds, ``"10m"``, ``"1h"``, ``"2d"``, ``"0"`` → a ``timedelta``.

    Raises:
        typer.BadParameter: anything else (exit status 2 with the message).
    """
    match = _DURATION.match(text.lower())
    if not match:
        raise typer.BadParameter(f"{text!r} is not an age: use seconds (90), or 90s, 10m, 1h, 2d")
    seconds = int(match[1]) * _UNIT_SECONDS[match[2]]
    if seconds > _MAX_AGE_SECONDS:
        raise typer.BadParameter(f"{text!r} is longer than 100 years")
    return timedelta(seconds=seconds)


@gc_app.command("run")
def run(
    ctx: typer.Context,
    feed: Annotated[str | None, typer.Option("--feed", metavar="FEED", help="only this feed")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", metavar="", help="count what would go; delete nothing")
    ] = False,
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
            help="expire upload sessions idle longer than this (seconds, or 90s, 10m, 1h, 2d; 0: all;"
            " default: uploads.max_age_seconds)",
        ),
    ] = None,
) -> None:
    """Collect garbage now in the gc service: expire idle upload sessions, unlink unreferenced
    blobs, delete unlinked content older than the grace period, sweep orphaned files; then
    print what went per feed (counts and bytes).

    Examples:

    \b
      berth gc run --dry-run
      berth gc run --feed dmc --grace-seconds 0
      berth gc run --purge-age 1h
    """
    quiet_logging()
    age = parse_age(purge_age) if purge_age is not None else None
    client = admin(ctx)
    body: dict[str, Any] = {"feed": feed, "dry_run": dry_run, "wait": False}
    if grace_seconds is not None:
        body["grace_seconds"] = grace_seconds
    if age is not None:
        body["purge_age_seconds"] = int(age.total_seconds())
    started = client.call("POST", "/api/gc/runs", json=body)
    done = _follow(client, started)
    _print_run(done)
    if done["status"] == "failed":
        raise typer.Exit(1)


def _follow(client: Any, run: dict[str, Any]) -> dict[str, Any]:
    """Poll the run until it is no longer running, with a progress bar on a terminal."""
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    if run["status"] != "running":
        return run
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
        TextColumn("{task.completed:,.0f} items"), TimeElapsedColumn(),
        console=out, transient=True, disable=not out.is_terminal,
    ) as bar:  # fmt: skip
        task = bar.add_task("gc run", total=None)
        while run["status"] == "running":
            time.sleep(POLL_SECONDS)
            run = client.call("GET", f"/api/gc/runs/{run['id']}")
            progress = run.get("progress") or {}
            phase = next((p for p in reversed(PHASES) if p in progress), "starting")
            bar.update(task, description=f"gc run: {phase}", completed=sum(progress.values()))
    return run


def _print_run(run: dict[str, Any]) -> None:
    result = run.get("result") or {}
    if run["status"] == "skipped":
        out.print("another gc run is in progress: nothing done (try again when it ends)")
        return
    if run["status"] == "failed":
        out.print(f"gc run failed: {run.get('error')}")
        return
    rows = [{"feed": name, **counts} for name, counts in (result.get("feeds") or {}).items()]
    if rows:
        print_table(
            rows,
            [("feed", "feed"), ("links", "unlinked"), ("blobs", "deleted"), ("blob bytes", "bytes"),
             ("sessions", "expired"), ("session bytes", "expired_bytes")],
        )  # fmt: skip
    verb = "would " if run["dry_run"] else ""
    out.print(
        f"{verb}unlink {result.get('unlinked', 0)} links, {verb}delete {result.get('deleted', 0)} blobs,"
        f" {verb}expire {result.get('expired', 0)} upload sessions, swept {result.get('swept_files', 0)}"
        f" orphaned files, {'would free' if verb else 'freed'} {result.get('bytes_freed', 0)} bytes"
    )


@gc_app.command("runs")
def runs(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", metavar="N", help="how many, newest first")] = 20,
) -> None:
    """List recent gc runs (scheduled and on demand), newest first.

    Example: berth gc runs --limit 5
    """
    quiet_logging()
    answer = admin(ctx).call("GET", "/api/gc/runs", params={"limit": limit})
    rows = []
    for r in answer["runs"]:
        result = r.get("result") or {}
        rows.append({**r, **{k: result.get(k) for k in ("unlinked", "deleted", "bytes_freed", "expired")}})
    print_table(
        rows,
        [("started", "started_at"), ("status", "status"), ("trigger", "trigger"), ("feed", "feed"),
         ("dry run", "dry_run"), ("links", "unlinked"), ("blobs", "deleted"), ("sessions", "expired"),
         ("bytes", "bytes_freed"), ("id", "id")],
    )  # fmt: skip
