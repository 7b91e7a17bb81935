"""Berth's Prometheus metrics beyond HTTP requests, and the small API that records them.

Every metric an operator alerts on is defined here (or in ``telemetry.http`` for requests,
``storage.instrumented`` for storage operations), so dashboards and rules
(``deploy/prometheus/``, ``deploy/grafana/``) have one place to look. docs/OPERATIONS.md lists
them all. Gauges declare how several worker processes add up (prometheus-client's
multiprocess mode, ``berth serve --workers N``).

* Cleanup jobs (``record_gc_run``, ``gc_job``): ``berth_gc_runs_total{job,outcome}``,
  ``berth_gc_run_seconds{job}``, ``berth_gc_objects_freed_total{job}``,
  ``berth_gc_bytes_freed_total{job}``, ``berth_gc_last_success_timestamp_seconds{job}``.
* Tokens (``record_token_request``): ``berth_auth_token_requests_total{grant,outcome}``.
* Database pool, upload sessions, TLS certificates (set by ``telemetry.sampler``):
  ``berth_db_pool_connections{state}``, ``berth_db_pool_max_connections``,
  ``berth_upload_sessions_open``, ``berth_tls_certificate_expiry_timestamp_seconds{certificate}``.
* Bytes per feed (``telemetry.http``): ``berth_feed_bytes_received_total{service,feed}``,
  ``berth_feed_bytes_sent_total{service,feed}``.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal, ParamSpec, TypeVar

from prometheus_client import Counter, Gauge, Histogram

P = ParamSpec("P")
R = TypeVar("R")
Outcome = Literal["success", "failure"]

# The event flow (docs/ARCHITECTURE.md, "Observability"): set by the relay leader and by the
# active instance of each durable consumer. Gauges one elected process sets use multiprocess
# mode ``mostrecent``, so a scrape of a multi-worker server shows the leader's value.
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

GC_RUNS = Counter("berth_gc_runs_total", "Cleanup job runs by job and outcome", ["job", "outcome"])
GC_SECONDS = Histogram(
    "berth_gc_run_seconds",
    "Duration of cleanup job runs, in seconds",
    ["job"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600),
)
GC_OBJECTS = Counter("berth_gc_objects_freed_total", "Objects removed by cleanup jobs", ["job"])
GC_BYTES = Counter("berth_gc_bytes_freed_total", "Bytes freed in storage by cleanup jobs", ["job"])
GC_LAST_SUCCESS = Gauge(
    "berth_gc_last_success_timestamp_seconds",
    "Unix time of the last successful run of each cleanup job",
    ["job"],
    multiprocess_mode="max",
)
TOKEN_REQUESTS = Counter(
    "berth_auth_token_requests_total",
    "Token endpoint requests by grant (basic, anonymous, password, refresh_token) and outcome"
    " (issued, denied, rate_limited, invalid, error)",
    ["grant", "outcome"],
)
POOL_CONNECTIONS = Gauge(
    "berth_db_pool_connections",
    "PostgreSQL pool connections of this process by state (in_use, idle)",
    ["state"],
    multiprocess_mode="livesum",
)
POOL_MAX = Gauge(
    "berth_db_pool_max_connections",
    "The most connections the pool of this process may open",
    multiprocess_mode="livesum",
)
UPLOAD_SESSIONS = Gauge(
    "berth_upload_sessions_open",
    "Upload sessions started and not yet completed, cancelled or expired (all replicas)",
    multiprocess_mode="livemax",
)
TLS_EXPIRY = Gauge(
    "berth_tls_certificate_expiry_timestamp_seconds",
    "notAfter of a TLS certificate Berth serves or watches (metrics.tls_certificates), Unix time",
    ["certificate"],
    multiprocess_mode="livemin",
)
FEED_BYTES_RECEIVED = Counter(
    "berth_feed_bytes_received_total",
    "Request body bytes received on /v2/ by feed (metrics.feed_labels; others are 'other')",
    ["service", "feed"],
)
FEED_BYTES_SENT = Counter(
    "berth_feed_bytes_sent_total",
    "Response body bytes sent on /v2/ by feed (metrics.feed_labels; others are 'other')",
    ["service", "feed"],
)


def record_gc_run(job: str, seconds: float, objects: int, freed_bytes: int, outcome: Outcome) -> None:
    """Record one run of cleanup job ``job`` (``gc``, ``upload_purge``, …).

    ``seconds``: its duration; ``objects``: blobs, files or sessions it removed;
    ``freed_bytes``: storage bytes freed; ``outcome``: ``success`` or ``failure`` (it raised).
    """
    GC_RUNS.labels(job, outcome).inc()
    GC_SECONDS.labels(job).observe(seconds)
    if objects:
        GC_OBJECTS.labels(job).inc(objects)
    if freed_bytes:
        GC_BYTES.labels(job).inc(freed_bytes)
    if outcome == "success":
        GC_LAST_SUCCESS.labels(job).set(time.time())


def gc_job(
    job: str, freed: Callable[[Any], tuple[int, int]]
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """Decorate a cleanup coroutine so each call is recorded with ``record_gc_run``.

    ``freed(result)`` gives ``(objects, bytes)`` from its result. An exception is a ``failure``
    with nothing freed (and propagates); cancellation is not recorded.
    """

    def decorate(run: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @functools.wraps(run)
        async def recorded(*args: P.args, **kwargs: P.kwargs) -> R:
            started = time.perf_counter()
            try:
                result = await run(*args, **kwargs)
            except Exception:
                record_gc_run(job, time.perf_counter() - started, 0, 0, "failure")
                raise
            objects, freed_bytes = freed(result)
            record_gc_run(job, time.perf_counter() - started, objects, freed_bytes, "success")
            return result

        return recorded

    return decorate


def record_token_request(grant: str, outcome: str) -> None:
    """Count one ``/token`` request: ``grant`` (basic, anonymous, password, refresh_token,
    other) and ``outcome`` (issued, denied, rate_limited, invalid, error)."""
    TOKEN_REQUESTS.labels(grant, outcome).inc()
