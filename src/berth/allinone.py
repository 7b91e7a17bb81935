"""The all-in-one process: the services' routers in one ASGI app (docs/DESIGN.md §1).

A deployment choice, not a second implementation: the same routers, the same projections,
the same relay and consumers as the separately deployed services, sharing one set of
resources. Used by ``berth up``, ``berth serve all`` and the in-process tests.
Which service owns which path is ``berth_common.http.routing.service_for_path`` (the table
``berth serve proxy``, ``deploy/compose.yaml`` and ``deploy/k8s/`` follow); the routers mounted
here agree with it (``tests/unit/test_deploy_files.py``).
"""

from __future__ import annotations

from types import ModuleType

from fastapi import FastAPI

import berth_api.app as api
import berth_auth.app as auth
import berth_blob.app as blob
import berth_gc.app as gc
import berth_ui.app as ui
from berth_common.eventstore import ProjectionSpec
from berth_common.http.service_app import service_app
from berth_common.http.surface import RegistryHeaders
from berth_common.runtime import Resources
from berth_common.settings import Settings

__all__ = ["SERVICES", "RegistryHeaders", "all_projections", "create_app", "start_services"]

SERVICES: tuple[ModuleType, ...] = (api, blob, auth, gc, ui)


def all_projections() -> list[ProjectionSpec]:
    """Every service's rebuildable projections."""
    return [spec for svc in SERVICES for spec in svc.projections()]


async def start_services(resources: Resources, app: FastAPI) -> None:
    """Migrate every schema, start background work (consumers, cleanup), wire service state.

    The outbox relay candidate is started by ``service_app`` after this.
    """
    await api.start(resources, app)
    await blob.start(resources, app)
    await auth.start(resources)
    await gc.start(resources, app)
    backend = await ui.start(app, resources.settings)  # the UI calls this very app in process
    resources.at_close(backend.aclose)


def setup_all(app: FastAPI) -> None:
    """Mount every service's routers on ``app``, the busiest paths first.

    Routes are matched in order and the paths of different services never overlap, so the
    order only decides how many templates a request is tried against: blob (every layer of
    every push and pull), then api (manifests first), auth, gc, ui (``/`` and ``/ui/…``).
    """
    for svc in (blob, api, auth, gc, ui):
        svc.setup(app)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The all-in-one app: the same ``service_app`` as a standalone service, with all four."""
    return service_app(
        "all", settings or Settings(), setup=setup_all, start=start_services, appends_events=True, docs=True
    )
