//! Driving a server's move to another node, step by step, on a task of
//! its own ([`begin`]); the records and state changes are
//! [`crate::servers::transfers`], the wire protocol
//! [`cap_protocol::transfers`].
//!
//! The steps, each shown on the server's console as a `[transfer]` line:
//!
//! 1. **stopping**: a server that may run was sent a stop when the
//!    transfer began; the driver waits until the source reports it down
//!    ([`STOP_TIMEOUT`]);
//! 2. **sending**: the source Agent is asked to stream the files to the
//!    target Agent, with a grant the Panel signed for the target; its
//!    progress is recorded and shown;
//! 3. **committing**: the server's node and allocations change in one
//!    transaction, then the source is told to forget its copy;
//! 4. **starting**: a server that was running is started on the target.
//!
//! # Decisions
//!
//! - **The Panel the source is linked to drives.** Everything goes over
//!   this Panel's links ([`AgentHub`]); [`begin`] refuses a transfer
//!   whose source or target is not connected here, and a driver that
//!   loses either link fails the transfer. A Panel that stops mid-transfer
//!   leaves it `running` in the database, and the next Panel to start
//!   fails it ([`crate::servers::transfers::fail_unfinished`]).
//! - **Failing is safe at every step before the commit**: the source
//!   kept everything; the target is told to discard what it received; a
//!   server that was running is started again on the source. The reason
//!   is recorded, shown on the console and in the transfer's record.
//! - **After the commit nothing fails the transfer.** A source that
//!   cannot remove its copy, or a start on the target that is refused,
//!   is shown on the console; the server is on the target all the same.

use std::time::{Duration, Instant};

use cap_protocol::PanelMessage;
use cap_protocol::files::{FileScope, GrantOp};
use cap_protocol::transfers::{TransferOp, TransferRequest, TransferResult};
use tokio::sync::mpsc;

use super::{AgentHub, TransferSignal};
use crate::db::{Actor, Database};
use crate::error_code::Code;
use crate::files::{self, GrantSigner};
use crate::plugins::PluginManager;
use crate::plugins::hooks;
use crate::servers::server::{self, Server};
use crate::servers::transfers::{self as records, Stage, Transfer, TransferAsk};
use crate::servers::{CommandAction, ServersError, commands};
use cap_runtime::api::EventKind;

/// How long the driver waits for the server to stop on the source.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(120);
/// How long it waits for a node to answer a `forget` or `discard`.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the source may stay silent while it sends (it reports its
/// progress every second once the stream runs; measuring a large tree
/// first takes a while): an Agent too old to move servers never answers.
pub const SILENCE_TIMEOUT: Duration = Duration::from_secs(300);
/// How often the server's state is read while it stops.
const STATE_POLL: Duration = Duration::from_millis(250);
/// Progress is written to the database at most this often.
const PROGRESS_WRITE: Duration = Duration::from_secs(1);

/// What the driver needs, owned.
#[derive(Clone)]
pub struct TransferContext {
    /// The database.
    pub db: Database,
    /// The Agent links.
    pub hub: AgentHub,
    /// The signer of the target's grant.
    pub signer: GrantSigner,
}

/// Starts moving `server` as `ask` says, as `actor`: checks that both
/// nodes are connected here and the target serves transfers, records the
/// transfer ([`records::start`]) and drives it on a task of its own.
/// Returns the transfer as it began.
///
/// # Errors
///
/// `Conflict` `node-offline` (the source or the target is not connected),
/// `node-no-transfers` (the target's Agent serves no transfers), and
/// those of [`records::start`].
pub async fn begin(
    context: TransferContext,
    plugins: Option<&PluginManager>,
    server: &Server,
    ask: &TransferAsk,
    actor: &Actor,
) -> Result<Transfer, ServersError> {
    let hub = &context.hub;
    if let Some(from) = &server.node_id
        && *from != ask.node_id
    {
        if !hub.is_connected(from) {
            return Err(ServersError::conflict(
                Code::NodeOffline,
                format!("the server's node {from} is offline: it cannot send the server's files"),
            ));
        }
        if crate::servers::nodes::get(&context.db, &ask.node_id)
            .await?
            .is_some()
        {
            match hub.status(&ask.node_id) {
                None => {
                    return Err(ServersError::conflict(
                        Code::NodeOffline,
                        format!("the target node {} is offline", ask.node_id),
                    ));
                }
                Some(status) if status.files_url.is_none() => {
                    return Err(ServersError::conflict(
                        Code::NodeNoTransfers,
                        format!(
                            "the target node {} serves no file transfers: start its Agent with --files-listen",
                            ask.node_id
                        ),
                    ));
                }
                Some(_) => {}
            }
        }
    }
    let manifest = plugins
        .and_then(|p| p.active(&server.game_plugin))
        .map(|p| p.manifest().clone());
    // The before-hooks are asked before anything changes.
    let id = crate::servers::new_id("xfr");
    let from = server.node_id.clone().unwrap_or_default();
    hooks::run_before(
        plugins,
        hooks::event(
            EventKind::ServerTransfer,
            records::hook_payload(server, &id, (&from, &ask.node_id), "pending", None),
            actor,
        ),
    )
    .await?;
    let (transfer, stop) =
        records::start_as(&context.db, server, manifest.as_ref(), ask, &id, actor).await?;
    if stop.is_some() {
        hub.wake(&transfer.from_node);
    }
    let driven = transfer.clone();
    let signals = hub.watch_transfer(&transfer.id, &transfer.from_node, &transfer.to_node);
    let server = server.clone();
    let plugins = plugins.cloned();
    let actor = actor.clone();
    tokio::spawn(async move {
        let ended = drive(context, driven.clone(), server.clone(), signals).await;
        // The after-hooks learn how it ended.
        let (state, reason) = match &ended {
            Ok(()) => (records::STATE_DONE, None),
            Err(reason) => (records::STATE_FAILED, Some(reason.as_str())),
        };
        hooks::spawn_after(
            plugins.as_ref(),
            hooks::event(
                EventKind::ServerTransfer,
                records::hook_payload(
                    &server,
                    &driven.id,
                    (&driven.from_node, &driven.to_node),
                    state,
                    reason,
                ),
                &actor,
            ),
        );
    });
    Ok(transfer)
}

/// Writes `line` to the server's console as a `[transfer]` line.
fn say(hub: &AgentHub, server_id: &str, line: &str) {
    hub.console(server_id)
        .push_lines(vec![format!("[transfer] {line}")], 0);
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// Runs the steps; fails the transfer with the reason of the first step
/// that fails before the commit, which it answers.
async fn drive(
    context: TransferContext,
    transfer: Transfer,
    server: Server,
    mut signals: mpsc::UnboundedReceiver<TransferSignal>,
) -> Result<(), String> {
    let hub = context.hub.clone();
    let id = transfer.id.clone();
    let (from, to) = (
        node_name(&context.db, &transfer.from_node).await,
        node_name(&context.db, &transfer.to_node).await,
    );
    say(
        &hub,
        &server.id,
        &format!("moving the server from node {from} to node {to} (transfer {id})"),
    );
    let outcome = before_commit(&context, &transfer, &server, &mut signals).await;
    let ended = match outcome {
        Ok(sent) => {
            after_commit(&context, &transfer, &server, sent, &to, &mut signals).await;
            Ok(())
        }
        Err(failure) => {
            fail(&context, &transfer, &failure, &from).await;
            Err(failure.reason)
        }
    };
    hub.unwatch_transfer(&id);
    ended
}

/// Node `id`'s name, or its id when it has none (any more).
async fn node_name(db: &Database, id: &str) -> String {
    match crate::servers::nodes::get(db, id).await {
        Ok(Some(node)) => node.name,
        _ => id.to_owned(),
    }
}

/// What a step that failed before the commit leaves behind.
struct Failure {
    reason: String,
    /// The target may hold files of the server.
    target_touched: bool,
}

impl Failure {
    fn before_sending(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            target_touched: false,
        }
    }

    fn after_sending(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            target_touched: true,
        }
    }
}

/// The reason of a database failure, with its causes (the Panel's own
/// fault, not the nodes').
fn database_failed(error: &(dyn std::error::Error + 'static)) -> String {
    let mut reason = format!("the Panel's database failed: {error}");
    let mut source = error.source();
    while let Some(inner) = source {
        reason.push_str(&format!(": {inner}"));
        source = inner.source();
    }
    reason
}

/// Stopping, sending and committing. Returns the archive's size.
async fn before_commit(
    context: &TransferContext,
    transfer: &Transfer,
    server: &Server,
    signals: &mut mpsc::UnboundedReceiver<TransferSignal>,
) -> Result<u64, Failure> {
    let (db, hub) = (&context.db, &context.hub);
    if transfer.was_running {
        say(hub, &server.id, "stopping the server on the source node");
        wait_stopped(db, transfer, signals).await?;
    }
    // The target's grant: this server, this transfer, its disk limit.
    records::set_stage(db, &transfer.id, Stage::Sending)
        .await
        .map_err(|e| Failure::before_sending(database_failed(&e)))?;
    let on_target = Server {
        node_id: Some(transfer.to_node.clone()),
        ..server.clone()
    };
    let signed = files::grant(
        hub,
        &context.signer,
        &on_target,
        FileScope {
            denylist: Vec::new(),
            disk_mb: server.limits.disk_mb,
            read_only: false,
        },
        transfer.started_by.as_deref().unwrap_or("panel"),
        files::Transfer {
            op: GrantOp::TransferReceive,
            path: &transfer.id,
            size: None,
        },
    )
    .map_err(|e| Failure::before_sending(format!("no grant for the target node: {e}")))?;
    let (url, token) = signed
        .url
        .split_once("?token=")
        .map(|(u, t)| (u.to_owned(), t.to_owned()))
        .ok_or_else(|| Failure::before_sending("the target's grant URL has no token"))?;
    hub.send(
        &transfer.from_node,
        PanelMessage::Transfer(TransferRequest {
            transfer_id: transfer.id.clone(),
            server_id: server.id.clone(),
            op: TransferOp::Send { url, token },
        }),
    )
    .map_err(|e| Failure::before_sending(format!("the source node cannot be asked: {e}")))?;
    say(
        hub,
        &server.id,
        "sending the server's files to the target node",
    );
    let (sha256, bytes) = wait_sent(context, transfer, server, signals).await?;
    records::set_stage(db, &transfer.id, Stage::Committing)
        .await
        .map_err(|e| Failure::after_sending(database_failed(&e)))?;
    records::commit(db, transfer, &sha256, bytes)
        .await
        .map_err(|e| Failure::after_sending(format!("the move could not be recorded: {e}")))?;
    hub.server_moved(&transfer.from_node, &transfer.to_node, &server.id);
    Ok(bytes)
}

/// Waits until the source reports the server down.
async fn wait_stopped(
    db: &Database,
    transfer: &Transfer,
    signals: &mut mpsc::UnboundedReceiver<TransferSignal>,
) -> Result<(), Failure> {
    let deadline = Instant::now() + STOP_TIMEOUT;
    loop {
        let current = server::get(db, &transfer.server_id)
            .await
            .map_err(|e| Failure::before_sending(database_failed(&e)))?
            .ok_or_else(|| Failure::before_sending("the server is gone"))?;
        if !records::STOPPED_FOR_TRANSFER.contains(&current.state.as_str()) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Failure::before_sending(format!(
                "the server did not stop on the source node within {} s (it is {})",
                STOP_TIMEOUT.as_secs(),
                current.state
            )));
        }
        tokio::select! {
            () = tokio::time::sleep(STATE_POLL) => {}
            Some(signal) = signals.recv() => {
                if let TransferSignal::NodeLost(node) = signal {
                    return Err(Failure::before_sending(format!(
                        "node {node} went offline while the server stopped"
                    )));
                }
            }
        }
    }
}

/// Waits for the source's report of the `send`, recording its progress.
async fn wait_sent(
    context: &TransferContext,
    transfer: &Transfer,
    server: &Server,
    signals: &mut mpsc::UnboundedReceiver<TransferSignal>,
) -> Result<(String, u64), Failure> {
    let (db, hub) = (&context.db, &context.hub);
    let mut written = Instant::now() - PROGRESS_WRITE;
    let mut shown_tenth = 0u64;
    loop {
        let signal = match tokio::time::timeout(SILENCE_TIMEOUT, signals.recv()).await {
            Ok(Some(signal)) => signal,
            Ok(None) => return Err(Failure::after_sending("the transfer's watch closed")),
            Err(_) => {
                return Err(Failure::after_sending(format!(
                    "node {} said nothing of the transfer for {} s (is its Agent too old to move servers?)",
                    transfer.from_node,
                    SILENCE_TIMEOUT.as_secs()
                )));
            }
        };
        match signal {
            TransferSignal::Progress(progress) => {
                if written.elapsed() >= PROGRESS_WRITE {
                    written = Instant::now();
                    if let Err(error) = records::set_progress(
                        db,
                        &transfer.id,
                        progress.sent_bytes,
                        progress.total_bytes,
                    )
                    .await
                    {
                        tracing::warn!(transfer = %transfer.id, %error, "could not record a transfer's progress");
                    }
                }
                let tenth = progress
                    .sent_bytes
                    .saturating_mul(10)
                    .checked_div(progress.total_bytes)
                    .unwrap_or(0)
                    .min(9);
                if tenth > shown_tenth {
                    shown_tenth = tenth;
                    say(
                        hub,
                        &server.id,
                        &format!(
                            "sent {}% ({} of {})",
                            tenth * 10,
                            mib(progress.sent_bytes),
                            mib(progress.total_bytes)
                        ),
                    );
                }
            }
            TransferSignal::Done { node, report }
                if node == transfer.from_node && report.op == "send" =>
            {
                return match report.result {
                    TransferResult::Ok {
                        sha256,
                        bytes,
                        files_bytes,
                    } => {
                        let _ =
                            records::set_progress(db, &transfer.id, files_bytes, files_bytes).await;
                        say(
                            hub,
                            &server.id,
                            &format!(
                                "the target node holds the server's files ({} in an archive of {}, SHA-256 {sha256})",
                                mib(files_bytes),
                                mib(bytes)
                            ),
                        );
                        Ok((sha256, bytes))
                    }
                    TransferResult::Failed { code, reason } => Err(Failure::after_sending(
                        format!("{reason} ({})", code.as_str()),
                    )),
                };
            }
            TransferSignal::Done { .. } => {}
            TransferSignal::NodeLost(node) => {
                return Err(Failure::after_sending(format!(
                    "node {node} went offline during the transfer"
                )));
            }
        }
    }
}

/// Waits up to [`STEP_TIMEOUT`] for node `node`'s report of step `op`.
async fn wait_step(
    signals: &mut mpsc::UnboundedReceiver<TransferSignal>,
    node: &str,
    op: &str,
) -> Result<(), String> {
    let deadline = tokio::time::sleep(STEP_TIMEOUT);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            () = &mut deadline => {
                return Err(format!("node {node} did not answer within {} s", STEP_TIMEOUT.as_secs()));
            }
            signal = signals.recv() => match signal {
                None => return Err("the transfer's watch closed".into()),
                Some(TransferSignal::Done { node: from, report }) if from == node && report.op == op => {
                    return match report.result {
                        TransferResult::Ok { .. } => Ok(()),
                        TransferResult::Failed { reason, .. } => Err(reason),
                    };
                }
                Some(TransferSignal::NodeLost(lost)) if lost == node => {
                    return Err(format!("node {node} went offline"));
                }
                Some(_) => {}
            }
        }
    }
}

/// After the commit: the source forgets its copy, a server that was
/// running starts on the target, the transfer ends well.
async fn after_commit(
    context: &TransferContext,
    transfer: &Transfer,
    server: &Server,
    bytes: u64,
    to: &str,
    signals: &mut mpsc::UnboundedReceiver<TransferSignal>,
) {
    let (db, hub) = (&context.db, &context.hub);
    say(
        hub,
        &server.id,
        &format!("the server is on node {to} now ({} moved)", mib(bytes)),
    );
    let forgot = match hub.send(
        &transfer.from_node,
        PanelMessage::Transfer(TransferRequest {
            transfer_id: transfer.id.clone(),
            server_id: server.id.clone(),
            op: TransferOp::Forget,
        }),
    ) {
        Ok(()) => wait_step(signals, &transfer.from_node, "forget").await,
        Err(error) => Err(error.to_string()),
    };
    if let Err(reason) = forgot {
        tracing::warn!(transfer = %transfer.id, %reason, "the source node kept its copy of a moved server");
        say(
            hub,
            &server.id,
            &format!("the old node could not remove its copy of the server's files: {reason}"),
        );
    }
    if transfer.was_running {
        start_on(context, &server.id, &transfer.to_node, "the target node").await;
    }
    if let Err(error) = records::finish(db, &transfer.id).await {
        tracing::warn!(transfer = %transfer.id, %error, "could not record a finished transfer");
    }
    say(hub, &server.id, "transfer complete");
}

/// Starts server `server_id` where it is now (node `node`, named `where_`
/// on its console), as the Panel.
async fn start_on(context: &TransferContext, server_id: &str, node: &str, where_: &str) {
    let (db, hub) = (&context.db, &context.hub);
    let started = match server::get(db, server_id).await {
        Ok(Some(current)) => commands::record(
            db,
            &current,
            CommandAction::Start,
            None,
            None,
            &Actor::system(),
        )
        .await
        .map(|_| ())
        .map_err(|e| e.to_string()),
        Ok(None) => Err("the server is gone".to_owned()),
        Err(error) => Err(error.to_string()),
    };
    match started {
        Ok(()) => {
            hub.wake(node);
            say(hub, server_id, &format!("starting the server on {where_}"));
        }
        Err(reason) => say(
            hub,
            server_id,
            &format!("the server could not be started on {where_}: {reason}"),
        ),
    }
}

/// Fails the transfer: the reason recorded and shown, the target told to
/// discard what it got, a server that was running started again on the
/// source.
async fn fail(context: &TransferContext, transfer: &Transfer, failure: &Failure, from: &str) {
    let (db, hub) = (&context.db, &context.hub);
    tracing::warn!(transfer = %transfer.id, server = %transfer.server_id, reason = %failure.reason, "a transfer failed");
    if let Err(error) = records::fail(db, &transfer.id, &transfer.server_id, &failure.reason).await
    {
        tracing::warn!(transfer = %transfer.id, %error, "could not record a failed transfer");
    }
    say(
        hub,
        &transfer.server_id,
        &format!(
            "the transfer failed: {}; the server stays on node {from}",
            failure.reason
        ),
    );
    if failure.target_touched {
        let _ = hub.send(
            &transfer.to_node,
            PanelMessage::Transfer(TransferRequest {
                transfer_id: transfer.id.clone(),
                server_id: transfer.server_id.clone(),
                op: TransferOp::Discard,
            }),
        );
    }
    if transfer.was_running {
        start_on(
            context,
            &transfer.server_id,
            &transfer.from_node,
            "the source node again",
        )
        .await;
    }
}
