"""Every name of another service's schema that the gc service uses, in one place; and what gc
publishes to the others (``CONTRACT``: nothing — ``gc.blob_references``, ``gc.runs`` and
``gc.consumer_positions`` are its own, ``tests/contract/test_service_contracts.py``).

The blob service publishes these (``berth_blob.contracts``, migration ``0007_cleanup_contract``);
gc never imports ``berth_blob`` and never names blob's tables. The locking rules are blob's
(``berth_blob.contracts``): links are row-locked before their references are read, content is
deleted under ``berth_common.db.locks.blob_lock_key``, sessions are locked ``SKIP LOCKED``.
"""

from __future__ import annotations

from typing import Final

from berth_common.contracts import Contract
from berth_common.db import Connection
from berth_common.events import BlobDeleted, BlobUnlinked, Event, UploadExpired
from berth_common.eventstore import EventContext

LINKS: Final = "blob.v_links"
BLOBS: Final = "blob.v_blobs"
UPLOAD_SESSIONS: Final = "blob.v_upload_sessions"
UNLINK: Final = "blob.unlink"
FORGET_BLOB: Final = "blob.forget_blob"
END_UPLOAD: Final = "blob.end_upload"
CONTRACT = Contract(service="gc", schema="gc", published=())
"""The gc service's published views and functions (none)."""

# gc's own projection of what manifests reference (berth_gc.projections.references).
REFERENCES: Final = "gc.blob_references"


async def apply_to_blob(conn: Connection, event: Event, ctx: EventContext) -> None:
    """The projector of gc's units of work: what each cleanup event does to blob's rows,
    through blob's published functions (blob's own projector does the same on a rebuild)."""
    match event:
        case BlobUnlinked():
            await conn.execute(f"SELECT {UNLINK}($1, $2)", event.repository, event.digest)
        case BlobDeleted():
            await conn.execute(f"SELECT {FORGET_BLOB}($1, $2)", event.store, event.digest)
        case UploadExpired():
            await conn.execute(f"SELECT {END_UPLOAD}($1::uuid)", event.upload_id)
        case _:
            pass
