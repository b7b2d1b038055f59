//! The Panel's side of the Agent link and the console relay: the state the
//! WebSocket sessions share, below the HTTP layer.
//!
//! | Where | What |
//! | --- | --- |
//! | [`crate::http::agent_link`] | `GET /api/v1/agents/connect`: the Agent's WebSocket — hello and reconciliation, command delivery, acks and results, state changes, console batches, classified console events, stats, health |
//! | [`plans`] | Turning a queued [`crate::servers::Command`] into the wire [`cap_protocol::Command`], asking the game-type plugin for its plans |
//! | [`transfers`] | Driving a server's move to another node: stop, stream between the Agents, commit, start |
//! | [`backups`] | Asking a server's Agent for a backup (limit, rotation, before-hooks, the request), for the backup routes and for plugins' `panel.create-backup` |
//! | [`crate::http::console_socket`] | Per-server console tokens and the browsers' WebSocket (`/api/v1/servers/{id}/console`) |
//!
//! The two sockets are HTTP endpoints and live in [`crate::http`] with the
//! other routes; this module knows nothing of HTTP. [`AgentHub`] ties them
//! together: which nodes are connected (and how to
//! wake their session when a command is queued), and one
//! [`ConsoleChannel`] per server with a bounded history and a broadcast to
//! every watching browser.
//!
//! Key decisions:
//!
//! - **The database is the queue.** Commands are rows in the outbox; a
//!   session delivers every unfinished command of its node on connect and
//!   whatever is queued later. [`AgentHub::wake`] makes that immediate, a
//!   periodic poll covers commands queued by another Panel process on the
//!   same database. The Agent runs each id once, so delivering twice is
//!   harmless and losing one is impossible.
//! - **The Agent's report is the truth about processes.** On every
//!   connection the hello lists every server's actual state and the Panel
//!   takes it over (`server.state.changed`, reason `reconciled`); a server
//!   the Agent does not know is `offline`.
//! - **Bounded everywhere.** A console channel keeps the last
//!   [`HISTORY_LINES`] lines; browsers read from a broadcast of
//!   [`BROADCAST_FRAMES`] frames, and one that falls behind is told how
//!   many lines it missed instead of slowing the Agent or growing a queue.
//! - **One session per node.** A new connection with the same node token
//!   replaces the old one, which is closed.
//! - **Sessions end with the Panel.** Upgraded WebSockets outlive the HTTP
//!   server's graceful shutdown, so every session holds a
//!   [`SessionGuard`] and watches [`AgentHub::close_sessions`]: a stopping
//!   Panel closes Agent links and consoles (Agents reconnect with backoff to
//!   whichever Panel listens next) and waits for them before it closes the
//!   database.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use std::time::Duration;

use cap_protocol::files::{FileRequest, FileResponse, FileResult};
use cap_protocol::{ConsoleEvent, HealthReport, PanelMessage};
use serde::Serialize;
use tokio::sync::{Notify, broadcast, mpsc, oneshot, watch};

pub mod backups;
pub mod plans;
pub mod transfers;

/// Console lines kept per server for browsers that connect later.
pub const HISTORY_LINES: usize = 500;
/// Frames buffered per server for browsers that read slowly.
pub const BROADCAST_FRAMES: usize = 1024;
/// File requests queued for one Agent session before more are refused
/// ([`RequestError::Busy`]).
pub const OUTGOING_MESSAGES: usize = 256;

/// Resource usage of a server, as its Agent last reported it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerStats {
    /// CPU use, percent of one core.
    pub cpu_percent: f64,
    /// Resident memory, bytes.
    pub memory_bytes: u64,
    /// Seconds since the process started.
    pub uptime_secs: u64,
    /// Players online, when the game reports it.
    pub players: Option<u32>,
    /// Bytes received since the container started (container nodes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_rx_bytes: Option<u64>,
    /// Bytes sent since the container started (container nodes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_tx_bytes: Option<u64>,
    /// Bytes the server's files take on disk, when measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_bytes: Option<u64>,
}

/// What a console channel broadcasts to browsers.
#[derive(Debug, Clone, PartialEq)]
pub enum ConsoleFrame {
    /// Output lines, oldest first.
    Lines(Arc<[String]>),
    /// Lines the Agent dropped by throttling.
    Dropped(u64),
    /// A console line the game-type plugin classified.
    Event(ConsoleEvent),
    /// New resource usage.
    Stats(ServerStats),
    /// The server's new state.
    State(String),
}

/// One server's console: recent lines and the live broadcast.
#[derive(Debug)]
pub struct ConsoleChannel {
    history: Mutex<VecDeque<String>>,
    stats: Mutex<Option<ServerStats>>,
    sender: broadcast::Sender<ConsoleFrame>,
    dropped: AtomicU64,
}

impl ConsoleChannel {
    fn new() -> Self {
        ConsoleChannel {
            history: Mutex::new(VecDeque::with_capacity(64)),
            stats: Mutex::new(None),
            sender: broadcast::channel(BROADCAST_FRAMES).0,
            dropped: AtomicU64::new(0),
        }
    }

    /// The last lines, oldest first.
    pub fn history(&self) -> Vec<String> {
        lock(&self.history).iter().cloned().collect()
    }

    /// The last reported stats.
    pub fn stats(&self) -> Option<ServerStats> {
        *lock(&self.stats)
    }

    /// Lines the Agent reported dropped, in total.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Subscribes to what follows.
    pub fn subscribe(&self) -> broadcast::Receiver<ConsoleFrame> {
        self.sender.subscribe()
    }

    /// The last lines, oldest first, and a subscription to what follows
    /// them: every line is in exactly one of the two, because the history
    /// is read and the subscription made under the lock [`push_lines`]
    /// records and broadcasts under (a line arriving between a separate
    /// read and subscription would show twice).
    ///
    /// [`push_lines`]: ConsoleChannel::push_lines
    pub fn history_and_subscribe(&self) -> (Vec<String>, broadcast::Receiver<ConsoleFrame>) {
        let history = lock(&self.history);
        (history.iter().cloned().collect(), self.sender.subscribe())
    }

    /// Records and broadcasts a batch of lines.
    pub fn push_lines(&self, lines: Vec<String>, dropped: u64) {
        if dropped > 0 {
            self.dropped.fetch_add(dropped, Ordering::Relaxed);
            let _ = self.sender.send(ConsoleFrame::Dropped(dropped));
        }
        if lines.is_empty() {
            return;
        }
        let mut history = lock(&self.history);
        let skip = lines.len().saturating_sub(HISTORY_LINES);
        for line in &lines[skip..] {
            if history.len() == HISTORY_LINES {
                history.pop_front();
            }
            history.push_back(line.clone());
        }
        // Under the history's lock: see `history_and_subscribe`.
        let _ = self.sender.send(ConsoleFrame::Lines(lines.into()));
    }

    /// Records and broadcasts stats.
    pub fn push_stats(&self, stats: ServerStats) {
        *lock(&self.stats) = Some(stats);
        let _ = self.sender.send(ConsoleFrame::Stats(stats));
    }

    /// Broadcasts a frame without recording it.
    pub fn broadcast(&self, frame: ConsoleFrame) {
        let _ = self.sender.send(frame);
    }
}

/// What the hub knows about a connected node.
#[derive(Debug, Clone)]
pub struct NodeStatus {
    /// When the current session started.
    pub connected_at: Instant,
    /// When the Agent was last heard from.
    pub last_heard: Instant,
    /// Its last health report.
    pub health: Option<HealthReport>,
    /// The Agent's version from its hello.
    pub agent_version: Option<String>,
    /// Where browsers reach the Agent's file transfers, from its hello.
    pub files_url: Option<String>,
    /// The port the Agent serves SFTP on, from its hello.
    pub sftp_port: Option<u16>,
}

struct Session {
    generation: u64,
    wake: Arc<Notify>,
    close: Arc<Notify>,
    /// Messages for the session to send (file requests), bounded.
    outgoing: mpsc::Sender<PanelMessage>,
    status: NodeStatus,
}

/// A file request waiting for its answer.
struct Pending {
    node_id: String,
    generation: u64,
    answer: oneshot::Sender<FileResult>,
}

/// Why a file request got no answer from the Agent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The node has no live session.
    #[error("node {0} is not connected")]
    NotConnected(String),
    /// The session ended (or was replaced) before the answer came.
    #[error("the link to node {0} was lost before the Agent answered")]
    LinkLost(String),
    /// The Agent did not answer in time.
    #[error("node {node} did not answer within {seconds} s")]
    Timeout {
        /// The node.
        node: String,
        /// The time allowed.
        seconds: u64,
    },
    /// Too many requests are waiting for this node's session.
    #[error("node {0} has too many file requests in flight")]
    Busy(String),
}

/// What a transfer's driver hears from the Agents involved
/// ([`AgentHub::watch_transfer`]).
#[derive(Debug, Clone, PartialEq)]
pub enum TransferSignal {
    /// The source's progress.
    Progress(cap_protocol::transfers::TransferProgress),
    /// A step ended, on `node`.
    Done {
        /// The node that answered.
        node: String,
        /// Its report.
        report: cap_protocol::transfers::TransferReport,
    },
    /// The link to this node dropped.
    NodeLost(String),
}

struct TransferWatch {
    nodes: [String; 2],
    signals: mpsc::UnboundedSender<TransferSignal>,
}

/// Which way a server moved for a node's session ([`AgentHub::server_moved`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moved {
    /// It left the node: reports about it from there are ignored.
    Away,
    /// It came to the node.
    In,
}

struct HubInner {
    sessions: Mutex<HashMap<String, Session>>,
    /// Transfers being driven by this Panel, by transfer id.
    transfers: Mutex<HashMap<String, TransferWatch>>,
    /// Servers that moved between nodes since the sessions last looked,
    /// by (node, server).
    moved: Mutex<HashMap<(String, String), Moved>>,
    /// File requests sent and not answered yet, by request id.
    pending: Mutex<HashMap<String, Pending>>,
    consoles: Mutex<HashMap<String, Arc<ConsoleChannel>>>,
    generation: AtomicU64,
    /// `true` once the Panel is stopping.
    closing: watch::Sender<bool>,
    /// Live WebSocket sessions (Agent links and consoles).
    live: AtomicUsize,
    /// Notified when `live` drops to zero.
    idle: Notify,
}

impl Default for HubInner {
    fn default() -> Self {
        HubInner {
            sessions: Mutex::default(),
            transfers: Mutex::default(),
            moved: Mutex::default(),
            pending: Mutex::default(),
            consoles: Mutex::default(),
            generation: AtomicU64::new(0),
            closing: watch::Sender::new(false),
            live: AtomicUsize::new(0),
            idle: Notify::new(),
        }
    }
}

/// A live WebSocket session's hold on the hub; see [`AgentHub::session`].
#[derive(Debug)]
pub struct SessionGuard {
    hub: AgentHub,
    closing: watch::Receiver<bool>,
}

impl SessionGuard {
    /// Completes once the Panel is stopping (at once if it already is).
    pub async fn closing(&mut self) {
        // An error means the hub is gone, which is a stop as well.
        let _ = self.closing.wait_for(|closing| *closing).await;
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        if self.hub.inner.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.hub.inner.idle.notify_waiters();
        }
    }
}

/// Connected Agents and server consoles. Cheap to clone.
#[derive(Clone, Default)]
pub struct AgentHub {
    inner: Arc<HubInner>,
}

impl std::fmt::Debug for AgentHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentHub")
            .field("connected", &lock(&self.inner.sessions).len())
            .finish_non_exhaustive()
    }
}

/// A session's registration in the hub; see [`AgentHub::attach`].
#[derive(Debug)]
pub struct Attached {
    /// This session's generation.
    pub generation: u64,
    /// Notified when a command for the node is queued.
    pub wake: Arc<Notify>,
    /// Notified when a newer session replaced this one.
    pub close: Arc<Notify>,
    /// Messages the session must send to its Agent (file requests).
    pub outgoing: mpsc::Receiver<PanelMessage>,
}

impl AgentHub {
    /// An empty hub.
    pub fn new() -> Self {
        AgentHub::default()
    }

    /// Tells node `node_id`'s session, if any, that a command is queued.
    pub fn wake(&self, node_id: &str) {
        if let Some(session) = lock(&self.inner.sessions).get(node_id) {
            session.wake.notify_one();
        }
    }

    /// A waker for code that only has a node id (the plugins' `panel`
    /// capability).
    pub fn waker(&self) -> crate::servers::Waker {
        let hub = self.clone();
        Arc::new(move |node: &str| hub.wake(node))
    }

    /// Whether node `node_id` has a live session.
    pub fn is_connected(&self, node_id: &str) -> bool {
        lock(&self.inner.sessions).contains_key(node_id)
    }

    /// The status of a connected node.
    pub fn status(&self, node_id: &str) -> Option<NodeStatus> {
        lock(&self.inner.sessions)
            .get(node_id)
            .map(|s| s.status.clone())
    }

    /// The file-transfer URLs the connected Agents announced.
    pub fn files_urls(&self) -> Vec<String> {
        lock(&self.inner.sessions)
            .values()
            .filter_map(|s| s.status.files_url.clone())
            .collect()
    }

    /// Registers a new session for `node_id`, closing any older one.
    pub fn attach(&self, node_id: &str) -> Attached {
        let generation = self.inner.generation.fetch_add(1, Ordering::Relaxed) + 1;
        let wake = Arc::new(Notify::new());
        let close = Arc::new(Notify::new());
        let (outgoing, requests) = mpsc::channel(OUTGOING_MESSAGES);
        let now = Instant::now();
        let previous = lock(&self.inner.sessions).insert(
            node_id.to_owned(),
            Session {
                generation,
                wake: wake.clone(),
                close: close.clone(),
                outgoing,
                status: NodeStatus {
                    connected_at: now,
                    last_heard: now,
                    health: None,
                    agent_version: None,
                    files_url: None,
                    sftp_port: None,
                },
            },
        );
        if let Some(previous) = previous {
            previous.close.notify_one();
            self.fail_pending(node_id, Some(previous.generation));
        }
        Attached {
            generation,
            wake,
            close,
            outgoing: requests,
        }
    }

    /// Sends a file request to node `node_id`'s Agent and waits up to
    /// `timeout` for its answer.
    ///
    /// Requests are not persisted: one sent on a link that drops fails with
    /// [`RequestError::LinkLost`] and the caller may try again. They reach
    /// only the Agent connected to this Panel process.
    ///
    /// # Errors
    ///
    /// [`RequestError`] when no answer came; an answer that is a refusal is
    /// the `Ok` value's [`FileResult::Err`].
    pub async fn file_request(
        &self,
        node_id: &str,
        request: FileRequest,
        timeout: Duration,
    ) -> Result<FileResult, RequestError> {
        let request_id = request.request_id.clone();
        let (answer, answered) = oneshot::channel();
        let outgoing = {
            let sessions = lock(&self.inner.sessions);
            let session = sessions
                .get(node_id)
                .ok_or_else(|| RequestError::NotConnected(node_id.to_owned()))?;
            lock(&self.inner.pending).insert(
                request_id.clone(),
                Pending {
                    node_id: node_id.to_owned(),
                    generation: session.generation,
                    answer,
                },
            );
            session.outgoing.clone()
        };
        // Removes the entry whatever happens below (a cancelled caller
        // included), so the map cannot grow with abandoned requests.
        let _forget = Forget {
            hub: self,
            request_id: &request_id,
        };
        if outgoing
            .try_send(PanelMessage::FileRequest(request))
            .is_err()
        {
            return Err(RequestError::Busy(node_id.to_owned()));
        }
        match tokio::time::timeout(timeout, answered).await {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(_)) => Err(RequestError::LinkLost(node_id.to_owned())),
            Err(_) => Err(RequestError::Timeout {
                node: node_id.to_owned(),
                seconds: timeout.as_secs(),
            }),
        }
    }

    /// Queues `message` for node `node_id`'s Agent on its live session:
    /// the Panel's answers to what the Agent asks (an SFTP sign-in,
    /// [`cap_protocol::PanelMessage::SftpAuthAnswer`]). An answer that cannot
    /// be queued is lost, and the Agent refuses what it asked about once it
    /// waited long enough.
    ///
    /// # Errors
    ///
    /// [`RequestError::NotConnected`] with no session,
    /// [`RequestError::Busy`] when its queue is full.
    pub fn send(&self, node_id: &str, message: PanelMessage) -> Result<(), RequestError> {
        let outgoing = lock(&self.inner.sessions)
            .get(node_id)
            .map(|s| s.outgoing.clone())
            .ok_or_else(|| RequestError::NotConnected(node_id.to_owned()))?;
        outgoing
            .try_send(message)
            .map_err(|_| RequestError::Busy(node_id.to_owned()))
    }

    /// Delivers an Agent's answer to the request waiting for it; answers
    /// from another node than the one asked, and late or unknown ones, are
    /// dropped.
    pub fn answer(&self, node_id: &str, response: FileResponse) {
        let mut pending = lock(&self.inner.pending);
        if pending
            .get(&response.request_id)
            .is_some_and(|p| p.node_id == node_id)
            && let Some(waiting) = pending.remove(&response.request_id)
        {
            let _ = waiting.answer.send(response.result);
        }
    }

    /// Fails the requests waiting on node `node_id` (on its session
    /// `generation`, or on every session when `None`).
    fn fail_pending(&self, node_id: &str, generation: Option<u64>) {
        lock(&self.inner.pending)
            .retain(|_, p| p.node_id != node_id || generation.is_some_and(|g| g != p.generation));
    }

    /// Removes session `generation` of `node_id`; `false` when a newer
    /// session had replaced it already (the node is still connected).
    pub fn detach(&self, node_id: &str, generation: u64) -> bool {
        let mut sessions = lock(&self.inner.sessions);
        if sessions
            .get(node_id)
            .is_some_and(|s| s.generation == generation)
        {
            sessions.remove(node_id);
            drop(sessions);
            self.fail_pending(node_id, Some(generation));
            for watch in lock(&self.inner.transfers).values() {
                if watch.nodes.iter().any(|n| n == node_id) {
                    let _ = watch
                        .signals
                        .send(TransferSignal::NodeLost(node_id.to_owned()));
                }
            }
            true
        } else {
            false
        }
    }

    /// Updates a connected node's status.
    pub fn touch(&self, node_id: &str, update: impl FnOnce(&mut NodeStatus)) {
        if let Some(session) = lock(&self.inner.sessions).get_mut(node_id) {
            session.status.last_heard = Instant::now();
            update(&mut session.status);
        }
    }

    /// Server `server_id`'s console channel, created on first use.
    pub fn console(&self, server_id: &str) -> Arc<ConsoleChannel> {
        lock(&self.inner.consoles)
            .entry(server_id.to_owned())
            .or_insert_with(|| Arc::new(ConsoleChannel::new()))
            .clone()
    }

    /// Counts a WebSocket session as live until the guard is dropped; the
    /// session ends when [`SessionGuard::closing`] completes.
    pub fn session(&self) -> SessionGuard {
        self.inner.live.fetch_add(1, Ordering::AcqRel);
        SessionGuard {
            hub: self.clone(),
            closing: self.inner.closing.subscribe(),
        }
    }

    /// Tells every live session, and every later one, to end: the Panel is
    /// stopping.
    pub fn close_sessions(&self) {
        self.inner.closing.send_replace(true);
    }

    /// Completes when no session is live any more.
    pub async fn sessions_ended(&self) {
        loop {
            let idle = self.inner.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.inner.live.load(Ordering::Acquire) == 0 {
                return;
            }
            idle.await;
        }
    }

    /// Forgets a deleted server's console.
    pub fn forget_console(&self, server_id: &str) {
        lock(&self.inner.consoles).remove(server_id);
    }

    /// Listens for what the Agents of nodes `source` and `target` say
    /// about transfer `transfer_id`, and for either link dropping, until
    /// [`AgentHub::unwatch_transfer`].
    pub fn watch_transfer(
        &self,
        transfer_id: &str,
        source: &str,
        target: &str,
    ) -> mpsc::UnboundedReceiver<TransferSignal> {
        let (signals, receiver) = mpsc::unbounded_channel();
        lock(&self.inner.transfers).insert(
            transfer_id.to_owned(),
            TransferWatch {
                nodes: [source.to_owned(), target.to_owned()],
                signals,
            },
        );
        receiver
    }

    /// Stops listening for transfer `transfer_id`.
    pub fn unwatch_transfer(&self, transfer_id: &str) {
        lock(&self.inner.transfers).remove(transfer_id);
    }

    /// Hands what node `node_id` said about transfer `transfer_id` to its
    /// driver; what a node outside the transfer says is dropped.
    pub fn transfer_signal(&self, node_id: &str, transfer_id: &str, signal: TransferSignal) {
        if let Some(watch) = lock(&self.inner.transfers).get(transfer_id)
            && watch.nodes.iter().any(|n| n == node_id)
        {
            let _ = watch.signals.send(signal);
        }
    }

    /// Server `server_id` moved from node `from` to node `to`: the nodes'
    /// sessions update what they know of their servers
    /// ([`AgentHub::take_move`]).
    pub fn server_moved(&self, from: &str, to: &str, server_id: &str) {
        let mut moved = lock(&self.inner.moved);
        moved.insert((from.to_owned(), server_id.to_owned()), Moved::Away);
        moved.insert((to.to_owned(), server_id.to_owned()), Moved::In);
    }

    /// How server `server_id` moved for node `node_id` since the last
    /// call, if it did.
    pub fn take_move(&self, node_id: &str, server_id: &str) -> Option<Moved> {
        let mut moved = lock(&self.inner.moved);
        if moved.is_empty() {
            return None;
        }
        moved.remove(&(node_id.to_owned(), server_id.to_owned()))
    }
}

/// Removes a pending request when its caller stops waiting.
struct Forget<'a> {
    hub: &'a AgentHub,
    request_id: &'a str,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        lock(&self.hub.inner.pending).remove(self.request_id);
    }
}

/// Marks every node offline (`node.offline` for those recorded online):
/// what a Panel does at start, before any Agent could have connected.
///
/// # Errors
///
/// Database errors.
pub async fn mark_all_offline(db: &crate::db::Database) -> Result<(), crate::db::DbError> {
    let mut after: Option<String> = None;
    loop {
        let (page, more) = crate::servers::nodes::list(db, after.as_deref(), 200).await?;
        after = page.last().map(|n| n.id.clone());
        for node in page.iter().filter(|n| n.online) {
            crate::servers::nodes::set_online(db, &node.id, false).await?;
        }
        if !more {
            return Ok(());
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_keeps_only_the_newest_lines() {
        let channel = ConsoleChannel::new();
        let lines: Vec<String> = (0..HISTORY_LINES + 10).map(|i| i.to_string()).collect();
        channel.push_lines(lines, 0);
        channel.push_lines(vec!["last".into()], 3);
        let history = channel.history();
        assert_eq!(history.len(), HISTORY_LINES);
        assert_eq!(history.first().map(String::as_str), Some("11"));
        assert_eq!(history.last().map(String::as_str), Some("last"));
        assert_eq!(channel.dropped(), 3);
    }

    #[test]
    fn a_slow_subscriber_learns_how_much_it_missed_instead_of_blocking() {
        let channel = ConsoleChannel::new();
        let mut slow = channel.subscribe();
        for i in 0..BROADCAST_FRAMES + 5 {
            channel.push_lines(vec![i.to_string()], 0);
        }
        assert!(matches!(
            slow.try_recv(),
            Err(broadcast::error::TryRecvError::Lagged(5))
        ));
        assert_eq!(channel.history().len(), HISTORY_LINES);
    }

    #[tokio::test]
    async fn a_message_sent_to_a_node_reaches_its_current_session_only() {
        let hub = AgentHub::new();
        let ping = || PanelMessage::Ping { nonce: "n".into() };
        assert_eq!(
            hub.send("node_a", ping()),
            Err(RequestError::NotConnected("node_a".into()))
        );
        let mut attached = hub.attach("node_a");
        hub.send("node_a", ping()).expect("queued");
        assert_eq!(attached.outgoing.recv().await, Some(ping()));
    }

    #[test]
    fn a_new_session_closes_the_old_one_and_only_the_current_one_detaches() {
        let hub = AgentHub::new();
        let first = hub.attach("node_a");
        let second = hub.attach("node_a");
        let closed = first.close.notified();
        tokio::pin!(closed);
        assert!(
            closed.as_mut().enable(),
            "the first session was told to close"
        );
        assert!(!hub.detach("node_a", first.generation));
        assert!(hub.is_connected("node_a"));
        assert!(hub.detach("node_a", second.generation));
        assert!(!hub.is_connected("node_a"));
    }
}
