"""Metrics and traces for operators (Prometheus ``/metrics``, OpenTelemetry spans).

* Every HTTP request is measured by ``RequestMetrics`` into the histogram
  ``berth_http_request_duration_seconds{service, method, route, status}``, labelled by the
  route *template* (``/v2/{name:path}/manifests/{reference}``) so cardinality stays bounded.
* The event flow (docs/ARCHITECTURE.md, "Observability"): ``berth_relay_publish_failures_total``,
  ``berth_relay_lag_events``, ``berth_relay_lag_seconds`` (set by the relay leader),
  ``berth_consumer_lag_events{consumer}`` and ``berth_consumer_apply_failures_total{consumer}``
  (set by the active instance of each durable consumer). Gauges that one elected process sets
  use multiprocess mode ``mostrecent``, so a scrape of a multi-worker server shows the leader's
  value, not a stale one of a worker that lost leadership or died.
* Tracing is on when an OTLP endpoint is configured (``OTEL_EXPORTER_OTLP_ENDPOINT`` or
  ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, the OpenTelemetry SDK's own variables): FastAPI and
  asyncpg are instrumented and spans are exported over OTLP/HTTP. Events record the W3C
  ``traceparent`` of the request that caused them (``berth_common.http.meta``) and the relay
  forwards it in the NATS headers, so one trace follows a push across services.
"""

from __future__ import annotations

import os
import time

import structlog
from fastapi import FastAPI
from prometheus_client import Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = structlog.get_logger("berth.telemetry")
access = structlog.get_logger("berth.access")

REQUEST_SECONDS = Histogram(
    "berth_http_request_duration_seconds",
    "HTTP request duration until the last byte is sent",
    ["service", "method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
RESPONSE_BYTES = Counter(
    "berth_http_response_bytes_total",
    "Response body bytes sent (zero-copy included)",
    ["service", "route"],
)
RELAY_PUBLISH_FAILURES = Counter(
    "berth_relay_publish_failures_total",
    "Failed attempts of the outbox relay to read or publish events (each is retried)",
)
RELAY_LAG_EVENTS = Gauge(
    "berth_relay_lag_events",
    "Events committed to the event store but not yet published to the bus (relay leader)",
    multiprocess_mode="mostrecent",
)
RELAY_LAG_SECONDS = Gauge(
    "berth_relay_lag_seconds",
    "Age of the oldest committed event not yet published (0 when caught up; relay leader)",
    multiprocess_mode="mostrecent",
)
CONSUMER_LAG_EVENTS = Gauge(
    "berth_consumer_lag_events",
    "Messages of a durable consumer not yet delivered and applied (its active instance)",
    ["consumer"],
    multiprocess_mode="mostrecent",
)
CONSUMER_APPLY_FAILURES = Counter(
    "berth_consumer_apply_failures_total",
    "Failed attempts of a durable consumer to apply an event (each is retried in place)",
    ["consumer"],
)
_tracing_on = False


class RequestMetrics:
    """Pure ASGI middleware measuring every request (passes zero-copy messages through).

    With ``access_log`` it also writes one ``http.request`` line per request (method, path,
    status, duration in ms, bytes sent, client address) to the ``berth.access`` logger.
    """

    def __init__(self, app: ASGIApp, service: str, access_log: bool = True) -> None:
        self.app, self.service, self.access_log = app, service, access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status, sent = "500", 0

        async def measured_send(message: Message) -> None:
            nonlocal status, sent
            kind = message["type"]
            if kind == "http.response.start":
                status = str(message["status"])
            elif kind == "http.response.body":
                sent += len(message.get("body", b""))
            elif kind == "http.response.zerocopysend":
                sent += int(message.get("count") or 0)
            await send(message)

        try:
            await self.app(scope, receive, measured_send)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            REQUEST_SECONDS.labels(self.service, scope["method"], route, status).observe(
                time.perf_counter() - started
            )
            if sent:
                RESPONSE_BYTES.labels(self.service, route).inc(sent)
            if self.access_log:
                client = scope.get("client")
                access.info(
                    "http.request",
                    method=scope["method"],
                    path=scope["path"],
                    status=int(status),
                    ms=round((time.perf_counter() - started) * 1000, 2),
                    bytes=sent,
                    client=client[0] if client else None,
                )


def tracing_configured() -> bool:
    """Whether an OTLP endpoint is configured in the environment."""
    return bool(
        os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def setup_tracing(service: str) -> bool:
    """Install the SDK tracer provider with an OTLP/HTTP exporter (once per process).

    Returns whether tracing is on. Without an endpoint, spans are not recorded (the API's
    no-op tracer), which costs nothing on the hot path.
    """
    global _tracing_on
    if _tracing_on or not tracing_configured():
        return _tracing_on
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": f"berth-{service}"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    AsyncPGInstrumentor().instrument()  # type: ignore[no-untyped-call]
    _tracing_on = True
    log.info("tracing.enabled", service=service)
    return True


def instrument(app: FastAPI, service: str, *, access_log: bool = True) -> None:
    """Add request metrics (and the access log) to ``app`` and, when tracing is configured,
    OpenTelemetry spans."""
    if setup_tracing(service):
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,metrics")
    app.add_middleware(RequestMetrics, service=service, access_log=access_log)
