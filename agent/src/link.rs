//! The Agent's link to the Panel: registration over HTTP and the
//! long-lived WebSocket.
//!
//! - [`register`] trades a registration token for node credentials and
//!   stores them in a file only the Agent's user can read (mode 0600).
//!   The Panel URL stored is the one the Agent registered with, never the
//!   one in the answer: whoever answers cannot redirect the link, nor turn
//!   `https` into `http`.
//! - [`check_panel_url`] decides which Panel URLs the link may use: `https`
//!   anywhere, `http` only to a loopback address (the node token and the
//!   install scripts would otherwise cross the network in cleartext) unless
//!   the admin passes `--insecure`.
//! - [`run`] keeps a WebSocket open: every connection starts with a
//!   [`AgentMessage::Hello`] listing every server's actual state; then
//!   heartbeats (and a health report every few) flow, commands are acked on
//!   receipt and run once per id ([`crate::agent`]), results and events are
//!   sent as they come. A broken connection is retried with exponential
//!   backoff and jitter. While disconnected, console output and stats are
//!   dropped (the hello on reconnect carries the state that matters) and
//!   command results are queued and sent after the next hello.

use std::path::Path;
use std::time::{Duration, Instant};

use cap_protocol::{
    AgentMessage, HealthReport, PanelMessage, ProtocolError, RegistrationRequest,
    RegistrationResponse, decode, encode,
};
use futures::{SinkExt, StreamExt};
use rand::RngExt;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::{self, Message, client::IntoClientRequest};

use crate::agent::{Agent, Delivery};
use crate::install::write_atomically;
use crate::runtime::ServerRuntime;

/// The registration endpoint below the Panel URL.
pub const REGISTER_PATH: &str = "/api/v1/agents/register";
/// The WebSocket endpoint below the Panel URL.
pub const CONNECT_PATH: &str = "/api/v1/agents/connect";

/// The link failed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The Panel could not be reached.
    #[error("reaching the Panel: {0}")]
    Transport(String),
    /// The Panel refused the registration.
    #[error("the Panel refused the registration ({status}): {detail}")]
    Rejected {
        /// HTTP status.
        status: u16,
        /// The problem's `code`, when the body is problem+json.
        code: Option<String>,
        /// The problem's `detail` (or the body).
        detail: String,
    },
    /// The Panel's answer is not a registration response.
    #[error("the Panel's answer is malformed: {0}")]
    Malformed(String),
    /// The credentials file could not be read or written.
    #[error("credentials file {path}: {source}")]
    Credentials {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// A URL could not be built.
    #[error("invalid Panel URL `{0}`")]
    Url(String),
    /// A cleartext Panel URL to a host that is not loopback.
    #[error(
        "refusing the cleartext Panel URL `{0}`: the node token and install scripts would cross the network unencrypted; use https://, or pass --insecure to accept the risk"
    )]
    InsecurePanel(String),
}

/// Whether the link may use `panel_url`: `https://` always; `http://` when
/// its host is loopback (`localhost`, `127.0.0.0/8`, `::1`) or `insecure`
/// is set. Returns the URL without a trailing slash.
///
/// # Errors
///
/// [`LinkError::Url`] for anything but an http(s) URL with a host;
/// [`LinkError::InsecurePanel`] for cleartext to another host.
pub fn check_panel_url(panel_url: &str, insecure: bool) -> Result<String, LinkError> {
    let url = url::Url::parse(panel_url).map_err(|_| LinkError::Url(panel_url.to_owned()))?;
    let loopback = match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => return Err(LinkError::Url(panel_url.to_owned())),
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback || insecure => {}
        "http" => return Err(LinkError::InsecurePanel(panel_url.to_owned())),
        _ => return Err(LinkError::Url(panel_url.to_owned())),
    }
    Ok(panel_url.trim_end_matches('/').to_owned())
}

/// Registers with the Panel at `panel_url` and writes the answer to
/// `credentials` (mode 0600, atomically), with `panel_url` as the Panel's
/// URL whatever the answer names. Check the URL with [`check_panel_url`]
/// first.
///
/// # Errors
///
/// [`LinkError`]; no file is written then.
pub async fn register(
    panel_url: &str,
    request: &RegistrationRequest,
    credentials: &Path,
) -> Result<RegistrationResponse, LinkError> {
    let url = format!("{}{REGISTER_PATH}", panel_url.trim_end_matches('/'));
    let body = serde_json::to_vec(request).map_err(|e| LinkError::Malformed(e.to_string()))?;
    let response = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| LinkError::Transport(e.to_string()))?
        .post(&url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| LinkError::Transport(e.to_string()))?;
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .map_err(|e| LinkError::Transport(e.to_string()))?;
    if !status.is_success() {
        let problem: Option<serde_json::Value> = serde_json::from_slice(&bytes).ok();
        let field = |name: &str| {
            problem
                .as_ref()
                .and_then(|p| p.get(name))
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        };
        return Err(LinkError::Rejected {
            status: status.as_u16(),
            code: field("code"),
            detail: field("detail")
                .unwrap_or_else(|| String::from_utf8_lossy(&bytes).chars().take(500).collect()),
        });
    }
    let mut answer: RegistrationResponse =
        serde_json::from_slice(&bytes).map_err(|e| LinkError::Malformed(e.to_string()))?;
    let ours = panel_url.trim_end_matches('/');
    if answer.panel_url.trim_end_matches('/') != ours {
        tracing::info!(answered = %answer.panel_url, kept = %ours, "the Panel names itself differently; keeping the URL registered with");
    }
    ours.clone_into(&mut answer.panel_url);
    save_credentials(credentials, &answer)?;
    Ok(answer)
}

/// Writes credentials with mode 0600.
///
/// # Errors
///
/// [`LinkError::Credentials`].
pub fn save_credentials(path: &Path, credentials: &RegistrationResponse) -> Result<(), LinkError> {
    let error = |source| LinkError::Credentials {
        path: path.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(error)?;
    }
    let bytes = serde_json::to_vec_pretty(credentials).map_err(|e| error(e.into()))?;
    write_atomically(path, &bytes, Some(0o600)).map_err(error)
}

/// Reads stored credentials; `None` when the file does not exist.
///
/// # Errors
///
/// [`LinkError::Credentials`] for unreadable or malformed files.
pub fn load_credentials(path: &Path) -> Result<Option<RegistrationResponse>, LinkError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| LinkError::Credentials {
                path: path.display().to_string(),
                source: e.into(),
            }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(LinkError::Credentials {
            path: path.display().to_string(),
            source,
        }),
    }
}

/// WebSocket link settings.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// The WebSocket URL (`ws://` or `wss://`).
    pub url: String,
    /// The node id.
    pub node_id: String,
    /// The node token, sent as a bearer token.
    pub node_token: String,
    /// The Agent's version, for hello.
    pub agent_version: String,
    /// Heartbeat period.
    pub heartbeat: Duration,
    /// A health report every this many heartbeats.
    pub health_every: u32,
    /// First reconnect delay.
    pub backoff_initial: Duration,
    /// Longest reconnect delay.
    pub backoff_max: Duration,
    /// Where free disk is measured for health reports.
    pub data_dir: std::path::PathBuf,
    /// What the node can run, sent in every hello (empty: not sent).
    pub capabilities: Vec<String>,
    /// The address the node's servers reach its host at, sent in every
    /// hello when known.
    pub host_address: Option<String>,
    /// Where browsers reach this Agent's file transfers, sent in every
    /// hello when it serves them.
    pub files_url: Option<String>,
    /// The port SFTP is served on, sent in every hello when it is.
    pub sftp_port: Option<u16>,
}

impl LinkConfig {
    /// Settings from stored credentials: the WebSocket URL is the Panel URL
    /// with `http` turned into `ws` plus [`CONNECT_PATH`].
    ///
    /// # Errors
    ///
    /// [`LinkError::Url`] when the Panel URL is not http(s).
    pub fn from_credentials(
        credentials: &RegistrationResponse,
        data_dir: impl Into<std::path::PathBuf>,
    ) -> Result<Self, LinkError> {
        let base = credentials.panel_url.trim_end_matches('/');
        let url = if let Some(rest) = base.strip_prefix("https://") {
            format!("wss://{rest}{CONNECT_PATH}")
        } else if let Some(rest) = base.strip_prefix("http://") {
            format!("ws://{rest}{CONNECT_PATH}")
        } else {
            return Err(LinkError::Url(credentials.panel_url.clone()));
        };
        Ok(Self {
            url,
            node_id: credentials.node_id.clone(),
            node_token: credentials.node_token.clone(),
            agent_version: env!("CARGO_PKG_VERSION").to_owned(),
            heartbeat: Duration::from_secs(u64::from(credentials.heartbeat_seconds.max(1))),
            health_every: 4,
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(60),
            data_dir: data_dir.into(),
            capabilities: Vec::new(),
            host_address: None,
            files_url: None,
            sftp_port: None,
        })
    }

    /// The delay before reconnect attempt `attempt` (1-based): exponential,
    /// capped, with jitter (between half and all of it).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .backoff_initial
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
            .min(self.backoff_max);
        let factor = rand::rng().random_range(0.5..=1.0);
        exp.mul_f64(factor)
    }
}

/// What the link's connection loop hands back when a connection ends.
enum Ended {
    Shutdown,
    Lost(String),
}

/// Runs the link until `shutdown` turns `true`. `events` are the runtime's
/// messages, `results` the agent's command results.
pub async fn run<R: ServerRuntime>(
    config: LinkConfig,
    agent: Agent<R>,
    mut events: mpsc::Receiver<AgentMessage>,
    mut results: mpsc::UnboundedReceiver<AgentMessage>,
    mut shutdown: watch::Receiver<bool>,
) {
    let started = Instant::now();
    let mut unsent: Vec<AgentMessage> = Vec::new();
    let mut attempt = 0u32;
    loop {
        if *shutdown.borrow() {
            return;
        }
        match connect(&config).await {
            Ok(socket) => {
                tracing::info!(url = %config.url, "connected to the Panel");
                attempt = 0;
                agent.set_linked(true);
                let ended = session(
                    &config,
                    &agent,
                    socket,
                    &mut events,
                    &mut results,
                    &mut unsent,
                    &mut shutdown,
                    started,
                )
                .await;
                agent.set_linked(false);
                match ended {
                    Ended::Shutdown => return,
                    Ended::Lost(why) => tracing::warn!(%why, "lost the Panel connection"),
                }
            }
            Err(error) => tracing::warn!(%error, "could not connect to the Panel"),
        }
        attempt = attempt.saturating_add(1);
        let delay = tokio::time::sleep(config.backoff(attempt));
        tokio::pin!(delay);
        // Keep draining while waiting: events are dropped, results kept.
        loop {
            tokio::select! {
                () = &mut delay => break,
                _ = shutdown.changed() => return,
                Some(_) = events.recv() => {}
                Some(result) = results.recv() => unsent.push(result),
            }
        }
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(config: &LinkConfig) -> Result<Socket, tungstenite::Error> {
    let mut request = config.url.as_str().into_client_request()?;
    let bearer = format!("Bearer {}", config.node_token)
        .parse()
        .map_err(|_| tungstenite::Error::Url(tungstenite::error::UrlError::EmptyHostName))?;
    request.headers_mut().insert("authorization", bearer);
    let (socket, _) = tokio::time::timeout(
        Duration::from_secs(30),
        tokio_tungstenite::connect_async(request),
    )
    .await
    .map_err(|_| tungstenite::Error::Io(std::io::ErrorKind::TimedOut.into()))??;
    Ok(socket)
}

async fn send(socket: &mut Socket, message: &AgentMessage) -> Result<(), String> {
    let frame = encode(message).map_err(|e| e.to_string())?;
    socket
        .send(Message::text(frame))
        .await
        .map_err(|e| e.to_string())
}

fn health<R: ServerRuntime>(
    agent: &Agent<R>,
    config: &LinkConfig,
    started: Instant,
) -> HealthReport {
    let reports = agent.runtime().reports();
    let disk_available_mb = rustix::fs::statvfs(&config.data_dir)
        .map(|s| s.f_bavail.saturating_mul(s.f_frsize) >> 20)
        .unwrap_or(0);
    HealthReport {
        agent_uptime_secs: started.elapsed().as_secs(),
        servers_running: u32::try_from(reports.iter().filter(|r| r.state.is_alive()).count())
            .unwrap_or(u32::MAX),
        servers_total: u32::try_from(reports.len()).unwrap_or(u32::MAX),
        load_average: crate::procfs::load_average(),
        memory_available_mb: crate::procfs::memory_available_mb(),
        disk_available_mb,
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[allow(clippy::too_many_arguments)]
async fn session<R: ServerRuntime>(
    config: &LinkConfig,
    agent: &Agent<R>,
    mut socket: Socket,
    events: &mut mpsc::Receiver<AgentMessage>,
    results: &mut mpsc::UnboundedReceiver<AgentMessage>,
    unsent: &mut Vec<AgentMessage>,
    shutdown: &mut watch::Receiver<bool>,
    started: Instant,
) -> Ended {
    let hello = AgentMessage::Hello {
        node_id: config.node_id.clone(),
        agent_version: config.agent_version.clone(),
        servers: agent.runtime().reports(),
        capabilities: (!config.capabilities.is_empty()).then(|| config.capabilities.clone()),
        host_address: config.host_address.clone(),
        files_url: config.files_url.clone(),
        sftp_port: config.sftp_port,
    };
    if let Err(why) = send(&mut socket, &hello).await {
        return Ended::Lost(why);
    }
    while !unsent.is_empty() {
        let message = unsent.remove(0);
        if let Err(why) = send(&mut socket, &message).await {
            unsent.insert(0, message);
            return Ended::Lost(why);
        }
    }
    let mut heartbeat = tokio::time::interval(config.heartbeat);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    heartbeat.tick().await;
    let mut beats = 0u32;
    loop {
        tokio::select! {
            _ = shutdown.changed() => {
                let _ = socket.close(None).await;
                return Ended::Shutdown;
            }
            frame = socket.next() => {
                let text = match frame {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Close(_))) | None => return Ended::Lost("closed by the Panel".into()),
                    Some(Ok(_)) => continue,
                    Some(Err(error)) => return Ended::Lost(error.to_string()),
                };
                let replies = match decode::<PanelMessage>(text.as_str()) {
                    Ok(PanelMessage::Ping { nonce }) => vec![AgentMessage::Pong { nonce }],
                    Ok(PanelMessage::GrantKey { public_key, panel_origin }) => {
                        agent.set_grant_key(&public_key, panel_origin.as_deref());
                        Vec::new()
                    }
                    Ok(PanelMessage::FileRequest(request)) => {
                        agent.file_request(request);
                        Vec::new()
                    }
                    Ok(PanelMessage::ReadOnlyServers { server_ids }) => {
                        agent.set_read_only(server_ids);
                        Vec::new()
                    }
                    Ok(PanelMessage::SftpAuthAnswer(response)) => {
                        agent.sftp_answer(response);
                        Vec::new()
                    }
                    Ok(PanelMessage::Backup(request)) => {
                        agent.backup_request(request);
                        Vec::new()
                    }
                    Ok(PanelMessage::Transfer(request)) => {
                        agent.transfer_request(request);
                        Vec::new()
                    }
                    Ok(PanelMessage::Command(command)) => {
                        let id = command.id.clone();
                        let ack = AgentMessage::Ack { command_id: id.clone() };
                        match agent.accept(command) {
                            Delivery::New | Delivery::InProgress => vec![ack],
                            Delivery::Done(outcome) => vec![
                                ack,
                                AgentMessage::CommandResult { command_id: id, outcome },
                            ],
                        }
                    }
                    Err(error @ ProtocolError::VersionMismatch { .. }) => {
                        let _ = socket.close(None).await;
                        return Ended::Lost(error.to_string());
                    }
                    Err(error) => {
                        tracing::warn!(%error, "ignoring a malformed frame from the Panel");
                        Vec::new()
                    }
                };
                for reply in replies {
                    if let Err(why) = send(&mut socket, &reply).await {
                        return Ended::Lost(why);
                    }
                }
            }
            Some(result) = results.recv() => {
                if let Err(why) = send(&mut socket, &result).await {
                    unsent.push(result);
                    return Ended::Lost(why);
                }
            }
            Some(event) = events.recv() => {
                if let Err(why) = send(&mut socket, &event).await {
                    return Ended::Lost(why);
                }
            }
            _ = heartbeat.tick() => {
                beats = beats.wrapping_add(1);
                let beat = AgentMessage::Heartbeat { sent_at_ms: now_ms() };
                if let Err(why) = send(&mut socket, &beat).await {
                    return Ended::Lost(why);
                }
                if config.health_every > 0 && beats.is_multiple_of(config.health_every) {
                    let report = AgentMessage::Health(health(agent, config, started));
                    if let Err(why) = send(&mut socket, &report).await {
                        return Ended::Lost(why);
                    }
                }
            }
        }
    }
}
