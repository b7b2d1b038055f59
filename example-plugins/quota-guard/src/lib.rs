//! Keeps each user's servers within a total memory quota (`max-memory-mb`,
//! default 8192 MiB).
//!
//! ## How the total is known
//!
//! The Panel's server list (`panel::list-servers`) says which servers exist
//! and who owns them, but not how much memory they have; hook events carry
//! the memory of the one server they are about. So the plugin combines both:
//!
//! - **After-hooks record memory.** `server.create` and `server.update`
//!   store `{owner, memory}` under `server/<id>` in the plugin's key-value
//!   store; `server.delete` removes it.
//! - **Before-hooks add up.** For `server.create` and `server.update`, the
//!   plugin lists the servers, keeps the ones the event's owner owns (other
//!   than the server the event is about), adds their recorded memory and the
//!   memory the event asks for, and denies when the sum exceeds the quota:
//!   `quota exceeded: user alice would use 9216 MiB of 8192 MiB`.
//!
//! Ownership and existence always come from the Panel, so a record left
//! behind by a delete the plugin missed (for example while it was
//! deactivated) is ignored, and a change of owner is honoured at once.
//! Updates are checked as well as creations because raising a server's
//! memory spends quota just like creating one.
//!
//! Servers that existed before the plugin was activated have no record until
//! their next update; they count as 0 MiB and are named in a warning in the
//! plugin log. Two creations racing each other are each checked against the
//! records as they were, so the quota can be overshot by one server at most
//! per race.
//!
//! When the check itself cannot run (the store, the server list or the
//! configuration fail) the plugin denies, matching `fail-closed = true` in
//! its manifest: a quota that silently stops applying is worse than a retry.

use cap_plugin_sdk::hooks::{Event, EventKind, Hooks, ServerInfo, Verdict};
use cap_plugin_sdk::types::PluginError;
use cap_plugin_sdk::{config, kv, log, panel};
use serde::{Deserialize, Serialize};

/// The plugin. Stateless: records live in the key-value store.
#[derive(Debug, Default)]
pub struct QuotaGuard;

cap_plugin_sdk::export_plugin!(QuotaGuard: hooks);

const DEFAULT_MAX_MEMORY_MB: u64 = 8192;

/// What the plugin remembers about a server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Record {
    owner_id: String,
    memory_mb: u64,
}

impl Hooks for QuotaGuard {
    fn before(&self, event: &Event) -> Verdict {
        if !matches!(
            event.kind,
            EventKind::ServerCreate | EventKind::ServerUpdate
        ) {
            return Verdict::Allow;
        }
        let Some(server) = event.server() else {
            return Verdict::Allow;
        };
        match check(server) {
            Ok(verdict) => verdict,
            Err(error) => {
                log::error!("quota check for {} failed: {error:?}", server.owner_id);
                Verdict::Deny(format!(
                    "the memory quota cannot be checked right now ({}); try again later",
                    error.message
                ))
            }
        }
    }

    fn after(&self, event: &Event) -> Result<(), PluginError> {
        let Some(server) = event.server() else {
            return Ok(());
        };
        let key = record_key(&server.id);
        match event.kind {
            EventKind::ServerCreate | EventKind::ServerUpdate => {
                let record = Record {
                    owner_id: server.owner_id.clone(),
                    memory_mb: server.memory_mb,
                };
                kv::set_json(&key, &record)?;
            }
            EventKind::ServerDelete => {
                kv::delete(&key)?;
            }
            _ => {}
        }
        Ok(())
    }
}

fn record_key(server_id: &str) -> String {
    format!("server/{server_id}")
}

/// The verdict for `server` (the one being created or updated).
fn check(server: &ServerInfo) -> Result<Verdict, PluginError> {
    let max_mb: u64 = config::get_or("max-memory-mb", DEFAULT_MAX_MEMORY_MB)?;
    let mut others = Vec::new();
    for summary in panel::list_servers()? {
        if summary.owner_id != server.owner_id || summary.id == server.id {
            continue;
        }
        let memory = kv::get_json::<Record>(&record_key(&summary.id))?.map(|r| r.memory_mb);
        others.push((summary.id, memory));
    }
    let usage = Usage::add_up(server.memory_mb, &others);
    if !usage.unknown.is_empty() {
        log::warn!(
            "servers of {} without a recorded memory size count as 0 MiB: {}",
            server.owner_id,
            usage.unknown.join(", ")
        );
    }
    Ok(usage.verdict(&server.owner_id, max_mb))
}

/// A user's memory use if the request went through.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Usage {
    total_mb: u64,
    /// Servers whose memory is not recorded.
    unknown: Vec<String>,
}

impl Usage {
    /// `requested_mb` plus the recorded memory of the user's other servers.
    fn add_up(requested_mb: u64, others: &[(String, Option<u64>)]) -> Self {
        let mut total_mb = requested_mb;
        let mut unknown = Vec::new();
        for (id, memory) in others {
            match memory {
                Some(memory) => total_mb = total_mb.saturating_add(*memory),
                None => unknown.push(id.clone()),
            }
        }
        Self { total_mb, unknown }
    }

    fn verdict(&self, owner_id: &str, max_mb: u64) -> Verdict {
        if self.total_mb > max_mb {
            Verdict::Deny(format!(
                "quota exceeded: user {owner_id} would use {} MiB of {max_mb} MiB",
                self.total_mb
            ))
        } else {
            Verdict::Allow
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn others(list: &[(&str, Option<u64>)]) -> Vec<(String, Option<u64>)> {
        list.iter()
            .map(|&(id, memory)| (id.to_owned(), memory))
            .collect()
    }

    #[test]
    fn allows_a_first_server_within_the_quota() {
        let usage = Usage::add_up(4096, &[]);
        assert_eq!(usage.verdict("alice", 8192), Verdict::Allow);
    }

    #[test]
    fn allows_reaching_the_quota_exactly() {
        let usage = Usage::add_up(4096, &others(&[("s-1", Some(4096))]));
        assert_eq!(usage.verdict("alice", 8192), Verdict::Allow);
    }

    #[test]
    fn denies_going_over_the_quota_with_the_totals_in_the_reason() {
        let usage = Usage::add_up(1024, &others(&[("s-1", Some(4096)), ("s-2", Some(4096))]));
        assert_eq!(
            usage.verdict("alice", 8192),
            Verdict::Deny("quota exceeded: user alice would use 9216 MiB of 8192 MiB".into())
        );
    }

    #[test]
    fn denies_a_single_server_larger_than_the_quota() {
        let usage = Usage::add_up(16_384, &[]);
        assert!(matches!(usage.verdict("bob", 8192), Verdict::Deny(_)));
    }

    #[test]
    fn servers_without_a_record_count_as_zero_and_are_named() {
        let usage = Usage::add_up(2048, &others(&[("old-1", None), ("s-2", Some(1024))]));
        assert_eq!(usage.total_mb, 3072);
        assert_eq!(usage.unknown, ["old-1"]);
    }

    #[test]
    fn absurd_sizes_saturate_instead_of_wrapping() {
        let usage = Usage::add_up(u64::MAX, &others(&[("s-1", Some(10))]));
        assert_eq!(usage.total_mb, u64::MAX);
        assert!(matches!(usage.verdict("x", 8192), Verdict::Deny(_)));
    }

    #[test]
    fn records_are_keyed_by_server_id() {
        assert_eq!(record_key("s-1"), "server/s-1");
    }

    #[test]
    fn a_record_survives_a_json_round_trip() {
        let record = Record {
            owner_id: "alice".into(),
            memory_mb: 2048,
        };
        let bytes = kv::encode(&record).unwrap();
        assert_eq!(kv::decode::<Record>(&bytes).unwrap(), record);
    }
}
