"""What every Berth app serves besides its routers: probes, metrics and the registry header.

Used alike by the all-in-one app and each standalone service (``berth serve api|blob|auth|gc``),
so a service behind a proxy or an Ingress answers exactly as the all-in-one process does.
"""

from __future__ import annotations

import os

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess
from starlette.types import ASGIApp, Message, Receive, Scope, Send


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


def install_surface(app: FastAPI, service: str = "all", *, access_log: bool = True) -> None:
    """Add ``GET /healthz`` (200 ``ok``: the process serves), ``GET /metrics`` (Prometheus text),
    :class:`RegistryHeaders`, request metrics, the access log and (when configured) tracing."""
    from berth_common.telemetry import instrument

    app.add_api_route("/healthz", _health, methods=["GET"], include_in_schema=False)
    app.add_api_route("/metrics", _metrics, methods=["GET"], include_in_schema=False)
    app.add_middleware(RegistryHeaders)
    instrument(app, service, access_log=access_log)


async def _health() -> PlainTextResponse:
    return PlainTextResponse("ok")


async def _metrics() -> Response:
    """Prometheus text; with several worker processes (``PROMETHEUS_MULTIPROC_DIR`` set, as
    ``berth serve --workers N`` does) the sum over all of them, whichever worker answers."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
