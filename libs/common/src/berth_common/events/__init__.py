"""Berth's events: envelope, catalogue and one module per aggregate (docs/DESIGN.md §2)."""

from berth_common.events import identities  # noqa: F401  (registers the auth service's events)
from berth_common.events.base import Event, Metadata, RecordedEvent
from berth_common.events.blobs import BlobCached, BlobDeleted, BlobLinked, BlobMounted, BlobUnlinked
from berth_common.events.catalogue import all_types, decode, event_class, register, upcaster
from berth_common.events.connectors import ConnectorAdded, ConnectorRemoved
from berth_common.events.feeds import FeedCreated, FeedDeleted, FeedUpdated
from berth_common.events.repositories import (
    ManifestCached,
    ManifestDeleted,
    ManifestPushed,
    TagDeleted,
    TagUpdated,
)
from berth_common.events.uploads import (
    ChunkReceived,
    UploadCancelled,
    UploadCompleted,
    UploadExpired,
    UploadStarted,
)

__all__ = [
    "BlobCached",
    "BlobDeleted",
    "BlobLinked",
    "BlobMounted",
    "BlobUnlinked",
    "ChunkReceived",
    "ConnectorAdded",
    "ConnectorRemoved",
    "Event",
    "FeedCreated",
    "FeedDeleted",
    "FeedUpdated",
    "ManifestCached",
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
