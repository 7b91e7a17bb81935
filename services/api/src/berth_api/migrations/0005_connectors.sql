-- Connectors (docs/ARCHITECTURE.md, "Connectors"): the upstream registries a feed caches, in the
-- order they are tried. A projection of connector.added / connector.removed; passwords only as
-- Fernet tokens (docs/SECURITY.md). Going with their feed's row, as repositories do.
CREATE TABLE api.feed_connectors (
    id                 uuid PRIMARY KEY,
    feed               text COLLATE "C" NOT NULL REFERENCES api.feeds (name) ON DELETE CASCADE,
    position           integer     NOT NULL,
    url                text        NOT NULL,
    username           text,
    password_encrypted text,
    namespace          text,
    tag_ttl_seconds    integer     NOT NULL,
    cache              boolean     NOT NULL,
    added_at           timestamptz NOT NULL,
    UNIQUE (feed, position)
);

-- Published read-only view: the blob service fetches blobs through the same connectors. With the
-- feed's incarnation: what a fetch begun in one life of a feed brings is never recorded in the next.
CREATE VIEW api.v_feed_connectors AS
    SELECT c.id, c.feed, f.incarnation, c.position, c.url, c.username, c.password_encrypted, c.namespace,
           c.tag_ttl_seconds, c.cache
      FROM api.feed_connectors c JOIN api.feeds f ON f.name = c.feed;

-- Content cached from a connector is marked with its origin (manifest.cached, tag.updated v2);
-- NULL: pushed here. Only tags with an origin are revalidated upstream (local content wins).
ALTER TABLE api.manifests ADD COLUMN origin text;
ALTER TABLE api.tags ADD COLUMN origin text;

-- Working state, not projections (a rebuild leaves them alone):
-- when a cached tag was last confirmed upstream (a HEAD that found the same digest);
CREATE TABLE api.tag_checks (
    repository text COLLATE "C" NOT NULL,
    tag        text COLLATE "C" NOT NULL,
    checked_at timestamptz NOT NULL,
    PRIMARY KEY (repository, tag)
);
-- the single-flight leases of manifest fetches (berth_common.connectors.singleflight).
CREATE TABLE api.connector_fetches (
    key         text PRIMARY KEY,
    lease       uuid        NOT NULL,
    lease_until timestamptz NOT NULL
);
