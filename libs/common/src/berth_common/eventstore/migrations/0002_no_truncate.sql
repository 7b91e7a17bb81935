-- TRUNCATE bypasses row triggers: refuse it too, so the event store stays append-only.
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON eventstore.events
    FOR EACH STATEMENT EXECUTE FUNCTION eventstore.forbid_change();
