//! A real game from its community egg, end to end, with no stand-ins: the
//! Pelican community egg for Minetest is imported through the `egg-bridge`
//! plugin, a server is created from it on a container node (a real Agent
//! on a real Podman), installed in the egg's install container, started,
//! seen ready by the egg's `done` pattern, commanded, reached over
//! Minetest's own UDP protocol, stopped with the egg's stop command, and
//! re-adopted by a restarted Agent. The images carry the names the egg
//! lists and are built from Debian's packages (`cap_e2e::game_images`).

use std::time::Duration;

use cap_e2e::game_images;
use cap_e2e::podman::PodmanService;
use reqwest::Method;
use serde_json::{Value, json};

use crate::agents::{
    Console, api, eventually_within, install, node_online, server_state, start_panel,
};
use crate::plugins::{PLUGIN_ADMIN, install_and_activate};
use crate::support::{TestDb, client, start_container_agent};

/// The community egg, byte for byte as Pelican publishes it (MIT; kept
/// with the egg crate's fixtures).
const MINETEST_EGG: &str = "../../egg/tests/fixtures/pelican/egg-pterodactyl-minetest.json";

/// The egg file's bytes.
fn minetest_egg() -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(MINETEST_EGG);
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("reading the Minetest egg at {}: {e}", path.display()))
}

/// A console line the game printed after `start` frames, containing
/// `needle`.
async fn console_line(console: &Console, start: usize, needle: &str, limit: Duration) -> String {
    eventually_within(
        &format!("a console line with {needle:?}"),
        limit,
        || async {
            console
                .frames()
                .into_iter()
                .skip(start)
                .filter(|f| f["event"] == "console output")
                .filter_map(|f| f["args"][0].as_str().map(str::to_owned))
                .find(|l| l.contains(needle))
        },
    )
    .await
}

/// Waits up to a minute for `server` to be offline, showing its console
/// if it is not.
async fn offline(panel: &cap_panel::RunningPanel, server: &str, console: &Console) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let body = api(
            panel,
            Method::GET,
            &format!("/api/v1/servers/{server}"),
            None,
            200,
        )
        .await;
        if body["state"] == "offline" {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still {} a minute after the stop; console: {:#?}",
            body["state"],
            console.lines()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Asks `server` to `start` or `stop`.
async fn power(panel: &cap_panel::RunningPanel, server: &str, action: &str) {
    api(
        panel,
        Method::POST,
        &format!("/api/v1/servers/{server}/power"),
        Some(json!({ "action": action })),
        202,
    )
    .await;
}

/// Minetest answers `/status` typed on its console (with its version).
async fn status_is_answered(console: &Console) {
    let before = console.frames().len();
    console.send("send command", json!(["/status"]));
    console_line(console, before, "version", Duration::from_secs(30)).await;
}

/// Minetest answers its handshake on `port`.
async fn answers_on(port: u16, limit: Duration) {
    eventually_within("Minetest's answer over UDP", limit, || async move {
        tokio::task::spawn_blocking(move || game_images::minetest_handshake(port))
            .await
            .ok()
            .flatten()
            .filter(|answer| game_images::is_minetest_answer(answer))
    })
    .await;
}

/// A container node with one address (`port` on loopback) and its real
/// Agent on `podman`, online: the node's id, the Agent and its directory.
async fn container_node(
    panel: &cap_panel::RunningPanel,
    podman: &PodmanService,
    port: u16,
) -> (String, cap_agent::node::RunningNode, tempfile::TempDir) {
    let (node_id, token) = crate::agents::node_with_token(panel, "n1", port).await;
    let agent_dir = tempfile::tempdir().expect("a directory");
    let agent = start_container_agent(panel, agent_dir.path(), Some(token), &podman.host()).await;
    node_online(panel, &node_id, true).await;
    (node_id, agent, agent_dir)
}

/// Creates a server from `body` as a plugin admin: its id.
async fn create_server(panel: &cap_panel::RunningPanel, body: Value) -> String {
    let server = api(panel, Method::POST, "/api/v1/servers", Some(body), 201).await;
    server["id"].as_str().expect("id").to_owned()
}

/// Imports `egg` through `POST /api/v1/eggs` as a plugin admin: the
/// imported game type.
async fn import(panel: &cap_panel::RunningPanel, egg: Vec<u8>) -> Value {
    let response = client()
        .post(panel.url("/api/v1/eggs"))
        .bearer_auth(PLUGIN_ADMIN)
        .header("content-type", "application/json")
        .body(egg)
        .send()
        .await
        .expect("the import is answered");
    assert_eq!(response.status(), 201, "importing the egg");
    response.json().await.expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_community_minetest_egg_runs_a_real_minetest_end_to_end_and_survives_an_agent_restart()
{
    game_images::minetest();
    game_images::debian_installer();
    let podman = PodmanService::start();
    let db = TestDb::sqlite().await;
    let (panel, _viewer) = start_panel(&db).await;
    let panel = &panel;
    install_and_activate(panel, "egg-bridge").await;

    // The egg, imported as the file it is.
    let imported = import(panel, minetest_egg()).await;
    let game_type = imported["type"]
        .as_str()
        .expect("a game type id")
        .to_owned();
    assert_eq!(imported["plugin"], "egg-bridge");
    assert_eq!(
        imported["images"][0]["reference"],
        "ghcr.io/parkervcp/games:minetest"
    );

    // A container node with one address, and its Agent.
    let port = game_images::free_tcp_and_udp_port();
    let (node_id, agent, agent_dir) = container_node(panel, &podman, port).await;

    // A server from the egg, through the same path as every game type.
    let server_id = create_server(
        panel,
        json!({
            "name": "minetest",
            "node_id": node_id,
            "game": {"plugin": "egg-bridge", "type": game_type},
            "variables": {"SERVER_ADMIN_NAME": "admin", "DEFAULT_GAME": "minetest_game"},
            "limits": {"memory_mb": 1024, "disk_mb": 4000, "cpu_percent": 100}
        }),
    )
    .await;
    let server = &server_id;

    // The egg's install script runs in its install container.
    let finished = install(panel, server).await;
    assert_eq!(finished["state"], "done", "{finished:#}");
    assert!(
        agent_dir
            .path()
            .join(format!("servers/{server}/.minetest/minetest.conf"))
            .exists(),
        "the install script made the config file"
    );

    // Started, the egg's done pattern marks it ready.
    let console = Console::open(panel, server, PLUGIN_ADMIN).await;
    console
        .wait_for("auth success", |f| f["event"] == "auth success")
        .await;
    power(panel, server, "start").await;
    eventually_within("the egg's done rule", Duration::from_secs(120), || async {
        console
            .frames()
            .into_iter()
            .find(|f| f["event"] == "console event" && f["args"][0]["kind"] == "ready")
    })
    .await;
    server_state(panel, server, "running").await;
    // The config edits on start wrote the server's values.
    let config = std::fs::read_to_string(
        agent_dir
            .path()
            .join(format!("servers/{server}/.minetest/minetest.conf")),
    )
    .expect("the config file");
    assert!(config.contains("name = admin"), "{config}");
    assert!(config.contains("server_name = Minetest server"), "{config}");

    // The game answers its own protocol on the allocated port.
    answers_on(port, Duration::from_secs(30)).await;

    // A console command, answered by the game.
    status_is_answered(&console).await;

    // The egg's stop command ends it cleanly, unkilled.
    power(panel, server, "stop").await;
    offline(panel, server, &console).await;
    let events = api(
        panel,
        Method::GET,
        &format!("/api/v1/audit-log?subject_type=server&subject_id={server}&limit=200"),
        None,
        200,
    )
    .await;
    let stops: Vec<&Value> = events["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|e| {
            e["kind"] == "server.state.changed"
                && e["data"]["to"] == "offline"
                && e["data"]["from"] != "installing"
        })
        .collect();
    assert!(!stops.is_empty(), "it went offline: {events:#}");
    assert!(
        stops.iter().all(|e| !e["data"]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("kill")),
        "Minetest saved and exited on the egg's /shutdown: {stops:#?}"
    );

    // A changed variable is rendered into the config on the next start.
    api(
        panel,
        Method::PATCH,
        &format!("/api/v1/servers/{server}"),
        Some(json!({"variables": {"SERVER_NAME": "Renamed by the Panel"}})),
        200,
    )
    .await;
    let before = console.frames().len();
    power(panel, server, "start").await;
    eventually_within("ready again", Duration::from_secs(120), || async {
        console
            .frames()
            .into_iter()
            .skip(before)
            .find(|f| f["event"] == "console event" && f["args"][0]["kind"] == "ready")
    })
    .await;
    let config = std::fs::read_to_string(
        agent_dir
            .path()
            .join(format!("servers/{server}/.minetest/minetest.conf")),
    )
    .expect("the config file");
    assert!(
        config.contains("server_name = Renamed by the Panel"),
        "{config}"
    );
    answers_on(port, Duration::from_secs(30)).await;

    // The Agent restarts; the running game is re-adopted, untouched, and
    // its console still takes commands.
    agent.stop().await;
    node_online(panel, &node_id, false).await;
    let agent = start_container_agent(panel, agent_dir.path(), None, &podman.host()).await;
    node_online(panel, &node_id, true).await;
    server_state(panel, server, "running").await;
    answers_on(port, Duration::from_secs(10)).await;
    let console = Console::open(panel, server, PLUGIN_ADMIN).await;
    console
        .wait_for("auth success", |f| f["event"] == "auth success")
        .await;
    status_is_answered(&console).await;

    // Stopped again after the re-adoption.
    power(panel, server, "stop").await;
    offline(panel, server, &console).await;

    // The game type cannot be removed while the server exists.
    let response = client()
        .delete(panel.url(&format!("/api/v1/eggs/egg-bridge/{game_type}")))
        .bearer_auth(PLUGIN_ADMIN)
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 409);

    // An egg whose install needs what it cannot reach fails its install
    // with a clear error, promptly.
    let mut egg: Value = serde_json::from_slice(&minetest_egg()).expect("JSON");
    egg["name"] = json!("Offline installer");
    egg["scripts"]["installation"]["script"] = json!(
        "#!/bin/bash\nset -e\necho 'fetching the server files'\ncurl -fsS -o /mnt/server/server.zip http://127.0.0.1:9/server.zip\n"
    );
    let response = client()
        .post(panel.url("/api/v1/eggs"))
        .bearer_auth(PLUGIN_ADMIN)
        .body(egg.to_string())
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 201);
    let offline_type = response.json::<Value>().await.expect("JSON")["type"]
        .as_str()
        .expect("a type")
        .to_owned();
    api(
        panel,
        Method::POST,
        &format!("/api/v1/nodes/{node_id}/allocations"),
        Some(json!({"ip": "127.0.0.1", "ports": [game_images::free_tcp_and_udp_port()]})),
        201,
    )
    .await;
    let offline = api(
        panel,
        Method::POST,
        "/api/v1/servers",
        Some(json!({
            "name": "offline",
            "node_id": node_id,
            "game": {"plugin": "egg-bridge", "type": offline_type},
            "variables": {"SERVER_ADMIN_NAME": "admin"},
            "limits": {"memory_mb": 256, "disk_mb": 500, "cpu_percent": 50}
        })),
        201,
    )
    .await;
    let offline = offline["id"].as_str().expect("id").to_owned();
    let failed = install(panel, &offline).await;
    assert_eq!(failed["state"], "failed", "{failed:#}");
    let detail = failed["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("install script") && detail.contains("exited"),
        "{failed:#}"
    );

    agent.stop().await;
}

/// The PLCN_v3 test egg, running in the test image.
fn proxy_egg() -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../egg/tests/test-egg-plcn-v3.json");
    let mut egg: Value =
        serde_json::from_slice(&std::fs::read(&path).expect("the test egg")).expect("JSON");
    egg["docker_images"] = json!({ "Test": cap_e2e::podman::test_image() });
    egg.to_string().into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_server_from_an_egg_runs_its_picked_startup_command_and_its_conditional_edit_points_local_servers_at_the_node()
 {
    let podman = PodmanService::start();
    let db = TestDb::sqlite().await;
    let (panel, _viewer) = start_panel(&db).await;
    let panel = &panel;
    install_and_activate(panel, "egg-bridge").await;
    let imported = import(panel, proxy_egg()).await;
    let game_type = imported["type"].as_str().expect("a game type").to_owned();

    let port = game_images::free_tcp_and_udp_port();
    let (node_id, _agent, agent_dir) = container_node(panel, &podman, port).await;

    let server_id = create_server(
        panel,
        json!({
            "name": "proxy",
            "node_id": node_id,
            "game": {"plugin": "egg-bridge", "type": game_type},
            "startup_command": "Verbose",
            "limits": {"memory_mb": 128, "disk_mb": 1000, "cpu_percent": 50}
        }),
    )
    .await;
    let server = &server_id;
    let finished = install(panel, server).await;
    assert_eq!(finished["state"], "done", "{finished:#}");
    // A proxy's config as its owner left it: one backend on this machine,
    // one elsewhere.
    let config = agent_dir.path().join(format!("servers/{server}/proxy.yml"));
    std::fs::write(
        &config,
        "listeners:\n- host: 0.0.0.0:1\nservers:\n  lobby:\n    address: localhost:25566\n  far:\n    address: 10.1.1.1:25565\n",
    )
    .expect("writing the proxy's config");

    let console = Console::open(panel, server, PLUGIN_ADMIN).await;
    console
        .wait_for("auth success", |f| f["event"] == "auth success")
        .await;
    power(panel, server, "start").await;
    // The picked command ran, and the egg's done pattern saw it.
    console_line(&console, 0, "picked-command", Duration::from_secs(60)).await;
    eventually_within("the egg's done rule", Duration::from_secs(60), || async {
        console
            .frames()
            .into_iter()
            .find(|f| f["event"] == "console event" && f["args"][0]["kind"] == "ready")
    })
    .await;
    // The local backend now points at the node's host as the Agent's
    // engine names it; the other one is as it was.
    let engine = cap_agent::container::Engine::connect(Some(&podman.host()), "probe")
        .await
        .expect("the engine answers");
    let host = engine
        .host_address()
        .await
        .expect("the engine answers")
        .expect("a gateway");
    // YAML may quote the values; the quotes do not matter.
    let unquoted = |text: &str| text.replace(['\'', '"'], "");
    let written = unquoted(&std::fs::read_to_string(&config).expect("the config"));
    assert!(
        written.contains(&format!("address: {host}:25566")),
        "{written}"
    );
    assert!(written.contains("address: 10.1.1.1:25565"), "{written}");
    assert!(
        written.contains(&format!("host: 0.0.0.0:{port}")),
        "{written}"
    );
    // The server read the edited file at its start (`cat` in the command).
    eventually_within(
        "the edited config on the console",
        Duration::from_secs(30),
        || async {
            console
                .lines()
                .iter()
                .any(|l| unquoted(l).contains(&format!("address: {host}:25566")))
                .then_some(())
        },
    )
    .await;
    power(panel, server, "stop").await;
    offline(panel, server, &console).await;
}

/// A Minecraft-like egg in the test image: the `eula` feature and the
/// `stop` stop command (what the egg bridge takes for a Minecraft Java
/// server), the stand-in as its game. The stand-in answers commands it
/// does not know with `UNKNOWN <command>`, so the console shows what it
/// was told.
fn minecraft_like_egg() -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../egg/tests/test-egg-plcn-v3.json");
    let mut egg: Value =
        serde_json::from_slice(&std::fs::read(&path).expect("the test egg")).expect("JSON");
    egg["name"] = json!("Minecraft-like test");
    egg["features"] = json!(["eula"]);
    egg["docker_images"] = json!({ "Test": cap_e2e::podman::test_image() });
    egg["startup_commands"] =
        json!({ "Default": "exec cap-standin-game --port {{SERVER_PORT}} --ready-delay-ms 0" });
    egg["config"]["files"] = json!({});
    egg["config"]["startup"] = json!({ "done": "READY" });
    egg["config"]["stop"] = json!("stop");
    egg.to_string().into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_running_minecraft_egg_server_is_told_to_save_off_before_a_backup_and_save_on_after() {
    let podman = PodmanService::start();
    let db = TestDb::sqlite().await;
    let (panel, _viewer) = start_panel(&db).await;
    let panel = &panel;
    install_and_activate(panel, "egg-bridge").await;
    let imported = import(panel, minecraft_like_egg()).await;
    let game_type = imported["type"].as_str().expect("a game type").to_owned();
    let port = game_images::free_tcp_and_udp_port();
    let (node_id, _agent, _agent_dir) = container_node(panel, &podman, port).await;
    let server_id = create_server(
        panel,
        json!({
            "name": "minecraft-like",
            "node_id": node_id,
            "game": {"plugin": "egg-bridge", "type": game_type},
            "limits": {"memory_mb": 128, "disk_mb": 1000, "cpu_percent": 50}
        }),
    )
    .await;
    let server = &server_id;
    let finished = install(panel, server).await;
    assert_eq!(finished["state"], "done", "{finished:#}");
    api(
        panel,
        Method::PUT,
        &format!("/api/v1/servers/{server}/backup-limit"),
        Some(json!({"limit": 2})),
        200,
    )
    .await;
    let backup = |name: &'static str| async move {
        let started = api(
            panel,
            Method::POST,
            &format!("/api/v1/servers/{server}/backups"),
            Some(json!({ "name": name })),
            202,
        )
        .await;
        let id = started["id"].as_str().expect("id").to_owned();
        eventually_within("the backup to end", Duration::from_secs(60), || async {
            let backup = api(
                panel,
                Method::GET,
                &format!("/api/v1/servers/{server}/backups/{id}"),
                None,
                200,
            )
            .await;
            (backup["state"] != "pending").then_some(backup)
        })
        .await
    };
    let told = |console: &Console, start: usize| {
        console
            .frames()
            .into_iter()
            .skip(start)
            .filter(|f| f["event"] == "console output")
            .filter_map(|f| f["args"][0].as_str().map(str::to_owned))
            .filter(|l| l.starts_with("UNKNOWN save"))
            .collect::<Vec<_>>()
    };

    // Stopped: archived as it is, the console told nothing.
    let console = Console::open(panel, server, PLUGIN_ADMIN).await;
    console
        .wait_for("auth success", |f| f["event"] == "auth success")
        .await;
    let done = backup("stopped").await;
    assert_eq!(done["state"], "done", "{done:#}");

    // Running: save-off and a flush first, save-on once it is archived.
    power(panel, server, "start").await;
    eventually_within("the egg's done rule", Duration::from_secs(60), || async {
        console
            .frames()
            .into_iter()
            .find(|f| f["event"] == "console event" && f["args"][0]["kind"] == "ready")
    })
    .await;
    server_state(panel, server, "running").await;
    assert!(told(&console, 0).is_empty(), "{:?}", told(&console, 0));
    let before = console.frames().len();
    let done = backup("running").await;
    assert_eq!(done["state"], "done", "{done:#}");
    console_line(&console, before, "UNKNOWN save-on", Duration::from_secs(30)).await;
    assert_eq!(
        told(&console, before),
        [
            "UNKNOWN save-off",
            "UNKNOWN save-all flush",
            "UNKNOWN save-on"
        ]
    );
    power(panel, server, "stop").await;
    offline(panel, server, &console).await;
}
