//! The `cap panel` command end to end: configuration precedence through a
//! real file, real environment variables and real flags; graceful exit on
//! SIGTERM; a clear error for a bad value.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::support::{cap_binary, client};

const STARTUP: Duration = Duration::from_secs(60);

#[tokio::test]
async fn the_panel_command_takes_flags_over_environment_over_the_config_file() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = dir.path().join("cap.toml");
    // Each source names a different data directory and listen address; the
    // file's and the environment's addresses are not on this machine, so
    // binding either would fail.
    std::fs::write(
        &file,
        format!(
            "listen = \"192.0.2.1:80\"\ndata = \"{}\"\n",
            dir.path().join("from-file").display()
        ),
    )
    .expect("write the config file");
    let mut child = Command::new(cap_binary())
        .args(["panel", "--listen", "127.0.0.1:0", "--config"])
        .arg(&file)
        .env_clear()
        .env("CAP_LISTEN", "192.0.2.2:80")
        .env("CAP_DATA", dir.path().join("from-env"))
        .env("CAP_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start cap panel");

    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(STARTUP, lines.next_line())
        .await
        .expect("cap panel prints its URL in time")
        .expect("readable stdout")
        .expect("a first line");
    let url = first
        .strip_prefix("Panel listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"));
    assert!(
        url.starts_with("http://127.0.0.1:"),
        "the flag's address wins: {url}"
    );

    let response = client()
        .get(format!("{url}/api/v1/health"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    assert!(
        dir.path().join("from-env").join("panel.db").exists(),
        "the environment's data directory wins over the file's"
    );
    assert!(!dir.path().join("from-file").exists());

    let pid = child.id().expect("a running child").to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("run kill");
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("cap panel exits after SIGTERM")
        .expect("wait for cap panel");
    assert!(
        exit.success(),
        "graceful shutdown exits with success: {exit}"
    );
}

#[tokio::test]
async fn the_panel_command_names_an_invalid_environment_variable_and_fails() {
    let output = Command::new(cap_binary())
        .arg("panel")
        .env_clear()
        .env("CAP_LISTEN", "not-an-address")
        .output()
        .await
        .expect("run cap panel");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("CAP_LISTEN"), "{stderr}");
    assert!(stderr.contains("not-an-address"), "{stderr}");
}
