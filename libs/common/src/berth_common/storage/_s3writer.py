"""The S3 driver's resumable writer: one multipart upload, plus small "tail" objects for flushes.

S3 wants every part but the last to be at least 5 MiB (S3 API reference, UploadPart), so a
``flush`` uploads what is buffered as a part when it is that large, and otherwise stores it as
a tail object ``<key>~tail-<random>``: a name no other writer ever uses, so a superseded writer
(one whose process stalled while another resumed) can never overwrite the tail a caller
recorded. The next writer reads the tail back and puts it in front of its first part. Tails are
removed when the write commits or is cancelled, never by a flush (a flush's state may never be
recorded, and the previous state must stay resumable).

State (``WriterState.data``): ``{"upload_id": str | None, "parts": [[number, etag, size], …],
"tail": [name, size] | None}``; the multipart upload is created with the first part, so a write
that never reached 5 MiB is a tail at most and commits with one PutObject.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
import structlog
from minio.datatypes import Part

from ._objectstore import Keys, MiB, part_size
from ._s3client import S3Client
from .base import StorageBackendError, WriterState, WriterStateInvalid

MIN_PART = 5 * MiB  # S3's smallest part (but the last)
MAX_PART = 5 * 1024 * MiB
MAX_PARTS = 10_000
_TAIL_NAME = re.compile(r"tail-[0-9a-f]{32}")
log = structlog.get_logger("berth.storage.s3")


@dataclass(frozen=True)
class PartRecord:
    """One uploaded part: number (1-10,000), ETag (without quotes), size in bytes."""

    number: int
    etag: str
    size: int


@dataclass
class Recorded:
    """The parsed ``WriterState.data`` of an S3 write."""

    upload_id: str | None = None
    parts: list[PartRecord] = field(default_factory=list)
    tail: tuple[str, int] | None = None

    def dump(self) -> dict[str, Any]:
        """JSON-ready form (see the module docstring)."""
        return {
            "upload_id": self.upload_id if self.parts else None,
            "parts": [[p.number, p.etag, p.size] for p in self.parts],
            "tail": list(self.tail) if self.tail else None,
        }


def parse_state(state: WriterState, path: str) -> Recorded:
    """Check and parse a state from ``S3Writer.flush`` (possibly revived from JSON).

    Raises:
        ValueError: negative size.
        WriterStateInvalid: not such a state, or its pieces do not add up to ``state.size``.
    """
    if state.size < 0:
        raise ValueError(f"negative resume size {state.size}")
    try:
        recorded = _parse(state.data)
    except (KeyError, TypeError, ValueError) as exc:
        raise WriterStateInvalid(path, f"not an S3 writer state ({exc})") from None
    total = sum(p.size for p in recorded.parts) + (recorded.tail[1] if recorded.tail else 0)
    if total != state.size:
        raise WriterStateInvalid(path, f"the recorded pieces hold {total} bytes, not {state.size}")
    return recorded


def _parse(data: Mapping[str, Any]) -> Recorded:
    upload_id = data.get("upload_id")
    parts = [PartRecord(int(n), str(etag), int(size)) for n, etag, size in data.get("parts") or []]
    tail = data.get("tail")
    if upload_id is not None and not isinstance(upload_id, str):
        raise TypeError("upload_id")
    if parts and upload_id is None:
        raise ValueError("parts without an upload")
    if not parts:
        upload_id = None
    numbers = [p.number for p in parts]
    if numbers != sorted(set(numbers)) or any(not 1 <= n <= MAX_PARTS for n in numbers):
        raise ValueError("part numbers")
    if any(p.size < MIN_PART for p in parts):
        raise ValueError("a part under 5 MiB")
    if tail is not None:
        name, size = str(tail[0]), int(tail[1])
        if not _TAIL_NAME.fullmatch(name) or not 0 < size < MIN_PART:
            raise ValueError("tail")
        return Recorded(upload_id, parts, (name, size))
    return Recorded(upload_id, parts, None)


class S3Writer:
    """``Writer`` of ``S3Driver`` (see the module docstring). Holds at most one part in memory.

    ``owns_path=False`` (the driver's one-shot ``write``) leaves other writes of the path alone;
    otherwise ``commit``/``cancel`` also abort every other multipart upload of the key and delete
    its tails (leftovers of superseded or abandoned writers).
    """

    def __init__(
        self,
        client: S3Client,
        keys: Keys,
        path: str,
        recorded: Recorded,
        buffer: bytearray,
        *,
        owns_path: bool,
    ) -> None:
        self.path, self._client, self._keys, self._key = path, client, keys, keys.key(path)
        self._upload_id, self._parts, self._tail = recorded.upload_id, list(recorded.parts), recorded.tail
        self._stored = sum(p.size for p in self._parts)  # bytes in parts
        self._buf, self._owns_path, self._open = buffer, owns_path, True

    @property
    def size(self) -> int:
        """Bytes written in total, resumed ones included."""
        return self._stored + len(self._buf)

    async def write(self, data: bytes) -> None:
        """Append ``data``; each full part is uploaded before this returns."""
        self._check_open()
        view = memoryview(data)
        while view:
            target = part_size(self._stored, minimum=MIN_PART, maximum=MAX_PART, divisor=1000)
            room = target - len(self._buf)
            self._buf += view[:room]
            self._tail, view = None, view[room:]
            if len(self._buf) >= target:
                await self._guard(self._upload_part())

    async def flush(self) -> WriterState:
        """Upload what is buffered (a part from 5 MiB, else a new tail object); return the state."""
        self._check_open()
        if len(self._buf) >= MIN_PART:
            await self._guard(self._upload_part())
        elif self._buf and self._tail is None:
            name = Keys.new_tail()
            await self._guard(self._client.put(self._keys.tail_key(self.path, name), self.path, self._buf))
            self._tail = (name, len(self._buf))
        return WriterState(self.size, Recorded(self._upload_id, list(self._parts), self._tail).dump())

    async def commit(self) -> None:
        """Complete the upload with exactly the recorded parts and this writer's own (or one
        PutObject when no part was uploaded), then clear leftovers of the path.

        Raises:
            WriterStateInvalid: S3 refused the part list (a part was replaced by a superseded
                writer, or the upload is gone); nothing becomes visible at ``path``.
        """
        self._check_open()
        self._open = False
        if (
            not self._parts or self._upload_id is None
        ):  # under one part: an upload without parts is a leftover
            await self._client.put(self._key, self.path, self._buf)
        else:
            if self._buf:
                await self._upload_part()
            done = [Part(p.number, p.etag) for p in self._parts]
            await self._client.complete(self._key, self.path, self._upload_id, done)
        self._buf = bytearray()
        if self._owns_path:
            await self._clear_leftovers(best_effort=True)

    async def cancel(self) -> None:
        """Abort the upload and remove every tail and other unfinished upload of the path."""
        self._open, self._buf = False, bytearray()
        with anyio.CancelScope(shield=True):
            if self._upload_id is not None:
                await self._client.abort(self._key, self.path, self._upload_id)
            if self._owns_path:
                await self._clear_leftovers(best_effort=False)

    async def close(self) -> None:
        """Drop unflushed bytes; what was flushed stays resumable."""
        self._open, self._buf = False, bytearray()

    async def abort_own(self) -> None:
        """Abort this writer's own upload (a one-shot ``write`` that failed), shielded."""
        self._open, self._buf = False, bytearray()
        if self._upload_id is not None:
            with anyio.CancelScope(shield=True):
                await self._client.abort(self._key, self.path, self._upload_id)

    async def _upload_part(self) -> None:
        number = self._parts[-1].number + 1 if self._parts else 1
        if number > MAX_PARTS:
            raise StorageBackendError(f"{self.path}: more than {MAX_PARTS} parts", retryable=False)
        if self._upload_id is None:
            self._upload_id = await self._client.create_upload(self._key, self.path)
        buf, self._buf = self._buf, bytearray()
        etag = await self._client.upload_part(self._key, self.path, self._upload_id, number, buf)
        self._parts.append(PartRecord(number, etag, len(buf)))
        self._stored += len(buf)
        self._tail = None

    async def _guard(self, step: Any) -> None:
        """Await ``step``; any failure (or cancellation) ends the writer: what it buffered is
        in an unknown state, and only the last flushed state may be resumed."""
        try:
            await step
        except BaseException:
            self._open, self._buf = False, bytearray()
            raise

    async def _clear_leftovers(self, *, best_effort: bool) -> None:
        try:
            await clear_path_leftovers(self._client, self._key, self.path)
        except StorageBackendError as exc:
            if not best_effort:
                raise
            log.warning("s3.leftovers_not_cleared", path=self.path, error=str(exc))

    def _check_open(self) -> None:
        if not self._open:
            raise ValueError(f"the writer of {self.path} is closed")


async def clear_path_leftovers(client: S3Client, key: str, path: str) -> None:
    """Abort every multipart upload of exactly ``key`` and delete every tail ``key~…``."""
    start: tuple[str, str] | None = None
    while True:
        uploads, more = await client.uploads(key, start)
        for upload in uploads:
            if upload.key == key:
                await client.abort(key, path, upload.upload_id)
        if not more:
            break
        start = (uploads[-1].key, uploads[-1].upload_id)
    pages = client.keys(key + "~")
    tails = [obj.object_name for obj in await client.next_keys(pages, key) if obj.object_name]
    while tails:
        await client.delete_keys(tails, path)
        tails = [obj.object_name for obj in await client.next_keys(pages, key) if obj.object_name]
