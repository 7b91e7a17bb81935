"""Manifests fetched from a connector, recorded like pushed ones (stream ``repository:<feed>/<image>``).

``manifest.cached`` (a ``manifest.pushed`` with its origin) and ``tag.updated`` v2 with the
origin, in one transaction with the end of the fetch's lease, so a pull that waited for the
fetch finds the manifest as soon as the lease is gone. A tag pushed here meanwhile is never
moved (local content wins). docs/ARCHITECTURE.md, "Connectors".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from berth_api.domain.feeds import require_feed
from berth_api.projections.tables import project
from berth_common.connectors.singleflight import FetchLeases, Lease
from berth_common.connectors.upstream import UpstreamError
from berth_common.errors import ManifestInvalid, NameUnknown, UnsupportedMediaType
from berth_common.events import ManifestCached, Metadata, TagUpdated
from berth_common.eventstore import EventStore, UnitOfWork, run_with_retry
from berth_common.oci.digest import Digest
from berth_common.oci.manifest import ParsedManifest, parse_manifest
from berth_common.oci.reference import RepositoryName

Row = dict[str, Any]
"""A manifest as the GET route serves it: ``digest``, ``media_type``, ``size``, ``body`` and,
for a lookup by tag, the tag's ``origin`` (``None``: pushed here)."""


@dataclass(frozen=True)
class Fetched:
    """A manifest from upstream, verified: exact ``body``, its ``digest``, parsed form,
    ``origin`` (upstream repository) and the ``connector_id`` that fetched it."""

    body: bytes
    digest: Digest
    parsed: ParsedManifest
    origin: str
    connector_id: str
    incarnation: str | None = None

    @classmethod
    def verify(
        cls, body: bytes, media_type: str, expected: Digest | str | None, origin: str, connector_id: str,
        incarnation: str | None = None,
    ) -> Fetched:  # fmt: skip
        """Check ``body`` is a manifest whose digest is ``expected`` (a requested digest, or the
        upstream's ``Docker-Content-Digest``). ``incarnation``: the feed's life the connector was
        read in. Raises ``UpstreamError`` (``invalid``)."""
        algorithm = expected.split(":", 1)[0] if isinstance(expected, str) and ":" in expected else "sha256"
        try:
            digest = Digest.of(body, algorithm)
            parsed = parse_manifest(body, media_type or None)
            body.decode("utf-8")
        except (ManifestInvalid, UnsupportedMediaType, UnicodeDecodeError, ValueError) as exc:
            raise UpstreamError("invalid", f"{origin} sent an unusable manifest: {exc}") from None
        if expected is not None and str(expected) != str(digest):
            raise UpstreamError(
                "invalid", f"{origin} sent a manifest whose digest is {digest}, not {expected}"
            )
        return cls(body, digest, parsed, origin, connector_id, incarnation)

    def row(self, origin: str | None = None) -> Row:
        """The row the GET route serves."""
        parsed = self.parsed
        return {
            "digest": str(self.digest), "media_type": parsed.media_type, "size": len(self.body),
            "body": self.body, "origin": origin,
        }  # fmt: skip


async def lookup(pool: asyncpg.Pool, repository: RepositoryName, ref: str | Digest, head: bool) -> Row | None:
    """The local manifest ``ref`` names (a tag also gives its ``origin``), or ``None``."""
    body = "''::bytea AS body" if head else "m.body"
    if isinstance(ref, Digest):
        sql = (
            f"SELECT m.digest, m.media_type, m.size, {body}, NULL AS origin FROM api.manifests m"
            " WHERE m.repository = $1 AND m.digest = $2"
        )
    else:
        sql = (
            f"SELECT m.digest, m.media_type, m.size, {body}, t.origin FROM api.tags t JOIN api.manifests m"
            " ON m.repository = t.repository AND m.digest = t.digest"
            " WHERE t.repository = $1 AND t.tag = $2"
        )
    row = await pool.fetchrow(sql, str(repository), str(ref))
    return dict(row) if row is not None else None


async def is_fresh(pool: asyncpg.Pool, repository: RepositoryName, tag: str, ttl: int) -> bool:
    """Whether the cached ``tag`` was set or confirmed upstream less than ``ttl`` seconds ago."""
    fresh = await pool.fetchval(
        "SELECT greatest(t.updated_at, c.checked_at) + make_interval(secs => $3) > now()"
        " FROM api.tags t LEFT JOIN api.tag_checks c ON c.repository = t.repository AND c.tag = t.tag"
        " WHERE t.repository = $1 AND t.tag = $2",
        str(repository), tag, ttl,
    )  # fmt: skip
    return bool(fresh)


async def confirm(
    pool: asyncpg.Pool, leases: FetchLeases, lease: Lease, repository: RepositoryName, tag: str
) -> None:
    """Record that upstream still has ``tag`` where it was (working state, not an event)."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO api.tag_checks(repository, tag, checked_at) VALUES ($1, $2, now())"
            " ON CONFLICT (repository, tag) DO UPDATE SET checked_at = now()",
            str(repository), tag,
        )  # fmt: skip
        await leases.release(lease, conn)


async def record(
    store: EventStore, leases: FetchLeases, lease: Lease, repository: RepositoryName,
    fetched: Fetched, tag: str | None, meta: Metadata,
) -> Row:  # fmt: skip
    """Store ``fetched`` (unless held) and point ``tag`` at it, ending ``lease`` in the same
    transaction; returns the row to serve. A tag pushed here meanwhile stays where it is (and
    is what is served). Raises ``NameUnknown`` if the feed went, or is another incarnation than
    the one ``fetched`` was fetched for."""

    async def work(uow: UnitOfWork) -> Row:
        feed = await require_feed(uow.conn, repository, lock="share")
        if fetched.incarnation not in (None, feed.incarnation):  # deleted meanwhile (and re-created)
            raise NameUnknown(f"feed {repository.feed!r} was deleted", detail={"name": repository.url_name})
        await leases.release(lease, uow.conn)
        if tag is not None:
            local = await _local_tag(uow, repository, tag)
            if local is not None:
                return local
        await _store_manifest(uow, repository, fetched)
        if tag is not None:
            await _point_cached_tag(uow, repository, tag, fetched)
        return fetched.row(fetched.origin if tag is not None else None)

    row = await run_with_retry(store, work, projector=project, metadata=meta)
    return row


async def _local_tag(uow: UnitOfWork, repository: RepositoryName, tag: str) -> Row | None:
    """The tag's manifest if the tag was pushed here (no origin), locking the tag row."""
    row = await uow.conn.fetchrow(
        "SELECT m.digest, m.media_type, m.size, m.body, t.origin FROM api.tags t JOIN api.manifests m"
        " ON m.repository = t.repository AND m.digest = t.digest"
        " WHERE t.repository = $1 AND t.tag = $2 FOR UPDATE OF t",
        str(repository), tag,
    )  # fmt: skip
    return dict(row) if row is not None and row["origin"] is None else None


async def _store_manifest(uow: UnitOfWork, repository: RepositoryName, fetched: Fetched) -> None:
    exists = await uow.conn.fetchval(
        "SELECT 1 FROM api.manifests WHERE repository = $1 AND digest = $2",
        str(repository),
        str(fetched.digest),
    )
    if exists:
        return
    parsed = fetched.parsed
    await uow.emit(ManifestCached(
            repository=str(repository), digest=str(fetched.digest), media_type=parsed.media_type,
            size=len(fetched.body), body=fetched.body.decode("utf-8"),
            blobs=[str(d) for d in parsed.blob_references],
            manifests=[str(d) for d in parsed.manifest_references],
            subject=str(parsed.subject.digest) if parsed.subject else None,
            artifact_type=parsed.artifact_type, origin=fetched.origin, connector_id=fetched.connector_id,
        ),
    )  # fmt: skip


async def _point_cached_tag(uow: UnitOfWork, repository: RepositoryName, tag: str, fetched: Fetched) -> None:
    previous = await uow.conn.fetchrow(
        "SELECT digest, origin FROM api.tags WHERE repository = $1 AND tag = $2", str(repository), tag
    )
    if previous is None or previous["digest"] != str(fetched.digest) or previous["origin"] != fetched.origin:
        await uow.emit(TagUpdated(
                repository=str(repository), tag=tag, digest=str(fetched.digest),
                previous_digest=previous["digest"] if previous else None, origin=fetched.origin,
            ),
        )  # fmt: skip
    await uow.conn.execute(
        "INSERT INTO api.tag_checks(repository, tag, checked_at) VALUES ($1, $2, now())"
        " ON CONFLICT (repository, tag) DO UPDATE SET checked_at = now()",
        str(repository), tag,
    )  # fmt: skip
