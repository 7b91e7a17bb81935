-- The blob service's projections: upload sessions, stored blobs, repository links (DESIGN §1-3).
CREATE SCHEMA IF NOT EXISTS blob;

-- Open upload sessions; a row goes when the session completes, is cancelled or expires.
CREATE TABLE blob.uploads (
    id         uuid PRIMARY KEY,
    repository text COLLATE "C" NOT NULL,
    feed       text COLLATE "C" NOT NULL,
    size       bigint      NOT NULL DEFAULT 0,
    started_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE INDEX uploads_updated_idx ON blob.uploads (updated_at);

-- Blobs whose content is in a feed's store (content-addressed, verified).
CREATE TABLE blob.blobs (
    feed       text COLLATE "C" NOT NULL,
    digest     text COLLATE "C" NOT NULL,
    size       bigint      NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (feed, digest)
);

-- Which repository may serve which blob.
CREATE TABLE blob.links (
    repository text COLLATE "C" NOT NULL,
    digest     text COLLATE "C" NOT NULL,
    feed       text COLLATE "C" NOT NULL,
    size       bigint      NOT NULL,
    linked_at  timestamptz NOT NULL,
    PRIMARY KEY (repository, digest)
);
CREATE INDEX links_feed_digest_idx ON blob.links (feed, digest);

-- Published read-only view (DESIGN §2): the api service checks manifest references here.
CREATE VIEW blob.v_repository_blobs AS SELECT repository, digest, size FROM blob.links;
