//! Host capabilities, one module each (Spin's "factors"): what a plugin may
//! import, whether it was granted, and the per-instance state behind it.
//!
//! A capability is usable only when the manifest requests it AND the admin
//! granted it ([`Grants`]). Every import is linked for every plugin so that
//! linking never depends on grants; the check happens at call time, and a
//! denied call returns `capability-error::denied` to the plugin and is logged
//! with the plugin id. Nothing a plugin does through a capability can reach
//! the host's own state: embedders supply the backing services
//! ([`HostServices`]) and see only the plugin id and validated arguments.

pub mod config;
pub mod events;
pub mod http;
pub mod kv;
pub mod log;
pub mod panel;
pub mod timers;
pub mod wasi;

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::api::CapabilityError;
use crate::manifest::{Manifest, PanelScope};

/// Waits for a backing service, but never past the plugin call's deadline.
///
/// Calls carry no timer of their own: time inside WebAssembly is bounded by
/// epoch interruption, and every place the host waits on behalf of a plugin
/// (these services and WASI sleeps, see [`wasi`]) is bounded here instead.
/// A wait cut short answers `unavailable` to the plugin; the epoch check
/// then stops the plugin within one tick, so the caller sees a timeout.
pub(crate) async fn until_deadline<T>(
    deadline: std::time::Instant,
    wait: impl Future<Output = Result<T, ServiceError>>,
) -> Result<T, ServiceError> {
    match tokio::time::timeout_at(deadline.into(), wait).await {
        Ok(result) => result,
        Err(_) => Err(ServiceError::Unavailable(
            "the call's deadline passed while the host was still working".into(),
        )),
    }
}

/// A boxed, sendable future, as returned by the service traits.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a backing service can answer instead of a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    /// The thing does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The request was invalid.
    #[error("invalid: {0}")]
    Invalid(String),
    /// A quota was exceeded.
    #[error("limit exceeded: {0}")]
    LimitExceeded(String),
    /// The service failed.
    #[error("unavailable: {0}")]
    Unavailable(String),
}

impl From<ServiceError> for CapabilityError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::NotFound(m) => CapabilityError::NotFound(m),
            ServiceError::Invalid(m) => CapabilityError::Invalid(m),
            ServiceError::LimitExceeded(m) => CapabilityError::LimitExceeded(m),
            ServiceError::Unavailable(m) => CapabilityError::Unavailable(m),
        }
    }
}

/// What the admin granted a plugin. The effective permission is the
/// intersection with what its manifest requests ([`Grants::effective`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Grants {
    /// Key-value store.
    pub kv: bool,
    /// Reading configuration.
    pub config: bool,
    /// Secret keys.
    pub secrets: BTreeSet<String>,
    /// Real wall clock.
    pub clock: bool,
    /// A real insecure random source (the secure one is always real).
    pub random: bool,
    /// Allowed HTTP host patterns.
    pub http_hosts: Vec<String>,
    /// Event topics.
    pub events_publish: BTreeSet<String>,
    /// Panel API scopes.
    pub panel: BTreeSet<PanelScope>,
    /// Timers (API 0.2.0). Absent in grants stored before timers existed,
    /// and left out when not granted, so those read and write back as they
    /// were.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub timers: bool,
}

impl Grants {
    /// Grants exactly what `manifest` requests (an admin accepting all).
    pub fn all_requested(manifest: &Manifest) -> Self {
        let caps = &manifest.capabilities;
        Self {
            kv: caps.kv,
            config: caps.config,
            secrets: caps.secrets.clone(),
            clock: caps.clock,
            random: caps.random,
            http_hosts: caps
                .http
                .as_ref()
                .map(|h| h.allowed_hosts.clone())
                .unwrap_or_default(),
            events_publish: caps
                .events
                .as_ref()
                .map(|e| e.publish.clone())
                .unwrap_or_default(),
            panel: caps.panel.clone(),
            timers: caps.timers,
        }
    }

    /// Grants nothing.
    pub fn none() -> Self {
        Self::default()
    }

    /// The intersection of these grants with what `manifest` requests.
    pub fn effective(&self, manifest: &Manifest) -> Self {
        let requested = Self::all_requested(manifest);
        Self {
            kv: self.kv && requested.kv,
            config: self.config && requested.config,
            secrets: self
                .secrets
                .intersection(&requested.secrets)
                .cloned()
                .collect(),
            clock: self.clock && requested.clock,
            random: self.random && requested.random,
            http_hosts: self
                .http_hosts
                .iter()
                .filter(|h| requested.http_hosts.contains(h))
                .cloned()
                .collect(),
            events_publish: self
                .events_publish
                .intersection(&requested.events_publish)
                .cloned()
                .collect(),
            panel: self.panel.intersection(&requested.panel).copied().collect(),
            timers: self.timers && requested.timers,
        }
    }
}

/// The services an embedder (Panel or Agent) provides to plugins.
#[derive(Clone)]
pub struct HostServices {
    /// Backs the `kv` capability.
    pub kv: Arc<dyn kv::KvStore>,
    /// Backs `config` and secrets.
    pub config: Arc<dyn config::ConfigStore>,
    /// Backs `events.publish`.
    pub events: Arc<dyn events::EventSink>,
    /// Backs the `panel` capability.
    pub panel: Arc<dyn panel::PanelApi>,
    /// Backs the `timers` capability.
    pub timers: Arc<dyn timers::TimerStore>,
    /// Shared outbound HTTP client.
    pub http: http::HttpClient,
}

impl HostServices {
    /// In-memory services: a memory KV store, empty configuration, events
    /// collected in memory, timers kept in memory (never fired), and no
    /// Panel. Suits tests, tools and the Agent.
    pub fn in_memory() -> Self {
        Self {
            kv: Arc::new(kv::MemoryKv::default()),
            config: Arc::new(config::MemoryConfig::default()),
            events: Arc::new(events::CollectingEvents::default()),
            panel: Arc::new(panel::NoPanel),
            timers: Arc::new(timers::MemoryTimers::default()),
            http: http::HttpClient::new(),
        }
    }
}

impl std::fmt::Debug for HostServices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostServices").finish_non_exhaustive()
    }
}

/// Per-plugin, per-instance view handed to capability implementations.
#[derive(Debug)]
pub struct CapabilityContext {
    /// The plugin's id.
    pub plugin_id: String,
    /// Effective grants.
    pub grants: Grants,
    /// Parsed HTTP allow-list.
    pub http_allow: Vec<http::HostPattern>,
    /// Backing services.
    pub services: HostServices,
}

impl CapabilityContext {
    /// Builds the context for a plugin from its effective grants.
    pub fn new(plugin_id: &str, grants: Grants, services: HostServices) -> Self {
        let http_allow = grants
            .http_hosts
            .iter()
            .filter_map(|h| http::HostPattern::parse(h).ok())
            .collect();
        Self {
            plugin_id: plugin_id.to_string(),
            grants,
            http_allow,
            services,
        }
    }

    /// Logs and builds a denial.
    pub(crate) fn deny(&self, what: &str) -> CapabilityError {
        tracing::warn!(plugin = %self.plugin_id, capability = what, "capability denied");
        CapabilityError::Denied(format!(
            "capability `{what}` was not granted to {}",
            self.plugin_id
        ))
    }
}
