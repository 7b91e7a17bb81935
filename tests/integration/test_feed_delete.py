"""Deleting a feed removes its blobs from every repository (as events) and stops its uploads;
a feed re-created under the same name starts empty and keeps what is pushed to it."""

from __future__ import annotations

import asyncio
import hashlib
import os

import pytest

from tests.support.berth_app import BerthApp, berth_app

pytestmark = pytest.mark.integration


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
            return links == 0 and uploads == 0

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
