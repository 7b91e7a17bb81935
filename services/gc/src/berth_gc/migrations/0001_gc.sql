-- The gc service's projection, fed by a durable JetStream consumer (DESIGN §2, §5):
-- which blobs each manifest references, to count references for garbage collection.
CREATE SCHEMA IF NOT EXISTS gc;

CREATE TABLE gc.blob_references (
    repository text COLLATE "C" NOT NULL,
    manifest   text COLLATE "C" NOT NULL,
    blob       text COLLATE "C" NOT NULL,
    PRIMARY KEY (repository, manifest, blob)
);
CREATE INDEX blob_references_blob_idx ON gc.blob_references (repository, blob);

-- Positions of the gc service's consumers, written in the same transaction as the projection.
CREATE TABLE gc.consumer_positions (
    name     text PRIMARY KEY,
    position bigint NOT NULL
);
