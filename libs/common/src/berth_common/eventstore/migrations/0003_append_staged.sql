-- One server-side step for the critical section of an append (store.py, "Ordering decision"):
-- take the global append lock, check expected versions, insert, notify. The caller stages the
-- events in the transaction-local setting `berth.append` (a JSON array, before the lock) and
-- sends `SELECT eventstore.append_staged(); COMMIT` as one message, so the lock is held for
-- this function and the commit only, never across a client round trip.
-- Staged element: {"i": order, "s": stream, "x": expected version (-1: any), "t": type,
--   "sv": schema version, "p": payload, "m": metadata, "e": event id, "r": recorded at}.
-- A version conflict raises SQLSTATE BE409 (ConcurrencyError in Python).
CREATE FUNCTION eventstore.append_staged() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    staged jsonb := current_setting('berth.append')::jsonb;
    conflict text;
BEGIN
    PERFORM pg_advisory_xact_lock(7090199032657966708);  -- store.APPEND_LOCK ("berthevt")
    WITH u AS (
        SELECT * FROM jsonb_to_recordset(staged)
            AS u(i int, s text, x int, t text, sv int, p jsonb, m jsonb, e uuid, r timestamptz)
    ), n AS (
        -- max(version) per row: one backward scan of the (stream, version) index each
        SELECT u.*, coalesce((SELECT max(version) FROM eventstore.events ev WHERE ev.stream = u.s), 0)
                    + row_number() OVER (PARTITION BY u.s ORDER BY u.i) AS v
        FROM u
    ), bad AS (
        SELECT format('%s: expected version %s, found %s', s, x, v - 1) AS msg
        FROM n WHERE x <> -1 AND x <> v - 1 ORDER BY i LIMIT 1
    ), ins AS (
        INSERT INTO eventstore.events (stream, version, type, schema_version, payload, metadata,
                                       event_id, recorded_at)
        SELECT s, v, t, sv, p, m, e, r FROM n WHERE NOT EXISTS (SELECT 1 FROM bad) ORDER BY i
    )
    SELECT msg INTO conflict FROM bad;
    IF conflict IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'BE409', MESSAGE = conflict;
    END IF;
    PERFORM pg_notify('berth_events', '');
END $$;
