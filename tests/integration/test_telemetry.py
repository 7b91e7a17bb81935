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
        assert r.status_code == 404, r.text  # the admin may look; the repository does not exist
        metrics = (await berth.client.get("/metrics")).text
        assert 'route="/v2/{name:path}/tags/list"' in metrics
        assert "berth_http_request_duration_seconds_bucket" in metrics
        r = await berth.client.post(
            "/api/feeds", json={"name": "traced"}, headers={"traceparent": TRACEPARENT}
        )
        assert r.status_code == 201, r.text
        meta = await berth.app.state.resources.pool.fetchval(
            "SELECT metadata FROM eventstore.events WHERE stream = 'feed:traced'"
        )
        assert meta["traceparent"] == TRACEPARENT


async def test_hot_registry_routes_are_labelled_by_template() -> None:
    """The lean endpoints (``berth_common.http.endpoints``) are labelled like FastAPI routes."""
    import hashlib

    async with berth_app(with_bus=False) as berth:
        await berth.create_feed("tele")
        c = berth.client
        digest = "sha256:" + hashlib.sha256(b"abc").hexdigest()
        location = (await c.post("/v2/tele/img/blobs/uploads/")).headers["location"]
        assert (await c.patch(location, content=b"abc")).status_code == 202
        assert (await c.put(location, params={"digest": digest})).status_code == 201
        assert (await c.head(f"/v2/tele/img/blobs/{digest}")).status_code == 200
        assert (await c.get("/v2/tele/img/manifests/latest")).status_code == 404
        metrics = (await c.get("/metrics")).text
        for template in (
            "/v2/{name:path}/blobs/uploads/",
            "/v2/{name:path}/blobs/uploads/{upload_id}",
            "/v2/{name:path}/blobs/{digest}",
            "/v2/{name:path}/manifests/{reference}",
        ):
            assert f'route="{template}"' in metrics, template
        assert 'method="PATCH",route="unmatched"' not in metrics
