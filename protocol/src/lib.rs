//! # cap-protocol
//!
//! The typed messages the Ctrl-Alt-Play Panel and its Agents exchange, shared
//! by both so neither can drift from the other.
//!
//! - [`registration`]: the JSON bodies of `POST /api/v1/agents/register`.
//! - [`messages`]: the WebSocket frames, each an [`Envelope`] carrying
//!   [`PROTOCOL_VERSION`]; [`decode`] checks the version before the message.
//! - [`plans`]: install/startup/stop plans as they travel to the Agent.
//! - [`backups`]: backups to create, restore and delete, and their
//!   outcome.
//! - [`files`]: file operations over the link and the signed grants for
//!   moving file contents to and from an Agent directly.
//! - [`sftp`]: SFTP sign-ins the Agent asks the Panel to decide.
//! - [`transfers`]: moving a server's files from one node's Agent to
//!   another's.
//!
//! Key decisions:
//!
//! - **camelCase JSON, kebab-case tags.** Fields are camelCase, message and
//!   enum tags kebab-case (`console-input`, `player-joined`).
//! - **Own plan types.** The plans mirror the WIT records instead of reusing
//!   the runtime's generated types, so the wire format is pinned here; the
//!   `runtime` feature adds `From` conversions from `cap_runtime::api`.
//! - **Idempotent commands.** Every [`Command`] has an id; the Agent acks
//!   every delivery and runs each id once.

pub mod backups;
pub mod files;
pub mod messages;
pub mod plans;
pub mod registration;
pub mod sftp;
pub mod transfers;

pub use messages::{
    Action, AgentMessage, Command, CommandOutcome, ConsoleEvent, ConsoleInput, Envelope,
    GamePackage, HealthReport, LimitsApplied, PROTOCOL_VERSION, PanelMessage, PortAllocation,
    ProtocolError, RestartPolicy, ServerLimits, ServerReport, ServerSpec, ServerState, decode,
    encode,
};
pub use plans::{
    ConditionalSet, ConfigEdit, ConfigFormat, Download, InstallPlan, InstallStep, KeyValue, Script,
    Signal, StartupPlan, StopMethod, StopPlan, WriteFile,
};
pub use registration::{RegistrationRequest, RegistrationResponse, ResourceLimits, SupportedGame};

#[cfg(test)]
mod tests;
