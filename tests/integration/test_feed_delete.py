"""Deleting a feed removes its blobs from every repository (as events) and stops its uploads;
a feed re-created under the same name starts empty and keeps what is pushed to it."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from datetime import timedelta

import httpx
import pytest

from tests.support.berth_app import BerthApp, berth_app

pytestmark = pytest.mark.integration
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


async def _push_blob(berth: BerthApp, repo: str, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    r = await berth.client.post(f"/v2/{repo}/blobs/uploads/?digest={digest}", content=data)
    assert r.status_code == 201, r.text
    return digest


async def _eventually(check, within: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.1)


async def test_feed_delete_unlinks_blobs_and_cancels_uploads() -> None:
    async with berth_app() as berth:
        await berth.create_feed("doomed")
        old = await _push_blob(berth, "doomed/img", os.urandom(1000))
        session = (await berth.client.post("/v2/doomed/img/blobs/uploads/")).headers["location"]
        assert (await berth.client.patch(session, content=b"abc")).status_code == 202
        assert (await berth.client.delete("/api/feeds/doomed")).status_code == 204
        pool = berth.app.state.resources.pool

        async def cleaned() -> bool:
            links = await pool.fetchval("SELECT count(*) FROM blob.links WHERE feed = 'doomed'")
            uploads = await pool.fetchval("SELECT count(*) FROM blob.uploads WHERE feed = 'doomed'")
            return bool(links == 0 and uploads == 0)

        await _eventually(cleaned)
        actors = await pool.fetch(
            "SELECT type FROM eventstore.events"
            " WHERE metadata->>'actor' = 'system:feed-deleted' ORDER BY position"
        )
        assert [a["type"] for a in actors] == ["blob.unlinked", "upload.cancelled"]

        await berth.create_feed("doomed")
        assert (await berth.client.head(f"/v2/doomed/img/blobs/{old}")).status_code == 404
        mount = await berth.client.post(f"/v2/doomed/other/blobs/uploads/?mount={old}&from=doomed/img")
        assert mount.status_code == 202, "nothing of the deleted feed may be mounted"
        fresh = await _push_blob(berth, "doomed/img", os.urandom(500))
        assert (await berth.client.head(f"/v2/doomed/img/blobs/{fresh}")).status_code == 200


async def test_upload_cannot_complete_into_a_deleted_feed() -> None:
    async with berth_app(with_bus=False) as berth:
        await berth.create_feed("gone")
        data = os.urandom(100)
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        session = (await berth.client.post("/v2/gone/img/blobs/uploads/")).headers["location"]
        assert (await berth.client.patch(session, content=data)).status_code == 202
        assert (await berth.client.delete("/api/feeds/gone")).status_code == 204
        put = await berth.client.put(f"{session}?digest={digest}")
        assert put.status_code == 404
        assert put.json()["errors"][0]["code"] == "NAME_UNKNOWN"
        links = await berth.app.state.resources.pool.fetchval("SELECT count(*) FROM blob.links")
        assert links == 0


async def test_a_recreated_feed_sees_nothing_of_the_deleted_one_while_the_bus_lags() -> None:
    """Issue 9, item 3 (0ca8e27): with the bus stopped, a feed deleted and created again still
    served the old blob L (HEAD/GET 200), mounted it (201) and accepted a manifest reusing it
    without an upload (201); once the bus delivered the deletion, its reaction unlinked L and GC
    deleted it, so the accepted image had a missing layer. Feed incarnations: nothing of the
    deleted incarnation is visible, linkable or mountable at once, and the late reaction touches
    only the incarnation it ended."""
    from berth_blob.consumers.feeds import feed_deleted
    from berth_common.eventstore.store import context_of
    from tests.integration.test_gc_races import gc, later

    async with berth_app(with_bus=False) as berth:  # no bus: the deletion's reaction waits
        c, store = berth.client, berth.app.state.resources.store
        await berth.create_feed("fr")
        config, layer = b'{"architecture":"amd64","os":"linux"}', os.urandom(3000)
        config_digest, layer_digest = (
            await _push_blob(berth, "fr/img", config),
            await _push_blob(berth, "fr/img", layer),
        )
        manifest = _manifest(config_digest, len(config), layer_digest, len(layer))
        assert (await _put_manifest(berth, "fr/img", "v1", manifest)).status_code == 201
        assert (await c.delete("/api/feeds/fr")).status_code == 204
        await berth.create_feed("fr")

        assert (await c.head(f"/v2/fr/img/blobs/{layer_digest}")).status_code == 404
        assert (await c.get(f"/v2/fr/img/blobs/{layer_digest}")).status_code == 404
        mount = await c.post(f"/v2/fr/other/blobs/uploads/?mount={layer_digest}&from=fr/img")
        assert mount.status_code == 202, "a blob of the deleted incarnation was mounted"
        await _push_blob(berth, "fr/img", config)
        r = await _put_manifest(berth, "fr/img", "v2", manifest)
        assert r.status_code == 404 and r.json()["errors"][0]["code"] == "MANIFEST_BLOB_UNKNOWN", r.text

        assert await _push_blob(berth, "fr/img", layer) == layer_digest  # uploaded again: linked anew
        assert (await _put_manifest(berth, "fr/img", "v2", manifest)).status_code == 201

        [deleted] = await store.read_all(types=["feed.deleted"])  # the bus delivers, late
        async with berth.app.state.resources.pool.acquire() as conn, conn.transaction():
            await feed_deleted(berth.stores, conn, deleted.payload, context_of(deleted))
        await gc(berth, now=later(), grace=timedelta(0))
        for digest, data in ((layer_digest, layer), (config_digest, config)):
            got = await c.get(f"/v2/fr/img/blobs/{digest}")
            assert got.status_code == 200 and got.content == data
        assert (await c.get("/v2/fr/img/manifests/v2")).content == manifest


async def test_a_session_of_the_deleted_incarnation_has_no_status_in_the_new_one() -> None:
    """An upload session opened before the feed was deleted and created again answered its
    status GET (204 with its ``Range``) in the new incarnation — and a malformed chunk to it a
    416 with that ``Range`` — while PATCH/PUT/DELETE already said it does not exist. Its status
    must be 404 BLOB_UPLOAD_UNKNOWN too, at once, whatever the bus's lag."""
    async with berth_app(with_bus=False) as berth:  # no bus: the deletion's reaction waits
        c = berth.client
        await berth.create_feed("fs")
        session = (await c.post("/v2/fs/img/blobs/uploads/")).headers["location"]
        assert (await c.patch(session, content=b"abc")).status_code == 202
        assert (await c.get(session)).status_code == 204
        assert (await c.delete("/api/feeds/fs")).status_code == 204
        await berth.create_feed("fs")
        for r in (
            await c.get(session),
            await c.patch(session, content=b"d", headers={"Content-Range": "bytes=3-3"}),  # malformed
            await c.patch(session, content=b"d"),
        ):
            assert r.status_code == 404 and r.json()["errors"][0]["code"] == "BLOB_UPLOAD_UNKNOWN", r.text
            assert "range" not in r.headers


def _manifest(config: str, config_size: int, layer: str, layer_size: int) -> bytes:
    return json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config,
                   "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer,
                    "size": layer_size}],
    }).encode()  # fmt: skip


async def _put_manifest(berth: BerthApp, repo: str, tag: str, body: bytes) -> httpx.Response:
    headers = {"Content-Type": OCI_MANIFEST}
    return await berth.client.put(f"/v2/{repo}/manifests/{tag}", content=body, headers=headers)


async def test_the_feed_deletion_reaction_commits_with_the_consumers_transaction() -> None:
    """Issue 12, §3: the reaction opened its own transaction, so its events committed even when
    the consumer's (which records its position) rolled back — an at-least-once effect. Now it
    appends in the consumer's transaction: rolled back together, committed together."""
    from berth_blob.consumers.feeds import reactions
    from berth_common.eventstore.store import context_of

    async with berth_app(with_bus=False) as berth:
        await berth.create_feed("rb")
        await _push_blob(berth, "rb/img", os.urandom(100))
        assert (await berth.client.delete("/api/feeds/rb")).status_code == 204
        pool, store = berth.app.state.resources.pool, berth.app.state.resources.store
        [deleted] = await store.read_all(types=["feed.deleted"])
        react = reactions(berth.stores)

        async def unlinked() -> int:
            return int(
                await pool.fetchval("SELECT count(*) FROM eventstore.events WHERE type = 'blob.unlinked'")
            )

        async with pool.acquire() as conn:
            tx = conn.transaction()
            await tx.start()
            await react(conn, deleted.payload, context_of(deleted))
            await tx.rollback()  # the consumer failed to record its position
        assert await unlinked() == 0
        assert await pool.fetchval("SELECT count(*) FROM blob.links WHERE feed = 'rb'") == 1

        async with pool.acquire() as conn, conn.transaction():
            await react(conn, deleted.payload, context_of(deleted))
        assert await unlinked() == 1
        assert await pool.fetchval("SELECT count(*) FROM blob.links WHERE feed = 'rb'") == 0
