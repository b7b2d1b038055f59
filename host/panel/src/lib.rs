//! # cap-panel
//!
//! The Ctrl-Alt-Play Panel: the hub admins and players use. It owns
//! identity, permissions, nodes, servers, plugins and the event log, and
//! asks sandboxed WebAssembly plugins (through `cap-runtime`) everything
//! game-, login- and policy-specific. This crate is the Panel as a library,
//! so that tests and `cap up` can run it in-process. The `cap` binary and
//! its subcommands live apart, in the `cap-cli` crate: the Panel library
//! depends neither on the Agent (which `cap up` runs beside it) nor on the
//! plugins the binary carries, and takes no command-line flags (a
//! [`config::ConfigLayer`] is what a front end fills in).
//!
//! This is the foundation the rest of the Panel plugs into:
//!
//! - [`config`]: flags > `CAP_*` environment > TOML file > defaults, merged
//!   in one tested function.
//! - [`db`]: SQLite (embedded default), PostgreSQL or MySQL/MariaDB behind
//!   one [`Database`] handle — an enum over the three typed sqlx pools, each
//!   backend with its own migrations, run at start; the append-only event
//!   store (the audit log) and settings.
//! - [`http`]: the API's conventions — everything under `/api/v1`, RFC 9457
//!   problem documents with stable codes, request ids, structured tracing,
//!   Prometheus metrics at `/metrics` (opt-in, behind a token), per-address
//!   request limits, `?limit=&cursor=` pagination, an
//!   OpenAPI 3.1 document generated from the handlers — and the
//!   [`http::Authenticator`] extension point identity will
//!   implement.
//! - [`servers`]: nodes and allocations, Agent registration, game servers
//!   (validated by their game-type plugin, vetoed or modified by hook
//!   plugins), lifecycle commands queued for Agents, subusers, and the
//!   plugins' `panel` capability over the database
//!   ([`servers::DbPanelApi`], installed unless
//!   [`PanelBuilder::plugin_services`] supplies another).
//! - [`files`]: server files — the scope an Agent enforces (the game
//!   type's denylist, the disk limit), operations sent over the Agent's
//!   link, and the signed grants with which contents move between clients
//!   and Agents directly, never through the Panel.
//! - [`marketplace`]: installing plugins from a Marketplace — resolve,
//!   download, verify every signature, log and timestamp, grant, activate,
//!   all or nothing — with the trust state and lockfile in the database;
//!   paid plugins' licenses fetched, verified offline before every load
//!   and renewed in the background.
//! - [`backups`] and [`databases`]: a server's backups (made by its
//!   node's Agent) and its MySQL/MariaDB and PostgreSQL databases (made by
//!   the Panel on the database hosts administrators register).
//! - [`timers`]: plugins' timers (capability `timers`), kept in the
//!   database and delivered to their after-hooks by a loop each serving
//!   Panel runs, with a lease so that several Panels on one database
//!   deliver each firing once; the substrate of the `scheduler` plugin.
//! - [`bundled`]: installing the plugin packages an embedder carries (the
//!   `cap` binary carries the example plugins) through the same validation,
//!   grant and activation path as an admin's upload.
//!
//! Key decisions:
//!
//! - **Layers.** [`http`] is on top; the domain modules ([`identity`],
//!   [`servers`], [`agents`], [`files`], [`backups`], [`databases`], [`plugins`],
//!   [`marketplace`]) sit below it
//!   and never name it; [`db`] is at the bottom and names none of them.
//!   What the layers share sits low: the caller
//!   ([`identity::principal::Principal`]) and the stable error codes
//!   ([`error_code::Code`]). A test reads the sources and refuses a module
//!   that names a layer above its own.
//! - **Typed pools, not `sqlx::Any`.** Each backend keeps its native types
//!   and error codes; shared SQL is written once and expanded per backend
//!   (see [`db`]).
//! - **Every change is an event, in the same transaction.** Writers append
//!   to the event store atomically with their change ([`db::settings`] is
//!   the pattern), so the audit log and projections cannot drift.
//! - **Errors are data.** Handlers return [`http::ApiError`]; a middleware
//!   makes every other error response (unknown route, wrong method, panic)
//!   a problem document too, and internal details are logged, never sent.
//! - **Deny by default.** Protected routes exist but answer `401` until an
//!   authenticator is installed; [`http::DenyAll`] is the default.
//! - **Repeated reads are answered from memory, never stale.** Who a
//!   session is and pages of `GET /servers` are cached for exactly one
//!   [`db::ReadVersion`] (the event store's head on SQLite, the snapshot on
//!   PostgreSQL, none on MySQL/MariaDB), taken before anything is read;
//!   any commit moves it (see [`read_cache`]).
//! - **No global state, with one exception.** Each [`Panel`] has its own
//!   database pool, metrics registry and caches, so several can run in one
//!   process. The exception is the catalogue of permissions plugins declare
//!   ([`identity::permissions`]): it is process-wide, so in one process a
//!   permission a plugin declared to one Panel is known to the others too
//!   (the names are namespaced by plugin id, so they cannot collide).
//!
//! # Example
//!
//! ```no_run
//! use cap_panel::Panel;
//! use cap_panel::config::Config;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let panel = Panel::bind(Config::default()).await?; // creates ./data, migrates
//! println!("listening on http://{}", panel.local_addr());
//! panel.serve(cap_panel::shutdown_signal()).await?;
//! # Ok(())
//! # }
//! ```

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub mod agents;
pub mod backups;
pub mod bundled;
pub mod config;
pub mod databases;
pub mod db;
pub mod error_code;
pub mod files;
pub mod http;
pub mod identity;
pub mod mail;
pub mod marketplace;
pub mod plugin_kv;
pub mod plugins;
pub mod read_cache;
pub mod secrets;
pub mod servers;
pub mod timers;

#[cfg(test)]
mod layering_tests;

use config::Config;
use db::{Database, DbError};
use http::{AppState, Authenticator, DenyAll};

/// How long a stopping Panel waits for its WebSocket sessions to end.
const SESSION_DRAIN: std::time::Duration = std::time::Duration::from_secs(5);

/// Why the Panel could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data directory or the SQLite database file is accessible to
    /// other users; the message names the `chmod` that fixes it.
    #[error(transparent)]
    Permissions(#[from] secrets::PermissionError),
    /// The secret key is missing, malformed, or its file is not private.
    #[error(transparent)]
    SecretKey(#[from] secrets::SecretKeyError),
    /// The secret key is not the one the database's secrets were sealed
    /// with.
    #[error("cannot open the database ({location})")]
    WrongSecretKey {
        /// Where it is, with any password redacted.
        location: String,
        /// [`secrets::SealError::WrongKey`].
        #[source]
        source: secrets::SealError,
    },
    /// The database could not be opened or migrated.
    #[error("cannot open the database ({location})")]
    Database {
        /// Where it is, with any password redacted.
        location: String,
        /// What went wrong.
        #[source]
        source: DbError,
    },
    /// The plugin runtime could not be set up, or the active plugins could
    /// not be read.
    #[error("cannot start plugin management")]
    Plugins(#[source] plugins::PluginError),
    /// The Marketplace settings are invalid.
    #[error("invalid Marketplace settings")]
    Marketplace(#[source] marketplace::MarketplaceError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

/// Configures a [`Panel`] before it binds.
pub struct PanelBuilder {
    config: Config,
    authenticator: Arc<dyn Authenticator>,
    authenticator_set: bool,
    plugin_services: Option<plugins::PluginServices>,
    identity: Option<(identity::ProviderRegistry, identity::IdentityOptions)>,
    license_upkeep: std::time::Duration,
    timers: timers::TimerOptions,
}

/// How often a serving Panel renews and enforces the licenses of paid
/// plugins by default ([`PanelBuilder::license_upkeep`]).
pub const LICENSE_UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(15 * 60);

impl std::fmt::Debug for PanelBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PanelBuilder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl PanelBuilder {
    /// Sets who may call protected routes (default: [`DenyAll`]).
    pub fn authenticator(mut self, authenticator: impl Authenticator) -> Self {
        self.authenticator = Arc::new(authenticator);
        self.authenticator_set = true;
        self
    }

    /// Turns on identity: logins through `providers`, sessions and API
    /// keys, and — unless [`PanelBuilder::authenticator`] set another —
    /// [`http::auth::IdentityAuthenticator`] for protected routes.
    pub fn identity(
        mut self,
        providers: identity::ProviderRegistry,
        options: identity::IdentityOptions,
    ) -> Self {
        self.identity = Some((providers, options));
        self
    }

    /// Sets the services plugins' `kv` and `panel` capabilities use
    /// (default: both over this Panel's database — [`plugin_kv::DbKv`] and
    /// [`servers::DbPanelApi`]).
    pub fn plugin_services(mut self, services: plugins::PluginServices) -> Self {
        self.plugin_services = Some(services);
        self
    }

    /// How often the serving Panel renews due licenses of paid plugins and
    /// deactivates those whose license lapsed (default
    /// [`LICENSE_UPKEEP_INTERVAL`]; tokens are renewed at half their
    /// lifetime, so this only needs to be well below that).
    pub fn license_upkeep(mut self, every: std::time::Duration) -> Self {
        self.license_upkeep = every;
        self
    }

    /// How the serving Panel's timer delivery paces itself (default
    /// [`timers::TimerOptions::default`]: a poll every 5 s at most, parked
    /// firings re-examined every minute).
    pub fn timers(mut self, options: timers::TimerOptions) -> Self {
        self.timers = options;
        self
    }

    /// Creates the data directory (`0700`), loads the secret key, opens
    /// and migrates the database (a SQLite file is created `0600`), and
    /// binds the listen address.
    ///
    /// # Errors
    ///
    /// [`StartError`] saying which step failed; an existing data directory
    /// or SQLite file accessible to other users is
    /// [`StartError::Permissions`], a key that did not seal this database
    /// [`StartError::WrongSecretKey`].
    pub async fn bind(self) -> Result<Panel, StartError> {
        let config = self.config;
        secrets::ensure_private_dir(&config.data_dir)?;
        let secret_key = match &config.secret_key {
            Some(key) => key.clone(),
            None => secrets::SecretKey::load_or_create(&config.data_dir)?,
        };
        let options = config.database_options().secret_key(secret_key);
        if let db::DatabaseLocation::SqliteFile(path) = options.location() {
            secrets::ensure_private_file(path)?;
        }
        let db = Database::connect(&options)
            .await
            .map_err(|source| match source {
                DbError::Sealed(source) => StartError::WrongSecretKey {
                    location: options.location().to_string(),
                    source,
                },
                source => StartError::Database {
                    location: options.location().to_string(),
                    source,
                },
            })?;
        tracing::info!(database = %options.location(), backend = %db.backend(), "database ready");
        let bind_error = |source| StartError::Bind {
            addr: config.listen,
            source,
        };
        let listener = TcpListener::bind(config.listen).await.map_err(bind_error)?;
        let local_addr = listener.local_addr().map_err(bind_error)?;
        let agents = agents::AgentHub::new();
        // No Agent is connected to a Panel that just started, whatever the
        // last one recorded before it stopped.
        agents::mark_all_offline(&db)
            .await
            .map_err(|source| StartError::Database {
                location: options.location().to_string(),
                source,
            })?;
        // Nor can one report a backup or restore that was running then.
        backups::fail_unfinished(&db, None, "the Panel restarted before the Agent reported")
            .await
            .map_err(|source| StartError::Database {
                location: options.location().to_string(),
                source,
            })?;
        // Nor can a transfer this Panel was not driving go on: the server
        // stays on the node it was on.
        servers::transfers::fail_unfinished(&db, "the Panel restarted during the transfer")
            .await
            .map_err(|source| StartError::Database {
                location: options.location().to_string(),
                source,
            })?;
        let panel_api = servers::DbPanelApi::new(db.clone()).with_waker(agents.waker());
        // Plugins' backups (`panel.create-backup`) take the backup routes'
        // path, over this Panel's Agent links.
        let plugin_backups = agents::backups::AgentBackups::new(db.clone(), agents.clone());
        panel_api.set_backups(Arc::new(plugin_backups.clone()));
        let plugin_services = self
            .plugin_services
            .unwrap_or_else(|| plugins::PluginServices {
                kv: Arc::new(plugin_kv::DbKv::new(db.clone())),
                panel: Arc::new(panel_api.clone()),
            });
        let plugin_manager =
            plugins::PluginManager::new(db.clone(), &config.data_dir, plugin_services)
                .map_err(StartError::Plugins)?;
        // Plugin-sent console commands, power actions and backups pass
        // the plugins' before-hooks.
        panel_api.set_plugins(&plugin_manager);
        plugin_backups.set_plugins(&plugin_manager);
        let market = match &config.marketplace_url {
            Some(url) => Some(
                marketplace::MarketplaceService::new(
                    url,
                    config.marketplace_key.as_deref(),
                    db.clone(),
                    plugin_manager.clone(),
                )
                .map_err(StartError::Marketplace)?,
            ),
            None => None,
        };
        // Paid plugins load only with a license that checks out offline;
        // without a Marketplace none can.
        plugin_manager.set_load_gate(match &market {
            Some(market) => market.license_gate(),
            None => marketplace::licenses::LicenseGate::new(db.clone(), None, None),
        });
        let failed = plugin_manager.start().await.map_err(StartError::Plugins)?;
        if !failed.is_empty() {
            tracing::warn!(?failed, "some active plugins failed to load");
        }
        let mut authenticator = self.authenticator;
        let identity = match self.identity {
            Some((providers, identity_options)) => {
                // Login providers are the active auth-provider plugins, kept
                // in step as admins activate, update and deactivate them.
                let registry = providers.clone();
                plugin_manager.on_activation(Arc::new(move |id, plugin| match plugin {
                    Some(plugin)
                        if plugin
                            .manifest()
                            .has_kind(cap_runtime::PluginKind::AuthProvider) =>
                    {
                        registry.insert(plugin.clone());
                    }
                    _ => {
                        registry.remove(id);
                    }
                }));
                let service =
                    identity::IdentityService::start(db.clone(), providers, identity_options)
                        .await
                        .map_err(|source| StartError::Database {
                            location: options.location().to_string(),
                            source,
                        })?;
                service.set_plugins(plugin_manager.clone());
                if !self.authenticator_set {
                    authenticator =
                        Arc::new(http::auth::IdentityAuthenticator::new(service.clone()));
                }
                Some(service)
            }
            None => None,
        };
        // The configuration records the address actually bound (port 0
        // picks one): the Panel names itself from it without a public URL.
        let config = Config {
            listen: local_addr,
            ..config
        };
        let state = AppState::with_agents(config, db, authenticator, agents);
        state.set_plugins(plugin_manager);
        if let Some(market) = market {
            state.set_marketplace(market);
        }
        if let Some(service) = identity {
            state.set_identity(service);
        }
        Ok(Panel {
            state,
            listener,
            local_addr,
            license_upkeep: self.license_upkeep,
            timers: self.timers,
        })
    }
}

/// A Panel that has opened its database and bound its address, ready to
/// serve.
#[derive(Debug)]
pub struct Panel {
    state: AppState,
    listener: TcpListener,
    local_addr: SocketAddr,
    license_upkeep: std::time::Duration,
    timers: timers::TimerOptions,
}

impl Panel {
    /// A builder for a Panel with `config`.
    pub fn builder(config: Config) -> PanelBuilder {
        PanelBuilder {
            config,
            authenticator: Arc::new(DenyAll),
            authenticator_set: false,
            plugin_services: None,
            identity: None,
            license_upkeep: LICENSE_UPKEEP_INTERVAL,
            timers: timers::TimerOptions::default(),
        }
    }

    /// [`PanelBuilder::bind`] with the defaults.
    ///
    /// # Errors
    ///
    /// As for [`PanelBuilder::bind`].
    pub async fn bind(config: Config) -> Result<Panel, StartError> {
        Panel::builder(config).bind().await
    }

    /// The bound address (with the real port when the config said 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The state handlers see.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then stops accepting, lets
    /// in-flight requests finish and closes the database pool.
    ///
    /// # Errors
    ///
    /// The server's I/O error, if it fails.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> io::Result<()> {
        let router = http::router(self.state.clone());
        let metrics = self.state.metrics().clone();
        let upkeep = tokio::spawn(async move {
            let mut interval = tokio::time::interval(http::metrics::UPKEEP_INTERVAL);
            loop {
                interval.tick().await;
                metrics.upkeep();
            }
        });
        let licenses = self
            .state
            .marketplace()
            .map(|market| market.spawn_upkeep(self.license_upkeep));
        // Signing keys: reload what other processes (or `cap panel
        // rotate-jwt-key`) stored, and rotate when the newest is due.
        let jwt_keys = self.state.identity().cloned().map(|service| {
            tokio::spawn(async move {
                let mut interval =
                    tokio::time::interval(identity::tokens::JWT_KEY_RELOAD_INTERVAL);
                loop {
                    interval.tick().await;
                    if let Err(error) = service.keys().upkeep(service.db()).await {
                        tracing::warn!(error = %http::error::ErrorChain(&error), "the JWT signing keys could not be reloaded");
                    }
                }
            })
        });
        // Plugins' timers fire from here on.
        let deliveries = self
            .state
            .plugins()
            .map(|plugins| timers::spawn_delivery(plugins.clone(), self.timers));
        tracing::info!(addr = %self.local_addr, "serving");
        let hub = self.state.agents().clone();
        let shutdown = async move {
            shutdown.await;
            // WebSockets are not part of the graceful shutdown: end them.
            hub.close_sessions();
        };
        let result = axum::serve(
            self.listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await;
        upkeep.abort();
        if let Some(jwt_keys) = jwt_keys {
            jwt_keys.abort();
        }
        // Sessions record their end (a node going offline) before the
        // database closes; one that cannot finish in time is cut off.
        if tokio::time::timeout(SESSION_DRAIN, self.state.agents().sessions_ended())
            .await
            .is_err()
        {
            tracing::warn!(
                "WebSocket sessions still open after {SESSION_DRAIN:?}; closing the database anyway"
            );
        }
        if let Some(licenses) = licenses {
            licenses.abort();
            let _ = licenses.await;
        }
        // Deliveries running record their runs before the database closes.
        if let Some(deliveries) = deliveries {
            deliveries.stop().await;
        }
        self.state.db().close().await;
        tracing::info!("stopped");
        result
    }

    /// Serves on a background task until [`RunningPanel::stop`].
    pub fn spawn(self) -> RunningPanel {
        let (stop, stopped) = oneshot::channel::<()>();
        let addr = self.local_addr;
        let state = self.state.clone();
        let task = tokio::spawn(self.serve(async {
            // A dropped sender stops the Panel too.
            let _ = stopped.await;
        }));
        RunningPanel {
            addr,
            state,
            stop: Some(stop),
            task,
        }
    }
}

/// A Panel serving on a background task.
#[derive(Debug)]
pub struct RunningPanel {
    addr: SocketAddr,
    state: AppState,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<io::Result<()>>,
}

impl RunningPanel {
    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The state handlers see (for tests: the database).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Shuts down gracefully and waits until the server has stopped.
    ///
    /// # Errors
    ///
    /// The server's I/O error, or [`io::ErrorKind::Other`] if its task
    /// panicked.
    pub async fn stop(mut self) -> io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.map_err(io::Error::other)?
    }
}

/// Completes on Ctrl-C or (on Unix) SIGTERM: the usual shutdown signal for
/// [`Panel::serve`]. If a signal handler cannot be installed, that signal
/// is ignored rather than treated as received.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C received, shutting down"),
        () = terminate => tracing::info!("SIGTERM received, shutting down"),
    }
}
