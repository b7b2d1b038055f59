//! The Web UI in a real browser: Debian's headless Chromium, driven over
//! WebDriver (`chromedriver`) with `fantoccini`, against a Panel started
//! in-process with identity on and the bundled plugins (local-password,
//! test-game, quota-guard, player-list) installed the way `cap up`
//! installs them.
//!
//! Without `/usr/bin/chromium` and `/usr/bin/chromedriver` these tests fail
//! and say how to install them (`apt-get install chromium
//! chromium-driver`); they never pass without a browser.
//!
//! Screenshots of the main pages land in `<target>/ui-screenshots/` as test
//! artifacts.
//!
//! Console lines and the ready state arriving over the WebSocket need the
//! Agent link's console stream and are not covered here.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cap_panel::bundled::{self, BundledPlugin, Quiet};
use cap_panel::db::Actor;
use cap_panel::identity::users::{IdentityLink, NewUser, create_role, create_user_with_roles};
use cap_panel::identity::{IdentityOptions, LOCAL_PASSWORD, ProviderRegistry, bootstrap_admin};
use cap_panel::servers::access;
use cap_panel::{Panel, RunningPanel};
use cap_runtime::api::{self, Credentials, PasswordCredentials};
use cap_runtime::hooks::{RetryPolicy, dispatch_after};
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

#[allow(dead_code, unreachable_pub, unused_macros, unused_imports)]
#[path = "../panel/support.rs"]
mod support;

use support::TestDb;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const ADMIN_PASSWORD: &str = "Correct-Horse-Battery-42";
const PLAYER_PASSWORD: &str = "Player-Password-Staple-7";
/// How long the UI may take to show something.
const UI_WAIT: Duration = Duration::from_secs(20);

/// A Panel as `cap up` runs it, on SQLite.
struct World {
    _db: TestDb,
    panel: RunningPanel,
    providers: ProviderRegistry,
    admin_token: String,
    node_id: String,
}

async fn world() -> World {
    let db = TestDb::sqlite().await;
    let providers = ProviderRegistry::new();
    let panel = Panel::builder(db.config())
        .identity(providers.clone(), IdentityOptions::default())
        .bind()
        .await
        .expect("the Panel starts")
        .spawn();
    let plugins = panel.state().plugins().expect("plugin management runs");
    bundled::ensure_installed(
        plugins,
        &[
            BundledPlugin::LocalPassword,
            BundledPlugin::TestGame,
            BundledPlugin::QuotaGuard,
            BundledPlugin::PlayerList,
        ],
        &Quiet,
    )
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
            json!({"name": "node-1", "address": "10.0.0.1", "memory_mb": 65536,
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
        Some(json!({"ip": "10.0.0.1", "ports": ["25565-25569"]})),
        201,
    )
    .await;
    World {
        _db: db,
        panel,
        providers,
        admin_token,
        node_id,
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
        &access::server_permissions()
            .iter()
            .map(|p| (*p).to_owned())
            .collect::<Vec<_>>(),
        &Actor::system(),
    )
    .await
    .expect("the role is created");
    let user = create_user_with_roles(
        db,
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

/// Sends a console player event to the active plugins' after-hooks, as the
/// Agent link does when the game reports a join or leave.
async fn player_event(world: &World, server_id: &str, name: &str, joined: bool) {
    let event = api::Event {
        id: format!("ev-{}", uuid::Uuid::new_v4()),
        kind: if joined {
            api::EventKind::ConsolePlayerJoined
        } else {
            api::EventKind::ConsolePlayerLeft
        },
        occurred_at_ms: 1_700_000_000_000,
        actor: api::Actor {
            user_id: None,
            ip: None,
            request_id: None,
        },
        payload: api::Payload::Console(api::ConsoleInfo {
            server_id: server_id.to_owned(),
            line: format!("{name} joined the game"),
            detail: Some(name.to_owned()),
        }),
    };
    let plugins = world
        .panel
        .state()
        .plugins()
        .expect("plugin management runs")
        .active_plugins();
    let reports = dispatch_after(&plugins, &event, RetryPolicy::default()).await;
    let player_list = reports
        .iter()
        .find(|r| r.plugin == "player-list")
        .expect("player-list is subscribed to player events");
    assert!(player_list.outcome.is_ok(), "{reports:?}");
}

/// chromedriver on a free port, killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_driver() -> Driver {
    for path in [CHROMIUM, CHROMEDRIVER] {
        assert!(
            std::path::Path::new(path).exists(),
            "{path} is missing: the browser tests need Debian's Chromium and its WebDriver \
             (`apt-get install -y chromium chromium-driver`; .ci/run installs them)"
        );
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
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

async fn browser(driver: &Driver, width: u32, height: u32) -> Client {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", format!("--window-size={width},{height}")],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a Chromium session")
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

/// Waits until the text of `css` contains `needle`; returns the text.
async fn wait_for_text(client: &Client, css: &str, needle: &str) -> String {
    let deadline = Instant::now() + UI_WAIT;
    let mut last = String::new();
    loop {
        if let Ok(element) = client.find(Locator::Css(css)).await
            && let Ok(text) = element.text().await
        {
            if text.contains(needle) {
                return text;
            }
            last = text;
        }
        assert!(
            Instant::now() < deadline,
            "{css} never contained {needle:?}; last text: {last:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn sign_in(client: &Client, panel: &RunningPanel, username: &str, password: &str) {
    client.goto(&panel.url("/")).await.expect("the Panel loads");
    wait_for(client, "#login-form").await;
    client
        .find(Locator::Css("#login-form input[name=username]"))
        .await
        .expect("a username field")
        .send_keys(username)
        .await
        .expect("typing");
    client
        .find(Locator::Css("#login-form input[name=password]"))
        .await
        .expect("a password field")
        .send_keys(password)
        .await
        .expect("typing");
    client
        .find(Locator::Css("#login-submit"))
        .await
        .expect("a sign-in button")
        .click()
        .await
        .expect("clicking");
    wait_for(client, "#server-list").await;
}

async fn fill(client: &Client, css: &str, value: &str) {
    let input = client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"));
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

/// Fills and submits the create-server form; returns the URL fragment
/// after submitting.
async fn create_server_in_ui(client: &Client, panel: &RunningPanel, name: &str, memory_mb: u64) {
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
    click(client, "#create-submit").await;
}

#[tokio::test]
async fn an_admin_signs_in_creates_a_server_and_uses_the_player_list_widget() {
    let driver = start_driver();
    let world = world().await;
    let client = browser(&driver, 1280, 900).await;

    // Sign in: the provider list comes from the API.
    client
        .goto(&world.panel.url("/"))
        .await
        .expect("the Panel loads");
    wait_for(&client, "#login-form").await;
    screenshot(&client, "sign-in").await;
    sign_in(&client, &world.panel, "admin", ADMIN_PASSWORD).await;
    screenshot(&client, "servers").await;

    // A before-hook's denial reaches the user: quota-guard allows 8192 MiB.
    create_server_in_ui(&client, &world.panel, "Too big", 9000).await;
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

    // Create a server; the name carries markup, which must stay text.
    let hostile_name = "<img src=x onerror=window.__pwned=1> Survival";
    create_server_in_ui(&client, &world.panel, hostile_name, 1024).await;
    wait_for(&client, "#server-state").await;
    let heading = wait_for_text(&client, "main h1", "Survival").await;
    assert_eq!(heading, hostile_name);
    let url = client.current_url().await.expect("a URL");
    let server_id = url
        .fragment()
        .and_then(|f| f.strip_prefix("/servers/"))
        .expect("the server page's URL names the server")
        .to_owned();
    // Power buttons: the admin may do everything.
    for action in ["start", "restart", "stop", "kill"] {
        wait_for(&client, &format!(".power button[data-action={action}]")).await;
    }
    // The player-list widget renders (nobody online yet).
    wait_for_text(
        &client,
        "[data-plugin=player-list] .pui-body",
        "Nobody is online.",
    )
    .await;
    screenshot(&client, "server").await;

    // Players join (among them two whose names are markup); the widget
    // shows them after a reload of the page.
    let script_name = "<script>window.__pwned=2</script>";
    let img_name = "<img/src=x/onerror=window.__pwned=3>";
    for name in ["Steve", script_name, img_name] {
        player_event(&world, &server_id, name, true).await;
    }
    client.refresh().await.expect("reloading");
    let widget = wait_for_text(&client, "[data-plugin=player-list] .pui-body", "Steve").await;
    assert!(widget.contains("3 players online"), "{widget}");
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
    // console command is queued by the plugin (no user as actor).
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
    let commands = call(
        &world.panel,
        "GET",
        &format!("/api/v1/servers/{server_id}/commands"),
        &world.admin_token,
        None,
        200,
    )
    .await;
    let newest = &commands["items"][0];
    assert_eq!(newest["action"], "console", "{commands:#}");
    assert_eq!(newest["actor_user_id"], Value::Null, "{commands:#}");

    // A power action through the UI is queued.
    click(&client, ".power button[data-action=start]").await;
    wait_for_text(&client, "#server-commands", "start").await;

    // The other main pages render; screenshots for people.
    for (fragment, ready, name) in [
        ("/#/admin/nodes", "#node-list table", "admin-nodes"),
        ("/#/admin/plugins", "#plugin-list table", "admin-plugins"),
        (
            "/#/admin/plugins/player-list",
            "#plugin-state",
            "admin-plugin-detail",
        ),
        ("/#/admin/users", "#user-list table", "admin-users"),
        ("/#/audit", "#audit-table tbody tr", "audit-log"),
        ("/#/account", "#api-keys", "account"),
    ] {
        client
            .goto(&world.panel.url(fragment))
            .await
            .expect("navigating");
        wait_for(&client, ready).await;
        screenshot(&client, name).await;
    }

    // Phone-sized: the navigation collapses behind a menu button.
    client.set_window_size(390, 844).await.expect("resizing");
    client
        .goto(&world.panel.url(&format!("/#/servers/{server_id}")))
        .await
        .expect("navigating");
    wait_for(&client, "#server-state").await;
    let toggle = wait_for(&client, "#nav-toggle").await;
    assert!(toggle.is_displayed().await.expect("visibility"));
    screenshot(&client, "server-phone").await;

    client.close().await.expect("closing the browser");
}

#[tokio::test]
async fn a_subuser_without_power_permissions_sees_the_console_but_no_power_buttons() {
    let driver = start_driver();
    let world = world().await;
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
    sign_in(&client, &world.panel, "player", PLAYER_PASSWORD).await;
    // No admin links, no create button.
    let nav = wait_for_text(&client, "#nav", "Servers").await;
    assert!(!nav.contains("Plugins") && !nav.contains("Nodes"), "{nav}");
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
