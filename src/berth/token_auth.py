"""An ``httpx.Auth`` that speaks the Docker token protocol, for the CLI and the tests.

On ``401`` with a ``Bearer`` challenge it fetches a token from the realm (``GET /token`` with
Basic credentials, anonymously without, or ``POST /token`` with the OAuth2 refresh-token grant
when it holds a refresh token, as a stored ``berth login`` does) for the scope the path needs —
all of pull, push and delete on a repository (plus pull on a mount's ``from``),
``registry:admin:*`` for ``/api/`` (reading ``/api/feeds…`` also ``registry:catalog:*``,
reading a repository's tags or history ``repository:<name>:pull``: View suffices),
``registry:catalog:*`` for the catalogue — caches it by scope, and retries once. A refused token
request is remembered in ``token_error``.
"""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncGenerator, Generator

import httpx

# Greedy name, anchored endpoint suffix: a repository may itself be called ``feed/tags``.
REPO_PATH = re.compile(
    r"^/v2/(.+)/(?:blobs/uploads/[^/]*|blobs/[^/]+|manifests/[^/]+|tags/list|referrers/[^/]+)$"
)
BROWSE_REPOSITORY = re.compile(r"^/api/repositories/(.+)/(?:tags|history)$")
CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


def scopes_for(request: httpx.Request) -> str:
    """The space-separated scopes a request to ``request.url`` needs (``""`` for ``/v2/``)."""
    path = request.url.path
    browse = BROWSE_REPOSITORY.match(path)
    if browse and request.method == "GET":
        return f"repository:{browse[1]}:pull"
    if path.startswith("/api/feeds") and request.method == "GET":
        return "registry:catalog:* registry:admin:*"  # viewers see their feeds, Admin all
    if path.startswith("/api/"):
        return "registry:admin:*"
    if path.rstrip("/") == "/v2/_catalog":
        return "registry:catalog:*"
    match = REPO_PATH.match(path)
    if not match:
        return ""
    scope = f"repository:{match[1]}:pull,push,delete"
    source = request.url.params.get("from")
    return f"{scope} repository:{source}:pull" if source else scope


def error_text(response: httpx.Response) -> str:
    """A readable line for a refused request: ``CODE: message`` of each entry of an
    ``{"errors": [...]}`` body (joined by ``; ``), else the status and the body's start."""
    try:
        errors = response.json()["errors"]
        return "; ".join(f"{e['code']}: {e['message']}" for e in errors)
    except (ValueError, KeyError, TypeError):
        return f"{response.status_code} {response.reason_phrase}: {response.text[:200]}".rstrip(": ")


class RegistryAuth(httpx.Auth):
    """Bearer tokens for ``username``/``password`` (both ``None``: anonymous tokens), or from
    ``refresh_token`` (OAuth2 refresh grant; ``username`` then only names the login).

    Once a challenge has named the realm, tokens are fetched *before* a request whose scope has
    none cached, so a streamed upload body is sent once and never buffered; only token responses
    are read into memory. ``token_error`` holds :func:`error_text` of the last refused token
    request (``None`` while none was refused).
    """

    def __init__(
        self,
        username: str | None = None,
        password: str | None = None,
        *,
        refresh_token: str | None = None,
        client_id: str = "berth-cli",
    ) -> None:
        self.basic = None
        if username is not None and refresh_token is None:
            raw = f"{username}:{password or ''}".encode()
            self.basic = "Basic " + base64.b64encode(raw).decode()
        self.username = username
        self.refresh_token = refresh_token
        self.client_id = client_id
        self.tokens: dict[str, str] = {}
        self.challenge: dict[str, str] | None = None
        self.token_error: str | None = None

    def _token_request(self, params: dict[str, str], scopes: list[str]) -> httpx.Request:
        if self.refresh_token is not None:
            form = {
                "grant_type": "refresh_token",
                "refresh_token": self.refresh_token,
                "service": params.get("service", ""),
                "scope": " ".join(scopes),
                "client_id": self.client_id,
            }
            return httpx.Request("POST", params.get("realm", ""), data=form)
        query = [("service", params.get("service", ""))] + [("scope", s) for s in scopes]
        # repeated ``scope`` parameters: httpx takes a list of pairs (its stubs only say mappings)
        token_request = httpx.Request("GET", params.get("realm", ""), params=query)  # type: ignore[arg-type]
        if self.basic:
            token_request.headers["Authorization"] = self.basic
        return token_request

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Send with a cached (or prefetched) token; on a Bearer challenge refresh and retry once."""
        key = scopes_for(request)
        if key not in self.tokens and key and self.challenge is not None:
            token_response = yield self._token_request(self.challenge, key.split(" "))
            self._keep(key, token_response)
        if key in self.tokens:
            request.headers["Authorization"] = f"Bearer {self.tokens[key]}"
        response = yield request
        header = response.headers.get("www-authenticate", "")
        if response.status_code != 401 or not header.lower().startswith("bearer "):
            return
        params = self.challenge = dict(CHALLENGE_PARAM.findall(header))
        scopes = key.split(" ") if key else [s for s in [params.get("scope")] if s]
        token_response = yield self._token_request(params, scopes)
        if not self._keep(key, token_response):
            return
        request.headers["Authorization"] = f"Bearer {self.tokens[key]}"
        yield request

    def _keep(self, key: str, token_response: httpx.Response) -> bool:
        """Cache the token of a 200 answer under ``key``; else remember why it was refused."""
        if token_response.status_code != 200:
            self.token_error = error_text(token_response)
            return False
        self.tokens[key] = token_response.json()["token"]
        return True

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """``auth_flow``, reading only the token responses' bodies."""
        flow = self.auth_flow(request)
        outgoing = next(flow)
        while True:
            response = yield outgoing
            if outgoing.url.path.endswith("/token"):
                response.read()
            try:
                outgoing = flow.send(response)
            except StopIteration:
                return

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """``auth_flow``, reading only the token responses' bodies."""
        flow = self.auth_flow(request)
        outgoing = next(flow)
        while True:
            response = yield outgoing
            if outgoing.url.path.endswith("/token"):
                await response.aread()
            try:
                outgoing = flow.send(response)
            except StopIteration:
                return
