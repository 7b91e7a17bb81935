"""OpenTelemetry tracing: setup per process, spans for the event flow, trace ids for logs.

Tracing is on when an OTLP endpoint is configured (``telemetry.otlp_endpoint``, else the SDK's
own ``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``). Then, in every
process: FastAPI/ASGI server spans (``opentelemetry-instrumentation-fastapi``), asyncpg client
spans and httpx client spans (their instrumentations; httpx carries ``traceparent`` on, e.g.
from the UI to the API), exported with OTLP over HTTP (``http/protobuf``) or gRPC
(``telemetry.otlp_protocol``), sampled parent-based with ``telemetry.sample_ratio``. Resource
attributes: ``service.name`` = ``berth-<service>``, ``service.namespace`` = ``berth``,
``service.instance.id`` = ``telemetry.instance_id`` or ``<host name>-<pid>`` (one per replica
and worker), plus ``OTEL_RESOURCE_ATTRIBUTES``.

The event flow (docs/ARCHITECTURE.md, "Observability"): events record the ``traceparent`` of
the request that caused them; ``traced_append`` wraps the event-store append,
``traced_publish`` the relay's publish of one event and ``traced_apply`` a consumer's handling
of one event, the last two as children of the span in the event's ``traceparent`` — in
whichever process, however much later. Without tracing each is a plain call.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import Any, TypeVar, cast

import structlog
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind

from berth_common.settings import TelemetrySettings
from berth_common.telemetry.propagation import TOKEN_CLAIM, TokenTraceContext

log = structlog.get_logger("berth.telemetry")
_tracer = trace.get_tracer("berth")
_provider: Any = None  # the SDK TracerProvider once tracing is on
S = TypeVar("S")
Publish = TypeVar("Publish", bound=Callable[..., Awaitable[int]])


def tracing_on() -> bool:
    """Whether this process records spans (``setup_tracing`` found an endpoint)."""
    return _provider is not None


def otlp_endpoint(settings: TelemetrySettings) -> str | None:
    """The configured OTLP endpoint: the setting, else the SDK's environment variables."""
    return (
        settings.otlp_endpoint
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    )


def otlp_protocol(settings: TelemetrySettings) -> str:
    """``http/protobuf`` or ``grpc``: the setting, else ``OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL``."""
    return (
        settings.otlp_protocol
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    )


def setup_tracing(service: str, settings: TelemetrySettings) -> bool:
    """Install the SDK tracer provider, exporter and instrumentations (once per process).

    Returns whether tracing is on. Without an endpoint nothing is installed and spans cost
    nothing (the API's no-op tracer).

    Raises:
        ValueError: an unknown ``otlp_protocol``.
    """
    global _provider
    endpoint = otlp_endpoint(settings)
    if _provider is not None or not endpoint:
        return _provider is not None
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = tracer_provider(service, settings)
    provider.add_span_processor(BatchSpanProcessor(_exporter(endpoint, otlp_protocol(settings))))
    trace.set_tracer_provider(provider)
    propagate.set_global_textmap(TokenTraceContext())
    AsyncPGInstrumentor().instrument()  # type: ignore[no-untyped-call]
    HTTPXClientInstrumentor().instrument()
    logging.getLogger("opentelemetry.attributes").setLevel(logging.ERROR)  # truncated SQL: expected
    _provider = provider
    log.info("tracing.enabled", service=service, endpoint=endpoint, protocol=otlp_protocol(settings))
    return True


def tracer_provider(service: str, settings: TelemetrySettings) -> Any:
    """An SDK ``TracerProvider`` (no processor yet) with Berth's resource and sampler:
    ``service.name`` ``berth-<service>``, ``service.namespace`` ``berth``,
    ``service.instance.id`` (the setting, else ``<host name>-<pid>``), parent-based
    ``TraceIdRatioBased(sample_ratio)``, attribute values cut at 2 KiB."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import SpanLimits, TracerProvider
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    resource = Resource.create(
        {
            "service.name": f"berth-{service}",
            "service.namespace": "berth",
            "service.instance.id": settings.instance_id or f"{socket.gethostname()}-{os.getpid()}",
        }
    )
    return TracerProvider(
        resource=resource,
        sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio)),
        span_limits=SpanLimits(max_attribute_length=2048),  # SQL text may hold a manifest
    )


def _exporter(endpoint: str, protocol: str) -> Any:
    """An OTLP span exporter for ``endpoint`` (the base URL; ``/v1/traces`` is added for HTTP)."""
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as Grpc

        return Grpc(endpoint=endpoint, insecure=endpoint.startswith("http://"))
    if protocol in ("http/protobuf", "http"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as Http

        traces = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        return Http(endpoint=traces or endpoint.rstrip("/") + "/v1/traces")
    raise ValueError(f"telemetry.otlp_protocol must be http/protobuf or grpc, not {protocol!r}")


def flush_spans(timeout_millis: int = 5000) -> None:
    """Export the spans still buffered (at shutdown, so the last requests' spans are not lost)."""
    if _provider is not None:
        _provider.force_flush(timeout_millis)


def token_trace_claim() -> dict[str, str]:
    """``{"trace": traceparent}`` of the current span for a token being issued, or ``{}``.

    Requests that later carry the token continue this trace (``propagation``): one push, one
    trace. Empty without tracing or when the current span is not sampled.
    """
    if _provider is None:
        return {}
    context = trace.get_current_span().get_span_context()
    if not context.is_valid or not context.trace_flags.sampled:
        return {}
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    value = carrier.get("traceparent")
    return {TOKEN_CLAIM: value} if value else {}


def add_trace_ids(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: ``trace_id`` and ``span_id`` (hex) of the current span, if any."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event_dict.setdefault("trace_id", format(context.trace_id, "032x"))
        event_dict.setdefault("span_id", format(context.span_id, "016x"))
    return event_dict


@contextmanager
def _child_of(
    traceparent: str | None, name: str, kind: SpanKind, attributes: Mapping[str, Any]
) -> Iterator[trace.Span]:
    """A current span named ``name``, child of the span in ``traceparent`` (a root without)."""
    parent = propagate.extract({"traceparent": traceparent}) if traceparent else None
    with _tracer.start_as_current_span(name, context=parent, kind=kind, attributes=attributes) as span:
        yield span


def traced_append(
    commit: Callable[[Any, list[Any]], Awaitable[None]],
) -> Callable[[Any, list[Any]], Awaitable[None]]:
    """Decorate the event store's commit ``(conn, pending)``: span ``eventstore.append`` with
    the events' count and types (``pending``: objects with ``.event.type_name``) when any are pending."""

    @functools.wraps(commit)
    async def traced(conn: Any, pending: list[Any]) -> None:
        if _provider is None or not pending:
            await commit(conn, pending)
            return
        types = sorted({p.event.type_name for p in pending})
        attributes: dict[str, Any] = {"berth.event.count": len(pending), "berth.event.types": types}
        with _tracer.start_as_current_span("eventstore.append", attributes=attributes):
            await commit(conn, pending)

    return traced


def traced_publish(publish: Publish) -> Publish:
    """Decorate ``Bus.publish_encoded(self, type, position, event_id, traceparent, data)``: a
    ``PRODUCER`` span ``publish <type>``, child of the event's ``traceparent``."""

    @functools.wraps(publish)
    async def traced(
        self: Any, event_type: str, position: int, event_id: str, traceparent: str | None, data: bytes
    ) -> int:
        if _provider is None:
            return await publish(self, event_type, position, event_id, traceparent, data)
        attributes = {
            "messaging.system": "nats",
            "messaging.operation": "publish",
            "messaging.destination.name": event_type,
            "messaging.message.id": event_id,
            "berth.event.position": position,
            "berth.event.type": event_type,
        }
        with _child_of(traceparent, f"publish {event_type}", SpanKind.PRODUCER, attributes):
            return await publish(self, event_type, position, event_id, traceparent, data)

    return cast(Publish, traced)


def traced_apply(
    handle: Callable[[S, dict[str, Any]], Awaitable[bool]],
) -> Callable[[S, dict[str, Any]], Awaitable[bool]]:
    """Decorate ``ProjectionConsumer.handle(self, envelope) -> applied``: a ``CONSUMER`` span
    ``apply <type>``, child of the envelope's ``metadata.traceparent``, for the event types the
    consumer applies (``self.types``); ``berth.consumer.applied`` is false for a redelivery."""

    @functools.wraps(handle)
    async def traced(self: S, envelope: dict[str, Any]) -> bool:
        event_type = envelope.get("type")
        if _provider is None or event_type not in getattr(self, "types", ()):
            return await handle(self, envelope)
        traceparent = (envelope.get("metadata") or {}).get("traceparent")
        attributes = {
            "messaging.system": "nats",
            "messaging.operation": "process",
            "messaging.consumer.group.name": str(getattr(self, "name", "")),
            "berth.event.position": int(envelope.get("position") or 0),
            "berth.event.type": str(event_type),
        }
        with _child_of(traceparent, f"apply {event_type}", SpanKind.CONSUMER, attributes) as span:
            applied = await handle(self, envelope)  # an exception marks the span as failed
            span.set_attribute("berth.consumer.applied", applied)
            return applied

    return traced
