"""The auth service: users, groups, API keys, feed privileges, token signing (DESIGN §1, §4).

The token service is a separate issue; until it lands this service only mounts nothing and
``/v2/`` is open (see ``berth_common.auth``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from berth_common.db import Migration
from berth_common.eventstore import ProjectionSpec
from berth_common.http.errors import install_error_handlers
from berth_common.http.surface import install_surface
from berth_common.runtime import Resources, start_relay
from berth_common.settings import Settings


def migrations() -> list[Migration]:
    """The auth schema's migrations (none yet)."""
    return []


def projections() -> list[ProjectionSpec]:
    """The auth service's rebuildable projections (none yet)."""
    return []


def setup(app: FastAPI) -> None:
    """Mount the auth routers (none yet)."""


async def start(resources: Resources) -> None:
    """Nothing to start yet."""


def create_app(settings: Settings | None = None) -> FastAPI:
    """The standalone auth service (``berth serve auth``)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        resources = await Resources.open(settings)
        await start(resources)
        start_relay(resources, app)  # auth appends events (users, keys, privileges)
        app.state.resources = resources
        try:
            yield
        finally:
            await resources.close()

    app = FastAPI(title="Berth auth", lifespan=lifespan, docs_url=None, openapi_url=None)
    install_error_handlers(app)
    setup(app)
    install_surface(app)
    return app
