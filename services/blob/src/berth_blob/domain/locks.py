"""The per-blob advisory lock that serialises an upload's commit with GC's removal of content.

The upload commit takes it before it moves verified bytes to their content address and holds it
until ``UploadCompleted`` commits; garbage collection (``gc``, ``sweep``) takes it before it
deletes a blob's content. So content found under the lock cannot vanish before its row commits,
and content deleted under it is never linked afterwards.
"""

from __future__ import annotations

import hashlib

from berth_common.db import Connection


def blob_lock_key(store: str, digest: str) -> int:
    """The advisory lock key of one blob in one location of a store (``Location.key``; a
    signed 64-bit integer)."""
    raw = hashlib.blake2b(f"{store}@{digest}".encode(), digest_size=8).digest()
    return int.from_bytes(raw, "big", signed=True)


async def lock_blob(conn: Connection, store: str, digest: str) -> None:
    """Take the transaction-scoped lock that serialises commit and deletion of one blob."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", blob_lock_key(store, digest))
