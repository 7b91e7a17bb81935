"""The key GC races on an S3 store (issue 15 §4; moto here, MinIO where containers run:
``tests/support/stores.py``): a manifest PUT in flight while GC runs (HEAD-then-manifest-PUT
never loses a blob), a cross-repository mount racing GC, a retried commit after GC deleted
the content it meant to keep, and an upload commit waiting for the blob lock GC holds.
Waits for locks are proven from ``pg_locks``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from berth_common.db.locks import blob_lock_key
from berth_common.settings import StorageSettings
from berth_gc.domain.collect import GcResult, collect_garbage
from tests.integration.test_gc import OCI_MANIFEST, _blob
from tests.integration.test_gc_races import later, sha
from tests.support.berth_app import BerthApp, berth_app
from tests.support.locks import wait_until_blocked
from tests.support.stores import S3Server

pytestmark = pytest.mark.integration


@contextlib.asynccontextmanager
async def on_s3(server: S3Server, *feeds: str) -> AsyncIterator[BerthApp]:
    """Berth in process whose ``feeds`` live on a fresh bucket of ``server`` (store ``s3``)."""
    store = StorageSettings(kind="s3", redirect=False, **server.options(server.new_bucket()))
    async with berth_app(with_bus=False, stores={"s3": store}) as berth:
        for feed in feeds:
            await berth.create_feed(feed, store="s3")
        yield berth


async def gc(berth: BerthApp) -> GcResult:
    return await collect_garbage(
        berth.app.state.resources.store, berth.stores, timedelta(hours=1), now=later()
    )


def _manifest(config: bytes, layer: bytes) -> bytes:
    return json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(config),
                   "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha(layer),
                    "size": len(layer)}],
    }).encode()  # fmt: skip


async def test_manifest_put_in_flight_keeps_its_blobs_on_s3(s3_server: S3Server) -> None:
    """The manifest PUT's share lock on the links it checked (held here by the test, as the PUT
    holds it until it commits) makes GC wait; the manifest committed meanwhile is seen, its
    blobs stay in the bucket and are served."""
    async with on_s3(s3_server, "hm") as berth:
        c, pool = berth.client, berth.app.state.resources.pool
        config, layer = b'{"architecture":"amd64","os":"linux"}', os.urandom(4096)
        for data in (config, layer):
            await _blob(berth, "hm/x", data)
            assert (await c.head(f"/v2/hm/x/blobs/{sha(data)}")).status_code == 200  # the HEAD
        async with pool.acquire() as held, held.transaction():
            await held.execute(
                "SELECT 1 FROM blob.links WHERE repository = 'hm/x' AND digest = ANY($1::text[]) FOR SHARE",
                [sha(config), sha(layer)],
            )
            run = asyncio.create_task(gc(berth))
            assert await wait_until_blocked(pool, run) == "transactionid"
            put = await c.put("/v2/hm/x/manifests/v1", content=_manifest(config, layer),
                              headers={"Content-Type": OCI_MANIFEST})  # fmt: skip
            assert put.status_code == 201, put.text
        result = await run
        assert (result.unlinked, result.deleted) == (0, 0), result
        for data in (config, layer):
            got = await c.get(f"/v2/hm/x/blobs/{sha(data)}")
            assert got.status_code == 200 and got.content == data


async def test_mount_racing_gc_on_s3(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """GC starting while a mount holds its share lock on the source link waits for it
    (pg_locks), then unlinks only the source: the mounted layer stays and is served."""
    import berth_blob.domain.blobs as blobs_module

    async with on_s3(s3_server, "mm") as berth:
        c, pool = berth.client, berth.app.state.resources.pool
        layer = os.urandom(4096)
        digest = await _blob(berth, "mm/src", layer)
        real_rwr = blobs_module.run_with_retry  # type: ignore[attr-defined]
        collected: list[asyncio.Task[GcResult]] = []
        waited: list[str] = []

        async def racing(store: Any, work: Any, **kw: Any) -> Any:
            async def paused(uow: Any) -> Any:
                class Uow:
                    conn = uow.conn

                    async def emit(self, *args: Any, **k: Any) -> None:  # (event) or (stream, event)
                        if not collected:
                            task = asyncio.create_task(gc(berth))
                            collected.append(task)
                            waited.append(await wait_until_blocked(pool, task))
                        await uow.emit(*args, **k)

                return await work(Uow())

            return await real_rwr(store, paused, **kw)

        monkeypatch.setattr(blobs_module, "run_with_retry", racing)
        r = await c.post(f"/v2/mm/dst/blobs/uploads/?mount={digest}&from=mm/src")
        monkeypatch.undo()
        result = await collected[0]
        assert (r.status_code, waited) == (201, ["transactionid"]), (r.status_code, r.text, waited)
        assert (result.unlinked, result.deleted) == (1, 0), result
        got = await c.get(f"/v2/mm/dst/blobs/{digest}")
        assert got.status_code == 200 and got.content == layer


async def test_commit_retry_after_gc_deleted_an_earlier_blob_on_s3(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The commit's first transaction fails after it found (and kept) an earlier unlinked copy
    at the content address; GC deletes that copy before attempt 2, which must place the
    session's own verified bytes: 201 and the blob served from the bucket."""
    import berth_blob.domain.commit as uploads_module

    async with on_s3(s3_server, "cr") as berth:
        c = berth.client
        data = os.urandom(5000)
        digest = sha(data)
        assert await _blob(berth, "cr/old", data) == digest
        assert (await c.delete(f"/v2/cr/old/blobs/{digest}")).status_code == 202
        location = (await c.post("/v2/cr/x/blobs/uploads/")).headers["location"]
        assert (await c.patch(location, content=data)).status_code == 202
        real_link, real_feed = uploads_module.link, uploads_module.require_feed  # type: ignore[attr-defined]
        calls: list[int] = []
        collected: list[GcResult] = []

        async def flaky_link(uow: Any, *a: Any) -> None:
            calls.append(1)
            if len(calls) == 1:
                raise asyncpg.SerializationError("could not serialize (simulated)")
            await real_link(uow, *a)

        async def gc_between_attempts(conn: Any, repository: Any, **kw: Any) -> Any:
            if calls and not collected:
                collected.append(await gc(berth))
            return await real_feed(conn, repository, **kw)

        monkeypatch.setattr(uploads_module, "link", flaky_link)
        monkeypatch.setattr(uploads_module, "require_feed", gc_between_attempts)
        r = await c.put(location, params={"digest": digest})
        monkeypatch.undo()
        assert [g.deleted for g in collected] == [1], collected
        got = await c.get(f"/v2/cr/x/blobs/{digest}")
        assert (r.status_code, got.status_code) == (201, 200), (r.status_code, r.text)
        assert got.content == data


async def test_upload_commit_waits_for_the_blob_lock_held_by_gc_on_s3(s3_server: S3Server) -> None:
    async with on_s3(s3_server, "lk") as berth:
        pool = berth.app.state.resources.pool
        data = os.urandom(1024)
        key = blob_lock_key("s3", sha(data))
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", key)  # what GC holds while deleting
            push = asyncio.create_task(_blob(berth, "lk/x", data))
            assert await wait_until_blocked(pool, push, advisory_key=key) == "advisory"
            assert not push.done()
        assert await push == sha(data)
        got = await berth.client.get(f"/v2/lk/x/blobs/{sha(data)}")
        assert got.status_code == 200 and got.content == data


async def test_purge_aborts_the_multipart_upload_of_an_idle_session_on_s3(s3_server: S3Server) -> None:
    """An idle session's bytes on S3 are a multipart upload (parts of 5 MiB and more): the purge
    expires the session and aborts it, so no unfinished write is left in the bucket."""
    from berth_gc.domain.purge import purge_expired_uploads

    async with on_s3(s3_server, "pu") as berth:
        c, storage = berth.client, berth.stores.driver("s3")
        location = (await c.post("/v2/pu/x/blobs/uploads/")).headers["location"]
        assert (await c.patch(location, content=os.urandom(6 << 20))).status_code == 202
        pending = [p async for p in storage.pending("uploads")]
        assert [any(r.startswith("upload:") for r in p.ref) for p in pending] == [True], pending
        result = await purge_expired_uploads(
            berth.app.state.resources.store, berth.stores, timedelta(0), now=later()
        )
        assert (result.expired, result.bytes_freed) == (1, 6 << 20)
        assert [p async for p in storage.pending("uploads")] == []
        assert [p async for p in storage.list("uploads")] == []
        assert (await c.get(location)).status_code == 404


async def test_sweep_aborts_a_multipart_upload_no_session_names_on_s3(s3_server: S3Server) -> None:
    """A multipart upload under an upload folder whose session is gone (a crash between the
    session's end and the removal of its bytes) is aborted by the sweep past the grace period;
    an open session's is left alone."""
    import uuid

    async with on_s3(s3_server, "so") as berth:
        c, storage = berth.client, berth.stores.driver("s3")
        open_session = (await c.post("/v2/so/x/blobs/uploads/")).headers["location"]
        assert (await c.patch(open_session, content=os.urandom(6 << 20))).status_code == 202
        orphan = f"uploads/{uuid.uuid4()}/data"
        writer = await storage.writer(orphan)
        await writer.write(os.urandom(6 << 20))
        await writer.flush()
        await writer.close()
        assert len([p async for p in storage.pending("uploads")]) == 2
        result = await gc(berth)
        assert result.swept_files == 1, result
        left = [p.path async for p in storage.pending("uploads")]
        assert left == [f"uploads/{open_session.rsplit('/', 1)[1]}/data"]
