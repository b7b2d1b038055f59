//! A loaded plugin: its pre-linked component, warm instances, limits,
//! health and quarantine, and the typed calls into each kind.
//!
//! Every call runs in a store with its own memory cap (a
//! [`wasmtime::ResourceLimiter`]), instance and table caps, and a wall-clock
//! deadline. The deadline costs a call no timer: epoch interruption bounds
//! time inside WebAssembly (and yields to the executor every tick, so a
//! spinning plugin never blocks a worker thread), and every wait the host
//! does for a plugin — capability services, WASI sleeps — ends at the
//! deadline (see [`crate::capabilities`]). A trap, timeout, limit breach or
//! refused output becomes a [`CallError`]; the instance involved is thrown
//! away and the failure is counted. After
//! [`RuntimeConfig::quarantine_after`](crate::RuntimeConfig) consecutive
//! failures the plugin is quarantined with a readable reason until an admin
//! releases it.
//!
//! # Overload is not the plugin's fault
//!
//! At most [`RuntimeConfig::max_concurrent_calls_per_plugin`](crate::RuntimeConfig)
//! calls into one plugin run at once; further calls wait for a slot, at most
//! the plugin's own timeout, and the call's deadline starts only once it has
//! a slot. A call that finds no slot in time, or whose instance the shared
//! pooling allocator cannot provide because every slot of the pool is taken,
//! fails with [`CallError::Overloaded`], which does **not** count towards
//! quarantine: a flood of requests (say, logins against an auth provider)
//! must not be able to quarantine a healthy plugin for everyone, and the
//! per-plugin bound keeps one busy plugin from taking the whole pool.
//!
//! # Quarantine outlives the process
//!
//! The runtime keeps quarantine in memory; the host persists it. A listener
//! set with [`Plugin::on_quarantine`] hears every quarantine as it happens,
//! and [`Plugin::restore_quarantine`] puts a stored one back (with its
//! original reason and time) after a restart without telling the listener
//! again.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use wasmtime::component::{InstancePre, Linker, ResourceTable};
use wasmtime::{ResourceLimiter, Store, Trap, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::api;
use crate::capabilities::wasi::{OutputCapture, build_ctx};
use crate::capabilities::{CapabilityContext, Grants, HostServices};
use crate::component::{ComponentInfo, inspect};
use crate::engine::{CodeSource, Limits, Runtime};
use crate::error::{CallError, LoadError};
use crate::manifest::{Manifest, PluginKind};
use crate::output;
use crate::wit::{self, ExportError};

/// How many recent log lines a plugin keeps for admins.
pub(crate) const RECENT_LOG_LINES: usize = 200;

pub(crate) fn add_to_linker(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    crate::capabilities::wasi::bound_sleeps(linker)?;
    wit::add_to_linker(linker)?;
    Ok(())
}

/// Memory, table and instance caps of one store.
#[derive(Debug)]
struct Limiter {
    memory_bytes: usize,
    memory_denied: bool,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            self.memory_denied = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }

    fn instances(&self) -> usize {
        32
    }

    fn tables(&self) -> usize {
        16
    }

    fn memories(&self) -> usize {
        4
    }
}

/// A log line a plugin wrote (through `log` or stderr).
#[derive(Debug, Clone, Serialize)]
pub struct LogLine {
    /// When.
    pub at: SystemTime,
    /// `trace` .. `error`, or `stdout` / `stderr`.
    pub level: String,
    /// The text.
    pub message: String,
}

/// A bounded ring of recent log lines, shared by a plugin's instances.
#[derive(Debug, Clone, Default)]
pub struct RecentLogs(Arc<Mutex<VecDeque<LogLine>>>);

impl RecentLogs {
    /// Keeps a line; `level` is a log level's WIT name (`info`) or the
    /// stream (`stdout`, `stderr`).
    pub(crate) fn push(&self, level: &str, message: &str) {
        let mut lines = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if lines.len() >= RECENT_LOG_LINES {
            lines.pop_front();
        }
        lines.push_back(LogLine {
            at: SystemTime::now(),
            level: level.to_string(),
            message: message.to_string(),
        });
    }

    /// The lines, oldest first.
    pub fn lines(&self) -> Vec<LogLine> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }
}

/// The data of one plugin store.
pub struct PluginState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: Limiter,
    pub(crate) caps: Arc<CapabilityContext>,
    pub(crate) config_defaults: Arc<HashMap<String, String>>,
    pub(crate) deadline: Instant,
    pub(crate) log_records: u32,
    pub(crate) recent_logs: RecentLogs,
    stdout: OutputCapture,
    stderr: OutputCapture,
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Marker error raised from the epoch callback.
#[derive(Debug)]
struct DeadlineExceeded;

impl std::fmt::Display for DeadlineExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("deadline exceeded")
    }
}

impl std::error::Error for DeadlineExceeded {}

/// An instance (of the plugin's WIT version) with its store.
struct Warm {
    store: Store<PluginState>,
    guest: wit::Guest,
}

/// Why and since when a plugin is quarantined.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Quarantine {
    /// For the admin.
    pub reason: String,
    /// When it happened.
    pub since: SystemTime,
}

/// A snapshot of a plugin's health.
#[derive(Debug, Clone, Serialize)]
pub struct PluginStatus {
    /// Calls made.
    pub calls: u64,
    /// Calls that failed.
    pub failures: u64,
    /// Failures since the last success.
    pub consecutive_failures: u32,
    /// The last failure.
    pub last_error: Option<String>,
    /// Set while quarantined.
    pub quarantine: Option<Quarantine>,
}

#[derive(Debug, Default)]
struct Health {
    /// Mirrors `quarantine.is_some()`, for the lock-free fast path.
    quarantined: AtomicBool,
    calls: AtomicU64,
    failures: AtomicU64,
    consecutive: AtomicU32,
    last_error: Mutex<Option<String>>,
    quarantine: Mutex<Option<Quarantine>>,
}

/// Told each time a plugin is quarantined (by the runtime or by hand).
pub type QuarantineListener = Arc<dyn Fn(&str, &Quarantine) + Send + Sync>;

/// Everything needed to load a plugin.
#[derive(Debug, Clone)]
pub struct PluginSpec {
    /// The validated manifest.
    pub manifest: Manifest,
    /// The component bytes.
    pub component: Arc<[u8]>,
    /// What the admin granted (intersected with the manifest's request).
    pub grants: Grants,
    /// Per-plugin admin caps, tighter than the runtime's, if any.
    pub limit_caps: Option<Limits>,
    /// Backing services for capabilities.
    pub services: HostServices,
}

struct PluginInner {
    runtime: Runtime,
    manifest: Manifest,
    info: ComponentInfo,
    code_source: CodeSource,
    limits: Limits,
    pre: InstancePre<PluginState>,
    exports: wit::Exports,
    caps: Arc<CapabilityContext>,
    config_defaults: Arc<HashMap<String, String>>,
    idle: Mutex<Vec<Warm>>,
    health: Health,
    logs: RecentLogs,
    /// Call slots: see the module docs on overload.
    slots: Arc<tokio::sync::Semaphore>,
    on_quarantine: Mutex<Option<QuarantineListener>>,
}

/// A loaded plugin. Cheap to clone; clones share instances and health.
#[derive(Clone)]
pub struct Plugin {
    inner: Arc<PluginInner>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("id", &self.id())
            .field("version", &self.inner.manifest.plugin.version.to_string())
            .field("limits", &self.inner.limits)
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// Validates, compiles (or loads from cache) and links a plugin.
    pub async fn load(&self, spec: PluginSpec) -> Result<Plugin, LoadError> {
        let PluginSpec {
            manifest,
            component,
            grants,
            limit_caps,
            services,
        } = spec;
        manifest.validate()?;
        let info = inspect(&component, self.config().max_component_bytes)?;
        if info.api_version != manifest.plugin.api {
            return Err(LoadError::ApiVersionMismatch {
                manifest: manifest.plugin.api.clone(),
                component: info.api_version.clone(),
            });
        }
        let (compiled, code_source) = self.compile(component, &info).await?;
        let pre = self
            .inner
            .linker
            .instantiate_pre(&compiled)
            .map_err(|e| LoadError::Link(format!("{e:#}")))?;
        let exports = wit::Exports::new(info.binding_version()?, &pre, &manifest)?;

        let config = self.config();
        let requested = Limits {
            memory_bytes: manifest
                .limits
                .memory_mb
                .map_or(config.default_limits.memory_bytes, |mb| (mb as usize) << 20),
            timeout: manifest
                .limits
                .timeout_ms
                .map_or(config.default_limits.timeout, |ms| {
                    Duration::from_millis(ms.into())
                }),
        };
        let mut limits = requested.min(config.max_limits);
        if let Some(caps) = limit_caps {
            limits = limits.min(caps);
        }

        let grants = grants.effective(&manifest);
        let caps = Arc::new(CapabilityContext::new(
            &manifest.plugin.id,
            grants,
            services,
        ));
        let config_defaults = Arc::new(
            manifest
                .config
                .iter()
                .filter_map(|c| c.default.clone().map(|d| (c.key.clone(), d)))
                .collect(),
        );
        tracing::info!(
            plugin = %manifest.plugin.id,
            version = %manifest.plugin.version,
            sha256 = %info.sha256,
            source = ?code_source,
            "plugin loaded"
        );
        Ok(Plugin {
            inner: Arc::new(PluginInner {
                runtime: self.clone(),
                manifest,
                info,
                code_source,
                limits,
                pre,
                exports,
                caps,
                config_defaults,
                idle: Mutex::new(Vec::new()),
                health: Health::default(),
                logs: RecentLogs::default(),
                slots: Arc::new(tokio::sync::Semaphore::new(
                    config.max_concurrent_calls_per_plugin.max(1),
                )),
                on_quarantine: Mutex::new(None),
            }),
        })
    }
}

impl Plugin {
    /// The plugin id.
    pub fn id(&self) -> &str {
        &self.inner.manifest.plugin.id
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.inner.manifest
    }

    /// What the component is.
    pub fn component_info(&self) -> &ComponentInfo {
        &self.inner.info
    }

    /// Whether the code came from the cache.
    pub fn code_source(&self) -> CodeSource {
        self.inner.code_source
    }

    /// The effective limits.
    pub fn limits(&self) -> Limits {
        self.inner.limits
    }

    /// The effective grants.
    pub fn grants(&self) -> &Grants {
        &self.inner.caps.grants
    }

    /// Recent log lines (log capability, stdout, stderr).
    pub fn logs(&self) -> Vec<LogLine> {
        self.inner.logs.lines()
    }

    /// Health and quarantine.
    pub fn status(&self) -> PluginStatus {
        let h = &self.inner.health;
        PluginStatus {
            calls: h.calls.load(Ordering::Relaxed),
            failures: h.failures.load(Ordering::Relaxed),
            consecutive_failures: h.consecutive.load(Ordering::Relaxed),
            last_error: h
                .last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            quarantine: self.quarantine(),
        }
    }

    /// The quarantine, if any.
    pub fn quarantine(&self) -> Option<Quarantine> {
        if !self.inner.health.quarantined.load(Ordering::Acquire) {
            return None;
        }
        self.inner
            .health
            .quarantine
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Quarantines the plugin by hand (the listener set with
    /// [`Plugin::on_quarantine`] is told).
    pub fn quarantine_now(&self, reason: &str) {
        let quarantine = Quarantine {
            reason: reason.to_string(),
            since: SystemTime::now(),
        };
        self.set_quarantine(quarantine.clone());
        let listener = self
            .inner
            .on_quarantine
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(listener) = listener {
            listener(self.id(), &quarantine);
        }
    }

    /// Puts back a quarantine the host stored (after a restart), keeping
    /// its reason and time; the quarantine listener is not told.
    pub fn restore_quarantine(&self, quarantine: Quarantine) {
        self.set_quarantine(quarantine);
    }

    /// Calls `listener` every time this plugin is quarantined from now on
    /// (replacing any earlier listener), so the host can persist it.
    pub fn on_quarantine(&self, listener: QuarantineListener) {
        *self
            .inner
            .on_quarantine
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(listener);
    }

    fn set_quarantine(&self, quarantine: Quarantine) {
        *self
            .inner
            .health
            .quarantine
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(quarantine);
        self.inner.health.quarantined.store(true, Ordering::Release);
        self.inner
            .idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// Lifts the quarantine and resets the failure streak.
    pub fn release_quarantine(&self) {
        self.inner.health.consecutive.store(0, Ordering::Relaxed);
        *self
            .inner
            .health
            .quarantine
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = None;
        self.inner
            .health
            .quarantined
            .store(false, Ordering::Release);
    }

    /// Instantiates up to `n` instances ahead of time and keeps them warm
    /// (bounded by the per-plugin warm limit), so first calls skip
    /// instantiation.
    pub async fn prewarm(&self, n: usize) -> Result<usize, CallError> {
        let limit = self.inner.runtime.config().warm_instances_per_plugin;
        let mut added = 0;
        while added < n && self.warm_instances() < limit {
            let warm = self.instantiate().await?;
            self.inner
                .idle
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(warm);
            added += 1;
        }
        Ok(added)
    }

    /// Idle warm instances currently kept.
    pub fn warm_instances(&self) -> usize {
        self.inner
            .idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    fn new_store(&self) -> Store<PluginState> {
        let inner = &self.inner;
        let stdout = OutputCapture::default();
        let stderr = OutputCapture::default();
        let state = PluginState {
            wasi: build_ctx(&inner.caps.grants, &stdout, &stderr),
            table: ResourceTable::new(),
            limiter: Limiter {
                memory_bytes: inner.limits.memory_bytes,
                memory_denied: false,
            },
            caps: inner.caps.clone(),
            config_defaults: inner.config_defaults.clone(),
            deadline: Instant::now() + inner.limits.timeout,
            log_records: 0,
            recent_logs: inner.logs.clone(),
            stdout,
            stderr,
        };
        let mut store = Store::new(&inner.runtime.inner.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.epoch_deadline_callback(|ctx| {
            if Instant::now() >= ctx.data().deadline {
                Err(wasmtime::Error::new(DeadlineExceeded))
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        store
    }

    /// Waits for a call slot, at most the plugin's timeout (see the module
    /// docs on overload). A refusal is recorded as a call but not as a
    /// failure.
    async fn admit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, CallError> {
        let waited = self.inner.limits.timeout;
        match tokio::time::timeout(waited, Arc::clone(&self.inner.slots).acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            // The semaphore is never closed; treat it like a full one.
            Ok(Err(_)) | Err(_) => {
                let error = CallError::Overloaded {
                    plugin: self.id().to_string(),
                    reason: format!(
                        "all {} call slots stayed busy for {waited:?}",
                        self.inner.runtime.config().max_concurrent_calls_per_plugin
                    ),
                };
                self.record(&Err(error.clone()));
                Err(error)
            }
        }
    }

    /// Takes a warm instance or makes a fresh one, with a new deadline.
    async fn checkout(&self, kind: PluginKind, fresh: bool) -> Result<Warm, CallError> {
        if let Some(q) = self.quarantine() {
            return Err(CallError::Quarantined {
                plugin: self.id().to_string(),
                reason: q.reason,
            });
        }
        if !self.inner.manifest.has_kind(kind) {
            return Err(CallError::NotImplemented {
                plugin: self.id().to_string(),
                kind: kind.to_string(),
            });
        }
        let reused = if fresh {
            None
        } else {
            self.inner
                .idle
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop()
        };
        let mut warm = match reused {
            Some(w) => w,
            None => self.instantiate().await?,
        };
        let state = warm.store.data_mut();
        state.deadline = Instant::now() + self.inner.limits.timeout;
        state.log_records = 0;
        warm.store.set_epoch_deadline(1);
        Ok(warm)
    }

    async fn instantiate(&self) -> Result<Warm, CallError> {
        let mut store = self.new_store();
        store.set_epoch_deadline(1);
        match self.inner.pre.instantiate_async(&mut store).await {
            Ok(instance) => Ok(Warm {
                store,
                guest: self.inner.exports.guest(instance),
            }),
            // Every slot of the shared pool is taken: the host is busy, the
            // plugin did nothing wrong.
            Err(e)
                if e.downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
                    .is_some() =>
            {
                Err(CallError::Overloaded {
                    plugin: self.id().to_string(),
                    reason: format!("{e:#}"),
                })
            }
            Err(e) => Err(CallError::Instantiate {
                plugin: self.id().to_string(),
                message: format!("{e:#}"),
            }),
        }
    }

    /// Classifies the outcome, checks the output size, returns the instance
    /// to the pool on success and records health.
    fn settle<R: Serialize>(
        &self,
        mut warm: Warm,
        outcome: wasmtime::Result<R>,
        size_limit: Option<usize>,
        check: impl FnOnce(&R) -> Result<(), String>,
    ) -> Result<R, CallError> {
        let plugin = self.id().to_string();
        let inner = &self.inner;
        let started = self.started(&warm.store);
        self.drain_output(&mut warm.store);
        let result = match outcome {
            Err(e) => Err(self.classify(&warm.store, e, started)),
            // A result that arrives after the deadline (say, a plugin that
            // answered quickly once a host wait was cut short) is late.
            Ok(_) if Instant::now() > warm.store.data().deadline => Err(CallError::Timeout {
                plugin,
                deadline: inner.limits.timeout,
                elapsed: started.elapsed(),
            }),
            Ok(value) => output::check_size(
                &value,
                size_limit.unwrap_or(inner.runtime.config().max_output_bytes),
            )
            .and_then(|()| check(&value))
            .map(|()| value)
            .map_err(|reason| CallError::BadOutput { plugin, reason }),
        };
        self.record(&result.as_ref().map(|_| ()).map_err(Clone::clone));
        if result.is_ok() {
            let mut idle = inner.idle.lock().unwrap_or_else(|p| p.into_inner());
            if idle.len() < inner.runtime.config().warm_instances_per_plugin
                && self.quarantine().is_none()
            {
                idle.push(warm);
            }
        }
        result
    }

    /// When the current call started: its deadline less the timeout (one
    /// clock read per call saved).
    fn started(&self, store: &Store<PluginState>) -> Instant {
        let deadline = store.data().deadline;
        deadline
            .checked_sub(self.inner.limits.timeout)
            .unwrap_or(deadline)
    }

    fn classify(
        &self,
        store: &Store<PluginState>,
        e: wasmtime::Error,
        started: Instant,
    ) -> CallError {
        let plugin = self.id().to_string();
        let state = store.data();
        if e.downcast_ref::<DeadlineExceeded>().is_some()
            || e.downcast_ref::<Trap>() == Some(&Trap::Interrupt)
        {
            return CallError::Timeout {
                plugin,
                deadline: self.inner.limits.timeout,
                elapsed: started.elapsed(),
            };
        }
        if state.limiter.memory_denied {
            return CallError::MemoryLimit {
                plugin,
                limit_bytes: state.limiter.memory_bytes,
            };
        }
        match e.downcast_ref::<Trap>() {
            Some(Trap::StackOverflow) => CallError::StackOverflow { plugin },
            Some(trap) => CallError::Trap {
                plugin,
                message: trap.to_string(),
                stderr: last_lines(&self.last_stderr(), 10),
            },
            // Errors that are not traps come from lifting the plugin's
            // results: invalid UTF-8, out-of-bounds pointers, bad enum
            // discriminants, and the like.
            None => CallError::BadOutput {
                plugin,
                reason: format!("{e:#}"),
            },
        }
    }

    fn last_stderr(&self) -> String {
        self.inner
            .logs
            .lines()
            .iter()
            .rev()
            .take_while(|l| l.level == "stderr")
            .map(|l| l.message.clone())
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn drain_output(&self, store: &mut Store<PluginState>) {
        let state = store.data_mut();
        for (stream, text) in [
            ("stdout", state.stdout.take()),
            ("stderr", state.stderr.take()),
        ] {
            let Some(text) = text else {
                continue;
            };
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                tracing::info!(plugin = %self.id(), stream, "{line}");
                self.inner.logs.push(stream, line);
            }
        }
    }

    fn record(&self, result: &Result<(), CallError>) {
        let h = &self.inner.health;
        h.calls.fetch_add(1, Ordering::Relaxed);
        match result {
            Ok(()) => {
                h.consecutive.store(0, Ordering::Relaxed);
            }
            Err(e) if e.counts_as_failure() => {
                h.failures.fetch_add(1, Ordering::Relaxed);
                let streak = h.consecutive.fetch_add(1, Ordering::Relaxed) + 1;
                *h.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
                tracing::warn!(plugin = %self.id(), error = %e, streak, "plugin call failed");
                let threshold = self.inner.runtime.config().quarantine_after;
                if threshold > 0 && streak >= threshold {
                    let reason = format!("{streak} consecutive failed calls; the last: {e}");
                    tracing::error!(plugin = %self.id(), %reason, "plugin quarantined");
                    self.quarantine_now(&reason);
                }
            }
            Err(_) => {}
        }
    }
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Generates a typed call: check out an instance, run the export (through
/// the plugin's WIT version, see [`crate::wit`]) under the deadline, settle
/// the outcome. The answer's JSON size is bounded by the runtime's
/// `max_output_bytes`, or by the `size:` given (calls answering documents).
macro_rules! plugin_call {
    ($self:ident, $kind:expr, $fresh:expr, |$g:ident, $store:ident| $call:expr) => {
        plugin_call!($self, $kind, $fresh, output::unchecked, |$g, $store| $call)
    };
    ($self:ident, $kind:expr, $fresh:expr, $check:expr, |$g:ident, $store:ident| $call:expr) => {
        plugin_call!($self, $kind, $fresh, size: None, $check, |$g, $store| $call)
    };
    ($self:ident, $kind:expr, $fresh:expr, size: $size:expr, $check:expr, |$g:ident, $store:ident| $call:expr) => {{
        let _slot = $self.admit().await?;
        let mut warm = $self.checkout($kind, $fresh).await?;
        let outcome = {
            let Warm {
                store: $store,
                guest: $g,
            } = &mut warm;
            $call.await
        };
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(ExportError::Missing) => {
                return Err(CallError::NotImplemented {
                    plugin: $self.id().to_string(),
                    kind: $kind.to_string(),
                });
            }
            Err(ExportError::Load(e)) => {
                return Err(CallError::Instantiate {
                    plugin: $self.id().to_string(),
                    message: format!("{e:#}"),
                });
            }
        };
        $self.settle(warm, outcome, $size, $check)
    }};
}

impl Plugin {
    /// `game-type.list-game-types` (0.1.x: `describe`), validated: each
    /// game type on its own and their ids unique.
    pub async fn game_types(&self) -> Result<Vec<api::GameInfo>, CallError> {
        plugin_call!(
            self,
            PluginKind::GameType,
            false,
            output::check_game_types,
            |g, s| g.list_game_types(s)
        )
    }

    /// The game type of a plugin that offers exactly one (as every 0.1.x
    /// plugin does).
    ///
    /// # Errors
    ///
    /// As for [`Self::game_types`], and [`CallError::BadOutput`] when the
    /// plugin offers none or several.
    pub async fn describe_game(&self) -> Result<api::GameInfo, CallError> {
        let mut games = self.game_types().await?;
        if games.len() == 1 {
            return Ok(games.remove(0));
        }
        Err(CallError::BadOutput {
            plugin: self.id().to_owned(),
            reason: format!("offers {} game types, not one", games.len()),
        })
    }

    /// The game type `id` among [`Self::game_types`], if the plugin offers
    /// it.
    pub async fn game_type(&self, id: &str) -> Result<Option<api::GameInfo>, CallError> {
        Ok(self.game_types().await?.into_iter().find(|g| g.id == id))
    }

    /// `game-type.validate` for the game type `game_type`.
    pub async fn validate_variables(
        &self,
        game_type: &str,
        variables: &[api::KeyValue],
    ) -> Result<Result<(), Vec<api::FieldError>>, CallError> {
        plugin_call!(self, PluginKind::GameType, false, |g, s| g
            .validate_variables(s, game_type, variables))
    }

    /// `game-type.install-plan`.
    pub async fn install_plan(
        &self,
        server: &api::ServerContext,
    ) -> Result<Result<api::InstallPlan, api::PluginError>, CallError> {
        plugin_call!(
            self,
            PluginKind::GameType,
            false,
            output::if_ok(output::check_install_plan),
            |g, s| g.install_plan(s, server)
        )
    }

    /// `game-type.startup-plan`.
    pub async fn startup_plan(
        &self,
        server: &api::ServerContext,
    ) -> Result<Result<api::StartupPlan, api::PluginError>, CallError> {
        plugin_call!(
            self,
            PluginKind::GameType,
            false,
            output::if_ok(output::check_startup_plan),
            |g, s| g.startup_plan(s, server)
        )
    }

    /// `game-type.stop-plan`.
    pub async fn stop_plan(&self, server: &api::ServerContext) -> Result<api::StopPlan, CallError> {
        plugin_call!(self, PluginKind::GameType, false, |g, s| g
            .stop_plan(s, server))
    }

    /// `game-type.plan-backup` (API 0.2.0): the console commands around a
    /// backup of a running server; `None` from a plugin of API 0.1.0, which
    /// has no such call.
    pub async fn backup_plan(
        &self,
        server: &api::ServerContext,
    ) -> Result<Option<api::BackupCommands>, CallError> {
        if self.manifest().plugin.api < semver::Version::new(0, 2, 0) {
            return Ok(None);
        }
        plugin_call!(self, PluginKind::GameType, false, |g, s| g
            .backup_plan(s, server))
    }

    /// `game-console.classify-line`; `context` is the startup plan's
    /// `console_context`.
    pub async fn classify_line(
        &self,
        context: &str,
        line: &str,
    ) -> Result<api::LineKind, CallError> {
        plugin_call!(self, PluginKind::GameType, false, |g, s| g
            .classify_line(s, context, line))
    }

    /// `game-console.status-command`.
    pub async fn status_command(&self, context: &str) -> Result<Option<String>, CallError> {
        plugin_call!(self, PluginKind::GameType, false, |g, s| g
            .status_command(s, context))
    }

    /// `game-console.parse-status`.
    pub async fn parse_status(
        &self,
        context: &str,
        lines: &[String],
    ) -> Result<Option<api::PlayerStatus>, CallError> {
        plugin_call!(self, PluginKind::GameType, false, |g, s| g
            .parse_status(s, context, lines))
    }

    /// `game-catalogue.preview`: what `document` would create.
    pub async fn catalogue_preview(
        &self,
        document: &[u8],
    ) -> Result<Result<api::CatalogueEntry, api::CatalogueError>, CallError> {
        plugin_call!(
            self,
            PluginKind::GameCatalogue,
            false,
            output::if_ok(output::check_catalogue_entry),
            |g, s| g.catalogue_preview(s, document)
        )
    }

    /// `game-catalogue.import-document`.
    pub async fn catalogue_import(
        &self,
        document: &[u8],
        replace: bool,
    ) -> Result<Result<api::CatalogueEntry, api::CatalogueError>, CallError> {
        plugin_call!(
            self,
            PluginKind::GameCatalogue,
            false,
            output::if_ok(output::check_catalogue_entry),
            |g, s| g.catalogue_import(s, document, replace)
        )
    }

    /// `game-catalogue.list-entries`.
    pub async fn catalogue_entries(&self) -> Result<Vec<api::CatalogueEntry>, CallError> {
        plugin_call!(
            self,
            PluginKind::GameCatalogue,
            false,
            output::check_catalogue_entries,
            |g, s| g.catalogue_entries(s)
        )
    }

    /// `game-catalogue.export-document`.
    pub async fn catalogue_export(
        &self,
        game_type: &str,
    ) -> Result<Result<Vec<u8>, api::CatalogueError>, CallError> {
        plugin_call!(
            self,
            PluginKind::GameCatalogue,
            false,
            size: Some(output::MAX_DOCUMENT_JSON_BYTES),
            output::if_ok(output::check_document),
            |g, s| g.catalogue_export(s, game_type)
        )
    }

    /// `game-catalogue.check-update`.
    pub async fn catalogue_check_update(
        &self,
        game_type: &str,
    ) -> Result<Result<api::CatalogueUpdate, api::CatalogueError>, CallError> {
        plugin_call!(
            self,
            PluginKind::GameCatalogue,
            false,
            size: Some(output::MAX_DOCUMENT_JSON_BYTES),
            output::if_ok(|update: &api::CatalogueUpdate| output::check_document(&update.document)),
            |g, s| g.catalogue_check_update(s, game_type)
        )
    }

    /// `game-catalogue.remove`.
    pub async fn catalogue_remove(
        &self,
        game_type: &str,
    ) -> Result<Result<(), api::CatalogueError>, CallError> {
        plugin_call!(self, PluginKind::GameCatalogue, false, |g, s| g
            .catalogue_remove(s, game_type))
    }

    /// `auth-provider.describe`.
    pub async fn describe_auth(&self) -> Result<api::ProviderInfo, CallError> {
        plugin_call!(self, PluginKind::AuthProvider, false, |g, s| g
            .describe_auth(s))
    }

    /// `auth-provider.authenticate`.
    pub async fn authenticate(
        &self,
        credentials: &api::Credentials,
    ) -> Result<Result<api::Identity, api::AuthError>, CallError> {
        plugin_call!(self, PluginKind::AuthProvider, false, |g, s| g
            .authenticate(s, credentials))
    }

    /// `auth-provider.begin-login`.
    pub async fn begin_login(
        &self,
        callback_url: &str,
    ) -> Result<Result<api::LoginRedirect, api::AuthError>, CallError> {
        plugin_call!(self, PluginKind::AuthProvider, false, |g, s| g
            .begin_login(s, callback_url))
    }

    /// `auth-provider.complete-login`.
    pub async fn complete_login(
        &self,
        state: &str,
        params: &[api::KeyValue],
    ) -> Result<Result<api::Identity, api::AuthError>, CallError> {
        plugin_call!(self, PluginKind::AuthProvider, false, |g, s| g
            .complete_login(s, state, params))
    }

    /// `auth-provider.set-password`.
    pub async fn set_password(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Result<(), api::AuthError>, CallError> {
        plugin_call!(self, PluginKind::AuthProvider, false, |g, s| g
            .set_password(s, username, password))
    }

    /// `hooks.before` on a warm instance.
    pub async fn hook_before(&self, event: &api::Event) -> Result<api::Verdict, CallError> {
        plugin_call!(
            self,
            PluginKind::Hooks,
            false,
            output::check_verdict,
            |g, s| g.hook_before(s, event)
        )
    }

    /// `hooks.before` on a fresh instance (no state from earlier calls).
    pub async fn hook_before_fresh(&self, event: &api::Event) -> Result<api::Verdict, CallError> {
        plugin_call!(
            self,
            PluginKind::Hooks,
            true,
            output::check_verdict,
            |g, s| g.hook_before(s, event)
        )
    }

    /// `hooks.after`.
    pub async fn hook_after(
        &self,
        event: &api::Event,
    ) -> Result<Result<(), api::PluginError>, CallError> {
        plugin_call!(self, PluginKind::Hooks, false, |g, s| g
            .hook_after(s, event))
    }

    /// `ui.render`, validated.
    pub async fn render_ui(
        &self,
        context: &api::RenderContext,
    ) -> Result<Result<api::UiTree, api::PluginError>, CallError> {
        plugin_call!(
            self,
            PluginKind::Ui,
            false,
            output::if_ok(output::check_ui_tree),
            |g, s| g.render_ui(s, context)
        )
    }

    /// `ui.handle-action`.
    pub async fn handle_ui_action(
        &self,
        context: &api::RenderContext,
        action: &api::Action,
    ) -> Result<Result<api::ActionResult, api::PluginError>, CallError> {
        plugin_call!(self, PluginKind::Ui, false, |g, s| g
            .handle_ui_action(s, context, action))
    }
}
