//! Asking a server's Agent for backups: the path `POST
//! /servers/{id}/backups` runs ([`crate::http::backups_routes`]), without
//! the HTTP request, so that a plugin's `panel.create-backup` (API 0.2.0)
//! runs it too ([`AgentBackups`], the Panel's
//! [`BackupStarter`](crate::servers::BackupStarter)).
//!
//! [`start`] checks the name and ignore lines, the server's limit, that
//! no backup or restore of it runs and that its node is connected; makes
//! room by rotating out the oldest unlocked complete backups; asks the
//! `backup.create` before-hooks (and `backup.delete` for each rotated
//! one) before anything changes; records the backup `pending` and sends
//! the request over the node's link. What the rows mean and why is in
//! [`crate::backups`]. The after-hooks' events are handed back, not fired:
//! the route fires them, a plugin's request does not (as for a plugin's
//! commands, see [`crate::servers::commands`]).

use std::sync::Arc;

use cap_protocol::PanelMessage;
use cap_protocol::backups::{BackupOp, BackupRequest, BackupTarget, SaveCommands};
use cap_protocol::files::FileScope;
use cap_runtime::api::{BackupInfo, EventKind, Payload};
use cap_runtime::capabilities::{BoxFuture, ServiceError};
use time::OffsetDateTime;

use super::{AgentHub, RequestError};
use crate::backups::{self, Backup, BackupsError, NewBackup, storage};
use crate::db::{Actor, Database};
use crate::files::FilesError;
use crate::plugins::hooks::{self, HookDenied};
use crate::plugins::{PluginManager, WeakPluginManager};
use crate::servers::commands::{as_plugin_request, plugin_actor};
use crate::servers::server::Server;
use crate::servers::{BackupStarter, ServersError, new_id};

/// Longest backup name, in characters.
pub const MAX_NAME: usize = 191;
/// Most ignore lines.
pub const MAX_IGNORE_LINES: usize = 1000;
/// The longest ignore text, in bytes.
pub const MAX_IGNORE_BYTES: usize = 64 * 1024;

/// What a backup is asked with: the route's body, or a plugin's name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackupAsk {
    /// Its name; blank or `None` gives the date and time.
    pub name: Option<String>,
    /// Paths to leave out, as a `.pteroignore` text.
    pub ignored: String,
    /// Locked against deletion from the start.
    pub locked: bool,
}

/// Why a backup could not be started (or removed).
#[derive(Debug, thiserror::Error)]
pub enum BackupJobError {
    /// A field of the request is invalid.
    #[error("{field}: {message}")]
    Invalid {
        /// The field (`name`, `ignored`).
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// Refused by the backup rules (off, at the limit, busy), or storage
    /// or database failures.
    #[error(transparent)]
    Backups(#[from] BackupsError),
    /// The node is not connected, or the server is on none.
    #[error(transparent)]
    Files(#[from] FilesError),
    /// A before-hook refused.
    #[error(transparent)]
    HookDenied(#[from] HookDenied),
    /// Plugin requests nest too deep.
    #[error(transparent)]
    Servers(#[from] ServersError),
}

/// A backup started: the backup as recorded, and the after-hooks' events
/// for whoever fires them (its `backup.create`, and the rotated backups'
/// `backup.delete`).
#[derive(Debug)]
pub struct Started {
    /// The backup, `pending`.
    pub backup: Backup,
    /// After-hook events, in the order they happened.
    pub after: Vec<cap_runtime::api::Event>,
}

/// The node of `server`, connected.
///
/// # Errors
///
/// [`FilesError::NoNode`], or [`FilesError::Unanswered`] when the node is
/// offline.
pub fn connected_node(hub: &AgentHub, server: &Server) -> Result<String, FilesError> {
    let node = server
        .node_id
        .clone()
        .ok_or_else(|| FilesError::NoNode(server.id.clone()))?;
    if !hub.is_connected(&node) {
        return Err(FilesError::Unanswered(RequestError::NotConnected(node)));
    }
    Ok(node)
}

/// Where backups go now: the storage settings' bucket, or the nodes.
///
/// # Errors
///
/// Database errors.
pub async fn current_target(db: &Database) -> Result<BackupTarget, BackupsError> {
    Ok(match storage::load(db).await? {
        Some((s3, _)) => BackupTarget::S3(s3),
        None => BackupTarget::Local,
    })
}

/// The target `backup` was made for.
///
/// # Errors
///
/// [`BackupsError::Storage`] for an S3 backup when the Panel has no
/// storage settings any more; database errors.
pub async fn target_of(db: &Database, backup: &Backup) -> Result<BackupTarget, BackupsError> {
    if backup.target == "s3" {
        match storage::load(db).await? {
            Some((s3, _)) => Ok(BackupTarget::S3(s3)),
            None => Err(BackupsError::Storage(
                "the backup is in S3-compatible storage, but the Panel has no storage settings any more".into(),
            )),
        }
    } else {
        Ok(BackupTarget::Local)
    }
}

/// Sends `request` to `node`'s Agent.
///
/// # Errors
///
/// [`FilesError::Unanswered`] when the node is not connected or busy.
pub fn send(hub: &AgentHub, node: &str, request: BackupRequest) -> Result<(), FilesError> {
    hub.send(node, PanelMessage::Backup(request))
        .map_err(FilesError::Unanswered)
}

/// Asks the `backup.delete` before-hooks about deleting `backup`; the
/// event to tell the after-hooks once it is gone.
///
/// # Errors
///
/// [`HookDenied`].
pub async fn before_delete(
    plugins: Option<&PluginManager>,
    backup: &Backup,
    actor: &Actor,
) -> Result<cap_runtime::api::Event, HookDenied> {
    hooks::run_before(
        plugins,
        hooks::event(
            EventKind::BackupDelete,
            backups::hook_payload(backup),
            actor,
        ),
    )
    .await
}

/// Removes `backup`'s archive and row: an S3 archive by the Panel, a
/// local one by its node's Agent (which must be connected, unless the
/// backup failed and has no archive).
///
/// # Errors
///
/// [`BackupJobError::Files`] when the node holding the archive is offline,
/// storage and database errors.
pub async fn remove(
    db: &Database,
    hub: &AgentHub,
    server: &Server,
    backup: &Backup,
    rotated: bool,
    actor: &Actor,
) -> Result<(), BackupJobError> {
    match target_of(db, backup).await {
        Ok(BackupTarget::S3(s3)) => {
            if backup.state != backups::state::FAILED {
                storage::delete_object(&s3, &server.id, &backup.id).await?;
            }
        }
        Ok(BackupTarget::Local) => {
            if hub.is_connected(&backup.node_id) {
                send(
                    hub,
                    &backup.node_id,
                    BackupRequest {
                        backup_id: backup.id.clone(),
                        server_id: server.id.clone(),
                        scope: FileScope::default(),
                        op: BackupOp::Delete {
                            target: BackupTarget::Local,
                        },
                    },
                )?;
            } else if backup.state != backups::state::FAILED {
                return Err(FilesError::Unanswered(RequestError::NotConnected(
                    backup.node_id.clone(),
                ))
                .into());
            }
            // (A failed backup of an offline node left no archive behind.)
        }
        // Storage settings gone: nothing can reach the archive; the row goes.
        Err(_) => {}
    }
    backups::delete(db, &server.id, &backup.id, rotated, actor)
        .await
        .map_err(BackupsError::from)?;
    Ok(())
}

/// The console commands the server's game type asks for around a backup
/// while the server runs (API 0.2.0 `plan-backup`); none while it is
/// stopped, from a 0.1.0 game type, or when the plugin cannot answer (the
/// backup is then made without, and the failure logged).
async fn save_commands(
    db: &Database,
    plugins: Option<&PluginManager>,
    server: &Server,
) -> Option<SaveCommands> {
    if !matches!(server.state.as_str(), "running" | "starting") {
        return None;
    }
    let plugin = plugins?.active(&server.game_plugin)?;
    let context = match super::plans::server_context(db, server, None).await {
        Ok(context) => context,
        Err(error) => {
            tracing::warn!(server = %server.id, %error, "no backup commands: the server's context could not be read");
            return None;
        }
    };
    match plugin.backup_plan(&context).await {
        Ok(commands) => commands.map(|c| SaveCommands {
            before: c.before,
            after: c.after,
            settle_ms: u64::from(c.settle_ms),
        }),
        Err(error) => {
            tracing::warn!(server = %server.id, plugin = %server.game_plugin, %error, "no backup commands: the game type did not answer");
            None
        }
    }
}

/// The name a backup gets when none is given: the date and time, UTC.
fn default_name() -> String {
    let now = OffsetDateTime::now_utc();
    format!(
        "Backup {:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}

/// Starts a backup of `server` as `actor` asks (see the module docs).
///
/// # Errors
///
/// [`BackupJobError::Invalid`] naming `name` or `ignored`; the backup
/// rules' refusals (`backups-disabled`, `backup-limit-reached`,
/// `backup-busy`); an offline node; a before-hook's refusal; storage and
/// database errors.
pub async fn start(
    db: &Database,
    hub: &AgentHub,
    plugins: Option<&PluginManager>,
    server: &Server,
    ask: &BackupAsk,
    actor: &Actor,
) -> Result<Started, BackupJobError> {
    let name = match ask.name.as_deref().map(str::trim) {
        None | Some("") => default_name(),
        Some(name) if name.chars().count() > MAX_NAME || name.chars().any(char::is_control) => {
            return Err(BackupJobError::Invalid {
                field: "name",
                message: format!(
                    "must be at most {MAX_NAME} characters without control characters"
                ),
            });
        }
        Some(name) => name.to_owned(),
    };
    let ignored = backups::split_lines(&ask.ignored);
    if ask.ignored.len() > MAX_IGNORE_BYTES || ignored.len() > MAX_IGNORE_LINES {
        return Err(BackupJobError::Invalid {
            field: "ignored",
            message: format!(
                "must be at most {MAX_IGNORE_LINES} lines and {MAX_IGNORE_BYTES} bytes"
            ),
        });
    }
    let limit = backups::limit(db, &server.id)
        .await
        .map_err(BackupsError::from)?;
    if limit == 0 {
        return Err(BackupsError::Disabled(server.id.clone()).into());
    }
    let node = connected_node(hub, server)?;
    // Rotation: make room by deleting the oldest unlocked complete
    // backups; refuse when none can go.
    let existing = backups::list(db, &server.id)
        .await
        .map_err(BackupsError::from)?;
    if let Some(running) = backups::running(&existing) {
        return Err(BackupsError::Busy(running).into());
    }
    let counted = existing.iter().filter(|b| b.counts()).count();
    let excess = (counted + 1).saturating_sub(limit as usize);
    let mut rotated: Vec<Backup> = Vec::new();
    if excess > 0 {
        let removable: Vec<&Backup> = existing
            .iter()
            .rev()
            .filter(|b| b.state == backups::state::DONE && !b.locked && !b.restoring())
            .take(excess)
            .collect();
        if removable.len() < excess {
            return Err(BackupsError::LimitReached { limit }.into());
        }
        rotated = removable.into_iter().cloned().collect();
    }
    let target = current_target(db).await?;
    // Every before-hook answers before anything changes: the new backup's,
    // then each rotated-out backup's delete.
    let backup_id = new_id("bkp");
    let created = hooks::run_before(
        plugins,
        hooks::event(
            EventKind::BackupCreate,
            Payload::Backup(BackupInfo {
                server_id: server.id.clone(),
                id: backup_id.clone(),
                name: name.clone(),
                state: backups::state::PENDING.to_owned(),
                size_bytes: None,
                sha256: None,
                reason: None,
                locked: ask.locked,
            }),
            actor,
        ),
    )
    .await?;
    let mut after = Vec::with_capacity(rotated.len() + 1);
    let mut deletes = Vec::with_capacity(rotated.len());
    for old in &rotated {
        deletes.push(before_delete(plugins, old, actor).await?);
    }
    for (old, event) in rotated.iter().zip(deletes) {
        remove(db, hub, server, old, true, actor).await?;
        after.push(event);
    }
    let backup = backups::insert(
        db,
        &NewBackup {
            id: backup_id,
            server_id: server.id.clone(),
            node_id: node.clone(),
            name,
            ignored: ignored.clone(),
            target: target.kind().to_owned(),
            locked: ask.locked,
        },
        actor,
    )
    .await
    .map_err(BackupsError::from)?;
    let request = BackupRequest {
        backup_id: backup.id.clone(),
        server_id: server.id.clone(),
        scope: FileScope::default(),
        op: BackupOp::Create {
            ignore: ignored,
            target,
            save: save_commands(db, plugins, server).await,
        },
    };
    if let Err(error) = send(hub, &node, request) {
        let _ = backups::fail(
            db,
            &server.id,
            &backup.id,
            "the request could not be sent to the node",
            actor,
        )
        .await;
        return Err(error.into());
    }
    after.push(created);
    Ok(Started { backup, after })
}

/// The Panel's [`BackupStarter`]: plugins' backups through [`start`], with
/// the plugin as the actor and no after-hooks.
#[derive(Clone)]
pub struct AgentBackups {
    db: Database,
    hub: AgentHub,
    plugins: Arc<std::sync::OnceLock<WeakPluginManager>>,
}

impl std::fmt::Debug for AgentBackups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentBackups").finish_non_exhaustive()
    }
}

impl AgentBackups {
    /// Backups over `db` and the Agents of `hub`.
    pub fn new(db: Database, hub: AgentHub) -> AgentBackups {
        AgentBackups {
            db,
            hub,
            plugins: Arc::default(),
        }
    }

    /// The plugins whose before-hooks see plugins' backups (only the first
    /// call has an effect).
    pub fn set_plugins(&self, plugins: &PluginManager) {
        let _ = self.plugins.set(plugins.downgrade());
    }
}

impl BackupStarter for AgentBackups {
    fn start<'a>(
        &'a self,
        plugin: &'a str,
        server: &'a Server,
        name: Option<&'a str>,
    ) -> BoxFuture<'a, Result<String, ServiceError>> {
        Box::pin(async move {
            let plugins = self.plugins.get().and_then(WeakPluginManager::upgrade);
            let ask = BackupAsk {
                name: name.map(str::to_owned),
                ..BackupAsk::default()
            };
            let actor = plugin_actor(plugin);
            let started = as_plugin_request(start(
                &self.db,
                &self.hub,
                plugins.as_ref(),
                server,
                &ask,
                &actor,
            ))
            .await
            .map_err(|error| match error {
                BackupJobError::Files(e @ FilesError::Unanswered(_)) => {
                    ServiceError::Unavailable(e.to_string())
                }
                BackupJobError::Backups(BackupsError::Db(e))
                | BackupJobError::Servers(ServersError::Db(e)) => {
                    tracing::warn!(%plugin, error = %e, "a plugin's backup could not reach the database");
                    ServiceError::Unavailable("the Panel's database is unavailable".into())
                }
                BackupJobError::Backups(e @ BackupsError::LimitReached { .. }) => {
                    ServiceError::LimitExceeded(e.to_string())
                }
                other => ServiceError::Invalid(other.to_string()),
            })?;
            Ok(started.backup.id)
        })
    }
}
