"""Prometheus metrics of connectors (``berth_connector_*``), following ``berth_common.telemetry``.

Labels stay bounded: ``kind`` is ``manifest``, ``blob`` or ``token``; ``upstream`` is a
connector's registry (``scheme://host:port``, configured by an administrator); ``outcome`` an
HTTP status or one of a few error names.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

UPSTREAM_REQUESTS = Counter(
    "berth_connector_upstream_requests_total",
    "Requests sent to upstream registries, by outcome (HTTP status, or timeout/unreachable)",
    ["kind", "method", "upstream", "outcome"],
)
FETCHES = Counter(
    "berth_connector_fetches_total",
    "Objects fetched from upstream registries, by result (stored, passed through uncached,"
    " digest_mismatch, failed)",
    ["kind", "result"],
)
FETCHED_BYTES = Counter(
    "berth_connector_fetched_bytes_total", "Blob bytes received from upstream registries", []
)
FETCH_SECONDS = Histogram(
    "berth_connector_fetch_duration_seconds",
    "Time of one upstream fetch, from the request to the stored object",
    ["kind"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800),
)
STALE_SERVED = Counter(
    "berth_connector_stale_served_total",
    "Cached objects served because no upstream could revalidate them (unreachable, timeout, 429, 5xx)",
    ["kind"],
)
FOLLOWERS = Counter(
    "berth_connector_fetch_waits_total",
    "Pulls that waited for another request's (or process's) fetch of the same object",
    ["kind"],
)
REVALIDATIONS = Counter(
    "berth_connector_revalidations_total",
    "Tags revalidated upstream after their TTL, by result (unchanged, moved, failed)",
    ["result"],
)
