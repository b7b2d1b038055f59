//! A local stand-in for Stripe's API: an axum server on `127.0.0.1:0` that
//! answers `POST /v1/checkout/sessions` with Stripe's published example
//! Checkout Session (from `fixtures3.json`) patched with the request's
//! values, records every request, and delivers webhook events — built from
//! the published `event`, `checkout.session`, `charge` and `dispute`
//! objects — signed the way Stripe signs them (`t=…,v1=` HMAC-SHA256 of
//! `<t>.<body>` with the endpoint secret).
//!
//! The fixtures file is Stripe's (MIT licensed) and lives outside the
//! repository, in `shared/stripe/fixtures3.json` beside the checkout. Its
//! path comes from `CAP_STRIPE_FIXTURES`, by default
//! `<repository>/../shared/stripe/fixtures3.json`; a missing file fails the
//! test with that message.
//!
//! The Marketplace server's tests and the Panel's tests both use it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

/// Stripe's published example objects (`resources` of `fixtures3.json`).
///
/// # Panics
///
/// When the fixtures file is missing or is not JSON.
pub fn fixtures() -> Value {
    let path = std::env::var("CAP_STRIPE_FIXTURES").unwrap_or_else(|_| {
        crate::repo_root()
            .join("../shared/stripe/fixtures3.json")
            .display()
            .to_string()
    });
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "Stripe's fixtures are missing at {path} ({e}): put Stripe's fixtures3.json there \
             (shared/stripe/ beside the repository) or set CAP_STRIPE_FIXTURES"
        )
    });
    let all: Value = serde_json::from_str(&text).expect("fixtures3.json is JSON");
    all["resources"].clone()
}

fn random_id(prefix: &str) -> String {
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes).expect("random");
    format!("{prefix}_{}", hex::encode(bytes))
}

/// A request the stub received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The request's path.
    pub path: String,
    /// Its form fields (Stripe's bracketed names as keys).
    pub form: BTreeMap<String, String>,
    /// Its `Idempotency-Key` header.
    pub idempotency_key: Option<String>,
    /// Its `Authorization` header.
    pub authorization: Option<String>,
}

#[derive(Default)]
struct Inner {
    requests: Vec<Recorded>,
    sessions: BTreeMap<String, Value>,
    /// Answers with this status and a Stripe error instead of a session.
    fail_with: Option<u16>,
}

struct Shared {
    fixtures: Value,
    inner: Mutex<Inner>,
}

/// The running stub.
pub struct StripeStub {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
    http: reqwest::Client,
    /// The endpoint secret webhook deliveries are signed with.
    pub webhook_secret: String,
    /// Where [`StripeStub::deliver`] posts events (the Marketplace's
    /// webhook URL, once it is known).
    pub webhook_url: Option<String>,
}

impl StripeStub {
    /// Starts the stub on `127.0.0.1:0`, signing webhook deliveries with
    /// `webhook_secret`.
    pub async fn start(webhook_secret: &str) -> StripeStub {
        let shared = Arc::new(Shared {
            fixtures: fixtures(),
            inner: Mutex::new(Inner::default()),
        });
        let app = Router::new()
            .route(
                "/v1/checkout/sessions",
                axum::routing::post(create_session),
            )
            .fallback(|| async {
                (
                    StatusCode::NOT_FOUND,
                    axum::Json(json!({"error": {"type": "invalid_request_error", "message": "Unrecognized request URL"}})),
                )
            })
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        StripeStub {
            addr,
            shared,
            task,
            http: reqwest::Client::new(),
            webhook_secret: webhook_secret.to_owned(),
            webhook_url: None,
        }
    }

    /// The API base for `BillingConfig::stripe_api_base`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared
            .inner
            .lock()
            .expect("stub lock")
            .requests
            .clone()
    }

    /// Makes session creation fail with `status` (a Stripe error body).
    pub fn fail_with(&self, status: Option<u16>) {
        self.shared.inner.lock().expect("stub lock").fail_with = status;
    }

    /// `Stripe-Signature` for `body` at time `t` with `secret`.
    pub fn signature(secret: &str, t: i64, body: &[u8]) -> String {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("key");
        mac.update(format!("{t}.").as_bytes());
        mac.update(body);
        format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
    }

    /// Posts `body` to the Marketplace's webhook with `signature`.
    pub async fn deliver_raw(&self, body: &[u8], signature: Option<&str>) -> (StatusCode, Value) {
        let url = self.webhook_url.as_ref().expect("webhook URL set");
        let mut request = self
            .http
            .post(url)
            .header("content-type", "application/json; charset=utf-8")
            .body(body.to_vec());
        if let Some(signature) = signature {
            request = request.header("Stripe-Signature", signature);
        }
        let response = request.send().await.expect("webhook delivery");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Signs an event now and delivers it; returns the exact bytes sent
    /// and the signature header, for replays.
    pub async fn deliver(&self, event: &Value) -> (StatusCode, Value, Vec<u8>, String) {
        let body = serde_json::to_vec(event).expect("event JSON");
        let signature = Self::signature(&self.webhook_secret, now(), &body);
        let (status, answer) = self.deliver_raw(&body, Some(&signature)).await;
        (status, answer, body, signature)
    }

    /// A published `event` object carrying `object` as `type`.
    pub fn event(&self, event_type: &str, object: Value) -> Value {
        let mut event = self.shared.fixtures["event"].clone();
        event["id"] = json!(random_id("evt"));
        event["type"] = json!(event_type);
        event["created"] = json!(now());
        event["data"] = json!({ "object": object });
        event
    }

    /// "Pays" a session: marks it complete and paid with a new
    /// PaymentIntent and returns the `checkout.session.completed` event.
    pub fn pay(&self, session_id: &str) -> Value {
        let session = {
            let mut inner = self.shared.inner.lock().expect("stub lock");
            let session = inner
                .sessions
                .get_mut(session_id)
                .unwrap_or_else(|| panic!("the stub created no session {session_id}"));
            session["status"] = json!("complete");
            session["payment_status"] = json!("paid");
            session["payment_intent"] = json!(random_id("pi"));
            session.clone()
        };
        self.event("checkout.session.completed", session)
    }

    fn payment_intent(&self, session_id: &str) -> String {
        let inner = self.shared.inner.lock().expect("stub lock");
        inner.sessions[session_id]["payment_intent"]
            .as_str()
            .expect("the session was paid")
            .to_owned()
    }

    /// A published `charge` for the paid session, fully refunded, in a
    /// `charge.refunded` event.
    pub fn refund(&self, session_id: &str) -> Value {
        let amount = {
            let inner = self.shared.inner.lock().expect("stub lock");
            inner.sessions[session_id]["amount_total"].clone()
        };
        let mut charge = self.shared.fixtures["charge"].clone();
        charge["id"] = json!(random_id("ch"));
        charge["payment_intent"] = json!(self.payment_intent(session_id));
        charge["amount"] = amount.clone();
        charge["amount_captured"] = amount.clone();
        charge["amount_refunded"] = amount;
        charge["captured"] = json!(true);
        charge["refunded"] = json!(true);
        self.event("charge.refunded", charge)
    }

    /// A published `dispute` over the paid session's charge, closed with
    /// `status`, in a `charge.dispute.closed` event.
    pub fn dispute_closed(&self, session_id: &str, status: &str) -> Value {
        let mut dispute = self.shared.fixtures["dispute"].clone();
        dispute["id"] = json!(random_id("dp"));
        dispute["charge"] = json!(random_id("ch"));
        dispute["payment_intent"] = json!(self.payment_intent(session_id));
        dispute["status"] = json!(status);
        self.event("charge.dispute.closed", dispute)
    }

    /// Stops the stub.
    pub async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64
}

async fn create_session(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form: BTreeMap<String, String> =
        serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body)
            .expect("a form body")
            .into_iter()
            .collect();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let mut inner = shared.inner.lock().expect("stub lock");
    inner.requests.push(Recorded {
        path: "/v1/checkout/sessions".into(),
        form: form.clone(),
        idempotency_key: header("idempotency-key"),
        authorization: header("authorization"),
    });
    if let Some(status) = inner.fail_with {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
        return (
            status,
            axum::Json(json!({"error": {"type": "invalid_request_error", "message": "No such destination: 'acct_x'", "param": "payment_intent_data[transfer_data][destination]"}})),
        )
            .into_response();
    }
    let field = |k: &str| form.get(k).cloned();
    let amount: i64 = field("line_items[0][price_data][unit_amount]")
        .and_then(|a| a.parse().ok())
        .expect("a unit amount");
    let quantity: i64 = field("line_items[0][quantity]")
        .and_then(|a| a.parse().ok())
        .unwrap_or(1);
    let metadata: serde_json::Map<String, Value> = form
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("metadata[")
                .and_then(|k| k.strip_suffix(']'))
                .map(|k| (k.to_owned(), json!(v)))
        })
        .collect();
    let mut session = shared.fixtures["checkout.session"].clone();
    let id = random_id("cs_test");
    let created = now();
    session["id"] = json!(id);
    session["object"] = json!("checkout.session");
    session["created"] = json!(created);
    session["expires_at"] = json!(created + 24 * 3600);
    session["livemode"] = json!(false);
    session["mode"] = json!(field("mode").unwrap_or_default());
    session["status"] = json!("open");
    session["payment_status"] = json!("unpaid");
    session["payment_intent"] = Value::Null;
    session["currency"] = json!(field("line_items[0][price_data][currency]"));
    session["amount_subtotal"] = json!(amount * quantity);
    session["amount_total"] = json!(amount * quantity);
    session["success_url"] = json!(field("success_url"));
    session["cancel_url"] = json!(field("cancel_url"));
    session["client_reference_id"] = json!(field("client_reference_id"));
    session["metadata"] = Value::Object(metadata);
    session["url"] = json!(format!("https://checkout.stripe.com/c/pay/{id}"));
    inner.sessions.insert(id, session.clone());
    axum::Json(session).into_response()
}
