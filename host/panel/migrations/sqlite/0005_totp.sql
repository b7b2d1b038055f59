-- Second factor: TOTP (RFC 6238) secrets, single-use recovery codes, and the
-- short-lived challenges that stand between a verified password and tokens.
-- Recovery codes and challenges are stored as SHA-256 hex digests only; the
-- TOTP secret must be kept as it is (the server computes codes from it) and
-- is never returned by the API after enrollment.

CREATE TABLE totp_credentials (
    user_id         TEXT PRIMARY KEY NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    secret          TEXT NOT NULL CHECK (length(secret) BETWEEN 16 AND 128),
    created_at      INTEGER NOT NULL,
    enabled_at      INTEGER,              -- NULL while enrollment awaits its first code
    last_used_step  INTEGER,              -- the last accepted time step: no code is accepted twice
    failed_attempts INTEGER NOT NULL DEFAULT 0 CHECK (failed_attempts >= 0),
    locked_until    INTEGER
) STRICT;

CREATE TABLE recovery_codes (
    user_id   TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash TEXT NOT NULL CHECK (length(code_hash) = 64),
    used_at   INTEGER,
    PRIMARY KEY (user_id, code_hash)
) STRICT;

CREATE TABLE login_challenges (
    token_hash  TEXT PRIMARY KEY NOT NULL CHECK (length(token_hash) = 64),
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider_id TEXT NOT NULL CHECK (length(provider_id) BETWEEN 1 AND 128),
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER
) STRICT;

CREATE INDEX login_challenges_user ON login_challenges (user_id);
CREATE INDEX login_challenges_expires ON login_challenges (expires_at);
