"""The gc service: owns cleanup (docs/ARCHITECTURE.md, "Who owns cleanup"; docs/DESIGN.md §1, §5).

Its projection ``gc.blob_references`` (what manifests reference, from the bus) decides what is
garbage; garbage collection, the upload purge and the storage sweep run here, on a schedule
(``gc.*``, ``uploads.purge_*``) and on demand (``/api/gc/runs``), one runner at a time across
replicas. It reads and changes blob's state only through what ``berth_blob.contracts``
publishes (never importing ``berth_blob``). ``SERVICE`` declares it: its migrations,
the ``/api/gc`` routes, ``start`` (the stores and the schedule) and its durable consumer.
"""

from __future__ import annotations

import asyncio

import asyncpg
from fastapi import FastAPI

from berth_common.bus import Bus
from berth_common.db import Migration, load_migrations
from berth_common.eventstore import ProjectionConsumer, ProjectionSpec
from berth_common.http.service_app import ServiceSpec
from berth_common.runtime import Resources
from berth_common.settings import Settings
from berth_common.storage import Stores
from berth_gc.domain.runs import schedule_forever
from berth_gc.projections.references import BUS_TYPES, CONSUMER, SPEC, project
from berth_gc.routes import runs


def migrations() -> list[Migration]:
    """The gc schema's migrations."""
    return load_migrations("gc", "berth_gc.migrations")


def projections() -> list[ProjectionSpec]:
    """The gc service's rebuildable projections."""
    return [SPEC]


def setup(app: FastAPI) -> None:
    """Mount the gc admin API (``/api/gc/…``)."""
    app.include_router(runs.router)


async def start(resources: Resources, app: FastAPI) -> None:
    """After the migrations: build the stores (``app.state.gc_stores``) and start the cleanup
    schedule (the durable consumer is ``consumers``)."""
    stores = Stores.from_settings(resources.settings.store_settings())
    app.state.gc_stores = stores
    background: set[asyncio.Task[object]] = set()
    app.state.gc_background = background
    resources.at_close(stores.close)
    resources.at_close(lambda: _cancel(background))
    resources.spawn("gc-schedule", lambda: schedule_forever(resources.store, stores, resources.settings))


async def _cancel(tasks: set[asyncio.Task[object]]) -> None:
    for task in list(tasks):
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def consumers(resources: Resources, app: FastAPI) -> list[ProjectionConsumer]:
    """The durable consumer that feeds ``gc.blob_references``."""
    assert resources.bus is not None
    return [references_consumer(resources.pool, resources.bus)]


def references_consumer(pool: asyncpg.Pool, bus: Bus) -> ProjectionConsumer:
    """The durable consumer ``gc-references-<stream>`` that feeds ``gc.blob_references``.

    On NATS 2.9 (one filter subject) its durable receives ``manifest.*`` only; ``feed.deleted``
    (rare) is applied by catch-up from the event store, in position order all the same.
    """
    durable = f"{CONSUMER}-{bus.stream}".replace(".", "_")
    return ProjectionConsumer(
        pool, bus, durable, "gc.consumer_positions", project, checkpoint=CONSUMER, bus_types=BUS_TYPES
    )


SERVICE = ServiceSpec(
    name="gc",
    routes=setup,
    migrations=migrations,
    projections=projections,
    start=start,
    consumers=consumers,
    appends_events=True,  # cleanup events (blob.unlinked, blob.deleted, upload.expired)
    requires_bus=True,
)
"""The gc service, as the standalone app and the all-in-one wire it."""


def create_app(settings: Settings | None = None) -> FastAPI:
    """The standalone gc service (``berth serve gc``)."""
    return SERVICE.create_app(settings)
