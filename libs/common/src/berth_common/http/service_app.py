"""The one way a standalone service app is built (``berth serve api|blob|auth|gc``).

Each service module provides ``setup(app)`` (its routers) and a ``start`` (migrations,
background work); this builds the FastAPI app around them: resources opened in the lifespan
(never at import time), an outbox relay candidate when the service appends events, the error
renderer, the common surface (``/healthz``, ``/readyz``, ``/metrics``, access log, tracing), the
metrics sampler (``berth_common.telemetry.sampler``) and the request-body idle timeout
(``berth_common.http.bodies``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI

from berth_common.db import set_wait_for_migrations
from berth_common.http.bodies import BodyIdleTimeout
from berth_common.http.docs import OPENAPI_PATH, install_docs
from berth_common.http.errors import install_error_handlers
from berth_common.http.surface import install_surface
from berth_common.logging import configure_logging
from berth_common.runtime import Resources, start_relay
from berth_common.settings import Settings
from berth_common.telemetry import flush_spans
from berth_common.telemetry.sampler import sample_forever

Start = Callable[[Resources, FastAPI], Awaitable[None]]


def service_app(
    name: str,
    settings: Settings,
    *,
    setup: Callable[[FastAPI], None],
    start: Start,
    appends_events: bool = True,
    docs: bool = False,
    requires_bus: bool = False,
) -> FastAPI:
    """A FastAPI app for service ``name`` (``api``, ``blob``, …, or ``all`` for the all-in-one).

    ``appends_events``: run an outbox relay candidate (leader-elected across processes).
    ``docs``: serve the OpenAPI schema at ``/api/openapi.json`` and docs at ``/api/docs`` (offline:
    ``berth_common.http.docs``). ``requires_bus``: ``/readyz`` fails while NATS is down.
    """

    configure_logging(settings.log_level, settings.log_format)  # also in spawned workers

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        set_wait_for_migrations(not settings.migrate_on_start)
        resources = await Resources.open(settings)
        app.state.resources = resources
        try:
            await start(resources, app)
            if appends_events:
                start_relay(resources, app)
            metrics = settings.metrics
            resources.spawn(
                "metrics-sampler",
                lambda: sample_forever(
                    resources.pool, metrics.tls_certificates, resources.samplers, metrics.sample_seconds
                ),
            )
            yield
        finally:
            await resources.close()
            flush_spans()

    app = FastAPI(
        title=f"Berth {name}",
        lifespan=lifespan,
        docs_url=None,  # install_docs serves the page with local assets (no CDN)
        redoc_url=None,
        openapi_url=OPENAPI_PATH if docs else None,
        redirect_slashes=False,
    )  # registry paths are exact; never answer with a redirect
    install_error_handlers(app)
    if docs:
        install_docs(app)
    setup(app)
    install_surface(app, name, settings=settings, requires_bus=requires_bus)
    app.add_middleware(BodyIdleTimeout, seconds=settings.http.body_idle_timeout_seconds)
    return app
