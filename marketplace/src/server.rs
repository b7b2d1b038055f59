//! [`MarketplaceServer`]: the registry service as one value to start and
//! stop, for `cap up` and for tests (bind to `127.0.0.1:0`).
//!
//! Data layout below [`MarketplaceConfig::data_dir`]:
//!
//! * `marketplace.key` — the Marketplace's secret key (generated on first
//!   start, mode 0600, in the [`crate::keys`] text format);
//! * `marketplace.db` — the SQLite database, unless
//!   [`MarketplaceConfig::database_url`] names another (`postgres://…`);
//! * `packages/` — package files by sha256.
//!
//! The data directory is created `0700` and the SQLite database `0600`; a
//! Marketplace whose existing directory, database or key file grants the
//! group or others any access refuses to start, naming the `chmod` that
//! fixes it ([`ServerError::Permissions`]).

use std::net::SocketAddr;
use std::path::PathBuf;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::billing::BillingConfig;
use crate::billing::stripe::{Gateway, GatewayError};
use crate::keys::{KeyError, PublicKey, SecretKey};
use crate::log::Notary;
use crate::service::rate_limit::RateLimit;
use crate::service::store::{Store, StoreError};
use crate::service::{self, AppState, Billing};

/// How the Marketplace runs.
#[derive(Debug, Clone)]
pub struct MarketplaceConfig {
    /// Where to listen (`127.0.0.1:0` picks a free port).
    pub listen: SocketAddr,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Database URL; default SQLite at `<data>/marketplace.db`.
    pub database_url: Option<String>,
    /// Database pool size.
    pub max_connections: u32,
    /// How long a timestamp stays valid, seconds.
    pub timestamp_ttl: i64,
    /// Per-address rate limit.
    pub rate_limit: RateLimit,
    /// Largest request body (package upload), bytes.
    pub max_upload: usize,
    /// Paid plugins through Stripe; `None` sells nothing (billing
    /// endpoints answer `503 billing-disabled`).
    pub billing: Option<BillingConfig>,
    /// How long a publisher token lives before it must be rotated, seconds.
    pub publisher_token_ttl: i64,
    /// The Marketplace admin's token, which approves key recoveries for
    /// publishers who lost every key; `None` closes the admin routes.
    pub admin_token: Option<String>,
}

impl MarketplaceConfig {
    /// Defaults for a data directory: `127.0.0.1:0`, SQLite, 1-hour
    /// timestamps, 600 requests a minute per address, 100 MiB uploads,
    /// 90-day publisher tokens, no admin routes.
    pub fn new(data_dir: impl Into<PathBuf>) -> MarketplaceConfig {
        MarketplaceConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: data_dir.into(),
            database_url: None,
            max_connections: 8,
            timestamp_ttl: 3600,
            rate_limit: RateLimit::default(),
            max_upload: cap_runtime::package::MAX_PACKAGE_BYTES as usize,
            billing: None,
            publisher_token_ttl: service::DEFAULT_TOKEN_TTL,
            admin_token: None,
        }
    }
}

/// Why the Marketplace could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The data directory, database or key file is accessible to other
    /// users.
    #[error(
        "{} is accessible to other users (mode {mode:o}); restrict it with `chmod {expected:o} {}` and start again",
        path.display(),
        path.display()
    )]
    Permissions {
        /// The directory or file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
        /// The mode it should have (`700` or `600`).
        expected: u32,
    },
    /// The data directory or listener failed.
    #[error("marketplace: {0}")]
    Io(#[from] std::io::Error),
    /// The key could not be read or created.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The database could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The Stripe client could not be configured.
    #[error(transparent)]
    Billing(#[from] GatewayError),
}

/// Refuses `path` if the group or others have any access to it.
fn check_private(path: &std::path::Path, expected: u32) -> Result<(), ServerError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(ServerError::Permissions {
                path: path.to_owned(),
                mode,
                expected,
            });
        }
    }
    #[cfg(not(unix))]
    let _ = (path, expected);
    Ok(())
}

/// Creates the directory `path` with mode `0700`, or checks an existing one.
fn private_dir(path: &std::path::Path) -> Result<(), ServerError> {
    if path.exists() {
        return check_private(path, 0o700);
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    Ok(builder.create(path)?)
}

/// Creates the empty file `path` with mode `0600` (a valid new SQLite
/// database), or checks an existing one.
fn private_file(path: &std::path::Path) -> Result<(), ServerError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => check_private(path, 0o600),
        Err(e) => Err(e.into()),
    }
}

/// A configured, bound Marketplace, not yet serving.
#[derive(Debug)]
pub struct MarketplaceServer {
    listener: TcpListener,
    addr: SocketAddr,
    state: AppState,
    config: MarketplaceConfig,
}

impl MarketplaceServer {
    /// Opens the data directory, key and database, and binds the listener.
    pub async fn bind(config: MarketplaceConfig) -> Result<MarketplaceServer, ServerError> {
        private_dir(&config.data_dir)?;
        let key_path = config.data_dir.join("marketplace.key");
        let key = if tokio::fs::try_exists(&key_path).await? {
            check_private(&key_path, 0o600)?;
            SecretKey::read(&key_path)?
        } else {
            let key = SecretKey::generate()?;
            key.write_new(&key_path)?;
            tracing::info!(key_id = %key.id(), "generated the Marketplace key");
            key
        };
        let url = match &config.database_url {
            Some(url) => url.clone(),
            None => {
                let file = config.data_dir.join("marketplace.db");
                private_file(&file)?;
                format!("sqlite://{}?mode=rwc", file.display())
            }
        };
        let store = Store::connect(&url, config.max_connections.max(2)).await?;
        let blobs = config.data_dir.join("packages");
        tokio::fs::create_dir_all(&blobs).await?;
        let billing = match &config.billing {
            Some(billing) => Some(Billing {
                gateway: Gateway::new(billing)?,
                config: billing.clone(),
            }),
            None => None,
        };
        let state = AppState::new(
            store,
            Notary::new(key),
            blobs,
            config.timestamp_ttl,
            billing,
        )
        .with_trust(config.publisher_token_ttl, config.admin_token.as_deref());
        let listener = TcpListener::bind(config.listen).await?;
        let addr = listener.local_addr()?;
        Ok(MarketplaceServer {
            listener,
            addr,
            state,
            config,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The key clients should trust.
    pub fn public_key(&self) -> &PublicKey {
        self.state.notary().public_key()
    }

    /// Serves until `shutdown` completes.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let router = service::router(
            self.state.clone(),
            self.config.rate_limit,
            self.config.max_upload,
        );
        tracing::info!(addr = %self.addr, "marketplace serving");
        let result = axum::serve(
            self.listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await;
        self.state.store().close().await;
        result
    }

    /// Serves on a background task until [`RunningMarketplace::stop`].
    pub fn spawn(self) -> RunningMarketplace {
        let (stop, stopped) = oneshot::channel::<()>();
        let addr = self.addr;
        let key = self.public_key().clone();
        let task = tokio::spawn(self.serve(async {
            let _ = stopped.await;
        }));
        RunningMarketplace {
            addr,
            key,
            stop: Some(stop),
            task,
        }
    }
}

/// A Marketplace serving on a background task.
#[derive(Debug)]
pub struct RunningMarketplace {
    addr: SocketAddr,
    key: PublicKey,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl RunningMarketplace {
    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The key clients should trust.
    pub fn public_key(&self) -> &PublicKey {
        &self.key
    }

    /// Stops accepting, finishes in-flight requests and waits.
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match (&mut self.task).await {
            Ok(result) => result,
            Err(e) => Err(std::io::Error::other(e)),
        }
    }
}
