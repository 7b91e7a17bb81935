"""A small OTLP trace receiver for tests: OTLP/HTTP (protobuf) and OTLP/gRPC, in process.

No OpenTelemetry Collector is installable here; Berth's exporters (the SDK's own) send to these
as to a real collector, and spans are decoded with ``opentelemetry-proto``
(``ExportTraceServiceRequest``). ``Spans`` holds every span received, with its resource's
``service.name`` and ``service.instance.id``, and renders a trace as an indented tree.
"""

from __future__ import annotations

import contextlib
import gzip
import threading
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from tests.support.net import free_port

KINDS = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}


@dataclass(frozen=True)
class Span:
    """One received span; ids in hex, ``parent`` is ``""`` for a root."""

    trace_id: str
    span_id: str
    parent: str
    name: str
    kind: str
    service: str
    instance: str
    scope: str
    attributes: dict[str, Any]
    start: int


def _value(v: Any) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    return getattr(v, kind) if kind else None


@dataclass
class Spans:
    """Every span received so far (thread-safe)."""

    items: list[Span] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, request: trace_service_pb2.ExportTraceServiceRequest) -> None:
        """Record the spans of one export request."""
        received = []
        for rs in request.resource_spans:
            resource = {a.key: _value(a.value) for a in rs.resource.attributes}
            for ss in rs.scope_spans:
                for s in ss.spans:
                    received.append(
                        Span(
                            s.trace_id.hex(), s.span_id.hex(), s.parent_span_id.hex(), s.name,
                            KINDS.get(s.kind, str(s.kind)), str(resource.get("service.name")),
                            str(resource.get("service.instance.id")), ss.scope.name,
                            {a.key: _value(a.value) for a in s.attributes}, s.start_time_unix_nano,
                        )
                    )  # fmt: skip
        with self.lock:
            self.items.extend(received)

    def snapshot(self) -> list[Span]:
        """A copy of the spans received so far."""
        with self.lock:
            return list(self.items)

    def of_trace(self, trace_id: str) -> list[Span]:
        """The spans of one trace, in start order."""
        return sorted((s for s in self.snapshot() if s.trace_id == trace_id), key=lambda s: s.start)

    def tree(self, trace_id: str, *, skip_scopes: tuple[str, ...] = ()) -> str:
        """The trace as text, one span per line indented under its parent:
        ``name [kind] service`` (spans of ``skip_scopes`` instrumentations left out, their
        children shown under the nearest shown ancestor)."""
        spans = self.of_trace(trace_id)
        by_id = {s.span_id: s for s in spans}
        shown = {s.span_id for s in spans if s.scope not in skip_scopes}

        def visible_parent(span: Span) -> str:
            parent = span.parent
            while parent and parent not in shown and parent in by_id:
                parent = by_id[parent].parent
            return parent if parent in shown else ""

        children: dict[str, list[Span]] = {}
        for s in spans:
            if s.span_id in shown:
                children.setdefault(visible_parent(s), []).append(s)
        lines: list[str] = []

        def walk(parent: str, depth: int) -> None:
            for s in children.get(parent, []):
                lines.append(f"{'  ' * depth}{s.name} [{s.kind}] {s.service}")
                walk(s.span_id, depth + 1)

        walk("", 0)
        return "\n".join(lines)


class _Handler(BaseHTTPRequestHandler):
    spans: Spans

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        if self.path != "/v1/traces":
            self.send_response(404)
            self.end_headers()
            return
        self.spans.add(trace_service_pb2.ExportTraceServiceRequest.FromString(body))
        reply = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, spans: Spans) -> None:
        self.spans = spans

    def Export(self, request: Any, context: Any) -> Any:
        self.spans.add(request)
        return trace_service_pb2.ExportTraceServiceResponse()


@contextlib.contextmanager
def otlp_receiver() -> Iterator[tuple[Spans, str, str]]:
    """Yield ``(spans, http_endpoint, grpc_endpoint)``: base URLs for ``telemetry.otlp_endpoint``
    with ``http/protobuf`` (``/v1/traces`` is appended by the exporter) and ``grpc``."""
    import grpc

    spans = Spans()
    handler = type("Handler", (_Handler,), {"spans": spans})
    http = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    grpc_server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_TraceService(spans), grpc_server)  # type: ignore[no-untyped-call]
    grpc_port = grpc_server.add_insecure_port(f"127.0.0.1:{free_port()}")
    grpc_server.start()
    try:
        yield spans, f"http://127.0.0.1:{http.server_port}", f"http://127.0.0.1:{grpc_port}"
    finally:
        grpc_server.stop(0)
        http.shutdown()
        http.server_close()
