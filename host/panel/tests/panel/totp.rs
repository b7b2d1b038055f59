//! The TOTP second factor over real HTTP on every database, with the real
//! `local-password` plugin as first factor: enrollment, logins that need a
//! code, replay refusal, single-use recovery codes, lockout after wrong
//! codes, and turning TOTP off.

use std::time::Duration;

use cap_panel::identity::rate_limit::Rule;
use cap_panel::identity::{IdentityOptions, RateLimits};

use serde_json::{Value, json};

use crate::identity::{ADMIN_PASSWORD, IdentityPanel, token};
use crate::support::{TestDb, client, code_at, expect_problem, on_every_database, wrong_code};

pub(crate) async fn send(
    p: &IdentityPanel,
    method: reqwest::Method,
    path: &str,
    bearer: Option<&str>,
    body: Option<Value>,
) -> reqwest::Response {
    let mut request = client().request(method, p.url(path));
    if let Some(bearer) = bearer {
        request = request.bearer_auth(bearer);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.expect("request")
}

/// Enrolled TOTP: the admin's access token, the secret, the code that
/// confirmed it and the recovery codes.
pub(crate) struct Enrolled {
    pub(crate) access: String,
    pub(crate) secret: String,
    pub(crate) confirm_code: String,
    pub(crate) recovery_codes: Vec<String>,
}

/// Turns TOTP on for the admin, checking each step on the way.
pub(crate) async fn enroll(p: &IdentityPanel) -> Enrolled {
    let access = token(&p.login_ok("admin", ADMIN_PASSWORD).await, "access_token");
    let response = send(
        p,
        reqwest::Method::POST,
        "/api/v1/account/totp",
        Some(&access),
        None,
    )
    .await;
    assert_eq!(response.status(), 201);
    let begun: Value = response.json().await.expect("JSON");
    let secret = token(&begun, "secret");
    assert!(secret.len() >= 32, "160 bits in base32: {secret}");
    let url = token(&begun, "otpauth_url");
    assert!(
        url.starts_with("otpauth://totp/Ctrl-Alt-Play:admin?"),
        "{url}"
    );
    assert!(url.contains(&format!("secret={secret}")), "{url}");
    assert_eq!(begun["digits"], 6);
    assert_eq!(begun["period"], 30);

    let status: Value = p
        .get("/api/v1/account/totp", &access)
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        status,
        json!({ "enabled": false, "pending": true, "recovery_codes_remaining": 0 })
    );
    // Not on yet: the password alone still logs in.
    assert_eq!(p.login("admin", ADMIN_PASSWORD).await.status(), 200);

    let response = send(
        p,
        reqwest::Method::POST,
        "/api/v1/account/totp/confirm",
        Some(&access),
        Some(json!({ "code": wrong_code(&secret) })),
    )
    .await;
    let problem = expect_problem(response, 422, "validation-failed").await;
    assert_eq!(problem["errors"][0]["field"], "code");

    let confirm_code = code_at(&secret, 0);
    let response = send(
        p,
        reqwest::Method::POST,
        "/api/v1/account/totp/confirm",
        Some(&access),
        Some(json!({ "code": confirm_code })),
    )
    .await;
    assert_eq!(response.status(), 200);
    let confirmed: Value = response.json().await.expect("JSON");
    let recovery_codes: Vec<String> = confirmed["recovery_codes"]
        .as_array()
        .expect("recovery codes")
        .iter()
        .map(|c| c.as_str().expect("a string").to_owned())
        .collect();
    assert_eq!(recovery_codes.len(), 10);

    let status: Value = p
        .get("/api/v1/account/totp", &access)
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        status,
        json!({ "enabled": true, "pending": false, "recovery_codes_remaining": 10 })
    );
    assert!(!status.to_string().contains(&secret));
    Enrolled {
        access,
        secret,
        confirm_code,
        recovery_codes,
    }
}

/// Logs the admin in with the password: expects `202` and a challenge, no
/// tokens.
pub(crate) async fn challenge(p: &IdentityPanel) -> String {
    let response = p.login("admin", ADMIN_PASSWORD).await;
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["second_factor_required"], true, "{body:#}");
    assert!(body.get("access_token").is_none(), "{body:#}");
    assert!(body.get("refresh_token").is_none(), "{body:#}");
    assert_eq!(body["expires_in"], 300);
    let challenge = token(&body, "challenge");
    assert!(challenge.starts_with("capc_"), "{challenge}");
    challenge
}

pub(crate) async fn second_factor(
    p: &IdentityPanel,
    challenge: &str,
    factor: Value,
) -> reqwest::Response {
    let mut body = json!({ "challenge": challenge });
    if let (Some(body), Some(factor)) = (body.as_object_mut(), factor.as_object()) {
        body.extend(factor.clone());
    }
    send(
        p,
        reqwest::Method::POST,
        "/api/v1/auth/login/second-factor",
        None,
        Some(body),
    )
    .await
}

async fn audit_kinds(p: &IdentityPanel, access: &str, kind: &str) -> Vec<Value> {
    let response = p
        .get(&format!("/api/v1/audit-log?kind={kind}"), access)
        .await;
    assert_eq!(response.status(), 200);
    let log: Value = response.json().await.expect("JSON");
    log["items"].as_array().cloned().unwrap_or_default()
}

on_every_database! {
    async fn a_login_with_totp_on_needs_the_second_factor_and_a_current_code_completes_it(db: &TestDb) {
        let p = IdentityPanel::start(db).await;
        let enrolled = enroll(&p).await;
        assert_eq!(audit_kinds(&p, &enrolled.access, "totp.enabled").await.len(), 1);
        // Enrolling again while on is refused; the secret is never shown again.
        let response = send(&p, reqwest::Method::POST, "/api/v1/account/totp", Some(&enrolled.access), None).await;
        expect_problem(response, 409, "totp-already-enabled").await;

        let challenge = challenge(&p).await;
        let response = second_factor(&p, &challenge, json!({ "code": code_at(&enrolled.secret, 1) })).await;
        assert_eq!(response.status(), 200);
        let tokens: Value = response.json().await.expect("JSON");
        assert_eq!(tokens["user"]["username"], "admin");
        let access = token(&tokens, "access_token");
        assert_eq!(p.get("/api/v1/auth/me", &access).await.status(), 200);
        assert_eq!(p.refresh(&token(&tokens, "refresh_token")).await.status(), 200);

        // The challenge worked once.
        let response = second_factor(&p, &challenge, json!({ "recovery_code": enrolled.recovery_codes[0] })).await;
        expect_problem(response, 401, "invalid-challenge").await;
        // A made-up challenge is no better.
        let response = second_factor(&p, "capc_0000", json!({ "code": "123456" })).await;
        expect_problem(response, 401, "invalid-challenge").await;
        // Exactly one factor per attempt.
        let response = second_factor(&p, &challenge, json!({})).await;
        let problem = expect_problem(response, 422, "validation-failed").await;
        assert_eq!(problem["errors"][0]["field"], "code");

        // A script's API key cannot touch the second factor.
        let response = send(
            &p,
            reqwest::Method::POST,
            "/api/v1/account/api-keys",
            Some(&access),
            Some(json!({ "name": "script", "scopes": ["audit.read"] })),
        )
        .await;
        assert_eq!(response.status(), 201);
        let key = token(&response.json::<Value>().await.expect("JSON"), "secret");
        let response = send(
            &p,
            reqwest::Method::DELETE,
            "/api/v1/account/totp",
            Some(&key),
            Some(json!({ "recovery_code": enrolled.recovery_codes[0] })),
        )
        .await;
        expect_problem(response, 403, "session-required").await;
        let status: Value = p.get("/api/v1/account/totp", &access).await.json().await.expect("JSON");
        assert_eq!(status["enabled"], true);
        assert_eq!(status["recovery_codes_remaining"], 10);
    }
}

on_every_database! {
    async fn a_replayed_code_is_refused(db: &TestDb) {
        let p = IdentityPanel::start(db).await;
        let enrolled = enroll(&p).await;

        // The code that confirmed enrollment cannot log in.
        let first = challenge(&p).await;
        let response = second_factor(&p, &first, json!({ "code": enrolled.confirm_code })).await;
        expect_problem(response, 401, "invalid-second-factor").await;

        // A fresh code does, once; the challenge survived the wrong try.
        let code = code_at(&enrolled.secret, 1);
        assert_eq!(second_factor(&p, &first, json!({ "code": code })).await.status(), 200);
        let second = challenge(&p).await;
        let response = second_factor(&p, &second, json!({ "code": code })).await;
        expect_problem(response, 401, "invalid-second-factor").await;

        // The second challenge is still open for a valid factor.
        let response = second_factor(&p, &second, json!({ "recovery_code": enrolled.recovery_codes[3] })).await;
        assert_eq!(response.status(), 200);
    }
}

on_every_database! {
    async fn a_recovery_code_works_once_in_any_case_and_is_audited(db: &TestDb) {
        let p = IdentityPanel::start(db).await;
        let enrolled = enroll(&p).await;
        let code = &enrolled.recovery_codes[0];

        let typed = format!(" {} ", code.to_uppercase());
        let response = second_factor(&p, &challenge(&p).await, json!({ "recovery_code": typed })).await;
        assert_eq!(response.status(), 200);
        let status: Value = p.get("/api/v1/account/totp", &enrolled.access).await.json().await.expect("JSON");
        assert_eq!(status["recovery_codes_remaining"], 9);
        let used = audit_kinds(&p, &enrolled.access, "totp.recovery-code-used").await;
        assert_eq!(used.len(), 1);
        assert_eq!(used[0]["data"]["remaining"], 9);

        let again = challenge(&p).await;
        let response = second_factor(&p, &again, json!({ "recovery_code": code })).await;
        expect_problem(response, 401, "invalid-second-factor").await;
        let response = second_factor(&p, &again, json!({ "recovery_code": enrolled.recovery_codes[1] })).await;
        assert_eq!(response.status(), 200);

        // Fresh codes replace the old ones, which stop working.
        let response = send(
            &p,
            reqwest::Method::POST,
            "/api/v1/account/totp/recovery-codes",
            Some(&enrolled.access),
            Some(json!({ "code": code_at(&enrolled.secret, 1) })),
        )
        .await;
        assert_eq!(response.status(), 200);
        let fresh: Value = response.json().await.expect("JSON");
        let fresh_codes = fresh["recovery_codes"].as_array().expect("codes");
        assert_eq!(fresh_codes.len(), 10);
        assert!(!fresh_codes.iter().any(|c| enrolled.recovery_codes.iter().any(|old| c == old)));
        let status: Value = p.get("/api/v1/account/totp", &enrolled.access).await.json().await.expect("JSON");
        assert_eq!(status["recovery_codes_remaining"], 10);
        let third = challenge(&p).await;
        let response = second_factor(&p, &third, json!({ "recovery_code": enrolled.recovery_codes[2] })).await;
        expect_problem(response, 401, "invalid-second-factor").await;
        let response = second_factor(&p, &third, json!({ "recovery_code": fresh_codes[0] })).await;
        assert_eq!(response.status(), 200);
    }
}

on_every_database! {
    async fn wrong_codes_lock_the_second_factor_even_for_the_right_code(db: &TestDb) {
        let p = IdentityPanel::start(db).await;
        let enrolled = enroll(&p).await;
        let challenge = challenge(&p).await;
        let wrong = wrong_code(&enrolled.secret);
        for _ in 0..5 {
            let response = second_factor(&p, &challenge, json!({ "code": wrong })).await;
            expect_problem(response, 401, "invalid-second-factor").await;
        }
        let response = second_factor(&p, &challenge, json!({ "code": code_at(&enrolled.secret, 1) })).await;
        let retry_after: u64 = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .expect("a Retry-After header");
        assert!(retry_after > 60, "{retry_after}");
        expect_problem(response, 423, "account-locked").await;
        // Recovery codes wait too, and so does turning TOTP off.
        let response = second_factor(&p, &challenge, json!({ "recovery_code": enrolled.recovery_codes[0] })).await;
        expect_problem(response, 423, "account-locked").await;
        let response = send(
            &p,
            reqwest::Method::DELETE,
            "/api/v1/account/totp",
            Some(&enrolled.access),
            Some(json!({ "recovery_code": enrolled.recovery_codes[0] })),
        )
        .await;
        expect_problem(response, 423, "account-locked").await;
        assert_eq!(audit_kinds(&p, &enrolled.access, "totp.locked").await.len(), 1);
    }
}

on_every_database! {
    async fn turning_totp_off_needs_a_valid_factor_and_then_the_password_is_enough(db: &TestDb) {
        let p = IdentityPanel::start(db).await;
        let enrolled = enroll(&p).await;
        let off = |body: Value| {
            send(&p, reqwest::Method::DELETE, "/api/v1/account/totp", Some(&enrolled.access), Some(body))
        };
        let response = off(json!({ "code": wrong_code(&enrolled.secret) })).await;
        expect_problem(response, 403, "invalid-second-factor").await;
        let response = off(json!({ "code": "1", "recovery_code": "x" })).await;
        let problem = expect_problem(response, 422, "validation-failed").await;
        assert_eq!(problem["errors"][0]["field"], "recovery_code");
        assert_eq!(off(json!({ "code": code_at(&enrolled.secret, 1) })).await.status(), 204);
        let response = off(json!({ "recovery_code": enrolled.recovery_codes[0] })).await;
        expect_problem(response, 409, "totp-not-enabled").await;

        assert_eq!(audit_kinds(&p, &enrolled.access, "totp.disabled").await.len(), 1);
        let tokens = p.login_ok("admin", ADMIN_PASSWORD).await;
        assert!(tokens["access_token"].is_string());
        let status: Value = p.get("/api/v1/account/totp", &enrolled.access).await.json().await.expect("JSON");
        assert_eq!(status, json!({ "enabled": false, "pending": false, "recovery_codes_remaining": 0 }));
    }
}

#[tokio::test]
async fn second_factor_attempts_are_rate_limited_per_account_with_retry_after() {
    let db = TestDb::sqlite().await;
    let options = IdentityOptions {
        rate_limits: RateLimits {
            second_factor_per_account: Rule::new(2, Duration::from_secs(60)),
            ..RateLimits::default()
        },
        ..IdentityOptions::default()
    };
    let p = IdentityPanel::start_with(&db, options).await;
    let enrolled = enroll(&p).await;
    let challenge = challenge(&p).await;
    let wrong = wrong_code(&enrolled.secret);
    for _ in 0..2 {
        let response = second_factor(&p, &challenge, json!({ "code": wrong })).await;
        expect_problem(response, 401, "invalid-second-factor").await;
    }
    let response = second_factor(
        &p,
        &challenge,
        json!({ "code": code_at(&enrolled.secret, 1) }),
    )
    .await;
    assert!(response.headers().get("retry-after").is_some());
    expect_problem(response, 429, "rate-limited").await;
}
