-- Backups of servers' directories (cap_panel::backups), the per-server
-- backup limit, and the S3-compatible storage they go to. See the SQLite
-- migration for the reasons (no projection, no foreign key to servers).

CREATE TABLE backups (
    id              VARCHAR(64) PRIMARY KEY,
    server_id       VARCHAR(64) NOT NULL,
    node_id         VARCHAR(64) NOT NULL,
    name            VARCHAR(191) NOT NULL,
    ignored         TEXT NOT NULL,
    target          VARCHAR(8) NOT NULL CHECK (target IN ('local', 's3')),
    state           VARCHAR(16) NOT NULL CHECK (state IN ('pending', 'done', 'failed')),
    sha256          CHAR(64),
    bytes           BIGINT NOT NULL DEFAULT 0 CHECK (bytes >= 0),
    locked          BOOLEAN NOT NULL DEFAULT FALSE,
    failure         TEXT,
    restore_state   VARCHAR(16) CHECK (restore_state IN ('running', 'done', 'failed')),
    restore_failure TEXT,
    created_at      BIGINT NOT NULL,
    completed_at    BIGINT,
    restored_at     BIGINT
);

CREATE INDEX backups_server ON backups (server_id, created_at);
CREATE INDEX backups_node_state ON backups (node_id, state);

CREATE TABLE backup_limits (
    server_id   VARCHAR(64) PRIMARY KEY,
    max_backups INTEGER NOT NULL CHECK (max_backups BETWEEN 0 AND 1000),
    updated_at  BIGINT NOT NULL
);

CREATE TABLE backup_storage (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    endpoint      VARCHAR(2048) NOT NULL,
    region        VARCHAR(64) NOT NULL,
    bucket        VARCHAR(255) NOT NULL,
    prefix        VARCHAR(512) NOT NULL,
    access_key_id VARCHAR(255) NOT NULL,
    secret        TEXT NOT NULL,
    path_style    BOOLEAN NOT NULL,
    updated_at    BIGINT NOT NULL
);
