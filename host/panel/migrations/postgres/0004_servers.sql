-- Nodes: what they offer and what their Agent reported at registration;
-- single-use registration tokens; subusers of servers; and what the
-- command outbox needs to deliver lifecycle commands to Agents.
-- Secrets (registration and node tokens) are stored as SHA-256 hex only.
-- A node created by an admin gets an unusable random token hash until its
-- Agent registers (registered_at stays NULL until then).

ALTER TABLE nodes
    ADD COLUMN memory_mb       BIGINT NOT NULL DEFAULT 0 CHECK (memory_mb >= 0),
    ADD COLUMN disk_mb         BIGINT NOT NULL DEFAULT 0 CHECK (disk_mb >= 0),
    ADD COLUMN cpu_percent     BIGINT NOT NULL DEFAULT 0 CHECK (cpu_percent >= 0),
    ADD COLUMN online          BOOLEAN NOT NULL DEFAULT FALSE,
    ADD COLUMN last_seen_at    BIGINT,
    ADD COLUMN agent_id        VARCHAR(64),
    ADD COLUMN agent_version   VARCHAR(64),
    ADD COLUMN capabilities    JSONB,
    ADD COLUMN supported_games JSONB,
    ADD COLUMN health_endpoint VARCHAR(2048),
    ADD COLUMN registered_at   BIGINT,
    ADD COLUMN updated_at      BIGINT NOT NULL DEFAULT 0;

CREATE UNIQUE INDEX nodes_token_hash ON nodes (token_hash);

CREATE INDEX allocations_server ON allocations (server_id);

CREATE TABLE node_registration_tokens (
    id         VARCHAR(64) PRIMARY KEY,
    node_id    VARCHAR(64) NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    token_hash CHAR(64) NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);

CREATE INDEX node_registration_tokens_node ON node_registration_tokens (node_id);

CREATE TABLE server_subusers (
    server_id   VARCHAR(64) NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    user_id     VARCHAR(64) NOT NULL,
    permissions JSONB NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (server_id, user_id)
);

CREATE INDEX server_subusers_user ON server_subusers (user_id);

ALTER TABLE server_commands
    ADD COLUMN node_id       VARCHAR(64),
    ADD COLUMN payload       JSONB,
    ADD COLUMN actor_user_id VARCHAR(64),
    ADD COLUMN detail        TEXT,
    ADD COLUMN updated_at    BIGINT NOT NULL DEFAULT 0;

CREATE INDEX server_commands_node_state ON server_commands (node_id, state, created_at);
