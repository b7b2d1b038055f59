-- CHECK constraints: flags are 0 or 1, counts and amounts are not
-- negative, a checkout's fee is part of its amount, an entitlement is
-- 'active' or 'revoked'. The same constraints, by the same names, as
-- sqlite/0002_checks.sql (a test compares the two files' constraints).
-- The Marketplace never wrote a row that breaks one, so every existing
-- database passes them.
--
-- Also drops `schema_migrations`, the record of the steps before
-- numbered migrations, which an adopted database still holds.

ALTER TABLE packages
    ADD CONSTRAINT packages_paid_is_a_flag CHECK (paid IN (0, 1)),
    ADD CONSTRAINT packages_downloads_are_not_negative CHECK (downloads >= 0);

ALTER TABLE releases
    ADD CONSTRAINT releases_yanked_is_a_flag CHECK (yanked IN (0, 1)),
    ADD CONSTRAINT releases_counts_are_not_negative CHECK (size >= 0 AND downloads >= 0),
    ADD CONSTRAINT releases_version_is_not_negative CHECK (major >= 0 AND minor >= 0 AND patch >= 0);

ALTER TABLE log_entries
    ADD CONSTRAINT log_entries_seq_is_not_negative CHECK (seq >= 0);

ALTER TABLE prices
    ADD CONSTRAINT prices_amount_is_not_negative CHECK (amount >= 0);

ALTER TABLE checkouts
    ADD CONSTRAINT checkouts_fee_is_part_of_the_amount CHECK (amount >= 0 AND application_fee >= 0 AND application_fee <= amount);

ALTER TABLE entitlements
    ADD CONSTRAINT entitlements_status_is_known CHECK (status IN ('active', 'revoked'));

DROP TABLE IF EXISTS schema_migrations;
