//! Server files: the operations the Panel asks an Agent for over the link,
//! their answers, and the signed grants that let a browser (or any API
//! client) move file contents to and from the Agent directly.
//!
//! Key decisions:
//!
//! - **Metadata over the link, contents node-direct.** Listing, renaming,
//!   deleting, archiving and the like are small: the Panel checks the
//!   caller's permission and sends a [`FileRequest`] over the Agent's
//!   WebSocket, answered once by a [`FileResponse`]. File contents never
//!   pass through the Panel: it hands out a [`FileGrant`] (one operation,
//!   one path, one server, minutes long) that the Agent's HTTP listener
//!   checks before streaming.
//! - **The Agent keeps no policy.** Every request and grant carries the
//!   [`FileScope`] the Panel computed (the game type's denylist, the disk
//!   limit, read-only for suspended servers), so the Agent enforces exactly
//!   what the Panel decided without a copy of its database.
//! - **Grants are EdDSA JWTs.** The Panel signs with an Ed25519 key only it
//!   holds and tells each Agent the public half after its hello
//!   ([`crate::PanelMessage::GrantKey`]), so an Agent can check grants but
//!   never mint one, and a grant names its node (`aud`), so a grant for one
//!   node is worthless on another.

use serde::{Deserialize, Serialize};

/// Paths are relative to the server's directory, `/`-separated; a leading
/// `/` means that directory (never the node's root).
pub type ServerPath = String;

/// What the Panel allows on a server's files, sent with every request and
/// inside every grant.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileScope {
    /// Files users may not reach, in `.gitignore` syntax (the game type's
    /// `file_denylist`): refused to list entries of, read, write, rename or
    /// delete.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub denylist: Vec<String>,
    /// The server's disk limit in MiB; 0 is unlimited. A write that would
    /// take the directory over it is refused.
    #[serde(default)]
    pub disk_mb: u64,
    /// Only reads are allowed (a suspended server).
    #[serde(default)]
    pub read_only: bool,
}

/// One operation on a server's files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "op",
    rename_all = "kebab-case",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
pub enum FileOp {
    /// The entries of a directory.
    List {
        /// The directory.
        path: ServerPath,
    },
    /// One entry.
    Stat {
        /// The entry.
        path: ServerPath,
    },
    /// Create a directory (and missing parents).
    CreateFolder {
        /// The new directory.
        path: ServerPath,
    },
    /// Rename or move an entry; refused if `to` exists.
    Rename {
        /// The entry.
        from: ServerPath,
        /// Its new path.
        to: ServerPath,
    },
    /// Copy a file or a directory tree; refused if `to` exists.
    Copy {
        /// The entry.
        from: ServerPath,
        /// The copy's path.
        to: ServerPath,
    },
    /// Delete entries (directories with their contents).
    Delete {
        /// The entries; all are checked before any is deleted.
        paths: Vec<ServerPath>,
    },
    /// Change an entry's permission bits.
    Chmod {
        /// The entry.
        path: ServerPath,
        /// The new mode, permission bits only (`0o644`); set-id and sticky
        /// bits are refused.
        mode: u32,
    },
    /// Download a URL into a directory.
    Pull {
        /// The URL (http or https).
        url: String,
        /// The directory to put it in.
        directory: ServerPath,
        /// The file's name; `None` takes the URL's last path segment.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        file_name: Option<String>,
        /// Hosts the admin allows even though they resolve to loopback or
        /// private addresses (the plugin HTTP grant syntax).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        allowed_hosts: Vec<String>,
    },
    /// Put entries of one directory into a new archive in that directory.
    Compress {
        /// The directory the entries are in.
        root: ServerPath,
        /// The entries' names, relative to `root`.
        paths: Vec<ServerPath>,
        /// The archive's format.
        format: ArchiveFormat,
        /// The archive's name in `root`; `None` makes one up
        /// (`archive-<date>.tar.gz`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    /// Extract an archive into a directory.
    Decompress {
        /// The archive.
        path: ServerPath,
        /// The directory to extract into (created if missing).
        destination: ServerPath,
    },
}

impl FileOp {
    /// The operation's wire name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::List { .. } => "list",
            Self::Stat { .. } => "stat",
            Self::CreateFolder { .. } => "create-folder",
            Self::Rename { .. } => "rename",
            Self::Copy { .. } => "copy",
            Self::Delete { .. } => "delete",
            Self::Chmod { .. } => "chmod",
            Self::Pull { .. } => "pull",
            Self::Compress { .. } => "compress",
            Self::Decompress { .. } => "decompress",
        }
    }

    /// Whether it changes the server's files.
    pub fn writes(&self) -> bool {
        !matches!(self, Self::List { .. } | Self::Stat { .. })
    }
}

/// Archive formats the file manager writes.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ArchiveFormat {
    /// `.tar.gz`
    TarGz,
    /// `.zip`
    Zip,
}

impl ArchiveFormat {
    /// The file name extension, without its leading dot.
    pub fn extension(self) -> &'static str {
        match self {
            Self::TarGz => "tar.gz",
            Self::Zip => "zip",
        }
    }
}

/// What kind of entry a path is.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileKind {
    /// A regular file.
    File,
    /// A directory.
    Directory,
    /// A symbolic link (not followed when listing).
    Symlink,
    /// Anything else (fifo, socket, device): listed, never opened.
    Other,
}

/// One entry of a server's files.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileEntry {
    /// Its name.
    pub name: String,
    /// Its path from the server's directory, starting with `/`.
    pub path: ServerPath,
    /// What it is.
    pub kind: FileKind,
    /// Size in bytes (0 for directories).
    pub size: u64,
    /// Permission bits (`0o644`).
    pub mode: u32,
    /// Last modification, ms since the Unix epoch.
    pub modified_ms: u64,
    /// The media type, guessed from the name and the first bytes (files
    /// only): `text/plain`, `application/zip`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime: Option<String>,
}

/// A file request the Panel sends over the link
/// ([`crate::PanelMessage::FileRequest`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileRequest {
    /// Unique per request; echoed in the [`FileResponse`].
    pub request_id: String,
    /// The server.
    pub server_id: String,
    /// What the Panel allows.
    pub scope: FileScope,
    /// What to do.
    pub op: FileOp,
}

/// What a successful [`FileOp`] answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "kebab-case",
    rename_all_fields = "camelCase"
)]
pub enum FileAnswer {
    /// `list`: the directory's entries, directories first, then by name.
    Entries {
        /// The entries.
        entries: Vec<FileEntry>,
    },
    /// `stat`, `create-folder`, `rename`, `copy`, `chmod`, `pull`,
    /// `compress`: the entry as it is now.
    Entry {
        /// The entry.
        entry: FileEntry,
    },
    /// `delete`: how many entries were removed.
    Deleted {
        /// Entries named in the request that were removed.
        count: u32,
    },
    /// `decompress`: what was extracted.
    Extracted {
        /// Files and directories written.
        entries: u64,
        /// Bytes written.
        bytes: u64,
    },
}

/// Why a file operation was refused or failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileErrorCode {
    /// The path is malformed (empty segment, NUL, too long).
    InvalidPath,
    /// The path would leave the server's directory (`..`, an absolute
    /// symlink, a symlink pointing outside).
    OutsideServer,
    /// The game type's denylist covers the path.
    Denied,
    /// Nothing is at the path.
    NotFound,
    /// Something is already at the target path.
    AlreadyExists,
    /// A directory was expected.
    NotADirectory,
    /// A file was expected.
    IsADirectory,
    /// Not a regular file or directory (device, fifo, socket).
    SpecialFile,
    /// The write would take the server over its disk limit.
    DiskLimit,
    /// The server's files are read-only (suspended).
    ReadOnly,
    /// The archive cannot be read (unknown format, corrupt).
    BadArchive,
    /// The archive was refused: too large, too many entries, too high a
    /// compression ratio, or an entry that leaves the destination or is a
    /// device.
    ArchiveRefused,
    /// The URL cannot be pulled (scheme, non-public address, disabled).
    PullRefused,
    /// The URL could not be fetched.
    PullFailed,
    /// A mode with bits other than permission bits.
    InvalidMode,
    /// The Agent does not know the server.
    UnknownServer,
    /// An upload's offset does not match what was received.
    OffsetMismatch,
    /// The file system failed.
    Io,
}

impl FileErrorCode {
    /// The code's wire name (`outside-server`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidPath => "invalid-path",
            Self::OutsideServer => "outside-server",
            Self::Denied => "denied",
            Self::NotFound => "not-found",
            Self::AlreadyExists => "already-exists",
            Self::NotADirectory => "not-a-directory",
            Self::IsADirectory => "is-a-directory",
            Self::SpecialFile => "special-file",
            Self::DiskLimit => "disk-limit",
            Self::ReadOnly => "read-only",
            Self::BadArchive => "bad-archive",
            Self::ArchiveRefused => "archive-refused",
            Self::PullRefused => "pull-refused",
            Self::PullFailed => "pull-failed",
            Self::InvalidMode => "invalid-mode",
            Self::UnknownServer => "unknown-server",
            Self::OffsetMismatch => "offset-mismatch",
            Self::Io => "io",
        }
    }
}

/// A refused or failed file operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[error("{message}")]
pub struct FileError {
    /// What went wrong.
    pub code: FileErrorCode,
    /// A sentence naming the path and the problem.
    pub message: String,
    /// The path it is about, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<ServerPath>,
}

impl FileError {
    /// An error about `path`.
    pub fn at(code: FileErrorCode, path: &str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            path: Some(path.to_owned()),
        }
    }

    /// An error about no path in particular.
    pub fn new(code: FileErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            path: None,
        }
    }
}

/// The Agent's answer to a [`FileRequest`]
/// ([`crate::AgentMessage::FileResponse`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileResponse {
    /// The request's id.
    pub request_id: String,
    /// What happened.
    pub result: FileResult,
}

/// A [`FileResponse`]'s outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileResult {
    /// It worked.
    Ok(FileAnswer),
    /// It did not.
    Err(FileError),
}

impl From<Result<FileAnswer, FileError>> for FileResult {
    fn from(result: Result<FileAnswer, FileError>) -> Self {
        match result {
            Ok(answer) => Self::Ok(answer),
            Err(error) => Self::Err(error),
        }
    }
}

impl From<FileResult> for Result<FileAnswer, FileError> {
    fn from(result: FileResult) -> Self {
        match result {
            FileResult::Ok(answer) => Ok(answer),
            FileResult::Err(error) => Err(error),
        }
    }
}

/// What a [`FileGrant`] lets its bearer do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GrantOp {
    /// Read one file, with range requests.
    Download,
    /// Write one file, in chunks at increasing offsets; resumable.
    Upload,
    /// Read one backup kept on the node's disk, with range requests: the
    /// grant's `path` is the backup's id, its `sub` the server.
    BackupDownload,
    /// Take a server transferred from another node: the grant's `sub` is
    /// the server, its `path` the transfer, its `scope` the server's disk
    /// limit (see [`crate::transfers`]).
    TransferReceive,
}

/// The claims of a signed grant: one operation on one path of one server
/// on one node, until `exp`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileGrant {
    /// Always [`GRANT_ISSUER`].
    pub iss: String,
    /// The node id: an Agent refuses grants for other nodes.
    pub aud: String,
    /// The server id.
    pub sub: String,
    /// Unique per grant (an upload's staging file is named after it).
    pub jti: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// The user it was issued to (for the Agent's records and events).
    pub user: String,
    /// The operation.
    pub op: GrantOp,
    /// The file.
    pub path: ServerPath,
    /// What the Panel allows.
    pub scope: FileScope,
    /// For uploads: the file's total size, when the client declared it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

/// The `iss` of every [`FileGrant`].
pub const GRANT_ISSUER: &str = "cap-panel";

/// A file the Agent changed outside a [`FileRequest`] (an upload or an
/// SFTP session), reported so that the Panel can record it and fire its
/// hooks ([`crate::AgentMessage::FileChanged`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileChange {
    /// The server.
    pub server_id: String,
    /// The user who changed it.
    pub user_id: String,
    /// How: `upload` or `sftp`.
    pub via: String,
    /// What: `write`, `create-folder`, `rename`, `delete`, `chmod`.
    pub action: String,
    /// The path (for renames, the new one).
    pub path: ServerPath,
    /// Bytes written, for writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
}
