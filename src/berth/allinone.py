"""The all-in-one process: the services' routers in one ASGI app (docs/DESIGN.md §1).

A deployment choice, not a second implementation: the same routers, the same projections,
the same relay and consumers as the separately deployed services, sharing one set of
resources. Used by ``berth up``, ``berth serve all`` and the in-process tests.
Which service owns which path is ``berth_common.http.routing.service_for_path`` (the table
``berth serve proxy``, ``deploy/compose.yaml`` and ``deploy/k8s/`` follow); the routers mounted
here agree with it (``tests/unit/test_deploy_files.py``).
"""

from __future__ import annotations

from fastapi import FastAPI

import berth_api.app as api
import berth_auth.app as auth
import berth_blob.app as blob
import berth_gc.app as gc
import berth_ui.app as ui
from berth_common.eventstore import ProjectionSpec
from berth_common.http.service_app import ServiceSpec, spec_app
from berth_common.http.surface import RegistryHeaders
from berth_common.settings import Settings

__all__ = ["ROUTE_ORDER", "SERVICES", "RegistryHeaders", "all_projections", "create_app"]

SERVICES: tuple[ServiceSpec, ...] = (api.SERVICE, blob.SERVICE, auth.SERVICE, gc.SERVICE, ui.SERVICE)
"""Every service, in the order they migrate and start (blob's schema reads ``api.v_feeds``)."""
ROUTE_ORDER = ("blob", "api", "auth", "gc", "ui")
"""The order routes are mounted, the busiest paths first: blob (every layer of every push and
pull), then api (manifests first), auth, gc, ui (``/`` and ``/ui/…``). Paths of different
services never overlap, so the order only decides how many templates a request is tried against."""


def all_projections() -> list[ProjectionSpec]:
    """Every service's rebuildable projections."""
    return [spec for svc in SERVICES for spec in svc.projections()]


def create_app(settings: Settings | None = None) -> FastAPI:
    """The all-in-one app: the same ``spec_app`` as a standalone service, looping over all five
    specs (the outbox relay candidate is started after them)."""
    return spec_app("all", SERVICES, settings or Settings(), route_order=ROUTE_ORDER, requires_bus=False)
