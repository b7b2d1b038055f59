//! Real game servers in containers: images built from Debian's packages
//! (`cap_e2e::game_images`), run by the container backend against a real
//! Podman service, and reached over the game's own protocol.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use cap_agent::container::Engine;
use cap_agent::{Backend, ContainerConfig, ServerRuntime};
use cap_e2e::podman::PodmanService;
use cap_protocol::{
    PortAllocation, RestartPolicy, ServerLimits, ServerSpec, ServerState, StartupPlan, StopMethod,
    StopPlan,
};

use super::support::{console_of, open_runtime, test_game};

/// A free UDP port on loopback (free when asked).
fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .unwrap()
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
async fn a_real_minetest_server_built_from_debian_runs_in_a_container_and_answers_its_udp_handshake()
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
    // No game-type plugin classifies this console, so the server stays
    // `starting`: what shows it runs is the game itself answering.
    runtime.start("mt", spec).await.unwrap();

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
    // The game opened the egg's world and logs as the egg says. (With
    // `--terminal` Minetest draws its console with cursor movements
    // instead of lines, so the egg's done line reaches the console only
    // once the console renders terminal output: not yet.)
    let log = data.path().join("servers/mt/server.log");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&log).is_ok_and(|l| l.contains("Server for gameid")) {
        assert!(
            Instant::now() < deadline,
            "no done line in {}",
            log.display()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
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
