-- The registry as it stood when the Marketplace moved to numbered
-- migrations: publishers and their keys, packages, releases and their
-- append-only logs (migration "registry"), prices, payout accounts, Panel
-- instances, checkouts, entitlements and processed Stripe events
-- ("billing"), expiring publisher tokens and spent key-change nonces
-- ("publisher-trust"). A database created before then holds exactly this
-- schema and is adopted with this migration marked applied (see
-- src/store/legacy.rs); so this file must not change.
--
-- Portable types only (TEXT, BIGINT), the same text on SQLite and
-- PostgreSQL: times are unix seconds, flags are 0/1, lists are ",a,b,"
-- strings, and `prices.version` is '' for a package-wide price.

CREATE TABLE publishers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    token_expires_at BIGINT
);

CREATE TABLE publisher_keys (
    key_id TEXT PRIMARY KEY,
    publisher_id TEXT NOT NULL REFERENCES publishers(id),
    public_key TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT,
    revoke_reason TEXT
);

CREATE TABLE packages (
    id TEXT PRIMARY KEY,
    publisher_id TEXT NOT NULL REFERENCES publishers(id),
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    kinds TEXT NOT NULL,
    games TEXT NOT NULL,
    paid BIGINT NOT NULL,
    downloads BIGINT NOT NULL,
    latest_version TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE releases (
    package_id TEXT NOT NULL REFERENCES packages(id),
    version TEXT NOT NULL,
    major BIGINT NOT NULL,
    minor BIGINT NOT NULL,
    patch BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    size BIGINT NOT NULL,
    api TEXT NOT NULL,
    dependencies TEXT NOT NULL,
    key_id TEXT NOT NULL,
    author_signature TEXT NOT NULL,
    countersignature TEXT NOT NULL,
    yanked BIGINT NOT NULL,
    yank_reason TEXT,
    downloads BIGINT NOT NULL,
    published_at BIGINT NOT NULL,
    PRIMARY KEY (package_id, version)
);

-- The (package_id, seq) key turns a concurrent append into a unique
-- violation instead of a fork.
CREATE TABLE log_entries (
    package_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL,
    entry TEXT NOT NULL,
    PRIMARY KEY (package_id, seq)
);

CREATE INDEX packages_downloads ON packages (downloads);
CREATE INDEX packages_updated ON packages (updated_at);

CREATE TABLE prices (
    package_id TEXT NOT NULL REFERENCES packages(id),
    version TEXT NOT NULL,
    amount BIGINT NOT NULL,
    currency TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (package_id, version)
);

CREATE TABLE payout_accounts (
    publisher_id TEXT PRIMARY KEY REFERENCES publishers(id),
    stripe_account TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE panel_instances (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);

CREATE TABLE checkouts (
    id TEXT PRIMARY KEY,
    session_id TEXT UNIQUE,
    package_id TEXT NOT NULL REFERENCES packages(id),
    version TEXT NOT NULL,
    panel_instance TEXT NOT NULL REFERENCES panel_instances(id),
    amount BIGINT NOT NULL,
    currency TEXT NOT NULL,
    application_fee BIGINT NOT NULL,
    destination TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- `status` is 'active' or 'revoked'.
CREATE TABLE entitlements (
    id TEXT PRIMARY KEY,
    package_id TEXT NOT NULL REFERENCES packages(id),
    panel_instance TEXT NOT NULL REFERENCES panel_instances(id),
    checkout_id TEXT NOT NULL UNIQUE REFERENCES checkouts(id),
    payment_intent TEXT,
    status TEXT NOT NULL,
    revoke_reason TEXT,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE INDEX entitlements_panel ON entitlements (panel_instance);
CREATE INDEX entitlements_intent ON entitlements (payment_intent);

CREATE TABLE stripe_events (
    id TEXT PRIMARY KEY,
    event_type TEXT NOT NULL,
    received_at BIGINT NOT NULL
);

CREATE TABLE key_change_nonces (
    publisher_id TEXT NOT NULL REFERENCES publishers(id),
    nonce TEXT NOT NULL,
    used_at BIGINT NOT NULL,
    PRIMARY KEY (publisher_id, nonce)
);

CREATE INDEX releases_key ON releases (key_id);
