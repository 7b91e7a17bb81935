"""Events of repositories: manifests and tags (stream ``repository:<feed>/<image>``), owned by api.

OCI distribution spec v1.1, "Pushing manifests", "Deleting manifests", "Deleting tags".
``ManifestPushed`` carries the manifest's exact text so that projections can be rebuilt from
the event store alone (manifests are small: ≤ 4 MiB by default); the relay omits it on the bus.
"""

from __future__ import annotations

from berth_common.events.base import Event
from berth_common.events.catalogue import register


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
class ManifestDeleted(Event):
    """The manifest ``digest`` was deleted from ``repository`` (its tags go with it)."""

    type_name = "manifest.deleted"
    repository: str
    digest: str


@register
class TagUpdated(Event):
    """``tag`` now points at ``digest``; ``previous_digest`` is None for a new tag."""

    type_name = "tag.updated"
    repository: str
    tag: str
    digest: str
    previous_digest: str | None = None


@register
class TagDeleted(Event):
    """``tag`` (which pointed at ``digest``) was deleted from ``repository``."""

    type_name = "tag.deleted"
    repository: str
    tag: str
    digest: str
