-- Game types within a plugin (WIT 0.2.0: a plugin offers several, such as
-- the eggs the egg bridge keeps) and the image a server runs in, picked
-- among those its game type lists. NULL game_type: the plugin's only game
-- type (servers created before 0.2.0); NULL image: the package's image, or
-- none on native nodes.

ALTER TABLE servers ADD COLUMN game_type TEXT
    CHECK (game_type IS NULL OR length(game_type) BETWEEN 1 AND 64);
ALTER TABLE servers ADD COLUMN image TEXT
    CHECK (image IS NULL OR length(image) BETWEEN 1 AND 255);

CREATE INDEX servers_game ON servers (game_plugin, game_type);
