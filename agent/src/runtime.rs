//! Running game servers: the [`ServerRuntime`] trait and [`NativeRuntime`],
//! which runs them as plain processes.
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
//!   [`NativeRuntimeConfig::term_grace`].
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
//!
//! [`RestartPolicy`]: cap_protocol::RestartPolicy

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cap_protocol::{
    AgentMessage, ConsoleEvent, InstallPlan, LimitsApplied, ServerReport, ServerSpec, ServerState,
    StopMethod,
};
use rustix::process::Signal;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, watch};

use crate::config_edit::{self, ConfigEditError};
use crate::console::{self, Classifier, ConsoleConfig, History, TailSpec};
use crate::install::{InstallError, Installer, base_env, write_atomically};
use crate::isolation::{self, RunAs};
use crate::paths::{PathEscape, confined};
use crate::{limits, procfs, signals};

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
    /// File system trouble.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: std::io::Error,
    },
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
            Self::Io { .. } => "io-error",
        }
    }
}

fn io_error(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> RuntimeError {
    let context = context.into();
    move |source| RuntimeError::Io { context, source }
}

/// What runs game servers on a node. [`NativeRuntime`] runs processes;
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

/// [`NativeRuntime`] settings.
#[derive(Debug, Clone)]
pub struct NativeRuntimeConfig {
    /// Where servers and bookkeeping live.
    pub data_dir: PathBuf,
    /// Console pipeline settings.
    pub console: ConsoleConfig,
    /// After SIGTERM, how long before SIGKILL.
    pub term_grace: Duration,
    /// How often [`AgentMessage::Stats`] are sent per running server.
    pub stats_interval: Duration,
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
}

impl NativeRuntimeConfig {
    /// Defaults for a data directory: the cgroups this machine offers, and
    /// [`RunAs::default_for_agent`].
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            console: ConsoleConfig::default(),
            term_grace: Duration::from_secs(10),
            stats_interval: Duration::from_secs(5),
            cgroups: limits::detect_cgroups(),
            run_as: RunAs::default_for_agent(),
            download_timeout: Duration::from_secs(600),
            max_download_bytes: 8 << 30,
            program_dirs: Vec::new(),
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
}

#[derive(Debug, Clone)]
struct Process {
    pid: u32,
    start_ticks: u64,
    limits: LimitsApplied,
    started: Instant,
    cpu_sample: Option<(u64, Instant)>,
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
            pid: inner.process.as_ref().map(|p| p.pid),
            start_ticks: inner.process.as_ref().map(|p| p.start_ticks),
            limits: inner.process.as_ref().map(|p| p.limits.clone()),
            exit_code: inner.exit_code,
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
            pid: inner.process.as_ref().map(|p| p.pid),
            uptime_secs: inner
                .process
                .as_ref()
                .and_then(|p| procfs::process_age(p.start_ticks))
                .map(|age| age.as_secs()),
            exit_code: inner.exit_code,
            limits: inner.process.as_ref().map(|p| p.limits.clone()),
        }
    }
}

struct Shared {
    config: NativeRuntimeConfig,
    classifiers: std::sync::RwLock<Classifiers>,
    events: mpsc::Sender<AgentMessage>,
    installer: Installer,
    servers: Mutex<HashMap<String, Arc<Server>>>,
}

/// Runs game servers as native processes. Cheap to clone.
#[derive(Clone)]
pub struct NativeRuntime {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for NativeRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativeRuntime")
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
    /// An adopted process; its status went to its real parent.
    Unknown,
}

impl NativeRuntime {
    /// Opens the data directory and re-adopts every server whose process is
    /// still running; servers whose process died while the Agent was away
    /// are reported as crashed. Events go to `events`.
    ///
    /// # Errors
    ///
    /// The data directory cannot be created or read.
    pub async fn open(
        config: NativeRuntimeConfig,
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
        let runtime = Self {
            shared: Arc::new(Shared {
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
            let alive = match (record.pid, record.start_ticks) {
                (Some(pid), Some(ticks)) => procfs::is_same_live_process(pid, ticks),
                _ => false,
            };
            let was_alive = record.state.is_some_and(|s| s.is_alive());
            if let (true, Some(pid), Some(ticks)) = (alive, record.pid, record.start_ticks) {
                let started = Instant::now()
                    .checked_sub(procfs::process_age(ticks).unwrap_or_default())
                    .unwrap_or_else(Instant::now);
                let generation = {
                    let mut inner = server.lock();
                    inner.generation += 1;
                    inner.process = Some(Process {
                        pid,
                        start_ticks: ticks,
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
                let servers: Vec<Arc<Server>> = shared
                    .servers
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .values()
                    .cloned()
                    .collect();
                for server in servers {
                    if let Some(message) = stats(&server) {
                        let _ = shared.events.try_send(message);
                    }
                }
            }
        });
    }

    /// Spawns the console tail and the exit monitor for a process.
    fn watch_process(&self, server: &Arc<Server>, generation: u64, waiter: Waiter, offset: u64) {
        let (finish_tx, finish_rx) = watch::channel(false);
        let game = server.lock().spec.as_ref().map(|s| s.game.clone());
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
                Exit::Code(code) => Some(code),
                _ => None,
            };
            let exit_text = match exit {
                Exit::Code(code) => format!("exit code {code}"),
                Exit::Signal(signal) => format!("killed by signal {signal}"),
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
            // Leftover members of the group go with their leader.
            signals::kill_group(process.pid, Signal::KILL);
            limits::remove_cgroup(&process.limits);
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
        std::fs::create_dir_all(&server.dir).map_err(io_error("creating the server directory"))?;
        std::fs::create_dir_all(&server.run_dir).map_err(io_error("creating the run directory"))?;
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
                pid,
                start_ticks,
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
        procfs::is_same_live_process(process.pid, process.start_ticks).then_some(process.pid)
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
                if let Some(pid) = Self::live_pid(server) {
                    signals::kill_group(pid, signals::from_plan(*signal));
                }
            }
            None => {
                if let Some(pid) = Self::live_pid(server) {
                    signals::kill_group(pid, Signal::TERM);
                }
            }
        }
        if Self::wait_down(server, grace).await {
            return Ok(());
        }
        tracing::info!(server = %server.id, "grace time over: SIGTERM");
        if let Some(pid) = Self::live_pid(server) {
            signals::kill_group(pid, Signal::TERM);
        }
        if Self::wait_down(server, self.shared.config.term_grace).await {
            return Ok(());
        }
        self.kill_now(server).await
    }

    async fn kill_now(&self, server: &Arc<Server>) -> Result<(), RuntimeError> {
        tracing::info!(server = %server.id, "SIGKILL");
        server.lock().stopping = true;
        if let Some(pid) = Self::live_pid(server) {
            signals::kill_group(pid, Signal::KILL);
        }
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
    let stat = procfs::stat(process.pid)?;
    if stat.start_ticks != process.start_ticks {
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
        uptime_secs: procfs::process_age(process.start_ticks).map_or(0, |d| d.as_secs()),
        players,
    })
}

/// What a monitor waits on.
enum Waiter {
    /// Our own child: `wait` gives its status.
    Child(tokio::process::Child),
    /// A process from an earlier Agent run: polled in `/proc`.
    Adopted { pid: u32, ticks: u64 },
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
        }
    }
}

impl ServerRuntime for NativeRuntime {
    async fn install(&self, server_id: &str, plan: &InstallPlan) -> Result<(), RuntimeError> {
        let server = self.server(server_id)?;
        let _op = server.op.lock().await;
        let state = server.lock().state;
        if state.is_alive() {
            return Err(RuntimeError::AlreadyRunning(server_id.to_owned()));
        }
        self.set_state(&server, ServerState::Installing, None).await;
        let result = self
            .shared
            .installer
            .run(&server.dir, &server.run_dir.join("install.log"), plan)
            .await;
        let reason = match &result {
            Ok(()) => "installed".to_owned(),
            Err(error) => format!("install failed: {error}"),
        };
        self.set_state(&server, ServerState::Offline, Some(reason))
            .await;
        Ok(result?)
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
