-- Feed incarnations (docs/ARCHITECTURE.md, "Feed incarnations"): links and upload sessions
-- record the life of the feed they belong to (api.v_feeds.incarnation). NULL: recorded before
-- incarnations existed (then the link belongs to whichever life the feed has now).
ALTER TABLE blob.links ADD COLUMN incarnation uuid;
ALTER TABLE blob.uploads ADD COLUMN incarnation uuid;

-- Published read-only view: readers compare `incarnation` with the feed's own (NULL matches).
CREATE OR REPLACE VIEW blob.v_repository_blobs AS
    SELECT repository, digest, size, incarnation FROM blob.links;
