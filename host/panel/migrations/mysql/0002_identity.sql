-- Identity and access: users, their links to auth-provider identities,
-- roles with `resource.action` permissions, login sessions with rotating
-- refresh tokens, API keys, the Panel's own signing secrets, and the
-- key-value store behind the plugins' `kv` capability.
-- Secrets (refresh tokens, API keys) are stored as SHA-256 hex digests only.

CREATE TABLE users (
    id           VARCHAR(64) NOT NULL PRIMARY KEY,
    username     VARCHAR(64) NOT NULL,
    email        VARCHAR(255) NULL,
    display_name VARCHAR(128) NULL,
    admin        BOOLEAN NOT NULL DEFAULT FALSE,
    disabled     BOOLEAN NOT NULL DEFAULT FALSE,
    created_at   BIGINT NOT NULL,
    CONSTRAINT users_username UNIQUE (username)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE identities (
    provider_id VARCHAR(128) NOT NULL,
    subject     VARCHAR(255) NOT NULL,
    user_id     VARCHAR(64) NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (provider_id, subject),
    INDEX identities_user (user_id),
    CONSTRAINT identities_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE roles (
    id          VARCHAR(64) NOT NULL PRIMARY KEY,
    name        VARCHAR(64) NOT NULL,
    description TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    CONSTRAINT roles_name UNIQUE (name)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE role_permissions (
    role_id    VARCHAR(64) NOT NULL,
    permission VARCHAR(128) NOT NULL,
    PRIMARY KEY (role_id, permission),
    CONSTRAINT role_permissions_role_fk FOREIGN KEY (role_id) REFERENCES roles (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE user_roles (
    user_id VARCHAR(64) NOT NULL,
    role_id VARCHAR(64) NOT NULL,
    PRIMARY KEY (user_id, role_id),
    CONSTRAINT user_roles_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT user_roles_role_fk FOREIGN KEY (role_id) REFERENCES roles (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- One login: a refresh-token family. Revoking it ends the session.
CREATE TABLE sessions (
    id          VARCHAR(64) NOT NULL PRIMARY KEY,
    user_id     VARCHAR(64) NOT NULL,
    provider_id VARCHAR(128) NOT NULL,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT NULL,
    INDEX sessions_user (user_id),
    CONSTRAINT sessions_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE refresh_tokens (
    token_hash CHAR(64) NOT NULL PRIMARY KEY,
    session_id VARCHAR(64) NOT NULL,
    issued_at  BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT NULL,
    INDEX refresh_tokens_session (session_id),
    CONSTRAINT refresh_tokens_session_fk FOREIGN KEY (session_id) REFERENCES sessions (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE api_keys (
    id           VARCHAR(64) NOT NULL PRIMARY KEY,
    user_id      VARCHAR(64) NOT NULL,
    name         VARCHAR(128) NOT NULL,
    prefix       VARCHAR(32) NOT NULL,
    key_hash     CHAR(64) NOT NULL,
    scopes       JSON NOT NULL,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT NULL,
    revoked_at   BIGINT NULL,
    CONSTRAINT api_keys_hash UNIQUE (key_hash),
    INDEX api_keys_user (user_id),
    CONSTRAINT api_keys_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- The Panel's own secrets (the JWT signing key). Never copied to events.
CREATE TABLE identity_secrets (
    name  VARCHAR(64) NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- The plugins' `kv` capability, scoped by plugin id.
CREATE TABLE plugin_kv (
    plugin_id  VARCHAR(128) NOT NULL,
    item_key   VARCHAR(256) NOT NULL,
    value      LONGBLOB NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (plugin_id, item_key)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
