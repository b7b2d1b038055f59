//! `/api/v1/nodes` and `POST /api/v1/agents/register` over HTTP: nodes
//! and allocations, registration tokens, and the node token the Agent link
//! authenticates with.

use cap_panel::http::Principal;
use cap_panel::servers::{authenticate_node, nodes};
use cap_panel::{Panel, RunningPanel};
use serde_json::{Value, json};

use crate::support::{TestDb, Tokens, client, expect_problem, on_every_database};

/// Token of a node administrator.
pub(crate) const NODE_ADMIN: &str = "node-admin-token";
/// Token of a caller without `admin.nodes`.
pub(crate) const NOBODY: &str = "nobody-token";

async fn start(db: &TestDb) -> RunningPanel {
    Panel::builder(db.config())
        .authenticator(Tokens::from_principals([
            (
                NODE_ADMIN,
                Principal::new("user-node-admin").with_permissions(["admin.nodes", "audit.read"]),
            ),
            (
                NOBODY,
                Principal::new("user-nobody").with_permissions(["server.create"]),
            ),
        ]))
        .bind()
        .await
        .expect("the Panel starts")
        .spawn()
}

/// Sends `method path` with `body` as `token`.
pub(crate) async fn call(
    panel: &RunningPanel,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> reqwest::Response {
    let mut request = client().request(method, panel.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.expect("request")
}

/// Asserts `response` has `status` and returns its JSON body.
pub(crate) async fn json_of(response: reqwest::Response, status: u16) -> Value {
    let url = response.url().clone();
    let actual = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!(actual, status, "{url}: {body:#}");
    body
}

/// The documented registration request with `token`.
pub(crate) fn registration(token: &str) -> Value {
    json!({
        "token": token,
        "agentId": "6f1c2f0e-5b7a-4b8e-9d7c-1f2e3d4c5b6a",
        "version": "0.1.0",
        "capabilities": ["native-process"],
        "supportedGames": [{"plugin": "minecraft-paper", "version": "1.0.0"}],
        "resourceLimits": {"memoryMb": 8192, "diskMb": 100000, "cpuPercent": 400},
        "healthEndpoint": "http://127.0.0.1:8081/health"
    })
}

on_every_database! {
    async fn an_admin_manages_nodes_and_their_allocations(db: &TestDb) {
        let panel = start(db).await;
        use reqwest::Method;

        let response = call(&panel, Method::POST, "/api/v1/nodes", Some(NOBODY),
            Some(json!({"name": "n", "address": "a"}))).await;
        expect_problem(response, 403, "forbidden").await;

        let response = call(&panel, Method::POST, "/api/v1/nodes", Some(NODE_ADMIN),
            Some(json!({"name": " ", "address": "has space", "memory_mb": 4096}))).await;
        let problem = expect_problem(response, 422, "validation-failed").await;
        let fields: Vec<&str> = problem["errors"].as_array().expect("errors").iter()
            .filter_map(|e| e["field"].as_str()).collect();
        assert_eq!(fields, ["name", "address"]);

        let node = json_of(call(&panel, Method::POST, "/api/v1/nodes", Some(NODE_ADMIN),
            Some(json!({"name": "fra-1", "address": "fra-1.example.net", "memory_mb": 4096,
                        "disk_mb": 20000, "cpu_percent": 200}))).await, 201).await;
        let id = node["id"].as_str().expect("id").to_owned();
        assert!(id.starts_with("node_"), "{id}");
        assert_eq!(node["registered"], false);
        assert_eq!(node["online"], false);
        assert_eq!(node["memory_mb"], 4096);

        // A NUL in a text field is a field error, not a broken length
        // check in the database (SQLite's length() stops at a NUL).
        let response = call(&panel, Method::PATCH, &format!("/api/v1/nodes/{id}"),
            Some(NODE_ADMIN), Some(json!({"address": "\u{0}e<\u{0}", "name": "a\u{0}b"}))).await;
        let problem = expect_problem(response, 422, "validation-failed").await;
        let fields: Vec<&str> = problem["errors"].as_array().expect("errors").iter()
            .filter_map(|e| e["field"].as_str()).collect();
        assert_eq!(fields, ["name", "address"], "{problem:#}");

        let response = call(&panel, Method::POST, "/api/v1/nodes", Some(NODE_ADMIN),
            Some(json!({"name": "fra-1", "address": "other"}))).await;
        expect_problem(response, 409, "node-name-taken").await;

        json_of(call(&panel, Method::POST, "/api/v1/nodes", Some(NODE_ADMIN),
            Some(json!({"name": "fra-2", "address": "fra-2.example.net"}))).await, 201).await;
        let page = json_of(call(&panel, Method::GET, "/api/v1/nodes?limit=1", Some(NODE_ADMIN), None).await, 200).await;
        assert_eq!(page["items"][0]["name"], "fra-1");
        let cursor = page["next_cursor"].as_str().expect("a second page").to_owned();
        let page = json_of(call(&panel, Method::GET, &format!("/api/v1/nodes?limit=1&cursor={cursor}"),
            Some(NODE_ADMIN), None).await, 200).await;
        assert_eq!(page["items"][0]["name"], "fra-2");
        assert_eq!(page["next_cursor"], Value::Null);

        let patched = json_of(call(&panel, Method::PATCH, &format!("/api/v1/nodes/{id}"), Some(NODE_ADMIN),
            Some(json!({"address": "10.0.0.5", "memory_mb": 8192}))).await, 200).await;
        assert_eq!(patched["address"], "10.0.0.5");
        assert_eq!(patched["memory_mb"], 8192);
        assert_eq!(patched["usage"]["servers"], 0);

        // Ports and ranges, all or nothing.
        let allocations = format!("/api/v1/nodes/{id}/allocations");
        let added = json_of(call(&panel, Method::POST, &allocations, Some(NODE_ADMIN),
            Some(json!({"ip": "10.0.0.5", "ports": [25565, "25570-25572"]}))).await, 201).await;
        assert_eq!(added["items"].as_array().map(Vec::len), Some(4));
        let response = call(&panel, Method::POST, &allocations, Some(NODE_ADMIN),
            Some(json!({"ip": "10.0.0.5", "ports": ["25572-25580"]}))).await;
        let problem = expect_problem(response, 409, "allocation-exists").await;
        assert!(problem["detail"].as_str().is_some_and(|d| d.contains("25572")), "{problem:#}");
        let response = call(&panel, Method::POST, &allocations, Some(NODE_ADMIN),
            Some(json!({"ip": "not-an-ip", "ports": ["9-5"]}))).await;
        let problem = expect_problem(response, 422, "validation-failed").await;
        assert_eq!(problem["errors"][0]["field"], "ports[0]");
        let listed = json_of(call(&panel, Method::GET, &format!("{allocations}?state=free"),
            Some(NODE_ADMIN), None).await, 200).await;
        let ports: Vec<u64> = listed["items"].as_array().expect("items").iter()
            .filter_map(|a| a["port"].as_u64()).collect();
        assert_eq!(ports, [25565, 25570, 25571, 25572]);
        let assigned = json_of(call(&panel, Method::GET, &format!("{allocations}?state=assigned"),
            Some(NODE_ADMIN), None).await, 200).await;
        assert_eq!(assigned["items"], json!([]));
        let response = call(&panel, Method::GET, &format!("{allocations}?state=maybe"), Some(NODE_ADMIN), None).await;
        expect_problem(response, 422, "validation-failed").await;

        let response = call(&panel, Method::DELETE, &format!("{allocations}/10.0.0.5/25565"), Some(NODE_ADMIN), None).await;
        assert_eq!(response.status(), 204);
        let response = call(&panel, Method::DELETE, &format!("{allocations}/10.0.0.5/25565"), Some(NODE_ADMIN), None).await;
        expect_problem(response, 404, "not-found").await;

        let response = call(&panel, Method::DELETE, &format!("/api/v1/nodes/{id}"), Some(NODE_ADMIN), None).await;
        assert_eq!(response.status(), 204);
        let response = call(&panel, Method::GET, &format!("/api/v1/nodes/{id}"), Some(NODE_ADMIN), None).await;
        expect_problem(response, 404, "not-found").await;
        let remaining = nodes::list_allocations(panel.state().db(), &id, nodes::AllocationFilter::All)
            .await.expect("list");
        assert!(remaining.is_empty(), "allocations go with their node");

        let log = json_of(call(&panel, Method::GET,
            &format!("/api/v1/audit-log?subject_type=node&subject_id={id}"), Some(NODE_ADMIN), None).await, 200).await;
        let kinds: Vec<&str> = log["items"].as_array().expect("items").iter()
            .filter_map(|e| e["kind"].as_str()).collect();
        assert_eq!(kinds, ["node.deleted", "node.allocation.deleted", "node.allocations.added",
            "node.updated", "node.created"]);
        panel.stop().await.expect("stops");
    }
}

on_every_database! {
    async fn an_agent_registers_once_and_then_authenticates_with_its_node_token(db: &TestDb) {
        let panel = start(db).await;
        use reqwest::Method;
        let node = json_of(call(&panel, Method::POST, "/api/v1/nodes", Some(NODE_ADMIN),
            Some(json!({"name": "ams-1", "address": "ams-1.example.net"}))).await, 201).await;
        let id = node["id"].as_str().expect("id").to_owned();
        let tokens = format!("/api/v1/nodes/{id}/registration-tokens");

        let response = call(&panel, Method::POST, &tokens, Some(NOBODY), Some(json!({}))).await;
        expect_problem(response, 403, "forbidden").await;
        let response = call(&panel, Method::POST, &tokens, Some(NODE_ADMIN),
            Some(json!({"expires_in_seconds": 0}))).await;
        expect_problem(response, 422, "validation-failed").await;
        let issued = json_of(call(&panel, Method::POST, &tokens, Some(NODE_ADMIN), Some(json!({}))).await, 201).await;
        let token = issued["token"].as_str().expect("token").to_owned();
        assert!(token.starts_with("capreg_") && token.len() == 7 + 64, "{token}");

        // A malformed request is refused field by field and does not spend the token.
        let mut bad = registration(&token);
        bad["agentId"] = json!("not-a-uuid");
        bad["resourceLimits"]["memoryMb"] = json!(-1);
        let response = call(&panel, Method::POST, "/api/v1/agents/register", None, Some(bad)).await;
        let problem = expect_problem(response, 422, "validation-failed").await;
        assert!(problem["errors"].to_string().contains("resourceLimits.memoryMb"), "{problem:#}");
        let mut bad = registration(&token);
        bad["healthEndpoint"] = json!("not a url");
        let response = call(&panel, Method::POST, "/api/v1/agents/register", None, Some(bad)).await;
        let problem = expect_problem(response, 422, "validation-failed").await;
        assert_eq!(problem["errors"][0]["field"], "healthEndpoint");

        let registered = json_of(call(&panel, Method::POST, "/api/v1/agents/register", None,
            Some(registration(&token))).await, 201).await;
        assert_eq!(registered["nodeId"], id.as_str());
        assert_eq!(registered["heartbeatSeconds"], 15);
        assert_eq!(registered["panelUrl"], format!("http://{}", panel.local_addr()));
        let node_token = registered["nodeToken"].as_str().expect("nodeToken").to_owned();
        assert!(node_token.starts_with("capnode_"), "{node_token}");

        // The attack: replaying the registration token.
        let response = call(&panel, Method::POST, "/api/v1/agents/register", None,
            Some(registration(&token))).await;
        expect_problem(response, 409, "registration-token-used").await;
        let response = call(&panel, Method::POST, "/api/v1/agents/register", None,
            Some(registration("capreg_0000"))).await;
        expect_problem(response, 401, "registration-token-invalid").await;

        let db_handle = panel.state().db();
        assert_eq!(authenticate_node(db_handle, &node_token).await.expect("query"), Some(id.clone()));
        assert_eq!(authenticate_node(db_handle, "capnode_forged").await.expect("query"), None);
        assert_eq!(authenticate_node(db_handle, &token).await.expect("query"), None);

        let node = json_of(call(&panel, Method::GET, &format!("/api/v1/nodes/{id}"), Some(NODE_ADMIN), None).await, 200).await;
        assert_eq!(node["registered"], true);
        assert_eq!(node["memory_mb"], 8192);
        assert_eq!(node["cpu_percent"], 400);
        assert_eq!(node["agent_version"], "0.1.0");
        assert_eq!(node["capabilities"], json!(["native-process"]));
        assert_eq!(node["supported_games"], json!([{"plugin": "minecraft-paper", "version": "1.0.0"}]));
        let text = format!("{node}{}", json_of(call(&panel, Method::GET, "/api/v1/audit-log?limit=200",
            Some(NODE_ADMIN), None).await, 200).await);
        assert!(!text.contains(&node_token[8..]) && !text.contains(&token[7..]), "a token leaked: {text}");

        // The link marks it online and seen.
        nodes::set_online(db_handle, &id, true).await.expect("online");
        nodes::mark_seen(db_handle, &id).await.expect("seen");
        let node = nodes::get(db_handle, &id).await.expect("get").expect("exists");
        assert!(node.online && node.last_seen_at.is_some());

        // An Agent restarted with another runtime says so in its hello: the
        // node takes it over, with an event that replay gives back.
        let container: Vec<String> = vec!["container".into(), "os-linux".into(), "arch-amd64".into()];
        assert!(nodes::set_capabilities(db_handle, &id, &container).await.expect("changed"));
        assert!(!nodes::set_capabilities(db_handle, &id, &container).await.expect("the same again"),
            "the same capabilities are no change");
        let bad = nodes::set_capabilities(db_handle, &id, &["Native Process".to_owned()]).await;
        assert!(matches!(bad, Err(cap_panel::servers::ServersError::Invalid(_))), "{bad:?}");
        let node = json_of(call(&panel, Method::GET, &format!("/api/v1/nodes/{id}"), Some(NODE_ADMIN), None).await, 200).await;
        assert_eq!(node["capabilities"], json!(container), "a refused report changes nothing");
        let changes = db.fetch_texts("SELECT kind FROM events WHERE kind = 'node.capabilities.changed'").await;
        assert_eq!(changes.len(), 1, "{changes:?}");
        cap_panel::db::replay::replay(db_handle).await.expect("replay");
        assert_eq!(nodes::get(db_handle, &id).await.expect("get").expect("exists").capabilities, container);

        // An expired token is refused with its own code.
        let issued = json_of(call(&panel, Method::POST, &tokens, Some(NODE_ADMIN), Some(json!({}))).await, 201).await;
        let token = issued["token"].as_str().expect("token").to_owned();
        db.execute_raw(&format!("UPDATE node_registration_tokens SET expires_at = 1 WHERE id = '{}'",
            issued["id"].as_str().expect("id"))).await.expect("expire it");
        let response = call(&panel, Method::POST, "/api/v1/agents/register", None, Some(registration(&token))).await;
        expect_problem(response, 401, "registration-token-expired").await;
        // The old node token still works: the failed attempt changed nothing.
        assert_eq!(authenticate_node(db_handle, &node_token).await.expect("query"), Some(id));
        panel.stop().await.expect("stops");
    }
}

/// Creates a node as the node admin and issues a registration token for it.
async fn registration_token(panel: &RunningPanel) -> String {
    use reqwest::Method;
    let node = json_of(
        call(
            panel,
            Method::POST,
            "/api/v1/nodes",
            Some(NODE_ADMIN),
            Some(json!({"name": "fra-1", "address": "fra-1.example.net"})),
        )
        .await,
        201,
    )
    .await;
    let id = node["id"].as_str().expect("id");
    let issued = json_of(
        call(
            panel,
            Method::POST,
            &format!("/api/v1/nodes/{id}/registration-tokens"),
            Some(NODE_ADMIN),
            Some(json!({})),
        )
        .await,
        201,
    )
    .await;
    issued["token"].as_str().expect("token").to_owned()
}

/// Registers with `token`, sending `host` as the `Host` header.
async fn register_with_host(panel: &RunningPanel, token: &str, host: &str) -> Value {
    let response = client()
        .post(panel.url("/api/v1/agents/register"))
        .header(reqwest::header::HOST, host)
        .json(&registration(token))
        .send()
        .await
        .expect("request");
    json_of(response, 201).await
}

on_every_database! {
    async fn a_forged_host_header_does_not_change_the_panel_url_an_agent_is_given(db: &TestDb) {
        let panel = start(db).await;
        let token = registration_token(&panel).await;
        let registered = register_with_host(&panel, &token, "evil.example:80").await;
        assert_eq!(registered["panelUrl"], format!("http://{}", panel.local_addr()));
        assert!(!registered.to_string().contains("evil"), "{registered}");
        panel.stop().await.expect("stops");
    }
}

on_every_database! {
    async fn the_configured_public_url_is_the_panel_url_an_agent_is_given(db: &TestDb) {
        let config = cap_panel::config::Config {
            public_url: Some("https://panel.example.com/".parse().expect("a public URL")),
            ..db.config()
        };
        let panel = Panel::builder(config)
            .authenticator(Tokens::from_principals([(
                NODE_ADMIN,
                Principal::new("user-node-admin").with_permissions(["admin.nodes"]),
            )]))
            .bind()
            .await
            .expect("the Panel starts")
            .spawn();
        let token = registration_token(&panel).await;
        let registered = register_with_host(&panel, &token, "evil.example").await;
        assert_eq!(registered["panelUrl"], "https://panel.example.com");
        panel.stop().await.expect("stops");
    }
}
