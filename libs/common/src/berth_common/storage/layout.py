"""Where registry things live inside a store: the only module that knows storage paths.

Blobs are content-addressed and shared by every feed of a store (docs/ARCHITECTURE.md,
"Stores"): ``blobs/<algorithm>/<first two hex chars>/<hex>``, as in Distribution's
``blobDataPathSpec`` (without its trailing ``/data``). Upload sessions keep their bytes under
``uploads/<id>/``. A ``Location`` is one such area — a configured store and a prefix in it —
and the unit of deduplication: feeds created before named stores existed each have their own
(``default`` store, prefix ``feeds/<feed>``); feeds created with a store share its root.
``parse`` turns a listed path back into what it is (the storage sweep's view).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .base import validate_path

# OCI image spec v1.1, "Digests": algorithm-component and encoded grammar.
_ALGORITHM = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*")
_ENCODED = re.compile(r"[a-zA-Z0-9=_-]+")

BLOBS_PREFIX = "blobs"
UPLOADS_PREFIX = "uploads"


def blob_path(digest: str) -> str:
    """``"sha256:abcdef…"`` → ``"blobs/sha256/ab/abcdef…"``.

    Raises:
        ValueError: ``digest`` is not ``algorithm:encoded`` per the OCI grammar, or the encoded
            part is shorter than two characters.
    """
    algorithm, sep, encoded = digest.partition(":")
    if not sep or not _ALGORITHM.fullmatch(algorithm) or not _ENCODED.fullmatch(encoded):
        raise ValueError(f"invalid digest {digest!r}")
    if len(encoded) < 2:
        raise ValueError(f"invalid digest {digest!r}: encoded part too short")
    return f"{BLOBS_PREFIX}/{algorithm}/{encoded[:2]}/{encoded}"


def upload_prefix(upload_id: str) -> str:
    """``"<id>"`` → ``"uploads/<id>"``: everything an upload session stores (delete it to purge).

    Raises:
        ValueError: ``upload_id`` is not a single valid path component.
    """
    if "/" in upload_id:
        raise ValueError(f"invalid upload id {upload_id!r}")
    return validate_path(f"{UPLOADS_PREFIX}/{upload_id}")


def upload_data_path(upload_id: str, generation: int = 0) -> str:
    """``("<id>", 0)`` → ``"uploads/<id>/data"``, ``("<id>", n)`` → ``"uploads/<id>/data-<n>"``:
    the bytes received so far by an upload session. A new generation starts when a request takes
    over a session whose previous writer's lease expired (that writer may still be writing to
    the old generation's object, which is then abandoned).

    Raises:
        ValueError: a negative generation or an invalid upload id.
    """
    if generation < 0:
        raise ValueError(f"negative upload data generation {generation}")
    return f"{upload_prefix(upload_id)}/data" + (f"-{generation}" if generation else "")


LEGACY_STORE = "default"
LEGACY_PREFIX = "feeds"


@dataclass(frozen=True)
class Location:
    """An area of a store that holds blobs and upload sessions: ``store`` (a configured store's
    name) and ``prefix`` (``""`` for a store's shared root). ``key`` names it in rows, events and
    locks (``"s3main"``, ``"default/feeds/dmc"``): blobs are deduplicated per key."""

    store: str
    prefix: str = ""

    @property
    def key(self) -> str:
        """``store`` or ``store/prefix``."""
        return f"{self.store}/{self.prefix}" if self.prefix else self.store

    @classmethod
    def parse(cls, key: str) -> Location:
        """The inverse of ``key``. Raises ``ValueError`` for an empty store name."""
        store, _, prefix = key.partition("/")
        if not store:
            raise ValueError(f"invalid location key {key!r}")
        return cls(store, prefix)

    @classmethod
    def legacy(cls, feed: str) -> Location:
        """Where a feed created before named stores keeps its blobs: ``default``, ``feeds/<feed>``."""
        return cls(LEGACY_STORE, f"{LEGACY_PREFIX}/{feed}")

    @classmethod
    def of_feed(cls, feed: str, storage: Mapping[str, Any] | None) -> Location:
        """The location of a feed from its ``storage`` settings (``{"store": name}``; empty for
        feeds created before named stores)."""
        store = (storage or {}).get("store")
        return cls(str(store)) if store else cls.legacy(feed)

    def _under(self, path: str) -> str:
        return f"{self.prefix}/{path}" if self.prefix else path

    def blob(self, digest: str) -> str:
        """The content address of ``digest`` in this location."""
        return self._under(blob_path(digest))

    def upload_data(self, upload_id: str, generation: int = 0) -> str:
        """The bytes of an upload session (``upload_data_path``)."""
        return self._under(upload_data_path(upload_id, generation))

    def upload_prefix(self, upload_id: str) -> str:
        """Everything of an upload session."""
        return self._under(upload_prefix(upload_id))

    def listing_prefixes(self) -> tuple[str, str]:
        """What to list for this location's blobs and upload sessions (the sweep)."""
        return self._under(BLOBS_PREFIX), self._under(UPLOADS_PREFIX)


@dataclass(frozen=True)
class ParsedPath:
    """What a listed object is: content (``digest`` set) or part of an upload session
    (``upload_id`` and the session's ``prefix``), in ``location``."""

    location: Location
    digest: str | None = None
    upload_id: str | None = None
    session_prefix: str | None = None


def parse(store: str, path: str) -> ParsedPath | None:
    """Interpret ``path``, listed in store ``store``: a blob, an upload session's object (its
    folder name need not be a valid session id: ``is_upload_id`` tells), or None for anything
    else (unknown folders, malformed digests).

    Paths under ``feeds/<feed>/`` of the ``default`` store belong to that feed's legacy
    location; everything else to the store's shared root.
    """
    parts = path.split("/")
    location = Location(store)
    if store == LEGACY_STORE and len(parts) > 2 and parts[0] == LEGACY_PREFIX:
        location, parts = Location.legacy(parts[1]), parts[2:]
    if len(parts) == 4 and parts[0] == BLOBS_PREFIX:
        digest = f"{parts[1]}:{parts[3]}"
        try:
            ok = blob_path(digest) == "/".join(parts)
        except ValueError:
            ok = False
        return ParsedPath(location, digest=digest) if ok else None
    if len(parts) >= 3 and parts[0] == UPLOADS_PREFIX:
        return ParsedPath(location, upload_id=parts[1], session_prefix=location.upload_prefix(parts[1]))
    return None


def is_upload_id(text: str) -> bool:
    """Whether ``text`` is an upload session id as Berth makes them: a UUID in its canonical
    lower-case hyphenated form (``uuid.UUID`` alone also takes ``urn:uuid:…``, braces, upper
    case and no hyphens, which PostgreSQL's ``uuid`` type and per-session locks would not)."""
    try:
        return str(uuid.UUID(text)) == text
    except ValueError:
        return False
