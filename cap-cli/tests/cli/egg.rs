//! `cap egg check`: offline, prints the game type, exits non-zero naming
//! the field of a bad egg. `cap egg import`: the same check first, then the
//! egg (from a file, or downloaded within the egg limit) sent to a real
//! Panel started in-process.

use std::process::Command;
use std::time::Duration;

use cap_panel::http::Principal;
use cap_panel::{Panel, RunningPanel};
use cap_panel_test_support::{TestDb, Tokens};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::support::cap_binary;

fn eggs_dir() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../egg/tests/fixtures")
}

#[test]
fn egg_check_prints_the_game_type_an_egg_would_create() {
    let out = Command::new(cap_binary())
        .args(["egg", "check"])
        .arg(eggs_dir().join("pelican/egg-pterodactyl-minetest.json"))
        .output()
        .expect("cap runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "Game type: Minetest",
        "Format: PTDL_v2 (Json)",
        "Minetest: ghcr.io/parkervcp/games:minetest (default)",
        "Default: minetest --server --port {{SERVER_PORT}}",
        "SERVER_NAME (Server name): default \"Minetest server\"; rules required|string|max:64; user-editable",
        "SERVER_ADMIN_NAME",
        "must be set when a server is created",
        ".minetest/minetest.conf (file)",
        "Stop: the console command \"/shutdown\"",
        "\" Server for gameid\"",
        "Not supported yet:",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
}

#[test]
fn egg_check_lists_the_features_it_does_not_act_on() {
    let out = Command::new(cap_binary())
        .args(["egg", "check"])
        .arg(eggs_dir().join("pterodactyl/minecraft__egg-paper.json"))
        .output()
        .expect("cap runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        stdout.contains("features[0]: feature \"eula\" is not acted on yet"),
        "{stdout}"
    );
}

#[test]
fn egg_check_exits_non_zero_naming_the_field_of_a_bad_egg() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = dir.path().join("bad.json");
    let mut egg: serde_json::Value = serde_json::from_slice(
        &std::fs::read(eggs_dir().join("pterodactyl/minecraft__egg-paper.json")).expect("the egg"),
    )
    .expect("JSON");
    egg["variables"][0]["rules"] = serde_json::json!("nullable|string|shiny");
    std::fs::write(&file, serde_json::to_vec(&egg).expect("JSON")).expect("write");
    let out = Command::new(cap_binary())
        .args(["egg", "check"])
        .arg(&file)
        .output()
        .expect("cap runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "nothing half-printed");
    assert!(
        stderr.contains("variables[0].rules: unknown rule \"shiny\""),
        "{stderr}"
    );
}

// ------------------------------------------------------------ cap egg import

/// The token of an admin of plugins on [`panel`]s.
const PLUGIN_ADMIN: &str = "plugin-admin-token";

/// A Panel on `db` where [`PLUGIN_ADMIN`] holds `admin.plugins`.
async fn panel(db: &TestDb) -> RunningPanel {
    Panel::builder(db.config())
        .authenticator(Tokens::from_principals([(
            PLUGIN_ADMIN,
            Principal::new("user-admin").with_permissions(["admin.plugins"]),
        )]))
        .bind()
        .await
        .expect("the Panel starts")
        .spawn()
}

/// Runs `cap egg import` with `args`, none of the caller's `CAP_PANEL_*`
/// settings; success and everything it printed.
async fn import(args: &[&str]) -> (bool, String, String) {
    let out = tokio::process::Command::new(cap_binary())
        .args(["egg", "import"])
        .args(args)
        .env_remove("CAP_PANEL_URL")
        .env_remove("CAP_PANEL_TOKEN")
        .output()
        .await
        .expect("cap runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A port on loopback that is listened on but never answered: whether
/// anything connected to it tells whether a command contacted "the Panel"
/// there.
struct Silent(std::net::TcpListener);

impl Silent {
    fn new() -> Silent {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
        listener.set_nonblocking(true).expect("non-blocking");
        Silent(listener)
    }

    fn url(&self) -> String {
        format!("http://{}", self.0.local_addr().expect("an address"))
    }

    fn contacted(&self) -> bool {
        match self.0.accept() {
            Ok(_) => true,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
            Err(e) => panic!("accept: {e}"),
        }
    }
}

/// What a [`serve`]d URL answers.
#[derive(Clone, Copy)]
enum Answer {
    /// The bytes, with their length.
    File(&'static [u8]),
    /// `n` bytes of JSON-ish filler, announced in `Content-Length` or not
    /// (then the body ends when the connection closes).
    Huge { bytes: usize, announced: bool },
}

/// An HTTP server on loopback answering every request with `answer`; its
/// URL.
async fn serve(answer: Answer) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let url = format!(
        "http://{}/egg.json",
        listener.local_addr().expect("an address")
    );
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                // The request head; its content does not matter.
                let mut head = Vec::new();
                let mut byte = [0_u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match socket.read(&mut byte).await {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                // Write errors end the answer: the client may hang up.
                match answer {
                    Answer::File(body) => {
                        let _ = socket
                            .write_all(
                                format!(
                                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                                    body.len()
                                )
                                .as_bytes(),
                            )
                            .await;
                        let _ = socket.write_all(body).await;
                    }
                    Answer::Huge { bytes, announced } => {
                        let length = if announced {
                            format!("content-length: {bytes}\r\n")
                        } else {
                            String::new()
                        };
                        let head = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n{length}connection: close\r\n\r\n"
                        );
                        if socket.write_all(head.as_bytes()).await.is_err() {
                            return;
                        }
                        let chunk = vec![b' '; 1 << 20];
                        let mut sent = 0;
                        while sent < bytes {
                            let n = chunk.len().min(bytes - sent);
                            if socket.write_all(&chunk[..n]).await.is_err() {
                                return;
                            }
                            sent += n;
                        }
                    }
                }
                let _ = socket.shutdown().await;
            });
        }
    });
    url
}

fn minetest_egg() -> &'static [u8] {
    static EGG: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    EGG.get_or_init(|| {
        std::fs::read(eggs_dir().join("pelican/egg-pterodactyl-minetest.json")).expect("the egg")
    })
}

#[tokio::test]
async fn egg_import_without_a_plugin_that_imports_eggs_fails_with_the_panels_no_catalogue_refusal()
{
    let db = TestDb::sqlite().await;
    let panel = panel(&db).await;
    let url = panel.url("");
    let egg = eggs_dir().join("pelican/egg-pterodactyl-minetest.json");
    let egg = egg.to_str().expect("a UTF-8 path");

    // Without a token nothing is sent, and the message says what to pass.
    let (ok, _, stderr) = import(&[egg, "--panel", &url]).await;
    assert!(!ok);
    assert!(stderr.contains("CAP_PANEL_TOKEN"), "{stderr}");

    // From a file, reviewed or imported; and downloaded from a URL: the
    // egg passes the offline check, reaches the Panel, and the Panel says
    // that no plugin imports eggs.
    let served = serve(Answer::File(minetest_egg())).await;
    for source in [egg, served.as_str()] {
        for extra in [&[][..], &["--preview"][..]] {
            let mut args = vec![source, "--panel", &url, "--token", PLUGIN_ADMIN];
            args.extend_from_slice(extra);
            let (ok, stdout, stderr) = import(&args).await;
            assert!(!ok, "{source} {extra:?}: {stdout}");
            assert!(stdout.is_empty(), "{stdout}");
            assert!(
                stderr.contains("the Panel answered 409") && stderr.contains("(no-catalogue)"),
                "{source} {extra:?}: {stderr}"
            );
            assert!(stderr.contains("egg-bridge"), "{stderr}");
        }
    }
    panel.stop().await.expect("the Panel stops");
}

#[tokio::test]
async fn egg_import_of_an_invalid_egg_fails_as_egg_check_does_before_contacting_the_panel() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = dir.path().join("bad.json");
    let mut egg: serde_json::Value = serde_json::from_slice(minetest_egg()).expect("JSON");
    egg["variables"][0]["rules"] = serde_json::json!("required|string|shiny");
    std::fs::write(&file, serde_json::to_vec(&egg).expect("JSON")).expect("write");
    let file = file.to_str().expect("a UTF-8 path");

    let check = Command::new(cap_binary())
        .args(["egg", "check", file])
        .output()
        .expect("cap runs");
    let check = String::from_utf8_lossy(&check.stderr).into_owned();
    assert!(
        check.contains("variables[0].rules: unknown rule \"shiny\""),
        "{check}"
    );

    let panel = Silent::new();
    let (ok, stdout, stderr) =
        import(&[file, "--panel", &panel.url(), "--token", PLUGIN_ADMIN]).await;
    assert!(!ok);
    assert!(stdout.is_empty(), "{stdout}");
    assert_eq!(stderr, check, "the same message as cap egg check");
    assert!(!panel.contacted(), "an invalid egg was sent to the Panel");
}

#[tokio::test]
async fn egg_import_refuses_a_download_larger_than_the_egg_limit_whether_announced_or_not() {
    let panel = Silent::new();
    for announced in [true, false] {
        let url = serve(Answer::Huge {
            bytes: 50 << 20,
            announced,
        })
        .await;
        let started = std::time::Instant::now();
        let (ok, stdout, stderr) =
            import(&[&url, "--panel", &panel.url(), "--token", PLUGIN_ADMIN]).await;
        assert!(!ok, "{stdout}");
        assert!(
            stderr.contains(&format!(
                "downloading {url}: the egg is larger than the {} byte limit",
                cap_egg::MAX_EGG_BYTES
            )),
            "announced {announced}: {stderr}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the download was not cut short"
        );
    }
    assert!(
        !panel.contacted(),
        "a refused download was sent to the Panel"
    );
}

#[tokio::test]
async fn egg_import_downloads_over_cleartext_only_from_loopback_unless_insecure() {
    let panel = Silent::new();
    // 192.0.2.0/24 is reserved for documentation: nothing answers there, and
    // the refusal comes before any attempt.
    let (ok, _, stderr) = import(&[
        "http://192.0.2.1/egg.json",
        "--panel",
        &panel.url(),
        "--token",
        PLUGIN_ADMIN,
    ])
    .await;
    assert!(!ok);
    assert!(
        stderr.contains("refusing the cleartext URL http://192.0.2.1/egg.json")
            && stderr.contains("--insecure"),
        "{stderr}"
    );
    let (ok, _, stderr) = import(&[
        "ftp://127.0.0.1/egg.json",
        "--panel",
        &panel.url(),
        "--token",
        PLUGIN_ADMIN,
    ])
    .await;
    assert!(!ok);
    assert!(stderr.contains("over https://"), "{stderr}");
    assert!(!panel.contacted());
}

/// Installs the bundled `egg-bridge` on `panel`, grants what it requests
/// and activates it, as an admin does through the API.
async fn install_egg_bridge(panel: &RunningPanel) {
    use cap_panel_test_support::{client, manifest_text, package_with};
    let http = client();
    let response = http
        .post(panel.url("/api/v1/plugins"))
        .bearer_auth(PLUGIN_ADMIN)
        .header("content-type", "application/octet-stream")
        .body(package_with("egg-bridge", &manifest_text("egg-bridge")))
        .send()
        .await
        .expect("the upload is answered");
    assert_eq!(
        response.status(),
        201,
        "{}",
        response.text().await.unwrap_or_default()
    );
    let plugin: serde_json::Value = http
        .get(panel.url("/api/v1/plugins/egg-bridge"))
        .bearer_auth(PLUGIN_ADMIN)
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("JSON");
    for (path, body) in [
        ("grant", plugin["requested"].clone()),
        ("activate", serde_json::json!({})),
    ] {
        let response = http
            .post(panel.url(&format!("/api/v1/plugins/egg-bridge/{path}")))
            .bearer_auth(PLUGIN_ADMIN)
            .json(&body)
            .send()
            .await
            .expect("answered");
        assert_eq!(
            response.status(),
            200,
            "{path}: {}",
            response.text().await.unwrap_or_default()
        );
    }
}

/// The names of the game types imported on `panel`.
async fn imported_names(panel: &RunningPanel) -> Vec<String> {
    let list: serde_json::Value = cap_panel_test_support::client()
        .get(panel.url("/api/v1/eggs"))
        .bearer_auth(PLUGIN_ADMIN)
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("JSON");
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["name"].as_str().expect("a name").to_owned())
        .collect()
}

#[tokio::test]
async fn egg_import_previews_keeping_nothing_imports_and_replaces_only_when_asked() {
    let db = TestDb::sqlite().await;
    let panel = panel(&db).await;
    install_egg_bridge(&panel).await;
    let url = panel.url("");
    let egg = eggs_dir().join("pelican/egg-pterodactyl-minetest.json");
    let egg = egg.to_str().expect("a UTF-8 path");
    let base = [egg, "--panel", url.as_str(), "--token", PLUGIN_ADMIN];

    let (ok, stdout, stderr) = import(&[&base[..], &["--preview"]].concat()).await;
    assert!(ok, "{stderr}");
    for expected in [
        "Would import ",
        "(Minetest) in egg-bridge, from a PTDL_v2 egg; nothing was kept.",
        "Minetest: ghcr.io/parkervcp/games:minetest (default)",
        "SERVER_NAME (Server name): default \"Minetest server\"",
        "Not supported yet:",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    assert!(
        imported_names(&panel).await.is_empty(),
        "a preview kept the egg"
    );

    let (ok, stdout, stderr) = import(&base).await;
    assert!(ok, "{stderr}");
    assert!(
        stdout.starts_with("Imported ") && stdout.contains("(Minetest) in egg-bridge"),
        "{stdout}"
    );
    assert_eq!(imported_names(&panel).await, ["Minetest"]);

    let (ok, _, stderr) = import(&base).await;
    assert!(!ok);
    assert!(
        stderr.contains("the Panel answered 409") && stderr.contains("(game-type-exists)"),
        "{stderr}"
    );
    assert!(stderr.contains("hint: pass --replace"), "{stderr}");

    let (ok, stdout, stderr) = import(&[&base[..], &["--replace"]].concat()).await;
    assert!(ok, "{stderr}");
    assert!(stdout.starts_with("Imported "), "{stdout}");
    assert_eq!(imported_names(&panel).await, ["Minetest"]);
    panel.stop().await.expect("the Panel stops");
}
