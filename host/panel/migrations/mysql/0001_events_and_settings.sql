-- The foundation: the append-only event store and key/value settings.
-- Conventions shared by all three backends: timestamps are BIGINT
-- microseconds since the Unix epoch (UTC); ids of other rows are text with no
-- foreign key (the audit log outlives what it mentions); free-form data is JSON.
-- utf8mb4_bin: full Unicode, and case-sensitive comparisons as on the other backends.
-- Works on MySQL 8 and MariaDB 10.5+.

CREATE TABLE events (
    id            BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    occurred_at   BIGINT NOT NULL,
    actor_user_id VARCHAR(64) NULL,
    actor_ip      VARCHAR(45) NULL,
    request_id    VARCHAR(128) NULL,
    kind          VARCHAR(128) NOT NULL,
    subject_type  VARCHAR(64) NULL,
    subject_id    VARCHAR(128) NULL,
    data          JSON NOT NULL,
    CONSTRAINT events_subject_complete CHECK ((subject_type IS NULL) = (subject_id IS NULL)),
    INDEX events_kind (kind, id),
    INDEX events_subject (subject_type, subject_id, id),
    INDEX events_actor (actor_user_id, id),
    INDEX events_occurred_at (occurred_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Append-only: rows are never changed. (DELETE stays possible for retention.)
-- With binary logging on, creating a trigger needs the TRIGGER privilege and
-- either SUPER or log_bin_trust_function_creators = 1.
CREATE TRIGGER events_append_only BEFORE UPDATE ON events
FOR EACH ROW SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'events are append-only';

CREATE TABLE settings (
    name       VARCHAR(128) NOT NULL PRIMARY KEY,
    value      JSON NOT NULL,
    updated_at BIGINT NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
