"""One skopeo push is one trace across processes and the bus (docs/OPERATIONS.md, "Traces").

api, blob, auth and gc run as their own ``berth serve`` processes behind ``berth serve proxy``,
exporting spans to this test's OTLP receiver (``tests/support/otlp.py``): api, blob and auth
over OTLP/HTTP, gc over OTLP/gRPC. skopeo pushes an image (it sends no ``traceparent``; the
trace rides in its bearer token). The trace of the manifest PUT must hold the token request
(auth), the blob requests (blob), the manifest PUT (api), their event-store appends with
asyncpg's spans under them, the relay's publish of ``manifest.pushed`` and the gc consumer's
apply of it in the gc process — every span of the trace connected to one root. Each process
has its own ``service.instance.id``; the JSON log lines carry the trace's id.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from berth.token_auth import RegistryAuth
from tests.e2e import oci_layout
from tests.e2e.clients import docker_ref, skopeo_copy
from tests.e2e.test_separate_services import fresh_backends
from tests.support.berth_process import ADMIN_PASSWORD, ADMIN_USER, registry_credentials
from tests.support.databases import NATS_URL, unique
from tests.support.otlp import Span, Spans, otlp_receiver
from tests.support.serve_process import ServeProcess, start, stop, wait_ready

pytestmark = pytest.mark.e2e
SERVICES = ("api", "blob", "auth", "gc")
SPANS_TIMEOUT = 90.0  # seconds for the consumer's span to arrive (a deadline, not a measure)
MANIFEST_PUT = "PUT /v2/{name:path}/manifests/{reference}"


@contextlib.contextmanager
def traced_services(
    workdir: Path, database_url: str, stream: str, http_endpoint: str, grpc_endpoint: str
) -> Iterator[tuple[ServeProcess, list[ServeProcess]]]:
    """The four services (gc exporting over gRPC) and the proxy; yields ``(proxy, services)``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BERTH_", "OTEL_"))}
    env |= {
        "BERTH_DATABASE_URL": database_url,
        "BERTH_NATS_URL": NATS_URL,
        "BERTH_NATS_STREAM": stream,
        "BERTH_STORAGE__ROOT": str(workdir / "storage"),
        "BERTH_RELAY_POLL_SECONDS": "0.2",
        "BERTH_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "BERTH_LOG_FORMAT": "json",
        "BERTH_TELEMETRY__OTLP_ENDPOINT": http_endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "200",  # export every 0.2 s (the SDK's default is 5 s)
    }
    grpc = env | {"BERTH_TELEMETRY__OTLP_ENDPOINT": grpc_endpoint, "BERTH_TELEMETRY__OTLP_PROTOCOL": "grpc"}
    services = [start(svc, [svc], grpc if svc == "gc" else env, workdir) for svc in SERVICES]
    processes = list(services)
    try:
        wait_ready(services, "/readyz")
        proxy = start("proxy", ["proxy", *(f"--{p.name}={p.url}" for p in services)], env, workdir)
        processes.append(proxy)
        wait_ready([proxy], "/v2/")
        yield proxy, services
    except BaseException:
        print("\n".join(p.log() for p in processes))
        raise
    finally:
        stop(processes)


def _push(workdir: Path, proxy: ServeProcess) -> str:
    """Create a feed and skopeo-push an image through the proxy; return its repository."""
    layout = workdir / "oci"
    oci_layout.build_image(layout, "v1")
    feed = unique("trc")
    created = httpx.post(
        f"{proxy.url}/api/feeds",
        json={"name": feed},
        timeout=30.0,
        auth=RegistryAuth(ADMIN_USER, ADMIN_PASSWORD),
    )
    assert created.status_code == 201, created.text
    host = proxy.url.removeprefix("http://")
    registry_credentials(host)
    skopeo_copy(f"oci:{layout}:v1", docker_ref(host, f"{feed}/busybox", "v1"))
    return f"{feed}/busybox"


def _push_trace(spans: Spans) -> list[Span]:
    """The trace of the manifest PUT, once the gc consumer's span of it has arrived."""
    deadline = time.monotonic() + SPANS_TIMEOUT
    while time.monotonic() < deadline:
        put = [s for s in spans.snapshot() if s.name == MANIFEST_PUT and s.service == "berth-api"]
        if put:
            trace = spans.of_trace(put[0].trace_id)
            if any(s.name == "apply manifest.pushed" for s in trace):
                time.sleep(1.0)  # the last batches of the other processes
                return spans.of_trace(put[0].trace_id)
        time.sleep(0.2)
    raise AssertionError(f"no complete push trace; spans: {sorted({s.name for s in spans.snapshot()})}")


def test_one_push_is_one_trace_across_processes_and_the_bus(tmp_path: Path) -> None:
    import asyncio

    async def backends() -> None:
        async with fresh_backends() as (database_url, stream):
            await asyncio.to_thread(_run, tmp_path, database_url, stream)

    asyncio.run(backends())


def _run(workdir: Path, database_url: str, stream: str) -> None:
    with contextlib.ExitStack() as stack:
        spans, http_url, grpc_url = stack.enter_context(otlp_receiver())
        proxy, services = stack.enter_context(
            traced_services(workdir, database_url, stream, http_url, grpc_url)
        )
        _push(workdir, proxy)
        trace = _push_trace(spans)
        logs = {p.name: p.log_path.read_text() for p in services}
    tree = spans.tree(trace[0].trace_id, skip_scopes=("opentelemetry.instrumentation.asyncpg",))
    print("\n" + tree)
    (workdir / "push-trace.txt").write_text(tree)
    _assert_push_trace(trace)
    trace_id = trace[0].trace_id
    assert f'"trace_id": "{trace_id}"' in logs["api"]  # the manifest PUT's access log line


def _assert_push_trace(trace: list[Span]) -> None:
    by_id = {s.span_id: s for s in trace}
    roots = [s for s in trace if s.parent not in by_id]
    assert len(roots) == 1, [(s.name, s.service) for s in roots]  # one tree, nothing dangling
    assert (roots[0].name, roots[0].service) == ("GET /token", "berth-auth")

    def named(name: str, service: str | None = None) -> list[Span]:
        return [s for s in trace if s.name == name and (service is None or s.service == service)]

    put = named(MANIFEST_PUT, "berth-api")[0]
    uploads = named("PUT /v2/{name:path}/blobs/uploads/{upload_id}", "berth-blob")
    assert uploads and named("POST /v2/{name:path}/blobs/uploads/", "berth-blob")
    assert all(by_id[s.parent] is roots[0] for s in [put, *uploads])  # requests made with its token
    appends = [
        s for s in named("eventstore.append") if s.parent in {put.span_id, *(u.span_id for u in uploads)}
    ]
    assert {s.service for s in appends} == {"berth-api", "berth-blob"}
    assert any(
        s.scope == "opentelemetry.instrumentation.asyncpg" and s.parent == a.span_id
        for a in appends
        for s in trace
    )  # the append's SQL, from asyncpg's instrumentation
    (publish,) = named("publish manifest.pushed")
    assert publish.kind == "producer" and publish.parent == put.span_id
    assert publish.service in (
        "berth-api",
        "berth-blob",
        "berth-gc",
    )  # whichever relay leads (gc appends events too)
    (apply,) = named("apply manifest.pushed", "berth-gc")  # gc exported over gRPC
    assert apply.kind == "consumer" and apply.parent == put.span_id
    assert apply.attributes["berth.consumer.applied"] is True
    instances = {s.service: s.instance for s in trace}
    assert len(set(instances.values())) == len(instances) == 4, instances  # one per process
