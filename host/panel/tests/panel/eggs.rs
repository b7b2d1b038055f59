//! `/api/v1/eggs` with the real `egg-bridge` plugin: the community eggs
//! imported as they are, reviewed before import, refused field by field,
//! replaced only when asked, exported back, listed with the servers using
//! them and removed.

use cap_panel::http::Principal;
use cap_panel::{Panel, RunningPanel};
use reqwest::Method;
use serde_json::{Value, json};

use crate::nodes::{call, json_of};
use crate::plugins::{PLUGIN_ADMIN, install_and_activate};
use crate::support::{TestDb, Tokens, client, expect_problem, on_every_database};

/// An admin of servers who may not manage plugins.
const SERVER_ADMIN: &str = "server-admin-token";

/// The community eggs the egg crate keeps as fixtures.
fn egg(path: &str) -> Vec<u8> {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../egg/tests/fixtures")
        .join(path);
    std::fs::read(&file).unwrap_or_else(|e| panic!("reading {}: {e}", file.display()))
}

async fn start(db: &TestDb) -> RunningPanel {
    let tokens = Tokens::from_principals([
        (
            PLUGIN_ADMIN,
            Principal::new("user-admin").with_permissions([
                "admin.plugins",
                "admin.servers",
                "admin.nodes",
                "server.create",
            ]),
        ),
        (
            SERVER_ADMIN,
            Principal::new("user-servers").with_permissions(["admin.servers"]),
        ),
    ]);
    let panel = Panel::builder(db.config())
        .authenticator(tokens)
        .bind()
        .await
        .expect("the Panel starts")
        .spawn();
    install_and_activate(&panel, "egg-bridge").await;
    panel
}

/// `POST /api/v1/eggs` with `body` as it is.
async fn upload(
    panel: &RunningPanel,
    query: &str,
    token: &str,
    body: Vec<u8>,
) -> reqwest::Response {
    client()
        .post(panel.url(&format!("/api/v1/eggs{query}")))
        .bearer_auth(token)
        .body(body)
        .send()
        .await
        .expect("answered")
}

async fn list(panel: &RunningPanel) -> Vec<Value> {
    let page = json_of(
        call(panel, Method::GET, "/api/v1/eggs", Some(PLUGIN_ADMIN), None).await,
        200,
    )
    .await;
    page["items"].as_array().expect("items").clone()
}

on_every_database! {
    async fn an_admin_reviews_imports_replaces_exports_and_removes_a_community_egg(db: &TestDb) {
        let panel = start(db).await;
        let minetest = egg("pelican/egg-pterodactyl-minetest.json");

        // Review first: what it would create, nothing kept.
        let preview = json_of(upload(&panel, "?preview=true", PLUGIN_ADMIN, minetest.clone()).await, 200).await;
        assert_eq!(preview["plugin"], "egg-bridge");
        assert_eq!(preview["format"], "PTDL_v2");
        assert_eq!(preview["images"][0]["reference"], "ghcr.io/parkervcp/games:minetest");
        assert!(preview["variables"].as_array().expect("variables").iter()
            .any(|v| v["key"] == "SERVER_ADMIN_NAME" && v["required"] == true), "{preview:#}");
        assert!(preview.get("servers").is_none());
        assert!(list(&panel).await.is_empty(), "a preview keeps nothing");

        // Imported, listed, and offered to the create form.
        let imported = json_of(upload(&panel, "", PLUGIN_ADMIN, minetest.clone()).await, 201).await;
        let id = imported["type"].as_str().expect("a type").to_owned();
        assert_eq!(imported["servers"], 0);
        let listed = list(&panel).await;
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0]["type"], id.as_str());
        let types = json_of(call(&panel, Method::GET, "/api/v1/game-types", Some(PLUGIN_ADMIN), None).await, 200).await;
        assert!(types["items"].as_array().expect("items").iter()
            .any(|g| g["plugin"] == "egg-bridge" && g["type"] == id.as_str()), "{types:#}");

        // The same egg again: refused unless replacing.
        let problem = expect_problem(upload(&panel, "", PLUGIN_ADMIN, minetest.clone()).await, 409, "game-type-exists").await;
        assert!(problem["detail"].as_str().is_some_and(|d| d.contains(&id)), "{problem:#}");
        json_of(upload(&panel, "?replace=true", PLUGIN_ADMIN, minetest.clone()).await, 201).await;
        assert_eq!(list(&panel).await.len(), 1);

        // Exported in its own format, it imports as the same game type.
        let exported = client()
            .get(panel.url(&format!("/api/v1/eggs/egg-bridge/{id}/export")))
            .bearer_auth(PLUGIN_ADMIN)
            .send().await.expect("answered");
        assert_eq!(exported.status(), 200);
        assert_eq!(
            exported.headers().get("content-type").and_then(|v| v.to_str().ok()),
            Some("application/json")
        );
        let document = exported.bytes().await.expect("the egg").to_vec();
        let again = json_of(upload(&panel, "?preview=true", PLUGIN_ADMIN, document).await, 200).await;
        for field in ["type", "name", "variables", "images", "features"] {
            assert_eq!(again[field], imported[field], "{field}");
        }

        // The update source is the egg's own; a test may not reach it.
        let response = call(&panel, Method::POST, &format!("/api/v1/eggs/egg-bridge/{id}/update"), Some(PLUGIN_ADMIN), None).await;
        assert_ne!(response.status(), 200, "the machine reaches no egg repository");

        // Removed (no server uses it), it is gone.
        let response = call(&panel, Method::DELETE, &format!("/api/v1/eggs/egg-bridge/{id}"), Some(PLUGIN_ADMIN), None).await;
        assert_eq!(response.status(), 204);
        assert!(list(&panel).await.is_empty());
        let response = call(&panel, Method::DELETE, &format!("/api/v1/eggs/egg-bridge/{id}"), Some(PLUGIN_ADMIN), None).await;
        expect_problem(response, 404, "not-found").await;
        let response = call(&panel, Method::GET, "/api/v1/eggs/egg-bridge/no-such-egg/export", Some(PLUGIN_ADMIN), None).await;
        expect_problem(response, 404, "not-found").await;
    }
}

on_every_database! {
    async fn bad_eggs_are_refused_naming_the_field_and_nothing_is_imported(db: &TestDb) {
        let panel = start(db).await;
        let minetest: Value = serde_json::from_slice(&egg("pelican/egg-pterodactyl-minetest.json")).expect("JSON");
        let with = |change: &dyn Fn(&mut Value)| {
            let mut egg = minetest.clone();
            change(&mut egg);
            egg.to_string().into_bytes()
        };
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("malformed JSON", b"{\"meta\": {\"version\": \"PTDL_v2\"".to_vec(), "document"),
            ("malformed YAML", b"meta:\n  version: PLCN_v3\n  - nope: [\n".to_vec(), "document"),
            ("an unknown meta.version", with(&|e| e["meta"]["version"] = json!("PTDL_v9")), "meta.version"),
            ("a missing startup", with(&|e| { e.as_object_mut().expect("object").remove("startup"); }), "startup"),
            ("a default breaking its rule", with(&|e| e["variables"][1]["rules"] = json!("required|string|max:3")), "variables[1]"),
            ("an unknown rule", with(&|e| e["variables"][2]["rules"] = json!("required|frobnicate")), "variables[2].rules"),
            ("an unknown parser", with(&|e| e["config"]["files"] = json!("{\"a.conf\": {\"parser\": \"toml\", \"find\": {}}}")), "config.files"),
            ("a file outside the server", with(&|e| e["config"]["files"] = json!("{\"../../etc/passwd\": {\"parser\": \"file\", \"find\": {\"root\": \"x\"}}}")), "config.files"),
            ("an install of the wrong type", with(&|e| e["scripts"]["installation"] = json!("curl | sh")), "scripts.installation"),
        ];
        for (what, body, field) in cases {
            let response = upload(&panel, "", PLUGIN_ADMIN, body).await;
            let problem = expect_problem(response, 422, "validation-failed").await;
            let fields: Vec<&str> = problem["errors"].as_array().expect("errors").iter()
                .filter_map(|e| e["field"].as_str()).collect();
            assert!(fields.iter().any(|f| f.starts_with(field)), "{what}: {problem:#}");
            assert!(list(&panel).await.is_empty(), "{what} left something behind");
        }

        // A 50 MB egg never reaches the plugin.
        let huge = vec![b' '; 50 << 20];
        let response = upload(&panel, "", PLUGIN_ADMIN, huge).await;
        assert_eq!(response.status(), 413);
        assert!(list(&panel).await.is_empty());

        // Only plugin admins import eggs.
        let response = upload(&panel, "", SERVER_ADMIN, egg("pelican/egg-pterodactyl-minetest.json")).await;
        expect_problem(response, 403, "forbidden").await;
        let response = call(&panel, Method::GET, "/api/v1/eggs", Some(SERVER_ADMIN), None).await;
        expect_problem(response, 403, "forbidden").await;
    }
}

on_every_database! {
    async fn every_community_egg_imports_and_a_server_is_created_from_one_with_its_image(db: &TestDb) {
        let panel = start(db).await;
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../egg/tests/fixtures");
        let mut count = 0;
        for dir in ["pterodactyl", "pelican"] {
            for entry in std::fs::read_dir(root.join(dir)).expect("fixtures") {
                let path = entry.expect("an entry").path();
                if path.extension().is_none_or(|e| e != "json") {
                    continue;
                }
                let body = std::fs::read(&path).expect("an egg");
                let response = upload(&panel, "", PLUGIN_ADMIN, body).await;
                assert_eq!(response.status(), 201, "{}: {}", path.display(), response.text().await.unwrap_or_default());
                count += 1;
            }
        }
        assert_eq!(count, 15);
        assert_eq!(list(&panel).await.len(), 15);

        // A server of the Paper egg on a node, with one of the egg's images.
        let paper = list(&panel).await.into_iter()
            .find(|e| e["name"].as_str().is_some_and(|n| n.contains("Paper"))).expect("Paper");
        let images: Vec<String> = paper["images"].as_array().expect("images").iter()
            .map(|i| i["reference"].as_str().expect("a reference").to_owned()).collect();
        assert!(images.len() > 1, "Paper lists several Java images: {paper:#}");
        let node = json_of(call(&panel, Method::POST, "/api/v1/nodes", Some(PLUGIN_ADMIN),
            Some(json!({"name": "n1", "address": "10.0.0.1", "memory_mb": 8192, "disk_mb": 10000, "cpu_percent": 400}))).await, 201).await;
        let node_id = node["id"].as_str().expect("id");
        json_of(call(&panel, Method::POST, &format!("/api/v1/nodes/{node_id}/allocations"), Some(PLUGIN_ADMIN),
            Some(json!({"ip": "10.0.0.1", "ports": ["25565-25566"]}))).await, 201).await;
        let body = json!({
            "name": "paper",
            "node_id": node_id,
            "game": {"plugin": "egg-bridge", "type": paper["type"]},
            "image": images[1],
            "limits": {"memory_mb": 2048, "disk_mb": 4000, "cpu_percent": 100}
        });
        let created = json_of(call(&panel, Method::POST, "/api/v1/servers", Some(PLUGIN_ADMIN), Some(body.clone())).await, 201).await;
        assert_eq!(created["image"], images[1].as_str());
        assert_eq!(created["game"]["type"], paper["type"]);
        // An image the egg does not list is refused.
        let mut other = body;
        other["image"] = json!("docker.io/library/busybox:latest");
        let response = call(&panel, Method::POST, "/api/v1/servers", Some(PLUGIN_ADMIN), Some(other)).await;
        let problem = expect_problem(response, 422, "validation-failed").await;
        assert_eq!(problem["errors"][0]["field"], "image");
        // The egg is in use now: it stays.
        let listed = list(&panel).await.into_iter().find(|e| e["type"] == paper["type"]).expect("listed");
        assert_eq!(listed["servers"], 1);
        let response = call(&panel, Method::DELETE, &format!("/api/v1/eggs/egg-bridge/{}", paper["type"].as_str().expect("type")),
            Some(PLUGIN_ADMIN), None).await;
        expect_problem(response, 409, "game-type-in-use").await;
    }
}

/// The PLCN_v3 test egg: startup commands `Default` and `Verbose`, a
/// proxy config with a conditional edit, a file denylist.
fn proxy_egg(image: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../egg/tests/test-egg-plcn-v3.json");
    let mut egg: Value =
        serde_json::from_slice(&std::fs::read(&path).expect("the test egg")).expect("JSON");
    egg["docker_images"] = json!({ "Test": image });
    egg.to_string().into_bytes()
}

on_every_database! {
    async fn a_server_picks_among_its_eggs_startup_commands_and_one_the_egg_does_not_name_is_refused(db: &TestDb) {
        let panel = start(db).await;
        let imported = json_of(upload(&panel, "", PLUGIN_ADMIN, proxy_egg("debian:stable")).await, 201).await;
        assert_eq!(imported["startup_commands"], json!(["Default", "Verbose"]));
        assert_eq!(imported["file_denylist"], json!(["secret.txt", "*.key"]));
        let game_type = imported["type"].as_str().expect("type").to_owned();
        let listed = json_of(call(&panel, Method::GET, "/api/v1/game-types", Some(PLUGIN_ADMIN), None).await, 200).await;
        let offered = listed["items"].as_array().expect("items").iter()
            .find(|g| g["type"] == game_type.as_str()).expect("the game type is offered").clone();
        assert_eq!(offered["startup_commands"], json!(["Default", "Verbose"]));
        assert_eq!(offered["file_denylist"], json!(["secret.txt", "*.key"]));

        let node = json_of(call(&panel, Method::POST, "/api/v1/nodes", Some(PLUGIN_ADMIN),
            Some(json!({"name": "n1", "address": "10.0.0.1", "memory_mb": 8192, "disk_mb": 10000, "cpu_percent": 400}))).await, 201).await;
        let node_id = node["id"].as_str().expect("id");
        json_of(call(&panel, Method::POST, &format!("/api/v1/nodes/{node_id}/allocations"), Some(PLUGIN_ADMIN),
            Some(json!({"ip": "10.0.0.1", "ports": ["25565-25566"]}))).await, 201).await;
        let body = |command: &str| json!({
            "name": "proxy",
            "node_id": node_id,
            "game": {"plugin": "egg-bridge", "type": game_type},
            "startup_command": command,
            "limits": {"memory_mb": 256, "disk_mb": 1000, "cpu_percent": 100}
        });
        let response = call(&panel, Method::POST, "/api/v1/servers", Some(PLUGIN_ADMIN), Some(body("Turbo"))).await;
        let problem = expect_problem(response, 422, "validation-failed").await;
        assert_eq!(problem["errors"][0]["field"], "startup_command", "{problem:#}");
        assert!(problem["errors"][0]["message"].as_str().is_some_and(|m| m.contains("Default, Verbose")), "{problem:#}");

        let created = json_of(call(&panel, Method::POST, "/api/v1/servers", Some(PLUGIN_ADMIN), Some(body("Verbose"))).await, 201).await;
        assert_eq!(created["startup_command"], "Verbose");
        let id = created["id"].as_str().expect("id");
        let read = json_of(call(&panel, Method::GET, &format!("/api/v1/servers/{id}"), Some(PLUGIN_ADMIN), None).await, 200).await;
        assert_eq!(read["startup_command"], "Verbose");

        let changed = json_of(call(&panel, Method::PATCH, &format!("/api/v1/servers/{id}"), Some(PLUGIN_ADMIN),
            Some(json!({"startup_command": "Default"}))).await, 200).await;
        assert_eq!(changed["startup_command"], "Default");
        let response = call(&panel, Method::PATCH, &format!("/api/v1/servers/{id}"), Some(PLUGIN_ADMIN),
            Some(json!({"startup_command": "Nope"}))).await;
        let problem = expect_problem(response, 422, "validation-failed").await;
        assert_eq!(problem["errors"][0]["field"], "startup_command", "{problem:#}");
        let read = json_of(call(&panel, Method::GET, &format!("/api/v1/servers/{id}"), Some(PLUGIN_ADMIN), None).await, 200).await;
        assert_eq!(read["startup_command"], "Default", "a refused change leaves the pick as it was");
    }
}

on_every_database! {
    async fn a_game_type_listing_no_file_pull_turns_pulling_files_from_urls_off_for_its_servers(db: &TestDb) {
        let panel = start(db).await;
        let mut egg: Value = serde_json::from_slice(&proxy_egg("debian:stable")).expect("JSON");
        egg["features"] = json!(["no-file-pull"]);
        let imported = json_of(upload(&panel, "", PLUGIN_ADMIN, egg.to_string().into_bytes()).await, 201).await;
        let game_type = imported["type"].as_str().expect("type").to_owned();
        let node = json_of(call(&panel, Method::POST, "/api/v1/nodes", Some(PLUGIN_ADMIN),
            Some(json!({"name": "n1", "address": "10.0.0.1", "memory_mb": 8192, "disk_mb": 10000, "cpu_percent": 400}))).await, 201).await;
        let node_id = node["id"].as_str().expect("id");
        json_of(call(&panel, Method::POST, &format!("/api/v1/nodes/{node_id}/allocations"), Some(PLUGIN_ADMIN),
            Some(json!({"ip": "10.0.0.1", "ports": ["25565"]}))).await, 201).await;
        let created = json_of(call(&panel, Method::POST, "/api/v1/servers", Some(PLUGIN_ADMIN), Some(json!({
            "name": "no-pulls",
            "node_id": node_id,
            "game": {"plugin": "egg-bridge", "type": game_type},
            "limits": {"memory_mb": 256, "disk_mb": 1000, "cpu_percent": 100}
        }))).await, 201).await;
        let id = created["id"].as_str().expect("id");
        let response = call(&panel, Method::POST, &format!("/api/v1/servers/{id}/files/pull"), Some(PLUGIN_ADMIN),
            Some(json!({"url": "https://example.com/mod.jar", "directory": "/"}))).await;
        let problem = expect_problem(response, 422, "pull-refused").await;
        assert!(problem["detail"].as_str().is_some_and(|d| d.contains("game type") && d.contains("no-file-pull")), "{problem:#}");
    }
}
