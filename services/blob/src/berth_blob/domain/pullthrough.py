"""Blobs a repository does not link, from its feed's connectors (docs/ARCHITECTURE.md, "Connectors").

A GET of such a blob, in order:

1. **adopt**: the feed's location already holds the content (fetched for another repository,
   or pushed) and the repository may have it (one of its manifests references it, or the
   upstream answers a HEAD for it): link it, serve it locally; nothing is downloaded;
2. **lead**: the first request to miss takes the fetch's lease (``blob.connector_fetches``,
   keyed by location and digest) and opens the blob upstream (connectors in order); the fetch runs
   as a task (``cache.BlobFetch``) that stores and verifies, and this request's response streams
   the bytes as they pass (``tee.Tee``), the whole blob or a ``Range`` of it;
3. **follow**: the others wait for the lease to end (``singleflight``), then serve the stored
   blob locally (their first byte comes after the whole blob is stored).

A HEAD never downloads: adopt, else the upstream's HEAD gives the size. A connector with
``cache`` off passes blobs through (verified, never stored). The feed's privileges are checked
before anything here runs (``pull`` = View); what is cached obeys GC like pushed content.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import httpx

from berth_blob.domain.blobs import LinkedBlob, find
from berth_blob.domain.cache import BlobFetch, CacheTarget, adopt
from berth_blob.domain.feeds import Feed, require_feed
from berth_blob.domain.tee import Tee
from berth_common.connectors import metrics
from berth_common.connectors.model import Connector, feed_connectors
from berth_common.connectors.singleflight import FetchLeases, Lease
from berth_common.connectors.upstream import Upstream, UpstreamError, client_error
from berth_common.errors import BlobUnknown, Unavailable
from berth_common.events import Metadata
from berth_common.eventstore import EventStore
from berth_common.oci.digest import Digest
from berth_common.oci.reference import RepositoryName
from berth_common.storage import Stores

FOLLOW_ATTEMPTS = 3
Ranger = Callable[[int], "tuple[int, int] | None"]
"""The client's ``Range`` for a blob of a given size: ``(offset, count)`` or None (whole);
raises ``RangeNotSatisfiable``."""


@dataclass
class Streamed:
    """A response fed by a fetch in flight: ``status`` (200, 206), ``headers``, ``body``."""

    status: int
    headers: dict[str, str]
    body: AsyncIterator[bytes] = field(repr=False)


@dataclass(frozen=True)
class _Pull:
    """One pull of a missing blob: the ``repository``, its ``feed`` as read at the start
    (incarnation, location), the ``digest``, the feed's ``connectors`` and the event ``meta``."""

    repository: RepositoryName
    feed: Feed
    digest: Digest
    connectors: list[Connector]
    meta: Metadata

    @property
    def key(self) -> str:
        """The single-flight key: one fetch per location (store) and digest."""
        return f"{self.feed.location.key}@{self.digest}"

    def target(self, source: Connector) -> CacheTarget:
        """Where content from ``source`` goes."""
        return CacheTarget(self.repository, self.feed, self.digest, source)


class BlobPullThrough:
    """The blob service's pull-through (one per process; ``aclose`` at shutdown cancels the
    fetches in flight, whose leases then expire for another process to take over)."""

    def __init__(
        self, store: EventStore, stores: Stores, upstream: Upstream, leases: FetchLeases, idle_timeout: float
    ) -> None:
        self.store, self.stores, self.upstream, self.leases = store, stores, upstream, leases
        self.idle_timeout = idle_timeout
        self.tasks: set[asyncio.Task[None]] = set()

    async def aclose(self) -> None:
        """Cancel the fetches in flight."""
        for task in list(self.tasks):
            task.cancel()
        for task in list(self.tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _begin(self, repository: RepositoryName, digest: Digest, meta: Metadata) -> _Pull | None:
        """The pull's context, or ``None`` when the feed has no connectors. Raises ``NameUnknown``."""
        connectors = await feed_connectors(self.store.pool, repository.feed)
        if not connectors:
            return None
        async with self.store.pool.acquire() as conn:
            feed = await require_feed(conn, repository)
        return _Pull(repository, feed, digest, connectors, meta)

    async def head(
        self, repository: RepositoryName, digest: Digest, meta: Metadata
    ) -> LinkedBlob | int | None:
        """For a HEAD: the blob linked now (adopted), or its upstream size (``-1``: not sent),
        or ``None`` without connectors. Raises ``BlobUnknown`` / ``Unavailable`` /
        ``TooManyRequests`` with the connectors' reasons."""
        pull = await self._begin(repository, digest, meta)
        if pull is None:
            return None
        found = await self._adopt(pull)
        if found is not None:
            return found
        failures: list[UpstreamError] = []
        for c in pull.connectors:
            try:
                size = await self.upstream.blob_size(c, repository.image, str(digest))
            except UpstreamError as exc:
                failures.append(exc)
                continue
            return -1 if size is None else size
        raise client_error(_unknown(repository, digest), failures)

    async def get(
        self, repository: RepositoryName, digest: Digest, ranged: bool, wanted: Ranger, meta: Metadata
    ) -> LinkedBlob | Streamed | None:
        """For a GET: the blob linked now (serve it locally), a response streaming a fetch, or
        ``None`` without connectors. ``ranged``: the request has a ``Range`` header, which
        ``wanted`` applies to the blob's size. Raises ``BlobUnknown`` / ``Unavailable`` /
        ``TooManyRequests`` with the connectors' reasons, ``RangeNotSatisfiable``."""
        pull = await self._begin(repository, digest, meta)
        if pull is None:
            return None
        for _ in range(FOLLOW_ATTEMPTS):
            found = await self._done_meanwhile(pull)
            if found is not None:
                return found
            if all(not c.cache for c in pull.connectors):
                return await self._lead(None, pull, (ranged, wanted))
            lease = await self.leases.acquire(pull.key)
            if lease is not None:
                found = await self._done_meanwhile(pull)
                if found is not None:
                    await self.leases.release(lease)
                    return found
                return await self._lead(lease, pull, (ranged, wanted))
            metrics.FOLLOWERS.labels("blob").inc()
            await self.leases.wait(pull.key)
        raise Unavailable(f"fetching blob {digest} from upstream failed repeatedly; retry")

    async def _done_meanwhile(self, pull: _Pull) -> LinkedBlob | None:
        """The blob if another leader stored it between this request's miss and its lease
        (without this look, a request arriving just after a fetch fetches again)."""
        try:
            return await find(self.store, pull.repository, pull.digest)
        except BlobUnknown:
            return await self._adopt(pull)

    async def _adopt(self, pull: _Pull) -> LinkedBlob | None:
        """Link content the location holds when the repository may have it (module docstring)."""
        if not await self.store.pool.fetchval(
            "SELECT true FROM blob.blobs WHERE store = $1 AND digest = $2",
            pull.feed.location.key,
            str(pull.digest),
        ):
            return None
        source = await self._entitled(pull)
        if source is None:
            return None
        storage = self.stores.driver(pull.feed.location)
        return await adopt(self.store, storage, pull.target(source), pull.meta)

    async def _entitled(self, pull: _Pull) -> Connector | None:
        """The connector the repository's copy of the blob is attributed to: the first, when a
        manifest of the repository references the blob; else the first whose upstream has it."""
        referenced = await self.store.pool.fetchval(
            "SELECT true FROM api.v_manifest_references WHERE repository = $1 AND reference = $2 LIMIT 1",
            str(pull.repository), str(pull.digest),
        )  # fmt: skip
        if referenced:
            return pull.connectors[0]
        for c in pull.connectors:
            with contextlib.suppress(UpstreamError):
                await self.upstream.blob_size(c, pull.repository.image, str(pull.digest))
                return c
        return None

    async def _lead(
        self, lease: Lease | None, pull: _Pull, ranging: tuple[bool, Ranger]
    ) -> LinkedBlob | Streamed:
        try:
            response, source = await self._open(pull)
        except BaseException:
            if lease is not None:
                await self.leases.release(lease)
            raise
        if lease is not None and not source.cache:
            await self.leases.release(lease)
            lease = None
        size = _length(response)
        try:
            wanted = ranging[1](size) if size is not None else None
        except BaseException:
            await response.aclose()
            if lease is not None:
                await self.leases.release(lease)
            raise
        tee = Tee(self.idle_timeout)
        storage = self.stores.driver(pull.feed.location)
        fetch = BlobFetch(
            self.store, storage, self.leases, lease, pull.target(source), response, size, tee, pull.meta
        )
        task = asyncio.create_task(fetch.run(), name=f"connector-fetch-{pull.digest}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        if ranging[0] and size is None and lease is not None:  # no length: no Content-Range
            tee.detach()
            await tee.finished.wait()
            if tee.error is not None:
                raise Unavailable(f"fetching blob {pull.digest} from upstream failed: {tee.error}")
            return await find(self.store, pull.repository, pull.digest)
        return _streamed(pull.digest, size, wanted, tee)

    async def _open(self, pull: _Pull) -> tuple[httpx.Response, Connector]:
        failures: list[UpstreamError] = []
        for c in pull.connectors:
            try:
                return await self.upstream.open_blob(c, pull.repository.image, str(pull.digest)), c
            except UpstreamError as exc:
                failures.append(exc)
        metrics.FETCHES.labels("blob", "failed").inc()
        raise client_error(_unknown(pull.repository, pull.digest), failures)


def _unknown(repository: RepositoryName, digest: Digest) -> BlobUnknown:
    return BlobUnknown(
        f"blob {digest} is not in repository {repository.url_name}, and no connector has it",
        detail={"digest": str(digest)},
    )


def _length(response: httpx.Response) -> int | None:
    value = response.headers.get("content-length", "")
    return int(value) if value.isdigit() else None


def _streamed(digest: Digest, size: int | None, wanted: tuple[int, int] | None, tee: Tee) -> Streamed:
    headers = {"Docker-Content-Digest": str(digest), "Accept-Ranges": "bytes", "ETag": f'"{digest}"'}
    if wanted is None:
        if size is not None:
            headers["Content-Length"] = str(size)
        return Streamed(200, headers, tee.window(0, size))
    offset, count = wanted
    headers["Content-Range"] = f"bytes {offset}-{offset + count - 1}/{size}"
    headers["Content-Length"] = str(count)
    return Streamed(206, headers, tee.window(offset, count))
