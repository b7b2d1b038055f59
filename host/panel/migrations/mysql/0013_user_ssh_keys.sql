-- SSH public keys for SFTP sign-ins (see the SQLite migration of the same
-- number).

CREATE TABLE user_ssh_keys (
    id          VARCHAR(64) NOT NULL PRIMARY KEY,
    user_id     VARCHAR(64) NOT NULL,
    name        VARCHAR(128) NOT NULL,
    public_key  TEXT NOT NULL,
    fingerprint VARCHAR(64) NOT NULL,
    created_at  BIGINT NOT NULL,
    CONSTRAINT user_ssh_keys_fingerprint UNIQUE (user_id, fingerprint),
    CONSTRAINT user_ssh_keys_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
