"""Lean registry endpoints: the hot ``/v2/<name>/…`` routes without FastAPI's dependency solving.

Every layer a client pushes or pulls costs several of these requests (skopeo sends HEAD, HEAD,
POST, PATCH and PUT per layer, each on a new connection), so their per-request overhead matters
more than anywhere else. FastAPI's dependency injection resolved four or five dependencies
per request (the repository name, the store, the caller…), about a quarter of a worker's CPU
per pushed layer (py-spy, docs/PERFORMANCE.md). These routes are plain Starlette routes in the
same FastAPI app instead — same middleware, same error handlers, same route templates in the
metrics — and a handler receives the three things every registry route needs, in the order
the dependencies resolved them before: the parsed repository (``NAME_INVALID`` first), then
the authorised caller (``401``/``403`` before any lookup, docs/DESIGN.md §4).

Usage::

    @registry_route(router, "/v2/{name:path}/blobs/{digest}", ["GET", "HEAD"], "pull")
    async def get_blob(request: Request, repository: RepositoryName, caller: Caller) -> Response:
        ...
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from fastapi import APIRouter, Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from berth_common.auth.seam import Action, Caller, authorize
from berth_common.errors import NameInvalid, NameUnknown
from berth_common.mirror import resolve_repository
from berth_common.oci.reference import RepositoryName

Handler = Callable[[Request, RepositoryName, Caller], Awaitable[Response]]


async def resolve_name(request: Request, name: str) -> RepositoryName:
    """The repository ``name`` addresses, mirror mode included (``berth_common.mirror``; a
    lookup only when ``default_feed`` is set). Raises ``NameInvalid`` (400), but ``NameUnknown``
    (404) for a HEAD: its answer has no body to say why the name is invalid, and clients report
    a bare 400 on a HEAD as "400 (Bad Request)" and stop. A name that cannot be a repository
    holds nothing, so 404 is true (Distribution answers so too), and the client's next request —
    the upload POST of a push, the GET of a pull — gets ``NAME_INVALID`` with its reason, which
    skopeo, podman and docker print (``tests/e2e/test_skopeo_errors.py``)."""
    resources = request.app.state.resources
    try:
        return await resolve_repository(resources.pool, name, resources.settings.default_feed)
    except NameInvalid as exc:
        if request.method == "HEAD":
            raise NameUnknown(exc.message) from None
        raise


def registry_route(
    router: APIRouter, path: str, methods: Sequence[str], action: Action
) -> Callable[[Handler], Handler]:
    """Register ``handler`` on ``router`` for ``methods`` at ``path`` (which has ``{name:path}``).

    The endpoint parses ``name`` (``NameInvalid``, 400; 404 for a HEAD; mirror mode resolves
    names without a feed — see ``resolve_name``) and authorises ``action`` on it
    (``Unauthorized``, 401, with the Bearer challenge) before calling the handler. Not listed in
    the OpenAPI schema (registry routes never were). Returns ``handler`` unchanged.
    """

    def register(handler: Handler) -> Handler:
        route: list[BaseRoute] = []  # the Route registered below

        async def endpoint(request: Request) -> Response:
            # FastAPI's routes put themselves in the scope; Starlette's do not. The metrics
            # (``berth_common.telemetry``) label requests by ``scope["route"].path``.
            request.scope["route"] = route[0]
            name = request.path_params["name"]
            repository = await resolve_name(request, name)
            caller = await authorize(request, name, action)
            return await handler(request, repository, caller)

        # Named after the handler (its module tells which service serves the path).
        endpoint.__name__, endpoint.__qualname__ = handler.__name__, handler.__qualname__
        endpoint.__module__, endpoint.__doc__ = handler.__module__, handler.__doc__
        router.add_route(path, endpoint, methods=list(methods), include_in_schema=False)
        route.append(router.routes[-1])
        return handler

    return register
