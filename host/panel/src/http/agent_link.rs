//! `GET /api/v1/agents/connect`: one Agent's WebSocket.
//!
//! The Agent authenticates with its node token (`Authorization: Bearer
//! capnode_…`) before the upgrade; anything else is a `401` problem. Then:
//!
//! 1. The Agent's first frame must be a hello naming the same node, within
//!    [`HELLO_TIMEOUT`]. The Panel takes over the state of every server it
//!    reports (and marks `offline` the node's servers it does not know),
//!    marks the node online (`node.online`, hooks) and delivers every
//!    unfinished command of the node, oldest first.
//! 2. Commands queued later are delivered when [`crate::agents::AgentHub::wake`]
//!    is called, or by the [`POLL_INTERVAL`] poll; before them, whenever
//!    it changed (and once per session), the node's set of suspended
//!    servers, whose files the Agent then holds read-only
//!    ([`PanelMessage::ReadOnlyServers`]). A suspended server the Agent
//!    reports starting or running is stopped again
//!    ([`crate::servers::suspension::stop_if_suspended`]). Acks and results move
//!    the outbox rows; state changes update the server
//!    (`server.state.changed`, `server.state-changed` hooks); console
//!    batches, classified events and stats go to the server's console
//!    channel, classified events also to `console.*` hooks. SFTP sign-ins
//!    the Agent asks about are decided ([`crate::files::sftp`]) and
//!    answered on the same socket.
//! 3. Silence longer than three heartbeats, a close, a protocol version
//!    mismatch or a newer session for the node ends the session; the node
//!    goes offline unless a newer session took over.
//!
//! Frames about a server on another node are ignored (and logged): a node
//! token speaks only for its own servers.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::extract::ws::{
    Message, WebSocket, WebSocketUpgrade, rejection::WebSocketUpgradeRejection,
};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use cap_protocol::{
    AgentMessage, CommandOutcome, ConsoleEvent, PanelMessage, ProtocolError, ServerReport,
    ServerState, decode, encode,
};
use cap_runtime::api::{ConsoleInfo, EventKind, NodeInfo, Payload};
use futures::{SinkExt, StreamExt};

use super::{ApiError, ApiResult, AppState};
use crate::agents::plans::{self, PlanError};
use crate::agents::{AgentHub, ConsoleFrame, ServerStats};
use crate::db::Actor;
use crate::plugins::hooks;
use crate::servers::registration::{HEARTBEAT_SECONDS, authenticate_node};
use crate::servers::{CommandOutbox, ServersError, nodes, server, suspension};

/// How long the Agent has to send its hello.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(15);
/// How often the outbox is polled besides wake-ups.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);
/// Commands delivered per batch.
const BATCH: u32 = 100;

/// The wire name of a state, as the servers table stores it.
pub fn state_name(state: ServerState) -> &'static str {
    match state {
        ServerState::Offline => "offline",
        ServerState::Installing => "installing",
        ServerState::Starting => "starting",
        ServerState::Running => "running",
        ServerState::Stopping => "stopping",
        ServerState::Crashed => "crashed",
        ServerState::InstallFailed => "install_failed",
    }
}

/// The Agent's WebSocket.
pub async fn connect(
    State(state): State<AppState>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let node_id = node_of(&state, &headers).await?;
    let upgrade = upgrade.map_err(|rejection| {
        ApiError::BadRequest(format!("a WebSocket upgrade is required: {rejection}"))
    })?;
    Ok(upgrade
        .max_message_size(16 << 20)
        .on_upgrade(move |socket| async move {
            Session::new(state, node_id).run(socket).await;
        }))
}

/// The node a request's bearer token belongs to.
async fn node_of(state: &AppState, headers: &HeaderMap) -> ApiResult<String> {
    let token = super::auth::bearer_from_headers(headers).ok_or_else(unauthenticated)?;
    authenticate_node(state.db(), token)
        .await?
        .ok_or_else(unauthenticated)
}

/// The active game-type plugin `id`, for an Agent.
async fn game_plugin(
    state: &AppState,
    id: &str,
) -> ApiResult<(crate::plugins::PluginRecord, Vec<u8>)> {
    let not_found = || ApiError::NotFound(format!("no active game-type plugin {id}"));
    let plugins = state.plugins().ok_or_else(not_found)?;
    let active = plugins.active(id).ok_or_else(not_found)?;
    if !active
        .manifest()
        .has_kind(cap_runtime::PluginKind::GameType)
    {
        return Err(not_found());
    }
    plugins.component(id).await.map_err(|error| {
        tracing::warn!(plugin = %id, %error, "cannot read a plugin's component for an Agent");
        not_found()
    })
}

/// `GET /api/v1/agents/plugins/{id}`: an active game-type plugin's
/// version, component digest and manifest, for Agents (node token).
pub async fn plugin_metadata(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> ApiResult<axum::Json<serde_json::Value>> {
    node_of(&state, &headers).await?;
    let (record, _) = game_plugin(&state, &id).await?;
    Ok(axum::Json(serde_json::json!({
        "id": record.id,
        "version": record.version.to_string(),
        "componentSha256": record.component_sha256,
        "manifest": record.manifest,
    })))
}

/// `GET /api/v1/agents/plugins/{id}/component`: its component bytes.
pub async fn plugin_component(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> ApiResult<Response> {
    node_of(&state, &headers).await?;
    let (_, bytes) = game_plugin(&state, &id).await?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/wasm")],
        bytes,
    )
        .into_response())
}

fn unauthenticated() -> ApiError {
    ApiError::Unauthenticated("send the node token as Authorization: Bearer capnode_…".into())
}

struct Session {
    state: AppState,
    hub: AgentHub,
    outbox: CommandOutbox,
    node_id: String,
    /// Servers of this node, by id, with the state the Panel has.
    servers: HashMap<String, String>,
    /// Commands sent in this session and not finished yet.
    delivered: HashSet<String>,
    /// Servers found not to be on this node (bounded), so a misbehaving
    /// Agent's reports cost no database read after the first.
    foreign: HashSet<String>,
    heartbeat: Duration,
    /// Where the node's servers reach its host, as the Agent's hello said:
    /// plans are made while the Agent that said it is connected.
    host_address: Option<String>,
    /// The node's suspended servers as last sent to the Agent
    /// ([`PanelMessage::ReadOnlyServers`]); `None` until the first send.
    read_only_sent: Option<Vec<String>>,
}

type Sink = futures::stream::SplitSink<WebSocket, Message>;
type Stream = futures::stream::SplitStream<WebSocket>;

impl Session {
    fn new(state: AppState, node_id: String) -> Self {
        let hub = state.agents().clone();
        let outbox = CommandOutbox::new(state.db().clone());
        Session {
            state,
            hub,
            outbox,
            node_id,
            servers: HashMap::new(),
            delivered: HashSet::new(),
            foreign: HashSet::new(),
            heartbeat: Duration::from_secs(u64::from(HEARTBEAT_SECONDS)),
            host_address: None,
            read_only_sent: None,
        }
    }

    async fn run(mut self, socket: WebSocket) {
        let mut guard = self.hub.session();
        let mut attached = self.hub.attach(&self.node_id);
        let (mut sink, mut stream) = socket.split();
        let why = tokio::select! {
            why = self.serve(&mut sink, &mut stream, &mut attached) => why,
            () = guard.closing() => "the Panel is stopping",
        };
        tracing::info!(node = %self.node_id, why, "Agent session ended");
        let _ = sink.send(Message::Close(None)).await;
        if self.hub.detach(&self.node_id, attached.generation) {
            self.set_online(false).await;
            let reason = format!(
                "node {} went offline before the Agent reported",
                self.node_id
            );
            if let Err(error) =
                crate::backups::fail_unfinished(self.state.db(), Some(&self.node_id), &reason).await
            {
                tracing::warn!(node = %self.node_id, %error, "could not fail the node's unfinished backups");
            }
        }
    }

    async fn serve(
        &mut self,
        sink: &mut Sink,
        stream: &mut Stream,
        attached: &mut crate::agents::Attached,
    ) -> &'static str {
        let hello = match tokio::time::timeout(HELLO_TIMEOUT, next_message(stream)).await {
            Err(_) => return "no hello in time",
            Ok(Err(why)) => return why,
            Ok(Ok(message)) => message,
        };
        let AgentMessage::Hello {
            node_id,
            agent_version,
            servers,
            capabilities,
            host_address,
            files_url,
            sftp_port,
        } = hello
        else {
            return "the first message was not a hello";
        };
        if node_id != self.node_id {
            tracing::warn!(node = %self.node_id, claimed = %node_id, "hello names another node");
            return "the hello named another node";
        }
        self.hub.touch(&self.node_id, |s| {
            s.agent_version = Some(agent_version);
            s.files_url = files_url;
            s.sftp_port = sftp_port;
        });
        match self.state.file_grants() {
            Ok(signer) => {
                let key = PanelMessage::GrantKey {
                    public_key: signer.public_key().to_owned(),
                    panel_origin: Some(self.state.config().base_url()),
                };
                if let Err(why) = send(sink, &key).await {
                    return why;
                }
            }
            Err(error) => {
                tracing::warn!(%error, "no file-grant key: the Agent cannot accept file transfers");
            }
        }
        self.take_capabilities(capabilities).await;
        self.host_address = host_address;
        if let Err(error) = self.reconcile(&servers).await {
            tracing::warn!(node = %self.node_id, %error, "could not reconcile the Agent's report");
            return "the database failed during reconciliation";
        }
        self.set_online(true).await;
        if let Err(why) = self.deliver(sink).await {
            return why;
        }
        let mut poll = tokio::time::interval(POLL_INTERVAL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_heard = Instant::now();
        loop {
            tokio::select! {
                () = attached.close.notified() => return "a newer session replaced this one",
                Some(outgoing) = attached.outgoing.recv() => {
                    if let Err(why) = send(sink, &outgoing).await {
                        return why;
                    }
                }
                () = attached.wake.notified() => {
                    if let Err(why) = self.deliver(sink).await {
                        return why;
                    }
                }
                _ = poll.tick() => {
                    if last_heard.elapsed() > self.heartbeat * 3 {
                        return "the Agent went silent";
                    }
                    if let Err(why) = self.deliver(sink).await {
                        return why;
                    }
                }
                message = next_message(stream) => {
                    let message = match message {
                        Ok(message) => message,
                        Err(why) => return why,
                    };
                    last_heard = Instant::now();
                    self.handle(message).await;
                }
            }
        }
    }

    async fn handle(&mut self, message: AgentMessage) {
        match message {
            AgentMessage::Hello {
                servers,
                capabilities,
                host_address,
                files_url,
                sftp_port,
                ..
            } => {
                self.take_capabilities(capabilities).await;
                self.host_address = host_address;
                self.hub.touch(&self.node_id, |s| {
                    s.files_url = files_url;
                    s.sftp_port = sftp_port;
                });
                if let Err(error) = self.reconcile(&servers).await {
                    tracing::warn!(node = %self.node_id, %error, "could not reconcile");
                }
            }
            AgentMessage::Heartbeat { .. } | AgentMessage::Pong { .. } => {
                self.hub.touch(&self.node_id, |_| {});
            }
            AgentMessage::Health(report) => {
                self.hub.touch(&self.node_id, |s| s.health = Some(report));
            }
            AgentMessage::FileResponse(response) => {
                self.hub.answer(&self.node_id, response);
            }
            AgentMessage::FileChanged(change) => {
                if self.owns(&change.server_id).await {
                    crate::http::files_routes::record_change(&self.state, change);
                }
            }
            AgentMessage::SftpAuth(request) => self.sftp_auth(request),
            AgentMessage::TransferProgress(progress) => {
                let id = progress.transfer_id.clone();
                self.hub.transfer_signal(
                    &self.node_id,
                    &id,
                    crate::agents::TransferSignal::Progress(progress),
                );
            }
            AgentMessage::TransferDone(report) => {
                let id = report.transfer_id.clone();
                self.hub.transfer_signal(
                    &self.node_id,
                    &id,
                    crate::agents::TransferSignal::Done {
                        node: self.node_id.clone(),
                        report,
                    },
                );
            }
            AgentMessage::BackupDone(report) => {
                if self.owns(&report.server_id).await {
                    match crate::backups::record_report(self.state.db(), &self.node_id, report)
                        .await
                    {
                        Ok(Some(ended)) => hooks::spawn_after(
                            self.state.plugins(),
                            hooks::event(
                                EventKind::BackupComplete,
                                crate::backups::hook_payload(&ended),
                                &Actor::system(),
                            ),
                        ),
                        Ok(None) => {}
                        Err(error) => {
                            tracing::warn!(node = %self.node_id, %error, "could not record a backup's outcome");
                        }
                    }
                }
            }
            AgentMessage::Ack { command_id } => {
                match self.outbox.ack(&self.node_id, &command_id).await {
                    Ok(_) | Err(ServersError::Conflict { .. } | ServersError::NotFound(_)) => {}
                    Err(error) => tracing::warn!(%command_id, %error, "could not record an ack"),
                }
            }
            AgentMessage::CommandResult {
                command_id,
                outcome,
            } => {
                self.delivered.remove(&command_id);
                let result = match &outcome {
                    CommandOutcome::Ok => self.outbox.complete(&self.node_id, &command_id).await,
                    CommandOutcome::Failed { code, message } => {
                        self.outbox
                            .fail(&self.node_id, &command_id, &format!("{code}: {message}"))
                            .await
                    }
                };
                match result {
                    Ok(command) => {
                        if command.action == crate::servers::CommandAction::Delete
                            && outcome == CommandOutcome::Ok
                        {
                            self.servers.remove(&command.server_id);
                            self.hub.forget_console(&command.server_id);
                            let db = self.state.db().clone();
                            let server_id = command.server_id.clone();
                            tokio::spawn(async move {
                                if let Err(error) =
                                    crate::backups::forget_server(&db, &server_id).await
                                {
                                    tracing::warn!(server = %server_id, %error, "could not forget a deleted server's backups");
                                }
                                if let Err(error) =
                                    crate::databases::forget_server(&db, &server_id).await
                                {
                                    tracing::warn!(server = %server_id, %error, "could not forget a deleted server's databases");
                                }
                            });
                        }
                    }
                    Err(ServersError::Conflict { .. } | ServersError::NotFound(_)) => {}
                    Err(error) => {
                        tracing::warn!(%command_id, %error, "could not record a command result");
                    }
                }
            }
            AgentMessage::StateChange {
                server_id,
                state,
                reason,
                ..
            } => {
                if self.owns(&server_id).await {
                    self.change_state(&server_id, state, reason.as_deref())
                        .await;
                }
            }
            AgentMessage::ConsoleLines {
                server_id,
                lines,
                dropped,
            } => {
                if self.owns(&server_id).await {
                    self.hub.console(&server_id).push_lines(lines, dropped);
                }
            }
            AgentMessage::ConsoleEvent { server_id, event } => {
                if self.owns(&server_id).await {
                    self.console_event(&server_id, event);
                }
            }
            AgentMessage::Stats {
                server_id,
                cpu_percent,
                memory_bytes,
                uptime_secs,
                players,
                network_rx_bytes,
                network_tx_bytes,
                disk_bytes,
            } => {
                if self.owns(&server_id).await {
                    self.hub.console(&server_id).push_stats(ServerStats {
                        cpu_percent,
                        memory_bytes,
                        uptime_secs,
                        players,
                        network_rx_bytes,
                        network_tx_bytes,
                        disk_bytes,
                    });
                }
            }
        }
    }

    /// Decides an SFTP sign-in the Agent asks about on a task of its own (a
    /// password check may take a while) and queues the answer for the
    /// session.
    fn sftp_auth(&self, request: cap_protocol::sftp::SftpAuthRequest) {
        let state = self.state.clone();
        let node = self.node_id.clone();
        tokio::spawn(async move {
            let decision = crate::files::sftp::decide(
                state.db(),
                state.identity(),
                state.plugins(),
                &node,
                &request,
            )
            .await;
            let answer = PanelMessage::SftpAuthAnswer(cap_protocol::sftp::SftpAuthResponse {
                request_id: request.request_id,
                decision,
            });
            if let Err(error) = state.agents().send(&node, answer) {
                tracing::warn!(%node, %error, "could not answer an SFTP sign-in");
            }
        });
    }

    /// Whether `server_id` is on this node (asking the database about
    /// servers created since the hello).
    async fn owns(&mut self, server_id: &str) -> bool {
        match self.hub.take_move(&self.node_id, server_id) {
            Some(crate::agents::Moved::Away) => {
                self.servers.remove(server_id);
                if self.foreign.len() < 4096 {
                    self.foreign.insert(server_id.to_owned());
                }
                return false;
            }
            Some(crate::agents::Moved::In) => {
                self.foreign.remove(server_id);
            }
            None => {}
        }
        if self.servers.contains_key(server_id) {
            return true;
        }
        if self.foreign.contains(server_id) {
            return false;
        }
        match server::get(self.state.db(), server_id).await {
            Ok(Some(found)) if found.node_id.as_deref() == Some(self.node_id.as_str()) => {
                self.servers.insert(found.id, found.state);
                true
            }
            Ok(_) => {
                tracing::warn!(node = %self.node_id, server = %server_id, "ignoring a report about a server of another node");
                if self.foreign.len() < 4096 {
                    self.foreign.insert(server_id.to_owned());
                }
                false
            }
            Err(error) => {
                tracing::warn!(%error, "could not check a server's node");
                false
            }
        }
    }

    async fn reconcile(&mut self, reports: &[ServerReport]) -> Result<(), crate::db::DbError> {
        let known = server::states_on_node(self.state.db(), &self.node_id).await?;
        self.servers = known.into_iter().collect();
        let reported: HashMap<&str, ServerState> = reports
            .iter()
            .map(|r| (r.server_id.as_str(), r.state))
            .collect();
        let ids: Vec<String> = self.servers.keys().cloned().collect();
        for id in ids {
            match reported.get(id.as_str()) {
                Some(state) => {
                    self.change_state(&id, *state, Some("reconciled with the Agent's report"))
                        .await;
                }
                None => {
                    let current = self.servers.get(&id).cloned().unwrap_or_default();
                    if !matches!(current.as_str(), "offline" | server::STATE_DELETING) {
                        self.change_state(&id, ServerState::Offline, Some("unknown to the Agent"))
                            .await;
                    }
                }
            }
        }
        for report in reports {
            if !self.servers.contains_key(&report.server_id) {
                tracing::warn!(node = %self.node_id, server = %report.server_id,
                    "the Agent runs a server the Panel does not have on this node");
            }
        }
        Ok(())
    }

    async fn change_state(&mut self, server_id: &str, to: ServerState, reason: Option<&str>) {
        let name = state_name(to);
        match server::set_state(self.state.db(), server_id, name, reason).await {
            Ok(Some(changed)) => {
                self.servers.insert(server_id.to_owned(), name.to_owned());
                self.hub
                    .console(server_id)
                    .broadcast(ConsoleFrame::State(name.to_owned()));
                let event = hooks::event(
                    EventKind::ServerStateChanged,
                    Payload::Server(server::server_info(&changed)),
                    &Actor::system(),
                );
                hooks::spawn_after(self.state.plugins(), event);
                match suspension::stop_if_suspended(self.state.db(), &changed).await {
                    Ok(Some(_)) => self.hub.wake(&self.node_id),
                    Ok(None) => {}
                    Err(error) => {
                        tracing::warn!(server = %server_id, %error, "could not stop a suspended server again");
                    }
                }
            }
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(server = %server_id, %error, "could not record a state change")
            }
        }
    }

    fn console_event(&self, server_id: &str, event: ConsoleEvent) {
        let hook = match &event {
            ConsoleEvent::Ready => Some((EventKind::ConsoleReady, None)),
            ConsoleEvent::PlayerJoined { name } => {
                Some((EventKind::ConsolePlayerJoined, Some(name.clone())))
            }
            ConsoleEvent::PlayerLeft { name } => {
                Some((EventKind::ConsolePlayerLeft, Some(name.clone())))
            }
            ConsoleEvent::Crash { cause } => Some((EventKind::ConsoleCrash, Some(cause.clone()))),
            ConsoleEvent::Warning { .. } => None,
        };
        if let Some((kind, detail)) = hook {
            let payload = Payload::Console(ConsoleInfo {
                server_id: server_id.to_owned(),
                line: String::new(),
                detail,
            });
            hooks::spawn_after(
                self.state.plugins(),
                hooks::event(kind, payload, &Actor::system()),
            );
        }
        self.hub
            .console(server_id)
            .broadcast(ConsoleFrame::Event(event));
    }

    /// Tells the Agent the node's suspended servers when the set changed
    /// since it was last told (and once per session): their files are
    /// read-only to every SFTP session and transfer already open.
    async fn push_read_only(&mut self, sink: &mut Sink) -> Result<(), &'static str> {
        let suspended = match suspension::suspended_on_node(self.state.db(), &self.node_id).await {
            Ok(suspended) => suspended,
            Err(error) => {
                tracing::warn!(node = %self.node_id, %error, "could not read the node's suspended servers");
                return Ok(());
            }
        };
        if self.read_only_sent.as_ref() == Some(&suspended) {
            return Ok(());
        }
        let message = PanelMessage::ReadOnlyServers {
            server_ids: suspended.clone(),
        };
        send(sink, &message).await?;
        self.read_only_sent = Some(suspended);
        Ok(())
    }

    /// Sends the node's read-only servers when they changed, then every
    /// unfinished command not sent in this session yet.
    async fn deliver(&mut self, sink: &mut Sink) -> Result<(), &'static str> {
        self.push_read_only(sink).await?;
        let commands = match self.outbox.unfinished(&self.node_id, BATCH).await {
            Ok(commands) => commands,
            Err(error) => {
                tracing::warn!(%error, "could not read the command outbox");
                return Ok(());
            }
        };
        for command in commands {
            if self.delivered.contains(&command.id) {
                continue;
            }
            match plans::to_wire(
                self.state.db(),
                self.state.plugins(),
                &command,
                self.host_address.as_deref(),
            )
            .await
            {
                Ok(wire) => {
                    send(sink, &PanelMessage::Command(wire)).await?;
                    self.delivered.insert(command.id);
                }
                Err(error) if error.is_transient() => {
                    tracing::warn!(command = %command.id, %error, "will retry delivering");
                    return Ok(());
                }
                Err(error) => self.refuse(&command.id, &error).await,
            }
        }
        Ok(())
    }

    async fn refuse(&self, command_id: &str, error: &PlanError) {
        tracing::warn!(command = %command_id, %error, "cannot deliver a command");
        if let Err(failed) = self
            .outbox
            .fail(
                &self.node_id,
                command_id,
                &format!("{}: {error}", error.code()),
            )
            .await
        {
            tracing::warn!(command = %command_id, error = %failed, "could not fail a command");
        }
    }

    /// Takes over what a hello says the node can run, when it says.
    async fn take_capabilities(&self, capabilities: Option<Vec<String>>) {
        let Some(capabilities) = capabilities else {
            return;
        };
        match nodes::set_capabilities(self.state.db(), &self.node_id, &capabilities).await {
            Ok(true) => {
                tracing::info!(node = %self.node_id, ?capabilities, "the node's capabilities changed");
            }
            Ok(false) => {}
            Err(error) => {
                // The node keeps what it had: a bad report must not make it
                // placeable for what it cannot run.
                tracing::warn!(node = %self.node_id, %error, "the hello's capabilities were refused");
            }
        }
    }

    async fn set_online(&self, online: bool) {
        let db = self.state.db();
        if let Err(error) = nodes::set_online(db, &self.node_id, online).await {
            tracing::warn!(node = %self.node_id, %error, "could not record the node's link state");
            return;
        }
        if let Ok(Some(node)) = nodes::get(db, &self.node_id).await {
            let kind = if online {
                EventKind::NodeOnline
            } else {
                EventKind::NodeOffline
            };
            let payload = Payload::Node(NodeInfo {
                id: node.id,
                name: node.name,
                address: node.address,
            });
            hooks::spawn_after(
                self.state.plugins(),
                hooks::event(kind, payload, &Actor::system()),
            );
        }
    }
}

async fn next_message(stream: &mut Stream) -> Result<AgentMessage, &'static str> {
    loop {
        let frame = match stream.next().await {
            None => return Err("the Agent closed the connection"),
            Some(Err(_)) => return Err("the connection failed"),
            Some(Ok(frame)) => frame,
        };
        let text = match frame {
            Message::Text(text) => text,
            Message::Close(_) => return Err("the Agent closed the connection"),
            _ => continue,
        };
        match decode::<AgentMessage>(text.as_str()) {
            Ok(message) => return Ok(message),
            Err(ProtocolError::VersionMismatch { theirs, .. }) => {
                tracing::warn!(theirs, "an Agent speaks another protocol version");
                return Err("protocol version mismatch");
            }
            Err(error) => tracing::warn!(%error, "ignoring a malformed frame from an Agent"),
        }
    }
}

async fn send(sink: &mut Sink, message: &PanelMessage) -> Result<(), &'static str> {
    let frame = encode(message).map_err(|_| "a message could not be encoded")?;
    sink.send(Message::Text(frame.into()))
        .await
        .map_err(|_| "the connection failed")
}
