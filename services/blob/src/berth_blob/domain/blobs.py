"""Blob reads, mounts and link removal (OCI distribution spec v1.1, "Pulling blobs",
"Mounting a blob from another repository", "Deleting Blobs")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from berth_blob.domain.commit import mounted
from berth_blob.domain.feeds import require_feed
from berth_blob.projections.tables import project
from berth_common.db import Connection
from berth_common.domain_errors import DomainError
from berth_common.errors import BlobUnknown, NameInvalid, RegistryError
from berth_common.events import BlobUnlinked, Metadata
from berth_common.eventstore import EventStore, UnitOfWork, run_with_retry
from berth_common.oci.digest import Digest
from berth_common.oci.reference import RepositoryName
from berth_common.storage import Location, StorageError

if TYPE_CHECKING:
    from berth_blob.domain.uploads import Uploads

# A link counts only in the feed's current incarnation (docs/ARCHITECTURE.md, "Feed
# incarnations"): links of a deleted feed are invisible at once, whatever the bus's lag.
_CURRENT_LINK = (
    "blob.links l JOIN api.v_feeds f ON f.name = l.feed"
    " AND (l.incarnation IS NULL OR l.incarnation = f.incarnation)"
    " WHERE l.repository = $1 AND l.digest = $2"
)
_FIND = f"SELECT l.size, l.store FROM {_CURRENT_LINK}"


@dataclass(frozen=True)
class LinkedBlob:
    """A blob that a repository may serve: its digest, size (bytes) and location."""

    digest: str
    size: int
    location: Location


async def find(store: EventStore, repository: RepositoryName, digest: Digest) -> LinkedBlob:
    """The blob ``digest`` as linked to ``repository`` in its feed's current incarnation.
    Raises ``BlobUnknown``."""
    row = await store.pool.fetchrow(
        f"SELECT l.size, l.store FROM {_CURRENT_LINK}", str(repository), str(digest)
    )
    if row is None:
        raise BlobUnknown(f"blob {digest} is not in repository {repository}", detail={"digest": str(digest)})
    return LinkedBlob(str(digest), row["size"], Location.parse(row["store"]))


async def mount(
    store: EventStore, uploads: Uploads, repository: RepositoryName, digest: Digest, source: str,
    meta: Metadata,
) -> bool:  # fmt: skip
    """Make ``digest``, served by ``source``, a blob of ``repository`` without an upload; False
    when it cannot (→ the spec's 202 fallback: the client uploads).

    Within one location (feeds on the same store) the blob is linked (``BlobMounted``); across
    locations its content is copied into the target's store, verified against ``digest`` on the
    way, and recorded as ``BlobMounted`` with ``copied_from``. The caller has checked that the
    client may pull ``source``.

    Raises:
        NameUnknown: the target's feed does not exist.
    """
    try:
        origin = RepositoryName.parse(source)
    except NameInvalid:
        return False
    found = await store.pool.fetchrow(
        f"SELECT l.size, l.store FROM {_CURRENT_LINK}", str(origin), str(digest)
    )
    if found is None:
        return False
    where = Location.parse(found["store"])
    async with store.pool.acquire() as conn:
        target = await require_feed(conn, repository)
    if target.location == where:
        return await _link_from(store, repository, origin, digest, meta)
    return await _copy_from(uploads, repository, origin, digest, where, found["size"], meta)


async def _link_from(
    store: EventStore, repository: RepositoryName, origin: RepositoryName, digest: Digest, meta: Metadata
) -> bool:
    async def work(uow: UnitOfWork) -> bool:
        feed = await require_feed(uow.conn, repository, share_lock=True)
        size = await _lock_source(uow.conn, origin, digest, feed.location)
        if size is None:
            return False
        # Emitted even if the target already links the blob: it refreshes ``linked_at``, so a
        # stale unreferenced link is not collected right after the client was told 201.
        await uow.emit(mounted(repository, origin, digest, size, feed))
        return True

    result = await run_with_retry(store, work, projector=project, metadata=meta)
    return result


async def _lock_source(
    conn: Connection, origin: RepositoryName, digest: Digest, where: Location
) -> int | None:
    """The source link's size, share-locked — GC cannot unlink the source (and then delete the
    content, which no committed link would protect) until this mount has committed its own link."""
    row = await conn.fetchrow(
        f"SELECT l.size, l.store FROM {_CURRENT_LINK} FOR SHARE OF l", str(origin), str(digest)
    )
    return None if row is None or row["store"] != where.key else int(row["size"])


async def _copy_from(
    uploads: Uploads, repository: RepositoryName, origin: RepositoryName, digest: Digest, where: Location,
    size: int, meta: Metadata,
) -> bool:  # fmt: skip
    """Copy the content from another location through a monolithic upload (verified on the way);
    False if it cannot be read or does not verify (the client then uploads)."""
    body = uploads.stores.driver(where).read(where.blob(str(digest)))
    try:
        await uploads.upload_whole(repository, digest, body, size, meta, mounted_from=(origin, where))
    except (RegistryError, DomainError, StorageError):
        return False
    return True


async def unlink(store: EventStore, repository: RepositoryName, digest: Digest, meta: Metadata) -> None:
    """Remove the blob from the repository (its content stays until GC). Raises ``BlobUnknown``."""

    async def work(uow: UnitOfWork) -> None:
        exists = await uow.conn.fetchval(
            f"SELECT 1 FROM {_CURRENT_LINK} FOR UPDATE OF l", str(repository), str(digest)
        )
        if not exists:
            raise BlobUnknown(
                f"blob {digest} is not in repository {repository}", detail={"digest": str(digest)}
            )
        await uow.emit(BlobUnlinked(repository=str(repository), digest=str(digest)))

    await run_with_retry(store, work, projector=project, metadata=meta)
