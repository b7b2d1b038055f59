//! End to end: install → start → ready → commands → stop, crashes and
//! automatic restarts, re-adoption after an Agent restart, floods.

use std::time::{Duration, Instant};

use cap_agent::{ConsoleConfig, RuntimeError, ServerRuntime};
use cap_protocol::{AgentMessage, ConsoleEvent, LimitsApplied, RestartPolicy, ServerState};

use super::support::{console_of, context, open_runtime, plans, rss_kib, test_game};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_installs_starts_becomes_ready_answers_commands_and_stops_cleanly() {
    let (_plugins, plugin) = test_game().await;
    let data = tempfile::tempdir().unwrap();
    let (runtime, events) = open_runtime(data.path(), &plugin, |_| {}).await;
    let ctx = context("alpha", 100);
    let (install, spec) = plans(&plugin, &ctx, RestartPolicy::default()).await;

    runtime.install("alpha", &install).await.unwrap();
    let config = std::fs::read_to_string(data.path().join("servers/alpha/standin.cfg")).unwrap();
    let port = ctx.ports[0].port;
    assert!(config.contains("server-id=alpha"), "{config}");
    assert!(config.contains(&format!("server-port={port}")), "{config}");
    events.wait_state("alpha", ServerState::Offline, 1).await;
    assert_eq!(
        events.transitions("alpha"),
        [
            (ServerState::Offline, ServerState::Installing),
            (ServerState::Installing, ServerState::Offline)
        ]
    );

    runtime.start("alpha", spec.clone()).await.unwrap();
    let again = runtime.start("alpha", spec.clone()).await.unwrap_err();
    assert!(matches!(again, RuntimeError::AlreadyRunning(_)), "{again}");
    assert_eq!(
        events
            .wait_state("alpha", ServerState::Running, 1)
            .await
            .as_deref(),
        Some("ready")
    );
    events.wait_event("alpha", ConsoleEvent::Ready).await;
    // The port is really in use by the stand-in.
    assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_err());

    let report = runtime.reports().into_iter().next().unwrap();
    let pid = report.pid.unwrap();
    assert_eq!(report.state, ServerState::Running);
    assert_eq!(report.limits, Some(LimitsApplied::Rlimit));
    assert_eq!(
        cap_agent::limits::address_space_limit(pid),
        Some(256 << 20),
        "the memory limit is the process's address-space rlimit"
    );
    let group = cap_agent::procfs::stat(pid).unwrap().pgrp;
    assert_eq!(
        u32::try_from(group).unwrap(),
        pid,
        "the server leads its own process group"
    );

    runtime.console_input("alpha", "join alice").await.unwrap();
    events
        .wait_event(
            "alpha",
            ConsoleEvent::PlayerJoined {
                name: "alice".into(),
            },
        )
        .await;
    let players = events
        .wait_for("stats with a player", Duration::from_secs(5), |all| {
            all.iter().find_map(|m| match m {
                AgentMessage::Stats {
                    server_id,
                    players: Some(1),
                    memory_bytes,
                    ..
                } if server_id == "alpha" => Some(*memory_bytes),
                _ => None,
            })
        })
        .await;
    assert!(players > 0, "stats report the server's memory");
    let bad = runtime
        .console_input("alpha", "say a\nstop")
        .await
        .unwrap_err();
    assert!(matches!(bad, RuntimeError::InvalidConsoleInput), "{bad}");
    runtime.console_input("alpha", "say hello").await.unwrap();
    events
        .wait_for("the say line", Duration::from_secs(5), |_| {
            runtime
                .history("alpha")
                .contains(&"SAY hello".to_owned())
                .then_some(())
        })
        .await;

    runtime.stop("alpha").await.unwrap();
    let reason = events.wait_state("alpha", ServerState::Offline, 2).await;
    assert_eq!(reason.as_deref(), Some("exit code 0"));
    assert!(runtime.history("alpha").contains(&"STOPPING".to_owned()));
    let report = runtime.reports().into_iter().next().unwrap();
    assert_eq!(report.state, ServerState::Offline);
    assert_eq!(report.exit_code, Some(0));
    assert_eq!(report.pid, None);
    assert!(
        cap_agent::procfs::stat(pid).is_none_or(|s| s.state == 'Z'),
        "the process is gone"
    );
    let (lines, dropped) = events.console("alpha");
    assert!(lines.contains(&"READY".to_owned()), "{lines:?}");
    assert_eq!(dropped, 0);
    let stopped = runtime.stop("alpha").await.unwrap_err();
    assert!(matches!(stopped, RuntimeError::NotRunning(_)), "{stopped}");

    runtime.delete("alpha").await.unwrap();
    assert!(!data.path().join("servers/alpha").exists());
    assert!(runtime.reports().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_ignoring_its_stop_command_is_terminated_then_killed() {
    let (_plugins, plugin) = test_game().await;
    let data = tempfile::tempdir().unwrap();
    let (runtime, events) = open_runtime(data.path(), &plugin, |c| {
        c.term_grace = Duration::from_millis(500);
    })
    .await;
    let ctx = context("deaf", 0);
    let (_, mut spec) = plans(&plugin, &ctx, RestartPolicy::default()).await;
    // A shell that ignores SIGTERM and the console, so only SIGKILL works.
    spec.startup.program = "sh".into();
    spec.startup.args = vec![
        "-c".into(),
        "trap '' TERM; echo READY; while :; do sleep 1; done".into(),
    ];
    spec.stop.grace_secs = 1;
    runtime.start("deaf", spec).await.unwrap();
    events.wait_state("deaf", ServerState::Running, 1).await;
    let started = Instant::now();
    runtime.stop("deaf").await.unwrap();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1400),
        "grace time and TERM grace were waited out: {took:?}"
    );
    assert!(took < Duration::from_secs(10), "{took:?}");
    let reason = events.wait_state("deaf", ServerState::Offline, 1).await;
    assert_eq!(reason.as_deref(), Some("killed by signal 9"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_server_is_restarted_with_growing_backoff_until_its_limit() {
    let (_plugins, plugin) = test_game().await;
    let data = tempfile::tempdir().unwrap();
    let (runtime, events) = open_runtime(data.path(), &plugin, |_| {}).await;
    let policy = RestartPolicy {
        enabled: true,
        max_attempts: 2,
        initial_backoff_ms: 300,
        max_backoff_ms: 5_000,
        stable_secs: 60,
    };
    let (_, spec) = plans(&plugin, &context("crashy", 0), policy).await;
    runtime.start("crashy", spec).await.unwrap();

    for attempt in 1..=3 {
        events
            .wait_state("crashy", ServerState::Running, attempt)
            .await;
        runtime
            .console_input("crashy", "crash out of cheese")
            .await
            .unwrap();
        let crashed_at = Instant::now();
        let reason = events
            .wait_state("crashy", ServerState::Crashed, attempt)
            .await
            .unwrap();
        assert_eq!(reason, "out of cheese (exit code 3)");
        if attempt <= 2 {
            let restart = events
                .wait_state("crashy", ServerState::Starting, attempt + 1)
                .await;
            assert_eq!(restart.as_deref(), Some("automatic restart"));
            let waited = crashed_at.elapsed();
            let backoff = Duration::from_millis(300 << (attempt - 1));
            assert!(
                waited >= backoff,
                "attempt {attempt}: {waited:?} < {backoff:?}"
            );
        }
    }
    // The limit is reached: it stays crashed.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let report = runtime.reports().into_iter().next().unwrap();
    assert_eq!(report.state, ServerState::Crashed);
    assert_eq!(report.exit_code, Some(3));
    let starts = events
        .transitions("crashy")
        .iter()
        .filter(|(_, s)| *s == ServerState::Starting)
        .count();
    assert_eq!(starts, 3);
}

#[test]
fn a_running_server_outlives_the_agent_and_is_readopted_by_the_next_one() {
    let data = tempfile::tempdir().unwrap();
    let first = tokio::runtime::Runtime::new().unwrap();
    let pid = first.block_on(async {
        let (_plugins, plugin) = test_game().await;
        let (runtime, events) = open_runtime(data.path(), &plugin, |_| {}).await;
        let (_, spec) = plans(&plugin, &context("stay", 0), RestartPolicy::default()).await;
        let (_, gone) = plans(&plugin, &context("gone", 0), RestartPolicy::default()).await;
        runtime.start("stay", spec).await.unwrap();
        runtime.start("gone", gone).await.unwrap();
        events.wait_state("stay", ServerState::Running, 1).await;
        events.wait_state("gone", ServerState::Running, 1).await;
        runtime.console_input("stay", "join bob").await.unwrap();
        events
            .wait_event("stay", ConsoleEvent::PlayerJoined { name: "bob".into() })
            .await;
        let reports = runtime.reports();
        (reports[1].pid.unwrap(), reports[0].pid.unwrap())
    });
    // The Agent goes away: every task of its runtime stops, the processes
    // do not.
    first.shutdown_timeout(Duration::from_secs(2));
    let (stay_pid, gone_pid) = pid;
    let stay_ticks = cap_agent::procfs::stat(stay_pid).unwrap().start_ticks;
    assert!(cap_agent::procfs::is_same_live_process(
        stay_pid, stay_ticks
    ));
    // One server dies while no Agent runs.
    assert!(cap_agent::signals::kill_group(
        gone_pid,
        rustix::process::Signal::KILL
    ));

    let second = tokio::runtime::Runtime::new().unwrap();
    second.block_on(async {
        let (_plugins, plugin) = test_game().await;
        // Wait until the killed one is really gone (reaped or zombie).
        for _ in 0..100 {
            if cap_agent::procfs::stat(gone_pid).is_none_or(|s| s.state == 'Z') {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (runtime, events) = open_runtime(data.path(), &plugin, |_| {}).await;
        let reports = runtime.reports();
        assert_eq!(reports[0].server_id, "gone");
        assert_eq!(reports[0].state, ServerState::Crashed);
        assert_eq!(reports[0].pid, None);
        assert_eq!(reports[1].server_id, "stay");
        assert_eq!(reports[1].state, ServerState::Running);
        assert_eq!(reports[1].pid, Some(stay_pid));
        assert_eq!(reports[1].limits, Some(LimitsApplied::Rlimit));
        assert!(
            runtime.history("stay").contains(&"JOIN bob".to_owned()),
            "history is recovered from the log"
        );

        runtime
            .console_input("stay", "say still here")
            .await
            .unwrap();
        events
            .wait_for(
                "the adopted server's answer",
                Duration::from_secs(5),
                |all| {
                    console_of(all, "stay")
                        .0
                        .contains(&"SAY still here".to_owned())
                        .then_some(())
                },
            )
            .await;
        assert!(
            runtime
                .history("stay")
                .contains(&"SAY still here".to_owned())
        );

        runtime.stop("stay").await.unwrap();
        let reason = events.wait_state("stay", ServerState::Offline, 1).await;
        assert_eq!(
            reason.as_deref(),
            Some("exited (status unknown: adopted process)")
        );
        assert!(!cap_agent::procfs::is_same_live_process(
            stay_pid, stay_ticks
        ));
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_line_flood_keeps_memory_and_disk_flat_and_other_consoles_live() {
    let (_plugins, plugin) = test_game().await;
    let data = tempfile::tempdir().unwrap();
    let (runtime, events) = open_runtime(data.path(), &plugin, |c| {
        c.console = ConsoleConfig {
            history_lines: 500,
            lines_per_second: 400,
            max_log_bytes: 1 << 20,
            ..ConsoleConfig::default()
        };
    })
    .await;
    let (_, flood) = plans(&plugin, &context("flood", 0), RestartPolicy::default()).await;
    let (_, quiet) = plans(&plugin, &context("quiet", 0), RestartPolicy::default()).await;
    runtime.start("flood", flood).await.unwrap();
    runtime.start("quiet", quiet).await.unwrap();
    events.wait_state("flood", ServerState::Running, 1).await;
    events.wait_state("quiet", ServerState::Running, 1).await;
    let before = rss_kib();

    runtime
        .console_input("flood", "flood 1000000")
        .await
        .unwrap();
    // While the flood runs, the other server answers promptly.
    events
        .wait_for("the flood to start", Duration::from_secs(10), |_| {
            runtime
                .history("flood")
                .iter()
                .any(|l| l.starts_with("FLOOD "))
                .then_some(())
        })
        .await;
    let asked = Instant::now();
    runtime
        .console_input("quiet", "say still live")
        .await
        .unwrap();
    events
        .wait_for("the quiet server's line", Duration::from_secs(3), |all| {
            console_of(all, "quiet")
                .0
                .contains(&"SAY still live".to_owned())
                .then_some(())
        })
        .await;
    let latency = asked.elapsed();
    let flood_done = runtime
        .history("flood")
        .last()
        .is_some_and(|l| l == "FLOOD 1000000");
    assert!(
        !flood_done,
        "the flood was still running when the quiet server answered"
    );

    events
        .wait_for("the end of the flood", Duration::from_secs(120), |_| {
            runtime
                .history("flood")
                .last()
                .is_some_and(|l| l == "FLOOD 1000000")
                .then_some(())
        })
        .await;
    let history = runtime.history("flood");
    assert_eq!(history.len(), 500);
    assert_eq!(history[0], "FLOOD 999501");

    // Every line was either forwarded or counted as dropped.
    runtime.console_input("flood", "say after").await.unwrap();
    events
        .wait_for("the line after the flood", Duration::from_secs(10), |all| {
            console_of(all, "flood")
                .0
                .contains(&"SAY after".to_owned())
                .then_some(())
        })
        .await;
    let (lines, dropped) = events.console("flood");
    let flood_lines = lines.iter().filter(|l| l.starts_with("FLOOD ")).count() as u64;
    assert_eq!(flood_lines + dropped, 1_000_000);
    assert!(
        flood_lines < 100_000,
        "throttled to about 400/s: {flood_lines}"
    );

    let grown_mib = rss_kib().saturating_sub(before) / 1024;
    assert!(grown_mib < 48, "memory grew by {grown_mib} MiB");
    let log = data.path().join("run/flood/console.log");
    let on_disk = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(&log).unwrap().blocks() * 512
    };
    assert!(
        on_disk < 4 << 20,
        "the read part of the log is released from disk: {on_disk} bytes"
    );
    assert!(
        latency < Duration::from_secs(2),
        "the other server's console stayed live: {latency:?}"
    );
    runtime.kill("flood").await.unwrap();
    runtime.kill("quiet").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reinstall_with_wipe_empties_the_directory_first_and_one_without_keeps_the_files() {
    let (_plugins, plugin) = test_game().await;
    let data = tempfile::tempdir().unwrap();
    let (runtime, events) = open_runtime(data.path(), &plugin, |_| {}).await;
    let ctx = context("wiped", 100);
    let (install, spec) = plans(&plugin, &ctx, RestartPolicy::default()).await;
    assert!(!install.wipe, "the game's plan keeps files unless asked");
    runtime.install("wiped", &install).await.unwrap();
    let dir = data.path().join("servers/wiped");
    std::fs::write(dir.join("world.dat"), "the world").unwrap();
    std::fs::create_dir_all(dir.join("plugins/extra")).unwrap();
    std::fs::write(dir.join("plugins/extra/a.jar"), "jar").unwrap();
    // The node's backups live beside the servers, not in them; a link to
    // them from the server's directory is removed as a link.
    let backups = data.path().join("backups/wiped");
    std::fs::create_dir_all(&backups).unwrap();
    std::fs::write(backups.join("bkp_1.tar.zst"), "archive").unwrap();
    std::os::unix::fs::symlink(&backups, dir.join("backups-link")).unwrap();

    runtime.install("wiped", &install).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.join("world.dat")).unwrap(),
        "the world",
        "a reinstall without wipe keeps the files"
    );
    assert!(dir.join("plugins/extra/a.jar").is_file());

    let wipe = cap_protocol::InstallPlan {
        wipe: true,
        ..install.clone()
    };
    runtime.install("wiped", &wipe).await.unwrap();
    assert!(!dir.join("world.dat").exists(), "wiped");
    assert!(!dir.join("plugins").exists(), "wiped with its folders");
    assert!(std::fs::symlink_metadata(dir.join("backups-link")).is_err());
    assert!(
        dir.join("standin.cfg").is_file(),
        "the plan ran after the wipe"
    );
    assert_eq!(
        std::fs::read_to_string(backups.join("bkp_1.tar.zst")).unwrap(),
        "archive",
        "the backups are untouched"
    );
    events.wait_state("wiped", ServerState::Offline, 3).await;
    // The reinstalled server starts.
    runtime.start("wiped", spec).await.unwrap();
    events.wait_state("wiped", ServerState::Running, 1).await;
    runtime.kill("wiped").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reinstall_of_a_running_server_is_refused_and_wipes_nothing() {
    let (_plugins, plugin) = test_game().await;
    let data = tempfile::tempdir().unwrap();
    let (runtime, events) = open_runtime(data.path(), &plugin, |_| {}).await;
    let ctx = context("busy", 100);
    let (install, spec) = plans(&plugin, &ctx, RestartPolicy::default()).await;
    runtime.install("busy", &install).await.unwrap();
    runtime.start("busy", spec).await.unwrap();
    events.wait_state("busy", ServerState::Running, 1).await;
    let dir = data.path().join("servers/busy");
    std::fs::write(dir.join("world.dat"), "the world").unwrap();
    let wipe = cap_protocol::InstallPlan {
        wipe: true,
        ..install
    };
    let error = runtime.install("busy", &wipe).await.unwrap_err();
    assert!(matches!(error, RuntimeError::AlreadyRunning(_)), "{error}");
    assert!(dir.join("world.dat").is_file(), "nothing was wiped");
    runtime.kill("busy").await.unwrap();
}
