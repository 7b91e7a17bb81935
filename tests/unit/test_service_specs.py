"""One wiring style: every service declares a ``ServiceSpec``, and the all-in-one app and
``berth serve <service>`` loop over the same specs (docs/ARCHITECTURE.md, "How a service is
wired")."""

from __future__ import annotations

import importlib

from starlette.routing import BaseRoute

from berth.allinone import ROUTE_ORDER, SERVICES, all_projections, create_app
from berth.server_cli import SERVICES as SERVED
from berth_common.http.service_app import ServiceSpec
from berth_common.settings import Settings

NAMES = ("api", "blob", "auth", "gc", "ui")


def _paths(routes: list[BaseRoute]) -> set[str]:
    return {getattr(r, "path", "") for r in routes}


def test_the_all_in_one_loops_over_every_services_spec() -> None:
    assert tuple(s.name for s in SERVICES) == NAMES
    assert sorted(ROUTE_ORDER) == sorted(NAMES)
    for spec in SERVICES:
        module = importlib.import_module(f"berth_{spec.name}.app")
        assert module.SERVICE is spec and isinstance(spec, ServiceSpec)
    assert [p.name for p in all_projections()] == ["api", "blob", "auth", "gc"]


def test_berth_serve_builds_each_service_from_its_spec() -> None:
    for name in NAMES:
        module, _, factory = SERVED[name].partition(":")
        assert (module, factory) == (f"berth_{name}.app", "create_app")


def test_the_all_in_one_serves_the_routes_of_every_spec() -> None:
    from fastapi import FastAPI

    every: set[str] = set()
    for spec in SERVICES:
        app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
        spec.routes(app)
        every |= _paths(app.router.routes)
    assert every - _paths(create_app(Settings()).router.routes) == set()
