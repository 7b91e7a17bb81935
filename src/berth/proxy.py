"""``berth serve proxy``: a path-routing reverse proxy for separately run services (docs/DESIGN.md §1).

For running api, blob, auth, gc and ui as separate processes on one machine without a container
engine or an ingress. Routing is :func:`berth_common.http.routing.service_for_path`, the same
table the all-in-one app, ``deploy/compose.yaml`` and ``deploy/k8s/`` follow.

A pure ASGI app over one ``httpx.AsyncClient``. Request and response bodies stream chunk by
chunk (never buffered: memory does not grow with blob size). The client's ``Host`` is kept
(the services build ``Location`` and token realms from it); ``X-Forwarded-Proto``,
``X-Forwarded-Host`` and ``X-Forwarded-For`` are added. Responses pass through as they are:
status (including ``307`` to presigned URLs, never followed), ``Location``, ``Content-Length``
and undecoded bytes. An unreachable service becomes ``503 UNAVAILABLE`` in the OCI error body.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import httpx
import structlog
from starlette.types import Message, Receive, Scope, Send

from berth_common.errors import Unavailable, error_body
from berth_common.http.routing import Service, service_for_path

log = structlog.get_logger("berth.proxy")

# RFC 9110 §7.6.1 connection-specific fields, never forwarded; Host is set from the client's.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
TIMEOUT = httpx.Timeout(connect=10.0, read=300.0, write=300.0, pool=30.0)  # seconds
LIMITS = httpx.Limits(max_connections=256, max_keepalive_connections=64)


@dataclass(frozen=True)
class Upstreams:
    """Base URLs of the services (``http://127.0.0.1:5001``); ``gc`` and ``ui`` may be absent.

    Each may list several replicas separated by commas (``http://a:5001,http://b:5001``): the
    proxy spreads requests over them in turn; a request without a body goes on to the next
    replica when one refuses the connection (a request with a body cannot be replayed: ``503``,
    which clients retry).
    """

    api: str
    blob: str
    auth: str
    gc: str | None = None
    ui: str | None = None

    def urls_for(self, service: Service) -> list[str]:
        """The base URLs (no trailing slash) of ``service``'s replicas; empty if not configured."""
        bases: str | None = getattr(self, service)
        return [b.strip().rstrip("/") for b in (bases or "").split(",") if b.strip()]

    def url_for(self, service: Service) -> str | None:
        """The first replica's base URL of ``service``, or ``None`` if not configured."""
        urls = self.urls_for(service)
        return urls[0] if urls else None


class RoutingProxy:
    """The ASGI app. ``RoutingProxy(Upstreams(api=..., blob=..., auth=...))``."""

    def __init__(
        self,
        upstreams: Upstreams,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        trust_forwarded: bool = False,
    ):
        self.upstreams = upstreams
        self.trust_forwarded = trust_forwarded
        self._turn: dict[str, int] = {}  # service -> the replica that answers next
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._proxy(scope, receive, send)

    @property
    def client(self) -> httpx.AsyncClient:
        """The shared client (made on first use if the server sent no lifespan events)."""
        if self._client is None:
            self._client = httpx.AsyncClient(
                transport=self._transport, timeout=TIMEOUT, limits=LIMITS, follow_redirects=False
            )
        return self._client

    async def aclose(self) -> None:
        """Close the shared client and its connections."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _replicas(self, service: Service) -> list[str]:
        """``service``'s replicas, starting with the one whose turn it is (round robin)."""
        urls = self.upstreams.urls_for(service)
        turn = self._turn.get(service, 0)
        self._turn[service] = turn + 1
        return urls[turn % len(urls) :] + urls[: turn % len(urls)] if urls else []

    async def _proxy(self, scope: Scope, receive: Receive, send: Send) -> None:
        service = service_for_path(scope["path"])
        replicas = self._replicas(service)
        if not replicas:
            await _error(send, Unavailable(f"no {service} service is configured"))
            return
        body = _body(receive) if _has_body(scope) else None
        response = None
        for base in replicas if body is None else replicas[:1]:  # a body cannot be sent twice
            request = self.client.build_request(
                scope["method"],
                base + _target(scope),
                headers=forward_headers(scope, trust_forwarded=self.trust_forwarded),
                content=body,
            )
            try:
                response = await self.client.send(request, stream=True)
                break
            except httpx.ConnectError as exc:
                log.warning("proxy.replica_refused", service=service, replica=base, error=repr(exc))
            except httpx.HTTPError as exc:
                log.warning("proxy.upstream_failed", service=service, error=repr(exc))
                break
        if response is None:
            await _error(send, Unavailable(f"the {service} service is unavailable; retry later"))
            return
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": _response_headers(response),
                }
            )
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await response.aclose()


def forward_headers(scope: Scope, *, trust_forwarded: bool = False) -> list[tuple[bytes, bytes]]:
    """The request headers to send upstream: the client's minus hop-by-hop, plus X-Forwarded-*.

    ``Host`` is kept. The proxy is the edge by default: the client's own ``X-Forwarded-*``
    headers are dropped and replaced by what the proxy sees, so no client can choose the token
    realm the services build from them. With ``trust_forwarded`` (the proxy itself sits behind
    another ingress: ``BERTH_PROXY_TRUST_FORWARDED=1``) an earlier proxy's ``-Proto``/``-Host``
    are kept and the client address is appended to ``X-Forwarded-For`` (``"a, b"``).
    """
    raw: list[tuple[bytes, bytes]] = scope["headers"]
    headers = [
        (k, v)
        for k, v in raw
        if k.lower() not in HOP_BY_HOP and (trust_forwarded or not k.lower().startswith(b"x-forwarded-"))
    ]
    seen = {k.lower(): v for k, v in headers}
    if b"x-forwarded-proto" not in seen:
        headers.append((b"x-forwarded-proto", scope.get("scheme", "http").encode()))
    if b"x-forwarded-host" not in seen and b"host" in seen:
        headers.append((b"x-forwarded-host", seen[b"host"]))
    client = scope.get("client")
    if client:
        prior = seen.get(b"x-forwarded-for")
        value = client[0].encode() if prior is None else prior + b", " + client[0].encode()
        headers = [(k, v) for k, v in headers if k.lower() != b"x-forwarded-for"]
        headers.append((b"x-forwarded-for", value))
    return headers


def _target(scope: Scope) -> str:
    """The path and query exactly as the client sent them (``raw_path`` keeps ``%2F``)."""
    path: bytes = scope.get("raw_path") or scope["path"].encode()
    query: bytes = scope.get("query_string", b"")
    return (path + (b"?" + query if query else b"")).decode("latin-1")


def _has_body(scope: Scope) -> bool:
    names = {k.lower() for k, _ in scope["headers"]}
    return b"content-length" in names or b"transfer-encoding" in names


async def _body(receive: Receive) -> AsyncIterator[bytes]:
    """The request body, chunk by chunk as the server hands it over."""
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            return
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


def _response_headers(response: httpx.Response) -> list[tuple[bytes, bytes]]:
    return [(k, v) for k, v in response.headers.raw if k.lower() not in HOP_BY_HOP]


async def _error(send: Send, exc: Unavailable) -> None:
    body = json.dumps(error_body(exc)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": exc.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"docker-distribution-api-version", b"registry/2.0"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def create_app(environ: Mapping[str, str] | None = None) -> RoutingProxy:
    """The proxy from ``BERTH_PROXY_API``/``_BLOB``/``_AUTH``/``_GC``/``_UI`` (as ``berth serve
    proxy`` sets).

    Raises:
        KeyError: one of the api, blob or auth URLs is missing.
    """
    import os

    env = os.environ if environ is None else environ
    return RoutingProxy(
        Upstreams(
            api=env["BERTH_PROXY_API"],
            blob=env["BERTH_PROXY_BLOB"],
            auth=env["BERTH_PROXY_AUTH"],
            gc=env.get("BERTH_PROXY_GC") or None,
            ui=env.get("BERTH_PROXY_UI") or None,
        ),
        trust_forwarded=env.get("BERTH_PROXY_TRUST_FORWARDED", "") in ("1", "true"),
    )
