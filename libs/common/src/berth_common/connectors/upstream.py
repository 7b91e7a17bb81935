"""The client of upstream registries: manifests and blobs over the OCI distribution API, with
the upstream's own authentication (docs/ARCHITECTURE.md, "Connectors").

Authentication follows the upstream's challenge, as the docker CLI does: a request goes out
anonymously (or with the credentials that worked before); a ``401`` with ``Bearer realm=…,
service=…`` is answered by a token from the realm for the scope this request needs
(``repository:<name>:pull``; Docker "Token Authentication Specification"), sent with Basic
credentials when the connector has them; a ``401`` with ``Basic`` by Basic credentials. Tokens
are reused until ``expires_in`` (a process's cache: losing it costs one token request, never
correctness); a ``401`` with a cached token fetches a new one once.

Every failure is an ``UpstreamError`` whose ``kind`` decides what a pull does (serve a cached
copy, try the next connector, or answer the client) and whose ``reason`` the client sees in its
error's detail. Credentials never appear in a reason or a log line.
"""

from __future__ import annotations

import base64
import re
import time
from dataclasses import dataclass
from typing import Literal

import httpx

from berth_common.connectors import metrics
from berth_common.connectors.model import Connector
from berth_common.connectors.secrets import SecretBox, SecretsUnavailable
from berth_common.errors import RegistryError, TooManyRequests, Unavailable
from berth_common.oci import mediatypes

Kind = Literal["not_found", "unavailable", "rate_limited", "refused", "invalid"]
MANIFEST_ACCEPT = ", ".join(
    [
        mediatypes.OCI_INDEX,
        mediatypes.OCI_MANIFEST,
        mediatypes.DOCKER_MANIFEST_LIST,
        mediatypes.DOCKER_MANIFEST,
    ]
)
_PARAM = re.compile(r'(\w+)="([^"]*)"')
_TOKEN_MARGIN = 0.9  # a token is reused for 90 % of its lifetime


class UpstreamError(Exception):
    """An upstream could not provide an object.

    Attributes:
        kind: ``not_found`` (404), ``unavailable`` (unreachable, timeout, 5xx), ``rate_limited``
            (429), ``refused`` (401/403 after authenticating, or credentials unusable),
            ``invalid`` (another status, or content that is not what was asked for).
        reason: a sentence for the client's error detail and the log (no credentials).
        status: the upstream's HTTP status, if it answered.
        retry_after: the upstream's ``Retry-After`` (429), if any.
    """

    def __init__(self, kind: Kind, reason: str, status: int | None = None, retry_after: str | None = None):
        super().__init__(reason)
        self.kind, self.reason, self.status, self.retry_after = kind, reason, status, retry_after

    @property
    def transient(self) -> bool:
        """Whether a cached copy should be served instead (the upstream is down or busy)."""
        return self.kind in ("unavailable", "rate_limited")


@dataclass(frozen=True)
class UpstreamManifest:
    """A manifest as the upstream served it: exact ``body`` (empty for a HEAD), ``media_type``
    (``Content-Type`` without parameters), ``digest`` (``Docker-Content-Digest``, if sent) and
    ``size`` (``Content-Length``, if sent)."""

    body: bytes
    media_type: str
    digest: str | None
    size: int | None


class Upstream:
    """A process's client of upstream registries (one connection pool for all connectors).

    ``timeout``: seconds to connect and between bytes read. ``close`` with ``aclose``.
    """

    def __init__(self, box: SecretBox, timeout: float) -> None:
        self.box = box
        self.http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout), follow_redirects=True, headers={"User-Agent": "berth-connector"}
        )
        self._tokens: dict[tuple[str, str], tuple[str, float]] = {}
        self._basic: set[str] = set()  # connectors whose upstream asked for Basic

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.http.aclose()

    async def manifest(
        self, c: Connector, image: str, reference: str, *, head: bool = False, limit: int = 4 << 20
    ) -> UpstreamManifest:
        """GET (or HEAD) the manifest ``reference`` (tag or digest) of the feed's ``image``.

        Raises ``UpstreamError`` (``invalid`` for a body over ``limit`` bytes).
        """
        name = c.upstream_name(image)
        response = await self.send(
            c, "HEAD" if head else "GET", f"{name}/manifests/{reference}", name, "manifest",
            {"Accept": MANIFEST_ACCEPT},
        )  # fmt: skip
        try:
            if response.status_code != 200:
                raise await self.failure(c, response, f"manifest {name}:{reference}")
            body = b"" if head else await _read_limited(response, limit, f"manifest {name}:{reference}")
            return UpstreamManifest(
                body,
                mediatypes.base_media_type(response.headers.get("content-type")),
                response.headers.get("docker-content-digest"),
                _length(response),
            )
        finally:
            await response.aclose()

    async def blob_size(self, c: Connector, image: str, digest: str) -> int | None:
        """HEAD the blob: its ``Content-Length`` (``None`` if not sent). Raises ``UpstreamError``."""
        name = c.upstream_name(image)
        response = await self.send(c, "HEAD", f"{name}/blobs/{digest}", name, "blob")
        try:
            if response.status_code != 200:
                raise await self.failure(c, response, f"blob {digest} of {name}")
            return _length(response)
        finally:
            await response.aclose()

    async def open_blob(self, c: Connector, image: str, digest: str) -> httpx.Response:
        """GET the blob, streaming: a ``200`` response whose body the caller reads and closes
        (``aclose``). Redirects (to object storage) are followed; ``Authorization`` is not sent
        to another origin. Raises ``UpstreamError``."""
        name = c.upstream_name(image)
        response = await self.send(c, "GET", f"{name}/blobs/{digest}", name, "blob")
        if response.status_code != 200:
            try:
                raise await self.failure(c, response, f"blob {digest} of {name}")
            finally:
                await response.aclose()
        return response

    async def send(
        self,
        c: Connector,
        method: str,
        path: str,
        name: str,
        kind: str,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """Send ``method /v2/<path>`` (streamed response) answering one auth challenge.

        Raises ``UpstreamError`` (``unavailable`` when unreachable or timed out, ``refused``
        when the credentials cannot be used).
        """
        scope = f"repository:{name}:pull"
        url = f"{c.upstream.registry}/v2/{path}"
        for attempt in (0, 1):
            auth = self._cached_auth(c, scope)
            request = self.http.build_request(method, url, headers={**(headers or {}), **auth})
            response = await self._exchange(c, request, kind)
            if response.status_code != 401 or attempt:
                return response
            challenge = response.headers.get("www-authenticate", "")
            await response.aread()
            if not await self._answer(c, challenge, scope, had_auth=bool(auth)):
                return response
            await response.aclose()
        raise AssertionError("unreachable")  # pragma: no cover

    async def _exchange(self, c: Connector, request: httpx.Request, kind: str) -> httpx.Response:
        registry = c.upstream.registry
        try:
            response = await self.http.send(request, stream=True)
        except httpx.TimeoutException:
            metrics.UPSTREAM_REQUESTS.labels(kind, request.method, registry, "timeout").inc()
            raise UpstreamError("unavailable", f"{registry} did not answer in time") from None
        except httpx.HTTPError as exc:
            metrics.UPSTREAM_REQUESTS.labels(kind, request.method, registry, "unreachable").inc()
            raise UpstreamError("unavailable", f"{registry} is unreachable: {_plain(exc)}") from None
        metrics.UPSTREAM_REQUESTS.labels(kind, request.method, registry, str(response.status_code)).inc()
        return response

    def _cached_auth(self, c: Connector, scope: str) -> dict[str, str]:
        token = self._tokens.get((c.id, scope))
        if token is not None and token[1] > time.monotonic():
            return {"Authorization": f"Bearer {token[0]}"}
        if c.id in self._basic and c.username:
            return {"Authorization": self._basic_header(c)}
        return {}

    async def _answer(self, c: Connector, challenge: str, scope: str, *, had_auth: bool) -> bool:
        """Prepare credentials for the retry; False when the challenge cannot be answered."""
        scheme = challenge.split(" ", 1)[0].lower()
        if scheme == "bearer":
            params = dict(_PARAM.findall(challenge))
            if "realm" not in params:
                return False
            self._tokens[(c.id, scope)] = await self._token(c, params, scope)
            self._forget_expired()
            return True
        if scheme == "basic" and c.username and c.id not in self._basic:
            self._basic.add(c.id)
            return True
        return False

    async def _token(self, c: Connector, params: dict[str, str], scope: str) -> tuple[str, float]:
        """A bearer token from the challenge's realm for ``scope``, with its expiry (monotonic)."""
        query = {k: v for k, v in (("service", params.get("service", "")), ("scope", scope)) if v}
        headers = {"Authorization": self._basic_header(c)} if c.username else {}
        request = self.http.build_request("GET", params["realm"], params=query, headers=headers)
        response = await self._exchange(c, request, "token")
        try:
            await response.aread()
            if response.status_code != 200:
                raise UpstreamError(
                    "refused" if response.status_code in (401, 403) else "unavailable",
                    f"{c.upstream.registry}'s token server answered {response.status_code}: "
                    f"{_message(response)}",
                    response.status_code,
                )
            data = response.json()
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            token = str(data.get("token") or data.get("access_token") or "")
            lifetime = float(data.get("expires_in") or 60)
        except (ValueError, TypeError):
            raise UpstreamError("invalid", f"{c.upstream.registry}'s token server sent no token") from None
        finally:
            await response.aclose()
        if not token:
            raise UpstreamError("invalid", f"{c.upstream.registry}'s token server sent no token")
        return token, time.monotonic() + lifetime * _TOKEN_MARGIN

    def _forget_expired(self, keep: int = 1000) -> None:
        """Bound the token cache (one token per connector and repository): past ``keep``
        entries, expired tokens are dropped."""
        if len(self._tokens) > keep:
            now = time.monotonic()
            self._tokens = {k: v for k, v in self._tokens.items() if v[1] > now}

    def _basic_header(self, c: Connector) -> str:
        try:
            password = self.box.decrypt(c.password_encrypted) if c.password_encrypted else ""
        except SecretsUnavailable as exc:
            raise UpstreamError("refused", f"connector {c.url}: {exc}") from None
        raw = f"{c.username}:{password}".encode()
        return "Basic " + base64.b64encode(raw).decode()

    async def failure(self, c: Connector, response: httpx.Response, what: str) -> UpstreamError:
        """The ``UpstreamError`` of a non-200 answer (its body is read, at most 64 KiB)."""
        status = response.status_code
        if response.request.method != "HEAD" and not response.is_closed:
            await response.aread()
        kind: Kind = "invalid"
        if status == 404:
            kind = "not_found"
        elif status == 429:
            kind = "rate_limited"
        elif status >= 500:
            kind = "unavailable"
        elif status in (401, 403):
            kind = "refused"
        reason = f"{c.upstream.registry} answered {status} for {what}: {_message(response)}"
        return UpstreamError(kind, reason, status, response.headers.get("retry-after"))


def client_error(unknown: RegistryError, failures: list[UpstreamError]) -> RegistryError:
    """What a pull answers when nothing is cached and every connector failed: ``503
    UNAVAILABLE`` if an upstream was unreachable or failing, else ``429 TOOMANYREQUESTS`` (with
    the upstream's ``Retry-After``) if one rate-limited, else ``unknown`` (the 404). Each
    connector's reason is in the message and in ``detail["connectors"]``."""
    reasons = [f.reason for f in failures]
    detail = {**(unknown.detail if isinstance(unknown.detail, dict) else {}), "connectors": reasons}
    message = f"{unknown.message}: {'; '.join(reasons)}" if reasons else unknown.message
    if any(f.kind == "unavailable" for f in failures):
        return Unavailable(message, detail=detail)
    limited = [f for f in failures if f.kind == "rate_limited"]
    if limited:
        retry = limited[0].retry_after
        return TooManyRequests(message, detail=detail, headers={"Retry-After": retry} if retry else None)
    return type(unknown)(message, detail=detail, headers=unknown.headers)


async def _read_limited(response: httpx.Response, limit: int, what: str) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise UpstreamError("invalid", f"{what} is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _length(response: httpx.Response) -> int | None:
    value = response.headers.get("content-length", "")
    return int(value) if value.isdigit() else None


def _message(response: httpx.Response) -> str:
    """The upstream's error in a few words: the first ``{"errors": [...]}`` entry, else text."""
    if response.request.method == "HEAD" or not response.is_stream_consumed:
        return response.reason_phrase or "no details"
    try:
        errors = response.json().get("errors") or []
        first = errors[0]
        return f"{first.get('code', '')} {first.get('message', '')}".strip()[:300]
    except (ValueError, AttributeError, IndexError, TypeError):
        return (response.text.strip()[:300] or response.reason_phrase) or "no details"


def _plain(exc: Exception) -> str:
    """An exception's text without any URL credentials (there are none: URLs carry none)."""
    return str(exc)[:300] or type(exc).__name__
