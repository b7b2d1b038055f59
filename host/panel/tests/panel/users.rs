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
pub(crate) async fn create_linked_user(
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

pub(crate) async fn create_role(
    p: &IdentityPanel,
    admin: &str,
    name: &str,
    permissions: Value,
) -> String {
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
        let role = create_role(&p, &admin, "moderators", json!(["control.console", "activity.read"])).await;
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
        // Her password was revoked at its provider: it opens nothing.
        expect_problem(p.login("carol", "Carols-Password-2024").await, 401, "invalid-credentials").await;
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

        let id = create_role(&p, &admin, "helpers", json!(["audit.read", "activity.read", "audit.read"])).await;
        let response = send(&p, Method::POST, "/api/v1/roles", Some(&admin), Some(json!({ "name": "helpers", "permissions": [] }))).await;
        let problem = expect_problem(response, 422, "validation-failed").await;
        assert_eq!(problem["errors"][0]["field"], "name");

        let path = format!("/api/v1/roles/{id}");
        let response = send(&p, Method::PATCH, &path, Some(&admin), Some(json!({ "permissions": ["bogus"] }))).await;
        let problem = expect_problem(response, 422, "validation-failed").await;
        assert_eq!(problem["errors"][0]["field"], "permissions[0]");
        // A permission that was removed from the catalogue is as unknown.
        let response = send(&p, Method::PATCH, &path, Some(&admin),
            Some(json!({ "permissions": ["control.start", "server.read"] }))).await;
        let problem = expect_problem(response, 422, "validation-failed").await;
        assert_eq!(problem["errors"][0]["field"], "permissions[1]", "{problem:#}");
        let role: Value = p.get(&path, &admin).await.json().await.expect("JSON");
        assert_eq!(role["permissions"], json!(["activity.read", "audit.read"]), "unchanged");

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
            Some(json!({ "permissions": ["activity.read"] }))).await;
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

/// The admin's access token, and Bob's, who holds `admin.users` and
/// `control.start` through a role the admin gave him (and whose id is
/// returned too).
async fn a_user_manager(p: &IdentityPanel) -> (String, String, String) {
    let admin = token(&p.login_ok("admin", ADMIN_PASSWORD).await, "access_token");
    let role = create_role(
        p,
        &admin,
        "user managers",
        json!(["admin.users", "control.start"]),
    )
    .await;
    let bob_id = create_linked_user(
        p,
        &admin,
        "bob",
        "Bobs-Password-2024",
        json!({ "roles": [role] }),
    )
    .await;
    let bob = token(
        &p.login_ok("bob", "Bobs-Password-2024").await,
        "access_token",
    );
    (admin, bob, bob_id)
}

on_every_database! {
    async fn admin_users_cannot_put_a_permission_it_does_not_hold_or_an_admin_only_one_into_a_role(db: &TestDb) {
        let p = IdentityPanel::start(db).await;
        let (admin, bob, _) = a_user_manager(&p).await;
        let new_role = |name: &str, permissions: Value| {
            let body = json!({ "name": name, "permissions": permissions });
            let (p, bob) = (&p, &bob);
            async move { send(p, Method::POST, "/api/v1/roles", Some(bob), Some(body)).await }
        };
        let problem = expect_problem(new_role("consoles", json!(["control.start", "control.console"])).await, 403, "permission-not-held").await;
        assert!(problem["detail"].as_str().is_some_and(|d| d.contains("control.console") && !d.contains("control.start")), "{problem:#}");
        // Admin-only ones, even the one he holds himself.
        let problem = expect_problem(new_role("nodes", json!(["admin.nodes"])).await, 403, "admin-only-permission").await;
        assert!(problem["detail"].as_str().is_some_and(|d| d.contains("admin.nodes")), "{problem:#}");
        expect_problem(new_role("more managers", json!(["admin.users"])).await, 403, "admin-only-permission").await;
        expect_problem(new_role("auditors", json!(["audit.read", "settings.write"])).await, 403, "admin-only-permission").await;
        let roles: Value = p.get("/api/v1/roles", &admin).await.json().await.expect("JSON");
        assert_eq!(roles["items"].as_array().map(Vec::len), Some(1), "nothing was written: {roles:#}");

        // What he holds, he may grant; an edit may not add more.
        let response = new_role("starters", json!(["control.start"])).await;
        assert_eq!(response.status(), 201);
        let id = token(&response.json::<Value>().await.expect("JSON"), "id");
        let path = format!("/api/v1/roles/{id}");
        let response = send(&p, Method::PATCH, &path, Some(&bob), Some(json!({ "permissions": ["control.start", "control.console"] }))).await;
        expect_problem(response, 403, "permission-not-held").await;
        let response = send(&p, Method::PATCH, &path, Some(&bob), Some(json!({ "permissions": ["admin.servers"] }))).await;
        expect_problem(response, 403, "admin-only-permission").await;
        let role: Value = p.get(&path, &admin).await.json().await.expect("JSON");
        assert_eq!(role["permissions"], json!(["control.start"]), "unchanged");

        // A role the admin filled stays editable in what Bob may do: he
        // renames it and takes permissions away, keeping the others.
        let admins_role = create_role(&p, &admin, "operators", json!(["control.console", "control.start", "admin.nodes"])).await;
        let path = format!("/api/v1/roles/{admins_role}");
        let response = send(&p, Method::PATCH, &path, Some(&bob),
            Some(json!({ "name": "ops", "permissions": ["control.console", "admin.nodes"] }))).await;
        assert_eq!(response.status(), 200);
        let role: Value = response.json().await.expect("JSON");
        assert_eq!(role["permissions"], json!(["admin.nodes", "control.console"]));
        // The administrator may grant anything.
        let response = send(&p, Method::PATCH, &path, Some(&admin), Some(json!({ "permissions": ["admin.plugins", "settings.write"] }))).await;
        assert_eq!(response.status(), 200);
    }
}

on_every_database! {
    async fn admin_users_cannot_assign_a_role_granting_more_than_it_holds_nor_change_its_own_roles(db: &TestDb) {
        let p = IdentityPanel::start(db).await;
        let (admin, bob, bob_id) = a_user_manager(&p).await;
        let consoles = create_role(&p, &admin, "consoles", json!(["control.console"])).await;
        let nodes = create_role(&p, &admin, "nodes", json!(["admin.nodes"])).await;
        let starters = create_role(&p, &admin, "starters", json!(["control.start"])).await;
        let carol = create_linked_user(&p, &admin, "carol", "Carols-Password-2024", json!({})).await;

        // To himself: never, not even a role he could grant.
        let me = format!("/api/v1/users/{bob_id}");
        let response = send(&p, Method::PATCH, &me, Some(&bob), Some(json!({ "roles": [consoles] }))).await;
        expect_problem(response, 403, "own-roles").await;
        let detail: Value = p.get(&me, &admin).await.json().await.expect("JSON");
        let mine = detail["roles"].clone();
        let mine_ids: Vec<&Value> = mine.as_array().expect("roles").iter().map(|r| &r["id"]).collect();
        let mut more = mine_ids.clone();
        let starters_value = json!(starters);
        more.push(&starters_value);
        let response = send(&p, Method::PATCH, &me, Some(&bob), Some(json!({ "roles": more }))).await;
        expect_problem(response, 403, "own-roles").await;
        // Sending his roles as they are changes nothing, so it is fine.
        let response = send(&p, Method::PATCH, &me, Some(&bob), Some(json!({ "roles": mine_ids, "display_name": "Bob" }))).await;
        assert_eq!(response.status(), 200);
        // Nor may the administrator change their own.
        let admin_me: Value = p.get("/api/v1/auth/me", &admin).await.json().await.expect("JSON");
        let admin_id = token(&admin_me["user"], "id");
        let response = send(&p, Method::PATCH, &format!("/api/v1/users/{admin_id}"), Some(&admin), Some(json!({ "roles": [starters] }))).await;
        expect_problem(response, 403, "own-roles").await;

        // To others: only roles whose permissions he may grant.
        let path = format!("/api/v1/users/{carol}");
        let response = send(&p, Method::PATCH, &path, Some(&bob), Some(json!({ "roles": [starters, consoles] }))).await;
        let problem = expect_problem(response, 403, "permission-not-held").await;
        assert!(problem["detail"].as_str().is_some_and(|d| d.contains("control.console")), "{problem:#}");
        let response = send(&p, Method::PATCH, &path, Some(&bob), Some(json!({ "roles": [nodes] }))).await;
        expect_problem(response, 403, "admin-only-permission").await;
        let response = send(&p, Method::POST, "/api/v1/users", Some(&bob),
            Some(json!({ "username": "dave", "roles": [consoles] }))).await;
        expect_problem(response, 403, "permission-not-held").await;
        let detail: Value = p.get(&path, &admin).await.json().await.expect("JSON");
        assert_eq!(detail["roles"], json!([]), "nothing was given");
        let found: Value = p.get("/api/v1/users?search=dave", &admin).await.json().await.expect("JSON");
        assert_eq!(found["items"], json!([]), "nobody was created");

        let response = send(&p, Method::PATCH, &path, Some(&bob), Some(json!({ "roles": [starters] }))).await;
        assert_eq!(response.status(), 200);
        // Roles she keeps were checked when given; taking one away is fine.
        let response = send(&p, Method::PATCH, &path, Some(&admin), Some(json!({ "roles": [starters, consoles] }))).await;
        assert_eq!(response.status(), 200);
        let response = send(&p, Method::PATCH, &path, Some(&bob), Some(json!({ "roles": [consoles] }))).await;
        assert_eq!(response.status(), 200);
        let response = send(&p, Method::POST, "/api/v1/users", Some(&bob),
            Some(json!({ "username": "dave", "roles": [starters] }))).await;
        assert_eq!(response.status(), 201);
    }
}

on_every_database! {
    async fn an_api_key_cannot_mint_or_revoke_api_keys(db: &TestDb) {
        let p = IdentityPanel::start(db).await;
        let admin = token(&p.login_ok("admin", ADMIN_PASSWORD).await, "access_token");
        let create = |bearer: String, scopes: Value| {
            let p = &p;
            async move {
                send(p, Method::POST, "/api/v1/account/api-keys", Some(&bearer),
                    Some(json!({ "name": "script", "scopes": scopes }))).await
            }
        };
        let response = create(admin.clone(), json!(["activity.read"])).await;
        assert_eq!(response.status(), 201);
        let weak: Value = response.json().await.expect("JSON");
        let weak_secret = token(&weak, "secret");
        let response = create(admin.clone(), json!(["audit.read"])).await;
        assert_eq!(response.status(), 201);
        let other = token(&response.json::<Value>().await.expect("JSON"), "id");

        // A leaked activity.read key cannot become a full-power one…
        let problem = expect_problem(create(weak_secret.clone(), json!(["admin.users", "settings.write"])).await, 403, "session-required").await;
        assert!(problem["detail"].as_str().is_some_and(|d| d.contains("log in")), "{problem:#}");
        // …nor a copy of itself, nor revoke the owner's keys (or its own).
        expect_problem(create(weak_secret.clone(), json!(["activity.read"])).await, 403, "session-required").await;
        for id in [&other, &token(&weak, "id")] {
            let response = send(&p, Method::DELETE, &format!("/api/v1/account/api-keys/{id}"), Some(&weak_secret), None).await;
            expect_problem(response, 403, "session-required").await;
        }
        let list: Value = p.get("/api/v1/account/api-keys", &admin).await.json().await.expect("JSON");
        let items = list["items"].as_array().expect("items");
        assert_eq!(items.len(), 2, "{list:#}");
        assert!(items.iter().all(|k| k["revoked_at"].is_null()), "{list:#}");
        // Listing shows no secret, so a key may still list.
        assert_eq!(p.get("/api/v1/account/api-keys", &weak_secret).await.status(), 200);
    }
}

on_every_database! {
    async fn a_new_api_keys_scopes_must_be_permissions_its_creator_holds(db: &TestDb) {
        let p = IdentityPanel::start(db).await;
        let (_, bob, _) = a_user_manager(&p).await;
        let create = |scopes: Value| {
            let (p, bob) = (&p, &bob);
            async move {
                send(p, Method::POST, "/api/v1/account/api-keys", Some(bob),
                    Some(json!({ "name": "script", "scopes": scopes }))).await
            }
        };
        let problem = expect_problem(create(json!(["control.start", "settings.write", "audit.read"])).await, 403, "permission-not-held").await;
        let detail = problem["detail"].as_str().expect("detail");
        assert!(detail.contains("audit.read, settings.write") && !detail.contains("control.start"), "{problem:#}");
        let list: Value = p.get("/api/v1/account/api-keys", &bob).await.json().await.expect("JSON");
        assert_eq!(list["items"], json!([]), "nothing was created");
        let response = create(json!(["control.start", "admin.users"])).await;
        assert_eq!(response.status(), 201, "what he holds, his key may hold");
    }
}
