-- The startup command a server runs, among those its game type names
-- (WIT 0.2.0's `game-info.startup-commands`, Pelican's `startup_commands`).
-- NULL: the game type's first.

ALTER TABLE servers ADD COLUMN startup_command TEXT
    CHECK (startup_command IS NULL OR length(startup_command) BETWEEN 1 AND 191);
