-- A server's allocations: notes, the primary flag and the per-server
-- allocation limit (see the SQLite migration of the same number).
-- MySQL and MariaDB have no partial indexes: `primary_of` is the server
-- holding the allocation as its primary (NULL otherwise), and its unique
-- index allows one primary per server (NULLs do not collide).

ALTER TABLE allocations ADD COLUMN notes VARCHAR(255) NULL;
ALTER TABLE allocations ADD COLUMN is_primary BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE servers ADD COLUMN allocation_limit INT NOT NULL DEFAULT 0;
ALTER TABLE servers ADD CONSTRAINT servers_allocation_limit CHECK (allocation_limit BETWEEN 0 AND 100);

UPDATE allocations SET is_primary = TRUE WHERE server_id IS NOT NULL;

ALTER TABLE allocations ADD COLUMN primary_of VARCHAR(64)
    AS (CASE WHEN is_primary THEN server_id END) STORED;
CREATE UNIQUE INDEX allocations_primary ON allocations (primary_of);
