"""Feeds: the list (create), one feed's images, its settings (edit, delete with typed
confirmation). Pages call the browse API (``/api/feeds…``) and the feeds admin API."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from berth_ui.paging import Pages, page_params
from berth_ui.web import Ui, action, attempt, field_of, form_of, page, settings_of

router = APIRouter(include_in_schema=False)
FEED_SCOPES = ["registry:catalog:*"]  # the feeds the user may view come with it


async def feed_of(ui: Ui, feed: str) -> dict[str, Any]:
    """The feed's listing row (``ApiError`` 401/404 when absent or not visible)."""
    result: dict[str, Any] = await ui.get(f"/api/feeds/{feed}")
    return result


@router.get("/ui/feeds")
@page
async def feeds(request: Request) -> Response:
    """Feeds the user may view, with image counts, sizes and last push."""
    ui = await Ui.open(request, FEED_SCOPES)
    response = await ui.api(
        "GET", "/api/feeds", params=page_params(request, settings_of(request).ui.page_size)
    )
    pages = Pages.of(response, request.query_params.get("q", ""))
    return ui.render("feeds.html", feeds=response.json(), pages=pages)


@router.post("/ui/feeds")
@action
async def create_feed(request: Request) -> Response:
    """Create a feed (Admin)."""
    form = await form_of(request)
    name = field_of(form, "name", 64)
    body = {"name": name, "description": field_of(form, "description"), "public": form.get("public") == "1"}
    ui = await Ui.open(request, FEED_SCOPES)
    call = ui.api("POST", "/api/feeds", json=body)
    return await attempt(ui, "/ui/feeds", call, f"Feed {name} created.", then=f"/ui/feeds/{name}")


@router.get("/ui/feeds/{feed}")
@page
async def feed(request: Request, feed: str) -> Response:
    """A feed's images (repositories), searchable, a page at a time."""
    ui = await Ui.open(request, FEED_SCOPES)
    row = await feed_of(ui, feed)
    response = await ui.api(
        "GET",
        f"/api/feeds/{feed}/repositories",
        params=page_params(request, settings_of(request).ui.page_size),
    )
    pages = Pages.of(response, request.query_params.get("q", ""))
    return ui.render("feed.html", feed=row, repositories=response.json(), pages=pages)


@router.get("/ui/feeds/{feed}/settings")
@page
async def settings(request: Request, feed: str) -> Response:
    """Edit or delete a feed (the API refuses both unless the user is an Admin)."""
    ui = await Ui.open(request, FEED_SCOPES)
    return ui.render("feed_settings.html", feed=await feed_of(ui, feed))


@router.post("/ui/feeds/{feed}/settings")
@action
async def edit(request: Request, feed: str) -> Response:
    """Change the description and the public flag."""
    form = await form_of(request)
    body = {"description": field_of(form, "description"), "public": form.get("public") == "1"}
    ui = await Ui.open(request, FEED_SCOPES)
    call = ui.api("PATCH", f"/api/feeds/{feed}", json=body)
    return await attempt(ui, f"/ui/feeds/{feed}/settings", call, "Settings saved.")


@router.post("/ui/feeds/{feed}/delete")
@action
async def delete(request: Request, feed: str) -> Response:
    """Delete the feed once its name was typed to confirm."""
    form = await form_of(request)
    ui = await Ui.open(request, FEED_SCOPES)
    if field_of(form, "confirm", 100) != feed:
        return ui.redirect(f"/ui/feeds/{feed}/settings", "Type the feed's name to delete it.", "error")
    call = ui.api("DELETE", f"/api/feeds/{feed}")
    return await attempt(ui, f"/ui/feeds/{feed}/settings", call, f"Feed {feed} deleted.", then="/ui/feeds")
