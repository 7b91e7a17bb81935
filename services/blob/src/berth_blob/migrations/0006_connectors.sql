-- Connectors (docs/ARCHITECTURE.md, "Connectors"): a link made by blob.cached records where the
-- blob came from (NULL: pushed or mounted here).
ALTER TABLE blob.links ADD COLUMN origin text;

-- Working state, not a projection: the single-flight leases of blob fetches, keyed by the
-- store and digest (berth_common.connectors.singleflight). A rebuild leaves it alone.
CREATE TABLE blob.connector_fetches (
    key         text PRIMARY KEY,
    lease       uuid        NOT NULL,
    lease_until timestamptz NOT NULL
);
