"""Berth's events: envelope, catalogue and one module per aggregate (DESIGN §2)."""

from berth_common.events import identities  # noqa: F401  (registers the auth service's events)
from berth_common.events.base import Event, Metadata, RecordedEvent
from berth_common.events.blobs import BlobDeleted, BlobLinked, BlobMounted, BlobUnlinked
from berth_common.events.catalogue import all_types, decode, event_class, register, upcaster
from berth_common.events.feeds import FeedCreated, FeedDeleted, FeedUpdated
from berth_common.events.repositories import ManifestDeleted, ManifestPushed, TagDeleted, TagUpdated
from berth_common.events.uploads import (
    ChunkReceived,
    UploadCancelled,
    UploadCompleted,
    UploadExpired,
    UploadStarted,
)

__all__ = [
    "BlobDeleted",
    "BlobLinked",
    "BlobMounted",
    "BlobUnlinked",
    "ChunkReceived",
    "Event",
    "FeedCreated",
    "FeedDeleted",
    "FeedUpdated",
    "ManifestDeleted",
    "ManifestPushed",
    "Metadata",
    "RecordedEvent",
    "TagDeleted",
    "TagUpdated",
    "UploadCancelled",
    "UploadCompleted",
    "UploadExpired",
    "UploadStarted",
    "all_types",
    "decode",
    "event_class",
    "register",
    "upcaster",
]
