"""The all-in-one process: the four services' routers in one ASGI app (DESIGN §1).

A deployment choice, not a second implementation: the same routers, the same projections,
the same relay and consumers as the separately deployed services, sharing one set of
resources. Used by ``berth up``, ``berth serve all`` and the in-process tests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import ModuleType

import berth_api.app as api
import berth_auth.app as auth
import berth_blob.app as blob
import berth_gc.app as gc
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from berth_common.eventstore import OutboxRelay, ProjectionSpec
from berth_common.http.errors import install_error_handlers
from berth_common.runtime import Resources
from berth_common.settings import Settings

SERVICES: tuple[ModuleType, ...] = (api, blob, auth, gc)


def all_projections() -> list[ProjectionSpec]:
    """Every service's rebuildable projections."""
    return [spec for svc in SERVICES for spec in svc.projections()]


async def start_services(resources: Resources, app: FastAPI) -> None:
    """Migrate every schema, start background work (relay, consumers), wire service state."""
    await api.start(resources)
    await blob.start(resources, app)
    await auth.start(resources)
    await gc.start(resources)
    if resources.bus is not None:
        relay = OutboxRelay(resources.pool, resources.bus,
                            poll_seconds=resources.settings.relay_poll_seconds)
        app.state.relay = relay
        resources.spawn("relay", relay.run)


class RegistryHeaders:
    """Pure ASGI middleware: every ``/v2`` response says ``Docker-Distribution-API-Version``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v2"):
            await self.app(scope, receive, send)
            return

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", [])
                           if h[0].lower() != b"docker-distribution-api-version"]
                headers.append((b"docker-distribution-api-version", b"registry/2.0"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_header)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The all-in-one app. Resources are built in the lifespan from ``settings``."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        resources = await Resources.open(settings)
        app.state.resources = resources
        try:
            await start_services(resources, app)
            yield
        finally:
            storage = getattr(app.state, "blob_storage", None)
            if storage is not None:
                await storage.close()
            await resources.close()

    app = FastAPI(title="Berth", lifespan=lifespan, docs_url="/api/docs",
                  openapi_url="/api/openapi.json", redirect_slashes=False)
    install_error_handlers(app)
    for svc in SERVICES:
        svc.setup(app)
    app.add_api_route("/healthz", _health, methods=["GET"], include_in_schema=False)
    app.add_api_route("/metrics", _metrics, methods=["GET"], include_in_schema=False)
    app.add_middleware(RegistryHeaders)
    return app


async def _health() -> PlainTextResponse:
    return PlainTextResponse("ok")


async def _metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
