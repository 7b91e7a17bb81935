"""Users, groups and API keys (the identity admin API, ``/api/users|groups|keys``; Admin).

The API returns these lists whole; the UI pages and searches them on the server by name
(``paging.Pages.of_list``), so the browser gets one page at a time. A new API key is shown on
the page that created it, once: the API never shows it again.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from berth_ui.backend import ApiError
from berth_ui.paging import Pages
from berth_ui.web import Ui, action, attempt, field_of, form_of, page, settings_of

router = APIRouter(include_in_schema=False)
PRIVILEGES = ["view", "add", "overwrite", "delete", "manage"]


async def _user_names(ui: Ui) -> list[str]:
    return [u["name"] for u in await ui.get("/api/users")]


@router.get("/ui/users")
@page
async def users(request: Request) -> Response:
    """Users with their groups."""
    ui = await Ui.open(request, [])
    items, pages = Pages.of_list(
        await ui.get("/api/users"), request, settings_of(request).ui.page_size, "name"
    )
    return ui.render("users.html", title="Users", items=items, pages=pages)


@router.post("/ui/users")
@action
async def add_user(request: Request) -> Response:
    """Create a user."""
    form = await form_of(request)
    name = field_of(form, "name", 64)
    body = {"name": name, "password": field_of(form, "password", 1024), "email": field_of(form, "email", 200)}
    ui = await Ui.open(request, [])
    return await attempt(ui, "/ui/users", ui.api("POST", "/api/users", json=body), f"User {name} added.")


@router.get("/ui/users/{user}/disable")
@page
async def confirm_disable(request: Request, user: str) -> Response:
    """Ask before disabling a user."""
    ui = await Ui.open(request, [])
    return ui.render(
        "confirm.html",
        title=f"Disable {user}?",
        text=f"{user} can no longer log in; their sessions and refresh tokens end now.",
        action=f"/ui/users/{user}/disable",
        button=f"Disable {user}",
        back="/ui/users",
    )


@router.post("/ui/users/{user}/disable")
@action
async def disable(request: Request, user: str) -> Response:
    """Disable a user."""
    ui = await Ui.open(request, [])
    return await attempt(
        ui, "/ui/users", ui.api("POST", f"/api/users/{user}/disable"), f"User {user} disabled."
    )


@router.get("/ui/groups")
@page
async def groups(request: Request) -> Response:
    """Groups with their members."""
    ui = await Ui.open(request, [])
    items, pages = Pages.of_list(
        await ui.get("/api/groups"), request, settings_of(request).ui.page_size, "name"
    )
    return ui.render("groups.html", title="Groups", items=items, pages=pages, users=await _user_names(ui))


@router.post("/ui/groups")
@action
async def create_group(request: Request) -> Response:
    """Create a group."""
    name = field_of(await form_of(request), "name", 64)
    ui = await Ui.open(request, [])
    return await attempt(
        ui, "/ui/groups", ui.api("POST", "/api/groups", json={"name": name}), f"Group {name} created."
    )


@router.post("/ui/groups/{group}/members")
@action
async def add_member(request: Request, group: str) -> Response:
    """Add a user to a group."""
    user = field_of(await form_of(request), "user", 64)
    ui = await Ui.open(request, [])
    call = ui.api("POST", f"/api/groups/{group}/members", json={"user": user})
    return await attempt(ui, "/ui/groups", call, f"{user} added to {group}.")


@router.post("/ui/groups/{group}/members/{user}/remove")
@action
async def remove_member(request: Request, group: str, user: str) -> Response:
    """Remove a user from a group."""
    ui = await Ui.open(request, [])
    call = ui.api("DELETE", f"/api/groups/{group}/members/{user}")
    return await attempt(ui, "/ui/groups", call, f"{user} removed from {group}.")


async def _keys_page(ui: Ui, request: Request, **extra: Any) -> Response:
    items, pages = Pages.of_list(
        await ui.get("/api/keys"), request, settings_of(request).ui.page_size, "key_id"
    )
    return ui.render(
        "keys.html",
        title="API keys",
        items=items,
        pages=pages,
        users=await _user_names(ui),
        privileges=PRIVILEGES,
        **extra,
    )


@router.get("/ui/keys")
@page
async def keys(request: Request) -> Response:
    """API keys (never their secrets)."""
    return await _keys_page(await Ui.open(request, []), request)


@router.post("/ui/keys")
@action
async def create_key(request: Request) -> Response:
    """Create a key and show it, this once."""
    form = await form_of(request)
    feeds = [f.strip() for f in field_of(form, "feeds").split(",") if f.strip()]
    chosen = [p for p in form.getlist("privileges") if isinstance(p, str) and p in PRIVILEGES]
    body = {
        "owner": field_of(form, "owner", 64) or None,
        "feeds": feeds or None,
        "privileges": chosen or ["view"],
        "description": field_of(form, "description", 200),
    }
    ui = await Ui.open(request, [])
    try:
        created = (await ui.api("POST", "/api/keys", json=body)).json()
    except ApiError as exc:
        return ui.redirect(
            "/ui/keys", exc.message if exc.status not in (401, 403) else "You may not do this.", "error"
        )
    return await _keys_page(ui, request, new_key=created)


@router.post("/ui/keys/{key_id}/revoke")
@action
async def revoke_key(request: Request, key_id: str) -> Response:
    """Revoke a key."""
    ui = await Ui.open(request, [])
    return await attempt(ui, "/ui/keys", ui.api("DELETE", f"/api/keys/{key_id}"), f"Key {key_id} revoked.")
