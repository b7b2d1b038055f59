-- User administration (issue 16; see cap_panel::identity::links and
-- cap_panel::mail). An administrator may require a user to change their
-- password at the next sign-in; one-time links invite a new user to set a
-- password or let a user reset a forgotten one (only the SHA-256 digest of
-- a link's token is kept; a link works once and until it expires); the
-- Panel's SMTP settings, one row, with the password sealed under the secret
-- key like every secret at rest.

ALTER TABLE users ADD COLUMN must_change_password INTEGER NOT NULL DEFAULT 0
    CHECK (must_change_password IN (0, 1));

CREATE TABLE account_links (
    id         TEXT PRIMARY KEY NOT NULL CHECK (length(id) BETWEEN 1 AND 64),
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    TEXT NOT NULL CHECK (purpose IN ('invitation', 'reset')),
    token_hash TEXT NOT NULL UNIQUE CHECK (length(token_hash) = 64),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER,
    mail       TEXT CHECK (length(mail) BETWEEN 1 AND 512)
) STRICT;

CREATE INDEX account_links_user ON account_links (user_id);

CREATE TABLE mail_settings (
    id         INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    host       TEXT NOT NULL CHECK (length(host) BETWEEN 1 AND 255),
    port       INTEGER NOT NULL CHECK (port BETWEEN 1 AND 65535),
    security   TEXT NOT NULL CHECK (security IN ('none', 'starttls', 'tls')),
    username   TEXT CHECK (length(username) BETWEEN 1 AND 255),
    password   TEXT,
    from_addr  TEXT NOT NULL CHECK (length(from_addr) BETWEEN 1 AND 255),
    updated_at INTEGER NOT NULL
) STRICT;
