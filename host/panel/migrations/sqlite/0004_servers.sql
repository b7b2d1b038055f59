-- Nodes: what they offer and what their Agent reported at registration;
-- single-use registration tokens; subusers of servers; and what the
-- command outbox needs to deliver lifecycle commands to Agents.
-- Secrets (registration and node tokens) are stored as SHA-256 hex only.
-- A node created by an admin gets an unusable random token hash until its
-- Agent registers (registered_at stays NULL until then).

ALTER TABLE nodes ADD COLUMN memory_mb INTEGER NOT NULL DEFAULT 0 CHECK (memory_mb >= 0);
ALTER TABLE nodes ADD COLUMN disk_mb INTEGER NOT NULL DEFAULT 0 CHECK (disk_mb >= 0);
ALTER TABLE nodes ADD COLUMN cpu_percent INTEGER NOT NULL DEFAULT 0 CHECK (cpu_percent >= 0);
ALTER TABLE nodes ADD COLUMN online INTEGER NOT NULL DEFAULT 0 CHECK (online IN (0, 1));
ALTER TABLE nodes ADD COLUMN last_seen_at INTEGER;
ALTER TABLE nodes ADD COLUMN agent_id TEXT CHECK (length(agent_id) BETWEEN 1 AND 64);
ALTER TABLE nodes ADD COLUMN agent_version TEXT CHECK (length(agent_version) BETWEEN 1 AND 64);
ALTER TABLE nodes ADD COLUMN capabilities TEXT CHECK (capabilities IS NULL OR json_valid(capabilities));
ALTER TABLE nodes ADD COLUMN supported_games TEXT CHECK (supported_games IS NULL OR json_valid(supported_games));
ALTER TABLE nodes ADD COLUMN health_endpoint TEXT CHECK (length(health_endpoint) BETWEEN 1 AND 2048);
ALTER TABLE nodes ADD COLUMN registered_at INTEGER;
ALTER TABLE nodes ADD COLUMN updated_at INTEGER NOT NULL DEFAULT 0;

CREATE UNIQUE INDEX nodes_token_hash ON nodes (token_hash);

CREATE INDEX allocations_server ON allocations (server_id);

CREATE TABLE node_registration_tokens (
    id         TEXT PRIMARY KEY NOT NULL CHECK (length(id) BETWEEN 1 AND 64),
    node_id    TEXT NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE CHECK (length(token_hash) = 64),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
) STRICT;

CREATE INDEX node_registration_tokens_node ON node_registration_tokens (node_id);

CREATE TABLE server_subusers (
    server_id   TEXT NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    user_id     TEXT NOT NULL CHECK (length(user_id) BETWEEN 1 AND 64),
    permissions TEXT NOT NULL CHECK (json_valid(permissions)),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (server_id, user_id)
) STRICT;

CREATE INDEX server_subusers_user ON server_subusers (user_id);

ALTER TABLE server_commands ADD COLUMN node_id TEXT CHECK (length(node_id) BETWEEN 1 AND 64);
ALTER TABLE server_commands ADD COLUMN payload TEXT CHECK (payload IS NULL OR json_valid(payload));
ALTER TABLE server_commands ADD COLUMN actor_user_id TEXT CHECK (length(actor_user_id) BETWEEN 1 AND 64);
ALTER TABLE server_commands ADD COLUMN detail TEXT;
ALTER TABLE server_commands ADD COLUMN updated_at INTEGER NOT NULL DEFAULT 0;

CREATE INDEX server_commands_node_state ON server_commands (node_id, state, created_at);
