"""``counted``: every ``/token`` request counted by grant and outcome (docs/OPERATIONS.md, "Metrics").

``berth_auth_token_requests_total{grant, outcome}``: ``grant`` is ``basic`` (GET with
credentials), ``anonymous`` (GET without), ``password`` or ``refresh_token`` (POST) or
``other``; ``outcome`` is ``issued`` (200), ``denied`` (401: wrong credentials or refresh
token), ``rate_limited`` (429), ``invalid`` (another 4xx: bad scope, service, grant type) or
``error`` (anything else, e.g. the database is down).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs

from fastapi import Request
from fastapi.responses import JSONResponse

from berth_common.domain_errors import DomainError
from berth_common.errors import RegistryError
from berth_common.http.errors import wire_error
from berth_common.telemetry import record_token_request

Route = Callable[[Request], Awaitable[JSONResponse]]
_OUTCOMES = {401: "denied", 429: "rate_limited"}


def counted(route: Route) -> Route:
    """Wrap a token route (``(request) -> JSONResponse``) so each call is counted."""

    @functools.wraps(route)
    async def wrapper(request: Request) -> JSONResponse:
        grant = await _grant(request)
        try:
            response = await route(request)
        except (RegistryError, DomainError) as exc:
            status = (exc if isinstance(exc, RegistryError) else wire_error(exc)).status
            outcome = _OUTCOMES.get(status, "invalid" if status < 500 else "error")
            record_token_request(grant, outcome)
            raise
        except Exception:
            record_token_request(grant, "error")
            raise
        record_token_request(grant, "issued")
        return response

    return wrapper


async def _grant(request: Request) -> str:
    """The grant of a token request (see the module docstring); reads a POST's form (cached)."""
    if request.method == "GET":
        return (
            "basic" if request.headers.get("authorization", "").lower().startswith("basic ") else "anonymous"
        )
    form = parse_qs((await request.body()).decode(errors="replace"))
    grant = (form.get("grant_type") or [""])[-1]
    return grant if grant in ("password", "refresh_token") else "other"
