-- Transfers of servers between nodes (see the SQLite migration of the same
-- number for what the columns mean and why there is no foreign key).

ALTER TABLE servers ADD COLUMN transfer_id VARCHAR(64) NULL;

CREATE TABLE server_transfers (
    id            VARCHAR(64) PRIMARY KEY,
    server_id     VARCHAR(64) NOT NULL,
    from_node     VARCHAR(64) NOT NULL,
    to_node       VARCHAR(64) NOT NULL,
    allocations   TEXT NOT NULL,
    was_running   BOOLEAN NOT NULL,
    state         VARCHAR(16) NOT NULL CHECK (state IN ('running', 'done', 'failed')),
    stage         VARCHAR(16) NOT NULL,
    failure       TEXT,
    sent_bytes    BIGINT NOT NULL DEFAULT 0 CHECK (sent_bytes >= 0),
    total_bytes   BIGINT NOT NULL DEFAULT 0 CHECK (total_bytes >= 0),
    archive_bytes BIGINT,
    sha256        CHAR(64),
    started_by    VARCHAR(64),
    started_at    BIGINT NOT NULL,
    ended_at      BIGINT
);

CREATE INDEX server_transfers_server ON server_transfers (server_id, started_at);
CREATE INDEX server_transfers_state ON server_transfers (state);
