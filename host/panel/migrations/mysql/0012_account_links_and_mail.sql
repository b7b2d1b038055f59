-- User administration (see the SQLite migration of the same number).

ALTER TABLE users ADD COLUMN must_change_password BOOLEAN NOT NULL DEFAULT FALSE;

CREATE TABLE account_links (
    id         VARCHAR(64) NOT NULL PRIMARY KEY,
    user_id    VARCHAR(64) NOT NULL,
    purpose    VARCHAR(16) NOT NULL,
    token_hash CHAR(64) NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT NULL,
    mail       VARCHAR(512) NULL,
    CONSTRAINT account_links_token UNIQUE (token_hash),
    INDEX account_links_user (user_id),
    CONSTRAINT account_links_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE mail_settings (
    id         INTEGER NOT NULL PRIMARY KEY,
    host       VARCHAR(255) NOT NULL,
    port       INTEGER NOT NULL,
    security   VARCHAR(16) NOT NULL,
    username   VARCHAR(255) NULL,
    password   TEXT NULL,
    from_addr  VARCHAR(255) NOT NULL,
    updated_at BIGINT NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
