-- Identity and access: users, their links to auth-provider identities,
-- roles with `resource.action` permissions, login sessions with rotating
-- refresh tokens, API keys, the Panel's own signing secrets, and the
-- key-value store behind the plugins' `kv` capability.
-- Secrets (refresh tokens, API keys) are stored as SHA-256 hex digests only.

CREATE TABLE users (
    id           TEXT PRIMARY KEY NOT NULL CHECK (length(id) BETWEEN 1 AND 64),
    username     TEXT NOT NULL UNIQUE CHECK (length(username) BETWEEN 1 AND 64),
    email        TEXT CHECK (length(email) BETWEEN 1 AND 255),
    display_name TEXT CHECK (length(display_name) BETWEEN 1 AND 128),
    admin        INTEGER NOT NULL DEFAULT 0 CHECK (admin IN (0, 1)),
    disabled     INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at   INTEGER NOT NULL
) STRICT;

CREATE TABLE identities (
    provider_id TEXT NOT NULL CHECK (length(provider_id) BETWEEN 1 AND 128),
    subject     TEXT NOT NULL CHECK (length(subject) BETWEEN 1 AND 255),
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (provider_id, subject)
) STRICT;

CREATE INDEX identities_user ON identities (user_id);

CREATE TABLE roles (
    id          TEXT PRIMARY KEY NOT NULL CHECK (length(id) BETWEEN 1 AND 64),
    name        TEXT NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 64),
    description TEXT NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE role_permissions (
    role_id    TEXT NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    permission TEXT NOT NULL CHECK (length(permission) BETWEEN 1 AND 128),
    PRIMARY KEY (role_id, permission)
) STRICT;

CREATE TABLE user_roles (
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role_id TEXT NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, role_id)
) STRICT;

-- One login: a refresh-token family. Revoking it ends the session.
CREATE TABLE sessions (
    id          TEXT PRIMARY KEY NOT NULL CHECK (length(id) BETWEEN 1 AND 64),
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider_id TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
) STRICT;

CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY NOT NULL CHECK (length(token_hash) = 64),
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    issued_at  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
) STRICT;

CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY NOT NULL CHECK (length(id) BETWEEN 1 AND 64),
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 128),
    prefix       TEXT NOT NULL CHECK (length(prefix) BETWEEN 1 AND 32),
    key_hash     TEXT NOT NULL UNIQUE CHECK (length(key_hash) = 64),
    scopes       TEXT NOT NULL CHECK (json_valid(scopes)),
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER
) STRICT;

CREATE INDEX api_keys_user ON api_keys (user_id);

-- The Panel's own secrets (the JWT signing key). Never copied to events.
CREATE TABLE identity_secrets (
    name  TEXT PRIMARY KEY NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    value TEXT NOT NULL
) STRICT;

-- The plugins' `kv` capability, scoped by plugin id.
CREATE TABLE plugin_kv (
    plugin_id  TEXT NOT NULL CHECK (length(plugin_id) BETWEEN 1 AND 128),
    item_key   TEXT NOT NULL CHECK (length(item_key) BETWEEN 1 AND 256),
    value      BLOB NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (plugin_id, item_key)
) STRICT;
