-- Plugins (installed packages, their configuration and secrets), nodes with
-- their allocations, servers and the lifecycle commands sent to them.
-- No foreign keys into identity tables: user ids are text, as in events.

CREATE TABLE plugins (
    id               VARCHAR(64) NOT NULL PRIMARY KEY,
    version          VARCHAR(64) NOT NULL,
    package_sha256   CHAR(64) NOT NULL,
    component_sha256 CHAR(64) NOT NULL,
    manifest         MEDIUMTEXT NOT NULL,
    state            VARCHAR(16) NOT NULL,
    grants           JSON NOT NULL,
    installed_at     BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    CONSTRAINT plugins_state CHECK (state IN ('installed', 'active', 'inactive'))
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE plugin_config (
    plugin_id VARCHAR(64) NOT NULL,
    name      VARCHAR(128) NOT NULL,
    value     TEXT NOT NULL,
    PRIMARY KEY (plugin_id, name)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE plugin_secrets (
    plugin_id VARCHAR(64) NOT NULL,
    name      VARCHAR(128) NOT NULL,
    value     TEXT NOT NULL,
    PRIMARY KEY (plugin_id, name)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE nodes (
    id         VARCHAR(64) NOT NULL PRIMARY KEY,
    name       VARCHAR(128) NOT NULL UNIQUE,
    address    VARCHAR(255) NOT NULL,
    token_hash CHAR(64) NOT NULL,
    created_at BIGINT NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE allocations (
    node_id   VARCHAR(64) NOT NULL,
    ip        VARCHAR(45) NOT NULL,
    port      INT NOT NULL,
    server_id VARCHAR(64) NULL,
    PRIMARY KEY (node_id, ip, port),
    CONSTRAINT allocations_port CHECK (port BETWEEN 1 AND 65535),
    CONSTRAINT allocations_node FOREIGN KEY (node_id) REFERENCES nodes (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE servers (
    id           VARCHAR(64) NOT NULL PRIMARY KEY,
    name         VARCHAR(128) NOT NULL,
    owner_id     VARCHAR(64) NOT NULL,
    node_id      VARCHAR(64) NULL,
    game_plugin  VARCHAR(64) NOT NULL,
    game_version VARCHAR(64) NOT NULL,
    variables    JSON NOT NULL,
    memory_mb    BIGINT NOT NULL,
    disk_mb      BIGINT NOT NULL,
    cpu_percent  BIGINT NOT NULL,
    state        VARCHAR(32) NOT NULL,
    created_at   BIGINT NOT NULL,
    INDEX servers_owner (owner_id, id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE server_commands (
    id         VARCHAR(64) NOT NULL PRIMARY KEY,
    server_id  VARCHAR(64) NOT NULL,
    action     VARCHAR(32) NOT NULL,
    state      VARCHAR(32) NOT NULL,
    created_at BIGINT NOT NULL,
    INDEX server_commands_server (server_id, created_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
