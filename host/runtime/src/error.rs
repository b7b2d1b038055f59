//! Typed errors at the runtime's edges.

use std::time::Duration;

use crate::manifest::ManifestError;

/// Why a component could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Larger than the configured maximum component size.
    #[error("component is {size} bytes; the limit is {limit}")]
    TooLarge {
        /// Actual size.
        size: u64,
        /// Configured limit.
        limit: u64,
    },
    /// Not WebAssembly at all.
    #[error("not a WebAssembly binary (bad magic number)")]
    NotWasm,
    /// A core module, not a component.
    #[error(
        "this is a core WebAssembly module, not a component; build with `cargo build --target wasm32-wasip2` or `cargo component build`"
    )]
    CoreModule,
    /// Failed validation.
    #[error("invalid component: {0}")]
    Invalid(String),
    /// No API-version custom section.
    #[error(
        "component has no `ctrl-alt-play:api-version` section; build it with cap-plugin-sdk (or add the section yourself)"
    )]
    MissingApiVersion,
    /// The API version is unparsable or conflicting.
    #[error("bad API version: {0}")]
    BadApiVersion(String),
    /// The API version is outside the supported range.
    #[error("component targets plugin API {found}, but this host supports {supported}")]
    UnsupportedApiVersion {
        /// What the component declared.
        found: semver::Version,
        /// The supported range, for people.
        supported: String,
    },
    /// The manifest and the component disagree on the API version.
    #[error("plugin.toml says api = {manifest}, but the component was built for {component}")]
    ApiVersionMismatch {
        /// From plugin.toml.
        manifest: semver::Version,
        /// From the component.
        component: semver::Version,
    },
    /// The component imports something the host does not provide.
    #[error("component imports `{0}`, which Ctrl-Alt-Play does not provide")]
    UnknownImport(String),
    /// A kind named in the manifest lacks its exports.
    #[error("plugin.toml declares kind {kind}, but the component does not export `{interface}`")]
    MissingExport {
        /// The declared kind.
        kind: String,
        /// The missing export.
        interface: String,
    },
    /// Manifest problem.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// Compilation failed.
    #[error("compiling the component failed: {0}")]
    Compile(String),
    /// Linking or pre-instantiation failed.
    #[error("linking the component failed: {0}")]
    Link(String),
    /// Artifact cache I/O.
    #[error("artifact cache: {0}")]
    Cache(String),
}

/// Why a call into a plugin failed. The host keeps running in every case.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    /// The plugin is quarantined.
    #[error("plugin {plugin} is quarantined: {reason}")]
    Quarantined {
        /// Plugin id.
        plugin: String,
        /// Why.
        reason: String,
    },
    /// The host was too busy to run the call: every call slot of the plugin
    /// stayed taken for its whole timeout, or the shared instance pool was
    /// exhausted. Not the plugin's fault, so never counted towards
    /// quarantine.
    #[error("plugin {plugin} was not called, the host is overloaded: {reason}")]
    Overloaded {
        /// Plugin id.
        plugin: String,
        /// What was exhausted.
        reason: String,
    },
    /// The plugin does not declare the kind whose export was called.
    #[error("plugin {plugin} does not implement {kind}")]
    NotImplemented {
        /// Plugin id.
        plugin: String,
        /// The kind asked for.
        kind: String,
    },
    /// The call ran past its deadline.
    #[error("plugin {plugin} timed out after {elapsed:?} (deadline {deadline:?})")]
    Timeout {
        /// Plugin id.
        plugin: String,
        /// The deadline.
        deadline: Duration,
        /// When it was stopped.
        elapsed: Duration,
    },
    /// The plugin tried to grow its memory beyond its cap.
    #[error("plugin {plugin} exceeded its memory limit of {limit_bytes} bytes")]
    MemoryLimit {
        /// Plugin id.
        plugin: String,
        /// Cap in bytes.
        limit_bytes: usize,
    },
    /// The plugin overflowed its stack.
    #[error("plugin {plugin} overflowed its stack")]
    StackOverflow {
        /// Plugin id.
        plugin: String,
    },
    /// The plugin trapped (including Rust panics, which abort to a trap).
    #[error("plugin {plugin} trapped: {message}{}", stderr_suffix(.stderr))]
    Trap {
        /// Plugin id.
        plugin: String,
        /// The trap.
        message: String,
        /// The last lines the plugin wrote to stderr (panic messages land here).
        stderr: String,
    },
    /// The plugin returned data the host refuses.
    #[error("plugin {plugin} returned bad data: {reason}")]
    BadOutput {
        /// Plugin id.
        plugin: String,
        /// What was wrong.
        reason: String,
    },
    /// The host failed to set up the call (instantiation, resources).
    #[error("plugin {plugin} could not be instantiated: {message}")]
    Instantiate {
        /// Plugin id.
        plugin: String,
        /// Details.
        message: String,
    },
}

fn stderr_suffix(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!(" (stderr: {})", stderr.trim_end())
    }
}

impl CallError {
    /// Whether this failure counts towards quarantine. Refusals the host
    /// makes before running any plugin code, and overload, do not.
    pub fn counts_as_failure(&self) -> bool {
        !matches!(
            self,
            Self::Quarantined { .. } | Self::NotImplemented { .. } | Self::Overloaded { .. }
        )
    }

    /// A short stable code, for APIs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Quarantined { .. } => "quarantined",
            Self::Overloaded { .. } => "overloaded",
            Self::NotImplemented { .. } => "not-implemented",
            Self::Timeout { .. } => "timeout",
            Self::MemoryLimit { .. } => "memory-limit",
            Self::StackOverflow { .. } => "stack-overflow",
            Self::Trap { .. } => "trap",
            Self::BadOutput { .. } => "bad-output",
            Self::Instantiate { .. } => "instantiate",
        }
    }
}
