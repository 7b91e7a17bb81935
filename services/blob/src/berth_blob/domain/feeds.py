"""The blob service's view of feeds, read through api's published view ``api.v_feeds``.

docs/ARCHITECTURE.md, "Contracts between services" and "Feed incarnations": the blob service
never writes feeds; it reads whether a feed exists, its current incarnation, and share-locks
its row where a write must not race the feed's deletion.
"""

from __future__ import annotations

from berth_blob.domain.locks import blob_lock_key
from berth_common.db import Connection
from berth_common.errors import NameUnknown
from berth_common.oci.reference import RepositoryName


def feed_unknown(repository: RepositoryName) -> NameUnknown:
    """The error for a repository whose feed does not exist (404 NAME_UNKNOWN)."""
    return NameUnknown(
        f"feed {repository.feed!r} does not exist: repository names are FEED/IMAGE and the feed"
        " must be created first (berth feed create FEED)",
        detail={"name": str(repository)},
    )


async def require_feed(
    conn: Connection, repository: RepositoryName, *, share_lock: bool = False,
    lock_blob: tuple[str, str] | None = None,
) -> str:  # fmt: skip
    """The feed's current incarnation (read through api's published view ``api.v_feeds``).
    Raises ``NameUnknown`` unless the feed exists.

    ``share_lock`` holds the feed row until the transaction ends, so a concurrent feed DELETE
    waits for it (or it sees the deletion): nothing is linked into a deleted feed.
    ``lock_blob=(feed, digest)`` then also takes that blob's lock (``gc.lock_blob``) in the same
    round trip, after the feed row.
    """
    lock = " FOR SHARE" if share_lock else ""
    if lock_blob is not None:
        found = await conn.fetchval(
            f"WITH feed AS MATERIALIZED (SELECT incarnation FROM api.v_feeds WHERE name = $1{lock})"
            " SELECT incarnation FROM feed, LATERAL (SELECT pg_advisory_xact_lock($2)) AS blob_lock",
            repository.feed, blob_lock_key(*lock_blob),
        )  # fmt: skip
    else:
        found = await conn.fetchval(
            f"SELECT incarnation FROM api.v_feeds WHERE name = $1{lock}", repository.feed
        )
    if not found:
        raise feed_unknown(repository)
    return str(found)
