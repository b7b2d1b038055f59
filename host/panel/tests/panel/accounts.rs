//! User administration beyond creating users, over real HTTP on every
//! database: passwords an administrator sets (with a change required at
//! the next sign-in), one-time invitation and reset links, the Panel's
//! SMTP settings, and mail sent through a real SMTP server (Python's
//! `aiosmtpd`, started on loopback per test, its Maildir read back).

use reqwest::Method;
use serde_json::{Value, json};

use crate::identity::{ADMIN_PASSWORD, IdentityPanel, token};
use crate::support::smtp::{Smtp, TestCa, link_token};
use crate::support::{TestDb, expect_problem, free_port, on_every_database};
use crate::totp::send;

/// Points the Panel's mail at `smtp`, plain SMTP.
pub(crate) async fn configure_mail(p: &IdentityPanel, admin: &str, port: u16) {
    configure_secure_mail(p, admin, port, "none").await;
}

/// Creates a user without any password; returns its id.
pub(crate) async fn create_user(
    p: &IdentityPanel,
    admin: &str,
    username: &str,
    email: Option<&str>,
) -> String {
    let mut body = json!({ "username": username });
    if let Some(email) = email {
        body["email"] = json!(email);
    }
    let response = send(p, Method::POST, "/api/v1/users", Some(admin), Some(body)).await;
    assert_eq!(response.status(), 201, "creating {username}");
    token(&response.json::<Value>().await.expect("JSON"), "id")
}

async fn link(
    p: &IdentityPanel,
    method: Method,
    token: &str,
    body: Option<Value>,
) -> reqwest::Response {
    send(
        p,
        method,
        &format!("/api/v1/account-links/{token}"),
        None,
        body,
    )
    .await
}

fn admin_login(p: &IdentityPanel) -> impl std::future::Future<Output = Value> + '_ {
    p.login_ok("admin", ADMIN_PASSWORD)
}

on_every_database! {
    async fn an_admin_sets_a_password_and_the_user_must_change_it_before_anything_else(db: &TestDb) {
        let p = IdentityPanel::start(db).await;
        let admin = token(&admin_login(&p).await, "access_token");
        let carol = create_user(&p, &admin, "carol", None).await;
        // Without a password nobody can sign in as carol.
        expect_problem(p.login("carol", "Carols-First-Pass-2024").await, 401, "invalid-credentials").await;

        // The provider's policy judges the password, in its own words.
        let weak = send(&p, Method::PUT, &format!("/api/v1/users/{carol}/password"), Some(&admin),
            Some(json!({ "password": "short" }))).await;
        let problem = expect_problem(weak, 422, "validation-failed").await;
        assert_eq!(problem["errors"][0]["field"], "password", "{problem:#}");

        let set = send(&p, Method::PUT, &format!("/api/v1/users/{carol}/password"), Some(&admin),
            Some(json!({ "password": "Carols-First-Pass-2024", "must_change": true }))).await;
        assert_eq!(set.status(), 204);
        let detail: Value = p.get(&format!("/api/v1/users/{carol}"), &admin).await.json().await.expect("JSON");
        assert_eq!(detail["identities"][0]["provider"], "local-password", "{detail:#}");
        assert_eq!(detail["must_change_password"], true);

        let tokens = p.login_ok("carol", "Carols-First-Pass-2024").await;
        assert_eq!(tokens["user"]["password_change_required"], true, "{tokens:#}");
        let access = token(&tokens, "access_token");
        expect_problem(p.get("/api/v1/servers", &access).await, 403, "password-change-required").await;
        let me = p.get("/api/v1/auth/me", &access).await;
        assert_eq!(me.status(), 200);

        let changed = send(&p, Method::PUT, "/api/v1/account/password", Some(&access), Some(json!({
            "current_password": "Carols-First-Pass-2024",
            "new_password": "Carols-Own-Choice-2025",
        }))).await;
        assert_eq!(changed.status(), 204);
        assert_eq!(p.get("/api/v1/account/api-keys", &access).await.status(), 200);
        let tokens = p.login_ok("carol", "Carols-Own-Choice-2025").await;
        assert_eq!(tokens["user"]["password_change_required"], false);

        // An administrator's reset ends the user's sessions.
        let reset = send(&p, Method::PUT, &format!("/api/v1/users/{carol}/password"), Some(&admin),
            Some(json!({ "password": "Reset-By-Admin-2026" }))).await;
        assert_eq!(reset.status(), 204);
        expect_problem(p.get("/api/v1/servers", &access).await, 401, "unauthenticated").await;
        expect_problem(p.login("carol", "Carols-Own-Choice-2025").await, 401, "invalid-credentials").await;
        p.login_ok("carol", "Reset-By-Admin-2026").await;

        // Nobody sets their own password this way.
        let admin_id = token(&p.get("/api/v1/auth/me", &admin).await.json::<Value>().await.expect("JSON")["user"], "id");
        let own = send(&p, Method::PUT, &format!("/api/v1/users/{admin_id}/password"), Some(&admin),
            Some(json!({ "password": "Another-Admin-Pass-1" }))).await;
        expect_problem(own, 422, "validation-failed").await;
        // A user without admin.users sets nobody's.
        let carol_access = token(&p.login_ok("carol", "Reset-By-Admin-2026").await, "access_token");
        let denied = send(&p, Method::PUT, &format!("/api/v1/users/{admin_id}/password"), Some(&carol_access),
            Some(json!({ "password": "Stolen-Admin-Pass-1" }))).await;
        expect_problem(denied, 403, "forbidden").await;
    }
}

on_every_database! {
    async fn an_invitation_is_mailed_sets_the_first_password_and_works_once(db: &TestDb) {
        let p = IdentityPanel::start(db).await;
        let smtp = Smtp::accepting().await;
        let admin = token(&admin_login(&p).await, "access_token");
        configure_mail(&p, &admin, smtp.port).await;
        let dave = create_user(&p, &admin, "dave", Some("dave@example.test")).await;

        let response = send(&p, Method::POST, &format!("/api/v1/users/{dave}/invitation"), Some(&admin),
            Some(json!({ "send_mail": true, "expires_in_hours": 24 }))).await;
        assert_eq!(response.status(), 201);
        let invitation: Value = response.json().await.expect("JSON");
        assert_eq!(invitation["mail"], "sent", "{invitation:#}");
        assert_eq!(invitation["purpose"], "invitation");
        let url = invitation["url"].as_str().expect("a URL");
        assert!(url.starts_with(&p.url("/#/link/capl_")), "{url}");

        let mail = smtp.message(1).await;
        assert!(mail.contains("To: dave@example.test"), "{mail}");
        assert!(mail.contains("Username: dave"), "{mail}");
        let token_in_mail = link_token(&mail);
        assert_eq!(token_in_mail, link_token(url));

        let info = link(&p, Method::GET, &token_in_mail, None).await;
        assert_eq!(info.status(), 200);
        let info: Value = info.json().await.expect("JSON");
        assert_eq!((info["purpose"].as_str(), info["username"].as_str()), (Some("invitation"), Some("dave")));

        // A password the provider refuses does not use the link up.
        let weak = link(&p, Method::POST, &token_in_mail, Some(json!({ "password": "dave" }))).await;
        expect_problem(weak, 422, "validation-failed").await;
        let set = link(&p, Method::POST, &token_in_mail, Some(json!({ "password": "Daves-Chosen-Pass-2024" }))).await;
        assert_eq!(set.status(), 204);
        let tokens = p.login_ok("dave", "Daves-Chosen-Pass-2024").await;
        assert_eq!(tokens["user"]["password_change_required"], false);

        // Reused, forged: refused, and the password stays.
        let again = link(&p, Method::POST, &token_in_mail, Some(json!({ "password": "Someone-Elses-Pass-1" }))).await;
        expect_problem(again, 410, "link-used").await;
        expect_problem(link(&p, Method::GET, &token_in_mail, None).await, 410, "link-used").await;
        let forged = format!("capl_{}", "0".repeat(64));
        expect_problem(link(&p, Method::POST, &forged, Some(json!({ "password": "Someone-Elses-Pass-1" }))).await, 404, "link-not-found").await;
        p.login_ok("dave", "Daves-Chosen-Pass-2024").await;

        // A newer invitation replaces an unused older one.
        let erin = create_user(&p, &admin, "erin", None).await;
        let first: Value = send(&p, Method::POST, &format!("/api/v1/users/{erin}/invitation"), Some(&admin), Some(json!({}))).await.json().await.expect("JSON");
        assert_eq!(first["mail"], "not-requested");
        let second: Value = send(&p, Method::POST, &format!("/api/v1/users/{erin}/invitation"), Some(&admin), Some(json!({}))).await.json().await.expect("JSON");
        expect_problem(link(&p, Method::GET, &link_token(first["url"].as_str().expect("a URL")), None).await, 404, "link-not-found").await;
        assert_eq!(link(&p, Method::GET, &link_token(second["url"].as_str().expect("a URL")), None).await.status(), 200);

        // Bad requests name their field.
        let long = send(&p, Method::POST, &format!("/api/v1/users/{erin}/invitation"), Some(&admin), Some(json!({ "expires_in_hours": 721 }))).await;
        let problem = expect_problem(long, 422, "validation-failed").await;
        assert_eq!(problem["errors"][0]["field"], "expires_in_hours");
        let no_email = send(&p, Method::POST, &format!("/api/v1/users/{erin}/invitation"), Some(&admin), Some(json!({ "send_mail": true }))).await;
        let problem = expect_problem(no_email, 422, "validation-failed").await;
        assert_eq!(problem["errors"][0]["field"], "send_mail");
    }
}

on_every_database! {
    async fn an_expired_invitation_is_refused_and_sets_nothing(db: &TestDb) {
        let p = IdentityPanel::start(db).await;
        let admin = token(&admin_login(&p).await, "access_token");
        let frank = create_user(&p, &admin, "frank", None).await;
        let expired = cap_panel::identity::links::issue(
            p.panel.state().db(),
            &frank,
            cap_panel::identity::links::Purpose::Invitation,
            time::Duration::seconds(-1),
            false,
            &cap_panel::db::Actor::system(),
        )
        .await
        .expect("a link");
        expect_problem(link(&p, Method::GET, &expired.token, None).await, 410, "link-expired").await;
        let set = link(&p, Method::POST, &expired.token, Some(json!({ "password": "Franks-Late-Pass-2024" }))).await;
        expect_problem(set, 410, "link-expired").await;
        expect_problem(p.login("frank", "Franks-Late-Pass-2024").await, 401, "invalid-credentials").await;
    }
}

on_every_database! {
    async fn a_forgotten_password_is_reset_by_mail_once_without_telling_who_exists(db: &TestDb) {
        let p = IdentityPanel::start(db).await;
        let smtp = Smtp::accepting().await;
        let admin = token(&admin_login(&p).await, "access_token");
        configure_mail(&p, &admin, smtp.port).await;
        let gina = create_user(&p, &admin, "gina", Some("Gina@Example.test")).await;
        let set = send(&p, Method::PUT, &format!("/api/v1/users/{gina}/password"), Some(&admin),
            Some(json!({ "password": "Ginas-Forgotten-Pass-1" }))).await;
        assert_eq!(set.status(), 204);
        let session = token(&p.login_ok("gina", "Ginas-Forgotten-Pass-1").await, "access_token");

        let forgot = |login: &'static str| {
            let p = &p;
            async move { send(p, Method::POST, "/api/v1/auth/password-reset", None, Some(json!({ "login": login }))).await }
        };
        // Unknown accounts answer exactly like known ones, and get no mail.
        assert_eq!(forgot("nobody").await.status(), 202);
        assert_eq!(forgot("gina@example.test").await.status(), 202);
        let mail = smtp.message(1).await;
        assert!(mail.contains("To: Gina@Example.test"), "{mail}");
        assert!(mail.contains("reset the password of gina"), "{mail}");
        let reset = link_token(&mail);
        let info: Value = link(&p, Method::GET, &reset, None).await.json().await.expect("JSON");
        assert_eq!(info["purpose"], "reset");

        let done = link(&p, Method::POST, &reset, Some(json!({ "password": "Ginas-New-Pass-2025" }))).await;
        assert_eq!(done.status(), 204);
        expect_problem(p.login("gina", "Ginas-Forgotten-Pass-1").await, 401, "invalid-credentials").await;
        p.login_ok("gina", "Ginas-New-Pass-2025").await;
        // The reset ended the sessions of the old password.
        expect_problem(p.get("/api/v1/servers", &session).await, 401, "unauthenticated").await;
        let twice = link(&p, Method::POST, &reset, Some(json!({ "password": "Ginas-Third-Pass-2026" }))).await;
        expect_problem(twice, 410, "link-used").await;
        assert_eq!(smtp.messages().len(), 1, "only gina got mail");
    }
}

on_every_database! {
    async fn mail_that_fails_leaves_the_invitation_usable_and_says_why(db: &TestDb) {
        let p = IdentityPanel::start(db).await;
        let admin = token(&admin_login(&p).await, "access_token");
        let hank = create_user(&p, &admin, "hank", Some("hank@example.test")).await;
        let path = format!("/api/v1/users/{hank}/invitation");
        let invite = || send(&p, Method::POST, &path, Some(&admin), Some(json!({ "send_mail": true })));

        // No mail settings yet.
        let response = invite().await;
        assert_eq!(response.status(), 201);
        let invitation: Value = response.json().await.expect("JSON");
        assert_eq!(invitation["mail"], "failed: the Panel has no mail settings", "{invitation:#}");
        let test = send(&p, Method::POST, "/api/v1/mail/test", Some(&admin), Some(json!({ "to": "ops@example.test" }))).await;
        expect_problem(test, 409, "mail-not-configured").await;

        // A server that refuses the recipient.
        let refusing = Smtp::refusing().await;
        configure_mail(&p, &admin, refusing.port).await;
        let invitation: Value = invite().await.json().await.expect("JSON");
        let mail = invitation["mail"].as_str().expect("a mail outcome");
        assert!(mail.starts_with("failed: the SMTP server refused the message") && mail.contains("550"), "{mail}");
        let test = send(&p, Method::POST, "/api/v1/mail/test", Some(&admin), Some(json!({ "to": "ops@example.test" }))).await;
        let problem = expect_problem(test, 502, "mail-failed").await;
        assert!(problem["detail"].as_str().is_some_and(|d| d.contains("550")), "{problem:#}");

        // A server nobody listens on.
        drop(refusing);
        configure_mail(&p, &admin, free_port()).await;
        let invitation: Value = invite().await.json().await.expect("JSON");
        let mail = invitation["mail"].as_str().expect("a mail outcome");
        assert!(mail.starts_with("failed: the SMTP server could not be reached"), "{mail}");

        // The invitation still works.
        let token = link_token(invitation["url"].as_str().expect("a URL"));
        let set = link(&p, Method::POST, &token, Some(json!({ "password": "Hanks-Chosen-Pass-2024" }))).await;
        assert_eq!(set.status(), 204);
        p.login_ok("hank", "Hanks-Chosen-Pass-2024").await;
    }
}

on_every_database! {
    async fn mail_settings_are_checked_keep_their_password_sealed_and_send_a_test(db: &TestDb) {
        let p = IdentityPanel::start(db).await;
        let smtp = Smtp::accepting().await;
        let admin = token(&admin_login(&p).await, "access_token");
        expect_problem(p.get("/api/v1/mail", &admin).await, 404, "not-found").await;

        let put = |body: Value| send(&p, Method::PUT, "/api/v1/mail", Some(&admin), Some(body));
        let problem = expect_problem(put(json!({
            "host": "smtp.example.test", "port": 25, "security": "ssl", "from": "panel@example.test",
        })).await, 422, "validation-failed").await;
        assert_eq!(problem["errors"][0]["field"], "security");
        let problem = expect_problem(put(json!({
            "host": "smtp.example.test", "port": 25, "security": "none", "from": "panel",
            "username": "panel", "password": "over-the-wire",
        })).await, 422, "validation-failed").await;
        let fields: Vec<&str> = problem["errors"].as_array().expect("errors").iter().filter_map(|e| e["field"].as_str()).collect();
        assert_eq!(fields, ["security", "from"], "{problem:#}");

        let stored = put(json!({
            "host": "127.0.0.1", "port": smtp.port, "security": "none", "from": "Panel <panel@example.test>",
            "username": "panel", "password": "loopback-only",
        })).await;
        assert_eq!(stored.status(), 200);
        let shown: Value = p.get("/api/v1/mail", &admin).await.json().await.expect("JSON");
        assert_eq!(shown["has_password"], true, "{shown:#}");
        assert!(!shown.to_string().contains("loopback-only"));
        // An absent password keeps the stored one; null removes it.
        let kept: Value = put(json!({
            "host": "127.0.0.1", "port": smtp.port, "security": "none", "from": "Panel <panel@example.test>",
            "username": "panel",
        })).await.json().await.expect("JSON");
        assert_eq!(kept["has_password"], true);
        let removed: Value = put(json!({
            "host": "127.0.0.1", "port": smtp.port, "security": "none", "from": "Panel <panel@example.test>",
            "password": null,
        })).await.json().await.expect("JSON");
        assert_eq!(removed["has_password"], false);

        let test = send(&p, Method::POST, "/api/v1/mail/test", Some(&admin), Some(json!({ "to": "ops@example.test" }))).await;
        assert_eq!(test.status(), 204);
        let mail = smtp.message(1).await;
        assert!(mail.contains("To: ops@example.test") && mail.contains("its mail settings work"), "{mail}");
        let no_address = send(&p, Method::POST, "/api/v1/mail/test", Some(&admin), Some(json!({}))).await;
        let problem = expect_problem(no_address, 422, "validation-failed").await;
        assert_eq!(problem["errors"][0]["field"], "to");

        assert_eq!(send(&p, Method::DELETE, "/api/v1/mail", Some(&admin), None).await.status(), 204);
        expect_problem(p.get("/api/v1/mail", &admin).await, 404, "not-found").await;
    }
}

/// Points the Panel's mail at 127.0.0.1:`port` with `security`.
async fn configure_secure_mail(p: &IdentityPanel, admin: &str, port: u16, security: &str) {
    let response = send(
        p,
        Method::PUT,
        "/api/v1/mail",
        Some(admin),
        Some(json!({
            "host": "127.0.0.1",
            "port": port,
            "security": security,
            "from": "Panel <panel@example.test>",
        })),
    )
    .await;
    assert_eq!(response.status(), 200, "setting mail");
}

/// Sends the Panel's test mail.
async fn test_mail(p: &IdentityPanel, admin: &str) -> reqwest::Response {
    let body = json!({ "to": "ops@example.test" });
    send(
        p,
        Method::POST,
        "/api/v1/mail/test",
        Some(admin),
        Some(body),
    )
    .await
}

#[tokio::test]
async fn mail_goes_over_starttls_and_tls_to_a_server_whose_certificate_the_panel_trusts() {
    let db = TestDb::sqlite().await;
    let ca = TestCa::new();
    let config = cap_panel::config::Config {
        mail_roots: Some(ca.root()),
        ..db.config()
    };
    let p = IdentityPanel::start_configured(config).await;
    let admin = token(&admin_login(&p).await, "access_token");

    let starttls = Smtp::accepting_tls(false, &ca.cert(), &ca.key()).await;
    configure_secure_mail(&p, &admin, starttls.port, "starttls").await;
    assert_eq!(test_mail(&p, &admin).await.status(), 204);
    let mail = starttls.message(1).await;
    assert!(mail.contains("To: ops@example.test"), "{mail}");

    let tls = Smtp::accepting_tls(true, &ca.cert(), &ca.key()).await;
    configure_secure_mail(&p, &admin, tls.port, "tls").await;
    assert_eq!(test_mail(&p, &admin).await.status(), 204);
    let mail = tls.message(1).await;
    assert!(mail.contains("its mail settings work"), "{mail}");

    // STARTTLS asked of a server that does not offer it: nothing is sent
    // in the clear.
    let plain = Smtp::accepting().await;
    configure_secure_mail(&p, &admin, plain.port, "starttls").await;
    let problem = expect_problem(test_mail(&p, &admin).await, 502, "mail-failed").await;
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("could not be reached")),
        "{problem:#}"
    );
    assert!(plain.messages().is_empty());
}

#[tokio::test]
async fn mail_is_not_sent_to_a_server_whose_certificate_no_trusted_root_issued() {
    let db = TestDb::sqlite().await;
    let ca = TestCa::new();
    let p = IdentityPanel::start(&db).await;
    let admin = token(&admin_login(&p).await, "access_token");
    for implicit in [false, true] {
        let smtp = Smtp::accepting_tls(implicit, &ca.cert(), &ca.key()).await;
        let security = if implicit { "tls" } else { "starttls" };
        configure_secure_mail(&p, &admin, smtp.port, security).await;
        let problem = expect_problem(test_mail(&p, &admin).await, 502, "mail-failed").await;
        let detail = problem["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains("certificate") || detail.contains("UnknownIssuer"),
            "{security}: {problem:#}"
        );
        assert!(smtp.messages().is_empty(), "{security}");
    }
}

#[test]
fn a_mail_roots_file_that_is_missing_too_large_broken_or_holds_no_certificate_stops_the_panel_from_starting()
 {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let not_pem = dir.path().join("roots.pem");
    std::fs::write(&not_pem, "just some text\n").expect("writing");
    let missing = dir.path().join("missing.pem");
    let broken = dir.path().join("broken.pem");
    std::fs::write(
        &broken,
        "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
    )
    .expect("writing");
    let huge = dir.path().join("huge.pem");
    std::fs::write(&huge, "#".repeat((1 << 20) + 1)).expect("writing");
    for (path, says) in [
        (not_pem, "holds no certificate"),
        (missing, "cannot be read"),
        (broken, "is not PEM"),
        (huge, "is larger than"),
    ] {
        let flags = cap_panel::config::ConfigLayer {
            mail_roots: Some(path.clone()),
            ..Default::default()
        };
        let error = cap_panel::config::Config::load(flags, []).expect_err("refused");
        let text = error.to_string();
        assert!(
            text.contains(&path.display().to_string()) && text.contains(says),
            "{text}"
        );
    }
}
