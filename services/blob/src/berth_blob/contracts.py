"""What the blob service publishes to other services (docs/ARCHITECTURE.md, "Who owns cleanup").

Other services never import ``berth_blob`` and never touch blob's tables. They read and change
blob's state only through these names, defined by blob's migrations (``0007_cleanup_contract``)
and kept stable across releases; a change is a new migration that keeps them working.

Views (read-only):

- ``blob.v_links(repository, digest, store, size, linked_at)``: a repository's link to a blob
  stored in location ``store`` (a ``Location.key``). Rows may be locked ``FOR UPDATE``.
- ``blob.v_blobs(store, digest, size, created_at)``: content a location holds.
- ``blob.v_upload_sessions(id, repository, feed, store, updated_at, size, writer, generation,
  lease, lease_until)``: open upload sessions; ``writer`` is the storage ``WriterState.data``
  of the bytes after ``size`` in object ``Location.upload_data(id, generation)``; a session
  whose ``lease_until`` is in the future is being written to. Rows may be locked ``FOR UPDATE``.
- ``blob.v_repository_blobs(repository, digest, size, incarnation, store)`` (the api's).

Functions, each called in the transaction that appends the event named, and nowhere else
(they are what blob's projector does for that event):

- ``blob.unlink(repository, digest)``: ``blob.unlinked``.
- ``blob.forget_blob(store, digest)``: ``blob.deleted``.
- ``blob.end_upload(id)``: ``upload.expired``.

Locking rules a writer must follow:

1. Unlink: lock the ``blob.v_links`` row ``FOR UPDATE``, then (in a later statement) check that
   no committed manifest references it. A manifest PUT holds ``FOR SHARE`` on the links it
   checked until it commits, so it either commits first (and is seen) or finds the link gone.
2. Delete content: take the per-blob advisory lock ``berth_common.db.locks.blob_lock_key(store,
   digest)`` (transaction-scoped), re-read ``blob.v_blobs`` and ``blob.v_links`` under it, and
   delete the bytes only if the row is there and no link names it. Blob's upload commit, mount
   and connector placement hold the same lock from placing content until their event commits.
3. Expire a session: lock its ``blob.v_upload_sessions`` row ``FOR UPDATE`` (``SKIP LOCKED``: a
   request holds it while it records) and skip it if its lease is live.
4. Sweep files: an object at a content address with no ``blob.v_blobs`` row may be removed
   under rule 2; an upload folder may be removed once no ``blob.v_upload_sessions`` row names
   its id (a session's row is made before its first byte is written; ids are never reused).
"""

from __future__ import annotations

from typing import Final

LINKS: Final = "blob.v_links"
BLOBS: Final = "blob.v_blobs"
UPLOAD_SESSIONS: Final = "blob.v_upload_sessions"
UNLINK: Final = "blob.unlink"
FORGET_BLOB: Final = "blob.forget_blob"
END_UPLOAD: Final = "blob.end_upload"

__all__ = ["BLOBS", "END_UPLOAD", "FORGET_BLOB", "LINKS", "UNLINK", "UPLOAD_SESSIONS"]
