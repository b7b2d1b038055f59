//! `cap up --runtime container` end to end: the Panel's API creates and
//! starts a bundled `test-game` server, and the local Agent runs it in a
//! container of a real Podman service (started here) from the test image
//! built locally.

use std::process::Stdio;
use std::time::Duration;

use cap_e2e::podman::{PodmanService, podman, test_image};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::support::{cap_binary, client, private_tempdir};

/// Logs in as the first admin; the access token.
async fn login(http: &reqwest::Client, url: &str, password: &str) -> String {
    let login: serde_json::Value = http
        .post(format!("{url}/api/v1/auth/login"))
        .json(&serde_json::json!({"username": "admin", "password": password}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("JSON");
    login["access_token"].as_str().expect("a token").to_owned()
}

async fn api(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    token: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let mut request = http.request(method, url).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    (
        status,
        response.json().await.unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test]
async fn cap_up_with_the_container_runtime_runs_the_test_game_in_a_container() {
    let service = PodmanService::start();
    test_image();
    let dir = private_tempdir();
    let password = "Contained-and-running-42";
    let mut child = Command::new(cap_binary())
        .args([
            "up",
            "--listen",
            "127.0.0.1:0",
            "--runtime",
            "container",
            "--container-host",
        ])
        .arg(service.host())
        .arg("--data")
        .arg(dir.path())
        .env("CAP_ADMIN_PASSWORD", password)
        .env("CAP_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start cap up");
    let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    let mut banner = Vec::new();
    while let Ok(Ok(Some(line))) =
        tokio::time::timeout(Duration::from_secs(600), lines.next_line()).await
    {
        let done = line.trim_start().starts_with("Agent:");
        banner.push(line);
        if done {
            break;
        }
    }
    let url = banner
        .first()
        .and_then(|l| l.strip_prefix("Panel listening on "))
        .unwrap_or_else(|| panic!("unexpected banner {banner:#?}"))
        .to_owned();
    assert!(
        banner
            .iter()
            .any(|l| l.trim_start().starts_with("Agent:   node ")),
        "the local Agent started on the container runtime: {banner:#?}"
    );
    let http = client();
    let token = login(&http, &url, password).await;
    let (_, nodes) = api(
        &http,
        reqwest::Method::GET,
        &format!("{url}/api/v1/nodes"),
        &token,
        None,
    )
    .await;
    let local = nodes["items"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["name"] == "local"))
        .cloned()
        .unwrap_or_else(|| panic!("a local node: {nodes:#}"));
    assert!(
        local["capabilities"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c == "container")),
        "the node advertises the container runtime: {local:#}"
    );
    // A port of its own: other tests' local nodes use the default range.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let node_id = local["id"].as_str().expect("id");
    let (status, body) = api(
        &http,
        reqwest::Method::POST,
        &format!("{url}/api/v1/nodes/{node_id}/allocations"),
        &token,
        Some(serde_json::json!({"ip": "127.0.0.1", "ports": [port.to_string()]})),
    )
    .await;
    assert_eq!(status, 201, "{body:#}");
    let (status, created) = api(
        &http,
        reqwest::Method::POST,
        &format!("{url}/api/v1/servers"),
        &token,
        Some(serde_json::json!({
            "name": "boxed", "node_id": node_id, "game": {"plugin": "test-game"},
            "allocation": {"ip": "127.0.0.1", "port": port},
            "variables": {"READY_DELAY_MS": "50"},
            "limits": {"memory_mb": 256, "disk_mb": 100, "cpu_percent": 50}
        })),
    )
    .await;
    assert_eq!(status, 201, "{created:#}");
    let server = created["id"].as_str().expect("id").to_owned();
    let power = format!("{url}/api/v1/servers/{server}/power");
    let (status, _) = api(
        &http,
        reqwest::Method::POST,
        &power,
        &token,
        Some(serde_json::json!({"action": "start"})),
    )
    .await;
    assert_eq!(status, 202);
    let mut state = serde_json::Value::Null;
    for _ in 0..600 {
        let (_, body) = api(
            &http,
            reqwest::Method::GET,
            &format!("{url}/api/v1/servers/{server}"),
            &token,
            None,
        )
        .await;
        state = body["state"].clone();
        if state == "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        state, "running",
        "the server reached running in its container"
    );
    let listed = podman()
        .args([
            "ps",
            "--filter",
            &format!("label=org.ctrl-alt-play.server={server}"),
            "--format",
            "{{.Image}}",
        ])
        .output()
        .expect("podman ps");
    let images = String::from_utf8_lossy(&listed.stdout);
    assert!(
        images.contains("cap-test-game"),
        "a container of the test image runs it: {images}"
    );

    let (status, _) = api(
        &http,
        reqwest::Method::POST,
        &power,
        &token,
        Some(serde_json::json!({"action": "kill"})),
    )
    .await;
    assert_eq!(status, 202);
    for _ in 0..300 {
        let (_, body) = api(
            &http,
            reqwest::Method::GET,
            &format!("{url}/api/v1/servers/{server}"),
            &token,
            None,
        )
        .await;
        if body["state"] == "offline" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    child.kill().await.ok();
}
