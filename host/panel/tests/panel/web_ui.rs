//! The Web UI's HTTP side: the embedded page and assets with their
//! security and cache headers, and the `/api/v1/ui` routes with the real
//! `player-list`, `test-game` and `adversarial` plugins. (The browser
//! itself is driven in the `browser` test target.)

use reqwest::Method;
use serde_json::{Value, json};

use crate::identity::IdentityPanel;
use crate::nodes::{call, json_of};
use crate::plugins::{PLUGIN_ADMIN, install_and_activate, start};
use crate::support::{TestDb, client, expect_problem, on_every_database};

#[tokio::test]
async fn the_page_and_assets_are_served_with_a_strict_content_security_policy() {
    let db = TestDb::sqlite().await;
    let panel = start(&db).await;
    let response = client().get(panel.url("/")).send().await.expect("GET /");
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(header("content-type"), "text/html; charset=utf-8");
    let csp = header("content-security-policy");
    assert!(csp.starts_with("default-src 'self'"), "{csp}");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert_eq!(header("cache-control"), "no-cache");
    let etag = header("etag");
    assert!(etag.starts_with('"') && etag.len() > 10, "{etag}");
    let page = response.text().await.expect("a body");
    assert!(page.contains(r#"<script type="module" src="/assets/app.js">"#));

    let again = client()
        .get(panel.url("/"))
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("GET / again");
    assert_eq!(again.status(), 304);
    assert!(again.bytes().await.expect("a body").is_empty());

    for (asset, content_type) in [
        ("app.js", "text/javascript; charset=utf-8"),
        ("plugin-ui.js", "text/javascript; charset=utf-8"),
        ("app.css", "text/css; charset=utf-8"),
        ("icon.svg", "image/svg+xml"),
    ] {
        let response = client()
            .get(panel.url(&format!("/assets/{asset}")))
            .send()
            .await
            .expect("an asset");
        assert_eq!(response.status(), 200, "{asset}");
        assert_eq!(
            response.headers()["content-type"].to_str().ok(),
            Some(content_type),
            "{asset}"
        );
        assert!(response.headers().contains_key("content-security-policy"));
    }
    let missing = client()
        .get(panel.url("/assets/missing.js"))
        .send()
        .await
        .expect("a missing asset");
    expect_problem(missing, 404, "not-found").await;
}

#[tokio::test]
async fn the_page_shadows_neither_the_api_nor_the_metrics() {
    let db = TestDb::sqlite().await;
    let mut config = db.config();
    config.metrics_token =
        Some(cap_panel::config::MetricsToken::new(crate::support::METRICS_TOKEN).expect("long"));
    let panel = crate::support::start_panel_with(config).await;
    let api = client()
        .get(panel.url("/api/v1/no-such-route"))
        .send()
        .await
        .expect("an API 404");
    expect_problem(api, 404, "not-found").await;
    let other = client()
        .get(panel.url("/servers/abc"))
        .send()
        .await
        .expect("a path the UI routes by fragment");
    expect_problem(other, 404, "not-found").await;
    let metrics = client()
        .get(panel.url("/metrics"))
        .bearer_auth(crate::support::METRICS_TOKEN)
        .send()
        .await
        .expect("metrics");
    assert_eq!(metrics.status(), 200);
    assert!(
        metrics.headers()["content-type"]
            .to_str()
            .unwrap_or_default()
            .starts_with("text/plain")
    );
}

/// A Panel with test-game and player-list active, a node and one server;
/// returns the server id.
async fn server_with_player_list(panel: &cap_panel::RunningPanel) -> String {
    install_and_activate(panel, "test-game").await;
    install_and_activate(panel, "player-list").await;
    let node = json_of(
        call(
            panel,
            Method::POST,
            "/api/v1/nodes",
            Some(PLUGIN_ADMIN),
            Some(
                json!({"name": "n1", "address": "10.0.0.1", "memory_mb": 4096,
                        "disk_mb": 10000, "cpu_percent": 400}),
            ),
        )
        .await,
        201,
    )
    .await;
    let node_id = node["id"].as_str().expect("id").to_owned();
    json_of(
        call(
            panel,
            Method::POST,
            &format!("/api/v1/nodes/{node_id}/allocations"),
            Some(PLUGIN_ADMIN),
            Some(json!({"ip": "10.0.0.1", "ports": ["25565-25566"]})),
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
            Some(PLUGIN_ADMIN),
            Some(
                json!({"name": "Survival", "node_id": node_id, "game": {"plugin": "test-game"},
                        "limits": {"memory_mb": 512, "disk_mb": 1024, "cpu_percent": 100}}),
            ),
        )
        .await,
        201,
    )
    .await;
    server["id"].as_str().expect("id").to_owned()
}

/// The first table element of a rendered UI tree.
fn table_in(tree: &Value) -> &Value {
    tree["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| &n["element"])
        .find(|e| e["type"] == "table")
        .unwrap_or_else(|| panic!("a table in {tree:#}"))
}

async fn player_joined(panel: &cap_panel::RunningPanel, server_id: &str, name: &str) {
    use cap_runtime::api;
    let event = api::Event {
        id: format!("ev-{name}"),
        kind: api::EventKind::ConsolePlayerJoined,
        occurred_at_ms: 1_700_000_000_000,
        actor: api::Actor {
            user_id: None,
            ip: None,
            request_id: None,
        },
        payload: api::Payload::Console(api::ConsoleInfo {
            server_id: server_id.to_owned(),
            line: format!("{name} joined the game"),
            detail: Some(name.to_owned()),
        }),
    };
    let plugins = panel.state().plugins().expect("plugins").active_plugins();
    let reports = cap_runtime::hooks::dispatch_after(&plugins, &event, Default::default()).await;
    assert!(reports.iter().all(|r| r.outcome.is_ok()), "{reports:?}");
}

#[tokio::test]
async fn the_player_list_widget_renders_players_from_console_events_and_kicks_through_the_panel_api()
 {
    let db = TestDb::sqlite().await;
    let panel = start(&db).await;
    let server_id = server_with_player_list(&panel).await;

    let list = json_of(
        call(
            &panel,
            Method::GET,
            "/api/v1/ui/contributions",
            Some(PLUGIN_ADMIN),
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(
        list["items"],
        json!([{"plugin": "player-list", "plugin_name": "Player list", "id": "players",
                "slot": "server-widget", "title": "Players"}])
    );

    let path = format!("/api/v1/ui/contributions/player-list/players?server_id={server_id}");
    let empty = json_of(
        call(&panel, Method::GET, &path, Some(PLUGIN_ADMIN), None).await,
        200,
    )
    .await;
    let texts: Vec<&Value> = empty["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| &n["element"])
        .collect();
    assert!(
        texts.contains(&&json!({"type": "text", "text": "Nobody is online."})),
        "{empty:#}"
    );

    player_joined(&panel, &server_id, "Steve").await;
    player_joined(&panel, &server_id, "<b>Alex</b>").await;
    let tree = json_of(
        call(&panel, Method::GET, &path, Some(PLUGIN_ADMIN), None).await,
        200,
    )
    .await;
    let table = table_in(&tree);
    assert_eq!(table["columns"], json!(["Player"]));
    assert_eq!(table["rows"][0]["cells"], json!(["<b>Alex</b>"]));
    assert_eq!(table["rows"][1]["cells"], json!(["Steve"]));
    assert_eq!(table["rows"][1]["actions"][0]["label"], "Kick");
    assert_eq!(table["rows"][1]["actions"][0]["tone"], "danger");

    let actions = "/api/v1/ui/contributions/player-list/players/actions";
    let answer = json_of(
        call(
            &panel,
            Method::POST,
            actions,
            Some(PLUGIN_ADMIN),
            Some(json!({"server_id": server_id, "name": "kick", "values": {"0": "Steve"}})),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(
        answer,
        json!({"result": "notify", "message": "Sent `kick Steve` to the console", "tone": "success"})
    );
    let commands = json_of(
        call(
            &panel,
            Method::GET,
            &format!("/api/v1/servers/{server_id}/commands"),
            Some(PLUGIN_ADMIN),
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(commands["items"][0]["action"], "console", "{commands:#}");
    // Sent by the plugin, and recorded as sent by it.
    assert_eq!(commands["items"][0]["actor_user_id"], "plugin:player-list");

    // The plugin refuses a name that would smuggle a second command.
    let refused = call(
        &panel,
        Method::POST,
        actions,
        Some(PLUGIN_ADMIN),
        Some(json!({"server_id": server_id, "name": "kick", "values": {"0": "a\nop me"}})),
    )
    .await;
    let problem = expect_problem(refused, 422, "plugin-refused").await;
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("one word")),
        "{problem:#}"
    );
}

#[tokio::test]
async fn ui_requests_with_a_missing_server_unknown_contributions_or_bad_actions_are_refused() {
    let db = TestDb::sqlite().await;
    let panel = start(&db).await;
    let server_id = server_with_player_list(&panel).await;
    let get = |path: String| {
        let panel = &panel;
        async move { call(panel, Method::GET, &path, Some(PLUGIN_ADMIN), None).await }
    };
    // A server widget needs a server, and one the caller can see.
    let response = get("/api/v1/ui/contributions/player-list/players".into()).await;
    let problem = expect_problem(response, 422, "validation-failed").await;
    assert_eq!(problem["errors"][0]["field"], "server_id");
    let response = get("/api/v1/ui/contributions/player-list/players?server_id=nope".into()).await;
    expect_problem(response, 404, "not-found").await;
    let response = get(format!(
        "/api/v1/ui/contributions/player-list/other?server_id={server_id}"
    ))
    .await;
    expect_problem(response, 404, "not-found").await;
    let response = get(format!(
        "/api/v1/ui/contributions/no-such-plugin/players?server_id={server_id}"
    ))
    .await;
    expect_problem(response, 404, "not-found").await;
    // Only ui plugins contribute UI.
    let response = get(format!(
        "/api/v1/ui/contributions/test-game/players?server_id={server_id}"
    ))
    .await;
    expect_problem(response, 404, "not-found").await;

    let actions = "/api/v1/ui/contributions/player-list/players/actions";
    let response = call(
        &panel,
        Method::POST,
        actions,
        Some(PLUGIN_ADMIN),
        Some(json!({"server_id": server_id, "name": ""})),
    )
    .await;
    let problem = expect_problem(response, 422, "validation-failed").await;
    assert_eq!(problem["errors"][0]["field"], "name");
    let response = call(
        &panel,
        Method::POST,
        actions,
        Some(PLUGIN_ADMIN),
        Some(json!({"server_id": server_id, "name": "explode"})),
    )
    .await;
    expect_problem(response, 422, "plugin-refused").await;
    let response = call(&panel, Method::GET, "/api/v1/ui/contributions", None, None).await;
    expect_problem(response, 401, "unauthenticated").await;
}

#[tokio::test]
async fn a_plugin_returning_an_invalid_tree_gets_a_502_problem_not_a_crash() {
    let db = TestDb::sqlite().await;
    let panel = start(&db).await;
    install_and_activate(&panel, "adversarial").await;
    // `out-of-bounds` is a dashboard widget whose tree names a child past
    // the end.
    let response = call(
        &panel,
        Method::GET,
        "/api/v1/ui/contributions/adversarial/out-of-bounds",
        Some(PLUGIN_ADMIN),
        None,
    )
    .await;
    let problem = expect_problem(response, 502, "ui-tree-invalid").await;
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("out of bounds")),
        "{problem:#}"
    );
    // The Panel keeps serving, and a valid contribution of the same plugin
    // still needs its server.
    let response = call(
        &panel,
        Method::GET,
        "/api/v1/ui/contributions/adversarial/valid",
        Some(PLUGIN_ADMIN),
        None,
    )
    .await;
    expect_problem(response, 422, "validation-failed").await;
}

#[tokio::test]
async fn game_types_list_the_active_game_type_plugins_with_their_editable_variables() {
    let db = TestDb::sqlite().await;
    let panel = start(&db).await;
    install_and_activate(&panel, "test-game").await;
    let list = json_of(
        call(
            &panel,
            Method::GET,
            "/api/v1/game-types",
            Some(PLUGIN_ADMIN),
            None,
        )
        .await,
        200,
    )
    .await;
    let items = list["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{list:#}");
    assert_eq!(items[0]["plugin"], "test-game");
    assert!(items[0]["min_memory_mb"].is_u64());
    assert!(items[0]["variables"].is_array());
}

#[tokio::test]
async fn the_sign_in_providers_are_listed_without_authentication() {
    let db = TestDb::sqlite().await;
    let identity = IdentityPanel::start(&db).await;
    let list: Value = client()
        .get(identity.url("/api/v1/auth/providers"))
        .send()
        .await
        .expect("GET /auth/providers")
        .json()
        .await
        .expect("JSON");
    let items = list["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{list:#}");
    assert_eq!(items[0]["id"], "local-password");
    assert_eq!(items[0]["kind"], "password");
}

#[tokio::test]
async fn a_permission_the_player_list_declares_is_listed_grantable_and_lets_a_moderator_kick() {
    use cap_panel::http::Principal;

    let db = TestDb::sqlite().await;
    let ids = db.create_users(&["moderator", "viewer"]).await;
    let tokens = crate::support::Tokens::from_principals([
        (
            PLUGIN_ADMIN,
            // Holds what it grants: nobody grants a permission they lack.
            Principal::new("user-admin").with_permissions([
                "admin.plugins",
                "admin.nodes",
                "admin.servers",
                "admin.users",
                "server.create",
                "player-list.kick",
            ]),
        ),
        // As a role holding the plugin's permission would make them.
        (
            "moderator-token",
            Principal::new(&ids[0]).with_permissions(["player-list.kick"]),
        ),
        ("viewer-token", Principal::new(&ids[1])),
    ]);
    let panel = cap_panel::Panel::builder(db.config())
        .authenticator(tokens)
        .bind()
        .await
        .expect("the Panel starts")
        .spawn();
    let server_id = server_with_player_list(&panel).await;

    // Listed with what the manifest says, and grantable to roles.
    let catalogue = json_of(
        call(
            &panel,
            Method::GET,
            "/api/v1/permissions",
            Some(PLUGIN_ADMIN),
            None,
        )
        .await,
        200,
    )
    .await;
    let declared = catalogue["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|p| p["name"] == "player-list.kick")
        .unwrap_or_else(|| panic!("player-list.kick in {catalogue:#}"));
    assert_eq!(declared["source"], "plugin");
    assert_eq!(declared["plugin"], "player-list");
    assert!(
        declared["description"]
            .as_str()
            .is_some_and(|d| d.starts_with("Kick players")),
        "{declared:#}"
    );
    let role = |permission: &str| {
        let body = json!({"name": format!("holds {permission}"), "permissions": [permission]});
        let panel = &panel;
        async move {
            call(
                panel,
                Method::POST,
                "/api/v1/roles",
                Some(PLUGIN_ADMIN),
                Some(body),
            )
            .await
        }
    };
    json_of(role("player-list.kick").await, 201).await;
    let problem = expect_problem(role("player-list.ban").await, 422, "validation-failed").await;
    assert!(
        problem.to_string().contains("player-list.ban"),
        "an undeclared permission is refused: {problem:#}"
    );

    // Both may see the server, neither may use its console.
    for id in &ids {
        json_of(
            call(
                &panel,
                Method::POST,
                &format!("/api/v1/servers/{server_id}/subusers"),
                Some(PLUGIN_ADMIN),
                Some(json!({"user_id": id, "permissions": ["control.start"]})),
            )
            .await,
            201,
        )
        .await;
    }
    player_joined(&panel, &server_id, "Steve").await;
    let path = format!("/api/v1/ui/contributions/player-list/players?server_id={server_id}");
    let kick_buttons = |token: &'static str| {
        let (panel, path) = (&panel, &path);
        async move {
            let tree = json_of(call(panel, Method::GET, path, Some(token), None).await, 200).await;
            table_in(&tree)["rows"][0]["actions"]
                .as_array()
                .map_or(0, Vec::len)
        }
    };
    assert_eq!(kick_buttons("moderator-token").await, 1);
    assert_eq!(kick_buttons("viewer-token").await, 0);

    let kick = |token: &'static str| {
        let (panel, server_id) = (&panel, &server_id);
        async move {
            call(
                panel,
                Method::POST,
                "/api/v1/ui/contributions/player-list/players/actions",
                Some(token),
                Some(json!({"server_id": server_id, "name": "kick", "values": {"0": "Steve"}})),
            )
            .await
        }
    };
    let problem = expect_problem(kick("viewer-token").await, 422, "plugin-refused").await;
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("player-list.kick")),
        "{problem:#}"
    );
    let answer = json_of(kick("moderator-token").await, 200).await;
    assert_eq!(answer["message"], "Sent `kick Steve` to the console");
}

on_every_database! {
    async fn a_subuser_without_the_console_on_a_server_gets_no_kick_there_though_a_role_gives_the_console_elsewhere(db: &TestDb) {
        // A global role giving the console (for their own servers), and
        // only control.start where they are a subuser.
        let (panel, granted, owned) =
            subuser_and_owner(db, &["control.console", "control.start"], &["control.start"], "player-list").await;
        for server in [&granted, &owned] {
            player_joined(&panel, server, "Steve").await;
        }

        let kick_buttons = |server: &str| {
            let path = format!("/api/v1/ui/contributions/player-list/players?server_id={server}");
            let panel = &panel;
            async move {
                let tree = json_of(call(panel, Method::GET, &path, Some("sub-token"), None).await, 200).await;
                table_in(&tree)["rows"][0]["actions"].as_array().map_or(0, Vec::len)
            }
        };
        assert_eq!(kick_buttons(&granted).await, 0, "no console on this server, no Kick");
        assert_eq!(kick_buttons(&owned).await, 1, "the console on their own server");

        let kick = |server: &str| {
            let body = json!({"server_id": server, "name": "kick", "values": {"0": "Steve"}});
            let panel = &panel;
            async move {
                call(panel, Method::POST, "/api/v1/ui/contributions/player-list/players/actions",
                    Some("sub-token"), Some(body)).await
            }
        };
        let problem = expect_problem(kick(&granted).await, 422, "plugin-refused").await;
        assert!(problem["detail"].as_str().is_some_and(|d| d.contains("control.console")), "{problem:#}");
        let commands = json_of(
            call(&panel, Method::GET, &format!("/api/v1/servers/{granted}/commands"), Some(PLUGIN_ADMIN), None).await,
            200,
        )
        .await;
        assert!(
            commands["items"].as_array().expect("items").iter().all(|c| c["action"] != "console"),
            "no kick reached the console: {commands:#}"
        );
        let answer = json_of(kick(&owned).await, 200).await;
        assert_eq!(answer["message"], "Sent `kick Steve` to the console");
    }
}

on_every_database! {
    async fn a_0_2_server_widget_sees_the_viewers_permissions_on_the_server_apart_from_their_roles(db: &TestDb) {
        // A global role giving renaming (for their own servers), and only
        // the console where they are a subuser; a 0.1.0 widget (the player
        // list) and a 0.2.0 one side by side.
        let (panel, granted, owned) =
            subuser_and_owner(db, &["settings.rename"], &["control.console"], "server-notes").await;

        let forms = |server: &str| {
            let path = format!("/api/v1/ui/contributions/server-notes/notes?server_id={server}");
            let panel = &panel;
            async move {
                let tree = json_of(call(panel, Method::GET, &path, Some("sub-token"), None).await, 200).await;
                tree["nodes"].as_array().expect("nodes").iter().filter(|n| n["element"]["type"] == "form").count()
            }
        };
        assert_eq!(forms(&granted).await, 0, "renaming comes from a role, not from this server");
        assert_eq!(forms(&owned).await, 1, "renaming their own server");

        let save = |server: &str, note: &str| {
            let body = json!({"server_id": server, "name": "save", "values": {"note": note}});
            let panel = &panel;
            async move {
                call(panel, Method::POST, "/api/v1/ui/contributions/server-notes/notes/actions",
                    Some("sub-token"), Some(body)).await
            }
        };
        let problem = expect_problem(save(&granted, "mine now").await, 422, "plugin-refused").await;
        assert!(problem["detail"].as_str().is_some_and(|d| d.contains("settings.rename on this server")), "{problem:#}");
        json_of(save(&owned, "Whitelist only; ask sub.").await, 200).await;
        let tree = json_of(call(&panel, Method::GET,
            &format!("/api/v1/ui/contributions/server-notes/notes?server_id={owned}"), Some("sub-token"), None).await, 200).await;
        assert!(tree.to_string().contains("Whitelist only; ask sub."), "{tree:#}");
        let tree = json_of(call(&panel, Method::GET,
            &format!("/api/v1/ui/contributions/server-notes/notes?server_id={granted}"), Some("sub-token"), None).await, 200).await;
        assert!(tree.to_string().contains("No note yet."), "{tree:#}");
    }
}

/// A Panel where `sub-token` is a user whose roles give `global`, a
/// subuser with `granted` on one server, and the owner of another; with
/// the player list and `plugin` installed. Returns the Panel, the server
/// they are a subuser of and the one they own.
async fn subuser_and_owner(
    db: &TestDb,
    global: &[&str],
    granted: &[&str],
    plugin: &str,
) -> (cap_panel::RunningPanel, String, String) {
    use cap_panel::http::Principal;

    let ids = db.create_users(&["sub"]).await;
    let tokens = crate::support::Tokens::from_principals([
        (
            PLUGIN_ADMIN,
            Principal::new("user-admin").with_permissions([
                "admin.plugins",
                "admin.nodes",
                "admin.servers",
                "server.create",
            ]),
        ),
        (
            "sub-token",
            Principal::new(&ids[0]).with_permissions(global.iter().copied()),
        ),
    ]);
    let panel = cap_panel::Panel::builder(db.config())
        .authenticator(tokens)
        .bind()
        .await
        .expect("the Panel starts")
        .spawn();
    let shared = server_with_player_list(&panel).await;
    if plugin != "player-list" {
        install_and_activate(&panel, plugin).await;
    }
    json_of(
        call(
            &panel,
            Method::POST,
            &format!("/api/v1/servers/{shared}/subusers"),
            Some(PLUGIN_ADMIN),
            Some(json!({"user_id": ids[0], "permissions": granted})),
        )
        .await,
        201,
    )
    .await;
    let nodes = json_of(
        call(
            &panel,
            Method::GET,
            "/api/v1/nodes",
            Some(PLUGIN_ADMIN),
            None,
        )
        .await,
        200,
    )
    .await;
    let node_id = nodes["items"][0]["id"].as_str().expect("a node").to_owned();
    let owned = json_of(
        call(
            &panel,
            Method::POST,
            "/api/v1/servers",
            Some(PLUGIN_ADMIN),
            Some(json!({"name": "Own", "node_id": node_id, "owner_id": ids[0], "game": {"plugin": "test-game"},
                        "limits": {"memory_mb": 512, "disk_mb": 1024, "cpu_percent": 100}})),
        )
        .await,
        201,
    )
    .await;
    let owned = owned["id"].as_str().expect("id").to_owned();
    (panel, shared, owned)
}
