-- Paid plugins: the Panel's registration with its Marketplace (the instance
-- id licenses are bound to and the bearer token the Marketplace issued,
-- one row per Marketplace URL) and the license tokens of paid plugins (one
-- row per plugin that needs a license; see cap_marketplace::license and
-- cap_panel::marketplace). A row in marketplace_licenses marks the plugin
-- as paid: it is verified offline before every load. Times are
-- microseconds since the Unix epoch. `status` is what the Marketplace said
-- last: `active` (a token was issued), `revoked` (refunded or lost in a
-- dispute; renewal refused) or `missing` (no entitlement). `problem` is
-- the last renewal failure or the reason the plugin was deactivated.

CREATE TABLE marketplace_instance (
    marketplace   TEXT PRIMARY KEY NOT NULL CHECK (length(marketplace) BETWEEN 1 AND 2048),
    instance_id   TEXT NOT NULL CHECK (length(instance_id) BETWEEN 1 AND 128),
    token         TEXT NOT NULL,
    registered_at INTEGER NOT NULL
) STRICT;

CREATE TABLE marketplace_licenses (
    plugin_id   TEXT PRIMARY KEY NOT NULL CHECK (length(plugin_id) BETWEEN 1 AND 64),
    status      TEXT NOT NULL CHECK (status IN ('active', 'revoked', 'missing')),
    entitlement TEXT,
    token       TEXT,
    expires_at  INTEGER,
    grace_until INTEGER,
    renew_after INTEGER,
    problem     TEXT,
    updated_at  INTEGER NOT NULL
) STRICT;
