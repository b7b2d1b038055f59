-- Transfers of servers between nodes (see the SQLite migration of the same
-- number for what the columns mean and why there is no foreign key).

ALTER TABLE servers ADD COLUMN transfer_id VARCHAR(64) NULL;

CREATE TABLE server_transfers (
    id            VARCHAR(64) NOT NULL PRIMARY KEY,
    server_id     VARCHAR(64) NOT NULL,
    from_node     VARCHAR(64) NOT NULL,
    to_node       VARCHAR(64) NOT NULL,
    allocations   TEXT NOT NULL,
    was_running   BOOLEAN NOT NULL,
    state         VARCHAR(16) NOT NULL,
    stage         VARCHAR(16) NOT NULL,
    failure       TEXT NULL,
    sent_bytes    BIGINT NOT NULL DEFAULT 0,
    total_bytes   BIGINT NOT NULL DEFAULT 0,
    archive_bytes BIGINT NULL,
    sha256        CHAR(64) NULL,
    started_by    VARCHAR(64) NULL,
    started_at    BIGINT NOT NULL,
    ended_at      BIGINT NULL,
    INDEX server_transfers_server (server_id, started_at),
    INDEX server_transfers_state (state)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
