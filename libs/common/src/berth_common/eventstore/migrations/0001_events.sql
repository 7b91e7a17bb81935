-- The event store: an append-only table with a global position (DESIGN §2).
CREATE SCHEMA IF NOT EXISTS eventstore;

CREATE TABLE eventstore.events (
    position       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stream         text        NOT NULL,
    version        integer     NOT NULL CHECK (version > 0),
    type           text        NOT NULL,
    schema_version integer     NOT NULL CHECK (schema_version > 0),
    payload        jsonb       NOT NULL,
    metadata       jsonb       NOT NULL,
    event_id       uuid        NOT NULL UNIQUE,
    recorded_at    timestamptz NOT NULL,
    UNIQUE (stream, version)
);
CREATE INDEX events_type_idx ON eventstore.events (type, position);

-- Positions of readers of the store: the outbox relay, projection consumers.
CREATE TABLE eventstore.checkpoints (
    name       text PRIMARY KEY,
    position   bigint      NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Appends are append-only: no updates or deletes.
CREATE FUNCTION eventstore.forbid_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'eventstore.events is append-only';
END $$;
CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON eventstore.events
    FOR EACH ROW EXECUTE FUNCTION eventstore.forbid_change();
