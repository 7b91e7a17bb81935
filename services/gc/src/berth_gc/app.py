"""The gc service: blob reference counts from the bus, cleanup jobs (DESIGN §1, §5).

No public surface beyond health and metrics. ``start`` migrates and runs its durable consumer.
"""

from __future__ import annotations

from fastapi import FastAPI

from berth_common.db import Migration, apply_migrations, load_migrations
from berth_common.eventstore import ProjectionConsumer, ProjectionSpec
from berth_common.http.service_app import service_app
from berth_common.runtime import Resources
from berth_common.settings import Settings
from berth_gc.projections.references import CONSUMER, SPEC, TYPES, project


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
    bus = resources.bus
    if bus is not None:
        consumer = ProjectionConsumer(
            resources.pool,
            bus,
            _durable(bus.stream),
            "gc.consumer_positions",
            project,
            TYPES,
            checkpoint=CONSUMER,
        )
        resources.spawn("gc-consumer", consumer.run)


def _durable(stream: str) -> str:
    return f"{CONSUMER}-{stream}".replace(".", "_")


def create_app(settings: Settings | None = None) -> FastAPI:
    """The standalone gc service (``berth serve gc``)."""

    async def starting(resources: Resources, app: FastAPI) -> None:
        await start(resources)

    return service_app(
        "gc", settings or Settings(), setup=setup, start=starting, appends_events=False, docs=False
    )
