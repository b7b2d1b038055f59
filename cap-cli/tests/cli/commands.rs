//! The `cap panel` command end to end: configuration precedence through a
//! real file, real environment variables and real flags; graceful exit on
//! SIGTERM; a clear error for a bad value.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::support::{cap_binary, client, private_tempdir};

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

/// `cap up` as a newcomer runs it: the Panel, the bundled plugins, the
/// first admin, a Marketplace and a local Agent that registers itself (and
/// serves SFTP, as asked); a test-game server started through the API
/// reaches `running` on the local node, its files are reached over SFTP
/// with the admin's password, and a second run re-adopts it.
#[tokio::test]
async fn cap_up_starts_a_local_agent_that_runs_a_server_and_readopts_it_after_a_restart() {
    let dir = private_tempdir();
    let password = "Up-and-running-42";
    let start = || {
        Command::new(cap_binary())
            .args([
                "up",
                "--listen",
                "127.0.0.1:0",
                "--sftp-listen",
                "127.0.0.1:0",
                "--data",
            ])
            .arg(dir.path())
            .env("CAP_ADMIN_PASSWORD", password)
            .env("CAP_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start cap up")
    };
    let read_banner = |child: &mut tokio::process::Child| {
        let stdout = child.stdout.take().expect("piped stdout");
        async move {
            let mut lines = BufReader::new(stdout).lines();
            let mut banner = Vec::new();
            // Building the stand-in game on a cold machine takes a while.
            while let Ok(Ok(Some(line))) =
                tokio::time::timeout(Duration::from_secs(600), lines.next_line()).await
            {
                let done = line.trim_start().starts_with("Agent:");
                banner.push(line);
                if done {
                    break;
                }
            }
            banner
        }
    };
    let mut child = start();
    let banner = read_banner(&mut child).await;
    let url = banner
        .first()
        .and_then(|l| l.strip_prefix("Panel listening on "))
        .unwrap_or_else(|| panic!("unexpected banner {banner:#?}"))
        .to_owned();
    assert!(
        banner
            .iter()
            .any(|l| l.trim_start().starts_with("Agent:   node ")),
        "the local Agent started: {banner:#?}"
    );
    assert!(
        banner.iter().any(|l| l.contains("single-tenant")),
        "cap up says it is single-tenant: {banner:#?}"
    );
    let http = client();
    let login: serde_json::Value = http
        .post(format!("{url}/api/v1/auth/login"))
        .json(&serde_json::json!({"username": "admin", "password": password}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("JSON");
    let token = login["access_token"].as_str().expect("a token").to_owned();
    let nodes = get_json(&http, &url, &token, "/api/v1/nodes").await;
    let local = nodes["items"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["name"] == "local"))
        .cloned()
        .unwrap_or_else(|| panic!("a local node: {nodes:#}"));
    let node_id = local["id"].as_str().expect("id").to_owned();
    let created: serde_json::Value = http
        .post(format!("{url}/api/v1/servers"))
        .bearer_auth(&token)
        .json(&serde_json::json!({
            "name": "first", "node_id": node_id, "game": {"plugin": "test-game"},
            "variables": {"READY_DELAY_MS": "50"},
            "limits": {"memory_mb": 256, "disk_mb": 100, "cpu_percent": 50}
        }))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("JSON");
    let server = created["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{created:#}"))
        .to_owned();
    let power = http
        .post(format!("{url}/api/v1/servers/{server}/power"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"action": "start"}))
        .send()
        .await
        .expect("power");
    assert_eq!(power.status(), 202);
    let mut running = false;
    for _ in 0..600 {
        let body = get_json(&http, &url, &token, &format!("/api/v1/servers/{server}")).await;
        if body["state"] == "running" {
            running = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(running, "the server reached running on the local node");

    // Its files over SFTP, where the server's answer says.
    let body = get_json(&http, &url, &token, &format!("/api/v1/servers/{server}")).await;
    let port = body["sftp"]["port"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or_else(|| panic!("an SFTP port: {body:#}"));
    let user = body["sftp"]["username"].as_str().expect("a username");
    assert!(user.starts_with("admin."), "{user}");
    assert!(
        banner
            .iter()
            .any(|l| l.contains(&format!("SFTP on 127.0.0.1:{port}"))),
        "the banner says where SFTP is: {banner:#?}"
    );
    if cap_e2e::sftp::available() {
        std::fs::write(
            dir.path()
                .join(format!("agent/servers/{server}/reached-over-sftp.txt")),
            "hello",
        )
        .expect("a file in the server's directory");
        let local = tempfile::tempdir().expect("a directory");
        let run = cap_e2e::sftp::run(
            port,
            user,
            &cap_e2e::sftp::Login::Password(password.to_owned()),
            local.path(),
            "ls\n",
        )
        .await;
        assert!(run.success, "{}", run.output);
        assert!(
            run.output.contains("reached-over-sftp.txt"),
            "{}",
            run.output
        );
    }

    // Stop everything; the game server keeps running and is re-adopted.
    let pid = child.id().expect("a running child").to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("run kill");
    let exit = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("cap up exits after SIGTERM")
        .expect("wait");
    assert!(exit.success(), "{exit}");
    let mut child = start();
    let banner = read_banner(&mut child).await;
    let url = banner
        .first()
        .and_then(|l| l.strip_prefix("Panel listening on "))
        .unwrap_or_else(|| panic!("unexpected banner {banner:#?}"))
        .to_owned();
    // The Panel moved (port 0): the local Agent follows it, says hello and
    // reports the server it re-adopted; only then is the node online.
    let login: serde_json::Value = http
        .post(format!("{url}/api/v1/auth/login"))
        .json(&serde_json::json!({"username": "admin", "password": password}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("JSON");
    let token = login["access_token"].as_str().expect("a token").to_owned();
    let mut online = false;
    for _ in 0..600 {
        let node: serde_json::Value = http
            .get(format!("{url}/api/v1/nodes/{node_id}"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("JSON");
        if node["online"] == true {
            online = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(online, "the local Agent reconnected to the moved Panel");
    let body: serde_json::Value = http
        .get(format!("{url}/api/v1/servers/{server}"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        body["state"], "running",
        "re-adopted, not crashed: {body:#}"
    );
    // Kill it so no stand-in outlives the test.
    let kill = http
        .post(format!("{url}/api/v1/servers/{server}/power"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"action": "kill"}))
        .send()
        .await
        .expect("power");
    assert_eq!(kill.status(), 202);
    for _ in 0..300 {
        let body: serde_json::Value = http
            .get(format!("{url}/api/v1/servers/{server}"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("JSON");
        if body["state"] == "offline" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    child.kill().await.ok();
}

async fn get_json(http: &reqwest::Client, url: &str, token: &str, path: &str) -> serde_json::Value {
    http.get(format!("{url}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("JSON")
}
