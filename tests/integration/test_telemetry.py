"""Request metrics at /metrics, labelled by route template; trace context reaches events."""

from __future__ import annotations

import pytest

from tests.support.berth_app import berth_app

pytestmark = pytest.mark.integration
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


async def test_metrics_by_route_template_and_traceparent_in_events() -> None:
    async with berth_app(with_bus=False) as berth:
        await berth.create_feed("tele")
        r = await berth.client.get("/v2/tele/img/tags/list")
        assert r.status_code in (401, 404)
        metrics = (await berth.client.get("/metrics")).text
        assert 'route="/v2/{name:path}/tags/list"' in metrics
        assert "berth_http_request_duration_seconds_bucket" in metrics
        r = await berth.client.post("/api/feeds", json={"name": "traced"},
                                    headers={"traceparent": TRACEPARENT})
        assert r.status_code == 201, r.text
        meta = await berth.app.state.resources.pool.fetchval(
            "SELECT metadata FROM eventstore.events WHERE stream = 'feed:traced'")
        assert meta["traceparent"] == TRACEPARENT
