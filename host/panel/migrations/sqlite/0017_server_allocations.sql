-- A server's allocations (cap_panel::servers::allocations): the primary one
-- (what the game runs on: SERVER_IP and SERVER_PORT) and the extra ones its
-- users take from the node's pool, up to the server's allocation limit.
--
-- `allocations.notes`: what a user wrote about an allocation of their
-- server (cleared when it goes back to the pool). `allocations.is_primary`:
-- the server's primary allocation, exactly one per server (the unique
-- index); a free allocation is never primary. Servers created before held
-- one allocation each: that one is their primary.
-- `servers.allocation_limit`: how many allocations the server may hold
-- besides its primary (0: the primary only, as Pterodactyl's default).
-- Both tables stay projections that replay rebuilds (`server.allocation.*`
-- and `server.allocation-limit.set` events).

ALTER TABLE allocations ADD COLUMN notes TEXT
    CHECK (notes IS NULL OR length(notes) BETWEEN 1 AND 255);
ALTER TABLE allocations ADD COLUMN is_primary INTEGER NOT NULL DEFAULT 0
    CHECK (is_primary IN (0, 1));
ALTER TABLE servers ADD COLUMN allocation_limit INTEGER NOT NULL DEFAULT 0
    CHECK (allocation_limit BETWEEN 0 AND 100);

UPDATE allocations SET is_primary = 1 WHERE server_id IS NOT NULL;

CREATE UNIQUE INDEX allocations_primary ON allocations (server_id) WHERE is_primary = 1;
