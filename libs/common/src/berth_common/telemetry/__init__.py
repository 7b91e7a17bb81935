"""Metrics and traces for operators (Prometheus ``/metrics``, OpenTelemetry spans, trace ids in logs).

* ``http``: request histograms, response bytes, bytes per feed, the access log.
* ``metrics``: every other metric, and the API that records them (``record_gc_run``,
  ``gc_job``, ``record_token_request``).
* ``sampler``: gauges read on a timer (database pool, TLS certificate expiry, open uploads).
* ``tracing``: OTLP export (HTTP or gRPC), instrumentations, spans of the event flow
  (``traced_append``, ``traced_publish``, ``traced_apply``), ``add_trace_ids`` for logs.
* ``propagation``: one push is one trace, through the trace recorded in its bearer token.

The metric list and what each alert means are in docs/OPERATIONS.md.
"""

from __future__ import annotations

from fastapi import FastAPI

from berth_common.settings import Settings
from berth_common.telemetry.http import REQUEST_SECONDS, RESPONSE_BYTES, FeedLabels, RequestMetrics
from berth_common.telemetry.metrics import (
    CONSUMER_APPLY_FAILURES,
    CONSUMER_LAG_EVENTS,
    RELAY_LAG_EVENTS,
    RELAY_LAG_SECONDS,
    RELAY_PUBLISH_FAILURES,
    gc_job,
    record_gc_run,
    record_token_request,
)
from berth_common.telemetry.tracing import (
    add_trace_ids,
    flush_spans,
    setup_tracing,
    token_trace_claim,
    traced_append,
    traced_apply,
    traced_publish,
    tracing_on,
)

__all__ = [
    "CONSUMER_APPLY_FAILURES",
    "CONSUMER_LAG_EVENTS",
    "RELAY_LAG_EVENTS",
    "RELAY_LAG_SECONDS",
    "RELAY_PUBLISH_FAILURES",
    "REQUEST_SECONDS",
    "RESPONSE_BYTES",
    "FeedLabels",
    "RequestMetrics",
    "add_trace_ids",
    "flush_spans",
    "gc_job",
    "instrument",
    "record_gc_run",
    "record_token_request",
    "setup_tracing",
    "token_trace_claim",
    "traced_append",
    "traced_apply",
    "traced_publish",
    "tracing_on",
]


def instrument(app: FastAPI, service: str, settings: Settings | None = None) -> None:
    """Add request metrics (and the access log) to ``app`` and, when tracing is configured,
    OpenTelemetry server spans (no spans for ``/healthz``, ``/readyz``, ``/metrics``, nor for
    each ASGI message sent or received)."""
    settings = settings or Settings()
    if setup_tracing(service, settings.telemetry):
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(
            app, excluded_urls="healthz,readyz,metrics", exclude_spans=["receive", "send"]
        )
    feeds = FeedLabels(settings.metrics.feed_labels, settings.metrics.feed_bytes)
    app.add_middleware(RequestMetrics, service=service, access_log=settings.access_log, feeds=feeds)
