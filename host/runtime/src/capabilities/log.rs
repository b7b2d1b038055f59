//! `log`: plugin log records into the host's `tracing`, tagged with the plugin id.

use crate::api::LogLevel;
use crate::plugin::PluginState;

/// Longest message kept, in bytes; longer ones are cut.
pub const MAX_MESSAGE_BYTES: usize = 8 * 1024;
/// Records a plugin may write per call; more are counted and dropped.
pub const MAX_RECORDS_PER_CALL: u32 = 1000;

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// `log.log`: one record into `tracing` and the plugin's recent lines,
/// which keep the level's WIT name (`info`, not a Rust path).
pub(crate) fn log(state: &mut PluginState, level: LogLevel, target: &str, message: &str) {
    state.log_records += 1;
    if state.log_records > MAX_RECORDS_PER_CALL {
        return;
    }
    let plugin = state.caps.plugin_id.as_str();
    let target = truncate(target, 128);
    let message = truncate(message, MAX_MESSAGE_BYTES);
    match level {
        LogLevel::Trace => tracing::trace!(plugin, plugin_target = target, "{message}"),
        LogLevel::Debug => tracing::debug!(plugin, plugin_target = target, "{message}"),
        LogLevel::Info => tracing::info!(plugin, plugin_target = target, "{message}"),
        LogLevel::Warn => tracing::warn!(plugin, plugin_target = target, "{message}"),
        LogLevel::Error => tracing::error!(plugin, plugin_target = target, "{message}"),
    }
    state.recent_logs.push(level.as_str(), message);
}
