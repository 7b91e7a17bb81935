-- Named stores (docs/ARCHITECTURE.md, "Stores"): blobs are deduplicated per location of a store
-- (berth_common.storage.Location, keyed "s3main" or "default/feeds/<feed>"), no longer per feed.
-- Everything recorded so far lives in its feed's legacy location, as the v1 events say.
ALTER TABLE blob.blobs RENAME COLUMN feed TO store;
UPDATE blob.blobs SET store = 'default/feeds/' || store;

ALTER TABLE blob.links ADD COLUMN store text COLLATE "C";
UPDATE blob.links SET store = 'default/feeds/' || feed;
ALTER TABLE blob.links ALTER COLUMN store SET NOT NULL;
CREATE INDEX links_store_digest_idx ON blob.links (store, digest);

ALTER TABLE blob.uploads ADD COLUMN store text COLLATE "C";
UPDATE blob.uploads SET store = 'default/feeds/' || feed;
ALTER TABLE blob.uploads ALTER COLUMN store SET NOT NULL;

-- Published read-only view: the location of each link, for readers that must know where the
-- content lives (the api's browse sizes count a blob once per location).
CREATE OR REPLACE VIEW blob.v_repository_blobs AS
    SELECT repository, digest, size, incarnation, store FROM blob.links;
