-- The foundation: the append-only event store and key/value settings.
-- Conventions shared by all three backends: timestamps are BIGINT/INTEGER
-- microseconds since the Unix epoch (UTC); ids of other rows are text with no
-- foreign key (the audit log outlives what it mentions); free-form data is JSON.

CREATE TABLE events (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,  -- AUTOINCREMENT: ids are never reused
    occurred_at   INTEGER NOT NULL,
    actor_user_id TEXT CHECK (length(actor_user_id) BETWEEN 1 AND 64),
    actor_ip      TEXT CHECK (length(actor_ip) BETWEEN 1 AND 45),
    request_id    TEXT CHECK (length(request_id) BETWEEN 1 AND 128),
    kind          TEXT NOT NULL CHECK (length(kind) BETWEEN 1 AND 128),
    subject_type  TEXT CHECK (length(subject_type) BETWEEN 1 AND 64),
    subject_id    TEXT CHECK (length(subject_id) BETWEEN 1 AND 128),
    data          TEXT NOT NULL CHECK (json_valid(data)),
    CHECK ((subject_type IS NULL) = (subject_id IS NULL))
) STRICT;

CREATE INDEX events_kind ON events (kind, id);
CREATE INDEX events_subject ON events (subject_type, subject_id, id);
CREATE INDEX events_actor ON events (actor_user_id, id);
CREATE INDEX events_occurred_at ON events (occurred_at);

-- Append-only: rows are never changed. (DELETE stays possible for retention.)
CREATE TRIGGER events_append_only BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only');
END;

CREATE TABLE settings (
    name       TEXT PRIMARY KEY NOT NULL CHECK (length(name) BETWEEN 1 AND 128),
    value      TEXT NOT NULL CHECK (json_valid(value)),
    updated_at INTEGER NOT NULL
) STRICT;
