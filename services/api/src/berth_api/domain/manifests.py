"""Manifest and tag commands (stream ``repository:<feed>/<image>``).

OCI distribution spec v1.1: "Pushing Manifests", "Deleting tags", "Deleting Manifests".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from berth_api.domain.feeds import FeedState, require_feed
from berth_api.projections.tables import project
from berth_common.db import Connection
from berth_common.errors import (
    Denied,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
)
from berth_common.events import ManifestDeleted, ManifestPushed, Metadata, TagDeleted, TagUpdated
from berth_common.eventstore import EventStore, UnitOfWork, run_with_retry
from berth_common.oci.digest import Digest
from berth_common.oci.manifest import ParsedManifest, parse_manifest
from berth_common.oci.reference import RepositoryName


@dataclass(frozen=True)
class PushedManifest:
    """The result of a manifest PUT: its digest and, if it has one, its subject's digest."""

    digest: str
    subject: str | None


def stream_of(repository: RepositoryName | str) -> str:
    """The event stream of a repository's manifests and tags."""
    return f"repository:{repository}"


async def put_manifest(
    store: EventStore,
    repository: RepositoryName,
    reference: str | Digest,
    body: bytes,
    content_type: str | None,
    metadata: Metadata | None = None,
    *,
    may_overwrite: bool = True,
    tags: Sequence[str] = (),
) -> PushedManifest:
    """Store a manifest and point tags at it: ``reference`` if it is a tag, and every one of
    ``tags`` (validated tags of the spec main branch's ``?tag=`` parameters), in one transaction.

    Moving an existing tag to another digest needs ``may_overwrite`` (the Overwrite privilege);
    a refusal sets none of the tags and stores nothing.

    Raises:
        ManifestInvalid / UnsupportedMediaType: the body is not an acceptable manifest.
        DigestInvalid: ``reference`` is a digest that does not match ``body``.
        ManifestBlobUnknown: a referenced blob (or child manifest) is not in the repository,
            and the feed does not allow sparse manifests.
        NameUnknown: the feed does not exist.
        Denied: the tag exists with another digest and ``may_overwrite`` is false.
    """
    parsed = parse_manifest(body, content_type)
    algorithm = reference.algorithm if isinstance(reference, Digest) else "sha256"
    digest = Digest.of(body, algorithm)
    if isinstance(reference, Digest) and reference != digest:
        raise DigestInvalid(
            f"the manifest's digest is {digest}, not {reference}", detail={"digest": str(reference)}
        )
    text = _text(body)

    async def work(uow: UnitOfWork) -> PushedManifest:
        feed = await require_feed(uow.conn, repository, lock="share")
        await _check_references(uow.conn, repository, parsed, feed)
        await _record_manifest(uow, repository, str(digest), parsed, text, len(body))
        named = ([reference] if isinstance(reference, str) else []) + list(tags)
        for tag in dict.fromkeys(named):
            await _point_tag(uow, repository, tag, str(digest), may_overwrite)
        return PushedManifest(str(digest), str(parsed.subject.digest) if parsed.subject else None)

    result = await run_with_retry(store, work, projector=project, metadata=metadata)
    return result


def _text(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise ManifestInvalid("the manifest is not UTF-8 encoded JSON") from None


async def _check_references(
    conn: Connection, repository: RepositoryName, parsed: ParsedManifest, feed: FeedState
) -> None:
    """Raise ``ManifestBlobUnknown`` for the first referenced blob or child manifest the
    repository lacks — unless the feed ``allow_sparse``: then only the blobs it does hold are
    share-locked, so garbage collection cannot take them from under the push. Links of an
    earlier incarnation of the feed do not count (docs/ARCHITECTURE.md, "Feed incarnations")."""
    sparse = feed.allow_sparse
    blobs = sorted({str(d) for d in parsed.blob_references})
    if blobs:
        linked = await conn.fetch(
            # FOR SHARE: garbage collection cannot unlink these blobs until this manifest
            # commits (and then it sees the references) — see berth_gc.domain.collect.
            "SELECT digest FROM blob.v_repository_blobs WHERE repository = $1"
            " AND digest = ANY($2::text[]) AND (incarnation IS NULL OR incarnation = $3::uuid)"
            " ORDER BY digest FOR SHARE",
            str(repository),
            blobs,
            feed.incarnation,
        )
        missing = sorted(set(blobs) - {r["digest"] for r in linked})
        if missing and not sparse:
            raise ManifestBlobUnknown(
                f"blob {missing[0]} is not in repository {repository}", detail={"digest": missing[0]}
            )
    children = sorted({str(d) for d in parsed.manifest_references})
    if children and not sparse:
        known = await conn.fetch(
            "SELECT digest FROM api.manifests WHERE repository = $1 AND digest = ANY($2::text[])",
            str(repository),
            children,
        )
        missing = sorted(set(children) - {r["digest"] for r in known})
        if missing:
            raise ManifestBlobUnknown(
                f"manifest {missing[0]} is not in repository {repository}", detail={"digest": missing[0]}
            )


async def _record_manifest(
    uow: UnitOfWork, repository: RepositoryName, digest: str, parsed: ParsedManifest, text: str, size: int
) -> None:
    exists = await uow.conn.fetchval(
        "SELECT 1 FROM api.manifests WHERE repository = $1 AND digest = $2", str(repository), digest
    )
    if exists:
        return
    await uow.emit(
        ManifestPushed(
            repository=str(repository),
            digest=digest,
            media_type=parsed.media_type,
            size=size,
            body=text,
            blobs=[str(d) for d in parsed.blob_references],
            manifests=[str(d) for d in parsed.manifest_references],
            subject=str(parsed.subject.digest) if parsed.subject else None,
            artifact_type=parsed.artifact_type,
        ),
    )


async def _point_tag(
    uow: UnitOfWork, repository: RepositoryName, tag: str, digest: str, may_overwrite: bool = True
) -> None:
    previous = await uow.conn.fetchval(
        "SELECT digest FROM api.tags WHERE repository = $1 AND tag = $2 FOR UPDATE",
        str(repository),
        tag,
    )
    if previous == digest:
        return
    if previous is not None and not may_overwrite:
        raise Denied(
            f"tag {tag!r} exists; moving it to another manifest needs the Overwrite privilege",
            detail={"tag": tag},
        )
    await uow.emit(
        TagUpdated(
            repository=str(repository),
            tag=tag,
            digest=digest,
            previous_digest=previous,
        ),
    )


async def delete_manifest(
    store: EventStore, repository: RepositoryName, digest: Digest, metadata: Metadata | None = None
) -> None:
    """Delete the manifest ``digest`` and every tag pointing at it. Raises ``ManifestUnknown``."""

    async def work(uow: UnitOfWork) -> None:
        exists = await uow.conn.fetchval(
            "SELECT 1 FROM api.manifests WHERE repository = $1 AND digest = $2 FOR UPDATE",
            str(repository),
            str(digest),
        )
        if not exists:
            raise ManifestUnknown(f"manifest {digest} is not in repository {repository}")
        tags = await uow.conn.fetch(
            "SELECT tag FROM api.tags WHERE repository = $1 AND digest = $2 ORDER BY tag",
            str(repository),
            str(digest),
        )
        for row in tags:
            await uow.emit(
                TagDeleted(repository=str(repository), tag=row["tag"], digest=str(digest)),
            )
        await uow.emit(ManifestDeleted(repository=str(repository), digest=str(digest)))

    await run_with_retry(store, work, projector=project, metadata=metadata)


async def delete_tag(
    store: EventStore, repository: RepositoryName, tag: str, metadata: Metadata | None = None
) -> None:
    """Delete only the tag (the manifest stays). Raises ``ManifestUnknown`` for an unknown tag."""

    async def work(uow: UnitOfWork) -> None:
        digest = await uow.conn.fetchval(
            "SELECT digest FROM api.tags WHERE repository = $1 AND tag = $2 FOR UPDATE",
            str(repository),
            tag,
        )
        if digest is None:
            raise ManifestUnknown(f"tag {tag!r} is not in repository {repository}")
        await uow.emit(TagDeleted(repository=str(repository), tag=tag, digest=digest))

    await run_with_retry(store, work, projector=project, metadata=metadata)
