//! The [`log`] facade, wired to the host's `log` interface.
//!
//! [`crate::export_plugin!`] calls [`init`] before the plugin instance is
//! created, so plugins just use the `log` macros (re-exported as
//! [`crate::log`]). Records are tagged with the plugin id by the host and are
//! rate-limited there. Every level is forwarded by default; lower the volume
//! with [`log::set_max_level`] (for example in the plugin's `Default`).
//!
//! ```no_run
//! use cap_plugin_sdk::log::{info, warn};
//!
//! info!("installing Paper {}", "1.21.4");
//! warn!(target: "quota", "user {} is close to the quota", "alice");
//! ```
//!
//! Panics are logged at `error` level too (by a panic hook that [`init`]
//! installs) before the component traps, so they show up in the Panel's
//! plugin log and not only on the host's stderr.

use crate::bindings::ctrl_alt_play::plugin::log as host;

/// A [`log::Log`] implementation that forwards every record to the host.
///
/// ```no_run
/// use cap_plugin_sdk::logging::HostLogger;
/// use cap_plugin_sdk::log::Log;
///
/// let record = cap_plugin_sdk::log::Record::builder()
///     .args(format_args!("hello"))
///     .level(cap_plugin_sdk::log::Level::Info)
///     .target("example")
///     .build();
/// HostLogger.log(&record);
/// ```
#[derive(Debug, Default, Clone, Copy)]
pub struct HostLogger;

static LOGGER: HostLogger = HostLogger;

impl log::Log for HostLogger {
    fn enabled(&self, _metadata: &log::Metadata<'_>) -> bool {
        // The host applies its own per-plugin filter and rate limit.
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let message = record.args().to_string();
        host::log(host_level(record.level()), record.target(), &message);
    }

    fn flush(&self) {}
}

/// Maps a [`log::Level`] to the host's level.
///
/// ```
/// use cap_plugin_sdk::logging::host_level;
/// use cap_plugin_sdk::bindings::ctrl_alt_play::plugin::log::Level;
///
/// assert_eq!(host_level(cap_plugin_sdk::log::Level::Warn), Level::Warn);
/// ```
pub fn host_level(level: log::Level) -> host::Level {
    match level {
        log::Level::Error => host::Level::Error,
        log::Level::Warn => host::Level::Warn,
        log::Level::Info => host::Level::Info,
        log::Level::Debug => host::Level::Debug,
        log::Level::Trace => host::Level::Trace,
    }
}

/// Installs [`HostLogger`] as the global logger and a panic hook that logs
/// panics to the host. Idempotent; [`crate::export_plugin!`] calls it for
/// you.
///
/// ```no_run
/// cap_plugin_sdk::logging::init();
/// cap_plugin_sdk::log::debug!("logger ready");
/// ```
pub fn init() {
    if log::set_logger(&LOGGER).is_err() {
        // Already installed (by an earlier call, or by the plugin itself).
        return;
    }
    log::set_max_level(log::LevelFilter::Trace);
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        // `info` reads "panicked at src/lib.rs:1:2:\nmessage".
        host::log(host::Level::Error, "panic", &info.to_string());
        previous(info);
    }));
}
