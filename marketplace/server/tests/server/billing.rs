//! Paid plugins end to end against the local Stripe stub: prices, checkout
//! with a destination charge and the revenue share, the signed webhook,
//! entitlements, offline license checks, refunds and disputes.

use cap_marketplace::keys::SecretKey;
use cap_marketplace::license::{LicenseError, LicenseStatus, verify_license};
use cap_marketplace::signing::sign_package;
use cap_marketplace::wire::{
    KEY_ID_HEADER, PACKAGE_ID_HEADER, PACKAGE_VERSION_HEADER, SIGNATURE_HEADER, key_proof_message,
};
use cap_marketplace_server::billing::BillingConfig;
use cap_marketplace_server::{MarketplaceConfig, MarketplaceServer, RunningMarketplace};
use reqwest::StatusCode;
use serde_json::{Value, json};
use time::OffsetDateTime;

use cap_test_support::now;
use cap_test_support::packages::pack;
use cap_test_support::postgres::PgDb;
use cap_test_support::stripe::StripeStub;

const WEBHOOK_SECRET: &str = "whsec_test_ctrl_alt_play";
const STRIPE_KEY: &str = "sk_test_ctrl_alt_play";

struct Shop {
    server: Option<RunningMarketplace>,
    stub: StripeStub,
    http: reqwest::Client,
    base: String,
    _dir: tempfile::TempDir,
    pg: Option<PgDb>,
}

impl Shop {
    async fn start(postgres: bool, billing: bool) -> Shop {
        let dir = cap_test_support::private_tempdir();
        let pg = if postgres {
            Some(PgDb::create().await)
        } else {
            None
        };
        let mut stub = StripeStub::start(WEBHOOK_SECRET).await;
        let mut config = MarketplaceConfig::new(dir.path());
        config.database_url = pg.as_ref().map(|p| p.url.clone());
        if billing {
            let mut b = BillingConfig::new(STRIPE_KEY, WEBHOOK_SECRET);
            b.stripe_api_base = Some(stub.url());
            config.billing = Some(b);
        }
        let server = MarketplaceServer::bind(config)
            .await
            .expect("binds")
            .spawn();
        let base = format!("{}/api/v1", server.url());
        stub.webhook_url = Some(format!("{base}/billing/stripe/webhook"));
        Shop {
            server: Some(server),
            stub,
            http: reqwest::Client::new(),
            base,
            _dir: dir,
            pg,
        }
    }

    async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.stop().await.expect("stops cleanly");
        }
        self.stub.stop().await;
        if let Some(pg) = self.pg.take() {
            pg.drop_db().await;
        }
    }

    fn key(&self) -> ed25519_dalek::VerifyingKey {
        *self
            .server
            .as_ref()
            .expect("running")
            .public_key()
            .verifying_key()
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let r = req.send().await.expect("request");
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        self.call(reqwest::Method::GET, path, token, None).await
    }

    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::POST, path, token, Some(body))
            .await
    }

    async fn put(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::PUT, path, Some(token), Some(body))
            .await
    }

    /// A publisher who published `quota-guard` 1.0.0; returns its token.
    async fn publish_quota_guard(&self, name: &str) -> String {
        let key = SecretKey::generate().expect("key");
        let (status, body) = self
            .post("/publishers", None, json!({ "name": name }))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let token = body["token"].as_str().expect("token").to_owned();
        let proof = key.sign(&key_proof_message(name, key.id()));
        let (status, body) = self
            .post(
                "/publishers/me/keys",
                Some(&token),
                json!({ "public_key": key.public().to_hex(), "proof": proof.to_hex() }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (package, bytes) = pack("quota-guard", |t| t);
        let plugin = &package.manifest.plugin;
        let sig = sign_package(&key, &plugin.id, &plugin.version, &package.sha256);
        let r = self
            .http
            .post(format!("{}/packages", self.base))
            .bearer_auth(&token)
            .header(PACKAGE_ID_HEADER, plugin.id.as_str())
            .header(PACKAGE_VERSION_HEADER, plugin.version.to_string())
            .header(KEY_ID_HEADER, key.id().as_str())
            .header(SIGNATURE_HEADER, sig.to_hex())
            .header("content-type", "application/vnd.ctrl-alt-play.package")
            .body(bytes)
            .send()
            .await
            .expect("publish");
        assert_eq!(r.status(), StatusCode::CREATED);
        token
    }

    /// A publisher selling quota-guard at `amount` cents; returns its token.
    async fn sell_quota_guard(&self, amount: i64) -> String {
        let token = self.publish_quota_guard("guardians").await;
        let (status, body) = self
            .put(
                "/publishers/me/payouts",
                &token,
                json!({ "stripe_account": "acct_1GuardiansPayout" }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, body) = self
            .put(
                "/packages/quota-guard/price",
                &token,
                json!({ "amount": amount, "currency": "eur" }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        token
    }

    async fn panel(&self, id: &str) -> String {
        let (status, body) = self
            .post("/panels", None, json!({ "instance_id": id }))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["instance_id"], id);
        body["token"].as_str().expect("token").to_owned()
    }

    async fn checkout(&self, panel: &str) -> (StatusCode, Value) {
        self.post(
            "/packages/quota-guard/checkout",
            Some(panel),
            json!({ "success_url": "http://127.0.0.1/paid", "cancel_url": "http://127.0.0.1/cancelled" }),
        )
        .await
    }

    /// Buys quota-guard for `panel` through checkout and the paid webhook;
    /// returns the session id.
    async fn buy(&self, panel: &str) -> String {
        let (status, body) = self.checkout(panel).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let session = body["session_id"].as_str().expect("session").to_owned();
        let (status, answer, _, _) = self.stub.deliver(&self.stub.pay(&session)).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["effect"], "entitlement-granted", "{answer}");
        session
    }
}

fn assert_problem(status: StatusCode, body: &Value, expected: StatusCode, code: &str) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(
        body["type"],
        format!("urn:ctrl-alt-play:problem:{code}"),
        "{body}"
    );
}

fn at(unix: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix).expect("time")
}

async fn paid_flow(shop: &Shop) {
    let _publisher = shop.sell_quota_guard(1_999).await;
    let (status, page) = shop.get("/packages?paid=true", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["items"][0]["id"], "quota-guard", "{page}");
    assert_eq!(
        page["items"][0]["price"],
        json!({"amount": 1999, "currency": "eur"})
    );

    let panel = shop.panel("panel-one").await;
    let (status, list) = shop.get("/panels/me/licenses", Some(&panel)).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["licenses"], json!([]));

    // Checkout: a destination charge to the publisher with a 15% fee.
    let (status, body) = shop.checkout(&panel).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["amount"], 1999);
    assert_eq!(body["application_fee"], 300, "15% of 1999 is 299.85");
    let session = body["session_id"].as_str().expect("session").to_owned();
    assert!(session.starts_with("cs_test_"), "{session}");
    assert!(body["url"].as_str().is_some_and(|u| u.contains(&session)));
    let requests = shop.stub.requests();
    assert_eq!(requests.len(), 1);
    let form = &requests[0].form;
    assert_eq!(requests[0].path, "/v1/checkout/sessions");
    assert_eq!(form["mode"], "payment");
    assert_eq!(form["line_items[0][price_data][unit_amount]"], "1999");
    assert_eq!(form["line_items[0][price_data][currency]"], "eur");
    assert_eq!(form["payment_intent_data[application_fee_amount]"], "300");
    assert_eq!(
        form["payment_intent_data[transfer_data][destination]"],
        "acct_1GuardiansPayout"
    );
    assert_eq!(form["client_reference_id"], "panel-one");
    assert_eq!(form["metadata[cap_plugin]"], "quota-guard");
    assert_eq!(
        requests[0].authorization.as_deref(),
        Some(format!("Bearer {STRIPE_KEY}").as_str())
    );
    assert!(requests[0].idempotency_key.is_some(), "idempotent create");

    // Nothing is owned until Stripe says it was paid.
    let (_, list) = shop.get("/panels/me/licenses", Some(&panel)).await;
    assert_eq!(list["licenses"], json!([]));
    let (status, answer, _, _) = shop.stub.deliver(&shop.stub.pay(&session)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["effect"], "entitlement-granted");

    let (status, list) = shop.get("/panels/me/licenses", Some(&panel)).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let license = &list["licenses"][0];
    assert_eq!(license["plugin"], "quota-guard");
    assert_eq!(license["status"], "active");
    let token = license["token"].as_str().expect("token").to_owned();
    let expires = license["expires_at"].as_i64().expect("expiry");
    let grace_until = license["grace_until"].as_i64().expect("grace");
    assert!(license["renew_after"].as_i64().expect("renew") < expires);

    // Offline checks with the Marketplace key only.
    let key = shop.key();
    let current = at(now());
    assert_eq!(
        verify_license(&token, &key, "quota-guard", "panel-one", current),
        Ok(LicenseStatus::Valid)
    );
    assert_eq!(
        verify_license(&token, &key, "quota-guard", "panel-one", at(expires + 1)),
        Ok(LicenseStatus::InGrace {
            until: at(grace_until)
        })
    );
    assert!(matches!(
        verify_license(
            &token,
            &key,
            "quota-guard",
            "panel-one",
            at(grace_until + 1)
        ),
        Err(LicenseError::Expired { .. })
    ));
    assert!(matches!(
        verify_license(&token, &key, "quota-guard", "panel-two", current),
        Err(LicenseError::WrongInstance { .. })
    ));
    assert!(matches!(
        verify_license(&token, &key, "minecraft-paper", "panel-one", current),
        Err(LicenseError::WrongPlugin { .. })
    ));

    // Renewal works while active; buying twice is refused.
    let (status, renewed) = shop
        .post(
            "/panels/me/licenses/quota-guard/renew",
            Some(&panel),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{renewed}");
    assert_eq!(renewed["entitlement"], license["entitlement"]);
    let (status, body) = shop.checkout(&panel).await;
    assert_problem(status, &body, StatusCode::CONFLICT, "already-entitled");

    // Another Panel sees nothing of it.
    let other = shop.panel("panel-two").await;
    let (_, list) = shop.get("/panels/me/licenses", Some(&other)).await;
    assert_eq!(list["licenses"], json!([]));

    // A refund revokes: renewal refused, the listing says why.
    let (status, answer, _, _) = shop.stub.deliver(&shop.stub.refund(&session)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["effect"], "entitlement-revoked");
    let (status, body) = shop
        .post(
            "/panels/me/licenses/quota-guard/renew",
            Some(&panel),
            json!({}),
        )
        .await;
    assert_problem(status, &body, StatusCode::FORBIDDEN, "entitlement-revoked");
    let (_, list) = shop.get("/panels/me/licenses", Some(&panel)).await;
    assert_eq!(list["licenses"][0]["status"], "revoked");
    assert_eq!(list["licenses"][0]["token"], Value::Null);
    assert!(
        list["licenses"][0]["revoke_reason"]
            .as_str()
            .is_some_and(|r| r.contains("refunded")),
        "{list}"
    );
}

#[tokio::test]
async fn a_paid_plugin_is_bought_licensed_offline_and_revoked_by_a_refund_on_sqlite() {
    let shop = Shop::start(false, true).await;
    paid_flow(&shop).await;
    shop.stop().await;
}

#[tokio::test]
async fn a_paid_plugin_is_bought_licensed_offline_and_revoked_by_a_refund_on_postgres() {
    let shop = Shop::start(true, true).await;
    paid_flow(&shop).await;
    shop.stop().await;
}

#[tokio::test]
async fn a_lost_dispute_revokes_the_entitlement_and_a_won_one_does_not() {
    let shop = Shop::start(false, true).await;
    shop.sell_quota_guard(500).await;
    let panel = shop.panel("panel-disputed").await;
    let session = shop.buy(&panel).await;
    let (status, answer, _, _) = shop
        .stub
        .deliver(&shop.stub.dispute_closed(&session, "won"))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["effect"], "ignored");
    let (status, _) = shop
        .post(
            "/panels/me/licenses/quota-guard/renew",
            Some(&panel),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, answer, _, _) = shop
        .stub
        .deliver(&shop.stub.dispute_closed(&session, "lost"))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["effect"], "entitlement-revoked");
    let (status, body) = shop
        .post(
            "/panels/me/licenses/quota-guard/renew",
            Some(&panel),
            json!({}),
        )
        .await;
    assert_problem(status, &body, StatusCode::FORBIDDEN, "entitlement-revoked");
    shop.stop().await;
}

#[tokio::test]
async fn the_webhook_refuses_a_bad_signature_a_stale_timestamp_and_no_signature() {
    let shop = Shop::start(false, true).await;
    shop.sell_quota_guard(500).await;
    let panel = shop.panel("panel-forged").await;
    let (_, body) = shop.checkout(&panel).await;
    let session = body["session_id"].as_str().expect("session").to_owned();
    let event = shop.stub.pay(&session);
    let bytes = serde_json::to_vec(&event).expect("JSON");

    let forged = StripeStub::signature("whsec_someone_else", now(), &bytes);
    let (status, body) = shop.stub.deliver_raw(&bytes, Some(&forged)).await;
    assert_problem(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid-webhook-signature",
    );

    let stale = StripeStub::signature(WEBHOOK_SECRET, now() - 301, &bytes);
    let (status, body) = shop.stub.deliver_raw(&bytes, Some(&stale)).await;
    assert_problem(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid-webhook-signature",
    );
    assert!(
        body["detail"].as_str().is_some_and(|d| d.contains("300")),
        "{body}"
    );

    let (status, body) = shop.stub.deliver_raw(&bytes, None).await;
    assert_problem(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid-webhook-signature",
    );

    // The body signed, then one byte changed (the signature is over the raw bytes).
    let good = StripeStub::signature(WEBHOOK_SECRET, now(), &bytes);
    let mut tampered = bytes.clone();
    let last = tampered.len() - 1;
    tampered.insert(last, b' ');
    let (status, body) = shop.stub.deliver_raw(&tampered, Some(&good)).await;
    assert_problem(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid-webhook-signature",
    );

    // None of that granted anything; the genuine delivery does.
    let (_, list) = shop.get("/panels/me/licenses", Some(&panel)).await;
    assert_eq!(list["licenses"], json!([]));
    let (status, answer) = shop.stub.deliver_raw(&bytes, Some(&good)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["effect"], "entitlement-granted");
    shop.stop().await;
}

#[tokio::test]
async fn a_replayed_event_is_acknowledged_and_changes_nothing() {
    let shop = Shop::start(false, true).await;
    shop.sell_quota_guard(500).await;
    let panel = shop.panel("panel-replayed").await;
    let (_, body) = shop.checkout(&panel).await;
    let session = body["session_id"].as_str().expect("session").to_owned();
    let paid = shop.stub.pay(&session);
    let (status, first, bytes, signature) = shop.stub.deliver(&paid).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["duplicate"], false);
    let (status, again) = shop.stub.deliver_raw(&bytes, Some(&signature)).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["effect"], "duplicate");

    // A refund, then the paid event again: still revoked, not re-granted.
    let (_, answer, _, _) = shop.stub.deliver(&shop.stub.refund(&session)).await;
    assert_eq!(answer["effect"], "entitlement-revoked");
    let (status, again) = shop.stub.deliver_raw(&bytes, Some(&signature)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["duplicate"], true);
    // The same payment under a new event id does not create a second entitlement.
    let mut resent = paid.clone();
    resent["id"] = json!("evt_resent_under_a_new_id");
    let (_, answer, _, _) = shop.stub.deliver(&resent).await;
    assert_eq!(answer["effect"], "unchanged");
    let (_, list) = shop.get("/panels/me/licenses", Some(&panel)).await;
    assert_eq!(list["licenses"].as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(list["licenses"][0]["status"], "revoked");
    shop.stop().await;
}

#[tokio::test]
async fn an_unknown_event_type_is_acknowledged_with_200_and_ignored() {
    let shop = Shop::start(false, true).await;
    let published = shop
        .stub
        .event("plan.created", json!({"id": "plan_1", "object": "plan"}));
    let (status, answer, _, _) = shop.stub.deliver(&published).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["effect"], "ignored");
    assert_eq!(answer["duplicate"], false);
    shop.stop().await;
}

#[tokio::test]
async fn prices_rules_and_checkout_refusals_are_problem_documents() {
    let shop = Shop::start(false, true).await;
    let publisher = shop.publish_quota_guard("pricers").await;
    let panel = shop.panel("panel-shopper").await;

    // Free by default: not for sale, listed as free.
    let (status, body) = shop.checkout(&panel).await;
    assert_problem(status, &body, StatusCode::CONFLICT, "not-for-sale");
    let (_, page) = shop.get("/packages?paid=false", None).await;
    assert_eq!(page["items"][0]["id"], "quota-guard");
    assert_eq!(page["items"][0]["price"], Value::Null);

    // Validation, ownership and authentication.
    let (status, body) = shop
        .put(
            "/packages/quota-guard/price",
            &publisher,
            json!({ "amount": 0, "currency": "EURO", "version": "x" }),
        )
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    );
    assert_eq!(body["errors"].as_array().map(Vec::len), Some(3), "{body}");
    let (status, body) = shop
        .put(
            "/packages/quota-guard/price",
            &publisher,
            json!({ "amount": 100, "currency": "usd", "version": "9.9.9" }),
        )
        .await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "not-found");
    let (status, body) = shop
        .post("/publishers", None, json!({ "name": "intruder" }))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let intruder = body["token"].as_str().expect("token").to_owned();
    let (status, body) = shop
        .put(
            "/packages/quota-guard/price",
            &intruder,
            json!({ "amount": 100, "currency": "usd" }),
        )
        .await;
    assert_problem(status, &body, StatusCode::FORBIDDEN, "not-owner");
    let (status, body) = shop
        .put(
            "/packages/quota-guard/price",
            &panel,
            json!({ "amount": 100, "currency": "usd" }),
        )
        .await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED, "unauthenticated");
    let (status, body) = shop
        .post(
            "/packages/quota-guard/checkout",
            Some(&publisher),
            json!({
        "success_url": "http://127.0.0.1/a", "cancel_url": "http://127.0.0.1/b" }),
        )
        .await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED, "unauthenticated");

    // A version's own price wins over the package's; both show.
    let (status, body) = shop
        .put(
            "/packages/quota-guard/price",
            &publisher,
            json!({ "amount": 1000, "currency": "usd" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = shop
        .put(
            "/packages/quota-guard/price",
            &publisher,
            json!({ "amount": 700, "currency": "usd", "version": "1.0.0" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["prices"].as_array().map(Vec::len), Some(2), "{body}");
    let (_, view) = shop.get("/packages/quota-guard", None).await;
    assert_eq!(view["paid"], true);
    assert_eq!(view["price"]["amount"], 700);
    assert_eq!(view["versions"][0]["price"]["amount"], 700);

    // No payout account: cannot be bought yet.
    let (status, body) = shop.checkout(&panel).await;
    assert_problem(
        status,
        &body,
        StatusCode::CONFLICT,
        "payouts-not-configured",
    );
    let (status, body) = shop
        .put(
            "/publishers/me/payouts",
            &publisher,
            json!({ "stripe_account": "bank 1" }),
        )
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    );
    let (status, _) = shop
        .put(
            "/publishers/me/payouts",
            &publisher,
            json!({ "stripe_account": "acct_1Pricers" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // Stripe refusing is a 502; bad URLs a 422.
    shop.stub.fail_with(Some(400));
    let (status, body) = shop.checkout(&panel).await;
    assert_problem(
        status,
        &body,
        StatusCode::BAD_GATEWAY,
        "payment-provider-error",
    );
    shop.stub.fail_with(None);
    let (status, body) = shop
        .post(
            "/packages/quota-guard/checkout",
            Some(&panel),
            json!({ "success_url": "javascript:alert(1)", "cancel_url": "/relative" }),
        )
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    );
    let (status, body) = shop.checkout(&panel).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["amount"], 700);
    assert_eq!(body["application_fee"], 105);

    // Clearing prices makes it free again.
    for query in ["?version=1.0.0", ""] {
        let (status, body) = shop
            .call(
                reqwest::Method::DELETE,
                &format!("/packages/quota-guard/price{query}"),
                Some(&publisher),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (_, page) = shop.get("/packages?paid=true", None).await;
    assert_eq!(page["total"], 0, "{page}");

    // The endpoints are documented.
    let (_, doc) = shop.get("/openapi.json", None).await;
    for path in [
        "/api/v1/packages/{id}/price",
        "/api/v1/packages/{id}/checkout",
        "/api/v1/billing/stripe/webhook",
        "/api/v1/panels",
        "/api/v1/panels/me/licenses",
        "/api/v1/panels/me/licenses/{plugin}/renew",
        "/api/v1/publishers/me/payouts",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} is documented");
    }
    shop.stop().await;
}

#[tokio::test]
async fn without_billing_configured_the_billing_endpoints_answer_503() {
    let shop = Shop::start(false, false).await;
    let panel = shop.panel("panel-nobilling").await;
    let (status, body) = shop.get("/panels/me/licenses", Some(&panel)).await;
    assert_problem(
        status,
        &body,
        StatusCode::SERVICE_UNAVAILABLE,
        "billing-disabled",
    );
    let (status, body) = shop.stub.deliver_raw(b"{}", Some("t=1,v1=00")).await;
    assert_problem(
        status,
        &body,
        StatusCode::SERVICE_UNAVAILABLE,
        "billing-disabled",
    );
    shop.stop().await;
}
