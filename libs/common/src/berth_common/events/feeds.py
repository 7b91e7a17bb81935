"""Events of the feed aggregate (stream ``feed:<name>``), owned by the api service."""

from __future__ import annotations

from typing import Any

from berth_common.events.base import Event
from berth_common.events.catalogue import register, upcaster


@register
class FeedCreated(Event):
    """A feed (a registry within Berth) was created.

    ``public``: anonymous may pull. ``allow_sparse`` (v2): manifests and indexes may reference
    blobs and child manifests the repository does not hold.
    """

    type_name = "feed.created"
    stream_template = "feed:{feed}"
    schema_version = 2
    feed: str
    description: str = ""
    public: bool = False
    storage: dict[str, Any] = {}
    allow_sparse: bool = False


@upcaster("feed.created", 1)
def _feed_created_v1(payload: dict[str, Any]) -> dict[str, Any]:
    """v1 → v2: feeds created before the option allow no sparse content."""
    return {**payload, "allow_sparse": False}


@register
class FeedUpdated(Event):
    """Some of a feed's settings changed; ``changes`` holds only the new values
    (``description``, ``public``, ``storage``, ``allow_sparse``)."""

    type_name = "feed.updated"
    stream_template = "feed:{feed}"
    feed: str
    changes: dict[str, Any]


@register
class FeedDeleted(Event):
    """A feed was deleted, with all its repositories.

    ``incarnation`` (v2): which life of the feed ended — the event id of the ``FeedCreated``
    that began it. A feed created again under the same name is a new incarnation, and nothing
    of the deleted one is visible, linkable or mountable in it (docs/ARCHITECTURE.md,
    "Feed incarnations"). ``None`` for events recorded before incarnations existed.
    """

    type_name = "feed.deleted"
    stream_template = "feed:{feed}"
    schema_version = 2
    feed: str
    incarnation: str | None = None


@upcaster("feed.deleted", 1)
def _feed_deleted_v1(payload: dict[str, Any]) -> dict[str, Any]:
    """v1 → v2: the incarnation was not recorded."""
    return {**payload, "incarnation": None}
