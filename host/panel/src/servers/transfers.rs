//! Transfers of servers between nodes: the records and the state changes
//! (what the database holds). The steps in between — stopping the server,
//! the source Agent streaming its files to the target Agent, starting it
//! there — are driven by [`crate::agents::transfers`]; the wire protocol
//! is [`cap_protocol::transfers`].
//!
//! # Decisions
//!
//! - **The server is the source's until the commit.** [`start`] only
//!   marks the server as in a transfer (`servers.transfer_id`,
//!   `server.transfer.started`) and records the transfer; its node and
//!   allocations change in one transaction, [`commit`], once the target
//!   holds its files (`server.transferred`). [`fail`] clears the mark
//!   (`server.transfer.failed`), and nothing else changed. A Panel that
//!   restarts mid-transfer fails the transfers it finds running
//!   ([`fail_unfinished`]).
//! - **Frozen while it moves.** A server in a transfer is refused starts,
//!   restarts, reinstalls, console commands and deletion by every path,
//!   at the same choke point as a suspension ([`super::commands`],
//!   `server-transferring`); [`start`] fails the ones already pending, as
//!   a suspension does, and queues a stop when the server may run.
//! - **Allocations are picked at the start, taken at the commit.** The
//!   target's allocations (the one asked for, or the first free; as many
//!   as the server holds) are checked free and named in the record, and
//!   taken with the same conditional update as any allocation at the
//!   commit: one taken meanwhile fails the transfer rather than stealing
//!   it. The source's allocations go back to its pool, notes cleared.
//! - **What does not move.** The server's id, owner, subusers,
//!   databases (on their hosts), schedules (the scheduler plugin's, by
//!   server id), variables and limits stay as they are; local backups
//!   stay on the node that made them, where their records say they are.
//! - **The record is not a projection.** `server_transfers` keeps the
//!   history (stage, bytes, reason) and has no foreign key to servers; the
//!   server's `transfer_id` and node are rebuilt by replay from the
//!   events.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::commands::{self, Command, CommandAction, fail_pending, insert_command};
use super::server::{STATE_DELETING, Server};
use super::{ServersError, new_id, nodes, to_u64};
use crate::db::domain::{
    IpPort, ServerEvent, ServerId, ServerTransferred, TransferFailed, TransferStarted,
};
use crate::db::{
    Actor, Database, DbError, NewEvent, Unrecorded, from_micros, now, on_pool, query_builder,
    to_micros,
};
use crate::error_code::Code;

/// A transfer that runs.
pub const STATE_RUNNING: &str = "running";
/// A transfer that ended with the server on the target.
pub const STATE_DONE: &str = "done";
/// A transfer that ended with the server where it was.
pub const STATE_FAILED: &str = "failed";

/// How far a transfer got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    /// Waiting for the server to stop on the source.
    Stopping,
    /// The source streams the files to the target.
    Sending,
    /// The Panel records the server on the target.
    Committing,
    /// The server starts on the target (it was running).
    Starting,
    /// Over.
    Done,
}

impl Stage {
    /// The stage's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Stopping => "stopping",
            Stage::Sending => "sending",
            Stage::Committing => "committing",
            Stage::Starting => "starting",
            Stage::Done => "done",
        }
    }

    fn parse(text: &str) -> Result<Self, DbError> {
        Ok(match text {
            "stopping" => Stage::Stopping,
            "sending" => Stage::Sending,
            "committing" => Stage::Committing,
            "starting" => Stage::Starting,
            "done" => Stage::Done,
            other => return Err(DbError::Corrupt(format!("transfer stage {other:?}"))),
        })
    }
}

/// A transfer, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// Its id (`xfr_…`).
    pub id: String,
    /// The server.
    pub server_id: String,
    /// The node it was on.
    pub from_node: String,
    /// The node it goes to.
    pub to_node: String,
    /// The target's allocations it takes, its primary first.
    pub allocations: Vec<(String, u16)>,
    /// Whether it was running (or starting) when the transfer began: it
    /// is started again where it ends up.
    pub was_running: bool,
    /// `running`, `done` or `failed`.
    pub state: String,
    /// How far it got.
    pub stage: Stage,
    /// Why it failed.
    pub failure: Option<String>,
    /// Bytes of the files' tar stream sent so far.
    pub sent_bytes: u64,
    /// Bytes of the whole tar stream.
    pub total_bytes: u64,
    /// The archive's size as sent, once received.
    pub archive_bytes: Option<u64>,
    /// The archive's SHA-256, once received.
    pub sha256: Option<String>,
    /// Who started it.
    pub started_by: Option<String>,
    /// When it started.
    pub started_at: OffsetDateTime,
    /// When it ended.
    pub ended_at: Option<OffsetDateTime>,
}

#[derive(sqlx::FromRow)]
struct TransferRow {
    id: String,
    server_id: String,
    from_node: String,
    to_node: String,
    allocations: String,
    was_running: bool,
    state: String,
    stage: String,
    failure: Option<String>,
    sent_bytes: i64,
    total_bytes: i64,
    archive_bytes: Option<i64>,
    sha256: Option<String>,
    started_by: Option<String>,
    started_at: i64,
    ended_at: Option<i64>,
}

const COLUMNS: &str = "SELECT id, server_id, from_node, to_node, allocations, was_running, \
     state, stage, failure, sent_bytes, total_bytes, archive_bytes, sha256, started_by, \
     started_at, ended_at FROM server_transfers";

impl TryFrom<TransferRow> for Transfer {
    type Error = DbError;

    fn try_from(row: TransferRow) -> Result<Self, DbError> {
        let allocations: Vec<IpPort> = serde_json::from_str(&row.allocations)
            .map_err(|e| DbError::Corrupt(format!("transfer {} allocations: {e}", row.id)))?;
        Ok(Transfer {
            allocations: allocations.into_iter().map(|a| (a.ip, a.port)).collect(),
            was_running: row.was_running,
            stage: Stage::parse(&row.stage)?,
            sent_bytes: to_u64(row.sent_bytes, "server_transfers.sent_bytes")?,
            total_bytes: to_u64(row.total_bytes, "server_transfers.total_bytes")?,
            archive_bytes: row
                .archive_bytes
                .map(|b| to_u64(b, "server_transfers.archive_bytes"))
                .transpose()?,
            started_at: from_micros(row.started_at)?,
            ended_at: row.ended_at.map(from_micros).transpose()?,
            id: row.id,
            server_id: row.server_id,
            from_node: row.from_node,
            to_node: row.to_node,
            state: row.state,
            failure: row.failure,
            sha256: row.sha256,
            started_by: row.started_by,
        })
    }
}

/// The hook payload of transfer `id` of `server` from `from` to `to`,
/// `state` (`pending`, `done` or `failed`, with `reason`).
pub fn hook_payload(
    server: &Server,
    id: &str,
    (from, to): (&str, &str),
    state: &str,
    reason: Option<&str>,
) -> cap_runtime::api::Payload {
    cap_runtime::api::Payload::Transfer(cap_runtime::api::TransferInfo {
        server: super::server::server_info(server),
        id: id.to_owned(),
        from_node: from.to_owned(),
        to_node: to.to_owned(),
        state: state.to_owned(),
        reason: reason.map(str::to_owned),
    })
}

/// The refusal of something a transfer forbids on server `server_id`:
/// `server-transferring`, naming the transfer.
pub fn refusal(server_id: &str, transfer_id: &str) -> ServersError {
    ServersError::conflict(
        Code::ServerTransferring,
        format!(
            "server {server_id} is being moved to another node (transfer {transfer_id}); wait for the transfer to end"
        ),
    )
}

/// The states in which a server is stopped before it moves: those a
/// suspension stops it in.
pub const STOPPED_FOR_TRANSFER: [&str; 3] = super::suspension::STOPPED_ON_SUSPENSION;

/// What [`start`] is asked: where to, and (optionally) the primary
/// allocation there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferAsk {
    /// The target node.
    pub node_id: String,
    /// The target's allocation to make the primary; `None` takes its
    /// first free one.
    pub allocation: Option<(String, u16)>,
}

/// Picks the target's allocations for `server` (holding `holds`
/// allocations): the asked primary or the first free, then the first
/// free others.
async fn pick_allocations(
    db: &Database,
    target: &nodes::Node,
    wanted: Option<&(String, u16)>,
    holds: usize,
) -> Result<Vec<(String, u16)>, ServersError> {
    let free = nodes::list_allocations(db, &target.id, nodes::AllocationFilter::Free).await?;
    let mut picked = Vec::with_capacity(holds.max(1));
    if let Some((ip, port)) = wanted {
        let ip = super::allocations::canonical_ip(ip).ok_or_else(|| {
            ServersError::field("allocation.ip", "must be an IPv4 or IPv6 address")
        })?;
        if !free.iter().any(|a| a.ip == ip && a.port == *port) {
            let all = nodes::list_allocations(db, &target.id, nodes::AllocationFilter::All).await?;
            return Err(if all.iter().any(|a| a.ip == ip && a.port == *port) {
                ServersError::conflict(
                    Code::AllocationAssigned,
                    format!(
                        "{ip}:{port} on node {} is taken by another server",
                        target.name
                    ),
                )
            } else {
                ServersError::field(
                    "allocation.port",
                    format!("{ip}:{port} is not an allocation of node {}", target.name),
                )
            });
        }
        picked.push((ip, *port));
    }
    for allocation in &free {
        if picked.len() >= holds.max(1) {
            break;
        }
        if !picked
            .iter()
            .any(|(ip, port)| *ip == allocation.ip && *port == allocation.port)
        {
            picked.push((allocation.ip.clone(), allocation.port));
        }
    }
    if picked.len() < holds.max(1) {
        return Err(ServersError::conflict(
            Code::NoFreeAllocation,
            format!(
                "node {} has {} free allocations; the server holds {} and needs as many there",
                target.name,
                free.len(),
                holds.max(1)
            ),
        ));
    }
    Ok(picked)
}

/// Starts a transfer of `server` to `ask.node_id` (which the caller
/// found connected and serving transfers), as `actor`: checks the target
/// (another node, able to run the game type, with room and free
/// allocations), marks the server, fails its pending starts and console
/// commands and queues a stop when it may run. Returns the transfer and
/// the stop queued, if one was (the caller wakes the source's Agent).
///
/// # Errors
///
/// [`ServersError::Invalid`] (`node_id`: the same node, no such node, one
/// that cannot run the game or has no room; `allocation`), `Conflict`
/// (`server-transferring`, `server-deleting`, `server-running` while it
/// installs, `no-free-allocation`, `allocation-assigned`), database
/// errors.
pub async fn start(
    db: &Database,
    server: &Server,
    manifest: Option<&cap_runtime::Manifest>,
    ask: &TransferAsk,
    actor: &Actor,
) -> Result<(Transfer, Option<Command>), ServersError> {
    start_as(db, server, manifest, ask, &new_id("xfr"), actor).await
}

/// [`start`], with the transfer's id made by the caller (who asked the
/// before-hooks about it).
///
/// # Errors
///
/// As [`start`].
pub async fn start_as(
    db: &Database,
    server: &Server,
    manifest: Option<&cap_runtime::Manifest>,
    ask: &TransferAsk,
    id: &str,
    actor: &Actor,
) -> Result<(Transfer, Option<Command>), ServersError> {
    if server.state == STATE_DELETING {
        return Err(ServersError::conflict(
            Code::ServerDeleting,
            "the server is being deleted",
        ));
    }
    if let Some(current) = &server.transfer_id {
        return Err(refusal(&server.id, current));
    }
    if server.state == "installing" {
        return Err(ServersError::conflict(
            Code::ServerRunning,
            "the server is installing: wait for the install to end before moving it",
        ));
    }
    let from = server
        .node_id
        .clone()
        .ok_or_else(|| ServersError::conflict(Code::ServerNotOnNode, "the server is on no node"))?;
    if ask.node_id == from {
        return Err(ServersError::field(
            "node_id",
            "is the node the server is on already",
        ));
    }
    let target = nodes::get(db, &ask.node_id)
        .await?
        .ok_or_else(|| ServersError::field("node_id", "there is no such node"))?;
    let mut problems = Vec::new();
    if let Some(manifest) = manifest
        && let Some(problem) = super::server::runtime_problem(&target, manifest)
    {
        problems.push(super::FieldProblem::new("node_id", problem));
    }
    let used = nodes::usage(db, &target.id).await?;
    super::server::check_fit(&mut problems, &target, &used, &server.limits);
    // Its databases stay on their hosts: a host kept to some nodes must
    // serve the target too, or the game could not reach them there.
    let databases = crate::databases::list(db, &server.id).await?;
    if !databases.is_empty() {
        let hosts = crate::databases::list_hosts(db).await?;
        for database in &databases {
            if let Some(host) = hosts.iter().find(|h| h.id == database.host_id)
                && !host.serves(Some(&target.id))
            {
                problems.push(super::FieldProblem::new(
                    "node_id",
                    format!(
                        "the server's database {} is on the database host {}, which serves other nodes only; add node {} to the host first",
                        database.name, host.name, target.name
                    ),
                ));
            }
        }
    }
    if !problems.is_empty() {
        return Err(ServersError::Invalid(problems));
    }
    let holds = nodes::allocations_of_server(db, &server.id).await?.len();
    let allocations = pick_allocations(db, &target, ask.allocation.as_ref(), holds).await?;
    let at = now();
    let transfer = Transfer {
        id: id.to_owned(),
        server_id: server.id.clone(),
        from_node: from.clone(),
        to_node: target.id.clone(),
        allocations,
        was_running: STOPPED_FOR_TRANSFER.contains(&server.state.as_str()),
        state: STATE_RUNNING.to_owned(),
        stage: Stage::Stopping,
        failure: None,
        sent_bytes: 0,
        total_bytes: 0,
        archive_bytes: None,
        sha256: None,
        started_by: actor.user_id.clone(),
        started_at: at,
        ended_at: None,
    };
    let started = NewEvent::new(ServerEvent::TransferStarted {
        subject: ServerId::new(&server.id),
        data: TransferStarted {
            transfer_id: transfer.id.clone(),
            from_node: from.clone(),
            to_node: target.id.clone(),
            at: to_micros(at),
        },
    })
    .actor(actor.clone());
    let allocations_json = allocations_json(&transfer.allocations);
    let detail = format!(
        "the server is being moved to node {} (transfer {})",
        target.name, transfer.id
    );
    let refused: Vec<&str> = CommandAction::REFUSED_WHILE_SUSPENDED
        .iter()
        .map(|a| a.as_str())
        .collect();
    let stop = on_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        let mut qb = query_builder(pool, "UPDATE servers SET transfer_id = ");
        qb.push_bind(transfer.id.as_str())
            .push(" WHERE id = ")
            .push_bind(server.id.as_str())
            .push(" AND node_id = ")
            .push_bind(from.as_str())
            .push(" AND transfer_id IS NULL AND state <> ")
            .push_bind(STATE_DELETING);
        if qb.build().execute(&mut *tx).await?.rows_affected() != 1 {
            return Err(ServersError::conflict(
                Code::ServerTransferring,
                format!(
                    "server {} was moved, deleted or put in another transfer meanwhile",
                    server.id
                ),
            ));
        }
        tx.record(&started).await?;
        let mut qb = query_builder(
            pool,
            "INSERT INTO server_transfers (id, server_id, from_node, to_node, allocations, \
             was_running, state, stage, sent_bytes, total_bytes, started_by, started_at) VALUES (",
        );
        qb.separated(", ")
            .push_bind(transfer.id.as_str())
            .push_bind(transfer.server_id.as_str())
            .push_bind(transfer.from_node.as_str())
            .push_bind(transfer.to_node.as_str())
            .push_bind(allocations_json.as_str())
            .push_bind(transfer.was_running)
            .push_bind(STATE_RUNNING)
            .push_bind(Stage::Stopping.as_str())
            .push_bind(0i64)
            .push_bind(0i64)
            .push_bind(transfer.started_by.as_deref())
            .push_bind(to_micros(at));
        qb.push(")");
        qb.build().execute(&mut *tx).await?;
        fail_pending!(
            pool,
            tx,
            server.id.as_str(),
            &refused,
            detail.as_str(),
            actor,
            at
        );
        let stop = if transfer.was_running {
            let (command, queued) =
                commands::new_command(server, CommandAction::Stop, None, None, actor);
            insert_command!(pool, tx, &command);
            tx.record(&queued).await?;
            Some(command)
        } else {
            None
        };
        tx.commit().await?;
        stop
    });
    Ok((transfer, stop))
}

fn allocations_json(allocations: &[(String, u16)]) -> String {
    let list: Vec<IpPort> = allocations
        .iter()
        .map(|(ip, port)| IpPort {
            ip: ip.clone(),
            port: *port,
        })
        .collect();
    serde_json::to_string(&list).unwrap_or_else(|_| "[]".to_owned())
}

/// Records transfer `id` at `stage`.
///
/// # Errors
///
/// Database errors.
pub async fn set_stage(db: &Database, id: &str, stage: Stage) -> Result<(), DbError> {
    update_running(db, id, &[Set::Text("stage", stage.as_str())]).await
}

/// A column a running transfer's record changes to, and its value.
enum Set<'a> {
    Text(&'static str, &'a str),
    Number(&'static str, i64),
}

/// Changes the record of transfer `id`, if it still runs: bookkeeping
/// without an event (see [`Unrecorded::TransferProgress`]).
async fn update_running(db: &Database, id: &str, sets: &[Set<'_>]) -> Result<(), DbError> {
    on_pool!(db, |pool| {
        let mut qb = query_builder(pool, "UPDATE server_transfers SET ");
        for (n, set) in sets.iter().enumerate() {
            if n > 0 {
                qb.push(", ");
            }
            match set {
                Set::Text(column, value) => {
                    qb.push(*column).push(" = ").push_bind(*value);
                }
                Set::Number(column, value) => {
                    qb.push(*column).push(" = ").push_bind(*value);
                }
            }
        }
        qb.push(" WHERE id = ")
            .push_bind(id)
            .push(" AND state = ")
            .push_bind(STATE_RUNNING);
        qb.build()
            .execute(pool.unrecorded(Unrecorded::TransferProgress))
            .await?;
    });
    Ok(())
}

/// Records how far transfer `id`'s stream is.
///
/// # Errors
///
/// Database errors.
pub async fn set_progress(db: &Database, id: &str, sent: u64, total: u64) -> Result<(), DbError> {
    update_running(
        db,
        id,
        &[
            Set::Number("sent_bytes", super::to_i64(sent)),
            Set::Number("total_bytes", super::to_i64(total)),
        ],
    )
    .await
}

/// Moves the server of `transfer` to its target in one transaction: the
/// source's allocations freed, the target's taken (the first its
/// primary), its node changed, `server.transferred` appended, the record
/// at stage `starting` (or `done`, when it was not running) with the
/// archive's `sha256` and `bytes`.
///
/// # Errors
///
/// `Conflict` (`allocation-assigned` when one was taken meanwhile,
/// `server-transferring` when the server is no longer in this transfer),
/// database errors. Nothing changed then.
pub async fn commit(
    db: &Database,
    transfer: &Transfer,
    sha256: &str,
    bytes: u64,
) -> Result<(), ServersError> {
    let at = now();
    let moved = NewEvent::new(ServerEvent::Transferred {
        subject: ServerId::new(&transfer.server_id),
        data: ServerTransferred {
            transfer_id: transfer.id.clone(),
            from_node: transfer.from_node.clone(),
            to_node: transfer.to_node.clone(),
            allocations: transfer
                .allocations
                .iter()
                .map(|(ip, port)| IpPort {
                    ip: ip.clone(),
                    port: *port,
                })
                .collect(),
            at: to_micros(at),
        },
    })
    .actor(Actor::system());
    let next = if transfer.was_running {
        Stage::Starting
    } else {
        Stage::Done
    };
    on_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        let mut qb = query_builder(pool, "UPDATE servers SET node_id = ");
        qb.push_bind(transfer.to_node.as_str())
            .push(", transfer_id = NULL WHERE id = ")
            .push_bind(transfer.server_id.as_str())
            .push(" AND transfer_id = ")
            .push_bind(transfer.id.as_str());
        if qb.build().execute(&mut *tx).await?.rows_affected() != 1 {
            return Err(refusal(&transfer.server_id, "(no longer this one)"));
        }
        let mut qb = query_builder(
            pool,
            "UPDATE allocations SET server_id = NULL, is_primary = ",
        );
        qb.push_bind(false)
            .push(", notes = NULL WHERE server_id = ")
            .push_bind(transfer.server_id.as_str())
            .push(" AND node_id = ")
            .push_bind(transfer.from_node.as_str());
        qb.build().execute(&mut *tx).await?;
        for (n, (ip, port)) in transfer.allocations.iter().enumerate() {
            let mut qb = query_builder(pool, "UPDATE allocations SET server_id = ");
            qb.push_bind(transfer.server_id.as_str())
                .push(", is_primary = ")
                .push_bind(n == 0)
                .push(", notes = NULL WHERE node_id = ")
                .push_bind(transfer.to_node.as_str())
                .push(" AND ip = ")
                .push_bind(ip.as_str())
                .push(" AND port = ")
                .push_bind(i32::from(*port))
                .push(" AND server_id IS NULL");
            if qb.build().execute(&mut *tx).await?.rows_affected() != 1 {
                return Err(ServersError::conflict(
                    Code::AllocationAssigned,
                    format!(
                        "{ip}:{port} on the target node was taken by another server during the transfer"
                    ),
                ));
            }
        }
        tx.record(&moved).await?;
        let mut qb = query_builder(pool, "UPDATE server_transfers SET stage = ");
        qb.push_bind(next.as_str())
            .push(", sha256 = ")
            .push_bind(sha256)
            .push(", archive_bytes = ")
            .push_bind(super::to_i64(bytes))
            .push(" WHERE id = ")
            .push_bind(transfer.id.as_str());
        qb.build().execute(&mut *tx).await?;
        tx.commit().await?;
    });
    Ok(())
}

/// Ends transfer `id` well.
///
/// # Errors
///
/// Database errors.
pub async fn finish(db: &Database, id: &str) -> Result<(), DbError> {
    update_running(
        db,
        id,
        &[
            Set::Text("state", STATE_DONE),
            Set::Text("stage", Stage::Done.as_str()),
            Set::Number("ended_at", to_micros(now())),
        ],
    )
    .await
}

/// Fails transfer `transfer_id` of server `server_id` for `reason`: the
/// server leaves the transfer where it is (`server.transfer.failed`) and
/// the record says why. A transfer that ended already stays as it ended
/// (`false`).
///
/// # Errors
///
/// Database errors.
pub async fn fail(
    db: &Database,
    transfer_id: &str,
    server_id: &str,
    reason: &str,
) -> Result<bool, DbError> {
    let at = now();
    let failed = NewEvent::new(ServerEvent::TransferFailed {
        subject: ServerId::new(server_id),
        data: TransferFailed {
            transfer_id: transfer_id.to_owned(),
            reason: reason.to_owned(),
            at: to_micros(at),
        },
    })
    .actor(Actor::system());
    let ended = on_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        let mut qb = query_builder(pool, "UPDATE servers SET transfer_id = NULL WHERE id = ");
        qb.push_bind(server_id)
            .push(" AND transfer_id = ")
            .push_bind(transfer_id);
        let freed = qb.build().execute(&mut *tx).await?.rows_affected() == 1;
        let mut qb = query_builder(pool, "UPDATE server_transfers SET state = ");
        qb.push_bind(STATE_FAILED)
            .push(", failure = ")
            .push_bind(reason)
            .push(", ended_at = ")
            .push_bind(to_micros(at))
            .push(" WHERE id = ")
            .push_bind(transfer_id)
            .push(" AND state = ")
            .push_bind(STATE_RUNNING);
        if freed {
            let ended = qb.build().execute(&mut *tx).await?.rows_affected() == 1;
            tx.record(&failed).await?;
            tx.commit().await?;
            ended
        } else {
            // The server is in no such transfer (any more): only the
            // record ends.
            drop(tx);
            qb.build()
                .execute(pool.unrecorded(Unrecorded::TransferProgress))
                .await?
                .rows_affected()
                == 1
        }
    });
    Ok(ended)
}

/// Transfer `id`, if it exists.
///
/// # Errors
///
/// Database errors.
pub async fn get(db: &Database, id: &str) -> Result<Option<Transfer>, DbError> {
    let row: Option<TransferRow> = on_pool!(db, |pool| {
        let mut qb = query_builder(pool, COLUMNS);
        qb.push(" WHERE id = ").push_bind(id);
        qb.build_query_as::<TransferRow>()
            .fetch_optional(pool)
            .await?
    });
    row.map(Transfer::try_from).transpose()
}

/// Server `server_id`'s transfers, newest first, at most `limit`.
///
/// # Errors
///
/// Database errors.
pub async fn list_for_server(
    db: &Database,
    server_id: &str,
    limit: u32,
) -> Result<Vec<Transfer>, DbError> {
    let rows: Vec<TransferRow> = on_pool!(db, |pool| {
        let mut qb = query_builder(pool, COLUMNS);
        qb.push(" WHERE server_id = ")
            .push_bind(server_id)
            .push(" ORDER BY started_at DESC, id DESC LIMIT ")
            .push_bind(i64::from(limit));
        qb.build_query_as::<TransferRow>().fetch_all(pool).await?
    });
    rows.into_iter().map(Transfer::try_from).collect()
}

/// Fails every transfer still running, for `reason` (a Panel that starts
/// finds those its predecessor was driving): each server stays where it
/// is, and one that was running gets a start there (delivered when its
/// node's Agent connects). Returns how many.
///
/// # Errors
///
/// Database errors.
pub async fn fail_unfinished(db: &Database, reason: &str) -> Result<usize, DbError> {
    let running: Vec<(String, String)> = on_pool!(db, |pool| {
        let mut qb = query_builder(
            pool,
            "SELECT id, server_id FROM server_transfers WHERE state = ",
        );
        qb.push_bind(STATE_RUNNING);
        qb.build_query_as().fetch_all(pool).await?
    });
    let mut failed = 0;
    for (id, server_id) in running {
        if fail(db, &id, &server_id, reason).await? {
            failed += 1;
            let was_running = get(db, &id).await?.is_some_and(|t| t.was_running);
            if was_running && let Some(server) = super::server::get(db, &server_id).await? {
                match commands::record(
                    db,
                    &server,
                    CommandAction::Start,
                    None,
                    None,
                    &Actor::system(),
                )
                .await
                {
                    Ok(_) => {}
                    Err(ServersError::Db(error)) => return Err(error),
                    Err(error) => {
                        tracing::warn!(server = %server_id, %error, "a server a failed transfer had stopped was not started again");
                    }
                }
            }
        }
    }
    Ok(failed)
}
