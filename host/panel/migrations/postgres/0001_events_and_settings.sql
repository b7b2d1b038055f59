-- The foundation: the append-only event store and key/value settings.
-- Conventions shared by all three backends: timestamps are BIGINT
-- microseconds since the Unix epoch (UTC); ids of other rows are text with no
-- foreign key (the audit log outlives what it mentions); free-form data is JSON.

CREATE TABLE events (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at   BIGINT NOT NULL,
    actor_user_id VARCHAR(64),
    actor_ip      VARCHAR(45),
    request_id    VARCHAR(128),
    kind          VARCHAR(128) NOT NULL,
    subject_type  VARCHAR(64),
    subject_id    VARCHAR(128),
    data          JSONB NOT NULL,
    CONSTRAINT events_subject_complete CHECK ((subject_type IS NULL) = (subject_id IS NULL))
);

CREATE INDEX events_kind ON events (kind, id);
CREATE INDEX events_subject ON events (subject_type, subject_id, id);
CREATE INDEX events_actor ON events (actor_user_id, id);
CREATE INDEX events_occurred_at ON events (occurred_at);

-- Append-only: rows are never changed. (DELETE stays possible for retention.)
CREATE FUNCTION events_reject_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events are append-only';
END;
$$;

CREATE TRIGGER events_append_only BEFORE UPDATE ON events
FOR EACH ROW EXECUTE FUNCTION events_reject_update();

CREATE TABLE settings (
    name       VARCHAR(128) PRIMARY KEY,
    value      JSONB NOT NULL,
    updated_at BIGINT NOT NULL
);
