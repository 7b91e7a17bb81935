"""GC's storage sweep: files no row names go after the grace period; nothing a row names does.

The orphans are made the way a crash leaves them — bytes at a content address with no
``blob.blobs`` row, an upload folder with no ``blob.uploads`` row — by writing through the
feed's storage driver directly.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from berth_common.db.locks import blob_lock_key
from berth_gc.domain.collect import GcResult, collect_garbage
from tests.integration.test_gc import _image
from tests.support.berth_app import BerthApp, berth_app
from tests.support.locks import wait_until_blocked

pytestmark = pytest.mark.integration
LATER = datetime.now(UTC) + timedelta(days=1)


async def _bytes(data: bytes):  # type: ignore[no-untyped-def]
    yield data


def _content_path(feed: str, data: bytes) -> tuple[str, str]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    return digest, f"blobs/sha256/{digest[7:9]}/{digest[7:]}"  # feeds share the store's root


async def _collect(berth: BerthApp, now: datetime = LATER) -> GcResult:
    return await collect_garbage(berth.app.state.resources.store, berth.stores, timedelta(hours=1), now=now)


async def test_sweep_removes_only_what_no_row_names_after_the_grace_period() -> None:
    async with berth_app(with_bus=False) as berth:
        await berth.create_feed("sw")
        c, storage = berth.client, berth.storage
        kept = os.urandom(3000)
        kept_digest, kept_path = _content_path("sw", kept)
        await _image(berth, "sw/x", "v1", kept)  # a manifest references it: GC keeps it
        open_session = (await c.post("/v2/sw/x/blobs/uploads/")).headers["location"]
        assert (await c.patch(open_session, content=b"partial")).status_code == 202
        orphan = os.urandom(5000)
        _, orphan_path = _content_path("sw", orphan)
        await storage.write(orphan_path, _bytes(orphan))
        stale_upload = f"uploads/{uuid.uuid4()}"
        await storage.write(f"{stale_upload}/data", _bytes(b"x" * 700))
        await storage.write(f"{stale_upload}/data.trim", _bytes(b"y" * 300))

        early = await _collect(berth, now=datetime.now(UTC))
        assert early.swept_files == 0, "nothing is swept inside the grace period"
        assert await storage.stat(orphan_path) is not None

        result = await _collect(berth)
        assert (result.unlinked, result.deleted) == (0, 0)
        assert result.swept_files == 2 and result.bytes_freed == 5000 + 700 + 300
        assert await storage.stat(orphan_path) is None
        uploads = [p async for p in storage.list("uploads")]
        uploads += [p.path async for p in storage.pending("uploads")]  # unfinished writes
        assert uploads == [f"uploads/{open_session.rsplit('/', 1)[1]}/data"], "only the open session stays"
        assert await storage.stat(kept_path) is not None
        got = await c.get(f"/v2/sw/x/blobs/{kept_digest}")
        assert got.status_code == 200 and got.content == kept
        put = await c.put(open_session, params={"digest": "sha256:" + hashlib.sha256(b"partial").hexdigest()})
        assert put.status_code == 201, put.text
        assert (await _collect(berth)).swept_files == 0


async def test_sweep_rechecks_content_under_the_blob_lock() -> None:
    """Content placed by a commit that holds the blob's lock is judged after that commit: once
    its row exists, the file stays even though the sweep listed it as an orphan."""
    async with berth_app(with_bus=False) as berth:
        await berth.create_feed("swl")
        storage, pool = berth.storage, berth.app.state.resources.pool
        data = os.urandom(2048)
        digest, path = _content_path("swl", data)
        async with pool.acquire() as conn:
            tx = conn.transaction()
            await tx.start()
            await conn.execute("SELECT pg_advisory_xact_lock($1)", blob_lock_key("default", digest))
            await storage.write(path, _bytes(data))  # the commit moved the content into place
            sweep = asyncio.create_task(_collect(berth))
            key = blob_lock_key("default", digest)
            assert await wait_until_blocked(pool, sweep, advisory_key=key) == "advisory"
            assert not sweep.done(), "the sweep judged content while a commit held the blob's lock"
            await conn.execute(
                "INSERT INTO blob.blobs(store, digest, size, created_at) VALUES ($1, $2, $3, now())",
                "default",
                digest,
                len(data),
            )
            await tx.commit()
        assert (await sweep).swept_files == 0
        assert await storage.stat(path) is not None


async def test_sweep_without_rows_for_a_whole_feed_prefix_leaves_other_feeds_alone() -> None:
    """Orphans in one location go; the same bytes committed in another location (own row) stay:
    here the legacy per-feed area of ``swa`` (``feeds/swa/``) and the store's shared root."""
    async with berth_app(with_bus=False) as berth:
        await berth.create_feed("swb")
        storage = berth.storage
        data = os.urandom(1500)
        _, path_b = _content_path("swb", data)
        path_a = f"feeds/swa/{path_b}"
        await _image(berth, "swb/x", "v1", data)
        await storage.write(path_a, _bytes(data))
        result = await _collect(berth)
        assert (result.deleted, result.swept_files) == (0, 1)
        assert await storage.stat(path_a) is None and await storage.stat(path_b) is not None


async def test_sweep_aborts_unfinished_writes_no_session_names() -> None:
    """A crash between a session's end and the removal of its folder can leave an unfinished
    write (filesystem segments; an S3 multipart upload): ``list`` does not show it, the driver
    reports it as pending, and the sweep aborts it once it is older than the grace period."""
    async with berth_app(with_bus=False) as berth:
        await berth.create_feed("swp")
        c, storage = berth.client, berth.storage
        open_session = (await c.post("/v2/swp/x/blobs/uploads/")).headers["location"]
        assert (await c.patch(open_session, content=b"partial")).status_code == 202
        orphan = f"uploads/{uuid.uuid4()}/data"
        writer = await storage.writer(orphan)
        await writer.write(b"z" * 4000)
        await writer.flush()
        await writer.close()
        assert [p.path async for p in storage.pending(orphan)] == [orphan]
        assert (await _collect(berth, now=datetime.now(UTC))).swept_files == 0  # inside the grace period
        assert (await _collect(berth)).swept_files == 1
        left = [p.path async for p in storage.pending("uploads")]
        assert left == [f"uploads/{open_session.rsplit('/', 1)[1]}/data"]
