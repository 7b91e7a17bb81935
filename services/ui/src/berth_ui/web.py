"""What every page and form handler of the UI shares: the caller's token, rendering, redirects,
CSRF checks and the mapping of API errors to pages.

``Ui.open(request, scopes)`` gets an access token for the scopes a page needs (the session's
user, or anonymous), ``ui.render(template, **context)`` renders with the common context
(who is logged in, the CSRF token, a message left by the previous request, the host for
``docker pull`` commands). ``@page`` turns API refusals into pages (401/403/404/503, never a
traceback); ``@action`` refuses a POST without a valid CSRF token (403) before anything runs.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import httpx
import structlog
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from berth_common.http.urls import external_base_url
from berth_common.settings import Settings
from berth_ui import session
from berth_ui.backend import ApiError, Backend, Token
from berth_ui.render import templates

log = structlog.get_logger("berth.ui")
Handler = Callable[..., Awaitable[Response]]
NAV_SCOPES = ["registry:admin:*"]


def backend_of(request: Request) -> Backend:
    """The process's API client (``berth_ui.app.start``)."""
    backend: Backend = request.app.state.ui_backend
    return backend


def settings_of(request: Request) -> Settings:
    """The UI's settings."""
    settings: Settings = request.app.state.ui_settings
    return settings


@dataclass
class Ui:
    """One request's view of Berth: ``token`` (whose ``subject`` is the user) and the backend."""

    request: Request
    backend: Backend
    token: Token
    ended: bool = False  # the session's refresh token was refused: forget it
    cookies: list[Callable[[Response], None]] = field(default_factory=list)

    @classmethod
    async def open(cls, request: Request, scopes: list[str]) -> Ui:
        """Get a token for ``scopes`` (plus the Admin check for the navigation)."""
        request.state.external_url = external_base_url(request, settings_of(request))
        backend = backend_of(request)
        refresh = session.refresh_token(request)
        wanted = list(dict.fromkeys([*scopes, *NAV_SCOPES]))
        try:
            return cls(request, backend, await backend.token(request, wanted, refresh))
        except ApiError as exc:
            if refresh is None or exc.status != 401:
                raise
        ui = cls(request, backend, await backend.token(request, wanted, None), ended=True)
        return ui

    @property
    def host(self) -> str:
        """``host[:port]`` as the browser sees Berth (for ``docker pull`` commands)."""
        external: str = self.request.state.external_url
        return external.split("://", 1)[1]

    async def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Call the API with this request's token (``ApiError`` for a refusal)."""
        return await self.backend.request(self.request, method, path, self.token, **kwargs)

    async def get(self, path: str, **kwargs: Any) -> Any:
        """``GET`` JSON."""
        return (await self.api("GET", path, **kwargs)).json()

    def _finish(self, response: Response) -> Response:
        if self.ended:
            session.end_session(response, self.request)
        session.keep_csrf_secret(response, self.request)
        response.headers["Cache-Control"] = "no-store"
        return response

    def render(self, template: str, status: int = 200, **context: Any) -> Response:
        """The page ``template`` with the common context."""
        response = HTMLResponse("", status_code=status)
        message = session.take_flash(self.request, response)
        if self.ended and message is None:
            message = {"text": "Your session has ended. Log in again.", "level": "error"}
        body = templates.get_template(template).render(
            request=self.request,
            token=self.token,
            csrf=session.csrf_token(self.request),
            flash=message,
            host=self.host,
            path=self.request.url.path,
            **context,
        )
        response.body = body.encode()
        response.headers["content-length"] = str(len(response.body))
        return self._finish(response)

    def redirect(self, to: str, message: str | None = None, level: str = "ok") -> Response:
        """``303 See Other`` to ``to`` (a local path), with a message for the next page."""
        response = RedirectResponse(local(to), status_code=303)
        if message:
            session.flash(response, self.request, message, level)
        return self._finish(response)


def local(target: str | None, default: str = "/ui/feeds") -> str:
    """``target`` if it is a path on this site (never another origin), else ``default``."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    parts = urlsplit(target)
    return default if parts.scheme or parts.netloc else target


def error_page(request: Request, status: int, title: str, text: str) -> Response:
    """A plain error page (no API call needed to render it)."""
    body = templates.get_template("error.html").render(
        request=request,
        token=None,
        csrf="",
        flash=None,
        host="",
        path=request.url.path,
        title=title,
        text=text,
    )
    return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


def _refusal(request: Request, exc: ApiError) -> Response:
    if exc.status == 401 and session.refresh_token(request) is None:
        return RedirectResponse("/ui/login?next=" + quote(request.url.path, safe="/"), status_code=303)
    if exc.status in (401, 403, 404):
        # one answer for "absent" and "not yours to see": a page tells nothing the API would not
        return error_page(request, 404, "Not found", "There is nothing here that you may see.")
    if exc.status == 503:
        return error_page(request, 503, "Unavailable", "Berth is unavailable. Try again shortly.")
    return error_page(request, exc.status, "Refused", exc.message)


def page(handler: Handler) -> Handler:
    """Render API refusals and outages of a GET handler as pages."""

    @functools.wraps(handler)
    async def wrapper(request: Request, *args: Any, **kwargs: Any) -> Response:
        try:
            return await handler(request, *args, **kwargs)
        except ApiError as exc:
            return _refusal(request, exc)
        except httpx.HTTPError as exc:
            log.warning("ui.api_unreachable", error=repr(exc))
            return error_page(
                request, 503, "Unavailable", "Berth's API cannot be reached. Try again shortly."
            )

    return wrapper


def action(handler: Handler) -> Handler:
    """A POST handler: the CSRF token is checked first (403 without it), then as ``page``."""

    @functools.wraps(handler)
    async def wrapper(request: Request, *args: Any, **kwargs: Any) -> Response:
        form = await form_of(request)
        submitted = form.get(session.CSRF_FIELD)
        if not session.csrf_valid(request, submitted if isinstance(submitted, str) else None):
            return error_page(
                request,
                403,
                "Form expired",
                "This form has expired or did not come from this site. Go back, reload and try again.",
            )
        return await page(handler)(request, *args, **kwargs)

    return wrapper


async def attempt(ui: Ui, back: str, call: Awaitable[Any], done: str, then: str | None = None) -> Response:
    """Run an API ``call``; on to ``then`` (default ``back``) with the message ``done``, or
    back to ``back`` with the API's refusal."""
    try:
        await call
    except ApiError as exc:
        if exc.status == 401 and ui.token.anonymous:
            return ui.redirect("/ui/login?next=" + quote(back, safe="/"))
        text = "You may not do this." if exc.status in (401, 403) else exc.message
        return ui.redirect(back, text, "error")
    return ui.redirect(then or back, done)


MAX_FORM = 64 * 1024  # bytes: the UI's forms are small; a larger body counts as empty


async def form_of(request: Request) -> FormData:
    """The ``application/x-www-form-urlencoded`` body (every form of the UI), read once."""
    cached: FormData | None = getattr(request.state, "form", None)
    if cached is None:
        body = await request.body()
        text = body.decode("utf-8", "replace") if len(body) <= MAX_FORM else ""
        pairs: list[tuple[str, str | UploadFile]] = list(parse_qsl(text, keep_blank_values=True))
        cached = request.state.form = FormData(pairs)
    return cached


def field_of(form: Any, name: str, limit: int = 1000) -> str:
    """A form field as stripped text (``""`` if absent), at most ``limit`` characters."""
    value = form.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""
