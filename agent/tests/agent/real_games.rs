//! Real game servers in containers: images built from Debian's packages
//! (`cap_e2e::game_images`), run by the container backend against a real
//! Podman service, and reached over the game's own protocol.

use std::net::UdpSocket;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cap_agent::Classifier;
use cap_agent::container::Engine;
use cap_agent::{Backend, ContainerConfig, ServerRuntime};
use cap_e2e::podman::PodmanService;
use cap_protocol::{
    ConsoleEvent, PortAllocation, RestartPolicy, ServerLimits, ServerSpec, ServerState,
    StartupPlan, StopMethod, StopPlan,
};
use futures::future::BoxFuture;

use super::support::{console_of, open_runtime, test_game};

/// A free UDP port on loopback (free when asked).
fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .unwrap()
}

/// The community Minetest egg's done line, `config.startup.done`, as an
/// egg-bridge game type would classify it.
struct EggDoneLine(String);

impl Classifier for EggDoneLine {
    fn classify<'a>(
        &'a self,
        _context: &'a str,
        line: &'a str,
    ) -> BoxFuture<'a, Option<ConsoleEvent>> {
        Box::pin(async move { line.contains(&self.0).then_some(ConsoleEvent::Ready) })
    }
}

/// Minetest's connection handshake: a reliable packet (seq 65500) holding
/// an empty original packet, as a client opens with. The server answers
/// with a control packet giving the client its peer id. Returns the answer.
fn minetest_handshake(port: u16) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    socket
        .send_to(
            &[0x4f, 0x45, 0x74, 0x03, 0, 0, 0, 0x03, 0xff, 0xdc, 0x01],
            ("127.0.0.1", port),
        )
        .ok()?;
    let mut buffer = [0u8; 1024];
    let (len, _) = socket.recv_from(&mut buffer).ok()?;
    Some(buffer[..len].to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_minetest_server_built_from_debian_runs_in_a_container_draws_its_console_and_answers_its_udp_handshake()
 {
    let image = cap_e2e::game_images::minetest();
    let service = PodmanService::start();
    let (_plugins, plugin) = test_game().await;
    let data = tempfile::tempdir().unwrap();
    let instance = format!("{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff);
    let engine = Engine::connect(Some(&service.host()), &instance)
        .await
        .expect("the test's Podman service answers");
    let (runtime, events) = open_runtime(data.path(), &plugin, |config| {
        config.backend = Backend::Container(ContainerConfig::new(engine));
    })
    .await;
    let egg: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            cap_e2e::repo_root().join("egg/tests/fixtures/pelican/egg-pterodactyl-minetest.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let startup: serde_json::Value =
        serde_json::from_str(egg["config"]["startup"].as_str().unwrap()).unwrap();
    let done = startup["done"].as_str().unwrap().to_owned();
    assert_eq!(done, " Server for gameid", "the egg's done line");
    runtime.set_classifier("minetest", Arc::new(EggDoneLine(done.clone())));
    let port = free_udp_port();
    // The community egg's startup line, with its variables filled in; the
    // egg's config file sets the admin name `--terminal` needs.
    let script = format!(
        "mkdir -p .minetest/worlds && printf 'name = admin\\n' > .minetest/minetest.conf && \
         exec minetest --server --port {port} --gameid minetest_game \
         --world /home/container/.minetest/worlds/world --terminal \
         --config /home/container/.minetest/minetest.conf --logfile /home/container/server.log"
    );
    let spec = ServerSpec {
        game: "minetest".into(),
        startup: StartupPlan {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script],
            env: Vec::new(),
            working_dir: ".".into(),
            config_edits: Vec::new(),
            console_context: String::new(),
        },
        stop: StopPlan {
            method: StopMethod::ConsoleCommand {
                command: "/shutdown".into(),
            },
            grace_secs: 15,
        },
        limits: ServerLimits {
            memory_mb: 512,
            cpu_percent: 100,
            max_processes: 256,
            disk_mb: 0,
        },
        restart: RestartPolicy::default(),
        plugin: None,
        image: Some(image.to_owned()),
        ports: vec![PortAllocation {
            ip: "127.0.0.1".into(),
            port,
        }],
    };
    // With `--terminal` Minetest draws its console with ncurses on the
    // container's TTY; the egg's done line is a console line once drawn.
    runtime.start("mt", spec).await.unwrap();
    events.wait_state("mt", ServerState::Running, 1).await;
    // The line itself goes out with the next console batch.
    events
        .wait_for(
            "the done line on the console",
            Duration::from_secs(5),
            |all| {
                let (lines, _) = super::support::console_of(all, "mt");
                lines.iter().any(|l| l.contains(&done)).then_some(())
            },
        )
        .await;
    let (lines, _) = events.console("mt");
    let done_lines: Vec<&String> = lines.iter().filter(|l| l.contains(&done)).collect();
    assert_eq!(
        done_lines.len(),
        1,
        "the done line once, as a line: {lines:#?}"
    );
    assert!(
        done_lines[0].ends_with(&format!("listening on 0.0.0.0:{port}.")),
        "the whole row: {done_lines:?}"
    );

    // The game answers its own protocol on the allocated port.
    let deadline = Instant::now() + Duration::from_secs(60);
    let answer = loop {
        if let Some(answer) = minetest_handshake(port) {
            break answer;
        }
        assert!(
            Instant::now() < deadline,
            "Minetest never answered on UDP {port}; console: {:?}",
            console_of(&events.all(), "mt").0
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(&answer[..4], &[0x4f, 0x45, 0x74, 0x03], "the protocol id");
    assert_eq!(answer[7], 0x03, "a reliable packet");
    assert_eq!(
        &answer[10..12],
        &[0x00, 0x01],
        "a control packet setting the peer id"
    );
    // A command typed on the console is answered on the console, once.
    runtime.console_input("mt", "/status").await.unwrap();
    events
        .wait_for("the answer to /status", Duration::from_secs(20), |all| {
            let (lines, _) = super::support::console_of(all, "mt");
            lines
                .iter()
                .any(|l| l.starts_with("# Server: version:") && l.contains("| uptime:"))
                .then_some(())
        })
        .await;
    // The status bar, redrawn every second, stayed one line at most, and
    // neither the prompt nor the typed command became lines.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (lines, _) = events.console("mt");
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("# Server: version:"))
            .count(),
        1,
        "{lines:#?}"
    );
    assert!(
        lines.iter().filter(|l| l.contains("Time of day")).count() <= 1,
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .all(|l| !l.contains('\x1b') && l != "]" && !l.contains("]/status")),
        "{lines:#?}"
    );
    // The game opened the egg's world.
    assert!(
        data.path()
            .join("servers/mt/.minetest/worlds/world/world.mt")
            .exists(),
        "the world is in the server's directory"
    );

    // The egg's stop command, typed on the console, ends it cleanly.
    runtime.stop("mt").await.unwrap();
    let reason = events.wait_state("mt", ServerState::Offline, 1).await;
    assert!(
        !reason.as_deref().unwrap_or_default().contains("kill"),
        "Minetest saved and exited on /shutdown, unkilled: {reason:?}"
    );
}
