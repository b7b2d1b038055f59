//! `node.*`: the machines game servers run on, their allocations and their
//! Agents' registration ([`crate::servers::nodes`],
//! [`crate::servers::registration`]). Each event carries everything its
//! rows hold, so that replay can rebuild them; secrets only as their
//! SHA-256 (`token_hash`).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::server::{GameVersion, Resources};
use super::{At, Empty, NodeId, namespace};

namespace! {
    /// `node.*`: nodes (the subject is the node).
    pub enum NodeEvent {
        /// A node was created; until its Agent registers, its token hash is
        /// that of a secret nobody knows.
        Created = "node.created" { subject: NodeId, data: NodeCreated },
        /// A node's name, address or resources changed.
        Updated = "node.updated" { subject: NodeId, data: NodeUpdated },
        /// A node was deleted with its allocations and registration tokens.
        Deleted = "node.deleted" { subject: NodeId, data: Empty },
        /// The node's Agent connected.
        Online = "node.online" { subject: NodeId, data: At },
        /// The node's Agent disconnected.
        Offline = "node.offline" { subject: NodeId, data: At },
        /// A registration token was issued for the node.
        RegistrationTokenIssued = "node.registration-token.issued" { subject: NodeId, data: RegistrationTokenIssued },
        /// An Agent registered with a token and now speaks for the node.
        Registered = "node.registered" { subject: NodeId, data: NodeRegistered },
        /// The node's Agent reported other capabilities than the node had
        /// (it was restarted with another runtime, say).
        CapabilitiesChanged = "node.capabilities.changed" { subject: NodeId, data: NodeCapabilities },
        /// Ports on one address were added to the node.
        AllocationsAdded = "node.allocations.added" { subject: NodeId, data: AllocationsAdded },
        /// A free allocation was deleted.
        AllocationDeleted = "node.allocation.deleted" { subject: NodeId, data: AllocationPort },
    }
}

/// What a node's Agent says it can run now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NodeCapabilities {
    /// The capabilities, as in [`NodeRegistered::capabilities`].
    pub capabilities: Vec<String>,
    /// When, in microseconds since the Unix epoch.
    pub at: i64,
}

/// A new node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NodeCreated {
    /// Its name.
    pub name: String,
    /// The address players and the Panel reach it at.
    pub address: String,
    /// Memory it offers, MiB.
    pub memory_mb: u64,
    /// Disk it offers, MiB.
    pub disk_mb: u64,
    /// CPU it offers, percent of one core.
    pub cpu_percent: u64,
    /// SHA-256 of its (not yet known) node token.
    pub token_hash: String,
    /// When, in microseconds since the Unix epoch.
    pub at: i64,
}

/// A node as it is after a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NodeUpdated {
    /// Its name.
    pub name: String,
    /// Its address.
    pub address: String,
    /// Memory it offers, MiB.
    pub memory_mb: u64,
    /// Disk it offers, MiB.
    pub disk_mb: u64,
    /// CPU it offers, percent of one core.
    pub cpu_percent: u64,
    /// When, in microseconds since the Unix epoch.
    pub at: i64,
}

/// A registration token (only its hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RegistrationTokenIssued {
    /// The token's id.
    pub token_id: String,
    /// When it expires, in microseconds since the Unix epoch.
    pub expires_at: i64,
    /// SHA-256 of the token.
    pub token_hash: String,
    /// When it was issued, in microseconds since the Unix epoch.
    pub at: i64,
}

/// What a registering Agent said about itself, and the token it spent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NodeRegistered {
    /// The Agent's id.
    pub agent_id: String,
    /// The Agent's version.
    pub version: String,
    /// What it can do.
    pub capabilities: Vec<String>,
    /// The games it can run.
    pub supported_games: Vec<GameVersion>,
    /// What the machine offers to servers.
    pub resource_limits: Resources,
    /// Where the Panel checks the Agent's health.
    pub health_endpoint: String,
    /// The registration token spent.
    pub token_id: String,
    /// SHA-256 of the node's new token.
    pub token_hash: String,
    /// When, in microseconds since the Unix epoch.
    pub at: i64,
}

/// Ports added on one address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AllocationsAdded {
    /// The address, in canonical form.
    pub ip: String,
    /// The ports, ascending.
    pub ports: BTreeSet<u16>,
}

/// One allocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AllocationPort {
    /// The address, in canonical form.
    pub ip: String,
    /// The port.
    pub port: u16,
}
