//! The Web UI in a real browser: Debian's headless Chromium, driven over
//! WebDriver (`chromedriver`) with `fantoccini`, against a Panel started
//! in-process with identity on and the bundled plugins (local-password,
//! test-game, quota-guard, player-list), packed from their sources,
//! installed the way `cap up` installs them; where a test starts game servers, a real Agent running
//! the real `cap-standin-game` (the harness of the Agent tests), natively or
//! in containers of a real Podman service the test starts; where it
//! installs from a Marketplace, a real one with a publisher (the harness
//! of the Marketplace tests).
//!
//! Chromium and chromedriver are found by `cap_test_support::services`
//! (`/usr/bin/chromium` and `/usr/bin/chromedriver`, or
//! `CAP_TEST_CHROMIUM` / `CAP_TEST_CHROMEDRIVER`); without them these
//! tests fail and say how to install them. They never pass without a
//! browser.
//!
//! Screenshots of the main pages, at desktop and phone widths, land in
//! `<target>/ui-screenshots/` as test artifacts.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cap_agent::node::RunningNode;
use cap_panel::bundled::{self, Bundled, Quiet};
use cap_panel::config::Config;
use cap_panel::db::Actor;
use cap_panel::identity::permissions::Permission;
use cap_panel::identity::users::{IdentityLink, NewUser, create_role, create_user_with_roles};
use cap_panel::identity::{IdentityOptions, LOCAL_PASSWORD, ProviderRegistry, bootstrap_admin};
use cap_panel::{Panel, RunningPanel};
use cap_runtime::api::{Credentials, PasswordCredentials};
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use cap_panel_test_support as support;
use support::{
    MarketplaceWithPublisher, TestDb, code_at, free_port, manifest_text, package_with,
    publish_signed, start_agent, start_container_agent, wrong_code,
};

mod allocations;
mod backups;
mod databases;
mod files;
mod schedules;
mod suspension;
mod transfers;

const ADMIN_PASSWORD: &str = "Correct-Horse-Battery-42";
const PLAYER_PASSWORD: &str = "Player-Password-Staple-7";
/// How long the UI may take to show something.
const UI_WAIT: Duration = Duration::from_secs(20);
/// The WebDriver keys (`send_keys` text) for Enter, Tab and the up arrow.
const ENTER: &str = "\u{e007}";
const TAB: &str = "\u{e004}";
const ARROW_UP: &str = "\u{e013}";
/// The bundled plugins of most tests (example plugins by id; each is
/// activated on install).
const PLUGINS: &[&str] = &["local-password", "test-game", "quota-guard", "player-list"];

/// What a test's Panel has.
struct Setup {
    /// The bundled plugins installed.
    plugins: &'static [&'static str],
    /// Whether a real Agent serves the node.
    agent: bool,
    /// The container engine the Agent runs its servers in
    /// (`--runtime container --container-host …`); natively without one.
    container_host: Option<String>,
    /// The Marketplace the Panel installs from.
    marketplace_url: Option<String>,
}

impl Default for Setup {
    fn default() -> Setup {
        Setup {
            plugins: PLUGINS,
            agent: false,
            container_host: None,
            marketplace_url: None,
        }
    }
}

/// A Panel as `cap up` runs it, on SQLite, with one node on loopback.
struct World {
    panel: RunningPanel,
    providers: ProviderRegistry,
    admin_token: String,
    node_id: String,
    agent: Option<RunningNode>,
    agent_dir: Option<tempfile::TempDir>,
    _db: TestDb,
}

async fn world(setup: Setup) -> World {
    let db = TestDb::sqlite().await;
    let providers = ProviderRegistry::new();
    let config = Config {
        marketplace_url: setup.marketplace_url,
        ..db.config()
    };
    let panel = Panel::builder(config)
        .identity(providers.clone(), IdentityOptions::default())
        .bind()
        .await
        .expect("the Panel starts")
        .spawn();
    let plugins = panel.state().plugins().expect("plugin management runs");
    // Each plugin's parts from its sources, as `cap` carries them.
    let parts: Vec<(&str, String, Vec<u8>)> = setup
        .plugins
        .iter()
        .map(|id| (*id, manifest_text(id), cap_e2e::component(id)))
        .collect();
    let packages: Vec<Bundled<'_>> = parts
        .iter()
        .map(|(id, manifest, component)| Bundled {
            id,
            manifest: manifest.as_bytes(),
            component,
            assets: &[],
            activate_on_install: true,
        })
        .collect();
    bundled::ensure_installed(plugins, &packages, &Quiet)
        .await
        .expect("the bundled plugins install");
    bootstrap_admin(
        panel.state().db(),
        &providers,
        Some(ADMIN_PASSWORD.to_owned()),
    )
    .await
    .expect("the admin is created");
    let admin_token = login(&panel, "admin", ADMIN_PASSWORD).await;
    let node = call(
        &panel,
        "POST",
        "/api/v1/nodes",
        &admin_token,
        Some(
            json!({"name": "node-1", "address": "127.0.0.1", "memory_mb": 65536,
                    "disk_mb": 100000, "cpu_percent": 800}),
        ),
        201,
    )
    .await;
    let node_id = node["id"].as_str().expect("a node id").to_owned();
    call(
        &panel,
        "POST",
        &format!("/api/v1/nodes/{node_id}/allocations"),
        &admin_token,
        Some(json!({"ip": "127.0.0.1", "ports": [free_port(), free_port()]})),
        201,
    )
    .await;
    let (agent, agent_dir) = if setup.agent {
        let token = call(
            &panel,
            "POST",
            &format!("/api/v1/nodes/{node_id}/registration-tokens"),
            &admin_token,
            Some(json!({})),
            201,
        )
        .await;
        let dir = tempfile::tempdir().expect("a temporary directory");
        let token = token["token"].as_str().expect("a token").to_owned();
        let agent = match &setup.container_host {
            Some(host) => start_container_agent(&panel, dir.path(), Some(token), host).await,
            None => start_agent(&panel, dir.path(), Some(token)).await,
        };
        let deadline = Instant::now() + UI_WAIT;
        loop {
            let node = call(
                &panel,
                "GET",
                &format!("/api/v1/nodes/{node_id}"),
                &admin_token,
                None,
                200,
            )
            .await;
            if node["online"] == json!(true) {
                break;
            }
            assert!(Instant::now() < deadline, "the Agent never came online");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        (Some(agent), Some(dir))
    } else {
        (None, None)
    };
    World {
        panel,
        providers,
        admin_token,
        node_id,
        agent,
        agent_dir,
        _db: db,
    }
}

async fn login(panel: &RunningPanel, username: &str, password: &str) -> String {
    let answer: Value = support::client()
        .post(panel.url("/api/v1/auth/login"))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .expect("the login request is answered")
        .json()
        .await
        .expect("a JSON answer");
    answer["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no access token in {answer}"))
        .to_owned()
}

async fn call(
    panel: &RunningPanel,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
    status: u16,
) -> Value {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
    let mut request = support::client()
        .request(method, panel.url(path))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("the request is answered");
    let actual = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    assert_eq!(actual, status, "{path}: {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// A user `username` who signs in with local-password.
async fn create_password_user(world: &World, username: &str, password: &str) -> String {
    let provider = world
        .providers
        .get(LOCAL_PASSWORD)
        .expect("local-password is active");
    provider
        .set_password(username, password)
        .await
        .expect("the provider answers")
        .expect("the password is accepted");
    let identity = provider
        .authenticate(&Credentials::Password(PasswordCredentials {
            username: username.to_owned(),
            password: password.to_owned(),
            second_factor: None,
        }))
        .await
        .expect("the provider answers")
        .expect("the password works");
    // Players may use every server permission on the servers they are
    // given; a subuser grant narrows that per server.
    let db = world.panel.state().db();
    let role = create_role(
        db,
        &format!("{username}-player"),
        "Plays on servers",
        &Permission::for_subusers()
            .map(|p| p.as_str().to_owned())
            .collect::<Vec<_>>(),
        &Actor::system(),
    )
    .await
    .expect("the role is created");
    let user = create_user_with_roles(
        db,
        &cap_panel::identity::users::new_user_id(),
        &NewUser {
            username: username.to_owned(),
            ..NewUser::default()
        },
        Some(&IdentityLink {
            provider_id: LOCAL_PASSWORD.to_owned(),
            subject: identity.subject,
        }),
        &[role],
        &Actor::system(),
    )
    .await
    .expect("the user is created");
    user.id
}

/// chromedriver on a free port, killed when dropped, and the browser it
/// drives.
struct Driver {
    child: Child,
    url: String,
    browser: std::path::PathBuf,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // A session a test did not close leaves its browser running after
        // chromedriver goes: the browsers chromedriver started go first.
        for browser in children_of(self.child.id()) {
            let _ = Command::new("kill")
                .args(["-KILL", &browser.to_string()])
                .status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The processes whose parent is `parent` (from `/proc/<pid>/stat`).
fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // `pid (comm) state ppid …`; comm may hold spaces and parentheses.
            let ppid: u32 = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            (ppid == parent).then_some(pid)
        })
        .collect()
}

fn start_driver() -> Driver {
    let chromium = cap_test_support::services::chromium();
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let child = Command::new(&chromium.driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
        browser: chromium.browser,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "chromedriver did not listen within 20 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    driver
}

/// How the browser draws scrollbars. Whether a page scrolls sideways
/// depends on it: classic scrollbars (desktop Linux, Windows, and headless
/// Chromium on most machines) take their width from the page's client
/// width, overlay scrollbars (phones, macOS by default) take none. The
/// layout checks run under both, so that their result does not depend on
/// the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scrollbars {
    Classic,
    Overlay,
}

impl Scrollbars {
    /// The Chromium switch that selects this style.
    fn switch(self) -> &'static str {
        match self {
            Scrollbars::Classic => "--disable-features=OverlayScrollbar",
            Scrollbars::Overlay => "--hide-scrollbars",
        }
    }
}

/// A Chromium session with classic scrollbars.
async fn browser(driver: &Driver, width: u32, height: u32) -> Client {
    browser_with(driver, width, height, Scrollbars::Classic).await
}

/// A Chromium session pinned to what the layout checks depend on: the
/// window size, a device scale of 1, the scrollbar style and the language
/// (the fonts are Debian's, which `.ci/run` installs). It checks that the
/// scrollbar style took effect before it is used.
async fn browser_with(driver: &Driver, width: u32, height: u32, scrollbars: Scrollbars) -> Client {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": driver.browser,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--force-device-scale-factor=1",
                     "--lang=en-US", scrollbars.switch(),
                     format!("--window-size={width},{height}")],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let client = ClientBuilder::new(connector)
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a Chromium session");
    let width = scrollbar_width(&client).await;
    match scrollbars {
        Scrollbars::Classic => assert!(
            width > 0,
            "Chromium was asked for classic scrollbars but draws them {width} px wide"
        ),
        Scrollbars::Overlay => assert_eq!(
            width, 0,
            "Chromium was asked for overlay scrollbars but draws them {width} px wide"
        ),
    }
    client
}

/// How much of a box's width a vertical scrollbar takes in this browser.
async fn scrollbar_width(client: &Client) -> i64 {
    client
        .execute(
            "const probe = document.createElement('div');
             probe.style.cssText = 'position:absolute;width:100px;height:100px;overflow:scroll';
             document.documentElement.append(probe);
             const width = probe.offsetWidth - probe.clientWidth;
             probe.remove();
             return width;",
            vec![],
        )
        .await
        .expect("a script result")
        .as_i64()
        .expect("a width in pixels")
}

fn screenshot_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target directory")
        .join("ui-screenshots");
    std::fs::create_dir_all(&dir).expect("the screenshot directory");
    dir
}

async fn screenshot(client: &Client, name: &str) {
    let png = client.screenshot().await.expect("a screenshot");
    std::fs::write(screenshot_dir().join(format!("{name}.png")), png).expect("saving a screenshot");
}

async fn wait_for(client: &Client, css: &str) -> Element {
    match client
        .wait()
        .at_most(UI_WAIT)
        .for_element(Locator::Css(css))
        .await
    {
        Ok(element) => element,
        Err(e) => panic!("{css} did not appear: {e}\n{}", diagnose(client).await),
    }
}

/// What the page shows and whether its modules load, for a failure
/// message.
async fn diagnose(client: &Client) -> String {
    let text = client
        .execute("return document.body.innerText;", vec![])
        .await
        .map(|v| v.to_string())
        .unwrap_or_default();
    let modules = client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             import('/assets/app.js').then(() => done('modules load'), (e) => done(String(e)));",
            vec![],
        )
        .await
        .map(|v| v.to_string())
        .unwrap_or_default();
    let url = client
        .current_url()
        .await
        .map(|u| u.to_string())
        .unwrap_or_default();
    format!("url: {url}\npage text: {text}\nmodules: {modules}")
}

/// Waits until the text of `css` satisfies `good` (described by `what`);
/// returns the text.
async fn wait_for_text_where(
    client: &Client,
    css: &str,
    what: &str,
    good: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + UI_WAIT;
    let mut last = String::new();
    loop {
        if let Ok(element) = client.find(Locator::Css(css)).await
            && let Ok(text) = element.text().await
        {
            if good(&text) {
                return text;
            }
            last = text;
        }
        assert!(
            Instant::now() < deadline,
            "{css} never {what}; last text: {last:?}\n{}",
            diagnose(client).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the text of `css` contains `needle`; returns the text.
async fn wait_for_text(client: &Client, css: &str, needle: &str) -> String {
    wait_for_text_where(client, css, &format!("contained {needle:?}"), |t| {
        t.contains(needle)
    })
    .await
}

/// Fills the sign-in form and submits it.
async fn submit_sign_in(client: &Client, panel: &RunningPanel, username: &str, password: &str) {
    client.goto(&panel.url("/")).await.expect("the Panel loads");
    wait_for(client, "#login-form").await;
    fill(client, "#login-form input[name=username]", username).await;
    fill(client, "#login-form input[name=password]", password).await;
    click(client, "#login-submit").await;
}

async fn sign_in(client: &Client, panel: &RunningPanel, username: &str, password: &str) {
    submit_sign_in(client, panel, username, password).await;
    wait_for(client, "#server-list").await;
}

async fn fill(client: &Client, css: &str, value: &str) {
    let input = wait_for(client, css).await;
    input.clear().await.expect("clearing");
    input.send_keys(value).await.expect("typing");
}

async fn click(client: &Client, css: &str) {
    wait_for(client, css)
        .await
        .click()
        .await
        .unwrap_or_else(|e| panic!("clicking {css}: {e}"));
}

/// Whether the element `css` is disabled.
async fn disabled(client: &Client, css: &str) -> bool {
    wait_for(client, css)
        .await
        .prop("disabled")
        .await
        .expect("a property")
        .as_deref()
        == Some("true")
}

/// The message under the form field `css` (from its `aria-describedby`),
/// once there is one.
async fn field_error(client: &Client, css: &str) -> String {
    let id = wait_for(client, css)
        .await
        .attr("aria-describedby")
        .await
        .expect("an attribute")
        .expect("the field names its error element");
    wait_for_text_where(client, &format!("#{id}"), "showed an error", |t| {
        !t.is_empty()
    })
    .await
}

/// Fills the create-server form (name, memory, game variables by key) and
/// submits it.
async fn create_server_in_ui(
    client: &Client,
    panel: &RunningPanel,
    name: &str,
    memory_mb: u64,
    variables: &[(&str, &str)],
) {
    client
        .goto(&panel.url("/#/servers/new"))
        .await
        .expect("navigating");
    wait_for(client, "#create-server-form").await;
    // The game and node selects default to the only ones there are.
    fill(client, "#create-server-form input[name=name]", name).await;
    fill(
        client,
        "#create-server-form input[name=memory]",
        &memory_mb.to_string(),
    )
    .await;
    for (key, value) in variables {
        fill(client, &format!("#create-server-form [name={key}]"), value).await;
    }
    click(client, "#create-submit").await;
}

/// Types `keys` into whatever has the keyboard focus.
async fn type_keys(client: &Client, keys: &str) {
    client
        .active_element()
        .await
        .expect("a focused element")
        .send_keys(keys)
        .await
        .expect("typing");
}

/// Types `command` into the console input and presses Enter.
async fn console_command(client: &Client, command: &str) {
    fill(client, "#console-input", &format!("{command}{ENTER}")).await;
    wait_for_text(client, "#console-output", &format!("> {command}")).await;
}

/// How many console lines read exactly `text`.
async fn console_lines(client: &Client, text: &str) -> u64 {
    client
        .execute(
            "return [...document.querySelectorAll('#console-output > div')]
               .filter((d) => d.textContent === arguments[0]).length;",
            vec![json!(text)],
        )
        .await
        .expect("a script result")
        .as_u64()
        .expect("a count")
}

/// The main pages: URL fragment, what shows it is ready, screenshot name.
const PAGES: &[(&str, &str, &str)] = &[
    ("/#/servers", "#server-list table", "servers"),
    ("/#/servers/new", "#create-server-form", "create-server"),
    ("/#/admin/nodes", "#node-list table", "admin-nodes"),
    ("/#/admin/plugins", "#plugin-list table", "admin-plugins"),
    (
        "/#/admin/plugins/player-list",
        "#plugin-state",
        "admin-plugin-detail",
    ),
    ("/#/admin/eggs", "#egg-list > *", "admin-eggs"),
    ("/#/admin/users", "#user-list table", "admin-users"),
    ("/#/admin/roles", "#role-list", "admin-roles"),
    ("/#/audit", "#audit-table tbody tr", "audit-log"),
    ("/#/account", "#api-keys", "account"),
];

/// Opens `fragment`, waits for `ready` and saves a screenshot; at phone
/// width also checks that the page does not scroll sideways.
async fn show_page(client: &Client, world: &World, fragment: &str, ready: &str, name: &str) {
    client
        .goto(&world.panel.url(fragment))
        .await
        .expect("navigating");
    wait_for(client, ready).await;
    screenshot(client, name).await;
    assert_fits(client, fragment).await;
}

/// Asserts that the page shown (`what`) does not scroll sideways.
async fn assert_fits(client: &Client, what: &str) {
    let overflow = client
        .execute(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth;",
            vec![],
        )
        .await
        .expect("a script result");
    assert!(
        overflow.as_i64().is_some_and(|o| o <= 0),
        "{what} scrolls sideways by {overflow} px at this width"
    );
}

#[tokio::test]
async fn an_admin_creates_and_starts_a_server_in_the_ui_watches_its_console_and_kicks_a_player_with_the_widget()
 {
    let driver = start_driver();
    let world = world(Setup {
        agent: true,
        ..Setup::default()
    })
    .await;
    let client = browser(&driver, 1280, 900).await;

    // Sign in: the provider list comes from the API.
    client
        .goto(&world.panel.url("/"))
        .await
        .expect("the Panel loads");
    wait_for(&client, "#login-form").await;
    screenshot(&client, "sign-in").await;
    sign_in(&client, &world.panel, "admin", ADMIN_PASSWORD).await;

    // A before-hook's denial reaches the user: quota-guard allows 8192 MiB.
    create_server_in_ui(&client, &world.panel, "Too big", 9000, &[]).await;
    let denial = wait_for_text(&client, "#create-error", "quota exceeded").await;
    assert!(denial.contains("9000 MiB of 8192 MiB"), "{denial}");
    let code = client
        .find(Locator::Css("#create-error [data-code]"))
        .await
        .expect("the problem's code is on the alert")
        .attr("data-code")
        .await
        .expect("an attribute");
    assert_eq!(code.as_deref(), Some("hook-denied"));
    screenshot(&client, "create-server-denied").await;

    // The game-type plugin validates the variables; its message shows
    // under the field it is about.
    create_server_in_ui(
        &client,
        &world.panel,
        "Slow",
        1024,
        &[("READY_DELAY_MS", "60001")],
    )
    .await;
    let problem = field_error(&client, "#create-server-form [name=READY_DELAY_MS]").await;
    assert!(problem.contains("60000"), "{problem}");
    screenshot(&client, "create-server-invalid").await;

    // Create a server; the name carries markup, which must stay text.
    let hostile_name = "<img src=x onerror=window.__pwned=1> Survival";
    create_server_in_ui(
        &client,
        &world.panel,
        hostile_name,
        1024,
        &[("READY_DELAY_MS", "100")],
    )
    .await;
    wait_for_text(&client, "#server-state", "offline").await;
    let heading = wait_for_text(&client, "main h1", "Survival").await;
    assert_eq!(heading, hostile_name);
    let url = client.current_url().await.expect("a URL");
    let server_id = url
        .fragment()
        .and_then(|f| f.strip_prefix("/servers/"))
        .expect("the server page's URL names the server")
        .to_owned();
    // Power buttons: the admin may do everything; what the state allows
    // is enabled.
    for action in ["start", "restart", "stop", "kill"] {
        wait_for(&client, &format!(".power button[data-action={action}]")).await;
    }
    assert!(!disabled(&client, ".power button[data-action=start]").await);
    assert!(disabled(&client, ".power button[data-action=stop]").await);
    // The player-list widget renders (nobody online yet).
    wait_for_text(
        &client,
        "[data-plugin=player-list] .pui-body",
        "Nobody is online.",
    )
    .await;
    screenshot(&client, "server").await;

    // Start it with the button: the state, the ready event, console lines
    // and stats arrive over the WebSocket, without a reload.
    click(&client, ".power button[data-action=start]").await;
    wait_for_text(&client, "#server-state", "running").await;
    wait_for(&client, "#server-ready:not([hidden])").await;
    wait_for_text(&client, "#console-output", "Starting standin on port").await;
    wait_for_text(&client, "#console-output", "Server is ready").await;
    assert_eq!(console_lines(&client, "READY").await, 1);
    wait_for_text_where(&client, "#stat-memory", "showed the memory in use", |t| {
        t.ends_with("iB")
    })
    .await;
    assert!(disabled(&client, ".power button[data-action=start]").await);
    assert!(!disabled(&client, ".power button[data-action=stop]").await);

    // Away and back: the earlier lines come as history, once.
    click(&client, "#nav a[href='#/servers']").await;
    wait_for_text(&client, "#server-list", "Survival").await;
    click(&client, "#server-list a.server-link").await;
    wait_for_text(&client, "#console-output", "Starting standin on port").await;
    wait_for_text(&client, "#console-link", "live").await;
    assert_eq!(console_lines(&client, "READY").await, 1);
    wait_for_text(&client, "#server-state", "running").await;

    // A command from the input (Enter sends it) and the game's echo.
    console_command(&client, "say hello from the browser").await;
    wait_for_text(&client, "#console-output", "SAY hello from the browser").await;
    // The up arrow brings the last command back.
    wait_for(&client, "#console-input")
        .await
        .send_keys(ARROW_UP)
        .await
        .expect("typing");
    let recalled = wait_for(&client, "#console-input")
        .await
        .prop("value")
        .await
        .expect("a property");
    assert_eq!(recalled.as_deref(), Some("say hello from the browser"));
    screenshot(&client, "server-running").await;

    // Players join in the game (among them two whose names are markup);
    // the widget shows them without a reload.
    let script_name = "<script>window.__pwned=2</script>";
    let img_name = "<img/src=x/onerror=window.__pwned=3>";
    for name in ["Steve", script_name, img_name] {
        console_command(&client, &format!("join {name}")).await;
    }
    let widget = wait_for_text(
        &client,
        "[data-plugin=player-list] .pui-body",
        "3 players online",
    )
    .await;
    assert!(widget.contains("Steve"), "{widget}");
    assert!(widget.contains(script_name), "{widget}");
    assert!(widget.contains(img_name), "{widget}");
    // Inert: no element came from the markup, and no script ran.
    let injected = client
        .execute(
            "const w = document.querySelector('[data-plugin=player-list]');
             return {
               images: document.querySelectorAll('img').length,
               scripts: w.querySelectorAll('script').length,
               pwned: window.__pwned === undefined ? null : window.__pwned,
             };",
            vec![],
        )
        .await
        .expect("a script result");
    assert_eq!(
        injected,
        json!({"images": 0, "scripts": 0, "pwned": null}),
        "markup from plugin data must stay text"
    );
    screenshot(&client, "server-with-players").await;

    // Kick Steve: a confirmation, then the plugin's notification, and the
    // command reaches the game's console (queued by the plugin, no user as
    // actor).
    click(
        &client,
        "[data-plugin=player-list] button[aria-label='Kick Steve']",
    )
    .await;
    client
        .accept_alert()
        .await
        .expect("the confirmation is shown");
    wait_for_text(
        &client,
        "[data-plugin=player-list] .pui-message",
        "Sent `kick Steve` to the console",
    )
    .await;
    wait_for_text(&client, "#console-output", "UNKNOWN kick Steve").await;
    let commands = call(
        &world.panel,
        "GET",
        &format!("/api/v1/servers/{server_id}/commands?limit=100"),
        &world.admin_token,
        None,
        200,
    )
    .await;
    let kick = commands["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|c| c["action"] == "console" && c["actor_user_id"] == "plugin:player-list")
        .unwrap_or_else(|| panic!("the plugin's console command: {commands:#}"));
    assert_eq!(kick["state"], "done", "{commands:#}");

    // Stop it with the button.
    click(&client, ".power button[data-action=stop]").await;
    wait_for_text(&client, "#server-state", "offline").await;
    wait_for_text(&client, "#console-output", "STOPPING").await;
    wait_for(&client, "#server-ready[hidden]").await;

    // The variables form: labelled by the game-type plugin, which also
    // checks the values; its message shows under the field.
    let delay = "#variables-form [name=READY_DELAY_MS]";
    let label = client
        .execute(
            "return document.querySelector(`label[for='${document.querySelector(arguments[0]).id}']`).textContent;",
            vec![json!(delay)],
        )
        .await
        .expect("a script result");
    assert_eq!(label, json!("Ready delay (ms)"));
    fill(&client, delay, "60001").await;
    click(&client, "#variables-form button[type=submit]").await;
    let problem = field_error(&client, delay).await;
    assert!(problem.contains("60000"), "{problem}");
    fill(&client, delay, "150").await;
    click(&client, "#variables-form button[type=submit]").await;
    wait_for_text(&client, "#variables-result", "Saved").await;
    let server = call(
        &world.panel,
        "GET",
        &format!("/api/v1/servers/{server_id}"),
        &world.admin_token,
        None,
        200,
    )
    .await;
    assert_eq!(server["variables"]["READY_DELAY_MS"], "150", "{server:#}");

    // The main pages, at desktop and at phone width.
    for (fragment, ready, name) in PAGES {
        show_page(&client, &world, fragment, ready, name).await;
    }
    client.set_window_size(390, 844).await.expect("resizing");
    for (fragment, ready, name) in PAGES {
        show_page(&client, &world, fragment, ready, &format!("{name}-phone")).await;
    }
    // The same pages, and the server page, where scrollbars overlay the
    // page as on phones.
    let overlay = browser_with(&driver, 390, 844, Scrollbars::Overlay).await;
    overlay
        .goto(&world.panel.url("/"))
        .await
        .expect("the Panel loads");
    sign_in(&overlay, &world.panel, "admin", ADMIN_PASSWORD).await;
    for (fragment, ready, name) in PAGES {
        let name = format!("{name}-phone-overlay");
        show_page(&overlay, &world, fragment, ready, &name).await;
    }
    let server_page = format!("/#/servers/{server_id}");
    show_page(
        &overlay,
        &world,
        &server_page,
        "#console-output",
        "server-phone-overlay",
    )
    .await;
    overlay.close().await.expect("closing the browser");
    // Phone-sized: the navigation collapses behind a menu button that
    // opens with the keyboard.
    show_page(
        &client,
        &world,
        &server_page,
        "#console-output",
        "server-phone",
    )
    .await;
    let toggle = wait_for(&client, "#nav-toggle").await;
    assert!(toggle.is_displayed().await.expect("visibility"));
    let servers_link = wait_for(&client, "#nav a[href='#/servers']").await;
    assert!(!servers_link.is_displayed().await.expect("visibility"));
    toggle.send_keys(ENTER).await.expect("pressing Enter");
    assert_eq!(
        toggle
            .attr("aria-expanded")
            .await
            .expect("an attribute")
            .as_deref(),
        Some("true")
    );
    assert!(servers_link.is_displayed().await.expect("visibility"));
    screenshot(&client, "nav-phone").await;

    // Delete it, behind a confirmation; the list shows it going.
    toggle.send_keys(ENTER).await.expect("pressing Enter");
    click(&client, "#server-delete").await;
    client
        .accept_alert()
        .await
        .expect("the confirmation is shown");
    wait_for_text_where(&client, "#server-list", "showed the deletion", |t| {
        t.contains("deleting") || t.contains("No servers yet.")
    })
    .await;

    client.close().await.expect("closing the browser");
    if let Some(agent) = world.agent {
        agent.stop().await;
    }
}

/// `podman ps` through the test's Podman service at `host` (the engine
/// the Agent uses): the containers labelled with server `server_id`, as
/// `<id> <image>` lines.
fn containers_of(host: &str, server_id: &str) -> Vec<String> {
    let output = Command::new("podman")
        .args(["--remote", "--url", host, "ps", "--all", "--filter"])
        .arg(format!("label=org.ctrl-alt-play.server={server_id}"))
        .args(["--format", "{{.ID}} {{.Image}}"])
        .output()
        .expect("running podman ps");
    assert!(
        output.status.success(),
        "podman ps failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn an_admin_runs_the_test_game_in_a_container_from_the_ui_and_talks_to_its_console() {
    let service = cap_e2e::podman::PodmanService::start();
    let driver = start_driver();
    let world = world(Setup {
        agent: true,
        container_host: Some(service.host()),
        ..Setup::default()
    })
    .await;
    let client = browser(&driver, 1280, 900).await;
    sign_in(&client, &world.panel, "admin", ADMIN_PASSWORD).await;

    create_server_in_ui(
        &client,
        &world.panel,
        "Boxed",
        256,
        &[("READY_DELAY_MS", "100")],
    )
    .await;
    wait_for_text(&client, "#server-state", "offline").await;
    let url = client.current_url().await.expect("a URL");
    let server_id = url
        .fragment()
        .and_then(|f| f.strip_prefix("/servers/"))
        .expect("the server page's URL names the server")
        .to_owned();
    assert!(
        containers_of(&service.host(), &server_id).is_empty(),
        "no container before the start"
    );

    click(&client, ".power button[data-action=start]").await;
    wait_for_text(&client, "#server-state", "running").await;
    wait_for_text(&client, "#console-output", "Starting standin on port").await;
    wait_for_text(&client, "#console-output", "Server is ready").await;
    wait_for_text_where(&client, "#stat-memory", "showed the memory in use", |t| {
        t.ends_with("iB")
    })
    .await;

    // It really is a container of the test image, labelled with the
    // server's id, in the engine the Agent was given.
    let listed = containers_of(&service.host(), &server_id);
    assert_eq!(listed.len(), 1, "one container for the server: {listed:?}");
    let fields: Vec<&str> = listed[0].split_whitespace().collect();
    assert_eq!(fields[1..], [cap_e2e::podman::TEST_IMAGE], "{listed:?}");
    let inspected = Command::new("podman")
        .args(["--remote", "--url", &service.host(), "inspect", "--format"])
        .arg("{{index .Config.Labels \"org.ctrl-alt-play.server\"}} {{.State.Running}}")
        .arg(fields[0])
        .output()
        .expect("running podman inspect");
    assert_eq!(
        String::from_utf8_lossy(&inspected.stdout).trim(),
        format!("{server_id} true")
    );

    // A command from the page reaches the game in its container, and its
    // answer comes back.
    console_command(&client, "say hello from the browser").await;
    wait_for_text(&client, "#console-output", "SAY hello from the browser").await;
    console_command(&client, "players").await;
    wait_for_text(&client, "#console-output", "PLAYERS 0/").await;
    screenshot(&client, "server-running-container").await;

    // Stopped from the page, the container goes.
    click(&client, ".power button[data-action=stop]").await;
    wait_for_text(&client, "#server-state", "offline").await;
    let deadline = Instant::now() + UI_WAIT;
    while !containers_of(&service.host(), &server_id).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the container was not removed after the stop"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    client.close().await.expect("closing the browser");
    if let Some(agent) = world.agent {
        agent.stop().await;
    }
}

#[tokio::test]
async fn an_admin_turns_on_totp_in_the_account_page_signs_in_with_a_code_after_a_wrong_one_and_changes_the_password()
 {
    let driver = start_driver();
    let world = world(Setup {
        plugins: &["local-password"],
        ..Setup::default()
    })
    .await;
    let client = browser(&driver, 1280, 900).await;
    sign_in(&client, &world.panel, "admin", ADMIN_PASSWORD).await;

    // Set up: the secret is shown; a wrong code is refused under its field.
    client
        .goto(&world.panel.url("/#/account"))
        .await
        .expect("navigating");
    wait_for_text(&client, "#totp-status", "Off").await;
    click(&client, "#totp-begin").await;
    let secret = wait_for(&client, "#totp-secret")
        .await
        .text()
        .await
        .expect("the secret");
    fill(
        &client,
        "#totp-confirm input[name=code]",
        &wrong_code(&secret),
    )
    .await;
    click(&client, "#totp-confirm button[type=submit]").await;
    let problem = field_error(&client, "#totp-confirm input[name=code]").await;
    assert!(problem.contains("not the current code"), "{problem}");
    fill(
        &client,
        "#totp-confirm input[name=code]",
        &code_at(&secret, 0),
    )
    .await;
    click(&client, "#totp-confirm button[type=submit]").await;
    wait_for(&client, "ul.codes li").await;
    let recovery: Vec<String> = client
        .execute(
            "return [...document.querySelectorAll('ul.codes li')].map((li) => li.textContent);",
            vec![],
        )
        .await
        .expect("a script result")
        .as_array()
        .expect("codes")
        .iter()
        .map(|c| c.as_str().expect("a code").to_owned())
        .collect();
    assert_eq!(recovery.len(), 10, "{recovery:?}");
    screenshot(&client, "account-totp-recovery-codes").await;
    click(&client, "#totp-done").await;
    wait_for_text(&client, "#totp-status", "On").await;

    // Sign out and in again: the password is not enough any more.
    click(&client, "#sign-out").await;
    wait_for(&client, "#login-form").await;
    // This time by keyboard only: Tab into the form, Enter submits.
    client
        .goto(&world.panel.url("/"))
        .await
        .expect("the Panel loads");
    wait_for(&client, "#login-form").await;
    type_keys(&client, TAB).await;
    type_keys(&client, &format!("admin{TAB}{ADMIN_PASSWORD}{ENTER}")).await;
    wait_for(&client, "#second-factor-form").await;
    screenshot(&client, "sign-in-second-factor").await;
    // The code field has the focus.
    type_keys(&client, &format!("{}{ENTER}", wrong_code(&secret))).await;
    let refusal = wait_for_text(
        &client,
        "#second-factor-error",
        "the code is wrong or was used before",
    )
    .await;
    assert!(refusal.contains("Invalid second factor"), "{refusal}");
    let code = wait_for(&client, "#second-factor-error [data-code]")
        .await
        .attr("data-code")
        .await
        .expect("an attribute");
    assert_eq!(code.as_deref(), Some("invalid-second-factor"));
    assert!(
        client.find(Locator::Css("#server-list")).await.is_err(),
        "a wrong code must not sign in"
    );
    screenshot(&client, "sign-in-second-factor-refused").await;
    // The next code signs in (the one that confirmed enrolment was used);
    // the emptied code field still has the focus.
    type_keys(&client, &format!("{}{ENTER}", code_at(&secret, 1))).await;
    wait_for(&client, "#server-list").await;

    // Turning it off needs a recovery code (or a current one).
    client
        .goto(&world.panel.url("/#/account"))
        .await
        .expect("navigating");
    wait_for_text(&client, "#totp-status", "On").await;
    fill(&client, "#totp-off input", &recovery[0]).await;
    click(&client, "#totp-off button[type=submit]").await;
    wait_for_text(&client, "#totp-status", "Off").await;

    // The password, changed through the provider: a wrong current one is
    // refused on its field, then the change takes.
    let new_password = "Another-Long-Passphrase-9";
    fill(
        &client,
        "#password-form [name=current_password]",
        "Not-My-Password-1",
    )
    .await;
    fill(&client, "#password-form [name=new_password]", new_password).await;
    fill(
        &client,
        "#password-form [name=new_password_again]",
        new_password,
    )
    .await;
    click(&client, "#password-form button[type=submit]").await;
    let problem = field_error(&client, "#password-form [name=current_password]").await;
    assert!(problem.contains("not your current password"), "{problem}");
    fill(
        &client,
        "#password-form [name=current_password]",
        ADMIN_PASSWORD,
    )
    .await;
    click(&client, "#password-form button[type=submit]").await;
    wait_for_text(&client, "#password-result", "Your password is changed.").await;
    click(&client, "#sign-out").await;
    sign_in(&client, &world.panel, "admin", new_password).await;
    client.close().await.expect("closing the browser");
}

#[tokio::test]
async fn an_admin_installs_a_plugin_from_the_marketplace_grants_what_it_requests_and_updates_it() {
    let market = MarketplaceWithPublisher::start_with(3600, None).await;
    let version = |v: &str| {
        manifest_text("quota-guard").replacen(
            "version = \"1.0.0\"",
            &format!("version = \"{v}\""),
            1,
        )
    };
    let publisher = &market;
    let publish = |bytes: Vec<u8>| async move {
        publish_signed(&publisher.client, &publisher.token, &publisher.key, &bytes).await
    };
    publish(package_with("quota-guard", &version("1.0.0"))).await;
    let driver = start_driver();
    let world = world(Setup {
        plugins: &["local-password"],
        marketplace_url: Some(market.server.url()),
        ..Setup::default()
    })
    .await;
    let client = browser(&driver, 1280, 900).await;
    sign_in(&client, &world.panel, "admin", ADMIN_PASSWORD).await;

    // Browse: the package, its version and price.
    client
        .goto(&world.panel.url("/#/admin/plugins"))
        .await
        .expect("navigating");
    let row = wait_for_text(&client, "#market-table", "quota-guard").await;
    assert!(
        row.contains("Quota guard") && row.contains("1.0.0"),
        "{row}"
    );
    assert!(row.contains("free") && row.contains("by acme"), "{row}");
    fill(&client, "#market-search input[name=q]", "nothing-like-this").await;
    click(&client, "#market-search button[type=submit]").await;
    wait_for_text(&client, "#market-list", "No package matches.").await;
    fill(&client, "#market-search input[name=q]", "quota").await;
    click(&client, "#market-search button[type=submit]").await;
    wait_for_text(&client, "#market-table", "quota-guard").await;
    screenshot(&client, "admin-plugins-marketplace").await;

    // A refusal says why: no version satisfies the requirement.
    let install = "[data-package=quota-guard]";
    fill(&client, &format!("{install} input[name=requirement]"), "2").await;
    click(&client, &format!("{install} button[type=submit]")).await;
    let refusal = wait_for_text(&client, "#market-error", "No versions satisfy").await;
    assert!(refusal.contains("quota-guard"), "{refusal}");
    let code = wait_for(&client, "#market-error [data-code]")
        .await
        .attr("data-code")
        .await
        .expect("an attribute");
    assert_eq!(code.as_deref(), Some("resolution-failed"));
    screenshot(&client, "admin-plugins-marketplace-refused").await;
    let plugins = call(
        &world.panel,
        "GET",
        "/api/v1/plugins",
        &world.admin_token,
        None,
        200,
    )
    .await;
    assert!(
        !plugins.to_string().contains("quota-guard"),
        "a refused install installs nothing: {plugins:#}"
    );

    // Install: verified and installed inactive, then the admin reviews
    // what it requests, grants it and activates it.
    fill(&client, &format!("{install} input[name=requirement]"), "").await;
    click(&client, &format!("{install} button[type=submit]")).await;
    let review = wait_for_text(
        &client,
        ".market-review[data-plugin=quota-guard]",
        "not active",
    )
    .await;
    for capability in ["key-value store", "configuration", "Panel API servers.read"] {
        assert!(review.contains(capability), "{review}");
    }
    let plugin = call(
        &world.panel,
        "GET",
        "/api/v1/plugins/quota-guard",
        &world.admin_token,
        None,
        200,
    )
    .await;
    assert_ne!(plugin["state"], "active", "{plugin:#}");
    assert_eq!(plugin["granted"]["panel"], json!([]), "{plugin:#}");
    wait_for_text(&client, "#plugin-list", "quota-guard").await;
    screenshot(&client, "admin-plugins-marketplace-review").await;
    click(
        &client,
        ".market-review[data-plugin=quota-guard] button[type=submit]",
    )
    .await;
    wait_for_text(&client, "#market-outcome", "Quota guard is active").await;
    wait_for_text(&client, "#plugin-list", "active").await;
    wait_for_text(&client, "#market-table", "installed 1.0.0").await;
    let plugin = call(
        &world.panel,
        "GET",
        "/api/v1/plugins/quota-guard",
        &world.admin_token,
        None,
        200,
    )
    .await;
    assert_eq!(plugin["state"], "active", "{plugin:#}");
    assert_eq!(plugin["granted"]["panel"], json!(["servers.read"]));
    assert_eq!(plugin["granted"]["kv"], true);

    // A new version: the list says so, and "Update all" installs it.
    publish(package_with("quota-guard", &version("1.1.0"))).await;
    click(&client, "#market-search button[type=submit]").await;
    wait_for_text(&client, "#market-table", "1.1.0 available").await;
    click(&client, "#market-update").await;
    wait_for_text(&client, "#market-outcome", "1.0.0 → 1.1.0").await;
    wait_for_text(&client, "#plugin-list", "1.1.0").await;
    wait_for_text(&client, "#market-table", "installed 1.1.0").await;
    screenshot(&client, "admin-plugins-marketplace-updated").await;
    client.set_window_size(390, 844).await.expect("resizing");
    show_page(
        &client,
        &world,
        "/#/admin/plugins",
        "#market-table",
        "admin-plugins-marketplace-phone",
    )
    .await;
    client.close().await.expect("closing the browser");
}

#[tokio::test]
async fn a_plugin_putting_markup_and_script_in_its_ui_tree_shows_as_inert_text_and_a_broken_tree_as_an_error()
 {
    let driver = start_driver();
    let world = world(Setup {
        plugins: &["local-password"],
        ..Setup::default()
    })
    .await;
    // The adversarial plugin's `markup` dashboard widget puts markup,
    // script and `javascript:` URLs in every string; its `out-of-bounds`
    // one returns a tree naming a child that does not exist.
    let uploaded = support::client()
        .post(world.panel.url("/api/v1/plugins"))
        .bearer_auth(&world.admin_token)
        .header("content-type", "application/octet-stream")
        .body(package_with("adversarial", &manifest_text("adversarial")))
        .send()
        .await
        .expect("the upload is answered");
    assert_eq!(uploaded.status(), 201, "uploading adversarial");
    call(
        &world.panel,
        "POST",
        "/api/v1/plugins/adversarial/activate",
        &world.admin_token,
        None,
        200,
    )
    .await;

    let client = browser(&driver, 1280, 900).await;
    sign_in(&client, &world.panel, "admin", ADMIN_PASSWORD).await;
    let widget = "[data-plugin=adversarial][data-contribution=markup]";
    let text = wait_for_text(
        &client,
        &format!("{widget} .pui-body"),
        "<script>window.__pwned='text'</script>",
    )
    .await;
    for shown in [
        "<style>body { display: none }</style>",
        "<img src=x onerror=\"window.__pwned='heading'\">",
        "<b onmouseover=\"window.__pwned='badge'\">bold</b>",
        "<svg onload=\"window.__pwned='stat'\">",
        "javascript:window.__pwned='stat'",
        "<iframe src=\"javascript:window.__pwned='alert'\"></iframe>",
        "<a href=\"javascript:window.__pwned='cell'\">link</a>",
        "<img src=x onerror=\"window.__pwned='button'\">",
    ] {
        assert!(
            text.contains(shown),
            "{shown:?} is not shown as text in {text:?}"
        );
    }
    let title = wait_for_text(&client, &format!("{widget} h2"), "Markup").await;
    assert!(
        title.contains("<img src=x onerror=\"window.__pwned='title'\">"),
        "{title}"
    );
    // Pressing the button whose label is markup: the plugin refuses the
    // action, and that is text too.
    click(&client, &format!("{widget} .pui-body button")).await;
    wait_for(&client, &format!("{widget} .pui-message [role=alert]")).await;
    let inert = client
        .execute(
            "const w = document.querySelector(arguments[0]);
             return {
               elements: w.querySelectorAll('img, script, iframe, svg, style, b, a').length,
               handlers: [...w.querySelectorAll('*')]
                 .filter((e) => [...e.attributes].some((a) => a.name.startsWith('on'))).length,
               pwned: window.__pwned === undefined ? null : window.__pwned,
               bodyShown: getComputedStyle(document.body).display !== 'none',
             };",
            vec![json!(widget)],
        )
        .await
        .expect("a script result");
    assert_eq!(
        inert,
        json!({"elements": 0, "handlers": 0, "pwned": null, "bodyShown": true}),
        "markup from a plugin's UI tree must stay text"
    );
    // The broken tree: a clear message in its place, and the page works.
    let broken = wait_for_text(
        &client,
        "[data-plugin=adversarial][data-contribution=out-of-bounds] .pui-body",
        "This widget could not be shown",
    )
    .await;
    assert!(broken.contains("out of bounds"), "{broken}");
    screenshot(&client, "plugin-markup-inert").await;
    client.close().await.expect("closing the browser");
}

#[tokio::test]
async fn a_player_given_a_role_on_the_users_page_and_only_the_console_of_a_server_sees_no_power_buttons()
 {
    let driver = start_driver();
    let world = world(Setup::default()).await;
    let player_id = create_password_user(&world, "player", PLAYER_PASSWORD).await;
    let server = call(
        &world.panel,
        "POST",
        "/api/v1/servers",
        &world.admin_token,
        Some(json!({"name": "Shared", "node_id": world.node_id,
                    "game": {"plugin": "test-game"},
                    "limits": {"memory_mb": 512, "disk_mb": 1024, "cpu_percent": 100}})),
        201,
    )
    .await;
    let server_id = server["id"].as_str().expect("an id").to_owned();
    call(
        &world.panel,
        "POST",
        &format!("/api/v1/servers/{server_id}/subusers"),
        &world.admin_token,
        Some(json!({"user_id": player_id, "permissions": ["control.console"]})),
        201,
    )
    .await;

    let client = browser(&driver, 1280, 900).await;
    // An administrator gives the player one more role on the users page.
    let moderators = call(
        &world.panel,
        "POST",
        "/api/v1/roles",
        &world.admin_token,
        Some(
            json!({"name": "Moderators", "description": "Watch the audit log",
                    "permissions": ["audit.read"]}),
        ),
        201,
    )
    .await;
    sign_in(&client, &world.panel, "admin", ADMIN_PASSWORD).await;
    client
        .goto(&world.panel.url("/#/admin/users"))
        .await
        .expect("navigating");
    click(&client, "#user-list button[aria-label='Edit player']").await;
    wait_for_text(&client, "#user-edit-form", "Moderators").await;
    let checked = client
        .execute(
            "return [...document.querySelectorAll('#user-edit-form .checks input:checked')]
               .map((i) => i.parentElement.textContent.trim());",
            vec![],
        )
        .await
        .expect("a script result");
    assert_eq!(
        checked,
        json!(["player-player"]),
        "the current roles are ticked"
    );
    click(
        &client,
        &format!(
            "#user-edit-form input[value='{}']",
            moderators["id"].as_str().expect("an id")
        ),
    )
    .await;
    click(&client, "#user-edit-form button[type=submit]").await;
    wait_for(&client, "#user-list").await;
    let deadline = Instant::now() + UI_WAIT;
    loop {
        let user = call(
            &world.panel,
            "GET",
            &format!("/api/v1/users/{player_id}"),
            &world.admin_token,
            None,
            200,
        )
        .await;
        let mut roles: Vec<&str> = user["roles"]
            .as_array()
            .expect("roles")
            .iter()
            .filter_map(|r| r["name"].as_str())
            .collect();
        roles.sort_unstable();
        if roles == ["Moderators", "player-player"] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the roles were not saved: {user:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    click(&client, "#sign-out").await;
    wait_for(&client, "#login-form").await;

    sign_in(&client, &world.panel, "player", PLAYER_PASSWORD).await;
    // No admin links, no create button.
    let nav = wait_for_text(&client, "#nav", "Servers").await;
    assert!(
        !nav.contains("Plugins") && !nav.contains("Nodes") && !nav.contains("Game types"),
        "{nav}"
    );
    assert!(
        nav.contains("Audit log"),
        "the role given above counts: {nav}"
    );
    assert!(client.find(Locator::Css("#new-server")).await.is_err());
    click(&client, "#server-list a.server-link").await;
    wait_for(&client, "#console-input").await;
    let buttons = client
        .find_all(Locator::Css(".power button"))
        .await
        .expect("a query");
    assert!(
        buttons.is_empty(),
        "a console-only subuser sees no power buttons"
    );
    // The console works through the REST fallback and echoes the command.
    fill(&client, "#console-input", "say hello").await;
    click(&client, "#console-form button[type=submit]").await;
    wait_for_text(&client, "#console-output", "> say hello").await;
    screenshot(&client, "server-subuser").await;
    client.close().await.expect("closing the browser");
}

// ------------------------------------------------------------ game types

/// A shared egg of the suite (`egg/tests/fixtures/…`).
fn egg_fixture(name: &str) -> PathBuf {
    cap_e2e::repo_root().join("egg/tests/fixtures").join(name)
}

/// The game types the Panel keeps, by name, as the API lists them.
async fn imported_egg_names(world: &World) -> Vec<String> {
    call(
        &world.panel,
        "GET",
        "/api/v1/eggs",
        &world.admin_token,
        None,
        200,
    )
    .await["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["name"].as_str().expect("a name").to_owned())
        .collect()
}

/// Scrolls the variables of the egg under review into view (for the
/// screenshots).
async fn show_variables(client: &Client) {
    client
        .execute(
            "document.getElementById('egg-review-variables').scrollIntoView();",
            vec![],
        )
        .await
        .expect("scrolling");
}

/// Chooses `file` in the egg page's file input.
async fn choose_egg(client: &Client, file: &std::path::Path) {
    wait_for(client, "#egg-file")
        .await
        .send_keys(file.to_str().expect("a UTF-8 path"))
        .await
        .expect("choosing the file");
}

#[tokio::test]
async fn the_game_types_page_shows_an_admin_that_no_plugin_imports_eggs_and_refuses_an_oversized_file_unsent()
 {
    let driver = start_driver();
    let world = world(Setup::default()).await;
    let client = browser(&driver, 1280, 900).await;
    sign_in(&client, &world.panel, "admin", ADMIN_PASSWORD).await;

    // Linked from the admin navigation.
    click(&client, "#nav a[href='#/admin/eggs']").await;
    wait_for_text(&client, "main h1", "Game types").await;
    wait_for_text(&client, "#egg-no-catalogue", "egg-bridge").await;
    wait_for_text(&client, "#egg-none", "No game types imported yet.").await;

    // A file over the limit is refused in the page, before any request.
    let dir = tempfile::tempdir().expect("a temporary directory");
    let big = dir.path().join("big.json");
    std::fs::write(&big, vec![b' '; 5 << 20]).expect("writing the file");
    choose_egg(&client, &big).await;
    let refusal = wait_for_text(&client, "#egg-import-error", "big.json").await;
    assert!(refusal.contains("at most 4.0 MiB"), "{refusal}");

    // A real egg is sent for review; the Panel says why it cannot be, and
    // the page shows no review.
    choose_egg(
        &client,
        &egg_fixture("pelican/egg-pterodactyl-minetest.json"),
    )
    .await;
    wait_for(&client, "#egg-import-error [data-code='no-catalogue']").await;
    wait_for_text(
        &client,
        "#egg-import-error",
        "no active plugin imports game types",
    )
    .await;
    assert!(
        client
            .find(Locator::Css("#egg-review-title"))
            .await
            .is_err(),
        "a refused egg is not shown for review"
    );
    screenshot(&client, "admin-eggs-no-catalogue").await;
    assert!(imported_egg_names(&world).await.is_empty());
    client.close().await.expect("closing the browser");
}

#[tokio::test]
async fn an_admin_reviews_an_egg_before_importing_it_replaces_it_only_when_asked_and_deletes_it() {
    let driver = start_driver();
    let world = world(Setup {
        plugins: &["local-password", "egg-bridge"],
        ..Setup::default()
    })
    .await;
    let client = browser(&driver, 1280, 900).await;
    sign_in(&client, &world.panel, "admin", ADMIN_PASSWORD).await;
    client
        .goto(&world.panel.url("/#/admin/eggs"))
        .await
        .expect("navigating");
    wait_for(&client, "#egg-none").await;
    assert!(
        client
            .find(Locator::Css("#egg-no-catalogue"))
            .await
            .is_err(),
        "egg-bridge is active"
    );

    // An invalid egg: each problem names the egg's field.
    let dir = tempfile::tempdir().expect("a temporary directory");
    let minetest = egg_fixture("pelican/egg-pterodactyl-minetest.json");
    let mut bad: Value =
        serde_json::from_slice(&std::fs::read(&minetest).expect("the egg")).expect("JSON");
    bad["variables"][0]["rules"] = json!("required|string|shiny");
    let bad_file = dir.path().join("bad.json");
    std::fs::write(&bad_file, serde_json::to_vec(&bad).expect("JSON")).expect("writing");
    choose_egg(&client, &bad_file).await;
    let problem = wait_for_text(
        &client,
        "#egg-import-error [data-field='variables[0].rules']",
        "shiny",
    )
    .await;
    assert!(problem.starts_with("variables[0].rules: "), "{problem}");

    // The community egg: reviewed first, with everything it would create,
    // and nothing kept before the confirmation.
    choose_egg(&client, &minetest).await;
    wait_for_text(&client, "#egg-review-title", "Minetest").await;
    let focused = client
        .execute("return document.activeElement.id;", vec![])
        .await
        .expect("a script result");
    assert_eq!(
        focused,
        json!("egg-review-title"),
        "the review takes the focus"
    );
    let variables = wait_for_text(&client, "#egg-review-variables", "SERVER_NAME").await;
    assert!(variables.contains("Minetest server"), "{variables}");
    wait_for_text(
        &client,
        "#egg-review-images",
        "ghcr.io/parkervcp/games:minetest (default)",
    )
    .await;
    wait_for(&client, "#egg-review-unsupported").await;
    assert!(
        imported_egg_names(&world).await.is_empty(),
        "nothing before the confirmation"
    );
    show_variables(&client).await;
    screenshot(&client, "admin-eggs-review").await;

    // Confirmed with the keyboard.
    wait_for(&client, "#egg-confirm")
        .await
        .send_keys(ENTER)
        .await
        .expect("pressing Enter");
    wait_for_text(&client, "#egg-imported", "Imported Minetest").await;
    wait_for_text(&client, "#egg-table", "Minetest").await;
    assert_eq!(imported_egg_names(&world).await, ["Minetest"]);

    // The same egg again: the Panel refuses, and "Replace" replaces.
    choose_egg(&client, &minetest).await;
    click(&client, "#egg-confirm").await;
    wait_for(&client, "[data-code='game-type-exists']").await;
    click(&client, "#egg-replace").await;
    wait_for_text(&client, "#egg-imported", "Imported Minetest").await;
    assert_eq!(imported_egg_names(&world).await, ["Minetest"]);

    // The create-server form offers it, with the egg's image.
    client
        .goto(&world.panel.url("/#/servers/new"))
        .await
        .expect("navigating");
    let games = wait_for_text(&client, "#create-server-form select[name=game]", "Minetest").await;
    assert!(games.contains("egg-bridge"), "{games}");
    client
        .execute(
            "const select = document.querySelector('#create-server-form select[name=game]');
             select.value = [...select.options].find((o) => o.text.startsWith('Minetest')).value;
             select.dispatchEvent(new Event('change'));",
            vec![],
        )
        .await
        .expect("choosing the game");
    wait_for_text(
        &client,
        "#create-server-form select[name=image]",
        "ghcr.io/parkervcp/games:minetest",
    )
    .await;

    // At phone width the page and its review fit.
    client.set_window_size(390, 844).await.expect("resizing");
    show_page(
        &client,
        &world,
        "/#/admin/eggs",
        "#egg-table",
        "admin-eggs-imported-phone",
    )
    .await;
    choose_egg(&client, &minetest).await;
    wait_for(&client, "#egg-review-title").await;
    show_variables(&client).await;
    screenshot(&client, "admin-eggs-review-phone").await;
    assert_fits(&client, "the review of an egg").await;
    client.set_window_size(1280, 900).await.expect("resizing");

    // Exported as the file it came from; it names no update source, so
    // it offers no update check.
    client
        .goto(&world.panel.url("/#/admin/eggs"))
        .await
        .expect("navigating");
    click(&client, "#egg-table .egg-export").await;
    wait_for_text(&client, "#toasts", "Exported Minetest as egg-minetest.json").await;
    assert!(
        client
            .find(Locator::Css("#egg-table .egg-update"))
            .await
            .is_err()
    );

    // Deleted, behind a confirmation.
    click(&client, "#egg-table .egg-delete").await;
    client
        .accept_alert()
        .await
        .expect("the confirmation is shown");
    wait_for(&client, "#egg-none").await;
    assert!(imported_egg_names(&world).await.is_empty());

    // An egg whose update source cannot be reached: checking it for an
    // update says so, and changes nothing.
    let mut unreachable: Value =
        serde_json::from_slice(&std::fs::read(&minetest).expect("the egg")).expect("JSON");
    unreachable["meta"]["update_url"] = json!("https://127.0.0.1:9/egg.json");
    let unreachable_file = dir.path().join("unreachable.json");
    std::fs::write(
        &unreachable_file,
        serde_json::to_vec(&unreachable).expect("JSON"),
    )
    .expect("writing");
    choose_egg(&client, &unreachable_file).await;
    click(&client, "#egg-confirm").await;
    wait_for(&client, "#egg-imported").await;
    click(&client, "#egg-table .egg-update").await;
    wait_for(
        &client,
        "#egg-update-error [data-code='update-source-failed']",
    )
    .await;
    screenshot(&client, "admin-eggs-update-failed").await;
    assert!(
        client
            .find(Locator::Css("#egg-update-apply"))
            .await
            .is_err()
    );
    assert_eq!(imported_egg_names(&world).await, ["Minetest"]);

    // While a server runs it, it is not deleted, and the page says why.
    call(
        &world.panel,
        "POST",
        "/api/v1/servers",
        &world.admin_token,
        Some(json!({
            "name": "minetest-1", "node_id": world.node_id,
            "game": {"plugin": "egg-bridge", "type": "minetest"},
            "variables": {"SERVER_ADMIN_NAME": "admin"},
            "limits": {"memory_mb": 1024, "disk_mb": 2048, "cpu_percent": 100},
        })),
        201,
    )
    .await;
    client.refresh().await.expect("reloading");
    wait_for_text_where(
        &client,
        "#egg-table td[data-label='Servers']",
        "counted the server",
        |t| t == "1",
    )
    .await;
    click(&client, "#egg-table .egg-delete").await;
    client
        .accept_alert()
        .await
        .expect("the confirmation is shown");
    wait_for_text(
        &client,
        "#egg-delete-error [data-code='game-type-in-use']",
        "1 server of game type minetest",
    )
    .await;
    assert_eq!(imported_egg_names(&world).await, ["Minetest"]);
    client.close().await.expect("closing the browser");
}

#[tokio::test]
async fn a_user_signs_in_from_the_login_page_through_a_real_openid_provider() {
    use support::openid::{CLIENT_ID, CLIENT_SECRET, OpenIdProvider, oidc_manifest};
    const ACME: &str = "oidc-acme";
    let driver = start_driver();
    let world = world(Setup {
        plugins: &["local-password"],
        ..Setup::default()
    })
    .await;
    let provider = OpenIdProvider::start(&[world
        .panel
        .url(&format!("/api/v1/auth/redirect/{ACME}/callback"))]);
    // The `oidc` package as instance `oidc-acme`, as an admin installs it.
    let (_, package) = cap_runtime::Package::build(
        oidc_manifest(ACME).into_bytes(),
        cap_e2e::component("oidc"),
        std::collections::BTreeMap::new(),
        cap_panel::plugins::MAX_COMPONENT_BYTES,
    )
    .expect("the package builds");
    let response = support::client()
        .post(world.panel.url("/api/v1/plugins"))
        .bearer_auth(&world.admin_token)
        .header("content-type", "application/octet-stream")
        .body(package)
        .send()
        .await
        .expect("uploading");
    assert_eq!(response.status(), 201);
    let installed: Value = response.json().await.expect("JSON");
    let path = format!("/api/v1/plugins/{ACME}");
    let token = &world.admin_token;
    call(
        &world.panel,
        "POST",
        &format!("{path}/grant"),
        token,
        Some(installed["plugin"]["requested"].clone()),
        200,
    )
    .await;
    let values = json!({ "values": {
        "issuer": provider.issuer, "client-id": CLIENT_ID, "allow-signup": "true", "name": "Acme SSO",
    }});
    call(
        &world.panel,
        "PUT",
        &format!("{path}/config"),
        token,
        Some(values),
        200,
    )
    .await;
    let secret = json!({ "value": CLIENT_SECRET });
    call(
        &world.panel,
        "PUT",
        &format!("{path}/secrets/client-secret"),
        token,
        Some(secret),
        204,
    )
    .await;
    call(
        &world.panel,
        "POST",
        &format!("{path}/activate"),
        token,
        None,
        200,
    )
    .await;

    let client = browser(&driver, 1280, 900).await;
    // A callback that does not verify sends the browser back to say so.
    client
        .goto(&world.panel.url(&format!(
            "/api/v1/auth/redirect/{ACME}/callback?code=x&state=forged"
        )))
        .await
        .expect("navigating");
    let refusal = wait_for_text(
        &client,
        "#login-error [data-code='sign-in-refused']",
        "Try again",
    )
    .await;
    assert!(refusal.contains("did not go through"), "{refusal}");
    client
        .goto(&world.panel.url("/"))
        .await
        .expect("the Panel loads");
    let button = format!("#redirect-providers button[data-provider='{ACME}']");
    let label = wait_for_text(&client, &button, "Acme SSO").await;
    assert_eq!(label, "Sign in with Acme SSO");
    // The password form is still there for local accounts.
    wait_for(&client, "#login-form").await;
    screenshot(&client, "sign-in-with-providers").await;
    click(&client, &button).await;
    // To the provider and back; the ticket is exchanged and leaves the URL.
    wait_for(&client, "#server-list").await;
    let url = client.current_url().await.expect("a URL").to_string();
    assert!(!url.contains("ticket"), "{url}");
    client
        .goto(&world.panel.url("/#/account"))
        .await
        .expect("navigating");
    wait_for_text(&client, "main dl", "alice@example.org").await;
    client.close().await.expect("closing the browser");
}

/// The value of the input `css`.
async fn input_value(client: &Client, css: &str) -> String {
    wait_for(client, css)
        .await
        .prop("value")
        .await
        .expect("a property")
        .unwrap_or_default()
}

#[tokio::test]
async fn an_invited_user_sets_a_password_on_the_link_a_forced_change_comes_first_and_a_forgotten_password_is_reset_by_mail()
 {
    let driver = start_driver();
    let smtp = support::smtp::Smtp::accepting().await;
    let world = world(Setup {
        plugins: &["local-password"],
        ..Setup::default()
    })
    .await;
    let client = browser(&driver, 1280, 900).await;
    sign_in(&client, &world.panel, "admin", ADMIN_PASSWORD).await;

    // The administrator points the Panel's mail at the SMTP server.
    client
        .goto(&world.panel.url("/#/admin/users"))
        .await
        .expect("navigating");
    fill(&client, "#mail-host", "127.0.0.1").await;
    fill(&client, "#mail-port", &smtp.port.to_string()).await;
    wait_for(&client, "#mail-security")
        .await
        .select_by_value("none")
        .await
        .expect("choosing no TLS");
    fill(&client, "#mail-from", "Panel <panel@example.test>").await;
    click(&client, "#mail-form button[type=submit]").await;
    wait_for_text(&client, "#toasts", "Mail settings saved").await;

    // …creates ivy and invites her by mail.
    fill(&client, "#user-form input[name=username]", "ivy").await;
    fill(&client, "#user-form input[name=email]", "ivy@example.test").await;
    click(&client, "#user-form button[type=submit]").await;
    click(&client, "button[aria-label='Edit ivy']").await;
    click(&client, "#user-send-mail").await;
    click(&client, "#user-invite").await;
    wait_for_text(&client, "#user-link", "Mailed to ivy@example.test").await;
    let shown = input_value(&client, "#user-link-url").await;
    screenshot(&client, "users-invitation-link").await;
    let mail = smtp.message(1).await;
    let token = support::smtp::link_token(&mail);
    assert_eq!(support::smtp::link_token(&shown), token, "{mail}");

    // Ivy opens the link: a password that does not match its repetition,
    // then one the provider refuses, each said under its field.
    click(&client, "#sign-out").await;
    wait_for(&client, "#login-form").await;
    client.goto(&shown).await.expect("opening the link");
    wait_for_text(&client, "#link-page h1", "Welcome, ivy").await;
    fill(&client, "#link-password", "Ivys-Chosen-Pass-2024").await;
    fill(&client, "#link-password-again", "Ivys-Chosen-Pass-2025").await;
    click(&client, "#link-form button[type=submit]").await;
    let problem = field_error(&client, "#link-password-again").await;
    assert!(problem.contains("does not match"), "{problem}");
    fill(&client, "#link-password", "ivy").await;
    fill(&client, "#link-password-again", "ivy").await;
    click(&client, "#link-form button[type=submit]").await;
    let problem = field_error(&client, "#link-password").await;
    assert!(!problem.is_empty());
    fill(&client, "#link-password", "Ivys-Chosen-Pass-2024").await;
    fill(&client, "#link-password-again", "Ivys-Chosen-Pass-2024").await;
    click(&client, "#link-form button[type=submit]").await;
    click(&client, "#link-sign-in").await;
    sign_in(&client, &world.panel, "ivy", "Ivys-Chosen-Pass-2024").await;
    click(&client, "#sign-out").await;
    wait_for(&client, "#login-form").await;
    // The link works once.
    client.goto(&shown).await.expect("opening the link again");
    wait_for_text(&client, "#link-page [data-code]", "used already").await;

    // An administrator creates jay with an initial password that must be
    // changed at the first sign-in.
    sign_in(&client, &world.panel, "admin", ADMIN_PASSWORD).await;
    client
        .goto(&world.panel.url("/#/admin/users"))
        .await
        .expect("navigating");
    fill(&client, "#user-form input[name=username]", "jay").await;
    fill(&client, "#new-user-password", "Jays-Temporary-Pass-1").await;
    click(&client, "#user-form button[type=submit]").await;
    wait_for_text(&client, "#toasts", "User created").await;
    click(&client, "#sign-out").await;
    submit_sign_in(&client, &world.panel, "jay", "Jays-Temporary-Pass-1").await;
    wait_for(&client, "#forced-change").await;
    let nav = wait_for(&client, "#nav").await.text().await.expect("text");
    assert!(!nav.contains("Servers"), "{nav}");
    screenshot(&client, "forced-password-change").await;
    fill(
        &client,
        "#password-form input[name=current_password]",
        "Jays-Temporary-Pass-1",
    )
    .await;
    fill(
        &client,
        "#password-form input[name=new_password]",
        "Jays-Own-Password-2024",
    )
    .await;
    fill(
        &client,
        "#password-form input[name=new_password_again]",
        "Jays-Own-Password-2024",
    )
    .await;
    click(&client, "#password-form button[type=submit]").await;
    wait_for(&client, "#server-list").await;
    click(&client, "#sign-out").await;

    // Ivy forgot her password: the sign-in page mails her a reset link.
    wait_for(&client, "#login-form").await;
    click(&client, "#forgot-password").await;
    fill(&client, "#forgot-login", "ivy@example.test").await;
    click(&client, "#forgot-form button[type=submit]").await;
    wait_for_text(&client, "#forgot-result", "on its way").await;
    let mail = smtp.message(2).await;
    let reset = support::smtp::link_token(&mail);
    client
        .goto(&world.panel.url(&format!("/#/link/{reset}")))
        .await
        .expect("opening the reset link");
    wait_for_text(&client, "#link-page h1", "New password for ivy").await;
    fill(&client, "#link-password", "Ivys-Reset-Pass-2026").await;
    fill(&client, "#link-password-again", "Ivys-Reset-Pass-2026").await;
    click(&client, "#link-form button[type=submit]").await;
    wait_for(&client, "#link-sign-in").await;
    sign_in(&client, &world.panel, "ivy", "Ivys-Reset-Pass-2026").await;
}
