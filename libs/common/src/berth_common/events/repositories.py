"""Events of repositories: manifests and tags (stream ``repository:<feed>/<image>``), owned by api.

OCI distribution spec v1.1, "Pushing manifests", "Deleting manifests", "Deleting tags".
``ManifestPushed`` carries the manifest's exact text so that projections can be rebuilt from
the event store alone (manifests are small: ≤ 4 MiB by default); the relay omits it on the bus.
"""

from __future__ import annotations

from typing import Any

from berth_common.events.base import Event
from berth_common.events.catalogue import register, upcaster


@register
class ManifestPushed(Event):
    """A manifest (or index) was stored in ``repository``.

    Attributes:
        digest, media_type, size: of the manifest bytes.
        body: the exact manifest text as pushed (UTF-8 JSON; bytes served verbatim).
        blobs: digests of config and layers it references (must be linked to the repository).
        manifests: digests of child manifests (an index).
        subject: the digest of its ``subject`` (referrers), if any.
        artifact_type: ``artifactType`` or, for images, the config media type.
    """

    type_name = "manifest.pushed"
    stream_template = "repository:{repository}"
    repository: str
    digest: str
    media_type: str
    size: int
    body: str
    blobs: list[str] = []
    manifests: list[str] = []
    subject: str | None = None
    artifact_type: str | None = None


@register
class ManifestCached(ManifestPushed):
    """A manifest (or index) fetched from a connector was stored in ``repository``: a
    ``manifest.pushed`` with where it came from, so every reader of pushed manifests (the api
    projection, GC's references) treats it the same. Its blobs need not be in the repository
    (they are fetched when pulled).

    Attributes:
        origin: the upstream repository it came from (``https://registry-1.docker.io/library/busybox``).
        connector_id: the feed's connector that fetched it.
    """

    type_name = "manifest.cached"
    origin: str
    connector_id: str


@register
class ManifestDeleted(Event):
    """The manifest ``digest`` was deleted from ``repository`` (its tags go with it)."""

    type_name = "manifest.deleted"
    stream_template = "repository:{repository}"
    repository: str
    digest: str


@register
class TagUpdated(Event):
    """``tag`` now points at ``digest``; ``previous_digest`` is None for a new tag.

    ``origin`` (v2): the upstream repository whose tag this mirrors, when a connector set it
    (a pull through the connector, or a revalidation that saw the tag move upstream); ``None``
    for a push. Only tags with an origin are revalidated: local content wins.
    """

    type_name = "tag.updated"
    stream_template = "repository:{repository}"
    schema_version = 2
    repository: str
    tag: str
    digest: str
    previous_digest: str | None = None
    origin: str | None = None


@upcaster("tag.updated", 1)
def _tag_updated_v1(payload: dict[str, Any]) -> dict[str, Any]:
    """v1 → v2: tags before connectors were all pushed."""
    return {**payload, "origin": None}


@register
class TagDeleted(Event):
    """``tag`` (which pointed at ``digest``) was deleted from ``repository``."""

    type_name = "tag.deleted"
    stream_template = "repository:{repository}"
    repository: str
    tag: str
    digest: str
