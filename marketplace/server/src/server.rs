//! [`MarketplaceServer`]: the registry service as one value to start and
//! stop, for `cap up` and for tests (bind to `127.0.0.1:0`).
//!
//! Data layout below [`MarketplaceConfig::data_dir`]:
//!
//! * `marketplace.key` — the Marketplace's secret online key (generated on
//!   first start, mode 0600, in the [`cap_marketplace::keys`] text format), which
//!   signs log entries, countersignatures, timestamps and licenses;
//! * `marketplace-keys.json` — the key chain ([`cap_marketplace::rotation`]): the
//!   root's certificates of every online key, served to clients at
//!   `GET /marketplace-key`;
//! * `marketplace-root.key` — the secret root key, generated beside the
//!   chain on the first start (mode 0600). It is needed only to rotate the
//!   online key ([`rotate_online_key`], `cap marketplace rotate-key`): move
//!   it offline after the first start and bring it back (or point
//!   `--root-key` at it) for a rotation. The Marketplace starts without it.
//!   A data directory from before roots gets its root on the next start:
//!   the existing key becomes the chain's first certificate.
//! * `marketplace.db` — the SQLite database, unless
//!   [`MarketplaceConfig::database_url`] names another (`postgres://…`);
//! * `packages/` — package files by sha256.
//!
//! A running Marketplace holds an exclusive lock on `marketplace.lock`:
//! a second Marketplace or a key rotation on the same directory is refused.
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
use crate::service::rate_limit::RateLimit;
use crate::service::{self, AppState, Billing};
use crate::store::{Store, StoreError};
use cap_marketplace::keys::{KeyError, PublicKey, SecretKey};
use cap_marketplace::log::Notary;
use cap_marketplace::rotation::{Certificate, ChainError, KeyChain};

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
    /// Another Marketplace process uses the data directory.
    #[error(
        "{} is in use by a running Marketplace; stop it first",
        .0.display()
    )]
    InUse(PathBuf),
    /// The key chain is invalid, or a rotation was refused.
    #[error("marketplace key chain: {0}")]
    KeyChain(#[from] ChainError),
    /// The key chain file does not parse.
    #[error("{} is not a Marketplace key chain: {reason}", path.display())]
    CorruptChain {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The online key is not the one the chain's newest certificate names.
    #[error(
        "marketplace.key is key {key}, but the key chain's newest certificate names {certified}; restore the certified key or rotate with the root key"
    )]
    KeyNotCertified {
        /// The online key's id.
        key: String,
        /// The certified key's id.
        certified: String,
    },
}

const KEY_FILE: &str = "marketplace.key";
const CHAIN_FILE: &str = "marketplace-keys.json";
const ROOT_FILE: &str = "marketplace-root.key";
/// A rotated-in online key, renamed over [`KEY_FILE`] once the chain that
/// certifies it is written (finished on the next start after a crash).
const NEW_KEY_FILE: &str = "marketplace.key.new";

const LOCK_FILE: &str = "marketplace.lock";

/// Locks the data directory for one process: a running Marketplace holds
/// the lock while it serves, so a rotation (or a second Marketplace) on the
/// same directory is refused rather than racing it.
fn lock_data_dir(data_dir: &std::path::Path) -> Result<std::fs::File, ServerError> {
    let path = data_dir.join(LOCK_FILE);
    let mut options = std::fs::OpenOptions::new();
    options.create(true).truncate(false).write(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(&path)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(ServerError::InUse(data_dir.to_owned())),
        Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
    }
}

/// Where the root key is kept by default: `<data>/marketplace-root.key`.
pub fn default_root_key_path(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join(ROOT_FILE)
}

fn read_chain(path: &std::path::Path) -> Result<KeyChain, ServerError> {
    let bytes = std::fs::read(path)?;
    serde_json::from_slice(&bytes).map_err(|e| ServerError::CorruptChain {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

fn write_chain(path: &std::path::Path, chain: &KeyChain) -> Result<(), ServerError> {
    let json = serde_json::to_vec_pretty(chain).map_err(|e| ServerError::CorruptChain {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, json)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// The online key and the chain certifying it, creating what a first start
/// (or the first start after an upgrade from before roots) lacks.
fn load_keys(data_dir: &std::path::Path) -> Result<(SecretKey, KeyChain), ServerError> {
    let key_path = data_dir.join(KEY_FILE);
    let chain_path = data_dir.join(CHAIN_FILE);
    let new_key_path = data_dir.join(NEW_KEY_FILE);
    if new_key_path.exists() {
        // A rotation wrote the new key, maybe the chain, then stopped.
        check_private(&new_key_path, 0o600)?;
        let new_key = SecretKey::read(&new_key_path)?;
        let certified = chain_path.exists()
            && read_chain(&chain_path)?
                .certificates
                .last()
                .is_some_and(|c| c.certificate.online_key == *new_key.public());
        if certified {
            std::fs::rename(&new_key_path, &key_path)?;
        } else {
            std::fs::remove_file(&new_key_path)?;
        }
    }
    let key = if key_path.exists() {
        check_private(&key_path, 0o600)?;
        SecretKey::read(&key_path)?
    } else {
        let key = SecretKey::generate()?;
        key.write_new(&key_path)?;
        tracing::info!(key_id = %key.id(), "generated the Marketplace key");
        key
    };
    let chain = if chain_path.exists() {
        read_chain(&chain_path)?
    } else {
        let root_path = data_dir.join(ROOT_FILE);
        let root = if root_path.exists() {
            check_private(&root_path, 0o600)?;
            SecretKey::read(&root_path)?
        } else {
            let root = SecretKey::generate()?;
            root.write_new(&root_path)?;
            root
        };
        let chain = KeyChain::create(&root, &key);
        write_chain(&chain_path, &chain)?;
        tracing::warn!(
            root_key_id = %root.id(),
            path = %root_path.display(),
            "generated the Marketplace root key; move it offline: it is needed only to rotate the online key"
        );
        chain
    };
    chain.verify(&chain.root)?;
    let certified = &chain
        .certificates
        .last()
        .ok_or(ChainError::Empty)?
        .certificate
        .online_key;
    if certified != key.public() {
        return Err(ServerError::KeyNotCertified {
            key: key.id().to_string(),
            certified: certified.id().to_string(),
        });
    }
    Ok((key, chain))
}

/// Replaces the online key of the Marketplace whose data directory is
/// `data_dir` with a fresh one, certified by `root` from `now` on (or one
/// second after the current key's start, if that is later). The Marketplace
/// signs with the new key from its next start; while it runs, the rotation
/// is refused ([`ServerError::InUse`]), since it would go on signing with
/// the old key after the new one took over.
///
/// The new key is written first (`marketplace.key.new`), then the chain,
/// then the key is renamed into place; a start after a crash in between
/// finishes or undoes the rotation, so the key and the chain always agree.
///
/// # Errors
///
/// [`ServerError::KeyChain`] when `root` is not the chain's root or the
/// chain is invalid; I/O and key errors.
pub fn rotate_online_key(
    data_dir: &std::path::Path,
    root: &SecretKey,
    now: i64,
) -> Result<Certificate, ServerError> {
    let _lock = lock_data_dir(data_dir)?;
    let (_, mut chain) = load_keys(data_dir)?;
    let current = chain
        .certificates
        .last()
        .ok_or(ChainError::Empty)?
        .certificate
        .valid_from;
    let new_key = SecretKey::generate()?;
    // Strictly after anything the old key signed at `now` (it is stopped:
    // the lock), and after the current key's start.
    let valid_from = now.saturating_add(1).max(current.saturating_add(1));
    let certificate = chain.rotate(root, new_key.public(), valid_from)?.clone();
    let new_key_path = data_dir.join(NEW_KEY_FILE);
    new_key.write_new(&new_key_path)?;
    write_chain(&data_dir.join(CHAIN_FILE), &chain)?;
    std::fs::rename(&new_key_path, data_dir.join(KEY_FILE))?;
    Ok(certificate)
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
    /// Held while serving ([`lock_data_dir`]).
    _lock: std::fs::File,
}

impl MarketplaceServer {
    /// Opens the data directory, key and database, and binds the listener.
    pub async fn bind(config: MarketplaceConfig) -> Result<MarketplaceServer, ServerError> {
        private_dir(&config.data_dir)?;
        let lock = lock_data_dir(&config.data_dir)?;
        let data_dir = config.data_dir.clone();
        let (key, chain) = tokio::task::spawn_blocking(move || load_keys(&data_dir))
            .await
            .map_err(std::io::Error::other)??;
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
            Notary::with_chain(key, chain),
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
            _lock: lock,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The online key: what signs logs, timestamps and licenses now.
    pub fn public_key(&self) -> &PublicKey {
        self.state.notary().public_key()
    }

    /// The key clients should pin: the root key.
    pub fn root_key(&self) -> &PublicKey {
        self.state.notary().pinned_key()
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
        let root = self.root_key().clone();
        let task = tokio::spawn(self.serve(async {
            let _ = stopped.await;
        }));
        RunningMarketplace {
            addr,
            key,
            root,
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
    root: PublicKey,
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

    /// The online key: what signs logs, timestamps and licenses now.
    pub fn public_key(&self) -> &PublicKey {
        &self.key
    }

    /// The key clients should pin: the root key.
    pub fn root_key(&self) -> &PublicKey {
        &self.root
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
