"""The S3 storage driver: objects in a bucket of any S3-compatible store (MinIO, AWS, Ceph RGW),
through the ``minio`` client.

Path ``p`` is key ``<prefix>/p``. Writers are multipart uploads (``_s3writer``); ``move`` is a
server-side copy (UploadPartCopy in ranges above ``multipart_copy_threshold``, never one copy of
more than 5 GiB) then a delete; ``url_for`` presigns GET/HEAD for the public endpoint (SigV4
query signing). Blocking minio calls run in worker threads, at most ``max_connections`` at once,
over one urllib3 pool of that size; reads stream in ``chunk_size`` pieces, so memory stays bounded.
Build it with ``create_driver("s3", …)`` (options in ``S3Settings.from_options``).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import anyio
from anyio import CapacityLimiter
from minio import Minio
from minio.datatypes import Part

from ._objectstore import Keys, MiB, check_window
from ._s3client import S3Client
from ._s3settings import S3Settings, make_clients
from ._s3writer import S3Writer, clear_path_leftovers, parse_state
from .base import ObjectInfo, ObjectNotFound, PendingWrite, WriterState, WriterStateInvalid, validate_path
from .base import Writer as WriterProtocol

__all__ = ["S3Driver", "S3Settings"]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class S3Driver:
    """``StorageDriver`` over ``settings.bucket`` below ``settings.prefix`` (see the module
    docstring). The bucket must exist. ``repr`` never shows credentials."""

    name = "s3"

    def __init__(self, settings: S3Settings) -> None:
        self.settings = settings
        minio, presigner = make_clients(settings)
        limiter = CapacityLimiter(settings.max_connections)
        self._client = S3Client(minio, presigner, settings.bucket, limiter)
        self._keys = Keys(settings.prefix)

    def __repr__(self) -> str:
        s = self.settings
        return f"S3Driver(endpoint={s.endpoint!r}, bucket={s.bucket!r}, prefix={s.prefix!r})"

    @property
    def minio(self) -> Minio:
        """The underlying client (for tests and tools; Berth's code uses the protocol)."""
        return self._client.minio

    async def stat(self, path: str) -> ObjectInfo | None:
        """HeadObject: size and Last-Modified (whole seconds, UTC); ``None`` when missing."""
        obj = await self._client.head(self._keys.key(path), path)
        if obj is None:
            return None
        return ObjectInfo(path, int(obj.size or 0), obj.last_modified or _EPOCH)

    def read(
        self, path: str, offset: int = 0, length: int | None = None, chunk_size: int = MiB
    ) -> AsyncIterator[bytes]:
        """One ranged GetObject streamed in ``chunk_size`` pieces; see ``StorageDriver.read``.

        Raises:
            ValueError: invalid path or window (at call time).
            ObjectNotFound: on the first iteration, if there is no object at ``path``.
        """
        check_window(offset, length, chunk_size)
        return self._read(self._keys.key(path), path, offset, length, chunk_size)

    async def _read(
        self, key: str, path: str, offset: int, length: int | None, chunk_size: int
    ) -> AsyncIterator[bytes]:
        if length == 0:
            if await self._client.head(key, path) is None:
                raise ObjectNotFound(path)
            return
        response = await self._client.open(key, path, offset, length or 0)
        if response is None:
            return
        try:
            while chunk := await self._client.call(path, response.read, chunk_size):
                yield chunk
        finally:
            response.close()
            response.release_conn()

    async def write(self, path: str, chunks: AsyncIterable[bytes]) -> int:
        """Stream into one PutObject (under one part) or a multipart upload; see
        ``StorageDriver.write``. A failure aborts the upload, leaving ``path`` as it was."""
        writer = S3Writer(
            self._client, self._keys, path, parse_state(WriterState(0), path), bytearray(), owns_path=False
        )
        try:
            async for chunk in chunks:
                await writer.write(chunk)
            size = writer.size
            await writer.commit()
        except BaseException:
            await writer.abort_own()
            raise
        return size

    async def writer(self, path: str, resume: WriterState | None = None) -> WriterProtocol:
        """A multipart ``Writer`` (``_s3writer``). Resuming checks the recorded parts against
        ListParts (number, ETag, size) and reads the recorded tail back.

        Raises:
            WriterStateInvalid: the upload, a recorded part or the tail is gone or different.
        """
        key = self._keys.key(path)
        recorded = parse_state(resume or WriterState(0), path)
        if recorded.upload_id is not None:
            actual = {p.part_number: p for p in await self._client.list_parts(key, path, recorded.upload_id)}
            for part in recorded.parts:
                found = actual.get(part.number)
                if found is None or found.etag != part.etag or found.size != part.size:
                    raise WriterStateInvalid(path, f"part {part.number} is missing or was replaced")
        buffer = bytearray()
        if recorded.tail is not None:
            try:
                buffer += await self._client.read_small(self._keys.tail_key(path, recorded.tail[0]), path)
            except ObjectNotFound:
                raise WriterStateInvalid(path, "the flushed tail is gone") from None
            if len(buffer) != recorded.tail[1]:
                raise WriterStateInvalid(path, "the flushed tail has another size")
        elif resume is not None and resume.size > 0 and recorded.upload_id is None:
            raise WriterStateInvalid(path, "nothing recorded")
        return S3Writer(self._client, self._keys, path, recorded, buffer, owns_path=True)

    async def move(self, src: str, dst: str) -> None:
        """Server-side copy then delete of ``src``; ``dst``'s Last-Modified is the copy's time.

        Raises:
            ObjectNotFound: no object at ``src``.
        """
        src_key, dst_key = self._keys.key(src), self._keys.key(dst)
        head = await self._client.head(src_key, src)
        if head is None:
            raise ObjectNotFound(src)
        if src_key == dst_key:
            return
        size = int(head.size or 0)
        if size <= self.settings.multipart_copy_threshold:
            await self._client.copy(src_key, dst_key, src)
        else:
            await self._copy_in_parts(src_key, dst_key, src, size)
        await self._client.delete_keys([src_key], src)

    async def _copy_in_parts(self, src_key: str, dst_key: str, src: str, size: int) -> None:
        """UploadPartCopy in ``multipart_copy_part_size`` ranges, four at a time, then complete."""
        step = self.settings.multipart_copy_part_size
        upload_id = await self._client.create_upload(dst_key, src)
        ranges = [(n + 1, start, min(start + step, size) - 1) for n, start in enumerate(range(0, size, step))]
        parts: dict[int, str] = {}
        limiter = CapacityLimiter(4)

        async def copy(number: int, first: int, last: int) -> None:
            async with limiter:
                parts[number] = await self._client.copy_part(
                    src_key, dst_key, src, upload_id, number, first, last
                )

        try:
            async with anyio.create_task_group() as tg:
                for number, first, last in ranges:
                    tg.start_soon(copy, number, first, last)
            await self._client.complete(dst_key, src, upload_id, [Part(n, parts[n]) for n in sorted(parts)])
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._client.abort(dst_key, src, upload_id)
            raise

    async def delete(self, path: str) -> None:
        """Delete the object, everything below ``path/`` and the path's tails (one listing,
        then DeleteObjects in batches of 1,000); missing is fine. Multipart uploads are
        pending writes: ``abort_pending`` removes them."""
        key = self._keys.key(path)
        pages = self._client.keys(key)
        while batch := await self._client.next_keys(pages, key):
            names = [o.object_name for o in batch if o.object_name and _owned_by(key, o.object_name)]
            if names:
                await self._client.delete_keys(names, path)

    async def delete_objects(self, paths: Sequence[str]) -> None:
        """See ``StorageDriver.delete_objects``: DeleteObjects in batches of 1,000, no listing."""
        keys = [self._keys.key(p) for p in paths]
        if keys:
            await self._client.delete_keys(keys, paths[0])

    def list(self, prefix: str) -> AsyncIterator[str]:
        """Object paths at or below ``prefix``, sorted (S3 lists keys in byte order): a HEAD of
        ``prefix`` itself, then ListObjectsV2 of ``prefix/`` in pages of 1,000.

        Raises:
            ValueError: ``prefix`` is not ``""`` or a valid path (at call time).
        """
        return self._list(self._keys.prefix(prefix))

    async def _list(self, key_prefix: str) -> AsyncIterator[str]:
        below = key_prefix
        if key_prefix != self._keys.root:
            if await self._client.head(key_prefix, self._keys.path(key_prefix)) is not None:
                yield self._keys.path(key_prefix)
            below = key_prefix + "/"
        pages = self._client.keys(below)
        while batch := await self._client.next_keys(pages, below):
            for obj in batch:
                if obj.object_name and self._keys.visible(obj.object_name):
                    yield self._keys.path(obj.object_name)

    def list_created(self, prefix: str, since: datetime | None) -> AsyncIterator[ObjectInfo]:
        """See ``StorageDriver.list_created``: ListObjectsV2 pages (1,000 keys each) filtered on
        Last-Modified, no request per object."""
        return self._list_created(self._keys.prefix(prefix), since)

    async def _list_created(self, key_prefix: str, since: datetime | None) -> AsyncIterator[ObjectInfo]:
        below = key_prefix
        if key_prefix != self._keys.root:
            obj = await self._client.head(key_prefix, self._keys.path(key_prefix))
            if obj is not None:
                yield ObjectInfo(self._keys.path(key_prefix), int(obj.size or 0), obj.last_modified or _EPOCH)
            below = key_prefix + "/"
        pages = self._client.keys(below)
        while batch := await self._client.next_keys(pages, below):
            for o in batch:
                if not o.object_name or not self._keys.visible(o.object_name):
                    continue
                modified = o.last_modified or _EPOCH
                if since is None or modified >= since:
                    yield ObjectInfo(self._keys.path(o.object_name), int(o.size or 0), modified)

    def pending(self, prefix: str) -> AsyncIterator[PendingWrite]:
        """Unfinished writes at or below ``prefix``: multipart uploads and flushed tails, one
        ``PendingWrite`` per path (``ref``: ``upload:<id>`` and ``tail:<key>`` entries)."""
        key_prefix = self._keys.prefix(prefix)
        return self._pending(key_prefix)

    async def _pending(self, key_prefix: str) -> AsyncIterator[PendingWrite]:
        found: dict[str, tuple[datetime, list[str]]] = {}

        def note(key: str, when: datetime | None, ref: str) -> None:
            started, refs = found.get(key, (when or _EPOCH, []))
            found[key] = (min(started, when or started), [*refs, ref])

        start: tuple[str, str] | None = None
        while True:
            uploads, more = await self._client.uploads(key_prefix, start)
            for u in uploads:
                if self._keys.below(key_prefix, u.key):
                    note(u.key, u.initiated, f"upload:{u.upload_id}")
            if not more:
                break
            start = (uploads[-1].key, uploads[-1].upload_id)
        pages = self._client.keys(key_prefix)
        while batch := await self._client.next_keys(pages, key_prefix):
            for obj in batch:
                name = obj.object_name or ""
                if not self._keys.visible(name) and self._keys.below(
                    key_prefix, self._keys.hidden_stem(name)
                ):
                    note(self._keys.hidden_stem(name), obj.last_modified, f"tail:{name}")
        for key in sorted(found):
            started, refs = found[key]
            yield PendingWrite(self._keys.path(key), started, tuple(refs))

    async def abort_pending(self, pending: PendingWrite) -> None:
        """Abort the uploads and delete the tails ``pending.ref`` names."""
        key = self._keys.key(pending.path)
        tails = [r.removeprefix("tail:") for r in pending.ref if r.startswith("tail:")]
        for ref in pending.ref:
            if ref.startswith("upload:"):
                await self._client.abort(key, pending.path, ref.removeprefix("upload:"))
        if any(not t.startswith(key + "~") for t in tails):
            raise ValueError(f"a pending write of {pending.path} names another path's tail")
        await self._client.delete_keys(tails, pending.path)

    async def url_for(
        self,
        path: str,
        *,
        method: str = "GET",
        expires_in: int = 1200,
        external_host: str | None = None,
    ) -> str | None:
        """A SigV4 presigned ``GET``/``HEAD`` URL on ``public_endpoint`` valid ``expires_in``
        seconds (1 s - 7 days). ``external_host`` (Berth's own host) is not used: clients go
        to the store's public endpoint.

        Raises:
            ValueError: invalid path, another method, or ``expires_in`` out of range.
        """
        key = self._keys.key(path)
        if method not in ("GET", "HEAD"):
            raise ValueError(f"cannot presign {method!r}: GET or HEAD only")
        if not 1 <= expires_in <= 604_800:
            raise ValueError("expires_in must be between 1 second and 7 days")
        return self._client.presign(key, method, expires_in)

    def local_path(self, path: str) -> Path | None:
        """Always ``None`` (after checking ``path``): objects are not local files."""
        validate_path(path)
        return None

    async def clear_leftovers(self, path: str) -> None:
        """Abort every multipart upload of ``path`` and delete its tails (tests and tools)."""
        await clear_path_leftovers(self._client, self._keys.key(path), path)

    async def close(self) -> None:
        """Close the connection pool."""
        self._client.minio._http.clear()


def _owned_by(key: str, name: str) -> bool:
    return name == key or name.startswith((key + "/", key + "~"))
