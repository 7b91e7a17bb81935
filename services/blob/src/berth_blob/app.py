"""The blob service: upload sessions, blobs, repository links, storage drivers (DESIGN §1, §3).

``setup(app)`` mounts its routers; ``start(resources, app)`` migrates and builds the storage
driver and the upload sessions service; ``create_app()`` builds the standalone service.
"""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI

from berth_blob.consumers.feeds import feed_consumer
from berth_blob.domain.cleanup import purge_forever
from berth_blob.domain.gc import collect_forever
from berth_blob.domain.uploads import Uploads
from berth_blob.projections.tables import SPEC
from berth_blob.routes import blobs, uploads
from berth_common.db import Migration, apply_migrations, load_migrations
from berth_common.eventstore import ProjectionSpec
from berth_common.http.service_app import service_app
from berth_common.runtime import Resources
from berth_common.settings import Settings
from berth_common.storage import InstrumentedDriver, StorageDriver, create_driver


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


def build_storage(settings: Settings) -> StorageDriver:
    """The configured storage driver, instrumented (spans and metrics)."""
    storage = settings.storage
    return InstrumentedDriver(create_driver(storage.kind, root=storage.root))


async def start(resources: Resources, app: FastAPI) -> None:
    """Migrate, then put the storage driver and upload sessions on ``app.state``."""
    await apply_migrations(resources.pool, migrations())
    storage = build_storage(resources.settings)
    app.state.blob_storage = storage
    resources.at_close(storage.close)
    app.state.blob_uploads = Uploads(resources.store, storage, resources.settings.uploads)
    uploads = resources.settings.uploads
    max_age = timedelta(seconds=uploads.max_age_seconds)
    resources.spawn(
        "upload-purge",
        lambda: purge_forever(resources.store, storage, max_age, uploads.purge_interval_seconds),
    )
    if resources.bus is not None:
        consumer = feed_consumer(resources.pool, resources.bus, resources.store, storage)
        resources.spawn("blob-feed-consumer", consumer.run)
    gc = resources.settings.gc
    if gc.enabled:
        resources.spawn(
            "blob-gc",
            lambda: collect_forever(
                resources.store, storage, timedelta(seconds=gc.grace_seconds), gc.interval_seconds
            ),
        )


def create_app(settings: Settings | None = None) -> FastAPI:
    """The standalone blob service (``berth serve blob``)."""

    async def starting(resources: Resources, app: FastAPI) -> None:
        await start(resources, app)

    return service_app(
        "blob", settings or Settings(), setup=setup, start=starting, appends_events=True, docs=False
    )
