//! The WebSocket messages between an Agent and the Panel.
//!
//! Every frame is one JSON text message, an [`Envelope`]:
//! `{"protocol":1,"type":"<kebab-case message>","data":{…}}`. The receiver
//! checks `protocol` before anything else ([`decode`]), so a mismatch is a
//! typed [`ProtocolError::VersionMismatch`] rather than a confusing field
//! error.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::backups::{BackupReport, BackupRequest};
use crate::files::{FileChange, FileRequest, FileResponse};
use crate::plans::{InstallPlan, StartupPlan, StopPlan};

/// The protocol version this crate speaks. Bumped on any incompatible
/// change; both sides refuse frames of another version.
pub const PROTOCOL_VERSION: u32 = 1;

/// Every frame on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<M> {
    /// The sender's [`PROTOCOL_VERSION`].
    pub protocol: u32,
    /// The message.
    #[serde(flatten)]
    pub message: M,
}

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// The frame is not a JSON object with a numeric `protocol` field.
    #[error("frame has no protocol version: {0}")]
    MissingVersion(String),
    /// The peer speaks another protocol version.
    #[error("protocol version mismatch: we speak {ours}, the peer sent {theirs}")]
    VersionMismatch {
        /// Our [`PROTOCOL_VERSION`].
        ours: u32,
        /// The version in the frame.
        theirs: u32,
    },
    /// The version matches but the message is malformed or unknown.
    #[error("malformed message: {0}")]
    Malformed(#[from] serde_json::Error),
}

impl ProtocolError {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingVersion(_) => "missing-version",
            Self::VersionMismatch { .. } => "version-mismatch",
            Self::Malformed(_) => "malformed-message",
        }
    }
}

/// Wraps `message` in an [`Envelope`] of our version and serializes it.
///
/// # Errors
///
/// Serialization failed (only possible for maps with non-string keys, which
/// no message has).
pub fn encode<M: Serialize>(message: &M) -> Result<String, ProtocolError> {
    Ok(serde_json::to_string(&Envelope {
        protocol: PROTOCOL_VERSION,
        message,
    })?)
}

/// Reads one frame: checks the version first, then the message.
///
/// ```
/// use cap_protocol::{AgentMessage, ProtocolError, decode, encode};
///
/// let frame = encode(&AgentMessage::Heartbeat { sent_at_ms: 5 })?;
/// assert_eq!(frame, r#"{"protocol":1,"type":"heartbeat","data":{"sentAtMs":5}}"#);
/// assert_eq!(decode::<AgentMessage>(&frame)?, AgentMessage::Heartbeat { sent_at_ms: 5 });
/// let old = r#"{"protocol":0,"type":"heartbeat","data":{"sentAtMs":5}}"#;
/// assert!(matches!(decode::<AgentMessage>(old), Err(ProtocolError::VersionMismatch { theirs: 0, .. })));
/// # Ok::<(), ProtocolError>(())
/// ```
///
/// # Errors
///
/// [`ProtocolError`].
pub fn decode<M: DeserializeOwned>(frame: &str) -> Result<M, ProtocolError> {
    #[derive(Deserialize)]
    struct Probe {
        protocol: Option<serde_json::Value>,
    }
    let probe: Probe = serde_json::from_str(frame)
        .map_err(|error| ProtocolError::MissingVersion(error.to_string()))?;
    let theirs = probe
        .protocol
        .as_ref()
        .and_then(serde_json::Value::as_u64)
        .and_then(|v| u32::try_from(v).ok())
        .ok_or_else(|| ProtocolError::MissingVersion("`protocol` is not a version".into()))?;
    if theirs != PROTOCOL_VERSION {
        return Err(ProtocolError::VersionMismatch {
            ours: PROTOCOL_VERSION,
            theirs,
        });
    }
    let envelope: Envelope<M> = serde_json::from_str(frame)?;
    Ok(envelope.message)
}

/// The lifecycle state of a game server on a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServerState {
    /// Not running.
    Offline,
    /// An install plan is running.
    Installing,
    /// The process runs but has not printed its ready line yet.
    Starting,
    /// The process runs and is ready.
    Running,
    /// A stop is in progress.
    Stopping,
    /// The process exited without being asked to.
    Crashed,
    /// The last install failed or timed out; the reason came with the
    /// state change. A server in this state is never taken as installed.
    InstallFailed,
}

impl ServerState {
    /// Whether a process is (supposed to be) alive in this state.
    pub fn is_alive(self) -> bool {
        matches!(self, Self::Starting | Self::Running | Self::Stopping)
    }
}

/// Which resource limits the Agent could apply to a server's process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum LimitsApplied {
    /// A cgroup v2 group (memory.max, cpu.max, pids.max).
    CgroupV2 {
        /// The group's directory.
        path: String,
    },
    /// cgroup v1 groups, one per controller (memory, cpu, pids).
    CgroupV1 {
        /// The groups' directories.
        paths: Vec<String>,
    },
    /// `setrlimit`s set before the program started (address space,
    /// processes); CPU is not limited.
    Rlimit,
    /// Nothing could be applied.
    None {
        /// Why not.
        reason: String,
    },
    /// A container, limited by its engine (memory and swap, CPU quota,
    /// processes, open files; every capability dropped but those named).
    Container {
        /// The container's id.
        id: String,
        /// The image it runs.
        image: String,
    },
}

/// One server as the Agent sees it, sent in [`AgentMessage::Hello`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServerReport {
    /// The server.
    pub server_id: String,
    /// Its actual state.
    pub state: ServerState,
    /// The process id while alive.
    pub pid: Option<u32>,
    /// Seconds since the process started, while alive.
    pub uptime_secs: Option<u64>,
    /// The last exit code, when the process exited and the code is known.
    pub exit_code: Option<i32>,
    /// The limits in force, while alive.
    pub limits: Option<LimitsApplied>,
}

/// Node health, sent periodically.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthReport {
    /// Seconds since the Agent started.
    pub agent_uptime_secs: u64,
    /// Servers with a live process.
    pub servers_running: u32,
    /// Servers known to the Agent.
    pub servers_total: u32,
    /// The one-minute load average.
    pub load_average: f64,
    /// Available memory in MiB.
    pub memory_available_mb: u64,
    /// Free disk in MiB in the Agent's data directory.
    pub disk_available_mb: u64,
}

/// What a console line meant, according to the game-type plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ConsoleEvent {
    /// The server finished starting.
    Ready,
    /// A player joined.
    PlayerJoined {
        /// The player.
        name: String,
    },
    /// A player left.
    PlayerLeft {
        /// The player.
        name: String,
    },
    /// The server warned about something.
    Warning {
        /// The warning.
        text: String,
    },
    /// The server reported a crash.
    Crash {
        /// The cause as far as the line tells.
        cause: String,
    },
}

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum CommandOutcome {
    /// It succeeded.
    Ok,
    /// It failed.
    Failed {
        /// A stable code, e.g. `checksum-mismatch`, `not-running`.
        code: String,
        /// A human-readable explanation.
        message: String,
    },
}

/// Messages from an Agent to the Panel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    content = "data",
    rename_all = "kebab-case",
    rename_all_fields = "camelCase"
)]
pub enum AgentMessage {
    /// First message on every connection: who we are and the actual state
    /// of every server.
    Hello {
        /// The node id from registration.
        node_id: String,
        /// The Agent's version.
        agent_version: String,
        /// Every server on the node.
        servers: Vec<ServerReport>,
        /// What the node can run now (`native-process` or `container`, its
        /// OS and architecture), so that an Agent restarted with another
        /// runtime is placed by what it is, not by what it registered as.
        /// Absent from Agents older than this field: the Panel keeps what
        /// the node registered with.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        capabilities: Option<Vec<String>>,
        /// The address the node's servers reach its host at: the gateway
        /// of the container network, `127.0.0.1` on native nodes. Absent
        /// when the Agent cannot say, and from older Agents.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        host_address: Option<String>,
        /// Where browsers reach the Agent's file transfers
        /// (`https://node.example.com:8443`, `--public-url`): the base of the
        /// signed URLs the Panel hands out. Absent when the Agent serves
        /// no file transfers, and from older Agents.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        files_url: Option<String>,
        /// The port the Agent serves SFTP on (`--sftp-listen`), which the
        /// Panel shows users beside the node's host. Absent when the Agent
        /// serves no SFTP, and from older Agents.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sftp_port: Option<u16>,
    },
    /// Sent every `heartbeatSeconds`.
    Heartbeat {
        /// The Agent's clock, ms since the Unix epoch.
        sent_at_ms: u64,
    },
    /// Node health.
    Health(HealthReport),
    /// Answers [`PanelMessage::Ping`].
    Pong {
        /// The ping's nonce.
        nonce: String,
    },
    /// A command was received (and will run once, however often it is
    /// delivered).
    Ack {
        /// The command.
        command_id: String,
    },
    /// A command finished.
    CommandResult {
        /// The command.
        command_id: String,
        /// How it ended.
        outcome: CommandOutcome,
    },
    /// A server changed state.
    StateChange {
        /// The server.
        server_id: String,
        /// The state before.
        previous: ServerState,
        /// The state now.
        state: ServerState,
        /// Why, when it is not obvious (exit code, crash cause, ...).
        reason: Option<String>,
    },
    /// A batch of console output.
    ConsoleLines {
        /// The server.
        server_id: String,
        /// The lines, oldest first.
        lines: Vec<String>,
        /// Lines dropped by throttling since the previous batch.
        dropped: u64,
    },
    /// A console line the game-type plugin classified.
    ConsoleEvent {
        /// The server.
        server_id: String,
        /// What it meant.
        event: ConsoleEvent,
    },
    /// The answer to a [`PanelMessage::FileRequest`].
    FileResponse(FileResponse),
    /// Files changed by an upload or over SFTP.
    FileChanged(FileChange),
    /// May this SFTP client sign in? Answered by
    /// [`PanelMessage::SftpAuthAnswer`].
    SftpAuth(crate::sftp::SftpAuthRequest),
    /// A [`PanelMessage::Backup`] finished, one way or the other.
    BackupDone(BackupReport),
    /// How far a transfer's `send` is.
    TransferProgress(crate::transfers::TransferProgress),
    /// A [`PanelMessage::Transfer`] finished, one way or the other.
    TransferDone(crate::transfers::TransferReport),
    /// Resource usage of a server.
    Stats {
        /// The server.
        server_id: String,
        /// CPU use since the previous sample, percent of one core.
        cpu_percent: f64,
        /// Resident memory of the process group's leader, bytes.
        memory_bytes: u64,
        /// Seconds since the process started.
        uptime_secs: u64,
        /// Players online, when the game reports it.
        players: Option<u32>,
        /// Bytes received since the container started (container runtime).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        network_rx_bytes: Option<u64>,
        /// Bytes sent since the container started (container runtime).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        network_tx_bytes: Option<u64>,
        /// Bytes the server's directory uses on disk, when measured.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        disk_bytes: Option<u64>,
    },
}

/// Messages from the Panel to an Agent.
// Commands are parsed, run and dropped one at a time: boxing the large
// variants would only cost an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    content = "data",
    rename_all = "kebab-case",
    rename_all_fields = "camelCase"
)]
pub enum PanelMessage {
    /// Do something to a server.
    Command(Command),
    /// Answer with [`AgentMessage::Pong`].
    Ping {
        /// Echoed back.
        nonce: String,
    },
    /// An operation on a server's files, answered by
    /// [`AgentMessage::FileResponse`]. Not persisted: a request lost with
    /// the link fails at the Panel when the link drops.
    FileRequest(FileRequest),
    /// The answer to an [`AgentMessage::SftpAuth`].
    SftpAuthAnswer(crate::sftp::SftpAuthResponse),
    /// A backup to create, restore or delete, answered by
    /// [`AgentMessage::BackupDone`] when it ends (minutes later, maybe).
    /// Not persisted: the Panel marks a backup failed when the link drops
    /// before the answer.
    Backup(BackupRequest),
    /// A step of a transfer between nodes, answered by
    /// [`AgentMessage::TransferDone`]. Not persisted: the Panel fails the
    /// transfer when the link drops before the answer.
    Transfer(crate::transfers::TransferRequest),
    /// The node's servers whose files are read-only now (suspended ones),
    /// the whole set each time: sent after every hello and whenever the
    /// set changes. The Agent refuses writes to them from every session
    /// and transfer already open, whatever scope it was opened with.
    /// Agents older than the message ignore it.
    ReadOnlyServers {
        /// The servers' ids.
        server_ids: Vec<String>,
    },
    /// The key that signs file grants ([`crate::files::FileGrant`]), sent
    /// after every hello.
    GrantKey {
        /// The Ed25519 public key, base64url without padding (a JWK `x`).
        public_key: String,
        /// The Panel's public origin (`https://panel.example.com`): the
        /// only origin whose browsers may call the Agent's file transfers
        /// (CORS). Absent: the Agent allows no cross-origin calls.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        panel_origin: Option<String>,
    },
}

/// A command for one server. `id` is unique per command: a command
/// delivered again (after a reconnect) is acknowledged again but runs once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Command {
    /// Unique command id.
    pub id: String,
    /// The server.
    pub server_id: String,
    /// What to do.
    #[serde(flatten)]
    pub action: Action,
}

/// What a [`Command`] does: `{"action":"start","payload":{…}}`.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", content = "payload", rename_all = "kebab-case")]
pub enum Action {
    /// Run an install plan in the server directory (the server must be
    /// offline).
    Install(InstallPlan),
    /// Start the server.
    Start(ServerSpec),
    /// Stop it with its stop plan.
    Stop,
    /// Stop it, then start it with this spec.
    Restart(ServerSpec),
    /// SIGKILL its process group.
    Kill,
    /// Kill it if needed and remove its directory and state.
    Delete,
    /// Write a line to its console.
    ConsoleInput(ConsoleInput),
}

impl Action {
    /// The action's wire name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Install(_) => "install",
            Self::Start(_) => "start",
            Self::Stop => "stop",
            Self::Restart(_) => "restart",
            Self::Kill => "kill",
            Self::Delete => "delete",
            Self::ConsoleInput(_) => "console-input",
        }
    }
}

/// The payload of [`Action::ConsoleInput`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConsoleInput {
    /// The line, without its newline.
    pub line: String,
}

/// Everything an Agent needs to run a server, computed by the Panel from
/// the game-type plugin's plans.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServerSpec {
    /// The game-type plugin id, used to classify console lines.
    pub game: String,
    /// How to start it.
    pub startup: StartupPlan,
    /// How to stop it.
    pub stop: StopPlan,
    /// Its resource limits.
    pub limits: ServerLimits,
    /// What to do when it crashes.
    #[serde(default)]
    pub restart: RestartPolicy,
    /// The game-type plugin's component, which the Agent fetches from the
    /// Panel (and checks against `componentSha256`) to classify console
    /// lines, unless it has it already.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<GamePackage>,
    /// The container image to run it in (the container runtime); `None`
    /// runs the startup plan's program natively. In a container an empty
    /// startup program keeps the image's own entrypoint, with the plan's
    /// arguments as its command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The addresses and ports allocated to it, its primary allocation
    /// first, then its extra ones: published from its container (TCP and
    /// UDP), and named in its environment by both runtimes (`SERVER_IP` and
    /// `SERVER_PORT` for the primary, `SERVER_PORTS` for all of them,
    /// `SERVER_IP_<n>` and `SERVER_PORT_<n>` for the n-th extra one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortAllocation>,
}

/// An address and port allocated to a server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortAllocation {
    /// The node address.
    pub ip: String,
    /// The port.
    pub port: u16,
}

/// A game-type plugin as the Agent fetches it from the Panel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GamePackage {
    /// The plugin id (the same as [`ServerSpec::game`]).
    pub id: String,
    /// Its version.
    pub version: String,
    /// Lowercase hex SHA-256 of its component; the Agent refuses any other
    /// bytes.
    pub component_sha256: String,
}

/// A server's resource limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServerLimits {
    /// Memory in MiB; 0 is unlimited.
    pub memory_mb: u64,
    /// CPU in percent of one core; 0 is unlimited.
    pub cpu_percent: u32,
    /// Most processes/threads; 0 leaves the Agent's default (the native
    /// runtime always sets a process limit).
    #[serde(default)]
    pub max_processes: u32,
    /// Disk in MiB for the server's directory; 0 is unlimited. A server
    /// over it is refused a start, and a running one is stopped after a
    /// console warning.
    #[serde(default)]
    pub disk_mb: u64,
}

/// Automatic restarts after a crash, with exponential backoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RestartPolicy {
    /// Restart after a crash at all.
    pub enabled: bool,
    /// Give up after this many restarts in a row without a run of
    /// `stableSecs`.
    pub max_attempts: u32,
    /// Backoff before the first restart, doubled for each further one.
    pub initial_backoff_ms: u64,
    /// The backoff never exceeds this.
    pub max_backoff_ms: u64,
    /// A run this long resets the attempt counter.
    pub stable_secs: u64,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            enabled: false,
            max_attempts: 5,
            initial_backoff_ms: 1_000,
            max_backoff_ms: 60_000,
            stable_secs: 60,
        }
    }
}

impl RestartPolicy {
    /// The backoff before restart number `attempt` (1-based).
    ///
    /// ```
    /// let policy = cap_protocol::RestartPolicy { enabled: true, max_attempts: 9,
    ///     initial_backoff_ms: 100, max_backoff_ms: 500, stable_secs: 60 };
    /// let waits: Vec<u64> = (1..=5).map(|n| policy.backoff(n).as_millis() as u64).collect();
    /// assert_eq!(waits, [100, 200, 400, 500, 500]);
    /// ```
    pub fn backoff(&self, attempt: u32) -> std::time::Duration {
        let shift = attempt.saturating_sub(1).min(32);
        let ms = self
            .initial_backoff_ms
            .saturating_mul(1u64 << shift)
            .min(self.max_backoff_ms);
        std::time::Duration::from_millis(ms)
    }
}
