//! Hooks on Panel events (plugin kind `hooks`).
//!
//! The manifest's `[hooks]` table lists the events a plugin wants, in dotted
//! form (`server.create`, `console.player-joined`, see [`EventKind::name`]).
//! Before-hooks run before the operation and may [deny](Verdict::Deny) or
//! [modify](Verdict::Modify) it; after-hooks run afterwards, and an error
//! makes the Panel retry them with backoff.
//!
//! ```
//! use cap_plugin_sdk::prelude::*;
//!
//! #[derive(Default)]
//! struct NoMondays;
//!
//! impl Hooks for NoMondays {
//!     fn before(&self, event: &Event) -> Verdict {
//!         // occurred_at_ms / 86_400_000 days since Thursday 1970-01-01.
//!         let weekday = (event.occurred_at_ms / 86_400_000 + 3) % 7;
//!         if event.kind == EventKind::ServerCreate && weekday == 0 {
//!             Verdict::Deny("no new servers on Mondays".into())
//!         } else {
//!             Verdict::Allow
//!         }
//!     }
//! }
//!
//! cap_plugin_sdk::export_plugin!(NoMondays: hooks);
//! # fn main() {}
//! ```

use crate::bindings::exports::ctrl_alt_play::plugin::hooks;
use crate::types::{PluginError, lookup};

pub use hooks::{
    Actor, ConsoleInfo, Event, EventKind, NodeInfo, Payload, PluginRef, ScheduleInfo, ServerInfo,
    UserInfo, Verdict,
};
#[cfg(feature = "api-0-2")]
pub use hooks::{BackupInfo, DatabaseInfo, FileInfo, SuspensionInfo, TransferInfo};

/// Before- and after-hooks: the `hooks` export of the WIT API.
///
/// Both methods have defaults ([`Verdict::Allow`] and `Ok(())`), so a plugin
/// that only reacts after the fact implements just
/// [`after`](Self::after). The plugin only receives the events its manifest
/// lists.
pub trait Hooks: Send + Sync {
    /// Called before the operation; may veto or adjust it. Defaults to
    /// [`Verdict::Allow`].
    fn before(&self, event: &Event) -> Verdict {
        let _ = event;
        Verdict::Allow
    }

    /// Called after the operation happened. An error makes the Panel retry
    /// with backoff, except for a timer's `schedule.tick` (API 0.2.0), which
    /// is delivered once: its error is recorded as the firing's outcome.
    /// Defaults to `Ok(())`.
    fn after(&self, event: &Event) -> Result<(), PluginError> {
        let _ = event;
        Ok(())
    }
}

/// How many event kinds the API version the SDK targets has.
#[cfg(not(feature = "api-0-2"))]
const KINDS: usize = 28;
/// How many event kinds the API version the SDK targets has.
#[cfg(feature = "api-0-2")]
const KINDS: usize = 39;

/// Dotted names, in the order of the WIT enum.
const NAMES: [(EventKind, &str); KINDS] = [
    (EventKind::UserCreate, "user.create"),
    (EventKind::UserUpdate, "user.update"),
    (EventKind::UserDelete, "user.delete"),
    (EventKind::UserLogin, "user.login"),
    (EventKind::UserLogout, "user.logout"),
    (EventKind::ServerCreate, "server.create"),
    (EventKind::ServerUpdate, "server.update"),
    (EventKind::ServerDelete, "server.delete"),
    (EventKind::ServerInstall, "server.install"),
    (EventKind::ServerStart, "server.start"),
    (EventKind::ServerStop, "server.stop"),
    (EventKind::ServerRestart, "server.restart"),
    (EventKind::ServerKill, "server.kill"),
    (EventKind::ServerStateChanged, "server.state-changed"),
    (EventKind::NodeCreate, "node.create"),
    (EventKind::NodeDelete, "node.delete"),
    (EventKind::NodeOnline, "node.online"),
    (EventKind::NodeOffline, "node.offline"),
    (EventKind::PluginInstall, "plugin.install"),
    (EventKind::PluginActivate, "plugin.activate"),
    (EventKind::PluginDeactivate, "plugin.deactivate"),
    (EventKind::PluginUninstall, "plugin.uninstall"),
    (EventKind::ConsoleCommand, "console.command"),
    (EventKind::ConsoleReady, "console.ready"),
    (EventKind::ConsolePlayerJoined, "console.player-joined"),
    (EventKind::ConsolePlayerLeft, "console.player-left"),
    (EventKind::ConsoleCrash, "console.crash"),
    (EventKind::ScheduleTick, "schedule.tick"),
    #[cfg(feature = "api-0-2")]
    (EventKind::UserInvite, "user.invite"),
    #[cfg(feature = "api-0-2")]
    (EventKind::FileWrite, "file.write"),
    #[cfg(feature = "api-0-2")]
    (EventKind::BackupCreate, "backup.create"),
    #[cfg(feature = "api-0-2")]
    (EventKind::BackupComplete, "backup.complete"),
    #[cfg(feature = "api-0-2")]
    (EventKind::BackupRestore, "backup.restore"),
    #[cfg(feature = "api-0-2")]
    (EventKind::BackupDelete, "backup.delete"),
    #[cfg(feature = "api-0-2")]
    (EventKind::DatabaseCreate, "database.create"),
    #[cfg(feature = "api-0-2")]
    (EventKind::DatabaseDelete, "database.delete"),
    #[cfg(feature = "api-0-2")]
    (EventKind::ServerSuspend, "server.suspend"),
    #[cfg(feature = "api-0-2")]
    (EventKind::ServerUnsuspend, "server.unsuspend"),
    #[cfg(feature = "api-0-2")]
    (EventKind::ServerTransfer, "server.transfer"),
];

impl EventKind {
    /// Every event kind, in the order of the WIT enum (28 in API 0.1.0;
    /// 0.2.0 adds `user.invite`, `file.write`, the four `backup.*` kinds,
    /// `database.create`, `database.delete`, `server.suspend`,
    /// `server.unsuspend` and `server.transfer`).
    ///
    /// ```
    /// use cap_plugin_sdk::hooks::EventKind;
    ///
    /// assert!(EventKind::ALL.len() >= 28);
    /// assert_eq!(EventKind::ALL[0], EventKind::UserCreate);
    /// ```
    pub const ALL: [EventKind; KINDS] = {
        let mut all = [EventKind::UserCreate; KINDS];
        let mut i = 0;
        while i < NAMES.len() {
            all[i] = NAMES[i].0;
            i += 1;
        }
        all
    };

    /// The dotted name used in manifests: the WIT name with its first `-`
    /// replaced by `.`.
    ///
    /// ```
    /// use cap_plugin_sdk::hooks::EventKind;
    ///
    /// assert_eq!(EventKind::ServerCreate.name(), "server.create");
    /// assert_eq!(EventKind::ConsolePlayerJoined.name(), "console.player-joined");
    /// ```
    pub fn name(self) -> &'static str {
        NAMES
            .iter()
            .find(|(kind, _)| *kind == self)
            .map_or("unknown", |(_, name)| name)
    }

    /// The event kind with dotted name `name`.
    ///
    /// ```
    /// use cap_plugin_sdk::hooks::EventKind;
    ///
    /// assert_eq!(EventKind::from_name("server.state-changed"), Some(EventKind::ServerStateChanged));
    /// assert_eq!(EventKind::from_name("server-create"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<Self> {
        NAMES
            .iter()
            .find(|(_, candidate)| *candidate == name)
            .map(|(kind, _)| *kind)
    }
}

impl std::fmt::Display for EventKind {
    /// Formats the dotted name.
    ///
    /// ```
    /// use cap_plugin_sdk::hooks::EventKind;
    ///
    /// assert_eq!(EventKind::ServerStop.to_string(), "server.stop");
    /// ```
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Event {
    /// The server payload, for `server.*` events.
    ///
    /// ```
    /// # use cap_plugin_sdk::hooks::*;
    /// # let event = Event {
    /// #     id: "e-1".into(), kind: EventKind::NodeOnline, occurred_at_ms: 0,
    /// #     actor: Actor { user_id: None, ip: None, request_id: None },
    /// #     payload: Payload::Node(NodeInfo { id: "n-1".into(), name: "n".into(), address: "a".into() }),
    /// # };
    /// assert!(event.server().is_none());
    /// ```
    pub fn server(&self) -> Option<&ServerInfo> {
        match &self.payload {
            Payload::Server(server) => Some(server),
            _ => None,
        }
    }

    /// The user payload, for `user.*` events.
    ///
    /// ```
    /// # use cap_plugin_sdk::hooks::*;
    /// # let event = Event {
    /// #     id: "e-1".into(), kind: EventKind::UserLogin, occurred_at_ms: 0,
    /// #     actor: Actor { user_id: None, ip: None, request_id: None },
    /// #     payload: Payload::User(UserInfo {
    /// #         id: "u-1".into(), username: "alice".into(), email: None, admin: false,
    /// #     }),
    /// # };
    /// assert_eq!(event.user().map(|u| u.username.as_str()), Some("alice"));
    /// ```
    pub fn user(&self) -> Option<&UserInfo> {
        match &self.payload {
            Payload::User(user) => Some(user),
            _ => None,
        }
    }

    /// The console payload, for `console.*` events.
    ///
    /// ```
    /// # use cap_plugin_sdk::hooks::*;
    /// # let event = Event {
    /// #     id: "e-1".into(), kind: EventKind::ConsoleCrash, occurred_at_ms: 0,
    /// #     actor: Actor { user_id: None, ip: None, request_id: None },
    /// #     payload: Payload::Console(ConsoleInfo {
    /// #         server_id: "s-1".into(), line: "CRASH oom".into(), detail: Some("oom".into()),
    /// #     }),
    /// # };
    /// assert_eq!(event.console().and_then(|c| c.detail.as_deref()), Some("oom"));
    /// ```
    pub fn console(&self) -> Option<&ConsoleInfo> {
        match &self.payload {
            Payload::Console(console) => Some(console),
            _ => None,
        }
    }
}

impl ServerInfo {
    /// The value of game variable `key`.
    ///
    /// ```
    /// # use cap_plugin_sdk::hooks::ServerInfo;
    /// # use cap_plugin_sdk::types::KeyValue;
    /// # let server = ServerInfo {
    /// #     id: "s-1".into(), name: "Survival".into(), owner_id: "u-1".into(),
    /// #     node_id: "n-1".into(), game_type: "minecraft-paper".into(), memory_mb: 4096,
    /// #     disk_mb: 10240, cpu_percent: 200,
    /// #     variables: vec![KeyValue::new("MINECRAFT_VERSION", "1.21.4")], state: "offline".into(),
    /// # };
    /// assert_eq!(server.variable("MINECRAFT_VERSION"), Some("1.21.4"));
    /// ```
    pub fn variable(&self, key: &str) -> Option<&str> {
        lookup(&self.variables, key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_kind_has_a_dotted_name_that_round_trips() {
        for kind in EventKind::ALL {
            let name = kind.name();
            assert_ne!(name, "unknown");
            assert_eq!(EventKind::from_name(name), Some(kind));
        }
    }

    #[test]
    fn dotted_names_are_the_wit_names_with_the_first_hyphen_as_a_dot() {
        for (kind, name) in NAMES {
            // `EventKind::ServerStateChanged` -> `server-state-changed`.
            let debug = format!("{kind:?}");
            let variant = debug.trim_start_matches("EventKind::");
            let mut wit = String::new();
            for (i, c) in variant.chars().enumerate() {
                if c.is_ascii_uppercase() && i > 0 {
                    wit.push('-');
                }
                wit.push(c.to_ascii_lowercase());
            }
            assert_eq!(name, wit.replacen('-', ".", 1), "{variant}");
        }
    }
}
