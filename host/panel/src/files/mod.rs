//! Server files: what the Panel decides before an Agent touches a server's
//! files, and how it asks.
//!
//! The bytes live on the Agent, and so does the work: the Panel checks the
//! caller's permission on the server (the routes in
//! [`crate::http::files_routes`]), computes the [`FileScope`] the Agent
//! must enforce, and then either
//!
//! - sends the operation over the Agent's link and waits for the answer
//!   ([`request`], through [`crate::agents::AgentHub::file_request`]), for
//!   everything but contents: list, stat, folders, rename, copy, delete,
//!   chmod, pull, compress, decompress; or
//! - signs a [`FileGrant`] for one upload or download of one file
//!   ([`grant`]), with which the client talks to the Agent's HTTP listener
//!   directly. File contents never pass through the Panel.
//!
//! Key decisions:
//!
//! - **Fail closed on the denylist.** The scope's denylist is the server's
//!   game type's `file_denylist`; when the game-type plugin cannot say
//!   what it is (inactive, failing), file access is refused rather than
//!   granted without it.
//! - **Pulls from URLs can be turned off twice.** By the admin
//!   (`[files] pull = false`) for the whole Panel, and by a game type for
//!   its servers: one listing the feature [`NO_FILE_PULL`] (an egg's
//!   `features` entry, for the egg bridge) never has a URL pulled into its
//!   servers' directories.
//! - **Grants are short.** [`GRANT_TTL`]: a download or an upload chunk
//!   must *start* before it; a started transfer runs to its end. Resuming a
//!   large upload later takes a new grant for the same path: the Agent
//!   keeps the received part under a name derived from server, path and
//!   user, not from the grant.
//! - **Suspended servers' files are read-only** ([`scope`]): reads and
//!   downloads go on; the write routes and upload grants are refused by
//!   the Panel at once (`files-read-only`, naming the suspension), and
//!   the Agent refuses what reaches it anyway.
//! - **One Panel process answers.** Requests reach the Agent connected to
//!   this process; a Panel scaled out behind a balancer needs the request
//!   routed to the process that holds the node's link (not built yet).

pub mod grants;
pub mod sftp;

use std::time::Duration;

use cap_protocol::files::{
    FileAnswer, FileError, FileGrant, FileOp, FileRequest, FileResult, FileScope, GRANT_ISSUER,
    GrantOp,
};
use time::OffsetDateTime;

use crate::agents::{AgentHub, RequestError};
use crate::error_code::Code;
use crate::plugins::PluginManager;
use crate::servers::server::Server;
use crate::servers::{ServersError, new_id};

pub use grants::GrantSigner;

/// How long a file grant may be used to start a transfer.
pub const GRANT_TTL: Duration = Duration::from_secs(15 * 60);
/// How long the Panel waits for a quick operation's answer.
pub const QUICK_TIMEOUT: Duration = Duration::from_secs(30);
/// How long it waits for a slow one (pull, compress, decompress, copy,
/// delete of many).
pub const SLOW_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// Why a file operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// The Agent refused or failed it.
    #[error("{0}")]
    Agent(FileError),
    /// The server is on no node.
    #[error("server {0} is on no node")]
    NoNode(String),
    /// The Agent did not answer.
    #[error(transparent)]
    Unanswered(#[from] RequestError),
    /// The Agent serves no file transfers (it announced no URL).
    #[error(
        "node {0} serves no file transfers: start its Agent with --public-url (or --files-listen)"
    )]
    NoTransfers(String),
    /// Permission, existence, the game-type plugin, the database.
    #[error(transparent)]
    Servers(#[from] ServersError),
}

impl FilesError {
    /// The stable code the HTTP layer answers with.
    pub fn code(&self) -> Code {
        use cap_protocol::files::FileErrorCode as C;
        match self {
            FilesError::Agent(error) => match error.code {
                C::InvalidPath => Code::FileInvalidPath,
                C::OutsideServer => Code::FileOutsideServer,
                C::Denied => Code::FileDenied,
                C::NotFound => Code::FileNotFound,
                C::AlreadyExists => Code::FileExists,
                C::NotADirectory => Code::FileNotADirectory,
                C::IsADirectory => Code::FileIsADirectory,
                C::SpecialFile => Code::FileSpecial,
                C::DiskLimit => Code::DiskLimit,
                C::ReadOnly => Code::FilesReadOnly,
                C::BadArchive => Code::BadArchive,
                C::ArchiveRefused => Code::ArchiveRefused,
                C::PullRefused => Code::PullRefused,
                C::PullFailed => Code::PullFailed,
                C::InvalidMode => Code::InvalidMode,
                C::UnknownServer => Code::ServerNotOnNode,
                C::OffsetMismatch | C::Io => Code::NodeFileSystem,
            },
            FilesError::NoNode(_) => Code::ServerNotOnNode,
            FilesError::Unanswered(RequestError::NotConnected(_) | RequestError::LinkLost(_)) => {
                Code::NodeOffline
            }
            FilesError::Unanswered(RequestError::Timeout { .. }) => Code::NodeTimeout,
            FilesError::Unanswered(RequestError::Busy(_)) => Code::NodeBusy,
            FilesError::NoTransfers(_) => Code::NodeNoTransfers,
            // Converted by the HTTP layer as every ServersError is.
            FilesError::Servers(_) => Code::InternalError,
        }
    }
}

/// What the Agent must enforce on `server`'s files: its game type's
/// denylist, its disk limit, and read-only while it is suspended
/// ([`crate::servers::suspension`]).
///
/// # Errors
///
/// [`ServersError::PluginUnavailable`] when the game-type plugin is
/// inactive or cannot list its game types (see the module docs: fail
/// closed).
pub async fn scope(
    plugins: Option<&PluginManager>,
    server: &Server,
) -> Result<FileScope, ServersError> {
    let game = game_info(plugins, server).await?;
    Ok(FileScope {
        denylist: game.file_denylist,
        disk_mb: server.limits.disk_mb,
        // A suspended server's files are read-only, whoever asks.
        read_only: server.suspension.is_some(),
    })
}

/// The game-type feature flag with which a game type turns pulling files
/// from URLs off for its servers (`game-info.features`, as eggs list
/// theirs): the pull route refuses with `pull-refused`.
pub const NO_FILE_PULL: &str = "no-file-pull";

/// Whether `server`'s game type allows pulling files from URLs (it does
/// unless it lists [`NO_FILE_PULL`]).
///
/// # Errors
///
/// As [`scope`]: fails closed when the game type cannot say.
pub async fn pull_allowed(
    plugins: Option<&PluginManager>,
    server: &Server,
) -> Result<bool, ServersError> {
    let game = game_info(plugins, server).await?;
    Ok(!game.features.iter().any(|f| f == NO_FILE_PULL))
}

/// `server`'s game type, as its active plugin describes it now.
async fn game_info(
    plugins: Option<&PluginManager>,
    server: &Server,
) -> Result<cap_runtime::api::GameInfo, ServersError> {
    let unavailable = |reason: String| ServersError::PluginUnavailable {
        plugin: server.game_plugin.clone(),
        reason,
    };
    let plugin = plugins
        .and_then(|p| p.active(&server.game_plugin))
        .ok_or_else(|| unavailable("it is not active".to_owned()))?;
    let games = plugin
        .game_types()
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    let game = match &server.game_type {
        Some(id) => games.into_iter().find(|g| &g.id == id),
        None if games.len() == 1 => games.into_iter().next(),
        None => None,
    }
    .ok_or_else(|| unavailable("it no longer offers the server's game type".to_owned()))?;
    Ok(game)
}

/// The refusal of a write to a suspended server's files:
/// `files-read-only`, naming the reason; `None` when `server` is not
/// suspended.
pub fn read_only_refusal(server: &Server) -> Option<FilesError> {
    server.suspension.as_ref().map(|suspension| {
        FilesError::Agent(FileError::new(
            cap_protocol::files::FileErrorCode::ReadOnly,
            format!(
                "server {} is suspended ({}): its files are read-only",
                server.id, suspension.reason
            ),
        ))
    })
}

/// Runs `op` on `server`'s files through its Agent.
///
/// # Errors
///
/// [`FilesError`].
pub async fn request(
    hub: &AgentHub,
    server: &Server,
    scope: FileScope,
    op: FileOp,
) -> Result<FileAnswer, FilesError> {
    let node = server
        .node_id
        .as_deref()
        .ok_or_else(|| FilesError::NoNode(server.id.clone()))?;
    let timeout = match op {
        FileOp::Pull { .. }
        | FileOp::Compress { .. }
        | FileOp::Decompress { .. }
        | FileOp::Copy { .. }
        | FileOp::Delete { .. } => SLOW_TIMEOUT,
        _ => QUICK_TIMEOUT,
    };
    let request = FileRequest {
        request_id: new_id("frq"),
        server_id: server.id.clone(),
        scope,
        op,
    };
    match hub.file_request(node, request, timeout).await? {
        FileResult::Ok(answer) => Ok(answer),
        FileResult::Err(error) => Err(FilesError::Agent(error)),
    }
}

/// A signed URL for one transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedUrl {
    /// The URL, token included.
    pub url: String,
    /// When it can no longer start a transfer.
    pub expires_at: OffsetDateTime,
}

/// One transfer a grant allows.
#[derive(Debug, Clone, Copy)]
pub struct Transfer<'a> {
    /// Upload or download.
    pub op: GrantOp,
    /// The file.
    pub path: &'a str,
    /// For uploads, the declared size.
    pub size: Option<u64>,
}

/// Signs a grant for `transfer` on `server` for `user_id`, as a URL on its
/// Agent.
///
/// # Errors
///
/// [`FilesError::NoNode`], [`FilesError::Unanswered`] when the node is not
/// connected, [`FilesError::NoTransfers`] when its Agent announced no URL.
pub fn grant(
    hub: &AgentHub,
    signer: &GrantSigner,
    server: &Server,
    scope: FileScope,
    user_id: &str,
    transfer: Transfer<'_>,
) -> Result<SignedUrl, FilesError> {
    let Transfer { op, path, size } = transfer;
    let node = server
        .node_id
        .as_deref()
        .ok_or_else(|| FilesError::NoNode(server.id.clone()))?;
    let status = hub
        .status(node)
        .ok_or_else(|| RequestError::NotConnected(node.to_owned()))?;
    let base = status
        .files_url
        .ok_or_else(|| FilesError::NoTransfers(node.to_owned()))?;
    let expires_at = OffsetDateTime::now_utc() + GRANT_TTL;
    let claims = FileGrant {
        iss: GRANT_ISSUER.to_owned(),
        aud: node.to_owned(),
        sub: server.id.clone(),
        jti: new_id("grt"),
        exp: u64::try_from(expires_at.unix_timestamp()).unwrap_or(0),
        user: user_id.to_owned(),
        op,
        path: path.to_owned(),
        scope,
        size,
    };
    let token = signer.sign(&claims);
    let endpoint = match op {
        GrantOp::Download => "files/download",
        GrantOp::Upload => "files/upload",
        GrantOp::BackupDownload => "backups/download",
        GrantOp::TransferReceive => "transfers/receive",
    };
    Ok(SignedUrl {
        url: format!(
            "{}/api/{endpoint}?token={token}",
            base.trim_end_matches('/')
        ),
        expires_at,
    })
}
