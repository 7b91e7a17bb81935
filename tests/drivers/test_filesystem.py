"""The shared driver suite on ``FilesystemDriver``, plus what only a filesystem can show:
no stray files or directories, temp files invisible, the root never escaped, writers' segments
claimed before they are continued."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from berth_common.storage import FilesystemDriver, StorageDriver, WriterState, WriterStateInvalid
from tests.drivers.suite import DriverSuite, chunks_of, list_all, payload, read_all


def everything_under(root: Path) -> list[str]:
    """Every file and directory below ``root``, relative and sorted."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


class TestFilesystemDriver(DriverSuite):
    """Runs every ``DriverSuite`` test; leftovers are checked on disk (files AND directories)."""

    @pytest.fixture
    async def driver(self, tmp_path: Path) -> AsyncIterator[StorageDriver]:
        driver = FilesystemDriver(tmp_path / "store")
        yield driver
        await driver.close()

    async def leftovers(self, driver: StorageDriver) -> list[str]:
        assert isinstance(driver, FilesystemDriver)
        return await anyio.to_thread.run_sync(everything_under, driver.root)

    async def test_temp_files_are_invisible(self, driver: FilesystemDriver, scratch: str) -> None:
        started, release = anyio.Event(), anyio.Event()
        seen: list[list[str]] = []

        async def slow() -> AsyncIterator[bytes]:
            started.set()  # the temporary file exists once the driver pulls data
            yield b"partial"
            await release.wait()

        async def lister() -> None:
            await started.wait()
            seen.append(await list_all(driver, ""))
            seen.append(everything_under(driver.root))
            release.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(lister)
            await driver.write(f"{scratch}/obj", slow())
        assert seen[0] == [] and any("~" in name for name in seen[1])
        assert await list_all(driver, "") == [f"{scratch}/obj"]

    async def test_a_writer_continues_a_segment_only_with_its_claim(
        self, driver: FilesystemDriver, scratch: str
    ) -> None:
        """After a flush, writing on in the same segment needs the claim at that size; a second
        writer resumed from that state (a takeover) writes a new segment, and the commit of the
        recorded state has exactly the recorded bytes."""
        path = f"{scratch}/upload/data"
        writer = await driver.writer(path)
        await writer.write(b"kept")
        recorded = await writer.flush()
        await writer.write(b"x" * 5000)  # claims the segment at 4 and writes on in it
        await writer.flush()  # durable, but the caller never recorded this state
        await writer.close()
        folder = driver.root / scratch / "upload"
        assert sorted(p.stat().st_size for p in folder.iterdir() if ".claim-" not in p.name) == [5004]
        takeover = await driver.writer(path, recorded)
        await takeover.write(b"+new")
        state = await takeover.flush()
        await takeover.close()
        assert len(state.data["segments"]) == 2
        assert sorted(p.stat().st_size for p in folder.iterdir() if ".claim-" not in p.name) == [4, 5004]
        final = await driver.writer(path, state)
        await final.commit()
        assert everything_under(folder) == ["data"] and (folder / "data").read_bytes() == b"kept+new"

    async def test_sequential_resumes_grow_one_file_committed_by_rename(
        self, driver: FilesystemDriver, scratch: str
    ) -> None:
        """A chunked upload's PATCHes (one writer each, flushed once), a PATCH that fails before
        its flush, then the PUT: one segment file throughout, and the commit moves it (no copy)."""
        path, folder = f"{scratch}/upload/data", driver.root / scratch / "upload"
        state, parts = None, [payload(3 * 1024 * 1024, n) for n in range(3)]
        for part in parts:
            writer = await driver.writer(path, state)
            await writer.write(part)
            state = await writer.flush()
            await writer.close()
            segment_files = [p for p in folder.iterdir() if ".claim-" not in p.name]
            assert len(segment_files) == 1 and len(state.data["segments"]) == 1
        failed = await driver.writer(path, state)
        await failed.write(payload(5000, 9))  # the client went away: no flush
        await failed.close()
        inode = segment_files[0].stat().st_ino
        writer = await driver.writer(path, state)
        await writer.write(b"end")
        await writer.commit()
        assert (driver.root / path).stat().st_ino == inode
        assert (driver.root / path).read_bytes() == b"".join(parts) + b"end"
        assert everything_under(folder) == ["data"]

    async def test_a_write_recorded_in_place_by_earlier_versions_resumes(
        self, driver: FilesystemDriver, scratch: str
    ) -> None:
        """Upload sessions opened before segments recorded only a size (state ``{}``): their
        bytes are the file at the path, possibly with unflushed bytes past that size."""
        path = f"{scratch}/upload/data"
        await driver.write(path, chunks_of(b"recorded" + b"unflushed"))
        writer = await driver.writer(path, WriterState(8, {}))
        await writer.write(b"+more")
        state = await writer.flush()
        await writer.close()
        writer = await driver.writer(path, state)
        await writer.commit()
        assert await read_all(driver, path) == b"recorded+more"
        assert everything_under(driver.root / scratch) == ["upload", "upload/data"]
        with pytest.raises(WriterStateInvalid):
            await driver.writer(f"{scratch}/upload/gone", WriterState(8, {}))

    async def test_root_is_never_escaped(self, driver: FilesystemDriver, tmp_path: Path) -> None:
        outside = tmp_path / "outside"
        outside.write_bytes(b"secret")
        for bad in ("../outside", "/" + str(outside).lstrip("/"), "a/../../outside"):
            with pytest.raises(ValueError):
                await read_all(driver, bad)
            with pytest.raises(ValueError):
                await driver.delete(bad)
        assert outside.read_bytes() == b"secret"
        assert sorted(os.listdir(tmp_path)) == ["outside", "store"]
        outside.unlink()

    async def test_local_path_is_the_file(self, driver: FilesystemDriver, scratch: str) -> None:
        await driver.write(f"{scratch}/a/obj", chunks_of(b"data"))
        assert driver.local_path(f"{scratch}/a/obj") == driver.root / scratch / "a" / "obj"
        assert await driver.url_for(f"{scratch}/a/obj") is None


def test_parents_pruned_by_a_concurrent_delete_are_made_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A delete of the last session in ``uploads/`` prunes that folder; a new session creating
    ``uploads/<id>/`` at the same moment must not fail (seen as a 500 under concurrent pushes:
    ``mkdir(parents=True)`` made ``uploads``, the prune removed it, the next level failed)."""
    from berth_common.storage import _fsio

    real_mkdir, pruned = os.mkdir, list[Path]()

    def mkdir_racing_a_prune(path: Any, mode: int = 0o777, **kw: Any) -> None:
        target = Path(path)
        if target.name == "session" and not pruned and target.parent.is_dir():
            pruned.append(target.parent)
            target.parent.rmdir()  # the concurrent delete's prune_empty_dirs
        real_mkdir(path, mode, **kw)

    monkeypatch.setattr(os, "mkdir", mkdir_racing_a_prune)
    full = tmp_path / "feeds" / "f" / "uploads" / "session" / "data"
    fd = _fsio.open_with_parents(full, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    os.close(fd)
    assert pruned and full.is_file()
