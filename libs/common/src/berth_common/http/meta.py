"""Event metadata from a request: actor, request id and W3C trace context."""

from __future__ import annotations

from fastapi import Request

from berth_common.auth import Caller
from berth_common.events import Metadata


def metadata_of(request: Request, caller: Caller) -> Metadata:
    """The ``Metadata`` for events caused by ``request`` (ids from headers when present)."""
    return Metadata(
        actor=caller.subject,
        request_id=request.headers.get("x-request-id"),
        traceparent=request.headers.get("traceparent"),
    )
