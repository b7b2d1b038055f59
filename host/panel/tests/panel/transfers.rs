//! Transfers between nodes (`/api/v1/servers/{id}/transfer`,
//! `cap_panel::agents::transfers`, `cap_agent::relocation`) over real
//! HTTP with two real Agents: a running server stops, its files stream
//! from one Agent straight to the other, it keeps its id and subusers,
//! takes an allocation on the new node and runs there, with its progress
//! on the console; replay rebuilds the move. Refusals (the same node, a
//! node that does not exist or is offline, no free allocation, a transfer
//! already running, no `admin.servers`) and what a running transfer
//! refuses (starts, console commands, deletion). Faults: a target without
//! the disk for the files, and a link cut mid-stream, each leave the
//! server whole (and running again) on its node, with the reason.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cap_agent::node::RunningNode;
use cap_panel::db::Actor;
use cap_panel::db::replay::replay;
use cap_panel::servers::server;
use cap_panel::servers::transfers::{self, TransferAsk};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::agents::{
    Console, Site, api, eventually, eventually_within, install, node_online, server_state, site,
};
use crate::nodes::call;
use crate::plugins::PLUGIN_ADMIN;
use crate::support::{
    TestDb, expect_problem, free_port, on_every_database, start_agent, start_agent_behind,
};

/// A second node with one free allocation on loopback and its Agent
/// (behind `proxy` when given: the files URL it announces).
struct Target {
    node_id: String,
    port: u16,
    dir: tempfile::TempDir,
    agent: RunningNode,
}

impl Target {
    fn server_dir(&self, server_id: &str) -> PathBuf {
        self.dir.path().join("servers").join(server_id)
    }
}

async fn target(site: &Site, name: &str, behind: Option<(std::net::SocketAddr, String)>) -> Target {
    let panel = &site.panel;
    let port = free_port();
    let (node_id, token) = crate::agents::node_with_token(panel, name, port).await;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let agent = match behind {
        None => start_agent(panel, dir.path(), Some(token)).await,
        Some((listen, url)) => {
            start_agent_behind(panel, dir.path(), Some(token), listen, &url).await
        }
    };
    node_online(panel, &node_id, true).await;
    Target {
        node_id,
        port,
        dir,
        agent,
    }
}

/// The site's server, installed, with a world on disk (`files`: path →
/// bytes), and running when `running`.
async fn prepared(db: &TestDb, files: &[(&str, Vec<u8>)], running: bool) -> (Site, RunningNode) {
    let (site, agent) = site(db).await;
    let installed = install(&site.panel, &site.server_id).await;
    assert_eq!(installed["state"], "done", "{installed:#}");
    server_state(&site.panel, &site.server_id, "offline").await;
    let dir = source_dir(&site);
    for (path, bytes) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("folders");
        std::fs::write(&path, bytes).expect("a file");
    }
    if running {
        power(&site, "start").await;
        server_state(&site.panel, &site.server_id, "running").await;
    }
    (site, agent)
}

fn source_dir(site: &Site) -> PathBuf {
    site.agent_dir.path().join("servers").join(&site.server_id)
}

async fn power(site: &Site, action: &str) {
    api(
        &site.panel,
        Method::POST,
        &format!("/api/v1/servers/{}/power", site.server_id),
        Some(json!({ "action": action })),
        202,
    )
    .await;
}

/// Asks for a transfer of the site's server to `node_id`; the answer.
async fn move_to(site: &Site, node_id: &str) -> Value {
    api(
        &site.panel,
        Method::POST,
        &format!("/api/v1/servers/{}/transfer", site.server_id),
        Some(json!({ "node_id": node_id })),
        202,
    )
    .await
}

/// Waits (up to 90 s) for transfer `id` of the site's server to end; the
/// transfer as it ended.
async fn ended(site: &Site, id: &str) -> Value {
    eventually_within("the transfer to end", Duration::from_secs(90), || async {
        let transfer = api(
            &site.panel,
            Method::GET,
            &format!("/api/v1/servers/{}/transfers/{id}", site.server_id),
            None,
            200,
        )
        .await;
        (transfer["state"] != "running").then_some(transfer)
    })
    .await
}

async fn server_json(site: &Site) -> Value {
    api(
        &site.panel,
        Method::GET,
        &format!("/api/v1/servers/{}", site.server_id),
        None,
        200,
    )
    .await
}

/// Random bytes (incompressible, so the archive is as large as they are).
fn noise(len: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

fn read_tree(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("a folder") {
            let path = entry.expect("an entry").path();
            let meta = path.symlink_metadata().expect("metadata");
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file() {
                let rel = path
                    .strip_prefix(root)
                    .expect("beneath")
                    .display()
                    .to_string();
                out.push((rel, std::fs::read(&path).expect("contents")));
            }
        }
    }
    out.sort();
    out
}

on_every_database! {
    async fn a_running_server_moves_to_another_node_keeping_its_files_id_and_subusers_and_runs_there(db: &TestDb) {
        let world = noise(300_000);
        let (site, _source) = prepared(db, &[("world/region/r.0.0.mca", world.clone()), ("server.properties", b"motd=moving\n".to_vec())], true).await;
        api(&site.panel, Method::POST, &format!("/api/v1/servers/{}/subusers", site.server_id),
            Some(json!({"user_id": site.viewer_id, "permissions": ["control.console"]})), 201).await;
        let before = read_tree(&source_dir(&site));
        let target = target(&site, "n2", None).await;
        let console = Console::open(&site.panel, &site.server_id, PLUGIN_ADMIN).await;
        console.wait_for("auth success", |f| f["event"] == "auth success").await;

        let begun = move_to(&site, &target.node_id).await;
        assert_eq!(begun["state"], "running", "{begun:#}");
        assert_eq!(begun["was_running"], true, "{begun:#}");
        assert_eq!(begun["allocations"], json!([{"ip": "127.0.0.1", "port": target.port}]), "{begun:#}");
        // While it moves, it is marked, and what would run it is refused.
        let marked = server_json(&site).await;
        assert_eq!(marked["transfer_id"], begun["id"], "{marked:#}");

        let done = ended(&site, begun["id"].as_str().expect("id")).await;
        assert_eq!(done["state"], "done", "{done:#}");
        assert_eq!(done["stage"], "done", "{done:#}");
        assert_eq!(done["sha256"].as_str().map(str::len), Some(64), "{done:#}");
        assert!(done["archive_bytes"].as_u64().expect("bytes") > 300_000, "{done:#}");

        // The same server, on the new node, with an allocation there, running.
        let moved = server_json(&site).await;
        assert_eq!(moved["id"], json!(site.server_id));
        assert_eq!(moved["node_id"], json!(target.node_id), "{moved:#}");
        assert!(moved.get("transfer_id").is_none(), "{moved:#}");
        assert_eq!(moved["allocation"]["port"], json!(target.port), "{moved:#}");
        server_state(&site.panel, &site.server_id, "running").await;
        use cap_agent::ServerRuntime as _;
        assert!(target.agent.runtime.reports().iter().any(|r| r.server_id == site.server_id && r.state.is_alive()),
            "the target's Agent runs it");
        // Its files came along byte for byte; the source's copy is gone.
        // (The game's own config is rewritten at each start, for the new
        // port: it arrives, with other contents.)
        let arrived = read_tree(&target.server_dir(&site.server_id));
        for (name, bytes) in &before {
            let there = arrived.iter().find(|(n, _)| n == name).map(|(_, b)| b);
            assert!(there.is_some(), "{name} arrived");
            if name != "standin.cfg" {
                assert_eq!(there, Some(bytes), "{name} arrived whole");
            }
        }
        assert_eq!(std::fs::read(target.server_dir(&site.server_id).join("world/region/r.0.0.mca")).expect("the world"), world);
        eventually("the source to forget its copy", || async { (!source_dir(&site).exists()).then_some(()) }).await;
        // The target installed nothing: the only install is the first one,
        // and the newest command is the start after the move (which the
        // target's Agent runs, above).
        let commands = api(&site.panel, Method::GET, &format!("/api/v1/servers/{}/commands?limit=100", site.server_id), None, 200).await;
        let items = commands["items"].as_array().expect("items");
        assert_eq!(items.iter().filter(|c| c["action"] == "install").count(), 1, "{commands:#}");
        assert_eq!(items[0]["action"], "start", "the newest command: {commands:#}");
        // Its subuser is still its subuser.
        let subusers = api(&site.panel, Method::GET, &format!("/api/v1/servers/{}/subusers", site.server_id), None, 200).await;
        assert!(subusers.to_string().contains(&site.viewer_id), "{subusers:#}");
        // The console told the story.
        let lines = console.lines();
        for expected in ["[transfer] moving the server", "[transfer] sending the server's files", "[transfer] the target node holds", "[transfer] transfer complete"] {
            assert!(lines.iter().any(|l| l.starts_with(expected)), "{expected:?} in {lines:#?}");
        }
        // The source node's allocation is free again.
        let source_allocations = api(&site.panel, Method::GET, &format!("/api/v1/nodes/{}/allocations", site.node_id), None, 200).await;
        assert!(source_allocations["items"].as_array().expect("items").iter().all(|a| a["server_id"].is_null()), "{source_allocations:#}");

        // Replay rebuilds the same server from the events.
        let handle = db.connect().await;
        let live = server::get(&handle, &site.server_id).await.expect("read");
        replay(&handle).await.expect("replay");
        assert_eq!(server::get(&handle, &site.server_id).await.expect("read"), live);
        handle.close().await;
        power(&site, "stop").await;
        server_state(&site.panel, &site.server_id, "offline").await;
    }
}

on_every_database! {
    async fn a_transfer_is_refused_to_the_same_an_unknown_or_an_offline_node_without_free_allocations_and_twice(db: &TestDb) {
        let (site, _source) = prepared(db, &[], false).await;
        let path = format!("/api/v1/servers/{}/transfer", site.server_id);
        let ask = |node: &str| json!({ "node_id": node });
        let problem = expect_problem(call(&site.panel, Method::POST, &path, Some(PLUGIN_ADMIN), Some(ask(&site.node_id))).await, 422, "validation-failed").await;
        assert!(problem.to_string().contains("node_id"), "{problem:#}");
        let problem = expect_problem(call(&site.panel, Method::POST, &path, Some(PLUGIN_ADMIN), Some(ask("node_nope"))).await, 422, "validation-failed").await;
        assert!(problem.to_string().contains("no such node"), "{problem:#}");
        // A node without an Agent is offline.
        let idle = api(&site.panel, Method::POST, "/api/v1/nodes",
            Some(json!({"name": "idle", "address": "127.0.0.1", "memory_mb": 8192, "disk_mb": 10000, "cpu_percent": 400})), 201).await;
        let idle = idle["id"].as_str().expect("id").to_owned();
        expect_problem(call(&site.panel, Method::POST, &path, Some(PLUGIN_ADMIN), Some(ask(&idle))).await, 503, "node-offline").await;
        // A connected node whose allocations are all taken has none to give.
        let full = target(&site, "full", None).await;
        let other = api(&site.panel, Method::POST, "/api/v1/servers", Some(json!({
            "name": "squatter", "node_id": full.node_id, "game": {"plugin": "test-game"},
            "limits": {"memory_mb": 128, "disk_mb": 100, "cpu_percent": 100}
        })), 201).await;
        assert!(other["id"].is_string());
        let problem = expect_problem(call(&site.panel, Method::POST, &path, Some(PLUGIN_ADMIN), Some(ask(&full.node_id))).await, 409, "no-free-allocation").await;
        assert!(problem["detail"].as_str().expect("detail").contains("0 free"), "{problem:#}");
        // Nothing of it marked the server.
        assert!(server_json(&site).await.get("transfer_id").is_none());
        let history = api(&site.panel, Method::GET, &format!("/api/v1/servers/{}/transfers", site.server_id), None, 200).await;
        assert_eq!(history["items"], json!([]), "{history:#}");
    }
}

on_every_database! {
    async fn a_server_in_a_transfer_is_refused_starts_console_commands_deletion_and_another_transfer(db: &TestDb) {
        let (site, _source) = prepared(db, &[], false).await;
        let other = target(&site, "n2", None).await;
        // Marked as in a transfer without its driver, so that it stays so.
        let handle = db.connect().await;
        let current = server::get(&handle, &site.server_id).await.expect("read").expect("the server");
        let (transfer, stop) = transfers::start(&handle, &current, None,
            &TransferAsk { node_id: other.node_id.clone(), allocation: None }, &Actor::system()).await.expect("started");
        assert!(stop.is_none(), "an offline server needs no stop");
        let server_path = format!("/api/v1/servers/{}", site.server_id);
        for (method, rest, body) in [
            (Method::POST, "/power", json!({"action": "start"})),
            (Method::POST, "/command", json!({"command": "say hi"})),
            (Method::POST, "/install", json!({})),
        ] {
            let problem = expect_problem(call(&site.panel, method, &format!("{server_path}{rest}"), Some(PLUGIN_ADMIN), Some(body)).await, 409, "server-transferring").await;
            assert!(problem["detail"].as_str().expect("detail").contains(&transfer.id), "{problem:#}");
        }
        expect_problem(call(&site.panel, Method::DELETE, &server_path, Some(PLUGIN_ADMIN), None).await, 409, "server-transferring").await;
        expect_problem(call(&site.panel, Method::POST, &format!("{server_path}/transfer"), Some(PLUGIN_ADMIN),
            Some(json!({"node_id": other.node_id}))).await, 409, "server-transferring").await;
        // Stopping is not refused: a transfer stops servers itself.
        let stop = call(&site.panel, Method::POST, &format!("{server_path}/power"), Some(PLUGIN_ADMIN), Some(json!({"action": "stop"}))).await;
        assert_eq!(stop.status(), 202);
        // Failing it lifts the freeze, and replay agrees.
        assert!(transfers::fail(&handle, &transfer.id, &site.server_id, "given up").await.expect("failed"));
        let live = server::get(&handle, &site.server_id).await.expect("read");
        assert_eq!(live.as_ref().and_then(|s| s.transfer_id.clone()), None);
        replay(&handle).await.expect("replay");
        assert_eq!(server::get(&handle, &site.server_id).await.expect("read"), live);
        handle.close().await;
        let history = api(&site.panel, Method::GET, &format!("{server_path}/transfers"), None, 200).await;
        assert_eq!(history["items"][0]["state"], "failed", "{history:#}");
        assert_eq!(history["items"][0]["failure"], "given up", "{history:#}");
        let page = call(&site.panel, Method::POST, &format!("{server_path}/power"), Some(PLUGIN_ADMIN), Some(json!({"action": "start"}))).await;
        assert_eq!(page.status(), 202, "started again once the transfer is over");
    }
}

#[tokio::test]
async fn only_administrators_move_servers_and_see_their_transfers() {
    let db = TestDb::sqlite().await;
    let (site, _source) = prepared(&db, &[], false).await;
    let other = target(&site, "n2", None).await;
    // The viewer sees the server (a subuser) but is no administrator.
    api(
        &site.panel,
        Method::POST,
        &format!("/api/v1/servers/{}/subusers", site.server_id),
        Some(json!({"user_id": site.viewer_id, "permissions": ["control.console"]})),
        201,
    )
    .await;
    let path = format!("/api/v1/servers/{}/transfer", site.server_id);
    expect_problem(
        call(
            &site.panel,
            Method::POST,
            &path,
            Some("viewer-token"),
            Some(json!({"node_id": other.node_id})),
        )
        .await,
        403,
        "forbidden",
    )
    .await;
    expect_problem(
        call(
            &site.panel,
            Method::GET,
            &format!("/api/v1/servers/{}/transfers", site.server_id),
            Some("viewer-token"),
            None,
        )
        .await,
        403,
        "forbidden",
    )
    .await;
    assert!(server_json(&site).await.get("transfer_id").is_none());
}

#[tokio::test]
async fn a_target_without_the_disk_for_the_files_fails_the_transfer_and_the_server_runs_on_where_it_was()
 {
    let db = TestDb::sqlite().await;
    let (site, _source) = prepared(&db, &[("world/small.dat", noise(10_000))], true).await;
    // A sparse file: a terabyte to archive, next to nothing on the source's disk.
    let sparse =
        std::fs::File::create(source_dir(&site).join("world/huge.sparse")).expect("a file");
    sparse.set_len(1 << 40).expect("sparse");
    drop(sparse);
    let target = target(&site, "n2", None).await;
    let console = Console::open(&site.panel, &site.server_id, PLUGIN_ADMIN).await;
    console
        .wait_for("auth success", |f| f["event"] == "auth success")
        .await;

    let begun = move_to(&site, &target.node_id).await;
    let failed = ended(&site, begun["id"].as_str().expect("id")).await;
    assert_eq!(failed["state"], "failed", "{failed:#}");
    let reason = failed["failure"].as_str().expect("a reason");
    assert!(
        reason.contains(&format!("node {} has", target.node_id))
            && reason.contains("bytes free")
            && reason.contains("disk-full"),
        "{reason}"
    );
    // Whole where it was: its node, its allocation, its files, running again.
    let server = server_json(&site).await;
    assert_eq!(server["node_id"], json!(site.node_id), "{server:#}");
    assert!(server.get("transfer_id").is_none(), "{server:#}");
    assert!(source_dir(&site).join("world/small.dat").exists());
    server_state(&site.panel, &site.server_id, "running").await;
    assert!(
        !target.server_dir(&site.server_id).exists(),
        "nothing was left on the target"
    );
    let lines = console.lines();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("[transfer] the transfer failed") && l.contains("bytes free")),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("[transfer] starting the server on the source node again")),
        "{lines:#?}"
    );
    power(&site, "stop").await;
    server_state(&site.panel, &site.server_id, "offline").await;
}

/// A TCP proxy to `upstream` that cuts every connection once `limit`
/// bytes went from the client towards `upstream`.
async fn cutting_proxy(upstream: std::net::SocketAddr, limit: usize) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let addr = listener.local_addr().expect("an address");
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await else {
                    return;
                };
                let (mut client_read, mut client_write) = client.split();
                let (mut server_read, mut server_write) = server.split();
                let up = async {
                    let mut sent = 0usize;
                    let mut buffer = vec![0u8; 16 * 1024];
                    loop {
                        let n = match client_read.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        let n = n.min(limit.saturating_sub(sent));
                        if n == 0 || server_write.write_all(&buffer[..n]).await.is_err() {
                            return;
                        }
                        sent += n;
                    }
                };
                let down = async {
                    let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
                };
                // The first direction to end ends the connection: both
                // sockets drop, mid-stream.
                tokio::select! {
                    () = up => {}
                    () = down => {}
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_link_cut_mid_stream_fails_the_transfer_and_leaves_the_server_whole_on_its_node() {
    let db = TestDb::sqlite().await;
    let world = noise(4 * 1024 * 1024);
    let (site, _source) = prepared(&db, &[("world/region/r.0.0.mca", world.clone())], true).await;
    let listen: std::net::SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let proxy = cutting_proxy(listen, 256 * 1024).await;
    let target = target(&site, "n2", Some((listen, format!("http://{proxy}")))).await;

    let begun = move_to(&site, &target.node_id).await;
    let failed = ended(&site, begun["id"].as_str().expect("id")).await;
    assert_eq!(failed["state"], "failed", "{failed:#}");
    let reason = failed["failure"].as_str().expect("a reason");
    assert!(
        reason.contains("connection to the target node") && reason.contains("(link)"),
        "{reason}"
    );
    assert!(
        !reason.contains("token="),
        "the grant stays out of the reason: {reason}"
    );
    let server = server_json(&site).await;
    assert_eq!(server["node_id"], json!(site.node_id), "{server:#}");
    assert!(server.get("transfer_id").is_none(), "{server:#}");
    assert_eq!(
        std::fs::read(source_dir(&site).join("world/region/r.0.0.mca")).expect("the world"),
        world
    );
    server_state(&site.panel, &site.server_id, "running").await;
    eventually("the target to drop what it got", || async {
        (!target.server_dir(&site.server_id).exists()).then_some(())
    })
    .await;
    power(&site, "stop").await;
    server_state(&site.panel, &site.server_id, "offline").await;
}

on_every_database! {
    async fn a_before_hook_may_refuse_a_transfer_and_after_hooks_hear_how_it_ended(db: &TestDb) {
        use cap_panel::plugin_kv::DbKv;
        use cap_runtime::capabilities::kv::KvStore;
        let (site, _source) = prepared(db, &[], false).await;
        let target = target(&site, "n2", None).await;
        let plugins = site.panel.state().plugins().expect("a plugin manager");
        crate::hook_events::install(plugins, "event-recorder").await;
        plugins.activate("event-recorder", &Actor::system()).await.expect("activated");
        let deny = |kinds: &str| {
            let values = std::collections::BTreeMap::from([("deny-kinds".to_owned(), Some(kinds.to_owned()))]);
            async move {
                plugins.set_config("event-recorder", &values, &Actor::system()).await.expect("configured");
            }
        };
        let recorded = |phase: &'static str| {
            let db = site.panel.state().db().clone();
            let key = format!("{phase}/server.transfer/{}", site.server_id);
            async move { DbKv::new(db).get("event-recorder", &key).await.expect("the store reads").is_some() }
        };

        deny("server.transfer").await;
        let problem = expect_problem(call(&site.panel, Method::POST, &format!("/api/v1/servers/{}/transfer", site.server_id),
            Some(PLUGIN_ADMIN), Some(json!({"node_id": target.node_id}))).await, 403, "hook-denied").await;
        assert!(problem["detail"].as_str().is_some_and(|d| d.contains("event-recorder denies server.transfer")), "{problem:#}");
        assert!(recorded("before").await);
        // Nothing changed: no transfer, no mark.
        assert!(server_json(&site).await.get("transfer_id").is_none());
        let history = api(&site.panel, Method::GET, &format!("/api/v1/servers/{}/transfers", site.server_id), None, 200).await;
        assert_eq!(history["items"], json!([]), "{history:#}");

        deny("").await;
        let begun = move_to(&site, &target.node_id).await;
        let done = ended(&site, begun["id"].as_str().expect("id")).await;
        assert_eq!(done["state"], "done", "{done:#}");
        eventually("the after-hook of the transfer", || async { recorded("after").await.then_some(()) }).await;
        assert_eq!(server_json(&site).await["node_id"], json!(target.node_id));
    }
}

#[tokio::test]
async fn a_server_whose_database_host_serves_only_its_node_is_not_moved_elsewhere() {
    let db = TestDb::sqlite().await;
    let (site, _source) = prepared(&db, &[], false).await;
    let _leftovers = crate::databases::Leftovers(vec![site.server_id.clone()]);
    let target = target(&site, "n2", None).await;
    let mut body = crate::databases::mariadb_host("Local MariaDB");
    body["nodeIds"] = json!([site.node_id]);
    let host = api(
        &site.panel,
        Method::POST,
        "/api/v1/database-hosts",
        Some(body.clone()),
        201,
    )
    .await;
    api(
        &site.panel,
        Method::PUT,
        &format!("/api/v1/servers/{}/database-limit", site.server_id),
        Some(json!({"limit": 1})),
        200,
    )
    .await;
    let database = api(
        &site.panel,
        Method::POST,
        &format!("/api/v1/servers/{}/databases", site.server_id),
        Some(json!({"name": "shop"})),
        201,
    )
    .await;
    let problem = expect_problem(
        call(
            &site.panel,
            Method::POST,
            &format!("/api/v1/servers/{}/transfer", site.server_id),
            Some(PLUGIN_ADMIN),
            Some(json!({"node_id": target.node_id})),
        )
        .await,
        422,
        "validation-failed",
    )
    .await;
    assert!(
        problem.to_string().contains("database host Local MariaDB"),
        "{problem:#}"
    );
    // Opened to the target too, the host lets it go.
    body["nodeIds"] = json!([site.node_id, target.node_id]);
    api(
        &site.panel,
        Method::PUT,
        &format!(
            "/api/v1/database-hosts/{}",
            host["id"].as_str().expect("id")
        ),
        Some(body),
        200,
    )
    .await;
    let begun = move_to(&site, &target.node_id).await;
    assert_eq!(
        ended(&site, begun["id"].as_str().expect("id")).await["state"],
        "done"
    );
    // It keeps its database.
    let databases = api(
        &site.panel,
        Method::GET,
        &format!("/api/v1/servers/{}/databases", site.server_id),
        None,
        200,
    )
    .await;
    assert_eq!(databases["items"][0]["id"], database["id"], "{databases:#}");
    api(
        &site.panel,
        Method::DELETE,
        &format!(
            "/api/v1/servers/{}/databases/{}",
            site.server_id,
            database["id"].as_str().expect("id")
        ),
        None,
        204,
    )
    .await;
}

on_every_database! {
    async fn a_transfer_a_restarted_panel_finds_running_fails_and_the_server_it_stopped_starts_again(db: &TestDb) {
        let (site, _source) = prepared(db, &[], false).await;
        let other = target(&site, "n2", None).await;
        let handle = db.connect().await;
        // Recorded as begun while the server ran, then left by its Panel.
        let mut current = server::get(&handle, &site.server_id).await.expect("read").expect("the server");
        current.state = "running".into();
        let (transfer, _stop) = transfers::start(&handle, &current, None,
            &TransferAsk { node_id: other.node_id.clone(), allocation: None }, &Actor::system()).await.expect("started");
        assert!(transfer.was_running);
        assert_eq!(transfers::fail_unfinished(&handle, "the Panel restarted during the transfer").await.expect("failed"), 1);
        let history = api(&site.panel, Method::GET, &format!("/api/v1/servers/{}/transfers", site.server_id), None, 200).await;
        assert_eq!(history["items"][0]["state"], "failed", "{history:#}");
        assert_eq!(history["items"][0]["failure"], "the Panel restarted during the transfer", "{history:#}");
        assert!(server_json(&site).await.get("transfer_id").is_none());
        // The stop it queued, then a start: the server runs again where it was.
        server_state(&site.panel, &site.server_id, "running").await;
        handle.close().await;
        power(&site, "stop").await;
        server_state(&site.panel, &site.server_id, "offline").await;
    }
}
