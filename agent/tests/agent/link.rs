//! The Panel link: registration, and a WebSocket session against an
//! in-test Panel that cuts the connection mid-way.

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use cap_agent::link::{self, LinkConfig, LinkError};
use cap_agent::node::{self, NodeError, NodeOptions};
use cap_agent::{Agent, ServerRuntime};
use cap_protocol::{
    Action, AgentMessage, Command, CommandOutcome, ConsoleInput, PanelMessage, RegistrationRequest,
    RegistrationResponse, ResourceLimits, RestartPolicy, ServerState, SupportedGame, decode,
    encode,
};
use tokio::sync::{mpsc, watch};

use super::support::{context, plans, test_game};

fn request(token: &str) -> RegistrationRequest {
    RegistrationRequest {
        token: token.into(),
        agent_id: "agent-1".into(),
        version: "0.1.0".into(),
        capabilities: vec!["native".into(), "rlimit".into()],
        supported_games: vec![SupportedGame {
            plugin: "test-game".into(),
            version: "1.0.0".into(),
        }],
        resource_limits: ResourceLimits {
            memory_mb: 4096,
            disk_mb: 10240,
            cpu_percent: 400,
        },
        health_endpoint: "http://127.0.0.1:1/health".into(),
    }
}

async fn registration_panel() -> String {
    let app = axum::Router::new().route(
        link::REGISTER_PATH,
        axum::routing::post(|body: axum::body::Bytes| async move {
            let request: RegistrationRequest = match serde_json::from_slice(&body) {
                Ok(request) => request,
                Err(_) => return (StatusCode::BAD_REQUEST, "bad body").into_response(),
            };
            if request.token != "good-token" {
                return (
                    StatusCode::UNAUTHORIZED,
                    [("content-type", "application/problem+json")],
                    r#"{"type":"about:blank","title":"Unauthorized","status":401,"code":"invalid-registration-token","detail":"the registration token is unknown or used"}"#,
                )
                    .into_response();
            }
            axum::Json(RegistrationResponse {
                node_id: "node-7".into(),
                node_token: format!("secret-for-{}", request.agent_id),
                // What an attacker-controlled `Host` header used to make
                // the Panel answer: another host, in cleartext.
                panel_url: "http://evil.example".into(),
                heartbeat_seconds: 15,
            })
            .into_response()
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

#[tokio::test]
async fn registration_stores_the_node_credentials_readable_only_by_the_agent() {
    let panel = registration_panel().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("etc/node.json");
    let answer = link::register(&panel, &request("good-token"), &file)
        .await
        .unwrap();
    assert_eq!(answer.node_id, "node-7");
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let stored = link::load_credentials(&file).unwrap().unwrap();
    assert_eq!(stored, answer);
    assert_eq!(stored.node_token, "secret-for-agent-1");
    assert_eq!(config_url(&stored, dir.path()), ws_url(&panel));
    assert_eq!(
        LinkConfig::from_credentials(&stored, dir.path())
            .unwrap()
            .heartbeat,
        Duration::from_secs(15)
    );
}

fn config_url(credentials: &RegistrationResponse, dir: &std::path::Path) -> String {
    LinkConfig::from_credentials(credentials, dir).unwrap().url
}

fn ws_url(panel: &str) -> String {
    format!(
        "{}{}",
        panel.replacen("http://", "ws://", 1),
        link::CONNECT_PATH
    )
}

#[tokio::test]
async fn a_registration_answer_naming_another_panel_does_not_move_the_agent() {
    let panel = registration_panel().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("credentials.json");
    let answer = link::register(&format!("{panel}/"), &request("good-token"), &file)
        .await
        .unwrap();
    assert_eq!(answer.panel_url, panel, "the URL registered with is kept");
    let stored = link::load_credentials(&file).unwrap().unwrap();
    assert_eq!(stored.panel_url, panel);
    assert!(!std::fs::read_to_string(&file).unwrap().contains("evil"));
    assert_eq!(config_url(&stored, dir.path()), ws_url(&panel));
}

#[test]
fn a_cleartext_panel_url_is_accepted_only_on_loopback_or_with_insecure() {
    for fine in [
        "https://panel.example.com",
        "https://10.0.0.5:8443/",
        "http://127.0.0.1:8080",
        "http://127.8.9.10",
        "http://localhost:8080/",
        "http://LOCALHOST",
        "http://[::1]:8080",
    ] {
        let checked = link::check_panel_url(fine, false).unwrap_or_else(|e| panic!("{fine}: {e}"));
        assert!(!checked.ends_with('/'), "{checked}");
    }
    for cleartext in [
        "http://panel.example.com",
        "http://10.0.0.5:8080",
        "http://0.0.0.0:8080",
        "http://[::]:8080",
        "http://localhost.evil.example",
        "http://[::ffff:10.0.0.5]",
    ] {
        match link::check_panel_url(cleartext, false) {
            Err(LinkError::InsecurePanel(url)) => assert_eq!(url, cleartext),
            other => panic!("{cleartext}: {other:?}"),
        }
        assert!(
            link::check_panel_url(cleartext, true).is_ok(),
            "--insecure accepts {cleartext}"
        );
    }
    for malformed in [
        "ftp://panel.example.com",
        "panel.example.com",
        "ws://127.0.0.1",
    ] {
        assert!(
            matches!(
                link::check_panel_url(malformed, true),
                Err(LinkError::Url(_))
            ),
            "{malformed}"
        );
    }
}

fn node_options(dir: &std::path::Path, panel_url: Option<&str>, insecure: bool) -> NodeOptions {
    NodeOptions {
        panel_url: panel_url.map(str::to_owned),
        registration_token: Some("good-token".into()),
        data_dir: dir.to_path_buf(),
        health_listen: ([127, 0, 0, 1], 0).into(),
        classifiers: cap_agent::Classifiers::new(),
        supported_games: Vec::new(),
        runtime: None,
        resource_limits: None,
        insecure,
        backend: Default::default(),
        files_listen: None,
        files_public_url: None,
        files_tls: None,
        sftp_listen: None,
    }
}

#[tokio::test]
async fn the_agent_refuses_to_register_with_a_cleartext_panel_outside_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let error = node::start(node_options(
        dir.path(),
        Some("http://panel.example.com"),
        false,
    ))
    .await
    .unwrap_err();
    assert!(
        matches!(error, NodeError::Link(LinkError::InsecurePanel(_))),
        "{error}"
    );
    assert!(error.to_string().contains("--insecure"), "{error}");
    assert!(!dir.path().join("credentials.json").exists());
}

#[tokio::test]
async fn stored_credentials_with_a_cleartext_remote_panel_are_refused_without_insecure() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("credentials.json");
    let stored = RegistrationResponse {
        node_id: "node-7".into(),
        node_token: "secret".into(),
        panel_url: "http://evil.example".into(),
        heartbeat_seconds: 15,
    };
    link::save_credentials(&file, &stored).unwrap();
    let error = node::start(node_options(dir.path(), None, false))
        .await
        .unwrap_err();
    assert!(
        matches!(error, NodeError::Link(LinkError::InsecurePanel(_))),
        "{error}"
    );
    // Naming another cleartext Panel is refused too, and not saved.
    let error = node::start(node_options(
        dir.path(),
        Some("http://10.1.2.3:8080"),
        false,
    ))
    .await
    .unwrap_err();
    assert!(
        matches!(error, NodeError::Link(LinkError::InsecurePanel(_))),
        "{error}"
    );
    assert_eq!(
        link::load_credentials(&file).unwrap().unwrap().panel_url,
        "http://evil.example",
        "a refused URL is not saved"
    );
}

#[tokio::test]
async fn a_refused_registration_is_a_typed_error_and_writes_no_file() {
    let panel = registration_panel().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("node.json");
    let error = link::register(&panel, &request("stolen"), &file)
        .await
        .unwrap_err();
    match error {
        LinkError::Rejected { status, code, .. } => {
            assert_eq!(status, 401);
            assert_eq!(code.as_deref(), Some("invalid-registration-token"));
        }
        other => panic!("{other}"),
    }
    assert!(!file.exists());
    assert!(link::load_credentials(&file).unwrap().is_none());
}

#[test]
fn reconnect_delays_grow_exponentially_with_jitter_up_to_the_cap() {
    let credentials = RegistrationResponse {
        node_id: "n".into(),
        node_token: "t".into(),
        panel_url: "https://panel.example".into(),
        heartbeat_seconds: 1,
    };
    let mut config = LinkConfig::from_credentials(&credentials, "/tmp").unwrap();
    assert_eq!(config.url, "wss://panel.example/api/v1/agents/connect");
    config.backoff_initial = Duration::from_millis(100);
    config.backoff_max = Duration::from_secs(1);
    for attempt in 1..=8u32 {
        let full = Duration::from_millis(100 * (1 << (attempt - 1))).min(Duration::from_secs(1));
        let delay = config.backoff(attempt);
        assert!(delay >= full / 2 && delay <= full, "{attempt}: {delay:?}");
    }
    let delays: std::collections::HashSet<Duration> = (0..20).map(|_| config.backoff(8)).collect();
    assert!(delays.len() > 1, "delays are jittered");
}

/// An in-test Panel: every authenticated WebSocket is handed to the test.
async fn ws_panel(token: &'static str) -> (String, mpsc::UnboundedReceiver<WebSocket>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let tx = Arc::new(tx);
    let app = axum::Router::new().route(
        link::CONNECT_PATH,
        axum::routing::get(move |headers: HeaderMap, upgrade: WebSocketUpgrade| {
            let tx = tx.clone();
            async move {
                let authorized = headers.get("authorization").and_then(|v| v.to_str().ok())
                    == Some(&format!("Bearer {token}"));
                if !authorized {
                    return StatusCode::UNAUTHORIZED.into_response();
                }
                upgrade.on_upgrade(move |socket| async move {
                    let _ = tx.send(socket);
                })
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("ws://{addr}{}", link::CONNECT_PATH), rx)
}

/// The next connection the Agent opens to the test Panel; a test fails
/// instead of hanging when the Agent does not (re)connect.
async fn next_connection(connections: &mut mpsc::UnboundedReceiver<WebSocket>) -> WebSocket {
    tokio::time::timeout(Duration::from_secs(30), connections.recv())
        .await
        .expect("the Agent connects within 30 s")
        .expect("the test Panel is listening")
}

async fn receive(socket: &mut WebSocket) -> AgentMessage {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), socket.recv())
            .await
            .expect("a frame in time")
            .expect("the socket is open")
            .expect("a frame");
        if let Message::Text(text) = frame {
            return decode(text.as_str()).expect("a valid frame");
        }
    }
}

/// Reads frames until `pick` matches one; other frames are skipped. Fails
/// after a minute: heartbeats alone must not keep a test waiting forever.
async fn receive_until<T>(
    socket: &mut WebSocket,
    mut pick: impl FnMut(&AgentMessage) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let message = receive(socket).await;
        if let Some(found) = pick(&message) {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the awaited message did not come within a minute; last: {message:?}"
        );
    }
}

async fn send(socket: &mut WebSocket, message: &PanelMessage) {
    socket
        .send(Message::text(encode(message).unwrap()))
        .await
        .unwrap();
}

fn say(id: &str, text: &str) -> PanelMessage {
    PanelMessage::Command(Command {
        id: id.into(),
        server_id: "linked".into(),
        action: Action::ConsoleInput(ConsoleInput {
            line: format!("say {text}"),
        }),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_survive_a_cut_connection_and_run_exactly_once() {
    let (_plugins, plugin) = test_game().await;
    let data = tempfile::tempdir().unwrap();
    let (url, mut connections) = ws_panel("node-secret").await;

    // The runtime's events go to the link (not to a recorder here).
    let mut config = cap_agent::NodeRuntimeConfig::new(data.path());
    config.cgroups = None;
    let mut classifiers = cap_agent::Classifiers::new();
    classifiers.insert(
        "test-game".into(),
        Arc::new(cap_agent::PluginClassifier::new(plugin.clone())),
    );
    let (events_tx, events_rx) = mpsc::channel(1024);
    let runtime = Arc::new(
        cap_agent::NodeRuntime::open(config, classifiers, events_tx)
            .await
            .unwrap(),
    );
    let (agent, results) = Agent::new(runtime.clone(), data.path());
    let (_, spec) = plans(&plugin, &context("linked", 0), RestartPolicy::default()).await;
    let link_config = LinkConfig {
        url,
        node_id: "node-7".into(),
        node_token: "node-secret".into(),
        agent_version: "0.1.0".into(),
        heartbeat: Duration::from_millis(200),
        health_every: 2,
        backoff_initial: Duration::from_millis(50),
        backoff_max: Duration::from_millis(200),
        data_dir: data.path().to_path_buf(),
        capabilities: vec!["native-process".into(), "os-linux".into()],
        host_address: runtime.host_address().await,
        files_url: None,
        sftp_port: Some(2022),
    };
    let (stop_link, shutdown) = watch::channel(false);
    let link = tokio::spawn(link::run(link_config, agent, events_rx, results, shutdown));

    // Connection 1: hello, start the server, then a command and a cut.
    let mut socket = next_connection(&mut connections).await;
    let hello = receive(&mut socket).await;
    assert!(
        matches!(&hello, AgentMessage::Hello { node_id, servers, capabilities, host_address, sftp_port, .. }
            if node_id == "node-7" && servers.is_empty()
                && capabilities.as_deref() == Some(&["native-process".to_owned(), "os-linux".to_owned()][..])
                && host_address.as_deref() == Some("127.0.0.1")
                && *sftp_port == Some(2022)),
        "every hello says what the node can run and where its servers reach the host: {hello:?}"
    );
    send(
        &mut socket,
        &PanelMessage::Command(Command {
            id: "start-1".into(),
            server_id: "linked".into(),
            action: Action::Start(spec),
        }),
    )
    .await;
    let result = receive_until(&mut socket, |m| match m {
        AgentMessage::CommandResult {
            command_id,
            outcome,
        } if command_id == "start-1" => Some(outcome.clone()),
        _ => None,
    })
    .await;
    assert_eq!(result, CommandOutcome::Ok);
    receive_until(&mut socket, |m| {
        matches!(
            m,
            AgentMessage::StateChange {
                state: ServerState::Running,
                ..
            }
        )
        .then_some(())
    })
    .await;
    send(&mut socket, &say("say-1", "once-1")).await;
    drop(socket);

    // Connection 2: the hello reports the running server; the Panel,
    // unsure whether say-1 arrived, delivers it again, plus a new command.
    let mut socket = next_connection(&mut connections).await;
    let hello = receive(&mut socket).await;
    let AgentMessage::Hello { servers, .. } = hello else {
        panic!("expected hello, got {hello:?}");
    };
    assert_eq!(servers.len(), 1);
    assert_eq!(servers[0].state, ServerState::Running);
    send(&mut socket, &say("say-1", "once-1")).await;
    send(&mut socket, &say("say-2", "once-2")).await;
    let mut acks = Vec::new();
    let mut results = std::collections::HashMap::new();
    let mut heartbeats = 0;
    let mut health = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while results.len() < 2 || acks.len() < 2 || heartbeats < 2 || health < 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "within a minute: results {results:?}, acks {acks:?}, {heartbeats} heartbeats, {health} health reports"
        );
        match receive(&mut socket).await {
            AgentMessage::Ack { command_id } => acks.push(command_id),
            AgentMessage::CommandResult {
                command_id,
                outcome,
            } => {
                results.insert(command_id, outcome);
            }
            AgentMessage::Heartbeat { .. } => heartbeats += 1,
            AgentMessage::Health(report) => {
                assert_eq!(report.servers_running, 1);
                health += 1;
            }
            _ => {}
        }
    }
    assert_eq!(acks, ["say-1", "say-2"]);
    assert_eq!(results["say-1"], CommandOutcome::Ok);
    assert_eq!(results["say-2"], CommandOutcome::Ok);

    // A frame of another protocol version ends the session; the Agent
    // reconnects with a fresh hello.
    socket
        .send(Message::text(
            r#"{"protocol":99,"type":"ping","data":{"nonce":"x"}}"#,
        ))
        .await
        .unwrap();
    let mut socket = next_connection(&mut connections).await;
    assert!(matches!(
        receive(&mut socket).await,
        AgentMessage::Hello { .. }
    ));
    send(
        &mut socket,
        &PanelMessage::Ping {
            nonce: "n-1".into(),
        },
    )
    .await;
    let pong = receive_until(&mut socket, |m| match m {
        AgentMessage::Pong { nonce } => Some(nonce.clone()),
        _ => None,
    })
    .await;
    assert_eq!(pong, "n-1");

    let history = runtime.history("linked");
    let count = |line: &str| history.iter().filter(|l| *l == line).count();
    assert_eq!(count("SAY once-1"), 1, "{history:?}");
    assert_eq!(count("SAY once-2"), 1, "{history:?}");

    stop_link.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), link)
        .await
        .unwrap()
        .unwrap();
    runtime.kill("linked").await.unwrap();
}

#[tokio::test]
async fn the_websocket_refuses_a_wrong_node_token() {
    let (url, _connections) = ws_panel("right").await;
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
            url.as_str(),
        )
        .unwrap();
    request
        .headers_mut()
        .insert("authorization", "Bearer wrong".parse().unwrap());
    let error = tokio_tungstenite::connect_async(request).await.unwrap_err();
    assert!(error.to_string().contains("401"), "{error}");
}

#[tokio::test]
async fn a_finished_command_is_answered_from_the_log_after_an_agent_restart() {
    let data = tempfile::tempdir().unwrap();
    let command = Command {
        id: "cmd-42".into(),
        server_id: "nowhere".into(),
        action: Action::Stop,
    };
    let open = || async {
        let (events, _) = mpsc::channel(16);
        let runtime = cap_agent::NodeRuntime::open(
            cap_agent::NodeRuntimeConfig::new(data.path()),
            cap_agent::Classifiers::new(),
            events,
        )
        .await
        .unwrap();
        Agent::new(Arc::new(runtime), data.path())
    };
    let (agent, mut results) = open().await;
    assert_eq!(agent.accept(command.clone()), cap_agent::Delivery::New);
    let result = tokio::time::timeout(Duration::from_secs(5), results.recv())
        .await
        .unwrap()
        .unwrap();
    let expected = CommandOutcome::Failed {
        code: "unknown-server".into(),
        message: "unknown server `nowhere`".into(),
    };
    assert_eq!(
        result,
        AgentMessage::CommandResult {
            command_id: "cmd-42".into(),
            outcome: expected.clone()
        }
    );
    assert_eq!(
        agent.accept(command.clone()),
        cap_agent::Delivery::Done(expected.clone())
    );
    drop(agent);

    let (restarted, mut results) = open().await;
    assert_eq!(
        restarted.accept(command),
        cap_agent::Delivery::Done(expected)
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(300), results.recv())
            .await
            .is_err(),
        "the command did not run again"
    );
}
