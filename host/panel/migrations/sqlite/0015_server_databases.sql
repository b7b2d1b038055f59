-- Per-server databases (cap_panel::databases): the database servers
-- administrators register as hosts, the databases users create on them
-- for their game servers, and each server's database limit.
--
-- None of these is a projection that replay rebuilds, and none has a
-- foreign key to servers (as with backups): a replay that rebuilds the
-- servers table leaves them alone. Every change is still recorded as a
-- `database-host.*` or `database.*` event. The passwords (a host's
-- administrative one, each database user's) are sealed
-- (cap_panel::secrets); `node_ids` lists the nodes whose servers may use a
-- host, one id a line, none for every node; `max_databases` NULL is no
-- limit. A server's database names are unique per server and per host,
-- and so are its users' names per host.

CREATE TABLE database_hosts (
    id            TEXT PRIMARY KEY NOT NULL CHECK (length(id) BETWEEN 1 AND 64),
    name          TEXT NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 191),
    kind          TEXT NOT NULL CHECK (kind IN ('mysql', 'postgres')),
    host          TEXT NOT NULL CHECK (length(host) BETWEEN 1 AND 255),
    port          INTEGER NOT NULL CHECK (port BETWEEN 1 AND 65535),
    username      TEXT NOT NULL CHECK (length(username) BETWEEN 1 AND 191),
    password      TEXT NOT NULL,
    node_ids      TEXT NOT NULL,
    max_databases INTEGER CHECK (max_databases >= 0),
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
) STRICT;

CREATE TABLE server_databases (
    id         TEXT PRIMARY KEY NOT NULL CHECK (length(id) BETWEEN 1 AND 64),
    server_id  TEXT NOT NULL CHECK (length(server_id) BETWEEN 1 AND 64),
    host_id    TEXT NOT NULL REFERENCES database_hosts (id),
    name       TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    username   TEXT NOT NULL CHECK (length(username) BETWEEN 1 AND 32),
    password   TEXT NOT NULL,
    remote     TEXT NOT NULL CHECK (length(remote) BETWEEN 1 AND 255),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (server_id, name),
    UNIQUE (host_id, name),
    UNIQUE (host_id, username)
) STRICT;

CREATE INDEX server_databases_host ON server_databases (host_id);

CREATE TABLE database_limits (
    server_id     TEXT PRIMARY KEY NOT NULL CHECK (length(server_id) BETWEEN 1 AND 64),
    max_databases INTEGER NOT NULL CHECK (max_databases BETWEEN 0 AND 1000),
    updated_at    INTEGER NOT NULL
) STRICT;
