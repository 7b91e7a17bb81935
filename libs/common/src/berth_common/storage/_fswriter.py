"""The filesystem driver's resumable writer: segment files beside the object, claimed before
they are continued, joined at commit.

A writer writes into a segment file ``<name>~seg-<32 hex>`` beside the object (``~`` keeps it
out of ``list``); ``flush`` fsyncs it and records ``[name, size]``. Bytes below a recorded size
are never written again, and past it only by the one writer that *claims* the segment at that
size: an exclusively created marker ``<name>~seg-<hex>.claim-<size>``. A writer resumed from a
state continues its last segment if it wins that claim - the usual case: each PATCH of a chunked
upload appends to the same file - and otherwise (a superseded writer, one whose process stalled
while another resumed from the same state, claimed it first) starts a new segment. So what a
superseded writer writes never lands in a segment a caller recorded (the shape of S3 parts and
Azure blocks, which a stale writer cannot change either).

State (``WriterState.data``): ``{"segments": [[name, size], ...]}``. ``commit`` claims the first
segment at its recorded size, appends the others (``copy_file_range``: in the kernel, a reflink
where the filesystem has them) and renames it over the object - one rename for a write that
never changed hands; if another writer holds that claim, the recorded bytes are copied into a
fresh file instead. Every segment and marker of the path (stale writers' included) then goes.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ._fsio import (
    TempFile,
    WriteHandle,
    fsync_dir,
    open_with_parents,
    prune_empty_dirs,
    regular_stat,
    replace_with_parents,
)
from .base import PendingWrite, WriterState, WriterStateInvalid

_SEGMENT = re.compile(r"seg-[0-9a-f]{32}")
_MARK = "~seg-"
Segments = list[tuple[str, int]]


def segment_file(full: Path, name: str) -> Path:
    """The file of segment ``name`` of the object at ``full``."""
    return full.with_name(f"{full.name}~{name}")


def parse_segments(state: WriterState, path: str) -> Segments:
    """The segments a state from ``flush`` names (possibly revived from JSON).

    Raises:
        ValueError: negative size.
        WriterStateInvalid: not such a state, or the segments do not add up to ``state.size``.
    """
    if state.size < 0:
        raise ValueError(f"negative resume size {state.size}")
    try:
        segments = _parse(state.data)
    except (KeyError, TypeError, ValueError) as exc:
        raise WriterStateInvalid(path, f"not a filesystem writer state ({exc})") from None
    if sum(size for _, size in segments) != state.size:
        raise WriterStateInvalid(path, f"the recorded segments do not hold {state.size} bytes")
    return segments


def _parse(data: Mapping[str, Any]) -> Segments:
    segments = [(str(name), int(size)) for name, size in data.get("segments") or []]
    if any(not _SEGMENT.fullmatch(name) or size <= 0 for name, size in segments):
        raise ValueError("segment")
    return segments


def check_segments(full: Path, path: str, segments: Segments) -> None:
    """Every recorded segment is still there, at least as long as recorded.

    Raises:
        WriterStateInvalid: one is gone or shorter.
    """
    for name, size in segments:
        try:
            stored = os.stat(segment_file(full, name)).st_size
        except (FileNotFoundError, NotADirectoryError):
            raise WriterStateInvalid(path, f"segment {name} is gone") from None
        if stored < size:
            raise WriterStateInvalid(path, f"segment {name} holds {stored} bytes, {size} recorded")


def adopt_in_place(full: Path, path: str, size: int) -> Segments:
    """Resume a write recorded by earlier versions, whose writer wrote the file at ``path``
    itself (state data ``{}``): hard-link that file in as a segment, cut to ``size``.

    Raises:
        WriterStateInvalid: no such file, or shorter than ``size``.
    """
    st = regular_stat(full)
    if st is None or st.st_size < size:
        raise WriterStateInvalid(path, "its data is gone or shorter than recorded")
    name = f"seg-{secrets.token_hex(16)}"
    os.link(full, segment_file(full, name))
    if st.st_size > size:
        os.truncate(segment_file(full, name), size)
    return [(name, size)]


def new_segment(full: Path) -> tuple[str, WriteHandle]:
    """Create a fresh, empty segment file of ``full`` (and its parents)."""
    name = f"seg-{secrets.token_hex(16)}"
    target = segment_file(full, name)
    fd = open_with_parents(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    return name, WriteHandle(fd, target, 0, True)


def claim(full: Path, name: str, size: int) -> bool:
    """Take the one right to write segment ``name`` of ``full`` from ``size`` on; ``False`` if
    another writer took it (or the folder is gone)."""
    marker = full.with_name(f"{full.name}~{name}.claim-{size}")
    try:
        os.close(os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    except (FileExistsError, FileNotFoundError, NotADirectoryError):
        return False
    return True


def release(full: Path, name: str, size: int) -> None:
    """Give up the claim on segment ``name`` at ``size`` (a writer that ends without recording
    anything past it: the next resumer may continue the segment)."""
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        os.unlink(full.with_name(f"{full.name}~{name}.claim-{size}"))


def continue_segment(full: Path, path: str, name: str, size: int) -> WriteHandle | None:
    """Claim segment ``name`` at ``size`` and open it to write there (bytes past ``size`` are
    another writer's unflushed ones: cut); ``None`` if the claim is someone else's.

    Raises:
        WriterStateInvalid: the segment is gone.
    """
    if not claim(full, name, size):
        return None
    try:
        fd = os.open(segment_file(full, name), os.O_WRONLY)
    except (FileNotFoundError, NotADirectoryError):
        raise WriterStateInvalid(path, f"segment {name} is gone") from None
    os.ftruncate(fd, size)
    return WriteHandle(fd, segment_file(full, name), size, False)


def assemble(full: Path, path: str, segments: Segments, root: Path) -> None:
    """Make the recorded segments the object at ``full``, then remove every segment of it.

    Raises:
        WriterStateInvalid: a recorded segment is gone.
    """
    if not segments:
        TempFile.create(full).commit(full)
    elif claim(full, *segments[0]):
        first = segment_file(full, segments[0][0])
        try:
            fd = os.open(first, os.O_WRONLY)
        except (FileNotFoundError, NotADirectoryError):
            raise WriterStateInvalid(path, "the first segment is gone") from None
        try:
            _join(fd, full, path, segments[0][1], segments[1:])
        finally:
            os.close(fd)
        replace_with_parents(first, full)
        fsync_dir(full.parent)
    else:  # a superseded writer holds the first segment past its recorded size: copy
        tmp = TempFile.create(full)
        try:
            _join(tmp.fd, full, path, 0, segments)
        except BaseException:
            tmp.discard()
            raise
        tmp.commit(full)
    remove_segments(full, None, root)


def _join(fd: int, full: Path, path: str, offset: int, segments: Segments) -> None:
    """Cut ``fd`` to ``offset`` bytes and append the recorded bytes of ``segments``; fsync.
    Nothing to append and nothing to cut: nothing to do (the segment was fsynced at its flush)."""
    if not segments and os.fstat(fd).st_size == offset:
        return
    os.ftruncate(fd, offset)
    for name, size in segments:
        try:
            src = os.open(segment_file(full, name), os.O_RDONLY)
        except FileNotFoundError:
            raise WriterStateInvalid(path, f"segment {name} is gone") from None
        try:
            _copy(src, fd, size, offset)
        finally:
            os.close(src)
        offset += size
    os.fsync(fd)


def _copy(src: int, dst: int, size: int, at: int) -> None:
    done = 0
    while done < size:
        try:
            n = os.copy_file_range(src, dst, size - done, done, at + done)
        except OSError:  # no copy_file_range between these files: copy through memory
            n = os.pwrite(dst, os.pread(src, min(size - done, 1 << 20), done), at + done)
        if n <= 0:
            raise OSError(f"segment shorter than {size} bytes")
        done += n


def remove_segments(full: Path, names: list[str] | None, root: Path) -> None:
    """Remove segments ``names`` of ``full`` (``None``: all) with their claim markers, then
    emptied parents."""
    stems = (
        (f"{full.name}{_MARK}",)
        if names is None
        else tuple(f"{full.name}~{n}" for n in names if _SEGMENT.fullmatch(n))
    )
    try:
        with os.scandir(full.parent) as entries:
            doomed = [e.name for e in entries if stems and e.name.startswith(stems)]
    except (FileNotFoundError, NotADirectoryError):
        return
    for name in doomed:
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            os.unlink(full.parent / name)
    prune_empty_dirs(full.parent, root)


def find_pending(root: Path, prefix: str) -> list[PendingWrite]:
    """Every path at or below ``prefix`` (``""``: all) with segments, sorted by path."""
    found: dict[str, tuple[float, list[str]]] = {}
    if prefix:
        parent, _, name = prefix.rpartition("/")
        _scan(root / parent if parent else root, parent, found, only=name)
        if (root / prefix).is_dir():
            _walk(root / prefix, prefix, found)
    else:
        _walk(root, "", found)
    return [
        PendingWrite(path, datetime.fromtimestamp(mtime, tz=UTC), tuple(names))
        for path, (mtime, names) in sorted(found.items())
    ]


def _walk(directory: Path, rel: str, found: dict[str, tuple[float, list[str]]]) -> None:
    for sub in _scan(directory, rel, found, only=None):
        _walk(directory / sub, f"{rel}/{sub}" if rel else sub, found)


def _scan(
    directory: Path, rel: str, found: dict[str, tuple[float, list[str]]], only: str | None
) -> list[str]:
    """Note the segments in ``directory`` (of object ``only``, or all); return subdirectories."""
    subdirs: list[str] = []
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    subdirs.append(entry.name)
                    continue
                stem, mark, rest = entry.name.partition(_MARK)
                if not mark or not _SEGMENT.fullmatch("seg-" + rest) or (only is not None and stem != only):
                    continue
                with contextlib.suppress(FileNotFoundError):
                    mtime = entry.stat(follow_symlinks=False).st_mtime
                    path = f"{rel}/{stem}" if rel else stem
                    first, names = found.get(path, (mtime, []))
                    found[path] = (min(first, mtime), [*names, "seg-" + rest])
    except (FileNotFoundError, NotADirectoryError):
        pass
    return subdirs
