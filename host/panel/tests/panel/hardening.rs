//! Hardening of issue 12 on the Panel's side: the lockout under concurrent
//! guesses, the lock that must not tell an account exists, opt-in metrics
//! behind a token, client addresses behind trusted proxies, limits on every
//! mutating route, login floods that must not quarantine the provider, and
//! quarantine that outlives a restart.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cap_panel::config::{Config, ConfigError, ConfigLayer, MetricsToken};
use cap_panel::db::Actor;
use cap_panel::identity::rate_limit::Rule;
use cap_panel::identity::{
    BootstrapOutcome, IdentityOptions, LoginError, ProviderRegistry, RateLimits, bootstrap_admin,
    load_local_password,
};
use cap_panel::{Panel, RunningPanel};
use cap_runtime::api::AuthError;
use cap_runtime::{CallError, Plugin, RuntimeConfig};
use serde_json::{Value, json};

use crate::identity::{ADMIN_PASSWORD, IdentityPanel, runtime};
use crate::plugins::{PLUGIN_ADMIN, install_and_activate, post};
use crate::support::{
    METRICS_TOKEN, TestDb, client, expect_problem, on_every_database, start_panel_with,
};

/// The local-password plugin's default `max-failures`.
const MAX_FAILURES: usize = 5;

on_every_database! {
    async fn concurrent_wrong_logins_reach_the_provider_only_until_the_lockout(db: &TestDb) {
        let p = IdentityPanel::start(db).await;
        let identity = p.panel.state().identity().expect("identity is on").clone();
        let guesses = (0..50).map(|i| {
            let identity = identity.clone();
            async move {
                identity
                    .login_with_password(
                        "local-password",
                        "admin",
                        &format!("Wrong-Password-{i}"),
                        None,
                        &Actor::system(),
                    )
                    .await
            }
        });
        let answers = futures::future::join_all(guesses).await;
        let mut wrong = 0;
        let mut locked = 0;
        for answer in &answers {
            match answer {
                Err(LoginError::Refused(AuthError::InvalidCredentials)) => wrong += 1,
                Err(LoginError::Refused(AuthError::Locked(_))) => locked += 1,
                other => panic!("an unexpected answer to a wrong password: {other:?}"),
            }
        }
        // The guesses that reached the password check before the lock: the
        // ones answered "wrong", and the one that locked the account.
        assert_eq!(wrong + 1, MAX_FAILURES, "{wrong} wrong, {locked} locked");
        assert_eq!(locked, 50 - wrong);
        // The right password is refused now, with the generic answer.
        expect_problem(p.login("admin", ADMIN_PASSWORD).await, 401, "invalid-credentials").await;
        assert!(p.plugin.quarantine().is_none());
    }
}

/// The answer to a login, without what differs per request.
async fn login_answer(response: reqwest::Response) -> (u16, Vec<String>, Value) {
    let status = response.status().as_u16();
    let mut headers: Vec<String> = response
        .headers()
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "x-request-id" | "date" | "content-length"))
        .map(|(name, value)| format!("{name}: {}", value.to_str().unwrap_or("?")))
        .collect();
    headers.sort();
    let mut body: Value = response.json().await.expect("a JSON problem");
    body["request_id"] = Value::Null;
    (status, headers, body)
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

on_every_database! {
    async fn a_locked_account_answers_exactly_like_an_unknown_one(db: &TestDb) {
        let p = IdentityPanel::start(db).await;
        for _ in 0..MAX_FAILURES {
            p.login("admin", "Wrong-Password-123").await;
        }
        let locked = login_answer(p.login("admin", "Wrong-Password-123").await).await;
        let unknown = login_answer(p.login("nobody-at-all", "Wrong-Password-123").await).await;
        assert_eq!(locked.0, 401);
        assert_eq!(locked, unknown, "a locked and an unknown account must look the same");
        assert!(!locked.1.iter().any(|h| h.starts_with("retry-after")), "{:?}", locked.1);

        // The same work on both paths: the lock costs a password hash too.
        let identity = p.panel.state().identity().expect("identity").clone();
        let mut locked_times = Vec::new();
        let mut unknown_times = Vec::new();
        for _ in 0..5 {
            for (user, times) in [("admin", &mut locked_times), ("nobody-at-all", &mut unknown_times)] {
                let started = Instant::now();
                let _ = identity
                    .login_with_password("local-password", user, "Wrong-Password-123", None, &Actor::system())
                    .await;
                times.push(started.elapsed());
            }
        }
        let (locked_time, unknown_time) = (median(locked_times), median(unknown_times));
        assert!(
            locked_time * 4 >= unknown_time,
            "a locked account answers in {locked_time:?}, an unknown one in {unknown_time:?}"
        );
    }
}

#[tokio::test]
async fn metrics_are_off_by_default_and_answer_404() {
    let db = TestDb::sqlite().await;
    let panel = start_panel_with(db.config()).await;
    let response = client()
        .get(panel.url("/metrics"))
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await
        .expect("request");
    expect_problem(response, 404, "not-found").await;
    panel.stop().await.expect("stops");
}

#[tokio::test]
async fn metrics_answer_only_their_token() {
    let db = TestDb::sqlite().await;
    let mut config = db.config();
    config.metrics_token = Some(MetricsToken::new(METRICS_TOKEN).expect("long enough"));
    let panel = start_panel_with(config).await;
    let url = panel.url("/metrics");
    expect_problem(
        client().get(&url).send().await.expect("request"),
        401,
        "unauthenticated",
    )
    .await;
    let almost = format!("{}x", &METRICS_TOKEN[..METRICS_TOKEN.len() - 1]);
    for wrong in [almost.as_str(), "", "metrics-token"] {
        let response = client()
            .get(&url)
            .bearer_auth(wrong)
            .send()
            .await
            .expect("request");
        expect_problem(response, 401, "unauthenticated").await;
    }
    let response = client()
        .get(&url)
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let text = response.text().await.expect("text");
    assert!(text.contains("cap_panel_build_info"), "{text}");
    panel.stop().await.expect("stops");
}

#[test]
fn metrics_turned_on_without_a_long_enough_token_are_refused_at_load() {
    let env = |vars: &[(&str, &str)]| -> Vec<(std::ffi::OsString, std::ffi::OsString)> {
        vars.iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    };
    let error = Config::load(
        ConfigLayer::default(),
        env(&[("CAP_METRICS_ENABLED", "true")]),
    )
    .expect_err("on without a token");
    assert!(matches!(error, ConfigError::MetricsWithoutToken), "{error}");
    assert!(error.to_string().contains("CAP_METRICS_TOKEN"), "{error}");
    let error = Config::load(
        ConfigLayer::default(),
        env(&[("CAP_METRICS_TOKEN", "short")]),
    )
    .expect_err("a short token");
    assert!(error.to_string().contains("at least 16"), "{error}");
    let config = Config::load(
        ConfigLayer::default(),
        env(&[("CAP_METRICS_TOKEN", METRICS_TOKEN)]),
    )
    .expect("a token turns metrics on");
    assert!(
        config
            .metrics_token
            .is_some_and(|t| t.matches(METRICS_TOKEN))
    );
    let config = Config::load(
        ConfigLayer::default(),
        env(&[
            ("CAP_METRICS_TOKEN", METRICS_TOKEN),
            ("CAP_METRICS_ENABLED", "false"),
        ]),
    )
    .expect("off wins");
    assert!(config.metrics_token.is_none());
    assert!(
        !format!("{config:?}").contains(METRICS_TOKEN),
        "Debug hides the token"
    );
    let file = ConfigLayer::from_toml_str(
        "[http]\ntrusted-proxies = [\"10.0.0.5\", \"fd00::/8\"]\n[metrics]\nenabled = false\n",
    )
    .expect("valid");
    assert_eq!(file.trusted_proxies.map(|p| p.len()), Some(2));
    assert!(ConfigLayer::from_toml_str("[http]\ntrusted-proxies = [\"proxy.example\"]\n").is_err());
}

/// A Panel whose mutating routes allow `burst` requests per address an
/// hour, trusting `proxies`.
async fn limited_panel(db: &TestDb, burst: u32, proxies: &[&str]) -> RunningPanel {
    let mut config = db.config();
    config.rate_limits.writes_per_ip = Rule::new(burst, Duration::from_secs(3600));
    config.trusted_proxies = proxies.iter().map(|p| p.parse().expect("a CIDR")).collect();
    start_panel_with(config).await
}

/// `DELETE /api/v1/settings/x` (a mutating route) as if from `forwarded`.
async fn delete_setting(panel: &RunningPanel, forwarded: Option<&str>) -> reqwest::Response {
    let request = client()
        .delete(panel.url("/api/v1/settings/x"))
        .bearer_auth(crate::support::ADMIN_TOKEN);
    let request = match forwarded {
        Some(value) => request.header("x-forwarded-for", value),
        None => request,
    };
    request.send().await.expect("request")
}

#[tokio::test]
async fn a_mutating_route_answers_429_with_retry_after_past_the_limit() {
    let db = TestDb::sqlite().await;
    let panel = limited_panel(&db, 3, &[]).await;
    for _ in 0..3 {
        assert_ne!(delete_setting(&panel, None).await.status(), 429);
    }
    let response = delete_setting(&panel, None).await;
    let retry_after: u64 = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After header");
    assert!(retry_after > 0);
    expect_problem(response, 429, "rate-limited").await;
    // Reads are not limited by the write rule.
    let read = client()
        .get(panel.url("/api/v1/settings"))
        .bearer_auth(crate::support::ADMIN_TOKEN)
        .send()
        .await
        .expect("request");
    assert_eq!(read.status(), 200);
    panel.stop().await.expect("stops");
}

#[tokio::test]
async fn a_forged_forwarded_for_from_an_untrusted_peer_is_ignored() {
    let db = TestDb::sqlite().await;
    let panel = limited_panel(&db, 2, &["10.0.0.0/8"]).await;
    for forged in ["198.51.100.1", "198.51.100.2"] {
        assert_ne!(delete_setting(&panel, Some(forged)).await.status(), 429);
    }
    // A third made-up address is still the same client: 127.0.0.1.
    let response = delete_setting(&panel, Some("198.51.100.3")).await;
    expect_problem(response, 429, "rate-limited").await;
    panel.stop().await.expect("stops");
}

#[tokio::test]
async fn a_trusted_proxys_forwarded_for_names_the_client() {
    let db = TestDb::sqlite().await;
    let panel = limited_panel(&db, 2, &["127.0.0.1/32"]).await;
    for _ in 0..2 {
        assert_ne!(
            delete_setting(&panel, Some("198.51.100.1")).await.status(),
            429
        );
    }
    expect_problem(
        delete_setting(&panel, Some("198.51.100.1")).await,
        429,
        "rate-limited",
    )
    .await;
    // Another client behind the same proxy has its own budget, and what a
    // client writes left of the proxy's entry is not believed.
    assert_ne!(
        delete_setting(&panel, Some("198.51.100.1, 198.51.100.2"))
            .await
            .status(),
        429
    );
    // The audit log records the forwarded client.
    let response = client()
        .post(panel.url("/api/v1/settings"))
        .bearer_auth(crate::support::ADMIN_TOKEN)
        .header("x-forwarded-for", "203.0.113.77")
        .json(&json!({ "name": "motd", "value": "hello" }))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 201);
    let page: Value = client()
        .get(panel.url("/api/v1/audit-log?kind=setting.created&limit=1"))
        .bearer_auth(crate::support::ADMIN_TOKEN)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("JSON");
    assert_eq!(page["items"][0]["actor"]["ip"], "203.0.113.77", "{page:#}");
    panel.stop().await.expect("stops");
}

/// A Panel with identity on, limits on logins far above the flood, and the
/// local-password plugin; returns it with the plugin.
async fn panel_for_a_flood(db: &TestDb) -> (RunningPanel, Plugin) {
    let lenient = Rule::new(100_000, Duration::from_millis(1));
    let options = IdentityOptions {
        rate_limits: RateLimits {
            login_per_ip: lenient,
            login_per_account: lenient,
            ..RateLimits::default()
        },
        ..IdentityOptions::default()
    };
    let mut config = db.config();
    config.rate_limits.auth_per_ip = lenient;
    let providers = ProviderRegistry::new();
    let panel = Panel::builder(config)
        .identity(providers.clone(), options)
        .bind()
        .await
        .expect("the Panel starts")
        .spawn();
    let database = panel.state().db().clone();
    let manifest =
        std::fs::read(cap_e2e::repo_root().join("example-plugins/local-password/plugin.toml"))
            .expect("the manifest");
    let component: Arc<[u8]> = Arc::from(cap_e2e::component("local-password"));
    let plugin = load_local_password(&runtime(), &database, &manifest, component)
        .await
        .expect("local-password loads");
    providers.insert(plugin.clone());
    let outcome = bootstrap_admin(&database, &providers, Some(ADMIN_PASSWORD.to_owned()))
        .await
        .expect("the admin");
    assert!(matches!(outcome, BootstrapOutcome::Created { .. }));
    (panel, plugin)
}

#[tokio::test]
async fn a_login_flood_leaves_the_provider_active_for_everyone_else() {
    let db = TestDb::sqlite().await;
    let (panel, plugin) = panel_for_a_flood(&db).await;
    let url = panel.url("/api/v1/auth/login");
    let flood = (0..200).map(|i| {
        let url = url.clone();
        async move {
            client()
                .post(url)
                .json(&json!({ "username": format!("guess-{i}"), "password": "Wrong-Password-1" }))
                .send()
                .await
                .map(|r| r.status().as_u16())
        }
    });
    let statuses = futures::future::join_all(flood).await;
    let limited = statuses.iter().filter(|s| matches!(s, Ok(429))).count();
    assert!(limited > 0, "the flood was never held back: {statuses:?}");
    assert!(
        plugin.quarantine().is_none(),
        "the flood quarantined the provider: {:?}",
        plugin.status()
    );
    // Someone else, from another address, logs in.
    let other = reqwest::Client::builder()
        .local_address(Some(IpAddr::from([127, 0, 0, 2])))
        .timeout(Duration::from_secs(30))
        .build()
        .expect("a client on 127.0.0.2");
    let response = other
        .post(&url)
        .json(&json!({ "username": "admin", "password": ADMIN_PASSWORD }))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
    panel.stop().await.expect("stops");
}

#[tokio::test]
async fn calls_refused_for_overload_do_not_count_towards_quarantine() {
    // One slot, and calls capped at 1 s (so a call waits at most 1 s for
    // its slot): 200 password hashes in a row take far longer than that
    // unless one takes under 5 ms, whatever the machine's speed.
    let defaults = RuntimeConfig::default();
    let runtime = cap_e2e::runtime(RuntimeConfig {
        max_concurrent_calls_per_plugin: 1,
        max_limits: cap_runtime::Limits {
            timeout: Duration::from_secs(1),
            ..defaults.max_limits
        },
        ..defaults
    });
    let db = TestDb::sqlite().await;
    let database = db.connect().await;
    let manifest =
        std::fs::read(cap_e2e::repo_root().join("example-plugins/local-password/plugin.toml"))
            .expect("the manifest");
    let plugin = load_local_password(
        &runtime,
        &database,
        &manifest,
        Arc::<[u8]>::from(cap_e2e::component("local-password")),
    )
    .await
    .expect("loads");
    let credentials =
        cap_runtime::api::Credentials::Password(cap_runtime::api::PasswordCredentials {
            username: "nobody".into(),
            password: "Wrong-Password-1".into(),
            second_factor: None,
        });
    // Far more hashing than one slot gets through within the timeout.
    let calls = (0..200).map(|_| plugin.authenticate(&credentials));
    let outcomes = futures::future::join_all(calls).await;
    let overloaded = outcomes
        .iter()
        .filter(|o| matches!(o, Err(CallError::Overloaded { .. })))
        .count();
    assert!(overloaded > 0, "no call waited too long: {outcomes:?}");
    assert!(
        outcomes.iter().all(|o| matches!(
            o,
            Ok(Err(AuthError::InvalidCredentials)) | Err(CallError::Overloaded { .. })
        )),
        "{outcomes:?}"
    );
    let status = plugin.status();
    assert_eq!(status.failures, 0, "{status:?}");
    assert!(status.quarantine.is_none());
    database.close().await;
}

async fn plugin_status(panel: &RunningPanel, id: &str) -> Value {
    let response = client()
        .get(panel.url(&format!("/api/v1/plugins/{id}/status")))
        .bearer_auth(PLUGIN_ADMIN)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    response.json().await.expect("JSON")
}

async fn quarantine_stored(panel: &RunningPanel, id: &str) -> bool {
    let response = client()
        .get(panel.url(&format!(
            "/api/v1/audit-log?subject_type=plugin&subject_id={id}&kind=plugin.quarantined"
        )))
        .bearer_auth(PLUGIN_ADMIN)
        .send()
        .await
        .expect("request");
    let page: Value = response.json().await.expect("JSON");
    page["items"]
        .as_array()
        .is_some_and(|items| !items.is_empty())
}

on_every_database! {
    async fn a_quarantine_survives_a_restart_until_an_admin_releases_it(db: &TestDb) {
        let panel = crate::plugins::start(db).await;
        install_and_activate(&panel, "quota-guard").await;
        let plugin = panel.state().plugins().expect("manager").active("quota-guard").expect("active");
        plugin.quarantine_now("5 consecutive failed calls; the last: a test");
        crate::agents::eventually("the quarantine's event in the audit log", || async {
            quarantine_stored(&panel, "quota-guard").await.then_some(())
        })
        .await;
        let before = plugin_status(&panel, "quota-guard").await;
        panel.stop().await.expect("stops");
        drop(plugin);

        let panel = crate::plugins::start(db).await;
        let after = plugin_status(&panel, "quota-guard").await;
        assert_eq!(after["loaded"], true);
        assert_eq!(after["quarantine_reason"], "5 consecutive failed calls; the last: a test");
        let since = |status: &Value| {
            let text = status["quarantined_since"].as_str().expect("a time").to_owned();
            time::OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339)
                .expect("RFC 3339")
        };
        // Kept to the microsecond the database stores.
        assert!((since(&after) - since(&before)).abs() < time::Duration::microseconds(1), "{before:#} {after:#}");
        let plugin = panel.state().plugins().expect("manager").active("quota-guard").expect("active");
        let probe = cap_e2e::server_create("probe", "user-x", 1);
        assert!(matches!(plugin.hook_before(&probe).await, Err(CallError::Quarantined { .. })));

        assert_eq!(post(&panel, "/api/v1/plugins/quota-guard/release", None).await.status(), 204);
        panel.stop().await.expect("stops");
        let panel = crate::plugins::start(db).await;
        let released = plugin_status(&panel, "quota-guard").await;
        assert_eq!(released["quarantine_reason"], Value::Null);
        panel.stop().await.expect("stops");
    }
}
