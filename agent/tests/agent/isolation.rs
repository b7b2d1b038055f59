//! Isolation of game servers and install scripts from the Agent, for real:
//! these tests run as root (the machine's test user), so the Agent really
//! switches users, sets limits before `exec` and creates cgroup v1 groups.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cap_agent::isolation::{self, RunAs};
use cap_agent::limits::{self, Cgroups};
use cap_agent::{Classifiers, NodeRuntime, NodeRuntimeConfig, ServerRuntime, link};
use cap_protocol::{
    InstallPlan, InstallStep, KeyValue, LimitsApplied, RegistrationResponse, RestartPolicy, Script,
    ServerLimits, ServerSpec, Signal, StartupPlan, StopMethod, StopPlan,
};
use tokio::sync::mpsc;

/// A data directory holding the Agent's node token, as `cap agent` leaves
/// it after registering.
fn data_dir_with_token() -> (tempfile::TempDir, PathBuf) {
    let data = tempfile::tempdir().unwrap();
    let token = data.path().join("credentials.json");
    link::save_credentials(
        &token,
        &RegistrationResponse {
            node_id: "node-1".into(),
            node_token: "capnode_the-agents-secret".into(),
            panel_url: "https://panel.example".into(),
            heartbeat_seconds: 15,
        },
    )
    .unwrap();
    (data, token)
}

/// The servers' user this root-run test process gets by default.
fn servers_user() -> RunAs {
    assert!(
        isolation::agent_is_root(),
        "these tests check the real user switch and must run as root"
    );
    RunAs::default_for_agent().expect("an Agent running as root has a servers' user")
}

async fn open(data: &Path, cgroups: Option<Cgroups>) -> NodeRuntime {
    let mut config = NodeRuntimeConfig::new(data);
    config.cgroups = cgroups;
    config.term_grace = Duration::from_secs(2);
    assert_eq!(config.run_as, Some(servers_user()));
    let (tx, mut rx) = mpsc::channel(1024);
    tokio::spawn(async move { while rx.recv().await.is_some() {} });
    NodeRuntime::open(config, Classifiers::new(), tx)
        .await
        .unwrap()
}

/// A spec running `script` with `sh` in the server directory.
fn shell(script: &str, env: Vec<KeyValue>, limits: ServerLimits) -> ServerSpec {
    ServerSpec {
        game: "shell".into(),
        startup: StartupPlan {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            env,
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
        image: None,
        ports: Vec::new(),
    }
}

/// The contents of `path` once it exists and is not empty.
async fn wait_for_file(path: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && !text.is_empty()
        {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The real, effective, saved and file-system uids of `pid`.
fn uids(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .unwrap()
        .split_whitespace()
        .map(|u| u.parse().unwrap())
        .collect()
}

const READ_TOKEN: &str = "cat \"$TOKEN\" > read.txt 2> err.txt; echo $? > rc.txt; exec sleep 30";

#[tokio::test]
async fn a_server_runs_as_an_unprivileged_user_that_cannot_read_the_agent_token() {
    let user = servers_user();
    let (data, token) = data_dir_with_token();
    let runtime = open(data.path(), None).await;
    let spec = shell(
        READ_TOKEN,
        vec![KeyValue::new("TOKEN", token.display().to_string())],
        ServerLimits {
            memory_mb: 0,
            cpu_percent: 0,
            max_processes: 0,
            disk_mb: 0,
        },
    );
    runtime.start("iso1", spec).await.unwrap();
    let dir = data.path().join("servers/iso1");
    let rc = wait_for_file(&dir.join("rc.txt")).await;
    let pid = runtime.reports()[0].pid.unwrap();

    assert_ne!(rc.trim(), "0", "reading the token must fail");
    assert!(
        std::fs::read_to_string(dir.join("err.txt"))
            .unwrap()
            .contains("Permission denied")
    );
    assert!(
        !std::fs::read_to_string(dir.join("read.txt"))
            .unwrap_or_default()
            .contains("the-agents-secret")
    );
    assert_eq!(
        uids(pid),
        vec![user.uid; 4],
        "every uid is the servers' user"
    );
    assert_ne!(user.uid, 0);
    assert_eq!(
        limits::process_limit(pid),
        Some(limits::DEFAULT_MAX_PROCESSES),
        "a process limit is set even when the spec asks for none"
    );
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode(data.path()),
        0o711,
        "servers pass through, cannot list"
    );
    assert_eq!(mode(&token), 0o600);
    assert_eq!(mode(&data.path().join("run")), 0o700);
    assert_eq!(mode(&dir), 0o700);
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(&dir).unwrap().uid(), user.uid);

    runtime.kill("iso1").await.unwrap();
}

#[tokio::test]
async fn an_install_script_runs_as_the_servers_user_with_a_process_limit() {
    let user = servers_user();
    let (data, token) = data_dir_with_token();
    let runtime = open(data.path(), None).await;
    let plan = InstallPlan {
        image: None,
        wipe: false,
        steps: vec![InstallStep::RunScript(Script {
            interpreter: "/bin/sh".into(),
            contents: "id -u > uid.txt; grep 'Max processes' /proc/self/limits > limits.txt; \
                       cat \"$TOKEN\" > read.txt 2>&1; echo $? > rc.txt"
                .into(),
            env: vec![KeyValue::new("TOKEN", token.display().to_string())],
            timeout_secs: 10,
        })],
    };
    runtime.install("iso2", &plan).await.unwrap();
    let dir = data.path().join("servers/iso2");
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
    assert_eq!(read("uid.txt").trim(), user.uid.to_string());
    assert_ne!(read("rc.txt").trim(), "0");
    assert!(!read("read.txt").contains("the-agents-secret"));
    let limit = read("limits.txt");
    assert_eq!(
        limit.split_whitespace().nth(2),
        Some(limits::DEFAULT_MAX_PROCESSES.to_string().as_str()),
        "{limit}"
    );
}

#[tokio::test]
async fn a_server_joins_cgroup_v1_groups_holding_its_memory_cpu_and_process_limits() {
    let Some(cgroups @ Cgroups::V1 { .. }) = limits::detect_cgroups() else {
        panic!("this machine offers writable cgroup v1 hierarchies; none were detected");
    };
    let (data, _token) = data_dir_with_token();
    let runtime = open(data.path(), Some(cgroups)).await;
    let id = format!("iso3-{}", std::process::id());
    let spec = shell(
        "echo up > up.txt; exec sleep 30",
        Vec::new(),
        ServerLimits {
            memory_mb: 64,
            cpu_percent: 50,
            max_processes: 32,
            disk_mb: 0,
        },
    );
    runtime.start(&id, spec).await.unwrap();
    wait_for_file(&data.path().join("servers").join(&id).join("up.txt")).await;
    let report = runtime.reports().into_iter().next().unwrap();
    let pid = report.pid.unwrap();
    let Some(LimitsApplied::CgroupV1 { paths }) = report.limits else {
        panic!("{:?}", report.limits);
    };
    let group = |controller: &str| {
        PathBuf::from(format!("/sys/fs/cgroup/{controller}/cap-agent/server-{id}"))
    };
    let read = |path: PathBuf| std::fs::read_to_string(path).unwrap().trim().to_owned();
    assert_eq!(
        paths,
        ["memory", "cpu", "pids"].map(|c| group(c).display().to_string())
    );
    assert_eq!(
        read(group("memory").join("memory.limit_in_bytes")),
        (64u64 << 20).to_string()
    );
    assert_eq!(read(group("cpu").join("cpu.cfs_quota_us")), "50000");
    assert_eq!(read(group("pids").join("pids.max")), "32");
    let membership = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    for controller in ["memory", "pids"] {
        assert!(
            membership
                .lines()
                .any(|l| l.contains(controller) && l.ends_with(&format!("/cap-agent/server-{id}"))),
            "{controller}: {membership}"
        );
    }
    assert_eq!(limits::process_limit(pid), Some(32));

    runtime.kill(&id).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while group("memory").exists() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!group("memory").exists(), "the group goes with the server");
}
