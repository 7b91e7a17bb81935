-- Who last moved each tag (the actor of its latest tag.updated event), for the web UI's tag
-- list (issue 11). Filled by the projector from the event's metadata; rows written before this
-- migration stay NULL until `berth projections rebuild`.
ALTER TABLE api.tags ADD COLUMN updated_by text;
