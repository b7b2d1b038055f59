-- Plugins (installed packages, their configuration and secrets), nodes with
-- their allocations, servers and the lifecycle commands sent to them.
-- No foreign keys into identity tables: user ids are text, as in events.

CREATE TABLE plugins (
    id               VARCHAR(64) PRIMARY KEY,
    version          VARCHAR(64) NOT NULL,
    package_sha256   CHAR(64) NOT NULL,
    component_sha256 CHAR(64) NOT NULL,
    manifest         TEXT NOT NULL,
    state            VARCHAR(16) NOT NULL CHECK (state IN ('installed', 'active', 'inactive')),
    grants           JSONB NOT NULL,
    installed_at     BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);

CREATE TABLE plugin_config (
    plugin_id VARCHAR(64) NOT NULL,
    name      VARCHAR(128) NOT NULL,
    value     TEXT NOT NULL,
    PRIMARY KEY (plugin_id, name)
);

CREATE TABLE plugin_secrets (
    plugin_id VARCHAR(64) NOT NULL,
    name      VARCHAR(128) NOT NULL,
    value     TEXT NOT NULL,
    PRIMARY KEY (plugin_id, name)
);

CREATE TABLE nodes (
    id         VARCHAR(64) PRIMARY KEY,
    name       VARCHAR(128) NOT NULL UNIQUE,
    address    VARCHAR(255) NOT NULL,
    token_hash CHAR(64) NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE allocations (
    node_id   VARCHAR(64) NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    ip        VARCHAR(45) NOT NULL,
    port      INTEGER NOT NULL CHECK (port BETWEEN 1 AND 65535),
    server_id VARCHAR(64),
    PRIMARY KEY (node_id, ip, port)
);

CREATE TABLE servers (
    id           VARCHAR(64) PRIMARY KEY,
    name         VARCHAR(128) NOT NULL,
    owner_id     VARCHAR(64) NOT NULL,
    node_id      VARCHAR(64),
    game_plugin  VARCHAR(64) NOT NULL,
    game_version VARCHAR(64) NOT NULL,
    variables    JSONB NOT NULL,
    memory_mb    BIGINT NOT NULL CHECK (memory_mb >= 0),
    disk_mb      BIGINT NOT NULL CHECK (disk_mb >= 0),
    cpu_percent  BIGINT NOT NULL CHECK (cpu_percent >= 0),
    state        VARCHAR(32) NOT NULL,
    created_at   BIGINT NOT NULL
);

CREATE INDEX servers_owner ON servers (owner_id, id);

CREATE TABLE server_commands (
    id         VARCHAR(64) PRIMARY KEY,
    server_id  VARCHAR(64) NOT NULL,
    action     VARCHAR(32) NOT NULL,
    state      VARCHAR(32) NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE INDEX server_commands_server ON server_commands (server_id, created_at);
