"""The closing PUT of an upload session as a recipe: verify → place → link and record → clean up.

OCI distribution spec v1.1, "Pushing blobs" (the PUT with ``?digest=``); docs/ARCHITECTURE.md,
"Upload sessions". Invariants kept here, with any number of processes:

- the digest checked is that of the bytes that become the blob: the hash state recorded with
  the session's size (``sessions``), or a hash of the recorded bytes read back from storage;
- **content already stored at a digest is never replaced**: under the per-blob lock, content
  found at the address is kept and the session's bytes are dropped;
- content is placed and linked under the feed's share lock and the blob's lock (the lock GC
  takes before it deletes content), and only while the session's lease is still ours.
"""

from __future__ import annotations

from typing import Any

from berth_blob.domain import sessions
from berth_blob.domain.feeds import Feed, require_feed
from berth_blob.domain.sessions import Lease
from berth_blob.projections.tables import project
from berth_common.errors import BlobUploadUnknown, DigestInvalid
from berth_common.events import (
    BlobCached,
    BlobLinked,
    BlobMounted,
    Metadata,
    UploadCancelled,
    UploadCompleted,
)
from berth_common.eventstore import EventStore, UnitOfWork, run_with_retry
from berth_common.oci import resumable
from berth_common.oci.digest import Digest
from berth_common.oci.reference import RepositoryName
from berth_common.storage import Location, ObjectNotFound, StorageDriver, WriterStateInvalid


class DataGone(Exception):
    """The session's recorded bytes cannot be found (collected, or lost in a crash)."""


class BlobCommit:
    """Commits one leased session as the blob ``digest`` of ``repository`` (``run``).

    ``mounted_from=(origin, location)`` records the commit as a mount copied from another
    location (``BlobMounted`` with ``copied_from``) instead of an upload's ``BlobLinked``.

    Raises (from ``run``):
        DigestInvalid: the recorded bytes have another digest (the session is discarded).
        DataGone: the recorded bytes are gone (the caller discards the session).
        LeaseLost: another request took the session over (nothing committed).
        NameUnknown: the feed was deleted.
    """

    def __init__(
        self, store: EventStore, storage: StorageDriver, lease: Lease, repository: RepositoryName,
        digest: Digest, meta: Metadata, mounted_from: tuple[RepositoryName, Location] | None = None,
    ) -> None:  # fmt: skip
        self.store, self.storage, self.lease, self.meta = store, storage, lease, meta
        self.repository, self.digest, self.mounted_from = repository, digest, mounted_from
        self.location = lease.location
        self.data = self.location.upload_data(lease.upload_id, lease.generation)
        self.target = self.location.blob(str(digest))
        self.staged = False  # the recorded bytes are the committed object at ``data``

    async def run(self) -> None:
        """Verify → place → link and record → clean up."""
        actual = await self.verify()
        if actual != self.digest:
            await discard(self.store, self.storage, self.lease, self.repository,
                          f"digest mismatch: content is {actual}", self.meta)  # fmt: skip
            raise DigestInvalid(
                f"the uploaded content has digest {actual}, not {self.digest}",
                detail={"digest": str(self.digest)},
            )
        await run_with_retry(self.store, self.place_and_record, projector=project, metadata=self.meta)
        await drop_data(self.storage, self.lease, staged=self.staged)

    async def verify(self) -> Digest:
        """The digest of the recorded bytes: from the saved hash state when there is one for this
        algorithm, else by staging the bytes and reading them back."""
        if self.digest.algorithm == "sha256" and resumable.AVAILABLE:
            if self.lease.hash_state is not None:
                return Digest.from_hasher(resumable.ResumableSha256(self.lease.hash_state))
            if self.lease.size == 0:
                return Digest.from_hasher(resumable.ResumableSha256())
        await self.stage()
        hasher: Any = Digest.of(b"", self.digest.algorithm).new_hasher()
        try:
            async for chunk in self.storage.read(self.data):
                hasher.update(chunk)
        except ObjectNotFound:
            raise DataGone() from None
        return Digest.from_hasher(hasher)

    async def stage(self) -> None:
        """Make the recorded bytes the object at ``data`` (once). Raises ``DataGone``."""
        if not self.staged:
            await committed_data(self.storage, self.lease, self.data)
            self.staged = True

    async def place_and_record(self, uow: UnitOfWork) -> None:
        """One transaction (retried as a whole): locks, lease check, placement unless content
        is already at the address, ``UploadCompleted`` and ``BlobLinked``."""
        feed = await require_feed(uow.conn, self.repository, share_lock=True,
                                  lock_blob=(self.location.key, str(self.digest)))  # fmt: skip
        if self.lease.incarnation not in (None, feed.incarnation) or feed.location != self.location:
            raise BlobUploadUnknown(
                f"upload session {self.lease.upload_id} belongs to a deleted feed {feed.name!r}"
            )
        await sessions.end(uow.conn, self.lease)
        if await self.storage.stat(self.target) is None:  # never replace stored content
            await self.stage()
            try:
                await self.storage.move(self.data, self.target)
            except ObjectNotFound:
                raise DataGone() from None
        await uow.emit(UploadCompleted(
            upload_id=self.lease.upload_id, repository=str(self.repository), digest=str(self.digest),
            size=self.lease.size, store=self.location.key))  # fmt: skip
        if self.mounted_from is None:
            await link(uow, str(self.repository), str(self.digest), self.lease.size, feed)
        else:  # a cross-store mount: the copy is recorded as what it is
            origin, source = self.mounted_from
            event = mounted(self.repository, origin, self.digest, self.lease.size, feed, source)
            await uow.emit(event)


async def committed_data(storage: StorageDriver, lease: Lease, path: str) -> None:
    """Make the bytes ``lease`` recorded the committed object at ``path``: resume the storage
    writer from the recorded state and commit it (only recorded bytes: a superseded writer's
    late bytes are cut off or refused). An object already committed there by an earlier attempt
    with the recorded size is accepted.

    Raises:
        DataGone: neither the writer's bytes nor a committed object of the right size exist.
    """
    try:
        writer = await storage.writer(path, lease.resume_state())
        await writer.commit()
    except WriterStateInvalid:
        info = await storage.stat(path)
        if info is None or info.size != lease.size:
            raise DataGone() from None


async def drop_data(storage: StorageDriver, lease: Lease, *, staged: bool = False) -> None:
    """Remove everything a session stored: its unfinished write (an S3 multipart upload, staged
    Azure blocks) and every object under its prefix."""
    if not staged and lease.resume_state() is not None:
        path = lease.location.upload_data(lease.upload_id, lease.generation)
        try:
            writer = await storage.writer(path, lease.resume_state())
        except WriterStateInvalid:
            pass
        else:
            await writer.cancel()
    await storage.delete(lease.location.upload_prefix(lease.upload_id))


async def discard(
    store: EventStore, storage: StorageDriver, lease: Lease, repository: RepositoryName, reason: str,
    meta: Metadata,
) -> None:  # fmt: skip
    """End the session (``UploadCancelled``) and remove everything it stored.

    Raises:
        LeaseLost: another request took the session over meanwhile (nothing changed).
    """

    async def work(uow: UnitOfWork) -> None:
        await sessions.end(uow.conn, lease)
        await uow.emit(UploadCancelled(
            upload_id=lease.upload_id, repository=str(repository), reason=reason))  # fmt: skip

    await run_with_retry(store, work, projector=project, metadata=meta)
    await drop_data(storage, lease)


def mounted(
    repository: RepositoryName, origin: RepositoryName, digest: Digest, size: int, feed: Feed,
    copied_from: Location | None = None,
) -> BlobMounted:  # fmt: skip
    """The ``BlobMounted`` event of a mount from ``origin`` into ``repository`` of ``feed``:
    linked within one location, or copied from ``copied_from`` (another location's key)."""
    return BlobMounted(
        repository=str(repository), from_repository=str(origin), digest=str(digest), size=size,
        incarnation=feed.incarnation, store=feed.location.key,
        copied_from=None if copied_from is None else copied_from.key,
    )  # fmt: skip


async def link(
    uow: UnitOfWork, repository: str, digest: str, size: int, feed: Feed,
    origin: tuple[str, str] | None = None,
) -> None:  # fmt: skip
    """Emit ``BlobLinked``: links ``digest`` into ``repository`` in the feed's incarnation,
    or refreshes the link's ``linked_at`` (and incarnation) if it exists — a link older than
    GC's grace that no manifest references could otherwise be collected right after this upload
    answered 201, and a link left by a deleted incarnation becomes the new one's (the late
    ``FeedDeleted`` reaction only removes links of the incarnation it ended).

    ``origin=(upstream repository, connector id)``: the blob came from a connector
    (``berth_blob.domain.cache``); ``BlobCached`` is emitted instead, which also records the
    content in the location's blobs as ``UploadCompleted`` does for a push."""
    event = BlobLinked(
        repository=repository, digest=digest, size=size, incarnation=feed.incarnation, store=feed.location.key
    )
    if origin is not None:
        event = BlobCached(
            repository=repository, digest=digest, size=size, incarnation=feed.incarnation,
            store=feed.location.key, origin=origin[0], connector_id=origin[1],
        )  # fmt: skip
    await uow.emit(event)
