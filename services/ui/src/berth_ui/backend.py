"""How the UI reaches Berth's APIs: over HTTP, as the browser's user, never around them.

The UI owns no data and reads no other service's tables: every page is built from the admin
API (``/api/…``), the registry API (``/v2/…``) and the token endpoint (``/token``), called
with a bearer token of the logged-in user (or an anonymous one), so it can show and do exactly
what the API allows that user (docs/ARCHITECTURE.md, "Web UI"). Two transports:

- in the all-in-one process, the process's own ASGI app (:class:`InProcess`): no socket, the
  same routers, middleware and error rendering as any client gets;
- as its own service, ``ui.api_url`` (the ingress or ``berth serve proxy``).

The browser's address goes along (``X-Forwarded-For``, and in process as the ASGI peer), so
the auth service's failed-login limit counts per browser, not per UI process.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.requests import Request
from starlette.types import ASGIApp

TIMEOUT = httpx.Timeout(30.0)
FORWARDED = ("x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-port")


class InProcess(httpx.AsyncBaseTransport):
    """``httpx`` transport into ``app`` with the browser's address as the ASGI client, taken
    from the request extension ``berth_peer`` (``(host, port)``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Run the request through the app (the whole response body is buffered)."""
        peer = request.extensions.get("berth_peer") or ("127.0.0.1", 0)
        return await httpx.ASGITransport(app=self.app, client=peer).handle_async_request(request)


class ApiError(Exception):
    """The API refused or failed: ``status`` and the first OCI error's ``code`` and ``message``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message

    @classmethod
    def of(cls, response: httpx.Response) -> ApiError:
        """From an error response (OCI ``{"errors": [...]}`` body, or anything else)."""
        try:
            first = response.json()["errors"][0]
            return cls(response.status_code, str(first.get("code")), str(first.get("message")))
        except (ValueError, KeyError, IndexError, TypeError):
            return cls(response.status_code, "UNKNOWN", response.text[:200] or response.reason_phrase)


@dataclass(frozen=True)
class Token:
    """An access token and what it says: ``subject`` and ``access`` (type, name) → actions."""

    value: str
    subject: str
    access: dict[tuple[str, str], frozenset[str]] = field(default_factory=dict)

    @classmethod
    def parse(cls, value: str) -> Token:
        """Read the claims of a token the auth service just issued (shown, never trusted: the
        API verifies every token it is sent)."""
        payload = value.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        access = {(e["type"], e["name"]): frozenset(e["actions"]) for e in claims.get("access", [])}
        return cls(value, str(claims.get("sub") or "anonymous"), access)

    @property
    def anonymous(self) -> bool:
        """No user logged in."""
        return self.subject == "anonymous"

    @property
    def admin(self) -> bool:
        """Holds the Admin privilege (``registry:admin:*``)."""
        return "*" in self.access.get(("registry", "admin"), frozenset())

    def may(self, repository: str, action: str) -> bool:
        """Whether ``action`` (pull, push, delete) on ``repository`` was granted."""
        actions = self.access.get(("repository", repository), frozenset())
        return action in actions or "*" in actions


class Backend:
    """The UI's client of the APIs (see the module docstring). One per process."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    @classmethod
    def in_process(cls, app: ASGIApp) -> Backend:
        """Calling ``app`` itself (the all-in-one process)."""
        return cls(
            httpx.AsyncClient(transport=InProcess(app), base_url="http://berth.internal", timeout=TIMEOUT)
        )

    @classmethod
    def remote(cls, url: str) -> Backend:
        """Calling the APIs at ``url`` (the ingress or proxy in front of the services)."""
        return cls(httpx.AsyncClient(base_url=url.rstrip("/"), timeout=TIMEOUT, trust_env=False))

    async def aclose(self) -> None:
        """Close the client."""
        await self.client.aclose()

    async def request(
        self, browser: Request, method: str, path: str, token: Token | None = None, **kwargs: Any
    ) -> httpx.Response:
        """Send ``method path`` for the browser's ``request``; raises ``ApiError`` for ≥ 400 and
        ``httpx.HTTPError`` when the API cannot be reached."""
        headers = dict(kwargs.pop("headers", {}))
        headers.update(_forwarded(browser))
        if token is not None:
            headers["Authorization"] = f"Bearer {token.value}"
        peer = (browser.client.host, browser.client.port) if browser.client else ("127.0.0.1", 0)
        response = await self.client.request(
            method, path, headers=headers, extensions={"berth_peer": peer}, **kwargs
        )
        if response.status_code >= 400:
            raise ApiError.of(response)
        return response

    async def json(self, browser: Request, path: str, token: Token, **kwargs: Any) -> Any:
        """``GET path`` as JSON."""
        return (await self.request(browser, "GET", path, token, **kwargs)).json()

    async def token(self, browser: Request, scopes: list[str], refresh: str | None) -> Token:
        """An access token for ``scopes``: from the session's refresh token, else anonymous.

        Raises ``ApiError`` (401) when the refresh token is no longer valid.
        """
        if refresh is None:
            query = [("scope", s) for s in scopes]
            response = await self.request(browser, "GET", "/token", params=query)
        else:
            form = {"grant_type": "refresh_token", "refresh_token": refresh, "scope": " ".join(scopes)}
            response = await self.request(browser, "POST", "/token", data=form)
        return Token.parse(response.json()["access_token"])

    async def login(self, browser: Request, user: str, password: str) -> str:
        """The refresh token of a password login. Raises ``ApiError`` (401, 429)."""
        form = {"grant_type": "password", "username": user, "password": password}
        response = await self.request(browser, "POST", "/token", data=form)
        return str(response.json()["refresh_token"])

    async def revoke(self, browser: Request, refresh: str) -> None:
        """Revoke a refresh token (logout)."""
        await self.request(browser, "POST", "/auth/revoke", data={"token": refresh})


def _forwarded(browser: Request) -> dict[str, str]:
    """The browser's forwarded headers, with the browser's own address appended."""
    headers = {k: v for k in FORWARDED if (v := browser.headers.get(k))}
    peer = browser.client.host if browser.client else None
    if peer:
        prior = headers.get("x-forwarded-for")
        headers["x-forwarded-for"] = f"{prior}, {peer}" if prior else peer
    headers.setdefault("x-forwarded-proto", browser.url.scheme)
    if "host" in browser.headers:
        headers.setdefault("x-forwarded-host", browser.headers["host"])
    return headers
