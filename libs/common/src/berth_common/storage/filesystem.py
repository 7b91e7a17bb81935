"""The filesystem storage driver: objects are regular files below one root directory.

Every blocking syscall runs in a worker thread (``anyio.to_thread``) with large (1 MiB) buffers,
so the event loop never waits on the disk; memory stays bounded whatever the object size.
Only rare failure cleanup (close/unlink/ftruncate) runs inline, so it also survives cancellation.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from anyio import to_thread

from . import _fsio, _fswriter
from .base import (
    ObjectInfo,
    ObjectNotFound,
    PendingWrite,
    Writer,
    WriterState,
    validate_path,
    validate_prefix,
)

_T = TypeVar("_T")
_BUFFER = 1 << 20


async def _run(func: Callable[..., _T], *args: object) -> _T:
    return await to_thread.run_sync(func, *args)


class FilesystemDriver:
    """``StorageDriver`` over a local directory ``root`` (created if missing).

    ``write`` goes to a temporary sibling then ``os.replace``; a ``writer`` writes the file in
    place at tracked offsets and fsyncs on ``flush``; ``delete`` prunes empty parent directories.
    Paths are validated (``base.validate_path``), so no operation can leave ``root``.
    """

    name = "filesystem"

    def __init__(self, root: Path, *, buffer_size: int = _BUFFER) -> None:
        self._root = Path(root).resolve()
        self._root.mkdir(parents=True, exist_ok=True)
        self._buffer = buffer_size

    @property
    def root(self) -> Path:
        """The absolute directory that holds every object."""
        return self._root

    def _full(self, path: str) -> Path:
        return self._root / validate_path(path)

    async def stat(self, path: str) -> ObjectInfo | None:
        """Size and mtime (UTC) of a regular file; ``None`` for a missing path or a directory."""
        st = await _run(_fsio.regular_stat, self._full(path))
        if st is None:
            return None
        return ObjectInfo(path, st.st_size, datetime.fromtimestamp(st.st_mtime, tz=UTC))

    def read(
        self, path: str, offset: int = 0, length: int | None = None, chunk_size: int = _BUFFER
    ) -> AsyncIterator[bytes]:
        """Stream ``[offset, offset+length)`` with ``pread``; see ``StorageDriver.read``.

        Raises:
            ValueError: invalid path, negative offset/length, or ``chunk_size < 1`` (at call time).
            ObjectNotFound: on the first iteration, if ``path`` is no file.
        """
        if offset < 0 or (length is not None and length < 0) or chunk_size < 1:
            raise ValueError(f"invalid read window offset={offset} length={length} chunk={chunk_size}")
        return self._read(self._full(path), path, offset, length, chunk_size)

    async def _read(
        self, full: Path, path: str, offset: int, length: int | None, chunk_size: int
    ) -> AsyncIterator[bytes]:
        fd = await _run(_fsio.open_for_read, full, path)
        try:
            remaining = -1 if length is None else length
            while remaining != 0:
                want = chunk_size if remaining < 0 else min(chunk_size, remaining)
                data = await _run(os.pread, fd, want, offset)
                if not data:
                    return
                offset += len(data)
                remaining = remaining if remaining < 0 else remaining - len(data)
                yield data
        finally:
            os.close(fd)

    async def write(self, path: str, chunks: AsyncIterable[bytes]) -> int:
        """Write to a temporary sibling, fsync, then ``os.replace``; return the bytes written."""
        full = self._full(path)
        tmp = await _run(_fsio.TempFile.create, full)
        written, buf = 0, bytearray()
        try:
            async for chunk in chunks:
                written += len(chunk)
                buf += chunk
                if len(buf) >= self._buffer:
                    await _run(_fsio.write_all, tmp.fd, buf)
                    buf = bytearray()
            if buf:
                await _run(_fsio.write_all, tmp.fd, buf)
            await _run(tmp.commit, full)
        except BaseException:
            tmp.discard()
            raise
        return written

    async def writer(self, path: str, resume: WriterState | None = None) -> Writer:
        """A ``Writer`` of claimed segment files beside ``path`` (``_fswriter``); ``path`` itself
        changes only at ``commit``. See ``StorageDriver.writer``.

        Raises:
            WriterStateInvalid: resuming, a recorded segment is missing or shorter than recorded.
        """
        full = self._full(path)
        state = resume or WriterState(0)
        if state.size > 0 and not state.data:  # recorded by the in-place writer of earlier versions
            segments = await _run(_fswriter.adopt_in_place, full, path, state.size)
        else:
            segments = _fswriter.parse_segments(state, path)
            await _run(_fswriter.check_segments, full, path, segments)
        return _FileWriter(self, path, full, segments)

    async def move(self, src: str, dst: str) -> None:
        """Rename ``src`` over ``dst`` (parents created); ``ObjectNotFound`` if ``src`` is no file."""
        await _run(self._move, self._full(src), self._full(dst), src)

    def _move(self, src: Path, dst: Path, src_path: str) -> None:
        if _fsio.regular_stat(src) is None:
            raise ObjectNotFound(src_path)
        if src == dst:
            return
        _fsio.replace_with_parents(src, dst)
        os.utime(dst)  # modified = the move's time (the protocol's contract; GC's sweep relies on it)
        _fsio.fsync_dir(dst.parent)
        _fsio.prune_empty_dirs(src.parent, self._root)

    async def delete(self, path: str) -> None:
        """Remove a file or a whole directory tree, then empty parents; missing is fine."""
        await _run(self._delete, self._full(path))

    def _delete(self, full: Path) -> None:
        _fsio.remove_tree(full)
        _fsio.prune_empty_dirs(full.parent, self._root)

    async def delete_objects(self, paths: Sequence[str]) -> None:
        """See ``StorageDriver.delete_objects``: one worker thread unlinks them all (and prunes
        emptied folders)."""
        fulls = [self._full(validate_path(p)) for p in paths]
        await _run(self._delete_files, fulls)

    def _delete_files(self, fulls: list[Path]) -> None:
        for full in fulls:
            with contextlib.suppress(FileNotFoundError, NotADirectoryError, IsADirectoryError):
                os.unlink(full)
        for parent in {full.parent for full in fulls}:  # each emptied folder once
            _fsio.prune_empty_dirs(parent, self._root)

    def list(self, prefix: str) -> AsyncIterator[str]:
        """Object paths at or below ``prefix``, sorted, streamed directory by directory.

        Raises:
            ValueError: ``prefix`` is not ``""`` or a valid path (at call time).
        """
        norm = validate_prefix(prefix)
        return self._list(norm)

    async def _list(self, prefix: str) -> AsyncIterator[str]:
        start = self._root / prefix if prefix else self._root
        if prefix and await _run(_fsio.regular_stat, start) is not None:
            yield prefix
            return
        async for path in self._walk(start, prefix):
            yield path

    async def _walk(self, directory: Path, rel: str) -> AsyncIterator[str]:
        for name, is_dir in await _run(_fsio.sorted_entries, directory):
            child = f"{rel}/{name}" if rel else name
            if not is_dir:
                yield child
                continue
            async for path in self._walk(directory / name, child):
                yield path

    def list_created(self, prefix: str, since: datetime | None) -> AsyncIterator[ObjectInfo]:
        """See ``StorageDriver.list_created``: a walk that skips folders not changed since
        ``since`` (their mtime), with each file's size and mtime from the same ``scandir``."""
        norm = validate_prefix(prefix)
        return self._list_created(norm, None if since is None else since.timestamp())

    async def _list_created(self, prefix: str, since: float | None) -> AsyncIterator[ObjectInfo]:
        start = self._root / prefix if prefix else self._root
        if prefix and (st := await _run(_fsio.regular_stat, start)) is not None:
            yield ObjectInfo(prefix, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC))
            return
        async for info in self._walk_created(start, prefix, since):
            yield info

    async def _walk_created(
        self, directory: Path, rel: str, since: float | None
    ) -> AsyncIterator[ObjectInfo]:
        for name, is_dir, size, mtime in await _run(_fsio.entries_since, directory, since):
            child = f"{rel}/{name}" if rel else name
            if not is_dir:
                yield ObjectInfo(child, size, datetime.fromtimestamp(mtime, UTC))
                continue
            async for info in self._walk_created(directory / name, child, since):
                yield info

    async def url_for(
        self,
        path: str,
        *,
        method: str = "GET",
        expires_in: int = 1200,
        external_host: str | None = None,
    ) -> str | None:
        """Always ``None``: files are served by the application (zero-copy, see ``local_path``)."""
        validate_path(path)
        return None

    def pending(self, prefix: str) -> AsyncIterator[PendingWrite]:
        """Paths at or below ``prefix`` with segment files of unfinished writers (one walk of
        the folder tree below ``prefix``); ``ref`` holds the segment names, ``started`` the
        oldest one's mtime. See ``StorageDriver.pending``.

        Raises:
            ValueError: ``prefix`` is not ``""`` or a valid path (at call time).
        """
        return self._pending(validate_prefix(prefix))

    async def _pending(self, prefix: str) -> AsyncIterator[PendingWrite]:
        for found in await _run(_fswriter.find_pending, self._root, prefix):
            yield found

    async def abort_pending(self, pending: PendingWrite) -> None:
        """Remove the segment files ``pending.ref`` names (a committed object is never one)."""
        await _run(_fswriter.remove_segments, self._full(pending.path), list(pending.ref), self._root)

    def local_path(self, path: str) -> Path | None:
        """The file that holds ``path`` (it may not exist: ``stat`` first); never outside ``root``."""
        return self._full(path)

    async def close(self) -> None:
        """Nothing to release."""


class _FileWriter:
    """``Writer`` of ``FilesystemDriver`` (``_fswriter``): buffers up to the driver's buffer
    size and writes in a worker thread, into its last segment if it wins the claim on it, else
    into a new one; ``flush`` fsyncs and records the segment."""

    def __init__(self, driver: FilesystemDriver, path: str, full: Path, segments: _fswriter.Segments) -> None:
        self.path, self._driver, self._full = path, driver, full
        self._segments, self._buf = list(segments), bytearray()
        self._current: tuple[str, _fsio.WriteHandle, bool] | None = None  # name, handle, continues last
        self._open = True

    @property
    def size(self) -> int:
        """Bytes written in total (resumed and buffered ones included)."""
        recorded = sum(size for _, size in self._segments)
        if self._current is None:
            return recorded + len(self._buf)
        _, handle, continues = self._current
        base = recorded - self._segments[-1][1] if continues else recorded
        return base + handle.size + len(self._buf)

    async def write(self, data: bytes) -> None:
        """Append ``data``; large pieces go straight to the segment, small ones are gathered first."""
        self._check_open()
        limit = self._driver._buffer
        if not self._buf and len(data) >= limit:
            await _run(self._write_through, data)
            return
        self._buf += data
        if len(self._buf) >= limit:
            buf, self._buf = self._buf, bytearray()
            await _run(self._write_through, buf)

    async def flush(self) -> WriterState:
        """Write what is buffered, fsync and record the segment (one thread hop); return the state."""
        self._check_open()
        buf, self._buf = self._buf, bytearray()
        await _run(self._seal, buf)
        return WriterState(self.size, {"segments": [[name, size] for name, size in self._segments]})

    async def commit(self) -> None:
        """Flush, then join the segments into the object at ``path`` (one rename for one segment)."""
        await self.flush()
        self._open = False
        await _run(_fswriter.assemble, self._full, self.path, self._segments, self._driver.root)

    async def cancel(self) -> None:
        """Remove every segment of ``path`` (this write's, resumed ones and stale writers')."""
        self._open, self._buf = False, bytearray()
        self._drop_current()
        await _run(_fswriter.remove_segments, self._full, None, self._driver.root)

    async def close(self) -> None:
        """Drop the buffer and a new segment not yet recorded; recorded segments stay resumable."""
        self._open, self._buf = False, bytearray()
        self._drop_current()

    def _write_through(self, data: bytes | bytearray) -> None:
        if self._current is None:
            self._current = self._open_segment()
        self._current[1].write(data)

    def _open_segment(self) -> tuple[str, _fsio.WriteHandle, bool]:
        if self._segments:
            name, size = self._segments[-1]
            handle = _fswriter.continue_segment(self._full, self.path, name, size)
            if handle is not None:
                return name, handle, True
        name, handle = _fswriter.new_segment(self._full)
        return name, handle, False

    def _seal(self, rest: bytes | bytearray) -> None:
        if rest:
            self._write_through(rest)
        if self._current is None:
            return
        name, handle, continues = self._current
        self._current = None
        if handle.size == 0:  # a new segment that got no byte
            handle.close()
            _fswriter.remove_segments(self._full, [name], self._driver.root)
            return
        handle.sync()
        handle.close()
        if continues:
            self._segments[-1] = (name, handle.size)
        else:
            self._segments.append((name, handle.size))

    def _drop_current(self) -> None:
        """Close the segment written since the last flush (runs inline: cleanup). A new one is
        removed; a continued one keeps its recorded bytes and its claim is given back (the next
        claimer cuts what this writer wrote past them)."""
        if self._current is not None:
            name, handle, continues = self._current
            self._current = None
            handle.close()
            if continues:
                _fswriter.release(self._full, name, self._segments[-1][1])
            else:
                _fswriter.remove_segments(self._full, [name], self._driver.root)

    def _check_open(self) -> None:
        if not self._open:
            raise ValueError(f"the writer of {self.path} is closed")
