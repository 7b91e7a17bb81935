"""HTTP request metrics and the access log (``RequestMetrics``).

Every HTTP request is measured into the histogram
``berth_http_request_duration_seconds{service, method, route, status}``, labelled by the route
*template* (``/v2/{name:path}/manifests/{reference}``) so cardinality stays bounded, and its
response bytes into ``berth_http_response_bytes_total{service, route}``. Requests under
``/v2/<feed>/…`` also count their body bytes in and out per feed
(``berth_feed_bytes_received_total`` / ``_sent_total``), labelled only for the feeds listed in
``metrics.feed_labels`` (others are ``other``), so cardinality stays what the operator chose.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import structlog
from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from berth_common.telemetry.metrics import FEED_BYTES_RECEIVED, FEED_BYTES_SENT

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
OTHER = "other"


class FeedLabels:
    """Which feed label a ``/v2/`` path gets: its feed if listed, else ``other``; ``None`` when
    per-feed byte counting is off or the path names no repository (``/v2/``, ``/v2/_catalog``)."""

    def __init__(self, feeds: Iterable[str], enabled: bool = True) -> None:
        self.feeds, self.enabled = frozenset(feeds), enabled

    def of(self, path: str) -> str | None:
        """``/v2/dmc/ubuntu/blobs/…`` → ``dmc`` (listed) or ``other``; else ``None``."""
        if not self.enabled or not path.startswith("/v2/"):
            return None
        feed, sep, _ = path[4:].partition("/")
        if not sep or not feed:
            return None
        return feed if feed in self.feeds else OTHER


class RequestMetrics:
    """Pure ASGI middleware measuring every request (passes zero-copy messages through).

    With ``access_log`` it also writes one ``http.request`` line per request (method, path,
    status, duration in ms, bytes sent, client address) to the ``berth.access`` logger.
    ``feeds`` labels the per-feed byte counters (default: every feed is ``other``).
    """

    def __init__(
        self, app: ASGIApp, service: str, access_log: bool = True, feeds: FeedLabels | None = None
    ) -> None:
        self.app, self.service, self.access_log = app, service, access_log
        self.feeds = feeds or FeedLabels(())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status, sent, received = "500", 0, 0
        feed = self.feeds.of(scope["path"])

        async def measured_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            return message

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
            await self.app(scope, measured_receive if feed else receive, measured_send)
        finally:
            if feed:
                self._count_feed_bytes(feed, received, sent)
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

    def _count_feed_bytes(self, feed: str, received: int, sent: int) -> None:
        if received:
            FEED_BYTES_RECEIVED.labels(self.service, feed).inc(received)
        if sent:
            FEED_BYTES_SENT.labels(self.service, feed).inc(sent)
