-- What the blob service publishes to the gc service, which owns cleanup (docs/ARCHITECTURE.md,
-- "Who owns cleanup"; berth_blob.contracts lists these names and the locking rules). gc reads
-- blob's rows only through these views and changes them only through these functions, inside
-- the transaction that appends the event saying so (the functions are what blob's projector
-- does for that event, so a rebuild from the events gives the same rows).

-- A repository's link to a blob (read, and row-locked FOR UPDATE, by gc's unlink phase).
CREATE VIEW blob.v_links AS
    SELECT repository, digest, store, size, linked_at FROM blob.links;

-- Content a location holds (store: a Location.key), whether or not anything links it.
CREATE VIEW blob.v_blobs AS
    SELECT store, digest, size, created_at FROM blob.blobs;

-- Open upload sessions with their working state (lease, storage writer state, generation).
CREATE VIEW blob.v_upload_sessions AS
    SELECT u.id, u.repository, u.feed, u.store, u.updated_at, s.size, s.writer, s.generation,
           s.lease, s.lease_until
      FROM blob.uploads u JOIN blob.upload_state s ON s.id = u.id;

-- blob.unlinked: the link goes.
CREATE FUNCTION blob.unlink(p_repository text, p_digest text) RETURNS void
    LANGUAGE sql AS $$
    DELETE FROM blob.links WHERE repository = p_repository AND digest = p_digest
$$;

-- blob.deleted: the content's row goes (the caller deletes the bytes under blob_lock_key).
CREATE FUNCTION blob.forget_blob(p_store text, p_digest text) RETURNS void
    LANGUAGE sql AS $$
    DELETE FROM blob.blobs WHERE store = p_store AND digest = p_digest
$$;

-- upload.expired: the session and its working state go.
CREATE FUNCTION blob.end_upload(p_id uuid) RETURNS void
    LANGUAGE sql AS $$
    DELETE FROM blob.upload_state WHERE id = p_id;
    DELETE FROM blob.uploads WHERE id = p_id
$$;
