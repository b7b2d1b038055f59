//! The real example plugins, run by the real host: game types, the local
//! password provider, the quota guard and the Discord webhook.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cap_e2e::{StaticPanel, load, runtime, server_create};
use cap_runtime::api::{
    AuthError, ConfigFormat, Credentials, Event, EventKind, InstallStep, KeyValue, LineKind,
    PasswordCredentials, Payload, Platform, ServerContext, StopMethod,
};
use cap_runtime::capabilities::config::MemoryConfig;
use cap_runtime::hooks::{Decision, RetryPolicy, dispatch_after, dispatch_before};
use cap_runtime::{HostServices, RuntimeConfig};

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: value.into(),
    }
}

fn context(variables: Vec<KeyValue>) -> ServerContext {
    ServerContext {
        server_id: "srv-1".into(),
        name: "Survival".into(),
        memory_mb: 4096,
        disk_mb: 20480,
        cpu_percent: 200,
        variables,
        ports: vec![
            cap_runtime::api::AllocatedPort {
                name: "game".into(),
                ip: "0.0.0.0".into(),
                port: 25570,
            },
            cap_runtime::api::AllocatedPort {
                name: "query".into(),
                ip: "0.0.0.0".into(),
                port: 25571,
            },
        ],
        platform: Platform {
            os: cap_runtime::api::Os::Linux,
            arch: cap_runtime::api::Arch::Amd64,
        },
        game_type: String::new(),
        image: None,
        startup_command: None,
        node: Default::default(),
    }
}

/// A local stand-in for PaperMC's downloads service (Fill v3): build 232
/// of 1.21.4 lists `sha256` and a jar on the service itself; anything else
/// is 404. Returns the service's URL and the `User-Agent`s it saw.
async fn paper_downloads(sha256: &str) -> (String, Arc<Mutex<Vec<String>>>) {
    let agents = Arc::new(Mutex::new(Vec::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let build = serde_json::json!({
        "id": 232,
        "channel": "STABLE",
        "downloads": {"server:default": {
            "name": "paper-1.21.4-232.jar",
            "checksums": {"sha256": sha256},
            "size": 1,
            "url": format!("{base}/objects/paper-1.21.4-232.jar"),
        }}
    });
    let app = axum::Router::new().route(
        "/v3/projects/paper/versions/1.21.4/builds/232",
        axum::routing::get({
            let agents = agents.clone();
            move |headers: axum::http::HeaderMap| {
                let agents = agents.clone();
                let build = build.clone();
                async move {
                    let agent = headers
                        .get(axum::http::header::USER_AGENT)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    agents.lock().expect("lock").push(agent);
                    axum::Json(build)
                }
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, agents)
}

/// minecraft-paper asking the downloads service at `api`, granted
/// loopback as an admin granting a local mirror would.
async fn paper(api: &str) -> cap_runtime::Plugin {
    let config = Arc::new(MemoryConfig::default());
    config.set("minecraft-paper", "downloads-api", api);
    let services = HostServices {
        config,
        ..HostServices::in_memory()
    };
    let mut manifest = cap_e2e::manifest("minecraft-paper");
    manifest
        .capabilities
        .http
        .as_mut()
        .expect("minecraft-paper requests HTTP")
        .allowed_hosts
        .push("127.0.0.1:*".into());
    let grants = cap_runtime::Grants::all_requested(&manifest);
    let rt = runtime(RuntimeConfig::default());
    rt.load(cap_runtime::PluginSpec {
        manifest,
        component: Arc::from(cap_e2e::component("minecraft-paper")),
        grants,
        limit_caps: None,
        services,
    })
    .await
    .expect("minecraft-paper loads")
}

/// The variables with their defaults, the EULA accepted and `overrides`.
async fn paper_variables(mc: &cap_runtime::Plugin, overrides: &[(&str, &str)]) -> Vec<KeyValue> {
    let info = mc.describe_game().await.expect("describe");
    let mut vars: Vec<KeyValue> = info
        .variables
        .iter()
        .filter_map(|v| v.default_value.as_ref().map(|d| kv(&v.key, d)))
        .filter(|v| v.key != "EULA")
        .collect();
    vars.push(kv("EULA", "true"));
    for (key, value) in overrides {
        vars.retain(|v| v.key != *key);
        vars.push(kv(key, value));
    }
    vars
}

#[tokio::test]
async fn minecraft_paper_describes_validates_and_plans_a_server() {
    let listed = "b".repeat(64);
    let (api, agents) = paper_downloads(&listed).await;
    let mc = paper(&api).await;

    let info = mc
        .describe_game()
        .await
        .expect("describe passes the host's checks");
    assert_eq!(info.id, "minecraft-paper");
    let keys: Vec<_> = info.variables.iter().map(|v| v.key.as_str()).collect();
    for key in [
        "MINECRAFT_VERSION",
        "BUILD_NUMBER",
        "SERVER_JARFILE",
        "EULA",
        "JAR_SHA256",
    ] {
        assert!(keys.contains(&key), "{key} missing from {keys:?}");
    }

    let mut vars = paper_variables(&mc, &[("EULA", "false")]).await;
    let errors = mc
        .validate_variables("minecraft-paper", &vars)
        .await
        .expect("call")
        .expect_err("EULA must be accepted");
    assert!(errors.iter().any(|e| e.key == "EULA"), "{errors:?}");

    vars.retain(|v| v.key != "EULA");
    vars.push(kv("EULA", "true"));
    mc.validate_variables("minecraft-paper", &vars)
        .await
        .expect("call")
        .expect("valid variables, with no checksum pasted");

    let plan = mc
        .install_plan(&context(vars.clone()))
        .await
        .expect("call")
        .expect("plan");
    let download = plan
        .steps
        .iter()
        .find_map(|s| match s {
            InstallStep::Download(d) => Some(d),
            _ => None,
        })
        .expect("downloads the server jar");
    assert_eq!(download.url, format!("{api}/objects/paper-1.21.4-232.jar"));
    assert_eq!(download.sha256, listed, "the checksum PaperMC lists");
    let seen = agents.lock().expect("lock").clone();
    assert!(
        seen.len() == 1
            && seen[0].starts_with("ctrl-alt-play-minecraft-paper/")
            && seen[0].contains('('),
        "PaperMC requires a User-Agent with a contact: {seen:?}"
    );
    let properties = plan
        .steps
        .iter()
        .find_map(|s| match s {
            InstallStep::EditConfig(e) if e.path == "server.properties" => Some(e),
            _ => None,
        })
        .expect("edits server.properties");
    assert_eq!(properties.format, ConfigFormat::Properties);
    assert!(
        properties.set.contains(&kv("server-port", "25570")),
        "{:?}",
        properties.set
    );

    let startup = mc
        .startup_plan(&context(vars.clone()))
        .await
        .expect("call")
        .expect("plan");
    assert_eq!(startup.program, "java");
    assert!(
        startup.args.contains(&"-Xmx4096M".to_string()),
        "{:?}",
        startup.args
    );

    let stop = mc.stop_plan(&context(vars)).await.expect("call");
    assert_eq!(stop.method, StopMethod::ConsoleCommand("stop".into()));

    let line = r#"[12:00:01 INFO]: Done (6.413s)! For help, type "help""#;
    assert_eq!(
        mc.classify_line("", line).await.expect("call"),
        LineKind::Ready
    );
    assert_eq!(
        mc.classify_line("", "[12:00:05 INFO]: Steve joined the game")
            .await
            .expect("call"),
        LineKind::PlayerJoined("Steve".into())
    );
    assert_eq!(
        mc.classify_line("", "[12:00:09 INFO]: Steve left the game")
            .await
            .expect("call"),
        LineKind::PlayerLeft("Steve".into())
    );
}

#[tokio::test]
async fn a_pinned_paper_checksum_that_papermc_does_not_list_refuses_the_install() {
    let (api, _) = paper_downloads(&"b".repeat(64)).await;
    let mc = paper(&api).await;
    let pin = "c".repeat(64);
    let vars = paper_variables(&mc, &[("JAR_SHA256", &pin)]).await;
    let error = mc
        .install_plan(&context(vars))
        .await
        .expect("call")
        .expect_err("the pin differs from what PaperMC lists");
    assert_eq!(error.code, "checksum-unavailable", "{error:?}");
    assert!(error.message.contains(&pin), "{}", error.message);

    let vars = paper_variables(&mc, &[("JAR_SHA256", &"B".repeat(64))]).await;
    let plan = mc
        .install_plan(&context(vars))
        .await
        .expect("call")
        .expect("a pin equal to the listed checksum, in any case, installs");
    assert!(
        plan.steps
            .iter()
            .any(|s| matches!(s, InstallStep::Download(d) if d.sha256 == "b".repeat(64)))
    );
}

#[tokio::test]
async fn an_unknown_paper_build_refuses_the_install_naming_it() {
    let (api, _) = paper_downloads(&"b".repeat(64)).await;
    let mc = paper(&api).await;
    let vars = paper_variables(&mc, &[("BUILD_NUMBER", "9999")]).await;
    let error = mc
        .install_plan(&context(vars))
        .await
        .expect("call")
        .expect_err("PaperMC lists no such build");
    assert_eq!(error.code, "unknown-build", "{error:?}");
    assert!(
        error.message.contains("9999") && error.message.contains("1.21.4"),
        "{}",
        error.message
    );
}

#[tokio::test]
async fn an_unreachable_downloads_service_refuses_the_install_and_downloads_nothing() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let api = format!("http://127.0.0.1:{closed}");
    let mc = paper(&api).await;
    let vars = paper_variables(&mc, &[]).await;
    let error = mc
        .install_plan(&context(vars))
        .await
        .expect("call")
        .expect_err("no checksum, no install");
    assert_eq!(error.code, "checksum-unavailable", "{error:?}");
    assert!(error.message.contains(&api), "{}", error.message);
}

#[tokio::test]
async fn the_paper_checksum_service_is_reached_only_where_the_admin_granted() {
    // The shipped grants name fill.papermc.io alone: a loopback service is
    // denied by the host, and the install says so.
    let (api, agents) = paper_downloads(&"b".repeat(64)).await;
    let config = Arc::new(MemoryConfig::default());
    config.set("minecraft-paper", "downloads-api", &api);
    let services = HostServices {
        config,
        ..HostServices::in_memory()
    };
    let mc = load(
        &runtime(RuntimeConfig::default()),
        "minecraft-paper",
        services,
    )
    .await;
    let vars = paper_variables(&mc, &[]).await;
    let error = mc
        .install_plan(&context(vars))
        .await
        .expect("call")
        .expect_err("loopback is not granted");
    assert!(error.message.contains("denied"), "{}", error.message);
    assert!(agents.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn the_test_game_plans_a_run_of_the_stand_in_and_parses_its_console() {
    let rt = runtime(RuntimeConfig::default());
    let game = load(&rt, "test-game", HostServices::in_memory()).await;
    game.describe_game().await.expect("valid definition");
    let startup = game
        .startup_plan(&context(vec![]))
        .await
        .expect("call")
        .expect("plan");
    assert_eq!(startup.program, "cap-standin-game");
    assert!(
        startup.args.windows(2).any(|w| w == ["--port", "25570"]),
        "{:?}",
        startup.args
    );
    assert!(startup.env.is_empty(), "{:?}", startup.env);
    let with_password = game
        .startup_plan(&context(vec![KeyValue {
            key: "RCON_PASSWORD".into(),
            value: "hunter2".into(),
        }]))
        .await
        .expect("call")
        .expect("plan");
    assert_eq!(
        with_password.env,
        [KeyValue {
            key: "RCON_PASSWORD".into(),
            value: "hunter2".into(),
        }]
    );
    assert_eq!(
        game.classify_line("", "JOIN alex").await.expect("call"),
        LineKind::PlayerJoined("alex".into())
    );
    assert_eq!(
        game.classify_line("", "CRASH out of cheese")
            .await
            .expect("call"),
        LineKind::Crash("out of cheese".into())
    );
    let command = game.status_command("").await.expect("call");
    assert_eq!(command.as_deref(), Some("players"));
    let status = game
        .parse_status("", &["PLAYERS 2/10: alex,sam".to_string()])
        .await
        .expect("call")
        .expect("parsed");
    assert_eq!(
        (status.online, status.max, status.players.len()),
        (2, 10, 2)
    );
}

fn password(username: &str, password: &str) -> Credentials {
    Credentials::Password(PasswordCredentials {
        username: username.into(),
        password: password.into(),
        second_factor: None,
    })
}

#[tokio::test]
async fn local_password_enforces_policy_verifies_hashes_and_locks_out() {
    let rt = runtime(RuntimeConfig::default());
    let config = Arc::new(MemoryConfig::default());
    config.set("local-password", "max-failures", "3");
    let services = HostServices {
        config: config.clone(),
        ..HostServices::in_memory()
    };
    let auth = load(&rt, "local-password", services).await;

    match auth.set_password("alice", "short").await.expect("call") {
        Err(AuthError::PolicyViolation(rules)) => assert!(!rules.is_empty()),
        other => panic!("a weak password must be refused, got {other:?}"),
    }
    auth.set_password("alice", "correct horse battery 9")
        .await
        .expect("call")
        .expect("strong password");

    let identity = auth
        .authenticate(&password("alice", "correct horse battery 9"))
        .await
        .expect("call")
        .expect("right password");
    assert_eq!(identity.username, "alice");
    assert_eq!(
        auth.authenticate(&password("nobody", "whatever it is"))
            .await
            .expect("call"),
        Err(AuthError::InvalidCredentials)
    );

    for attempt in 1..=3 {
        let answer = auth
            .authenticate(&password("alice", "wrong password!"))
            .await
            .expect("call");
        match (attempt, answer) {
            (1 | 2, Err(AuthError::InvalidCredentials)) | (3, Err(AuthError::Locked(_))) => {}
            (n, other) => panic!("wrong password #{n}: {other:?}"),
        }
    }
    match auth
        .authenticate(&password("alice", "correct horse battery 9"))
        .await
        .expect("call")
    {
        Err(AuthError::Locked(_)) => {}
        other => panic!("three failures must lock the account, got {other:?}"),
    }
}

#[tokio::test]
async fn a_plugin_log_record_keeps_its_level_name_in_the_recent_lines() {
    let rt = runtime(RuntimeConfig::default());
    let auth = load(&rt, "local-password", HostServices::in_memory()).await;
    auth.set_password("alice", "correct horse battery 9")
        .await
        .expect("call")
        .expect("strong password");
    let lines = auth.logs();
    let line = lines
        .iter()
        .find(|l| l.message == "password set for alice")
        .unwrap_or_else(|| panic!("the plugin's info record is kept: {lines:?}"));
    // The level's WIT name, as the Panel's admin view shows it.
    assert_eq!(line.level, "info", "{lines:?}");
}

fn server_event(kind: EventKind, id: &str, owner: &str, memory_mb: u64) -> Event {
    let mut event = server_create(id, owner, memory_mb);
    event.kind = kind;
    if let Payload::Server(s) = &mut event.payload {
        s.id = id.into();
    }
    event
}

#[tokio::test]
async fn quota_guard_denies_creation_beyond_the_owners_quota() {
    let rt = runtime(RuntimeConfig::default());
    let panel = Arc::new(StaticPanel::default());
    let config = Arc::new(MemoryConfig::default());
    config.set("quota-guard", "max-memory-mb", "8192");
    let services = HostServices {
        panel: panel.clone(),
        config,
        ..HostServices::in_memory()
    };
    let guard = load(&rt, "quota-guard", services).await;
    let plugins = [guard.clone()];

    // alice already runs a 6 GiB server, recorded by the after-hook.
    panel.add_server("existing", "alice");
    let reports = dispatch_after(
        &plugins,
        &server_event(EventKind::ServerCreate, "existing", "alice", 6144),
        RetryPolicy::default(),
    )
    .await;
    assert!(reports[0].outcome.is_ok(), "{reports:?}");

    let too_big = dispatch_before(
        &plugins,
        &server_event(EventKind::ServerCreate, "new", "alice", 3072),
    )
    .await;
    match too_big.decision {
        Decision::Deny { plugin, reason } => {
            assert_eq!(plugin, "quota-guard");
            assert_eq!(
                reason,
                "quota exceeded: user alice would use 9216 MiB of 8192 MiB"
            );
        }
        Decision::Allow(_) => panic!("9 GiB must exceed an 8 GiB quota"),
    }
    let fits = dispatch_before(
        &plugins,
        &server_event(EventKind::ServerCreate, "new", "alice", 2048),
    )
    .await;
    assert!(
        matches!(fits.decision, Decision::Allow(_)),
        "{:?}",
        fits.reports
    );
    // Another user's quota is separate.
    let bob = dispatch_before(
        &plugins,
        &server_event(EventKind::ServerCreate, "b1", "bob", 8192),
    )
    .await;
    assert!(
        matches!(bob.decision, Decision::Allow(_)),
        "{:?}",
        bob.reports
    );
}

#[tokio::test]
async fn a_slow_fail_open_hook_does_not_hold_up_a_fail_closed_decision() {
    let rt = runtime(RuntimeConfig::default());
    let panel = Arc::new(StaticPanel::default());
    let services = HostServices {
        panel,
        ..HostServices::in_memory()
    };
    let guard = load(&rt, "quota-guard", services).await;
    let adversarial = load(&rt, "adversarial", HostServices::in_memory()).await;
    // The server is named "spin": the adversarial plugin loops until its
    // 500 ms deadline; the guard answers at once. The dispatch ends at the
    // slowest deadline, not later, and the spinner's failure is ignored
    // because it is not fail-closed.
    let started = Instant::now();
    let out = dispatch_before(
        &[adversarial, guard],
        &server_event(EventKind::ServerCreate, "spin", "carol", 1024),
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(out.decision, Decision::Allow(_)),
        "{:?}",
        out.reports
    );
    let spinner = out
        .reports
        .iter()
        .find(|r| r.plugin == "adversarial")
        .expect("reported");
    assert!(
        spinner
            .outcome
            .as_ref()
            .is_err_and(|e| e.contains("timed out")),
        "{spinner:?}"
    );
}

/// A local stand-in for Discord's webhook endpoint.
async fn webhook_server(
    status: axum::http::StatusCode,
) -> (String, Arc<Mutex<Vec<serde_json::Value>>>) {
    let received = Arc::new(Mutex::new(Vec::new()));
    let app = axum::Router::new().route(
        "/api/webhooks/1/token",
        axum::routing::post({
            let received = received.clone();
            move |axum::Json(body): axum::Json<serde_json::Value>| {
                let received = received.clone();
                async move {
                    received.lock().expect("lock").push(body);
                    status
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/api/webhooks/1/token"), received)
}

/// The discord-webhook plugin posting to `url`, with every requested grant
/// or with `grants`.
async fn discord_hook(url: &str, grants: Option<cap_runtime::Grants>) -> cap_runtime::Plugin {
    let config = Arc::new(MemoryConfig::default());
    config.set_secret("discord-webhook", "webhook-url", url);
    let services = HostServices {
        config,
        ..HostServices::in_memory()
    };
    let rt = runtime(RuntimeConfig::default());
    match grants {
        Some(grants) => cap_e2e::load_with(&rt, "discord-webhook", grants, services).await,
        None => load(&rt, "discord-webhook", services).await,
    }
}

#[tokio::test]
async fn discord_webhook_posts_lifecycle_events_over_allow_listed_http() {
    let (url, received) = webhook_server(axum::http::StatusCode::NO_CONTENT).await;
    let hook = discord_hook(&url, None).await;

    let reports = dispatch_after(
        &[hook],
        &server_event(EventKind::ServerStart, "survival", "alice", 1024),
        RetryPolicy::default(),
    )
    .await;
    assert_eq!(reports.len(), 1);
    assert!(reports[0].outcome.is_ok(), "{reports:?}");
    let bodies = received.lock().expect("lock").clone();
    assert_eq!(bodies.len(), 1);
    assert!(bodies[0].to_string().contains("survival"), "{}", bodies[0]);
}

#[tokio::test]
async fn a_failing_after_hook_is_retried_with_backoff() {
    let (url, received) = webhook_server(axum::http::StatusCode::INTERNAL_SERVER_ERROR).await;
    let hook = discord_hook(&url, None).await;

    let retry = RetryPolicy {
        attempts: 3,
        backoff: Duration::from_millis(10),
    };
    let reports = dispatch_after(
        &[hook],
        &server_event(EventKind::ServerStop, "survival", "alice", 1024),
        retry,
    )
    .await;
    assert_eq!(reports[0].attempts, 3);
    assert!(reports[0].outcome.is_err(), "{reports:?}");
    assert_eq!(
        received.lock().expect("lock").len(),
        3,
        "one POST per attempt"
    );
}

#[tokio::test]
async fn the_webhook_is_refused_when_its_host_is_not_granted() {
    let (url, received) = webhook_server(axum::http::StatusCode::NO_CONTENT).await;
    let mut grants = cap_runtime::Grants::all_requested(&cap_e2e::manifest("discord-webhook"));
    grants.http_hosts.retain(|h| !h.starts_with("127.0.0.1"));
    let hook = discord_hook(&url, Some(grants)).await;
    let retry = RetryPolicy {
        attempts: 1,
        backoff: Duration::ZERO,
    };
    let reports = dispatch_after(
        &[hook],
        &server_event(EventKind::ServerStart, "s", "a", 1),
        retry,
    )
    .await;
    assert!(
        reports[0]
            .outcome
            .as_ref()
            .is_err_and(|e| e.contains("allow-list")),
        "{reports:?}"
    );
    assert!(received.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn stop_plans_and_install_plans_name_only_paths_inside_the_server_directory() {
    let rt = runtime(RuntimeConfig::default());
    let game = load(&rt, "test-game", HostServices::in_memory()).await;
    let plan = game
        .install_plan(&context(vec![]))
        .await
        .expect("call")
        .expect("plan");
    assert!(!plan.steps.is_empty());
    for step in &plan.steps {
        if let InstallStep::WriteFile(w) = step {
            assert!(
                cap_runtime::output::is_safe_relative_path(&w.path),
                "{}",
                w.path
            );
        }
    }
    let adversarial = load(&rt, "adversarial", HostServices::in_memory()).await;
    let hostile = adversarial.install_plan(&context(vec![])).await;
    assert!(
        matches!(hostile, Err(cap_runtime::CallError::BadOutput { .. })),
        "{hostile:?}"
    );
}
