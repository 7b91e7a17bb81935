"""Where registry things live inside a store: the only module that knows storage paths.

Blobs are content-addressed and shared by every repository of a store (DESIGN.md §3):
``blobs/<algorithm>/<first two hex chars>/<hex>``, as in Distribution's ``blobDataPathSpec``
(without its trailing ``/data``). Upload sessions keep their bytes under ``uploads/<id>/``.
"""

from __future__ import annotations

import re

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
