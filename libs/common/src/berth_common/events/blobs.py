"""Events of blobs and their links to repositories, owned by the blob service (and gc).

A blob is stored once per feed's blob store (content-addressed) and *linked* to each
repository that may serve it. Streams: ``bloblink:<repository>@<digest>`` for links,
``blob:<feed>@<digest>`` for the stored content.
"""

from __future__ import annotations

from typing import Any

from berth_common.events.base import Event
from berth_common.events.catalogue import register, upcaster


@register
class BlobLinked(Event):
    """``repository`` may now serve the blob ``digest`` (``size`` bytes).

    ``incarnation`` (v2): the life of the repository's feed the link belongs to (see
    ``FeedDeleted``); ``None`` for links recorded before incarnations existed.
    """

    type_name = "blob.linked"
    schema_version = 2
    repository: str
    digest: str
    size: int
    incarnation: str | None = None


@upcaster("blob.linked", 1)
def _blob_linked_v1(payload: dict[str, Any]) -> dict[str, Any]:
    """v1 → v2: the feed's incarnation was not recorded."""
    return {**payload, "incarnation": None}


@register
class BlobMounted(Event):
    """The blob was linked into ``repository`` from ``from_repository`` without an upload.

    OCI distribution spec v1.1, "Mounting a blob from another repository". ``incarnation`` (v2):
    as for ``BlobLinked``.
    """

    type_name = "blob.mounted"
    schema_version = 2
    repository: str
    from_repository: str | None
    digest: str
    size: int
    incarnation: str | None = None


@upcaster("blob.mounted", 1)
def _blob_mounted_v1(payload: dict[str, Any]) -> dict[str, Any]:
    """v1 → v2: the feed's incarnation was not recorded."""
    return {**payload, "incarnation": None}


@register
class BlobUnlinked(Event):
    """``repository`` no longer serves the blob (DELETE of the blob, or its repository went)."""

    type_name = "blob.unlinked"
    repository: str
    digest: str


@register
class BlobDeleted(Event):
    """Garbage collection removed the blob's content from ``feed``'s store."""

    type_name = "blob.deleted"
    feed: str
    digest: str
    size: int
