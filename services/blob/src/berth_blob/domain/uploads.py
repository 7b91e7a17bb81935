"""Upload sessions (OCI distribution spec v1.1, "Pushing blobs": monolithic, POST-PUT, chunked).

No process holds per-session state, so any process or replica may serve any request of any
session (docs/ARCHITECTURE.md, "Storage", upload sessions). A writing request takes the session's lease
(``sessions``), streams the body into the storage writer of the session's current data object
while feeding the resumable hash, flushes, and records size + hash state + writer state with a
compare-and-set that only the lease holder wins (``ChunkReceived`` in the same transaction).
The closing PUT then runs the recipe in ``commit``: verify → place → link and record → clean up.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterable
from dataclasses import dataclass
from typing import NoReturn

from berth_blob.domain import sessions
from berth_blob.domain.commit import BlobCommit, DataGone, committed_data, discard
from berth_blob.domain.feeds import Feed, require_feed
from berth_blob.domain.sessions import Lease
from berth_blob.domain.streams import Metered
from berth_blob.projections.tables import project
from berth_common.domain_errors import ChunkOutOfOrder
from berth_common.errors import BlobUploadInvalid, BlobUploadUnknown
from berth_common.events import ChunkReceived, Metadata, UploadStarted
from berth_common.eventstore import EventStore, UnitOfWork, run_with_retry
from berth_common.oci import resumable
from berth_common.oci.digest import Digest
from berth_common.oci.reference import RepositoryName
from berth_common.settings import UploadSettings
from berth_common.storage import (
    Location,
    ObjectNotFound,
    StorageDriver,
    Stores,
    WriterState,
    WriterStateInvalid,
    is_upload_id,
)


@dataclass(frozen=True)
class Session:
    """An open upload session: its id, repository and the bytes received so far."""

    id: str
    repository: str
    size: int


def range_header(size: int) -> str:
    """The spec's inclusive ``Range`` of a session holding ``size`` bytes (``0-0`` when empty)."""
    return f"0-{max(size - 1, 0)}"


class Uploads:
    """Upload sessions of all feeds; stateless per process (state lives in PostgreSQL and storage).

    Args:
        store: the event store (its pool also holds the sessions' working state).
        stores: the configured blob stores (a session writes to its feed's store).
        settings: lease time-to-live and the wait for a busy session.
    """

    def __init__(self, store: EventStore, stores: Stores, settings: UploadSettings) -> None:
        self.store, self.stores = store, stores
        self.lease_seconds, self.busy_wait = settings.lease_seconds, settings.busy_wait_seconds

    async def start(self, repository: RepositoryName, meta: Metadata) -> Session:
        """Open a session (``UploadStarted``). Raises ``NameUnknown`` for an unknown feed."""
        upload_id, _ = await self._open(repository, meta, None)
        return Session(upload_id, str(repository), 0)

    async def get(self, repository: RepositoryName, upload_id: str) -> Session:
        """The open session ``upload_id`` of ``repository`` in its feed's current incarnation.
        Raises ``BlobUploadUnknown``."""
        if not is_upload_id(upload_id):
            raise BlobUploadUnknown(f"no upload session {upload_id[:64]!r}")
        row = await self.store.pool.fetchrow(sessions.STATUS, upload_id)
        if row is None or row["repository"] != str(repository):
            raise BlobUploadUnknown(f"no upload session {upload_id} in repository {repository}")
        return Session(row["id"], row["repository"], row["size"])

    async def append(
        self, repository: RepositoryName, upload_id: str, body: AsyncIterable[bytes],
        content_range: tuple[int, int] | None, length: int | None, meta: Metadata,
    ) -> Session:  # fmt: skip
        """Append a chunk (PATCH). ``content_range`` is the inclusive ``(start, end)`` if given.

        Raises:
            BlobUploadUnknown: no such session.
            ChunkOutOfOrder: ``start`` is not the session's size (out of order): nothing appended.
            SizeInvalid: the body length differs from ``Content-Length``.
            SessionBusy, LeaseLost: another request writes to the session (``SessionBusy``) or took it
                over meanwhile (``LeaseLost``); nothing of this request's body counts.
            BlobUploadInvalid: the session's recorded bytes are gone (e.g. a crash between the
                commit's move and its transaction); the session is discarded.
        """
        lease = await self._acquire(repository, upload_id)
        try:
            async with lease.kept_alive(self.store.pool):
                try:
                    await self._write(lease, repository, body, content_range, length, meta, release=True)
                except DataGone:
                    await self._data_gone(lease, repository, meta)
        except BaseException:
            await sessions.release(self.store.pool, lease)
            raise
        return Session(upload_id, str(repository), lease.size)

    async def complete(
        self, repository: RepositoryName, upload_id: str, digest: Digest,
        body: AsyncIterable[bytes] | None, content_range: tuple[int, int] | None,
        length: int | None, meta: Metadata,
    ) -> Digest:  # fmt: skip
        """Close the session (PUT ``?digest=``), appending a final chunk if one is sent.

        Raises:
            BlobUploadUnknown, ChunkOutOfOrder, RangeInvalid, SizeInvalid, SessionBusy, LeaseLost: as
                for ``append``.
            DigestInvalid: the content does not match ``digest``; the session is discarded.
            BlobUploadInvalid: the session's data is gone (discarded).
        """
        lease = await self._acquire(repository, upload_id)
        try:
            await self._finish(lease, repository, digest, body, content_range, length, meta)
        except BaseException:
            await sessions.release(self.store.pool, lease)  # a no-op once the session ended
            raise
        return digest

    async def upload_whole(
        self, repository: RepositoryName, digest: Digest, body: AsyncIterable[bytes],
        length: int | None, meta: Metadata, *, mounted_from: tuple[RepositoryName, Location] | None = None,
    ) -> Digest:  # fmt: skip
        """A monolithic upload (POST ``?digest=`` with the blob as body): a session opened already
        leased, written and committed; on any failure it is discarded. ``mounted_from``: the
        body is a cross-store mount's copy (``BlobCommit``).

        Raises:
            NameUnknown, SizeInvalid, DigestInvalid: see ``start`` and ``complete``.
        """
        lease = Lease("", str(uuid.uuid4()), self.lease_seconds, 0, None, None, 0, False, None)
        lease.upload_id, feed = await self._open(repository, meta, lease)
        lease.incarnation, lease.store = feed.incarnation, feed.location.key
        try:
            await self._finish(lease, repository, digest, body, None, length, meta, mounted_from)
        except BaseException:
            await self._discard_quietly(lease, repository, "monolithic upload failed", meta)
            raise
        return digest

    async def cancel(self, repository: RepositoryName, upload_id: str, meta: Metadata) -> None:
        """Cancel the session (DELETE): ``UploadCancelled``, data removed.

        Raises:
            BlobUploadUnknown: no such session. SessionBusy: a request is writing to it.
        """
        lease = await self._acquire(repository, upload_id)
        try:
            await self._discard(lease, repository, "cancelled by client", meta)
        except BaseException:
            await sessions.release(self.store.pool, lease)
            raise

    # --- steps ----------------------------------------------------------------------------

    async def _open(
        self, repository: RepositoryName, meta: Metadata, lease: Lease | None
    ) -> tuple[str, Feed]:
        """Open a session; return its id and the feed. Raises ``NameUnknown``."""
        upload_id = str(uuid.uuid4())

        async def work(uow: UnitOfWork) -> Feed:
            feed = await require_feed(uow.conn, repository)
            started = UploadStarted(
                upload_id=upload_id, repository=str(repository), incarnation=feed.incarnation,
                store=feed.location.key,
            )  # fmt: skip
            await uow.emit(started)
            await sessions.create(uow.conn, upload_id, lease)
            return feed

        feed = await run_with_retry(self.store, work, projector=project, metadata=meta)
        return upload_id, feed

    async def _acquire(self, repository: RepositoryName, upload_id: str) -> Lease:
        if not is_upload_id(upload_id):
            raise BlobUploadUnknown(f"no upload session {upload_id[:64]!r}")
        return await sessions.acquire(
            self.store.pool, str(repository), upload_id, ttl=self.lease_seconds, wait=self.busy_wait
        )

    async def _finish(
        self, lease: Lease, repository: RepositoryName, digest: Digest,
        body: AsyncIterable[bytes] | None, content_range: tuple[int, int] | None,
        length: int | None, meta: Metadata, mounted_from: tuple[RepositoryName, Location] | None = None,
    ) -> None:  # fmt: skip
        """Write the final chunk (if any) and commit, under ``lease``; the caller releases the
        lease if this raises (discarded sessions are gone already)."""
        try:
            async with lease.kept_alive(self.store.pool):
                if body is not None:
                    await self._write(lease, repository, body, content_range, length, meta, release=False)
                elif lease.takeover:
                    await self._take_over(lease)
                commit = BlobCommit(
                    self.store, self._driver(lease), lease, repository, digest, meta, mounted_from
                )
                await commit.run()
        except DataGone:
            await self._data_gone(lease, repository, meta)

    async def _data_gone(self, lease: Lease, repository: RepositoryName, meta: Metadata) -> NoReturn:
        """The session's recorded bytes (or the object being written) vanished under ``lease``:
        end the session (``BlobUploadInvalid``, the client uploads again) — or, when another
        request took the session over meanwhile (it removed what this one was writing),
        ``LeaseLost`` and the session stays as its new holder left it."""
        await self._discard(lease, repository, "the session's data is missing", meta)
        raise BlobUploadInvalid("the upload session's data is missing; upload the blob again")

    async def _write(
        self, lease: Lease, repository: RepositoryName, body: AsyncIterable[bytes],
        content_range: tuple[int, int] | None, length: int | None, meta: Metadata, *, release: bool,
    ) -> None:  # fmt: skip
        """Stream ``body`` into the session under ``lease`` and record it (see module doc)."""
        expected = length
        if content_range is not None:
            start, end = content_range
            if start != lease.size or end < start:
                raise ChunkOutOfOrder(start, lease.size)
            expected = end - start + 1
        if lease.takeover:
            await self._take_over(lease)
        path = lease.location.upload_data(lease.upload_id, lease.generation)
        try:
            writer = await self._driver(lease).writer(path, lease.resume_state())
        except WriterStateInvalid:
            raise DataGone() from None
        hasher = _resume_hash(lease)
        metered = Metered(body, hasher, expected, from_range=content_range is not None)
        try:
            async for chunk in metered:
                lease.check()
                await writer.write(chunk)
            state = await writer.flush()
        except (WriterStateInvalid, ObjectNotFound):  # a takeover removed what this writer continued
            raise DataGone() from None
        finally:
            await writer.close()
        if metered.count == 0 and not release:
            return
        await self._record(lease, repository, metered.count, state, hasher, meta, release=release)

    async def _record(
        self, lease: Lease, repository: RepositoryName, count: int, state: WriterState,
        hasher: resumable.ResumableSha256 | None, meta: Metadata, *, release: bool,
    ) -> None:  # fmt: skip
        """Publish the flushed bytes (compare-and-set on the lease) with ``ChunkReceived``."""
        offset, hash_state = lease.size, None if hasher is None else hasher.state()

        async def work(uow: UnitOfWork) -> None:
            await sessions.publish(
                uow.conn, lease, offset + count, hash_state, state, lease.generation, release=release
            )
            if count:
                chunk = ChunkReceived(
                    upload_id=lease.upload_id, repository=str(repository), offset=offset, length=count
                )
                await uow.emit(chunk)

        await run_with_retry(self.store, work, projector=project, metadata=meta)
        lease.recorded(offset + count, hash_state, state, lease.generation)

    async def _take_over(self, lease: Lease) -> None:
        """Continue a session whose previous writer's lease expired: that writer may still be
        writing to the current data object, so the recorded bytes are copied to a new
        generation's object that only this lease writes, and the new generation is recorded.

        Raises:
            DataGone: the recorded bytes cannot be found.
        """
        old = lease.location.upload_data(lease.upload_id, lease.generation)
        new = lease.location.upload_data(lease.upload_id, lease.generation + 1)
        storage, state = self._driver(lease), None
        if lease.resume_state() is not None:
            await committed_data(storage, lease, old)
            writer = await storage.writer(new)
            try:
                async for chunk in storage.read(old, 0, lease.size):
                    await writer.write(chunk)
                state = await writer.flush()
            except ObjectNotFound:  # a later takeover copied and removed it meanwhile
                raise DataGone() from None
            finally:
                await writer.close()
        async with self.store.pool.acquire() as conn:
            await sessions.publish(conn, lease, lease.size, lease.hash_state, state, lease.generation + 1,
                                   release=False)  # fmt: skip
        lease.recorded(lease.size, lease.hash_state, state, lease.generation + 1)
        lease.takeover = False
        await storage.delete(old)

    async def _discard(self, lease: Lease, repository: RepositoryName, reason: str, meta: Metadata) -> None:
        await discard(self.store, self._driver(lease), lease, repository, reason, meta)

    def _driver(self, lease: Lease) -> StorageDriver:
        return self.stores.driver(lease.location)

    async def _discard_quietly(
        self, lease: Lease, repository: RepositoryName, reason: str, meta: Metadata
    ) -> None:
        if await self.store.pool.fetchval("SELECT 1 FROM blob.upload_state WHERE id = $1", lease.upload_id):
            await self._discard(lease, repository, reason, meta)


def _resume_hash(lease: Lease) -> resumable.ResumableSha256 | None:
    """The running SHA-256 after the session's recorded bytes, or None when there is no
    trustworthy saved state (then the commit re-hashes the stored bytes)."""
    if not resumable.AVAILABLE:
        return None
    if lease.hash_state is None:
        return resumable.ResumableSha256() if lease.size == 0 else None
    try:
        return resumable.ResumableSha256(lease.hash_state)
    except ValueError:
        return None
