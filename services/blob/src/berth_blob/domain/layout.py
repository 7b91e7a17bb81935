"""Where a feed's registry data lives in the storage driver: ``feeds/<feed>/…``.

Each feed has its own blob store (DESIGN §3): blobs are content-addressed and deduplicated
within it (``feeds/<feed>/blobs/sha256/ab/abcdef…``); upload sessions live beside them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from berth_common.storage import blob_path, upload_data_path, upload_prefix


def is_upload_id(text: str) -> bool:
    """Whether ``text`` is an upload session id as Berth makes them: a UUID in its canonical
    lower-case hyphenated form (``uuid.UUID`` alone also takes ``urn:uuid:…``, braces, upper
    case and no hyphens, which PostgreSQL's ``uuid`` type and per-session locks would not)."""
    try:
        return str(uuid.UUID(text)) == text
    except ValueError:
        return False


@dataclass(frozen=True)
class FeedLayout:
    """Paths of one feed's store."""

    feed: str

    @classmethod
    def of(cls, repository: str) -> FeedLayout:
        """The layout of the feed of ``feed/image``."""
        return cls(repository.split("/", 1)[0])

    @property
    def root(self) -> str:
        """The feed's prefix."""
        return f"feeds/{self.feed}"

    def blob(self, digest: str) -> str:
        """The content address of ``digest``."""
        return f"{self.root}/{blob_path(digest)}"

    def upload_data(self, upload_id: str, generation: int = 0) -> str:
        """The bytes received by an upload session (``generation``: see ``upload_data_path``)."""
        return f"{self.root}/{upload_data_path(upload_id, generation)}"

    def upload_prefix(self, upload_id: str) -> str:
        """Everything of an upload session."""
        return f"{self.root}/{upload_prefix(upload_id)}"
