//! Identity over real HTTP on every database: logins through the real
//! `local-password` plugin (running in cap-runtime), sessions, refresh
//! rotation and reuse detection, logout, API keys, attacks on access
//! tokens, lockout and rate limits, the first admin, and plugin KV.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use base64::Engine as _;
use cap_panel::identity::rate_limit::Rule;
use cap_panel::identity::{
    BootstrapOutcome, Claims, IdentityOptions, ProviderRegistry, RateLimits, bootstrap_admin,
    load_local_password,
};
use cap_panel::plugin_kv::DbKv;
use cap_panel::{Panel, RunningPanel};
use cap_runtime::capabilities::kv::KvStore;
use cap_runtime::{Plugin, Runtime, RuntimeConfig};
use serde_json::{Value, json};

use crate::support::{TestDb, client, expect_problem, on_every_database};

pub(crate) const ADMIN_PASSWORD: &str = "Correct-Horse-Battery-42";

/// One runtime for the whole test binary, with a compilation cache so the
/// plugin is compiled once.
pub(crate) fn runtime() -> Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            let cache = std::env::temp_dir().join("cap-panel-identity-tests-cache");
            cap_e2e::runtime(RuntimeConfig {
                cache_dir: Some(cache),
                ..RuntimeConfig::default()
            })
        })
        .clone()
}

pub(crate) fn local_password_manifest() -> Vec<u8> {
    let path = cap_e2e::repo_root().join("example-plugins/local-password/plugin.toml");
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// A Panel with identity on, the real local-password plugin installed and
/// the admin bootstrapped with [`ADMIN_PASSWORD`].
pub(crate) struct IdentityPanel {
    pub(crate) panel: RunningPanel,
    pub(crate) plugin: Plugin,
}

impl IdentityPanel {
    pub(crate) async fn start(db: &TestDb) -> IdentityPanel {
        IdentityPanel::start_with(db, IdentityOptions::default()).await
    }

    pub(crate) async fn start_with(db: &TestDb, options: IdentityOptions) -> IdentityPanel {
        IdentityPanel::launch(db.config(), options, true).await
    }

    /// [`IdentityPanel::start`] with `config` (made from `db.config()`).
    pub(crate) async fn start_configured(config: cap_panel::config::Config) -> IdentityPanel {
        IdentityPanel::launch(config, IdentityOptions::default(), true).await
    }

    /// Stops this Panel and starts another on the same database, which
    /// keeps its users, passwords and everything else.
    pub(crate) async fn restart(self, db: &TestDb) -> IdentityPanel {
        self.panel.stop().await.expect("the Panel stops");
        IdentityPanel::launch(db.config(), IdentityOptions::default(), false).await
    }

    async fn launch(
        config: cap_panel::config::Config,
        options: IdentityOptions,
        bootstrap: bool,
    ) -> IdentityPanel {
        let providers = ProviderRegistry::new();
        let panel = Panel::builder(config)
            .identity(providers.clone(), options)
            .bind()
            .await
            .expect("the Panel starts")
            .spawn();
        let database = panel.state().db().clone();
        let component: Arc<[u8]> = Arc::from(cap_e2e::component("local-password"));
        let plugin =
            load_local_password(&runtime(), &database, &local_password_manifest(), component)
                .await
                .expect("local-password loads");
        providers.insert(plugin.clone());
        if !bootstrap {
            return IdentityPanel { panel, plugin };
        }
        let outcome = bootstrap_admin(&database, &providers, Some(ADMIN_PASSWORD.to_owned()))
            .await
            .expect("the admin is bootstrapped");
        assert!(matches!(
            outcome,
            BootstrapOutcome::Created {
                generated_password: None,
                ..
            }
        ));
        IdentityPanel { panel, plugin }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        self.panel.url(path)
    }

    pub(crate) async fn login(&self, username: &str, password: &str) -> reqwest::Response {
        client()
            .post(self.url("/api/v1/auth/login"))
            .json(&json!({ "provider": "local-password", "username": username, "password": password }))
            .send()
            .await
            .expect("request")
    }

    pub(crate) async fn login_ok(&self, username: &str, password: &str) -> Value {
        let response = self.login(username, password).await;
        assert_eq!(response.status(), 200, "login of {username}");
        response.json().await.expect("JSON")
    }

    pub(crate) async fn refresh(&self, token: &str) -> reqwest::Response {
        client()
            .post(self.url("/api/v1/auth/refresh"))
            .json(&json!({ "refresh_token": token }))
            .send()
            .await
            .expect("request")
    }

    pub(crate) async fn get(&self, path: &str, bearer: &str) -> reqwest::Response {
        client()
            .get(self.url(path))
            .bearer_auth(bearer)
            .send()
            .await
            .expect("request")
    }
}

pub(crate) fn token(tokens: &Value, field: &str) -> String {
    tokens[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} in {tokens:#}"))
        .to_owned()
}

on_every_database! {
    async fn logs_in_through_the_local_password_plugin_and_calls_the_api_with_the_access_token(db: &TestDb) {
        let p = IdentityPanel::start(db).await;
        let tokens = p.login_ok("admin", ADMIN_PASSWORD).await;
        assert_eq!(tokens["token_type"], "Bearer");
        assert_eq!(tokens["expires_in"], 900);
        assert_eq!(tokens["user"]["username"], "admin");
        assert_eq!(tokens["user"]["admin"], true);
        let access = token(&tokens, "access_token");

        let me: Value = p.get("/api/v1/auth/me", &access).await.json().await.expect("JSON");
        assert_eq!(me["user"]["username"], "admin");
        let permissions = me["permissions"].as_array().expect("permissions");
        assert!(permissions.iter().any(|p| p == "control.console"), "{me:#}");
        assert!(permissions.iter().any(|p| p == "audit.read"), "{me:#}");

        let response = p.get("/api/v1/audit-log?kind=session.created", &access).await;
        assert_eq!(response.status(), 200);
        let log: Value = response.json().await.expect("JSON");
        let event = &log["items"][0];
        assert_eq!(event["kind"], "session.created", "{log:#}");
        assert_eq!(event["actor"]["user_id"], tokens["user"]["id"], "{log:#}");

        let response = client().get(p.url("/api/v1/auth/me")).send().await.expect("request");
        expect_problem(response, 401, "unauthenticated").await;
    }
}

on_every_database! {
    async fn refuses_a_wrong_password_and_an_unknown_user_with_the_same_generic_401(db: &TestDb) {
        let p = IdentityPanel::start(db).await;
        let wrong = expect_problem(p.login("admin", "Wrong-Password-123").await, 401, "invalid-credentials").await;
        let unknown = expect_problem(p.login("nobody", "Wrong-Password-123").await, 401, "invalid-credentials").await;
        assert_eq!(wrong["detail"], unknown["detail"]);
        let response = client()
            .post(p.url("/api/v1/auth/login"))
            .json(&json!({ "provider": "no-such-provider", "username": "admin", "password": "x" }))
            .send()
            .await
            .expect("request");
        let problem = expect_problem(response, 422, "validation-failed").await;
        assert_eq!(problem["errors"][0]["field"], "provider");
    }
}

on_every_database! {
    async fn rotates_refresh_tokens_and_revokes_the_whole_family_when_one_is_reused(db: &TestDb) {
        let p = IdentityPanel::start(db).await;
        let first = p.login_ok("admin", ADMIN_PASSWORD).await;
        let r1 = token(&first, "refresh_token");
        assert!(r1.starts_with("capr_"));

        let response = p.refresh(&r1).await;
        assert_eq!(response.status(), 200);
        let second: Value = response.json().await.expect("JSON");
        let r2 = token(&second, "refresh_token");
        let a2 = token(&second, "access_token");
        assert_ne!(r1, r2);
        assert_eq!(p.get("/api/v1/auth/me", &a2).await.status(), 200);

        // The old token comes back: someone else has it. The family dies.
        expect_problem(p.refresh(&r1).await, 401, "refresh-token-reused").await;
        expect_problem(p.refresh(&r2).await, 401, "invalid-refresh-token").await;
        expect_problem(p.get("/api/v1/auth/me", &a2).await, 401, "unauthenticated").await;

        // Another login is a new family, unaffected.
        let third = p.login_ok("admin", ADMIN_PASSWORD).await;
        assert_eq!(p.refresh(&token(&third, "refresh_token")).await.status(), 200);
    }
}

on_every_database! {
    async fn logout_revokes_the_refresh_token_and_the_access_token(db: &TestDb) {
        let p = IdentityPanel::start(db).await;
        let tokens = p.login_ok("admin", ADMIN_PASSWORD).await;
        let refresh = token(&tokens, "refresh_token");
        let access = token(&tokens, "access_token");
        // Used twice first, so that a Panel caching who a session is has
        // cached it.
        for _ in 0..2 {
            assert_eq!(p.get("/api/v1/auth/me", &access).await.status(), 200);
        }
        let response = client()
            .post(p.url("/api/v1/auth/logout"))
            .json(&json!({ "refresh_token": refresh }))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 204);
        expect_problem(p.refresh(&refresh).await, 401, "invalid-refresh-token").await;
        expect_problem(p.get("/api/v1/auth/me", &access).await, 401, "unauthenticated").await;
    }
}

on_every_database! {
    async fn api_keys_are_shown_once_limited_to_their_scopes_and_revocable(db: &TestDb) {
        let p = IdentityPanel::start(db).await;
        let access = token(&p.login_ok("admin", ADMIN_PASSWORD).await, "access_token");
        let response = client()
            .post(p.url("/api/v1/account/api-keys"))
            .bearer_auth(&access)
            .json(&json!({ "name": "ci", "scopes": ["audit.read"] }))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 201);
        let created: Value = response.json().await.expect("JSON");
        let secret = token(&created, "secret");
        assert!(secret.starts_with("cap_"), "{secret}");
        assert!(secret.starts_with(created["prefix"].as_str().expect("prefix")));

        assert_eq!(p.get("/api/v1/audit-log", &secret).await.status(), 200);
        // Beyond its scope, though the admin could.
        let problem = expect_problem(p.get("/api/v1/settings", &secret).await, 403, "forbidden").await;
        assert!(problem["detail"].as_str().is_some_and(|d| d.contains("settings.read")));
        assert_eq!(p.get("/api/v1/settings", &access).await.status(), 200);

        let list: Value = p.get("/api/v1/account/api-keys", &access).await.json().await.expect("JSON");
        let listed = &list["items"][0];
        assert_eq!(listed["name"], "ci");
        assert!(listed.get("secret").is_none(), "{list:#}");
        assert!(listed["last_used_at"].is_string(), "{list:#}");
        assert!(!list.to_string().contains(&secret));

        let id = token(&created, "id");
        let response = client()
            .delete(p.url(&format!("/api/v1/account/api-keys/{id}")))
            .bearer_auth(&access)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 204);
        expect_problem(p.get("/api/v1/audit-log", &secret).await, 401, "unauthenticated").await;

        let response = client()
            .post(p.url("/api/v1/account/api-keys"))
            .bearer_auth(&access)
            .json(&json!({ "name": "bad", "scopes": ["no.such-permission"] }))
            .send()
            .await
            .expect("request");
        let problem = expect_problem(response, 422, "validation-failed").await;
        assert_eq!(problem["errors"][0]["field"], "scopes[0]");
    }
}

on_every_database! {
    async fn refuses_alg_none_tampered_and_expired_access_tokens(db: &TestDb) {
        let p = IdentityPanel::start(db).await;
        let tokens = p.login_ok("admin", ADMIN_PASSWORD).await;
        let access = token(&tokens, "access_token");
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let parts: Vec<&str> = access.split('.').collect();
        assert_eq!(parts.len(), 3);
        let mut claims: Value =
            serde_json::from_slice(&b64.decode(parts[1]).expect("base64")).expect("claims");

        // alg: none, no signature.
        let none_header = b64.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let forged = format!("{none_header}.{}.", parts[1]);
        expect_problem(p.get("/api/v1/auth/me", &forged).await, 401, "unauthenticated").await;

        // Tampered payload (another user), original signature.
        claims["sub"] = json!("usr_someone_else");
        let tampered = format!("{}.{}.{}", parts[0], b64.encode(claims.to_string()), parts[2]);
        expect_problem(p.get("/api/v1/auth/me", &tampered).await, 401, "unauthenticated").await;

        // Correctly signed but expired.
        let identity = p.panel.state().identity().expect("identity is on");
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let expired = identity
            .keys()
            .sign(&Claims {
                sub: token(&tokens["user"], "id"),
                sid: claims["sid"].as_str().expect("sid").to_owned(),
                iat: now - 3600,
                exp: now - 60,
            })
            .expect("signed");
        expect_problem(p.get("/api/v1/auth/me", &expired).await, 401, "unauthenticated").await;

        // The genuine one still works.
        assert_eq!(p.get("/api/v1/auth/me", &access).await.status(), 200);
    }
}

on_every_database! {
    async fn locks_the_account_after_repeated_wrong_passwords(db: &TestDb) {
        let p = IdentityPanel::start(db).await;
        for _ in 0..5 {
            expect_problem(p.login("admin", "Wrong-Password-123").await, 401, "invalid-credentials").await;
        }
        // Even the right password waits out the lock; the answer is the
        // generic one (see hardening::a_locked_account_answers_exactly_like_an_unknown_one).
        let response = p.login("admin", ADMIN_PASSWORD).await;
        assert!(response.headers().get("retry-after").is_none());
        expect_problem(response, 401, "invalid-credentials").await;
    }
}

on_every_database! {
    async fn maps_a_verified_identity_to_a_user_only_when_linked_or_auto_registration_is_on(db: &TestDb) {
        let p = IdentityPanel::start(db).await;
        p.plugin
            .set_password("bob", "Bobs-Password-2024")
            .await
            .expect("the call succeeds")
            .expect("the password is accepted");
        expect_problem(p.login("bob", "Bobs-Password-2024").await, 403, "account-not-linked").await;

        let admin = token(&p.login_ok("admin", ADMIN_PASSWORD).await, "access_token");
        let response = client()
            .put(p.url("/api/v1/settings/auth.auto-register"))
            .bearer_auth(&admin)
            .json(&json!({ "value": true }))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 200);

        let bob = p.login_ok("bob", "Bobs-Password-2024").await;
        assert_eq!(bob["user"]["username"], "bob");
        assert_eq!(bob["user"]["admin"], false);
        let me: Value = p
            .get("/api/v1/auth/me", &token(&bob, "access_token"))
            .await
            .json()
            .await
            .expect("JSON");
        assert_eq!(me["permissions"], json!([]));
        // The same identity maps to the same user next time.
        let again = p.login_ok("bob", "Bobs-Password-2024").await;
        assert_eq!(again["user"]["id"], bob["user"]["id"]);
    }
}

on_every_database! {
    async fn a_deleted_users_password_opens_nothing_again_not_even_an_auto_registered_account(db: &TestDb) {
        let p = IdentityPanel::start(db).await;
        let admin = token(&p.login_ok("admin", ADMIN_PASSWORD).await, "access_token");
        let response = client()
            .put(p.url("/api/v1/settings/auth.auto-register"))
            .bearer_auth(&admin)
            .json(&json!({ "value": true }))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 200);
        p.plugin
            .set_password("carol", "Carols-Password-2024")
            .await
            .expect("the call succeeds")
            .expect("the password is accepted");
        let carol = p.login_ok("carol", "Carols-Password-2024").await;
        let id = carol["user"]["id"].as_str().expect("an id").to_owned();

        let response = client()
            .delete(p.url(&format!("/api/v1/users/{id}")))
            .bearer_auth(&admin)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 204);
        // The provider no longer takes the password: no account comes back.
        expect_problem(p.login("carol", "Carols-Password-2024").await, 401, "invalid-credentials").await;
        assert_eq!(p.get(&format!("/api/v1/users/{id}"), &admin).await.status(), 404);
    }
}

on_every_database! {
    async fn bootstraps_the_first_admin_once_and_never_resets_it(db: &TestDb) {
        let providers = ProviderRegistry::new();
        let panel = Panel::builder(db.config())
            .identity(providers.clone(), IdentityOptions::default())
            .bind()
            .await
            .expect("the Panel starts")
            .spawn();
        let database = panel.state().db().clone();
        let plugin = load_local_password(
            &runtime(),
            &database,
            &local_password_manifest(),
            cap_e2e::component("local-password"),
        )
        .await
        .expect("local-password loads");
        providers.insert(plugin);
        let BootstrapOutcome::Created { generated_password: Some(password), user } =
            bootstrap_admin(&database, &providers, None).await.expect("bootstrap")
        else {
            panic!("the first bootstrap creates the admin with a generated password");
        };
        assert!(user.admin);
        assert!(password.len() >= 20);
        let again = bootstrap_admin(&database, &providers, Some("Another-Password-99".into()))
            .await
            .expect("bootstrap");
        assert_eq!(again, BootstrapOutcome::AlreadyExists);
        let response = client()
            .post(panel.url("/api/v1/auth/login"))
            .json(&json!({ "username": "admin", "password": password }))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 200);
    }
}

on_every_database! {
    async fn plugin_kv_keeps_each_plugins_keys_apart(db: &TestDb) {
        let database = db.connect().await;
        let kv = DbKv::new(database).with_quota(2);
        kv.set("a", "k1", b"1".to_vec()).await.expect("set");
        kv.set("a", "k2", vec![0, 255]).await.expect("set");
        kv.set("b", "k1", b"other".to_vec()).await.expect("set");
        assert_eq!(kv.get("a", "k1").await, Ok(Some(b"1".to_vec())));
        assert_eq!(kv.get("a", "k2").await, Ok(Some(vec![0, 255])));
        assert_eq!(kv.get("b", "k1").await, Ok(Some(b"other".to_vec())));
        assert_eq!(kv.get("b", "k2").await, Ok(None));
        assert!(kv.set("a", "k3", vec![]).await.is_err(), "the quota holds");
        kv.set("a", "k1", b"again".to_vec()).await.expect("overwriting is not a new key");
        assert_eq!(kv.list_keys("a", "k", 10).await, Ok(vec!["k1".to_owned(), "k2".to_owned()]));
        assert_eq!(kv.delete("a", "k1").await, Ok(true));
        assert_eq!(kv.delete("a", "k1").await, Ok(false));
    }
}

on_every_database! {
    async fn plugin_kv_lists_at_most_the_asked_number_of_keys_with_the_prefix_taken_literally(db: &TestDb) {
        let database = db.connect().await;
        let kv = DbKv::new(database).with_quota(100);
        for key in ["a%1", "a%2", "a%3", "ab1", "a_1", "b%1", "é1", "é2"] {
            kv.set("p", key, b"v".to_vec()).await.expect("set");
        }
        kv.set("q", "a%0", b"v".to_vec()).await.expect("set");
        let strings = |keys: &[&str]| keys.iter().map(|k| (*k).to_owned()).collect::<Vec<_>>();
        assert_eq!(kv.list_keys("p", "a%", 10).await, Ok(strings(&["a%1", "a%2", "a%3"])));
        assert_eq!(kv.list_keys("p", "a%", 2).await, Ok(strings(&["a%1", "a%2"])));
        assert_eq!(kv.list_keys("p", "a_", 10).await, Ok(strings(&["a_1"])));
        assert_eq!(kv.list_keys("p", "é", 10).await, Ok(strings(&["é1", "é2"])));
        assert_eq!(kv.list_keys("p", "", 3).await.map(|k| k.len()), Ok(3));
        assert_eq!(kv.list_keys("p", "c", 10).await, Ok(Vec::new()));
    }
}

on_every_database! {
    async fn plugin_kv_compare_and_swap_loses_no_update_among_concurrent_writers(db: &TestDb) {
        let database = db.connect().await;
        let kv = DbKv::new(database).with_quota(3);
        let v = |s: &str| Some(s.as_bytes().to_vec());
        assert_eq!(kv.compare_and_swap("a", "n", None, v("1")).await, Ok(true));
        assert_eq!(kv.compare_and_swap("a", "n", None, v("x")).await, Ok(false), "it exists");
        assert_eq!(kv.compare_and_swap("a", "n", v("0"), v("x")).await, Ok(false), "it changed");
        assert_eq!(kv.compare_and_swap("b", "n", v("1"), None).await, Ok(false), "another plugin's");
        assert_eq!(kv.compare_and_swap("a", "n", v("1"), v("1")).await, Ok(true), "as expected");
        assert_eq!(kv.compare_and_swap("a", "n", v("1"), None).await, Ok(true));
        assert_eq!(kv.get("a", "n").await, Ok(None));
        assert_eq!(kv.compare_and_swap("a", "n", None, None).await, Ok(true), "absent, as expected");

        // Eight writers add one fifteen times each, reading and swapping.
        let writers = (0..8).map(|_| {
            let kv = kv.clone();
            tokio::spawn(async move {
                for _ in 0..15 {
                    loop {
                        let now = kv.get("a", "count").await.expect("a read");
                        let n: u32 = now.as_deref().map_or(0, |b| std::str::from_utf8(b).expect("text").parse().expect("a count"));
                        let next = (n + 1).to_string().into_bytes();
                        match kv.compare_and_swap("a", "count", now, Some(next)).await {
                            Ok(true) => break,
                            Ok(false) => tokio::task::yield_now().await,
                            Err(error) => panic!("the swap fails: {error:?}"),
                        }
                    }
                }
            })
        });
        for writer in writers.collect::<Vec<_>>() {
            writer.await.expect("the writer finishes");
        }
        assert_eq!(kv.get("a", "count").await, Ok(v("120")));
        // A new key beyond the quota is refused, like a set.
        kv.set("a", "k2", b"x".to_vec()).await.expect("set");
        kv.set("a", "k3", b"x".to_vec()).await.expect("set");
        assert!(kv.compare_and_swap("a", "k4", None, v("x")).await.is_err(), "the quota holds");
    }
}

#[tokio::test]
async fn rate_limits_logins_per_address_with_retry_after() {
    let db = TestDb::sqlite().await;
    let options = IdentityOptions {
        rate_limits: RateLimits {
            login_per_ip: Rule::new(2, Duration::from_secs(60)),
            ..RateLimits::default()
        },
        ..IdentityOptions::default()
    };
    let p = IdentityPanel::start_with(&db, options).await;
    expect_problem(
        p.login("nobody", "Wrong-Password-1").await,
        401,
        "invalid-credentials",
    )
    .await;
    expect_problem(
        p.login("nobody2", "Wrong-Password-1").await,
        401,
        "invalid-credentials",
    )
    .await;
    let response = p.login("admin", ADMIN_PASSWORD).await;
    assert!(response.headers().get("retry-after").is_some());
    expect_problem(response, 429, "rate-limited").await;
}

#[tokio::test]
async fn a_user_changes_their_password_through_the_provider_after_proving_the_current_one() {
    const NEW_PASSWORD: &str = "Another-Long-Passphrase-9";
    let db = TestDb::sqlite().await;
    let p = IdentityPanel::start(&db).await;
    let access = token(&p.login_ok("admin", ADMIN_PASSWORD).await, "access_token");
    let change = |bearer: String, body: Value| {
        client()
            .put(p.url("/api/v1/account/password"))
            .bearer_auth(bearer)
            .json(&body)
            .send()
    };

    // The current password must be right; the message is on its field.
    let response = change(
        access.clone(),
        json!({"current_password": "Wrong-Password-123", "new_password": NEW_PASSWORD}),
    )
    .await
    .expect("request");
    let problem = expect_problem(response, 422, "validation-failed").await;
    assert_eq!(
        problem["errors"][0]["field"], "current_password",
        "{problem:#}"
    );
    // The provider's policy judges the new one, in its own words.
    let response = change(
        access.clone(),
        json!({"current_password": ADMIN_PASSWORD, "new_password": "short"}),
    )
    .await
    .expect("request");
    let problem = expect_problem(response, 422, "validation-failed").await;
    assert_eq!(problem["errors"][0]["field"], "new_password", "{problem:#}");
    assert!(
        problem["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("at least 12 characters")),
        "{problem:#}"
    );
    // A script's API key cannot change it.
    let key = client()
        .post(p.url("/api/v1/account/api-keys"))
        .bearer_auth(&access)
        .json(&json!({"name": "script", "scopes": ["audit.read"]}))
        .send()
        .await
        .expect("request");
    assert_eq!(key.status(), 201);
    let key = token(&key.json::<Value>().await.expect("JSON"), "secret");
    let response = change(
        key,
        json!({"current_password": ADMIN_PASSWORD, "new_password": NEW_PASSWORD}),
    )
    .await
    .expect("request");
    expect_problem(response, 403, "session-required").await;

    let response = change(
        access.clone(),
        json!({"current_password": ADMIN_PASSWORD, "new_password": NEW_PASSWORD}),
    )
    .await
    .expect("request");
    assert_eq!(response.status(), 204);
    expect_problem(
        p.login("admin", ADMIN_PASSWORD).await,
        401,
        "invalid-credentials",
    )
    .await;
    assert_eq!(p.login("admin", NEW_PASSWORD).await.status(), 200);
    let log: Value = p
        .get("/api/v1/audit-log?kind=user.password-changed", &access)
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(log["items"].as_array().map(Vec::len), Some(1), "{log:#}");
    assert_eq!(log["items"][0]["data"]["provider"], "local-password");
}

on_every_database! {
    async fn a_password_change_ends_every_other_session_and_keeps_the_current_one(db: &TestDb) {
        const NEW_PASSWORD: &str = "Another-Long-Passphrase-9";
        let p = IdentityPanel::start(db).await;
        let mine = p.login_ok("admin", ADMIN_PASSWORD).await;
        let other = p.login_ok("admin", ADMIN_PASSWORD).await;
        let (access, other_access) = (token(&mine, "access_token"), token(&other, "access_token"));
        let key = client()
            .post(p.url("/api/v1/account/api-keys"))
            .bearer_auth(&access)
            .json(&json!({"name": "script", "scopes": ["audit.read"]}))
            .send()
            .await
            .expect("request");
        assert_eq!(key.status(), 201);
        let key = token(&key.json::<Value>().await.expect("JSON"), "secret");
        // Used first, so that a Panel caching who a session is has cached it.
        assert_eq!(p.get("/api/v1/auth/me", &other_access).await.status(), 200);

        let response = client()
            .put(p.url("/api/v1/account/password"))
            .bearer_auth(&access)
            .json(&json!({"current_password": ADMIN_PASSWORD, "new_password": NEW_PASSWORD}))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 204);

        // The other session is over, access and refresh token alike.
        expect_problem(p.get("/api/v1/auth/me", &other_access).await, 401, "unauthenticated").await;
        expect_problem(p.refresh(&token(&other, "refresh_token")).await, 401, "invalid-refresh-token").await;
        // The one that changed it goes on, and the script's key too.
        assert_eq!(p.get("/api/v1/auth/me", &access).await.status(), 200);
        assert_eq!(p.refresh(&token(&mine, "refresh_token")).await.status(), 200);
        assert_eq!(p.get("/api/v1/audit-log", &key).await.status(), 200);
        let log: Value = p.get("/api/v1/audit-log?kind=user.password-changed", &access).await.json().await.expect("JSON");
        assert_eq!(log["items"][0]["data"]["sessions_revoked"], 1, "{log:#}");
    }
}

on_every_database! {
    async fn a_session_cannot_be_refreshed_past_its_absolute_lifetime(db: &TestDb) {
        let lifetime = Duration::from_secs(3);
        let p = IdentityPanel::start_with(db, IdentityOptions { session_lifetime: lifetime, ..IdentityOptions::default() }).await;
        let started = std::time::Instant::now();
        let tokens = p.login_ok("admin", ADMIN_PASSWORD).await;
        // Within its lifetime a refresh works, and its access token ends
        // with the session rather than 15 minutes later.
        let response = p.refresh(&token(&tokens, "refresh_token")).await;
        assert_eq!(response.status(), 200);
        let refreshed: Value = response.json().await.expect("JSON");
        let expires_in = refreshed["expires_in"].as_u64().expect("expires_in");
        assert!(expires_in <= 3, "{refreshed:#}");
        let access = token(&refreshed, "access_token");
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let claims: Value = serde_json::from_slice(
            &b64.decode(access.split('.').nth(1).expect("claims")).expect("base64"),
        )
        .expect("JSON");
        assert!(claims["exp"].as_i64().expect("exp") - claims["iat"].as_i64().expect("iat") <= 3, "{claims:#}");

        // Past it, however fresh the refresh token: refused, and the session ends.
        let latest = token(&refreshed, "refresh_token");
        tokio::time::sleep((lifetime + Duration::from_millis(1100)).saturating_sub(started.elapsed())).await;
        expect_problem(p.refresh(&latest).await, 401, "invalid-refresh-token").await;
        expect_problem(p.refresh(&latest).await, 401, "invalid-refresh-token").await;
        let admin = token(&p.login_ok("admin", ADMIN_PASSWORD).await, "access_token");
        let log: Value = p.get("/api/v1/audit-log?kind=session.expired", &admin).await.json().await.expect("JSON");
        assert_eq!(log["items"].as_array().map(Vec::len), Some(1), "{log:#}");
    }
}
