"""The gc service: blob reference counts from the bus, cleanup jobs (DESIGN §1, §5).

No public surface beyond health and metrics. ``start`` migrates and runs its durable consumer.
"""

from __future__ import annotations

import asyncpg
from fastapi import FastAPI

from berth_common.bus import Bus
from berth_common.db import Migration, apply_migrations, load_migrations
from berth_common.eventstore import ProjectionConsumer, ProjectionSpec
from berth_common.http.service_app import service_app
from berth_common.runtime import Resources
from berth_common.settings import Settings
from berth_gc.projections.references import BUS_TYPES, CONSUMER, SPEC, TYPES, project


def migrations() -> list[Migration]:
    """The gc schema's migrations."""
    return load_migrations("gc", "berth_gc.migrations")


def projections() -> list[ProjectionSpec]:
    """The gc service's rebuildable projections."""
    return [SPEC]


def setup(app: FastAPI) -> None:
    """The gc service mounts no public routes."""


async def start(resources: Resources) -> None:
    """Migrate and start the durable consumer (when a bus is configured)."""
    await apply_migrations(resources.pool, migrations())
    if resources.bus is not None:
        resources.spawn("gc-consumer", references_consumer(resources.pool, resources.bus).run)


def references_consumer(pool: asyncpg.Pool, bus: Bus) -> ProjectionConsumer:
    """The durable consumer ``gc-references-<stream>`` that feeds ``gc.blob_references``.

    On NATS 2.9 (one filter subject) its durable receives ``manifest.*`` only; ``feed.deleted``
    (rare) is applied by catch-up from the event store, in position order all the same.
    """
    durable = f"{CONSUMER}-{bus.stream}".replace(".", "_")
    return ProjectionConsumer(
        pool, bus, durable, "gc.consumer_positions", project, TYPES, checkpoint=CONSUMER, bus_types=BUS_TYPES
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    """The standalone gc service (``berth serve gc``)."""

    async def starting(resources: Resources, app: FastAPI) -> None:
        await start(resources)

    return service_app(
        "gc",
        settings or Settings(),
        setup=setup,
        start=starting,
        appends_events=False,
        docs=False,
        requires_bus=True,
    )
