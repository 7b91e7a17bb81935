"""The Azure Blob storage driver: block blobs in one container, through ``azure-storage-blob``'s
async client (``azure.storage.blob.aio``).

Path ``p`` is blob ``<prefix>/p``. Writers stage blocks (``_azurewriter``); ``move`` copies
server-side — one synchronous Copy Blob From URL up to ``sync_copy_limit`` (256 MiB), else Put
Block From URL in ``copy_block_size`` ranges and one Put Block List — then deletes the source;
``url_for`` makes a read-only service SAS for the public endpoint. A blob with only uncommitted
blocks is a pending write. Build it with ``create_driver("azure", …)``.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import aiohttp
import anyio
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.storage.blob import BlobBlock, BlobSasPermissions, generate_blob_sas
from azure.storage.blob.aio import BlobClient, BlobServiceClient, ContainerClient

from ._azuresettings import LIBRARY_ERRORS, AzureSettings, make_service, translate
from ._azurewriter import AzureWriter, check_blocks, discard_uncommitted, mapped, parse_blocks
from ._objectstore import Keys, MiB, check_window
from .base import ObjectInfo, ObjectNotFound, PendingWrite, WriterState, validate_path
from .base import Writer as WriterProtocol

__all__ = ["AzureDriver", "AzureSettings"]
_DELETE_BATCH = 256  # Azure's Blob Batch limit


class AzureDriver:
    """``StorageDriver`` over ``settings.container`` below ``settings.prefix`` (see the module
    docstring). The container must exist. ``repr`` never shows the key. The client and its
    connection pool are made on first use, in the event loop that uses them."""

    name = "azure"

    def __init__(self, settings: AzureSettings) -> None:
        self.settings = settings
        self._keys = Keys(settings.prefix)
        self._made: tuple[BlobServiceClient, aiohttp.ClientSession, ContainerClient] | None = None

    def __repr__(self) -> str:
        s = self.settings
        return f"AzureDriver(endpoint={s.endpoint!r}, container={s.container!r}, prefix={s.prefix!r})"

    @property
    def container(self) -> ContainerClient:
        """The container client (made on first use; for tests and tools)."""
        if self._made is None:
            service, session = make_service(self.settings)
            self._made = (service, session, service.get_container_client(self.settings.container))
        return self._made[2]

    def _blob(self, path: str) -> BlobClient:
        return self.container.get_blob_client(self._keys.key(path))

    async def stat(self, path: str) -> ObjectInfo | None:
        """Get Blob Properties: size and Last-Modified (whole seconds, UTC); ``None`` when missing."""
        blob = self._blob(path)
        try:
            with mapped(path):
                props = await blob.get_blob_properties()
        except ObjectNotFound:
            return None
        return ObjectInfo(path, int(props.size), props.last_modified)

    def read(
        self, path: str, offset: int = 0, length: int | None = None, chunk_size: int = MiB
    ) -> AsyncIterator[bytes]:
        """Ranged Get Blob in 4 MiB requests, yielded in ``chunk_size`` pieces; see
        ``StorageDriver.read``.

        Raises:
            ValueError: invalid path or window (at call time).
            ObjectNotFound: on the first iteration, if there is no object at ``path``.
        """
        check_window(offset, length, chunk_size)
        return self._read(self._blob(path), path, offset, length, chunk_size)

    async def _read(
        self, blob: BlobClient, path: str, offset: int, length: int | None, chunk_size: int
    ) -> AsyncIterator[bytes]:
        if length == 0:
            if await self.stat(path) is None:
                raise ObjectNotFound(path)
            return
        try:  # no Range header for a whole read: an empty blob would answer 416
            whole = offset == 0 and length is None
            download = await blob.download_blob(offset=None if whole else offset, length=length)
        except HttpResponseError as exc:
            if exc.status_code == 416:  # offset past the end
                return
            raise translate(exc, path) from exc
        except LIBRARY_ERRORS as exc:
            raise translate(exc, path) from exc
        with mapped(path):
            async for piece in download.chunks():
                if len(piece) <= chunk_size:
                    yield piece
                    continue
                view = memoryview(piece)
                for start in range(0, len(view), chunk_size):
                    yield bytes(view[start : start + chunk_size])

    async def write(self, path: str, chunks: AsyncIterable[bytes]) -> int:
        """One Put Blob (under one block) or staged blocks and one Put Block List; see
        ``StorageDriver.write``. A failure discards the staged blocks, leaving ``path`` as it was."""
        writer = AzureWriter(self._blob(path), path, [], owns_path=False)
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
        """A block ``Writer`` (``_azurewriter``); resuming checks the recorded blocks against
        Get Block List.

        Raises:
            WriterStateInvalid: the staged blocks are gone or differ.
        """
        blob = self._blob(path)
        blocks = parse_blocks(resume or WriterState(0), path)
        await check_blocks(blob, path, blocks)
        return AzureWriter(blob, path, blocks, owns_path=True)

    async def move(self, src: str, dst: str) -> None:
        """Server-side copy then delete of ``src``; ``dst``'s Last-Modified is the copy's time.

        Raises:
            ObjectNotFound: no object at ``src``.
        """
        info = await self.stat(src)
        if info is None:
            raise ObjectNotFound(src)
        if self._keys.key(src) == self._keys.key(dst):
            return
        source, target = self._sas_url(self._keys.key(src), 3600, self.settings.endpoint), self._blob(dst)
        with mapped(src):
            if info.size <= self.settings.sync_copy_limit:
                await target.start_copy_from_url(source, requires_sync=True)
            else:
                await self._copy_in_blocks(source, target, src, info.size)
            await self._blob(src).delete_blob()

    async def _copy_in_blocks(self, source: str, target: BlobClient, src: str, size: int) -> None:
        """Put Block From URL per ``copy_block_size`` range (four at a time), then commit."""
        step, token = self.settings.copy_block_size, secrets.token_hex(8)
        ids = [f"{token}{n:08d}" for n in range(-(-size // step))]
        limiter = anyio.CapacityLimiter(4)

        async def stage(n: int) -> None:
            async with limiter:
                length = min(step, size - n * step)
                await target.stage_block_from_url(
                    ids[n], source, source_offset=n * step, source_length=length
                )

        try:
            async with anyio.create_task_group() as tg:
                for n in range(len(ids)):
                    tg.start_soon(stage, n)
            await target.commit_block_list([BlobBlock(block_id) for block_id in ids])
        except BaseException:
            with anyio.CancelScope(shield=True):
                await discard_uncommitted(target, src)
            raise

    async def delete(self, path: str) -> None:
        """Delete the blob and every blob below ``path/`` (Blob Batch, 256 per request);
        missing is fine. Uncommitted blocks are pending writes: ``abort_pending`` removes them."""
        key = self._keys.key(path)
        with mapped(path):
            with contextlib.suppress(ResourceNotFoundError):
                await self.container.delete_blob(key)
            batch: list[str] = []
            async for name in self.container.list_blob_names(name_starts_with=key + "/"):
                batch.append(name)
                if len(batch) == _DELETE_BATCH:
                    await self._delete_batch(batch)
                    batch = []
            if batch:
                await self._delete_batch(batch)

    async def delete_objects(self, paths: Sequence[str]) -> None:
        """See ``StorageDriver.delete_objects``: Blob Batch deletes of 256 names each."""
        names = [self._keys.key(p) for p in paths]
        with mapped(paths[0] if paths else ""):
            for start in range(0, len(names), _DELETE_BATCH):
                await self._delete_batch(names[start : start + _DELETE_BATCH])

    async def _delete_batch(self, names: list[str]) -> None:
        results = await self.container.delete_blobs(*names, raise_on_any_failure=False)
        async for response in results:
            if response.status_code not in (202, 404):
                raise HttpResponseError(response=response)

    def list(self, prefix: str) -> AsyncIterator[str]:
        """Object paths at or below ``prefix``, sorted (Azure lists names in order): the blob
        ``prefix`` itself, then List Blobs of ``prefix/``.

        Raises:
            ValueError: ``prefix`` is not ``""`` or a valid path (at call time).
        """
        return self._list(self._keys.prefix(prefix))

    async def _list(self, key_prefix: str) -> AsyncIterator[str]:
        below = key_prefix
        if key_prefix != self._keys.root:
            if await self.stat(self._keys.path(key_prefix)) is not None:
                yield self._keys.path(key_prefix)
            below = key_prefix + "/"
        with mapped(below):
            async for name in self.container.list_blob_names(name_starts_with=below):
                if self._keys.visible(name):
                    yield self._keys.path(name)

    def list_created(self, prefix: str, since: datetime | None) -> AsyncIterator[ObjectInfo]:
        """See ``StorageDriver.list_created``: List Blobs (5,000 per page) filtered on
        Last-Modified, no request per object."""
        return self._list_created(self._keys.prefix(prefix), since)

    async def _list_created(self, key_prefix: str, since: datetime | None) -> AsyncIterator[ObjectInfo]:
        below = key_prefix
        if key_prefix != self._keys.root:
            info = await self.stat(self._keys.path(key_prefix))
            if info is not None:
                yield info
            below = key_prefix + "/"
        with mapped(below):
            async for item in self.container.list_blobs(name_starts_with=below):
                if not self._keys.visible(item.name):
                    continue
                if since is None or item.last_modified >= since:
                    yield ObjectInfo(self._keys.path(item.name), int(item.size), item.last_modified)

    def pending(self, prefix: str) -> AsyncIterator[PendingWrite]:
        """Blobs at or below ``prefix`` that have uncommitted blocks and no committed content
        (listed with ``uncommittedblobs`` but not without). A committed blob's extra
        uncommitted blocks are invisible to this and expire in Azure after a week."""
        return self._pending(self._keys.prefix(prefix))

    async def _pending(self, key_prefix: str) -> AsyncIterator[PendingWrite]:
        with mapped(key_prefix):
            committed = self.container.list_blob_names(name_starts_with=key_prefix)
            seen: str | None = ""
            async for item in self.container.list_blobs(
                name_starts_with=key_prefix, include=["uncommittedblobs"]
            ):
                while seen is not None and seen < item.name:
                    seen = await anext(committed, None)
                if seen == item.name or not self._keys.below(key_prefix, item.name):
                    continue
                started = item.creation_time or item.last_modified or datetime.now(UTC)
                yield PendingWrite(self._keys.path(item.name), started)

    async def abort_pending(self, pending: PendingWrite) -> None:
        """Remove the uncommitted blocks of ``pending.path`` unless it has been committed since."""
        await discard_uncommitted(self._blob(pending.path), pending.path)

    async def url_for(
        self,
        path: str,
        *,
        method: str = "GET",
        expires_in: int = 1200,
        external_host: str | None = None,
    ) -> str | None:
        """A read-only service SAS URL on ``public_endpoint``, valid from 5 minutes ago (clock
        skew) until ``expires_in`` seconds from now; good for GET and HEAD. ``external_host``
        is not used: clients go to the store's public endpoint.

        Raises:
            ValueError: invalid path, another method, or ``expires_in`` out of 1 s - 7 days.
        """
        key = self._keys.key(path)
        if method not in ("GET", "HEAD"):
            raise ValueError(f"cannot sign {method!r}: GET or HEAD only")
        if not 1 <= expires_in <= 604_800:
            raise ValueError("expires_in must be between 1 second and 7 days")
        return self._sas_url(key, expires_in, self.settings.public_endpoint)

    def _sas_url(self, key: str, expires_in: int, endpoint: str) -> str:
        now = datetime.now(UTC)
        sas = generate_blob_sas(
            self.settings.account_name,
            self.settings.container,
            key,
            account_key=self.settings.account_key.reveal(),
            permission=BlobSasPermissions(read=True),
            expiry=now + timedelta(seconds=expires_in),
            start=now - timedelta(minutes=5),
        )
        return f"{endpoint}/{self.settings.container}/{quote(key)}?{sas}"

    def local_path(self, path: str) -> Path | None:
        """Always ``None`` (after checking ``path``): blobs are not local files."""
        validate_path(path)
        return None

    async def close(self) -> None:
        """Close the client and its connection pool (if it was ever made)."""
        if self._made is not None:
            service, session, _ = self._made
            self._made = None
            await service.close()
            await session.close()
