-- The bus envelope of an event too large to carry its payload (docs/EVENTS.md, "On the bus"):
-- without payload ("payload_omitted": true) and, if even that is over max_bytes, without
-- metadata ("metadata_omitted": true). Called by the relay's batch read for such events only.
CREATE FUNCTION eventstore.bare_envelope(
    p_position bigint, p_stream text, p_version integer, p_type text, p_schema_version integer,
    p_event_id uuid, p_recorded_at timestamptz, p_metadata jsonb, max_bytes integer
) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN octet_length(e::text) <= max_bytes THEN e::text
                ELSE ((e - 'metadata') || '{"metadata_omitted": true}')::text END
      FROM (SELECT jsonb_build_object(
                'position', p_position, 'stream', p_stream, 'version', p_version, 'type', p_type,
                'schema_version', p_schema_version, 'event_id', p_event_id,
                'recorded_at', p_recorded_at, 'metadata', p_metadata, 'payload_omitted', true) AS e) x
$$;
