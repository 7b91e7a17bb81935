-- The api service's projections: feeds, repositories, manifests, tags (DESIGN §1, §2).
-- Text keys use the "C" collation: tag and catalogue listings are in lexical (byte) order.
CREATE SCHEMA IF NOT EXISTS api;

CREATE TABLE api.feeds (
    name        text COLLATE "C" PRIMARY KEY,
    description text        NOT NULL DEFAULT '',
    public      boolean     NOT NULL DEFAULT false,
    storage     jsonb       NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL
);

CREATE TABLE api.repositories (
    name       text COLLATE "C" PRIMARY KEY,
    feed       text COLLATE "C" NOT NULL REFERENCES api.feeds (name) ON DELETE CASCADE,
    created_at timestamptz NOT NULL
);
CREATE INDEX repositories_feed_idx ON api.repositories (feed);

CREATE TABLE api.manifests (
    repository    text COLLATE "C" NOT NULL REFERENCES api.repositories (name) ON DELETE CASCADE,
    digest        text COLLATE "C" NOT NULL,
    media_type    text        NOT NULL,
    size          bigint      NOT NULL,
    body          bytea       NOT NULL,
    artifact_type text,
    subject       text COLLATE "C",
    annotations   jsonb,
    pushed_at     timestamptz NOT NULL,
    PRIMARY KEY (repository, digest)
);
CREATE INDEX manifests_subject_idx ON api.manifests (repository, subject) WHERE subject IS NOT NULL;

-- What each manifest references: blobs (config, layers) and child manifests (an index).
CREATE TABLE api.manifest_references (
    repository text COLLATE "C" NOT NULL,
    digest     text COLLATE "C" NOT NULL,
    reference  text COLLATE "C" NOT NULL,
    kind       text NOT NULL CHECK (kind IN ('blob', 'manifest')),
    PRIMARY KEY (repository, digest, kind, reference),
    FOREIGN KEY (repository, digest) REFERENCES api.manifests (repository, digest) ON DELETE CASCADE
);
CREATE INDEX manifest_references_ref_idx ON api.manifest_references (repository, reference);

CREATE TABLE api.tags (
    repository text COLLATE "C" NOT NULL,
    tag        text COLLATE "C" NOT NULL,
    digest     text COLLATE "C" NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (repository, tag),
    FOREIGN KEY (repository, digest) REFERENCES api.manifests (repository, digest) ON DELETE CASCADE
);
CREATE INDEX tags_digest_idx ON api.tags (repository, digest);

-- Published read-only views for other services (DESIGN §2: only the owner writes its tables).
CREATE VIEW api.v_feeds AS SELECT name, public, storage FROM api.feeds;
CREATE VIEW api.v_manifest_references AS
    SELECT r.repository, r.digest, r.reference, r.kind FROM api.manifest_references r;
