//! `/api/v1/servers` over HTTP with the real `test-game` and
//! `quota-guard` plugins: creation validated by the game's rules and its
//! `validate`, before-hook vetoes, lifecycle commands and the outbox the
//! Agent link delivers from, subusers and their limits, and the Panel API
//! plugins see.

use std::time::Duration;

use cap_panel::http::Principal;
use cap_panel::identity::permissions::Permission;
use cap_panel::servers::{CommandOutbox, CommandState, DbPanelApi};
use cap_panel::{Panel, RunningPanel};
use cap_runtime::capabilities::panel::PanelApi;
use reqwest::Method;
use serde_json::{Value, json};

use crate::nodes::{call, json_of};
use crate::plugins::{PLUGIN_ADMIN, install_and_activate, post};
use crate::support::{TestDb, Tokens, client, expect_problem, on_every_database};

const ALICE: &str = "alice-token";
const BOB: &str = "bob-token";
const CAROL: &str = "carol-token";

/// A Panel with test-game active, one node (4096 MiB, 10000 MiB disk,
/// 400 % CPU, ports 25565-25567) and three real users.
struct World {
    panel: RunningPanel,
    node_id: String,
    alice: String,
    bob: String,
    carol: String,
}

async fn world(db: &TestDb) -> World {
    let ids = db.create_users(&["alice", "bob", "carol"]).await;
    let every_server_permission: Vec<&str> =
        Permission::on_servers().map(Permission::as_str).collect();
    let player = |id: &str, create: bool| {
        Principal::new(id)
            .with_permissions(every_server_permission.iter().copied())
            .with_permissions(create.then_some("server.create"))
    };
    let tokens = Tokens::from_principals([
        (
            PLUGIN_ADMIN,
            Principal::new("user-admin").with_permissions([
                "admin.plugins",
                "admin.nodes",
                "admin.servers",
                "audit.read",
                "server.create",
            ]),
        ),
        (ALICE, player(&ids[0], true)),
        (BOB, player(&ids[1], true)),
        (CAROL, player(&ids[2], false)),
    ]);
    let panel = Panel::builder(db.config())
        .authenticator(tokens)
        .bind()
        .await
        .expect("the Panel starts")
        .spawn();
    install_and_activate(&panel, "test-game").await;
    let node = json_of(
        call(
            &panel,
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
            &panel,
            Method::POST,
            &format!("/api/v1/nodes/{node_id}/allocations"),
            Some(PLUGIN_ADMIN),
            Some(json!({"ip": "10.0.0.1", "ports": ["25565-25567"]})),
        )
        .await,
        201,
    )
    .await;
    let mut ids = ids.into_iter();
    World {
        panel,
        node_id,
        alice: ids.next().expect("alice"),
        bob: ids.next().expect("bob"),
        carol: ids.next().expect("carol"),
    }
}

fn server_request(node_id: &str, name: &str, memory_mb: u64) -> Value {
    json!({
        "name": name,
        "node_id": node_id,
        "game": {"plugin": "test-game"},
        "variables": {"MAX_PLAYERS": "20"},
        "limits": {"memory_mb": memory_mb, "disk_mb": 1000, "cpu_percent": 100}
    })
}

async fn create_server(world: &World, token: &str, body: Value) -> reqwest::Response {
    call(
        &world.panel,
        Method::POST,
        "/api/v1/servers",
        Some(token),
        Some(body),
    )
    .await
}

fn fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["field"].as_str().map(str::to_owned))
        .collect()
}

on_every_database! {
    async fn a_player_creates_a_server_checked_by_the_game_plugin_and_the_node(db: &TestDb) {
        let world = world(db).await;
        let node = &world.node_id;

        // (a) The rules test-game declares in describe.
        let mut body = server_request(node, "survival", 1024);
        body["variables"] = json!({"MAX_PLAYERS": "0", "READY_DELAY_MS": "soon", "NOPE": "x"});
        let problem = expect_problem(create_server(&world, ALICE, body).await, 422, "validation-failed").await;
        assert_eq!(fields(&problem), ["variables.NOPE", "variables.READY_DELAY_MS", "variables.MAX_PLAYERS"]);

        // A read-only variable is for administrators only.
        let mut body = server_request(node, "survival", 1024);
        body["variables"]["STANDIN_PATH"] = json!("/bin/evil");
        let problem = expect_problem(create_server(&world, ALICE, body).await, 422, "validation-failed").await;
        assert_eq!(fields(&problem), ["variables.STANDIN_PATH"]);

        // (b) The plugin's own validate: blank passes the rules, not the plugin.
        let mut body = server_request(node, "survival", 1024);
        body["variables"]["STANDIN_PATH"] = json!("   ");
        let problem = expect_problem(create_server(&world, PLUGIN_ADMIN, body).await, 422, "validation-failed").await;
        assert_eq!(fields(&problem), ["variables.STANDIN_PATH"]);
        assert!(problem["errors"][0]["message"].as_str().is_some_and(|m| m.contains("empty")), "{problem:#}");

        // The node's resources, the game and the node must exist.
        let problem = expect_problem(
            create_server(&world, ALICE, server_request(node, "huge", 8192)).await, 422, "validation-failed").await;
        assert_eq!(fields(&problem), ["limits.memory_mb"]);
        let mut body = server_request("node_missing", "x", 1024);
        body["game"] = json!({"plugin": "quota-guard"});
        let problem = expect_problem(create_server(&world, ALICE, body).await, 422, "validation-failed").await;
        assert_eq!(fields(&problem), ["node_id", "game.plugin"]);
        let mut body = server_request(node, "x", 1024);
        body["owner_id"] = json!(world.bob);
        expect_problem(create_server(&world, ALICE, body).await, 403, "forbidden").await;
        let response = call(&world.panel, Method::POST, "/api/v1/servers", Some(CAROL),
            Some(server_request(node, "x", 1024))).await;
        expect_problem(response, 403, "forbidden").await;
        assert!(cap_panel::servers::server::list(world.panel.state().db(),
            cap_panel::servers::server::Visibility::All, None, 10).await.expect("list").0.is_empty(),
            "no refused request left a row");

        let created = json_of(create_server(&world, ALICE, server_request(node, "survival", 3072)).await, 201).await;
        let id = created["id"].as_str().expect("id").to_owned();
        assert!(id.starts_with("srv_"));
        assert_eq!(created["owner_id"], world.alice.as_str());
        assert_eq!(created["allocation"], json!({"ip": "10.0.0.1", "port": 25565}));
        assert_eq!(created["game"], json!({"plugin": "test-game", "type": "test-game", "version": "1.0.0"}));
        assert_eq!(created["variables"]["MAX_PLAYERS"], "20");
        assert_eq!(created["variables"]["READY_DELAY_MS"], "200", "defaults are filled in");
        assert_eq!(created["state"], "offline");
        // The list shows a player the variables the game lets users see,
        // asking the game plugin once for the whole page.
        let listed = json_of(call(&world.panel, Method::GET, "/api/v1/servers", Some(ALICE), None).await, 200).await;
        let item = listed["items"].as_array().expect("items").iter()
            .find(|s| s["id"] == id.as_str()).expect("the new server is listed");
        assert_eq!(item["variables"], created["variables"]);
        assert_eq!(item["variables"]["MAX_PLAYERS"], "20");

        // The node now has 1024 MiB left; an admin creates one for Bob in it.
        let problem = expect_problem(
            create_server(&world, BOB, server_request(node, "b", 2048)).await, 422, "validation-failed").await;
        assert!(problem["errors"][0]["message"].as_str().is_some_and(|m| m.contains("1024 left")), "{problem:#}");
        let mut body = server_request(node, "bobs", 1024);
        body["owner_id"] = json!(world.bob);
        body["allocation"] = json!({"ip": "10.0.0.1", "port": 25567});
        let bobs = json_of(create_server(&world, PLUGIN_ADMIN, body).await, 201).await;
        assert_eq!(bobs["owner_id"], world.bob.as_str());
        assert_eq!(bobs["allocation"]["port"], 25567);

        // Each sees their own; the admin sees both.
        let names = |page: &Value| -> Vec<String> {
            page["items"].as_array().expect("items").iter()
                .filter_map(|s| s["name"].as_str().map(str::to_owned)).collect()
        };
        let page = json_of(call(&world.panel, Method::GET, "/api/v1/servers", Some(ALICE), None).await, 200).await;
        assert_eq!(names(&page), ["survival"]);
        let page = json_of(call(&world.panel, Method::GET, "/api/v1/servers", Some(CAROL), None).await, 200).await;
        assert!(names(&page).is_empty());
        let page = json_of(call(&world.panel, Method::GET, "/api/v1/servers?limit=1", Some(PLUGIN_ADMIN), None).await, 200).await;
        assert_eq!(names(&page), ["survival"]);
        let cursor = page["next_cursor"].as_str().expect("more").to_owned();
        let page = json_of(call(&world.panel, Method::GET, &format!("/api/v1/servers?limit=1&cursor={cursor}"),
            Some(PLUGIN_ADMIN), None).await, 200).await;
        assert_eq!(names(&page), ["bobs"]);
        let response = call(&world.panel, Method::GET, &format!("/api/v1/servers/{id}"), Some(BOB), None).await;
        expect_problem(response, 404, "not-found").await;

        // Updates are checked the same way; limits are for admins.
        let url = format!("/api/v1/servers/{id}");
        let response = call(&world.panel, Method::PATCH, &url, Some(ALICE),
            Some(json!({"variables": {"MAX_PLAYERS": "5000"}}))).await;
        let problem = expect_problem(response, 422, "validation-failed").await;
        assert_eq!(fields(&problem), ["variables.MAX_PLAYERS"]);
        let response = call(&world.panel, Method::PATCH, &url, Some(ALICE),
            Some(json!({"limits": {"memory_mb": 1, "disk_mb": 1, "cpu_percent": 1}}))).await;
        expect_problem(response, 403, "forbidden").await;
        let updated = json_of(call(&world.panel, Method::PATCH, &url, Some(ALICE),
            Some(json!({"name": "creative", "variables": {"MAX_PLAYERS": "30"}}))).await, 200).await;
        assert_eq!(updated["name"], "creative");
        assert_eq!(updated["variables"]["MAX_PLAYERS"], "30");
        assert_eq!(updated["variables"]["READY_DELAY_MS"], "200");
        let response = call(&world.panel, Method::PATCH, &url, Some(PLUGIN_ADMIN),
            Some(json!({"limits": {"memory_mb": 4096, "disk_mb": 1000, "cpu_percent": 100}}))).await;
        expect_problem(response, 422, "validation-failed").await;
        let resized = json_of(call(&world.panel, Method::PATCH, &url, Some(PLUGIN_ADMIN),
            Some(json!({"limits": {"memory_mb": 2048, "disk_mb": 1000, "cpu_percent": 100}}))).await, 200).await;
        assert_eq!(resized["limits"]["memory_mb"], 2048);

        // A held allocation cannot be deleted.
        let response = call(&world.panel, Method::DELETE,
            &format!("/api/v1/nodes/{node}/allocations/10.0.0.1/25565"), Some(PLUGIN_ADMIN), None).await;
        expect_problem(response, 409, "allocation-assigned").await;
        let response = call(&world.panel, Method::DELETE, &format!("/api/v1/nodes/{node}"), Some(PLUGIN_ADMIN), None).await;
        expect_problem(response, 409, "node-has-servers").await;

        let log = json_of(call(&world.panel, Method::GET,
            &format!("/api/v1/audit-log?subject_type=server&subject_id={id}"), Some(PLUGIN_ADMIN), None).await, 200).await;
        let kinds: Vec<&str> = log["items"].as_array().expect("items").iter()
            .filter_map(|e| e["kind"].as_str()).collect();
        assert_eq!(kinds, ["server.updated", "server.updated", "server.created"]);

        // A variable the game hides (a password) is for administrators:
        // players never see it, and the audit log shows it redacted.
        let secret = json_of(call(&world.panel, Method::PATCH, &url, Some(PLUGIN_ADMIN),
            Some(json!({"variables": {"RCON_PASSWORD": "hunter2"}}))).await, 200).await;
        assert_eq!(secret["variables"]["RCON_PASSWORD"], "hunter2");
        let mine = json_of(call(&world.panel, Method::GET, &url, Some(ALICE), None).await, 200).await;
        assert!(mine["variables"].get("RCON_PASSWORD").is_none(), "{mine:#}");
        assert_eq!(mine["variables"]["MAX_PLAYERS"], "30");
        let log = json_of(call(&world.panel, Method::GET,
            &format!("/api/v1/audit-log?subject_type=server&subject_id={id}"), Some(PLUGIN_ADMIN), None).await, 200).await;
        let newest = &log["items"][0];
        assert_eq!(newest["kind"], "server.updated");
        assert_eq!(newest["data"]["variable_values"]["RCON_PASSWORD"], cap_panel::http::audit_log::REDACTED);
        assert_eq!(newest["data"]["variable_values"]["MAX_PLAYERS"], "30");
        assert!(!log.to_string().contains("hunter2"), "the secret leaked into the audit log: {log:#}");
        world.panel.stop().await.expect("stops");
    }
}

on_every_database! {
    async fn a_server_takes_its_game_type_and_image_only_among_those_its_plugin_offers(db: &TestDb) {
        let world = world(db).await;
        let node = &world.node_id;

        // A game type the plugin does not offer is refused, naming what it
        // offers.
        let mut body = server_request(node, "x", 1024);
        body["game"] = json!({"plugin": "test-game", "type": "minetest"});
        let problem = expect_problem(create_server(&world, ALICE, body).await, 422, "validation-failed").await;
        assert_eq!(fields(&problem), ["game.type"]);
        let message = problem["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(message.contains("minetest") && message.contains("it offers test-game"), "{problem:#}");

        // The test game lists no images: none can be picked.
        let mut body = server_request(node, "x", 1024);
        body["image"] = json!("ghcr.io/someone/else:latest");
        let problem = expect_problem(create_server(&world, ALICE, body).await, 422, "validation-failed").await;
        assert_eq!(fields(&problem), ["image"]);
        assert!(cap_panel::servers::server::list(world.panel.state().db(),
            cap_panel::servers::server::Visibility::All, None, 10).await.expect("list").0.is_empty(),
            "no refused request left a row");

        // Its own game type, named, is taken; the server has no image of
        // its own (the package's applies).
        let mut body = server_request(node, "named", 1024);
        body["game"] = json!({"plugin": "test-game", "type": "test-game"});
        let created = json_of(create_server(&world, ALICE, body).await, 201).await;
        assert_eq!(created["game"]["type"], "test-game");
        assert!(created.get("image").is_none(), "{created:#}");

        // Picking another image later needs startup.docker-image, and one
        // the game type lists.
        let id = created["id"].as_str().expect("id");
        let response = call(&world.panel, Method::PATCH, &format!("/api/v1/servers/{id}"), Some(ALICE),
            Some(json!({"image": "ghcr.io/someone/else:latest"}))).await;
        let problem = expect_problem(response, 422, "validation-failed").await;
        assert_eq!(fields(&problem), ["image"]);

        // The create form lists each game type with its images and features.
        let types = json_of(call(&world.panel, Method::GET, "/api/v1/game-types", Some(ALICE), None).await, 200).await;
        let game = &types["items"][0];
        assert_eq!((game["plugin"].as_str(), game["type"].as_str()), (Some("test-game"), Some("test-game")));
        assert_eq!(game["images"], json!([]));
        assert!(game["features"].is_array(), "{game:#}");

        // Eggs need a plugin that imports them; none is active here.
        let response = call(&world.panel, Method::GET, "/api/v1/eggs", Some(PLUGIN_ADMIN), None).await;
        assert_eq!(json_of(response, 200).await, json!({"items": []}));
        let response = client()
            .post(world.panel.url("/api/v1/eggs"))
            .bearer_auth(PLUGIN_ADMIN)
            .body(r#"{"meta": {"version": "PTDL_v2"}}"#)
            .send().await.expect("sends");
        let problem = expect_problem(response, 409, "no-catalogue").await;
        assert!(problem["detail"].as_str().is_some_and(|d| d.contains("egg-bridge")), "{problem:#}");
        // And only admins of plugins may import them.
        let response = client()
            .post(world.panel.url("/api/v1/eggs"))
            .bearer_auth(ALICE)
            .body("{}")
            .send().await.expect("sends");
        expect_problem(response, 403, "forbidden").await;
    }
}

on_every_database! {
    async fn a_before_hook_veto_is_a_403_with_the_plugins_reason(db: &TestDb) {
        let world = world(db).await;
        let panel = &world.panel;
        let response = crate::plugins::upload(panel, crate::plugins::package("quota-guard")).await;
        assert_eq!(response.status(), 201);
        let response = client_put(panel, "/api/v1/plugins/quota-guard/config",
            json!({"values": {"max-memory-mb": "2048"}})).await;
        assert_eq!(response.status(), 200);
        let response = post(panel, "/api/v1/plugins/quota-guard/grant",
            Some(json!({"kv": true, "config": true, "panel": ["servers.read"]}))).await;
        assert_eq!(response.status(), 200);
        let response = post(panel, "/api/v1/plugins/quota-guard/activate", None).await;
        assert_eq!(response.status(), 200);

        let first = json_of(create_server(&world, ALICE, server_request(&world.node_id, "one", 1536)).await, 201).await;
        // The after-hook records the size asynchronously; wait for it.
        let guard = panel.state().plugins().expect("manager").active("quota-guard").expect("active");
        let mut recorded = false;
        for _ in 0..100 {
            // Alice asking for 1024 MiB more is denied once 1536 are recorded.
            let probe = cap_e2e::server_create("probe", &world.alice, 1024);
            if let Ok(cap_runtime::api::Verdict::Deny(_)) = guard.hook_before(&probe).await {
                recorded = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(recorded, "quota-guard never recorded the first server");

        // The veto: the plugin's reason reaches the client, nothing is written.
        let response = create_server(&world, ALICE, server_request(&world.node_id, "two", 1024)).await;
        let problem = expect_problem(response, 403, "hook-denied").await;
        let detail = problem["detail"].as_str().expect("detail");
        assert!(detail.contains("quota exceeded") && detail.contains("2560 MiB of 2048 MiB"), "{detail}");
        let free = json_of(call(panel, Method::GET, &format!("/api/v1/nodes/{}/allocations?state=free", world.node_id),
            Some(PLUGIN_ADMIN), None).await, 200).await;
        assert_eq!(free["items"].as_array().map(Vec::len), Some(2), "the veto took no allocation");
        let page = json_of(call(panel, Method::GET, "/api/v1/servers", Some(PLUGIN_ADMIN), None).await, 200).await;
        assert_eq!(page["items"].as_array().map(Vec::len), Some(1));

        // Bob has his own quota; growing Alice's server past it is vetoed too.
        json_of(create_server(&world, BOB, server_request(&world.node_id, "bobs", 1024)).await, 201).await;
        let response = call(panel, Method::PATCH, &format!("/api/v1/servers/{}", first["id"].as_str().expect("id")),
            Some(PLUGIN_ADMIN), Some(json!({"limits": {"memory_mb": 2560, "disk_mb": 1000, "cpu_percent": 100}}))).await;
        expect_problem(response, 403, "hook-denied").await;
        world.panel.stop().await.expect("stops");
    }
}

async fn client_put(panel: &RunningPanel, path: &str, body: Value) -> reqwest::Response {
    call(panel, Method::PUT, path, Some(PLUGIN_ADMIN), Some(body)).await
}

on_every_database! {
    async fn a_subuser_reaches_only_its_server_and_only_what_it_was_given(db: &TestDb) {
        let world = world(db).await;
        let panel = &world.panel;
        let mine = json_of(create_server(&world, ALICE, server_request(&world.node_id, "mine", 1024)).await, 201).await;
        let other = json_of(create_server(&world, ALICE, server_request(&world.node_id, "other", 1024)).await, 201).await;
        let mine = mine["id"].as_str().expect("id").to_owned();
        let other = other["id"].as_str().expect("id").to_owned();
        let subusers = format!("/api/v1/servers/{mine}/subusers");

        let response = call(panel, Method::POST, &subusers, Some(ALICE),
            Some(json!({"user_id": "usr_nobody", "permissions": ["control.start"]}))).await;
        let problem = expect_problem(response, 422, "validation-failed").await;
        assert_eq!(fields(&problem), ["user_id"]);
        let response = call(panel, Method::POST, &subusers, Some(ALICE),
            Some(json!({"user_id": world.carol, "permissions": ["control.start", "admin.servers"]}))).await;
        let problem = expect_problem(response, 422, "validation-failed").await;
        assert_eq!(fields(&problem), ["permissions[0]"]);
        let added = json_of(call(panel, Method::POST, &subusers, Some(ALICE),
            Some(json!({"user_id": world.carol, "permissions": ["control.start", "user.create", "user.read"]}))).await, 201).await;
        assert_eq!(added["permissions"], json!(["control.start", "user.create", "user.read"]));
        let response = call(panel, Method::POST, &subusers, Some(ALICE),
            Some(json!({"user_id": world.carol, "permissions": []}))).await;
        expect_problem(response, 409, "subuser-exists").await;

        // Carol sees that server only, with only her permissions.
        let page = json_of(call(panel, Method::GET, "/api/v1/servers", Some(CAROL), None).await, 200).await;
        let items = page["items"].as_array().expect("items");
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["id"], mine.as_str());
        assert_eq!(items[0]["permissions"], json!(["control.start", "user.create", "user.read"]));
        assert!(items[0].get("variables").is_none(), "no startup.read, no variables");
        let accepted = json_of(call(panel, Method::POST, &format!("/api/v1/servers/{mine}/power"), Some(CAROL),
            Some(json!({"action": "start"}))).await, 202).await;
        assert!(accepted["commandId"].as_str().is_some_and(|c| c.starts_with("cmd_")));
        for (method, path, body) in [
            (Method::POST, format!("/api/v1/servers/{mine}/power"), Some(json!({"action": "stop"}))),
            (Method::POST, format!("/api/v1/servers/{mine}/install"), None),
            (Method::POST, format!("/api/v1/servers/{mine}/command"), Some(json!({"command": "op carol"}))),
            (Method::PATCH, format!("/api/v1/servers/{mine}"), Some(json!({"name": "carols"}))),
            (Method::DELETE, format!("/api/v1/servers/{mine}"), None),
            (Method::GET, format!("/api/v1/servers/{mine}/commands"), None),
        ] {
            let response = call(panel, method, &path, Some(CAROL), body).await;
            expect_problem(response, 403, "forbidden").await;
        }
        // The attack: reaching the owner's other server.
        for (method, path, body) in [
            (Method::GET, format!("/api/v1/servers/{other}"), None),
            (Method::POST, format!("/api/v1/servers/{other}/power"), Some(json!({"action": "start"}))),
            (Method::GET, format!("/api/v1/servers/{other}/subusers"), None),
            (Method::POST, format!("/api/v1/servers/{other}/subusers"),
                Some(json!({"user_id": world.bob, "permissions": ["control.start"]}))),
            (Method::DELETE, format!("/api/v1/servers/{other}"), None),
        ] {
            let response = call(panel, method, &path, Some(CAROL), body).await;
            expect_problem(response, 404, "not-found").await;
        }
        // She can pass on only what she holds, and not change herself.
        let response = call(panel, Method::POST, &subusers, Some(CAROL),
            Some(json!({"user_id": world.bob, "permissions": ["control.start", "control.stop"]}))).await;
        let problem = expect_problem(response, 422, "validation-failed").await;
        assert_eq!(fields(&problem), ["permissions[1]"]);
        json_of(call(panel, Method::POST, &subusers, Some(CAROL),
            Some(json!({"user_id": world.bob, "permissions": ["control.start"]}))).await, 201).await;
        let response = call(panel, Method::PATCH, &format!("{subusers}/{}", world.carol), Some(CAROL),
            Some(json!({"permissions": ["control.start", "control.stop"]}))).await;
        expect_problem(response, 403, "forbidden").await;

        let listed = json_of(call(panel, Method::GET, &subusers, Some(ALICE), None).await, 200).await;
        assert_eq!(listed["items"].as_array().map(Vec::len), Some(2));
        let updated = json_of(call(panel, Method::PATCH, &format!("{subusers}/{}", world.carol), Some(ALICE),
            Some(json!({"permissions": ["control.stop"]}))).await, 200).await;
        assert_eq!(updated["permissions"], json!(["control.stop"]));
        let response = call(panel, Method::POST, &format!("/api/v1/servers/{mine}/power"), Some(CAROL),
            Some(json!({"action": "start"}))).await;
        expect_problem(response, 403, "forbidden").await;
        let response = call(panel, Method::DELETE, &format!("{subusers}/{}", world.carol), Some(ALICE), None).await;
        assert_eq!(response.status(), 204);
        let response = call(panel, Method::GET, &format!("/api/v1/servers/{mine}"), Some(CAROL), None).await;
        expect_problem(response, 404, "not-found").await;
        world.panel.stop().await.expect("stops");
    }
}

on_every_database! {
    async fn lifecycle_commands_are_queued_and_delivered_through_the_outbox(db: &TestDb) {
        let world = world(db).await;
        let panel = &world.panel;
        let server = json_of(create_server(&world, ALICE, server_request(&world.node_id, "s", 1024)).await, 201).await;
        let id = server["id"].as_str().expect("id").to_owned();
        let mut queued = Vec::new();
        for (path, body) in [
            ("power", Some(json!({"action": "start"}))),
            ("power", Some(json!({"action": "restart"}))),
            ("power", Some(json!({"action": "kill"}))),
            ("install", None),
            ("command", Some(json!({"command": "say hello"}))),
        ] {
            let accepted = json_of(call(panel, Method::POST, &format!("/api/v1/servers/{id}/{path}"),
                Some(ALICE), body).await, 202).await;
            queued.push(accepted["commandId"].as_str().expect("commandId").to_owned());
        }
        let response = call(panel, Method::POST, &format!("/api/v1/servers/{id}/power"), Some(ALICE),
            Some(json!({"action": "explode"}))).await;
        expect_problem(response, 422, "validation-failed").await;
        let response = call(panel, Method::POST, &format!("/api/v1/servers/{id}/command"), Some(ALICE),
            Some(json!({"command": "a\nb"}))).await;
        expect_problem(response, 422, "validation-failed").await;

        let history = json_of(call(panel, Method::GET, &format!("/api/v1/servers/{id}/commands"),
            Some(ALICE), None).await, 200).await;
        let actions: Vec<&str> = history["items"].as_array().expect("items").iter()
            .filter_map(|c| c["action"].as_str()).collect();
        assert_eq!(actions, ["console", "install", "kill", "restart", "start"]);
        assert!(history["items"].as_array().expect("items").iter().all(|c| c["state"] == "pending"));

        // The Agent link: pending commands of the node, oldest first.
        let outbox = CommandOutbox::new(panel.state().db().clone());
        let pending = outbox.pending(&world.node_id, 10).await.expect("pending");
        let ids: Vec<&str> = pending.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, queued.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(pending[4].payload, Some(json!({"line": "say hello"})));
        assert!(outbox.pending("node_other", 10).await.expect("pending").is_empty());
        assert!(outbox.ack("node_other", &queued[0]).await.is_err(), "another node cannot ack it");
        let acked = outbox.ack(&world.node_id, &queued[0]).await.expect("ack");
        assert_eq!(acked.state, CommandState::Acked);
        assert!(outbox.ack(&world.node_id, &queued[0]).await.is_err(), "acked twice");
        outbox.complete(&world.node_id, &queued[0]).await.expect("done");
        assert!(outbox.fail(&world.node_id, &queued[0], "late").await.is_err(), "a finished command stays finished");
        let failed = outbox.fail(&world.node_id, &queued[1], "the game crashed").await.expect("failed");
        assert_eq!(failed.detail.as_deref(), Some("the game crashed"));
        assert_eq!(outbox.pending(&world.node_id, 10).await.expect("pending").len(), 3);

        // Deletion waits for the Agent, then frees the allocation.
        let accepted = json_of(call(panel, Method::DELETE, &format!("/api/v1/servers/{id}"), Some(ALICE), None).await, 202).await;
        let delete = accepted["commandId"].as_str().expect("commandId").to_owned();
        let shown = json_of(call(panel, Method::GET, &format!("/api/v1/servers/{id}"), Some(ALICE), None).await, 200).await;
        assert_eq!(shown["state"], "deleting");
        let response = call(panel, Method::POST, &format!("/api/v1/servers/{id}/power"), Some(ALICE),
            Some(json!({"action": "start"}))).await;
        expect_problem(response, 409, "server-deleting").await;
        let response = call(panel, Method::DELETE, &format!("/api/v1/servers/{id}"), Some(ALICE), None).await;
        expect_problem(response, 409, "server-deleting").await;
        outbox.complete(&world.node_id, &delete).await.expect("deleted");
        let response = call(panel, Method::GET, &format!("/api/v1/servers/{id}"), Some(ALICE), None).await;
        expect_problem(response, 404, "not-found").await;
        let free = json_of(call(panel, Method::GET, &format!("/api/v1/nodes/{}/allocations?state=free", world.node_id),
            Some(PLUGIN_ADMIN), None).await, 200).await;
        assert_eq!(free["items"].as_array().map(Vec::len), Some(3));

        let log = json_of(call(panel, Method::GET,
            &format!("/api/v1/audit-log?subject_type=server&subject_id={id}&limit=200"), Some(PLUGIN_ADMIN), None).await, 200).await;
        let kinds: Vec<&str> = log["items"].as_array().expect("items").iter()
            .filter_map(|e| e["kind"].as_str()).collect();
        assert_eq!(&kinds[..3], ["server.deleted", "server.command.done", "server.command.queued"]);
        assert!(kinds.contains(&"server.command.failed") && kinds.contains(&"server.command.acked"));
        world.panel.stop().await.expect("stops");
    }
}

on_every_database! {
    async fn plugins_see_servers_and_send_console_commands_through_the_panel_api(db: &TestDb) {
        let world = world(db).await;
        let panel = &world.panel;
        let server = json_of(create_server(&world, BOB, server_request(&world.node_id, "s", 1024)).await, 201).await;
        let id = server["id"].as_str().expect("id").to_owned();
        let api = DbPanelApi::new(panel.state().db().clone());
        let listed = api.list_servers("some-plugin").await.expect("list");
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].owner_id, world.bob);
        assert_eq!(listed[0].node_id, world.node_id);
        assert_eq!(listed[0].game_type, "test-game");
        assert_eq!(api.get_server("some-plugin", &id).await.expect("get").name, "s");
        assert!(matches!(api.get_server("some-plugin", "srv_missing").await,
            Err(cap_runtime::capabilities::ServiceError::NotFound(_))));
        api.send_console_command("some-plugin", &id, "say from a plugin").await.expect("sent");
        let pending = CommandOutbox::new(panel.state().db().clone()).pending(&world.node_id, 10).await.expect("pending");
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].payload, Some(json!({"line": "say from a plugin"})));
        assert_eq!(pending[0].actor_user_id.as_deref(), Some("plugin:some-plugin"));
        let log = json_of(call(panel, Method::GET,
            &format!("/api/v1/audit-log?subject_type=server&subject_id={id}&kind=server.command.queued"),
            Some(PLUGIN_ADMIN), None).await, 200).await;
        assert_eq!(log["items"][0]["data"]["plugin"], "some-plugin");
        world.panel.stop().await.expect("stops");
    }
}

on_every_database! {
    async fn two_creations_racing_for_the_last_memory_cannot_both_win(db: &TestDb) {
        let world = world(db).await;
        let (a, b) = tokio::join!(
            create_server(&world, ALICE, server_request(&world.node_id, "a", 3000)),
            create_server(&world, BOB, server_request(&world.node_id, "b", 3000)),
        );
        let mut statuses = [a.status().as_u16(), b.status().as_u16()];
        statuses.sort_unstable();
        assert_eq!(statuses, [201, 422], "exactly one fits in 4096 MiB");
        let page = json_of(call(&world.panel, Method::GET, "/api/v1/servers", Some(PLUGIN_ADMIN), None).await, 200).await;
        assert_eq!(page["items"].as_array().map(Vec::len), Some(1));
        let free = json_of(call(&world.panel, Method::GET,
            &format!("/api/v1/nodes/{}/allocations?state=free", world.node_id), Some(PLUGIN_ADMIN), None).await, 200).await;
        assert_eq!(free["items"].as_array().map(Vec::len), Some(2), "the loser took no allocation");
        world.panel.stop().await.expect("stops");
    }
}

on_every_database! {
    /// On SQLite the Panel answers repeated lists from a cache valid at one
    /// read version; every kind of change must show on the very next list.
    async fn a_page_of_servers_shows_every_change_on_the_next_request(db: &TestDb) {
        let world = world(db).await;
        let panel = &world.panel;
        let list = |token: &'static str| async move {
            let mut pages = Vec::new();
            // The second answer comes from the cache where there is one.
            for _ in 0..2 {
                let page = json_of(call(panel, Method::GET, "/api/v1/servers?limit=10", Some(token), None).await, 200).await;
                pages.push(page["items"].as_array().expect("items").clone());
            }
            assert_eq!(pages[0], pages[1], "two lists with no change in between agree");
            pages.remove(0)
        };
        assert!(list(ALICE).await.is_empty());

        // A new server.
        let created = json_of(create_server(&world, ALICE, server_request(&world.node_id, "first", 1024)).await, 201).await;
        let id = created["id"].as_str().expect("id").to_owned();
        let items = list(ALICE).await;
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["name"], "first");
        assert_eq!(items[0]["variables"]["MAX_PLAYERS"], "20", "owners with startup.read see user-viewable variables");

        // A rename.
        json_of(call(panel, Method::PATCH, &format!("/api/v1/servers/{id}"), Some(ALICE),
            Some(json!({"name": "renamed"}))).await, 200).await;
        assert_eq!(list(ALICE).await[0]["name"], "renamed");

        // A state the Agent reports.
        cap_panel::servers::server::set_state(panel.state().db(), &id, "running", None)
            .await
            .expect("the state is recorded")
            .expect("the server exists");
        assert_eq!(list(ALICE).await[0]["state"], "running");

        // Bob sees nothing until he becomes a subuser, then only what he was given.
        assert!(list(BOB).await.is_empty());
        json_of(call(panel, Method::POST, &format!("/api/v1/servers/{id}/subusers"), Some(ALICE),
            Some(json!({"user_id": world.bob, "permissions": ["control.console"]}))).await, 201).await;
        let items = list(BOB).await;
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["permissions"], json!(["control.console"]));

        // The game-type plugin decides which variables users see: once it is
        // deactivated (a change outside the database) they see none.
        json_of(call(panel, Method::POST, "/api/v1/plugins/test-game/deactivate", Some(PLUGIN_ADMIN), None).await, 200).await;
        assert_eq!(list(ALICE).await[0]["variables"], json!({}));

        // A deleted server.
        json_of(call(panel, Method::POST, "/api/v1/plugins/test-game/activate", Some(PLUGIN_ADMIN), None).await, 200).await;
        assert_eq!(list(ALICE).await[0]["variables"]["MAX_PLAYERS"], "20");
        cap_panel::servers::server::set_state(panel.state().db(), &id, "offline", None)
            .await
            .expect("the state is recorded");
        let response = call(panel, Method::DELETE, &format!("/api/v1/servers/{id}"), Some(ALICE), None).await;
        assert_eq!(response.status(), 202, "{}", response.text().await.unwrap_or_default());
        assert_eq!(list(ALICE).await[0]["state"], "deleting");
    }
}

on_every_database! {
    async fn a_plugin_sent_console_command_passes_the_before_hooks_and_is_audited_as_the_plugin(db: &TestDb) {
        let world = world(db).await;
        let panel = &world.panel;
        // adversarial, subscribed to console commands: it denies lines
        // starting with "deny".
        let manifest = crate::support::manifest_text("adversarial").replace(
            r#"before = ["server.create"]"#,
            r#"before = ["server.create", "console.command"]"#,
        );
        assert!(manifest.contains("console.command"), "the manifest changed shape");
        let response = crate::plugins::upload(panel, crate::support::package_with("adversarial", &manifest)).await;
        assert_eq!(response.status(), 201);
        assert_eq!(post(panel, "/api/v1/plugins/adversarial/activate", None).await.status(), 200);
        let server = json_of(create_server(&world, BOB, server_request(&world.node_id, "s", 1024)).await, 201).await;
        let id = server["id"].as_str().expect("id").to_owned();

        // A user's denied command, for comparison: the hook sees it.
        let response = call(panel, Method::POST, &format!("/api/v1/servers/{id}/command"),
            Some(BOB), Some(json!({"command": "deny me"}))).await;
        expect_problem(response, 403, "hook-denied").await;

        let api = DbPanelApi::new(panel.state().db().clone());
        api.set_plugins(panel.state().plugins().expect("manager"));
        let refused = api.send_console_command("some-plugin", &id, "deny from a plugin").await;
        match refused {
            Err(cap_runtime::capabilities::ServiceError::Invalid(message)) => {
                assert!(message.contains("denied"), "{message}");
            }
            other => panic!("a denied plugin command was {other:?}"),
        }
        let outbox = CommandOutbox::new(panel.state().db().clone());
        assert!(outbox.pending(&world.node_id, 10).await.expect("pending").is_empty(),
            "the denied command was not queued");

        api.send_console_command("some-plugin", &id, "say allowed").await.expect("sent");
        let pending = outbox.pending(&world.node_id, 10).await.expect("pending");
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].payload, Some(json!({"line": "say allowed"})));
        assert_eq!(pending[0].actor_user_id.as_deref(), Some("plugin:some-plugin"));
        let log = json_of(call(panel, Method::GET,
            &format!("/api/v1/audit-log?subject_type=server&subject_id={id}&kind=server.command.queued"),
            Some(PLUGIN_ADMIN), None).await, 200).await;
        let items = log["items"].as_array().expect("items");
        assert_eq!(items.len(), 1, "{log:#}");
        assert_eq!(items[0]["actor"]["user_id"], "plugin:some-plugin");
        assert_eq!(items[0]["data"]["plugin"], "some-plugin");
        world.panel.stop().await.expect("stops");
    }
}

on_every_database! {
    async fn a_server_is_placed_only_on_a_node_whose_runtime_its_game_type_supports(db: &TestDb) {
        let world = world(db).await;
        // minecraft-paper declares no [game] table: native only.
        install_and_activate(&world.panel, "minecraft-paper").await;
        let issued = json_of(
            call(&world.panel, Method::POST,
                &format!("/api/v1/nodes/{}/registration-tokens", world.node_id),
                Some(PLUGIN_ADMIN), Some(json!({}))).await,
            201,
        )
        .await;
        let mut registration = crate::nodes::registration(issued["token"].as_str().expect("token"));
        registration["capabilities"] = json!(["container", "os-linux", "arch-amd64"]);
        json_of(call(&world.panel, Method::POST, "/api/v1/agents/register", None,
            Some(registration)).await, 201).await;

        let mut native_only = server_request(&world.node_id, "paper", 1024);
        native_only["game"] = json!({"plugin": "minecraft-paper"});
        native_only["variables"] = json!({"EULA": "true"});
        let problem = expect_problem(create_server(&world, ALICE, native_only).await, 422,
            "validation-failed").await;
        let text = problem["errors"].to_string();
        assert!(fields(&problem).contains(&"node_id".to_owned()), "{problem:#}");
        assert!(text.contains("runs servers in containers") && text.contains("native-process"),
            "names both sides: {text}");

        // test-game runs natively and in its container image: placed.
        let created = create_server(&world, ALICE, server_request(&world.node_id, "tg", 256)).await;
        assert_eq!(created.status(), 201, "{:?}", created.text().await);
        world.panel.stop().await.expect("stops");
    }
}
