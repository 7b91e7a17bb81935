"""Blobs from a connector into the feed's store: the one place that writes fetched content.

docs/ARCHITECTURE.md, "Connectors". Built on the primitives the upload commit uses
(``berth_blob.domain.commit``), with the same invariants:

- bytes stream from the upstream response through the storage driver's resumable ``Writer``
  (to a fresh upload folder of the feed's location, ``Location.upload_data(<fetch id>)``, that
  no session row names: GC's storage sweep removes it if a crash leaves it) while being hashed;
- the digest (and the upstream's ``Content-Length``) is checked before anything is visible:
  a mismatch cancels the write and stores nothing;
- placed under the feed's share lock and the blob's lock in its location
  (``require_feed(…, lock_blob=(location key, digest))``, the lock GC takes before deleting
  content): **content already stored at the digest is kept, never replaced**; then
  ``blob.cached`` (a link with its origin, ``commit.link``) and the end of the fetch's lease
  commit together, so a pull that waited sees the blob when the lease goes.

``adopt`` links content the location already holds (fetched for another repository, or
pushed) without fetching it again.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

import httpx
import structlog

from berth_blob.domain.blobs import LinkedBlob
from berth_blob.domain.commit import link
from berth_blob.domain.feeds import Feed, feed_unknown, require_feed
from berth_blob.domain.streams import Metered
from berth_blob.domain.tee import Tee
from berth_blob.projections.tables import project
from berth_common.connectors import metrics
from berth_common.connectors.model import Connector
from berth_common.connectors.singleflight import FetchLeases, Lease
from berth_common.events import Metadata
from berth_common.eventstore import EventStore, UnitOfWork, run_with_retry
from berth_common.oci.digest import Digest
from berth_common.oci.reference import RepositoryName
from berth_common.storage import Location, StorageDriver, Writer

log = structlog.get_logger("berth.connectors")


class DigestMismatch(Exception):
    """The upstream's bytes are not the blob asked for (another digest, or another length)."""


class LeaseLost(Exception):
    """The fetch's lease expired and another request may be fetching: this one stops."""


@dataclass(frozen=True)
class CacheTarget:
    """Where a fetched blob goes: ``repository`` of ``feed`` (as read when the fetch began: its
    incarnation and location), ``digest``, and the ``connector`` it came from."""

    repository: RepositoryName
    feed: Feed
    digest: Digest
    connector: Connector

    @property
    def location(self) -> Location:
        """Where the feed's blobs live (a store, or an area of one)."""
        return self.feed.location

    @property
    def origin(self) -> tuple[str, str]:
        """``(origin, connector id)`` for ``blob.cached``."""
        return self.connector.origin(self.repository.image), self.connector.id

    def same_feed_life(self, now: Feed) -> None:
        """Raise ``NameUnknown`` if the feed was deleted (and maybe created again) since the
        fetch began: nothing of one incarnation is recorded in the next."""
        if now.incarnation != self.feed.incarnation or now.location != self.location:
            raise feed_unknown(self.repository)
        if self.connector.incarnation not in (None, now.incarnation):
            raise feed_unknown(self.repository)


class BlobFetch:
    """One upstream blob streamed into the store (``run``, as a task) and to a ``Tee``.

    ``lease`` None: the connector does not cache, the bytes are only verified and passed on.
    ``size``: the upstream's ``Content-Length`` (None: not sent; then not checked).
    """

    def __init__(
        self, store: EventStore, storage: StorageDriver, leases: FetchLeases, lease: Lease | None,
        target: CacheTarget, response: httpx.Response, size: int | None, tee: Tee, meta: Metadata,
    ) -> None:  # fmt: skip
        self.store, self.storage, self.leases, self.lease = store, storage, leases, lease
        self.target, self.response, self.size, self.tee, self.meta = target, response, size, tee, meta
        self.fetch_id = str(uuid.uuid4())
        self.data = target.location.upload_data(self.fetch_id)

    async def run(self) -> None:
        """Fetch, verify, store and record; the tee learns the outcome. Never raises."""
        try:
            if self.lease is None:
                await self._verify_only()
            else:
                async with self.leases.kept(self.lease) as lost:
                    await self._store(lost.is_set)
            self.tee.finish()
        except BaseException as exc:  # the client's stream is cut; the error is logged here
            self.tee.finish(exc)
            metrics.FETCHES.labels(
                "blob", "digest_mismatch" if isinstance(exc, DigestMismatch) else "failed"
            ).inc()
            log.warning("connector.blob_fetch_failed", repository=str(self.target.repository),
                        digest=str(self.target.digest), error=str(exc) or type(exc).__name__)  # fmt: skip
            if not isinstance(exc, Exception):
                raise
        finally:
            await self.response.aclose()
            if self.lease is not None:
                await _quietly(self.leases.release(self.lease))

    async def _bytes(self, written: Writer | None, lost: object = None) -> int:
        """Stream, hash and hand on every byte; the byte count. Raises ``DigestMismatch``."""
        hasher = self.target.digest.new_hasher()
        metered = Metered(self.response.aiter_bytes(), hasher)
        async for chunk in metered:
            if callable(lost) and lost():
                raise LeaseLost(f"the fetch lease of {self.target.digest} was taken over")
            metrics.FETCHED_BYTES.inc(len(chunk))
            if written is None:
                await self.tee.offer(chunk)
            else:  # the client's send overlaps the storage write (the last piece waits anyway)
                await asyncio.gather(written.write(chunk), self.tee.offer(chunk))
        await self.tee.offer(None)
        actual = Digest.from_hasher(hasher)
        if actual != self.target.digest or (self.size is not None and metered.count != self.size):
            raise DigestMismatch(
                f"{self.target.connector.upstream.registry} sent {metered.count} bytes with digest {actual}"
                f" for {self.target.digest} ({self.size} bytes announced)"
            )
        return metered.count

    async def _verify_only(self) -> None:
        await self._bytes(None)
        metrics.FETCHES.labels("blob", "passed_through").inc()

    async def _store(self, lost: object) -> None:
        writer = await self.storage.writer(self.data)
        placed = Placement(self, writer)
        try:
            size = await self._bytes(writer, lost)
            await placed.record(size)
        finally:
            await placed.clean_up()
        metrics.FETCHES.labels("blob", "stored").inc()


class Placement:
    """The verified bytes of a ``BlobFetch`` put at the digest's address and recorded."""

    def __init__(self, fetch: BlobFetch, writer: Writer) -> None:
        self.fetch, self.writer, self.committed = fetch, writer, False

    async def record(self, size: int) -> None:
        """One transaction (retried as a whole): locks, placement unless content is already
        at the address, ``blob.cached``, the end of the lease."""
        fetch, target = self.fetch, self.fetch.target
        digest = str(target.digest)

        async def work(uow: UnitOfWork) -> None:
            feed = await require_feed(uow.conn, target.repository, share_lock=True,
                                      lock_blob=(target.location.key, digest))  # fmt: skip
            target.same_feed_life(feed)
            address = target.location.blob(digest)
            if await fetch.storage.stat(address) is None:  # never replace stored content
                if not self.committed:
                    await self.writer.commit()
                    self.committed = True
                await fetch.storage.move(fetch.data, address)
            await link(uow, str(target.repository), digest, size, feed, origin=target.origin)
            assert fetch.lease is not None
            await fetch.leases.release(fetch.lease, uow.conn)

        await run_with_retry(fetch.store, work, projector=project, metadata=fetch.meta)

    async def clean_up(self) -> None:
        """Drop the fetch's working bytes (an unfinished write, or what was not moved)."""
        if not self.committed:
            await _quietly(self.writer.cancel())
        prefix = self.fetch.target.location.upload_prefix(self.fetch.fetch_id)
        await _quietly(self.fetch.storage.delete(prefix))


async def adopt(
    store: EventStore, storage: StorageDriver, target: CacheTarget, meta: Metadata
) -> LinkedBlob | None:
    """Link content the feed's location already holds to ``target.repository``
    (``blob.cached``), under the same locks as a placement; ``None`` if the location does not
    hold it. A link that exists already (another request's fetch just committed) is returned as
    it is. ``storage`` is the driver of the location's store."""

    async def work(uow: UnitOfWork) -> LinkedBlob | None:
        location, digest = target.location, str(target.digest)
        feed = await require_feed(uow.conn, target.repository, share_lock=True,
                                  lock_blob=(location.key, digest))  # fmt: skip
        target.same_feed_life(feed)
        linked = await uow.conn.fetchval(  # by a fetch that committed since the caller looked
            "SELECT size FROM blob.links WHERE repository = $1 AND digest = $2"
            " AND (incarnation IS NULL OR incarnation = $3::uuid)",
            str(target.repository), digest, feed.incarnation,
        )  # fmt: skip
        if linked is not None:
            return LinkedBlob(digest, linked, location)
        size = await uow.conn.fetchval(
            "SELECT size FROM blob.blobs WHERE store = $1 AND digest = $2", location.key, digest
        )
        if size is None or await storage.stat(location.blob(digest)) is None:
            return None
        await link(uow, str(target.repository), digest, size, feed, origin=target.origin)
        return LinkedBlob(digest, size, location)

    found = await run_with_retry(store, work, projector=project, metadata=meta)
    return found


async def _quietly(step: object) -> None:
    """Await a clean-up step; its failure is logged, never raised (the fetch already ended)."""
    try:
        await step  # type: ignore[misc]
    except Exception as exc:
        log.warning("connector.clean_up_failed", error=str(exc) or type(exc).__name__)
