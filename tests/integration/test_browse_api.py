"""The browse API behind the web UI (issue 11): feeds, repositories, tags and tag history.

Real PostgreSQL and NATS (the in-process all-in-one app). Shows who sees what (View on the
feed; Admin all; anonymous the public feeds), the pagination contract (``n``/``last``/
``before``/``q``, ``Link``, ``X-Total-Count``), sizes from the blob service's links, pushed-by
from the event metadata, and the tag history read from the repository's event stream.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from berth_common.errors import PaginationNumberInvalid
from tests.integration.auth_world import (
    CONFIG,
    api,
    client,
    digest_of,
    manifest,
    put_manifest,
    raw_client,
    seed_repository,
)
from tests.support.berth_app import BerthApp, berth_app

pytestmark = pytest.mark.integration
PW = "pw-browse-1"


@pytest.fixture(scope="module")
async def berth() -> AsyncIterator[BerthApp]:
    async with berth_app() as running:
        await running.create_feed("dmc")
        await running.create_feed("pub", public=True)
        await running.create_feed("secret")
        await api(running, "POST", "/api/users", {"name": "alice", "password": PW})
        await api(
            running,
            "POST",
            "/api/privileges",
            {"principal_kind": "user", "principal": "alice", "privilege": "add", "feed": "dmc"},
        )
        for repo in ("dmc/app", "dmc/tools", "pub/base", "secret/x"):
            await seed_repository(running, repo)
        yield running


async def test_admin_lists_every_feed_with_counts_and_sizes(berth: BerthApp) -> None:
    r = await berth.client.get("/api/feeds")
    assert r.status_code == 200, r.text
    feeds = {f["name"]: f for f in r.json()}
    assert set(feeds) == {"dmc", "pub", "secret"}
    assert feeds["dmc"]["repositories"] == 2
    assert feeds["dmc"]["size"] == len(CONFIG)  # one config blob, linked twice: counted once
    assert feeds["dmc"]["last_pushed"] is not None
    assert r.headers["x-total-count"] == "3"


async def test_a_viewer_sees_only_the_feeds_it_may_view(berth: BerthApp) -> None:
    async with client(berth, "alice", PW) as alice:
        listed = [f["name"] for f in (await alice.get("/api/feeds")).json()]
        assert listed == ["dmc", "pub"]
        assert (await alice.get("/api/feeds/dmc/repositories")).status_code == 200
        refused = await alice.get("/api/feeds/secret/repositories")
        assert refused.status_code == 401, refused.text
        assert (await alice.get("/api/repositories/secret/x/tags")).status_code == 401
        assert (await alice.get("/api/repositories/secret/x/history")).status_code == 401
        # not knowing a feed looks the same as not being allowed to see it
        assert (await alice.get("/api/feeds/nosuch/repositories")).status_code == 401


async def test_anonymous_sees_public_feeds_only(berth: BerthApp) -> None:
    async with client(berth) as anonymous:
        assert [f["name"] for f in (await anonymous.get("/api/feeds")).json()] == ["pub"]
        assert (await anonymous.get("/api/repositories/pub/base/tags")).status_code == 200
        assert (await anonymous.get("/api/feeds/dmc/repositories")).status_code == 401
    async with raw_client(berth) as bare:
        r = await bare.get("/api/feeds/pub/repositories")
        assert r.status_code == 401
        assert 'scope="registry:catalog:*"' in r.headers["www-authenticate"]


async def test_repositories_paginate_by_key_and_search(berth: BerthApp) -> None:
    await berth.create_feed("many")
    for i in range(7):
        await seed_repository(berth, f"many/img{i:02d}")
    first = await berth.client.get("/api/feeds/many/repositories", params={"n": 3})
    assert [r["image"] for r in first.json()] == ["img00", "img01", "img02"]
    assert first.headers["x-total-count"] == "7"
    assert first.links["next"]["url"].endswith("last=many%2Fimg02")
    assert "prev" not in first.links
    second = await berth.client.get(first.links["next"]["url"])
    assert [r["image"] for r in second.json()] == ["img03", "img04", "img05"]
    back = await berth.client.get(second.links["prev"]["url"])
    assert [r["image"] for r in back.json()] == ["img00", "img01", "img02"]
    found = await berth.client.get("/api/feeds/many/repositories", params={"q": "G0"})
    assert found.headers["x-total-count"] == "7"
    only = await berth.client.get("/api/feeds/many/repositories", params={"q": "img05"})
    assert [r["name"] for r in only.json()] == ["many/img05"]
    row = only.json()[0]
    assert row["tags"] == 1 and row["size"] == len(CONFIG) and row["last_pushed"]
    bad = await berth.client.get("/api/feeds/many/repositories", params={"n": "0"})
    assert bad.status_code == 400 and bad.json()["errors"][0]["code"] == PaginationNumberInvalid.code


async def test_tags_show_pushed_by_size_and_platforms(berth: BerthApp) -> None:
    async with client(berth, "alice", PW) as alice:
        r = await put_manifest(alice, "dmc/app", "v1", manifest("alice-v1"))
        assert r.status_code == 201, r.text
        tags = {t["tag"]: t for t in (await alice.get("/api/repositories/dmc/app/tags")).json()}
    assert tags["v1"]["pushed_by"] == "alice"
    assert tags["base"]["pushed_by"] == "admin"
    assert tags["v1"]["size"] == len(CONFIG) and tags["v1"]["platforms"] == []
    assert tags["v1"]["digest"] == digest_of(manifest("alice-v1"))
    index = _index(digest_of(manifest("alice-v1")))
    r = await berth.client.put(
        "/v2/dmc/app/manifests/multi",
        content=index,
        headers={"Content-Type": "application/vnd.oci.image.index.v1+json"},
    )
    assert r.status_code == 201, r.text
    multi = (await berth.client.get("/api/repositories/dmc/app/tags", params={"q": "multi"})).json()[0]
    assert multi["platforms"] == ["linux/arm64/v8"] and multi["size"] == len(CONFIG)
    by_digest = await berth.client.get(
        "/api/repositories/dmc/app/tags", params={"digest": digest_of(manifest("alice-v1"))}
    )
    assert [t["tag"] for t in by_digest.json()] == ["v1"]
    unknown = await berth.client.get("/api/repositories/dmc/nothing/tags")
    assert unknown.status_code == 404 and unknown.json()["errors"][0]["code"] == "NAME_UNKNOWN"


async def test_tag_history_follows_a_tag_through_moves_and_deletion(berth: BerthApp) -> None:
    repo = "dmc/tools"
    first, second = manifest("A"), manifest("tools-2")
    async with client(berth, "alice", PW) as alice:
        assert (await put_manifest(alice, repo, "latest", first)).status_code == 201
    assert (await put_manifest(berth.client, repo, "latest", second)).status_code == 201
    assert (await berth.client.delete(f"/v2/{repo}/manifests/latest")).status_code == 202
    async with client(berth, "alice", PW) as alice:
        r = await alice.get(f"/api/repositories/{repo}/history", params={"tag": "latest"})
    assert r.status_code == 200, r.text
    got = [(e["type"], e["digest"], e["previous_digest"], e["actor"]) for e in r.json()]
    assert got == [
        ("tag.deleted", digest_of(second), None, "admin"),
        ("tag.updated", digest_of(second), digest_of(first), "admin"),
        ("tag.updated", digest_of(first), None, "alice"),
    ]
    everything = (await berth.client.get(f"/api/repositories/{repo}/history")).json()
    assert {e["tag"] for e in everything} == {"latest", "base"}


async def test_history_pages_and_manifest_deletions(berth: BerthApp) -> None:
    repo = "dmc/moves"
    await seed_repository(berth, repo)
    bodies = [manifest(f"moves-{i}") for i in range(5)]
    for body in bodies:
        assert (await put_manifest(berth.client, repo, "rolling", body)).status_code == 201
    digest = digest_of(bodies[-1])
    assert (await berth.client.delete(f"/v2/{repo}/manifests/{digest}")).status_code == 202
    page = await berth.client.get(f"/api/repositories/{repo}/history", params={"n": 2})
    assert [e["type"] for e in page.json()] == ["manifest.deleted", "tag.deleted"]
    assert page.json()[0]["tag"] is None and page.json()[0]["digest"] == digest
    rest = await berth.client.get(page.links["next"]["url"])
    assert [e["digest"] for e in rest.json()] == [digest, digest_of(bodies[3])]
    async with raw_client(berth) as bare:
        assert (await bare.get("/api/repositories/dmc/never/history")).status_code == 401
    never = await berth.client.get("/api/repositories/dmc/never/history")
    assert never.status_code == 404


def _index(child: str) -> bytes:
    import json

    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": child,
                    "size": len(manifest("alice-v1")),
                    "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"},
                }
            ],
        }
    ).encode()
