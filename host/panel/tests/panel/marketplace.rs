//! Publishing to a real Marketplace (`MarketplaceServer` on 127.0.0.1:0)
//! and installing from it into a Panel over HTTP: browse, install, the
//! plugin runs, update all; every tamper case refused through the Panel's
//! install path with the failed check named and nothing installed; an
//! unsatisfiable request explained. Tampering happens in a small proxy
//! between the Panel and the Marketplace (the network an attacker
//! controls); cases that need a validly signed but lying log or timestamp
//! sign with the Marketplace's own key, read from its data directory.
//!
//! Paid plugins go the whole way too: checkout through the local Stripe
//! stub, a webhook signed the real way, the license fetched, verified
//! offline and renewed by the Panel, and the plugin deactivated once a
//! refund stopped renewal and its token's grace period ran out; forged or
//! foreign licenses are refused naming the failed check.
//!
//! The `cap plugin keygen|register|sign|publish` and `cap panel
//! marketplace …` commands are tested by running the `cap` binary against
//! the same kind of Marketplace and Panel.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use cap_marketplace::client::MarketplaceClient;
use cap_marketplace::keys::SecretKey;
use cap_marketplace::license::{LicenseClaims, issue_license};
use cap_marketplace::log::{LogEntry, LogEvent, LogHead, Notary};
use cap_marketplace::signing::sign_package;
use cap_marketplace_server::billing::BillingConfig;
use cap_marketplace_server::{MarketplaceConfig, MarketplaceServer, RunningMarketplace};
use cap_panel::config::Config;
use cap_panel::{Panel, RunningPanel};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::plugins::{PLUGIN_ADMIN, domain_tokens, manifest_text, package_with};
use crate::support::{
    MarketplaceWithPublisher, TestDb, client, expect_problem, on_every_database, publish_signed,
};
use cap_test_support::stripe::StripeStub;

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64
}

/// What the proxy changes on the way from the Marketplace to the Panel.
#[derive(Default)]
struct Tamper {
    /// Answer these paths (below `/api/v1`) with these bodies instead.
    replace: HashMap<String, Vec<u8>>,
    /// Flip the last byte of the answers to these paths.
    flip: Vec<String>,
    /// Answer everything with 503: the Marketplace is down.
    down: bool,
}

type SharedTamper = Arc<Mutex<Tamper>>;

/// A Marketplace, a tampering proxy in front of it, and a publisher.
struct Market {
    server: RunningMarketplace,
    proxy: String,
    tamper: SharedTamper,
    notary: Notary,
    client: MarketplaceClient,
    token: String,
    key: SecretKey,
    _dir: TempDir,
}

async fn proxy_handler(
    State((upstream, tamper, http)): State<(String, SharedTamper, reqwest::Client)>,
    request: Request,
) -> Response {
    let path = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let bare = request
        .uri()
        .path()
        .trim_start_matches("/api/v1")
        .to_owned();
    if tamper.lock().expect("tamper").down {
        return (StatusCode::SERVICE_UNAVAILABLE, "down for maintenance").into_response();
    }
    if let Some(body) = tamper.lock().expect("tamper").replace.get(&bare).cloned() {
        return ([(header::CONTENT_TYPE, "application/json")], body).into_response();
    }
    let method = reqwest::Method::from_bytes(request.method().as_str().as_bytes()).expect("method");
    let mut forward = http.request(method, format!("{upstream}{path}"));
    for name in [header::AUTHORIZATION, header::CONTENT_TYPE] {
        if let Some(value) = request.headers().get(name.as_str()) {
            forward = forward.header(name.as_str(), value.as_bytes());
        }
    }
    let body = axum::body::to_bytes(request.into_body(), usize::MAX)
        .await
        .expect("request body");
    let answer = forward
        .body(body.to_vec())
        .send()
        .await
        .expect("the Marketplace answers the proxy");
    let status = StatusCode::from_u16(answer.status().as_u16()).expect("status");
    let content_type = answer
        .headers()
        .get(header::CONTENT_TYPE.as_str())
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_owned();
    let mut body = answer.bytes().await.expect("body").to_vec();
    if tamper.lock().expect("tamper").flip.contains(&bare)
        && let Some(last) = body.last_mut()
    {
        *last ^= 0x01;
    }
    (
        status,
        [(header::CONTENT_TYPE, content_type)],
        Bytes::from(body),
    )
        .into_response()
}

impl Market {
    async fn start(timestamp_ttl: i64) -> Market {
        Market::start_with(timestamp_ttl, None).await
    }

    async fn start_with(timestamp_ttl: i64, billing: Option<BillingConfig>) -> Market {
        let MarketplaceWithPublisher {
            server,
            client,
            token,
            key,
            dir,
        } = MarketplaceWithPublisher::start_with(timestamp_ttl, billing).await;
        let secret = SecretKey::read(&dir.path().join("marketplace.key")).expect("its key");
        let tamper = SharedTamper::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("proxy binds");
        let proxy = format!("http://{}", listener.local_addr().expect("addr"));
        let app = axum::Router::new().fallback(proxy_handler).with_state((
            server.url(),
            tamper.clone(),
            reqwest::Client::new(),
        ));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Market {
            server,
            proxy,
            tamper,
            notary: Notary::new(secret),
            client,
            token,
            key,
            _dir: dir,
        }
    }

    async fn publish(&self, bytes: &[u8]) -> Value {
        publish_signed(&self.client, &self.token, &self.key, bytes).await
    }

    fn tamper(&self) -> std::sync::MutexGuard<'_, Tamper> {
        self.tamper.lock().expect("tamper")
    }

    /// A timestamp signed by the Marketplace's key stating `heads`.
    fn forged_timestamp(&self, heads: Vec<(&str, &[LogEntry])>) -> Vec<u8> {
        let heads = heads
            .into_iter()
            .map(|(id, log)| {
                (
                    id.to_owned(),
                    LogHead {
                        len: log.len() as u64,
                        hash: log.last().expect("entries").hash(),
                    },
                )
            })
            .collect();
        serde_json::to_vec(&self.notary.timestamp(heads, unix_now(), 3600)).expect("json")
    }
}

/// `quota-guard` as it is, with its version and `[dependencies]` changed.
fn guard(version: &str, dependencies: &str) -> Vec<u8> {
    let text = manifest_text("quota-guard").replacen(
        "version = \"1.0.0\"",
        &format!("version = \"{version}\""),
        1,
    );
    package_with(
        "quota-guard",
        &format!("{text}\n[dependencies]\n{dependencies}\n"),
    )
}

/// `quota-guard` renamed `quota-base`, at `version`; `note` changes the
/// description (and so the bytes).
fn base(version: &str, note: &str) -> Vec<u8> {
    let text = manifest_text("quota-guard")
        .replacen("id = \"quota-guard\"", "id = \"quota-base\"", 1)
        .replacen(
            "version = \"1.0.0\"",
            &format!("version = \"{version}\""),
            1,
        )
        .replacen("description = \"", &format!("description = \"{note}"), 1);
    package_with("quota-guard", &text)
}

async fn panel_for(db: &TestDb, market: &Market, pin_key: bool) -> RunningPanel {
    let config = Config {
        marketplace_url: Some(market.proxy.clone()),
        marketplace_key: pin_key.then(|| market.server.public_key().to_hex()),
        ..db.config()
    };
    Panel::builder(config)
        .authenticator(domain_tokens())
        .bind()
        .await
        .expect("the Panel starts")
        .spawn()
}

async fn call(
    panel: &RunningPanel,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let request = client()
        .request(method, panel.url(path))
        .bearer_auth(PLUGIN_ADMIN);
    let request = match body {
        Some(body) => request.json(&body),
        None => request,
    };
    request.send().await.expect("request")
}

async fn ok_json(response: reqwest::Response) -> Value {
    let status = response.status();
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(status, 200, "{body:#}");
    body
}

async fn install(panel: &RunningPanel, body: Value) -> reqwest::Response {
    call(
        panel,
        reqwest::Method::POST,
        "/api/v1/marketplace/install",
        Some(body),
    )
    .await
}

fn guard_grants() -> Value {
    json!({"quota-guard": {"kv": true, "config": true, "panel": ["servers.read"]}})
}

/// The installed plugins' ids and versions.
async fn installed(panel: &RunningPanel) -> Vec<(String, String)> {
    let list = ok_json(call(panel, reqwest::Method::GET, "/api/v1/plugins", None).await).await;
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|p| {
            (
                p["id"].as_str().expect("id").to_owned(),
                p["version"].as_str().expect("version").to_owned(),
            )
        })
        .collect()
}

/// Asserts a `verification-failed` refusal naming `check`.
async fn refused_by(response: reqwest::Response, check: &str) -> String {
    let problem = expect_problem(response, 422, "verification-failed").await;
    let detail = problem["detail"].as_str().expect("detail").to_owned();
    assert!(
        detail.starts_with(&format!("the `{check}` check failed")),
        "{detail}"
    );
    detail
}

on_every_database! {
    async fn a_published_plugin_is_browsed_installed_runs_and_updates(db: &TestDb) {
        let market = Market::start(3600).await;
        market.publish(&guard("1.0.0", "")).await;
        let panel = panel_for(db, &market, false).await;

        let page = ok_json(call(&panel, reqwest::Method::GET, "/api/v1/marketplace/packages?q=quota&game=minecraft", None).await).await;
        assert_eq!(page["total"], 1, "{page:#}");
        assert_eq!(page["items"][0]["id"], "quota-guard");
        assert_eq!(page["next_cursor"], Value::Null, "{page:#}");
        // Pages are asked for with limit and cursor, or the older page and
        // per_page, not both.
        let page = ok_json(call(&panel, reqwest::Method::GET, "/api/v1/marketplace/packages?q=quota&limit=1", None).await).await;
        assert_eq!((page["total"].as_i64(), page["per_page"].as_i64()), (Some(1), Some(1)), "{page:#}");
        let page = ok_json(call(&panel, reqwest::Method::GET, "/api/v1/marketplace/packages?q=quota&page=1&per_page=5", None).await).await;
        assert_eq!(page["per_page"], 5, "{page:#}");
        let mixed = call(&panel, reqwest::Method::GET, "/api/v1/marketplace/packages?limit=1&page=2", None).await;
        expect_problem(mixed, 422, "validation-failed").await;
        let view = ok_json(call(&panel, reqwest::Method::GET, "/api/v1/marketplace/packages/quota-guard", None).await).await;
        assert_eq!(view["versions"][0]["version"], "1.0.0");
        let missing = call(&panel, reqwest::Method::GET, "/api/v1/marketplace/packages/no-such-plugin", None).await;
        expect_problem(missing, 404, "not-found").await;

        let outcome = ok_json(install(&panel, json!({"package": "quota-guard", "requirement": "1", "grants": guard_grants()})).await).await;
        let changed = outcome["changed"].as_array().expect("changed");
        assert_eq!(changed.len(), 1, "{outcome:#}");
        assert_eq!(changed[0]["plugin"]["state"], "active");
        assert_eq!(changed[0]["plugin"]["loaded"], true);
        assert_eq!(changed[0]["plugin"]["granted"]["panel"], json!(["servers.read"]));
        assert_eq!(outcome["lock"]["lockfile"][0]["id"], "quota-guard");
        assert_eq!(outcome["lock"]["lockfile"][0]["version"], "1.0.0");
        assert_eq!(outcome["lock"]["requests"]["quota-guard"], "1");

        // The plugin runs: its before-hook answers.
        let plugin = panel.state().plugins().expect("manager").active("quota-guard").expect("active");
        let verdict = plugin.hook_before(&cap_e2e::server_create("probe", "user-x", 512)).await;
        assert!(matches!(verdict, Ok(cap_runtime::api::Verdict::Allow)), "{verdict:?}");
        let status = ok_json(call(&panel, reqwest::Method::GET, "/api/v1/plugins/quota-guard/status", None).await).await;
        assert!(status["calls"].as_u64().expect("calls") >= 1, "{status:#}");

        // The lockfile is in the database; a new version arrives by "update all".
        let lock = ok_json(call(&panel, reqwest::Method::GET, "/api/v1/marketplace/lockfile", None).await).await;
        assert!(lock["toml"].as_str().expect("toml").contains("quota-guard"));
        market.publish(&guard("1.1.0", "")).await;
        let outcome = ok_json(call(&panel, reqwest::Method::POST, "/api/v1/marketplace/update", None).await).await;
        assert_eq!(outcome["changed"][0]["replaced"], "1.0.0", "{outcome:#}");
        assert_eq!(outcome["changed"][0]["plugin"]["version"], "1.1.0");
        assert_eq!(outcome["changed"][0]["plugin"]["state"], "active");
        assert_eq!(installed(&panel).await, [("quota-guard".to_owned(), "1.1.0".to_owned())]);
        // Nothing newer: nothing changes.
        let outcome = ok_json(call(&panel, reqwest::Method::POST, "/api/v1/marketplace/update", None).await).await;
        assert_eq!(outcome["changed"], json!([]));
        panel.stop().await.expect("stops");
        market.server.stop().await.expect("stops");
    }
}

#[tokio::test]
async fn a_flipped_byte_in_the_download_is_refused_by_the_sha256_check() {
    let db = TestDb::sqlite().await;
    let market = Market::start(3600).await;
    market.publish(&guard("1.0.0", "")).await;
    market
        .tamper()
        .flip
        .push("/packages/quota-guard/versions/1.0.0/download".into());
    let panel = panel_for(&db, &market, true).await;
    let response = install(
        &panel,
        json!({"package": "quota-guard", "grants": guard_grants()}),
    )
    .await;
    refused_by(response, "sha256").await;
    assert!(installed(&panel).await.is_empty());
    let lock = ok_json(
        call(
            &panel,
            reqwest::Method::GET,
            "/api/v1/marketplace/lockfile",
            None,
        )
        .await,
    )
    .await;
    assert_eq!(
        lock["lockfile"],
        json!([]),
        "no lock entry for a refused install"
    );
    panel.stop().await.expect("stops");
}

#[tokio::test]
async fn a_release_signed_with_a_key_that_is_not_the_publishers_is_refused() {
    let db = TestDb::sqlite().await;
    let market = Market::start(3600).await;
    let bytes = guard("1.0.0", "");
    market.publish(&bytes).await;
    // A log, validly countersigned by the Marketplace, whose release claims
    // the publisher's key but was signed by another.
    let package = cap_runtime::Package::read(&bytes, u64::MAX).expect("valid");
    let version = semver::Version::new(1, 0, 0);
    let wrong = SecretKey::from_seed(&[66; 32]);
    let signature = sign_package(&wrong, "quota-guard", &version, &package.sha256);
    let countersignature = market.notary.countersign(
        "quota-guard",
        &version,
        &package.sha256,
        market.key.id(),
        &signature,
    );
    let now = unix_now();
    let grant = market.notary.append(
        "quota-guard",
        None,
        now,
        LogEvent::KeyGrant {
            key_id: market.key.id().clone(),
            public_key: market.key.public().clone(),
        },
    );
    let head = LogHead {
        len: 1,
        hash: grant.hash(),
    };
    let release = market.notary.append(
        "quota-guard",
        Some(&head),
        now,
        LogEvent::Release {
            version: version.clone(),
            sha256: package.sha256.clone(),
            api: package.manifest.plugin.api.clone(),
            dependencies: package.manifest.dependencies.clone(),
            key_id: market.key.id().clone(),
            author_signature: signature,
            countersignature,
        },
    );
    let log = vec![grant, release];
    let timestamp = market.forged_timestamp(vec![("quota-guard", &log)]);
    market.tamper().replace.insert(
        "/packages/quota-guard/log".into(),
        serde_json::to_vec(&log).expect("json"),
    );
    market
        .tamper()
        .replace
        .insert("/timestamp".into(), timestamp);
    let panel = panel_for(&db, &market, true).await;
    let response = install(
        &panel,
        json!({"package": "quota-guard", "grants": guard_grants()}),
    )
    .await;
    refused_by(response, "author-signature").await;
    assert!(installed(&panel).await.is_empty());
    panel.stop().await.expect("stops");
}

#[tokio::test]
async fn a_panel_pinned_to_another_marketplace_key_refuses_the_marketplace() {
    let db = TestDb::sqlite().await;
    let market = Market::start(3600).await;
    market.publish(&guard("1.0.0", "")).await;
    let config = Config {
        marketplace_url: Some(market.proxy.clone()),
        marketplace_key: Some(SecretKey::from_seed(&[9; 32]).public().to_hex()),
        ..db.config()
    };
    let panel = Panel::builder(config)
        .authenticator(domain_tokens())
        .bind()
        .await
        .expect("starts")
        .spawn();
    let response = install(&panel, json!({"package": "quota-guard"})).await;
    let problem = expect_problem(response, 502, "marketplace-key-mismatch").await;
    assert!(
        problem["detail"]
            .as_str()
            .expect("detail")
            .contains(market.server.root_key().id().as_str())
    );
    assert!(installed(&panel).await.is_empty());
    panel.stop().await.expect("stops");
}

/// One Panel pinning the Marketplace's root installs `quota-guard` 1.0.0;
/// the Marketplace's admin rotates its online key and restarts it on the
/// same address; the Panel updates to 1.1.0, whose log holds entries by
/// both keys, with no change on its side.
async fn a_panel_follows_a_rotated_marketplace_key(db: &TestDb, pin_root: bool) {
    let MarketplaceWithPublisher {
        server,
        client: market,
        token,
        key,
        dir,
    } = MarketplaceWithPublisher::start_with(3600, None).await;
    publish_signed(&market, &token, &key, &guard("1.0.0", "")).await;
    let addr = server.local_addr();
    let config = Config {
        marketplace_url: Some(server.url()),
        // Pinned by hand, or trusted on first use (then it is the root too).
        marketplace_key: pin_root.then(|| server.root_key().to_hex()),
        ..db.config()
    };
    let panel = Panel::builder(config)
        .authenticator(domain_tokens())
        .bind()
        .await
        .expect("the Panel starts")
        .spawn();
    ok_json(
        install(
            &panel,
            json!({"package": "quota-guard", "requirement": "1", "grants": guard_grants()}),
        )
        .await,
    )
    .await;
    let old_key = server.public_key().clone();
    server.stop().await.expect("stops");

    let root = SecretKey::read(&cap_marketplace_server::server::default_root_key_path(
        dir.path(),
    ))
    .expect("the root key");
    let certificate =
        cap_marketplace_server::server::rotate_online_key(dir.path(), &root, unix_now())
            .expect("rotates");
    let mut config = MarketplaceConfig::new(dir.path());
    config.listen = addr;
    config.admin_token = Some(crate::support::MARKETPLACE_ADMIN_TOKEN.into());
    let server = MarketplaceServer::bind(config)
        .await
        .expect("binds on the same address")
        .spawn();
    assert_ne!(*server.public_key(), old_key);
    assert_eq!(*server.public_key(), certificate.online_key);
    publish_signed(&market, &token, &key, &guard("1.1.0", "")).await;

    let response = call(
        &panel,
        reqwest::Method::POST,
        "/api/v1/marketplace/update",
        None,
    )
    .await;
    ok_json(response).await;
    assert_eq!(
        installed(&panel).await,
        [("quota-guard".to_owned(), "1.1.0".to_owned())]
    );
    panel.stop().await.expect("stops");
    server.stop().await.expect("stops");
}

on_every_database! {
    async fn a_panel_pinning_the_root_follows_a_rotated_marketplace_key(db: &TestDb) {
        a_panel_follows_a_rotated_marketplace_key(db, true).await;
    }
}

#[tokio::test]
async fn a_panel_that_trusted_the_marketplace_on_first_use_follows_a_rotated_key() {
    a_panel_follows_a_rotated_marketplace_key(&TestDb::sqlite().await, false).await;
}

#[tokio::test]
async fn a_release_signed_with_a_since_revoked_key_is_refused_by_the_key_check() {
    let db = TestDb::sqlite().await;
    let market = Market::start(3600).await;
    let release = market.publish(&guard("1.0.0", "")).await;
    // The key leaked before it signed: revoked from the release's time on,
    // which only the Marketplace's admin may do (a publisher's own
    // revocation does not reach back over its releases).
    let response = client()
        .post(format!(
            "{}/api/v1/admin/publishers/acme/keys/{}/revoke",
            market.server.url(),
            market.key.id()
        ))
        .bearer_auth(crate::support::MARKETPLACE_ADMIN_TOKEN)
        .json(&json!({"reason": "laptop stolen", "effective_at": release["published_at"]}))
        .send()
        .await
        .expect("revoke");
    assert_eq!(response.status(), 200);
    let panel = panel_for(&db, &market, true).await;
    let response = install(
        &panel,
        json!({"package": "quota-guard", "grants": guard_grants()}),
    )
    .await;
    let detail = refused_by(response, "key-not-revoked").await;
    assert!(detail.contains("laptop stolen"), "{detail}");
    assert!(installed(&panel).await.is_empty());
    panel.stop().await.expect("stops");
}

#[tokio::test]
async fn a_rolled_back_log_is_refused_and_the_installed_version_stays() {
    let db = TestDb::sqlite().await;
    let market = Market::start(3600).await;
    market.publish(&guard("1.0.0", "")).await;
    let panel = panel_for(&db, &market, true).await;
    ok_json(
        install(
            &panel,
            json!({"package": "quota-guard", "grants": guard_grants()}),
        )
        .await,
    )
    .await;
    // Later the Marketplace (or a mirror holding its key) serves a shorter
    // log — with a fresh, validly signed timestamp stating it.
    market.publish(&guard("1.1.0", "")).await;
    let log = market.client.log("quota-guard").await.expect("log");
    assert_eq!(log.len(), 3);
    let shorter = log[..1].to_vec();
    let timestamp = market.forged_timestamp(vec![("quota-guard", &shorter)]);
    market.tamper().replace.insert(
        "/packages/quota-guard/log".into(),
        serde_json::to_vec(&shorter).expect("json"),
    );
    market
        .tamper()
        .replace
        .insert("/timestamp".into(), timestamp);
    let response = call(
        &panel,
        reqwest::Method::POST,
        "/api/v1/marketplace/update",
        None,
    )
    .await;
    refused_by(response, "log-rollback").await;
    assert_eq!(
        installed(&panel).await,
        [("quota-guard".to_owned(), "1.0.0".to_owned())]
    );
    panel.stop().await.expect("stops");
}

#[tokio::test]
async fn a_stale_timestamp_is_refused_by_the_freshness_check() {
    let db = TestDb::sqlite().await;
    // Timestamps that expire the moment they are issued: a frozen index.
    let market = Market::start(0).await;
    market.publish(&guard("1.0.0", "")).await;
    let panel = panel_for(&db, &market, true).await;
    let response = install(
        &panel,
        json!({"package": "quota-guard", "grants": guard_grants()}),
    )
    .await;
    refused_by(response, "timestamp-fresh").await;
    assert!(installed(&panel).await.is_empty());
    panel.stop().await.expect("stops");
}

#[tokio::test]
async fn a_substituted_dependency_is_refused_by_the_dependency_check() {
    let db = TestDb::sqlite().await;
    let market = Market::start(3600).await;
    market.publish(&base("1.0.0", "")).await;
    market.publish(&guard("1.0.0", "quota-base = \"1\"")).await;
    // Other bytes, same id and version: never published.
    market.tamper().replace.insert(
        "/packages/quota-base/versions/1.0.0/download".into(),
        base("1.0.0", "Evil. "),
    );
    let panel = panel_for(&db, &market, true).await;
    let response = install(
        &panel,
        json!({"package": "quota-guard", "grants": guard_grants()}),
    )
    .await;
    let detail = refused_by(response, "dependency-sha256").await;
    assert!(detail.contains("quota-base"), "{detail}");
    assert!(installed(&panel).await.is_empty());
    panel.stop().await.expect("stops");
}

#[tokio::test]
async fn an_unsatisfiable_request_is_explained_and_installs_nothing() {
    let db = TestDb::sqlite().await;
    let market = Market::start(3600).await;
    market.publish(&base("1.0.0", "")).await;
    market.publish(&guard("1.0.0", "quota-base = \"2\"")).await;
    let panel = panel_for(&db, &market, true).await;
    let response = install(&panel, json!({"package": "quota-guard"})).await;
    let problem = expect_problem(response, 409, "resolution-failed").await;
    let detail = problem["detail"].as_str().expect("detail");
    assert!(
        detail.contains("quota-guard") && detail.contains("quota-base"),
        "{detail}"
    );
    assert!(installed(&panel).await.is_empty());
    let response = install(&panel, json!({"package": "no-such-plugin"})).await;
    expect_problem(response, 404, "not-found").await;
    let response = install(
        &panel,
        json!({"package": "quota-base", "requirement": "not a requirement"}),
    )
    .await;
    expect_problem(response, 422, "validation-failed").await;
    panel.stop().await.expect("stops");
}

#[tokio::test]
async fn update_all_installs_everything_or_nothing() {
    let db = TestDb::sqlite().await;
    let market = Market::start(3600).await;
    market.publish(&base("1.0.0", "")).await;
    market.publish(&guard("1.0.0", "quota-base = \"1\"")).await;
    let panel = panel_for(&db, &market, true).await;
    let grants = json!({
        "quota-guard": {"kv": true, "config": true, "panel": ["servers.read"]},
        "quota-base": {"kv": true, "config": true, "panel": ["servers.read"]},
    });
    let outcome =
        ok_json(install(&panel, json!({"package": "quota-guard", "grants": grants})).await).await;
    assert_eq!(
        outcome["changed"].as_array().map(Vec::len),
        Some(2),
        "the dependency came too"
    );
    let both_old = [
        ("quota-base".to_owned(), "1.0.0".to_owned()),
        ("quota-guard".to_owned(), "1.0.0".to_owned()),
    ];
    assert_eq!(installed(&panel).await, both_old);

    // Both get a new version; one of them arrives damaged.
    market.publish(&base("1.1.0", "")).await;
    market
        .publish(&guard("1.1.0", "quota-base = \"1.1\""))
        .await;
    market
        .tamper()
        .flip
        .push("/packages/quota-base/versions/1.1.0/download".into());
    let response = call(
        &panel,
        reqwest::Method::POST,
        "/api/v1/marketplace/update",
        None,
    )
    .await;
    refused_by(response, "dependency-sha256").await;
    assert_eq!(installed(&panel).await, both_old, "nothing was updated");
    let manager = panel.state().plugins().expect("manager");
    assert_eq!(manager.active_ids(), ["quota-base", "quota-guard"]);

    market.tamper().flip.clear();
    let outcome = ok_json(
        call(
            &panel,
            reqwest::Method::POST,
            "/api/v1/marketplace/update",
            None,
        )
        .await,
    )
    .await;
    assert_eq!(
        outcome["changed"].as_array().map(Vec::len),
        Some(2),
        "{outcome:#}"
    );
    assert_eq!(
        installed(&panel).await,
        [
            ("quota-base".to_owned(), "1.1.0".to_owned()),
            ("quota-guard".to_owned(), "1.1.0".to_owned()),
        ]
    );
    assert_eq!(manager.active_ids(), ["quota-base", "quota-guard"]);
    panel.stop().await.expect("stops");
}

// ------------------------------------------------------------ paid plugins

const WEBHOOK_SECRET: &str = "whsec_panel_paid_flow";

/// A Marketplace that sells through the local Stripe stub, with license
/// tokens living `ttl` seconds plus `grace`.
async fn paid_market(ttl: i64, grace: i64) -> (Market, StripeStub) {
    let mut stub = StripeStub::start(WEBHOOK_SECRET).await;
    let mut billing = BillingConfig::new("sk_test_panel_paid_flow", WEBHOOK_SECRET);
    billing.stripe_api_base = Some(stub.url());
    billing.license_ttl = ttl;
    billing.license_grace = grace;
    let market = Market::start_with(3600, Some(billing)).await;
    stub.webhook_url = Some(format!(
        "{}/api/v1/billing/stripe/webhook",
        market.server.url()
    ));
    (market, stub)
}

/// `quota-guard` whose signed manifest names a price.
fn paid_guard() -> Vec<u8> {
    let text = manifest_text("quota-guard").replacen(
        "api = \"0.1.0\"",
        "api = \"0.1.0\"\nprice = \"price_quota_guard\"",
        1,
    );
    package_with("quota-guard", &text)
}

/// Publishes the paid `quota-guard` and sells it at 19.99 EUR.
async fn sell_guard(market: &Market) {
    sell_guard_at(&market.client, &market.key, &market.token).await;
}

/// [`sell_guard`] on the Marketplace of `client` by the publisher with
/// `token` and signing `key`.
async fn sell_guard_at(market: &MarketplaceClient, key: &SecretKey, token: &str) {
    let bytes = paid_guard();
    let package =
        cap_runtime::Package::read(&bytes, cap_runtime::package::MAX_PACKAGE_BYTES).expect("valid");
    let plugin = &package.manifest.plugin;
    let signature = sign_package(key, &plugin.id, &plugin.version, &package.sha256);
    market
        .publish(
            token,
            &bytes,
            (plugin.id.as_str(), &plugin.version),
            key.id(),
            &signature,
            &["minecraft".into()],
        )
        .await
        .expect("published");
    let base = format!("{}/api/v1", market.url());
    let response = client()
        .put(format!("{base}/publishers/me/payouts"))
        .bearer_auth(token)
        .json(&json!({"stripe_account": "acct_1AcmePayouts"}))
        .send()
        .await
        .expect("payouts");
    assert_eq!(response.status(), 200);
    let response = client()
        .put(format!("{base}/packages/quota-guard/price"))
        .bearer_auth(token)
        .json(&json!({"amount": 1999, "currency": "eur"}))
        .send()
        .await
        .expect("price");
    assert_eq!(response.status(), 200);
}

/// A Panel renewing and enforcing licenses every `every`.
async fn panel_renewing(db: &TestDb, market: &Market, every: Duration) -> RunningPanel {
    let config = Config {
        marketplace_url: Some(market.proxy.clone()),
        marketplace_key: Some(market.server.public_key().to_hex()),
        ..db.config()
    };
    Panel::builder(config)
        .authenticator(domain_tokens())
        .license_upkeep(every)
        .bind()
        .await
        .expect("the Panel starts")
        .spawn()
}

/// Buys `quota-guard` through the Panel's checkout and Stripe's signed
/// webhook; returns the Checkout Session's id.
async fn buy_guard(panel: &RunningPanel, stub: &StripeStub) -> String {
    let response = call(
        panel,
        reqwest::Method::POST,
        "/api/v1/marketplace/checkout",
        Some(json!({
            "package": "quota-guard",
            "success_url": "http://127.0.0.1/paid",
            "cancel_url": "http://127.0.0.1/cancelled",
        })),
    )
    .await;
    let status = response.status();
    let view: Value = response.json().await.expect("JSON");
    assert_eq!(status, 201, "{view:#}");
    assert_eq!(view["amount"], 1999);
    let session = view["session_id"].as_str().expect("session").to_owned();
    assert!(
        view["url"].as_str().is_some_and(|u| u.contains(&session)),
        "{view:#}"
    );
    let (status, answer, _, _) = stub.deliver(&stub.pay(&session)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["effect"], "entitlement-granted", "{answer}");
    session
}

async fn licenses(panel: &RunningPanel) -> Value {
    ok_json(
        call(
            panel,
            reqwest::Method::GET,
            "/api/v1/marketplace/licenses",
            None,
        )
        .await,
    )
    .await
}

/// Polls `probe` every 50 ms until it holds, for at most 20 s.
async fn eventually<F, Fut>(what: &str, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !probe().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn guard_answers(panel: &RunningPanel) -> bool {
    let Some(plugin) = panel
        .state()
        .plugins()
        .expect("manager")
        .active("quota-guard")
    else {
        return false;
    };
    let verdict = plugin
        .hook_before(&cap_e2e::server_create("probe", "user-x", 512))
        .await;
    matches!(verdict, Ok(cap_runtime::api::Verdict::Allow))
}

#[tokio::test]
async fn a_paid_plugin_is_bought_licensed_runs_and_stops_after_a_refund_and_its_grace_period() {
    let db = TestDb::sqlite().await;
    // Two-second tokens with two seconds of grace: renewal at one second.
    let (market, stub) = paid_market(2, 2).await;
    sell_guard(&market).await;
    let panel = panel_renewing(&db, &market, Duration::from_millis(100)).await;

    // Browse: listed as paid, with its price.
    let page = ok_json(
        call(
            &panel,
            reqwest::Method::GET,
            "/api/v1/marketplace/packages?paid=true",
            None,
        )
        .await,
    )
    .await;
    assert_eq!(page["items"][0]["id"], "quota-guard", "{page:#}");
    assert_eq!(page["items"][0]["price"]["amount"], 1999);

    // Not bought yet: refused, nothing installed, told how to buy.
    let response = install(
        &panel,
        json!({"package": "quota-guard", "grants": guard_grants()}),
    )
    .await;
    let problem = expect_problem(response, 402, "license-required").await;
    let detail = problem["detail"].as_str().expect("detail");
    assert!(
        detail.contains("`license-entitled`") && detail.contains("/api/v1/marketplace/checkout"),
        "{detail}"
    );
    assert!(installed(&panel).await.is_empty());

    // Checkout through the stub, paid by a webhook signed the real way.
    let session = buy_guard(&panel, &stub).await;
    let instance = licenses(&panel).await["instance_id"]
        .as_str()
        .expect("registered")
        .to_owned();
    let requests = stub.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].form["client_reference_id"], instance);
    assert_eq!(
        requests[0].form["payment_intent_data[transfer_data][destination]"],
        "acct_1AcmePayouts"
    );

    // Install: the license is fetched, verified offline, the plugin runs.
    let outcome = ok_json(
        install(
            &panel,
            json!({"package": "quota-guard", "grants": guard_grants()}),
        )
        .await,
    )
    .await;
    assert_eq!(outcome["changed"][0]["plugin"]["state"], "active");
    assert!(
        guard_answers(&panel).await,
        "the paid plugin's hook answers"
    );
    let list = licenses(&panel).await;
    let license = &list["licenses"][0];
    assert_eq!(license["plugin"], "quota-guard", "{list:#}");
    assert_eq!(license["state"], "active");
    assert_eq!(license["running"], true);
    assert_ne!(license["check"], "refused", "{list:#}");
    let first_expiry = license["expires_at"].clone();
    let (p, first_expiry) = (&panel, &first_expiry);

    // Renewed in the background before it expires.
    eventually("the token is renewed", || async move {
        let list = licenses(p).await;
        list["licenses"][0]["expires_at"] != *first_expiry
            && list["licenses"][0]["check"] == "valid"
    })
    .await;

    // A refund: renewal is refused, the plugin keeps running on its token…
    let (status, answer, _, _) = stub.deliver(&stub.refund(&session)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["effect"], "entitlement-revoked");
    eventually("renewal is refused", || async move {
        licenses(p).await["licenses"][0]["state"] == "revoked"
    })
    .await;
    let list = licenses(&panel).await;
    assert!(
        list["licenses"][0]["problem"]
            .as_str()
            .is_some_and(|p| p.contains("refunded")),
        "{list:#}"
    );
    assert!(
        guard_answers(&panel).await,
        "still running within the grace period"
    );

    // …until its grace period ends: then it is deactivated, with the reason.
    eventually("the plugin is deactivated", || async move {
        let plugin =
            ok_json(call(p, reqwest::Method::GET, "/api/v1/plugins/quota-guard", None).await).await;
        plugin["state"] == "inactive"
    })
    .await;
    assert!(!guard_answers(&panel).await);
    let list = licenses(&panel).await;
    let license = &list["licenses"][0];
    assert_eq!(license["check"], "refused", "{list:#}");
    assert!(
        license["refusal"]
            .as_str()
            .is_some_and(|r| r.starts_with("the `license-expiry` check failed")),
        "{list:#}"
    );
    assert!(
        license["problem"]
            .as_str()
            .is_some_and(|p| p.contains("deactivated") || p.contains("refunded")),
        "{list:#}"
    );
    let events = ok_json(
        call(
            &panel,
            reqwest::Method::GET,
            "/api/v1/audit-log?kind=plugin.deactivated",
            None,
        )
        .await,
    )
    .await;
    assert!(
        events.to_string().contains("license-expiry"),
        "the deactivation event names the failed check: {events:#}"
    );
    // Activating by hand is refused by the same offline check.
    let response = call(
        &panel,
        reqwest::Method::POST,
        "/api/v1/plugins/quota-guard/activate",
        None,
    )
    .await;
    let problem = expect_problem(response, 402, "plugin-unlicensed").await;
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("license-expiry")),
        "{problem:#}"
    );
    panel.stop().await.expect("stops");
    stub.stop().await;
    market.server.stop().await.expect("stops");
}

on_every_database! {
    /// Also what stores the instance and the licenses on every backend.
    async fn a_licensed_plugin_starts_again_offline_while_the_marketplace_is_down(db: &TestDb) {
        let (market, stub) = paid_market(3600, 600).await;
        sell_guard(&market).await;
        let panel = panel_renewing(db, &market, Duration::from_millis(100)).await;
        buy_guard(&panel, &stub).await;
        ok_json(
            install(
                &panel,
                json!({"package": "quota-guard", "grants": guard_grants()}),
            )
            .await,
        )
        .await;
        panel.stop().await.expect("stops");

        market.tamper().down = true;
        let panel = panel_renewing(db, &market, Duration::from_millis(100)).await;
        assert!(
            guard_answers(&panel).await,
            "verified offline at start and running"
        );
        let list = licenses(&panel).await;
        assert_eq!(list["licenses"][0]["check"], "valid", "{list:#}");
        assert_eq!(list["licenses"][0]["running"], true);
        panel.stop().await.expect("stops");
        stub.stop().await;
        market.server.stop().await.expect("stops");
    }
}

#[tokio::test]
async fn a_forged_foreign_or_expired_license_is_refused_naming_the_failed_check() {
    let db = TestDb::sqlite().await;
    let (market, stub) = paid_market(3600, 600).await;
    sell_guard(&market).await;
    let panel = panel_renewing(&db, &market, Duration::from_secs(3600)).await;
    let session = buy_guard(&panel, &stub).await;
    let instance = licenses(&panel).await["instance_id"]
        .as_str()
        .expect("registered")
        .to_owned();
    let now = unix_now();
    let at = |t: i64| time::OffsetDateTime::from_unix_timestamp(t).expect("time");
    let claims = |plugin: &str, instance: &str, expires: i64| LicenseClaims {
        plugin: plugin.into(),
        panel_instance: instance.into(),
        entitlement: "ent_forged".into(),
        issued_at: at(now - 60),
        expires_at: at(expires),
        grace_seconds: 10,
    };
    let stranger = SecretKey::from_seed(&[77; 32]);
    let cases = [
        (
            issue_license(&stranger, &claims("quota-guard", &instance, now + 3600)),
            "license-signature",
        ),
        (
            market
                .notary
                .issue_license(&claims("quota-guard", "panel-someone-else", now + 3600)),
            "license-instance",
        ),
        (
            market
                .notary
                .issue_license(&claims("quota-base", &instance, now + 3600)),
            "license-plugin",
        ),
        (
            market
                .notary
                .issue_license(&claims("quota-guard", &instance, now - 100)),
            "license-expiry",
        ),
        ("cap-license.v1.not-a-token".to_owned(), "license-format"),
    ];
    for (token, check) in cases {
        let view = json!({
            "plugin": "quota-guard", "entitlement": "ent_forged", "status": "active",
            "token": token, "expires_at": now + 3600, "grace_until": now + 4200,
            "renew_after": now + 1800, "revoke_reason": null,
        });
        market.tamper().replace.insert(
            "/panels/me/licenses/quota-guard/renew".into(),
            serde_json::to_vec(&view).expect("json"),
        );
        let response = install(
            &panel,
            json!({"package": "quota-guard", "grants": guard_grants()}),
        )
        .await;
        let problem = expect_problem(response, 402, "license-invalid").await;
        let detail = problem["detail"].as_str().expect("detail");
        assert!(
            detail.contains(&format!("the `{check}` check failed")),
            "{check}: {detail}"
        );
        assert!(installed(&panel).await.is_empty(), "{check}");
    }
    market.tamper().replace.clear();

    // Refunded before installing: the renewal is refused with the reason.
    let (_, answer, _, _) = stub.deliver(&stub.refund(&session)).await;
    assert_eq!(answer["effect"], "entitlement-revoked");
    let response = install(
        &panel,
        json!({"package": "quota-guard", "grants": guard_grants()}),
    )
    .await;
    let problem = expect_problem(response, 402, "license-revoked").await;
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("refunded")),
        "{problem:#}"
    );
    assert!(installed(&panel).await.is_empty());
    panel.stop().await.expect("stops");
    stub.stop().await;
    market.server.stop().await.expect("stops");
}

#[tokio::test]
async fn without_a_configured_marketplace_the_routes_say_so() {
    let db = TestDb::sqlite().await;
    let panel = crate::plugins::start(&db).await;
    let response = install(&panel, json!({"package": "quota-guard"})).await;
    expect_problem(response, 409, "conflict").await;
    panel.stop().await.expect("stops");
}

// ------------------------------------------------------------------ CLI

fn cap(args: &[&str], dir: &std::path::Path) -> std::process::Output {
    std::process::Command::new(crate::support::cap_binary())
        .args(args)
        .current_dir(dir)
        .env_remove("CAP_MARKETPLACE_URL")
        .env_remove("CAP_MARKETPLACE_TOKEN")
        .env_remove("CAP_PUBLISHER_KEY")
        .output()
        .expect("running cap")
}

fn text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn token_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("token: "))
        .expect("a token line")
        .trim()
        .to_owned()
}

#[tokio::test]
async fn cap_plugin_publish_signs_uploads_and_explains_refusals() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = crate::support::private_tempdir();
    let server = MarketplaceServer::bind(MarketplaceConfig::new(data.path()))
        .await
        .expect("binds")
        .spawn();
    let url = server.url();
    let work = dir.path().to_owned();
    std::fs::write(work.join("guard.cap"), guard("1.0.0", "")).expect("write");
    std::fs::write(
        work.join("guard-other.cap"),
        guard("1.0.0", "quota-base = \"1\""),
    )
    .expect("write");
    std::fs::write(work.join("guard-2.cap"), guard("2.0.0", "")).expect("write");
    tokio::task::spawn_blocking(move || {
        let run = |args: &[&str]| cap(args, &work);
        let keygen = run(&["plugin", "keygen", "--out", "acme.key"]);
        assert!(keygen.status.success(), "{}", text(&keygen));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(work.join("acme.key"))
                .expect("key")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = run(&["plugin", "keygen", "--out", "acme.key"]);
        assert!(!again.status.success(), "a key is never overwritten");

        let register = run(&[
            "plugin",
            "register",
            "acme",
            "--key",
            "acme.key",
            "--marketplace",
            &url,
        ]);
        assert!(register.status.success(), "{}", text(&register));
        let token = token_of(&register);
        let publish = run(&[
            "plugin",
            "publish",
            "--package",
            "guard.cap",
            "--key",
            "acme.key",
            "--marketplace",
            &url,
            "--token",
            &token,
            "--games",
            "minecraft",
        ]);
        assert!(publish.status.success(), "{}", text(&publish));
        assert!(
            text(&publish).contains("published quota-guard 1.0.0"),
            "{}",
            text(&publish)
        );

        // The same version with other bytes.
        let exists = run(&[
            "plugin",
            "publish",
            "--package",
            "guard-other.cap",
            "--key",
            "acme.key",
            "--marketplace",
            &url,
            "--token",
            &token,
        ]);
        assert!(!exists.status.success());
        assert!(
            text(&exists).contains("already published with other bytes"),
            "{}",
            text(&exists)
        );

        // A signature made for another file.
        let sign = run(&["plugin", "sign", "guard.cap", "--key", "acme.key"]);
        assert!(sign.status.success(), "{}", text(&sign));
        let bad = run(&[
            "plugin",
            "publish",
            "--package",
            "guard-2.cap",
            "--signature",
            "guard.cap.sig",
            "--marketplace",
            &url,
            "--token",
            &token,
        ]);
        assert!(!bad.status.success());
        assert!(
            text(&bad).contains("refused the signature"),
            "{}",
            text(&bad)
        );

        // The id belongs to acme; another publisher cannot take it.
        let keygen = run(&["plugin", "keygen", "--out", "rival.key"]);
        assert!(keygen.status.success());
        let register = run(&[
            "plugin",
            "register",
            "rival",
            "--key",
            "rival.key",
            "--marketplace",
            &url,
        ]);
        assert!(register.status.success(), "{}", text(&register));
        let rival = token_of(&register);
        let taken = run(&[
            "plugin",
            "publish",
            "--package",
            "guard-2.cap",
            "--key",
            "rival.key",
            "--marketplace",
            &url,
            "--token",
            &rival,
        ]);
        assert!(!taken.status.success());
        assert!(
            text(&taken).contains("taken by another publisher"),
            "{}",
            text(&taken)
        );

        // The signed-elsewhere flow: sign, then publish the signature.
        let sign = run(&["plugin", "sign", "guard-2.cap", "--key", "acme.key"]);
        assert!(sign.status.success(), "{}", text(&sign));
        let publish = run(&[
            "plugin",
            "publish",
            "--package",
            "guard-2.cap",
            "--signature",
            "guard-2.cap.sig",
            "--marketplace",
            &url,
            "--token",
            &token,
            "--games",
            "minecraft",
        ]);
        assert!(publish.status.success(), "{}", text(&publish));
    })
    .await
    .expect("the CLI steps");
    let view: Value = client()
        .get(format!("{}/api/v1/packages/quota-guard", server.url()))
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON");
    let versions: Vec<&str> = view["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .filter_map(|v| v["version"].as_str())
        .collect();
    assert_eq!(versions, ["2.0.0", "1.0.0"]);
    assert_eq!(view["publisher"], "acme");
    assert_eq!(view["games"], json!(["minecraft"]));
    server.stop().await.expect("stops");
}

#[tokio::test]
async fn cap_panel_marketplace_searches_installs_and_explains_a_resolution_failure() {
    let db = TestDb::sqlite().await;
    let market = Market::start(3600).await;
    market.publish(&base("1.0.0", "")).await;
    market.publish(&guard("1.0.0", "quota-base = \"2\"")).await;
    let panel = panel_for(&db, &market, true).await;
    let url = panel.url("");
    let dir = tempfile::tempdir().expect("tempdir");
    let work = dir.path().to_owned();
    tokio::task::spawn_blocking(move || {
        let run = |args: &[&str]| {
            let mut all = vec!["panel", "marketplace", "--panel", url.as_str()];
            all.extend_from_slice(args);
            let output = std::process::Command::new(crate::support::cap_binary())
                .args(&all)
                .current_dir(&work)
                .env_remove("CAP_PANEL_URL")
                .env_remove("CAP_PANEL_TOKEN")
                .output()
                .expect("running cap");
            (output.status.success(), text(&output))
        };
        let (ok, out) = run(&["search", "quota"]);
        assert!(!ok, "no token: {out}");
        assert!(out.contains("CAP_PANEL_TOKEN"), "{out}");

        let token = ["--token", PLUGIN_ADMIN];
        let with_token = |args: &[&str]| {
            let mut all = args.to_vec();
            all.extend_from_slice(&token);
            run(&all)
        };
        let (ok, out) = with_token(&["search", "quota"]);
        assert!(ok, "{out}");
        assert!(
            out.contains("quota-guard 1.0.0") && out.contains("quota-base 1.0.0"),
            "{out}"
        );

        // quota-guard needs quota-base 2, which does not exist: explained.
        let (ok, out) = with_token(&["install", "quota-guard"]);
        assert!(!ok, "{out}");
        assert!(
            out.contains("409") && out.contains("resolution-failed"),
            "{out}"
        );
        assert!(
            out.contains("quota-guard") && out.contains("quota-base"),
            "the explanation names both: {out}"
        );

        let grants = r#"{"quota-base": {"kv": true, "config": true, "panel": ["servers.read"]}}"#;
        let (ok, out) = with_token(&[
            "install",
            "quota-base",
            "--requirement",
            "1",
            "--grants",
            grants,
        ]);
        assert!(ok, "{out}");
        assert!(out.contains("installed quota-base 1.0.0 (active)"), "{out}");
        let (ok, out) = with_token(&["lockfile"]);
        assert!(ok, "{out}");
        assert!(
            out.contains("quota-base") && out.contains("# requested: quota-base 1"),
            "{out}"
        );
        let (ok, out) = with_token(&["update"]);
        assert!(ok, "{out}");
        assert!(out.contains("nothing changed"), "{out}");
        let (ok, out) = with_token(&["licenses", "--json"]);
        assert!(ok, "{out}");
        assert!(out.contains("\"licenses\": []"), "{out}");
    })
    .await
    .expect("the CLI steps");
    assert_eq!(
        installed(&panel).await,
        [("quota-base".to_owned(), "1.0.0".to_owned())]
    );
    panel.stop().await.expect("stops");
}

/// Reads `cap marketplace`'s first stdout line, its URL, and keeps
/// draining the rest (a closed pipe would fail its later prints).
fn marketplace_url(child: &mut std::process::Child) -> String {
    use std::io::BufRead as _;
    let stdout = child.stdout.take().expect("piped stdout");
    let mut reader = std::io::BufReader::new(stdout);
    let mut line = String::new();
    reader.read_line(&mut line).expect("a first line");
    std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
    line.trim()
        .strip_prefix("Marketplace listening on ")
        .unwrap_or_else(|| panic!("not the URL line: {line:?}"))
        .to_owned()
}

#[test]
fn cap_marketplace_refuses_an_empty_webhook_secret_and_a_short_admin_token() {
    let data = crate::support::private_tempdir();
    let empty_secret = std::process::Command::new(crate::support::cap_binary())
        .args(["marketplace", "--listen", "127.0.0.1:0", "--data"])
        .arg(data.path())
        .args([
            "--stripe-secret-key",
            "sk_test_x",
            "--stripe-webhook-secret",
            " ",
        ])
        .env_remove("CAP_STRIPE_WEBHOOK_SECRET")
        .output()
        .expect("running cap");
    assert!(!empty_secret.status.success());
    assert!(
        text(&empty_secret).contains("webhook secret is empty"),
        "{}",
        text(&empty_secret)
    );
    let short_admin = std::process::Command::new(crate::support::cap_binary())
        .args(["marketplace", "--listen", "127.0.0.1:0", "--data"])
        .arg(data.path())
        .args(["--admin-token", "short"])
        .env_remove("CAP_STRIPE_WEBHOOK_SECRET")
        .env_remove("CAP_STRIPE_SECRET_KEY")
        .output()
        .expect("running cap");
    assert!(!short_admin.status.success());
    assert!(
        text(&short_admin).contains("at least 16 characters"),
        "{}",
        text(&short_admin)
    );
}

#[tokio::test]
async fn cap_marketplace_sells_with_the_stripe_settings_from_its_flags() {
    let stub = StripeStub::start(WEBHOOK_SECRET).await;
    let data = crate::support::private_tempdir();
    let half = std::process::Command::new(crate::support::cap_binary())
        .args(["marketplace", "--stripe-secret-key", "sk_test_x"])
        .env_remove("CAP_STRIPE_WEBHOOK_SECRET")
        .output()
        .expect("running cap");
    assert!(!half.status.success());
    assert!(
        text(&half).contains("--stripe-webhook-secret"),
        "{}",
        text(&half)
    );

    let mut child = std::process::Command::new(crate::support::cap_binary())
        .args(["marketplace", "--listen", "127.0.0.1:0", "--data"])
        .arg(data.path())
        .args([
            "--stripe-secret-key",
            "sk_test_from_flags",
            "--stripe-api-base",
            &stub.url(),
            "--platform-fee-percent",
            "12.5",
            "--license-lifetime",
            "2h",
            "--license-grace",
            "30m",
        ])
        .env("CAP_STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("cap marketplace starts");
    let url = marketplace_url(&mut child);
    let base = format!("{url}/api/v1");

    // Billing is on: a Panel's licenses answer, a signed webhook is accepted,
    // a wrongly signed one refused.
    let panel: Value = client()
        .post(format!("{base}/panels"))
        .json(&json!({}))
        .send()
        .await
        .expect("register")
        .json()
        .await
        .expect("JSON");
    let token = panel["token"].as_str().expect("token");
    let response = client()
        .get(format!("{base}/panels/me/licenses"))
        .bearer_auth(token)
        .send()
        .await
        .expect("licenses");
    assert_eq!(response.status(), 200, "billing is on");
    let mut stub = stub;
    stub.webhook_url = Some(format!("{base}/billing/stripe/webhook"));
    let event = stub.event("plan.created", json!({"id": "plan_1", "object": "plan"}));
    let (status, answer, _, _) = stub.deliver(&event).await;
    assert_eq!(status, 200, "{answer}");
    let body = serde_json::to_vec(&event).expect("JSON");
    let forged = StripeStub::signature("whsec_wrong", unix_now(), &body);
    let (status, _) = stub.deliver_raw(&body, Some(&forged)).await;
    assert_eq!(status, 400);

    // The fee and the license lifetime come from the flags too.
    let market = MarketplaceClient::new(&url).expect("client");
    let key = SecretKey::from_seed(&[42; 32]);
    let publisher = market
        .create_publisher("acme")
        .await
        .expect("publisher")
        .token;
    market
        .add_key(&publisher, "acme", &key, None)
        .await
        .expect("key");
    sell_guard_at(&market, &key, &publisher).await;
    let checkout: Value = client()
        .post(format!("{base}/packages/quota-guard/checkout"))
        .bearer_auth(token)
        .json(&json!({"success_url": "http://127.0.0.1/a", "cancel_url": "http://127.0.0.1/b"}))
        .send()
        .await
        .expect("checkout")
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        checkout["application_fee"], 250,
        "12.5% of 1999: {checkout:#}"
    );
    let session = checkout["session_id"].as_str().expect("session");
    let (status, answer, _, _) = stub.deliver(&stub.pay(session)).await;
    assert_eq!(status, 200, "{answer}");
    let list: Value = client()
        .get(format!("{base}/panels/me/licenses"))
        .bearer_auth(token)
        .send()
        .await
        .expect("licenses")
        .json()
        .await
        .expect("JSON");
    let license = &list["licenses"][0];
    let lifetime = license["expires_at"].as_i64().expect("expiry") - unix_now();
    assert!((7_100..=7_200).contains(&lifetime), "2h: {list:#}");
    assert_eq!(
        license["grace_until"].as_i64().expect("grace")
            - license["expires_at"].as_i64().expect("expiry"),
        1_800
    );

    child.kill().expect("stops");
    let _ = child.wait();
    stub.stop().await;
}
