"""The blob service: upload sessions, blobs, repository links, storage drivers (docs/DESIGN.md §1, §3).

It ingests and serves; it does not collect: garbage collection, the upload purge and the
storage sweep belong to the gc service, which uses what ``berth_blob.contracts`` publishes.

``SERVICE`` declares it (``berth_common.http.service_app.ServiceSpec``): ``setup(app)`` mounts
its routers; ``start(resources, app)`` builds the storage driver and the upload sessions service
(after the migrations); its consumer reacts to feed deletions; ``create_app()`` builds the
standalone service.
"""

from __future__ import annotations

from fastapi import FastAPI

from berth_blob.consumers.feeds import feed_consumer
from berth_blob.domain.pullthrough import BlobPullThrough
from berth_blob.domain.uploads import Uploads
from berth_blob.metrics import upload_sessions_sampler
from berth_blob.projections.tables import SPEC
from berth_blob.routes import blobs, uploads
from berth_common.connectors.secrets import SecretBox
from berth_common.connectors.singleflight import FetchLeases
from berth_common.connectors.upstream import Upstream
from berth_common.db import Migration, load_migrations
from berth_common.eventstore import ProjectionConsumer, ProjectionSpec
from berth_common.http.service_app import ServiceSpec
from berth_common.runtime import Resources
from berth_common.settings import Settings
from berth_common.storage import Stores


def migrations() -> list[Migration]:
    """The blob schema's migrations."""
    return load_migrations("blob", "berth_blob.migrations")


def projections() -> list[ProjectionSpec]:
    """The blob service's rebuildable projections."""
    return [SPEC]


def setup(app: FastAPI) -> None:
    """Mount the blob routers (uploads first: ``blobs/uploads/`` must not match ``blobs/<digest>``)."""
    app.include_router(uploads.router)
    app.include_router(blobs.router)


def build_stores(settings: Settings) -> Stores:
    """The configured blob stores (``Settings.store_settings``), instrumented (spans, metrics).

    Raises:
        ValueError: a store's kind or options are invalid.
    """
    return Stores.from_settings(settings.store_settings())


async def start(resources: Resources, app: FastAPI) -> None:
    """Put the blob stores, upload sessions and the connectors' pull-through on ``app.state``
    (cleanup runs in the gc service)."""
    stores = build_stores(resources.settings)
    app.state.blob_stores = stores
    resources.at_close(stores.close)
    app.state.blob_uploads = Uploads(resources.store, stores, resources.settings.uploads)
    resources.samplers.append(upload_sessions_sampler(resources.pool))
    app.state.blob_pullthrough = _pullthrough(resources, stores)


def _pullthrough(resources: Resources, stores: Stores) -> BlobPullThrough:
    """Blobs from the feeds' connectors (closed, fetches in flight cancelled, at shutdown)."""
    settings = resources.settings
    upstream = Upstream(SecretBox.from_settings(settings), settings.connectors.timeout_seconds)
    leases = FetchLeases(
        resources.pool, "blob.connector_fetches",
        settings.connectors.fetch_lease_seconds, settings.connectors.fetch_wait_seconds,
    )  # fmt: skip
    pull = BlobPullThrough(resources.store, stores, upstream, leases, settings.http.body_idle_timeout_seconds)
    resources.at_close(upstream.aclose)
    resources.at_close(pull.aclose)
    return pull


def consumers(resources: Resources, app: FastAPI) -> list[ProjectionConsumer]:
    """The feed-deletion reaction (``consumers.feeds``), on the stores ``start`` built."""
    assert resources.bus is not None
    return [feed_consumer(resources.pool, resources.bus, app.state.blob_stores)]


SERVICE = ServiceSpec(
    name="blob",
    routes=setup,
    migrations=migrations,
    projections=projections,
    start=start,
    consumers=consumers,
)
"""The blob service, as the standalone app and the all-in-one wire it."""


def create_app(settings: Settings | None = None) -> FastAPI:
    """The standalone blob service (``berth serve blob``)."""
    return SERVICE.create_app(settings)
