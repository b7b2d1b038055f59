-- Second factor: TOTP (RFC 6238) secrets, single-use recovery codes, and the
-- short-lived challenges that stand between a verified password and tokens.
-- Recovery codes and challenges are stored as SHA-256 hex digests only; the
-- TOTP secret must be kept as it is (the server computes codes from it) and
-- is never returned by the API after enrollment.

CREATE TABLE totp_credentials (
    user_id         VARCHAR(64) NOT NULL PRIMARY KEY,
    secret          VARCHAR(128) NOT NULL,
    created_at      BIGINT NOT NULL,
    enabled_at      BIGINT NULL,
    last_used_step  BIGINT NULL,
    failed_attempts BIGINT NOT NULL DEFAULT 0,
    locked_until    BIGINT NULL,
    CONSTRAINT totp_credentials_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE recovery_codes (
    user_id   VARCHAR(64) NOT NULL,
    code_hash CHAR(64) NOT NULL,
    used_at   BIGINT NULL,
    PRIMARY KEY (user_id, code_hash),
    CONSTRAINT recovery_codes_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE login_challenges (
    token_hash  CHAR(64) NOT NULL PRIMARY KEY,
    user_id     VARCHAR(64) NOT NULL,
    provider_id VARCHAR(128) NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT NULL,
    INDEX login_challenges_user (user_id),
    INDEX login_challenges_expires (expires_at),
    CONSTRAINT login_challenges_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
