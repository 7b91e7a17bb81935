"""Blob reads, mounts and link removal (OCI distribution spec v1.1, "Pulling blobs",
"Mounting a blob from another repository", "Deleting Blobs")."""

from __future__ import annotations

from dataclasses import dataclass

from berth_blob.domain.feeds import require_feed
from berth_blob.projections.tables import project
from berth_common.errors import BlobUnknown, NameInvalid
from berth_common.events import BlobMounted, BlobUnlinked, Metadata
from berth_common.eventstore import EventStore, UnitOfWork, run_with_retry
from berth_common.oci.digest import Digest
from berth_common.oci.reference import RepositoryName


@dataclass(frozen=True)
class LinkedBlob:
    """A blob that a repository may serve: its digest, size and path in the feed's store."""

    digest: str
    size: int


# A link counts only in the feed's current incarnation (docs/ARCHITECTURE.md, "Feed
# incarnations"): links of a deleted feed are invisible at once, whatever the bus's lag.
_CURRENT_LINK = (
    "blob.links l JOIN api.v_feeds f ON f.name = l.feed"
    " AND (l.incarnation IS NULL OR l.incarnation = f.incarnation)"
    " WHERE l.repository = $1 AND l.digest = $2"
)


async def find(store: EventStore, repository: RepositoryName, digest: Digest) -> LinkedBlob:
    """The blob ``digest`` as linked to ``repository`` in its feed's current incarnation.
    Raises ``BlobUnknown``."""
    size = await store.pool.fetchval(f"SELECT l.size FROM {_CURRENT_LINK}", str(repository), str(digest))
    if size is None:
        raise BlobUnknown(f"blob {digest} is not in repository {repository}", detail={"digest": str(digest)})
    return LinkedBlob(str(digest), size)


async def mount(
    store: EventStore, repository: RepositoryName, digest: Digest, source: str, meta: Metadata
) -> bool:
    """Link ``digest`` from ``source`` into ``repository``; False when it cannot (→ 202 fallback).

    Only within one feed (one blob store), and only when ``source`` serves the blob.
    """
    try:
        origin = RepositoryName.parse(source)
    except NameInvalid:
        return False
    if origin.feed != repository.feed:
        return False

    async def work(uow: UnitOfWork) -> bool:
        incarnation = await require_feed(uow.conn, repository, share_lock=True)
        # FOR SHARE: GC cannot unlink the source (and then delete the content, which no
        # committed link would protect) until this mount has committed its own link.
        size = await uow.conn.fetchval(
            f"SELECT l.size FROM {_CURRENT_LINK} FOR SHARE OF l", str(origin), str(digest)
        )
        if size is None:
            return False
        # Emitted even if the target already links the blob: it refreshes ``linked_at``, so a
        # stale unreferenced link is not collected right after the client was told 201.
        await uow.emit(
            f"bloblink:{repository}@{digest}",
            BlobMounted(
                repository=str(repository),
                from_repository=str(origin),
                digest=str(digest),
                size=size,
                incarnation=incarnation,
            ),
        )
        return True

    result: bool = await run_with_retry(store, work, projector=project, metadata=meta)
    return result


async def unlink(store: EventStore, repository: RepositoryName, digest: Digest, meta: Metadata) -> None:
    """Remove the blob from the repository (its content stays until GC). Raises ``BlobUnknown``."""

    async def work(uow: UnitOfWork) -> None:
        exists = await uow.conn.fetchval(
            "SELECT 1 FROM blob.links WHERE repository = $1 AND digest = $2 FOR UPDATE",
            str(repository),
            str(digest),
        )
        if not exists:
            raise BlobUnknown(
                f"blob {digest} is not in repository {repository}", detail={"digest": str(digest)}
            )
        await uow.emit(
            f"bloblink:{repository}@{digest}", BlobUnlinked(repository=str(repository), digest=str(digest))
        )

    await run_with_retry(store, work, projector=project, metadata=meta)
