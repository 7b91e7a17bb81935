"""Trace context of a push: W3C ``traceparent``, else the trace recorded in the bearer token.

Registry clients (docker, skopeo, podman, containerd) send no ``traceparent``: every request of
a push would start a trace of its own. But a push fetches one token from ``/token`` and sends
it with every request that follows (HEADs, uploads, the manifest PUT). So the token endpoint
records the ``traceparent`` of its own request span in the token (claim ``trace``,
``berth_common.telemetry.tracing.token_trace_claim``), and on a request *without* a
``traceparent`` header this propagator continues that trace: one push, one trace, across
every service, whatever the client. A request with a ``traceparent`` header (an instrumented
client, a tracing ingress) keeps its own.

The claim is read without verifying the token (verification happens later, in the route); a
forged claim can only choose which trace a request's spans join, as a forged ``traceparent``
header can.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from opentelemetry.context import Context
from opentelemetry.propagators.textmap import (
    CarrierT,
    Getter,
    Setter,
    TextMapPropagator,
    default_getter,
    default_setter,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

TOKEN_CLAIM = "trace"
_W3C = TraceContextTextMapPropagator()


class TokenTraceContext(TextMapPropagator):
    """W3C Trace Context, falling back to the ``trace`` claim of a ``Bearer`` JWT (see module)."""

    def extract(
        self, carrier: CarrierT, context: Context | None = None, getter: Getter[CarrierT] = default_getter
    ) -> Context:
        """The context of the ``traceparent`` header, else of the bearer token's claim."""
        if getter.get(carrier, "traceparent"):
            return _W3C.extract(carrier, context, getter)
        traceparent = token_traceparent(getter.get(carrier, "authorization"))
        if traceparent is None:
            return _W3C.extract(carrier, context, getter)
        return _W3C.extract({"traceparent": traceparent}, context)

    def inject(
        self, carrier: CarrierT, context: Context | None = None, setter: Setter[CarrierT] = default_setter
    ) -> None:
        """Write ``traceparent``/``tracestate`` of the current span (as W3C Trace Context)."""
        _W3C.inject(carrier, context, setter)

    @property
    def fields(self) -> set[str]:
        """The header names this propagator sets."""
        return _W3C.fields


def token_traceparent(values: list[str] | None) -> str | None:
    """The ``trace`` claim of a ``Bearer`` JWT among the ``Authorization`` header ``values``.

    Returns ``None`` for no header, another scheme, a malformed token or no claim (never raises).
    """
    for value in values or ():
        scheme, _, token = value.partition(" ")
        if scheme.lower() != "bearer" or token.count(".") != 2:
            continue
        claims = _unverified_claims(token.split(".")[1])
        claim = claims.get(TOKEN_CLAIM) if claims else None
        if isinstance(claim, str) and len(claim) == 55:
            return claim
    return None


def _unverified_claims(segment: str) -> dict[str, Any] | None:
    try:
        data = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except ValueError:
        return None
    return data if isinstance(data, dict) else None
