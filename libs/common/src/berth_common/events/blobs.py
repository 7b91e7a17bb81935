"""Events of blobs and their links to repositories, owned by the blob service (and gc).

A blob is stored once per location of a store (content-addressed, deduplicated) and *linked*
to each repository that may serve it. Streams: ``bloblink:<repository>@<digest>`` for links,
``blob:<location key>@<digest>`` for the stored content.
"""

from __future__ import annotations

from typing import Any

from berth_common.events.base import Event
from berth_common.events.catalogue import legacy_key, register, upcaster


@register
class BlobLinked(Event):
    """``repository`` may now serve the blob ``digest`` (``size`` bytes).

    v2: ``incarnation``, the life of the repository's feed the link belongs to (see
    ``FeedDeleted``; ``None`` for links recorded before incarnations existed), and ``store``,
    the key of the location holding the content (``berth_common.storage.Location``).
    """

    type_name = "blob.linked"
    stream_template = "bloblink:{repository}@{digest}"
    schema_version = 2
    repository: str
    digest: str
    size: int
    incarnation: str | None = None
    store: str


@upcaster("blob.linked", 1)
def _blob_linked_v1(payload: dict[str, Any]) -> dict[str, Any]:
    """v1 → v2: no incarnation was recorded; the content is in the feed's legacy location."""
    return {**payload, "incarnation": None, "store": legacy_key(payload["repository"])}


@register
class BlobCached(BlobLinked):
    """A blob fetched from a connector was verified, stored (unless the store held it already)
    and linked to ``repository``: a ``blob.linked`` that also records the content (as
    ``upload.completed`` does for a push) and where it came from.

    Attributes:
        origin: the upstream repository it came from.
        connector_id: the feed's connector that fetched it.
    """

    type_name = "blob.cached"
    schema_version = 1
    origin: str
    connector_id: str


@register
class BlobMounted(Event):
    """The blob was linked into ``repository`` from ``from_repository`` without an upload.

    OCI distribution spec v1.1, "Mounting a blob from another repository". v2: ``incarnation``
    and ``store`` as for ``BlobLinked``; ``copied_from`` is the source's location key when the
    source lives in another location (the content was copied, verified), else ``None`` (linked).
    """

    type_name = "blob.mounted"
    stream_template = "bloblink:{repository}@{digest}"
    schema_version = 2
    repository: str
    from_repository: str | None
    digest: str
    size: int
    incarnation: str | None = None
    store: str
    copied_from: str | None = None


@upcaster("blob.mounted", 1)
def _blob_mounted_v1(payload: dict[str, Any]) -> dict[str, Any]:
    """v1 → v2: no incarnation recorded; mounts were linked within the feed's legacy location."""
    return {**payload, "incarnation": None, "store": legacy_key(payload["repository"]), "copied_from": None}


@register
class BlobUnlinked(Event):
    """``repository`` no longer serves the blob (DELETE of the blob, or its repository went)."""

    type_name = "blob.unlinked"
    stream_template = "bloblink:{repository}@{digest}"
    repository: str
    digest: str


@register
class BlobDeleted(Event):
    """Garbage collection removed the blob's content from the location ``store`` (v2; v1 named
    the feed, whose legacy location it was)."""

    type_name = "blob.deleted"
    stream_template = "blob:{store}@{digest}"
    schema_version = 2
    store: str
    digest: str
    size: int


@upcaster("blob.deleted", 1)
def _blob_deleted_v1(payload: dict[str, Any]) -> dict[str, Any]:
    """v1 → v2: ``feed`` → its legacy location's key."""
    rest = {k: v for k, v in payload.items() if k != "feed"}
    return {"store": legacy_key(payload["feed"]), **rest}
