"""The gc admin API (``/api/gc/runs``; OpenAPI at ``/api/docs``); Admin only.

``POST /api/gc/runs`` runs a collection now (body ``{"feed": F?, "dry_run": bool,
"grace_seconds": int?, "purge_age_seconds": int?, "wait": bool}``): with ``wait`` (the default)
it answers ``201`` with the finished run, without it ``202`` with the run started, to be
followed by ``GET /api/gc/runs/{id}`` (its ``progress``, ``{phase: count}``, grows batch by batch). ``GET
/api/gc/runs`` lists recent runs, newest first. A run's ``result`` holds totals and
per-feed counts and bytes (``berth_gc.domain.runs.result_json``); ``status`` is ``succeeded``,
``skipped`` (another run held the lock: nothing done), ``failed`` (``error`` says why) or
``running``. Errors: 404 NAME_UNKNOWN (feed or run), 401/403 without an admin token.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import asyncpg
from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from berth_common.auth import Caller, require
from berth_common.errors import NameUnknown
from berth_gc.domain.runs import recent_runs, run_json, run_once

router = APIRouter(prefix="/api/gc", tags=["gc"])
MAX_AGE_SECONDS = 100 * 365 * 86_400
"""The longest grace or purge age (100 years): beyond it no timestamp can be compared."""
Admin = require("*")


class RunIn(BaseModel):
    """What to collect: one ``feed`` or all; ``dry_run`` counts without deleting;
    ``grace_seconds`` overrides ``gc.grace_seconds``; ``purge_age_seconds`` also expires
    upload sessions idle that long (default ``uploads.max_age_seconds``; ``-1``: no purge)."""

    feed: str | None = Field(default=None, min_length=1, max_length=200)
    dry_run: bool = False
    grace_seconds: int | None = Field(default=None, ge=0, le=MAX_AGE_SECONDS)
    purge_age_seconds: int | None = Field(default=None, ge=-1, le=MAX_AGE_SECONDS)
    wait: bool = True


def _pool(request: Request) -> asyncpg.Pool:
    pool: asyncpg.Pool = request.app.state.resources.pool
    return pool


@router.post("/runs", status_code=201, responses={202: {"description": "started (wait: false)"}})
async def post_run(
    body: RunIn, request: Request, response: Response, caller: Caller = Admin
) -> dict[str, Any]:
    """Run a collection now; the run (``201``), or the run started (``202``, ``wait: false``)."""
    resources = request.app.state.resources
    settings = resources.settings
    if body.feed is not None and not await resources.pool.fetchval(
        "SELECT 1 FROM api.v_feeds WHERE name = $1", body.feed
    ):
        raise NameUnknown(f"feed {body.feed!r} does not exist", detail={"name": body.feed})
    purge = body.purge_age_seconds
    purge_age = (
        None
        if purge == -1
        else timedelta(seconds=settings.uploads.max_age_seconds if purge is None else purge)
    )
    run_id, recorded = uuid.uuid4(), asyncio.Event()
    pool = resources.pool

    async def progress(phase: str, done: int) -> None:
        await pool.execute(
            "UPDATE gc.runs SET progress = jsonb_set(progress, ARRAY[$2::text],"
            " to_jsonb(COALESCE((progress->>$2)::bigint, 0) + $3::bigint)) WHERE id = $1",
            run_id, phase, done,
        )  # fmt: skip

    def tick(phase: str, done: int) -> Any:
        return asyncio.ensure_future(progress(phase, done)) if done else None

    job = run_once(
        resources.store, request.app.state.gc_stores, settings, trigger="api", actor=caller.subject,
        feed=body.feed, dry_run=body.dry_run,
        grace=None if body.grace_seconds is None else timedelta(seconds=body.grace_seconds),
        purge_age=purge_age, progress=tick, run_id=run_id, recorded=recorded,
    )  # fmt: skip
    if body.wait:
        return await job
    request.app.state.gc_background.add(task := asyncio.create_task(job))
    task.add_done_callback(request.app.state.gc_background.discard)
    response.status_code = 202
    await recorded.wait()
    row = await pool.fetchrow("SELECT * FROM gc.runs WHERE id = $1", run_id)
    assert row is not None  # recorded
    return run_json(row)


@router.get("/runs")
async def get_runs(
    request: Request, limit: int = Query(default=20, ge=1, le=200), caller: Caller = Admin
) -> dict[str, Any]:
    """Recent runs, newest first: ``{"runs": [...]}``."""
    return {"runs": await recent_runs(_pool(request), limit)}


@router.get("/runs/{run_id}")
async def get_run(run_id: str, request: Request, caller: Caller = Admin) -> dict[str, Any]:
    """One run (``progress``: what each phase has done so far). 404 NAME_UNKNOWN if absent."""
    try:
        key = uuid.UUID(run_id)
    except ValueError:
        raise NameUnknown(f"no gc run {run_id!r}", detail={"run": run_id}) from None
    row = await _pool(request).fetchrow("SELECT * FROM gc.runs WHERE id = $1", key)
    if row is None:
        raise NameUnknown(f"no gc run {run_id!r}", detail={"run": run_id})
    return run_json(row)
