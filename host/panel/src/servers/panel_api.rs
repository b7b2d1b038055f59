//! [`DbPanelApi`]: the plugins' `panel` capability over the Panel's
//! database.
//!
//! The runtime checks the plugin's granted panel scopes before every call
//! (`servers.read` for listing and reading servers, `console.send` for
//! console commands), so what arrives here is already allowed; this type
//! answers from the database. A console command goes through the same
//! checks and before-hooks as one sent by a user and is recorded with the
//! plugin as its actor (`plugin:<id>`); see
//! [`commands::enqueue_for_plugin`] for why its after-hooks do not fire.

use cap_runtime::api::ServerSummary;
use cap_runtime::capabilities::panel::PanelApi;
use cap_runtime::capabilities::{BoxFuture, ServiceError};

use super::commands;
use super::server::{self, STATE_DELETING, Server, Visibility};
use crate::db::{Database, DbError};
use crate::plugins::{PluginManager, WeakPluginManager};

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
    plugins: std::sync::Arc<std::sync::OnceLock<WeakPluginManager>>,
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
            plugins: std::sync::Arc::default(),
        }
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
            if server.state == STATE_DELETING {
                return Err(ServiceError::Invalid("the server is being deleted".into()));
            }
            let plugins = self.plugins.get().and_then(WeakPluginManager::upgrade);
            commands::enqueue_for_plugin(&self.db, plugins.as_ref(), &server, command, plugin)
                .await
                .map_err(|e| match e {
                    super::ServersError::Db(e) => unavailable(e),
                    other => ServiceError::Invalid(other.to_string()),
                })?;
            if let (Some(waker), Some(node)) = (&self.waker, &server.node_id) {
                waker(node);
            }
            Ok(())
        })
    }
}
