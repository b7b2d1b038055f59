-- User administration (see the SQLite migration of the same number).

ALTER TABLE users ADD COLUMN must_change_password BOOLEAN NOT NULL DEFAULT FALSE;

CREATE TABLE account_links (
    id         VARCHAR(64) PRIMARY KEY,
    user_id    VARCHAR(64) NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    VARCHAR(16) NOT NULL CHECK (purpose IN ('invitation', 'reset')),
    token_hash CHAR(64) NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT,
    mail       VARCHAR(512)
);

CREATE INDEX account_links_user ON account_links (user_id);

CREATE TABLE mail_settings (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    host       VARCHAR(255) NOT NULL,
    port       INTEGER NOT NULL CHECK (port BETWEEN 1 AND 65535),
    security   VARCHAR(16) NOT NULL CHECK (security IN ('none', 'starttls', 'tls')),
    username   VARCHAR(255),
    password   TEXT,
    from_addr  VARCHAR(255) NOT NULL,
    updated_at BIGINT NOT NULL
);
