//! Lifecycle commands: power actions, installs, deletions and console
//! commands, recorded in `server_commands` and delivered to the server's
//! Agent through the [`CommandOutbox`].
//!
//! [`enqueue`] runs the action's before-hooks (`server.start`,
//! `server.stop`, `server.restart`, `server.kill`, `server.install`,
//! `server.delete`, `console.command`), then records the command as
//! `pending` with its event (`server.command.queued`) in one transaction,
//! then fires the after-hooks without waiting. A `delete` also marks the
//! server `deleting`; it is removed, and its allocation freed, when the
//! Agent reports the command `done`.
//!
//! Plugins send console commands and (API 0.2.0) power actions too (the
//! `panel` capability's `send-console-command` and `power-action`,
//! [`super::DbPanelApi`]); [`enqueue_for_plugin`] runs them through the
//! same validation and before-hooks as a user's, and records them with the
//! plugin as the actor (`plugin:<id>`, see [`plugin_actor`]), so a quota or
//! moderation hook cannot be bypassed by going through a plugin and the
//! audit log says who sent them. Their after-hooks do not fire: an
//! after-hook answering a console event with a console command would feed
//! itself forever, on tasks of their own where no depth can be counted.
//! Before-hooks run inside the sending plugin's call, so their nesting is
//! counted ([`MAX_PLUGIN_COMMAND_DEPTH`], [`as_plugin_request`], which a
//! plugin's backups count too). A power action needs no server permission
//! here: the plugin's `power` scope is the grant, as `console.send` is for
//! console commands.
//!
//! A command moves `pending` → `acked` → `done` or `failed` (`pending` may
//! go straight to `done` or `failed`); anything else is refused, so a late
//! or repeated report cannot rewrite history.
//!
//! **The suspension choke point.** Every command is recorded by [`record`],
//! and for the actions a suspension refuses (start, restart, install,
//! console: [`CommandAction::refused_while_suspended`]) it first touches
//! the server's row on the condition that it is not suspended, in the
//! command's own transaction. So whatever path queues a command (the REST
//! routes, the console socket, a plugin's `panel` capability, a future
//! scheduler), a suspended server is refused with `server-suspended`
//! naming the reason, and a suspension racing with a start either comes
//! first (the start is refused) or second (the suspension fails the
//! pending start; see [`super::suspension`]). [`enqueue`] refuses earlier
//! still, before the before-hooks run, from the server it was given. A
//! server in a transfer to another node is refused the same actions and
//! deletion too (`server-transferring`, naming the transfer), on the same
//! row and in the same way ([`super::transfers`]).
//!
//! **Reinstalls** ([`enqueue_install`]) carry `{"wipe": true}` when the
//! caller asked for the server's directory to be emptied first, and are
//! refused (`server-running`, naming the state) while the server is
//! starting, running, stopping or installing: the Agent does not install
//! over a live server, and the Panel says so before queueing rather than
//! leaving a failed command behind. Stop the server first.

use std::fmt;
use std::str::FromStr;

use cap_runtime::api::{ConsoleInfo, EventKind, Payload};
use serde_json::{Value, json};
use sqlx::types::Json;
use time::OffsetDateTime;

use super::server::{self, STATE_DELETING, Server, server_info};
use super::{ServersError, new_id, suspension};
use crate::db::domain::{CommandQueued, CommandSettled, ServerDeleted, ServerEvent, ServerId};
use crate::db::{
    Actor, Database, DbError, NewEvent, from_micros, now, on_pool, query_builder, to_micros,
};
use crate::error_code::Code;
use crate::identity::permissions::Gate;
use crate::plugins::PluginManager;
use crate::plugins::hooks::{event as hook_event, run_before, spawn_after};

/// Longest console command, bytes.
pub const MAX_CONSOLE_BYTES: usize = 4096;

/// What a command asks the Agent to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CommandAction {
    /// Start the server.
    Start,
    /// Stop it gracefully.
    Stop,
    /// Stop, then start it.
    Restart,
    /// Kill it at once.
    Kill,
    /// Run the game's install plan.
    Install,
    /// Remove it from the node.
    Delete,
    /// Send a line to its console (`payload.line`).
    Console,
}

impl CommandAction {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            CommandAction::Start => "start",
            CommandAction::Stop => "stop",
            CommandAction::Restart => "restart",
            CommandAction::Kill => "kill",
            CommandAction::Install => "install",
            CommandAction::Delete => "delete",
            CommandAction::Console => "console",
        }
    }

    /// True if and only if a server in a transfer is refused the action:
    /// those a suspension refuses, and deletion (stops and kills go on:
    /// the transfer stops the server itself).
    pub fn refused_while_transferring(self) -> bool {
        self.refused_while_suspended() || self == CommandAction::Delete
    }

    /// The hook event kind the action fires.
    pub fn event_kind(self) -> EventKind {
        match self {
            CommandAction::Start => EventKind::ServerStart,
            CommandAction::Stop => EventKind::ServerStop,
            CommandAction::Restart => EventKind::ServerRestart,
            CommandAction::Kill => EventKind::ServerKill,
            CommandAction::Install => EventKind::ServerInstall,
            CommandAction::Delete => EventKind::ServerDelete,
            CommandAction::Console => EventKind::ConsoleCommand,
        }
    }

    /// The actions a suspended server is refused: start, restart, install
    /// and console commands (stops, kills and deletions go on). A transfer
    /// refuses them too, and fails them when they are pending.
    pub const REFUSED_WHILE_SUSPENDED: [CommandAction; 4] = [
        CommandAction::Start,
        CommandAction::Restart,
        CommandAction::Install,
        CommandAction::Console,
    ];

    /// True if and only if a suspended server is refused the action (one
    /// of [`CommandAction::REFUSED_WHILE_SUSPENDED`]).
    pub fn refused_while_suspended(self) -> bool {
        Self::REFUSED_WHILE_SUSPENDED.contains(&self)
    }

    /// The gate of the server permission the action needs (Pterodactyl's
    /// names; a kill is a forced stop).
    pub(crate) fn permission(self) -> Gate {
        match self {
            CommandAction::Start => Gate::CONTROL_START,
            CommandAction::Stop | CommandAction::Kill => Gate::CONTROL_STOP,
            CommandAction::Restart => Gate::CONTROL_RESTART,
            CommandAction::Install => Gate::SETTINGS_REINSTALL,
            CommandAction::Delete => Gate::SERVER_DELETE,
            CommandAction::Console => Gate::CONTROL_CONSOLE,
        }
    }
}

impl fmt::Display for CommandAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CommandAction {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "start" => CommandAction::Start,
            "stop" => CommandAction::Stop,
            "restart" => CommandAction::Restart,
            "kill" => CommandAction::Kill,
            "install" => CommandAction::Install,
            "delete" => CommandAction::Delete,
            "console" => CommandAction::Console,
            other => return Err(format!("unknown command action {other:?}")),
        })
    }
}

/// Where a command is in its delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CommandState {
    /// Recorded, not yet taken by the Agent.
    Pending,
    /// The Agent has it.
    Acked,
    /// The Agent carried it out.
    Done,
    /// The Agent could not carry it out (`detail` says why).
    Failed,
}

impl CommandState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            CommandState::Pending => "pending",
            CommandState::Acked => "acked",
            CommandState::Done => "done",
            CommandState::Failed => "failed",
        }
    }
}

impl FromStr for CommandState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "pending" => CommandState::Pending,
            "acked" => CommandState::Acked,
            "done" => CommandState::Done,
            "failed" => CommandState::Failed,
            other => return Err(format!("unknown command state {other:?}")),
        })
    }
}

/// A recorded command.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    /// Its id (`cmd_…`).
    pub id: String,
    /// The server it is for.
    pub server_id: String,
    /// The node it goes to.
    pub node_id: Option<String>,
    /// What to do.
    pub action: CommandAction,
    /// Where it is.
    pub state: CommandState,
    /// Details: `{"line": …}` for a console command.
    pub payload: Option<Value>,
    /// Who asked (`None` for plugins and the Panel).
    pub actor_user_id: Option<String>,
    /// Why it failed.
    pub detail: Option<String>,
    /// When it was recorded.
    pub created_at: OffsetDateTime,
    /// When it last changed.
    pub updated_at: OffsetDateTime,
}

#[derive(sqlx::FromRow)]
struct CommandRow {
    id: String,
    server_id: String,
    node_id: Option<String>,
    action: String,
    state: String,
    payload: Option<Json<Value>>,
    actor_user_id: Option<String>,
    detail: Option<String>,
    created_at: i64,
    updated_at: i64,
}

const COMMAND_COLUMNS: &str = "SELECT id, server_id, node_id, action, state, payload, \
     actor_user_id, detail, created_at, updated_at FROM server_commands";

impl TryFrom<CommandRow> for Command {
    type Error = DbError;

    fn try_from(row: CommandRow) -> Result<Self, DbError> {
        Ok(Command {
            action: row.action.parse().map_err(DbError::Corrupt)?,
            state: row.state.parse().map_err(DbError::Corrupt)?,
            created_at: from_micros(row.created_at)?,
            updated_at: from_micros(row.updated_at.max(row.created_at))?,
            id: row.id,
            server_id: row.server_id,
            node_id: row.node_id,
            payload: row.payload.map(|j| j.0),
            actor_user_id: row.actor_user_id,
            detail: row.detail,
        })
    }
}

/// How deep plugin-sent console commands may nest (a before-hook that sends
/// a console command, whose before-hooks send another, …); deeper ones are
/// refused.
pub const MAX_PLUGIN_COMMAND_DEPTH: u32 = 2;

tokio::task_local! {
    /// How many plugin-sent console commands the current task is inside.
    static PLUGIN_COMMAND_DEPTH: u32;
}

/// The audit actor of plugin `id`: `plugin:<id>`, cut to the 64 characters
/// an actor id holds (plugin ids have at most 63; the full id is in the
/// event's `plugin` field as well).
pub fn plugin_actor(id: &str) -> Actor {
    let mut user_id = format!("plugin:{id}");
    user_id.truncate(crate::db::events::MAX_USER_ID_LEN);
    Actor {
        user_id: Some(user_id),
        ..Actor::system()
    }
}

/// Runs `work`, something a plugin asked for (a command, a backup), one
/// level deeper in the plugin-initiated requests of this task, or refuses
/// with [`ServersError::Conflict`] (`plugin-commands-nested`) when they
/// already nest [`MAX_PLUGIN_COMMAND_DEPTH`] deep: a before-hook that asks
/// for what fires its own event would otherwise recurse without end.
///
/// # Errors
///
/// The nesting refusal, or `work`'s own error.
pub async fn as_plugin_request<T, E, F>(work: F) -> Result<T, E>
where
    F: std::future::Future<Output = Result<T, E>>,
    E: From<ServersError>,
{
    let depth = PLUGIN_COMMAND_DEPTH.try_with(|d| *d).unwrap_or(0);
    if depth >= MAX_PLUGIN_COMMAND_DEPTH {
        return Err(ServersError::conflict(
            Code::PluginCommandsNested,
            format!("requests plugins make from hooks nest deeper than {MAX_PLUGIN_COMMAND_DEPTH}"),
        )
        .into());
    }
    PLUGIN_COMMAND_DEPTH.scope(depth + 1, work).await
}

/// Records `action` that plugin `plugin` asks for `server` (`line`: the
/// console command of [`CommandAction::Console`]), after the same checks
/// and before-hooks as a user's (see the module docs), with the plugin as
/// the actor.
///
/// # Errors
///
/// As [`enqueue`], and [`ServersError::Conflict`]
/// (`plugin-commands-nested`) when plugin-sent requests nest deeper than
/// [`MAX_PLUGIN_COMMAND_DEPTH`] ([`as_plugin_request`]).
pub async fn enqueue_for_plugin(
    db: &Database,
    plugins: Option<&PluginManager>,
    server: &Server,
    action: CommandAction,
    line: Option<&str>,
    plugin: &str,
) -> Result<Command, ServersError> {
    let actor = plugin_actor(plugin);
    as_plugin_request(enqueue_as(
        db,
        plugins,
        server,
        action,
        line.map_or(Input::None, Input::Line),
        Some(plugin),
        &actor,
    ))
    .await
}

/// What a command carries besides its action.
#[derive(Debug, Clone, Copy)]
enum Input<'a> {
    /// Nothing.
    None,
    /// A console line (for [`CommandAction::Console`]).
    Line(&'a str),
    /// Empty the server's directory before the install plan runs.
    Wipe,
}

/// Records `action` for `server` after its before-hooks allow it; `line`
/// is the console command for [`CommandAction::Console`] (a before-hook
/// may rewrite it). An install keeps the server's files
/// ([`enqueue_install`] may empty them first).
///
/// # Errors
///
/// [`ServersError::Conflict`] (`server-deleting`) for a server being
/// deleted, `server-suspended` (naming the reason) for a start, restart,
/// install or console command to a suspended server, `server-running` for
/// an install of a running one; [`ServersError::Invalid`] for a bad console
/// line, [`ServersError::HookDenied`], database errors.
pub async fn enqueue(
    db: &Database,
    plugins: Option<&PluginManager>,
    server: &Server,
    action: CommandAction,
    line: Option<&str>,
    actor: &Actor,
) -> Result<Command, ServersError> {
    let input = line.map_or(Input::None, Input::Line);
    enqueue_as(db, plugins, server, action, input, None, actor).await
}

/// Records a (re)install of `server`, as [`enqueue`] does; with `wipe`,
/// its Agent empties the server's directory before the install plan runs
/// (the command's payload is `{"wipe": true}`).
///
/// # Errors
///
/// As [`enqueue`].
pub async fn enqueue_install(
    db: &Database,
    plugins: Option<&PluginManager>,
    server: &Server,
    wipe: bool,
    actor: &Actor,
) -> Result<Command, ServersError> {
    let input = if wipe { Input::Wipe } else { Input::None };
    enqueue_as(
        db,
        plugins,
        server,
        CommandAction::Install,
        input,
        None,
        actor,
    )
    .await
}

/// The states in which a server is refused an install: its process is
/// alive, or an install runs.
pub const NOT_INSTALLABLE: [&str; 4] = ["starting", "running", "stopping", "installing"];

/// [`enqueue`] for a user (`plugin` is `None`: after-hooks fire) or for a
/// plugin (named in the event; no after-hooks).
async fn enqueue_as(
    db: &Database,
    plugins: Option<&PluginManager>,
    server: &Server,
    action: CommandAction,
    input: Input<'_>,
    plugin: Option<&str>,
    actor: &Actor,
) -> Result<Command, ServersError> {
    if server.state == STATE_DELETING {
        return Err(ServersError::conflict(
            Code::ServerDeleting,
            "the server is being deleted",
        ));
    }
    if action.refused_while_suspended()
        && let Some(suspended) = &server.suspension
    {
        return Err(suspension::refusal(&server.id, suspended));
    }
    if action.refused_while_transferring()
        && let Some(transfer) = &server.transfer_id
    {
        return Err(super::transfers::refusal(&server.id, transfer));
    }
    if action == CommandAction::Install && NOT_INSTALLABLE.contains(&server.state.as_str()) {
        let then = if server.state == "installing" {
            "wait for that install to end"
        } else {
            "stop it before reinstalling"
        };
        return Err(ServersError::conflict(
            Code::ServerRunning,
            format!("the server is {}: {then}", server.state),
        ));
    }
    let (mut line, wipe) = match input {
        Input::None => (None, false),
        Input::Line(line) => (Some(line.to_owned()), false),
        Input::Wipe => (None, true),
    };
    if action == CommandAction::Console {
        let text = line.as_deref().unwrap_or_default();
        if text.trim().is_empty() || text.len() > MAX_CONSOLE_BYTES || text.contains(['\n', '\r']) {
            return Err(ServersError::field(
                "command",
                format!("must be one non-empty line of at most {MAX_CONSOLE_BYTES} bytes"),
            ));
        }
    }
    let payload = match (action, &line) {
        (CommandAction::Console, Some(text)) => Payload::Console(ConsoleInfo {
            server_id: server.id.clone(),
            line: text.clone(),
            detail: None,
        }),
        _ => Payload::Server(server_info(server)),
    };
    let event = hook_event(action.event_kind(), payload, actor);
    let allowed = run_before(plugins, event).await?;
    if let Payload::Console(info) = &allowed.payload
        && action == CommandAction::Console
    {
        line = Some(info.line.clone());
    }
    let payload = match (line, wipe) {
        (Some(line), _) => Some(json!({ "line": line })),
        (None, true) => Some(json!({ "wipe": true })),
        (None, false) => None,
    };
    let command = record(db, server, action, payload, plugin, actor).await?;
    if plugin.is_none() {
        spawn_after(plugins, allowed);
    }
    Ok(command)
}

/// A new pending command for `server` and its `server.command.queued`
/// event, not yet stored (see [`insert_command!`]).
pub(crate) fn new_command(
    server: &Server,
    action: CommandAction,
    payload: Option<Value>,
    plugin: Option<&str>,
    actor: &Actor,
) -> (Command, NewEvent) {
    let at = now();
    let command = Command {
        id: new_id("cmd"),
        server_id: server.id.clone(),
        node_id: server.node_id.clone(),
        action,
        state: CommandState::Pending,
        payload,
        actor_user_id: actor.user_id.clone(),
        detail: None,
        created_at: at,
        updated_at: at,
    };
    let event = NewEvent::new(ServerEvent::CommandQueued {
        subject: ServerId::new(&server.id),
        data: CommandQueued {
            command_id: command.id.clone(),
            action: action.as_str().to_owned(),
            plugin: plugin.map(str::to_owned),
            node_id: command.node_id.clone(),
            payload: command.payload.clone(),
            at: to_micros(at),
        },
    })
    .actor(actor.clone());
    (command, event)
}

/// Inserts `$command` (a `&Command` from [`new_command`]) into
/// `server_commands` inside the transaction `$tx` on `$pool`; a macro
/// because each backend's transaction is its own type (`on_pool!` expands
/// it once per backend). The caller records the event.
macro_rules! insert_command {
    ($pool:ident, $tx:ident, $command:expr) => {{
        let command: &$crate::servers::commands::Command = $command;
        let mut qb = $crate::db::query_builder(
            $pool,
            "INSERT INTO server_commands (id, server_id, node_id, action, state, payload, \
             actor_user_id, created_at, updated_at) VALUES (",
        );
        qb.separated(", ")
            .push_bind(command.id.as_str())
            .push_bind(command.server_id.as_str())
            .push_bind(command.node_id.as_deref())
            .push_bind(command.action.as_str())
            .push_bind(command.state.as_str())
            .push_bind(command.payload.as_ref().map(sqlx::types::Json))
            .push_bind(command.actor_user_id.as_deref())
            .push_bind($crate::db::to_micros(command.created_at))
            .push_bind($crate::db::to_micros(command.updated_at));
        qb.push(")");
        qb.build().execute(&mut *$tx).await?;
    }};
}
pub(crate) use insert_command;

/// Fails, inside the transaction `$tx` on `$pool`, server `$server_id`'s
/// *pending* commands whose action is one of `$actions` (wire names),
/// with `$detail`, appending `server.command.failed` for each as
/// `$actor` at `$at`: what a suspension or a transfer does to the starts
/// and console commands queued before it. A macro for the reason
/// [`insert_command!`] is one.
macro_rules! fail_pending {
    ($pool:ident, $tx:ident, $server_id:expr, $actions:expr, $detail:expr, $actor:expr, $at:expr) => {{
        let server_id: &str = $server_id;
        let actions: &[&str] = $actions;
        let detail: &str = $detail;
        let actor: &$crate::db::Actor = $actor;
        let at: ::time::OffsetDateTime = $at;
        let mut qb = $crate::db::query_builder(
            $pool,
            "SELECT id, action, node_id FROM server_commands WHERE server_id = ",
        );
        qb.push_bind(server_id)
            .push(" AND state = ")
            .push_bind($crate::servers::commands::CommandState::Pending.as_str())
            .push(" AND action IN (");
        {
            let mut list = qb.separated(", ");
            for action in actions {
                list.push_bind(*action);
            }
        }
        qb.push(") ORDER BY id");
        let pending: Vec<(String, String, Option<String>)> =
            qb.build_query_as().fetch_all(&mut *$tx).await?;
        for (id, action, node) in pending {
            let mut qb = $crate::db::query_builder($pool, "UPDATE server_commands SET state = ");
            qb.push_bind($crate::servers::commands::CommandState::Failed.as_str())
                .push(", detail = ")
                .push_bind(detail)
                .push(", updated_at = ")
                .push_bind($crate::db::to_micros(at))
                .push(" WHERE id = ")
                .push_bind(id.as_str())
                .push(" AND state = ")
                .push_bind($crate::servers::commands::CommandState::Pending.as_str());
            if qb.build().execute(&mut *$tx).await?.rows_affected() == 1 {
                let failed =
                    $crate::db::NewEvent::new($crate::db::domain::ServerEvent::CommandFailed {
                        subject: $crate::db::domain::ServerId::new(server_id),
                        data: $crate::db::domain::CommandSettled {
                            command_id: id,
                            action,
                            node_id: node.unwrap_or_default(),
                            detail: Some(detail.to_owned()),
                            at: $crate::db::to_micros(at),
                        },
                    })
                    .actor(actor.clone());
                $tx.record(&failed).await?;
            }
        }
    }};
}
pub(crate) use fail_pending;

/// Records a command without hooks (the caller ran them, or it comes from
/// `plugin`, named in the event); `payload` is `{"line": …}` for a console
/// command, `{"wipe": true}` for an install that empties the server's
/// directory first. See the module docs for the suspension check.
pub(crate) async fn record(
    db: &Database,
    server: &Server,
    action: CommandAction,
    payload: Option<Value>,
    plugin: Option<&str>,
    actor: &Actor,
) -> Result<Command, ServersError> {
    let (command, event) = new_command(server, action, payload, plugin, actor);
    on_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        if action.refused_while_transferring() {
            // Holds the server's row (the write lock on SQLite) until the
            // command is in: a suspension or a transfer waits for it, or it
            // for them, which it then sees.
            let mut qb = query_builder(
                pool,
                "UPDATE servers SET suspended_at = suspended_at WHERE id = ",
            );
            qb.push_bind(server.id.as_str())
                .push(" AND transfer_id IS NULL");
            if action.refused_while_suspended() {
                qb.push(" AND suspended_at IS NULL");
            }
            if qb.build().execute(&mut *tx).await?.rows_affected() != 1 {
                let mut qb = query_builder(
                    pool,
                    "SELECT suspended_reason, transfer_id FROM servers WHERE id = ",
                );
                qb.push_bind(server.id.as_str());
                let found: Option<(Option<String>, Option<String>)> =
                    qb.build_query_as().fetch_optional(&mut *tx).await?;
                return Err(match found {
                    Some((_, Some(transfer))) => super::transfers::refusal(&server.id, &transfer),
                    Some((Some(reason), None)) => suspension::refusal_for(&server.id, &reason),
                    _ => ServersError::NotFound(format!("server {}", server.id)),
                });
            }
        }
        if action == CommandAction::Delete {
            let mut qb = query_builder(pool, "UPDATE servers SET state = ");
            qb.push_bind(STATE_DELETING)
                .push(" WHERE id = ")
                .push_bind(server.id.as_str())
                .push(" AND state <> ")
                .push_bind(STATE_DELETING);
            if qb.build().execute(&mut *tx).await?.rows_affected() != 1 {
                return Err(ServersError::conflict(
                    Code::ServerDeleting,
                    "the server is being deleted",
                ));
            }
        }
        insert_command!(pool, tx, &command);
        tx.record(&event).await?;
        tx.commit().await?;
    });
    Ok(command)
}

/// Up to `limit` commands of `server_id`, newest first, before the id
/// `before`, and whether more follow.
///
/// # Errors
///
/// Database errors.
pub async fn list_for_server(
    db: &Database,
    server_id: &str,
    before: Option<&str>,
    limit: u32,
) -> Result<(Vec<Command>, bool), DbError> {
    let rows: Vec<CommandRow> = on_pool!(db, |pool| {
        let mut qb = query_builder(pool, COMMAND_COLUMNS);
        qb.push(" WHERE server_id = ").push_bind(server_id);
        if let Some(before) = before {
            qb.push(" AND id < ").push_bind(before);
        }
        qb.push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(limit) + 1);
        qb.build_query_as::<CommandRow>().fetch_all(pool).await?
    });
    let mut commands = rows
        .into_iter()
        .map(Command::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    let more = commands.len() > limit as usize;
    commands.truncate(limit as usize);
    Ok((commands, more))
}

/// The queue the Agent link delivers commands from: pending commands per
/// node, and their acknowledgement and outcome. Cheap to clone.
#[derive(Debug, Clone)]
pub struct CommandOutbox {
    db: Database,
}

impl CommandOutbox {
    /// The outbox of `db`.
    pub fn new(db: Database) -> Self {
        CommandOutbox { db }
    }

    /// Up to `limit` pending commands for node `node_id`, oldest first.
    ///
    /// # Errors
    ///
    /// Database errors.
    pub async fn pending(&self, node_id: &str, limit: u32) -> Result<Vec<Command>, DbError> {
        let rows: Vec<CommandRow> = on_pool!(self.db, |pool| {
            let mut qb = query_builder(pool, COMMAND_COLUMNS);
            qb.push(" WHERE node_id = ")
                .push_bind(node_id)
                .push(" AND state = ")
                .push_bind(CommandState::Pending.as_str())
                .push(" ORDER BY id LIMIT ")
                .push_bind(i64::from(limit.max(1)));
            qb.build_query_as::<CommandRow>().fetch_all(pool).await?
        });
        rows.into_iter().map(Command::try_from).collect()
    }

    /// Up to `limit` commands of node `node_id` that have not finished
    /// (pending or acked), oldest first: what a new Agent session delivers
    /// (again). The Agent runs each id once, so a command it already
    /// acknowledged is only acknowledged again.
    ///
    /// # Errors
    ///
    /// Database errors.
    pub async fn unfinished(&self, node_id: &str, limit: u32) -> Result<Vec<Command>, DbError> {
        let rows: Vec<CommandRow> = on_pool!(self.db, |pool| {
            let mut qb = query_builder(pool, COMMAND_COLUMNS);
            qb.push(" WHERE node_id = ")
                .push_bind(node_id)
                .push(" AND state IN (")
                .push_bind(CommandState::Pending.as_str())
                .push(", ")
                .push_bind(CommandState::Acked.as_str())
                .push(") ORDER BY id LIMIT ")
                .push_bind(i64::from(limit.max(1)));
            qb.build_query_as::<CommandRow>().fetch_all(pool).await?
        });
        rows.into_iter().map(Command::try_from).collect()
    }

    /// The command `id`, if it exists.
    ///
    /// # Errors
    ///
    /// Database errors.
    pub async fn get(&self, id: &str) -> Result<Option<Command>, DbError> {
        let row: Option<CommandRow> = on_pool!(self.db, |pool| {
            let mut qb = query_builder(pool, COMMAND_COLUMNS);
            qb.push(" WHERE id = ").push_bind(id);
            qb.build_query_as::<CommandRow>()
                .fetch_optional(pool)
                .await?
        });
        row.map(Command::try_from).transpose()
    }

    /// Node `node_id`'s Agent has taken command `id`.
    ///
    /// # Errors
    ///
    /// [`ServersError::NotFound`] for a command of another node,
    /// [`ServersError::Conflict`] (`command-state`) unless it is pending,
    /// database errors.
    pub async fn ack(&self, node_id: &str, id: &str) -> Result<Command, ServersError> {
        self.transition(node_id, id, CommandState::Acked, None)
            .await
    }

    /// Node `node_id`'s Agent carried out command `id`. For a `delete`, the
    /// server is removed and its allocations freed (`server.deleted`).
    ///
    /// # Errors
    ///
    /// As for [`CommandOutbox::ack`]; pending or acked commands may finish.
    pub async fn complete(&self, node_id: &str, id: &str) -> Result<Command, ServersError> {
        self.transition(node_id, id, CommandState::Done, None).await
    }

    /// Node `node_id`'s Agent could not carry out command `id`, for
    /// `reason`. A failed `delete` puts the server back to `offline`.
    ///
    /// # Errors
    ///
    /// As for [`CommandOutbox::complete`].
    pub async fn fail(
        &self,
        node_id: &str,
        id: &str,
        reason: &str,
    ) -> Result<Command, ServersError> {
        self.transition(node_id, id, CommandState::Failed, Some(reason))
            .await
    }

    async fn transition(
        &self,
        node_id: &str,
        id: &str,
        to: CommandState,
        detail: Option<&str>,
    ) -> Result<Command, ServersError> {
        let command = self
            .get(id)
            .await?
            .filter(|c| c.node_id.as_deref() == Some(node_id))
            .ok_or_else(|| ServersError::NotFound(format!("command {id}")))?;
        type Settled = fn(ServerId, CommandSettled) -> ServerEvent;
        let (from, settled): (&[CommandState], Option<Settled>) = match to {
            CommandState::Acked => (
                &[CommandState::Pending],
                Some(|subject, data| ServerEvent::CommandAcked { subject, data }),
            ),
            CommandState::Done => (
                &[CommandState::Pending, CommandState::Acked],
                Some(|subject, data| ServerEvent::CommandDone { subject, data }),
            ),
            CommandState::Failed => (
                &[CommandState::Pending, CommandState::Acked],
                Some(|subject, data| ServerEvent::CommandFailed { subject, data }),
            ),
            CommandState::Pending => (&[], None),
        };
        let Some(settled) = settled.filter(|_| from.contains(&command.state)) else {
            return Err(ServersError::conflict(
                Code::CommandState,
                format!(
                    "command {id} is {}; it cannot become {}",
                    command.state.as_str(),
                    to.as_str()
                ),
            ));
        };
        let at = now();
        let detail = detail.map(|d| d.chars().take(2048).collect::<String>());
        let actor = Actor::system();
        let (subject, data) = (
            ServerId::new(&command.server_id),
            CommandSettled {
                command_id: id.to_owned(),
                action: command.action.as_str().to_owned(),
                node_id: node_id.to_owned(),
                detail: detail.clone(),
                at: to_micros(at),
            },
        );
        let event = NewEvent::new(settled(subject, data)).actor(actor.clone());
        let removed = NewEvent::new(ServerEvent::Deleted {
            subject: ServerId::new(&command.server_id),
            data: ServerDeleted {
                command_id: id.to_owned(),
            },
        })
        .actor(actor);
        let server_id = command.server_id.as_str();
        on_pool!(self.db, |pool| {
            let mut tx = pool.begin().await?;
            let mut qb = query_builder(pool, "UPDATE server_commands SET state = ");
            qb.push_bind(to.as_str())
                .push(", detail = ")
                .push_bind(detail.as_deref())
                .push(", updated_at = ")
                .push_bind(to_micros(at))
                .push(" WHERE id = ")
                .push_bind(id)
                .push(" AND state = ")
                .push_bind(command.state.as_str());
            if qb.build().execute(&mut *tx).await?.rows_affected() != 1 {
                return Err(ServersError::conflict(
                    Code::CommandState,
                    format!("command {id} changed meanwhile"),
                ));
            }
            tx.record(&event).await?;
            if command.action == CommandAction::Delete {
                if to == CommandState::Done {
                    // Back to the pool: free, not primary, without notes.
                    let mut qb = query_builder(
                        pool,
                        "UPDATE allocations SET server_id = NULL, notes = NULL, is_primary = ",
                    );
                    qb.push_bind(false)
                        .push(" WHERE server_id = ")
                        .push_bind(server_id);
                    qb.build().execute(&mut *tx).await?;
                    let mut qb = query_builder(pool, "DELETE FROM servers WHERE id = ");
                    qb.push_bind(server_id);
                    qb.build().execute(&mut *tx).await?;
                    tx.record(&removed).await?;
                } else if to == CommandState::Failed {
                    let mut qb = query_builder(pool, "UPDATE servers SET state = ");
                    qb.push_bind(server::STATE_OFFLINE)
                        .push(" WHERE id = ")
                        .push_bind(server_id)
                        .push(" AND state = ")
                        .push_bind(STATE_DELETING);
                    qb.build().execute(&mut *tx).await?;
                }
            }
            tx.commit().await?;
        });
        Ok(Command {
            state: to,
            detail,
            updated_at: at,
            ..command
        })
    }
}
