"""The connectors admin API: order, validation, Admin only, credentials encrypted and never shown
(docs/SECURITY.md, "Connector credentials"), connectors going with their feed, and rebuilt
projections equal to the live ones with connectors and cached content."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
from cryptography.fernet import Fernet

from berth.ops_cli import rebuild_all
from tests.integration.auth_world import api, client
from tests.integration.connector_world import KEY, berth_with_key, connect, events, fresh, query, seed
from tests.integration.test_rebuild import gc_caught_up, snapshot
from tests.spec.helpers import digest_of, get_manifest
from tests.support.berth_app import BerthApp, berth_app
from tests.support.upstream import Distribution, distribution

pytestmark = pytest.mark.integration
SECRET = "s3cr3t-upstream-pa55"


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Distribution]:
    with distribution(tmp_path_factory.mktemp("up")) as running:
        yield running


@pytest.fixture(scope="module")
async def berth() -> AsyncIterator[BerthApp]:
    async with berth_with_key() as running:
        yield running


async def test_connectors_are_listed_in_order_and_never_show_the_password(berth: BerthApp) -> None:
    feed = fresh()
    first = await connect(
        berth, feed, "https://docker.io", namespace="library", username="bot", password=SECRET
    )
    second = await connect(berth, feed, "http://127.0.0.1:9/team/", tag_ttl_seconds=60, cache=False)
    assert first["url"] == "https://registry-1.docker.io" and first["has_password"] is True
    assert second["url"] == "http://127.0.0.1:9/team" and second["has_password"] is False
    listing = await berth.client.get(f"/api/feeds/{feed}/connectors")
    assert [c["id"] for c in listing.json()] == [first["id"], second["id"]]
    assert [c["position"] for c in listing.json()] == [1, 2]
    assert SECRET not in listing.text and "password" not in listing.json()[0]
    [added] = [
        e for e in await events(berth, "connector.added") if e["payload"]["connector_id"] == first["id"]
    ]
    token = added["payload"]["password_encrypted"]
    assert Fernet(KEY.encode()).decrypt(token.encode()).decode() == SECRET
    assert added["stream"] == f"feed:{feed}"
    clear = await query(berth, "SELECT 1 FROM eventstore.events WHERE payload::text LIKE $1", f"%{SECRET}%")
    assert clear == []
    stored = await query(
        berth, "SELECT password_encrypted FROM api.feed_connectors WHERE id = $1::uuid", first["id"]
    )
    assert stored[0]["password_encrypted"] == token
    r = await berth.client.delete(f"/api/feeds/{feed}/connectors/{first['id']}")
    assert r.status_code == 204
    third = await connect(berth, feed, "http://127.0.0.1:9/other")
    listed = (await berth.client.get(f"/api/feeds/{feed}/connectors")).json()
    assert [(c["id"], c["position"]) for c in listed] == [(second["id"], 2), (third["id"], 3)]
    removed = [e["payload"] for e in await events(berth, "connector.removed")]
    assert {"feed": feed, "connector_id": first["id"]} in removed


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"url": "ftp://example.org"}, 400, "BAD_REQUEST"),
        ({"url": "https://user:pw@example.org"}, 400, "BAD_REQUEST"),
        ({"url": "https://example.org/Bad_Prefix"}, 400, "BAD_REQUEST"),
        ({"url": "https://example.org", "namespace": "Not/Valid"}, 400, "BAD_REQUEST"),
        ({"url": "https://example.org", "password": "pw"}, 400, "BAD_REQUEST"),
        ({"url": "https://example.org", "tag_ttl_seconds": -1}, 400, "BAD_REQUEST"),
    ],
)
async def test_bad_connectors_are_refused(
    berth: BerthApp, body: dict[str, object], status: int, code: str
) -> None:
    feed = fresh()
    await berth.create_feed(feed)
    r = await berth.client.post(f"/api/feeds/{feed}/connectors", json=body)
    assert r.status_code == status, r.text
    assert r.json()["errors"][0]["code"] == code
    assert (await berth.client.get(f"/api/feeds/{feed}/connectors")).json() == []


async def test_unknown_feed_and_connector(berth: BerthApp) -> None:
    r = await berth.client.post("/api/feeds/nosuchfeed/connectors", json={"url": "https://example.org"})
    assert r.status_code == 404 and r.json()["errors"][0]["code"] == "NAME_UNKNOWN"
    feed = fresh()
    await berth.create_feed(feed)
    r = await berth.client.delete(f"/api/feeds/{feed}/connectors/00000000-0000-0000-0000-000000000000")
    assert r.status_code == 404 and r.json()["errors"][0]["code"] == "NOT_FOUND"


async def test_only_admins_manage_connectors(berth: BerthApp) -> None:
    feed, user = fresh(), fresh("u")
    await berth.create_feed(feed)
    await api(berth, "POST", "/api/users", {"name": user, "password": "pw-connector-1"})
    await api(berth, "POST", "/api/privileges",
              {"principal_kind": "user", "principal": user, "privilege": "manage", "feed": feed})  # fmt: skip
    async with client(berth, user, "pw-connector-1") as c:
        assert (await c.get(f"/api/feeds/{feed}/connectors")).status_code in (401, 403)
        r = await c.post(f"/api/feeds/{feed}/connectors", json={"url": "https://example.org"})
        assert r.status_code in (401, 403)


async def test_a_password_needs_a_key() -> None:
    async with berth_app() as keyless:
        feed = fresh()
        await keyless.create_feed(feed)
        body = {"url": "https://example.org", "username": "u", "password": SECRET}
        r = await keyless.client.post(f"/api/feeds/{feed}/connectors", json=body)
        assert r.status_code == 400 and "connectors.key" in r.text and SECRET not in r.text
        anonymous = await keyless.client.post(
            f"/api/feeds/{feed}/connectors", json={"url": "https://example.org"}
        )
        assert anonymous.status_code == 201


async def test_connectors_go_with_their_feed(berth: BerthApp) -> None:
    feed = fresh()
    await connect(berth, feed, "https://example.org")
    assert (await berth.client.delete(f"/api/feeds/{feed}")).status_code == 204
    await berth.create_feed(feed)
    assert (await berth.client.get(f"/api/feeds/{feed}/connectors")).json() == []


async def test_rebuilt_projections_equal_live_ones_with_connectors(upstream: Distribution) -> None:
    async with berth_with_key() as berth:
        feed, image = fresh(), fresh("app")
        pushed = await seed(upstream.url, image, "v1")
        gone = await connect(berth, feed, "https://example.org")
        await connect(berth, feed, upstream.url, username="bot", password=SECRET)
        assert (await berth.client.delete(f"/api/feeds/{feed}/connectors/{gone['id']}")).status_code == 204
        assert (await get_manifest(berth.client, f"{feed}/{image}", "v1")).status_code == 200
        blob = await berth.client.get(f"/v2/{feed}/{image}/blobs/{digest_of(pushed.layers[0])}")
        assert blob.status_code == 200
        conn = await asyncpg.connect(berth.settings.database_url)
        try:
            await gc_caught_up(conn, berth.settings.nats_stream)
            live = await snapshot(conn)
            assert live["api.feed_connectors"] and [r for r in live["blob.links"] if "example" not in str(r)]
            assert berth.settings.database_url is not None
            assert dict(await rebuild_all(berth.settings.database_url))
            await asyncio.sleep(0)
            assert await snapshot(conn) == live
        finally:
            await conn.close()
