-- SSH public keys for SFTP sign-ins (see the SQLite migration of the same
-- number).

CREATE TABLE user_ssh_keys (
    id          VARCHAR(64) PRIMARY KEY,
    user_id     VARCHAR(64) NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name        VARCHAR(128) NOT NULL,
    public_key  VARCHAR(8192) NOT NULL,
    fingerprint VARCHAR(64) NOT NULL,
    created_at  BIGINT NOT NULL,
    CONSTRAINT user_ssh_keys_fingerprint UNIQUE (user_id, fingerprint)
);
