-- Per-server databases (cap_panel::databases), their hosts and each
-- server's database limit. See the SQLite migration for the reasons (no
-- projection, no foreign key to servers, sealed passwords).

CREATE TABLE database_hosts (
    id            VARCHAR(64) NOT NULL PRIMARY KEY,
    name          VARCHAR(191) NOT NULL,
    kind          VARCHAR(16) NOT NULL,
    host          VARCHAR(255) NOT NULL,
    port          INTEGER NOT NULL,
    username      VARCHAR(191) NOT NULL,
    password      TEXT NOT NULL,
    node_ids      TEXT NOT NULL,
    max_databases INTEGER NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    UNIQUE KEY database_hosts_name (name),
    CONSTRAINT database_hosts_kind CHECK (kind IN ('mysql', 'postgres')),
    CONSTRAINT database_hosts_port CHECK (port BETWEEN 1 AND 65535),
    CONSTRAINT database_hosts_max CHECK (max_databases IS NULL OR max_databases >= 0)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE server_databases (
    id         VARCHAR(64) NOT NULL PRIMARY KEY,
    server_id  VARCHAR(64) NOT NULL,
    host_id    VARCHAR(64) NOT NULL,
    name       VARCHAR(64) NOT NULL,
    username   VARCHAR(32) NOT NULL,
    password   TEXT NOT NULL,
    remote     VARCHAR(255) NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE KEY server_databases_server_name (server_id, name),
    UNIQUE KEY server_databases_host_name (host_id, name),
    UNIQUE KEY server_databases_host_username (host_id, username),
    CONSTRAINT server_databases_host_fk FOREIGN KEY (host_id) REFERENCES database_hosts (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE database_limits (
    server_id     VARCHAR(64) NOT NULL PRIMARY KEY,
    max_databases INTEGER NOT NULL,
    updated_at    BIGINT NOT NULL,
    CONSTRAINT database_limits_max CHECK (max_databases BETWEEN 0 AND 1000)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
