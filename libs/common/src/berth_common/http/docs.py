"""``/api/docs``: the OpenAPI documentation page, served without any CDN (works offline).

FastAPI's own docs page loads Swagger UI from a CDN, so it is blank on a machine without
internet. The assets (Swagger UI 5's ``swagger-ui-bundle.js`` and ``swagger-ui.css``, Apache
2.0; a favicon) come from the ``fastapi-offline`` package (MIT), which bundles the CDN's current
files; they are served at ``/api/docs/static/…`` by the same app, so the api service (or the
all-in-one process) answers the page and its assets alike (docs/ARCHITECTURE.md, routing).
"""

from __future__ import annotations

from importlib import resources

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_PATH = "/api/docs"
STATIC_PATH = "/api/docs/static"
OPENAPI_PATH = "/api/openapi.json"


def install_docs(app: FastAPI) -> None:
    """Serve ``GET /api/docs`` (Swagger UI for ``/api/openapi.json``) and its assets."""
    folder = resources.files("fastapi_offline") / "static"
    app.mount(STATIC_PATH, StaticFiles(directory=str(folder)), name="api-docs-static")

    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=OPENAPI_PATH,
            title=f"{app.title} — API",
            swagger_js_url=f"{STATIC_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{STATIC_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{STATIC_PATH}/favicon.png",
            # no badge from the public validator service: nothing leaves the machine
            swagger_ui_parameters={"validatorUrl": None},
        )

    app.add_api_route(DOCS_PATH, docs, methods=["GET"], include_in_schema=False)
