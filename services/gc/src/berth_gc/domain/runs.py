"""gc runs: scheduled and on demand, each recorded in ``gc.runs`` (docs/ARCHITECTURE.md,
"Who owns cleanup").

``run_once`` performs one ``collect_garbage`` (purge, unlink, delete, sweep) under the run
lock and records it; ``schedule_forever`` does so every ``gc.interval_seconds`` and purges
every ``uploads.purge_interval_seconds`` (settings, docs/CONFIGURATION.md). Any replica may
run the schedule: the run lock lets one through; a scheduled turn that found the lock taken
leaves no record (one a replica per interval would pile up), a skipped run asked for
(``POST /api/gc/runs``) is recorded as ``skipped``. A run whose process died (killed, crashed)
is closed as ``failed`` by the next run that takes the lock (``INTERRUPTED``).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import structlog

from berth_common.db import keeps_session_state
from berth_common.eventstore import EventStore
from berth_common.settings import Settings
from berth_common.storage import Stores
from berth_gc.domain.collect import GcResult, Progress, collect_garbage

log = structlog.get_logger("berth.gc")
INTERRUPTED = "interrupted: the gc process running it stopped before it finished"
CANCELLED = "cancelled: the gc process was stopped during the run"


def result_json(result: GcResult) -> dict[str, Any]:
    """The JSON shape of a run's result (the admin API's ``result``): totals (``unlinked``,
    ``deleted``, ``bytes_freed`` in bytes, ``swept_files``, ``expired``) and ``feeds``
    (``{feed: {unlinked, deleted, bytes, expired, expired_bytes}}``), sorted by feed."""
    return {
        "unlinked": result.unlinked,
        "deleted": result.deleted,
        "bytes_freed": result.bytes_freed,
        "swept_files": result.swept_files,
        "expired": result.expired,
        "feeds": {name: asdict(totals) for name, totals in sorted(result.feeds.items())},
    }


async def run_once(
    store: EventStore,
    stores: Stores,
    settings: Settings,
    *,
    trigger: str,
    actor: str | None = None,
    feed: str | None = None,
    dry_run: bool = False,
    grace: timedelta | None = None,
    purge_age: timedelta | None = None,
    progress: Progress | None = None,
    run_id: uuid.UUID | None = None,
    recorded: asyncio.Event | None = None,
) -> dict[str, Any]:
    """Run and record one collection; returns the run's row as ``run_json`` gives it
    (``status``: succeeded, skipped when another run held the lock, or failed).

    ``grace`` defaults to ``gc.grace_seconds``; ``purge_age`` (None: no purge) expires upload
    sessions idle that long first. Raises nothing the run raises: a failure is recorded (and
    logged) with its message. ``recorded`` is set once the run's row exists.
    """
    run_id, started = run_id or uuid.uuid4(), datetime.now(UTC)
    this_run = run_id

    async def close_interrupted() -> None:
        # Under the run lock no other run is collecting: a row still 'running' that started
        # before this one belongs to a process that died (one still alive between its insert
        # and its try of the lock finishes as 'skipped', overwriting this).
        closed = await store.pool.execute(
            "UPDATE gc.runs SET status = 'failed', finished_at = now(), error = $3"
            " WHERE status = 'running' AND id <> $1 AND started_at <= $2",
            this_run, started, INTERRUPTED,
        )  # fmt: skip
        if closed != "UPDATE 0":
            log.warning("gc.runs_interrupted", closed=closed.split()[-1])

    await store.pool.execute(
        "INSERT INTO gc.runs(id, trigger, actor, feed, dry_run, status, started_at)"
        " VALUES ($1, $2, $3, $4, $5, 'running', $6)",
        run_id, trigger, actor, feed, dry_run, started,
    )  # fmt: skip
    if recorded is not None:
        recorded.set()
    status, error, result = "failed", None, None
    try:
        done = await collect_garbage(
            store, stores, grace if grace is not None else timedelta(seconds=settings.gc.grace_seconds),
            feed=feed, dry_run=dry_run, purge_age=purge_age, progress=progress,
            on_locked=close_interrupted,
        )  # fmt: skip
        status, result = ("succeeded" if done.ran else "skipped"), result_json(done)
    except asyncio.CancelledError:
        error = CANCELLED
        raise
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        log.exception("gc.run_failed", run=str(run_id))
    finally:
        if trigger == "schedule" and status == "skipped":  # another replica's turn: no record
            row = await store.pool.fetchrow("DELETE FROM gc.runs WHERE id = $1 RETURNING *", run_id)
        else:  # result: the pool's jsonb codec encodes the dict (a JSON object, not a string)
            row = await store.pool.fetchrow(
                "UPDATE gc.runs SET status = $2, finished_at = now(), result = $3, error = $4"
                " WHERE id = $1 RETURNING *",
                run_id, status, result, error,
            )  # fmt: skip
    assert row is not None  # inserted above
    shown = run_json(row)
    shown["status"] = status  # a deleted (skipped, scheduled) row still says 'running'
    return shown


def run_json(row: asyncpg.Record) -> dict[str, Any]:
    """A ``gc.runs`` row as the admin API shows it (times ISO 8601, UTC)."""
    result = _json(row["result"])
    return {
        "id": str(row["id"]),
        "trigger": row["trigger"],
        "actor": row["actor"],
        "feed": row["feed"],
        "dry_run": row["dry_run"],
        "status": row["status"],
        "started_at": row["started_at"].isoformat(),
        "finished_at": row["finished_at"].isoformat() if row["finished_at"] else None,
        "result": result,
        "progress": _json(row["progress"]),
        "error": row["error"],
    }


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


async def recent_runs(pool: asyncpg.Pool, limit: int = 20) -> list[dict[str, Any]]:
    """The ``limit`` most recent runs, newest first."""
    rows = await pool.fetch("SELECT * FROM gc.runs ORDER BY started_at DESC LIMIT $1", limit)
    return [run_json(r) for r in rows]


async def schedule_forever(store: EventStore, stores: Stores, settings: Settings) -> None:
    """Every ``uploads.purge_interval_seconds`` purge idle sessions (a run with a purge, no
    collection unless one is due), and every ``gc.interval_seconds`` (when ``gc.enabled``) run
    a full collection; the first of each after one interval. Runs until cancelled."""
    loop = asyncio.get_running_loop()
    purge_every, gc_every = settings.uploads.purge_interval_seconds, settings.gc.interval_seconds
    next_purge, next_gc = loop.time() + purge_every, loop.time() + gc_every
    max_age = timedelta(seconds=settings.uploads.max_age_seconds)
    while True:
        due = min(next_purge, next_gc) if settings.gc.enabled else next_purge
        await asyncio.sleep(max(0.0, due - loop.time()))
        now = loop.time()
        if settings.gc.enabled and now >= next_gc:
            await run_once(store, stores, settings, trigger="schedule", purge_age=max_age)
            next_gc, next_purge = now + gc_every, now + purge_every
        elif now >= next_purge:
            await _purge_only(store, stores, max_age)
            next_purge = now + purge_every


async def _purge_only(store: EventStore, stores: Stores, max_age: timedelta) -> None:
    """The purge between collections, under the run lock (skipped while a run holds it)."""
    from berth_gc.domain.collect import GC_LOCK
    from berth_gc.domain.purge import purge_expired_uploads

    async with store.pool.acquire() as conn:
        keeps_session_state(conn)
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", GC_LOCK):
            return
        try:
            await purge_expired_uploads(store, stores, max_age)
        except Exception:
            log.exception("gc.purge_failed")
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", GC_LOCK)
