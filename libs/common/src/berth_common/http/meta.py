"""Event metadata from a request: actor, request id and W3C trace context."""

from __future__ import annotations

from fastapi import Request
from opentelemetry import propagate

from berth_common.auth import Caller
from berth_common.events import Metadata


def metadata_of(request: Request, caller: Caller) -> Metadata:
    """The ``Metadata`` for events caused by ``request``.

    ``traceparent`` is the current span's context when tracing is on, else the request's own
    ``traceparent`` header (so a client's trace still links to the events it caused).
    """
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return Metadata(
        actor=caller.subject,
        request_id=request.headers.get("x-request-id"),
        traceparent=carrier.get("traceparent") or request.headers.get("traceparent"),
    )
