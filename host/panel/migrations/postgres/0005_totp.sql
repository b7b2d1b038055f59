-- Second factor: TOTP (RFC 6238) secrets, single-use recovery codes, and the
-- short-lived challenges that stand between a verified password and tokens.
-- Recovery codes and challenges are stored as SHA-256 hex digests only; the
-- TOTP secret must be kept as it is (the server computes codes from it) and
-- is never returned by the API after enrollment.

CREATE TABLE totp_credentials (
    user_id         VARCHAR(64) PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    secret          VARCHAR(128) NOT NULL,
    created_at      BIGINT NOT NULL,
    enabled_at      BIGINT,
    last_used_step  BIGINT,
    failed_attempts BIGINT NOT NULL DEFAULT 0 CHECK (failed_attempts >= 0),
    locked_until    BIGINT
);

CREATE TABLE recovery_codes (
    user_id   VARCHAR(64) NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash CHAR(64) NOT NULL,
    used_at   BIGINT,
    PRIMARY KEY (user_id, code_hash)
);

CREATE TABLE login_challenges (
    token_hash  CHAR(64) PRIMARY KEY,
    user_id     VARCHAR(64) NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider_id VARCHAR(128) NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT
);

CREATE INDEX login_challenges_user ON login_challenges (user_id);
CREATE INDEX login_challenges_expires ON login_challenges (expires_at);
