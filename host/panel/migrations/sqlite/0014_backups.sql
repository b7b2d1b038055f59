-- Backups of servers' directories (cap_panel::backups), the per-server
-- backup limit, and the S3-compatible storage they go to.
--
-- None of these is a projection that replay rebuilds, and none has a
-- foreign key to servers: a replay that rebuilds the servers table leaves
-- them alone, and a server's backups outlive its reinstall. Every change is
-- still recorded as a `backup.*` or `backup-storage.*` event.
-- `ignored` holds the .pteroignore lines, one per line. `target` is where
-- the archive went; `node_id` the node that made it (a local archive lives
-- there). The storage's secret key is sealed (cap_panel::secrets).

CREATE TABLE backups (
    id              TEXT PRIMARY KEY NOT NULL CHECK (length(id) BETWEEN 1 AND 64),
    server_id       TEXT NOT NULL CHECK (length(server_id) BETWEEN 1 AND 64),
    node_id         TEXT NOT NULL CHECK (length(node_id) BETWEEN 1 AND 64),
    name            TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 191),
    ignored         TEXT NOT NULL,
    target          TEXT NOT NULL CHECK (target IN ('local', 's3')),
    state           TEXT NOT NULL CHECK (state IN ('pending', 'done', 'failed')),
    sha256          TEXT CHECK (length(sha256) = 64),
    bytes           INTEGER NOT NULL DEFAULT 0 CHECK (bytes >= 0),
    locked          INTEGER NOT NULL DEFAULT 0 CHECK (locked IN (0, 1)),
    failure         TEXT,
    restore_state   TEXT CHECK (restore_state IN ('running', 'done', 'failed')),
    restore_failure TEXT,
    created_at      INTEGER NOT NULL,
    completed_at    INTEGER,
    restored_at     INTEGER
) STRICT;

CREATE INDEX backups_server ON backups (server_id, created_at);
CREATE INDEX backups_node_state ON backups (node_id, state);

CREATE TABLE backup_limits (
    server_id   TEXT PRIMARY KEY NOT NULL CHECK (length(server_id) BETWEEN 1 AND 64),
    max_backups INTEGER NOT NULL CHECK (max_backups BETWEEN 0 AND 1000),
    updated_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE backup_storage (
    id            INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    endpoint      TEXT NOT NULL CHECK (length(endpoint) BETWEEN 1 AND 2048),
    region        TEXT NOT NULL CHECK (length(region) BETWEEN 1 AND 64),
    bucket        TEXT NOT NULL CHECK (length(bucket) BETWEEN 1 AND 255),
    prefix        TEXT NOT NULL CHECK (length(prefix) <= 512),
    access_key_id TEXT NOT NULL CHECK (length(access_key_id) BETWEEN 1 AND 255),
    secret        TEXT NOT NULL,
    path_style    INTEGER NOT NULL CHECK (path_style IN (0, 1)),
    updated_at    INTEGER NOT NULL
) STRICT;
