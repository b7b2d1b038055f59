//! The container backend against a real Podman service (started by each
//! test on a socket of its own) with a test image built locally
//! (`cap_e2e::podman`): isolation and limits, console and lifecycle,
//! installs in their own container, and every fault the container issue
//! names. Image pulls go to a real registry on loopback
//! (`cap_e2e::registry`), never beyond the machine.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use cap_agent::container::{Engine, EngineError};
use cap_agent::{
    Backend, ContainerConfig, NodeRuntime, NodeRuntimeConfig, RuntimeError, ServerRuntime,
};
use cap_e2e::podman::{PodmanService, podman, test_image};
use cap_e2e::registry::Registry;
use cap_protocol::{
    AgentMessage, InstallPlan, InstallStep, KeyValue, LimitsApplied, PortAllocation, RestartPolicy,
    Script, ServerLimits, ServerSpec, ServerState, Signal, StartupPlan, StopMethod, StopPlan,
};

use super::support::{Recorder, console_of, context, open_runtime, plans, test_game};

/// A fresh engine instance label per test, so tests sharing Podman's store
/// never see each other's containers.
fn instance() -> String {
    format!("{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff)
}

/// A container runtime on `data` against `service`, as Agent `instance`.
async fn container_runtime(
    data: &Path,
    plugin: &cap_runtime::Plugin,
    service: &PodmanService,
    instance: &str,
    tweak: impl FnOnce(&mut NodeRuntimeConfig),
) -> (NodeRuntime, Recorder) {
    let engine = Engine::connect(Some(&service.host()), instance)
        .await
        .expect("the test's Podman service answers");
    open_runtime(data, plugin, |config| {
        config.backend = Backend::Container(ContainerConfig::new(engine));
        tweak(config);
    })
    .await
}

/// A test-game spec for a container: the stand-in from the test image.
async fn game_spec(plugin: &cap_runtime::Plugin, server: &str) -> (InstallPlan, ServerSpec, u16) {
    let mut ctx = context(server, 100);
    for variable in &mut ctx.variables {
        if variable.key == "STANDIN_PATH" {
            variable.value = "cap-standin-game".into();
        }
    }
    let port = ctx.ports[0].port;
    let (mut install, mut spec) = plans(plugin, &ctx, RestartPolicy::default()).await;
    install.image = Some(test_image().to_owned());
    spec.image = Some(test_image().to_owned());
    spec.ports = vec![PortAllocation {
        ip: "127.0.0.1".into(),
        port,
    }];
    (install, spec, port)
}

/// A spec running `script` with the image's `sh`.
fn shell(script: &str, limits: ServerLimits) -> ServerSpec {
    ServerSpec {
        game: "shell".into(),
        startup: StartupPlan {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            env: Vec::new(),
            working_dir: ".".into(),
            config_edits: Vec::new(),
            console_context: String::new(),
        },
        stop: StopPlan {
            method: StopMethod::SendSignal {
                signal: Signal::Terminate,
            },
            grace_secs: 1,
        },
        limits,
        restart: RestartPolicy::default(),
        plugin: None,
        image: Some(test_image().to_owned()),
        ports: Vec::new(),
    }
}

fn limits(memory_mb: u64, max_processes: u32, disk_mb: u64) -> ServerLimits {
    ServerLimits {
        memory_mb,
        cpu_percent: 50,
        max_processes,
        disk_mb,
    }
}

/// `podman inspect --format` of a container.
fn inspect(id: &str, format: &str) -> String {
    let output = podman()
        .args(["inspect", "--format", format, id])
        .output()
        .expect("running podman inspect");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn container_exists(name_or_id: &str) -> bool {
    podman()
        .args(["container", "exists", name_or_id])
        .status()
        .is_ok_and(|s| s.success())
}

fn container_of(runtime: &NodeRuntime, server: &str) -> String {
    let report = runtime
        .reports()
        .into_iter()
        .find(|r| r.server_id == server)
        .expect("the server is known");
    match report.limits {
        Some(LimitsApplied::Container { id, .. }) => id,
        other => panic!("{server} runs in no container: {other:?}"),
    }
}

/// Waits until `check` holds, up to `timeout`.
async fn eventually(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_runs_in_a_limited_unprivileged_container_and_answers_its_console() {
    let service = PodmanService::start();
    let (_plugins, plugin) = test_game().await;
    let data = tempfile::tempdir().unwrap();
    let (runtime, events) =
        container_runtime(data.path(), &plugin, &service, &instance(), |_| {}).await;
    let (install, spec, port) = game_spec(&plugin, "alpha").await;

    runtime.install("alpha", &install).await.unwrap();
    runtime.start("alpha", spec).await.unwrap();
    assert_eq!(
        events
            .wait_state("alpha", ServerState::Running, 1)
            .await
            .as_deref(),
        Some("ready")
    );
    let id = container_of(&runtime, "alpha");
    let name = inspect(&id, "{{.Name}}");
    assert!(name.ends_with("-alpha"), "named by server id: {name}");
    assert_eq!(
        inspect(&id, "{{index .Config.Labels \"org.ctrl-alt-play.server\"}}"),
        "alpha"
    );
    // Isolation: a uid of its own, no capabilities, no new privileges.
    let uid: u32 = inspect(&id, "{{.Config.User}}")
        .split(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(uid >= 1_000_000, "runs as a uid of its own: {uid}");
    let status = Command::new("cat")
        .arg(format!("/proc/{}/status", inspect(&id, "{{.State.Pid}}")))
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(status.contains("CapEff:\t0000000000000000"), "{status}");
    assert!(status.contains("NoNewPrivs:\t1"), "{status}");
    // Limits.
    assert_eq!(
        inspect(&id, "{{.HostConfig.Memory}}"),
        (256u64 << 20).to_string()
    );
    assert_eq!(
        inspect(&id, "{{.HostConfig.MemorySwap}}"),
        (256u64 << 20).to_string(),
        "no swap beyond the memory limit"
    );
    assert_eq!(inspect(&id, "{{.HostConfig.PidsLimit}}"), "512");
    assert_eq!(
        inspect(&id, "{{.HostConfig.LogConfig.Size}}"),
        "16MB",
        "the engine's copy of the console is bounded"
    );
    assert_eq!(inspect(&id, "{{.HostConfig.NanoCpus}}"), "1000000000");
    let tmpfs = inspect(&id, "{{json .HostConfig.Tmpfs}}");
    assert!(tmpfs.contains("/tmp"), "a private /tmp: {tmpfs}");
    // The server directory is its home, and its own.
    let owner = std::fs::metadata(data.path().join("servers/alpha")).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&owner), uid);
    // The allocation is published: the stand-in answers on the node's port.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());

    // Stats come from the engine, network counters included.
    let memory = events
        .wait_for("stats from the engine", Duration::from_secs(20), |all| {
            all.iter().find_map(|m| match m {
                AgentMessage::Stats {
                    server_id,
                    memory_bytes,
                    network_rx_bytes: Some(_),
                    network_tx_bytes: Some(_),
                    ..
                } if server_id == "alpha" && *memory_bytes > 0 => Some(*memory_bytes),
                _ => None,
            })
        })
        .await;
    assert!(memory < 256 << 20, "{memory} bytes, within the limit");

    runtime.console_input("alpha", "players").await.unwrap();
    events
        .wait_for("the players line", Duration::from_secs(10), |all| {
            console_of(all, "alpha")
                .0
                .iter()
                .any(|l| l.starts_with("PLAYERS 0/4"))
                .then_some(())
        })
        .await;

    runtime.stop("alpha").await.unwrap();
    events.wait_state("alpha", ServerState::Offline, 2).await;
    eventually("the container is removed", Duration::from_secs(10), || {
        !container_exists(&id)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_image_is_a_clear_error_on_the_server_not_a_hang() {
    let service = PodmanService::start();
    let (_plugins, plugin) = test_game().await;
    let data = tempfile::tempdir().unwrap();
    let (runtime, _events) =
        container_runtime(data.path(), &plugin, &service, &instance(), |_| {}).await;
    let mut spec = shell("sleep 60", limits(64, 0, 0));
    spec.image = Some("127.0.0.1:1/cap/no-such-image:1".into());
    let started = Instant::now();
    let error = runtime.start("ghost", spec).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(60), "no hang");
    assert_eq!(error.code(), "image-unavailable", "{error}");
    assert!(
        error
            .to_string()
            .contains("127.0.0.1:1/cap/no-such-image:1"),
        "names the image: {error}"
    );
}

fn image_exists(reference: &str) -> bool {
    podman()
        .args(["image", "exists", reference])
        .status()
        .is_ok_and(|s| s.success())
}

/// The `[Agent] …` lines of a pull of `image` in `lines`, from its first
/// line to its last.
fn pull_lines<'a>(lines: &'a [String], image: &str) -> &'a [String] {
    let first = lines
        .iter()
        .position(|l| *l == format!("[Agent] pulling image {image}"))
        .unwrap_or_else(|| panic!("no line announces the pull of {image}: {lines:#?}"));
    let last = lines
        .iter()
        .position(|l| *l == format!("[Agent] pulled image {image}"))
        .unwrap_or_else(|| panic!("no line reports {image} pulled: {lines:#?}"));
    assert!(first < last, "{lines:#?}");
    &lines[first..=last]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absent_image_is_pulled_from_a_registry_with_its_progress_on_the_console() {
    let registry = Registry::start();
    let image = registry.push_fresh(test_image(), "cap/test-game:latest");
    let service = PodmanService::start_trusting(&[&registry.address()]);
    assert!(!image_exists(&image), "{image} is not in the engine yet");
    let (_plugins, plugin) = test_game().await;
    let data = tempfile::tempdir().unwrap();
    let (runtime, events) =
        container_runtime(data.path(), &plugin, &service, &instance(), |_| {}).await;

    // The install's script runs in it, so the install pulls it: its
    // progress is in the install log.
    let (mut install, mut spec, _port) = game_spec(&plugin, "pulled").await;
    install.image = Some(image.clone());
    install.steps.push(InstallStep::RunScript(Script {
        interpreter: "/bin/sh".into(),
        contents: "echo installed from the pulled image".into(),
        env: Vec::new(),
        timeout_secs: 60,
    }));
    runtime.install("pulled", &install).await.unwrap();
    let log = std::fs::read_to_string(data.path().join("run/pulled/install.log")).unwrap();
    let lines: Vec<String> = log.lines().map(str::to_owned).collect();
    let pull = pull_lines(&lines, &image);
    assert!(log.contains("installed from the pulled image"), "{log}");
    // The layer of its own is downloaded; the test image's is reused.
    assert!(
        pull.iter().any(|l| l.ends_with(": Pulling fs layer")),
        "{pull:#?}"
    );
    assert!(
        pull.iter().any(|l| l.ends_with(": Download complete")),
        "{pull:#?}"
    );
    assert!(
        pull.iter().any(|l| l.ends_with(": Already exists")),
        "{pull:#?}"
    );
    assert!(image_exists(&image), "the engine has it now");

    // Removed again, the start pulls it: its progress is on the console,
    // and the server runs from it.
    let removed = podman().args(["rmi", &image]).output().unwrap();
    assert!(removed.status.success(), "{removed:?}");
    spec.image = Some(image.clone());
    runtime.start("pulled", spec).await.unwrap();
    events.wait_state("pulled", ServerState::Running, 1).await;
    let history = runtime.history("pulled");
    let pull = pull_lines(&history, &image);
    assert!(
        pull.iter().any(|l| l.ends_with(": Download complete")),
        "{pull:#?}"
    );
    let streamed = events.console("pulled").0;
    assert!(
        streamed.contains(&format!("[Agent] pulling image {image}")),
        "the progress reached the console stream: {streamed:#?}"
    );
    // Live: the end of the pull is on the console before the container
    // starts, not after.
    let all = events.all();
    let pulled_at = all.iter().position(|m| {
        matches!(m, AgentMessage::ConsoleLines { server_id, lines, .. }
            if server_id == "pulled" && lines.iter().any(|l| l.starts_with("[Agent] pulled image")))
    });
    let starting_at = all.iter().position(|m| {
        matches!(m, AgentMessage::StateChange { server_id, state: ServerState::Starting, .. }
            if server_id == "pulled")
    });
    assert!(
        pulled_at.is_some() && pulled_at < starting_at,
        "the pull's progress streams while it runs: pulled at {pulled_at:?}, starting at {starting_at:?}"
    );
    let id = container_of(&runtime, "pulled");
    assert_eq!(inspect(&id, "{{.ImageName}}"), image);
    runtime.stop("pulled").await.unwrap();
    events.wait_state("pulled", ServerState::Offline, 2).await;
    let _ = podman().args(["rmi", &image]).output();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_registry_fails_the_pull_naming_the_image_not_a_hang() {
    let mut registry = Registry::start();
    let image = registry.push(test_image(), "cap/test-game:gone");
    let service = PodmanService::start_trusting(&[&registry.address()]);
    // The registry goes away: its port is closed.
    registry.stop();
    let (_plugins, plugin) = test_game().await;
    let data = tempfile::tempdir().unwrap();
    let (runtime, events) =
        container_runtime(data.path(), &plugin, &service, &instance(), |_| {}).await;

    let mut spec = shell("sleep 60", limits(64, 0, 0));
    spec.image = Some(image.clone());
    let started = Instant::now();
    let error = runtime.start("stranded", spec).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(60), "no hang");
    assert_eq!(error.code(), "image-unavailable", "{error}");
    let message = error.to_string();
    assert!(message.contains(&image), "names the image: {message}");
    assert!(
        message.contains("connection refused"),
        "says why: {message}"
    );
    assert!(
        runtime
            .history("stranded")
            .contains(&format!("[Agent] pulling image {image}")),
        "the failed pull is on the console too"
    );

    // An install from it fails the same way and says so on the server.
    let plan = InstallPlan {
        steps: vec![InstallStep::RunScript(Script {
            interpreter: "/bin/sh".into(),
            contents: "echo never".into(),
            env: Vec::new(),
            timeout_secs: 60,
        })],
        image: Some(image.clone()),
        wipe: false,
    };
    let error = runtime.install("stranded", &plan).await.unwrap_err();
    assert_eq!(error.code(), "image-unavailable", "{error}");
    let reason = events
        .wait_state("stranded", ServerState::InstallFailed, 1)
        .await
        .unwrap_or_default();
    assert!(
        reason.contains(&image),
        "the reason names the image: {reason}"
    );
    assert!(!image_exists(&image), "nothing half-pulled is left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_reaches_its_nodes_host_at_the_host_address_the_agent_reports() {
    use std::io::Read;
    let service = PodmanService::start();
    let (_plugins, plugin) = test_game().await;
    let data = tempfile::tempdir().unwrap();
    let (runtime, _events) =
        container_runtime(data.path(), &plugin, &service, &instance(), |_| {}).await;
    let host = runtime
        .host_address()
        .await
        .expect("the engine names its network's gateway");
    assert!(
        host.parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_private()),
        "the gateway of a private bridge network: {host}"
    );
    // Listening on every address of the host: the bridge's own address
    // exists only once a container is attached to it.
    let listener = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (heard, said) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        if let Ok((mut stream, _)) = listener.accept() {
            let mut text = String::new();
            let _ = stream.read_to_string(&mut text);
            let _ = heard.send(text);
        }
    });
    runtime
        .start(
            "reaching",
            shell(
                &format!("echo from-the-container | nc {host} {port}; sleep 60"),
                limits(64, 0, 0),
            ),
        )
        .await
        .unwrap();
    let text = tokio::task::spawn_blocking(move || said.recv_timeout(Duration::from_secs(60)))
        .await
        .unwrap()
        .expect("the container connected to the host address");
    assert_eq!(text.trim(), "from-the-container");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_engine_is_refused_at_start_naming_where_it_looked() {
    let dir = tempfile::tempdir().unwrap();
    let socket = format!("unix://{}/nothing.sock", dir.path().display());
    let error = Engine::connect(Some(&socket), "abc").await.unwrap_err();
    assert!(matches!(error, EngineError::Unreachable { .. }), "{error}");
    assert!(error.to_string().contains(&socket), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_runtime_refuses_a_server_it_cannot_run() {
    let service = PodmanService::start();
    let (_plugins, plugin) = test_game().await;
    let data = tempfile::tempdir().unwrap();
    let (containers, _events) =
        container_runtime(data.path(), &plugin, &service, &instance(), |_| {}).await;
    let mut native_only = shell("sleep 1", limits(64, 0, 0));
    native_only.image = None;
    let error = containers.start("n", native_only).await.unwrap_err();
    assert_eq!(error.code(), "unsupported-runtime", "{error}");

    let native_data = tempfile::tempdir().unwrap();
    let (native, _events) = open_runtime(native_data.path(), &plugin, |_| {}).await;
    let error = native
        .start("c", shell("sleep 1", limits(64, 0, 0)))
        .await
        .unwrap_err();
    assert!(
        matches!(error, RuntimeError::UnsupportedRuntime(_)),
        "{error}"
    );
    assert!(error.to_string().contains("--runtime container"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_bomb_is_oom_killed_and_reported_while_the_agent_carries_on() {
    let service = PodmanService::start();
    let (_plugins, plugin) = test_game().await;
    let data = tempfile::tempdir().unwrap();
    let (runtime, events) =
        container_runtime(data.path(), &plugin, &service, &instance(), |_| {}).await;
    // Doubling a shell variable until the 32 MiB limit ends it.
    let bomb = shell("x=aaaaaaaa; while true; do x=$x$x; done", limits(32, 0, 0));
    runtime.start("bomb", bomb).await.unwrap();
    let reason = events
        .wait_state("bomb", ServerState::Crashed, 1)
        .await
        .unwrap_or_default();
    assert!(reason.contains("out of memory"), "{reason}");
    // The Agent is unaffected: it still runs other servers.
    runtime
        .start("calm", shell("echo calm; sleep 60", limits(64, 0, 0)))
        .await
        .unwrap();
    events.wait_state("calm", ServerState::Starting, 1).await;
    runtime.kill("calm").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fork_bomb_is_held_by_the_process_limit() {
    let service = PodmanService::start();
    let (_plugins, plugin) = test_game().await;
    let data = tempfile::tempdir().unwrap();
    let (runtime, events) =
        container_runtime(data.path(), &plugin, &service, &instance(), |_| {}).await;
    // The bomb runs in a child shell, which dies on its first failed fork;
    // the outer one then counts with builtins only (nothing more forks).
    let script = "sh -c 'for i in $(seq 200); do sleep 120 & done' 2>/dev/null; \
                  set -- /proc/[0-9]*; echo PIDS $#; while true; do read line; done";
    runtime
        .start("forks", shell(script, limits(128, 32, 0)))
        .await
        .unwrap();
    let count = events
        .wait_for("the process count", Duration::from_secs(30), |all| {
            console_of(all, "forks").0.iter().find_map(|l| {
                l.strip_prefix("PIDS ")
                    .and_then(|n| n.trim().parse::<u32>().ok())
            })
        })
        .await;
    assert!(count <= 32, "the pids limit holds: {count} processes");
    assert!(count > 4, "the script did fork: {count} processes");
    runtime.kill("forks").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_fill_is_stopped_at_its_quota_and_refused_a_new_start() {
    let service = PodmanService::start();
    let (_plugins, plugin) = test_game().await;
    let data = tempfile::tempdir().unwrap();
    let (runtime, events) =
        container_runtime(data.path(), &plugin, &service, &instance(), |_| {}).await;
    let script = "i=0; while true; do dd if=/dev/zero of=/home/container/fill$i bs=1M count=1 \
                  2>/dev/null; i=$((i+1)); sleep 0.1; done";
    let spec = shell(script, limits(64, 0, 4));
    runtime.start("filler", spec.clone()).await.unwrap();
    events.wait_state("filler", ServerState::Offline, 1).await;
    let history = runtime.history("filler");
    assert!(
        history
            .iter()
            .any(|l| l.contains("over its limit of 4 MiB")),
        "a console warning: {history:?}"
    );
    let used = cap_agent::runtime::disk_usage(&data.path().join("servers/filler"));
    assert!(used < 64 << 20, "held near its quota: {used} bytes");
    let error = runtime.start("filler", spec).await.unwrap_err();
    assert_eq!(error.code(), "disk-limit", "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_install_runs_in_its_own_container_with_the_egg_layout() {
    let service = PodmanService::start();
    let (_plugins, plugin) = test_game().await;
    let data = tempfile::tempdir().unwrap();
    let (runtime, events) =
        container_runtime(data.path(), &plugin, &service, &instance(), |_| {}).await;
    let plan = InstallPlan {
        steps: vec![InstallStep::RunScript(Script {
            interpreter: "/bin/sh".into(),
            contents: "echo installing $GREETING; pwd > /mnt/server/where.txt; \
                       ls /mnt/install > /mnt/server/script.txt; id -u > /mnt/server/uid.txt"
                .into(),
            env: vec![KeyValue::new("GREETING", "hello")],
            timeout_secs: 60,
        })],
        image: Some(test_image().to_owned()),
        wipe: false,
    };
    runtime.install("inst", &plan).await.unwrap();
    events.wait_state("inst", ServerState::Offline, 1).await;
    let dir = data.path().join("servers/inst");
    assert_eq!(
        std::fs::read_to_string(dir.join("where.txt"))
            .unwrap()
            .trim(),
        "/mnt/server"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("script.txt"))
            .unwrap()
            .trim(),
        "install.sh"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("uid.txt")).unwrap().trim(),
        "0"
    );
    let log = std::fs::read_to_string(data.path().join("run/inst/install.log")).unwrap();
    assert!(
        log.contains("installing hello"),
        "kept as the install log: {log}"
    );
    assert!(
        events
            .console("inst")
            .0
            .iter()
            .any(|l| l == "installing hello"),
        "streamed to the console"
    );
    let owner = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&dir).unwrap());
    assert!(
        owner >= 1_000_000,
        "the files belong to the server's uid after the install"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_install_script_that_never_ends_is_killed_at_its_time_limit() {
    let service = PodmanService::start();
    let (_plugins, plugin) = test_game().await;
    let data = tempfile::tempdir().unwrap();
    let instance = instance();
    let (runtime, events) =
        container_runtime(data.path(), &plugin, &service, &instance, |_| {}).await;
    let plan = InstallPlan {
        steps: vec![InstallStep::RunScript(Script {
            interpreter: "/bin/sh".into(),
            contents: "echo started; sleep 600".into(),
            env: Vec::new(),
            timeout_secs: 2,
        })],
        image: Some(test_image().to_owned()),
        wipe: false,
    };
    let error = runtime.install("slow", &plan).await.unwrap_err();
    assert_eq!(error.code(), "script-timed-out", "{error}");
    let reason = events
        .wait_state("slow", ServerState::InstallFailed, 1)
        .await
        .unwrap_or_default();
    assert!(reason.contains("longer than 2 s"), "{reason}");
    assert!(
        !container_exists(&format!("cap-{instance}-slow-install")),
        "the install container is gone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_command_the_game_ignores_ends_in_a_kill_after_the_timeout() {
    let service = PodmanService::start();
    let (_plugins, plugin) = test_game().await;
    let data = tempfile::tempdir().unwrap();
    let (runtime, events) =
        container_runtime(data.path(), &plugin, &service, &instance(), |_| {}).await;
    // PID 1 of a container ignores SIGTERM unless it handles it; this one
    // reads its console and ignores `stop`.
    let mut spec = shell(
        "trap '' TERM INT; echo up; while read line; do echo got $line; done; sleep 600",
        limits(64, 0, 0),
    );
    spec.stop = StopPlan {
        method: StopMethod::ConsoleCommand {
            command: "stop".into(),
        },
        grace_secs: 1,
    };
    runtime.start("stubborn", spec).await.unwrap();
    events
        .wait_for("up", Duration::from_secs(10), |all| {
            console_of(all, "stubborn")
                .0
                .iter()
                .any(|l| l == "up")
                .then_some(())
        })
        .await;
    let started = Instant::now();
    runtime.stop("stubborn").await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "the grace time was given"
    );
    let reason = events
        .wait_state("stubborn", ServerState::Offline, 1)
        .await
        .unwrap_or_default();
    assert!(
        reason.contains("137") || reason.contains("signal"),
        "{reason}"
    );
    assert!(
        events.console("stubborn").0.iter().any(|l| l == "got stop"),
        "the stop command reached its console"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_agent_finds_its_running_container_and_follows_it_again() {
    let service = PodmanService::start();
    let (_plugins, plugin) = test_game().await;
    let data = tempfile::tempdir().unwrap();
    let instance = instance();
    let (_install, spec, _port) = game_spec(&plugin, "keep").await;
    let id = {
        let (runtime, events) =
            container_runtime(data.path(), &plugin, &service, &instance, |_| {}).await;
        runtime.start("keep", spec).await.unwrap();
        events.wait_state("keep", ServerState::Running, 1).await;
        container_of(&runtime, "keep")
    };
    let (runtime, events) =
        container_runtime(data.path(), &plugin, &service, &instance, |_| {}).await;
    assert_eq!(container_of(&runtime, "keep"), id, "the same container");
    let report = runtime.reports().into_iter().next().unwrap();
    assert_eq!(report.state, ServerState::Running, "not restarted");
    assert!(
        runtime.history("keep").iter().any(|l| l.contains("READY")),
        "its earlier console is back"
    );
    runtime.console_input("keep", "players").await.unwrap();
    events
        .wait_for("the players line", Duration::from_secs(10), |all| {
            console_of(all, "keep")
                .0
                .iter()
                .any(|l| l.starts_with("PLAYERS"))
                .then_some(())
        })
        .await;
    runtime.stop("keep").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_restart_mid_run_leaves_the_server_running_and_followed() {
    let mut service = PodmanService::start();
    let (_plugins, plugin) = test_game().await;
    let data = tempfile::tempdir().unwrap();
    let (runtime, events) =
        container_runtime(data.path(), &plugin, &service, &instance(), |_| {}).await;
    let (_install, spec, _port) = game_spec(&plugin, "steady").await;
    runtime.start("steady", spec).await.unwrap();
    events.wait_state("steady", ServerState::Running, 1).await;

    service.restart();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let report = runtime.reports().into_iter().next().unwrap();
    assert_eq!(
        report.state,
        ServerState::Running,
        "the server kept running"
    );
    // Console input and output work again through the new service.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let _ = runtime.console_input("steady", "players").await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let answered = events
            .console("steady")
            .0
            .iter()
            .any(|l| l.starts_with("PLAYERS"));
        if answered {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the console works after the engine restart"
        );
    }
    runtime.stop("steady").await.unwrap();
    events.wait_state("steady", ServerState::Offline, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_agents_on_one_engine_see_only_their_own_containers() {
    let service = PodmanService::start();
    let (_plugins, plugin) = test_game().await;
    let (first_data, second_data) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (first, events) =
        container_runtime(first_data.path(), &plugin, &service, &instance(), |_| {}).await;
    first
        .start("mine", shell("echo mine; sleep 120", limits(64, 0, 0)))
        .await
        .unwrap();
    events.wait_state("mine", ServerState::Starting, 1).await;
    let id = container_of(&first, "mine");

    let (second, _events) =
        container_runtime(second_data.path(), &plugin, &service, &instance(), |_| {}).await;
    assert!(
        second.reports().is_empty(),
        "the second Agent adopts nothing"
    );
    let error = second.kill("mine").await.unwrap_err();
    assert_eq!(error.code(), "unknown-server", "{error}");
    assert!(
        inspect(&id, "{{.State.Running}}") == "true",
        "the first Agent's container still runs"
    );
    first.kill("mine").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_that_exits_on_its_own_is_a_crash_with_its_exit_code() {
    let service = PodmanService::start();
    let (_plugins, plugin) = test_game().await;
    let data = tempfile::tempdir().unwrap();
    let (runtime, events) =
        container_runtime(data.path(), &plugin, &service, &instance(), |_| {}).await;
    runtime
        .start("quits", shell("echo bye; exit 3", limits(64, 0, 0)))
        .await
        .unwrap();
    let reason = events
        .wait_state("quits", ServerState::Crashed, 1)
        .await
        .unwrap_or_default();
    assert!(reason.contains("exit code 3"), "{reason}");
    let report = runtime.reports().into_iter().next().unwrap();
    assert_eq!(report.exit_code, Some(3));
    assert!(
        runtime.history("quits").iter().any(|l| l == "bye"),
        "its last output reached the console"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reinstall_with_wipe_empties_a_container_servers_directory_before_its_script() {
    let service = PodmanService::start();
    let (_plugins, plugin) = test_game().await;
    let data = tempfile::tempdir().unwrap();
    let (runtime, events) =
        container_runtime(data.path(), &plugin, &service, &instance(), |_| {}).await;
    let script = |contents: &str| {
        InstallStep::RunScript(Script {
            interpreter: "/bin/sh".into(),
            contents: contents.into(),
            env: vec![],
            timeout_secs: 60,
        })
    };
    let first = InstallPlan {
        steps: vec![script(
            "mkdir -p /mnt/server/world && echo old > /mnt/server/world/level.dat",
        )],
        image: Some(test_image().to_owned()),
        wipe: false,
    };
    runtime.install("rewipe", &first).await.unwrap();
    let dir = data.path().join("servers/rewipe");
    assert!(dir.join("world/level.dat").is_file());
    // The script sees what is left of the directory when it starts.
    let second = InstallPlan {
        steps: vec![script("ls -A /mnt/server > /mnt/server/left.txt")],
        image: Some(test_image().to_owned()),
        wipe: true,
    };
    runtime.install("rewipe", &second).await.unwrap();
    events.wait_state("rewipe", ServerState::Offline, 2).await;
    assert!(
        !dir.join("world").exists(),
        "the container's files were wiped"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("left.txt"))
            .unwrap()
            .trim(),
        "left.txt",
        "the script started in an empty directory"
    );
}
