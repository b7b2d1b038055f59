//! # cap-runtime
//!
//! The WebAssembly sandbox shared by the Ctrl-Alt-Play Panel and Agent.
//! Every game type, auth provider, hook and UI extension is a component
//! built against the WIT package `ctrl-alt-play:plugin` (see `wit/`); this
//! crate loads, limits and calls them.
//!
//! Key decisions:
//!
//! - **Read before compile.** [`component::inspect`] validates the whole
//!   binary, reads the `ctrl-alt-play:api-version` custom section, refuses
//!   unsupported versions and unknown imports — all before compiling.
//! - **Compile once.** [`Runtime`] compiles off the async executor and keeps
//!   artifacts in an authenticated on-disk cache ([`cache`]) keyed by the
//!   component's sha256 and an engine fingerprint; it never deserializes a
//!   file it did not write itself.
//! - **Contain everything.** Each call runs under a memory cap, instance and
//!   table caps, a wall-clock deadline (epoch interruption plus a timer) and
//!   output checks ([`output`]). Failures are typed [`CallError`]s; repeat
//!   offenders are quarantined ([`Plugin::status`]).
//! - **Capabilities are modules.** Each host import lives in
//!   [`capabilities`] and checks the plugin's grants at call time: the
//!   manifest must request it and the admin must grant it.
//! - **One data model, one module per WIT version.** Everything bound to a
//!   WIT version (bindings, host glue, conversions) lives in that version's
//!   module under [`wit`]; the Panel, the Agent and the capabilities use
//!   the hand-written, version-neutral types of [`api`] only.
//! - **Deterministic fan-out.** [`hooks`] runs before-hooks concurrently and
//!   combines them in plugin-id order: any deny wins.

pub mod api;
pub mod api_version;
pub mod cache;
pub mod capabilities;
pub mod component;
mod engine;
pub mod error;
pub mod hooks;
pub mod manifest;
pub mod output;
pub mod package;
mod plugin;
pub mod wit;

pub use api_version::ApiVersion;
pub use capabilities::{Grants, HostServices};
pub use engine::{CodeSource, Limits, Runtime, RuntimeConfig};
pub use error::{CallError, LoadError};
pub use manifest::{Manifest, PluginKind};
pub use package::{Package, PackageError};
pub use plugin::{
    LogLine, Plugin, PluginSpec, PluginState, PluginStatus, Quarantine, QuarantineListener,
    RecentLogs,
};
