//! A whole Agent process, assembled: credentials, health endpoint, runtime,
//! command executor and the link — what `cap agent` and `cap up` run.
//!
//! [`start`] registers with the Panel the first time (the registration
//! token is used once; the node credentials are kept in
//! `<data>/credentials.json`, mode 0600), reopens the runtime (re-adopting
//! servers still running from before), serves `GET /health` and keeps the
//! WebSocket to the Panel until [`RunningNode::stop`]. Stopping the Agent
//! leaves game servers running: they are re-adopted on the next start.
//!
//! The Panel URL is the one the admin gave (`--panel`), kept across
//! restarts; the registration answer cannot change it. Every start checks
//! it with [`link::check_panel_url`]: a cleartext `http://` Panel outside
//! loopback is refused unless [`NodeOptions::insecure`] is set.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use cap_protocol::{AgentMessage, RegistrationRequest, ResourceLimits, SupportedGame};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::link::{self, LinkConfig, LinkError};
use crate::plugins::PluginSource;
use crate::runtime::{
    Backend, Classifiers, ContainerConfig, NodeRuntime, NodeRuntimeConfig, RuntimeError,
};
use crate::{Agent, ServerRuntime};

/// Runtime events buffered towards the link before console output is
/// dropped (results are never dropped; they have their own queue).
pub const EVENT_BUFFER: usize = 4096;

/// How to start an Agent.
pub struct NodeOptions {
    /// The Panel's URL, needed for the first registration.
    pub panel_url: Option<String>,
    /// A registration token, needed for the first registration only.
    pub registration_token: Option<String>,
    /// Where credentials, servers and bookkeeping live.
    pub data_dir: PathBuf,
    /// Where `GET /health` is served (port 0 picks one).
    pub health_listen: SocketAddr,
    /// Game-type classifiers by plugin id.
    pub classifiers: Classifiers,
    /// The game types (plugin and version) announced at registration.
    pub supported_games: Vec<SupportedGame>,
    /// Runtime settings; `None` takes the defaults for `data_dir`.
    pub runtime: Option<NodeRuntimeConfig>,
    /// What the node offers; `None` measures the machine.
    pub resource_limits: Option<ResourceLimits>,
    /// Accept a cleartext `http://` Panel that is not on loopback
    /// (`--insecure`).
    pub insecure: bool,
    /// Native processes or containers (`--runtime`), unless
    /// [`NodeOptions::runtime`] names its backend itself.
    pub backend: BackendChoice,
    /// Where file transfers are served (`--files-listen`); `None` serves
    /// none (the Panel's file manager then only lists and edits metadata).
    pub files_listen: Option<SocketAddr>,
    /// The URL browsers reach that listener at (`--public-url`), the base of
    /// the Panel's signed URLs; `None` takes `http://<files listen address>`
    /// (`https://` with [`files_tls`](Self::files_tls)) when that is a
    /// specific address, and announces none for `0.0.0.0`.
    pub files_public_url: Option<String>,
    /// The certificate chain and private key (PEM files) the file-transfer
    /// listener serves TLS with (`--files-tls-cert`, `--files-tls-key`);
    /// `None` serves plain HTTP ([`crate::tls`]).
    pub files_tls: Option<FilesTls>,
    /// Where SFTP is served (`--sftp-listen`, `0.0.0.0:2022` by default in
    /// the CLI); `None` serves none (`--no-sftp`). Sign-ins are the
    /// Panel's to decide ([`crate::sftp`]).
    pub sftp_listen: Option<SocketAddr>,
}

/// Serves the file-transfer routes `app` on `listener` (plain or TLS)
/// until the task is aborted.
fn serve_files<L: axum::serve::Listener>(listener: L, app: axum::Router) -> JoinHandle<()>
where
    L::Addr: std::fmt::Debug,
{
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::warn!(%error, "the file-transfer listener stopped");
        }
    })
}

/// The PEM files of the file-transfer listener's TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilesTls {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key.
    pub key: PathBuf,
}

/// The runtime a node is started with (`--runtime native|container`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum BackendChoice {
    /// Servers run as processes of the node.
    #[default]
    Native,
    /// Servers run in containers of the engine at `host`
    /// (`--container-host`; `None` looks in the usual places, see
    /// [`crate::container::candidate_hosts`]).
    Container {
        /// The engine's address.
        host: Option<String>,
    },
}

impl std::fmt::Debug for NodeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeOptions")
            .field("panel_url", &self.panel_url)
            .field("data_dir", &self.data_dir)
            .field("health_listen", &self.health_listen)
            .field("insecure", &self.insecure)
            .finish_non_exhaustive()
    }
}

/// Why an Agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// No credentials yet, and no Panel URL or token to register with.
    #[error(
        "this Agent is not registered yet: pass --panel <url> and --token <registration token> (credentials go to {0})"
    )]
    NotRegistered(String),
    /// Registration or the credentials file failed.
    #[error(transparent)]
    Link(#[from] LinkError),
    /// The runtime could not open its data directory.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// `--runtime container` and no container engine answers.
    #[error("--runtime container: {0}")]
    Engine(#[from] crate::container::EngineError),
    /// The file-transfer listener could not be bound.
    #[error("cannot serve file transfers on {addr}: {source}")]
    Files {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file-transfer listener's certificate or key cannot be used.
    #[error(transparent)]
    FilesTls(#[from] crate::tls::TlsError),
    /// The SFTP listener could not be bound.
    #[error("cannot serve SFTP on {addr}: {source}")]
    Sftp {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The SFTP host key could not be read or made.
    #[error(transparent)]
    SftpKey(#[from] crate::sftp::SftpError),
    /// The health endpoint could not be bound.
    #[error("cannot serve the health endpoint on {addr}: {source}")]
    Health {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// A started Agent.
#[derive(Debug)]
pub struct RunningNode {
    /// The node id the Panel gave it.
    pub node_id: String,
    /// Where `GET /health` answers.
    pub health_addr: SocketAddr,
    /// Where file transfers are served, when they are.
    pub files_addr: Option<SocketAddr>,
    /// Where SFTP is served, when it is.
    pub sftp_addr: Option<SocketAddr>,
    /// The runtime (for tests and embedding).
    pub runtime: Arc<NodeRuntime>,
    /// The servers whose files the Panel holds read-only now (suspended),
    /// as the link last heard (for tests and embedding).
    pub read_only: Arc<crate::files::ReadOnlyServers>,
    shutdown: watch::Sender<bool>,
    link: JoinHandle<()>,
    health: JoinHandle<()>,
    files: Option<JoinHandle<()>>,
    sftp: Option<JoinHandle<()>>,
}

impl RunningNode {
    /// Closes the link and the health endpoint; game servers keep running.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = self.link.await;
        self.health.abort();
        if let Some(files) = self.files {
            files.abort();
        }
        if let Some(sftp) = self.sftp {
            sftp.abort();
        }
    }

    /// Waits until the link ends (after [`RunningNode::stop`] from another
    /// handle, or never).
    pub async fn wait(&mut self) {
        let _ = (&mut self.link).await;
    }

    /// A sender that stops the node when `true` is sent.
    pub fn shutdown_handle(&self) -> watch::Sender<bool> {
        self.shutdown.clone()
    }
}

fn platform_capabilities(backend: &Backend) -> Vec<String> {
    let arch = match std::env::consts::ARCH {
        "aarch64" => "arm64",
        _ => "amd64",
    };
    vec![
        backend.capability().to_owned(),
        format!("os-{}", std::env::consts::OS),
        format!("arch-{arch}"),
    ]
}

/// The engine instance label of an Agent: the first 12 hex digits of its
/// id, so that two Agents on one engine keep apart.
fn engine_instance(agent_id: &str) -> String {
    agent_id
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(12)
        .collect()
}

/// What this machine offers: its memory, the free disk under `data_dir`,
/// and 100% per CPU.
pub fn measure_resources(data_dir: &std::path::Path) -> ResourceLimits {
    let memory_mb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(1024, |kib| kib / 1024);
    let disk_mb = rustix::fs::statvfs(data_dir)
        .map(|s| s.f_bavail.saturating_mul(s.f_frsize) >> 20)
        .unwrap_or(10_240);
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    ResourceLimits {
        memory_mb,
        disk_mb,
        cpu_percent: u32::try_from(cpus * 100).unwrap_or(u32::MAX),
    }
}

/// The label value ([`crate::container::LABEL_AGENT`]) on the containers
/// of the Agent whose data directory is `data_dir`, once it has started
/// there: what a test's cleanup removes by.
///
/// # Errors
///
/// When the Agent's id cannot be read or made.
pub fn container_instance(data_dir: &std::path::Path) -> std::io::Result<String> {
    Ok(engine_instance(&agent_id(data_dir)?))
}

/// The Agent's stable id, created on first start.
fn agent_id(data_dir: &std::path::Path) -> std::io::Result<String> {
    let path = data_dir.join("agent-id");
    match std::fs::read_to_string(&path) {
        Ok(id) if uuid::Uuid::parse_str(id.trim()).is_ok() => Ok(id.trim().to_owned()),
        _ => {
            let id = uuid::Uuid::new_v4().to_string();
            crate::install::write_atomically(&path, id.as_bytes(), Some(0o600))?;
            Ok(id)
        }
    }
}

/// Starts an Agent.
///
/// # Errors
///
/// [`NodeError`]; nothing keeps running then.
pub async fn start(options: NodeOptions) -> Result<RunningNode, NodeError> {
    std::fs::create_dir_all(&options.data_dir).map_err(|source| {
        NodeError::Link(LinkError::Credentials {
            path: options.data_dir.display().to_string(),
            source,
        })
    })?;
    // A certificate that cannot be used is refused before anything else
    // happens (a registration token is spent once).
    let files_tls = match (&options.files_listen, &options.files_tls) {
        (Some(_), Some(tls)) => Some(crate::tls::Certificates::load(&tls.cert, &tls.key)?),
        _ => None,
    };
    let credentials_path = options.data_dir.join("credentials.json");
    let id_error = |source| LinkError::Credentials {
        path: options.data_dir.join("agent-id").display().to_string(),
        source,
    };
    let mut config = match options.runtime {
        Some(config) => config,
        None => NodeRuntimeConfig::new(&options.data_dir),
    };
    if let (Backend::Native, BackendChoice::Container { host }) =
        (&config.backend, &options.backend)
    {
        let instance = engine_instance(&agent_id(&options.data_dir).map_err(id_error)?);
        let engine = crate::container::Engine::connect(host.as_deref(), &instance).await?;
        tracing::info!(host = %engine.host(), "servers run in containers");
        config.backend = Backend::Container(ContainerConfig::new(engine));
    }
    let listener = tokio::net::TcpListener::bind(options.health_listen)
        .await
        .map_err(|source| NodeError::Health {
            addr: options.health_listen,
            source,
        })?;
    let health_addr = listener.local_addr().map_err(|source| NodeError::Health {
        addr: options.health_listen,
        source,
    })?;
    let credentials = match link::load_credentials(&credentials_path)? {
        // A Panel URL given again wins over the stored one: the Panel moved.
        Some(mut credentials) => {
            if let Some(url) = &options.panel_url {
                let url = link::check_panel_url(url, options.insecure)?;
                if url != credentials.panel_url.trim_end_matches('/') {
                    tracing::info!(from = %credentials.panel_url, to = %url, "the Panel moved");
                    credentials.panel_url = url;
                    link::save_credentials(&credentials_path, &credentials)?;
                }
            } else {
                // Credentials stored by an older Agent may hold the URL
                // a registration answer named: checked like a flag.
                link::check_panel_url(&credentials.panel_url, options.insecure)?;
            }
            credentials
        }
        None => {
            let (Some(panel_url), Some(token)) = (&options.panel_url, &options.registration_token)
            else {
                return Err(NodeError::NotRegistered(
                    credentials_path.display().to_string(),
                ));
            };
            let panel_url = &link::check_panel_url(panel_url, options.insecure)?;
            let agent_id = agent_id(&options.data_dir).map_err(id_error)?;
            let mut supported_games = options.supported_games.clone();
            supported_games.sort_by(|a, b| a.plugin.cmp(&b.plugin));
            let request = RegistrationRequest {
                token: token.clone(),
                agent_id,
                version: env!("CARGO_PKG_VERSION").to_owned(),
                capabilities: platform_capabilities(&config.backend),
                supported_games,
                resource_limits: options
                    .resource_limits
                    .unwrap_or_else(|| measure_resources(&options.data_dir)),
                health_endpoint: format!("http://{health_addr}/health"),
            };
            let credentials = link::register(panel_url, &request, &credentials_path).await?;
            tracing::info!(node = %credentials.node_id, "registered with the Panel");
            credentials
        }
    };
    let capabilities = platform_capabilities(&config.backend);
    let (events_tx, events_rx) = mpsc::channel::<AgentMessage>(EVENT_BUFFER);
    let runtime =
        Arc::new(NodeRuntime::open(config, options.classifiers, events_tx.clone()).await?);
    // One set of disk usage figures for the runtime's disk-limit checks,
    // the file manager, transfers, backups and SFTP.
    let usage = runtime.disk_usage().clone();
    let transfers = crate::transfer::Transfers::new(
        &credentials.node_id,
        &options.data_dir,
        events_tx.clone(),
        usage.clone(),
    );
    let (agent, results_rx) = Agent::new(runtime.clone(), &options.data_dir);
    let agent = agent.with_transfers(transfers.clone());
    // One set of read-only servers, which the link keeps current, for the
    // file transfers and the SFTP sessions alike.
    let read_only = transfers.read_only().clone();
    let sftp_auth = crate::sftp::PanelAuth::with_read_only(events_tx.clone(), read_only.clone());
    let agent = agent.with_sftp(sftp_auth.clone());
    let agent = match PluginSource::new(
        &credentials.panel_url,
        &credentials.node_token,
        &options.data_dir,
    ) {
        Ok(source) => agent.with_plugins(Arc::new(source)),
        Err(error) => {
            tracing::warn!(%error, "game-type plugins cannot be pulled from the Panel; consoles are not classified");
            agent
        }
    };
    if runtime.runs_servers_as().is_some() {
        // The plugin cache (and its key) exists now: out of servers' reach.
        crate::isolation::protect_data_dir(&options.data_dir).map_err(|source| {
            RuntimeError::Io {
                context: "protecting the data directory".into(),
                source,
            }
        })?;
    }
    let mut link_config = LinkConfig::from_credentials(&credentials, &options.data_dir)?;
    link_config.capabilities = capabilities;
    link_config.host_address = runtime.host_address().await;
    let (files, files_addr) = match options.files_listen {
        None => (None, None),
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| NodeError::Files { addr, source })?;
            let bound = listener
                .local_addr()
                .map_err(|source| NodeError::Files { addr, source })?;
            link_config.files_url = match &options.files_public_url {
                Some(url) => Some(url.trim_end_matches('/').to_owned()),
                None if bound.ip().is_unspecified() => {
                    tracing::warn!(%bound, "file transfers are served but no --public-url says where browsers reach them: the Panel cannot hand out transfer URLs");
                    None
                }
                None if files_tls.is_some() => Some(format!("https://{bound}")),
                None => Some(format!("http://{bound}")),
            };
            let app = crate::transfer::router(transfers);
            let task = match files_tls {
                Some(config) => {
                    let listener = crate::tls::TlsListener::new(listener, config)
                        .map_err(|source| NodeError::Files { addr, source })?;
                    serve_files(listener, app)
                }
                None => serve_files(listener, app),
            };
            (Some(task), Some(bound))
        }
    };
    let (sftp, sftp_addr) = match options.sftp_listen {
        None => (None, None),
        Some(addr) => {
            let key = crate::sftp::host_key(&options.data_dir)?;
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| NodeError::Sftp { addr, source })?;
            let bound = listener
                .local_addr()
                .map_err(|source| NodeError::Sftp { addr, source })?;
            let data_dir = options.data_dir.clone();
            let changes = events_tx.clone();
            let task = tokio::spawn(async move {
                crate::sftp::serve(listener, key, &data_dir, sftp_auth, changes, usage).await;
            });
            tracing::info!(%bound, "serving SFTP");
            link_config.sftp_port = Some(bound.port());
            (Some(task), Some(bound))
        }
    };
    let (shutdown, shutdown_rx) = watch::channel(false);
    let started = Instant::now();
    let health_runtime = runtime.clone();
    let node_id = credentials.node_id.clone();
    let health_node = node_id.clone();
    let app = axum::Router::new().route(
        "/health",
        axum::routing::get(move || {
            let runtime = health_runtime.clone();
            let node = health_node.clone();
            async move {
                let reports = runtime.reports();
                axum::Json(serde_json::json!({
                    "status": "ok",
                    "nodeId": node,
                    "uptimeSecs": started.elapsed().as_secs(),
                    "serversTotal": reports.len(),
                    "serversRunning": reports.iter().filter(|r| r.state.is_alive()).count(),
                }))
            }
        }),
    );
    let health = tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::warn!(%error, "the health endpoint stopped");
        }
    });
    let link = tokio::spawn(link::run(
        link_config,
        agent,
        events_rx,
        results_rx,
        shutdown_rx,
    ));
    tracing::info!(node = %node_id, health = %health_addr, "Agent started");
    Ok(RunningNode {
        node_id,
        health_addr,
        files_addr,
        sftp_addr,
        runtime,
        read_only,
        shutdown,
        link,
        health,
        files,
        sftp,
    })
}
