"""The blob service's view of feeds, read through api's published view ``api.v_feeds``.

docs/ARCHITECTURE.md, "Feed incarnations" and "Stores": the blob service never writes feeds;
it reads whether a feed exists, its current incarnation and where its blobs live, and
share-locks its row where a write must not race the feed's deletion.
"""

from __future__ import annotations

from dataclasses import dataclass

from berth_common.db import Connection
from berth_common.db.locks import blob_lock_key
from berth_common.errors import NameUnknown
from berth_common.errors import feed_unknown as common_feed_unknown
from berth_common.oci.reference import RepositoryName
from berth_common.storage import Location


def feed_unknown(repository: RepositoryName) -> NameUnknown:
    """The error for a repository whose feed does not exist (404 NAME_UNKNOWN, one wording:
    ``berth_common.errors.feed_unknown``)."""
    return common_feed_unknown(repository.feed, str(repository))


@dataclass(frozen=True)
class Feed:
    """What the blob service knows of a feed: its current ``incarnation`` (docs/ARCHITECTURE.md,
    "Feed incarnations") and the ``location`` of its blobs (a configured store, "Stores")."""

    name: str
    incarnation: str
    location: Location


async def require_feed(
    conn: Connection, repository: RepositoryName, *, share_lock: bool = False,
    lock_blob: tuple[str, str] | None = None,
) -> Feed:  # fmt: skip
    """The repository's feed, read through api's published view ``api.v_feeds``.

    ``share_lock`` holds the feed row until the transaction ends, so a concurrent feed DELETE
    waits for it (or it sees the deletion): nothing is linked into a deleted feed.
    ``lock_blob=(location key, digest)`` then also takes that blob's lock (``berth_common.db.locks``)
    in the same round trip, after the feed row.

    Raises:
        NameUnknown: the feed does not exist.
    """
    lock = " FOR SHARE" if share_lock else ""
    if lock_blob is not None:
        row = await conn.fetchrow(
            f"WITH feed AS MATERIALIZED (SELECT incarnation, storage FROM api.v_feeds WHERE name = $1{lock})"
            " SELECT incarnation, storage FROM feed, LATERAL (SELECT pg_advisory_xact_lock($2)) AS blob_lock",
            repository.feed, blob_lock_key(*lock_blob),
        )  # fmt: skip
    else:
        row = await conn.fetchrow(
            f"SELECT incarnation, storage FROM api.v_feeds WHERE name = $1{lock}", repository.feed
        )
    if row is None:
        raise feed_unknown(repository)
    location = Location.of_feed(repository.feed, row["storage"])
    return Feed(repository.feed, str(row["incarnation"]), location)
