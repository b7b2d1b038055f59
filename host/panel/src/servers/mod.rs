//! The Panel's server domain: nodes and their allocations, Agent
//! registration, game servers, lifecycle commands, subusers, and the
//! Panel API plugins see.
//!
//! | Module | What |
//! | --- | --- |
//! | [`nodes`] | Nodes (machines running an Agent), what they offer, their allocations (ip + port) |
//! | [`allocations`] | A server's allocations: the primary, extra ones within its limit, notes |
//! | [`registration`] | Single-use registration tokens, `POST /agents/register`, node-token authentication |
//! | [`server`] | Servers: stored rows, resource accounting, creation, updates |
//! | [`variables`] | Checking game variables against the rules a game-type plugin declares |
//! | [`access`] | Who may see and do what on a server (owner, subuser, admin) |
//! | [`commands`] | Lifecycle commands and the [`CommandOutbox`] the Agent link delivers from |
//! | [`subusers`] | Other users given a subset of permissions on one server |
//! | [`suspension`] | Suspending a server (stopped, no starts, installs or console, read-only files) and lifting it |
//! | [`transfers`] | Moving a server to another node: the records, the freeze while it moves, the commit |
//! | [`panel_api`] | [`DbPanelApi`], the plugins' `panel` capability over the database |
//! | [`game_catalogue`] | Game types imported as documents (eggs) through a `game-catalogue` plugin |
//!
//! Key decisions:
//!
//! - **Every change is an event, in the same transaction** as the change,
//!   as everywhere in the Panel (`node.created`, `server.created`,
//!   `server.command.queued`, `subuser.added`…).
//! - **Ids are UUIDv7** with a type prefix (`node_…`, `srv_…`, `cmd_…`), so
//!   ordering by id is ordering by creation and lists paginate by id.
//! - **Race-safe accounting.** Creating or resizing a server first touches
//!   its node's row inside the transaction (a row lock on PostgreSQL and
//!   MySQL, the write lock on SQLite), so two creations cannot both spend
//!   the node's last memory; an allocation is taken with a conditional
//!   `UPDATE … WHERE server_id IS NULL`, so it is never given twice.
//! - **Secrets are stored hashed.** Registration tokens (`capreg_…`) and
//!   node tokens (`capnode_…`) are 256 random bits; only their SHA-256 is
//!   kept.
//! - **Commands are an outbox.** Power actions, installs, deletions and
//!   console commands are rows in `server_commands` (state `pending`);
//!   the Agent link takes them from [`CommandOutbox`] and reports them
//!   `acked`, `done` or `failed`. A server is removed only when its Agent
//!   has confirmed the `delete` command.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::db::DbError;
use crate::error_code::Code;

pub mod access;
pub mod allocations;
pub mod commands;
pub mod game_catalogue;
pub mod nodes;
pub mod panel_api;
pub mod registration;
pub mod server;
pub mod subusers;
pub mod suspension;
pub mod transfers;
pub mod variables;

pub use access::ServerAccess;
pub use commands::{Command, CommandAction, CommandOutbox, CommandState};
pub use nodes::{Allocation, AllocationFilter, NewNode, Node, NodeUpdate};
pub use panel_api::{BackupStarter, DbPanelApi};
pub use registration::{Registration, RegistrationRequest, authenticate_node};
pub use server::{NewServer, Server, ServerChanges, ServerResourceLimits};
pub use subusers::Subuser;
pub use suspension::Suspension;

/// Wakes node `node_id`'s Agent session after a command was queued for it
/// (see `crate::agents::AgentHub::wake`).
pub type Waker = std::sync::Arc<dyn Fn(&str) + Send + Sync>;

/// One invalid field: a dotted path (`variables.MAX_PLAYERS`,
/// `limits.memory_mb`) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    /// The field's path in the request body.
    pub field: String,
    /// What is wrong, for people.
    pub message: String,
}

impl FieldProblem {
    /// A problem with `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldProblem {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Why an operation of the server domain was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ServersError {
    /// The node, server, allocation, command or subuser does not exist (or
    /// the caller may not know that it does).
    #[error("{0} not found")]
    NotFound(String),
    /// One or more fields are invalid.
    #[error("invalid: {}", summarize(.0))]
    Invalid(Vec<FieldProblem>),
    /// The operation conflicts with the current state; `code` is stable.
    #[error("{message}")]
    Conflict {
        /// The stable code, e.g. [`Code::AllocationAssigned`]; answered
        /// with its status (`409`).
        code: Code,
        /// For people.
        message: String,
    },
    /// The caller lacks a permission on this server.
    #[error("missing permission {0}")]
    Forbidden(String),
    /// A plugin's before-hook refused the operation.
    #[error("denied by {plugin}: {reason}")]
    HookDenied {
        /// The plugin that refused.
        plugin: String,
        /// Its reason, shown to the client.
        reason: String,
    },
    /// The game-type plugin could not answer (trap, timeout, quarantine).
    #[error("the game-type plugin {plugin} is unavailable: {reason}")]
    PluginUnavailable {
        /// The plugin.
        plugin: String,
        /// What went wrong.
        reason: String,
    },
    /// A registration token was refused.
    #[error(transparent)]
    Registration(#[from] registration::RegistrationError),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

fn summarize(problems: &[FieldProblem]) -> String {
    problems
        .iter()
        .map(|p| format!("{}: {}", p.field, p.message))
        .collect::<Vec<_>>()
        .join("; ")
}

impl From<crate::plugins::hooks::HookDenied> for ServersError {
    fn from(denied: crate::plugins::hooks::HookDenied) -> Self {
        ServersError::HookDenied {
            plugin: denied.plugin,
            reason: denied.reason,
        }
    }
}

impl ServersError {
    /// A single invalid field.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        ServersError::Invalid(vec![FieldProblem::new(field, message)])
    }

    pub(crate) fn conflict(code: Code, message: impl fmt::Display) -> Self {
        ServersError::Conflict {
            code,
            message: message.to_string(),
        }
    }
}

/// A new id: `prefix`, `_`, then a UUIDv7 in 32 hex digits (time-ordered).
pub(crate) fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

/// A fresh secret: `prefix` + 64 hex digits of randomness.
pub(crate) fn random_secret(prefix: &str) -> String {
    let bytes: [u8; 32] = rand::random();
    format!("{prefix}{}", hex::encode(bytes))
}

/// The SHA-256 hex digest of `secret`, as stored.
pub(crate) fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Converts a stored non-negative amount.
pub(crate) fn to_u64(value: i64, what: &str) -> Result<u64, DbError> {
    u64::try_from(value).map_err(|_| DbError::Corrupt(format!("{what} is negative: {value}")))
}

/// Converts an amount to its stored form.
pub(crate) fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl From<sqlx::Error> for ServersError {
    fn from(error: sqlx::Error) -> Self {
        ServersError::Db(DbError::from(error))
    }
}

/// Checks a trimmed text field's length in characters.
pub(crate) fn check_text(problems: &mut Vec<FieldProblem>, field: &str, value: &str, max: usize) {
    let len = value.trim().chars().count();
    if len == 0 {
        problems.push(FieldProblem::new(field, "must not be empty"));
    } else if len > max {
        problems.push(FieldProblem::new(
            field,
            format!("must be at most {max} characters"),
        ));
    } else if value.contains('\0') {
        // SQLite's length() stops at a NUL, so such a value would also
        // break the tables' length checks.
        problems.push(FieldProblem::new(field, "must not contain NUL characters"));
    }
}
