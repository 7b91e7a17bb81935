"""The ui service, declared as every service is (``SERVICE``, a ``ServiceSpec``: routes and a
start; no migrations, projections or consumers) (docs/ARCHITECTURE.md, "How a service is wired").

Routes: ``/`` (to the feeds), ``/ui/…`` (pages and forms), ``/ui/static/…`` (assets). In the
all-in-one process ``start`` points the UI's API client at the process's own app; standalone
(``berth serve ui``) at ``ui.api_url`` (the ingress or proxy). The standalone service needs no
database and no NATS: it keeps no state at all (sessions are cookies, ``session.py``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from berth_common.http.service_app import ServiceSpec
from berth_common.http.surface import install_surface
from berth_common.logging import configure_logging
from berth_common.runtime import Resources
from berth_common.settings import Settings
from berth_ui.backend import Backend
from berth_ui.routes import account, cleanup, feeds, images, people, privileges


def setup(app: FastAPI) -> None:
    """Mount the UI's routes on ``app`` (its catch-all 404 for ``/ui/…`` last)."""
    for module in (account, feeds, privileges, images, people, cleanup):
        app.include_router(module.router)
    app.include_router(account.fallback)


async def attach(app: FastAPI, settings: Settings) -> Backend:
    """Give the UI its API client: ``ui.api_url`` when set, else ``app`` itself in process.

    Returns the backend (closed by the caller at shutdown).
    """
    url = settings.ui.api_url
    backend = Backend.remote(url) if url else Backend.in_process(app)
    app.state.ui_backend = backend
    app.state.ui_settings = settings
    return backend


async def start(resources: Resources, app: FastAPI) -> None:
    """In the all-in-one process: the UI calls this very app (closed with the resources)."""
    backend = await attach(app, resources.settings)
    resources.at_close(backend.aclose)


SERVICE = ServiceSpec(name="ui", routes=setup, start=start, appends_events=False)
"""The ui service as the all-in-one wires it. Standalone it opens no resources at all (no
database, no bus): ``create_app`` builds its app around the same routes."""


def create_app(settings: Settings | None = None) -> FastAPI:
    """The standalone ui service (``berth serve ui``; needs ``BERTH_UI__API_URL``).

    Raises:
        ValueError: ``ui.api_url`` is not set (the UI would have no API to call).
    """
    settings = settings or Settings()
    if not settings.ui.api_url:
        raise ValueError("BERTH_UI__API_URL is not set: the ui service calls the APIs at that URL")
    configure_logging(settings.log_level, settings.log_format)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        backend = await attach(app, settings)
        try:
            yield
        finally:
            await backend.aclose()

    app = FastAPI(
        title="Berth ui",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        redirect_slashes=False,
    )
    SERVICE.routes(app)
    install_surface(app, "ui", settings=settings)
    return app
