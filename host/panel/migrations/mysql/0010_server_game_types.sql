-- Game types within a plugin and the image a server runs in (see the
-- SQLite migration of the same number).

ALTER TABLE servers ADD COLUMN game_type VARCHAR(64);
ALTER TABLE servers ADD COLUMN image VARCHAR(255);

CREATE INDEX servers_game ON servers (game_plugin, game_type);
