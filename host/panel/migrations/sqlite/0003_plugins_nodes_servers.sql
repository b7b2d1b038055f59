-- Plugins (installed packages, their configuration and secrets), nodes with
-- their allocations, servers and the lifecycle commands sent to them.
-- No foreign keys into identity tables: user ids are text, as in events.

CREATE TABLE plugins (
    id               TEXT PRIMARY KEY NOT NULL CHECK (length(id) BETWEEN 1 AND 64),
    version          TEXT NOT NULL CHECK (length(version) BETWEEN 1 AND 64),
    package_sha256   TEXT NOT NULL CHECK (length(package_sha256) = 64),
    component_sha256 TEXT NOT NULL CHECK (length(component_sha256) = 64),
    manifest         TEXT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('installed', 'active', 'inactive')),
    grants           TEXT NOT NULL CHECK (json_valid(grants)),
    installed_at     INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
) STRICT;

CREATE TABLE plugin_config (
    plugin_id TEXT NOT NULL CHECK (length(plugin_id) BETWEEN 1 AND 64),
    name      TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 128),
    value     TEXT NOT NULL,
    PRIMARY KEY (plugin_id, name)
) STRICT;

CREATE TABLE plugin_secrets (
    plugin_id TEXT NOT NULL CHECK (length(plugin_id) BETWEEN 1 AND 64),
    name      TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 128),
    value     TEXT NOT NULL,
    PRIMARY KEY (plugin_id, name)
) STRICT;

CREATE TABLE nodes (
    id         TEXT PRIMARY KEY NOT NULL CHECK (length(id) BETWEEN 1 AND 64),
    name       TEXT NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 128),
    address    TEXT NOT NULL CHECK (length(address) BETWEEN 1 AND 255),
    token_hash TEXT NOT NULL CHECK (length(token_hash) = 64),
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE allocations (
    node_id   TEXT NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    ip        TEXT NOT NULL CHECK (length(ip) BETWEEN 1 AND 45),
    port      INTEGER NOT NULL CHECK (port BETWEEN 1 AND 65535),
    server_id TEXT CHECK (length(server_id) BETWEEN 1 AND 64),
    PRIMARY KEY (node_id, ip, port)
) STRICT;

CREATE TABLE servers (
    id             TEXT PRIMARY KEY NOT NULL CHECK (length(id) BETWEEN 1 AND 64),
    name           TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 128),
    owner_id       TEXT NOT NULL CHECK (length(owner_id) BETWEEN 1 AND 64),
    node_id        TEXT CHECK (length(node_id) BETWEEN 1 AND 64),
    game_plugin    TEXT NOT NULL CHECK (length(game_plugin) BETWEEN 1 AND 64),
    game_version   TEXT NOT NULL CHECK (length(game_version) BETWEEN 1 AND 64),
    variables      TEXT NOT NULL CHECK (json_valid(variables)),
    memory_mb      INTEGER NOT NULL CHECK (memory_mb >= 0),
    disk_mb        INTEGER NOT NULL CHECK (disk_mb >= 0),
    cpu_percent    INTEGER NOT NULL CHECK (cpu_percent >= 0),
    state          TEXT NOT NULL CHECK (length(state) BETWEEN 1 AND 32),
    created_at     INTEGER NOT NULL
) STRICT;

CREATE INDEX servers_owner ON servers (owner_id, id);

CREATE TABLE server_commands (
    id         TEXT PRIMARY KEY NOT NULL CHECK (length(id) BETWEEN 1 AND 64),
    server_id  TEXT NOT NULL CHECK (length(server_id) BETWEEN 1 AND 64),
    action     TEXT NOT NULL CHECK (length(action) BETWEEN 1 AND 32),
    state      TEXT NOT NULL CHECK (length(state) BETWEEN 1 AND 32),
    created_at INTEGER NOT NULL
) STRICT;

CREATE INDEX server_commands_server ON server_commands (server_id, created_at);
