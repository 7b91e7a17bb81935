"""What the blob service publishes to other services (``berth_common.contracts``; docs/ARCHITECTURE.md,
"Contracts between services" and "Who owns cleanup").

Other services never import ``berth_blob`` and never touch blob's tables. They read and change
blob's state only through these names, defined by blob's migrations (``0007_cleanup_contract``)
and kept stable across releases; a change is a new migration that keeps them working.
``tests/contract/test_service_contracts.py`` fails on SQL of another service that names
anything else of the blob schema, and on a view whose columns differ from ``CONTRACT``.

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

from berth_common.contracts import Contract, Published

LINKS: Final = "blob.v_links"
BLOBS: Final = "blob.v_blobs"
UPLOAD_SESSIONS: Final = "blob.v_upload_sessions"
UNLINK: Final = "blob.unlink"
FORGET_BLOB: Final = "blob.forget_blob"
END_UPLOAD: Final = "blob.end_upload"

CONTRACT = Contract(
    service="blob",
    schema="blob",
    published=(
        Published(
            name="blob.v_repository_blobs",
            kind="view",
            columns=("repository", "digest", "size", "incarnation", "store"),
            readers=("api",),
            purpose="Which blobs each repository may serve (its links), with their size, the feed"
            " incarnation the link belongs to (NULL: recorded before incarnations; counts for any)"
            " and the location key of the content (a feed's size counts each blob once per"
            " location).",
            locking="A manifest PUT reads the links it references FOR SHARE, in its own"
            " transaction, with the incarnation of its feed row: garbage collection locks a link"
            " FOR UPDATE before it unlinks, so it cannot unlink a blob a manifest being committed"
            " references (it waits, then sees the reference in api.v_manifest_references). Take"
            " the rows in digest order (ORDER BY digest) so two pushes cannot deadlock. Readers"
            " that only count (browse sizes) take no lock.",
        ),
        Published(
            name=LINKS,
            kind="view",
            columns=("repository", "digest", "store", "size", "linked_at"),
            readers=("gc",),
            purpose="A repository's link to a blob stored in location ``store``.",
            locking="Rule 1 of this module: lock the row FOR UPDATE before reading references.",
        ),
        Published(
            name=BLOBS,
            kind="view",
            columns=("store", "digest", "size", "created_at"),
            readers=("gc",),
            purpose="Content a location holds.",
            locking="Rule 2: re-read under the per-blob advisory lock before deleting bytes.",
        ),
        Published(
            name=UPLOAD_SESSIONS,
            kind="view",
            columns=(
                "id",
                "repository",
                "feed",
                "store",
                "updated_at",
                "size",
                "writer",
                "generation",
                "lease",
                "lease_until",
            ),
            readers=("gc",),
            purpose="Open upload sessions and the storage writer state of their bytes.",
            locking="Rule 3: FOR UPDATE SKIP LOCKED; skip a session whose lease is live.",
        ),
        Published(
            name=UNLINK,
            kind="function",
            columns=("p_repository", "p_digest"),
            readers=("gc",),
            purpose="Apply blob.unlinked to blob's rows, in the transaction that appends it.",
        ),
        Published(
            name=FORGET_BLOB,
            kind="function",
            columns=("p_store", "p_digest"),
            readers=("gc",),
            purpose="Apply blob.deleted to blob's rows, in the transaction that appends it.",
        ),
        Published(
            name=END_UPLOAD,
            kind="function",
            columns=("p_id",),
            readers=("gc",),
            purpose="Apply upload.expired to blob's rows, in the transaction that appends it.",
        ),
    ),
)
"""The blob service's published views and functions."""

__all__ = ["BLOBS", "CONTRACT", "END_UPLOAD", "FORGET_BLOB", "LINKS", "UNLINK", "UPLOAD_SESSIONS"]
