"""Logging in and out, the landing redirect, static assets and the UI's own 404 page."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from berth_ui import session
from berth_ui.backend import ApiError
from berth_ui.render import STATIC
from berth_ui.web import Ui, action, error_page, field_of, form_of, local, page

router = APIRouter(include_in_schema=False)
fallback = APIRouter(include_in_schema=False)  # mounted after every other UI route


@router.get("/")
@router.get("/ui")
@router.get("/ui/")
async def home() -> Response:
    """The feeds are the start page."""
    return RedirectResponse("/ui/feeds", status_code=303)


@router.get("/ui/login")
@page
async def login_page(request: Request) -> Response:
    """The login form (``next``: where to go afterwards, a local path)."""
    ui = await Ui.open(request, [])
    return ui.render("login.html", title="Log in", next=local(request.query_params.get("next")), username="")


@router.post("/ui/login")
@action
async def login(request: Request) -> Response:
    """Exchange user name and password for a refresh token kept in the session cookie."""
    form = await form_of(request)
    user, password = field_of(form, "username", 64), field_of(form, "password", 1024)
    target = local(field_of(form, "next"))
    ui = await Ui.open(request, [])
    try:
        refresh = await ui.backend.login(request, user, password)
    except ApiError as exc:
        error = (
            "Too many failed logins. Wait a minute." if exc.status == 429 else "Wrong user name or password."
        )
        return ui.render(
            "login.html",
            status=401 if exc.status != 429 else 429,
            title="Log in",
            next=target,
            username=user,
            error=error,
        )
    response = ui.redirect(target)
    session.start_session(response, request, refresh)
    return response


@router.post("/ui/logout")
@action
async def logout(request: Request) -> Response:
    """Revoke the session's refresh token and forget it."""
    refresh = session.refresh_token(request)
    ui = await Ui.open(request, [])
    if refresh:
        await ui.backend.revoke(request, refresh)
    ui.ended = True
    return ui.redirect("/ui/feeds", "You are logged out.")


@router.get("/ui/static/{name}")
async def static(name: str) -> Response:
    """A packaged asset (cached for a year: its URL carries its content hash)."""
    found = STATIC.get(name)
    if found is None:
        return Response("not found", status_code=404, media_type="text/plain")
    body, media_type = found
    return Response(
        body, media_type=media_type, headers={"Cache-Control": "public, max-age=31536000, immutable"}
    )


@fallback.get("/ui/{rest:path}")
async def not_found(request: Request, rest: str) -> Response:
    """Any other UI path."""
    return error_page(request, 404, "Not found", "There is no such page.")
