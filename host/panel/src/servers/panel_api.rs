//! [`DbPanelApi`]: the plugins' `panel` capability over the Panel's
//! database.
//!
//! The runtime checks the plugin's granted panel scopes before every call
//! (`servers.read` for listing and reading servers, `console.send` for
//! console commands, `power` for power actions, `backups.create` for
//! backups), so what arrives here is already allowed; this type answers
//! from the database. A console command or power action goes through the
//! same checks and before-hooks as one sent by a user, at the one place
//! every command is queued ([`commands::enqueue_for_plugin`], which also
//! says why its after-hooks do not fire), and is recorded with the plugin
//! as its actor (`plugin:<id>`).
//!
//! A backup needs the Agent link, which this layer does not know: the
//! embedder hands in a [`BackupStarter`] ([`DbPanelApi::set_backups`]; the
//! Panel's is `crate::agents::backups::AgentBackups`, which runs the very
//! path `POST /servers/{id}/backups` runs). Without one, `create-backup`
//! answers `unavailable`.
//!
//! Suspensions (`servers.suspend`) go through
//! [`suspension::suspend_for_plugin`] and
//! [`suspension::unsuspend_for_plugin`]: the same checks and before-hooks
//! as an administrator's, the plugin as the actor, no after-hooks. The
//! Panel's refusals reach the plugin as `invalid` with their sentence (a
//! before-hook's reason, "is suspended: …", "is not suspended").

use std::sync::Arc;

use cap_runtime::api::{PowerSignal, ServerSummary};
use cap_runtime::capabilities::panel::PanelApi;
use cap_runtime::capabilities::{BoxFuture, ServiceError};

use super::commands::CommandAction;
use super::server::{self, STATE_DELETING, Server, Visibility};
use super::{ServersError, commands, suspension};
use crate::db::{Database, DbError};
use crate::plugins::{PluginManager, WeakPluginManager};

/// Starts backups for plugins (`panel.create-backup`): the embedder's
/// implementation of the backup routes' create path.
pub trait BackupStarter: Send + Sync {
    /// Starts a backup of `server` for plugin `plugin`, named `name` (a
    /// default when `None`), returning the backup's id.
    fn start<'a>(
        &'a self,
        plugin: &'a str,
        server: &'a Server,
        name: Option<&'a str>,
    ) -> BoxFuture<'a, Result<String, ServiceError>>;
}

/// Page size when listing every server for a plugin.
const PAGE: u32 = 200;
/// The most servers one `list-servers` call returns.
pub const MAX_LISTED: usize = 10_000;

/// The `panel` capability over a database. Cheap to clone.
#[derive(Clone)]
pub struct DbPanelApi {
    db: Database,
    waker: Option<super::Waker>,
    /// The plugins whose before-hooks see plugin-sent commands; set once
    /// the manager exists ([`DbPanelApi::set_plugins`]).
    plugins: Arc<std::sync::OnceLock<WeakPluginManager>>,
    /// Starts plugins' backups ([`DbPanelApi::set_backups`]).
    backups: Arc<std::sync::OnceLock<Arc<dyn BackupStarter>>>,
}

impl std::fmt::Debug for DbPanelApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbPanelApi").finish_non_exhaustive()
    }
}

impl DbPanelApi {
    /// The Panel API over `db`.
    pub fn new(db: Database) -> Self {
        DbPanelApi {
            db,
            waker: None,
            plugins: Arc::default(),
            backups: Arc::default(),
        }
    }

    /// Starts plugins' backups with `starter` (this value and its clones;
    /// only the first call has an effect).
    pub fn set_backups(&self, starter: Arc<dyn BackupStarter>) {
        let _ = self.backups.set(starter);
    }

    /// Runs plugin-sent console commands through `plugins`' before-hooks
    /// (this value and its clones; only the first call has an effect).
    pub fn set_plugins(&self, plugins: &PluginManager) {
        let _ = self.plugins.set(plugins.downgrade());
    }

    /// Wakes the node's Agent session with `waker` after queueing a
    /// console command, so it is delivered at once.
    pub fn with_waker(mut self, waker: super::Waker) -> Self {
        self.waker = Some(waker);
        self
    }
}

fn unavailable(error: DbError) -> ServiceError {
    tracing::warn!(%error, "the panel capability could not reach the database");
    ServiceError::Unavailable("the Panel's database is unavailable".into())
}

fn summary(server: &Server) -> ServerSummary {
    ServerSummary {
        id: server.id.clone(),
        name: server.name.clone(),
        owner_id: server.owner_id.clone(),
        node_id: server.node_id.clone().unwrap_or_default(),
        game_type: server.game_plugin.clone(),
        state: server.state.clone(),
    }
}

impl DbPanelApi {
    async fn server(&self, id: &str) -> Result<Server, ServiceError> {
        server::get(&self.db, id)
            .await
            .map_err(unavailable)?
            .ok_or_else(|| ServiceError::NotFound(format!("server {id}")))
    }
}

impl PanelApi for DbPanelApi {
    fn list_servers<'a>(
        &'a self,
        _plugin: &'a str,
    ) -> BoxFuture<'a, Result<Vec<ServerSummary>, ServiceError>> {
        Box::pin(async move {
            let mut out = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let (page, more) = server::list(&self.db, Visibility::All, after.as_deref(), PAGE)
                    .await
                    .map_err(unavailable)?;
                after = page.last().map(|s| s.id.clone());
                out.extend(page.iter().map(summary));
                if !more || out.len() >= MAX_LISTED {
                    break;
                }
            }
            out.truncate(MAX_LISTED);
            Ok(out)
        })
    }

    fn get_server<'a>(
        &'a self,
        _plugin: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, Result<ServerSummary, ServiceError>> {
        Box::pin(async move { Ok(summary(&self.server(id).await?)) })
    }

    fn send_console_command<'a>(
        &'a self,
        plugin: &'a str,
        server_id: &'a str,
        command: &'a str,
    ) -> BoxFuture<'a, Result<(), ServiceError>> {
        Box::pin(async move {
            let server = self.server(server_id).await?;
            self.enqueue(plugin, &server, CommandAction::Console, Some(command))
                .await
        })
    }

    fn power_action<'a>(
        &'a self,
        plugin: &'a str,
        server_id: &'a str,
        action: PowerSignal,
    ) -> BoxFuture<'a, Result<(), ServiceError>> {
        Box::pin(async move {
            let server = self.server(server_id).await?;
            let action = match action {
                PowerSignal::Start => CommandAction::Start,
                PowerSignal::Stop => CommandAction::Stop,
                PowerSignal::Restart => CommandAction::Restart,
                PowerSignal::Kill => CommandAction::Kill,
            };
            self.enqueue(plugin, &server, action, None).await
        })
    }

    fn create_backup<'a>(
        &'a self,
        plugin: &'a str,
        server_id: &'a str,
        name: Option<&'a str>,
    ) -> BoxFuture<'a, Result<String, ServiceError>> {
        Box::pin(async move {
            let server = self.server(server_id).await?;
            let Some(starter) = self.backups.get() else {
                return Err(ServiceError::Unavailable(
                    "this Panel starts no backups for plugins".into(),
                ));
            };
            starter.start(plugin, &server, name).await
        })
    }

    fn suspend_server<'a>(
        &'a self,
        plugin: &'a str,
        server_id: &'a str,
        reason: &'a str,
    ) -> BoxFuture<'a, Result<(), ServiceError>> {
        Box::pin(async move {
            let server = self.server(server_id).await?;
            let plugins = self.plugins.get().and_then(WeakPluginManager::upgrade);
            suspension::suspend_for_plugin(&self.db, plugins.as_ref(), &server, reason, plugin)
                .await
                .map_err(refused)?;
            // The stop, and the read-only files, reach the Agent at once.
            self.wake(&server);
            Ok(())
        })
    }

    fn unsuspend_server<'a>(
        &'a self,
        plugin: &'a str,
        server_id: &'a str,
    ) -> BoxFuture<'a, Result<(), ServiceError>> {
        Box::pin(async move {
            let server = self.server(server_id).await?;
            let plugins = self.plugins.get().and_then(WeakPluginManager::upgrade);
            suspension::unsuspend_for_plugin(&self.db, plugins.as_ref(), &server, plugin)
                .await
                .map_err(refused)?;
            self.wake(&server);
            Ok(())
        })
    }
}

impl DbPanelApi {
    /// Queues `action` for `server` as plugin `plugin` asks, and wakes the
    /// node's session.
    async fn enqueue(
        &self,
        plugin: &str,
        server: &Server,
        action: CommandAction,
        line: Option<&str>,
    ) -> Result<(), ServiceError> {
        if server.state == STATE_DELETING {
            return Err(ServiceError::Invalid("the server is being deleted".into()));
        }
        let plugins = self.plugins.get().and_then(WeakPluginManager::upgrade);
        commands::enqueue_for_plugin(&self.db, plugins.as_ref(), server, action, line, plugin)
            .await
            .map_err(refused)?;
        self.wake(server);
        Ok(())
    }

    /// Wakes `server`'s node's Agent session, when there is a waker.
    fn wake(&self, server: &Server) {
        if let (Some(waker), Some(node)) = (&self.waker, &server.node_id) {
            waker(node);
        }
    }
}

/// What a plugin is told of a refusal: the database's failure as
/// `unavailable`, a server gone as `not-found`, anything else as `invalid`
/// with its sentence.
fn refused(error: ServersError) -> ServiceError {
    match error {
        ServersError::Db(e) => unavailable(e),
        ServersError::NotFound(what) => ServiceError::NotFound(what),
        other => ServiceError::Invalid(other.to_string()),
    }
}
