//! Backups: what the Panel asks an Agent to archive, restore or delete,
//! and what the Agent answers when it is done.
//!
//! Key decisions:
//!
//! - **Fire and report.** A backup can take minutes, so the Panel does not
//!   wait on the link: it records the backup `pending`, sends a
//!   [`BackupRequest`] ([`crate::PanelMessage::Backup`]) and moves on. The
//!   Agent runs it on a task of its own and answers once with a
//!   [`BackupReport`] ([`crate::AgentMessage::BackupDone`]), which the
//!   Panel records. Requests are not persisted: a link that drops while a
//!   backup runs makes the Panel mark it failed (the node went offline).
//! - **The Panel decides where.** Every request names its
//!   [`BackupTarget`]: the node's own disk, or S3-compatible storage with
//!   the credentials the Panel holds sealed. The Agent stores no storage
//!   settings of its own; the credentials cross the link (TLS in any real
//!   deployment) and live in the Agent's memory for one operation.
//! - **One name for an archive.** [`BackupTarget::object_key`] is the S3
//!   key of a backup and [`local_file_name`] its file in the Agent's backup
//!   directory, so the Panel (which presigns S3 downloads) and the Agent
//!   agree without asking each other.
//! - **Integrity end to end.** A finished backup reports the SHA-256 of
//!   the archive's bytes as stored; a restore carries it back and the
//!   Agent refuses an archive whose bytes do not match before it changes
//!   a single file.

use serde::{Deserialize, Serialize};

use crate::files::FileScope;

/// The archive format of every backup: a tar stream compressed with
/// zstd.
pub const BACKUP_EXTENSION: &str = "tar.zst";

/// The file name of backup `backup_id` in the Agent's backup directory
/// for its server (`<data>/backups/<server>/<id>.tar.zst`).
pub fn local_file_name(backup_id: &str) -> String {
    format!("{backup_id}.{BACKUP_EXTENSION}")
}

/// Whether `id` can name a server or a backup on disk: one path component
/// of ASCII letters, digits, `_` and `-`, 1 to 64 bytes, not starting with
/// `-`. The Panel makes every id this way; anything else names nothing.
pub fn is_safe_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && !id.starts_with('-')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// S3-compatible object storage (AWS S3, MinIO, Ceph, Garage, Backblaze
/// B2, Cloudflare R2...).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct S3Target {
    /// The endpoint URL (`https://s3.eu-central-1.amazonaws.com`,
    /// `http://127.0.0.1:9000`); plain `http` is allowed for storage on
    /// the node's own network.
    pub endpoint: String,
    /// The region (`us-east-1` when the storage does not care).
    pub region: String,
    /// The bucket.
    pub bucket: String,
    /// A key prefix inside the bucket (`backups/panel-1`), without leading
    /// or trailing `/`; may be empty.
    #[serde(default)]
    pub prefix: String,
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
    /// Path-style URLs (`endpoint/bucket/key`) instead of virtual-hosted
    /// ones (`bucket.endpoint/key`): what MinIO and most self-hosted
    /// storage need.
    #[serde(default)]
    pub path_style: bool,
}

/// Never shows the secret.
impl std::fmt::Debug for S3Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Target")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("access_key_id", &self.access_key_id)
            .field("path_style", &self.path_style)
            .finish_non_exhaustive()
    }
}

/// Where a backup's archive is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "kebab-case",
    rename_all_fields = "camelCase"
)]
pub enum BackupTarget {
    /// The node's own disk, in the Agent's data directory (outside every
    /// server's directory).
    Local,
    /// S3-compatible object storage, uploaded in parts as it is written.
    S3(S3Target),
}

impl BackupTarget {
    /// The kind's wire name: `local` or `s3`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::S3(_) => "s3",
        }
    }

    /// The object key of backup `backup_id` of server `server_id` under
    /// `prefix`: `<prefix>/<server>/<backup>.tar.zst` (no leading `/`).
    ///
    /// ```
    /// use cap_protocol::backups::BackupTarget;
    /// assert_eq!(BackupTarget::object_key("", "srv_1", "bkp_2"), "srv_1/bkp_2.tar.zst");
    /// assert_eq!(BackupTarget::object_key("/panel/", "srv_1", "bkp_2"), "panel/srv_1/bkp_2.tar.zst");
    /// ```
    pub fn object_key(prefix: &str, server_id: &str, backup_id: &str) -> String {
        let prefix = prefix.trim_matches('/');
        let file = local_file_name(backup_id);
        if prefix.is_empty() {
            format!("{server_id}/{file}")
        } else {
            format!("{prefix}/{server_id}/{file}")
        }
    }
}

/// Console commands a game type sends around a backup of a running
/// server, so that the archive holds a consistent world (Minecraft's
/// `save-off` and `save-all flush` before, `save-on` after).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SaveCommands {
    /// Sent before the archive is written, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub before: Vec<String>,
    /// Sent after it was written (whether or not it worked), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<String>,
    /// Milliseconds to wait after the `before` commands, for the game to
    /// finish saving.
    #[serde(default)]
    pub settle_ms: u64,
}

/// What to do with a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "op",
    rename_all = "kebab-case",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
pub enum BackupOp {
    /// Archive the server's directory.
    Create {
        /// Paths to leave out, one `.pteroignore` (`.gitignore` syntax)
        /// line each, matched from the server's directory; `!` re-includes.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        ignore: Vec<String>,
        /// Where to put the archive.
        target: BackupTarget,
        /// Commands for the console of a running server.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        save: Option<SaveCommands>,
    },
    /// Put the archive's files back into the server's directory.
    Restore {
        /// Where the archive is.
        target: BackupTarget,
        /// The archive's SHA-256 as the backup reported it; an archive
        /// with other bytes is refused before anything changes.
        sha256: String,
        /// Remove everything in the server's directory first (once the
        /// archive has been read whole and verified); otherwise the
        /// archive's files replace files of the same name and the rest
        /// stays.
        #[serde(default)]
        truncate: bool,
    },
    /// Remove the archive.
    Delete {
        /// Where the archive is.
        target: BackupTarget,
    },
}

impl BackupOp {
    /// The operation's wire name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Create { .. } => "create",
            Self::Restore { .. } => "restore",
            Self::Delete { .. } => "delete",
        }
    }
}

/// A backup operation the Panel sends ([`crate::PanelMessage::Backup`]),
/// answered by one [`BackupReport`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackupRequest {
    /// The backup.
    pub backup_id: String,
    /// Its server.
    pub server_id: String,
    /// What the Panel allows on the server's files: the disk limit bounds
    /// a restore.
    pub scope: FileScope,
    /// What to do.
    pub op: BackupOp,
}

/// Why a backup operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackupErrorCode {
    /// The Agent does not know the server.
    UnknownServer,
    /// The archive is not there (deleted, or never finished).
    NotFound,
    /// The archive's bytes are not those the backup recorded, or it cannot
    /// be read as a tar.zst.
    Corrupt,
    /// The archive was refused by the extraction bounds (too large, too
    /// many entries, a link, a device, a path leaving the directory).
    Refused,
    /// Restoring it would take the server over its disk limit.
    DiskLimit,
    /// The object storage refused or could not be reached.
    Storage,
    /// Another backup or restore of the same server is running.
    Busy,
    /// An ignore pattern does not compile.
    InvalidIgnore,
    /// The file system failed.
    Io,
}

impl BackupErrorCode {
    /// The code's wire name (`corrupt`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnknownServer => "unknown-server",
            Self::NotFound => "not-found",
            Self::Corrupt => "corrupt",
            Self::Refused => "refused",
            Self::DiskLimit => "disk-limit",
            Self::Storage => "storage",
            Self::Busy => "busy",
            Self::InvalidIgnore => "invalid-ignore",
            Self::Io => "io",
        }
    }
}

/// How a [`BackupRequest`] ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "status",
    rename_all = "kebab-case",
    rename_all_fields = "camelCase"
)]
pub enum BackupResult {
    /// It worked. For `create`, the archive as stored; for `restore`, the
    /// archive that was read; for `delete`, zero bytes and an empty digest.
    Ok {
        /// Lowercase hex SHA-256 of the archive's bytes.
        sha256: String,
        /// The archive's size in bytes.
        bytes: u64,
    },
    /// It did not; nothing of it is left (no partial archive, no
    /// half-restored files).
    Failed {
        /// What went wrong.
        code: BackupErrorCode,
        /// A sentence saying why.
        reason: String,
    },
}

/// The Agent's answer to a [`BackupRequest`]
/// ([`crate::AgentMessage::BackupDone`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackupReport {
    /// The backup.
    pub backup_id: String,
    /// Its server.
    pub server_id: String,
    /// The operation's wire name ([`BackupOp::name`]).
    pub op: String,
    /// How it ended.
    pub result: BackupResult,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_create_request_reads_back_as_sent_and_never_shows_its_secret() {
        let request = BackupRequest {
            backup_id: "bkp_1".into(),
            server_id: "srv_1".into(),
            scope: FileScope::default(),
            op: BackupOp::Create {
                ignore: vec!["*.log".into(), "!keep.log".into()],
                target: BackupTarget::S3(S3Target {
                    endpoint: "http://127.0.0.1:9000".into(),
                    region: "us-east-1".into(),
                    bucket: "b".into(),
                    prefix: "p".into(),
                    access_key_id: "AK".into(),
                    secret_access_key: "SECRET".into(),
                    path_style: true,
                }),
                save: None,
            },
        };
        let json = serde_json::to_string(&request).unwrap();
        assert!(json.contains(r#""op":"create""#), "{json}");
        assert!(json.contains(r#""kind":"s3""#), "{json}");
        assert_eq!(
            serde_json::from_str::<BackupRequest>(&json).unwrap(),
            request
        );
        assert!(!format!("{request:?}").contains("SECRET"));
    }

    #[test]
    fn a_report_reads_back_as_sent() {
        let report = BackupReport {
            backup_id: "bkp_1".into(),
            server_id: "srv_1".into(),
            op: "create".into(),
            result: BackupResult::Failed {
                code: BackupErrorCode::Storage,
                reason: "unreachable".into(),
            },
        };
        let json = serde_json::to_string(&report).unwrap();
        assert!(json.contains(r#""status":"failed""#), "{json}");
        assert!(json.contains(r#""code":"storage""#), "{json}");
        assert_eq!(serde_json::from_str::<BackupReport>(&json).unwrap(), report);
    }

    #[test]
    fn only_plain_ids_name_files() {
        for good in ["bkp_1", "srv-2", "A9"] {
            assert!(is_safe_id(good), "{good}");
        }
        for bad in ["", "..", "a/b", "-x", ".hidden", "a b", &"x".repeat(65)] {
            assert!(!is_safe_id(bad), "{bad}");
        }
    }
}
