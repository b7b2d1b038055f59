-- Backups of servers' directories (cap_panel::backups), the per-server
-- backup limit, and the S3-compatible storage they go to. See the SQLite
-- migration for the reasons (no projection, no foreign key to servers).

CREATE TABLE backups (
    id              VARCHAR(64) NOT NULL PRIMARY KEY,
    server_id       VARCHAR(64) NOT NULL,
    node_id         VARCHAR(64) NOT NULL,
    name            VARCHAR(191) NOT NULL,
    ignored         TEXT NOT NULL,
    target          VARCHAR(8) NOT NULL,
    state           VARCHAR(16) NOT NULL,
    sha256          CHAR(64) NULL,
    bytes           BIGINT NOT NULL DEFAULT 0,
    locked          BOOLEAN NOT NULL DEFAULT FALSE,
    failure         TEXT NULL,
    restore_state   VARCHAR(16) NULL,
    restore_failure TEXT NULL,
    created_at      BIGINT NOT NULL,
    completed_at    BIGINT NULL,
    restored_at     BIGINT NULL,
    INDEX backups_server (server_id, created_at),
    INDEX backups_node_state (node_id, state)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE backup_limits (
    server_id   VARCHAR(64) NOT NULL PRIMARY KEY,
    max_backups INTEGER NOT NULL,
    updated_at  BIGINT NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE backup_storage (
    id            INTEGER NOT NULL PRIMARY KEY,
    endpoint      VARCHAR(2048) NOT NULL,
    region        VARCHAR(64) NOT NULL,
    bucket        VARCHAR(255) NOT NULL,
    prefix        VARCHAR(512) NOT NULL,
    access_key_id VARCHAR(255) NOT NULL,
    secret        TEXT NOT NULL,
    path_style    BOOLEAN NOT NULL,
    updated_at    BIGINT NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
