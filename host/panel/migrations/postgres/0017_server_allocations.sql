-- A server's allocations: notes, the primary flag and the per-server
-- allocation limit (see the SQLite migration of the same number).

ALTER TABLE allocations ADD COLUMN notes VARCHAR(255);
ALTER TABLE allocations ADD COLUMN is_primary BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE servers ADD COLUMN allocation_limit INTEGER NOT NULL DEFAULT 0
    CHECK (allocation_limit BETWEEN 0 AND 100);

UPDATE allocations SET is_primary = TRUE WHERE server_id IS NOT NULL;

CREATE UNIQUE INDEX allocations_primary ON allocations (server_id) WHERE is_primary;
