"""What the api service publishes to the other services (``berth_common.contracts``).

Read-only views over the api schema, defined in ``berth_api/migrations``; no other part of the
schema may be read, and nothing of it written, by another service
(``tests/contract/test_service_contracts.py``).
"""

from __future__ import annotations

from berth_common.contracts import Contract, Published

CONTRACT = Contract(
    service="api",
    schema="api",
    published=(
        Published(
            name="api.v_feeds",
            kind="view",
            columns=("name", "public", "storage", "incarnation"),
            readers=("blob", "auth", "common"),
            purpose="Which feeds exist, whether anonymous may pull, where their blobs are stored and"
            " the current incarnation (the FeedCreated event id; docs/ARCHITECTURE.md, 'Feed"
            " incarnations'). A row of another incarnation than the reader recorded is a deleted"
            " feed, even before the FeedDeleted reaction ran.",
            locking="A writer that links content into a feed (an upload commit, a mount) reads the"
            " feed's row FOR SHARE in its own transaction and compares the incarnation: a feed"
            " DELETE takes the row FOR UPDATE, so it waits for the link to commit or the writer sees"
            " the deletion; nothing is linked into a deleted feed. Lock the feed row before any"
            " per-blob advisory lock (berth_blob.domain.locks), never after. Readers that only"
            " decide visibility (GET, HEAD, session status) join it without a lock.",
        ),
        Published(
            name="api.v_feed_connectors",
            kind="view",
            columns=(
                "id",
                "feed",
                "incarnation",
                "position",
                "url",
                "username",
                "password_encrypted",
                "namespace",
                "tag_ttl_seconds",
                "cache",
            ),
            readers=("common",),
            purpose="A feed's connectors in the order they are tried, passwords Fernet-encrypted,"
            " with the feed's incarnation (what a fetch begun in one life of a feed brings is never"
            " recorded in the next). Read by berth_common.connectors.model for both services.",
        ),
        Published(
            name="api.v_manifest_references",
            kind="view",
            columns=("repository", "digest", "reference", "kind"),
            readers=("blob",),
            purpose="Which blobs (kind 'blob') and child manifests (kind 'manifest') each"
            " manifest of a repository references: garbage collection unlinks only what no"
            " manifest references; a connector's blob is attributed to the repository's manifest.",
            locking="GC reads it under the link's row lock (blob.links FOR UPDATE) in the"
            " transaction that unlinks: a manifest PUT share-locks the links it references"
            " (blob.v_repository_blobs FOR SHARE) before it commits its references, so GC either"
            " waits and then sees them, or unlinks first and the PUT finds the link gone.",
        ),
    ),
)
"""The api service's published views."""
