"""Advisory lock keys shared across services (docs/ARCHITECTURE.md, "Who owns cleanup").

The per-blob lock serialises an upload's commit (and a mount's or a connector's placement) in
the blob service with the removal of that blob's content by the gc service. The blob service
takes it before it moves verified bytes to their content address and holds it until its event
commits; gc takes it before it deletes a blob's content and re-checks the blob's rows under it.
So content found under the lock cannot vanish before its row commits, and content deleted under
it is never linked afterwards. Both sides must compute the key with ``blob_lock_key``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from berth_common.db import Connection


def blob_lock_key(store: str, digest: str) -> int:
    """The advisory lock key of one blob in one location of a store (``Location.key``, e.g.
    ``"default/feeds/dmc"``; ``digest`` as ``sha256:<hex>``): a signed 64-bit integer."""
    raw = hashlib.blake2b(f"{store}@{digest}".encode(), digest_size=8).digest()
    return int.from_bytes(raw, "big", signed=True)


async def lock_blob(conn: Connection, store: str, digest: str) -> None:
    """Take the transaction-scoped lock that serialises commit and deletion of one blob."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", blob_lock_key(store, digest))


async def lock_blobs(conn: Connection, blobs: Iterable[tuple[str, str]]) -> None:
    """Take the locks of many ``(location key, digest)`` blobs in one round trip, in key order
    (so two callers never wait on each other in a cycle); transaction-scoped."""
    keys = sorted({blob_lock_key(store, digest) for store, digest in blobs})
    if keys:
        await conn.execute(
            "SELECT count(pg_advisory_xact_lock(k)) FROM (SELECT unnest($1::bigint[]) AS k ORDER BY 1) s",
            keys,
        )
