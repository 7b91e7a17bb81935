"""The S3 calls the S3 driver makes, each run in a worker thread, with minio's errors mapped.

The ``minio`` client is synchronous: every call here runs in a worker thread bounded by the
driver's ``CapacityLimiter`` (as many threads as pooled connections). The multipart calls
(CreateMultipartUpload, UploadPart, ListParts, CompleteMultipartUpload, AbortMultipartUpload,
ListMultipartUploads, UploadPartCopy) are minio's own request methods that its public
``put_object``/``compose_object`` are built on; they are used directly because a resumable
write must keep its upload id and parts across processes (S3 API reference, "Multipart upload").
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import quote

import urllib3
from anyio import CapacityLimiter, to_thread
from minio import Minio
from minio.commonconfig import CopySource
from minio.datatypes import Object, Part
from minio.deleteobjects import DeleteObject
from minio.error import InvalidResponseError, MinioException, S3Error, ServerError

from .base import ObjectNotFound, StorageBackendError, StorageError, WriterStateInvalid

_T = TypeVar("_T")
PAGE = 1000  # keys per ListObjectsV2 / DeleteObjects / ListParts / ListMultipartUploads page
_NOT_FOUND = ("NoSuchKey",)
_WRITE_STATE = ("NoSuchUpload", "InvalidPart", "InvalidPartOrder")
_RETRYABLE = ("SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable", "RequestTimeTooSkewed")


def translate(exc: BaseException, path: str) -> StorageError:
    """minio/urllib3 exception → the protocol's error for ``path``."""
    if isinstance(exc, S3Error):
        if exc.code in _NOT_FOUND:
            return ObjectNotFound(path)
        if exc.code in _WRITE_STATE:
            return WriterStateInvalid(path, f"S3 answered {exc.code}")
        return StorageBackendError(
            f"S3 {exc.code} on {path}: {exc.message}", retryable=exc.code in _RETRYABLE
        )
    if isinstance(exc, ServerError):
        return StorageBackendError(f"S3 HTTP {exc.status_code} on {path}", retryable=True)
    if isinstance(exc, InvalidResponseError):
        return StorageBackendError(f"S3 gave a non-XML error on {path}: {exc}", retryable=True)
    return StorageBackendError(f"S3 unreachable on {path}: {type(exc).__name__}: {exc}", retryable=True)


_LIBRARY_ERRORS = (MinioException, urllib3.exceptions.HTTPError, OSError)


@dataclass(frozen=True)
class Upload:
    """One multipart upload in progress: its key, id and when it was started."""

    key: str
    upload_id: str
    initiated: datetime | None


class S3Client:
    """Async wrapper of one ``Minio`` client (and one that signs for the public endpoint) on
    one bucket. Every method raises the protocol's errors (``translate``), never minio's."""

    def __init__(self, minio: Minio, presigner: Minio, bucket: str, limiter: CapacityLimiter) -> None:
        self.minio, self._presigner, self.bucket, self._limiter = minio, presigner, bucket, limiter

    async def call(self, path: str, func: Callable[..., _T], *args: Any) -> _T:
        """Run ``func(*args)`` in a worker thread; map library errors to ``translate(…, path)``."""
        try:
            return await to_thread.run_sync(func, *args, limiter=self._limiter)
        except _LIBRARY_ERRORS as exc:
            raise translate(exc, path) from exc

    async def head(self, key: str, path: str) -> Object | None:
        """HeadObject; ``None`` when there is no such object."""
        try:
            return await self.call(path, self.minio.stat_object, self.bucket, key)
        except ObjectNotFound:
            return None

    async def open(self, key: str, path: str, offset: int, length: int) -> urllib3.BaseHTTPResponse | None:
        """GetObject of ``[offset, offset+length)`` (``length=0``: to the end) as an unread
        response; ``None`` when ``offset`` is past the end (S3 answers InvalidRange)."""
        try:
            return await self.call(path, self._get, key, offset, length)
        except StorageBackendError as exc:
            if isinstance(exc.__cause__, S3Error) and exc.__cause__.code == "InvalidRange":
                return None
            raise

    def _get(self, key: str, offset: int, length: int) -> urllib3.BaseHTTPResponse:
        return self.minio.get_object(self.bucket, key, offset=offset, length=length)

    async def put(self, key: str, path: str, data: bytes | bytearray) -> None:
        """PutObject of ``data`` (one request)."""
        await self.call(path, self.minio._put_object, self.bucket, key, data, {})

    async def read_small(self, key: str, path: str) -> bytes:
        """The whole object (a tail: under 5 MiB). ``ObjectNotFound`` if missing."""
        return await self.call(path, self._read_whole, key)

    def _read_whole(self, key: str) -> bytes:
        response = self.minio.get_object(self.bucket, key)
        try:
            return bytes(response.read())
        finally:
            response.close()
            response.release_conn()

    async def create_upload(self, key: str, path: str) -> str:
        """CreateMultipartUpload; returns the upload id."""
        return await self.call(path, self.minio._create_multipart_upload, self.bucket, key, {})

    async def upload_part(self, key: str, path: str, upload_id: str, number: int, data: bytearray) -> str:
        """UploadPart ``number`` of ``upload_id``; returns its ETag."""
        return await self.call(path, self.minio._upload_part, self.bucket, key, data, None, upload_id, number)

    async def list_parts(self, key: str, path: str, upload_id: str) -> list[Part]:
        """Every part of ``upload_id`` (ListParts, paginated). ``WriterStateInvalid`` if none."""
        return await self.call(path, self._all_parts, key, upload_id)

    def _all_parts(self, key: str, upload_id: str) -> list[Part]:
        parts: list[Part] = []
        marker: str | None = None
        while True:
            page = self.minio._list_parts(self.bucket, key, upload_id, PAGE, marker)
            parts.extend(page.parts)
            if not page.is_truncated or not page.parts:
                return parts
            marker = page.next_part_number_marker or str(page.parts[-1].part_number)

    async def complete(self, key: str, path: str, upload_id: str, parts: Sequence[Part]) -> None:
        """CompleteMultipartUpload with exactly ``parts``."""
        await self.call(path, self.minio._complete_multipart_upload, self.bucket, key, upload_id, list(parts))

    async def abort(self, key: str, path: str, upload_id: str) -> None:
        """AbortMultipartUpload; an upload already gone is fine."""
        with contextlib.suppress(WriterStateInvalid):
            await self.call(path, self.minio._abort_multipart_upload, self.bucket, key, upload_id)

    async def uploads(self, key_prefix: str, start: tuple[str, str] | None) -> tuple[list[Upload], bool]:
        """One page of ListMultipartUploads under ``key_prefix`` after ``start`` = (key, id);
        returns the uploads and whether more follow. (minio's result never fills in the next
        upload-id marker, so callers page from the last upload returned.)"""
        return await self.call(key_prefix, self._uploads_page, key_prefix, start)

    def _uploads_page(self, key_prefix: str, start: tuple[str, str] | None) -> tuple[list[Upload], bool]:
        key_marker, id_marker = start if start else (None, None)
        page = self.minio._list_multipart_uploads(
            self.bucket,
            key_marker=key_marker,
            max_uploads=PAGE,
            prefix=key_prefix,
            upload_id_marker=id_marker,
        )
        found = [Upload(u.object_name, u.upload_id or "", u.initiated_time) for u in page.uploads]
        return found, bool(page.is_truncated and found)

    def keys(self, key_prefix: str) -> Iterator[Object]:
        """ListObjectsV2 below ``key_prefix``, recursively, in key order (lazy, blocking)."""
        return iter(self.minio.list_objects(self.bucket, prefix=key_prefix, recursive=True))

    async def next_keys(self, pages: Iterator[Object], key_prefix: str) -> list[Object]:
        """Up to ``PAGE`` more objects from ``keys(...)`` (one request at most)."""
        return await self.call(key_prefix, lambda: list(itertools.islice(pages, PAGE)))

    async def delete_keys(self, keys: Sequence[str], path: str) -> None:
        """DeleteObjects in batches of ``PAGE``; already gone is fine.

        Raises:
            StorageBackendError: the store refused to delete one of them.
        """
        for start in range(0, len(keys), PAGE):
            batch = [DeleteObject(k) for k in keys[start : start + PAGE]]
            errors = await self.call(path, lambda b=batch: list(self.minio.remove_objects(self.bucket, b)))
            failed = [e for e in errors if e.code != "NoSuchKey"]
            if failed:
                raise StorageBackendError(
                    f"S3 refused to delete {failed[0].name}: {failed[0].code}", retryable=True
                )

    async def copy(self, src_key: str, dst_key: str, path: str) -> None:
        """CopyObject (one request; S3 takes at most 5 GiB this way)."""
        await self.call(path, self.minio.copy_object, self.bucket, dst_key, CopySource(self.bucket, src_key))

    async def copy_part(
        self, src_key: str, dst_key: str, path: str, upload_id: str, number: int, first: int, last: int
    ) -> str:
        """UploadPartCopy of source bytes ``[first, last]`` as part ``number``; returns the ETag."""
        headers = {
            "x-amz-copy-source": quote(f"/{self.bucket}/{src_key}"),
            "x-amz-copy-source-range": f"bytes={first}-{last}",
        }
        etag, _ = await self.call(
            path, self.minio._upload_part_copy, self.bucket, dst_key, upload_id, number, headers
        )
        return str(etag)

    def presign(self, key: str, method: str, expires_in: int) -> str:
        """A SigV4 query-signed URL on the public endpoint (no request is made)."""
        return self._presigner.get_presigned_url(
            method, self.bucket, key, expires=timedelta(seconds=expires_in)
        )
