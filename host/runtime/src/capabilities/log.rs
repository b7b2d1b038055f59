//! `log`: plugin log records into the host's `tracing`, tagged with the plugin id.

use crate::bindings::v0_1::ctrl_alt_play::plugin::log::{Host, Level};
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

impl Host for PluginState {
    async fn log(&mut self, level: Level, target: String, message: String) {
        self.log_records += 1;
        if self.log_records > MAX_RECORDS_PER_CALL {
            return;
        }
        let plugin = self.caps.plugin_id.as_str();
        let target = truncate(&target, 128);
        let message = truncate(&message, MAX_MESSAGE_BYTES);
        match level {
            Level::Trace => tracing::trace!(plugin, plugin_target = target, "{message}"),
            Level::Debug => tracing::debug!(plugin, plugin_target = target, "{message}"),
            Level::Info => tracing::info!(plugin, plugin_target = target, "{message}"),
            Level::Warn => tracing::warn!(plugin, plugin_target = target, "{message}"),
            Level::Error => tracing::error!(plugin, plugin_target = target, "{message}"),
        }
        self.recent_logs.push(level, message);
    }
}
