-- gc.blob_references now also applies feed.deleted: a deleted feed's rows go (before, they
-- stayed forever, live and rebuilt alike). Rows of feeds deleted before this version are
-- dropped by replaying: the projection is emptied and its consumer's position reset, so the
-- consumer re-applies every manifest.* and feed.deleted event from the event store when it
-- starts (it catches up from the store, docs/ARCHITECTURE.md) — the rows a rebuild gives.
TRUNCATE gc.blob_references;
DELETE FROM gc.consumer_positions WHERE name = 'gc-references';
