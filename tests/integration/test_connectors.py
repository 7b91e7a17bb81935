"""Pull-through through a feed's connector, against a real Distribution 2.8 upstream
(docs/ARCHITECTURE.md, "Connectors"): what is recorded, what is served, what the upstream sees.

Berth runs in process; the upstream's access log counts its requests. Each test uses its own
feed and repository names, so the counts are per test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from berth_gc.domain.collect import collect_garbage
from tests.integration.connector_world import (
    berth_with_key,
    connect,
    events,
    fresh,
    query,
    seed,
    stored_blob,
)
from tests.spec.helpers import digest_of, get_manifest, push_image
from tests.support.berth_app import BerthApp
from tests.support.upstream import Distribution, distribution

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Distribution]:
    with distribution(tmp_path_factory.mktemp("up")) as running:
        yield running


@pytest.fixture(scope="module")
async def berth() -> AsyncIterator[BerthApp]:
    async with berth_with_key() as running:
        yield running


def blob_path(repo: str, digest: str) -> str:
    return rf"/v2/{repo}/blobs/{digest}"


async def test_a_pull_fetches_records_and_then_serves_locally(
    berth: BerthApp, upstream: Distribution
) -> None:
    feed, image = fresh(), fresh("app")
    pushed = await seed(upstream.url, f"library/{image}")
    connector = await connect(berth, feed, upstream.url, namespace="library")
    repo = f"{feed}/{image}"

    r = await get_manifest(berth.client, repo, "latest")
    assert r.status_code == 200, r.text
    assert r.content == pushed.body and r.headers["docker-content-digest"] == pushed.digest
    for blob in (pushed.config, *pushed.layers):
        for _ in range(2):
            got = await berth.client.get(f"/v2/{repo}/blobs/{digest_of(blob)}")
            assert got.status_code == 200 and got.content == blob
    again = await get_manifest(berth.client, repo, "latest")
    assert again.content == pushed.body

    origin = f"{upstream.url}/library/{image}"
    assert upstream.count("GET", f"/v2/library/{image}/manifests/latest") == 1
    assert upstream.count("HEAD", f"/v2/library/{image}/manifests/.*") == 0  # within the TTL
    for blob in (pushed.config, *pushed.layers):
        assert upstream.count("GET", blob_path(f"library/{image}", digest_of(blob))) == 1
    cached = await events(berth, "manifest.cached", "blob.cached", "tag.updated")
    mine = [e for e in cached if e["payload"]["repository"] == repo]
    assert [e["type"] for e in mine] == ["manifest.cached", "tag.updated", "blob.cached", "blob.cached"]
    assert {e["payload"]["origin"] for e in mine} == {origin}
    assert mine[0]["payload"]["connector_id"] == connector["id"]
    assert mine[0]["stream"] == f"repository:{repo}"
    tags = (await berth.client.get(f"/api/repositories/{repo}/tags")).json()
    assert [(t["tag"], t["digest"], t["origin"]) for t in tags] == [("latest", pushed.digest, origin)]
    assert stored_blob(berth, feed, digest_of(pushed.layers[0])).read_bytes() == pushed.layers[0]


async def test_a_pull_by_digest_and_an_index_child(berth: BerthApp, upstream: Distribution) -> None:
    from tests.spec.helpers import index_manifest, push_manifest, to_bytes

    feed, image = fresh(), fresh("multi")
    async with httpx.AsyncClient(base_url=upstream.url) as uc:
        children = [await push_image(uc, f"team/{image}") for _ in range(2)]
        platforms = [{"architecture": a, "os": "linux"} for a in ("amd64", "arm64")]
        index = to_bytes(
            index_manifest([c.descriptor(platform=p) for c, p in zip(children, platforms, strict=True)])
        )
        put = await push_manifest(uc, f"team/{image}", "v1", index, "application/vnd.oci.image.index.v1+json")
        assert put.status_code == 201, put.text
    await connect(berth, feed, f"{upstream.url}/team")
    repo = f"{feed}/{image}"
    r = await get_manifest(berth.client, repo, "v1")
    assert r.status_code == 200 and r.content == index
    child = children[1]
    r = await get_manifest(berth.client, repo, child.digest)
    assert r.status_code == 200 and r.content == child.body
    layer = await berth.client.get(f"/v2/{repo}/blobs/{digest_of(child.layers[0])}")
    assert layer.content == child.layers[0]
    assert upstream.count("GET", f"/v2/team/{image}/manifests/{child.digest}") == 1
    assert upstream.count("GET", f"/v2/team/{image}/manifests/{children[0].digest}") == 0  # on demand


async def test_upstream_down_cached_pulls_work_and_uncached_fail_with_its_reason(
    berth: BerthApp, upstream: Distribution
) -> None:
    feed, image, other = fresh(), fresh("app"), fresh("other")
    pushed = await seed(upstream.url, f"{image}", "v1")
    await seed(upstream.url, f"{other}", "v1")
    await connect(berth, feed, upstream.url, tag_ttl_seconds=0)  # every pull by tag revalidates
    repo = f"{feed}/{image}"
    assert (await get_manifest(berth.client, repo, "v1")).status_code == 200
    layer = digest_of(pushed.layers[0])
    assert (await berth.client.get(f"/v2/{repo}/blobs/{layer}")).status_code == 200
    upstream.stop()
    try:
        r = await get_manifest(berth.client, repo, "v1")  # stale: the revalidation fails
        assert r.status_code == 200 and r.content == pushed.body
        assert (await berth.client.get(f"/v2/{repo}/blobs/{layer}")).content == pushed.layers[0]
        miss = await get_manifest(berth.client, f"{feed}/{other}", "v1")
        assert miss.status_code == 503, miss.text
        error = miss.json()["errors"][0]
        assert error["code"] == "UNAVAILABLE" and upstream.host in error["message"]
        assert any("unreachable" in reason for reason in error["detail"]["connectors"])
        blob_miss = await berth.client.get(f"/v2/{feed}/{other}/blobs/{digest_of(b'x')}")
        assert blob_miss.status_code == 503 and "unreachable" in blob_miss.text
    finally:
        upstream.start()
    gone = await get_manifest(berth.client, f"{feed}/{fresh('none')}", "v1")
    assert gone.status_code == 404, gone.text
    assert gone.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    assert "404" in gone.json()["errors"][0]["detail"]["connectors"][0]


async def test_a_tag_moved_upstream_is_seen_after_the_ttl(berth: BerthApp, upstream: Distribution) -> None:
    feed, image = fresh(), fresh("app")
    first = await seed(upstream.url, image, "stable")
    await connect(berth, feed, upstream.url, tag_ttl_seconds=600)
    repo = f"{feed}/{image}"
    assert (await get_manifest(berth.client, repo, "stable")).content == first.body
    second = await seed(upstream.url, image, "stable")  # the tag moves upstream
    within = await get_manifest(berth.client, repo, "stable")
    assert within.content == first.body  # still within the TTL: served, upstream not asked
    assert upstream.count("HEAD", f"/v2/{image}/manifests/stable") == 0
    await query(  # ten minutes pass
        berth,
        "UPDATE api.tag_checks SET checked_at = checked_at - interval '11 minutes' WHERE repository = $1",
        repo,
    )
    await query(
        berth,
        "UPDATE api.tags SET updated_at = updated_at - interval '11 minutes' WHERE repository = $1",
        repo,
    )
    after = await get_manifest(berth.client, repo, "stable")
    assert after.status_code == 200 and after.content == second.body
    assert upstream.count("HEAD", f"/v2/{image}/manifests/stable") == 1  # revalidated by a HEAD
    assert upstream.count("GET", f"/v2/{image}/manifests/stable") == 2
    moves = [e["payload"] for e in await events(berth, "tag.updated") if e["payload"]["repository"] == repo]
    assert [(m["digest"], m["previous_digest"]) for m in moves] == [
        (first.digest, None),
        (second.digest, first.digest),
    ]
    unchanged = await get_manifest(berth.client, repo, "stable")  # just confirmed: no request
    assert unchanged.content == second.body and upstream.count("HEAD", f"/v2/{image}/manifests/stable") == 1


async def test_a_range_get_of_an_uncached_blob(berth: BerthApp, upstream: Distribution) -> None:
    feed, image = fresh(), fresh("app")
    pushed = await seed(upstream.url, image)
    await connect(berth, feed, upstream.url)
    layer = pushed.layers[0]
    r = await berth.client.get(
        f"/v2/{feed}/{image}/blobs/{digest_of(layer)}", headers={"Range": "bytes=10-99"}
    )
    assert r.status_code == 206, r.text
    assert r.content == layer[10:100]
    assert r.headers["content-range"] == f"bytes 10-99/{len(layer)}"
    assert stored_blob(berth, feed, digest_of(layer)).read_bytes() == layer  # all of it stored
    whole = await berth.client.get(f"/v2/{feed}/{image}/blobs/{digest_of(layer)}")
    assert whole.content == layer
    assert upstream.count("GET", blob_path(image, digest_of(layer))) == 1


async def test_a_digest_mismatch_stores_nothing_and_cuts_the_stream(
    berth: BerthApp, upstream: Distribution
) -> None:
    feed, image = fresh(), fresh("bad")
    pushed = await seed(upstream.url, image)
    layer = digest_of(pushed.layers[0])
    upstream.corrupt_blob(layer)
    await connect(berth, feed, upstream.url)
    # The response is left incomplete: a real server then closes the connection (the e2e test
    # sees the client fail); httpx's in-process transport asserts on such a response instead.
    with pytest.raises(AssertionError):
        await berth.client.get(f"/v2/{feed}/{image}/blobs/{layer}")
    assert not stored_blob(berth, feed, layer).exists()
    assert not [e for e in await events(berth, "blob.cached") if e["payload"]["digest"] == layer]
    assert await query(berth, "SELECT 1 FROM blob.blobs WHERE digest = $1", layer) == []
    uploads = berth.settings.storage.root / "uploads"
    assert not uploads.exists() or not any(uploads.iterdir())  # the fetch's bytes are gone


async def test_no_cache_passes_content_through_without_recording_it(
    berth: BerthApp, upstream: Distribution
) -> None:
    feed, image = fresh(), fresh("app")
    pushed = await seed(upstream.url, image)
    await connect(berth, feed, upstream.url, cache=False)
    repo = f"{feed}/{image}"
    for _ in range(2):
        assert (await get_manifest(berth.client, repo, "latest")).content == pushed.body
        got = await berth.client.get(f"/v2/{repo}/blobs/{digest_of(pushed.layers[0])}")
        assert got.content == pushed.layers[0]
    assert upstream.count("GET", f"/v2/{image}/manifests/latest") == 2
    assert upstream.count("GET", blob_path(image, digest_of(pushed.layers[0]))) == 2
    recorded = await events(berth, "manifest.cached", "blob.cached", "tag.updated")
    assert not [e for e in recorded if e["payload"]["repository"] == repo]


async def test_local_content_wins_and_a_push_to_a_connected_feed_is_local(
    berth: BerthApp, upstream: Distribution
) -> None:
    feed, image = fresh(), fresh("app")
    await seed(upstream.url, image, "v1")
    await connect(berth, feed, upstream.url, tag_ttl_seconds=0)
    local = await push_image(berth.client, f"{feed}/{image}", "v1")
    r = await get_manifest(berth.client, f"{feed}/{image}", "v1")
    assert r.content == local.body
    assert upstream.count("GET", f"/v2/{image}/manifests/v1") == 0
    assert upstream.count("HEAD", f"/v2/{image}/manifests/v1") == 0


async def test_cached_content_obeys_gc(berth: BerthApp, upstream: Distribution) -> None:
    from datetime import UTC, datetime, timedelta

    feed, image = fresh(), fresh("app")
    pushed = await seed(upstream.url, image)
    await connect(berth, feed, upstream.url)
    repo = f"{feed}/{image}"
    assert (await get_manifest(berth.client, repo, "latest")).status_code == 200
    layer = digest_of(pushed.layers[0])
    assert (await berth.client.get(f"/v2/{repo}/blobs/{layer}")).status_code == 200
    store, storage = berth.app.state.resources.store, berth.stores
    await _until_referenced(berth, repo, layer)
    later = datetime.now(UTC) + timedelta(days=1)
    await collect_garbage(store, storage, timedelta(hours=1), now=later)
    assert stored_blob(berth, feed, layer).exists()  # referenced by the cached manifest
    assert (await berth.client.delete(f"/v2/{repo}/manifests/{pushed.digest}")).status_code == 202
    await _until_referenced(berth, repo, layer, present=False)
    await collect_garbage(store, storage, timedelta(hours=1), now=later)
    assert not stored_blob(berth, feed, layer).exists()


async def _until_referenced(berth: BerthApp, repo: str, blob: str, present: bool = True) -> None:
    """Wait until GC's references (fed from the bus) list ``blob`` for ``repo`` (or no longer)."""
    import asyncio

    for _ in range(300):
        rows = await query(
            berth, "SELECT 1 FROM gc.blob_references WHERE repository = $1 AND blob = $2", repo, blob
        )
        if bool(rows) == present:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"gc.blob_references never {'had' if present else 'lost'} {blob}")


async def test_heads_of_uncached_content(berth: BerthApp, upstream: Distribution) -> None:
    feed, image = fresh(), fresh("app")
    pushed = await seed(upstream.url, image)
    await connect(berth, feed, upstream.url)
    repo, layer = f"{feed}/{image}", digest_of(pushed.layers[0])
    head = await berth.client.head(f"/v2/{repo}/blobs/{layer}")  # never downloads
    assert head.status_code == 200 and head.headers["content-length"] == str(len(pushed.layers[0]))
    assert (
        upstream.count("HEAD", blob_path(image, layer)) == 1
        and upstream.count("GET", blob_path(image, layer)) == 0
    )
    assert not stored_blob(berth, feed, layer).exists()
    missing = await berth.client.head(f"/v2/{repo}/blobs/{digest_of(b'nothing')}")
    assert missing.status_code == 404
    manifest = await berth.client.head(
        f"/v2/{repo}/manifests/latest", headers={"Accept": pushed.media_type}
    )  # a HEAD miss fetches the manifest (its bytes are needed to store it)
    assert manifest.status_code == 200 and manifest.headers["docker-content-digest"] == pushed.digest
    assert manifest.headers["content-length"] == str(len(pushed.body))
    assert (await get_manifest(berth.client, repo, "latest")).content == pushed.body
    assert upstream.count("GET", f"/v2/{image}/manifests/latest") == 1


async def test_connector_metrics(berth: BerthApp, upstream: Distribution) -> None:
    feed, image = fresh(), fresh("app")
    pushed = await seed(upstream.url, image)
    await connect(berth, feed, upstream.url)
    assert (await berth.client.get(f"/v2/{feed}/{image}/blobs/{digest_of(pushed.config)}")).status_code == 200
    text = (await berth.client.get("/metrics")).text
    assert 'berth_connector_fetches_total{kind="blob",result="stored"}' in text
    assert (
        f'berth_connector_upstream_requests_total{{kind="blob",method="GET",outcome="200",upstream="{upstream.url}"}}'
        in text
    )


async def test_a_fetch_of_one_feed_life_is_not_recorded_in_the_next(
    berth: BerthApp, upstream: Distribution
) -> None:
    from berth_api.domain import cached
    from berth_blob.domain.cache import CacheTarget, adopt
    from berth_blob.domain.feeds import require_feed
    from berth_common.connectors.model import feed_connectors
    from berth_common.errors import NameUnknown
    from berth_common.events import Metadata
    from berth_common.oci.digest import Digest
    from berth_common.oci.reference import RepositoryName

    feed, image = fresh(), fresh("app")
    pushed = await seed(upstream.url, image)
    await connect(berth, feed, upstream.url)
    repo, layer = RepositoryName(feed, image), digest_of(pushed.layers[0])
    assert (await berth.client.get(f"/v2/{repo}/blobs/{layer}")).status_code == 200
    store, storage = berth.app.state.resources.store, berth.storage
    async with store.pool.acquire() as conn:
        old_feed = await require_feed(conn, repo)
    [old] = await feed_connectors(store.pool, feed)
    assert (await berth.client.delete(f"/api/feeds/{feed}")).status_code == 204
    await connect(berth, feed, upstream.url)  # the feed again, a new life
    [new] = await feed_connectors(store.pool, feed)
    async with store.pool.acquire() as conn:
        new_feed = await require_feed(conn, repo)
    assert old.incarnation and new.incarnation and old.incarnation != new.incarnation
    with pytest.raises(NameUnknown):
        await adopt(store, storage, CacheTarget(repo, old_feed, Digest.parse(layer), old), Metadata())
    with pytest.raises(NameUnknown):  # the connector read in the old life, the feed in the new
        await adopt(store, storage, CacheTarget(repo, new_feed, Digest.parse(layer), old), Metadata())
    fetched = cached.Fetched.verify(
        pushed.body, pushed.media_type, pushed.digest, "o", old.id, old.incarnation
    )
    leases = berth.app.state.api_pullthrough.leases
    lease = await leases.acquire(f"{repo}:latest")
    assert lease is not None
    with pytest.raises(NameUnknown):
        await cached.record(store, leases, lease, repo, fetched, "latest", Metadata())
    await leases.release(lease)
    linked = await adopt(store, storage, CacheTarget(repo, new_feed, Digest.parse(layer), new), Metadata())
    assert linked is not None and linked.size == len(pushed.layers[0])  # the store still holds it
