-- The Panel's view of its Marketplace: the last state it trusted (the
-- Marketplace key, the newest index timestamp and every package log head,
-- as JSON; see cap_marketplace::trust), the lockfile of what it installed
-- from there (TOML; see cap_marketplace::lockfile) and the requirements the
-- admins asked for (JSON: plugin id -> semver requirement). One row each,
-- written in the same transaction as the plugin rows they describe.

CREATE TABLE marketplace_state (
    name       TEXT PRIMARY KEY CHECK (name IN ('trust', 'lockfile', 'requests')),
    value      TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
