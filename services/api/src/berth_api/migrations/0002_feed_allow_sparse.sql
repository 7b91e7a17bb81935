-- A feed option (feed.created v2, feed.updated): manifests and indexes of the feed may reference
-- blobs and child manifests its repositories do not hold ("sparse"). Off for existing feeds.
ALTER TABLE api.feeds ADD COLUMN allow_sparse boolean NOT NULL DEFAULT false;
