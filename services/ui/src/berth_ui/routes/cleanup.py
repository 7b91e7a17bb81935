"""The cleanup page (``/ui/cleanup``; Admin): recent gc runs and a button to run one now.

Issue 11, the seed's "FeedCleanUp": the gc service's admin API (``/api/gc/runs``) lists runs
(scheduled and on demand) with what each deleted per feed; the form asks for a run of all
feeds or one, as a dry run (counts only) or for real, and comes back with what it did.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from berth_ui.backend import ApiError
from berth_ui.web import Ui, action, field_of, form_of, page

router = APIRouter(include_in_schema=False)


def _row(run: dict[str, Any]) -> dict[str, Any]:
    result = run.get("result") or {}
    totals = ("unlinked", "deleted", "bytes_freed", "expired", "swept_files")
    return {**run, **{k: result.get(k) for k in totals}}


@router.get("/ui/cleanup")
@page
async def cleanup(request: Request) -> Response:
    """Recent gc runs, newest first, and the run form."""
    ui = await Ui.open(request, [])
    runs = (await ui.get("/api/gc/runs", params={"limit": 50}))["runs"]
    return ui.render("cleanup.html", title="Cleanup", runs=[_row(r) for r in runs])


@router.post("/ui/cleanup")
@action
async def run(request: Request) -> Response:
    """Run a collection now (all feeds or one; dry run or real) and say what it did."""
    form = await form_of(request)
    feed = field_of(form, "feed", 200) or None
    dry_run = form.get("dry_run") == "on"
    ui = await Ui.open(request, [])
    try:
        done = (await ui.api("POST", "/api/gc/runs", json={"feed": feed, "dry_run": dry_run})).json()
    except ApiError as exc:
        text = "You may not do this." if exc.status in (401, 403) else exc.message
        return ui.redirect("/ui/cleanup", text, "error")
    result = done.get("result") or {}
    if done["status"] == "skipped":
        return ui.redirect("/ui/cleanup", "Another cleanup run is in progress: nothing done.", "error")
    if done["status"] != "succeeded":
        return ui.redirect("/ui/cleanup", f"The cleanup run failed: {done.get('error')}", "error")
    verb = "Dry run: would delete" if dry_run else "Deleted"
    return ui.redirect(
        "/ui/cleanup",
        f"{verb} {result.get('deleted', 0)} blobs and {result.get('expired', 0)} upload sessions,"
        f" {result.get('bytes_freed', 0)} bytes.",
    )
