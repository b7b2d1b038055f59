-- Per-server databases (cap_panel::databases), their hosts and each
-- server's database limit. See the SQLite migration for the reasons (no
-- projection, no foreign key to servers, sealed passwords).

CREATE TABLE database_hosts (
    id            VARCHAR(64) PRIMARY KEY,
    name          VARCHAR(191) NOT NULL UNIQUE,
    kind          VARCHAR(16) NOT NULL CHECK (kind IN ('mysql', 'postgres')),
    host          VARCHAR(255) NOT NULL,
    port          INTEGER NOT NULL CHECK (port BETWEEN 1 AND 65535),
    username      VARCHAR(191) NOT NULL,
    password      TEXT NOT NULL,
    node_ids      TEXT NOT NULL,
    max_databases INTEGER CHECK (max_databases >= 0),
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);

CREATE TABLE server_databases (
    id         VARCHAR(64) PRIMARY KEY,
    server_id  VARCHAR(64) NOT NULL,
    host_id    VARCHAR(64) NOT NULL REFERENCES database_hosts (id),
    name       VARCHAR(64) NOT NULL,
    username   VARCHAR(32) NOT NULL,
    password   TEXT NOT NULL,
    remote     VARCHAR(255) NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (server_id, name),
    UNIQUE (host_id, name),
    UNIQUE (host_id, username)
);

CREATE INDEX server_databases_host ON server_databases (host_id);

CREATE TABLE database_limits (
    server_id     VARCHAR(64) PRIMARY KEY,
    max_databases INTEGER NOT NULL CHECK (max_databases BETWEEN 0 AND 1000),
    updated_at    BIGINT NOT NULL
);
