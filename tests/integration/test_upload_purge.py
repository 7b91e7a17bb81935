"""Cleanup purges idle upload sessions (events, rows and bytes) and leaves active ones alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from berth_gc.domain.purge import purge_expired_uploads
from tests.support.berth_app import berth_app

pytestmark = pytest.mark.integration


async def test_purge_expires_only_idle_sessions() -> None:
    async with berth_app(with_bus=False) as berth:
        await berth.create_feed("purge")
        c = berth.client
        old = (await c.post("/v2/purge/img/blobs/uploads/")).headers["location"]
        assert (await c.patch(old, content=b"x" * 1000)).status_code == 202
        fresh = (await c.post("/v2/purge/img/blobs/uploads/")).headers["location"]
        store, storage = berth.app.state.resources.store, berth.storage
        old_id = old.rsplit("/", 1)[1]
        await store.pool.execute(
            "UPDATE blob.uploads SET updated_at = $2 WHERE id = $1",
            old_id,
            datetime.now(UTC) - timedelta(days=2),
        )
        result = await purge_expired_uploads(store, berth.stores, timedelta(days=1))
        assert (result.expired, result.bytes_freed) == (1, 1000)
        assert (await c.get(old)).status_code == 404
        assert (await c.patch(old, content=b"y")).status_code == 404
        assert (await c.get(fresh)).status_code == 204
        types = [e.type for e in await store.read_stream(f"upload:{old_id}")]
        assert types == ["upload.started", "upload.chunk_received", "upload.expired"]
        leftovers = [p async for p in storage.list(f"uploads/{old_id}")]
        assert leftovers == []
        again = await purge_expired_uploads(store, berth.stores, timedelta(days=1))
        assert again.expired == 0


async def test_completed_uploads_leave_no_session_data() -> None:
    """A commit moves the data to its content address (over an existing copy of a duplicate,
    same bytes) and the emptied session folder goes with it; the empty blob has no data."""
    import hashlib

    async with berth_app(with_bus=False) as berth:
        await berth.create_feed("done")
        c, storage = berth.client, berth.storage
        data = b"z" * 5000
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        empty = "sha256:" + hashlib.sha256(b"").hexdigest()
        for repo in ("done/a", "done/b"):  # the second one is a duplicate in the feed's store
            location = (await c.post(f"/v2/{repo}/blobs/uploads/")).headers["location"]
            assert (await c.patch(location, content=data)).status_code == 202
            assert (await c.put(location, params={"digest": digest})).status_code == 201
        location = (await c.post("/v2/done/a/blobs/uploads/")).headers["location"]
        assert (await c.put(location, params={"digest": empty})).status_code == 201
        assert [p async for p in storage.list("uploads")] == []
        blobs = [p async for p in storage.list("blobs")]
        assert len(blobs) == 2
        for repo in ("done/a", "done/b"):
            assert (await c.get(f"/v2/{repo}/blobs/{digest}")).content == data
        assert (await c.get(f"/v2/done/a/blobs/{empty}")).content == b""
