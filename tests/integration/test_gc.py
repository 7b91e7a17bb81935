"""Online garbage collection: unreferenced blobs go (as events), referenced ones stay."""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from berth_gc.domain.collect import collect_garbage
from tests.support.berth_app import BerthApp, berth_app
from tests.support.locks import wait_until_blocked

pytestmark = pytest.mark.integration
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
LATER = datetime.now(UTC) + timedelta(days=1)


async def _blob(berth: BerthApp, repo: str, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    r = await berth.client.post(f"/v2/{repo}/blobs/uploads/?digest={digest}", content=data)
    assert r.status_code == 201, r.text
    return digest


async def _image(berth: BerthApp, repo: str, tag: str, layer: bytes) -> tuple[str, str, str]:
    config = json.dumps({"architecture": "amd64", "os": "linux", "tag": tag}).encode()
    cdigest, ldigest = await _blob(berth, repo, config), await _blob(berth, repo, layer)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": cdigest,
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": ldigest,
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    r = await berth.client.put(
        f"/v2/{repo}/manifests/{tag}", content=manifest, headers={"Content-Type": OCI_MANIFEST}
    )
    assert r.status_code == 201, r.text
    return r.headers["docker-content-digest"], cdigest, ldigest


async def commit_session_data(berth: BerthApp, upload_id: str) -> str:
    """What the closing PUT's commit does just before it moves the bytes into place, and so
    where a crash between the move and the commit's transaction starts: the session's recorded
    bytes become the object at its data path (``committed_data``). Returns that path in the
    session's store."""
    from berth_common.storage import Location, WriterState

    row = await berth.app.state.resources.pool.fetchrow(
        "SELECT u.store, s.size, s.writer, s.generation FROM blob.upload_state s"
        " JOIN blob.uploads u USING (id) WHERE s.id = $1",
        upload_id,
    )
    data = json.loads(row["writer"]) if isinstance(row["writer"], str) else row["writer"]
    location = Location.parse(row["store"])
    path = location.upload_data(upload_id, row["generation"])
    writer = await berth.stores.driver(location).writer(path, WriterState(row["size"], data or {}))
    await writer.commit()
    return path


async def _collect(berth: BerthApp, now: datetime = LATER):  # type: ignore[no-untyped-def]
    return await collect_garbage(berth.app.state.resources.store, berth.stores, timedelta(hours=1), now=now)


async def test_deleted_image_is_collected_and_shared_layers_stay() -> None:
    async with berth_app(with_bus=False) as berth:
        await berth.create_feed("gc")
        shared, own = os.urandom(4096), os.urandom(8192)
        gone, _, own_digest = await _image(berth, "gc/a", "old", own)
        _, _, shared_a = await _image(berth, "gc/a", "keep", shared)
        _, _, shared_b = await _image(berth, "gc/b", "keep", shared)
        assert shared_a == shared_b
        assert (await berth.client.delete(f"/v2/gc/a/manifests/{gone}")).status_code == 202

        early = await _collect(berth, now=datetime.now(UTC))
        assert (early.unlinked, early.deleted) == (0, 0), "nothing is collected inside the grace period"

        result = await _collect(berth)
        assert result.unlinked == 2  # the deleted image's config and layer, in gc/a
        assert result.deleted == 2 and result.bytes_freed >= 8192
        assert (await berth.client.head(f"/v2/gc/a/blobs/{own_digest}")).status_code == 404
        for repo in ("gc/a", "gc/b"):
            r = await berth.client.head(f"/v2/{repo}/blobs/{shared_a}")
            assert r.status_code == 200
            assert (await berth.client.get(f"/v2/{repo}/manifests/keep")).status_code == 200
        storage = berth.storage
        assert await storage.stat(f"blobs/sha256/{own_digest[7:9]}/{own_digest[7:]}") is None
        pool = berth.app.state.resources.pool
        events = await pool.fetch(
            "SELECT type, metadata->>'actor' AS actor FROM eventstore.events"
            " WHERE type IN ('blob.unlinked', 'blob.deleted')"
        )
        assert sorted(e["type"] for e in events) == ["blob.deleted"] * 2 + ["blob.unlinked"] * 2
        assert {e["actor"] for e in events} == {"system:gc"}
        again = await _collect(berth)
        assert (again.unlinked, again.deleted) == (0, 0)


async def test_content_pushed_again_after_collection_is_served() -> None:
    async with berth_app(with_bus=False) as berth:
        await berth.create_feed("gc2")
        layer = os.urandom(2048)
        digest = await _blob(berth, "gc2/x", layer)
        assert (await berth.client.delete(f"/v2/gc2/x/blobs/{digest}")).status_code == 202
        assert (await _collect(berth)).deleted == 1
        assert await _blob(berth, "gc2/x", layer) == digest
        got = await berth.client.get(f"/v2/gc2/x/blobs/{digest}")
        assert got.status_code == 200 and got.content == layer


async def test_upload_commit_waits_for_the_blob_lock_held_by_gc() -> None:
    """The commit takes the per-blob lock GC holds while deleting, so they never interleave."""
    import asyncio

    from berth_common.db.locks import blob_lock_key

    async with berth_app(with_bus=False) as berth:
        await berth.create_feed("gclock")
        data = os.urandom(1024)
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        pool = berth.app.state.resources.pool
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", blob_lock_key("default", digest))
            push = asyncio.create_task(_blob(berth, "gclock/x", data))
            key = blob_lock_key("default", digest)
            assert await wait_until_blocked(pool, push, advisory_key=key) == "advisory"
            assert not push.done(), "the upload committed while GC held the blob's lock"
        assert await push == digest
        assert (await berth.client.get(f"/v2/gclock/x/blobs/{digest}")).content == data


async def test_resumed_commit_racing_gc_never_links_deleted_content(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A PUT after a crash between the move into place and the commit finds the content at its
    address; if GC deletes it before the commit takes the blob's lock, the commit must notice
    under the lock and refuse (BLOB_UPLOAD_INVALID) instead of linking missing content."""
    import berth_blob.domain.commit as uploads_module
    import berth_blob.domain.feeds as feeds_module

    async with berth_app(with_bus=False) as berth:
        await berth.create_feed("gcr")
        c, storage = berth.client, berth.storage
        data = os.urandom(4096)
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        assert (await c.post(f"/v2/gcr/x/blobs/uploads/?digest={digest}", content=data)).status_code == 201
        assert (await c.delete(f"/v2/gcr/x/blobs/{digest}")).status_code == 202  # content unlinked
        location = (await c.post("/v2/gcr/y/blobs/uploads/")).headers["location"]
        assert (await c.patch(location, content=data)).status_code == 202
        upload_id = location.rsplit("/", 1)[1]
        await storage.move(
            await commit_session_data(berth, upload_id),  # the crash: moved, not committed
            f"blobs/sha256/{digest[7:9]}/{digest[7:]}",
        )
        real, collected = feeds_module.require_feed, list[Any]()

        async def gc_first(conn: Any, repository: Any, **kw: Any) -> Any:
            if not collected:  # GC runs just before the commit takes the blob's lock
                collected.append(
                    await collect_garbage(
                        berth.app.state.resources.store,
                        berth.stores,
                        timedelta(hours=1),
                        now=datetime.now(UTC) + timedelta(days=1),
                    )
                )
            return await real(conn, repository, **kw)

        monkeypatch.setattr(uploads_module, "require_feed", gc_first)
        r = await c.put(location, params={"digest": digest})
        assert collected and collected[0].deleted == 1
        assert r.status_code == 400 and r.json()["errors"][0]["code"] == "BLOB_UPLOAD_INVALID"
        assert (await c.get(f"/v2/gcr/y/blobs/{digest}")).status_code == 404
        assert (await c.get(location)).status_code == 404  # the session is gone
