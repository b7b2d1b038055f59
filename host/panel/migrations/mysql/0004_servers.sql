-- Nodes: what they offer and what their Agent reported at registration;
-- single-use registration tokens; subusers of servers; and what the
-- command outbox needs to deliver lifecycle commands to Agents.
-- Secrets (registration and node tokens) are stored as SHA-256 hex only.
-- A node created by an admin gets an unusable random token hash until its
-- Agent registers (registered_at stays NULL until then).

ALTER TABLE nodes
    ADD COLUMN memory_mb       BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN disk_mb         BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN cpu_percent     BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN online          BOOLEAN NOT NULL DEFAULT FALSE,
    ADD COLUMN last_seen_at    BIGINT NULL,
    ADD COLUMN agent_id        VARCHAR(64) NULL,
    ADD COLUMN agent_version   VARCHAR(64) NULL,
    ADD COLUMN capabilities    JSON NULL,
    ADD COLUMN supported_games JSON NULL,
    ADD COLUMN health_endpoint VARCHAR(2048) NULL,
    ADD COLUMN registered_at   BIGINT NULL,
    ADD COLUMN updated_at      BIGINT NOT NULL DEFAULT 0,
    ADD CONSTRAINT nodes_resources CHECK (memory_mb >= 0 AND disk_mb >= 0 AND cpu_percent >= 0),
    ADD UNIQUE INDEX nodes_token_hash (token_hash);

CREATE INDEX allocations_server ON allocations (server_id);

CREATE TABLE node_registration_tokens (
    id         VARCHAR(64) NOT NULL PRIMARY KEY,
    node_id    VARCHAR(64) NOT NULL,
    token_hash CHAR(64) NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT NULL,
    UNIQUE INDEX node_registration_tokens_hash (token_hash),
    INDEX node_registration_tokens_node (node_id),
    CONSTRAINT node_registration_tokens_node FOREIGN KEY (node_id) REFERENCES nodes (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE server_subusers (
    server_id   VARCHAR(64) NOT NULL,
    user_id     VARCHAR(64) NOT NULL,
    permissions JSON NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (server_id, user_id),
    INDEX server_subusers_user (user_id),
    CONSTRAINT server_subusers_server FOREIGN KEY (server_id) REFERENCES servers (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

ALTER TABLE server_commands
    ADD COLUMN node_id       VARCHAR(64) NULL,
    ADD COLUMN payload       JSON NULL,
    ADD COLUMN actor_user_id VARCHAR(64) NULL,
    ADD COLUMN detail        TEXT NULL,
    ADD COLUMN updated_at    BIGINT NOT NULL DEFAULT 0,
    ADD INDEX server_commands_node_state (node_id, state, created_at);
