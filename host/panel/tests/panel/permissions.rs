//! The permission catalogue (`cap_panel::identity::permissions`) from the
//! outside: every operation the OpenAPI document says needs one permission
//! refuses a caller lacking exactly that one, and roles and API keys
//! stored with permissions that were removed from the catalogue keep
//! loading, on every database. (Subuser grants and replay:
//! `replay::subuser_grants_naming_removed_permissions_replay_and_load_without_them`.)

use std::collections::BTreeMap;

use cap_panel::db::Actor;
use cap_panel::http::Principal;
use cap_panel::identity::permissions::Permission;
use cap_panel::identity::tokens;
use cap_panel::{Panel, RunningPanel};
use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::identity::{ADMIN_PASSWORD, IdentityPanel, token};
use crate::nodes::{call, json_of};
use crate::plugins::{PLUGIN_ADMIN, install_and_activate};
use crate::support::{TestDb, Tokens, client, expect_problem, on_every_database};
use crate::totp::send;
use crate::users::{create_linked_user, create_role};

/// The token of the caller lacking `permission` only.
fn lacking(permission: Permission) -> String {
    format!("lacks-{permission}")
}

/// The shortest value `schema` accepts: required properties only, the
/// first of every choice.
fn instance(doc: &Value, schema: &Value) -> Value {
    if let Some(reference) = schema["$ref"].as_str() {
        let pointer = reference.strip_prefix('#').expect("a local reference");
        return instance(doc, doc.pointer(pointer).expect("the reference resolves"));
    }
    for choice in ["allOf", "oneOf", "anyOf"] {
        if let Some(first) = schema[choice].as_array().and_then(|c| c.first()) {
            return instance(doc, first);
        }
    }
    if let Some(first) = schema["enum"].as_array().and_then(|e| e.first()) {
        return first.clone();
    }
    let kind = match &schema["type"] {
        Value::String(kind) => kind.as_str(),
        Value::Array(kinds) => kinds
            .iter()
            .filter_map(Value::as_str)
            .find(|k| *k != "null")
            .unwrap_or("null"),
        _ => "any",
    };
    match kind {
        "object" => {
            let mut object = Map::new();
            for name in schema["required"].as_array().into_iter().flatten() {
                let name = name.as_str().expect("a property name");
                object.insert(name.to_owned(), instance(doc, &schema["properties"][name]));
            }
            Value::Object(object)
        }
        "array" => {
            let min = schema["minItems"].as_u64().unwrap_or(0);
            Value::Array((0..min).map(|_| instance(doc, &schema["items"])).collect())
        }
        "string" => match schema["format"].as_str() {
            Some("date-time") => json!("2024-01-01T00:00:00Z"),
            Some("ip" | "ipv4") => json!("10.0.0.1"),
            _ => json!("x"),
        },
        "integer" | "number" => json!(1),
        "boolean" => json!(false),
        _ => Value::Null,
    }
}

/// `path` with its parameters filled in: the test server, the test
/// subuser, else the shortest value the parameter's schema accepts.
fn fill(doc: &Value, path: &str, operation: &Value, server: &str, user: &str) -> String {
    let mut filled = path.to_owned();
    for parameter in operation["parameters"].as_array().into_iter().flatten() {
        if parameter["in"] != "path" {
            continue;
        }
        let name = parameter["name"].as_str().expect("a name");
        let value = match name {
            "id" if path.starts_with("/api/v1/servers/") => server.to_owned(),
            "user_id" => user.to_owned(),
            _ => match instance(doc, &parameter["schema"]) {
                Value::String(s) => s,
                other => other.to_string(),
            },
        };
        filled = filled.replace(&format!("{{{name}}}"), &value);
    }
    filled
}

#[tokio::test]
async fn every_operation_refuses_a_caller_lacking_the_one_permission_it_documents() {
    let db = TestDb::sqlite().await;
    let ids = db.create_users(&["owner", "subuser"]).await;
    let (owner, subuser) = (&ids[0], &ids[1]);
    let everything = || Permission::ALL.iter().copied();
    let mut callers = vec![(
        PLUGIN_ADMIN.to_owned(),
        Principal::new("user-admin").with_permissions(everything().map(Permission::as_str)),
    )];
    // The server's owner holding every other permission: for a server
    // permission also not `admin.servers`, which gives every one of them.
    for permission in everything() {
        let held = everything().filter(|p| {
            *p != permission && !(permission.scope().is_server() && *p == Permission::AdminServers)
        });
        callers.push((
            lacking(permission),
            Principal::new(owner.as_str()).with_permissions(held.map(Permission::as_str)),
        ));
    }
    let panel = Panel::builder(db.config())
        .authenticator(Tokens::from_principals(
            callers.iter().map(|(t, p)| (t.as_str(), p.clone())),
        ))
        .bind()
        .await
        .expect("the Panel starts")
        .spawn();
    let server = owned_server(&panel, owner).await;

    let doc: Value = client()
        .get(panel.url("/api/v1/openapi.json"))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("JSON");
    let mut checked: BTreeMap<Permission, usize> = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("operations") {
            let Some([name]) = operation["x-permissions"].as_array().map(Vec::as_slice) else {
                continue;
            };
            let permission: Permission = name
                .as_str()
                .and_then(|n| n.parse().ok())
                .expect("a catalogue permission");
            let url = fill(&doc, path, operation, &server, subuser);
            let method: Method = method.to_uppercase().parse().expect("a method");
            let mut request = client()
                .request(method.clone(), panel.url(&url))
                .bearer_auth(lacking(permission));
            if let Some(content) = operation["requestBody"]["content"].as_object() {
                request = match content.get("application/json") {
                    Some(json) => request.json(&instance(&doc, &json["schema"])),
                    None => {
                        let (kind, _) = content.iter().next().expect("a content type");
                        request.header("content-type", kind).body("x")
                    }
                };
            }
            let response = request.send().await.expect("request");
            let problem = expect_problem(response, 403, "forbidden").await;
            assert!(
                problem["detail"]
                    .as_str()
                    .is_some_and(|d| d.contains(permission.as_str())),
                "{method} {url}: {problem:#}"
            );
            *checked.entry(permission).or_default() += 1;
        }
    }
    // The walk reached the admin, Panel and server routes alike.
    for permission in [
        Permission::AdminUsers,
        Permission::AdminPlugins,
        Permission::SettingsWrite,
        Permission::UserDelete,
        Permission::ServerDelete,
    ] {
        assert!(
            checked.contains_key(&permission),
            "{permission}: {checked:?}"
        );
    }
    assert!(checked.values().sum::<usize>() > 50, "{checked:?}");
    panel.stop().await.expect("stops");
}

/// A server of `owner`'s on a fresh node with `test-game`; its id.
async fn owned_server(panel: &RunningPanel, owner: &str) -> String {
    install_and_activate(panel, "test-game").await;
    let admin = Some(PLUGIN_ADMIN);
    let node = json_of(
        call(
            panel,
            Method::POST,
            "/api/v1/nodes",
            admin,
            Some(
                json!({"name": "n1", "address": "10.0.0.1", "memory_mb": 4096,
                        "disk_mb": 10000, "cpu_percent": 400}),
            ),
        )
        .await,
        201,
    )
    .await;
    let node = node["id"].as_str().expect("id");
    json_of(
        call(
            panel,
            Method::POST,
            &format!("/api/v1/nodes/{node}/allocations"),
            admin,
            Some(json!({"ip": "10.0.0.1", "ports": ["25565"]})),
        )
        .await,
        201,
    )
    .await;
    let server = json_of(
        call(
            panel,
            Method::POST,
            "/api/v1/servers",
            admin,
            Some(json!({"name": "s", "owner_id": owner, "node_id": node,
                        "game": {"plugin": "test-game"}, "variables": {"MAX_PLAYERS": "20"},
                        "limits": {"memory_mb": 1024, "disk_mb": 1000, "cpu_percent": 100}})),
        )
        .await,
        201,
    )
    .await;
    server["id"].as_str().expect("id").to_owned()
}

on_every_database! {
    async fn roles_and_api_keys_naming_removed_permissions_keep_loading_without_them(db: &TestDb) {
        let p = IdentityPanel::start(db).await;
        let admin = token(&p.login_ok("admin", ADMIN_PASSWORD).await, "access_token");
        let role = create_role(&p, &admin, "legacy", json!(["audit.read", "control.start"])).await;
        let bob_id = create_linked_user(&p, &admin, "bob", "Bobs-Password-2024",
            json!({ "roles": [role] })).await;
        // What a Panel from before the removal stored: a role naming
        // permissions that are gone, and an API key scoped to one (the data
        // layer stores scopes as given; the HTTP layer checks them).
        db.execute_raw(&format!(
            "INSERT INTO role_permissions (role_id, permission) VALUES \
             ('{role}', 'server.read')"
        ))
        .await
        .expect("stored");
        let scopes = ["audit.read".to_owned(), "server.read".to_owned()];
        let (_, key) = tokens::create_api_key(p.panel.state().db(), &bob_id, "old script",
            &scopes, &Actor::system()).await.expect("a key");

        // A restart, a login, and every read: the removed names are gone.
        let p = p.restart(db).await;
        let admin = token(&p.login_ok("admin", ADMIN_PASSWORD).await, "access_token");
        let bob = token(&p.login_ok("bob", "Bobs-Password-2024").await, "access_token");
        let me: Value = p.get("/api/v1/auth/me", &bob).await.json().await.expect("JSON");
        assert_eq!(me["permissions"], json!(["audit.read", "control.start"]), "{me:#}");
        assert_eq!(p.get("/api/v1/audit-log", &bob).await.status(), 200);
        let me: Value = p.get("/api/v1/auth/me", &key).await.json().await.expect("JSON");
        assert_eq!(me["permissions"], json!(["audit.read"]), "{me:#}");
        assert_eq!(p.get("/api/v1/audit-log", &key).await.status(), 200);
        let keys: Value = p.get("/api/v1/account/api-keys", &bob).await.json().await.expect("JSON");
        assert_eq!(keys["items"][0]["scopes"], json!(["audit.read"]), "{keys:#}");
        let roles: Value = p.get("/api/v1/roles", &admin).await.json().await.expect("JSON");
        let listed = roles["items"].as_array().expect("items").iter()
            .find(|r| r["id"] == role.as_str()).expect("the role is listed");
        assert_eq!(listed["permissions"], json!(["audit.read", "control.start"]));
        let path = format!("/api/v1/roles/{role}");
        let one: Value = p.get(&path, &admin).await.json().await.expect("JSON");
        assert_eq!(one["permissions"], json!(["audit.read", "control.start"]));
        assert_eq!(p.get(&format!("/api/v1/users/{bob_id}"), &admin).await.status(), 200);
        let catalogue: Value = p.get("/api/v1/permissions", &admin).await.json().await.expect("JSON");
        assert!(!catalogue.to_string().contains("\"server.read\""), "{catalogue:#}");

        // Renaming the role leaves its stored rows; writing its set drops
        // the removed ones.
        let sql = format!(
            "SELECT permission FROM role_permissions WHERE role_id = '{role}' ORDER BY permission");
        let stored = || db.fetch_texts(&sql);
        let response = send(&p, Method::PATCH, &path, Some(&admin), Some(json!({ "name": "legacy-2" }))).await;
        assert_eq!(response.status(), 200);
        assert_eq!(stored().await, ["audit.read", "control.start", "server.read"]);
        let response = send(&p, Method::PATCH, &path, Some(&admin),
            Some(json!({ "permissions": one["permissions"] }))).await;
        assert_eq!(response.status(), 200);
        assert_eq!(stored().await, ["audit.read", "control.start"]);

        // A request naming a removed permission is refused like any unknown one.
        let response = send(&p, Method::POST, "/api/v1/account/api-keys", Some(&bob),
            Some(json!({ "name": "new script", "scopes": ["audit.read", "server.read"] }))).await;
        let problem = expect_problem(response, 422, "validation-failed").await;
        assert_eq!(problem["errors"][0]["field"], "scopes[1]", "{problem:#}");
        p.panel.stop().await.expect("stops");
    }
}
