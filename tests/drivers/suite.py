"""The one storage driver test suite, run unchanged against every driver (like Distribution's
``registry/storage/driver/testsuites``).

To test a driver, subclass ``DriverSuite`` in ``tests/drivers/test_<driver>.py`` and provide a
``driver`` fixture that yields a driver over an EMPTY store (a temp dir, a fresh bucket prefix…).
Every test writes below its own ``scratch`` prefix and deletes it; the autouse teardown then
fails the test if anything is left in the store (override ``leftovers`` to look deeper, e.g. at
raw files and directories). Drivers that cannot presign or serve local files return ``None`` from
``url_for``/``local_path`` and those checks are skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import random
import secrets
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import anyio
import httpx
import pytest

from berth_common.storage import (
    ObjectNotFound,
    StorageDriver,
    StorageError,
    WriterState,
    WriterStateInvalid,
)

MiB = 1 << 20
BAD_PATHS = [
    "", "/abs", "abs/", "..", ".", "a/../b", "a/./b", "a//b", "../escape", "a/..",
    "a\\b", "a\x00b", "a b", "~tmp", "ünïcode", "a/é/b", "x/\u200b",
]  # fmt: skip
BAD_PREFIXES = ["/", "/abs", "..", "a/../b", "a//b", "é", "a/../../"]


class Boom(Exception):
    """Raised by a test's chunk source to simulate a client that disconnects mid-stream."""


def payload(size: int, seed: int = 0) -> bytes:
    """``size`` deterministic pseudo-random bytes."""
    return random.Random(seed).randbytes(size)


async def chunks_of(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    """``data`` as an async stream of ``size``-byte chunks (one empty chunk included for edge cover)."""
    yield b""
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def failing(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    """Stream ``data``, then raise ``Boom``."""
    async for chunk in chunks_of(data, size):
        yield chunk
    raise Boom


async def read_all(driver: StorageDriver, path: str, **kw: int | None) -> bytes:
    """Concatenate ``driver.read(path, **kw)``."""
    return b"".join([chunk async for chunk in driver.read(path, **kw)])  # type: ignore[arg-type]


async def list_all(driver: StorageDriver, prefix: str) -> list[str]:
    """Collect ``driver.list(prefix)``."""
    return [path async for path in driver.list(prefix)]


class DriverSuite:
    """Abstract: subclasses provide the ``driver`` fixture (and may override ``leftovers``)."""

    @pytest.fixture
    async def driver(self) -> AsyncIterator[StorageDriver]:
        raise NotImplementedError("subclasses of DriverSuite provide the driver fixture")
        yield  # pragma: no cover

    async def leftovers(self, driver: StorageDriver) -> list[str]:
        """Whatever remains in the store after a test; must be empty."""
        return await list_all(driver, "")

    @pytest.fixture(autouse=True)
    async def _nothing_left_behind(self, driver: StorageDriver) -> AsyncIterator[None]:
        yield
        left = await self.leftovers(driver)
        if left:
            pytest.fail(f"storage driver left objects behind: {left[:20]}")
        unfinished = [p.path async for p in driver.pending("")]
        if unfinished:
            pytest.fail(f"storage driver left unfinished writes behind: {unfinished[:20]}")

    @pytest.fixture
    async def scratch(self, driver: StorageDriver) -> AsyncIterator[str]:
        prefix = f"suite-{secrets.token_hex(4)}"
        yield prefix
        await driver.delete(prefix)

    # --- write / read / stat --------------------------------------------------------------

    @pytest.mark.parametrize("size", [0, 1, 1000, 3 * MiB + 1])
    async def test_round_trip(self, driver: StorageDriver, scratch: str, size: int) -> None:
        path, data = f"{scratch}/a/b/object", payload(size, seed=size)
        assert await driver.write(path, chunks_of(data)) == size
        info = await driver.stat(path)
        assert info is not None and (info.path, info.size) == (path, size)
        assert await read_all(driver, path) == data
        assert await list_all(driver, scratch) == [path]

    async def test_read_honours_chunk_size(self, driver: StorageDriver, scratch: str) -> None:
        path, data = f"{scratch}/obj", payload(10_000)
        await driver.write(path, chunks_of(data, 333))
        chunks = [chunk async for chunk in driver.read(path, chunk_size=4096)]
        assert all(0 < len(c) <= 4096 for c in chunks) and b"".join(chunks) == data

    @pytest.mark.parametrize(
        ("offset", "length"),
        [(0, None), (0, 0), (0, 1), (10, 20), (99, None), (99, 1), (99, 50), (100, None),
         (100, 10), (150, None), (150, 5), (0, 1000)],
    )  # fmt: skip
    async def test_read_window(
        self, driver: StorageDriver, scratch: str, offset: int, length: int | None
    ) -> None:
        path, data = f"{scratch}/obj", payload(100)
        await driver.write(path, chunks_of(data))
        end = None if length is None else offset + length
        assert await read_all(driver, path, offset=offset, length=length, chunk_size=7) == data[offset:end]

    async def test_read_invalid_window(self, driver: StorageDriver, scratch: str) -> None:
        path = f"{scratch}/obj"
        await driver.write(path, chunks_of(b"abc"))
        for kw in ({"offset": -1}, {"length": -1}, {"chunk_size": 0}):
            with pytest.raises(ValueError):
                await read_all(driver, path, **kw)

    async def test_missing_object(self, driver: StorageDriver, scratch: str) -> None:
        await driver.write(f"{scratch}/dir/obj", chunks_of(b"x"))
        for path in (f"{scratch}/missing", f"{scratch}/dir"):  # nothing there / only a prefix
            assert await driver.stat(path) is None
            with pytest.raises(ObjectNotFound):
                await read_all(driver, path)

    async def test_stat_modified_time(self, driver: StorageDriver, scratch: str) -> None:
        await driver.write(f"{scratch}/obj", chunks_of(b"x"))
        info = await driver.stat(f"{scratch}/obj")
        assert info is not None and info.modified.tzinfo is not None
        assert abs(info.modified - datetime.now(UTC)) < timedelta(minutes=5)

    async def test_write_overwrites(self, driver: StorageDriver, scratch: str) -> None:
        path = f"{scratch}/obj"
        await driver.write(path, chunks_of(payload(5000, 1)))
        assert await driver.write(path, chunks_of(b"short")) == 5
        assert await read_all(driver, path) == b"short"

    async def test_failed_write_leaves_nothing(self, driver: StorageDriver, scratch: str) -> None:
        fresh, existing = f"{scratch}/fresh", f"{scratch}/existing"
        await driver.write(existing, chunks_of(b"old"))
        for path in (fresh, existing):
            with pytest.raises(Boom):
                await driver.write(path, failing(payload(3 * MiB), MiB))
        assert await driver.stat(fresh) is None
        assert await read_all(driver, existing) == b"old"
        assert await list_all(driver, scratch) == [existing]

    # --- resumable writers ------------------------------------------------------------------

    @pytest.mark.parametrize("size", [0, 1, 5000, 3 * MiB + 1])
    async def test_writer_round_trip(self, driver: StorageDriver, scratch: str, size: int) -> None:
        path, data = f"{scratch}/upload/data", payload(size, seed=size)
        writer = await driver.writer(path)
        async for chunk in chunks_of(data, 100_000):
            await writer.write(chunk)
        assert writer.size == size
        await writer.commit()
        info = await driver.stat(path)
        assert info is not None and info.size == size
        assert await read_all(driver, path) == data

    async def test_writer_resumes_from_each_flush(self, driver: StorageDriver, scratch: str) -> None:
        """Each PATCH of a chunked upload resumes the write where the last one flushed."""
        path, parts = f"{scratch}/upload/data", [payload(n, n) for n in (0, 1, 5000, MiB + 3, 7)]
        state = None
        for part in parts:
            writer = await driver.writer(path, state)
            assert writer.size == (0 if state is None else state.size)
            async for chunk in chunks_of(part, 4096):
                await writer.write(chunk)
            state = await writer.flush()
            assert state.size == writer.size
            await writer.close()
        writer = await driver.writer(path, state)
        await writer.commit()
        assert await read_all(driver, path) == b"".join(parts)

    async def test_writer_state_survives_json(self, driver: StorageDriver, scratch: str) -> None:
        """The state is stored in the database: it must round-trip through JSON."""
        path = f"{scratch}/upload/data"
        writer = await driver.writer(path)
        await writer.write(payload(1000))
        state = await writer.flush()
        await writer.close()
        revived = WriterState(state.size, json.loads(json.dumps(dict(state.data))))
        writer = await driver.writer(path, revived)
        await writer.write(b"tail")
        await writer.commit()
        assert await read_all(driver, path) == payload(1000) + b"tail"

    async def test_unflushed_bytes_are_not_resumed(self, driver: StorageDriver, scratch: str) -> None:
        """A PATCH that failed after its last flush leaves bytes no later writer may keep."""
        path = f"{scratch}/upload/data"
        writer = await driver.writer(path)
        await writer.write(b"kept")
        state = await writer.flush()
        await writer.write(payload(2 * MiB))  # never flushed: the client was not told
        await writer.close()
        writer = await driver.writer(path, state)
        assert writer.size == 4
        await writer.write(b"+more")
        await writer.commit()
        assert await read_all(driver, path) == b"kept+more"

    async def test_new_writer_discards_an_unfinished_one(self, driver: StorageDriver, scratch: str) -> None:
        path = f"{scratch}/upload/data"
        old = await driver.writer(path)
        await old.write(payload(3000))
        await old.flush()
        await old.close()
        writer = await driver.writer(path)
        await writer.write(b"fresh")
        await writer.commit()
        assert await read_all(driver, path) == b"fresh"

    async def test_writer_cancel_leaves_nothing(self, driver: StorageDriver, scratch: str) -> None:
        path = f"{scratch}/upload/data"
        writer = await driver.writer(path)
        await writer.write(payload(MiB + 1))
        state = await writer.flush()
        await writer.close()
        resumed = await driver.writer(path, state)
        await resumed.write(b"more")
        await resumed.cancel()
        assert await driver.stat(path) is None
        assert await list_all(driver, scratch) == []
        with pytest.raises(WriterStateInvalid):
            await driver.writer(path, state)

    async def test_resume_of_nothing_is_refused(self, driver: StorageDriver, scratch: str) -> None:
        with pytest.raises(WriterStateInvalid):
            await driver.writer(f"{scratch}/never/written", WriterState(10, {}))
        with pytest.raises(ValueError):
            await driver.writer(f"{scratch}/obj", WriterState(-1, {}))

    async def test_cancelled_task_keeps_the_last_flush(self, driver: StorageDriver, scratch: str) -> None:
        async def endless() -> AsyncIterator[bytes]:
            while True:
                yield b"x" * 4096
                await anyio.sleep(0.001)

        path = f"{scratch}/upload/data"
        writer = await driver.writer(path)
        await writer.write(b"keep")
        state = await writer.flush()
        with anyio.move_on_after(0.2):
            async for chunk in endless():
                await writer.write(chunk)
        await writer.close()
        writer = await driver.writer(path, state)
        await writer.commit()
        assert await read_all(driver, path) == b"keep"

    async def test_concurrent_writers_to_different_objects(self, driver: StorageDriver, scratch: str) -> None:
        expected = {f"{scratch}/u{i}/data": [payload(1000 * (i + 1) + j, i * 10 + j) for j in range(4)]
                    for i in range(8)}  # fmt: skip

        async def upload(path: str, parts: list[bytes]) -> None:
            state = None
            for part in parts:
                writer = await driver.writer(path, state)
                async for chunk in chunks_of(part, 512):
                    await writer.write(chunk)
                state = await writer.flush()
                await writer.close()
            writer = await driver.writer(path, state)
            await writer.commit()

        async with anyio.create_task_group() as tg:
            for path, parts in expected.items():
                tg.start_soon(upload, path, parts)
        for path, parts in expected.items():
            assert await read_all(driver, path) == b"".join(parts)
        assert await list_all(driver, scratch) == sorted(expected)

    async def test_writer_memory_stays_bounded(self, driver: StorageDriver, scratch: str) -> None:
        """A 200 MiB write through a writer holds < 40 MiB of Python memory (parts included)."""
        path, chunk = f"{scratch}/upload/data", payload(MiB, 9)
        was_tracing = tracemalloc.is_tracing()
        if not was_tracing:
            tracemalloc.start()
        tracemalloc.reset_peak()
        try:
            writer = await driver.writer(path)
            for _ in range(200):
                await writer.write(chunk)
            await writer.commit()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            if not was_tracing:
                tracemalloc.stop()
        info = await driver.stat(path)
        assert info is not None and info.size == 200 * MiB
        assert peak < 40 * MiB, f"peak Python memory {peak / MiB:.1f} MiB"

    async def test_superseded_writer_never_adds_its_bytes(self, driver: StorageDriver, scratch: str) -> None:
        """A writer whose process stalled while another resumed from the same state keeps
        writing and flushing: the recorded states stay the truth, its bytes never become part
        of the object (or, where a store cannot tell, the commit is refused)."""
        path, head, live_bytes = f"{scratch}/upload/data", payload(6 * MiB + 1, 1), payload(1000, 2)
        first = await driver.writer(path)
        await first.write(head)
        recorded = await first.flush()
        await first.close()
        stale = await driver.writer(path, recorded)
        live = await driver.writer(path, recorded)
        await live.write(live_bytes)
        recorded = await live.flush()
        await live.close()
        for late in (payload(100, 3), payload(6 * MiB, 4)):  # a small tail, then whole parts
            await stale.write(late)
            with contextlib.suppress(StorageError):
                await stale.flush()
        await stale.close()
        await _commit_or_refuse(driver, path, recorded, head + live_bytes)

    async def test_resumed_writers_never_keep_stale_flushes(
        self, driver: StorageDriver, scratch: str
    ) -> None:
        """A stale writer flushes AFTER the live one recorded its state; the next resumes."""
        path, head = f"{scratch}/upload/data", payload(5000, 5)
        first = await driver.writer(path)
        await first.write(head)
        recorded = await first.flush()
        await first.close()
        stale, live = await driver.writer(path, recorded), await driver.writer(path, recorded)
        await live.write(b"live")
        recorded = await live.flush()
        await live.close()
        await stale.write(b"STALE" * 1000)
        with contextlib.suppress(StorageError):
            await stale.flush()
        await stale.close()
        again = await driver.writer(path, recorded)
        await again.write(b"+end")
        recorded = await again.flush()
        await again.close()
        await _commit_or_refuse(driver, path, recorded, head + b"live+end")

    # --- unfinished writes (found by cleanup) -----------------------------------------------

    async def _unfinished(self, driver: StorageDriver, path: str, size: int) -> WriterState:
        writer = await driver.writer(path)
        await writer.write(payload(size, size))
        state = await writer.flush()
        await writer.write(b"never flushed")
        await writer.close()
        return state

    @pytest.mark.parametrize("size", [1000, 6 * MiB + 5])
    async def test_unfinished_write_is_found(self, driver: StorageDriver, scratch: str, size: int) -> None:
        """Cleanup finds every write no one will resume, as an object (``list``) or as a pending
        write (``pending``), never both; aborting and deleting leave nothing resumable."""
        path = f"{scratch}/uploads/u1/data"
        state = await self._unfinished(driver, path, size)
        listed, pending = await list_all(driver, scratch), [p async for p in driver.pending(scratch)]
        assert (listed, [p.path for p in pending]) in (([path], []), ([], [path]))
        for found in pending:
            assert found.started.tzinfo is not None
            assert found.started <= datetime.now(UTC) + timedelta(minutes=5)
            await driver.abort_pending(found)
            await driver.abort_pending(found)  # already gone: fine
        await driver.delete(f"{scratch}/uploads/u1")
        assert [p async for p in driver.pending(scratch)] == []
        with pytest.raises(WriterStateInvalid):
            await driver.writer(path, state)

    async def test_pending_is_per_prefix_and_ends_with_the_write(
        self, driver: StorageDriver, scratch: str
    ) -> None:
        a, ab, c = f"{scratch}/a/data", f"{scratch}/a-b/data", f"{scratch}/c/data"
        states = {path: await self._unfinished(driver, path, 2000) for path in (a, ab, c)}
        visible = set(await list_all(driver, scratch))
        pending = [p.path async for p in driver.pending(scratch)]
        assert pending == sorted(pending) and visible.isdisjoint(pending)
        assert sorted(visible.union(pending)) == sorted(states)
        assert [p.path async for p in driver.pending(f"{scratch}/a")] == [p for p in [a] if p not in visible]
        assert [p.path async for p in driver.pending(f"{scratch}/nothing")] == []
        stale = [p async for p in driver.pending(a)]
        committing = await driver.writer(a, states[a])
        await committing.commit()
        cancelling = await driver.writer(ab, states[ab])
        await cancelling.cancel()
        assert [p.path async for p in driver.pending(scratch)] in ([], [c])
        for found in stale:  # listed before the commit: aborting it must not touch the object
            await driver.abort_pending(found)
        assert await read_all(driver, a) == payload(2000, 2000)
        async for found in driver.pending(scratch):
            await driver.abort_pending(found)
        await driver.delete(f"{scratch}/c")
        assert await list_all(driver, scratch) == [a]

    @pytest.mark.parametrize("bad", BAD_PREFIXES)
    async def test_invalid_pending_prefix_rejected(self, driver: StorageDriver, bad: str) -> None:
        with pytest.raises(ValueError):
            [p async for p in driver.pending(bad)]

    # --- move / delete / list -------------------------------------------------------------

    async def test_move(self, driver: StorageDriver, scratch: str) -> None:
        src, dst = f"{scratch}/uploads/x/data", f"{scratch}/blobs/sha256/ab/abcd"
        data = payload(3000)
        await driver.write(src, chunks_of(data))
        await driver.move(src, dst)
        assert await driver.stat(src) is None
        assert await read_all(driver, dst) == data
        assert await list_all(driver, scratch) == [dst]

    async def test_move_sets_modified_to_the_time_of_the_move(
        self, driver: StorageDriver, scratch: str
    ) -> None:
        """GC's storage sweep ages content from when it got its content address, not from the
        upload's last write (a rename keeps that on a filesystem; an S3 copy does not)."""
        src, dst = f"{scratch}/uploads/y/data", f"{scratch}/blobs/sha256/cd/cdef"
        await driver.write(src, chunks_of(b"aged"))
        written = await driver.stat(src)
        assert written is not None
        await anyio.sleep(1.1)  # object stores keep whole seconds
        await driver.move(src, dst)
        moved = await driver.stat(dst)
        assert moved is not None and moved.modified > written.modified

    async def test_move_overwrites(self, driver: StorageDriver, scratch: str) -> None:
        src, dst = f"{scratch}/src", f"{scratch}/dst"
        await driver.write(src, chunks_of(b"new"))
        await driver.write(dst, chunks_of(b"old content"))
        await driver.move(src, dst)
        assert await read_all(driver, dst) == b"new"
        assert await list_all(driver, scratch) == [dst]

    async def test_move_missing(self, driver: StorageDriver, scratch: str) -> None:
        await driver.write(f"{scratch}/dst", chunks_of(b"old"))
        with pytest.raises(ObjectNotFound):
            await driver.move(f"{scratch}/nope", f"{scratch}/dst")
        assert await read_all(driver, f"{scratch}/dst") == b"old"

    async def test_move_onto_itself(self, driver: StorageDriver, scratch: str) -> None:
        await driver.write(f"{scratch}/obj", chunks_of(b"same"))
        await driver.move(f"{scratch}/obj", f"{scratch}/obj")
        assert await read_all(driver, f"{scratch}/obj") == b"same"

    async def test_delete_file_and_prefix(self, driver: StorageDriver, scratch: str) -> None:
        names = ["a/b", "a/bc", "a/b2/c", "d/e/f/g", "h"]
        for name in names:
            await driver.write(f"{scratch}/{name}", chunks_of(name.encode()))
        await driver.delete(f"{scratch}/a/b")  # a file; the sibling "a/bc" stays
        await driver.delete(f"{scratch}/d")  # a prefix, recursively
        await driver.delete(f"{scratch}/missing")
        await driver.delete(f"{scratch}/a/b/deeper")
        assert await list_all(driver, scratch) == [f"{scratch}/{n}" for n in ("a/b2/c", "a/bc", "h")]
        await driver.delete(f"{scratch}/a/b2/c")
        assert await driver.stat(f"{scratch}/a/b2/c") is None

    async def test_list_sorted_recursive(self, driver: StorageDriver, scratch: str) -> None:
        names = ["a/b", "a-c", "a.b", "a0", "a/b0/c", "z", "a/b-/x", "B", "a:1"]
        for name in reversed(names):
            await driver.write(f"{scratch}/{name}", chunks_of(b"x"))
        everything = sorted(f"{scratch}/{n}" for n in names)
        assert await list_all(driver, scratch) == everything
        assert await list_all(driver, scratch + "/") == everything
        assert await list_all(driver, "") == everything
        under_a = [f"{scratch}/a/b", f"{scratch}/a/b-/x", f"{scratch}/a/b0/c"]
        assert await list_all(driver, f"{scratch}/a") == under_a  # not "a-c", "a.b", "a0", "a:1"
        assert await list_all(driver, f"{scratch}/a/b") == [f"{scratch}/a/b"]  # the object itself
        assert await list_all(driver, f"{scratch}/a/b0/") == [f"{scratch}/a/b0/c"]
        assert await list_all(driver, f"{scratch}/nothing") == []

    async def test_delete_objects_deletes_exactly_those(self, driver: StorageDriver, scratch: str) -> None:
        """``delete_objects`` removes the named objects only (not what is below a name, not
        neighbours); a missing one is fine; an invalid path deletes nothing."""
        names = [f"{scratch}/a/x", f"{scratch}/a/y", f"{scratch}/b", f"{scratch}/d/below", f"{scratch}/c"]
        for name in names:
            await driver.write(name, chunks_of(b"data"))
        with pytest.raises(ValueError):
            await driver.delete_objects([f"{scratch}/c", "../escape"])
        await driver.delete_objects([f"{scratch}/a/x", f"{scratch}/b", f"{scratch}/d", f"{scratch}/missing"])
        assert await list_all(driver, scratch) == [f"{scratch}/a/y", f"{scratch}/c", f"{scratch}/d/below"]
        await driver.delete_objects([])

    async def test_list_created_finds_what_was_placed_since(
        self, driver: StorageDriver, scratch: str
    ) -> None:
        """``list_created(prefix, since)`` never misses an object written or moved into place at
        or after ``since`` (in an old folder or a new one), and what it yields is what ``stat``
        says; with ``None`` it yields everything, like ``list``."""
        old = [f"{scratch}/blobs/aa/old", f"{scratch}/blobs/bb/old", f"{scratch}/u/x/data"]
        for name in old:
            await driver.write(name, chunks_of(b"old"))
        infos = [info for name in old if (info := await driver.stat(name)) is not None]
        since = max(i.modified for i in infos) + timedelta(seconds=1)  # S3: whole seconds
        wait = (since + timedelta(milliseconds=50) - datetime.now(UTC)).total_seconds()
        await asyncio.sleep(max(0.0, wait))  # so what follows is placed after ``since``
        await driver.write(f"{scratch}/staging", chunks_of(b"moved"))
        await driver.move(f"{scratch}/staging", f"{scratch}/blobs/aa/new")  # an old folder
        await driver.write(f"{scratch}/blobs/cc/new", chunks_of(b"new!"))  # a new folder
        everything = [i async for i in driver.list_created(scratch, None)]
        assert [i.path for i in everything] == await list_all(driver, scratch)
        recent = [i async for i in driver.list_created(scratch, since)]
        paths = [i.path for i in recent]
        assert {f"{scratch}/blobs/aa/new", f"{scratch}/blobs/cc/new"} <= set(paths)
        assert paths == sorted(paths)
        for info in recent:
            assert info == await driver.stat(info.path)

    # --- paths, URLs, memory --------------------------------------------------------------

    @pytest.mark.parametrize("bad", BAD_PATHS)
    async def test_invalid_paths_rejected(self, driver: StorageDriver, scratch: str, bad: str) -> None:
        good = f"{scratch}/good"
        await driver.write(good, chunks_of(b"x"))
        calls: list[Callable[[], Awaitable[object]]] = [
            lambda: driver.stat(bad), lambda: read_all(driver, bad),
            lambda: driver.write(bad, chunks_of(b"x")), lambda: driver.writer(bad),
            lambda: driver.move(good, bad), lambda: driver.move(bad, good), lambda: driver.delete(bad),
            lambda: driver.url_for(bad),
        ]  # fmt: skip
        for call in calls:
            with pytest.raises(ValueError):
                await call()
        with pytest.raises(ValueError):
            driver.local_path(bad)
        assert await list_all(driver, "") == [good]

    @pytest.mark.parametrize("bad", BAD_PREFIXES)
    async def test_invalid_list_prefix_rejected(self, driver: StorageDriver, bad: str) -> None:
        with pytest.raises(ValueError):
            await list_all(driver, bad)

    async def test_url_for_and_local_path(self, driver: StorageDriver, scratch: str) -> None:
        path, data = f"{scratch}/obj", payload(2048)
        await driver.write(path, chunks_of(data))
        url = await driver.url_for(path, expires_in=60)
        if url is not None:
            assert url.startswith(("http://", "https://"))
            async with httpx.AsyncClient() as client:
                assert (await client.get(url)).content == data
        local = driver.local_path(path)
        if local is not None:
            assert await anyio.Path(local).read_bytes() == data

    async def test_memory_stays_bounded(self, driver: StorageDriver, scratch: str) -> None:
        """A 200 MiB object streams through write and read with < 20 MiB of Python memory."""
        path, chunk, count = f"{scratch}/big", payload(MiB, 7), 200
        expected = hashlib.sha256()
        for _ in range(count):
            expected.update(chunk)

        async def source() -> AsyncIterator[bytes]:
            for _ in range(count):
                yield chunk

        digest, peak = await _peak_traced(driver, path, source(), count * MiB)
        assert digest == expected.hexdigest()
        assert peak < 20 * MiB, f"peak Python memory {peak / MiB:.1f} MiB"


async def _commit_or_refuse(driver: StorageDriver, path: str, state: WriterState, expected: bytes) -> None:
    """Resume ``state`` and commit: the object must be exactly ``expected``. A store that can
    only detect a superseded writer's interference (S3: a part replaced under the recorded
    ETag) refuses with ``WriterStateInvalid`` instead, at resume or commit; nothing is then
    visible at ``path``, and cleanup removes the write."""
    try:
        writer = await driver.writer(path, state)
        await writer.commit()
    except WriterStateInvalid:
        assert await driver.stat(path) is None
        async for found in driver.pending(path):
            await driver.abort_pending(found)
        await driver.delete(path)
        return
    assert await read_all(driver, path) == expected


async def _peak_traced(
    driver: StorageDriver, path: str, chunks: AsyncIterator[bytes], size: int
) -> tuple[str, int]:
    """Write ``chunks`` to ``path`` and read it back under tracemalloc; return (sha256, peak bytes)."""
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        assert await driver.write(path, chunks) == size
        digest = hashlib.sha256()
        async for piece in driver.read(path):
            digest.update(piece)
        return digest.hexdigest(), tracemalloc.get_traced_memory()[1]
    finally:
        if not was_tracing:
            tracemalloc.stop()
