"""What every Berth app serves besides its routers: probes, metrics and the registry header.

Used alike by the all-in-one app and each standalone service (``berth serve api|blob|auth|gc``),
so a service behind a proxy or an Ingress answers exactly as the all-in-one process does.
``/healthz`` is liveness (the process serves), ``/readyz`` readiness (``http.readiness``),
``/metrics`` the Prometheus text, behind a bearer token when ``metrics.token`` is set.
"""

from __future__ import annotations

import hmac
import os

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from berth_common.settings import Settings


class RegistryHeaders:
    """Pure ASGI middleware: every ``/v2`` response says ``Docker-Distribution-API-Version``.

    OCI distribution spec v1.1, "Determining support"; Docker clients check it on ``/v2/``.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v2"):
            await self.app(scope, receive, send)
            return

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    h
                    for h in message.get("headers", [])
                    if h[0].lower() != b"docker-distribution-api-version"
                ]
                headers.append((b"docker-distribution-api-version", b"registry/2.0"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_header)


def install_surface(
    app: FastAPI, service: str = "all", *, settings: Settings | None = None, requires_bus: bool = False
) -> None:
    """Add ``GET /healthz`` (200 ``ok``: the process serves), ``GET /readyz`` (200 or 503 with
    the checks as JSON; ``requires_bus``: NATS must be up too), ``GET /metrics`` (Prometheus
    text; ``401`` without the bearer token when ``metrics.token`` is set),
    :class:`RegistryHeaders`, request metrics, the access log and (when configured) tracing.

    Raises:
        OSError: ``metrics.token_file`` cannot be read.
    """
    from berth_common.telemetry import instrument

    settings = settings or Settings()
    token = settings.metrics.bearer_token()

    async def ready(request: Request) -> JSONResponse:
        from berth_common.http.readiness import readiness

        ok, checks = await readiness(getattr(request.app.state, "resources", None), requires_bus=requires_bus)
        return JSONResponse({"ready": ok, "checks": checks}, status_code=200 if ok else 503)

    async def metrics(request: Request) -> Response:
        if token is not None and not _bearer_matches(request.headers.get("authorization"), token):
            return PlainTextResponse(
                "401 metrics need a bearer token", 401, headers={"WWW-Authenticate": 'Bearer realm="metrics"'}
            )
        return _metrics()

    app.add_api_route("/healthz", _health, methods=["GET"], include_in_schema=False)
    app.add_api_route("/readyz", ready, methods=["GET"], include_in_schema=False)
    app.add_api_route("/metrics", metrics, methods=["GET"], include_in_schema=False)
    app.add_middleware(RegistryHeaders)
    instrument(app, service, settings)


async def _health() -> PlainTextResponse:
    return PlainTextResponse("ok")


def _bearer_matches(header: str | None, token: str) -> bool:
    """Whether ``Authorization`` is ``Bearer <token>`` (compared in constant time)."""
    scheme, _, value = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode())


def _metrics() -> Response:
    """Prometheus text; with several worker processes (``PROMETHEUS_MULTIPROC_DIR`` set, as
    ``berth serve --workers N`` does) the sum over all of them, whichever worker answers."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
