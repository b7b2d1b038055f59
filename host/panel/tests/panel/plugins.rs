//! `/api/v1/plugins` over HTTP, with the real example plugins (built for
//! `wasm32-wasip2` by `cap_e2e`) packed into `.cap` files and loaded by
//! `cap-runtime`.

use axum::http::header;
use cap_panel::http::Principal;
use cap_panel::{Panel, RunningPanel};
use serde_json::{Value, json};

use crate::support::{TestDb, Tokens, client, expect_problem, on_every_database};
pub(crate) use crate::support::{manifest_text, package_with};

/// Token of a plugin administrator (also reads the audit log and creates
/// servers).
pub(crate) const PLUGIN_ADMIN: &str = "plugin-admin-token";
/// Token of a player without admin permissions.
pub(crate) const PLAYER: &str = "player-token";

/// Bearer tokens for the domain tests.
pub(crate) fn domain_tokens() -> Tokens {
    Tokens::from_principals([
        (
            PLUGIN_ADMIN,
            Principal::new("user-admin").with_permissions([
                "admin.plugins",
                "admin.nodes",
                "admin.servers",
                "audit.read",
                "server.create",
                "control.start",
                "control.stop",
            ]),
        ),
        (
            PLAYER,
            Principal::new("user-player").with_permissions([
                "server.create",
                "control.start",
                "control.stop",
            ]),
        ),
    ])
}

/// A Panel on `db` with [`domain_tokens`].
pub(crate) async fn start(db: &TestDb) -> RunningPanel {
    Panel::builder(db.config())
        .authenticator(domain_tokens())
        .bind()
        .await
        .expect("the Panel starts")
        .spawn()
}

/// A `.cap` package of example plugin `name` as it is.
pub(crate) fn package(name: &str) -> Vec<u8> {
    package_with(name, &manifest_text(name))
}

/// Uploads `bytes` as the plugin administrator.
pub(crate) async fn upload(panel: &RunningPanel, bytes: Vec<u8>) -> reqwest::Response {
    client()
        .post(panel.url("/api/v1/plugins"))
        .bearer_auth(PLUGIN_ADMIN)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .body(bytes)
        .send()
        .await
        .expect("request")
}

/// Sends `POST /api/v1/plugins/{id}/{action}` with `body` as the
/// administrator.
pub(crate) async fn post(
    panel: &RunningPanel,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let request = client().post(panel.url(path)).bearer_auth(PLUGIN_ADMIN);
    let request = match body {
        Some(body) => request.json(&body),
        None => request,
    };
    request.send().await.expect("request")
}

async fn get_json(panel: &RunningPanel, path: &str) -> Value {
    let response = client()
        .get(panel.url(path))
        .bearer_auth(PLUGIN_ADMIN)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200, "GET {path}");
    response.json().await.expect("JSON")
}

/// Installs, grants everything requested and activates example plugin
/// `name`.
pub(crate) async fn install_and_activate(panel: &RunningPanel, name: &str) {
    let response = upload(panel, package(name)).await;
    assert_eq!(response.status(), 201, "uploading {name}");
    let body: Value = response.json().await.expect("JSON");
    let requested = body["plugin"]["requested"].clone();
    let response = post(
        panel,
        &format!("/api/v1/plugins/{name}/grant"),
        Some(requested),
    )
    .await;
    assert_eq!(response.status(), 200, "granting {name}");
    let response = post(panel, &format!("/api/v1/plugins/{name}/activate"), None).await;
    assert_eq!(response.status(), 200, "activating {name}");
}

async fn event_kinds(panel: &RunningPanel, subject_id: &str) -> Vec<String> {
    let page = get_json(
        panel,
        &format!("/api/v1/audit-log?subject_type=plugin&subject_id={subject_id}&limit=200"),
    )
    .await;
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or_default().to_owned())
        .collect()
}

on_every_database! {
    async fn installs_a_package_shows_its_requests_and_activates_it_after_a_grant(db: &TestDb) {
        let panel = start(db).await;
        let response = upload(&panel, package("quota-guard")).await;
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.expect("JSON");
        let plugin = &body["plugin"];
        assert_eq!(plugin["id"], "quota-guard");
        assert_eq!(plugin["version"], "1.0.0");
        assert_eq!(plugin["state"], "installed");
        assert_eq!(plugin["loaded"], false);
        assert_eq!(plugin["sha256"].as_str().map(str::len), Some(64));
        assert_eq!(plugin["requested"]["kv"], true);
        assert_eq!(plugin["requested"]["panel"], json!(["servers.read"]));
        assert_eq!(plugin["granted"]["kv"], false, "installing grants nothing");

        // A grant beyond the request is refused, field by field.
        let response = post(&panel, "/api/v1/plugins/quota-guard/grant", Some(json!({ "clock": true }))).await;
        let problem = expect_problem(response, 422, "validation-failed").await;
        assert_eq!(problem["errors"][0]["field"], "grants");

        let response = post(
            &panel,
            "/api/v1/plugins/quota-guard/grant",
            Some(json!({ "kv": true, "config": true, "panel": ["servers.read"] })),
        )
        .await;
        assert_eq!(response.status(), 200);
        let granted: Value = response.json().await.expect("JSON");
        assert_eq!(granted["granted"]["panel"], json!(["servers.read"]));

        let response = post(&panel, "/api/v1/plugins/quota-guard/activate", None).await;
        assert_eq!(response.status(), 200);
        let active: Value = response.json().await.expect("JSON");
        assert_eq!(active["state"], "active");
        assert_eq!(active["loaded"], true);
        assert_eq!(panel.state().plugins().expect("manager").active_ids(), ["quota-guard"]);

        let list = get_json(&panel, "/api/v1/plugins").await;
        assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
        let status = get_json(&panel, "/api/v1/plugins/quota-guard/status").await;
        assert_eq!(status["loaded"], true);
        assert_eq!(status["quarantine_reason"], Value::Null);
        get_json(&panel, "/api/v1/plugins/quota-guard/logs").await;
        let response = post(&panel, "/api/v1/plugins/quota-guard/release", None).await;
        assert_eq!(response.status(), 204);

        let response = post(&panel, "/api/v1/plugins/quota-guard/deactivate", None).await;
        assert_eq!(response.status(), 200);
        assert!(panel.state().plugins().expect("manager").active_ids().is_empty());
        let response = client()
            .get(panel.url("/api/v1/plugins/quota-guard/logs"))
            .bearer_auth(PLUGIN_ADMIN)
            .send()
            .await
            .expect("request");
        expect_problem(response, 409, "plugin-not-active").await;

        assert_eq!(
            event_kinds(&panel, "quota-guard").await,
            [
                "plugin.deactivated",
                "plugin.released",
                "plugin.activated",
                "plugin.granted",
                "plugin.installed",
            ]
        );
        panel.stop().await.expect("stops");
    }
}

on_every_database! {
    async fn keeps_the_old_version_active_when_an_update_fails_to_load(db: &TestDb) {
        let panel = start(db).await;
        install_and_activate(&panel, "test-game").await;

        // 1.1.0 needs a configuration value nobody set: it cannot load, so
        // the update is refused and 1.0.0 stays.
        let broken = format!(
            "{}\n[[config]]\nkey = \"license-key\"\ntype = \"string\"\nrequired = true\n",
            manifest_text("test-game").replace("version = \"1.0.0\"", "version = \"1.1.0\"")
        );
        let response = upload(&panel, package_with("test-game", &broken)).await;
        let problem = expect_problem(response, 409, "plugin-config-missing").await;
        assert!(problem["detail"].as_str().is_some_and(|d| d.contains("license-key")), "{problem:#}");
        let plugin = get_json(&panel, "/api/v1/plugins/test-game").await;
        assert_eq!(plugin["version"], "1.0.0");
        assert_eq!(plugin["state"], "active");
        let manager = panel.state().plugins().expect("manager");
        let loaded = manager.active("test-game").expect("still loaded");
        assert_eq!(loaded.manifest().plugin.version.to_string(), "1.0.0");

        // A good 1.1.0 is swapped in.
        let good = manifest_text("test-game").replace("version = \"1.0.0\"", "version = \"1.1.0\"");
        let response = upload(&panel, package_with("test-game", &good)).await;
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.expect("JSON");
        assert_eq!(body["replaced"], "1.0.0");
        assert_eq!(body["plugin"]["version"], "1.1.0");
        assert_eq!(body["plugin"]["state"], "active");
        let loaded = manager.active("test-game").expect("loaded");
        assert_eq!(loaded.manifest().plugin.version.to_string(), "1.1.0");

        // Going back is not an update.
        let response = upload(&panel, package("test-game")).await;
        expect_problem(response, 409, "version-not-newer").await;
        let kinds = event_kinds(&panel, "test-game").await;
        assert_eq!(kinds.first().map(String::as_str), Some("plugin.updated"));
        assert_eq!(kinds.iter().filter(|k| *k == "plugin.updated").count(), 1);
        panel.stop().await.expect("stops");
    }
}

on_every_database! {
    async fn loads_active_plugins_again_when_the_panel_restarts(db: &TestDb) {
        let panel = start(db).await;
        install_and_activate(&panel, "test-game").await;
        let response = upload(&panel, package("quota-guard")).await;
        assert_eq!(response.status(), 201);
        panel.stop().await.expect("stops");

        let panel = start(db).await;
        let manager = panel.state().plugins().expect("manager");
        assert_eq!(manager.active_ids(), ["test-game"]);
        let game = manager.active("test-game").expect("loaded");
        let info = game.describe_game().await.expect("the real plugin answers");
        assert!(!info.name.is_empty());
        panel.stop().await.expect("stops");
    }
}

on_every_database! {
    async fn validates_configuration_and_never_reveals_a_secret(db: &TestDb) {
        let panel = start(db).await;
        let response = upload(&panel, package("discord-webhook")).await;
        assert_eq!(response.status(), 201);
        let http = client();
        let config_url = panel.url("/api/v1/plugins/discord-webhook/config");

        let response = http
            .put(&config_url)
            .bearer_auth(PLUGIN_ADMIN)
            .json(&json!({ "values": { "username": "Bot", "colour": "red" } }))
            .send()
            .await
            .expect("request");
        let problem = expect_problem(response, 422, "validation-failed").await;
        assert_eq!(problem["errors"][0]["field"], "colour");

        let response = http
            .put(&config_url)
            .bearer_auth(PLUGIN_ADMIN)
            .json(&json!({ "values": { "username": "Bot" } }))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 200);
        let config: Value = response.json().await.expect("JSON");
        assert_eq!(config["items"][0]["key"], "username");
        assert_eq!(config["items"][0]["value"], "Bot");
        assert_eq!(config["items"][0]["default"], "Ctrl-Alt-Play");

        let secret = "https://discord.com/api/webhooks/1/very-secret";
        let response = http
            .put(panel.url("/api/v1/plugins/discord-webhook/secrets/webhook-url"))
            .bearer_auth(PLUGIN_ADMIN)
            .json(&json!({ "value": secret }))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 204);
        let response = http
            .put(panel.url("/api/v1/plugins/discord-webhook/secrets/other"))
            .bearer_auth(PLUGIN_ADMIN)
            .json(&json!({ "value": "x" }))
            .send()
            .await
            .expect("request");
        expect_problem(response, 422, "validation-failed").await;

        let config = get_json(&panel, "/api/v1/plugins/discord-webhook/config").await;
        assert_eq!(config["secrets_set"], json!(["webhook-url"]));
        let everything = format!(
            "{config}{}{}",
            get_json(&panel, "/api/v1/plugins/discord-webhook").await,
            get_json(&panel, "/api/v1/audit-log?limit=200").await
        );
        assert!(!everything.contains("very-secret"), "a secret leaked: {everything}");

        // Uninstalling without purge keeps the configuration for a reinstall.
        let response = http
            .delete(panel.url("/api/v1/plugins/discord-webhook?purge=false"))
            .bearer_auth(PLUGIN_ADMIN)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 204);
        assert_eq!(upload(&panel, package("discord-webhook")).await.status(), 201);
        let config = get_json(&panel, "/api/v1/plugins/discord-webhook/config").await;
        assert_eq!(config["items"][0]["value"], "Bot");
        assert_eq!(config["secrets_set"], json!(["webhook-url"]));

        // Purging drops it.
        let response = http
            .delete(panel.url("/api/v1/plugins/discord-webhook?purge=true"))
            .bearer_auth(PLUGIN_ADMIN)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 204);
        assert_eq!(upload(&panel, package("discord-webhook")).await.status(), 201);
        let config = get_json(&panel, "/api/v1/plugins/discord-webhook/config").await;
        assert_eq!(config["items"][0]["value"], Value::Null);
        assert_eq!(config["secrets_set"], json!([]));
        panel.stop().await.expect("stops");
    }
}

#[tokio::test]
async fn refuses_bad_uploads_and_callers_without_admin_plugins() {
    let db = TestDb::sqlite().await;
    let panel = start(&db).await;
    let response = upload(&panel, b"not a package".to_vec()).await;
    expect_problem(response, 422, "invalid-package").await;

    let response = client()
        .post(panel.url("/api/v1/plugins"))
        .bearer_auth(PLUGIN_ADMIN)
        .json(&json!({}))
        .send()
        .await
        .expect("request");
    expect_problem(response, 415, "unsupported-media-type").await;

    let response = client()
        .post(panel.url("/api/v1/plugins"))
        .bearer_auth(PLAYER)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .body(package("test-game"))
        .send()
        .await
        .expect("request");
    expect_problem(response, 403, "forbidden").await;

    let response = post(&panel, "/api/v1/plugins/nope/activate", None).await;
    expect_problem(response, 404, "not-found").await;
    assert!(
        panel
            .state()
            .plugins()
            .expect("manager")
            .list()
            .await
            .expect("list")
            .is_empty()
    );
    panel.stop().await.expect("stops");
}
