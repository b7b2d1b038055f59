//! Records every hook event it receives, and denies the kinds it is told
//! to: a witness of what the Panel fires, for tests and as the start of an
//! audit plugin.
//!
//! ## What is recorded
//!
//! Each event received stores its id under
//! `<phase>/<kind>/<subject>` in the plugin's key-value store, where
//! `phase` is `before` or `after`, `kind` the dotted kind
//! (`user.login`) and `subject` the id of what the event is about: the
//! user, server, node or plugin id, a console event's server id, a
//! schedule's name, a backup's or a database's id, a suspension's
//! server id. A later event of the same kind about the same subject
//! overwrites the earlier one.
//!
//! Each event also counts: `count/<phase>/<kind>` holds how many events of
//! the kind arrived in the phase, as decimal text, updated with the
//! store's compare-and-swap (API 0.2.0), so events handled by several
//! instances at once are each counted once.
//!
//! ## What is refused
//!
//! - `deny-kinds` (configuration, dotted kinds separated by commas or
//!   blanks): the before-hooks of these kinds answer
//!   `deny("event-recorder denies <kind> of <subject>")`, after recording.
//! - `fail-kinds`: the before-hooks of these kinds trap, after recording,
//!   as a broken plugin would. The manifest says `fail-closed = true`, so
//!   the Panel counts the failure as a deny wherever it lets failures deny.
//!
//! When recording or reading the configuration fails, the before-hook still
//! allows: a witness must not change what it witnesses.

use cap_plugin_sdk::hooks::{Event, Hooks, Payload, Verdict};
use cap_plugin_sdk::types::PluginError;
use cap_plugin_sdk::{config, kv, log};

/// The plugin. Stateless: records live in the key-value store.
#[derive(Debug, Default)]
pub struct EventRecorder;

cap_plugin_sdk::export_plugin!(EventRecorder: hooks);

impl Hooks for EventRecorder {
    fn before(&self, event: &Event) -> Verdict {
        if let Err(error) = record("before", event) {
            log::warn!("cannot record {}: {error:?}", event.kind);
        }
        if listed("fail-kinds", event) {
            panic!("event-recorder fails {} as configured", event.kind);
        }
        if listed("deny-kinds", event) {
            return Verdict::Deny(format!(
                "event-recorder denies {} of {}",
                event.kind,
                subject(event)
            ));
        }
        Verdict::Allow
    }

    fn after(&self, event: &Event) -> Result<(), PluginError> {
        record("after", event)
    }
}

/// How often a count is retried when other instances keep changing it.
const COUNT_ATTEMPTS: u32 = 1000;

/// Stores `event`'s id under its key and counts it (see the crate docs).
fn record(phase: &str, event: &Event) -> Result<(), PluginError> {
    kv::set(&key(phase, event), event.id.as_bytes())?;
    count(&format!("count/{phase}/{}", event.kind))
}

/// Adds one to the count under `key`, atomically.
fn count(key: &str) -> Result<(), PluginError> {
    for _ in 0..COUNT_ATTEMPTS {
        let now = kv::get(key)?;
        let count: u64 = match now.as_deref() {
            None => 0,
            Some(bytes) => std::str::from_utf8(bytes)
                .ok()
                .and_then(|text| text.parse().ok())
                .ok_or_else(|| PluginError::new("bad-count", format!("{key} is not a count")))?,
        };
        let next = (count + 1).to_string();
        if kv::compare_and_swap(key, now.as_deref(), Some(next.as_bytes()))? {
            return Ok(());
        }
    }
    Err(PluginError::new(
        "contended",
        format!("{key} changed {COUNT_ATTEMPTS} times while being counted"),
    ))
}

/// `<phase>/<kind>/<subject>`.
fn key(phase: &str, event: &Event) -> String {
    format!("{phase}/{}/{}", event.kind, subject(event))
}

/// The id of what `event` is about.
fn subject(event: &Event) -> &str {
    match &event.payload {
        Payload::User(user) => &user.id,
        Payload::Server(server) => &server.id,
        Payload::Node(node) => &node.id,
        Payload::Plugin(plugin) => &plugin.id,
        Payload::Console(console) => &console.server_id,
        Payload::Schedule(schedule) => &schedule.name,
        Payload::File(file) => &file.server_id,
        Payload::Backup(backup) => &backup.id,
        Payload::Database(database) => &database.id,
        Payload::Suspension(suspension) => &suspension.server.id,
        Payload::Transfer(transfer) => &transfer.server.id,
    }
}

/// Whether configuration key `list` names `event`'s kind.
fn listed(list: &str, event: &Event) -> bool {
    match config::get(list) {
        Ok(value) => names(value.as_deref().unwrap_or_default(), event.kind.name()),
        Err(error) => {
            log::warn!("cannot read {list}: {error:?}");
            false
        }
    }
}

/// Whether `list` (kinds separated by commas or blanks) holds `kind`.
fn names(list: &str, kind: &str) -> bool {
    list.split(|c: char| c == ',' || c.is_whitespace())
        .any(|item| item == kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_names_a_kind_only_as_a_whole_item() {
        assert!(names("user.login", "user.login"));
        assert!(names("node.create, user.login", "user.login"));
        assert!(names("node.create\tuser.login", "user.login"));
        assert!(!names("user.login-extra", "user.login"));
        assert!(!names("", "user.login"));
    }
}
