-- SSH public keys users sign in to Agents' SFTP servers with. The Panel
-- compares a key an Agent verified against these by its SHA-256
-- fingerprint; a user holds each key once.

CREATE TABLE user_ssh_keys (
    id          TEXT PRIMARY KEY NOT NULL CHECK (length(id) BETWEEN 1 AND 64),
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 128),
    public_key  TEXT NOT NULL CHECK (length(public_key) BETWEEN 1 AND 8192),
    fingerprint TEXT NOT NULL CHECK (length(fingerprint) BETWEEN 1 AND 64),
    created_at  INTEGER NOT NULL,
    UNIQUE (user_id, fingerprint)
) STRICT;
