//! `server.*` and `subuser.*`: game servers, the commands sent to their
//! Agents, and the users they are shared with ([`crate::servers`]).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::{Null, ServerId, namespace};

/// What the audit log shows instead of a hidden variable's value.
pub const REDACTED: &str = "<redacted>";

namespace! {
    /// `server.*`: game servers and their commands (the subject is the
    /// server).
    pub enum ServerEvent {
        /// A server was created on a node, holding one allocation.
        Created = "server.created" { subject: ServerId, data: ServerCreated },
        /// A server's name, variables, limits or game version changed.
        Updated = "server.updated" { subject: ServerId, data: ServerUpdated },
        /// The server's Agent reported a new state.
        StateChanged = "server.state.changed" { subject: ServerId, data: StateChanged },
        /// The Agent confirmed a delete command: the server is gone and its
        /// allocations are free.
        Deleted = "server.deleted" { subject: ServerId, data: ServerDeleted },
        /// A command was queued for the server's Agent (a delete command
        /// marks the server `deleting`).
        CommandQueued = "server.command.queued" { subject: ServerId, data: CommandQueued },
        /// The Agent received a command.
        CommandAcked = "server.command.acked" { subject: ServerId, data: CommandSettled },
        /// The Agent carried a command out.
        CommandDone = "server.command.done" { subject: ServerId, data: CommandSettled },
        /// The Agent could not carry a command out (a failed delete puts
        /// the server back `offline`).
        CommandFailed = "server.command.failed" { subject: ServerId, data: CommandSettled },
        /// The server's allocation limit was set: how many allocations it
        /// may hold besides its primary.
        AllocationLimitSet = "server.allocation-limit.set" { subject: ServerId, data: AllocationLimit },
        /// A free allocation of the server's node was given to the server
        /// (an extra one, beside its primary).
        AllocationAdded = "server.allocation.added" { subject: ServerId, data: ServerAllocation },
        /// The notes of one of the server's allocations changed (`null`:
        /// cleared).
        AllocationNotesSet = "server.allocation.notes.set" { subject: ServerId, data: AllocationNotes },
        /// One of the server's allocations became its primary; the one
        /// that was is an extra allocation now.
        PrimaryAllocationSet = "server.allocation.primary.set" { subject: ServerId, data: ServerAllocation },
        /// An extra allocation went back to its node's pool, its notes
        /// cleared.
        AllocationRemoved = "server.allocation.removed" { subject: ServerId, data: ServerAllocation },
        /// The server was suspended; the event's actor is who suspended it
        /// (an administrator, or `plugin:<id>`). The stop it queued and the
        /// pending commands it failed are events of their own, in the same
        /// transaction.
        Suspended = "server.suspended" { subject: ServerId, data: ServerSuspended },
        /// The server's suspension was lifted.
        Unsuspended = "server.unsuspended" { subject: ServerId, data: ServerUnsuspended },
        /// A transfer of the server to another node began: until it ends
        /// the server takes no start, restart, install, console command or
        /// deletion.
        TransferStarted = "server.transfer.started" { subject: ServerId, data: TransferStarted },
        /// The server moved: it is on the target node now, holding the
        /// allocations named (the first its primary); those it held on the
        /// source went back to that node's pool, their notes cleared.
        Transferred = "server.transferred" { subject: ServerId, data: ServerTransferred },
        /// A transfer failed; the server stays on the node it was on.
        TransferFailed = "server.transfer.failed" { subject: ServerId, data: TransferFailed },
    }
}

/// A suspension.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ServerSuspended {
    /// Why, as its owner is shown it.
    pub reason: String,
    /// When, in microseconds since the Unix epoch.
    pub at: i64,
}

/// A lifted suspension.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ServerUnsuspended {
    /// The reason it had been suspended for.
    pub reason: String,
    /// When, in microseconds since the Unix epoch.
    pub at: i64,
}

/// A game and its version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GameVersion {
    /// The game-type plugin's id.
    pub plugin: String,
    /// Its version.
    pub version: String,
    /// The game type among the plugin's (absent in events written before
    /// plugins could offer several: the plugin's only one).
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "type")]
    pub game_type: Option<String>,
}

/// Memory, disk and CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Resources {
    /// Memory, MiB.
    pub memory_mb: u64,
    /// Disk, MiB.
    pub disk_mb: u64,
    /// CPU, percent of one core.
    pub cpu_percent: u64,
}

/// A new server.
///
/// `variable_values` holds every variable's value, the hidden ones
/// (`secret_variables`, such as an RCON password) included: replay rebuilds
/// the server from them. The audit log shows the hidden ones as
/// [`REDACTED`] ([`ServerEvent::redact`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ServerCreated {
    /// Its name.
    pub name: String,
    /// The user who owns it.
    pub owner_id: String,
    /// The node it runs on.
    pub node_id: String,
    /// The allocation it holds, `ip:port`.
    pub allocation: String,
    /// Its game.
    pub game: GameVersion,
    /// The image it runs in, when its game type lists images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The startup command it runs, when its game type names several and
    /// one was picked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup_command: Option<String>,
    /// What it may use.
    pub limits: Resources,
    /// Every variable's value.
    pub variable_values: BTreeMap<String, String>,
    /// The variables the game hides from users (absent in events written
    /// before hidden variables existed).
    #[serde(default)]
    pub secret_variables: Vec<String>,
    /// Its state.
    pub state: String,
    /// When, in microseconds since the Unix epoch.
    pub at: i64,
}

/// A server as it is after a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ServerUpdated {
    /// Its name.
    pub name: String,
    /// The names of its variables.
    pub variables: Vec<String>,
    /// What it may use.
    pub limits: Resources,
    /// Every variable's value, as in [`ServerCreated`].
    pub variable_values: BTreeMap<String, String>,
    /// The variables the game hides from users.
    #[serde(default)]
    pub secret_variables: Vec<String>,
    /// The game's version.
    pub game_version: String,
    /// The image it runs in, when its game type lists images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The startup command it runs, when its game type names several and
    /// one was picked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup_command: Option<String>,
}

/// A state the Agent reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StateChanged {
    /// The state before.
    pub from: String,
    /// The state now.
    pub to: String,
    /// Why, if the Agent said.
    pub reason: Option<String>,
    /// When, in microseconds since the Unix epoch.
    pub at: i64,
}

/// A transfer that began.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TransferStarted {
    /// The transfer (`xfr_…`).
    pub transfer_id: String,
    /// The node the server is on.
    pub from_node: String,
    /// The node it goes to.
    pub to_node: String,
    /// When, in microseconds since the Unix epoch.
    pub at: i64,
}

/// An address and port of a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IpPort {
    /// The address, in canonical form.
    pub ip: String,
    /// The port.
    pub port: u16,
}

/// A transfer that ended well.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ServerTransferred {
    /// The transfer.
    pub transfer_id: String,
    /// The node the server was on.
    pub from_node: String,
    /// The node it is on now.
    pub to_node: String,
    /// Its allocations on the new node, the primary first.
    pub allocations: Vec<IpPort>,
    /// When, in microseconds since the Unix epoch.
    pub at: i64,
}

/// A transfer that failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TransferFailed {
    /// The transfer.
    pub transfer_id: String,
    /// Why.
    pub reason: String,
    /// When, in microseconds since the Unix epoch.
    pub at: i64,
}

/// A server's allocation limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AllocationLimit {
    /// How many allocations the server may hold besides its primary.
    pub limit: u32,
}

/// One allocation of a server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ServerAllocation {
    /// The node it is on (the server's).
    pub node_id: String,
    /// The address, in canonical form.
    pub ip: String,
    /// The port.
    pub port: u16,
}

/// The notes of one allocation of a server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AllocationNotes {
    /// The node it is on (the server's).
    pub node_id: String,
    /// The address, in canonical form.
    pub ip: String,
    /// The port.
    pub port: u16,
    /// The notes; `null` when they were cleared.
    pub notes: Option<String>,
}

/// A deleted server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ServerDeleted {
    /// The delete command the Agent confirmed.
    pub command_id: String,
}

/// A queued command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CommandQueued {
    /// Its id.
    pub command_id: String,
    /// What to do: `start`, `stop`, `install`, `delete`, `command`…
    pub action: String,
    /// The plugin that sent it, if one did.
    pub plugin: Option<String>,
    /// The node whose Agent runs it.
    pub node_id: Option<String>,
    /// Its arguments (a console line: `{"line": …}`).
    pub payload: Option<Value>,
    /// When, in microseconds since the Unix epoch.
    pub at: i64,
}

/// A command that moved on (acked, done or failed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CommandSettled {
    /// Its id.
    pub command_id: String,
    /// What it does.
    pub action: String,
    /// The node whose Agent reported.
    pub node_id: String,
    /// What the Agent said.
    pub detail: Option<String>,
    /// When, in microseconds since the Unix epoch.
    pub at: i64,
}

impl ServerEvent {
    /// Replaces the values of the hidden variables with [`REDACTED`].
    pub fn redact(&mut self) {
        let (values, secret) = match self {
            ServerEvent::Created { data, .. } => {
                (&mut data.variable_values, &data.secret_variables)
            }
            ServerEvent::Updated { data, .. } => {
                (&mut data.variable_values, &data.secret_variables)
            }
            _ => return,
        };
        for key in secret {
            if let Some(value) = values.get_mut(key) {
                REDACTED.clone_into(value);
            }
        }
    }
}

namespace! {
    /// `subuser.*`: users a server is shared with (the subject is the
    /// server).
    pub enum SubuserEvent {
        /// A user was given permissions on the server.
        Added = "subuser.added" { subject: ServerId, data: SubuserPermissions },
        /// A subuser's permissions were replaced.
        Updated = "subuser.updated" { subject: ServerId, data: SubuserPermissions },
        /// A subuser was removed.
        Removed = "subuser.removed" { subject: ServerId, data: SubuserRemoved },
    }
}

/// A subuser's permissions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SubuserPermissions {
    /// The user.
    pub user_id: String,
    /// What they may do on the server.
    pub permissions: BTreeSet<String>,
    /// When, in microseconds since the Unix epoch.
    pub at: i64,
}

/// A removed subuser.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SubuserRemoved {
    /// The user.
    pub user_id: String,
    /// Always `null`.
    #[serde(default)]
    pub permissions: Null,
}
