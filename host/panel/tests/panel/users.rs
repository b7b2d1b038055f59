//! User and role administration over real HTTP on every database: who may
//! administer, creating users linked to a provider identity, searching and
//! paging, disabling (which ends sessions and API keys), deleting, roles
//! whose permissions are checked against the registry, and resetting a
//! user's TOTP.

use cap_runtime::api::{Credentials, PasswordCredentials};
use reqwest::Method;
use serde_json::{Value, json};

use crate::identity::{ADMIN_PASSWORD, IdentityPanel, token};
use crate::support::{expect_problem, on_every_database};
use crate::totp::{challenge, enroll, send};

/// Gives `username` a `local-password` account and a Panel user linked to
/// it, created by the admin over the API; returns the user's id.
async fn create_linked_user(
    p: &IdentityPanel,
    admin: &str,
    username: &str,
    password: &str,
    extra: Value,
) -> String {
    p.plugin
        .set_password(username, password)
        .await
        .expect("the call succeeds")
        .expect("the password is accepted");
    let identity = p
        .plugin
        .authenticate(&Credentials::Password(PasswordCredentials {
            username: username.to_owned(),
            password: password.to_owned(),
            second_factor: None,
        }))
        .await
        .expect("the call succeeds")
        .expect("the credentials are right");
    let mut body = json!({
        "username": username,
        "identity": { "provider": "local-password", "subject": identity.subject },
    });
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    let response = send(p, Method::POST, "/api/v1/users", Some(admin), Some(body)).await;
    assert_eq!(response.status(), 201, "creating {username}");
    let user: Value = response.json().await.expect("JSON");
    assert_eq!(user["identities"][0]["provider"], "local-password");
    token(&user, "id")
}

async fn create_role(p: &IdentityPanel, admin: &str, name: &str, permissions: Value) -> String {
    let response = send(
        p,
        Method::POST,
        "/api/v1/roles",
        Some(admin),
        Some(json!({ "name": name, "permissions": permissions })),
    )
    .await;
    assert_eq!(response.status(), 201, "creating role {name}");
    let role: Value = response.json().await.expect("JSON");
    token(&role, "id")
}

on_every_database! {
    async fn a_user_without_admin_users_cannot_administer_users_until_a_role_grants_it(db: &TestDb) {
        let p = IdentityPanel::start(db).await;
        let admin = token(&p.login_ok("admin", ADMIN_PASSWORD).await, "access_token");
        let bob_id = create_linked_user(&p, &admin, "bob", "Bobs-Password-2024", json!({})).await;
        let bob = token(&p.login_ok("bob", "Bobs-Password-2024").await, "access_token");

        let problem = expect_problem(p.get("/api/v1/users", &bob).await, 403, "forbidden").await;
        assert!(problem["detail"].as_str().is_some_and(|d| d.contains("admin.users")));
        expect_problem(p.get("/api/v1/roles", &bob).await, 403, "forbidden").await;
        let response = send(&p, Method::POST, "/api/v1/users", Some(&bob), Some(json!({ "username": "eve" }))).await;
        expect_problem(response, 403, "forbidden").await;
        let response = crate::support::client().get(p.url("/api/v1/users")).send().await.expect("request");
        expect_problem(response, 401, "unauthenticated").await;

        let role = create_role(&p, &admin, "user managers", json!(["admin.users"])).await;
        let response = send(
            &p,
            Method::PATCH,
            &format!("/api/v1/users/{bob_id}"),
            Some(&admin),
            Some(json!({ "roles": [role] })),
        )
        .await;
        assert_eq!(response.status(), 200);
        let changed: Value = response.json().await.expect("JSON");
        assert_eq!(changed["roles"][0]["name"], "user managers");
        assert_eq!(p.get("/api/v1/users", &bob).await.status(), 200);

        // admin.users is not a way to become an administrator.
        let response = send(
            &p,
            Method::PATCH,
            &format!("/api/v1/users/{bob_id}"),
            Some(&bob),
            Some(json!({ "admin": true })),
        )
        .await;
        expect_problem(response, 403, "forbidden").await;
        let admin_id = {
            let me: Value = p.get("/api/v1/auth/me", &admin).await.json().await.expect("JSON");
            token(&me["user"], "id")
        };
        let response = send(
            &p,
            Method::PATCH,
            &format!("/api/v1/users/{admin_id}"),
            Some(&bob),
            Some(json!({ "disabled": true })),
        )
        .await;
        expect_problem(response, 403, "forbidden").await;
    }
}

on_every_database! {
    async fn an_admin_creates_searches_pages_changes_and_deletes_users(db: &TestDb) {
        let p = IdentityPanel::start(db).await;
        let admin = token(&p.login_ok("admin", ADMIN_PASSWORD).await, "access_token");
        let role = create_role(&p, &admin, "moderators", json!(["control.console", "file.read"])).await;
        let carol = create_linked_user(
            &p,
            &admin,
            "carol",
            "Carols-Password-2024",
            json!({ "email": "carol@example.org", "display_name": "Carol C.", "roles": [role] }),
        )
        .await;
        create_linked_user(&p, &admin, "dave_100%", "Daves-Password-2024", json!({})).await;

        let detail: Value = p.get(&format!("/api/v1/users/{carol}"), &admin).await.json().await.expect("JSON");
        assert_eq!(detail["username"], "carol");
        assert_eq!(detail["email"], "carol@example.org");
        assert_eq!(detail["roles"][0]["id"], role.as_str());
        assert_eq!(detail["totp_enabled"], false);
        assert_eq!(detail["disabled"], false);

        // Search is case-insensitive over username, email and display name;
        // LIKE wildcards are literal.
        let found: Value = p.get("/api/v1/users?search=EXAMPLE.ORG", &admin).await.json().await.expect("JSON");
        let names: Vec<&str> = found["items"].as_array().expect("items").iter().filter_map(|u| u["username"].as_str()).collect();
        assert_eq!(names, ["carol"]);
        let found: Value = p.get("/api/v1/users?search=%25", &admin).await.json().await.expect("JSON");
        assert_eq!(found["items"][0]["username"], "dave_100%", "{found:#}");
        assert_eq!(found["items"].as_array().map(Vec::len), Some(1), "{found:#}");

        // Three users, two per page, by username.
        let page: Value = p.get("/api/v1/users?limit=2", &admin).await.json().await.expect("JSON");
        let names: Vec<&str> = page["items"].as_array().expect("items").iter().filter_map(|u| u["username"].as_str()).collect();
        assert_eq!(names, ["admin", "carol"]);
        let cursor = token(&page, "next_cursor");
        let page: Value = p.get(&format!("/api/v1/users?limit=2&cursor={cursor}"), &admin).await.json().await.expect("JSON");
        assert_eq!(page["items"][0]["username"], "dave_100%");
        assert!(page["next_cursor"].is_null(), "{page:#}");

        // Field errors, all at once, and nothing written.
        let response = send(
            &p,
            Method::POST,
            "/api/v1/users",
            Some(&admin),
            Some(json!({ "username": "carol", "email": "not-an-email", "roles": ["rol_nope"] })),
        )
        .await;
        let problem = expect_problem(response, 422, "validation-failed").await;
        let fields: Vec<&str> = problem["errors"].as_array().expect("errors").iter().filter_map(|e| e["field"].as_str()).collect();
        assert!(fields.contains(&"username"), "{problem:#}");
        assert!(fields.contains(&"email"), "{problem:#}");
        assert!(fields.contains(&"roles[0]"), "{problem:#}");

        let response = send(
            &p,
            Method::PATCH,
            &format!("/api/v1/users/{carol}"),
            Some(&admin),
            Some(json!({ "email": null, "display_name": "Caroline", "roles": [] })),
        )
        .await;
        assert_eq!(response.status(), 200);
        let changed: Value = response.json().await.expect("JSON");
        assert!(changed["email"].is_null(), "{changed:#}");
        assert_eq!(changed["display_name"], "Caroline");
        assert_eq!(changed["roles"], json!([]));

        // Nobody deletes or disables themselves.
        let me: Value = p.get("/api/v1/auth/me", &admin).await.json().await.expect("JSON");
        let admin_id = token(&me["user"], "id");
        let response = send(&p, Method::DELETE, &format!("/api/v1/users/{admin_id}"), Some(&admin), None).await;
        expect_problem(response, 409, "conflict").await;
        let response = send(&p, Method::PATCH, &format!("/api/v1/users/{admin_id}"), Some(&admin), Some(json!({ "disabled": true }))).await;
        let problem = expect_problem(response, 422, "validation-failed").await;
        assert_eq!(problem["errors"][0]["field"], "disabled");

        let response = send(&p, Method::DELETE, &format!("/api/v1/users/{carol}"), Some(&admin), None).await;
        assert_eq!(response.status(), 204);
        expect_problem(p.get(&format!("/api/v1/users/{carol}"), &admin).await, 404, "not-found").await;
        // Her identity is free again: she cannot log in.
        expect_problem(p.login("carol", "Carols-Password-2024").await, 403, "account-not-linked").await;
        let log: Value = p.get("/api/v1/audit-log?kind=user.deleted", &admin).await.json().await.expect("JSON");
        assert_eq!(log["items"][0]["data"]["username"], "carol");
    }
}

on_every_database! {
    async fn a_disabled_user_cannot_log_in_or_use_tokens_or_api_keys(db: &TestDb) {
        let p = IdentityPanel::start(db).await;
        let admin = token(&p.login_ok("admin", ADMIN_PASSWORD).await, "access_token");
        let role = create_role(&p, &admin, "auditors", json!(["audit.read"])).await;
        let erin_id = create_linked_user(&p, &admin, "erin", "Erins-Password-2024", json!({ "roles": [role] })).await;
        let tokens = p.login_ok("erin", "Erins-Password-2024").await;
        let access = token(&tokens, "access_token");
        let refresh = token(&tokens, "refresh_token");
        let response = send(
            &p,
            Method::POST,
            "/api/v1/account/api-keys",
            Some(&access),
            Some(json!({ "name": "script", "scopes": ["audit.read"] })),
        )
        .await;
        assert_eq!(response.status(), 201);
        let key = token(&response.json::<Value>().await.expect("JSON"), "secret");
        assert_eq!(p.get("/api/v1/audit-log", &key).await.status(), 200);

        let response = send(&p, Method::PATCH, &format!("/api/v1/users/{erin_id}"), Some(&admin), Some(json!({ "disabled": true }))).await;
        assert_eq!(response.status(), 200);
        let changed: Value = response.json().await.expect("JSON");
        assert_eq!(changed["disabled"], true);

        expect_problem(p.get("/api/v1/auth/me", &access).await, 401, "unauthenticated").await;
        expect_problem(p.get("/api/v1/audit-log", &key).await, 401, "unauthenticated").await;
        expect_problem(p.refresh(&refresh).await, 401, "invalid-refresh-token").await;
        expect_problem(p.login("erin", "Erins-Password-2024").await, 403, "account-disabled").await;
        let log: Value = p.get("/api/v1/audit-log?kind=user.disabled", &admin).await.json().await.expect("JSON");
        assert_eq!(log["items"][0]["data"]["sessions_revoked"], 1, "{log:#}");
        assert_eq!(log["items"][0]["data"]["api_keys_revoked"], 1, "{log:#}");

        // Enabled again: she logs in afresh, but what she held stays revoked.
        let response = send(&p, Method::PATCH, &format!("/api/v1/users/{erin_id}"), Some(&admin), Some(json!({ "disabled": false }))).await;
        assert_eq!(response.status(), 200);
        let again = token(&p.login_ok("erin", "Erins-Password-2024").await, "access_token");
        assert_eq!(p.get("/api/v1/auth/me", &again).await.status(), 200);
        expect_problem(p.get("/api/v1/audit-log", &key).await, 401, "unauthenticated").await;
        expect_problem(p.get("/api/v1/auth/me", &access).await, 401, "unauthenticated").await;
    }
}

on_every_database! {
    async fn a_role_with_an_unknown_permission_is_rejected_with_a_field_error(db: &TestDb) {
        let p = IdentityPanel::start(db).await;
        let admin = token(&p.login_ok("admin", ADMIN_PASSWORD).await, "access_token");
        let response = send(
            &p,
            Method::POST,
            "/api/v1/roles",
            Some(&admin),
            Some(json!({ "name": "helpers", "permissions": ["audit.read", "no.such-permission"] })),
        )
        .await;
        let problem = expect_problem(response, 422, "validation-failed").await;
        assert_eq!(problem["errors"][0]["field"], "permissions[1]", "{problem:#}");
        assert_eq!(problem["errors"].as_array().map(Vec::len), Some(1), "{problem:#}");
        let roles: Value = p.get("/api/v1/roles", &admin).await.json().await.expect("JSON");
        assert_eq!(roles["items"], json!([]), "nothing was written");

        let id = create_role(&p, &admin, "helpers", json!(["audit.read", "file.read", "audit.read"])).await;
        let response = send(&p, Method::POST, "/api/v1/roles", Some(&admin), Some(json!({ "name": "helpers", "permissions": [] }))).await;
        let problem = expect_problem(response, 422, "validation-failed").await;
        assert_eq!(problem["errors"][0]["field"], "name");

        let path = format!("/api/v1/roles/{id}");
        let response = send(&p, Method::PATCH, &path, Some(&admin), Some(json!({ "permissions": ["bogus"] }))).await;
        let problem = expect_problem(response, 422, "validation-failed").await;
        assert_eq!(problem["errors"][0]["field"], "permissions[0]");
        let role: Value = p.get(&path, &admin).await.json().await.expect("JSON");
        assert_eq!(role["permissions"], json!(["audit.read", "file.read"]), "unchanged");

        let response = send(
            &p,
            Method::PATCH,
            &path,
            Some(&admin),
            Some(json!({ "name": "helpers", "description": "They help", "permissions": ["control.start"] })),
        )
        .await;
        assert_eq!(response.status(), 200);
        let role: Value = response.json().await.expect("JSON");
        assert_eq!(role["permissions"], json!(["control.start"]));
        assert_eq!(role["description"], "They help");

        let catalog: Value = p.get("/api/v1/permissions", &admin).await.json().await.expect("JSON");
        assert!(
            catalog["items"].as_array().expect("items").iter().any(|p| p["name"] == "control.console" && p["source"] == "core"),
            "{catalog:#}"
        );

        assert_eq!(send(&p, Method::DELETE, &path, Some(&admin), None).await.status(), 204);
        expect_problem(p.get(&path, &admin).await, 404, "not-found").await;
    }
}

on_every_database! {
    async fn an_admin_resets_a_users_totp_so_the_password_alone_logs_in_again(db: &TestDb) {
        let p = IdentityPanel::start(db).await;
        let enrolled = enroll(&p).await;
        challenge(&p).await;
        let me: Value = p.get("/api/v1/auth/me", &enrolled.access).await.json().await.expect("JSON");
        let admin_id = token(&me["user"], "id");
        let detail: Value = p.get(&format!("/api/v1/users/{admin_id}"), &enrolled.access).await.json().await.expect("JSON");
        assert_eq!(detail["totp_enabled"], true);
        let path = format!("/api/v1/users/{admin_id}/totp");
        assert_eq!(send(&p, Method::DELETE, &path, Some(&enrolled.access), None).await.status(), 204);
        expect_problem(send(&p, Method::DELETE, &path, Some(&enrolled.access), None).await, 404, "not-found").await;
        assert_eq!(p.login("admin", ADMIN_PASSWORD).await.status(), 200);
        let log: Value = p.get("/api/v1/audit-log?kind=totp.reset", &enrolled.access).await.json().await.expect("JSON");
        assert_eq!(log["items"].as_array().map(Vec::len), Some(1));
    }
}

on_every_database! {
    async fn a_caller_loses_a_permission_and_then_access_on_the_very_next_request(db: &TestDb) {
        let p = IdentityPanel::start(db).await;
        let admin = token(&p.login_ok("admin", ADMIN_PASSWORD).await, "access_token");
        let role = create_role(&p, &admin, "auditors", json!(["audit.read"])).await;
        let bob_id = create_linked_user(&p, &admin, "bob", "Bobs-Password-2024", json!({ "roles": [role] })).await;
        let bob = token(&p.login_ok("bob", "Bobs-Password-2024").await, "access_token");
        // Twice, so that a Panel caching who a session is has cached it.
        for _ in 0..2 {
            assert_eq!(p.get("/api/v1/audit-log", &bob).await.status(), 200);
        }

        let response = send(&p, Method::PATCH, &format!("/api/v1/roles/{role}"), Some(&admin),
            Some(json!({ "permissions": ["file.read"] }))).await;
        assert_eq!(response.status(), 200);
        let problem = expect_problem(p.get("/api/v1/audit-log", &bob).await, 403, "forbidden").await;
        assert!(problem["detail"].as_str().is_some_and(|d| d.contains("audit.read")));
        assert_eq!(p.get("/api/v1/auth/me", &bob).await.status(), 200);

        let response = send(&p, Method::PATCH, &format!("/api/v1/users/{bob_id}"), Some(&admin),
            Some(json!({ "disabled": true }))).await;
        assert_eq!(response.status(), 200);
        expect_problem(p.get("/api/v1/auth/me", &bob).await, 401, "unauthenticated").await;
    }
}
