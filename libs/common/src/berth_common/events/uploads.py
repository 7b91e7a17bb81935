"""Events of upload sessions (stream ``upload:<uuid>``), owned by the blob service.

OCI distribution spec v1.1, "Pushing blobs" (POST / PATCH / PUT). Events carry offsets and
lengths, never bytes: the bytes live in the storage driver.
"""

from __future__ import annotations

from berth_common.events.base import Event
from berth_common.events.catalogue import register


@register
class UploadStarted(Event):
    """An upload session was opened for ``repository``."""

    type_name = "upload.started"
    upload_id: str
    repository: str


@register
class ChunkReceived(Event):
    """``length`` bytes were appended at ``offset`` (so the session now holds offset+length)."""

    type_name = "upload.chunk_received"
    upload_id: str
    repository: str
    offset: int
    length: int


@register
class UploadCompleted(Event):
    """The session was closed with a verified ``digest``; the blob (``size`` bytes) is stored."""

    type_name = "upload.completed"
    upload_id: str
    repository: str
    digest: str
    size: int


@register
class UploadCancelled(Event):
    """The client cancelled the session (DELETE), or it failed validation and was discarded."""

    type_name = "upload.cancelled"
    upload_id: str
    repository: str
    reason: str = "cancelled by client"


@register
class UploadExpired(Event):
    """Cleanup purged the session after it was idle longer than the configured age."""

    type_name = "upload.expired"
    upload_id: str
    repository: str
