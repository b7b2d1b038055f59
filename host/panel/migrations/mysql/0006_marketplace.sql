-- The Panel's view of its Marketplace: the last state it trusted (the
-- Marketplace key, the newest index timestamp and every package log head,
-- as JSON; see cap_marketplace::trust), the lockfile of what it installed
-- from there (TOML; see cap_marketplace::lockfile) and the requirements the
-- admins asked for (JSON: plugin id -> semver requirement). One row each,
-- written in the same transaction as the plugin rows they describe.

CREATE TABLE marketplace_state (
    name       VARCHAR(16) NOT NULL PRIMARY KEY,
    value      MEDIUMTEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    CONSTRAINT marketplace_state_name CHECK (name IN ('trust', 'lockfile', 'requests'))
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
