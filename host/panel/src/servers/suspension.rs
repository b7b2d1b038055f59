//! Suspending a server, and lifting the suspension.
//!
//! An administrator (`admin.servers`, `POST /servers/{id}/suspension`) or
//! a plugin (the `panel` capability's `suspend-server`, scope
//! `servers.suspend`) suspends a server with a reason its owner sees.
//! While it is suspended:
//!
//! - it cannot be started, restarted, reinstalled or sent console
//!   commands, by any path: the refusal is made where every command is
//!   recorded ([`super::commands`], the choke point), as `409
//!   server-suspended` naming the reason; stops, kills and deletions go on;
//! - its files are read-only: the [`FileScope`](cap_protocol::files::FileScope)
//!   the Panel hands its Agent says so ([`crate::files::scope`]), for the
//!   file routes, upload grants and SFTP sign-ins alike, and the Agent is
//!   told the node's set of suspended servers, which its open SFTP
//!   sessions and transfers ask before every write;
//! - its owner and subusers still see it, with the suspension's reason and
//!   time.
//!
//! # Decisions
//!
//! - **One transaction.** Suspending sets the columns, appends
//!   `server.suspended` (its actor is who suspended), fails the server's
//!   *pending* start, restart, install and console commands (they were
//!   queued before and would otherwise run after; `server.command.failed`
//!   with the reason), and, when the server may be running (starting,
//!   running or stopping), queues a `stop` — the Agent's stop escalates to
//!   SIGTERM and SIGKILL by itself, as every stop does. Commands the Agent
//!   has already taken cannot be called back; a server they start anyway
//!   (or its restart policy after a crash) is stopped again when its Agent
//!   reports it starting ([`stop_if_suspended`]).
//! - **Race-safe.** The suspension's `UPDATE` only matches a server that is
//!   neither suspended nor being deleted, and a refused command touches the
//!   same row first in its own transaction, so a start and a suspension
//!   cannot both win.
//! - **Hooks.** `server.suspend` and `server.unsuspend` (API 0.2.0, payload
//!   `suspension`: the server and the reason) run before anything changes;
//!   a before-hook may refuse (`hook-denied`). After-hooks fire for
//!   suspensions made by people; those a plugin makes fire none, as with
//!   plugin-sent console commands (see [`super::commands`]): a plugin
//!   answering a suspension with an unsuspension would feed itself.
//! - **Backups.** Creating and downloading a backup only read the files
//!   and are allowed; restoring one writes them and is refused. (Pterodactyl
//!   refuses everything on a suspended server; a backup is how an owner
//!   keeps their data while a dispute is settled.)
//! - **Not again.** Suspending a suspended server is refused
//!   (`server-suspended`, naming the reason in force); lifting a
//!   suspension that is not there is `server-not-suspended`.

use cap_runtime::api::{EventKind, Payload, SuspensionInfo};
use time::OffsetDateTime;

use super::commands::{self, Command, CommandAction, CommandState, insert_command};
use super::server::{STATE_DELETING, Server, server_info};
use super::{FieldProblem, ServersError, check_text};
use crate::db::domain::{ServerEvent, ServerId, ServerSuspended, ServerUnsuspended};
use crate::db::{Actor, Database, DbError, NewEvent, now, on_pool, query_builder, to_micros};
use crate::error_code::Code;
use crate::plugins::PluginManager;
use crate::plugins::hooks::{event as hook_event, run_before, spawn_after};

/// Longest reason, in characters.
pub const MAX_REASON_CHARS: usize = cap_runtime::capabilities::panel::MAX_REASON_CHARS;

/// The states in which a server is stopped when it is suspended.
pub const STOPPED_ON_SUSPENSION: [&str; 3] = ["starting", "running", "stopping"];

/// A server's suspension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suspension {
    /// Why, as its owner is shown it.
    pub reason: String,
    /// Since when.
    pub since: OffsetDateTime,
    /// Who suspended it: a user id, `plugin:<id>`, or `None` for the Panel.
    pub by: Option<String>,
}

/// The refusal of something a suspension forbids on server `server_id`:
/// `server-suspended`, naming the reason.
pub fn refusal(server_id: &str, suspension: &Suspension) -> ServersError {
    refusal_for(server_id, &suspension.reason)
}

/// [`refusal`] with the reason alone.
pub(crate) fn refusal_for(server_id: &str, reason: &str) -> ServersError {
    ServersError::conflict(
        Code::ServerSuspended,
        format!("server {server_id} is suspended: {reason}"),
    )
}

/// The hook payload of a suspension of `server` for `reason`.
fn payload(server: &Server, reason: &str) -> Payload {
    Payload::Suspension(SuspensionInfo {
        server: server_info(server),
        reason: reason.to_owned(),
    })
}

/// Checks a reason: one line of 1 to [`MAX_REASON_CHARS`] characters
/// (trimmed).
fn check_reason(reason: &str) -> Result<String, ServersError> {
    let mut problems = Vec::new();
    check_text(&mut problems, "reason", reason, MAX_REASON_CHARS);
    if problems.is_empty() && reason.contains(['\n', '\r']) {
        problems.push(FieldProblem::new("reason", "must be one line"));
    }
    if problems.is_empty() {
        Ok(reason.trim().to_owned())
    } else {
        Err(ServersError::Invalid(problems))
    }
}

/// Suspends `server` for `reason`, as `actor`; `plugin` names the plugin
/// asking (its after-hooks do not fire). Returns the server as it is now
/// and the stop queued, if one was (the caller wakes the node's Agent).
///
/// # Errors
///
/// [`ServersError::Invalid`] for a bad reason, [`ServersError::Conflict`]
/// (`server-suspended` when it is suspended already, naming the reason;
/// `server-deleting`), [`ServersError::HookDenied`], database errors.
pub async fn suspend(
    db: &Database,
    plugins: Option<&PluginManager>,
    server: &Server,
    reason: &str,
    actor: &Actor,
    plugin: Option<&str>,
) -> Result<(Server, Option<Command>), ServersError> {
    let reason = check_reason(reason)?;
    if server.state == STATE_DELETING {
        return Err(ServersError::conflict(
            Code::ServerDeleting,
            "the server is being deleted",
        ));
    }
    if let Some(current) = &server.suspension {
        return Err(ServersError::conflict(
            Code::ServerSuspended,
            format!(
                "server {} is suspended already: {}",
                server.id, current.reason
            ),
        ));
    }
    let allowed = run_before(
        plugins,
        hook_event(EventKind::ServerSuspend, payload(server, &reason), actor),
    )
    .await?;
    let at = now();
    let suspended = NewEvent::new(ServerEvent::Suspended {
        subject: ServerId::new(&server.id),
        data: ServerSuspended {
            reason: reason.clone(),
            at: to_micros(at),
        },
    })
    .actor(actor.clone());
    let detail = format!("the server was suspended: {reason}");
    let refused: Vec<&str> = CommandAction::REFUSED_WHILE_SUSPENDED
        .iter()
        .map(|a| a.as_str())
        .collect();
    let may_run = STOPPED_ON_SUSPENSION.contains(&server.state.as_str());
    let stop = on_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        let mut qb = query_builder(pool, "UPDATE servers SET suspended_reason = ");
        qb.push_bind(reason.as_str())
            .push(", suspended_at = ")
            .push_bind(to_micros(at))
            .push(", suspended_by = ")
            .push_bind(actor.user_id.as_deref())
            .push(" WHERE id = ")
            .push_bind(server.id.as_str())
            .push(" AND suspended_at IS NULL AND state <> ")
            .push_bind(STATE_DELETING);
        if qb.build().execute(&mut *tx).await?.rows_affected() != 1 {
            return Err(ServersError::conflict(
                Code::ServerSuspended,
                format!(
                    "server {} was suspended, deleted or removed meanwhile",
                    server.id
                ),
            ));
        }
        tx.record(&suspended).await?;
        // Read after the row is held: a command recorded before is seen.
        commands::fail_pending!(
            pool,
            tx,
            server.id.as_str(),
            &refused,
            detail.as_str(),
            actor,
            at
        );
        // The stop's id is made now, after the row is held: it comes after
        // every command a racing caller recorded first.
        let stop = if may_run {
            let (command, queued) =
                commands::new_command(server, CommandAction::Stop, None, plugin, actor);
            insert_command!(pool, tx, &command);
            tx.record(&queued).await?;
            Some(command)
        } else {
            None
        };
        tx.commit().await?;
        stop
    });
    if plugin.is_none() {
        spawn_after(plugins, allowed);
    }
    let now = Server {
        suspension: Some(Suspension {
            reason,
            since: at,
            by: actor.user_id.clone(),
        }),
        ..server.clone()
    };
    Ok((now, stop))
}

/// Lifts `server`'s suspension, as `actor`; `plugin` as for [`suspend`].
/// The server stays stopped: starting it is its owner's call.
///
/// # Errors
///
/// [`ServersError::Conflict`] (`server-not-suspended`),
/// [`ServersError::HookDenied`], database errors.
pub async fn unsuspend(
    db: &Database,
    plugins: Option<&PluginManager>,
    server: &Server,
    actor: &Actor,
    plugin: Option<&str>,
) -> Result<Server, ServersError> {
    let not_suspended = || {
        ServersError::conflict(
            Code::ServerNotSuspended,
            format!("server {} is not suspended", server.id),
        )
    };
    let Some(current) = &server.suspension else {
        return Err(not_suspended());
    };
    let allowed = run_before(
        plugins,
        hook_event(
            EventKind::ServerUnsuspend,
            payload(server, &current.reason),
            actor,
        ),
    )
    .await?;
    let lifted = NewEvent::new(ServerEvent::Unsuspended {
        subject: ServerId::new(&server.id),
        data: ServerUnsuspended {
            reason: current.reason.clone(),
            at: to_micros(now()),
        },
    })
    .actor(actor.clone());
    on_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        let mut qb = query_builder(
            pool,
            "UPDATE servers SET suspended_reason = NULL, suspended_at = NULL, \
             suspended_by = NULL WHERE id = ",
        );
        qb.push_bind(server.id.as_str())
            .push(" AND suspended_at IS NOT NULL");
        if qb.build().execute(&mut *tx).await?.rows_affected() != 1 {
            return Err(not_suspended());
        }
        tx.record(&lifted).await?;
        tx.commit().await?;
    });
    if plugin.is_none() {
        spawn_after(plugins, allowed);
    }
    Ok(Server {
        suspension: None,
        ..server.clone()
    })
}

/// [`suspend`] for plugin `plugin` (the `panel` capability), with the
/// plugin as the actor (`plugin:<id>`) and its nesting counted.
///
/// # Errors
///
/// As [`suspend`], and `plugin-commands-nested`.
pub async fn suspend_for_plugin(
    db: &Database,
    plugins: Option<&PluginManager>,
    server: &Server,
    reason: &str,
    plugin: &str,
) -> Result<(Server, Option<Command>), ServersError> {
    let actor = commands::plugin_actor(plugin);
    commands::as_plugin_request(suspend(db, plugins, server, reason, &actor, Some(plugin))).await
}

/// [`unsuspend`] for plugin `plugin`.
///
/// # Errors
///
/// As [`unsuspend`], and `plugin-commands-nested`.
pub async fn unsuspend_for_plugin(
    db: &Database,
    plugins: Option<&PluginManager>,
    server: &Server,
    plugin: &str,
) -> Result<Server, ServersError> {
    let actor = commands::plugin_actor(plugin);
    commands::as_plugin_request(unsuspend(db, plugins, server, &actor, Some(plugin))).await
}

/// The ids of the suspended servers on node `node_id`, sorted: what the
/// node's Agent must hold read-only.
///
/// # Errors
///
/// Database errors.
pub async fn suspended_on_node(db: &Database, node_id: &str) -> Result<Vec<String>, DbError> {
    let ids: Vec<String> = on_pool!(db, |pool| {
        let mut qb = query_builder(pool, "SELECT id FROM servers WHERE node_id = ");
        qb.push_bind(node_id)
            .push(" AND suspended_at IS NOT NULL ORDER BY id");
        qb.build_query_scalar().fetch_all(pool).await?
    });
    Ok(ids)
}

/// The safety net: `server`, whose Agent just reported it `starting` or
/// `running`, is stopped again if it is suspended and no stop or kill is
/// on its way yet (a start the Agent had taken before the suspension, or
/// its restart policy after a crash). Returns the stop queued.
///
/// # Errors
///
/// Database errors.
pub async fn stop_if_suspended(
    db: &Database,
    server: &Server,
) -> Result<Option<Command>, ServersError> {
    if server.suspension.is_none() || !matches!(server.state.as_str(), "starting" | "running") {
        return Ok(None);
    }
    let stopping: i64 = on_pool!(db, |pool| {
        let mut qb = query_builder(
            pool,
            "SELECT COUNT(*) FROM server_commands WHERE server_id = ",
        );
        qb.push_bind(server.id.as_str())
            .push(" AND action IN (")
            .push_bind(CommandAction::Stop.as_str())
            .push(", ")
            .push_bind(CommandAction::Kill.as_str())
            .push(") AND state IN (")
            .push_bind(CommandState::Pending.as_str())
            .push(", ")
            .push_bind(CommandState::Acked.as_str())
            .push(")");
        qb.build_query_scalar().fetch_one(pool).await?
    });
    if stopping > 0 {
        return Ok(None);
    }
    tracing::warn!(server = %server.id, state = %server.state, "a suspended server runs: stopping it again");
    let command = commands::record(
        db,
        server,
        CommandAction::Stop,
        None,
        None,
        &Actor::system(),
    )
    .await?;
    Ok(Some(command))
}
