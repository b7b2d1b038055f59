-- no-transaction
-- CHECK constraints: flags are 0 or 1, counts and amounts are not
-- negative, a checkout's fee is part of its amount, an entitlement is
-- 'active' or 'revoked'. The same constraints, by the same names, as
-- postgres/0002_checks.sql (a test compares the two files' constraints).
-- The Marketplace never wrote a row that breaks one, so every existing
-- database passes them.
--
-- Also drops `schema_migrations`, the record of the steps before
-- numbered migrations, which an adopted database still holds.
--
-- SQLite adds a CHECK only by rebuilding the table (create the new
-- table, copy the rows, drop the old one, rename the new one, recreate
-- its indexes), which must run with foreign keys off: dropping a parent
-- table would otherwise count every child row as a violation. The pragma
-- has no effect inside a transaction, so this migration opens its own
-- (`no-transaction` above tells sqlx not to) and turns foreign keys back
-- on at the end. Re-running it after a crash between its COMMIT and
-- sqlx's record of it rebuilds the same tables again, harmlessly.

PRAGMA foreign_keys = OFF;

BEGIN;

CREATE TABLE packages_new (
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
    updated_at BIGINT NOT NULL,
    CONSTRAINT packages_paid_is_a_flag CHECK (paid IN (0, 1)),
    CONSTRAINT packages_downloads_are_not_negative CHECK (downloads >= 0)
);
INSERT INTO packages_new (id, publisher_id, name, description, kinds, games, paid, downloads, latest_version, created_at, updated_at)
    SELECT id, publisher_id, name, description, kinds, games, paid, downloads, latest_version, created_at, updated_at FROM packages;
DROP TABLE packages;
ALTER TABLE packages_new RENAME TO packages;
CREATE INDEX packages_downloads ON packages (downloads);
CREATE INDEX packages_updated ON packages (updated_at);

CREATE TABLE releases_new (
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
    PRIMARY KEY (package_id, version),
    CONSTRAINT releases_yanked_is_a_flag CHECK (yanked IN (0, 1)),
    CONSTRAINT releases_counts_are_not_negative CHECK (size >= 0 AND downloads >= 0),
    CONSTRAINT releases_version_is_not_negative CHECK (major >= 0 AND minor >= 0 AND patch >= 0)
);
INSERT INTO releases_new (package_id, version, major, minor, patch, sha256, size, api, dependencies, key_id, author_signature, countersignature, yanked, yank_reason, downloads, published_at)
    SELECT package_id, version, major, minor, patch, sha256, size, api, dependencies, key_id, author_signature, countersignature, yanked, yank_reason, downloads, published_at FROM releases;
DROP TABLE releases;
ALTER TABLE releases_new RENAME TO releases;
CREATE INDEX releases_key ON releases (key_id);

CREATE TABLE log_entries_new (
    package_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL,
    entry TEXT NOT NULL,
    PRIMARY KEY (package_id, seq),
    CONSTRAINT log_entries_seq_is_not_negative CHECK (seq >= 0)
);
INSERT INTO log_entries_new (package_id, seq, hash, entry)
    SELECT package_id, seq, hash, entry FROM log_entries;
DROP TABLE log_entries;
ALTER TABLE log_entries_new RENAME TO log_entries;

CREATE TABLE prices_new (
    package_id TEXT NOT NULL REFERENCES packages(id),
    version TEXT NOT NULL,
    amount BIGINT NOT NULL,
    currency TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (package_id, version),
    CONSTRAINT prices_amount_is_not_negative CHECK (amount >= 0)
);
INSERT INTO prices_new (package_id, version, amount, currency, updated_at)
    SELECT package_id, version, amount, currency, updated_at FROM prices;
DROP TABLE prices;
ALTER TABLE prices_new RENAME TO prices;

CREATE TABLE checkouts_new (
    id TEXT PRIMARY KEY,
    session_id TEXT UNIQUE,
    package_id TEXT NOT NULL REFERENCES packages(id),
    version TEXT NOT NULL,
    panel_instance TEXT NOT NULL REFERENCES panel_instances(id),
    amount BIGINT NOT NULL,
    currency TEXT NOT NULL,
    application_fee BIGINT NOT NULL,
    destination TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    CONSTRAINT checkouts_fee_is_part_of_the_amount CHECK (amount >= 0 AND application_fee >= 0 AND application_fee <= amount)
);
INSERT INTO checkouts_new (id, session_id, package_id, version, panel_instance, amount, currency, application_fee, destination, created_at)
    SELECT id, session_id, package_id, version, panel_instance, amount, currency, application_fee, destination, created_at FROM checkouts;
DROP TABLE checkouts;
ALTER TABLE checkouts_new RENAME TO checkouts;

CREATE TABLE entitlements_new (
    id TEXT PRIMARY KEY,
    package_id TEXT NOT NULL REFERENCES packages(id),
    panel_instance TEXT NOT NULL REFERENCES panel_instances(id),
    checkout_id TEXT NOT NULL UNIQUE REFERENCES checkouts(id),
    payment_intent TEXT,
    status TEXT NOT NULL,
    revoke_reason TEXT,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT,
    CONSTRAINT entitlements_status_is_known CHECK (status IN ('active', 'revoked'))
);
INSERT INTO entitlements_new (id, package_id, panel_instance, checkout_id, payment_intent, status, revoke_reason, created_at, revoked_at)
    SELECT id, package_id, panel_instance, checkout_id, payment_intent, status, revoke_reason, created_at, revoked_at FROM entitlements;
DROP TABLE entitlements;
ALTER TABLE entitlements_new RENAME TO entitlements;
CREATE INDEX entitlements_panel ON entitlements (panel_instance);
CREATE INDEX entitlements_intent ON entitlements (payment_intent);

DROP TABLE IF EXISTS schema_migrations;

COMMIT;

PRAGMA foreign_keys = ON;
