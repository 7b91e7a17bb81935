"""Feed commands: create, update, delete (each an event on stream ``feed:<name>``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import asyncpg

from berth_api.projections.tables import project
from berth_common.db import Connection
from berth_common.errors import Conflict, NameInvalid, NameUnknown, feed_unknown
from berth_common.events import FeedCreated, FeedDeleted, FeedUpdated, Metadata
from berth_common.eventstore import EventStore, UnitOfWork, run_with_retry
from berth_common.oci.reference import RepositoryName

FEED_NAME = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$")


def validate_feed_name(name: str) -> str:
    """Return ``name`` if it can be a feed (a repository's first path component, ≤ 64 chars).

    Raises:
        NameInvalid: with the grammar in the message.
    """
    if not (0 < len(name) <= 64 and FEED_NAME.match(name)):
        raise NameInvalid(
            f"invalid feed name {name[:80]!r}: lowercase letters and digits, separated by"
            " single '.', '_' or '-', at most 64 characters"
        )
    return name


async def create_feed(
    store: EventStore,
    name: str,
    *,
    description: str = "",
    public: bool = False,
    allow_sparse: bool = False,
    store_name: str = "default",
    metadata: Metadata | None = None,
) -> None:
    """Create feed ``name``. Raises ``NameInvalid``; ``Conflict`` if it exists.

    ``allow_sparse``: its manifests may reference blobs and child manifests that were not pushed.
    ``store_name``: the configured store that holds its blobs (recorded as ``storage``
    ``{"store": name}``; the caller checks that it is configured).
    """
    validate_feed_name(name)

    async def work(uow: UnitOfWork) -> None:
        if await uow.conn.fetchval("SELECT 1 FROM api.feeds WHERE name = $1", name):
            raise Conflict(f"feed {name!r} already exists")
        created = FeedCreated(
            feed=name, description=description, public=public, allow_sparse=allow_sparse,
            storage={"store": store_name},
        )  # fmt: skip
        await uow.emit(created)

    try:
        await run_with_retry(store, work, projector=project, metadata=metadata)
    except asyncpg.UniqueViolationError:
        raise Conflict(f"feed {name!r} already exists") from None


async def update_feed(
    store: EventStore, name: str, changes: dict[str, Any], metadata: Metadata | None = None
) -> None:
    """Change a feed's ``description``/``public``/``allow_sparse``. Raises ``NameUnknown``."""

    async def work(uow: UnitOfWork) -> None:
        await require_feed(uow.conn, name, lock="update")
        if changes:
            await uow.emit(FeedUpdated(feed=name, changes=changes))

    await run_with_retry(store, work, projector=project, metadata=metadata)


async def delete_feed(store: EventStore, name: str, metadata: Metadata | None = None) -> None:
    """Delete a feed and (through the projection) its repositories. Raises ``NameUnknown``."""

    async def work(uow: UnitOfWork) -> None:
        feed = await require_feed(uow.conn, name, lock="update")
        await uow.emit(FeedDeleted(feed=name, incarnation=feed.incarnation))

    await run_with_retry(store, work, projector=project, metadata=metadata)


@dataclass(frozen=True)
class FeedState:
    """What a command needs of its feed: the current incarnation and the ``allow_sparse`` option."""

    incarnation: str
    allow_sparse: bool


_LOCKS: dict[str | None, str] = {None: "", "share": " FOR SHARE", "update": " FOR UPDATE"}


async def require_feed(
    conn: Connection, feed: str | RepositoryName, *, lock: Literal["share", "update"] | None = None
) -> FeedState:
    """The feed's ``FeedState``, for a feed name (admin API) or a repository (``FEED/IMAGE``).

    ``lock="share"`` holds the feed row until the transaction ends, so a concurrent feed delete
    waits for a push (or the push waits and then finds no feed) instead of breaking its insert;
    ``lock="update"`` is the feed commands' own exclusive lock (update, delete).

    Raises:
        NameUnknown: the feed does not exist (for a repository, with how names are formed).
    """
    name = feed.feed if isinstance(feed, RepositoryName) else feed
    sql = "SELECT incarnation, allow_sparse FROM api.feeds WHERE name = $1" + _LOCKS[lock]
    row = await conn.fetchrow(sql, name)
    if row is None:
        if isinstance(feed, RepositoryName):
            raise feed_unknown(name, str(feed))
        raise NameUnknown(f"feed {name!r} does not exist")
    return FeedState(str(row["incarnation"]), row["allow_sparse"])
