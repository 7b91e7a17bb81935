"""Manifests a feed does not hold, fetched from its connectors (docs/ARCHITECTURE.md, "Connectors").

A GET or HEAD of a manifest comes here when the feed has no such manifest, or when the tag it
names was cached from upstream and its TTL has passed. Connectors are tried in order:

- **miss**: GET upstream (by tag or digest), verify (a digest reference must match; by tag,
  the upstream's ``Docker-Content-Digest`` must match the bytes), record ``manifest.cached``
  (and ``tag.updated`` with the origin) and serve;
- **stale cached tag**: HEAD upstream (cheap against rate limits: Docker Hub does not count
  HEADs as pulls); the same digest only renews the tag's check time (``api.tag_checks``), a new
  digest is fetched (unless held) and moves the tag (``tag.updated``, previous digest kept);
- **upstream failing** (unreachable, timeout, 429, 5xx — or the tag gone upstream): a cached
  copy is served (log line ``connector.stale_served``, metric ``berth_connector_stale_served_total``);
  without one the pull fails with every connector's reason in the error's detail.

One fetch per manifest across processes (``berth_common.connectors.singleflight``): the first
request to miss leads; the others wait for its lease to end and serve what it recorded. A
connector with ``cache`` off is a pass-through: fetched on every pull, never recorded.
A pull by digest never needs the upstream once the manifest is here.
"""

from __future__ import annotations

import time

import asyncpg
import structlog

from berth_api.domain import cached
from berth_api.domain.cached import Fetched, Row
from berth_common.connectors import metrics
from berth_common.connectors.model import Connector, feed_connectors
from berth_common.connectors.singleflight import FetchLeases, Lease
from berth_common.connectors.upstream import Upstream, UpstreamError, client_error
from berth_common.errors import ManifestUnknown, Unavailable
from berth_common.events import Metadata
from berth_common.eventstore import EventStore
from berth_common.oci.digest import Digest
from berth_common.oci.reference import RepositoryName

log = structlog.get_logger("berth.connectors")
FOLLOW_ATTEMPTS = 3  # a follower whose leader failed leads itself, at most this often


class PullThrough:
    """The api service's pull-through of manifests (one per process, built at start).

    ``limit``: the largest manifest accepted from upstream, in bytes.
    """

    def __init__(self, store: EventStore, upstream: Upstream, leases: FetchLeases, limit: int) -> None:
        self.store, self.upstream, self.leases, self.limit = store, upstream, leases, limit

    @property
    def pool(self) -> asyncpg.Pool:
        """The database pool."""
        return self.store.pool

    async def manifest(
        self, repository: RepositoryName, ref: str | Digest, local: Row | None, meta: Metadata
    ) -> Row | None:
        """The manifest to serve for ``ref``: ``local`` if it needs no upstream, else what the
        connectors give (see the module docstring); ``None`` when the feed has no connectors.

        Raises:
            ManifestUnknown: no connector has it (404, reasons in ``detail``).
            Unavailable / TooManyRequests: the connectors failed and nothing is cached.
        """
        if local is not None and (isinstance(ref, Digest) or local.get("origin") is None):
            return local
        connectors = await feed_connectors(self.pool, repository.feed)
        if not connectors:
            return local
        if local is not None and await self._fresh(repository, ref, local, connectors):
            return local
        if all(not c.cache for c in connectors):
            return await self._pass_through(repository, ref, connectors)
        return await self._single_flight(repository, ref, local, connectors, meta)

    async def _fresh(
        self, repository: RepositoryName, ref: str | Digest, local: Row, cs: list[Connector]
    ) -> bool:
        """Whether a cached tag needs no revalidation: within its connector's TTL, or its
        connector is gone (then it is kept as it is)."""
        source = next((c for c in cs if c.origin(repository.image) == local["origin"]), None)
        if source is None:
            return True
        return await cached.is_fresh(self.pool, repository, str(ref), source.tag_ttl_seconds)

    async def _single_flight(
        self,
        repository: RepositoryName,
        ref: str | Digest,
        local: Row | None,
        cs: list[Connector],
        meta: Metadata,
    ) -> Row:
        key = f"{repository}@{ref}" if isinstance(ref, Digest) else f"{repository}:{ref}"
        for _ in range(FOLLOW_ATTEMPTS):
            lease = await self.leases.acquire(key)
            if lease is not None:
                try:
                    done = await self._done_meanwhile(repository, ref, cs)
                    if done is not None:
                        return done
                    return await self._lead(lease, repository, ref, local, cs, meta)
                finally:
                    await self.leases.release(lease)  # no-op when recorded (released there)
            metrics.FOLLOWERS.labels("manifest").inc()
            await self.leases.wait(key)
            found = await cached.lookup(self.pool, repository, ref, head=False)
            if found is not None:
                return found
        raise Unavailable(f"fetching manifest {ref} of {repository} from upstream failed repeatedly; retry")

    async def _done_meanwhile(
        self, repository: RepositoryName, ref: str | Digest, cs: list[Connector]
    ) -> Row | None:
        """What another leader recorded between this request's miss and its lease, if it needs
        nothing more (without this look, a request arriving just after a fetch fetches again)."""
        found = await cached.lookup(self.pool, repository, ref, head=False)
        if found is None or isinstance(ref, Digest) or found["origin"] is None:
            return found
        return found if await self._fresh(repository, ref, found, cs) else None

    async def _lead(
        self, lease: Lease, repository: RepositoryName, ref: str | Digest, local: Row | None,
        cs: list[Connector], meta: Metadata,
    ) -> Row:  # fmt: skip
        started, failures = time.monotonic(), []
        for c in cs:
            try:
                row = await self._from(c, lease, repository, ref, local, meta)
            except UpstreamError as exc:
                failures.append(exc)
                continue
            metrics.FETCH_SECONDS.labels("manifest").observe(time.monotonic() - started)
            return row
        return self._fallback(repository, ref, local, failures)

    async def _from(
        self, c: Connector, lease: Lease, repository: RepositoryName, ref: str | Digest, local: Row | None,
        meta: Metadata,
    ) -> Row:  # fmt: skip
        """The manifest from connector ``c``. Raises ``UpstreamError``."""
        image, tag = repository.image, None if isinstance(ref, Digest) else ref
        if local is not None and tag is not None:
            head = await self.upstream.manifest(c, image, tag, head=True, limit=self.limit)
            if head.digest == local["digest"]:
                await cached.confirm(self.pool, self.leases, lease, repository, tag)
                metrics.REVALIDATIONS.labels("unchanged").inc()
                return local
            metrics.REVALIDATIONS.labels("moved").inc()
            log.info("connector.tag_moved", repository=str(repository), tag=tag, digest=head.digest)
        fetched = await self._get(c, image, ref)
        if not c.cache:
            metrics.FETCHES.labels("manifest", "passed_through").inc()
            return fetched.row()
        row = await cached.record(self.store, self.leases, lease, repository, fetched, tag, meta)
        metrics.FETCHES.labels("manifest", "stored").inc()
        return row

    async def _get(self, c: Connector, image: str, ref: str | Digest) -> Fetched:
        """GET and verify. Raises ``UpstreamError``."""
        got = await self.upstream.manifest(c, image, str(ref), limit=self.limit)
        expected = ref if isinstance(ref, Digest) else got.digest
        return Fetched.verify(got.body, got.media_type, expected, c.origin(image), c.id, c.incarnation)

    async def _pass_through(self, repository: RepositoryName, ref: str | Digest, cs: list[Connector]) -> Row:
        failures = []
        for c in cs:
            try:
                fetched = await self._get(c, repository.image, ref)
            except UpstreamError as exc:
                failures.append(exc)
                continue
            metrics.FETCHES.labels("manifest", "passed_through").inc()
            return fetched.row()
        return self._fallback(repository, ref, None, failures)

    def _fallback(
        self, repository: RepositoryName, ref: str | Digest, local: Row | None, failures: list[UpstreamError]
    ) -> Row:
        """The cached copy when every connector failed (logged), else the client's error."""
        reasons = [f.reason for f in failures]
        if local is not None:
            metrics.STALE_SERVED.labels("manifest").inc()
            log.warning(
                "connector.stale_served", repository=str(repository), reference=str(ref), reasons=reasons
            )
            return local
        if failures:
            metrics.FETCHES.labels("manifest", "failed").inc()
        log.info("connector.miss", repository=str(repository), reference=str(ref), reasons=reasons)
        raise client_error(
            ManifestUnknown(
                f"manifest {ref} is not in repository {repository.url_name}, and no connector has it",
                detail={"name": repository.url_name, "reference": str(ref)},
            ),
            failures,
        )
