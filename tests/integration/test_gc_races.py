"""GC (unlink, delete, storage sweep) racing pushes, mounts, retries, restarts and odd storage.

Each test drives one interleaving that once deleted content a committed link or manifest still
needed, or answered 500 (found by an adversarial review of the sweep, 2026-12-06): GC during a
cross-repository mount, during a retried or resumed upload commit, after a stale link was
uploaded again, after a feed was deleted and re-created before its ``FeedDeleted`` reaction;
upload folders with odd names; storage errors and cancellation in the middle of a sweep; and a
stress run of every kind of push against GC with no grace period. The invariant throughout:
every linked blob stays readable, and no request answers 500.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from berth_common.storage import Stores
from berth_gc.domain.collect import GC_LOCK, collect_garbage
from tests.integration.test_gc import OCI_MANIFEST, _blob, _image, commit_session_data
from tests.support.berth_app import BerthApp, berth_app
from tests.support.locks import wait_until_blocked
from tests.support.tasks import until

pytestmark = pytest.mark.integration


def later() -> datetime:
    return datetime.now(UTC) + timedelta(days=1)


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def content_path(feed: str, digest: str) -> str:
    return f"blobs/sha256/{digest[7:9]}/{digest[7:]}"  # feeds share the default store's root


async def _bytes(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def gc(
    berth: BerthApp,
    *,
    now: datetime | None = None,
    grace: timedelta = timedelta(hours=1),
    storage: Any = None,
) -> Any:
    return await collect_garbage(
        berth.app.state.resources.store,
        Stores({"default": storage}) if storage is not None else berth.stores,
        grace,
        now=now or later(),
    )


async def _patched_session(berth: BerthApp, feed: str, data: bytes) -> tuple[str, str]:
    """Create ``feed``, open an upload session in ``feed/x`` and PATCH ``data`` into it;
    returns ``(location, upload id)``."""
    await berth.create_feed(feed)
    location = (await berth.client.post(f"/v2/{feed}/x/blobs/uploads/")).headers["location"]
    assert (await berth.client.patch(location, content=data)).status_code == 202
    return location, location.rsplit("/", 1)[1]


class Proxy:
    """A storage driver wrapper with hooks (everything else delegates)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.before_list: Any = None
        self.fail_stat_on: str | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def list_created(self, prefix: str, since: Any):  # type: ignore[no-untyped-def]
        """The sweep's listing: taken whole, then ``before_list`` runs (at the first listing
        only), then it is yielded."""

        async def gen() -> AsyncIterator[str]:
            snapshot = [p async for p in self.inner.list_created(prefix, since)]
            hook, self.before_list = self.before_list, None
            if hook is not None:
                await hook()
            for p in snapshot:
                yield p

        return gen()

    async def stat(self, path: str) -> Any:
        if self.fail_stat_on is not None and self.fail_stat_on in path:
            raise OSError(5, "simulated I/O error", path)
        return await self.inner.stat(path)


# --- 1. cross-repo mount racing GC phases 1+2 (mount share-locks its source link) ----------


async def test_mount_racing_gc_never_links_deleted_content(monkeypatch: pytest.MonkeyPatch) -> None:
    """mount() reads the source's link without a lock and never takes the blob lock, so GC can
    unlink the source and delete the blob between that read and the mount's commit."""
    import berth_blob.domain.blobs as blobs_module
    import berth_common.eventstore as eventstore_module

    async with berth_app(with_bus=False) as berth:
        await berth.create_feed("mr")
        c = berth.client
        layer = os.urandom(4096)
        digest = await _blob(berth, "mr/src", layer)  # pushed, never referenced by a manifest
        real_rwr, collected, waited = eventstore_module.run_with_retry, list[Any](), list[Any]()

        async def racing(store: Any, work: Any, **kw: Any) -> Any:
            async def paused(uow: Any) -> Any:
                class Uow:
                    conn = uow.conn

                    async def emit(self, *args: Any, **k: Any) -> None:
                        if not collected:  # GC runs after the source link was read
                            task = asyncio.create_task(gc(berth))
                            collected.append(task)
                            # GC must wait for the mount's share lock on the source link
                            # (pg_locks: a row lock not granted), then see the new link
                            pool = berth.app.state.resources.pool
                            waited.append(await wait_until_blocked(pool, task))
                        await uow.emit(*args, **k)

                return await work(Uow())

            return await real_rwr(store, paused, **kw)

        monkeypatch.setattr(blobs_module, "run_with_retry", racing)
        r = await c.post(f"/v2/mr/dst/blobs/uploads/?mount={digest}&from=mr/src")
        monkeypatch.undo()
        result = await collected[0]
        assert waited == ["transactionid"], waited  # GC waited for the mount's transaction
        assert r.status_code == 201, r.text  # mounted
        assert (result.unlinked, result.deleted) == (1, 0), result  # the source link went, the content stayed
        # the client goes on to push a manifest referencing the mounted layer: accepted too
        config = b'{"architecture":"amd64","os":"linux"}'
        cdigest = await _blob(berth, "mr/dst", config)
        import json

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
                        "digest": digest,
                        "size": len(layer),
                    }
                ],
            }
        ).encode()
        m = await c.put("/v2/mr/dst/manifests/v1", content=manifest, headers={"Content-Type": OCI_MANIFEST})
        got = await c.get(f"/v2/mr/dst/blobs/{digest}")
        assert m.status_code == 201 and got.status_code == 200, (
            f"manifest PUT {m.status_code}; layer it references: GET {got.status_code} {got.text}"
        )


# --- 2. re-upload of an already linked blob refreshes linked_at -----------------------------


async def test_reupload_refreshes_a_stale_link_so_a_running_gc_keeps_it() -> None:
    """A 201 re-upload must refresh linked_at: a GC whose cutoff precedes the re-upload (any GC
    running while the client pushes) would otherwise unlink and delete it."""
    async with berth_app(with_bus=False) as berth:
        await berth.create_feed("ru")
        c = berth.client
        layer = os.urandom(3000)
        digest = await _blob(berth, "ru/x", layer)  # an earlier push that failed before its manifest
        await asyncio.sleep(0.05)
        cutoff = datetime.now(UTC)  # now - grace of a GC that starts now
        await asyncio.sleep(0.05)
        assert await _blob(berth, "ru/x", layer) == digest  # pushed again: 201
        result = await gc(berth, now=cutoff, grace=timedelta(0))
        got = await c.get(f"/v2/ru/x/blobs/{digest}")
        assert got.status_code == 200, (
            f"201 re-upload after the cutoff, then GC {result}: GET {got.status_code}"
        )


# --- 3. a retried commit transaction re-checks that its content is still there -------------


@pytest.mark.parametrize(
    "error, earlier_blob",
    [
        (asyncpg.DeadlockDetectedError("deadlock detected (simulated)"), False),  # the sweep deletes
        (asyncpg.SerializationError("could not serialize (simulated)"), True),  # phase 2 deletes
    ],
    ids=["sweep", "phase2"],
)
async def test_commit_retry_after_gc_never_links_deleted_content(
    monkeypatch: pytest.MonkeyPatch, error: Exception, earlier_blob: bool
) -> None:
    """When the commit's transaction fails with a retryable error the blob lock is released and
    GC may delete the content at the address before attempt 2 (the sweep: the data attempt 1
    moved there, no row; phase 2: an earlier, unlinked blob, which attempt 1 kept instead of
    replacing it, so the session's own bytes are still in the session). Attempt 2 must never
    link missing content: it answers BLOB_UPLOAD_INVALID when its bytes are gone, or places
    its own verified bytes and answers 201 with the blob served."""
    import berth_blob.domain.commit as uploads_module
    import berth_blob.domain.feeds as feeds_module

    async with berth_app(with_bus=False) as berth:
        await berth.create_feed("cr")
        c = berth.client
        data = os.urandom(5000)
        digest = sha(data)
        if earlier_blob:
            assert await _blob(berth, "cr/old", data) == digest
            assert (await c.delete(f"/v2/cr/old/blobs/{digest}")).status_code == 202
        location = (await c.post("/v2/cr/x/blobs/uploads/")).headers["location"]
        assert (await c.patch(location, content=data)).status_code == 202
        real_link, real_feed, calls, collected = (
            uploads_module.link,
            feeds_module.require_feed,
            [],
            list[Any](),
        )

        async def flaky_link(uow: Any, *a: Any) -> None:
            calls.append(1)
            if len(calls) == 1:
                raise error
            await real_link(uow, *a)

        async def gc_between_attempts(conn: Any, repository: Any, **kw: Any) -> Any:
            if calls and not collected:
                collected.append(await gc(berth))
            return await real_feed(conn, repository, **kw)

        monkeypatch.setattr(uploads_module, "link", flaky_link)
        monkeypatch.setattr(uploads_module, "require_feed", gc_between_attempts)
        r = await c.put(location, params={"digest": digest})
        monkeypatch.undo()
        got = await c.get(f"/v2/cr/x/blobs/{digest}")
        assert collected and (collected[0].swept_files or collected[0].deleted), collected
        if earlier_blob:  # content at the address was kept in attempt 1: the session still has its
            assert (r.status_code, got.status_code) == (201, 200), (r.status_code, r.text)
            assert got.content == data
            return
        assert r.status_code == 400 and r.json()["errors"][0]["code"] == "BLOB_UPLOAD_INVALID", (
            f"PUT {r.status_code}, GC between attempts {collected}, then GET {got.status_code}"
        )
        assert got.status_code == 404


# --- 4. odd upload folder names: no crash, no 500 ------------------------------------------


async def test_sweep_survives_upload_folder_named_urn_uuid() -> None:
    """uuid.UUID() accepts 'urn:uuid:…' (':' is a valid path character), asyncpg's uuid codec
    does not: DataError escapes sweep_orphans, every run, and later orphans are never swept."""
    async with berth_app(with_bus=False) as berth:
        await berth.create_feed("odd")
        await berth.create_feed("zz")
        storage = berth.storage
        await storage.write(f"uploads/urn:uuid:{uuid.uuid4()}/data", _bytes(b"junk"))
        orphan = os.urandom(100)
        await storage.write(content_path("zz", sha(orphan)), _bytes(orphan))  # listed later
        errors = []
        for _ in range(2):
            try:
                await gc(berth)
            except Exception as exc:
                errors.append(repr(exc)[:160])
        assert not errors, errors


async def test_upload_route_with_urn_uuid_id_is_not_a_500() -> None:
    async with berth_app(with_bus=False) as berth:
        await berth.create_feed("odd2")
        c = berth.client
        for upload_id in (f"urn:uuid:{uuid.uuid4()}", f"{{{uuid.uuid4()}}}"):
            for method in ("GET", "PATCH", "PUT", "DELETE"):
                r = await c.request(
                    method,
                    f"/v2/odd2/x/blobs/uploads/{upload_id}",
                    params={"digest": sha(b"")} if method == "PUT" else None,
                )
                assert r.status_code < 500, (method, r.status_code, r.text)


async def test_sweep_leaves_odd_paths_alone_and_does_not_crash() -> None:
    """Wrong depth, extra files, non-UUID folders: no crash; nothing a row names goes."""
    async with berth_app(with_bus=False) as berth:
        await berth.create_feed("op")
        c, storage = berth.client, berth.storage
        _, _, ldig = await _image(berth, "op/x", "v1", os.urandom(2000))
        live = content_path("op", ldig)
        odd = [
            f"blobs/sha256/{ldig[7:9]}",
            f"blobs/sha256/{ldig[7:9]}x/{ldig[7:]}/data",
            "blobs/x",
            "uploads/notauuid",
            "uploads/a/b/c/d",
            f"uploads/{uuid.uuid4().hex}/data",
            "feeds/op",  # the legacy per-feed area of the default store
            "feeds/op2/blobs/sha256/ab/ab",
            f"feeds/op2/blobs/sha256/{ldig[7:9]}/{ldig[7:]}.trim",
            f"blobs/sha256/{ldig[7:9]}/{ldig[7:]}.trim",
            f"blobs/sha256/{ldig[9:11]}/{ldig[7:]}",
        ]
        for p in odd:
            try:
                await storage.write(p, _bytes(b"odd"))
            except Exception as exc:
                print("skip", p, exc)
        # names the validator rejects, written directly on disk
        blobs_root = storage.local_path("blobs")
        assert blobs_root is not None
        root = blobs_root.parent
        (root / "uploads" / "bad name").mkdir(parents=True, exist_ok=True)
        (root / "uploads" / "bad name" / "data").write_bytes(b"x")
        (root / "blobs" / "sha256" / ldig[7:9] / "ünicode").write_bytes(b"x")
        live_file = storage.local_path(live)
        assert live_file is not None
        os.symlink(live_file, root / "blobs" / "sha256" / ldig[7:9] / ("0" * 64))
        for _ in range(2):
            await gc(berth)
        assert await storage.stat(live) is not None
        got = await c.get(f"/v2/op/x/blobs/{ldig}")
        assert got.status_code == 200
        assert (await c.get("/v2/op/x/manifests/v1")).status_code == 200


# --- 5. storage error / cancellation mid-sweep: GC lock released, next run works ----------


async def test_storage_error_mid_sweep_releases_the_gc_lock() -> None:
    async with berth_app(with_bus=False) as berth:
        await berth.create_feed("se")
        storage = berth.storage
        a, b = os.urandom(100), os.urandom(200)
        await storage.write(content_path("se", sha(a)), _bytes(a))
        await storage.write(content_path("se", sha(b)), _bytes(b))
        proxy = Proxy(storage)
        proxy.fail_stat_on = sha(a)[7:]
        with pytest.raises(OSError):
            await gc(berth, storage=proxy)
        pool = berth.app.state.resources.pool
        held = await pool.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 1"
            " AND classid = ($1::bigint >> 32) AND objid = ($1::bigint & 4294967295)"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            GC_LOCK,
        )
        assert held == 0
        await gc(berth)  # the next run works and finishes the job
        assert await storage.stat(content_path("se", sha(a))) is None
        assert await storage.stat(content_path("se", sha(b))) is None


async def test_cancelled_mid_sweep_releases_the_gc_lock() -> None:
    async with berth_app(with_bus=False) as berth:
        await berth.create_feed("cx")
        storage = berth.storage
        data = os.urandom(100)
        await storage.write(content_path("cx", sha(data)), _bytes(data))
        proxy, entered = Proxy(storage), asyncio.Event()

        async def hang() -> None:
            entered.set()
            await asyncio.sleep(3600)

        proxy.before_list = hang
        task = asyncio.create_task(gc(berth, storage=proxy))
        await asyncio.wait_for(entered.wait(), 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        result = await asyncio.wait_for(gc(berth), 10)
        assert result.swept_files == 1


# --- 6. a session completing while the sweep runs is not reported as an orphan -------------


async def test_session_completed_during_sweep_is_not_reported_as_orphan() -> None:
    async with berth_app(with_bus=False) as berth:
        await berth.create_feed("sc")
        c, storage = berth.client, berth.storage
        data = os.urandom(3000)
        location = (await c.post("/v2/sc/x/blobs/uploads/")).headers["location"]
        assert (await c.patch(location, content=data)).status_code == 202
        proxy = Proxy(storage)
        puts = []

        async def complete() -> None:
            puts.append((await c.put(location, params={"digest": sha(data)})).status_code)

        proxy.before_list = complete
        result = await gc(berth, storage=proxy, now=datetime.now(UTC), grace=timedelta(hours=1))
        assert puts == [201]
        assert (await c.get(f"/v2/sc/x/blobs/{sha(data)}")).content == data
        assert result.swept_files == 0, f"a folder that was never orphaned counted as swept: {result}"


# --- 7. crash after the move: the sweep spares content just moved into place --------------


async def test_sweep_spares_content_a_crashed_commit_just_moved_into_place() -> None:
    """A rename keeps the data file's mtime; the driver's move sets it to the move's time, so
    content placed by a commit that crashed a moment ago is young, whatever the last PATCH's
    age, and the resumed PUT still finds it (201)."""
    async with berth_app(with_bus=False) as berth:
        c, storage = berth.client, berth.storage
        data = os.urandom(4096)
        digest = sha(data)
        location, upload_id = await _patched_session(berth, "cc", data)
        data_path = await commit_session_data(berth, upload_id)  # the commit's first step
        two_hours_ago = (datetime.now(UTC) - timedelta(hours=2)).timestamp()
        data_file = storage.local_path(data_path)
        assert data_file is not None
        os.utime(data_file, (two_hours_ago, two_hours_ago))  # idle 2 h
        await storage.move(data_path, content_path("cc", digest))  # crash right after the move
        result = await gc(berth, now=datetime.now(UTC), grace=timedelta(hours=1))  # right after
        r = await c.put(location, params={"digest": digest})
        assert r.status_code == 201, (result, r.status_code, r.text)


# --- 8. stress: pushes of every kind racing GC with grace 0 -------------------------------


async def test_stress_pushes_racing_gc_grace_zero() -> None:
    async with berth_app(with_bus=False) as berth:
        for feed in ("sa", "sb"):
            await berth.create_feed(feed)
        c = berth.client
        shared = [os.urandom(3000 + i) for i in range(4)]
        statuses: list[tuple[str, int, str]] = []
        stop = asyncio.Event()
        gcs: list[Any] = []

        async def record(what: str, r: Any) -> Any:
            statuses.append((what, r.status_code, r.text[:200] if r.status_code >= 400 else ""))
            return r

        async def monolithic(repo: str, data: bytes) -> None:
            await record("mono", await c.post(f"/v2/{repo}/blobs/uploads/?digest={sha(data)}", content=data))

        async def chunked(repo: str, data: bytes) -> None:
            r = await record("post", await c.post(f"/v2/{repo}/blobs/uploads/"))
            if r.status_code != 202:
                return
            loc = r.headers["location"]
            half = max(len(data) // 2, 1)
            r = await record(
                "patch", await c.patch(loc, content=data[:half], headers={"Content-Range": f"0-{half - 1}"})
            )
            if r.status_code != 202:
                return
            await asyncio.sleep(0.01)
            await record("put", await c.put(loc, params={"digest": sha(data)}, content=data[half:]))

        async def mount(repo: str, src: str, data: bytes) -> None:
            await record("mount", await c.post(f"/v2/{repo}/blobs/uploads/?mount={sha(data)}&from={src}"))

        async def image(repo: str, tag: str, layer: bytes) -> None:
            try:
                await _image(berth, repo, tag, layer)
                statuses.append(("image", 201, ""))
            except AssertionError as exc:
                statuses.append(("image", 0, str(exc)[:200]))

        async def collector() -> None:
            while not stop.is_set():
                try:
                    gcs.append(await gc(berth, grace=timedelta(0), now=datetime.now(UTC)))
                except Exception as exc:
                    gcs.append(exc)
                await asyncio.sleep(0)

        async def pusher(i: int) -> None:
            for round_ in range(int(os.environ.get("STRESS_ROUNDS", "6"))):
                data = shared[(i + round_) % len(shared)]
                feed = ("sa", "sb")[(i + round_) % 2]
                jobs = [
                    monolithic(f"{feed}/m{i}", data),
                    chunked(f"{feed}/c{i}", data),
                    mount(f"{feed}/n{i}", f"{feed}/m{(i + 1) % 4}", data),
                    monolithic(f"{feed}/e{i}", b""),
                    chunked(f"{feed}/e{i}", b"x"),
                    image(f"{feed}/i{i}", f"t{round_}", data),
                ]
                await asyncio.gather(*jobs)

        gc_task = asyncio.create_task(collector())
        await asyncio.gather(*(pusher(i) for i in range(4)))
        stop.set()
        await gc_task
        pool = berth.app.state.resources.pool
        errors = [e for e in gcs if isinstance(e, Exception)]
        assert not errors, errors[:3]
        assert not [s for s in statuses if s[1] >= 500], [s for s in statuses if s[1] >= 500][:5]
        succeeded = {what for what, status, _ in statuses if status in (201, 202)}
        assert succeeded == {"mono", "post", "patch", "put", "mount", "image"}, sorted(set(statuses))
        assert [g for g in gcs if g.ran and g.unlinked], "no GC run collected anything while pushes ran"
        links = await pool.fetch("SELECT repository, digest FROM blob.links")
        missing = []
        for row in links:
            r = await c.get(f"/v2/{row['repository']}/blobs/{row['digest']}")
            if r.status_code != 200 or sha(r.content) != row["digest"]:
                missing.append((row["repository"], row["digest"][:19], r.status_code))
        assert not missing, missing
        print(
            len(gcs),
            "GC runs;",
            sum(g.swept_files for g in gcs),
            "swept;",
            sorted({(s[0], s[1]) for s in statuses}),
        )


# --- 9. feed deleted and re-created before the blob service consumed FeedDeleted ------------


async def test_feed_recreated_before_consumer_keeps_its_new_image() -> None:
    """The consumer unlinks links with linked_at <= FeedDeleted's time. A push into the
    re-created feed finds the old link row still there (consumer lagging: relay/NATS delay or
    outage), so ``link()`` emits nothing; the consumer then unlinks the re-pushed image's blobs
    and GC deletes them: the re-created feed's new manifest references missing blobs."""
    from berth_blob.consumers.feeds import feed_deleted
    from berth_common.eventstore.store import context_of

    async with berth_app(with_bus=False) as berth:  # no bus: the consumer is "lagging"; run it by hand
        await berth.create_feed("fr")
        c = berth.client
        layer = os.urandom(4000)
        await _image(berth, "fr/x", "v1", layer)
        assert (await c.delete("/api/feeds/fr")).status_code == 204
        await berth.create_feed("fr")  # re-created under the same name
        _, _, ldig = await _image(berth, "fr/x", "v1", layer)  # the same image pushed again: 201
        store = berth.app.state.resources.store
        deleted = [e for e in await store.read_all(0, 10000) if e.type == "feed.deleted"]
        async with berth.app.state.resources.pool.acquire() as conn, conn.transaction():
            await feed_deleted(
                berth.stores,
                conn,
                deleted[0].payload,
                context_of(deleted[0]),
            )
        await gc(berth)
        got = await c.get(f"/v2/fr/x/blobs/{ldig}")
        assert (await c.get("/v2/fr/x/manifests/v1")).status_code == 200
        assert got.status_code == 200, f"layer of the re-pushed image: GET {got.status_code} {got.text}"


async def test_feed_recreated_and_pushed_at_once_with_real_bus() -> None:
    """The same, with the real relay and NATS consumer: delete, create, push straight away."""
    async with berth_app(with_bus=True) as berth:
        await berth.create_feed("fb")
        c = berth.client
        layer = os.urandom(4000)
        await _image(berth, "fb/x", "v1", layer)
        assert (await c.delete("/api/feeds/fb")).status_code == 204
        await berth.create_feed("fb")
        _, _, ldig = await _image(berth, "fb/x", "v1", layer)
        pool = berth.app.state.resources.pool
        deleted_at = await pool.fetchval("SELECT position FROM eventstore.events WHERE type = 'feed.deleted'")
        # until the blob service's consumer has applied FeedDeleted (its recorded position),
        # failing loudly if it never does
        await until(lambda: pool.fetchval(
            "SELECT position >= $1 FROM blob.consumer_positions WHERE name = 'blob-feeds'", deleted_at
        ))  # fmt: skip
        await gc(berth)
        got = await c.get(f"/v2/fb/x/blobs/{ldig}")
        assert (await c.get("/v2/fb/x/manifests/v1")).status_code == 200
        assert got.status_code == 200, f"layer of the re-pushed image: GET {got.status_code} {got.text}"


# --- 10. resumed commit: GC deletes the placed content between _source and the re-hash -------


async def test_resumed_commit_without_hash_state_after_a_crash_is_not_a_500() -> None:
    """A session recorded before hash states existed (``hash_state`` NULL) must be verified by
    reading its bytes back. After a crash between the move into place and the commit its data
    is gone from the session: the PUT cannot verify what the client sent, so it answers
    BLOB_UPLOAD_INVALID (never a 500, never a link on trust)."""
    async with berth_app(with_bus=False) as berth:
        c, storage = berth.client, berth.storage
        data = os.urandom(4096)
        digest = sha(data)
        location, upload_id = await _patched_session(berth, "rs", data)
        await berth.app.state.resources.pool.execute(
            "UPDATE blob.upload_state SET hash_state = NULL WHERE id = $1", upload_id
        )
        await storage.move(await commit_session_data(berth, upload_id), content_path("rs", digest))  # crash
        await gc(berth)  # the sweep removes the placed content nobody recorded
        r = await c.put(location, params={"digest": digest})
        assert r.status_code == 400 and r.json()["errors"][0]["code"] == "BLOB_UPLOAD_INVALID", r.text
        assert (await c.get(f"/v2/rs/x/blobs/{digest}")).status_code == 404
