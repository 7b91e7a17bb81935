-- Feed incarnations (docs/ARCHITECTURE.md, "Feed incarnations"): each life of a feed is named by
-- the event id of the FeedCreated that began it. Other services compare it with what they
-- recorded, so nothing of a deleted feed shows in a new feed of the same name, whatever the
-- bus's lag. Existing feeds get the id of their (latest) creation event, as a rebuild would.
ALTER TABLE api.feeds ADD COLUMN incarnation uuid;
UPDATE api.feeds f SET incarnation = (
    SELECT e.event_id FROM eventstore.events e
     WHERE e.stream = 'feed:' || f.name AND e.type = 'feed.created'
     ORDER BY e.position DESC LIMIT 1);
UPDATE api.feeds SET incarnation = gen_random_uuid() WHERE incarnation IS NULL;
ALTER TABLE api.feeds ALTER COLUMN incarnation SET NOT NULL;

CREATE OR REPLACE VIEW api.v_feeds AS SELECT name, public, storage, incarnation FROM api.feeds;
