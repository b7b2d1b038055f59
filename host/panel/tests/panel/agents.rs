//! The Agent link end to end: a real Agent (`cap_agent::node`) registers
//! with a real Panel over HTTP, keeps its WebSocket, runs the real
//! `cap-standin-game` for the real `test-game` plugin, and a browser-like
//! client watches the console over the Panel's console WebSocket.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cap_agent::node::RunningNode;
use cap_panel::db::Actor;
use cap_panel::http::Principal;
use cap_panel::identity::permissions::Permission;
use cap_panel::identity::users::{NewUser, create_user};
use cap_panel::{Panel, RunningPanel};
use futures::{SinkExt, StreamExt};
use reqwest::Method;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::nodes::{call, json_of};
use crate::plugins::{PLUGIN_ADMIN, install_and_activate};
use crate::support::{TestDb, Tokens, free_port, start_agent};

/// A subuser with `control.console` only.
const VIEWER: &str = "viewer-token";

pub(crate) async fn start_panel(db: &TestDb) -> (RunningPanel, String) {
    let handle = db.connect().await;
    let viewer = NewUser {
        username: "viewer".into(),
        ..NewUser::default()
    };
    let viewer = create_user(&handle, &viewer, None, &Actor::system())
        .await
        .expect("a user");
    handle.close().await;
    let panel = serve_panel(db, &viewer.id, ([127, 0, 0, 1], 0).into()).await;
    (panel, viewer.id)
}

/// A Panel on `db` listening on `listen`, with the test tokens.
async fn serve_panel(db: &TestDb, viewer_id: &str, listen: std::net::SocketAddr) -> RunningPanel {
    let all: Vec<&str> = Permission::for_subusers()
        .map(Permission::as_str)
        .chain([
            "server.delete",
            "server.create",
            "admin.plugins",
            "admin.nodes",
            "admin.servers",
            "audit.read",
        ])
        .collect();
    let tokens = Tokens::from_principals([
        (
            PLUGIN_ADMIN,
            Principal::new("user-admin").with_permissions(all),
        ),
        (
            VIEWER,
            Principal::new(viewer_id).with_permissions(["control.console"]),
        ),
    ]);
    let mut config = db.config();
    config.listen = listen;
    Panel::builder(config)
        .authenticator(tokens)
        .bind()
        .await
        .expect("the Panel starts")
        .spawn()
}

pub(crate) async fn api(
    panel: &RunningPanel,
    method: Method,
    path: &str,
    body: Option<Value>,
    status: u16,
) -> Value {
    json_of(
        call(panel, method, path, Some(PLUGIN_ADMIN), body).await,
        status,
    )
    .await
}

/// Polls `check` every 50 ms until it returns `Some`, for at most 30 s.
pub(crate) async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    eventually_within(what, Duration::from_secs(30), check).await
}

/// [`eventually`], for at most `limit`.
pub(crate) async fn eventually_within<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) struct Site {
    pub(crate) panel: RunningPanel,
    pub(crate) viewer_id: String,
    pub(crate) node_id: String,
    pub(crate) server_id: String,
    pub(crate) agent_dir: tempfile::TempDir,
}

pub(crate) async fn node_online(panel: &RunningPanel, node_id: &str, online: bool) {
    eventually(&format!("node online = {online}"), || async {
        let node = api(
            panel,
            Method::GET,
            &format!("/api/v1/nodes/{node_id}"),
            None,
            200,
        )
        .await;
        (node["online"] == json!(online)).then_some(())
    })
    .await;
}

pub(crate) async fn server_state(panel: &RunningPanel, server_id: &str, state: &str) {
    eventually(&format!("server state {state}"), || async {
        let server = api(
            panel,
            Method::GET,
            &format!("/api/v1/servers/{server_id}"),
            None,
            200,
        )
        .await;
        (server["state"] == json!(state)).then_some(())
    })
    .await;
}

pub(crate) async fn command_state(
    panel: &RunningPanel,
    server_id: &str,
    command_id: &str,
) -> Value {
    // A command ends when the Agent reports it; an install in a container
    // (an image to start, a real game's script) may take minutes on a busy
    // machine, so the wait is long, and only a broken command reaches it.
    let limit = Duration::from_secs(300);
    eventually_within(
        &format!("command {command_id} to finish"),
        limit,
        || async {
            let page = api(
                panel,
                Method::GET,
                &format!("/api/v1/servers/{server_id}/commands?limit=100"),
                None,
                200,
            )
            .await;
            page["items"]
                .as_array()
                .and_then(|items| items.iter().find(|c| c["id"] == json!(command_id)).cloned())
                .filter(|c| c["state"] == json!("done") || c["state"] == json!("failed"))
        },
    )
    .await
}

/// Asks for `server_id`'s install and waits for it to finish: the
/// finished command (its `state` is `done` or `failed`).
pub(crate) async fn install(panel: &RunningPanel, server_id: &str) -> Value {
    let install = api(
        panel,
        Method::POST,
        &format!("/api/v1/servers/{server_id}/install"),
        None,
        202,
    )
    .await;
    command_state(panel, server_id, install["commandId"].as_str().expect("id")).await
}

/// Creates node `name` (on loopback, room for a few servers) with one
/// allocation, `127.0.0.1:port`, and issues a registration token for its
/// Agent: the node's id and the token.
pub(crate) async fn node_with_token(
    panel: &RunningPanel,
    name: &str,
    port: u16,
) -> (String, String) {
    let node = api(
        panel,
        Method::POST,
        "/api/v1/nodes",
        Some(json!({"name": name, "address": "127.0.0.1", "memory_mb": 8192, "disk_mb": 20000, "cpu_percent": 400})),
        201,
    )
    .await;
    let node_id = node["id"].as_str().expect("id").to_owned();
    api(
        panel,
        Method::POST,
        &format!("/api/v1/nodes/{node_id}/allocations"),
        Some(json!({"ip": "127.0.0.1", "ports": [port]})),
        201,
    )
    .await;
    let token = api(
        panel,
        Method::POST,
        &format!("/api/v1/nodes/{node_id}/registration-tokens"),
        Some(json!({})),
        201,
    )
    .await;
    let token = token["token"].as_str().expect("token").to_owned();
    (node_id, token)
}

/// A Panel with test-game, a node with one allocation on loopback, a
/// registered and connected Agent, and a test-game server on it.
pub(crate) async fn site(db: &TestDb) -> (Site, RunningNode) {
    let (panel, viewer_id) = start_panel(db).await;
    install_and_activate(&panel, "test-game").await;
    let (node_id, token) = node_with_token(&panel, "n1", free_port()).await;
    let agent_dir = tempfile::tempdir().expect("a temporary directory");
    let agent = start_agent(&panel, agent_dir.path(), Some(token)).await;
    assert_eq!(agent.node_id, node_id);
    node_online(&panel, &node_id, true).await;
    let server = api(
        &panel,
        Method::POST,
        "/api/v1/servers",
        Some(json!({
            "name": "e2e",
            "node_id": node_id,
            "game": {"plugin": "test-game"},
            "variables": {"READY_DELAY_MS": "100"},
            "limits": {"memory_mb": 2048, "disk_mb": 1000, "cpu_percent": 100}
        })),
        201,
    )
    .await;
    let server_id = server["id"].as_str().expect("id").to_owned();
    (
        Site {
            panel,
            viewer_id,
            node_id,
            server_id,
            agent_dir,
        },
        agent,
    )
}

/// A console WebSocket client recording every frame it receives.
pub(crate) struct Console {
    frames: Arc<Mutex<Vec<Value>>>,
    out: futures::channel::mpsc::UnboundedSender<Message>,
    closed: Arc<std::sync::atomic::AtomicBool>,
}

impl Console {
    pub(crate) async fn open(panel: &RunningPanel, server_id: &str, bearer: &str) -> Console {
        let ticket = json_of(
            call(
                panel,
                Method::GET,
                &format!("/api/v1/servers/{server_id}/websocket"),
                Some(bearer),
                None,
            )
            .await,
            200,
        )
        .await;
        let url = format!(
            "ws://{}{}",
            panel.local_addr(),
            ticket["socket"].as_str().expect("socket")
        );
        let (socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("the console socket opens");
        let (mut sink, mut stream) = socket.split();
        let frames = Arc::new(Mutex::new(Vec::new()));
        let recorded = frames.clone();
        let closed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let ended = closed.clone();
        tokio::spawn(async move {
            while let Some(Ok(message)) = stream.next().await {
                if let Message::Text(text) = message
                    && let Ok(value) = serde_json::from_str::<Value>(text.as_str())
                {
                    recorded.lock().expect("frames").push(value);
                }
            }
            ended.store(true, std::sync::atomic::Ordering::Release);
        });
        let (out, mut outgoing) = futures::channel::mpsc::unbounded::<Message>();
        tokio::spawn(async move {
            while let Some(message) = outgoing.next().await {
                if sink.send(message).await.is_err() {
                    break;
                }
            }
        });
        let console = Console {
            frames,
            out,
            closed,
        };
        console.send("auth", json!([ticket["token"]]));
        console
    }

    pub(crate) fn send(&self, event: &str, args: Value) {
        let frame = json!({"event": event, "args": args}).to_string();
        self.out
            .unbounded_send(Message::text(frame))
            .expect("the console socket is open");
    }

    /// Whether the Panel closed the socket.
    fn closed(&self) -> bool {
        self.closed.load(std::sync::atomic::Ordering::Acquire)
    }

    pub(crate) fn frames(&self) -> Vec<Value> {
        self.frames.lock().expect("frames").clone()
    }

    pub(crate) fn lines(&self) -> Vec<String> {
        self.frames()
            .iter()
            .filter(|f| f["event"] == "console output")
            .filter_map(|f| f["args"][0].as_str().map(str::to_owned))
            .collect()
    }

    pub(crate) async fn wait_for(&self, what: &str, predicate: impl Fn(&Value) -> bool) -> Value {
        self.wait_for_after(0, what, predicate).await
    }

    /// Waits for a frame matching `predicate` among those after the first
    /// `start`.
    pub(crate) async fn wait_for_after(
        &self,
        start: usize,
        what: &str,
        predicate: impl Fn(&Value) -> bool,
    ) -> Value {
        eventually(what, || async {
            self.frames().into_iter().skip(start).find(|f| predicate(f))
        })
        .await
    }
}

/// The process id of `server_id` on `agent`, while it runs.
fn server_pid(agent: &RunningNode, server_id: &str) -> Option<u32> {
    use cap_agent::ServerRuntime as _;
    agent
        .runtime
        .reports()
        .into_iter()
        .find(|r| r.server_id == server_id)
        .and_then(|r| r.pid)
}

pub(crate) fn event_is(frame: &Value, event: &str, arg: Value) -> bool {
    frame["event"] == event && frame["args"][0] == arg
}

#[tokio::test]
async fn a_server_goes_from_install_to_ready_to_stopped_through_a_real_agent_and_the_browser_sees_it()
 {
    let db = TestDb::sqlite().await;
    let (site, agent) = site(&db).await;
    let panel = &site.panel;
    let server = &site.server_id;

    let finished = install(panel, server).await;
    assert_eq!(finished["state"], "done", "{finished:#}");

    let console = Console::open(panel, server, PLUGIN_ADMIN).await;
    console
        .wait_for("auth success", |f| f["event"] == "auth success")
        .await;
    console
        .wait_for("the offline status", |f| {
            event_is(f, "status", json!("offline"))
        })
        .await;

    api(
        panel,
        Method::POST,
        &format!("/api/v1/servers/{server}/power"),
        Some(json!({"action": "start"})),
        202,
    )
    .await;
    console
        .wait_for("the running status", |f| {
            event_is(f, "status", json!("running"))
        })
        .await;
    console
        .wait_for("the ready event", |f| {
            f["event"] == "console event" && f["args"][0]["kind"] == "ready"
        })
        .await;
    // The line and the event travel in separate frames: under load the
    // event may be read first.
    eventually("the READY line", || async {
        console.lines().iter().any(|l| l == "READY").then_some(())
    })
    .await;
    server_state(panel, server, "running").await;
    console
        .wait_for("stats", |f| {
            f["event"] == "stats" && f["args"][0]["memoryBytes"].as_u64() > Some(0)
        })
        .await;

    console.send("send command", json!(["say hello from the browser"]));
    console
        .wait_for("the command's acceptance", |f| {
            f["event"] == "command accepted"
        })
        .await;
    console
        .wait_for("the echo", |f| {
            event_is(f, "console output", json!("SAY hello from the browser"))
        })
        .await;

    console.send("send command", json!(["join alice"]));
    console
        .wait_for("the join event", |f| {
            f["event"] == "console event"
                && f["args"][0] == json!({"kind": "player-joined", "name": "alice"})
        })
        .await;

    let before_stop = console.frames().len();
    console.send("set state", json!(["stop"]));
    console
        .wait_for_after(before_stop, "the offline status again", |f| {
            event_is(f, "status", json!("offline"))
        })
        .await;
    server_state(panel, server, "offline").await;
    assert!(
        console.lines().iter().any(|l| l == "STOPPING"),
        "{:?}",
        console.lines()
    );

    // Every transition is in the audit log, attributed to the system.
    let events = api(
        panel,
        Method::GET,
        &format!("/api/v1/audit-log?subject_type=server&subject_id={server}&limit=200"),
        None,
        200,
    )
    .await;
    let changes: Vec<(String, String)> = events["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|e| e["kind"] == "server.state.changed")
        .map(|e| {
            (
                e["data"]["from"].as_str().unwrap_or_default().to_owned(),
                e["data"]["to"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert!(
        changes.contains(&("starting".into(), "running".into())),
        "{changes:?}"
    );
    assert!(changes.iter().any(|(_, to)| to == "offline"), "{changes:?}");

    agent.stop().await;
    node_online(panel, &site.node_id, false).await;
    drop(site);
}

#[tokio::test]
async fn commands_queued_while_the_agent_is_away_run_once_when_it_returns_and_running_servers_are_readopted()
 {
    let db = TestDb::sqlite().await;
    let (site, agent) = site(&db).await;
    let panel = &site.panel;
    let server = &site.server_id;
    let start = api(
        panel,
        Method::POST,
        &format!("/api/v1/servers/{server}/power"),
        Some(json!({"action": "start"})),
        202,
    )
    .await;
    command_state(panel, server, start["commandId"].as_str().expect("id")).await;
    server_state(panel, server, "running").await;

    agent.stop().await;
    node_online(panel, &site.node_id, false).await;
    let queued = api(
        panel,
        Method::POST,
        &format!("/api/v1/servers/{server}/command"),
        Some(json!({"command": "say while you were away"})),
        202,
    )
    .await;
    let command_id = queued["commandId"].as_str().expect("id").to_owned();

    // The Agent comes back with its stored credentials (no token).
    let agent = start_agent(panel, site.agent_dir.path(), None).await;
    node_online(panel, &site.node_id, true).await;
    let finished = command_state(panel, server, &command_id).await;
    assert_eq!(finished["state"], "done", "{finished:#}");
    // Still running: the game server outlived the Agent and was re-adopted.
    server_state(panel, server, "running").await;

    let console = Console::open(panel, server, PLUGIN_ADMIN).await;
    console
        .wait_for("the echo", |f| {
            event_is(f, "console output", json!("SAY while you were away"))
        })
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let echoes = console
        .lines()
        .iter()
        .filter(|l| *l == "SAY while you were away")
        .count();
    assert_eq!(
        echoes,
        1,
        "the command ran exactly once: {:?}",
        console.lines()
    );

    api(
        panel,
        Method::POST,
        &format!("/api/v1/servers/{server}/power"),
        Some(json!({"action": "kill"})),
        202,
    )
    .await;
    server_state(panel, server, "offline").await;
    agent.stop().await;
}

#[tokio::test]
async fn game_servers_run_on_while_the_panel_restarts_and_the_agent_reconnects_by_itself() {
    let db = TestDb::sqlite().await;
    let (site, agent) = site(&db).await;
    let Site {
        panel,
        viewer_id,
        node_id,
        server_id: server,
        agent_dir: _agent_dir,
    } = site;
    let start = api(
        &panel,
        Method::POST,
        &format!("/api/v1/servers/{server}/power"),
        Some(json!({"action": "start"})),
        202,
    )
    .await;
    command_state(&panel, &server, start["commandId"].as_str().expect("id")).await;
    server_state(&panel, &server, "running").await;
    let console = Console::open(&panel, &server, PLUGIN_ADMIN).await;
    console
        .wait_for("the ready line", |f| {
            event_is(f, "status", json!("running"))
        })
        .await;

    // The Panel goes away; its WebSockets close with it.
    let addr = panel.local_addr();
    panel.stop().await.expect("the Panel stops");
    eventually("the console to be closed by the stopping Panel", || async {
        console.closed().then_some(())
    })
    .await;
    let pid = server_pid(&agent, &server)
        .expect("the game server still runs on the node without a Panel");

    // A new Panel on the same database and address: the Agent finds it
    // on its own, reports the server as running, and commands flow again.
    let panel = serve_panel(&db, &viewer_id, addr).await;
    node_online(&panel, &node_id, true).await;
    server_state(&panel, &server, "running").await;
    assert_eq!(
        server_pid(&agent, &server),
        Some(pid),
        "the same process, never restarted"
    );
    let console = Console::open(&panel, &server, PLUGIN_ADMIN).await;
    api(
        &panel,
        Method::POST,
        &format!("/api/v1/servers/{server}/command"),
        Some(json!({"command": "say after the restart"})),
        202,
    )
    .await;
    console
        .wait_for("the echo through the new Panel", |f| {
            event_is(f, "console output", json!("SAY after the restart"))
        })
        .await;

    api(
        &panel,
        Method::POST,
        &format!("/api/v1/servers/{server}/power"),
        Some(json!({"action": "kill"})),
        202,
    )
    .await;
    server_state(&panel, &server, "offline").await;
    agent.stop().await;
}

#[tokio::test]
async fn the_console_refuses_bad_tokens_and_power_actions_beyond_the_token() {
    let db = TestDb::sqlite().await;
    let (site, agent) = site(&db).await;
    let panel = &site.panel;
    let server = &site.server_id;

    // A subuser with control.console only may talk but not start.
    api(
        panel,
        Method::POST,
        &format!("/api/v1/servers/{server}/subusers"),
        Some(json!({"user_id": site.viewer_id, "permissions": ["control.console"]})),
        201,
    )
    .await;
    let console = Console::open(panel, server, VIEWER).await;
    console
        .wait_for("auth success", |f| f["event"] == "auth success")
        .await;
    console.send("set state", json!(["start"]));
    let refused = console
        .wait_for("the refusal", |f| f["event"] == "error")
        .await;
    assert_eq!(refused["args"][0]["code"], "forbidden", "{refused:#}");

    // A forged token gets a jwt error and the socket closes.
    let url = format!(
        "ws://{}/api/v1/servers/{server}/console",
        panel.local_addr()
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.expect("opens");
    socket
        .send(Message::text(
            json!({"event": "auth", "args": ["eyJhbGciOiJub25lIn0.e30."]}).to_string(),
        ))
        .await
        .expect("sends");
    let reply = socket.next().await.expect("a frame").expect("readable");
    let reply: Value = serde_json::from_str(reply.to_text().expect("text")).expect("JSON");
    assert_eq!(reply["event"], "jwt error", "{reply:#}");

    // A ticket needs control.console on that server.
    let other = call(
        panel,
        Method::GET,
        "/api/v1/servers/srv_missing/websocket",
        Some(VIEWER),
        None,
    )
    .await;
    assert_eq!(other.status(), 404);
    agent.stop().await;
}

#[tokio::test]
async fn an_agent_refuses_a_game_plugin_whose_bytes_differ_from_what_the_command_named() {
    let db = TestDb::sqlite().await;
    let (site, agent) = site(&db).await;
    let panel = &site.panel;
    let server = &site.server_id;
    // Someone swaps the component on the Panel's disk after it was loaded:
    // the Panel still names the digest it verified at install.
    let sha = panel
        .state()
        .plugins()
        .expect("plugin management")
        .get("test-game")
        .await
        .expect("test-game is installed")
        .component_sha256;
    let path = db
        .config()
        .data_dir
        .join("plugins")
        .join(format!("{sha}.wasm"));
    let mut bytes = std::fs::read(&path).expect("the stored component");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&path, bytes).expect("tampering");

    let start = api(
        panel,
        Method::POST,
        &format!("/api/v1/servers/{server}/power"),
        Some(json!({"action": "start"})),
        202,
    )
    .await;
    let finished = command_state(panel, server, start["commandId"].as_str().expect("id")).await;
    assert_eq!(finished["state"], "failed", "{finished:#}");
    let detail = finished["detail"].as_str().unwrap_or_default();
    assert!(detail.starts_with("plugin-checksum-mismatch"), "{detail}");
    // Nothing was cached or started.
    server_state(panel, server, "offline").await;
    assert!(
        std::fs::read_dir(site.agent_dir.path().join("plugins"))
            .map(|d| d
                .filter_map(Result::ok)
                .all(|e| !e.file_name().to_string_lossy().ends_with(".wasm")))
            .unwrap_or(true)
    );
    agent.stop().await;
}

#[tokio::test]
async fn the_agent_endpoints_refuse_callers_without_a_node_token() {
    let db = TestDb::sqlite().await;
    let (panel, _) = start_panel(&db).await;
    for path in [
        "/api/v1/agents/connect",
        "/api/v1/agents/plugins/test-game",
        "/api/v1/agents/plugins/test-game/component",
    ] {
        let none = crate::support::client()
            .get(panel.url(path))
            .send()
            .await
            .expect("request");
        crate::support::expect_problem(none, 401, "unauthenticated").await;
        // A user's credential is not a node token.
        let user = call(&panel, Method::GET, path, Some(PLUGIN_ADMIN), None).await;
        crate::support::expect_problem(user, 401, "unauthenticated").await;
        let forged = crate::support::client()
            .get(panel.url(path))
            .bearer_auth("capnode_0000")
            .send()
            .await
            .expect("request");
        crate::support::expect_problem(forged, 401, "unauthenticated").await;
    }
}

/// A Panel with real sessions (the `local-password` plugin), `test-game`,
/// one node and one server of the admin's, and Sam, a subuser of it with
/// `control.console` and `control.start` (and a role that lets him hold
/// them), logged in twice.
struct Revocable {
    p: crate::identity::IdentityPanel,
    admin: String,
    server_id: String,
    sam_id: String,
    /// Sam's two sessions: (access token, refresh token).
    sessions: [(String, String); 2],
}

async fn revocable(db: &TestDb) -> Revocable {
    use crate::identity::{ADMIN_PASSWORD, IdentityPanel, token};
    let p = IdentityPanel::start(db).await;
    let admin = token(&p.login_ok("admin", ADMIN_PASSWORD).await, "access_token");
    let panel = &p.panel;
    let response = crate::support::client()
        .post(panel.url("/api/v1/plugins"))
        .bearer_auth(&admin)
        .header("content-type", "application/octet-stream")
        .body(crate::plugins::package("test-game"))
        .send()
        .await
        .expect("request");
    let uploaded = json_of(response, 201).await;
    let requested = uploaded["plugin"]["requested"].clone();
    json_of(
        call(
            panel,
            Method::POST,
            "/api/v1/plugins/test-game/grant",
            Some(&admin),
            Some(requested),
        )
        .await,
        200,
    )
    .await;
    json_of(
        call(
            panel,
            Method::POST,
            "/api/v1/plugins/test-game/activate",
            Some(&admin),
            None,
        )
        .await,
        200,
    )
    .await;
    let node = json_of(
        call(panel, Method::POST, "/api/v1/nodes", Some(&admin),
            Some(json!({"name": "n1", "address": "10.0.0.1", "memory_mb": 4096, "disk_mb": 10000, "cpu_percent": 400}))).await,
        201,
    )
    .await;
    let node_id = node["id"].as_str().expect("id").to_owned();
    json_of(
        call(
            panel,
            Method::POST,
            &format!("/api/v1/nodes/{node_id}/allocations"),
            Some(&admin),
            Some(json!({"ip": "10.0.0.1", "ports": ["25565"]})),
        )
        .await,
        201,
    )
    .await;
    let server = json_of(
        call(
            panel,
            Method::POST,
            "/api/v1/servers",
            Some(&admin),
            Some(
                json!({"name": "s", "node_id": node_id, "game": {"plugin": "test-game"},
                        "limits": {"memory_mb": 512, "disk_mb": 1024, "cpu_percent": 100}}),
            ),
        )
        .await,
        201,
    )
    .await;
    let server_id = server["id"].as_str().expect("id").to_owned();
    let role = crate::users::create_role(
        &p,
        &admin,
        "players",
        json!(["control.console", "control.start"]),
    )
    .await;
    let sam_id = crate::users::create_linked_user(
        &p,
        &admin,
        "sam",
        "Sams-Password-2024",
        json!({ "roles": [role] }),
    )
    .await;
    json_of(
        call(
            panel,
            Method::POST,
            &format!("/api/v1/servers/{server_id}/subusers"),
            Some(&admin),
            Some(json!({"user_id": sam_id, "permissions": ["control.console", "control.start"]})),
        )
        .await,
        201,
    )
    .await;
    let mut sessions = Vec::new();
    for _ in 0..2 {
        let tokens = p.login_ok("sam", "Sams-Password-2024").await;
        sessions.push((
            token(&tokens, "access_token"),
            token(&tokens, "refresh_token"),
        ));
    }
    let sessions: [(String, String); 2] = sessions.try_into().expect("two sessions");
    Revocable {
        p,
        admin,
        server_id,
        sam_id,
        sessions,
    }
}

impl Revocable {
    async fn console(&self, session: usize) -> Console {
        let console =
            Console::open(&self.p.panel, &self.server_id, &self.sessions[session].0).await;
        console
            .wait_for("auth success", |f| f["event"] == "auth success")
            .await;
        console
    }

    /// The console commands queued for the server so far.
    async fn console_commands(&self) -> usize {
        let list = json_of(
            call(
                &self.p.panel,
                Method::GET,
                &format!("/api/v1/servers/{}/commands", self.server_id),
                Some(&self.admin),
                None,
            )
            .await,
            200,
        )
        .await;
        list["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter(|c| c["action"] == "console")
            .count()
    }
}

/// Sends a console line and waits for the Panel's answer: the event of the
/// first `command accepted` or `error` frame after those seen so far, or
/// `None` if the socket closed first.
async fn answer_to_command(console: &Console, line: &str) -> Option<Value> {
    let start = console.frames().len();
    if console.closed() {
        return None;
    }
    console.send("send command", json!([line]));
    eventually(
        "an answer to the command, or the socket closing",
        || async {
            let answer = console
                .frames()
                .into_iter()
                .skip(start)
                .find(|f| f["event"] == "command accepted" || f["event"] == "error");
            match answer {
                Some(answer) => Some(Some(answer)),
                None if console.closed() => Some(None),
                None => None,
            }
        },
    )
    .await
}

crate::support::on_every_database! {
    async fn a_console_ticket_opens_one_socket_only(db: &TestDb) {
        let site = revocable(db).await;
        let panel = &site.p.panel;
        let ticket = json_of(
            call(panel, Method::GET, &format!("/api/v1/servers/{}/websocket", site.server_id),
                Some(&site.sessions[0].0), None).await,
            200,
        )
        .await;
        let url = format!("ws://{}{}", panel.local_addr(), ticket["socket"].as_str().expect("socket"));
        let auth = json!({"event": "auth", "args": [ticket["token"]]}).to_string();
        let (mut first, _) = tokio_tungstenite::connect_async(&url).await.expect("opens");
        first.send(Message::text(auth.clone())).await.expect("sends");
        let reply = first.next().await.expect("a frame").expect("readable");
        let reply: Value = serde_json::from_str(reply.to_text().expect("text")).expect("JSON");
        assert_eq!(reply["event"], "auth success", "{reply:#}");
        // The same ticket again, on a second socket and on the first.
        let (mut second, _) = tokio_tungstenite::connect_async(&url).await.expect("opens");
        second.send(Message::text(auth.clone())).await.expect("sends");
        let reply = second.next().await.expect("a frame").expect("readable");
        let reply: Value = serde_json::from_str(reply.to_text().expect("text")).expect("JSON");
        assert_eq!(reply["event"], "jwt error", "{reply:#}");
        assert!(reply["args"][0].as_str().is_some_and(|m| m.contains("used before")), "{reply:#}");
        first.send(Message::text(auth)).await.expect("sends");
        let refused = loop {
            let frame = first.next().await.expect("a frame").expect("readable");
            let Ok(text) = frame.to_text() else { continue };
            let Ok(frame) = serde_json::from_str::<Value>(text) else { continue };
            if frame["event"] == "jwt error" {
                break frame;
            }
        };
        assert!(refused["args"][0].as_str().is_some_and(|m| m.contains("used before")), "{refused:#}");
    }
}

crate::support::on_every_database! {
    async fn a_console_socket_stops_taking_commands_and_closes_when_the_subuser_grant_is_reduced_or_removed(db: &TestDb) {
        let site = revocable(db).await;
        let panel = &site.p.panel;
        let subuser = format!("/api/v1/servers/{}/subusers/{}", site.server_id, site.sam_id);

        let console = site.console(0).await;
        let accepted = answer_to_command(&console, "say one").await.expect("an answer");
        assert_eq!(accepted["event"], "command accepted", "{accepted:#}");
        assert_eq!(site.console_commands().await, 1);

        // The grant loses the console: the very next line is refused, and
        // the socket closes on its own.
        json_of(call(panel, Method::PATCH, &subuser, Some(&site.admin),
            Some(json!({"permissions": ["control.start"]}))).await, 200).await;
        let answer = answer_to_command(&console, "say two").await;
        assert!(answer.as_ref().is_none_or(|a| a["event"] == "error"), "{answer:#?}");
        let revoked = console.wait_for("access revoked", |f| f["event"] == "access revoked").await;
        assert!(revoked["args"][0].as_str().is_some_and(|m| m.contains("control.console")), "{revoked:#}");
        eventually("the socket closing", || async { console.closed().then_some(()) }).await;
        assert_eq!(site.console_commands().await, 1, "nothing was queued after the change");
        // And no new ticket without the console.
        let response = call(panel, Method::GET, &format!("/api/v1/servers/{}/websocket", site.server_id),
            Some(&site.sessions[0].0), None).await;
        assert_eq!(response.status(), 403);

        // The console back, then the subuser removed altogether.
        json_of(call(panel, Method::PATCH, &subuser, Some(&site.admin),
            Some(json!({"permissions": ["control.console", "control.start"]}))).await, 200).await;
        let console = site.console(0).await;
        assert_eq!(call(panel, Method::DELETE, &subuser, Some(&site.admin), None).await.status(), 204);
        let answer = answer_to_command(&console, "say three").await;
        assert!(answer.as_ref().is_none_or(|a| a["event"] == "error"), "{answer:#?}");
        console.wait_for("access revoked", |f| f["event"] == "access revoked").await;
        eventually("the socket closing", || async { console.closed().then_some(()) }).await;
        assert_eq!(site.console_commands().await, 1);
    }
}

crate::support::on_every_database! {
    async fn a_console_socket_closes_when_its_session_logs_out_or_its_user_is_disabled(db: &TestDb) {
        let site = revocable(db).await;
        let panel = &site.p.panel;
        let first = site.console(0).await;
        let second = site.console(1).await;

        // Logging out ends the socket of that session only.
        let response = crate::support::client()
            .post(panel.url("/api/v1/auth/logout"))
            .json(&json!({ "refresh_token": site.sessions[0].1 }))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 204);
        let answer = answer_to_command(&first, "say from a logged-out session").await;
        assert!(answer.as_ref().is_none_or(|a| a["event"] == "error"), "{answer:#?}");
        let revoked = first.wait_for("access revoked", |f| f["event"] == "access revoked").await;
        assert!(revoked["args"][0].as_str().is_some_and(|m| m.contains("session ended")), "{revoked:#}");
        eventually("the socket closing", || async { first.closed().then_some(()) }).await;
        let accepted = answer_to_command(&second, "say still here").await.expect("an answer");
        assert_eq!(accepted["event"], "command accepted", "{accepted:#}");
        assert_eq!(site.console_commands().await, 1);

        // Disabling the user ends the other one.
        json_of(call(panel, Method::PATCH, &format!("/api/v1/users/{}", site.sam_id), Some(&site.admin),
            Some(json!({"disabled": true}))).await, 200).await;
        let answer = answer_to_command(&second, "say from a disabled user").await;
        assert!(answer.as_ref().is_none_or(|a| a["event"] == "error"), "{answer:#?}");
        second.wait_for("access revoked", |f| f["event"] == "access revoked").await;
        eventually("the socket closing", || async { second.closed().then_some(()) }).await;
        assert_eq!(site.console_commands().await, 1, "nothing was queued after either");
    }
}

crate::support::on_every_database! {
    async fn a_console_socket_closes_when_its_session_reaches_its_absolute_lifetime(db: &TestDb) {
        let site = revocable(db).await;
        // Sam's first session started 30 days (the default lifetime) less
        // four seconds ago; nothing in the database changes after this.
        let ends_in = std::time::Duration::from_secs(4);
        let lifetime = cap_panel::identity::DEFAULT_SESSION_LIFETIME;
        let started = time::OffsetDateTime::now_utc() - lifetime + ends_in;
        let micros = started.unix_timestamp_nanos() / 1_000;
        db.execute_raw(&format!("UPDATE sessions SET created_at = {micros}"))
            .await
            .expect("backdates the sessions");
        let console = site.console(0).await;
        let accepted = answer_to_command(&console, "say before the end").await.expect("an answer");
        assert_eq!(accepted["event"], "command accepted", "{accepted:#}");
        let revoked = console.wait_for("access revoked", |f| f["event"] == "access revoked").await;
        assert!(revoked["args"][0].as_str().is_some_and(|m| m.contains("session ended")), "{revoked:#}");
        eventually("the socket closing", || async { console.closed().then_some(()) }).await;
        assert_eq!(site.console_commands().await, 1, "nothing was queued after the end");
    }
}
