//! Redirect sign-in end to end, on every database: the real `oidc` plugin
//! (0.2.0, installed through the plugin API like an admin's upload)
//! against a real OpenID provider, `oidc-provider` from npm run by
//! Debian's `nodejs` on loopback (`tests/fixtures/oidc-provider/`), and
//! every bad answer the issue lists: a wrong state, nonce, issuer or
//! audience, an expired, unsigned or foreign-key ID token, a provider that
//! is down or answers garbage.
//!
//! The provider's interaction is scripted (whoever reaches its login
//! prompt is the current test account, and consents), and its `/__test`
//! switch makes its token endpoint tamper with the ID tokens it issues:
//! see `provider.mjs`.

use std::time::Duration;

use cap_panel::identity::IdentityOptions;
use cap_panel::identity::rate_limit::{RateLimits, Rule};
use serde_json::{Value, json};

use crate::identity::{ADMIN_PASSWORD, IdentityPanel, token};
use crate::support::openid::{CLIENT_ID, CLIENT_SECRET, OpenIdProvider, oidc_manifest};
use crate::support::{TestDb, client, code_at, expect_problem, on_every_database, package_with};

/// The callback URL of instance `id` on `p`.
fn callback(p: &IdentityPanel, id: &str) -> String {
    p.url(&format!("/api/v1/auth/redirect/{id}/callback"))
}

/// Installs the `oidc` package as instance `id`, allowed to reach
/// loopback, configured with `config` on top of the provider's issuer and
/// client, and activates it.
async fn install_instance(p: &IdentityPanel, admin: &str, id: &str, issuer: &str, config: Value) {
    let manifest = oidc_manifest(id);
    let response = client()
        .post(p.url("/api/v1/plugins"))
        .bearer_auth(admin)
        .header("content-type", "application/octet-stream")
        .body(package_with("oidc", &manifest))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 201, "uploading {id}");
    let body: Value = response.json().await.expect("JSON");
    let requested = body["plugin"]["requested"].clone();
    let response = client()
        .post(p.url(&format!("/api/v1/plugins/{id}/grant")))
        .bearer_auth(admin)
        .json(&requested)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200, "granting {id}");
    let mut values = json!({ "issuer": issuer, "client-id": CLIENT_ID });
    for (key, value) in config.as_object().expect("an object") {
        values[key] = value.clone();
    }
    let response = client()
        .put(p.url(&format!("/api/v1/plugins/{id}/config")))
        .bearer_auth(admin)
        .json(&json!({ "values": values }))
        .send()
        .await
        .expect("request");
    assert_eq!(
        response.status(),
        200,
        "configuring {id}: {:?}",
        response.text().await
    );
    let response = client()
        .put(p.url(&format!("/api/v1/plugins/{id}/secrets/client-secret")))
        .bearer_auth(admin)
        .json(&json!({ "value": CLIENT_SECRET }))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 204, "the secret of {id}");
    let response = client()
        .post(p.url(&format!("/api/v1/plugins/{id}/activate")))
        .bearer_auth(admin)
        .send()
        .await
        .expect("request");
    assert_eq!(
        response.status(),
        200,
        "activating {id}: {:?}",
        response.text().await
    );
}

/// A Panel with identity, one real OpenID provider and instance `oidc-acme`
/// of the plugin configured with `config`.
struct Setup {
    p: IdentityPanel,
    provider: OpenIdProvider,
    admin: String,
}

const ACME: &str = "oidc-acme";

impl Setup {
    async fn start(db: &TestDb, config: Value) -> Setup {
        Setup::start_with(db, IdentityOptions::default(), config).await
    }

    async fn start_with(db: &TestDb, options: IdentityOptions, config: Value) -> Setup {
        let p = IdentityPanel::start_with(db, options).await;
        let provider = OpenIdProvider::start(&[callback(&p, ACME)]);
        let admin = token(&p.login_ok("admin", ADMIN_PASSWORD).await, "access_token");
        install_instance(&p, &admin, ACME, &provider.issuer, config).await;
        Setup { p, provider, admin }
    }
}

/// Cookies by name, as a browser would keep them for one site (enough for
/// the provider's interaction cookies and the Panel's binding).
#[derive(Default)]
struct Jar(Vec<(String, String)>);

impl Jar {
    fn keep(&mut self, response: &reqwest::Response) {
        for value in response.headers().get_all("set-cookie") {
            let text = value.to_str().expect("ASCII cookie");
            let pair = text.split(';').next().unwrap_or_default();
            if let Some((name, value)) = pair.split_once('=') {
                self.0.retain(|(n, _)| n != name);
                if !text.contains("Max-Age=0") && !text.contains("expires=Thu, 01 Jan 1970") {
                    self.0.push((name.trim().to_owned(), value.to_owned()));
                }
            }
        }
    }

    fn header(&self) -> String {
        self.0
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// A browser of one Panel and one provider: each keeps its own cookies.
#[derive(Default)]
struct Browser {
    panel: Jar,
    provider: Jar,
}

impl Browser {
    /// `POST /auth/redirect/{id}/begin` (or, with `bearer`, the link
    /// route): the authorize URL.
    async fn begin(&mut self, p: &IdentityPanel, id: &str, bearer: Option<&str>) -> String {
        let path = match bearer {
            None => format!("/api/v1/auth/redirect/{id}/begin"),
            Some(_) => format!("/api/v1/account/identities/{id}/link"),
        };
        let mut request = client().post(p.url(&path));
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        let response = request.send().await.expect("request");
        assert_eq!(response.status(), 200, "begin: {:?}", response.headers());
        self.panel.keep(&response);
        let body: Value = response.json().await.expect("JSON");
        body["authorize_url"]
            .as_str()
            .expect("authorize_url")
            .to_owned()
    }

    /// Follows the provider's redirects from `authorize_url` to the
    /// Panel's callback URL, which it answers (not visiting it).
    async fn through_provider(&mut self, authorize_url: &str, panel_base: &str) -> String {
        let mut url = authorize_url.to_owned();
        for _ in 0..10 {
            if url.starts_with(panel_base) {
                return url;
            }
            let response = client()
                .get(&url)
                .header("cookie", self.provider.header())
                .send()
                .await
                .expect("the provider answers");
            self.provider.keep(&response);
            let status = response.status();
            let location = response
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let Some(location) = location else {
                panic!(
                    "the provider answered {status}: {:?}",
                    response.text().await
                );
            };
            url = if location.starts_with('/') {
                let origin = url.splitn(4, '/').take(3).collect::<Vec<_>>().join("/");
                format!("{origin}{location}")
            } else {
                location
            };
        }
        panic!("the provider never sent the browser back");
    }

    /// Visits the callback with the Panel's cookies.
    async fn callback(&mut self, url: &str) -> reqwest::Response {
        let response = client()
            .get(url)
            .header("cookie", self.panel.header())
            .send()
            .await
            .expect("request");
        self.panel.keep(&response);
        response
    }

    /// Exchanges the ticket of a callback's redirect.
    async fn exchange(&mut self, p: &IdentityPanel, redirected_to: &str) -> reqwest::Response {
        let ticket = redirected_to
            .split_once("#/login?ticket=")
            .map(|(_, t)| t)
            .unwrap_or_else(|| panic!("no ticket in {redirected_to:?}"));
        let response = client()
            .post(p.url("/api/v1/auth/redirect/exchange"))
            .header("cookie", self.panel.header())
            .json(&json!({ "ticket": ticket }))
            .send()
            .await
            .expect("request");
        self.panel.keep(&response);
        response
    }

    /// Begins at `id`, passes the provider and visits the callback.
    async fn up_to_callback(
        &mut self,
        p: &IdentityPanel,
        id: &str,
        bearer: Option<&str>,
    ) -> reqwest::Response {
        let authorize = self.begin(p, id, bearer).await;
        let back = self.through_provider(&authorize, &p.url("")).await;
        self.callback(&back).await
    }
}

fn location(response: &reqwest::Response) -> String {
    assert_eq!(response.status(), 303, "{response:?}");
    response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("a Location")
        .to_owned()
}

/// Signs in through instance `id` in a fresh browser: the tokens.
async fn sign_in(p: &IdentityPanel, id: &str) -> Value {
    let mut browser = Browser::default();
    let response = browser.up_to_callback(p, id, None).await;
    let to = location(&response);
    assert!(to.starts_with(&p.url("/#/login?ticket=")), "{to}");
    let response = browser.exchange(p, &to).await;
    assert_eq!(response.status(), 200);
    response.json().await.expect("JSON")
}

/// Signs in in a fresh browser with the provider in `mode`, expecting
/// the callback's refusal `status`/`code`.
async fn refused_in_mode(db: &TestDb, mode: &str, status: u16, code: &str) {
    let s = Setup::start(db, json!({ "allow-signup": "true" })).await;
    s.provider.set(json!({ "mode": mode })).await;
    let mut browser = Browser::default();
    let response = browser.up_to_callback(&s.p, ACME, None).await;
    expect_problem(response, status, code).await;
    // The same provider, back to normal, signs in: the refusal was the
    // token's, not the setup's.
    s.provider.set(json!({ "mode": "normal" })).await;
    let tokens = sign_in(&s.p, ACME).await;
    assert_eq!(tokens["user"]["username"], "alice");
}

on_every_database! {
    async fn signs_in_through_a_real_openid_provider_creating_the_account_where_the_provider_allows_it(db: &TestDb) {
        let s = Setup::start(db, json!({ "allow-signup": "true", "name": "Acme SSO" })).await;
        let providers: Value = client()
            .get(s.p.url("/api/v1/auth/providers"))
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("JSON");
        let acme = providers["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|i| i["id"] == ACME)
            .unwrap_or_else(|| panic!("{providers:#}"));
        assert_eq!(acme["kind"], "redirect");
        assert_eq!(acme["name"], "Acme SSO");

        let tokens = sign_in(&s.p, ACME).await;
        assert_eq!(tokens["user"]["username"], "alice");
        assert_eq!(tokens["user"]["email"], "alice@example.org");
        assert_eq!(tokens["user"]["display_name"], "Alice Example");
        assert_eq!(tokens["user"]["admin"], false);
        let me: Value = s.p.get("/api/v1/auth/me", &token(&tokens, "access_token")).await.json().await.expect("JSON");
        assert_eq!(me["user"]["id"], tokens["user"]["id"]);

        // The second sign-in finds the linked account.
        let again = sign_in(&s.p, ACME).await;
        assert_eq!(again["user"]["id"], tokens["user"]["id"]);
        let log: Value = s.p
            .get("/api/v1/audit-log?kind=session.created&limit=50", &s.admin)
            .await
            .json()
            .await
            .expect("JSON");
        let sessions = log["items"].as_array().expect("items");
        assert!(sessions.iter().filter(|e| e["actor"]["user_id"] == tokens["user"]["id"]).count() >= 2, "{log:#}");
    }
}

on_every_database! {
    async fn a_first_sign_in_is_refused_unless_the_provider_allows_sign_ups_and_a_linked_identity_signs_in(db: &TestDb) {
        let s = Setup::start(db, json!({})).await;
        let mut browser = Browser::default();
        let response = browser.up_to_callback(&s.p, ACME, None).await;
        expect_problem(response, 403, "account-not-linked").await;

        // The admin links the identity to their account, then signs in with it.
        let mut browser = Browser::default();
        let response = browser.up_to_callback(&s.p, ACME, Some(&s.admin)).await;
        let to = location(&response);
        assert_eq!(to, s.p.url(&format!("/#/account?linked={ACME}")));
        let tokens = sign_in(&s.p, ACME).await;
        assert_eq!(tokens["user"]["username"], "admin");
    }
}

on_every_database! {
    async fn linking_refuses_an_identity_linked_to_another_account(db: &TestDb) {
        let s = Setup::start(db, json!({ "allow-signup": "true" })).await;
        let alice = sign_in(&s.p, ACME).await;
        assert_eq!(alice["user"]["username"], "alice");
        let mut browser = Browser::default();
        let response = browser.up_to_callback(&s.p, ACME, Some(&s.admin)).await;
        expect_problem(response, 409, "identity-linked-elsewhere").await;
        // Still alice's.
        let again = sign_in(&s.p, ACME).await;
        assert_eq!(again["user"]["id"], alice["user"]["id"]);
    }
}

on_every_database! {
    async fn sign_ups_are_limited_to_the_allowed_email_domains_and_group(db: &TestDb) {
        let s = Setup::start(
            db,
            json!({
                "allow-signup": "true", "allowed-email-domains": "corp.example", "required-group": "staff",
                // The provider's groups come with their scope.
                "scopes": "openid profile email groups",
            }),
        )
        .await;
        let outsider = |sub: &str, email: &str, groups: Value| json!({ "account": {
            "sub": sub, "preferred_username": sub, "email": email, "email_verified": true, "groups": groups,
        }});
        s.provider.set(outsider("bob", "bob@example.org", json!(["staff"]))).await;
        let mut browser = Browser::default();
        expect_problem(browser.up_to_callback(&s.p, ACME, None).await, 403, "account-not-linked").await;
        s.provider.set(outsider("carol", "carol@corp.example", json!(["players"]))).await;
        let mut browser = Browser::default();
        expect_problem(browser.up_to_callback(&s.p, ACME, None).await, 403, "account-not-linked").await;
        s.provider.set(outsider("dave", "dave@corp.example", json!(["staff"]))).await;
        let tokens = sign_in(&s.p, ACME).await;
        assert_eq!(tokens["user"]["username"], "dave");
    }
}

on_every_database! {
    async fn a_callback_with_a_wrong_state_is_refused(db: &TestDb) {
        let s = Setup::start(db, json!({ "allow-signup": "true" })).await;
        // A state nobody began.
        let mut browser = Browser::default();
        browser.begin(&s.p, ACME, None).await;
        let forged = format!("{}?code=abc&state=forged", callback(&s.p, ACME));
        expect_problem(browser.callback(&forged).await, 401, "sign-in-refused").await;
        // No state at all.
        expect_problem(browser.callback(&callback(&s.p, ACME)).await, 401, "sign-in-refused").await;

        // A real callback opened in another browser (login CSRF): refused,
        // and the state is spent.
        let mut victim_of_csrf = Browser::default();
        let mut attacker = Browser::default();
        let authorize = attacker.begin(&s.p, ACME, None).await;
        let back = attacker.through_provider(&authorize, &s.p.url("")).await;
        expect_problem(victim_of_csrf.callback(&back).await, 401, "sign-in-refused").await;
        expect_problem(attacker.callback(&back).await, 401, "sign-in-refused").await;

        // A callback replayed after it signed in.
        let mut browser = Browser::default();
        let authorize = browser.begin(&s.p, ACME, None).await;
        let back = browser.through_provider(&authorize, &s.p.url("")).await;
        let to = location(&browser.callback(&back).await);
        expect_problem(browser.callback(&back).await, 401, "sign-in-refused").await;
        // Its ticket works once, and only in its browser.
        let mut other = Browser::default();
        expect_problem(other.exchange(&s.p, &to).await, 401, "sign-in-refused").await;
    }
}

on_every_database! {
    async fn a_ticket_works_once_in_the_browser_that_signed_in(db: &TestDb) {
        let s = Setup::start(db, json!({ "allow-signup": "true" })).await;
        let mut browser = Browser::default();
        let to = location(&browser.up_to_callback(&s.p, ACME, None).await);
        let binding = browser.panel.header();
        assert_eq!(browser.exchange(&s.p, &to).await.status(), 200);
        browser.panel.0 = vec![("cap_sign_in".into(), binding.trim_start_matches("cap_sign_in=").into())];
        expect_problem(browser.exchange(&s.p, &to).await, 401, "sign-in-refused").await;
    }
}

on_every_database! {
    async fn an_id_token_with_a_wrong_nonce_is_refused(db: &TestDb) {
        refused_in_mode(db, "wrong-nonce", 401, "sign-in-refused").await;
    }
}

on_every_database! {
    async fn an_id_token_of_another_issuer_is_refused(db: &TestDb) {
        refused_in_mode(db, "wrong-issuer", 401, "sign-in-refused").await;
    }
}

on_every_database! {
    async fn an_id_token_for_another_audience_is_refused(db: &TestDb) {
        refused_in_mode(db, "wrong-audience", 401, "sign-in-refused").await;
    }
}

on_every_database! {
    async fn an_expired_id_token_is_refused(db: &TestDb) {
        refused_in_mode(db, "expired", 401, "sign-in-refused").await;
    }
}

on_every_database! {
    async fn an_unsigned_id_token_is_refused(db: &TestDb) {
        refused_in_mode(db, "unsigned", 401, "sign-in-refused").await;
    }
}

on_every_database! {
    async fn an_id_token_signed_by_a_key_not_in_the_jwks_is_refused(db: &TestDb) {
        refused_in_mode(db, "wrong-key", 401, "sign-in-refused").await;
    }
}

on_every_database! {
    async fn a_provider_answering_garbage_is_unavailable(db: &TestDb) {
        refused_in_mode(db, "garbage", 503, "provider-unavailable").await;
    }
}

on_every_database! {
    async fn a_provider_that_is_down_is_unavailable(db: &TestDb) {
        let p = IdentityPanel::start(db).await;
        let admin = token(&p.login_ok("admin", ADMIN_PASSWORD).await, "access_token");
        // Nothing listens on the port of a stopped provider.
        let issuer = {
            let provider = OpenIdProvider::start(&[callback(&p, ACME)]);
            provider.issuer.clone()
        };
        install_instance(&p, &admin, ACME, &issuer, json!({ "allow-signup": "true" })).await;
        let response = client()
            .post(p.url(&format!("/api/v1/auth/redirect/{ACME}/begin")))
            .send()
            .await
            .expect("request");
        expect_problem(response, 503, "provider-unavailable").await;
    }
}

on_every_database! {
    async fn two_providers_sign_in_at_once_each_an_instance_with_its_own_config(db: &TestDb) {
        const GLOBEX: &str = "oidc-globex";
        let s = Setup::start(db, json!({ "allow-signup": "true", "name": "Acme SSO" })).await;
        let globex = OpenIdProvider::start(&[callback(&s.p, GLOBEX)]);
        install_instance(&s.p, &s.admin, GLOBEX, &globex.issuer, json!({
            "allow-signup": "true", "name": "Globex", "username-claim": "email",
        }))
        .await;
        let providers: Value = client()
            .get(s.p.url("/api/v1/auth/providers"))
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("JSON");
        let names: Vec<(String, String)> = providers["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter(|i| i["kind"] == "redirect")
            .map(|i| (i["id"].as_str().unwrap_or_default().to_owned(), i["name"].as_str().unwrap_or_default().to_owned()))
            .collect();
        assert_eq!(names, [(ACME.to_owned(), "Acme SSO".to_owned()), (GLOBEX.to_owned(), "Globex".to_owned())]);

        // One subject at two providers is two identities: two accounts,
        // each named by its instance's username claim.
        let at_acme = sign_in(&s.p, ACME).await;
        let at_globex = sign_in(&s.p, GLOBEX).await;
        assert_eq!(at_acme["user"]["username"], "alice");
        assert_eq!(at_globex["user"]["username"], "alice@example.org");
        assert_ne!(at_acme["user"]["id"], at_globex["user"]["id"]);
    }
}

on_every_database! {
    async fn a_disabled_user_gets_no_session_from_the_provider(db: &TestDb) {
        let s = Setup::start(db, json!({ "allow-signup": "true" })).await;
        let alice = sign_in(&s.p, ACME).await;
        let id = alice["user"]["id"].as_str().expect("an id");
        let response = client()
            .patch(s.p.url(&format!("/api/v1/users/{id}")))
            .bearer_auth(&s.admin)
            .json(&json!({ "disabled": true }))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 200);
        let mut browser = Browser::default();
        let to = location(&browser.up_to_callback(&s.p, ACME, None).await);
        expect_problem(browser.exchange(&s.p, &to).await, 403, "account-disabled").await;
    }
}

on_every_database! {
    async fn a_user_with_totp_completes_a_provider_sign_in_with_the_second_factor(db: &TestDb) {
        let s = Setup::start(db, json!({})).await;
        let enrolled = crate::totp::enroll(&s.p).await;
        let mut browser = Browser::default();
        let linked = browser.up_to_callback(&s.p, ACME, Some(&enrolled.access)).await;
        assert_eq!(location(&linked), s.p.url(&format!("/#/account?linked={ACME}")));

        let mut browser = Browser::default();
        let to = location(&browser.up_to_callback(&s.p, ACME, None).await);
        let response = browser.exchange(&s.p, &to).await;
        assert_eq!(response.status(), 202);
        let challenge: Value = response.json().await.expect("JSON");
        assert_eq!(challenge["second_factor_required"], true);
        let response = crate::totp::second_factor(
            &s.p,
            &token(&challenge, "challenge"),
            json!({ "code": code_at(&enrolled.secret, 1) }),
        )
        .await;
        assert_eq!(response.status(), 200);
        let tokens: Value = response.json().await.expect("JSON");
        assert_eq!(tokens["user"]["username"], "admin");
    }
}

#[tokio::test]
async fn sign_ins_from_one_address_are_rate_limited() {
    let db = TestDb::sqlite().await;
    let options = IdentityOptions {
        rate_limits: RateLimits {
            login_per_ip: Rule::new(4, Duration::from_secs(60)),
            ..RateLimits::default()
        },
        ..IdentityOptions::default()
    };
    let s = Setup::start_with(&db, options, json!({ "allow-signup": "true" })).await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let response = client()
            .post(s.p.url(&format!("/api/v1/auth/redirect/{ACME}/begin")))
            .send()
            .await
            .expect("request");
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            assert!(response.headers().contains_key("retry-after"));
            break;
        }
    }
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
}

/// Installs and activates the `event-recorder` hook plugin on `s`, denying
/// the before-events of `deny` (dotted kinds, blank-separated).
async fn record_events(s: &Setup, deny: &str) {
    use cap_panel::db::Actor;
    let plugins = s.p.panel.state().plugins().expect("a plugin manager");
    let installed = plugins
        .install(&crate::plugins::package("event-recorder"), &Actor::system())
        .await
        .expect("the recorder installs");
    let manifest =
        cap_runtime::Manifest::parse(installed.record.manifest.as_bytes()).expect("its manifest");
    plugins
        .grant(
            "event-recorder",
            cap_runtime::Grants::all_requested(&manifest),
            &Actor::system(),
        )
        .await
        .expect("the recorder is granted");
    let values =
        std::collections::BTreeMap::from([("deny-kinds".to_owned(), Some(deny.to_owned()))]);
    plugins
        .set_config("event-recorder", &values, &Actor::system())
        .await
        .expect("the recorder takes its configuration");
    plugins
        .activate("event-recorder", &Actor::system())
        .await
        .expect("the recorder activates");
}

/// Whether the recorder heard `phase/kind` about `subject` (waiting a
/// while for after-hooks, which run in the background).
async fn recorded(s: &Setup, phase: &str, kind: &str, subject: &str) -> bool {
    use cap_runtime::capabilities::kv::KvStore as _;
    let kv = cap_panel::plugin_kv::DbKv::new(s.p.panel.state().db().clone());
    for _ in 0..100 {
        let found = kv
            .get("event-recorder", &format!("{phase}/{kind}/{subject}"))
            .await
            .expect("the recorder's store reads");
        if found.is_some() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

on_every_database! {
    async fn a_provider_sign_up_and_sign_in_fire_the_user_hooks_which_may_refuse_them(db: &TestDb) {
        let s = Setup::start(db, json!({ "allow-signup": "true" })).await;
        record_events(&s, "user.create").await;
        let mut browser = Browser::default();
        expect_problem(browser.up_to_callback(&s.p, ACME, None).await, 403, "hook-denied").await;

        let plugins = s.p.panel.state().plugins().expect("a plugin manager");
        let values = std::collections::BTreeMap::from([("deny-kinds".to_owned(), Some("user.login".to_owned()))]);
        plugins
            .set_config("event-recorder", &values, &cap_panel::db::Actor::system())
            .await
            .expect("the recorder takes its configuration");
        let mut browser = Browser::default();
        let to = location(&browser.up_to_callback(&s.p, ACME, None).await);
        expect_problem(browser.exchange(&s.p, &to).await, 403, "hook-denied").await;

        plugins
            .set_config("event-recorder", &std::collections::BTreeMap::from([("deny-kinds".to_owned(), None)]), &cap_panel::db::Actor::system())
            .await
            .expect("the recorder takes its configuration");
        let alice = sign_in(&s.p, ACME).await;
        let id = alice["user"]["id"].as_str().expect("an id");
        for (phase, kind) in [("after", "user.create"), ("before", "user.login"), ("after", "user.login")] {
            assert!(recorded(&s, phase, kind, id).await, "{phase}/{kind}");
        }
    }
}
