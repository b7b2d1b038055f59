//! The Agent's SFTP server: SSH (russh) with the `sftp` subsystem
//! (russh-sftp) and nothing else, on `--sftp-listen` (`0.0.0.0:2022` by
//! default).
//!
//! A client signs in as `<panel username>.<server>`
//! ([`cap_protocol::sftp::SftpUsername`]: the last 8 hex digits of the
//! server id, or the whole id) with a password or a public
//! key, and lands in that server's directory, `/` being the directory
//! itself.
//!
//! # Decisions
//!
//! - **The Panel decides every sign-in** ([`PanelAuth`]): the Agent sends
//!   the username and the password or the verified public key over its
//!   link and takes the Panel's answer, which names the server, the user,
//!   the [`FileScope`](cap_protocol::files::FileScope) and the file
//!   permissions of the session. With no link, nobody signs in. Refusals
//!   take the same time and say nothing to the client (russh's constant
//!   rejection time); the Agent logs the Panel's reason.
//! - **Every operation goes through [`ServerFiles`]**, the file manager's
//!   confined layer (cap-std, `openat2(RESOLVE_BENEATH)`): `..` and
//!   symbolic links cannot lead outside, the denylist hides and refuses
//!   what it covers, the disk limit and a read-only scope hold. Writes go
//!   into the target in place, at the offsets the client sends
//!   ([`crate::files::SftpWrite`]). Creating symbolic links is refused.
//!   What each request needs is in [`handler`]'s table.
//! - **The session's permissions are the sign-in's.** A permission taken
//!   away later applies to the next sign-in; a disabled user's sessions
//!   end when the Agent restarts or the client disconnects (the Panel
//!   does not reach into open SSH sessions). One exception: a suspension.
//!   The Panel keeps the Agent's set of read-only servers current
//!   ([`crate::files::ReadOnlyServers`]), and every session asks it before
//!   each write (opening for writing, writing to a handle already open,
//!   renaming, removing, making folders, changing modes), so a session
//!   opened before its server was suspended writes no more from then on;
//!   it still reads. A session that signed in while the server was
//!   suspended stays read-only until it signs in again.
//! - **Only SFTP.** Shells, commands (so legacy `scp -O`; OpenSSH's `scp`
//!   speaks SFTP since 9.0), port forwarding and agent forwarding are
//!   refused.
//! - **One host key, kept.** An Ed25519 key is generated on the first
//!   start and kept in `<data>/sftp_host_ed25519_key` (mode 0600), so
//!   clients see the same host key across restarts.
//! - **Replies in batches** ([`coalesce`]): acknowledgements wait while
//!   more requests are already queued, and go together when none is, as
//!   `sftp-server`'s output queue does; an upload's 32 KiB writes are not
//!   answered one SSH packet each.
//! - **Changes are reported.** Writes (when the file is closed), new
//!   folders, renames and deletes go to the Panel as
//!   [`AgentMessage::FileChanged`] (`via: sftp`), which fires its hooks.

mod auth;
mod coalesce;
mod handler;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cap_protocol::AgentMessage;
use cap_protocol::files::FileScope;
use cap_protocol::sftp::{SftpCredential, SftpDecision, SftpPermissions};
use russh::keys::PrivateKey;
use russh::server::{Auth, Msg, Session};
use russh::{Channel, ChannelId, MethodKind, MethodSet};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

pub use auth::{AUTH_TIMEOUT, MAX_PENDING, PanelAuth};
pub use handler::{MAX_HANDLES, MAX_READ};

use crate::files::ServerFiles;

/// The host key's file name in the data directory.
pub const HOST_KEY_FILE: &str = "sftp_host_ed25519_key";

/// Most connections served at once.
pub const MAX_CONNECTIONS: usize = 512;

/// Why the SFTP server could not start.
#[derive(Debug, thiserror::Error)]
pub enum SftpError {
    /// The host key could not be read, made or kept.
    #[error("SFTP host key {path}: {reason}")]
    HostKey {
        /// The key's file.
        path: String,
        /// What went wrong.
        reason: String,
    },
}

/// The host key at `<data_dir>/`[`HOST_KEY_FILE`], generated (Ed25519)
/// and written with mode 0600 the first time.
///
/// # Errors
///
/// [`SftpError::HostKey`] for an unreadable or malformed key, or one that
/// cannot be written.
pub fn host_key(data_dir: &Path) -> Result<PrivateKey, SftpError> {
    let path = data_dir.join(HOST_KEY_FILE);
    let error = |reason: String| SftpError::HostKey {
        path: path.display().to_string(),
        reason,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => PrivateKey::from_openssh(text.as_bytes()).map_err(|e| error(e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let seed: [u8; 32] = rand::random();
            let pair = russh::keys::ssh_key::private::Ed25519Keypair::from_seed(&seed);
            let key = PrivateKey::from(pair);
            let text = key
                .to_openssh(russh::keys::ssh_key::LineEnding::LF)
                .map_err(|e| error(e.to_string()))?;
            crate::install::write_atomically(&path, text.as_bytes(), Some(0o600))
                .map_err(|e| error(e.to_string()))?;
            tracing::info!(path = %path.display(), "generated the SFTP host key");
            Ok(key)
        }
        Err(e) => Err(error(e.to_string())),
    }
}

/// What every connection shares.
#[derive(Debug)]
struct Shared {
    auth: Arc<PanelAuth>,
    servers_dir: PathBuf,
    changes: mpsc::Sender<AgentMessage>,
    connections: Arc<tokio::sync::Semaphore>,
    usage: Arc<crate::files::DiskUsage>,
}

/// Serves SFTP on `listener` until the task is aborted: sign-ins asked of
/// the Panel through `auth`, servers' directories under
/// `<data_dir>/servers`, changes reported through `changes` (the link's
/// event queue); disk limits are checked against `usage` (the node's
/// figures, which the session's writes keep current).
pub async fn serve(
    listener: TcpListener,
    host_key: PrivateKey,
    data_dir: &Path,
    auth: Arc<PanelAuth>,
    changes: mpsc::Sender<AgentMessage>,
    usage: Arc<crate::files::DiskUsage>,
) {
    let mut methods = MethodSet::empty();
    methods.push(MethodKind::PublicKey);
    methods.push(MethodKind::Password);
    let config = Arc::new(russh::server::Config {
        server_id: russh::SshId::Standard(
            format!("SSH-2.0-cap-agent_{}", env!("CARGO_PKG_VERSION")).into(),
        ),
        methods,
        auth_rejection_time: Duration::from_secs(1),
        auth_rejection_time_initial: Some(Duration::from_millis(0)),
        keys: vec![host_key],
        max_auth_attempts: 6,
        inactivity_timeout: Some(Duration::from_secs(30 * 60)),
        keepalive_interval: Some(Duration::from_secs(60)),
        nodelay: true,
        ..Default::default()
    });
    let shared = Arc::new(Shared {
        auth,
        servers_dir: data_dir.join("servers"),
        changes,
        connections: Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS)),
        usage,
    });
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "SFTP: accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = shared.connections.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "SFTP: too many connections; refusing one");
            continue;
        };
        let handler = Connection {
            shared: shared.clone(),
            peer,
            allowed: None,
            channels: Vec::new(),
        };
        let config = config.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match russh::server::run_stream(config, socket, handler).await {
                Ok(session) => {
                    if let Err(error) = session.await {
                        tracing::debug!(%peer, %error, "SFTP connection ended");
                    }
                }
                Err(error) => tracing::debug!(%peer, %error, "SFTP connection failed"),
            }
        });
    }
}

/// A signed-in session's grant.
#[derive(Debug, Clone)]
struct Allowed {
    server_id: String,
    user_id: String,
    scope: FileScope,
    permissions: SftpPermissions,
}

/// One SSH connection.
struct Connection {
    shared: Arc<Shared>,
    peer: SocketAddr,
    allowed: Option<Allowed>,
    /// Session channels opened and not yet turned into SFTP.
    channels: Vec<Channel<Msg>>,
}

impl Connection {
    async fn decide(&mut self, user: &str, credential: SftpCredential) -> Auth {
        let method = credential.method();
        let decision = self
            .shared
            .auth
            .ask(user, credential, Some(self.peer.ip().to_string()))
            .await;
        match decision {
            SftpDecision::Allow {
                server_id,
                user_id,
                scope,
                permissions,
            } => {
                tracing::info!(peer = %self.peer, username = user, server = %server_id, method, "SFTP sign-in");
                self.allowed = Some(Allowed {
                    server_id,
                    user_id,
                    scope,
                    permissions,
                });
                Auth::Accept
            }
            SftpDecision::Deny { reason } => {
                tracing::info!(peer = %self.peer, username = user, method, %reason, "SFTP sign-in refused");
                Auth::reject()
            }
        }
    }

    /// Server `server_id`'s files with `scope`.
    fn open_files(&self, allowed: &Allowed) -> Result<ServerFiles, String> {
        let id = &allowed.server_id;
        let plain = !id.is_empty()
            && !id.starts_with('.')
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !plain {
            return Err(format!("`{id}` is not a server id"));
        }
        let mut scope = allowed.scope.clone();
        scope.read_only |= self.shared.auth.read_only().contains(id);
        ServerFiles::open(&self.shared.servers_dir.join(id), scope)
            .map(|files| files.with_usage(self.shared.usage.clone()))
            .map_err(|e| e.message)
    }
}

impl russh::server::Handler for Connection {
    type Error = russh::Error;

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        Ok(self
            .decide(
                user,
                SftpCredential::Password {
                    password: password.to_owned(),
                },
            )
            .await)
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: russh::server::VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        let Ok(public_key) = key.public_key.to_openssh() else {
            return Ok(Auth::reject());
        };
        Ok(self
            .decide(user, SftpCredential::PublicKey { public_key })
            .await)
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: russh::server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.allowed.is_none() || self.channels.len() >= 8 {
            reply
                .reject(russh::ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        }
        self.channels.push(channel);
        reply.accept().await;
        Ok(())
    }

    async fn subsystem_request(
        &mut self,
        channel_id: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let position = self.channels.iter().position(|c| c.id() == channel_id);
        let (Some(allowed), Some(position), "sftp") = (self.allowed.clone(), position, name) else {
            session.channel_failure(channel_id)?;
            return Ok(());
        };
        let files = match self.open_files(&allowed) {
            Ok(files) => files,
            Err(reason) => {
                tracing::warn!(peer = %self.peer, server = %allowed.server_id, %reason, "SFTP: the server's files cannot be opened");
                session.channel_failure(channel_id)?;
                return Ok(());
            }
        };
        let channel = self.channels.swap_remove(position);
        session.channel_success(channel_id)?;
        let sftp = handler::SftpSession::new(
            files,
            allowed.permissions,
            allowed.server_id,
            allowed.user_id,
            self.shared.changes.clone(),
            self.shared.auth.read_only().clone(),
        );
        russh_sftp::server::run(coalesce::Coalesced::new(channel.into_stream()), sftp).await;
        Ok(())
    }

    async fn channel_eof(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.close(channel)?;
        Ok(())
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)?;
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        _data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)?;
        Ok(())
    }
}
