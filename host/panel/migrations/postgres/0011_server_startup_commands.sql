-- The startup command a server runs (see the SQLite migration of the same
-- number).

ALTER TABLE servers ADD COLUMN startup_command VARCHAR(191);
