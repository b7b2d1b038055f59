//! Install plans: verified downloads, scripts with time limits, files and
//! config edits, confined to the server directory.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use cap_agent::install::{InstallError, Installer};
use cap_protocol::{
    ConfigEdit, ConfigFormat, Download, InstallPlan, InstallStep, KeyValue, Script, WriteFile,
};
use sha2::{Digest, Sha256};

/// Serves `/game.bin` with `body` on loopback; returns its URL.
async fn serve(body: &'static [u8]) -> String {
    let app =
        axum::Router::new().route("/game.bin", axum::routing::get(move || async move { body }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/game.bin")
}

fn installer() -> Installer {
    Installer::new(Duration::from_secs(10), 1 << 20).unwrap()
}

fn download(url: &str, sha256: String) -> InstallPlan {
    InstallPlan {
        image: None,
        wipe: false,
        steps: vec![InstallStep::Download(Download {
            url: url.into(),
            sha256,
            destination: "bin/game".into(),
            executable: true,
        })],
    }
}

async fn run(dir: &Path, plan: &InstallPlan) -> Result<(), InstallError> {
    installer()
        .run(&dir.join("server"), &dir.join("install.log"), plan)
        .await
}

#[tokio::test]
async fn a_verified_download_lands_executable_and_a_mismatch_leaves_the_previous_file() {
    let url = serve(b"#!/bin/sh\necho new game\n").await;
    let dir = tempfile::tempdir().unwrap();
    let good = hex::encode(Sha256::digest(b"#!/bin/sh\necho new game\n"));
    run(dir.path(), &download(&url, good.clone()))
        .await
        .unwrap();
    let file = dir.path().join("server/bin/game");
    assert_eq!(std::fs::read(&file).unwrap(), b"#!/bin/sh\necho new game\n");
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o755
    );

    std::fs::write(&file, b"previous version").unwrap();
    let error = run(dir.path(), &download(&url, "ab".repeat(32)))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, InstallError::ChecksumMismatch { actual, .. } if *actual == good),
        "{error}"
    );
    assert_eq!(error.code(), "checksum-mismatch");
    assert_eq!(std::fs::read(&file).unwrap(), b"previous version");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("server/bin"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, ["game"], "no temporary file is left behind");
}

#[tokio::test]
async fn a_missing_download_is_a_download_error() {
    let url = serve(b"x").await.replace("game.bin", "missing");
    let dir = tempfile::tempdir().unwrap();
    let error = run(dir.path(), &download(&url, "00".repeat(32)))
        .await
        .unwrap_err();
    assert_eq!(error.code(), "download-failed", "{error}");
}

#[tokio::test]
async fn a_script_runs_in_the_server_directory_with_only_its_own_environment() {
    let dir = tempfile::tempdir().unwrap();
    let plan = InstallPlan {
        image: None,
        wipe: false,
        steps: vec![
            InstallStep::WriteFile(WriteFile {
                path: "eula.txt".into(),
                contents: "eula=false\n".into(),
                mode: 0o600,
            }),
            InstallStep::RunScript(Script {
                interpreter: "sh".into(),
                contents:
                    "pwd > where.txt\necho \"$GREETING ${CARGO:-unset}\" > env.txt\necho to-log\n"
                        .into(),
                env: vec![KeyValue::new("GREETING", "hello")],
                timeout_secs: 10,
            }),
            InstallStep::EditConfig(ConfigEdit {
                path: "eula.txt".into(),
                format: ConfigFormat::Properties,
                set: vec![KeyValue::new("eula", "true")],
                set_if: vec![],
            }),
        ],
    };
    run(dir.path(), &plan).await.unwrap();
    let server = dir.path().join("server");
    let where_ = std::fs::read_to_string(server.join("where.txt")).unwrap();
    assert_eq!(
        Path::new(where_.trim()).canonicalize().unwrap(),
        server.canonicalize().unwrap()
    );
    assert_eq!(
        std::fs::read_to_string(server.join("env.txt")).unwrap(),
        "hello unset\n",
        "the Agent's environment does not leak into scripts"
    );
    assert_eq!(
        std::fs::read_to_string(server.join("eula.txt")).unwrap(),
        "eula=true\n"
    );
    assert_eq!(
        std::fs::metadata(server.join("eula.txt"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600,
        "an edit keeps the file's mode"
    );
    assert!(
        std::fs::read_to_string(dir.path().join("install.log"))
            .unwrap()
            .contains("to-log")
    );
}

#[tokio::test]
async fn a_script_past_its_time_limit_is_killed_with_its_children() {
    let dir = tempfile::tempdir().unwrap();
    let plan = InstallPlan {
        image: None,
        wipe: false,
        steps: vec![InstallStep::RunScript(Script {
            interpreter: "sh".into(),
            contents: "sleep 60 &\necho $! > child.pid\nsleep 60\n".into(),
            env: vec![],
            timeout_secs: 1,
        })],
    };
    let started = Instant::now();
    let error = run(dir.path(), &plan).await.unwrap_err();
    assert!(
        matches!(error, InstallError::ScriptTimedOut { secs: 1, .. }),
        "{error}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    let child: u32 = std::fs::read_to_string(dir.path().join("server/child.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let alive = cap_agent::procfs::stat(child).is_some_and(|s| s.state != 'Z');
    assert!(!alive, "the script's background child was killed too");
}

#[tokio::test]
async fn a_failing_script_fails_the_install_and_stops_later_steps() {
    let dir = tempfile::tempdir().unwrap();
    let plan = InstallPlan {
        image: None,
        wipe: false,
        steps: vec![
            InstallStep::RunScript(Script {
                interpreter: "sh".into(),
                contents: "echo 'fetching the server files'\necho 'curl: (7) Failed to connect' >&2\nexit 7\n".into(),
                env: vec![],
                timeout_secs: 5,
            }),
            InstallStep::WriteFile(WriteFile {
                path: "after.txt".into(),
                contents: "x".into(),
                mode: 0o644,
            }),
        ],
    };
    let error = run(dir.path(), &plan).await.unwrap_err();
    assert!(
        matches!(&error, InstallError::ScriptFailed { status, .. } if status.contains('7')),
        "{error}"
    );
    // The error says what failed: the script's last words.
    assert!(
        error.to_string().ends_with(": curl: (7) Failed to connect"),
        "{error}"
    );
    assert!(!dir.path().join("server/after.txt").exists());
}

#[tokio::test]
async fn plan_paths_outside_the_server_directory_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for path in ["../escape.txt", "/tmp/escape.txt", "a/../../escape.txt"] {
        let plan = InstallPlan {
            image: None,
            wipe: false,
            steps: vec![InstallStep::WriteFile(WriteFile {
                path: path.into(),
                contents: "x".into(),
                mode: 0o644,
            })],
        };
        let error = run(dir.path(), &plan).await.unwrap_err();
        assert_eq!(error.code(), "path-escape", "{path}: {error}");
    }
    assert!(!dir.path().join("escape.txt").exists());
}
