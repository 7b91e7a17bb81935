"""The api service: feeds, repositories, manifests, tags, referrers (docs/DESIGN.md §1).

``SERVICE`` declares it (``berth_common.http.service_app.ServiceSpec``): ``setup(app)`` mounts
its routers on any FastAPI app (the service's own, or the all-in-one), ``migrations()`` gives
its schema, ``start`` its state; ``create_app()`` builds the standalone service.
"""

from __future__ import annotations

from fastapi import FastAPI

from berth_api.domain.pullthrough import PullThrough
from berth_api.projections.tables import SPEC
from berth_api.routes import admin, base, browse, connectors, history, listing, manifests
from berth_common.connectors.secrets import SecretBox
from berth_common.connectors.singleflight import FetchLeases
from berth_common.connectors.upstream import Upstream
from berth_common.db import Migration, load_migrations
from berth_common.eventstore import ProjectionSpec
from berth_common.http.service_app import ServiceSpec
from berth_common.runtime import Resources
from berth_common.settings import Settings


def migrations() -> list[Migration]:
    """The api schema's migrations."""
    return load_migrations("api", "berth_api.migrations")


def projections() -> list[ProjectionSpec]:
    """The api service's rebuildable projections."""
    return [SPEC]


def setup(app: FastAPI) -> None:
    """Mount the api routers on ``app`` (which must have ``state.resources`` at run time)."""
    app.include_router(manifests.router)  # the busiest first (the paths do not overlap)
    app.include_router(base.router)
    app.include_router(listing.router)
    app.include_router(admin.router)
    app.include_router(connectors.router)
    app.include_router(browse.router)
    app.include_router(history.router)


async def start(resources: Resources, app: FastAPI) -> None:
    """Put the connectors' key box and the manifest pull-through on ``app.state`` (after the
    migrations). The api service has no background loops of its own."""
    settings = resources.settings
    box = SecretBox.from_settings(settings)
    upstream = Upstream(box, settings.connectors.timeout_seconds)
    resources.at_close(upstream.aclose)
    leases = FetchLeases(
        resources.pool, "api.connector_fetches",
        settings.connectors.fetch_lease_seconds, settings.connectors.fetch_wait_seconds,
    )  # fmt: skip
    app.state.connector_box = box
    app.state.api_pullthrough = PullThrough(
        resources.store, upstream, leases, settings.uploads.max_manifest_bytes
    )


SERVICE = ServiceSpec(
    name="api", routes=setup, migrations=migrations, projections=projections, start=start, docs=True
)
"""The api service, as the standalone app and the all-in-one wire it."""


def create_app(settings: Settings | None = None) -> FastAPI:
    """The standalone api service (``berth serve api``)."""
    return SERVICE.create_app(settings)
