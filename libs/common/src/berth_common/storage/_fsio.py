"""Blocking filesystem helpers for ``FilesystemDriver``; each one is meant to run in a worker thread.

Kept apart from the driver so that the async code reads as a recipe and every syscall sits here.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import stat as stat_mod
from dataclasses import dataclass
from pathlib import Path

from .base import ObjectNotFound, WriterStateInvalid, validate_path

_MISSING = (FileNotFoundError, NotADirectoryError)


def write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    """Write every byte of ``data`` to ``fd`` (``os.write`` may write less than asked)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def fsync_dir(directory: Path) -> None:
    """Make a rename or unlink inside ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def regular_stat(full: Path) -> os.stat_result | None:
    """``os.stat`` of a regular file, or ``None`` for a missing path or a directory."""
    try:
        st = os.stat(full)
    except _MISSING:
        return None
    return st if stat_mod.S_ISREG(st.st_mode) else None


def open_for_read(full: Path, path: str) -> int:
    """Open ``full`` read-only and return the descriptor; ``ObjectNotFound`` if it is no file."""
    try:
        fd = os.open(full, os.O_RDONLY)
    except (*_MISSING, IsADirectoryError):
        raise ObjectNotFound(path) from None
    if not stat_mod.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ObjectNotFound(path)
    return fd


def open_with_parents(full: Path, flags: int) -> int:
    """``os.open(full, flags, 0o644)`` after creating parents; retries if a delete prunes them
    meanwhile (``prune_empty_dirs`` of a concurrent delete can remove a parent between
    ``mkdir`` and ``open``, or between two levels of ``mkdir(parents=True)`` itself)."""
    for _ in range(5):
        try:
            full.parent.mkdir(parents=True, exist_ok=True)
            return os.open(full, flags, 0o644)
        except FileNotFoundError:
            continue
    full.parent.mkdir(parents=True, exist_ok=True)
    return os.open(full, flags, 0o644)


def replace_with_parents(src: Path, dst: Path) -> None:
    """``os.replace(src, dst)`` after creating ``dst``'s parents (retried against concurrent pruning)."""
    for _ in range(5):
        try:
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
            return
        except FileNotFoundError:
            if not src.exists():
                raise
    dst.parent.mkdir(parents=True, exist_ok=True)
    os.replace(src, dst)


def prune_empty_dirs(directory: Path, root: Path) -> None:
    """Remove ``directory`` and its ancestors while they are empty, stopping at ``root``."""
    while directory != root and directory.is_relative_to(root):
        try:
            directory.rmdir()
        except OSError:
            return
        directory = directory.parent


def remove_tree(full: Path) -> None:
    """Delete a file or a whole directory tree; a missing path is fine."""
    try:
        if full.is_dir() and not full.is_symlink():
            _rmtree(full)
        else:
            full.unlink()
    except _MISSING:
        pass


def _rmtree(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)  # tolerates entries vanishing concurrently
    if directory.exists():
        shutil.rmtree(directory)  # something really could not be removed: surface the error


def sorted_entries(directory: Path) -> list[tuple[str, bool]]:
    """``(name, is_dir)`` of the valid object names in ``directory``, in full-path sort order.

    A directory sorts as ``name + "/"``, so a depth-first walk yields paths lexicographically
    sorted. Names that are not valid path components (temporary files) are skipped.
    """
    try:
        with os.scandir(directory) as it:
            entries = [(e.name, e.is_dir(follow_symlinks=False)) for e in it if _listable(e)]
    except _MISSING:
        return []
    entries.sort(key=lambda item: item[0] + "/" if item[1] else item[0])
    return entries


def entries_since(directory: Path, since: float | None) -> list[tuple[str, bool, int, float]]:
    """``(name, is_dir, size, mtime)`` like ``sorted_entries``, without the folders whose mtime
    is before ``since`` (seconds since the epoch; ``None``: keep all). A folder's mtime moves
    when an entry is created, renamed into it or removed, so a skipped folder gained nothing."""
    found: list[tuple[str, bool, int, float]] = []
    try:
        with os.scandir(directory) as it:
            for e in it:
                if not _listable(e):
                    continue
                try:
                    st = e.stat(follow_symlinks=False)
                except _MISSING:
                    continue
                is_dir = stat_mod.S_ISDIR(st.st_mode)
                if is_dir and since is not None and st.st_mtime < since:
                    continue
                found.append((e.name, is_dir, st.st_size, st.st_mtime))
    except _MISSING:
        return []
    found.sort(key=lambda item: item[0] + "/" if item[1] else item[0])
    return found


def _listable(entry: os.DirEntry[str]) -> bool:
    try:
        validate_path(entry.name)
    except ValueError:
        return False
    return entry.is_dir(follow_symlinks=False) or entry.is_file(follow_symlinks=False)


@dataclass
class TempFile:
    """A temporary sibling of a destination file, renamed over it on commit.

    Its name contains ``~``, which no valid path component does, so ``list`` never shows it.
    """

    fd: int
    path: Path

    @classmethod
    def create(cls, dst: Path) -> TempFile:
        """Create an empty temporary file in ``dst``'s directory (creating parents)."""
        tmp = dst.with_name(f".{dst.name}~{secrets.token_hex(8)}.tmp")
        return cls(open_with_parents(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL), tmp)

    def commit(self, dst: Path) -> None:
        """fsync, close and atomically rename over ``dst``."""
        os.fsync(self.fd)
        self._close()
        replace_with_parents(self.path, dst)
        fsync_dir(dst.parent)

    def discard(self) -> None:
        """Close and remove the temporary file (used when the write fails)."""
        self._close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def _close(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)


@dataclass
class WriteHandle:
    """A descriptor that writes at a tracked offset (``pwrite``): the file behind a ``Writer``.

    ``size`` is the offset of the next write; ``created`` says whether the file was made by this
    handle (its directory entry is fsynced with the first ``sync``).
    """

    fd: int
    path: Path
    size: int
    created: bool

    @classmethod
    def open(cls, full: Path, path: str, resume_size: int | None) -> WriteHandle:
        """A fresh (truncated) file when ``resume_size`` is None, else the existing file cut back
        to ``resume_size`` bytes (bytes past it were never flushed by a finished writer).

        Raises:
            WriterStateInvalid: resuming, the file is missing or shorter than ``resume_size``.
        """
        if resume_size is None:
            return cls(open_with_parents(full, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), full, 0, True)
        try:
            fd = os.open(full, os.O_WRONLY)
        except (*_MISSING, IsADirectoryError):
            raise WriterStateInvalid(path, "its data is gone") from None
        size = os.fstat(fd).st_size
        if size < resume_size:
            os.close(fd)
            raise WriterStateInvalid(path, f"{size} bytes stored, {resume_size} recorded")
        if size > resume_size:
            os.ftruncate(fd, resume_size)
        return cls(fd, full, resume_size, False)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Write all of ``data`` at ``size`` and advance it."""
        view = memoryview(data)
        while view:
            done = os.pwrite(self.fd, view, self.size)
            self.size += done
            view = view[done:]

    def sync(self, rest: bytes | bytearray = b"") -> None:
        """Write ``rest``, then fsync the file (and, once, the directory that got its entry)."""
        if rest:
            self.write(rest)
        os.fsync(self.fd)
        if self.created:
            fsync_dir(self.path.parent)
            self.created = False

    def close(self) -> None:
        """Close the descriptor (idempotent)."""
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)
