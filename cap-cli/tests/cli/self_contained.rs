//! A copied `cap` on its own: alone in a fresh directory, started from
//! another one, with cargo and the Rust toolchain off its `PATH` and no
//! `CARGO*` or `RUSTUP*` variable set. It carries its bundled plugins, so
//! `cap panel` and `cap up` install `local-password` through the Panel's
//! plugin manager and the first administrator signs in over HTTP.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::support::{cap_binary, client, private_tempdir};

/// How long a copied `cap` may take to print its banner: it builds nothing.
const STARTUP: Duration = Duration::from_secs(120);

/// A copy of the built `cap` in a directory of its own, and an empty
/// working directory beside it.
struct CopiedCap {
    dir: tempfile::TempDir,
}

impl CopiedCap {
    fn new() -> CopiedCap {
        let dir = private_tempdir();
        std::fs::copy(cap_binary(), dir.path().join("cap")).expect("copy cap");
        std::fs::create_dir(dir.path().join("work")).expect("a working directory");
        CopiedCap { dir }
    }

    fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    /// Starts the copy with `args` and `env` in the working directory, on
    /// a `PATH` without cargo and an environment without anything of the
    /// build.
    fn start(&self, args: &[&str], env: &[(&str, &str)]) -> Child {
        let path = path_without_cargo();
        for dir in std::env::split_paths(&path) {
            assert!(!dir.join("cargo").exists(), "{} has cargo", dir.display());
        }
        Command::new(self.dir.path().join("cap"))
            .args(args)
            .current_dir(self.work())
            .env_clear()
            .env("PATH", path)
            .env("HOME", self.work())
            .env("CAP_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start the copied cap")
    }
}

/// This process's `PATH` without the directories holding cargo or rustc.
fn path_without_cargo() -> std::ffi::OsString {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let kept = std::env::split_paths(&path)
        .filter(|dir| !dir.join("cargo").exists() && !dir.join("rustc").exists());
    std::env::join_paths(kept).expect("a PATH")
}

/// What a started `cap` printed: its banner on stdout up to the line that
/// starts with `last`, and a task collecting everything on stderr.
struct Started {
    child: Child,
    banner: Vec<String>,
    stderr: tokio::task::JoinHandle<String>,
}

impl Started {
    async fn read(mut child: Child, last: &str) -> Started {
        let mut err = child.stderr.take().expect("piped stderr");
        let stderr = tokio::spawn(async move {
            let mut text = String::new();
            let _ = err.read_to_string(&mut text).await;
            text
        });
        let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let mut banner = Vec::new();
        while let Ok(Ok(Some(line))) = tokio::time::timeout(STARTUP, lines.next_line()).await {
            let done = line.trim_start().starts_with(last);
            banner.push(line);
            if done {
                break;
            }
        }
        Started {
            child,
            banner,
            stderr,
        }
    }

    /// The Panel's URL, from the banner's first line.
    fn url(&self) -> String {
        self.banner
            .first()
            .and_then(|l| l.strip_prefix("Panel listening on "))
            .unwrap_or_else(|| panic!("unexpected banner {:#?}", self.banner))
            .to_owned()
    }

    /// The value of the banner line `label:` (e.g. `Admin`).
    fn line(&self, label: &str) -> &str {
        let prefix = format!("{label}:");
        self.banner
            .iter()
            .find_map(|l| l.trim_start().strip_prefix(&prefix))
            .map(str::trim)
            .unwrap_or_else(|| panic!("no {label} line in {:#?}", self.banner))
    }

    /// Stops `cap` with SIGTERM; returns its stderr after a clean exit.
    async fn stop(mut self) -> String {
        let pid = self.child.id().expect("a running child").to_string();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(status.success());
        let exit = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("cap exits after SIGTERM")
            .expect("wait for cap");
        let stderr = self.stderr.await.expect("stderr");
        assert!(exit.success(), "{exit}: {stderr}");
        stderr
    }
}

/// Signs in through `local-password`; returns the access token after
/// checking who it names.
async fn sign_in(url: &str, password: &str) -> String {
    let http = client();
    let response = http
        .post(format!("{url}/api/v1/auth/login"))
        .json(&json!({"username": "admin", "password": password}))
        .send()
        .await
        .expect("login");
    assert_eq!(response.status(), 200);
    let login: Value = response.json().await.expect("JSON");
    let token = login["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("a token in {login:#}"))
        .to_owned();
    let me: Value = http
        .get(format!("{url}/api/v1/auth/me"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("me")
        .json()
        .await
        .expect("JSON");
    assert_eq!(me["user"]["username"], "admin", "{me:#}");
    assert_eq!(me["user"]["admin"], true, "{me:#}");
    token
}

/// The installed plugins as `(id, state)`, sorted.
async fn plugins(url: &str, token: &str) -> Vec<(String, String)> {
    let list: Value = client()
        .get(format!("{url}/api/v1/plugins"))
        .bearer_auth(token)
        .send()
        .await
        .expect("plugins")
        .json()
        .await
        .expect("JSON");
    let mut plugins: Vec<(String, String)> = list["items"]
        .as_array()
        .unwrap_or_else(|| panic!("items in {list:#}"))
        .iter()
        .map(|p| {
            let field = |name: &str| p[name].as_str().expect("a string").to_owned();
            (field("id"), field("state"))
        })
        .collect();
    plugins.sort();
    plugins
}

/// `cap` warns rather than fails when the bundled plugins or the first
/// admin are missing; neither warning may appear.
fn assert_installed_without_warnings(stderr: &str) {
    for warning in [
        "the bundled plugins are not installed",
        "no administrator was created",
    ] {
        assert!(!stderr.contains(warning), "{stderr}");
    }
}

fn assert_no_source_tree(dir: &Path) {
    for entry in std::fs::read_dir(dir).expect("read the directory") {
        let name = entry.expect("an entry").file_name();
        assert!(
            name != "Cargo.toml" && name != "example-plugins",
            "{} has a source tree",
            dir.display()
        );
    }
}

#[tokio::test]
async fn a_copied_cap_panel_without_cargo_installs_local_password_and_its_first_admin_signs_in() {
    let cap = CopiedCap::new();
    assert_no_source_tree(cap.dir.path());
    let child = cap.start(&["panel", "--listen", "127.0.0.1:0"], &[]);
    let started = Started::read(child, "Plugins:").await;
    let url = started.url();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    // No CAP_ADMIN_PASSWORD: the first admin's password is generated and
    // shown once, as `admin / <password>  (shown once; …)`.
    let admin = started.line("Admin").to_owned();
    let password = admin
        .strip_prefix("admin / ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("a generated password in {admin:?}"))
        .to_owned();
    assert_eq!(started.line("Plugins"), "local-password");

    let token = sign_in(&url, &password).await;
    assert_eq!(
        plugins(&url, &token).await,
        [("local-password".to_owned(), "active".to_owned())]
    );
    assert!(
        cap.work().join("data/panel.db").is_file(),
        "the data directory defaults to ./data"
    );
    assert_installed_without_warnings(&started.stop().await);
}

#[tokio::test]
async fn a_copied_cap_up_without_cargo_installs_every_bundled_plugin_and_its_first_admin_signs_in()
{
    let cap = CopiedCap::new();
    let password = "Copied-and-carried-42";
    // Without the local Agent, whose game servers would need the stand-in
    // game, which `cap` does not carry.
    let child = cap.start(
        &["up", "--listen", "127.0.0.1:0", "--no-agent"],
        &[("CAP_ADMIN_PASSWORD", password)],
    );
    let started = Started::read(child, "Market:").await;
    let url = started.url();
    let token = sign_in(&url, password).await;
    let mut expected: Vec<(String, String)> = [
        ("discord-webhook", "installed"),
        ("egg-bridge", "active"),
        ("local-password", "active"),
        ("minecraft-paper", "active"),
        ("player-list", "active"),
        ("quota-guard", "active"),
        ("scheduler", "active"),
        ("test-game", "active"),
    ]
    .into_iter()
    .map(|(id, state)| (id.to_owned(), state.to_owned()))
    .collect();
    expected.sort();
    assert_eq!(plugins(&url, &token).await, expected);
    assert_installed_without_warnings(&started.stop().await);
}
