-- Identity and access: users, their links to auth-provider identities,
-- roles with `resource.action` permissions, login sessions with rotating
-- refresh tokens, API keys, the Panel's own signing secrets, and the
-- key-value store behind the plugins' `kv` capability.
-- Secrets (refresh tokens, API keys) are stored as SHA-256 hex digests only.

CREATE TABLE users (
    id           VARCHAR(64) PRIMARY KEY,
    username     VARCHAR(64) NOT NULL UNIQUE,
    email        VARCHAR(255),
    display_name VARCHAR(128),
    admin        BOOLEAN NOT NULL DEFAULT FALSE,
    disabled     BOOLEAN NOT NULL DEFAULT FALSE,
    created_at   BIGINT NOT NULL
);

CREATE TABLE identities (
    provider_id VARCHAR(128) NOT NULL,
    subject     VARCHAR(255) NOT NULL,
    user_id     VARCHAR(64) NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (provider_id, subject)
);

CREATE INDEX identities_user ON identities (user_id);

CREATE TABLE roles (
    id          VARCHAR(64) PRIMARY KEY,
    name        VARCHAR(64) NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL
);

CREATE TABLE role_permissions (
    role_id    VARCHAR(64) NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    permission VARCHAR(128) NOT NULL,
    PRIMARY KEY (role_id, permission)
);

CREATE TABLE user_roles (
    user_id VARCHAR(64) NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role_id VARCHAR(64) NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, role_id)
);

-- One login: a refresh-token family. Revoking it ends the session.
CREATE TABLE sessions (
    id          VARCHAR(64) PRIMARY KEY,
    user_id     VARCHAR(64) NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider_id VARCHAR(128) NOT NULL,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE refresh_tokens (
    token_hash CHAR(64) PRIMARY KEY,
    session_id VARCHAR(64) NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    issued_at  BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);

CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

CREATE TABLE api_keys (
    id           VARCHAR(64) PRIMARY KEY,
    user_id      VARCHAR(64) NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         VARCHAR(128) NOT NULL,
    prefix       VARCHAR(32) NOT NULL,
    key_hash     CHAR(64) NOT NULL UNIQUE,
    scopes       JSONB NOT NULL,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at   BIGINT
);

CREATE INDEX api_keys_user ON api_keys (user_id);

-- The Panel's own secrets (the JWT signing key). Never copied to events.
CREATE TABLE identity_secrets (
    name  VARCHAR(64) PRIMARY KEY,
    value TEXT NOT NULL
);

-- The plugins' `kv` capability, scoped by plugin id.
CREATE TABLE plugin_kv (
    plugin_id  VARCHAR(128) NOT NULL,
    item_key   VARCHAR(256) NOT NULL,
    value      BYTEA NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (plugin_id, item_key)
);
