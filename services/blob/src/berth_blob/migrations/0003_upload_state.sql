-- Working state of open upload sessions (docs/ARCHITECTURE.md, "Upload sessions"): the one
-- writer's lease, the bytes durable so far, the resumable hash state covering exactly them and
-- the storage writer's state to resume from. Not a projection: the blob service writes it in
-- the transactions that append the session's events, deletes it when the session ends, and a
-- projections rebuild leaves it alone (it is the state of writes in flight, not history).
CREATE TABLE blob.upload_state (
    id          uuid PRIMARY KEY,
    size        bigint      NOT NULL DEFAULT 0,
    hash_state  bytea,                 -- berth_common.oci.resumable state after `size` bytes
    writer      jsonb,                 -- StorageDriver WriterState.data after `size` bytes
    generation  int         NOT NULL DEFAULT 0,  -- which data object holds the bytes
    lease       uuid,                  -- the request that may write now (NULL: nobody)
    lease_until timestamptz            -- a lease not renewed by then may be taken over
);

-- Sessions opened before this migration: no hash state (re-hashed at commit), generation 0.
INSERT INTO blob.upload_state (id, size) SELECT id, size FROM blob.uploads
    ON CONFLICT (id) DO NOTHING;
