"""Events of upload sessions (stream ``upload:<uuid>``), owned by the blob service.

OCI distribution spec v1.1, "Pushing blobs" (POST / PATCH / PUT). Events carry offsets and
lengths, never bytes: the bytes live in the storage driver.
"""

from __future__ import annotations

from typing import Any

from berth_common.events.base import Event
from berth_common.events.catalogue import legacy_key, register, upcaster


@register
class UploadStarted(Event):
    """An upload session was opened for ``repository``.

    v2: ``incarnation``, the life of the repository's feed the session belongs to (see
    ``FeedDeleted``; a session of a deleted incarnation can never complete; ``None`` for
    sessions opened before incarnations existed), and ``store``, the key of the location its
    bytes go to (``berth_common.storage.Location``).
    """

    type_name = "upload.started"
    stream_template = "upload:{upload_id}"
    schema_version = 2
    upload_id: str
    repository: str
    incarnation: str | None = None
    store: str


@upcaster("upload.started", 1)
def _upload_started_v1(payload: dict[str, Any]) -> dict[str, Any]:
    """v1 → v2: no incarnation was recorded; the bytes went to the feed's legacy location."""
    return {**payload, "incarnation": None, "store": legacy_key(payload["repository"])}


@register
class ChunkReceived(Event):
    """``length`` bytes were appended at ``offset`` (so the session now holds offset+length)."""

    type_name = "upload.chunk_received"
    stream_template = "upload:{upload_id}"
    upload_id: str
    repository: str
    offset: int
    length: int


@register
class UploadCompleted(Event):
    """The session was closed with a verified ``digest``; the blob (``size`` bytes) is stored
    in the location ``store`` (v2; ``berth_common.storage.Location`` key)."""

    type_name = "upload.completed"
    stream_template = "upload:{upload_id}"
    schema_version = 2
    upload_id: str
    repository: str
    digest: str
    size: int
    store: str


@upcaster("upload.completed", 1)
def _upload_completed_v1(payload: dict[str, Any]) -> dict[str, Any]:
    """v1 → v2: the blob went to the feed's legacy location."""
    return {**payload, "store": legacy_key(payload["repository"])}


@register
class UploadCancelled(Event):
    """The client cancelled the session (DELETE), or it failed validation and was discarded."""

    type_name = "upload.cancelled"
    stream_template = "upload:{upload_id}"
    upload_id: str
    repository: str
    reason: str = "cancelled by client"


@register
class UploadExpired(Event):
    """Cleanup purged the session after it was idle longer than the configured age."""

    type_name = "upload.expired"
    stream_template = "upload:{upload_id}"
    upload_id: str
    repository: str
