//! SFTP sign-ins: the Agent serves SFTP, the Panel decides who may sign in.
//!
//! A client signs in to an Agent's SFTP server as `<panel username>.<server>`
//! ([`SftpUsername`]) with a password or a public key. The Agent keeps no
//! accounts: it sends an [`SftpAuthRequest`] over its link
//! ([`crate::AgentMessage::SftpAuth`]) and waits for the Panel's
//! [`SftpAuthResponse`] ([`crate::PanelMessage::SftpAuthAnswer`]), which
//! either allows the session, with the server's full id, the user's id and
//! the [`FileScope`] and file permissions the session is confined to, or
//! denies it with a reason (logged by the Agent, never shown to the client,
//! which only learns that the sign-in failed).
//!
//! Key decisions:
//!
//! - **The Panel decides everything.** Password checks go to the
//!   auth-provider plugin that owns the user's identity, keys are compared
//!   with the keys stored on the user's account, and the permission check
//!   is the file manager's; an Agent that cannot reach its Panel refuses
//!   every sign-in.
//! - **The public key travels, not a fingerprint.** The Agent has verified
//!   the client's signature; the Panel parses the key itself and computes
//!   the fingerprint it looks up, so a malformed key never matches.
//! - **The username's server part is short.** Server ids are `srv_` and 32
//!   hex digits; the username carries their *last* 8 hex digits (as
//!   Pterodactyl's `username.uuidShort` carries 8 of a UUID), or the whole
//!   id. Not the first 8: ids are UUIDv7, whose first digits are a clock
//!   that servers created within a minute share; the last 8 are random. A
//!   short form two servers of a node share is refused as ambiguous.
//!   Panel usernames may contain dots, server parts never do, so the name
//!   splits at its *last* dot.

use serde::{Deserialize, Serialize};

use crate::files::FileScope;

/// How many characters of the server id (its last ones) the username's
/// server part has.
pub const SERVER_SHORT_LEN: usize = 8;

/// The prefix of every server id.
pub const SERVER_ID_PREFIX: &str = "srv_";

/// An SFTP username, split: `alice.0a1b2c3d` is user `alice` on the server
/// whose id ends with `0a1b2c3d`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SftpUsername {
    /// The Panel username.
    pub user: String,
    /// The server part: 8 hex digits, or a whole server id.
    pub server: String,
}

impl SftpUsername {
    /// Splits `raw` at its last dot.
    ///
    /// ```
    /// use cap_protocol::sftp::SftpUsername;
    /// let name = SftpUsername::parse("jane.doe.0a1b2c3d").unwrap();
    /// assert_eq!((name.user.as_str(), name.server.as_str()), ("jane.doe", "0a1b2c3d"));
    /// assert!(SftpUsername::parse("jane").is_none());
    /// assert!(SftpUsername::parse("jane.0A1B").is_none());
    /// ```
    ///
    /// Returns `None` unless there is a non-empty user and a server part
    /// that is either [`SERVER_SHORT_LEN`] lowercase hex digits or a whole
    /// server id (`srv_` and lowercase hex digits).
    pub fn parse(raw: &str) -> Option<SftpUsername> {
        let (user, server) = raw.rsplit_once('.')?;
        if user.is_empty() || user.len() > 256 || user.chars().any(char::is_control) {
            return None;
        }
        let hex = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        let valid = if let Some(rest) = server.strip_prefix(SERVER_ID_PREFIX) {
            rest.len() >= SERVER_SHORT_LEN && rest.len() <= 64 && hex(rest)
        } else {
            server.len() == SERVER_SHORT_LEN && hex(server)
        };
        valid.then(|| SftpUsername {
            user: user.to_owned(),
            server: server.to_owned(),
        })
    }

    /// Whether server id `id` is the one named: the whole id, or an id
    /// ending with the short form.
    ///
    /// ```
    /// use cap_protocol::sftp::SftpUsername;
    /// let name = SftpUsername::parse("bob.89abcdef").unwrap();
    /// assert!(name.names("srv_0123456789abcdef0123456789abcdef"));
    /// assert!(!name.names("srv_89abcdef0123456789abcdef01234567"));
    /// ```
    pub fn names(&self, id: &str) -> bool {
        if self.is_whole_id() {
            id == self.server
        } else {
            id.strip_prefix(SERVER_ID_PREFIX)
                .is_some_and(|rest| rest.len() > SERVER_SHORT_LEN && rest.ends_with(&self.server))
        }
    }

    /// Whether the server part is a whole id rather than its short form.
    pub fn is_whole_id(&self) -> bool {
        self.server.starts_with(SERVER_ID_PREFIX)
    }
}

/// The username an SFTP client signs in with for `user` on `server_id`.
///
/// ```
/// assert_eq!(
///     cap_protocol::sftp::sftp_username("alice", "srv_0a1b2c3d4e5f"),
///     "alice.2c3d4e5f"
/// );
/// ```
pub fn sftp_username(user: &str, server_id: &str) -> String {
    let id = server_id
        .strip_prefix(SERVER_ID_PREFIX)
        .unwrap_or(server_id);
    let short = id
        .char_indices()
        .rev()
        .nth(SERVER_SHORT_LEN - 1)
        .map_or(id, |(at, _)| &id[at..]);
    format!("{user}.{short}")
}

/// What the client proved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "method",
    rename_all = "kebab-case",
    rename_all_fields = "camelCase"
)]
pub enum SftpCredential {
    /// A password, checked by the Panel through the user's auth provider.
    Password {
        /// The password.
        password: String,
    },
    /// A public key whose signature the Agent verified.
    PublicKey {
        /// The key in OpenSSH's one-line form (`ssh-ed25519 AAAA…`).
        public_key: String,
    },
}

impl SftpCredential {
    /// The method's wire name (`password`, `public-key`).
    pub fn method(&self) -> &'static str {
        match self {
            Self::Password { .. } => "password",
            Self::PublicKey { .. } => "public-key",
        }
    }
}

impl std::fmt::Display for SftpCredential {
    /// The method only: never the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.method())
    }
}

/// An Agent asks whether a client may sign in
/// ([`crate::AgentMessage::SftpAuth`]).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SftpAuthRequest {
    /// Unique per request; echoed in the [`SftpAuthResponse`].
    pub request_id: String,
    /// The username as the client sent it (`alice.0a1b2c3d`).
    pub username: String,
    /// What the client proved.
    pub credential: SftpCredential,
    /// The client's address, for the Panel's rate limits and logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_addr: Option<String>,
}

impl std::fmt::Debug for SftpAuthRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SftpAuthRequest")
            .field("request_id", &self.request_id)
            .field("username", &self.username)
            .field("credential", &self.credential.method())
            .field("client_addr", &self.client_addr)
            .finish()
    }
}

/// The file permissions an SFTP session holds on its server (the
/// file manager's `file.*`, as booleans).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SftpPermissions {
    /// `file.read`: list folders, stat entries.
    #[serde(default)]
    pub read: bool,
    /// `file.read-content`: read files.
    #[serde(default)]
    pub read_content: bool,
    /// `file.create`: create files and folders.
    #[serde(default)]
    pub create: bool,
    /// `file.update`: change files (write into existing ones, rename,
    /// chmod).
    #[serde(default)]
    pub update: bool,
    /// `file.delete`: remove files and folders.
    #[serde(default)]
    pub delete: bool,
}

impl SftpPermissions {
    /// Every permission.
    pub fn all() -> Self {
        Self {
            read: true,
            read_content: true,
            create: true,
            update: true,
            delete: true,
        }
    }
}

/// The Panel's decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "decision",
    rename_all = "kebab-case",
    rename_all_fields = "camelCase"
)]
pub enum SftpDecision {
    /// The client may sign in.
    Allow {
        /// The server's full id (its directory on the node).
        server_id: String,
        /// The user's id (for [`crate::files::FileChange`] reports).
        user_id: String,
        /// What the session's file operations are confined to.
        scope: FileScope,
        /// What the session may do.
        permissions: SftpPermissions,
    },
    /// It may not.
    Deny {
        /// Why, for the Agent's log (the client is told nothing more than
        /// that the sign-in failed).
        reason: String,
    },
}

/// The Panel's answer to an [`SftpAuthRequest`]
/// ([`crate::PanelMessage::SftpAuthAnswer`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SftpAuthResponse {
    /// The request's id.
    pub request_id: String,
    /// The decision.
    pub decision: SftpDecision,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_username_splits_at_its_last_dot() {
        let name = SftpUsername::parse("a.b.c.deadbeef").expect("parses");
        assert_eq!(name.user, "a.b.c");
        assert_eq!(name.server, "deadbeef");
        assert!(name.names("srv_000000000000000000000000deadbeef"));
        assert!(!name.names("srv_deadbeef000000000000000000000000"));
        assert!(!name.is_whole_id());
    }

    #[test]
    fn a_whole_server_id_is_accepted_as_the_server_part() {
        let id = "srv_0123456789abcdef0123456789abcdef";
        let name = SftpUsername::parse(&format!("bob.{id}")).expect("parses");
        assert!(name.names(id));
        assert!(!name.names("srv_0123456789abcdef0123456789abcdee"));
        assert!(name.is_whole_id());
    }

    #[test]
    fn malformed_usernames_are_refused() {
        for raw in [
            "",
            "bob",
            ".deadbeef",
            "bob.",
            "bob.deadbee",
            "bob.deadbeef0",
            "bob.DEADBEEF",
            "bob.deadbeeg",
            "bob.srv_",
            "bob.srv_dead",
            "bob.srv_xyzxyzxyz",
            "bo\nb.deadbeef",
        ] {
            assert_eq!(SftpUsername::parse(raw), None, "{raw:?}");
        }
    }

    #[test]
    fn the_username_for_a_server_takes_its_last_eight_hex_digits() {
        let id = "srv_0123456789abcdef0123456789abcdef";
        let name = sftp_username("alice", id);
        assert_eq!(name, "alice.89abcdef");
        let parsed = SftpUsername::parse(&name).expect("parses");
        assert!(parsed.names(id));
    }

    #[test]
    fn a_request_never_shows_its_password_when_debugged() {
        let request = SftpAuthRequest {
            request_id: "r".into(),
            username: "a.deadbeef".into(),
            credential: SftpCredential::Password {
                password: "hunter2".into(),
            },
            client_addr: None,
        };
        assert!(!format!("{request:?}").contains("hunter2"));
        let json = serde_json::to_value(&request).expect("serialises");
        assert_eq!(json["credential"]["method"], "password");
    }
}
