"""Trace context without a ``traceparent`` header: the trace recorded in the bearer token, and
trace ids in log lines (docs/OPERATIONS.md, "Traces")."""

from __future__ import annotations

import base64
import json

import pytest
import structlog
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from berth_common.logging import configure_logging
from berth_common.telemetry.propagation import TokenTraceContext, token_traceparent

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
OTHER = "00-11111111111111111111111111111111-2222222222222222-01"


def jwt_with(claims: dict[str, object]) -> str:
    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'ES256'})}.{part(claims)}.c2ln"


def parent_of(carrier: dict[str, str]) -> trace.SpanContext:
    return trace.get_current_span(TokenTraceContext().extract(carrier)).get_span_context()


def test_bearer_token_trace_is_continued_without_a_traceparent_header() -> None:
    context = parent_of({"authorization": "Bearer " + jwt_with({"sub": "a", "trace": TRACEPARENT})})
    assert context.is_remote and format(context.trace_id, "032x") == TRACEPARENT[3:35]
    assert format(context.span_id, "016x") == TRACEPARENT[36:52]


def test_a_traceparent_header_beats_the_token() -> None:
    carrier = {"traceparent": OTHER, "authorization": "Bearer " + jwt_with({"trace": TRACEPARENT})}
    assert format(parent_of(carrier).trace_id, "032x") == "1" * 32


@pytest.mark.parametrize(
    "header",
    [None, "Basic YTpi", "Bearer not-a-jwt", "Bearer a.b.c", "Bearer " + jwt_with({"trace": 7}), "Bearer"],
)
def test_anything_else_starts_no_trace(header: str | None) -> None:
    assert token_traceparent([header] if header else None) is None
    assert not parent_of({"authorization": header} if header else {}).is_valid


def test_log_lines_carry_trace_and_span_ids(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "json")
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("request") as span:
        structlog.get_logger("berth.test").info("inside", n=1)
    structlog.get_logger("berth.test").info("outside")
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    inside, outside = (next(x for x in lines if x["event"] == e) for e in ("inside", "outside"))
    assert inside["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert inside["span_id"] == format(span.get_span_context().span_id, "016x")
    assert "trace_id" not in outside
    configure_logging("INFO", "console")


def test_sampling_ratio_and_resource_come_from_the_settings() -> None:
    """``telemetry.sample_ratio`` samples new traces by id, a sampled parent always wins; the
    resource names the service and the replica."""
    from opentelemetry.sdk.trace.sampling import Decision

    from berth_common.settings import TelemetrySettings
    from berth_common.telemetry.tracing import _exporter, tracer_provider

    none = tracer_provider("api", TelemetrySettings(sample_ratio=0.0, instance_id="api-7f9c-1"))
    attributes = dict(none.resource.attributes)
    assert attributes["service.name"] == "berth-api" and attributes["service.instance.id"] == "api-7f9c-1"
    root = none.sampler.should_sample(None, 0x4BF92F3577B34DA6A3CE929D0E0E4736, "GET /v2/")
    assert root.decision is Decision.DROP
    sampled_parent = TokenTraceContext().extract({"traceparent": TRACEPARENT})
    child = none.sampler.should_sample(sampled_parent, 0x4BF92F3577B34DA6A3CE929D0E0E4736, "GET /v2/")
    assert child.decision is Decision.RECORD_AND_SAMPLE
    every = tracer_provider("blob", TelemetrySettings(sample_ratio=1.0))
    assert every.sampler.should_sample(None, 1, "x").decision is Decision.RECORD_AND_SAMPLE
    assert type(_exporter("http://c:4317", "grpc")).__module__.endswith("grpc.trace_exporter")
    assert type(_exporter("http://c:4318", "http/protobuf")).__module__.endswith("http.trace_exporter")
    with pytest.raises(ValueError):
        _exporter("http://c:4318", "thrift")
