//! Running game servers: the [`ServerRuntime`] trait and [`NodeRuntime`],
//! which runs them as plain processes or in containers ([`Backend`]). One
//! lifecycle (states, stop escalation, crash detection, restarts, console
//! pipeline, re-adoption) serves both backends; only starting, signalling,
//! waiting, console input and stats differ.
//!
//! Layout under the data directory:
//!
//! - `servers/<id>/`: the server's files (install plans and the game work
//!   here);
//! - `run/<id>/`: the Agent's bookkeeping: `state.json` (spec, pid, process
//!   start time, limits, state), `console.log` (the process's stdout and
//!   stderr), `stdin` (a FIFO the process reads commands from) and
//!   `install.log`.
//!
//! Key decisions:
//!
//! - **Servers outlive the Agent.** A server's output goes to a file and
//!   its input comes from a FIFO it holds open read-write (so it never sees
//!   end-of-input), not from pipes that die with the Agent. Each server is
//!   the leader of its own process group. When the Agent starts it reads
//!   every `state.json` and re-adopts a process only if `/proc/<pid>/stat`
//!   shows the same start time (so a reused pid is never signalled), or
//!   reports the server as crashed when it is gone.
//! - **Stopping escalates:** the plan's console command or signal, SIGTERM
//!   to the group after the plan's grace time, SIGKILL after
//!   [`NodeRuntimeConfig::term_grace`].
//! - **Crashes** are exits nobody asked for with a non-zero status (or a
//!   signal). With a [`RestartPolicy`] the server is started again after an
//!   exponential backoff; a run of `stable_secs` resets the count.
//! - **Limits and identity** are applied in the child before `exec`
//!   ([`crate::limits`]): a cgroup (v2, else v1) when the Agent can create
//!   groups, else rlimits, and always a process limit; the report says
//!   which. An Agent running as root runs servers and install scripts as
//!   an unprivileged user and keeps its own files out of their reach
//!   ([`crate::isolation`]).
//! - **One lifecycle operation at a time per server** (an async mutex), so
//!   a stop cannot interleave with a start.
//! - **Containers** ([`Backend::Container`], [`crate::container`]): a
//!   server is a container named and labelled by the Agent instance and
//!   server id, its directory mounted at `/home/container`, running as a
//!   uid of its own (when the Agent is root) with every capability
//!   dropped, `no-new-privileges`, memory (no swap beyond it), CPU quota,
//!   process and open-file limits, a private `/tmp`, and its allocations
//!   published on TCP and UDP. The Agent attaches to it before starting it
//!   and copies its output into `console.log`, so the console pipeline is
//!   the native one. Stop commands go to its stdin, signals through the
//!   engine. An exit the engine reports as an OOM kill is a crash "out of
//!   memory". On an Agent restart the running containers are found by
//!   label and attached again; their output meanwhile is fetched from the
//!   engine. Install scripts run in an install container of their own
//!   (script at `/mnt/install/install.sh`, files at `/mnt/server`, root in
//!   the container with a handful of capabilities, limits and the script's
//!   time limit).
//! - **Disk**: a server over its `disk_mb` is refused a start, and a
//!   running one gets a console warning and is stopped (its directory is
//!   walked every [`NodeRuntimeConfig::disk_interval`], a minute by
//!   default, both backends; stats carry the last figure).
//! - **A failed install** leaves the server `install-failed` with the
//!   reason; an install the Agent was stopped during is one too.
//! - **Allocations in the environment** ([`allocation_env`]), on both
//!   backends, before the startup plan's own variables (which win): the
//!   primary allocation as `SERVER_IP` and `SERVER_PORT` (Wings' names,
//!   which eggs use), every allocation's port in `SERVER_PORTS`
//!   (comma-separated, the primary first), and each extra allocation as
//!   `SERVER_IP_<n>` and `SERVER_PORT_<n>` (`n` from 1, in the spec's
//!   order). Pelican's Wings names the primary only; eggs that need more
//!   ports take them from variables, which these let a startup line fill
//!   (`--query-port ${SERVER_PORT_1}`). A change of a server's allocations
//!   reaches it with the spec of its next start.
//! - **A reinstall with `wipe`** ([`InstallPlan::wipe`]) first empties the
//!   server's directory through the confined file code
//!   ([`crate::files::ServerFiles::empty`]: links are removed, never
//!   followed), on both backends, then runs the plan. The Agent's
//!   bookkeeping (`run/<id>/`) and the node's backups (`backups/`) are not
//!   in that directory and stay.
//!
//! [`RestartPolicy`]: cap_protocol::RestartPolicy

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cap_protocol::{
    AgentMessage, ConsoleEvent, InstallPlan, InstallStep, LimitsApplied, Script, ServerReport,
    ServerSpec, ServerState, StopMethod,
};
use rustix::process::Signal;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, watch};

use crate::config_edit::{self, ConfigEditError};
use crate::console::{self, Classifier, ConsoleConfig, History, TailSpec};
use crate::container::{self, EngineError};
use crate::install::{InstallError, Installer, base_env, write_atomically};
use crate::isolation::{self, RunAs};
use crate::paths::{PathEscape, confined};
use crate::{limits, procfs, signals};

/// The environment naming a server's allocations, `ports` being the
/// spec's (its primary first): `SERVER_IP` and `SERVER_PORT` for the
/// primary, `SERVER_PORTS` listing every port (comma-separated, primary
/// first), and `SERVER_IP_<n>` / `SERVER_PORT_<n>` for the n-th extra
/// allocation. Nothing for a server without allocations.
///
/// ```
/// use cap_protocol::PortAllocation;
///
/// let ports = [
///     PortAllocation { ip: "10.0.0.1".into(), port: 25565 },
///     PortAllocation { ip: "10.0.0.2".into(), port: 25575 },
/// ];
/// let env = cap_agent::runtime::allocation_env(&ports);
/// assert!(env.contains(&("SERVER_PORT".to_owned(), "25565".to_owned())));
/// assert!(env.contains(&("SERVER_PORTS".to_owned(), "25565,25575".to_owned())));
/// assert!(env.contains(&("SERVER_IP_1".to_owned(), "10.0.0.2".to_owned())));
/// assert!(env.contains(&("SERVER_PORT_1".to_owned(), "25575".to_owned())));
/// ```
pub fn allocation_env(ports: &[cap_protocol::PortAllocation]) -> Vec<(String, String)> {
    let Some((primary, extra)) = ports.split_first() else {
        return Vec::new();
    };
    let mut env = vec![
        ("SERVER_IP".to_owned(), primary.ip.clone()),
        ("SERVER_PORT".to_owned(), primary.port.to_string()),
        (
            "SERVER_PORTS".to_owned(),
            ports
                .iter()
                .map(|p| p.port.to_string())
                .collect::<Vec<_>>()
                .join(","),
        ),
    ];
    for (i, port) in extra.iter().enumerate() {
        let n = i + 1;
        env.push((format!("SERVER_IP_{n}"), port.ip.clone()));
        env.push((format!("SERVER_PORT_{n}"), port.port.to_string()));
    }
    env
}

/// Something a runtime could not do.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// Server ids are 1–64 characters of `[A-Za-z0-9_-]`.
    #[error("invalid server id `{0}`")]
    InvalidServerId(String),
    /// No such server on this node.
    #[error("unknown server `{0}`")]
    UnknownServer(String),
    /// The server is running (or starting, or stopping).
    #[error("server `{0}` is already running")]
    AlreadyRunning(String),
    /// The server is not running.
    #[error("server `{0}` is not running")]
    NotRunning(String),
    /// An install is in progress.
    #[error("server `{0}` is being installed")]
    Installing(String),
    /// A console line may not contain line breaks.
    #[error("a console line may not contain line breaks")]
    InvalidConsoleInput,
    /// The install plan failed.
    #[error(transparent)]
    Install(#[from] InstallError),
    /// A startup config edit failed.
    #[error(transparent)]
    ConfigEdit(#[from] ConfigEditError),
    /// A plan path left the server directory.
    #[error(transparent)]
    Path(#[from] PathEscape),
    /// The program could not be started.
    #[error("starting `{program}`: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// The error.
        source: std::io::Error,
    },
    /// The process did not exit even after SIGKILL.
    #[error("server `{0}` did not exit after SIGKILL")]
    Unkillable(String),
    /// The container engine could not do something.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The server asks for a runtime this node does not offer.
    #[error("{0}")]
    UnsupportedRuntime(String),
    /// The server's files exceed its disk limit.
    #[error("server `{server}` uses {used_mb} MiB of disk, over its limit of {limit_mb} MiB")]
    DiskLimit {
        /// The server.
        server: String,
        /// What its directory uses.
        used_mb: u64,
        /// Its limit.
        limit_mb: u64,
    },
    /// File system trouble.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: std::io::Error,
    },
    /// A reinstall's wipe could not empty the server's directory.
    #[error("emptying the server's directory before the reinstall: {0}")]
    Wipe(#[source] cap_protocol::files::FileError),
}

impl RuntimeError {
    /// A stable code for command results.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidServerId(_) => "invalid-server-id",
            Self::UnknownServer(_) => "unknown-server",
            Self::AlreadyRunning(_) => "already-running",
            Self::NotRunning(_) => "not-running",
            Self::Installing(_) => "installing",
            Self::InvalidConsoleInput => "invalid-console-input",
            Self::Install(error) => error.code(),
            Self::ConfigEdit(_) => "config-edit-failed",
            Self::Path(_) => "path-escape",
            Self::Spawn { .. } => "spawn-failed",
            Self::Unkillable(_) => "unkillable",
            Self::Engine(error) => error.code(),
            Self::UnsupportedRuntime(_) => "unsupported-runtime",
            Self::DiskLimit { .. } => "disk-limit",
            Self::Io { .. } => "io-error",
            Self::Wipe(_) => "wipe-failed",
        }
    }
}

fn io_error(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> RuntimeError {
    let context = context.into();
    move |source| RuntimeError::Io { context, source }
}

/// What runs game servers on a node. [`NodeRuntime`] runs processes;
/// a container runtime can implement the same operations later.
pub trait ServerRuntime: Send + Sync + 'static {
    /// Runs an install plan (the server must not be running).
    fn install(
        &self,
        server_id: &str,
        plan: &InstallPlan,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send;
    /// Starts the server.
    fn start(
        &self,
        server_id: &str,
        spec: ServerSpec,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send;
    /// Stops it with its stop plan, escalating to SIGTERM and SIGKILL.
    fn stop(&self, server_id: &str) -> impl Future<Output = Result<(), RuntimeError>> + Send;
    /// Stops it if running, then starts it with `spec`.
    fn restart(
        &self,
        server_id: &str,
        spec: ServerSpec,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send;
    /// SIGKILLs its process group.
    fn kill(&self, server_id: &str) -> impl Future<Output = Result<(), RuntimeError>> + Send;
    /// Kills it if needed and removes its files and state.
    fn delete(&self, server_id: &str) -> impl Future<Output = Result<(), RuntimeError>> + Send;
    /// Writes a line to its console.
    fn console_input(
        &self,
        server_id: &str,
        line: &str,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send;
    /// The actual state of every server.
    fn reports(&self) -> Vec<ServerReport>;
    /// The last console lines of a server.
    fn history(&self, server_id: &str) -> Vec<String>;
    /// Registers the console classifier for game type `game` (used by
    /// servers started from now on).
    fn set_classifier(&self, game: &str, classifier: Arc<dyn Classifier>);
    /// Whether a classifier for game type `game` is registered.
    fn has_classifier(&self, game: &str) -> bool;
}

/// [`NodeRuntime`] settings.
#[derive(Debug, Clone)]
pub struct NodeRuntimeConfig {
    /// Where servers and bookkeeping live.
    pub data_dir: PathBuf,
    /// Console pipeline settings.
    pub console: ConsoleConfig,
    /// After SIGTERM, how long before SIGKILL.
    pub term_grace: Duration,
    /// How often [`AgentMessage::Stats`] are sent per running server.
    pub stats_interval: Duration,
    /// How often a running server's directory is measured for its disk
    /// limit (a walk of its files: far rarer than stats).
    pub disk_interval: Duration,
    /// Where cgroups are created; `None` uses rlimits.
    pub cgroups: Option<limits::Cgroups>,
    /// The user servers and install scripts run as; `None` keeps the
    /// Agent's own (the only choice when it is not root).
    pub run_as: Option<RunAs>,
    /// Download timeout for install plans.
    pub download_timeout: Duration,
    /// Largest download an install plan may make.
    pub max_download_bytes: u64,
    /// Directories searched for a startup plan's bare program name after
    /// the server directory and before `PATH` (a node's shared `bin`).
    pub program_dirs: Vec<PathBuf>,
    /// Processes of the node, or containers.
    pub backend: Backend,
}

/// Where a node's servers run.
#[derive(Debug, Clone, Default)]
pub enum Backend {
    /// Plain processes, limited and isolated by [`crate::limits`] and
    /// [`crate::isolation`]. Servers whose spec names an image are refused.
    #[default]
    Native,
    /// Containers of a Docker Engine API ([`crate::container`]). Servers
    /// whose spec names no image are refused.
    Container(ContainerConfig),
}

impl Backend {
    /// The capability a node with this backend advertises.
    pub fn capability(&self) -> &'static str {
        match self {
            Self::Native => "native-process",
            Self::Container(_) => "container",
        }
    }
}

/// Settings of the container backend.
#[derive(Debug, Clone)]
pub struct ContainerConfig {
    /// The engine.
    pub engine: container::Engine,
    /// When the Agent is root, each server runs as a uid of its own from
    /// `uid_base` up (the uid needs no account on the node); otherwise as
    /// the Agent's own uid.
    pub uid_base: u32,
    /// The open-files limit of every container.
    pub nofile: i64,
    /// The process limit of a server whose limits name none.
    pub default_pids: i64,
    /// Size of each container's private `/tmp`, MiB.
    pub tmp_mb: u64,
    /// Memory of an install container, MiB (installs fetch and unpack:
    /// they get their own limit, not the game's).
    pub install_memory_mb: u64,
}

impl ContainerConfig {
    /// Defaults for `engine`: a range of 10000 uids of its own from
    /// 1000000 up, picked by the Agent's instance id so that two Agents on
    /// one machine almost never share one (1 in 4096), as many open files
    /// as the Agent itself may have (at most 65536: an engine cannot give
    /// a container more than its own hard limit), 512 processes, 256 MiB
    /// `/tmp`, 1 GiB installs.
    pub fn new(engine: container::Engine) -> Self {
        let slot = engine
            .instance()
            .get(..3)
            .and_then(|hex| u32::from_str_radix(hex, 16).ok())
            .unwrap_or(0);
        let hard = rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .maximum
            .unwrap_or(65_536);
        Self {
            engine,
            uid_base: 1_000_000 + slot * 10_000,
            nofile: i64::try_from(hard.min(65_536)).unwrap_or(65_536),
            default_pids: 512,
            tmp_mb: 256,
            install_memory_mb: 1024,
        }
    }
}

impl NodeRuntimeConfig {
    /// Defaults for a data directory: the cgroups this machine offers, and
    /// [`RunAs::default_for_agent`].
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            console: ConsoleConfig::default(),
            term_grace: Duration::from_secs(10),
            stats_interval: Duration::from_secs(5),
            disk_interval: Duration::from_secs(60),
            cgroups: limits::detect_cgroups(),
            run_as: RunAs::default_for_agent(),
            download_timeout: Duration::from_secs(600),
            max_download_bytes: 8 << 30,
            program_dirs: Vec::new(),
            backend: Backend::Native,
        }
    }
}

/// Game-type classifiers by plugin id.
pub type Classifiers = HashMap<String, Arc<dyn Classifier>>;

/// What `state.json` holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    server_id: String,
    state: Option<ServerState>,
    spec: Option<ServerSpec>,
    pid: Option<u32>,
    start_ticks: Option<u64>,
    limits: Option<LimitsApplied>,
    exit_code: Option<i32>,
    /// The server's container (container backend).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    container_id: Option<String>,
    /// The uid the server's container runs as (container backend, root
    /// Agent): kept so that its files keep their owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    uid: Option<u32>,
}

/// A container's stdin, shared by whoever writes to the console.
type ContainerInput = Arc<tokio::sync::Mutex<std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>>>;

/// What runs: a process group of the node, or a container.
#[derive(Clone)]
enum Handle {
    Native { pid: u32, start_ticks: u64 },
    Container { id: String, input: ContainerInput },
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Native { pid, start_ticks } => f
                .debug_struct("Native")
                .field("pid", pid)
                .field("start_ticks", start_ticks)
                .finish(),
            Self::Container { id, .. } => f.debug_struct("Container").field("id", id).finish(),
        }
    }
}

#[derive(Debug, Clone)]
struct Process {
    handle: Handle,
    limits: LimitsApplied,
    started: Instant,
    cpu_sample: Option<(u64, Instant)>,
}

impl Process {
    fn pid(&self) -> Option<u32> {
        match self.handle {
            Handle::Native { pid, .. } => Some(pid),
            Handle::Container { .. } => None,
        }
    }

    fn start_ticks(&self) -> Option<u64> {
        match self.handle {
            Handle::Native { start_ticks, .. } => Some(start_ticks),
            Handle::Container { .. } => None,
        }
    }

    fn container_id(&self) -> Option<&str> {
        match &self.handle {
            Handle::Native { .. } => None,
            Handle::Container { id, .. } => Some(id),
        }
    }
}

#[derive(Debug)]
struct Inner {
    state: ServerState,
    spec: Option<ServerSpec>,
    process: Option<Process>,
    exit_code: Option<i32>,
    /// Bumped on every start; a monitor of an older run changes nothing.
    generation: u64,
    /// An exit now was asked for (stop, kill, delete, restart).
    stopping: bool,
    restart_attempts: u32,
    crash_cause: Option<String>,
    players: BTreeSet<String>,
    deleted: bool,
    /// The uid of the server's container (container backend, root Agent).
    uid: Option<u32>,
    /// The last container id, kept after an exit for `state.json`.
    container_id: Option<String>,
}

struct Server {
    id: String,
    dir: PathBuf,
    run_dir: PathBuf,
    history: Arc<History>,
    inner: Mutex<Inner>,
    state_tx: watch::Sender<ServerState>,
    op: tokio::sync::Mutex<()>,
}

impl Server {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn log_path(&self) -> PathBuf {
        self.run_dir.join("console.log")
    }

    fn stdin_path(&self) -> PathBuf {
        self.run_dir.join("stdin")
    }

    fn record(&self) -> Record {
        let inner = self.lock();
        Record {
            server_id: self.id.clone(),
            state: Some(inner.state),
            spec: inner.spec.clone(),
            pid: inner.process.as_ref().and_then(Process::pid),
            start_ticks: inner.process.as_ref().and_then(Process::start_ticks),
            limits: inner.process.as_ref().map(|p| p.limits.clone()),
            exit_code: inner.exit_code,
            container_id: inner
                .process
                .as_ref()
                .and_then(|p| p.container_id().map(str::to_owned))
                .or_else(|| inner.container_id.clone()),
            uid: inner.uid,
        }
    }

    fn persist(&self) {
        if self.lock().deleted {
            return;
        }
        let record = self.record();
        let result = serde_json::to_vec_pretty(&record)
            .map_err(std::io::Error::other)
            .and_then(|bytes| {
                write_atomically(&self.run_dir.join("state.json"), &bytes, Some(0o600))
            });
        if let Err(error) = result {
            tracing::warn!(server = %self.id, %error, "could not persist server state");
        }
    }

    fn report(&self) -> ServerReport {
        let inner = self.lock();
        ServerReport {
            server_id: self.id.clone(),
            state: inner.state,
            pid: inner.process.as_ref().and_then(Process::pid),
            uptime_secs: inner.process.as_ref().map(|p| match p.start_ticks() {
                Some(ticks) => procfs::process_age(ticks).map_or(0, |age| age.as_secs()),
                None => p.started.elapsed().as_secs(),
            }),
            exit_code: inner.exit_code,
            limits: inner.process.as_ref().map(|p| p.limits.clone()),
        }
    }
}

struct Shared {
    config: NodeRuntimeConfig,
    classifiers: std::sync::RwLock<Classifiers>,
    events: mpsc::Sender<AgentMessage>,
    installer: Installer,
    servers: Mutex<HashMap<String, Arc<Server>>>,
    /// Each server directory's disk usage, kept for `disk_interval`; the
    /// file manager, SFTP and transfers check the disk limit against it.
    usage: Arc<crate::files::DiskUsage>,
}

/// Runs game servers as native processes. Cheap to clone.
#[derive(Clone)]
pub struct NodeRuntime {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for NodeRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeRuntime")
            .field("data_dir", &self.shared.config.data_dir)
            .finish_non_exhaustive()
    }
}

fn valid_server_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// How a process ended.
enum Exit {
    Code(i32),
    Signal(i32),
    /// The OOM killer ended it (a container's exit code, when known).
    OutOfMemory(Option<i32>),
    /// An adopted process; its status went to its real parent.
    Unknown,
}

impl NodeRuntime {
    /// Opens the data directory and re-adopts every server whose process is
    /// still running; servers whose process died while the Agent was away
    /// are reported as crashed. Events go to `events`.
    ///
    /// # Errors
    ///
    /// The data directory cannot be created or read.
    pub async fn open(
        config: NodeRuntimeConfig,
        classifiers: Classifiers,
        events: mpsc::Sender<AgentMessage>,
    ) -> Result<Self, RuntimeError> {
        for sub in ["servers", "run"] {
            std::fs::create_dir_all(config.data_dir.join(sub))
                .map_err(io_error("creating the data directory"))?;
        }
        if config.run_as.is_some() {
            isolation::protect_data_dir(&config.data_dir)
                .map_err(io_error("protecting the data directory"))?;
        }
        let installer = Installer::new(config.download_timeout, config.max_download_bytes)
            .map_err(|e| RuntimeError::Io {
                context: "building the HTTP client".into(),
                source: std::io::Error::other(e),
            })?
            .run_as(config.run_as.clone());
        let usage = crate::files::DiskUsage::new(config.disk_interval);
        let runtime = Self {
            shared: Arc::new(Shared {
                usage,
                config,
                classifiers: std::sync::RwLock::new(classifiers),
                events,
                installer,
                servers: Mutex::new(HashMap::new()),
            }),
        };
        runtime.adopt_all().await?;
        runtime.spawn_stats();
        Ok(runtime)
    }

    /// The address this node's servers reach its host at (the plugin
    /// API's `node-context.host-address`): the gateway of the container
    /// network, or `127.0.0.1` for native servers, which run on the host
    /// itself. `None` when the engine cannot say (logged).
    pub async fn host_address(&self) -> Option<String> {
        match &self.shared.config.backend {
            Backend::Native => Some("127.0.0.1".to_owned()),
            Backend::Container(config) => match config.engine.host_address().await {
                Ok(address) => address,
                Err(error) => {
                    tracing::warn!(%error, "the container network's gateway is unknown");
                    None
                }
            },
        }
    }

    /// The disk usage figures of this node's server directories, shared
    /// with the file manager, SFTP, backups and transfers.
    pub fn disk_usage(&self) -> &Arc<crate::files::DiskUsage> {
        &self.shared.usage
    }

    /// The user servers run as, when not the Agent's own.
    pub fn runs_servers_as(&self) -> Option<&RunAs> {
        self.shared.config.run_as.as_ref()
    }

    fn servers(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Server>>> {
        self.shared
            .servers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn new_server(&self, id: &str, record: Option<&Record>) -> Arc<Server> {
        let state = record.and_then(|r| r.state).unwrap_or(ServerState::Offline);
        let (state_tx, _) = watch::channel(state);
        Arc::new(Server {
            id: id.to_owned(),
            dir: self.shared.config.data_dir.join("servers").join(id),
            run_dir: self.shared.config.data_dir.join("run").join(id),
            history: Arc::new(History::new(self.shared.config.console.history_lines)),
            inner: Mutex::new(Inner {
                state,
                spec: record.and_then(|r| r.spec.clone()),
                process: None,
                exit_code: record.and_then(|r| r.exit_code),
                generation: 0,
                stopping: false,
                restart_attempts: 0,
                crash_cause: None,
                players: BTreeSet::new(),
                deleted: false,
                uid: record.and_then(|r| r.uid),
                container_id: record.and_then(|r| r.container_id.clone()),
            }),
            state_tx,
            op: tokio::sync::Mutex::new(()),
        })
    }

    /// The server, created (with its directories) when unknown.
    fn server(&self, id: &str) -> Result<Arc<Server>, RuntimeError> {
        if !valid_server_id(id) {
            return Err(RuntimeError::InvalidServerId(id.to_owned()));
        }
        if let Some(server) = self.servers().get(id) {
            return Ok(server.clone());
        }
        let server = self.new_server(id, None);
        for dir in [&server.dir, &server.run_dir] {
            std::fs::create_dir_all(dir).map_err(io_error("creating the server directory"))?;
        }
        Ok(self
            .servers()
            .entry(id.to_owned())
            .or_insert(server)
            .clone())
    }

    fn existing(&self, id: &str) -> Result<Arc<Server>, RuntimeError> {
        self.servers()
            .get(id)
            .cloned()
            .ok_or_else(|| RuntimeError::UnknownServer(id.to_owned()))
    }

    async fn emit(&self, message: AgentMessage) {
        let _ = self.shared.events.send(message).await;
    }

    async fn set_state(&self, server: &Server, state: ServerState, reason: Option<String>) {
        let previous = {
            let mut inner = server.lock();
            std::mem::replace(&mut inner.state, state)
        };
        server.state_tx.send_replace(state);
        server.persist();
        if previous != state {
            tracing::info!(server = %server.id, ?previous, ?state, ?reason, "state change");
            self.emit(AgentMessage::StateChange {
                server_id: server.id.clone(),
                previous,
                state,
                reason,
            })
            .await;
        }
    }

    async fn adopt_all(&self) -> Result<(), RuntimeError> {
        // The container backend asks the engine which of its containers
        // still run; the native one asks /proc per record.
        let containers = match &self.shared.config.backend {
            Backend::Native => None,
            Backend::Container(config) => Some(config.engine.list_own().await?),
        };
        let run = self.shared.config.data_dir.join("run");
        let entries = std::fs::read_dir(&run).map_err(io_error("reading the run directory"))?;
        for entry in entries.flatten() {
            let Some(id) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if !valid_server_id(&id) {
                continue;
            }
            let record: Record = match std::fs::read(entry.path().join("state.json"))
                .ok()
                .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            {
                Some(record) => record,
                None => Record {
                    server_id: id.clone(),
                    ..Record::default()
                },
            };
            let server = self.new_server(&id, Some(&record));
            self.servers().insert(id.clone(), server.clone());
            if record.state == Some(ServerState::Installing) {
                self.set_state(
                    &server,
                    ServerState::InstallFailed,
                    Some("the Agent stopped during the install".into()),
                )
                .await;
            }
            let was_alive = record.state.is_some_and(|s| s.is_alive());
            if let Some(owned) = &containers {
                let running = owned
                    .iter()
                    .find(|c| c.server_id == id && c.role == container::Role::Server && c.running);
                for leftover in owned.iter().filter(|c| {
                    c.server_id == id && !(c.role == container::Role::Server && c.running)
                }) {
                    self.remove_container(&leftover.id).await;
                }
                match running {
                    Some(found) => self.adopt_container(&server, &found.id).await?,
                    None if was_alive => {
                        server.lock().exit_code = None;
                        self.set_state(
                            &server,
                            ServerState::Crashed,
                            Some("the container exited while the Agent was not running".into()),
                        )
                        .await;
                    }
                    None => {}
                }
                continue;
            }
            let alive = match (record.pid, record.start_ticks) {
                (Some(pid), Some(ticks)) => procfs::is_same_live_process(pid, ticks),
                _ => false,
            };
            if let (true, Some(pid), Some(ticks)) = (alive, record.pid, record.start_ticks) {
                let started = Instant::now()
                    .checked_sub(procfs::process_age(ticks).unwrap_or_default())
                    .unwrap_or_else(Instant::now);
                let generation = {
                    let mut inner = server.lock();
                    inner.generation += 1;
                    inner.process = Some(Process {
                        handle: Handle::Native {
                            pid,
                            start_ticks: ticks,
                        },
                        limits: record.limits.clone().unwrap_or(LimitsApplied::None {
                            reason: "unknown (adopted)".into(),
                        }),
                        started,
                        cpu_sample: None,
                    });
                    if inner.state == ServerState::Stopping || !inner.state.is_alive() {
                        inner.state = ServerState::Running;
                    }
                    inner.generation
                };
                for line in console::tail_lines(&server.log_path(), server.history.capacity()) {
                    server.history.push(line);
                }
                let offset = std::fs::metadata(server.log_path()).map_or(0, |m| m.len());
                server.state_tx.send_replace(server.lock().state);
                server.persist();
                tracing::info!(server = %id, pid, "re-adopted a running server");
                self.watch_process(&server, generation, Waiter::Adopted { pid, ticks }, offset);
            } else if was_alive {
                {
                    let mut inner = server.lock();
                    inner.exit_code = None;
                }
                self.set_state(
                    &server,
                    ServerState::Crashed,
                    Some("the process exited while the Agent was not running".into()),
                )
                .await;
            }
        }
        Ok(())
    }

    fn spawn_stats(&self) {
        let weak = Arc::downgrade(&self.shared);
        let interval = self.shared.config.stats_interval;
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let Some(shared) = weak.upgrade() else { return };
                let runtime = Self { shared };
                let servers: Vec<Arc<Server>> = runtime.servers().values().cloned().collect();
                for server in servers {
                    let disk = runtime.enforce_disk(&server).await;
                    let message = match &runtime.shared.config.backend {
                        Backend::Native => stats(&server),
                        Backend::Container(_) => runtime.container_stats(&server).await,
                    };
                    if let Some(mut message) = message {
                        if let AgentMessage::Stats { disk_bytes, .. } = &mut message {
                            *disk_bytes = disk;
                        }
                        let _ = runtime.shared.events.try_send(message);
                    }
                }
            }
        });
    }

    /// Spawns the console tail and the exit monitor for a process.
    /// Follows `log` onto `server`'s console from its start, unclassified
    /// (an install, or a pull before the game runs), until `true` is sent.
    fn plain_tail(
        &self,
        server: &Arc<Server>,
        log: &Path,
    ) -> (watch::Sender<bool>, tokio::task::JoinHandle<()>) {
        let (finish_tx, finish_rx) = watch::channel(false);
        let tail = console::spawn_tail(TailSpec {
            server_id: server.id.clone(),
            log: log.to_path_buf(),
            offset: 0,
            history: server.history.clone(),
            classifier: None,
            console_context: String::new(),
            on_event: Arc::new(|_: &ConsoleEvent| {}),
            events: self.shared.events.clone(),
            finish: finish_rx,
            config: self.shared.config.console.clone(),
        });
        (finish_tx, tail)
    }

    fn watch_process(&self, server: &Arc<Server>, generation: u64, waiter: Waiter, offset: u64) {
        let (finish_tx, finish_rx) = watch::channel(false);
        let (game, console_context) = server
            .lock()
            .spec
            .as_ref()
            .map(|s| (Some(s.game.clone()), s.startup.console_context.clone()))
            .unwrap_or_default();
        let classifier = game.and_then(|g| {
            self.shared
                .classifiers
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(&g)
                .cloned()
        });
        let hook_runtime = self.clone();
        let hook_server = Arc::downgrade(server);
        let on_event: console::EventHook = Arc::new(move |event: &ConsoleEvent| {
            if let Some(server) = hook_server.upgrade() {
                hook_runtime.on_console_event(&server, generation, event);
            }
        });
        let tail = console::spawn_tail(TailSpec {
            server_id: server.id.clone(),
            log: server.log_path(),
            offset,
            history: server.history.clone(),
            classifier,
            console_context,
            on_event,
            events: self.shared.events.clone(),
            finish: finish_rx,
            config: self.shared.config.console.clone(),
        });
        let runtime = self.clone();
        let server = server.clone();
        tokio::spawn(async move {
            let exit = waiter.wait().await;
            let _ = finish_tx.send(true);
            let _ = tail.await;
            runtime.on_exit(&server, generation, exit).await;
        });
    }

    fn on_console_event(&self, server: &Arc<Server>, generation: u64, event: &ConsoleEvent) {
        let mut inner = server.lock();
        if inner.generation != generation {
            return;
        }
        match event {
            ConsoleEvent::Ready if inner.state == ServerState::Starting => {
                drop(inner);
                let runtime = self.clone();
                let server = server.clone();
                tokio::spawn(async move {
                    let current = {
                        let inner = server.lock();
                        (inner.generation, inner.state)
                    };
                    if current == (generation, ServerState::Starting) {
                        runtime
                            .set_state(&server, ServerState::Running, Some("ready".into()))
                            .await;
                    }
                });
            }
            ConsoleEvent::PlayerJoined { name } => {
                inner.players.insert(name.clone());
            }
            ConsoleEvent::PlayerLeft { name } => {
                inner.players.remove(name);
            }
            ConsoleEvent::Crash { cause } => inner.crash_cause = Some(cause.clone()),
            _ => {}
        }
    }

    async fn on_exit(&self, server: &Arc<Server>, generation: u64, exit: Exit) {
        let (outcome, reason, ended, restart) = {
            let mut inner = server.lock();
            if inner.generation != generation || inner.deleted {
                return;
            }
            let process = inner.process.take();
            let ran_for = process.as_ref().map(|p| p.started.elapsed());
            inner.players.clear();
            inner.exit_code = match exit {
                Exit::Code(code) | Exit::OutOfMemory(Some(code)) => Some(code),
                _ => None,
            };
            let exit_text = match exit {
                Exit::Code(code) => format!("exit code {code}"),
                Exit::Signal(signal) => format!("killed by signal {signal}"),
                Exit::OutOfMemory(_) => "killed: out of memory (over its memory limit)".into(),
                Exit::Unknown => "exited (status unknown: adopted process)".into(),
            };
            let asked = std::mem::take(&mut inner.stopping);
            let crashed = !asked && !matches!(exit, Exit::Code(0));
            let cause = inner.crash_cause.take();
            let reason = match (&cause, crashed) {
                (Some(cause), true) => format!("{cause} ({exit_text})"),
                _ => exit_text,
            };
            let restart = match (inner.spec.clone(), crashed) {
                (Some(spec), true) if spec.restart.enabled => {
                    if ran_for.is_some_and(|d| d.as_secs() >= spec.restart.stable_secs) {
                        inner.restart_attempts = 0;
                    }
                    inner.restart_attempts += 1;
                    let attempt = inner.restart_attempts;
                    (attempt <= spec.restart.max_attempts)
                        .then(|| (spec.restart.backoff(attempt), spec))
                }
                _ => None,
            };
            let state = if crashed {
                ServerState::Crashed
            } else {
                ServerState::Offline
            };
            (state, reason, process, restart)
        };
        if let Some(process) = &ended {
            match &process.handle {
                Handle::Native { pid, .. } => {
                    // Leftover members of the group go with their leader.
                    signals::kill_group(*pid, Signal::KILL);
                    limits::remove_cgroup(&process.limits);
                }
                Handle::Container { id, .. } => self.remove_container(id).await,
            }
        }
        self.set_state(server, outcome, Some(reason)).await;
        if let Some((delay, spec)) = restart {
            let runtime = self.clone();
            let server = server.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let _op = server.op.lock().await;
                let still = {
                    let inner = server.lock();
                    inner.generation == generation
                        && inner.state == ServerState::Crashed
                        && !inner.deleted
                };
                if still {
                    tracing::info!(server = %server.id, ?delay, "restarting after a crash");
                    if let Err(error) = runtime.start_locked(&server, spec, true).await {
                        tracing::warn!(server = %server.id, %error, "automatic restart failed");
                        runtime
                            .set_state(
                                &server,
                                ServerState::Crashed,
                                Some(format!("automatic restart failed: {error}")),
                            )
                            .await;
                    }
                }
            });
        } else if outcome == ServerState::Crashed {
            // Policy disabled or exhausted: the count starts over next time.
            let exhausted = server
                .lock()
                .spec
                .as_ref()
                .is_some_and(|s| s.restart.enabled);
            if exhausted {
                server.lock().restart_attempts = 0;
                tracing::warn!(server = %server.id, "restart limit reached; leaving it crashed");
            }
        }
    }

    /// Starts `server`; the caller holds its `op` lock.
    async fn start_locked(
        &self,
        server: &Arc<Server>,
        spec: ServerSpec,
        automatic: bool,
    ) -> Result<(), RuntimeError> {
        {
            let mut inner = server.lock();
            match inner.state {
                state if state.is_alive() => {
                    return Err(RuntimeError::AlreadyRunning(server.id.clone()));
                }
                ServerState::Installing => {
                    return Err(RuntimeError::Installing(server.id.clone()));
                }
                _ => {}
            }
            if !automatic {
                inner.restart_attempts = 0;
            }
            inner.spec = Some(spec.clone());
        }
        self.check_runtime(&server.id, spec.image.as_deref())?;
        std::fs::create_dir_all(&server.dir).map_err(io_error("creating the server directory"))?;
        std::fs::create_dir_all(&server.run_dir).map_err(io_error("creating the run directory"))?;
        if spec.limits.disk_mb > 0 {
            // Measured afresh: a start is rare, and the last figure may
            // predate what an install or the server itself wrote.
            let used_mb = self.shared.usage.measure(&server.dir) >> 20;
            if used_mb > spec.limits.disk_mb {
                return Err(RuntimeError::DiskLimit {
                    server: server.id.clone(),
                    used_mb,
                    limit_mb: spec.limits.disk_mb,
                });
            }
        }
        let plan = &spec.startup;
        for edit in &plan.config_edits {
            let path = confined(&server.dir, &edit.path)?;
            config_edit::apply(&path, edit)?;
        }
        let working_dir = if plan.working_dir.trim().is_empty() || plan.working_dir == "." {
            server.dir.clone()
        } else {
            let dir = confined(&server.dir, &plan.working_dir)?;
            std::fs::create_dir_all(&dir).map_err(io_error("creating the working directory"))?;
            dir
        };
        if let Backend::Container(config) = &self.shared.config.backend {
            return self
                .start_container(server, &spec, config, &working_dir, automatic)
                .await;
        }
        let program =
            resolve_program(&server.dir, &self.shared.config.program_dirs, &plan.program)?;
        if let Some(user) = &self.shared.config.run_as {
            isolation::chown_tree(&server.dir, user)
                .map_err(io_error("giving the server directory to its user"))?;
        }

        // stdin: a FIFO the process holds open read-write, so it never sees
        // end-of-input when the Agent goes away.
        let stdin_path = server.stdin_path();
        let _ = std::fs::remove_file(&stdin_path);
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &stdin_path,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .map_err(|e| io_error("creating the console FIFO")(e.into()))?;
        let stdin = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&stdin_path)
            .map_err(io_error("opening the console FIFO"))?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(server.log_path())
            .map_err(io_error("creating the console log"))?;
        drop(log);
        let stdout = std::fs::OpenOptions::new()
            .append(true)
            .open(server.log_path())
            .map_err(io_error("opening the console log"))?;
        let stderr = stdout
            .try_clone()
            .map_err(io_error("opening the console log"))?;
        server.history.clear();

        let mut command = tokio::process::Command::new(&program);
        command
            .args(&plan.args)
            .current_dir(&working_dir)
            .env_clear()
            .envs(base_env(&server.dir))
            .envs(allocation_env(&spec.ports))
            .envs(plan.env.iter().map(|kv| (&kv.key, &kv.value)))
            .stdin(Stdio::from(stdin))
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr))
            .process_group(0)
            .kill_on_drop(false);
        let applied = limits::prepare(
            self.shared.config.cgroups.as_ref(),
            &server.id,
            &spec.limits,
            self.shared.config.run_as.as_ref(),
        )
        .apply_before_exec(&mut command);
        let child = command.spawn().map_err(|source| RuntimeError::Spawn {
            program: plan.program.clone(),
            source,
        })?;
        let pid = child.id().ok_or_else(|| RuntimeError::Spawn {
            program: plan.program.clone(),
            source: std::io::Error::other("the process exited at once"),
        })?;
        let start_ticks = procfs::stat(pid).map_or(0, |s| s.start_ticks);
        let generation = {
            let mut inner = server.lock();
            inner.generation += 1;
            inner.stopping = false;
            inner.exit_code = None;
            inner.crash_cause = None;
            inner.players.clear();
            inner.process = Some(Process {
                handle: Handle::Native { pid, start_ticks },
                limits: applied.clone(),
                started: Instant::now(),
                cpu_sample: None,
            });
            inner.generation
        };
        tracing::info!(server = %server.id, pid, ?applied, "started");
        self.set_state(
            server,
            ServerState::Starting,
            Some(if automatic {
                "automatic restart".into()
            } else {
                "started".into()
            }),
        )
        .await;
        self.watch_process(server, generation, Waiter::Child(child), 0);
        Ok(())
    }

    /// Waits until the server is no longer alive, up to `timeout`.
    async fn wait_down(server: &Server, timeout: Duration) -> bool {
        let mut rx = server.state_tx.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|s| !s.is_alive()))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// The live process's pid, checked against its start time.
    fn live_pid(server: &Server) -> Option<u32> {
        let inner = server.lock();
        let process = inner.process.as_ref()?;
        let (pid, ticks) = (process.pid()?, process.start_ticks()?);
        procfs::is_same_live_process(pid, ticks).then_some(pid)
    }

    /// Signals the server's process group, or its container.
    async fn send_signal(&self, server: &Server, signal: Signal) {
        let handle = server.lock().process.as_ref().map(|p| p.handle.clone());
        match handle {
            Some(Handle::Native { pid, start_ticks })
                if procfs::is_same_live_process(pid, start_ticks) =>
            {
                signals::kill_group(pid, signal);
            }
            Some(Handle::Container { id, .. }) => {
                if let Backend::Container(config) = &self.shared.config.backend
                    && let Err(error) = config.engine.signal(&id, signals::name(signal)).await
                {
                    tracing::warn!(server = %server.id, %error, "signal not delivered");
                }
            }
            Some(Handle::Native { .. }) | None => {}
        }
    }

    /// Stops `server`; the caller holds its `op` lock.
    async fn stop_locked(&self, server: &Arc<Server>) -> Result<(), RuntimeError> {
        let (spec, state) = {
            let mut inner = server.lock();
            if !inner.state.is_alive() {
                return Err(RuntimeError::NotRunning(server.id.clone()));
            }
            inner.stopping = true;
            (inner.spec.clone(), inner.state)
        };
        if state != ServerState::Stopping {
            self.set_state(server, ServerState::Stopping, Some("stop requested".into()))
                .await;
        }
        let grace = spec.as_ref().map_or(Duration::from_secs(10), |s| {
            Duration::from_secs(u64::from(s.stop.grace_secs))
        });
        match spec.as_ref().map(|s| &s.stop.method) {
            Some(StopMethod::ConsoleCommand { command }) => {
                if let Err(error) = self.write_console(server, command).await {
                    tracing::warn!(server = %server.id, %error, "stop command not delivered");
                }
            }
            Some(StopMethod::SendSignal { signal }) => {
                self.send_signal(server, signals::from_plan(*signal)).await;
            }
            None => self.send_signal(server, Signal::TERM).await,
        }
        if Self::wait_down(server, grace).await {
            return Ok(());
        }
        tracing::info!(server = %server.id, "grace time over: SIGTERM");
        self.send_signal(server, Signal::TERM).await;
        if Self::wait_down(server, self.shared.config.term_grace).await {
            return Ok(());
        }
        self.kill_now(server).await
    }

    async fn kill_now(&self, server: &Arc<Server>) -> Result<(), RuntimeError> {
        tracing::info!(server = %server.id, "SIGKILL");
        server.lock().stopping = true;
        self.send_signal(server, Signal::KILL).await;
        if Self::wait_down(server, Duration::from_secs(10)).await {
            Ok(())
        } else {
            Err(RuntimeError::Unkillable(server.id.clone()))
        }
    }

    async fn write_console(&self, server: &Server, line: &str) -> Result<(), RuntimeError> {
        if line.contains(['\n', '\r']) {
            return Err(RuntimeError::InvalidConsoleInput);
        }
        let container_input = server
            .lock()
            .process
            .as_ref()
            .and_then(|p| match &p.handle {
                Handle::Container { input, .. } => Some(input.clone()),
                Handle::Native { .. } => None,
            });
        if let Some(input) = container_input {
            let mut bytes = Vec::with_capacity(line.len() + 1);
            bytes.extend_from_slice(line.as_bytes());
            bytes.push(b'\n');
            let mut input = input.lock().await;
            return tokio::time::timeout(Duration::from_secs(5), async {
                input.write_all(&bytes).await?;
                input.flush().await
            })
            .await
            .map_err(|_| {
                io_error("writing to the console")(std::io::Error::from(
                    std::io::ErrorKind::TimedOut,
                ))
            })?
            .map_err(io_error("writing to the console"));
        }
        if Self::live_pid(server).is_none() {
            return Err(RuntimeError::NotRunning(server.id.clone()));
        }
        let mut pipe = tokio::net::unix::pipe::OpenOptions::new()
            .open_sender(server.stdin_path())
            .map_err(io_error("opening the console FIFO"))?;
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        tokio::time::timeout(Duration::from_secs(5), pipe.write_all(&bytes))
            .await
            .map_err(|_| {
                io_error("writing to the console")(std::io::Error::from(
                    std::io::ErrorKind::TimedOut,
                ))
            })?
            .map_err(io_error("writing to the console"))?;
        Ok(())
    }
}

/// The program to run: a path with a `/` is relative to the server
/// directory; a bare name is looked up in the server directory, then in
/// `program_dirs`, then `PATH`.
fn resolve_program(
    server_dir: &Path,
    program_dirs: &[PathBuf],
    program: &str,
) -> Result<PathBuf, RuntimeError> {
    if program.contains('/') {
        if Path::new(program).is_absolute() {
            return Ok(PathBuf::from(program));
        }
        return Ok(confined(server_dir, program)?);
    }
    let local = server_dir.join(program);
    if local.is_file() {
        return Ok(local);
    }
    if let Some(found) = program_dirs
        .iter()
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
    {
        return Ok(found);
    }
    Ok(PathBuf::from(program))
}

fn stats(server: &Server) -> Option<AgentMessage> {
    let mut inner = server.lock();
    if !inner.state.is_alive() {
        return None;
    }
    let players = inner
        .spec
        .as_ref()
        .map(|_| u32::try_from(inner.players.len()).unwrap_or(u32::MAX));
    let process = inner.process.as_mut()?;
    let (pid, start_ticks) = (process.pid()?, process.start_ticks()?);
    let stat = procfs::stat(pid)?;
    if stat.start_ticks != start_ticks {
        return None;
    }
    let now = Instant::now();
    let cpu_percent = match process.cpu_sample {
        Some((ticks, at)) => {
            let secs = now.duration_since(at).as_secs_f64();
            let used =
                stat.cpu_ticks.saturating_sub(ticks) as f64 / procfs::ticks_per_second() as f64;
            if secs > 0.0 { used / secs * 100.0 } else { 0.0 }
        }
        None => 0.0,
    };
    process.cpu_sample = Some((stat.cpu_ticks, now));
    Some(AgentMessage::Stats {
        server_id: server.id.clone(),
        cpu_percent,
        memory_bytes: stat.rss_pages.saturating_mul(procfs::page_size()),
        uptime_secs: procfs::process_age(start_ticks).map_or(0, |d| d.as_secs()),
        players,
        network_rx_bytes: None,
        network_tx_bytes: None,
        disk_bytes: None,
    })
}

/// What a monitor waits on.
enum Waiter {
    /// Our own child: `wait` gives its status.
    Child(tokio::process::Child),
    /// A process from an earlier Agent run: polled in `/proc`.
    Adopted { pid: u32, ticks: u64 },
    /// A container: the engine says when and how it ended; `pump` copies
    /// its output to the console log and is let finish first.
    Container {
        engine: container::Engine,
        id: String,
        pump: tokio::task::JoinHandle<()>,
        /// Where a re-attach puts the new stdin.
        input: ContainerInput,
        /// The console log a re-attach appends to.
        log: PathBuf,
        /// OOM kills the engine may not report.
        oom: container::OomWatch,
    },
}

impl Waiter {
    async fn wait(self) -> Exit {
        use std::os::unix::process::ExitStatusExt;
        match self {
            Self::Child(mut child) => match child.wait().await {
                Ok(status) => match (status.code(), status.signal()) {
                    (Some(code), _) => Exit::Code(code),
                    (None, Some(signal)) => Exit::Signal(signal),
                    (None, None) => Exit::Unknown,
                },
                Err(_) => Exit::Unknown,
            },
            Self::Adopted { pid, ticks } => {
                while procfs::is_same_live_process(pid, ticks) {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Exit::Unknown
            }
            Self::Container {
                engine,
                id,
                pump,
                input,
                log,
                oom,
            } => {
                // The console stream ends when the container stops or when
                // the connection to the engine breaks (an engine restart):
                // then the engine says which. No `wait` request is held
                // open (see `Engine::exited`).
                let mut pump = Some(pump);
                let mut attached_at = Instant::now();
                let mut still_running = 0u32;
                let ended = loop {
                    if let Some(running) = pump.take() {
                        // Its output is all in the log once it ends.
                        let _ = running.await;
                    }
                    match engine.exited(&id).await {
                        Ok(Some(ended)) => break ended,
                        Ok(None) if still_running == 0 => {
                            // A container just stopping may still show as
                            // running: look again before attaching.
                            still_running += 1;
                            tokio::time::sleep(Duration::from_millis(250)).await;
                        }
                        Ok(None) => {
                            // The engine came back under a running
                            // container: follow its console again (at most
                            // once a second, whatever the stream does).
                            if let Some(wait) =
                                Duration::from_secs(1).checked_sub(attached_at.elapsed())
                            {
                                tokio::time::sleep(wait).await;
                            }
                            tracing::info!(container = %id, "the console stream ended under a running container: attaching again");
                            let since = log_mtime_secs(&log);
                            match engine.attach(&id).await {
                                Ok(attached) => {
                                    for chunk in engine.logs_since(&id, since).await {
                                        append_log(&log, &chunk);
                                    }
                                    *input.lock().await = attached.input;
                                    pump = Some(spawn_pump(log.clone(), attached.output));
                                    attached_at = Instant::now();
                                    still_running = 0;
                                }
                                Err(error) => {
                                    tracing::warn!(container = %id, %error, "attaching again failed");
                                    tokio::time::sleep(Duration::from_secs(1)).await;
                                }
                            }
                        }
                        // The engine is away: ask again.
                        Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
                    }
                };
                let code = ended.exit_code.and_then(|c| i32::try_from(c).ok());
                let oom_killed = ended.oom_killed || (oom.fired() && code == Some(137));
                match (oom_killed, code) {
                    (true, code) => Exit::OutOfMemory(code),
                    (false, Some(code)) => Exit::Code(code),
                    (false, None) => Exit::Unknown,
                }
            }
        }
    }
}

/// The console log's last write, in Unix seconds (0 when unknown).
fn log_mtime_secs(path: &Path) -> i64 {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}

/// Appends `bytes` to the log at `path` (created when missing).
fn append_log(path: &Path, bytes: &[u8]) {
    use std::io::Write;
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut file| file.write_all(bytes));
    if let Err(error) = written {
        tracing::warn!(log = %path.display(), %error, "could not write to the log");
    }
}

/// Copies a container's output to the log at `path` until it ends.
fn spawn_pump(
    path: PathBuf,
    mut output: std::pin::Pin<
        Box<dyn futures::Stream<Item = Result<bytes::Bytes, EngineError>> + Send>,
    >,
) -> tokio::task::JoinHandle<()> {
    use futures::StreamExt;
    tokio::spawn(async move {
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .await;
        let Ok(mut file) = file else {
            tracing::warn!(log = %path.display(), "could not open the console log");
            return;
        };
        while let Some(Ok(chunk)) = output.next().await {
            if file.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = file.flush().await;
    })
}

/// Bytes a directory tree takes on disk (allocated blocks; symbolic links
/// are not followed, and a file with several links counts once).
pub fn disk_usage(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0u64;
    let mut seen = std::collections::HashSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.nlink() > 1 && !meta.is_dir() && !seen.insert((meta.dev(), meta.ino())) {
            continue;
        }
        total = total.saturating_add(meta.blocks().saturating_mul(512));
        if meta.is_dir()
            && let Ok(entries) = std::fs::read_dir(&path)
        {
            stack.extend(entries.flatten().map(|e| e.path()));
        }
    }
    total
}

/// Where the server directory appears in its container (the egg
/// convention).
const CONTAINER_HOME: &str = "/home/container";

/// Capabilities an install container keeps: enough for a package manager
/// run as root in it (owners, modes, dropping to its own users), nothing
/// that reaches outside it.
const INSTALL_CAPABILITIES: [&str; 6] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "SETUID",
    "SETGID",
    "KILL",
];

impl NodeRuntime {
    /// Refuses a server this node's backend cannot run.
    fn check_runtime(&self, server_id: &str, image: Option<&str>) -> Result<(), RuntimeError> {
        match (&self.shared.config.backend, image) {
            (Backend::Native, Some(image)) => Err(RuntimeError::UnsupportedRuntime(format!(
                "server `{server_id}` runs in the container image `{image}`, and this node runs servers as native processes (start its Agent with --runtime container)"
            ))),
            (Backend::Container(_), None) => Err(RuntimeError::UnsupportedRuntime(format!(
                "server `{server_id}` names no container image (its game type offers a native command only), and this node runs servers in containers"
            ))),
            _ => Ok(()),
        }
    }

    /// Removes a container, logging (not failing) when the engine cannot.
    async fn remove_container(&self, id: &str) {
        if let Backend::Container(config) = &self.shared.config.backend
            && let Err(error) = config.engine.remove(id).await
        {
            tracing::warn!(container = %id, %error, "could not remove a container");
        }
    }

    /// The `uid:gid` a server's containers run as, giving its directory to
    /// that user: a uid of its own when the Agent is root (allocated once
    /// and kept in `state.json`), else the Agent's own.
    fn container_user(
        &self,
        server: &Server,
        config: &ContainerConfig,
    ) -> Result<String, RuntimeError> {
        if !rustix::process::geteuid().is_root() {
            let uid = rustix::process::getuid().as_raw();
            let gid = rustix::process::getgid().as_raw();
            return Ok(format!("{uid}:{gid}"));
        }
        let existing = server.lock().uid;
        let uid = match existing {
            Some(uid) => uid,
            None => {
                let used: BTreeSet<u32> = self
                    .servers()
                    .values()
                    .filter_map(|s| s.lock().uid)
                    .collect();
                let uid = (config.uid_base..u32::MAX)
                    .find(|uid| !used.contains(uid))
                    .ok_or_else(|| RuntimeError::UnsupportedRuntime("no free uid left".into()))?;
                server.lock().uid = Some(uid);
                server.persist();
                uid
            }
        };
        let user = RunAs {
            name: format!("uid {uid}"),
            uid,
            gid: uid,
        };
        isolation::chown_tree(&server.dir, &user)
            .map_err(io_error("giving the server directory to its user"))?;
        Ok(format!("{uid}:{uid}"))
    }

    /// The container backend's half of [`Self::start_locked`].
    async fn start_container(
        &self,
        server: &Arc<Server>,
        spec: &ServerSpec,
        config: &ContainerConfig,
        working_dir: &Path,
        automatic: bool,
    ) -> Result<(), RuntimeError> {
        let engine = &config.engine;
        let image = spec.image.clone().unwrap_or_default();
        let log = server.log_path();
        std::fs::write(&log, b"").map_err(io_error("creating the console log"))?;
        server.history.clear();
        // A pull's progress reaches the console as it happens: a tail of its
        // own follows the log while the image is fetched, and the game's
        // tail starts where it stopped.
        let (pull_done, pull_tail) = self.plain_tail(server, &log);
        let pulled = engine
            .ensure_image(&image, |line| {
                append_log(&log, format!("[Agent] {line}\n").as_bytes());
            })
            .await;
        let _ = pull_done.send(true);
        let _ = pull_tail.await;
        pulled?;
        let offset = std::fs::metadata(&log).map_or(0, |m| m.len());
        let user = self.container_user(server, config)?;
        let relative = working_dir
            .strip_prefix(&server.dir)
            .unwrap_or(Path::new(""));
        let working_dir = Path::new(CONTAINER_HOME).join(relative);
        let plan = &spec.startup;
        let entrypoint = (!plan.program.trim().is_empty()).then(|| vec![plan.program.clone()]);
        let mut env = vec![
            format!("HOME={CONTAINER_HOME}"),
            "USER=container".to_owned(),
            "LANG=C.UTF-8".to_owned(),
            format!("SERVER_MEMORY={}", spec.limits.memory_mb),
        ];
        env.extend(
            allocation_env(&spec.ports)
                .into_iter()
                .map(|(key, value)| format!("{key}={value}")),
        );
        env.extend(plan.env.iter().map(|kv| format!("{}={}", kv.key, kv.value)));
        let container_spec = container::ContainerSpec {
            server_id: server.id.clone(),
            role: container::Role::Server,
            image: image.clone(),
            entrypoint,
            cmd: plan.args.clone(),
            env,
            working_dir: working_dir.display().to_string(),
            user,
            mounts: vec![container::BindMount {
                host: server.dir.clone(),
                container: CONTAINER_HOME.to_owned(),
                read_only: false,
            }],
            memory_bytes: i64::try_from(spec.limits.memory_mb.saturating_mul(1 << 20))
                .unwrap_or(i64::MAX),
            cpu_percent: spec.limits.cpu_percent,
            pids_limit: match spec.limits.max_processes {
                0 => config.default_pids,
                n => i64::from(n),
            },
            nofile: config.nofile,
            cap_add: Vec::new(),
            tmp_mb: config.tmp_mb,
            ports: spec
                .ports
                .iter()
                .map(|p| container::Published {
                    ip: p.ip.clone(),
                    port: p.port,
                })
                .collect(),
        };
        let id = engine.create(&container_spec).await?;
        let attached = match engine.attach(&id).await {
            Ok(attached) => attached,
            Err(error) => {
                self.remove_container(&id).await;
                return Err(error.into());
            }
        };
        let pump = spawn_pump(log.clone(), attached.output);
        // Watching for OOM kills from before the start on.
        let oom = container::OomWatch::start(&id, None);
        if let Err(error) = engine.start(&id).await {
            pump.abort();
            self.remove_container(&id).await;
            return Err(error.into());
        }
        let applied = LimitsApplied::Container {
            id: id.clone(),
            image,
        };
        let input: ContainerInput = Arc::new(tokio::sync::Mutex::new(attached.input));
        let generation = {
            let mut inner = server.lock();
            inner.generation += 1;
            inner.stopping = false;
            inner.exit_code = None;
            inner.crash_cause = None;
            inner.players.clear();
            inner.container_id = Some(id.clone());
            inner.process = Some(Process {
                handle: Handle::Container {
                    id: id.clone(),
                    input: input.clone(),
                },
                limits: applied,
                started: Instant::now(),
                cpu_sample: None,
            });
            inner.generation
        };
        tracing::info!(server = %server.id, container = %id, "started in a container");
        self.set_state(
            server,
            ServerState::Starting,
            Some(if automatic {
                "automatic restart".into()
            } else {
                "started".into()
            }),
        )
        .await;
        let waiter = Waiter::Container {
            engine: engine.clone(),
            id,
            pump,
            input,
            log,
            oom,
        };
        self.watch_process(server, generation, waiter, offset);
        Ok(())
    }

    /// Takes a running container of an earlier Agent run back: what it
    /// printed meanwhile is appended to its console log (lines of the
    /// second the Agent stopped in may appear twice), then its console and
    /// exit are followed again.
    async fn adopt_container(&self, server: &Arc<Server>, id: &str) -> Result<(), RuntimeError> {
        let Backend::Container(config) = &self.shared.config.backend else {
            return Ok(());
        };
        let engine = config.engine.clone();
        let log = server.log_path();
        let since = log_mtime_secs(&log);
        let attached = engine.attach(id).await?;
        for chunk in engine.logs_since(id, since).await {
            append_log(&log, &chunk);
        }
        for line in console::tail_lines(&log, server.history.capacity()) {
            server.history.push(line);
        }
        let offset = std::fs::metadata(&log).map_or(0, |m| m.len());
        let pump = spawn_pump(log.clone(), attached.output);
        let input: ContainerInput = Arc::new(tokio::sync::Mutex::new(attached.input));
        let image = server
            .lock()
            .spec
            .as_ref()
            .and_then(|s| s.image.clone())
            .unwrap_or_default();
        let generation = {
            let mut inner = server.lock();
            inner.generation += 1;
            inner.container_id = Some(id.to_owned());
            inner.process = Some(Process {
                handle: Handle::Container {
                    id: id.to_owned(),
                    input: input.clone(),
                },
                limits: LimitsApplied::Container {
                    id: id.to_owned(),
                    image,
                },
                started: Instant::now(),
                cpu_sample: None,
            });
            if inner.state == ServerState::Stopping || !inner.state.is_alive() {
                inner.state = ServerState::Running;
            }
            inner.generation
        };
        server.state_tx.send_replace(server.lock().state);
        server.persist();
        tracing::info!(server = %server.id, container = %id, "re-adopted a running container");
        let oom = container::OomWatch::start(id, engine.pid(id).await);
        let waiter = Waiter::Container {
            engine,
            id: id.to_owned(),
            pump,
            input,
            log,
            oom,
        };
        self.watch_process(server, generation, waiter, offset);
        Ok(())
    }

    /// Runs an install plan on the container backend: scripts in an
    /// install container, the other steps as on a native node. Script
    /// output goes to the install log and, as it comes, to the console.
    async fn install_in_containers(
        &self,
        server: &Arc<Server>,
        plan: &InstallPlan,
        config: &ContainerConfig,
    ) -> Result<(), RuntimeError> {
        let log = server.run_dir.join("install.log");
        std::fs::write(&log, b"").map_err(io_error("creating the install log"))?;
        let (finish_tx, tail) = self.plain_tail(server, &log);
        let mut result = Ok(());
        for step in &plan.steps {
            result = match step {
                InstallStep::RunScript(script) => {
                    self.run_install_container(server, plan.image.as_deref(), script, config, &log)
                        .await
                }
                other => {
                    let single = InstallPlan {
                        steps: vec![other.clone()],
                        image: None,
                        wipe: false,
                    };
                    self.shared
                        .installer
                        .run(&server.dir, &log, &single)
                        .await
                        .map_err(RuntimeError::from)
                }
            };
            if result.is_err() {
                break;
            }
        }
        if result.is_ok() {
            result = self.container_user(server, config).map(|_| ());
        }
        let _ = finish_tx.send(true);
        let _ = tail.await;
        result
    }

    async fn run_install_container(
        &self,
        server: &Arc<Server>,
        image: Option<&str>,
        script: &Script,
        config: &ContainerConfig,
        log: &Path,
    ) -> Result<(), RuntimeError> {
        let Some(image) = image else {
            return Err(RuntimeError::UnsupportedRuntime(format!(
                "the install plan of server `{}` runs a script and names no image to run it in",
                server.id
            )));
        };
        let engine = &config.engine;
        engine
            .ensure_image(image, |line| {
                append_log(log, format!("[Agent] {line}\n").as_bytes());
            })
            .await?;
        let script_dir = server.run_dir.join("install");
        let _ = std::fs::remove_dir_all(&script_dir);
        std::fs::create_dir_all(&script_dir).map_err(io_error("creating the install directory"))?;
        write_atomically(
            &script_dir.join("install.sh"),
            script.contents.as_bytes(),
            Some(0o755),
        )
        .map_err(io_error("writing the install script"))?;
        let spec = container::ContainerSpec {
            server_id: server.id.clone(),
            role: container::Role::Install,
            image: image.to_owned(),
            entrypoint: Some(vec![
                script.interpreter.clone(),
                "/mnt/install/install.sh".to_owned(),
            ]),
            cmd: Vec::new(),
            env: std::iter::once("HOME=/mnt/server".to_owned())
                .chain(
                    script
                        .env
                        .iter()
                        .map(|kv| format!("{}={}", kv.key, kv.value)),
                )
                .collect(),
            working_dir: "/mnt/server".to_owned(),
            user: "0:0".to_owned(),
            mounts: vec![
                container::BindMount {
                    host: server.dir.clone(),
                    container: "/mnt/server".to_owned(),
                    read_only: false,
                },
                container::BindMount {
                    host: script_dir.clone(),
                    container: "/mnt/install".to_owned(),
                    read_only: true,
                },
            ],
            memory_bytes: i64::try_from(config.install_memory_mb.saturating_mul(1 << 20))
                .unwrap_or(i64::MAX),
            cpu_percent: 0,
            pids_limit: config.default_pids,
            nofile: config.nofile,
            cap_add: INSTALL_CAPABILITIES
                .iter()
                .map(|c| (*c).to_owned())
                .collect(),
            tmp_mb: config.tmp_mb,
            ports: Vec::new(),
        };
        let id = engine.create(&spec).await?;
        let outcome = async {
            let attached = engine.attach(&id).await?;
            let pump = spawn_pump(log.to_path_buf(), attached.output);
            engine.start(&id).await?;
            let limit = Duration::from_secs(u64::from(script.timeout_secs.max(1)));
            let waited = tokio::time::timeout(limit, async {
                loop {
                    // An install's console is its log: after an engine
                    // restart the rest of its output is fetched at the end.
                    if let container::Waited::Ended(ended) = engine.wait(&id).await {
                        break ended;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            });
            match waited.await {
                Ok(ended) => {
                    let _ = tokio::time::timeout(Duration::from_secs(5), pump).await;
                    Ok(Some(ended))
                }
                Err(_) => {
                    pump.abort();
                    Ok(None)
                }
            }
        }
        .await;
        self.remove_container(&id).await;
        let _ = std::fs::remove_dir_all(&script_dir);
        match outcome {
            Err(error) => Err(RuntimeError::Engine(error)),
            Ok(None) => Err(InstallError::ScriptTimedOut {
                interpreter: script.interpreter.clone(),
                secs: script.timeout_secs,
            }
            .into()),
            Ok(Some(ended)) if ended.oom_killed => Err(InstallError::ScriptFailed {
                interpreter: script.interpreter.clone(),
                status: "killed: out of memory".into(),
                last_output: crate::install::last_output_line(log),
            }
            .into()),
            Ok(Some(ended)) if ended.exit_code == Some(0) => Ok(()),
            Ok(Some(ended)) => Err(InstallError::ScriptFailed {
                interpreter: script.interpreter.clone(),
                status: ended.exit_code.map_or_else(
                    || "an unknown status".to_owned(),
                    |c| format!("exit code {c}"),
                ),
                last_output: crate::install::last_output_line(log),
            }
            .into()),
        }
    }

    /// A stats sample of a server in a container.
    async fn container_stats(&self, server: &Server) -> Option<AgentMessage> {
        let Backend::Container(config) = &self.shared.config.backend else {
            return None;
        };
        let id = {
            let inner = server.lock();
            if !inner.state.is_alive() {
                return None;
            }
            inner.process.as_ref()?.container_id()?.to_owned()
        };
        let sample = config.engine.sample(&id).await?;
        let mut inner = server.lock();
        let players = inner
            .spec
            .as_ref()
            .map(|_| u32::try_from(inner.players.len()).unwrap_or(u32::MAX));
        let process = inner.process.as_mut()?;
        let now = Instant::now();
        let cpu_percent = match process.cpu_sample {
            Some((ns, at)) => {
                let secs = now.duration_since(at).as_secs_f64();
                let used = sample.cpu_ns.saturating_sub(ns) as f64 / 1e9;
                if secs > 0.0 { used / secs * 100.0 } else { 0.0 }
            }
            None => 0.0,
        };
        process.cpu_sample = Some((sample.cpu_ns, now));
        Some(AgentMessage::Stats {
            server_id: server.id.clone(),
            cpu_percent,
            memory_bytes: sample.memory_bytes,
            uptime_secs: process.started.elapsed().as_secs(),
            players,
            network_rx_bytes: Some(sample.rx_bytes),
            network_tx_bytes: Some(sample.tx_bytes),
            disk_bytes: None,
        })
    }

    /// Stops a running server whose directory went over its disk limit,
    /// after a warning on its console (as Wings does).
    async fn enforce_disk(&self, server: &Arc<Server>) -> Option<u64> {
        let limit_mb = {
            let inner = server.lock();
            if !inner.state.is_alive() || inner.stopping {
                return None;
            }
            inner.spec.as_ref()?.limits.disk_mb
        };
        // A walk of the server's files every `disk_interval`, the kept
        // figure (with what the file manager and SFTP wrote since) in
        // between; the limit is enforced after each walk, once.
        let usage = self.shared.usage.clone();
        if let Some((age, used)) = usage.last(&server.dir)
            && age < usage.max_age()
        {
            return Some(used);
        }
        let dir = server.dir.clone();
        let used = tokio::task::spawn_blocking(move || usage.measure(&dir))
            .await
            .ok()?;
        if limit_mb == 0 || used >> 20 <= limit_mb {
            return Some(used);
        }
        let warning = format!(
            "[Agent] this server uses {} MiB of disk, over its limit of {limit_mb} MiB: stopping it\n",
            used >> 20
        );
        append_log(&server.log_path(), warning.as_bytes());
        tracing::warn!(server = %server.id, used, limit_mb, "over the disk limit: stopping");
        let runtime = self.clone();
        let server = server.clone();
        tokio::spawn(async move {
            let _op = server.op.lock().await;
            if server.lock().state.is_alive()
                && let Err(error) = runtime.stop_locked(&server).await
            {
                tracing::warn!(server = %server.id, %error, "could not stop a server over its disk limit");
            }
        });
        Some(used)
    }
}

/// A reinstall's wipe (`wipe`: the plan asks for it): empties `server`'s
/// directory through the confined file code
/// ([`crate::files::ServerFiles::empty`]), before either backend runs the
/// plan. A directory that does not exist yet has nothing to empty.
async fn wipe(server: &Server, wipe: bool) -> Result<(), RuntimeError> {
    if !wipe {
        return Ok(());
    }
    let dir = server.dir.clone();
    let removed = tokio::task::spawn_blocking(move || {
        match crate::files::ServerFiles::open(&dir, cap_protocol::files::FileScope::default()) {
            Ok(files) => files.empty(),
            Err(error) if error.code == cap_protocol::files::FileErrorCode::UnknownServer => Ok(0),
            Err(error) => Err(error),
        }
    })
    .await
    .map_err(|e| {
        RuntimeError::Wipe(cap_protocol::files::FileError::new(
            cap_protocol::files::FileErrorCode::Io,
            format!("the wipe did not finish: {e}"),
        ))
    })?
    .map_err(RuntimeError::Wipe)?;
    tracing::info!(server = %server.id, removed, "emptied the server's directory for a reinstall");
    Ok(())
}

impl ServerRuntime for NodeRuntime {
    async fn install(&self, server_id: &str, plan: &InstallPlan) -> Result<(), RuntimeError> {
        let server = self.server(server_id)?;
        let _op = server.op.lock().await;
        let state = server.lock().state;
        if state.is_alive() {
            return Err(RuntimeError::AlreadyRunning(server_id.to_owned()));
        }
        self.set_state(&server, ServerState::Installing, None).await;
        let result = match wipe(&server, plan.wipe).await {
            Err(error) => Err(error),
            Ok(()) => match &self.shared.config.backend {
                Backend::Native => self
                    .shared
                    .installer
                    .run(&server.dir, &server.run_dir.join("install.log"), plan)
                    .await
                    .map_err(RuntimeError::from),
                Backend::Container(config) => {
                    self.install_in_containers(&server, plan, config).await
                }
            },
        };
        // The wipe and the install script rewrote the directory.
        self.shared.usage.forget(&server.dir);
        match &result {
            Ok(()) => {
                self.set_state(&server, ServerState::Offline, Some("installed".into()))
                    .await;
            }
            Err(error) => {
                self.set_state(
                    &server,
                    ServerState::InstallFailed,
                    Some(format!("install failed: {error}")),
                )
                .await;
            }
        }
        result
    }

    async fn start(&self, server_id: &str, spec: ServerSpec) -> Result<(), RuntimeError> {
        let server = self.server(server_id)?;
        let _op = server.op.lock().await;
        self.start_locked(&server, spec, false).await
    }

    async fn stop(&self, server_id: &str) -> Result<(), RuntimeError> {
        let server = self.existing(server_id)?;
        let _op = server.op.lock().await;
        self.stop_locked(&server).await
    }

    async fn restart(&self, server_id: &str, spec: ServerSpec) -> Result<(), RuntimeError> {
        let server = self.server(server_id)?;
        let _op = server.op.lock().await;
        match self.stop_locked(&server).await {
            Ok(()) | Err(RuntimeError::NotRunning(_)) => {}
            Err(error) => return Err(error),
        }
        self.start_locked(&server, spec, false).await
    }

    async fn kill(&self, server_id: &str) -> Result<(), RuntimeError> {
        let server = self.existing(server_id)?;
        let _op = server.op.lock().await;
        if !server.lock().state.is_alive() {
            return Err(RuntimeError::NotRunning(server_id.to_owned()));
        }
        self.kill_now(&server).await
    }

    async fn delete(&self, server_id: &str) -> Result<(), RuntimeError> {
        let server = self.existing(server_id)?;
        let _op = server.op.lock().await;
        if server.lock().state.is_alive() {
            self.kill_now(&server).await?;
        }
        let previous = {
            let mut inner = server.lock();
            inner.deleted = true;
            inner.state
        };
        self.servers().remove(server_id);
        if let Backend::Container(config) = &self.shared.config.backend {
            for role in [container::Role::Server, container::Role::Install] {
                let name = config.engine.container_name(server_id, role);
                self.remove_container(&name).await;
            }
        }
        self.shared.usage.forget(&server.dir);
        for dir in [&server.dir, &server.run_dir] {
            match std::fs::remove_dir_all(dir) {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => return Err(io_error("removing the server's files")(error)),
            }
        }
        if previous != ServerState::Offline {
            self.emit(AgentMessage::StateChange {
                server_id: server_id.to_owned(),
                previous,
                state: ServerState::Offline,
                reason: Some("deleted".into()),
            })
            .await;
        }
        Ok(())
    }

    async fn console_input(&self, server_id: &str, line: &str) -> Result<(), RuntimeError> {
        let server = self.existing(server_id)?;
        self.write_console(&server, line).await
    }

    fn reports(&self) -> Vec<ServerReport> {
        let mut servers: Vec<Arc<Server>> = self.servers().values().cloned().collect();
        servers.sort_by(|a, b| a.id.cmp(&b.id));
        servers.iter().map(|s| s.report()).collect()
    }

    fn history(&self, server_id: &str) -> Vec<String> {
        self.servers()
            .get(server_id)
            .map(|s| s.history.snapshot())
            .unwrap_or_default()
    }

    fn set_classifier(&self, game: &str, classifier: Arc<dyn Classifier>) {
        self.shared
            .classifiers
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(game.to_owned(), classifier);
    }

    fn has_classifier(&self, game: &str) -> bool {
        self.shared
            .classifiers
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains_key(game)
    }
}
