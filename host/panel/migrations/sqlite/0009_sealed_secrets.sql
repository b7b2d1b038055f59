-- Secrets at rest (issue 12; see cap_panel::secrets). TOTP secrets, plugin
-- secrets and the Marketplace instance token stay in their columns, sealed
-- by the Panel on its first start with a secret key (a key check in
-- identity_secrets records that). The JWT signing key moves here from
-- identity_secrets, with a key id for the JWT header, so it can rotate: a key
-- signs from created_at plus the publication delay until a newer key does,
-- and is accepted for the rollover window after that (cap_panel::identity::tokens).
-- The old plaintext key is dropped, not moved: a fresh sealed key replaces
-- it, and access tokens signed with it (minutes-lived) are refused.

CREATE TABLE jwt_keys (
    kid        TEXT PRIMARY KEY NOT NULL CHECK (length(kid) BETWEEN 1 AND 64),
    secret     TEXT NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

DELETE FROM identity_secrets WHERE name = 'jwt.hs256';
