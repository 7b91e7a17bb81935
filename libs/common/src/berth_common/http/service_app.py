"""The one way a service is wired, standalone (``berth serve api|blob|auth|gc``) or all in one.

Each service declares a ``ServiceSpec`` (``SERVICE`` in its ``app`` module): name, routes,
migrations, projections, start (what goes on ``app.state``, background loops) and consumers.
``spec_app`` builds an app from one spec or several (the all-in-one, ``berth.allinone``), looping
over them the same way; ``service_app`` is the FastAPI app around them: resources opened in the lifespan
(never at import time), an outbox relay candidate when the service appends events, the error
renderer, the common surface (``/healthz``, ``/readyz``, ``/metrics``, access log, tracing), the
metrics sampler (``berth_common.telemetry.sampler``) and the request-body idle timeout
(``berth_common.http.bodies``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from fastapi import FastAPI

from berth_common.db import Migration, apply_migrations, set_wait_for_migrations
from berth_common.eventstore import ProjectionConsumer, ProjectionSpec
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
Consumers = Callable[[Resources, FastAPI], Sequence[ProjectionConsumer]]


async def _nothing(resources: Resources, app: FastAPI) -> None:
    """A service with nothing to start beyond its migrations and consumers."""


def _no_consumers(resources: Resources, app: FastAPI) -> Sequence[ProjectionConsumer]:
    return ()


def _no_routes(app: FastAPI) -> None:
    """A service with no public routes (``/healthz``, ``/metrics`` come from the surface)."""


@dataclass(frozen=True)
class ServiceSpec:
    """What a service is, declared once (docs/ARCHITECTURE.md, "How a service is wired").

    Attributes:
        name: ``"api"``, ``"blob"``, ``"auth"``, ``"gc"``, ``"ui"``.
        routes: mounts the service's routers on an app (its own, or the all-in-one).
        migrations: its schema's migrations, applied before ``start`` (in ``SERVICES`` order
            in the all-in-one: a schema may read a view of one before it).
        projections: its rebuildable projections (``berth projections rebuild``).
        start: after migrations: put what its routes need on ``app.state``, spawn background
            loops (``resources.spawn``), register closers (``resources.at_close``).
        consumers: its durable bus consumers, built after ``start`` and run while a bus is
            configured (one active instance each across processes).
        appends_events: run an outbox relay candidate. docs: serve the OpenAPI docs.
        requires_bus: ``/readyz`` fails while NATS is down.
    """

    name: str
    routes: Callable[[FastAPI], None] = _no_routes
    migrations: Callable[[], list[Migration]] = list
    projections: Callable[[], list[ProjectionSpec]] = list
    start: Start = _nothing
    consumers: Consumers = field(default=_no_consumers)
    appends_events: bool = True
    docs: bool = False
    requires_bus: bool = False

    def create_app(self, settings: Settings | None = None) -> FastAPI:
        """The standalone service (``berth serve <name>``)."""
        return spec_app(self.name, [self], settings or Settings())


async def start_services(specs: Sequence[ServiceSpec], resources: Resources, app: FastAPI) -> None:
    """Migrate, start and run the consumers of each spec, in order."""
    for spec in specs:
        await apply_migrations(resources.pool, spec.migrations())
        await spec.start(resources, app)
        if resources.bus is not None:
            for consumer in spec.consumers(resources, app):
                resources.spawn(consumer.name, consumer.run)


def spec_app(
    name: str,
    specs: Sequence[ServiceSpec],
    settings: Settings,
    *,
    route_order: Sequence[str] | None = None,
    requires_bus: bool | None = None,
) -> FastAPI:
    """One app serving ``specs`` (one: a standalone service; all: ``berth.allinone``).

    ``route_order``: the names in the order their routes are mounted (default: ``specs``'); the
    busiest first, as paths of different services never overlap. ``requires_bus``: default, if
    any spec requires it (the all-in-one says ``False``: it serves pushes while NATS is down).
    """
    by_name = {spec.name: spec for spec in specs}
    mounted = [by_name[n] for n in route_order] if route_order is not None else list(specs)

    def setup(app: FastAPI) -> None:
        for spec in mounted:
            spec.routes(app)

    async def start(resources: Resources, app: FastAPI) -> None:
        await start_services(specs, resources, app)

    return service_app(
        name,
        settings,
        setup=setup,
        start=start,
        appends_events=any(s.appends_events for s in specs),
        docs=any(s.docs for s in specs),
        requires_bus=any(s.requires_bus for s in specs) if requires_bus is None else requires_bus,
    )


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
