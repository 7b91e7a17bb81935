"""Events of blobs and their links to repositories, owned by the blob service (and gc).

A blob is stored once per feed's blob store (content-addressed) and *linked* to each
repository that may serve it. Streams: ``bloblink:<repository>@<digest>`` for links,
``blob:<feed>@<digest>`` for the stored content.
"""

from __future__ import annotations

from berth_common.events.base import Event
from berth_common.events.catalogue import register


@register
class BlobLinked(Event):
    """``repository`` may now serve the blob ``digest`` (``size`` bytes)."""

    type_name = "blob.linked"
    repository: str
    digest: str
    size: int


@register
class BlobMounted(Event):
    """The blob was linked into ``repository`` from ``from_repository`` without an upload.

    OCI distribution spec v1.1, "Mounting a blob from another repository".
    """

    type_name = "blob.mounted"
    repository: str
    from_repository: str | None
    digest: str
    size: int


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
