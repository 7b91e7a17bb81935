"""Events of the feed aggregate (stream ``feed:<name>``), owned by the api service."""

from __future__ import annotations

from typing import Any

from berth_common.events.base import Event
from berth_common.events.catalogue import register


@register
class FeedCreated(Event):
    """A feed (a registry within Berth) was created. ``public``: anonymous may pull."""

    type_name = "feed.created"
    feed: str
    description: str = ""
    public: bool = False
    storage: dict[str, Any] = {}


@register
class FeedUpdated(Event):
    """Some of a feed's settings changed; ``changes`` holds only the new values."""

    type_name = "feed.updated"
    feed: str
    changes: dict[str, Any]


@register
class FeedDeleted(Event):
    """A feed was deleted, with all its repositories."""

    type_name = "feed.deleted"
    feed: str
