//! The shared wasmtime engine: pooling allocator, copy-on-write memory
//! images, epoch interruption driven by a ticker thread, and compilation
//! through the artifact cache, off the async executor.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::cache::{ArtifactCache, Lookup, engine_fingerprint};
use crate::component::{ComponentInfo, DEFAULT_MAX_COMPONENT_BYTES};
use crate::error::LoadError;
use crate::plugin::PluginState;

/// How much of a linear memory or table slot is reset in place (only the
/// pages an instance dirtied) rather than unmapped, when the kernel supports
/// `PAGEMAP_SCAN`. Covers a Rust guest's stack, data and a modest heap.
const KEEP_RESIDENT_BYTES: usize = 4 << 20;

/// Per-plugin resource limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Linear memory cap per instance, bytes.
    pub memory_bytes: usize,
    /// Wall-clock deadline per call.
    pub timeout: Duration,
}

impl Limits {
    /// The tighter of two limits, field by field.
    pub fn min(self, other: Limits) -> Limits {
        Limits {
            memory_bytes: self.memory_bytes.min(other.memory_bytes),
            timeout: self.timeout.min(other.timeout),
        }
    }
}

/// Runtime settings.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Where compiled artifacts are cached; `None` compiles every time.
    pub cache_dir: Option<PathBuf>,
    /// Largest component accepted, bytes.
    pub max_component_bytes: u64,
    /// Limits for plugins whose manifest asks for none.
    pub default_limits: Limits,
    /// The admin's caps: no manifest gets more.
    pub max_limits: Limits,
    /// Instances the pooling allocator reserves (all plugins together).
    pub pool_instances: u32,
    /// Idle warm instances kept per plugin.
    pub warm_instances_per_plugin: usize,
    /// Consecutive failures after which a plugin is quarantined.
    pub quarantine_after: u32,
    /// Calls into one plugin that run at once; more wait (at most the
    /// plugin's timeout, outside its deadline) and are then refused as
    /// overload, which is not counted towards quarantine.
    pub max_concurrent_calls_per_plugin: usize,
    /// Largest serialised result a plugin may return, bytes.
    pub max_output_bytes: usize,
    /// Epoch tick: the granularity of deadlines and of cooperative yields.
    pub epoch_tick: Duration,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            cache_dir: None,
            max_component_bytes: DEFAULT_MAX_COMPONENT_BYTES,
            default_limits: Limits {
                memory_bytes: 64 << 20,
                timeout: Duration::from_secs(1),
            },
            max_limits: Limits {
                memory_bytes: 512 << 20,
                timeout: Duration::from_secs(30),
            },
            pool_instances: 1100,
            warm_instances_per_plugin: 8,
            quarantine_after: 5,
            max_concurrent_calls_per_plugin: 16,
            max_output_bytes: 1 << 20,
            epoch_tick: Duration::from_millis(2),
        }
    }
}

/// Where a loaded component's code came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeSource {
    /// Deserialized from a verified cache artifact.
    Cache,
    /// Compiled now (and stored in the cache, if there is one).
    Compiled,
}

pub(crate) struct EngineInner {
    pub(crate) engine: Engine,
    pub(crate) config: RuntimeConfig,
    pub(crate) linker: Linker<PluginState>,
    cache: Option<ArtifactCache>,
    fingerprint: String,
    stop_ticker: Arc<AtomicBool>,
}

impl Drop for EngineInner {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
    }
}

/// The plugin runtime. Cheap to clone; all clones share one engine, pool,
/// linker and cache.
#[derive(Clone)]
pub struct Runtime {
    pub(crate) inner: Arc<EngineInner>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("fingerprint", &self.inner.fingerprint)
            .field("config", &self.inner.config)
            .finish()
    }
}

impl Runtime {
    /// Builds the engine, linker and cache.
    pub fn new(config: RuntimeConfig) -> Result<Self, LoadError> {
        let mut pool = PoolingAllocationConfig::new();
        let n = config.pool_instances.max(1);
        pool.total_component_instances(n)
            .total_core_instances(n.saturating_mul(8))
            .total_memories(n.saturating_mul(2))
            .total_tables(n.saturating_mul(4))
            .total_stacks(n)
            .max_core_instances_per_component(32)
            .max_memories_per_component(4)
            .max_tables_per_component(8)
            .max_memory_size(config.max_limits.memory_bytes)
            .max_unused_warm_slots(64);
        // Where the kernel can report which pages an instance dirtied
        // (PAGEMAP_SCAN, Linux 6.7+), reset just those pages in place instead
        // of unmapping the slot: the next instance in the slot then takes no
        // page faults for them. Without it, `memset` of a fixed prefix would
        // cost more than `madvise` saves, so keep the default.
        if PoolingAllocationConfig::is_pagemap_scan_available() {
            pool.pagemap_scan(Enabled::Yes)
                .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
                .table_keep_resident(KEEP_RESIDENT_BYTES);
        }

        let mut wasm = Config::new();
        wasm.wasm_component_model(true)
            .epoch_interruption(true)
            .memory_init_cow(true)
            .max_wasm_stack(512 * 1024)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        // Measurement only (bench/api_instructions.sh): valgrind cannot
        // reserve the pool's address space.
        if std::env::var_os("CAP_BENCH_UNPOOLED").is_some() {
            wasm.allocation_strategy(InstanceAllocationStrategy::OnDemand)
                .memory_reservation(0)
                .memory_guard_size(0)
                .memory_init_cow(false)
                .signals_based_traps(false);
        }
        let engine =
            Engine::new(&wasm).map_err(|e| LoadError::Compile(format!("engine setup: {e}")))?;

        let mut linker = Linker::new(&engine);
        crate::plugin::add_to_linker(&mut linker).map_err(|e| LoadError::Link(e.to_string()))?;

        let cache = match &config.cache_dir {
            Some(dir) => {
                Some(ArtifactCache::open(dir).map_err(|e| LoadError::Cache(e.to_string()))?)
            }
            None => None,
        };
        let fingerprint = engine_fingerprint(&engine);

        let stop_ticker = Arc::new(AtomicBool::new(false));
        {
            let engine = engine.clone();
            let stop = stop_ticker.clone();
            let tick = config.epoch_tick;
            std::thread::Builder::new()
                .name("cap-epoch-ticker".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(tick);
                        engine.increment_epoch();
                    }
                })
                .map_err(|e| LoadError::Compile(format!("starting the epoch ticker: {e}")))?;
        }

        Ok(Self {
            inner: Arc::new(EngineInner {
                engine,
                config,
                linker,
                cache,
                fingerprint,
                stop_ticker,
            }),
        })
    }

    /// The settings this runtime runs with.
    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.config
    }

    /// The wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// The engine fingerprint artifacts are keyed by.
    pub fn fingerprint(&self) -> &str {
        &self.inner.fingerprint
    }

    /// Compiles `bytes` (already inspected as `info`), or loads the verified
    /// artifact from the cache. Runs on a blocking thread.
    pub async fn compile(
        &self,
        bytes: Arc<[u8]>,
        info: &ComponentInfo,
    ) -> Result<(Component, CodeSource), LoadError> {
        let this = self.clone();
        let sha = info.sha256.clone();
        tokio::task::spawn_blocking(move || this.compile_blocking(&bytes, &sha))
            .await
            .map_err(|e| LoadError::Compile(format!("compile task failed: {e}")))?
    }

    /// Blocking form of [`Runtime::compile`].
    pub fn compile_blocking(
        &self,
        bytes: &[u8],
        sha256: &str,
    ) -> Result<(Component, CodeSource), LoadError> {
        let inner = &self.inner;
        if let Some(cache) = &inner.cache {
            match cache.get(sha256, &inner.fingerprint) {
                Lookup::Hit(artifact) => {
                    // SAFETY: the artifact's HMAC verified under this cache's
                    // private key, so it is bytes this runtime produced with
                    // `precompile_component` for an engine with the same
                    // fingerprint (which covers the compatibility hash).
                    #[allow(unsafe_code)]
                    let loaded = unsafe { Component::deserialize(&inner.engine, &artifact) };
                    match loaded {
                        Ok(component) => return Ok((component, CodeSource::Cache)),
                        Err(e) => {
                            tracing::warn!(error = %e, "cached artifact did not load; recompiling")
                        }
                    }
                }
                Lookup::Rejected(why) => tracing::warn!(%why, "recompiling"),
                Lookup::Miss => {}
            }
        }
        let artifact = inner
            .engine
            .precompile_component(bytes)
            .map_err(|e| LoadError::Compile(e.to_string()))?;
        if let Some(cache) = &inner.cache
            && let Err(e) = cache.put(sha256, &inner.fingerprint, &artifact)
        {
            tracing::warn!(error = %e, "could not store a compiled artifact");
        }
        // SAFETY: `artifact` was produced just above by this engine.
        #[allow(unsafe_code)]
        let component = unsafe { Component::deserialize(&inner.engine, &artifact) }
            .map_err(|e| LoadError::Compile(e.to_string()))?;
        Ok((component, CodeSource::Compiled))
    }
}
