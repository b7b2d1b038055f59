-- Paid plugins: the Panel's registration with its Marketplace (the instance
-- id licenses are bound to and the bearer token the Marketplace issued,
-- one row per Marketplace URL; at most 512 characters on MySQL, whose keys are
-- bounded) and the license tokens of paid plugins (one
-- row per plugin that needs a license; see cap_marketplace::license and
-- cap_panel::marketplace). A row in marketplace_licenses marks the plugin
-- as paid: it is verified offline before every load. Times are
-- microseconds since the Unix epoch. `status` is what the Marketplace said
-- last: `active` (a token was issued), `revoked` (refunded or lost in a
-- dispute; renewal refused) or `missing` (no entitlement). `problem` is
-- the last renewal failure or the reason the plugin was deactivated.

CREATE TABLE marketplace_instance (
    marketplace   VARCHAR(512) NOT NULL PRIMARY KEY,
    instance_id   VARCHAR(128) NOT NULL,
    token         TEXT NOT NULL,
    registered_at BIGINT NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE marketplace_licenses (
    plugin_id   VARCHAR(64) NOT NULL PRIMARY KEY,
    status      VARCHAR(16) NOT NULL,
    entitlement VARCHAR(128),
    token       TEXT,
    expires_at  BIGINT,
    grace_until BIGINT,
    renew_after BIGINT,
    problem     TEXT,
    updated_at  BIGINT NOT NULL,
    CONSTRAINT marketplace_licenses_status CHECK (status IN ('active', 'revoked', 'missing'))
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
