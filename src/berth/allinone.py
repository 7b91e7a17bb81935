"""The all-in-one process: the four services' routers in one ASGI app (DESIGN §1).

A deployment choice, not a second implementation: the same routers, the same projections,
the same relay and consumers as the separately deployed services, sharing one set of
resources. Used by ``berth up``, ``berth serve all`` and the in-process tests.
Which service owns which path is ``berth_common.http.routing.service_for_path`` (the table
``berth serve proxy``, ``deploy/compose.yaml`` and ``deploy/k8s/`` follow); the routers mounted
here agree with it (``tests/unit/test_deploy_files.py``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import ModuleType

from fastapi import FastAPI

import berth_api.app as api
import berth_auth.app as auth
import berth_blob.app as blob
import berth_gc.app as gc
from berth_common.eventstore import ProjectionSpec
from berth_common.http.errors import install_error_handlers
from berth_common.http.surface import RegistryHeaders, install_surface
from berth_common.logging import configure_logging
from berth_common.runtime import Resources, start_relay
from berth_common.settings import Settings

__all__ = ["SERVICES", "RegistryHeaders", "all_projections", "create_app", "start_services"]

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
    start_relay(resources, app)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The all-in-one app. Resources are built in the lifespan from ``settings``."""
    settings = settings or Settings()
    configure_logging(settings.log_level, settings.log_format)  # also in spawned workers

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        resources = await Resources.open(settings)
        app.state.resources = resources
        try:
            await start_services(resources, app)
            yield
        finally:
            await resources.close()

    app = FastAPI(title="Berth", lifespan=lifespan, docs_url="/api/docs",
                  openapi_url="/api/openapi.json", redirect_slashes=False)
    install_error_handlers(app)
    for svc in SERVICES:
        svc.setup(app)
    install_surface(app, "all", access_log=settings.access_log)
    return app

