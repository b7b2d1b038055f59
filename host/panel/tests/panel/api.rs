//! API conventions: health, problem documents, request ids, metrics, the
//! OpenAPI document and graceful shutdown.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::support::{
    ADMIN_TOKEN, TestDb, client, expect_problem, on_every_database, start_panel, start_panel_with,
};

on_every_database! {
    async fn reports_the_version_and_a_reachable_database_in_health(db: &TestDb) {
        let panel = start_panel(db).await;
        let response = client().get(panel.url("/api/v1/health")).send().await.expect("request");
        assert_eq!(response.status(), 200);
        let health: Value = response.json().await.expect("JSON");
        assert_eq!(health["status"], "ok");
        assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(health["database"]["backend"], db.backend().as_str());
        assert_eq!(health["database"]["reachable"], true);
        assert!(health["database"]["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0));
        panel.stop().await.expect("clean stop");
    }
}

#[tokio::test]
async fn reports_an_unreachable_database_in_health_with_503() {
    let db = TestDb::postgres().await;
    let panel = start_panel(&db).await;
    // Take the database away under the running Panel.
    let cap_panel::db::DatabaseLocation::Url(url) = db.location() else {
        panic!("PostgreSQL test databases have URLs");
    };
    let name = url.rsplit('/').next().expect("a database name");
    let admin = TestDb::postgres().await;
    admin
        .execute_raw(&format!("DROP DATABASE \"{name}\" WITH (FORCE)"))
        .await
        .expect("dropping the Panel's database");

    let response = client()
        .get(panel.url("/api/v1/health"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 503);
    let health: Value = response.json().await.expect("JSON");
    assert_eq!(health["status"], "unavailable");
    assert_eq!(health["database"]["reachable"], false);
    panel.stop().await.expect("clean stop");
}

#[tokio::test]
async fn rejects_malformed_json_with_a_problem_document() {
    let db = TestDb::sqlite().await;
    let panel = start_panel(&db).await;
    let response = client()
        .put(panel.url("/api/v1/settings/motd"))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body(r#"{"value": "#)
        .send()
        .await
        .expect("request");
    let problem = expect_problem(response, 400, "malformed-json").await;
    assert_eq!(problem["instance"], "/api/v1/settings/motd");
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("EOF")),
        "{problem:#}"
    );
    assert!(problem.get("errors").is_none(), "{problem:#}");
}

#[tokio::test]
async fn rejects_a_body_that_is_not_json_with_415() {
    let db = TestDb::sqlite().await;
    let panel = start_panel(&db).await;
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let mut request = client()
            .put(panel.url("/api/v1/settings/motd"))
            .bearer_auth(ADMIN_TOKEN)
            .body(r#"{"value": 1}"#);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.expect("request");
        expect_problem(response, 415, "unsupported-media-type").await;
    }
}

#[tokio::test]
async fn rejects_an_oversized_body_with_413() {
    let db = TestDb::sqlite().await;
    let mut config = db.config();
    config.body_limit = 1024;
    let panel = start_panel_with(config).await;
    let body = json!({ "value": "x".repeat(2048) }).to_string();
    let response = client()
        .put(panel.url("/api/v1/settings/motd"))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("request");
    expect_problem(response, 413, "payload-too-large").await;
}

#[tokio::test]
async fn rejects_json_of_the_wrong_shape_with_per_field_errors() {
    let db = TestDb::sqlite().await;
    let panel = start_panel(&db).await;
    let cases = [
        (json!({ "name": 5, "value": 1 }), "name", "invalid type"),
        (json!({ "value": 1 }), "name", "missing field"),
        (
            json!({ "name": "a", "value": 1, "extra": true }),
            "extra",
            "unknown field",
        ),
    ];
    for (body, field, message) in cases {
        let response = client()
            .post(panel.url("/api/v1/settings"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
            .await
            .expect("request");
        let problem = expect_problem(response, 422, "validation-failed").await;
        let errors = problem["errors"].as_array().expect("per-field errors");
        assert_eq!(errors.len(), 1, "{problem:#}");
        assert_eq!(errors[0]["in"], "body", "{problem:#}");
        assert_eq!(errors[0]["field"], field, "{problem:#}");
        assert!(
            errors[0]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with(message)),
            "{problem:#}"
        );
    }
}

#[tokio::test]
async fn answers_an_unknown_route_with_a_not_found_problem() {
    let db = TestDb::sqlite().await;
    let panel = start_panel(&db).await;
    // `/` is the web UI's page; everything else unknown is a problem.
    for path in ["/api/v1/nope", "/nope", "/api/v2/health"] {
        let response = client().get(panel.url(path)).send().await.expect("request");
        let problem = expect_problem(response, 404, "not-found").await;
        assert_eq!(problem["instance"], path);
    }
}

#[tokio::test]
async fn answers_a_wrong_method_with_405_and_an_allow_header() {
    let db = TestDb::sqlite().await;
    let panel = start_panel(&db).await;
    let response = client()
        .delete(panel.url("/api/v1/health"))
        .send()
        .await
        .expect("request");
    let allow = response
        .headers()
        .get("allow")
        .and_then(|v| v.to_str().ok())
        .expect("an Allow header")
        .to_owned();
    assert!(allow.contains("GET"), "{allow}");
    expect_problem(response, 405, "method-not-allowed").await;
}

#[tokio::test]
async fn rejects_out_of_range_pagination_with_per_field_errors() {
    let db = TestDb::sqlite().await;
    let panel = start_panel(&db).await;
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("limit=ten", "limit"),
        ("limit=-1", "limit"),
        ("cursor=forged", "cursor"),
    ] {
        let response = client()
            .get(panel.url(&format!("/api/v1/audit-log?{query}")))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("request");
        let problem = expect_problem(response, 422, "validation-failed").await;
        assert_eq!(problem["errors"][0]["in"], "query", "{query}: {problem:#}");
        assert_eq!(problem["errors"][0]["field"], field, "{query}: {problem:#}");
    }
}

#[tokio::test]
async fn echoes_a_sane_request_id() {
    let db = TestDb::sqlite().await;
    let panel = start_panel(&db).await;
    let response = client()
        .get(panel.url("/api/v1/health"))
        .header("x-request-id", "edge-7f3a:42")
        .send()
        .await
        .expect("request");
    assert_eq!(response.headers()["x-request-id"], "edge-7f3a:42");
}

#[tokio::test]
async fn replaces_an_unsafe_request_id_with_a_generated_one() {
    let db = TestDb::sqlite().await;
    let panel = start_panel(&db).await;
    for sent in ["has spaces", &"a".repeat(200), "semi;colon"] {
        let response = client()
            .get(panel.url("/api/v1/health"))
            .header("x-request-id", sent)
            .send()
            .await
            .expect("request");
        let got = response.headers()["x-request-id"].to_str().expect("ASCII");
        assert_ne!(got, sent);
        assert_eq!(got.len(), 32, "a generated id: {got}");
    }
}

#[tokio::test]
async fn generates_a_distinct_request_id_when_none_is_sent() {
    let db = TestDb::sqlite().await;
    let panel = start_panel(&db).await;
    let mut seen = BTreeSet::new();
    for _ in 0..3 {
        let response = client()
            .get(panel.url("/api/v1/health"))
            .send()
            .await
            .expect("request");
        let id = response.headers()["x-request-id"]
            .to_str()
            .expect("ASCII")
            .to_owned();
        assert!(id.chars().all(|c| c.is_ascii_hexdigit()), "{id}");
        seen.insert(id);
    }
    assert_eq!(seen.len(), 3);
}

#[tokio::test]
async fn puts_the_request_id_into_problem_documents() {
    let db = TestDb::sqlite().await;
    let panel = start_panel(&db).await;
    let response = client()
        .get(panel.url("/api/v1/missing"))
        .header("x-request-id", "trace-abc")
        .send()
        .await
        .expect("request");
    let problem = expect_problem(response, 404, "not-found").await;
    assert_eq!(problem["request_id"], "trace-abc");
}

/// The metric lines whose name is `name` and whose labels include every
/// one of `labels`.
fn metric_lines<'a>(text: &'a str, name: &str, labels: &[&str]) -> Vec<&'a str> {
    text.lines()
        .filter(|line| line.starts_with(&format!("{name}{{")))
        .filter(|line| labels.iter().all(|label| line.contains(label)))
        .collect()
}

#[tokio::test]
async fn exposes_request_counts_and_latency_by_route_and_status() {
    let db = TestDb::sqlite().await;
    let mut config = db.config();
    config.metrics_token =
        Some(cap_panel::config::MetricsToken::new(crate::support::METRICS_TOKEN).expect("long"));
    let panel = start_panel_with(config).await;
    let http = client();
    for _ in 0..2 {
        http.get(panel.url("/api/v1/health"))
            .send()
            .await
            .expect("request");
    }
    http.get(panel.url("/no/such/thing"))
        .send()
        .await
        .expect("request");
    http.get(panel.url("/api/v1/settings/x"))
        .send()
        .await
        .expect("request");

    let response = http
        .get(panel.url("/metrics"))
        .bearer_auth(crate::support::METRICS_TOKEN)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .expect("ASCII")
            .starts_with("text/plain")
    );
    let text = response.text().await.expect("text");

    let health = [
        "method=\"GET\"",
        "route=\"/api/v1/health\"",
        "status=\"200\"",
    ];
    let counts = metric_lines(&text, "http_requests_total", &health);
    assert_eq!(counts.len(), 1, "{text}");
    assert!(counts[0].ends_with(" 2"), "{}", counts[0]);
    assert!(
        !metric_lines(&text, "http_request_duration_seconds_bucket", &health).is_empty(),
        "{text}"
    );
    assert_eq!(
        metric_lines(&text, "http_request_duration_seconds_count", &health)
            .first()
            .map(|l| l.ends_with(" 2")),
        Some(true),
        "{text}"
    );
    // Unknown paths share one label value, so they cannot blow up the series.
    assert_eq!(
        metric_lines(
            &text,
            "http_requests_total",
            &["route=\"unmatched\"", "status=\"404\""]
        )
        .len(),
        1,
        "{text}"
    );
    // Routes are labelled by template, not by the concrete path.
    assert_eq!(
        metric_lines(
            &text,
            "http_requests_total",
            &["route=\"/api/v1/settings/{name}\"", "status=\"401\""]
        )
        .len(),
        1,
        "{text}"
    );
    assert!(text.contains("cap_panel_build_info{version=\""), "{text}");
}

/// Every `$ref` in `value`.
fn refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn serves_an_openapi_3_1_document_covering_every_route() {
    let db = TestDb::sqlite().await;
    let panel = start_panel(&db).await;
    let response = client()
        .get(panel.url("/api/v1/openapi.json"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let doc: Value = response.json().await.expect("JSON");

    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1.")),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    let expected = [
        ("/api/v1/health", "get"),
        ("/api/v1/openapi.json", "get"),
        ("/api/v1/audit-log", "get"),
        ("/api/v1/settings", "get"),
        ("/api/v1/settings", "post"),
        ("/api/v1/settings/{name}", "get"),
        ("/api/v1/settings/{name}", "put"),
        ("/api/v1/settings/{name}", "delete"),
        ("/metrics", "get"),
        // Identity (tests/panel/identity.rs).
        ("/api/v1/auth/login", "post"),
        ("/api/v1/auth/logout", "post"),
        ("/api/v1/auth/me", "get"),
        ("/api/v1/auth/refresh", "post"),
        ("/api/v1/account/api-keys", "get"),
        ("/api/v1/account/api-keys", "post"),
        ("/api/v1/account/api-keys/{id}", "delete"),
        // SSH keys for SFTP sign-ins (tests/panel/sftp.rs).
        ("/api/v1/account/ssh-keys", "get"),
        ("/api/v1/account/ssh-keys", "post"),
        ("/api/v1/account/ssh-keys/{key}", "delete"),
        // Redirect sign-in and linking (tests/panel/oidc.rs).
        ("/api/v1/auth/redirect/{provider}/begin", "post"),
        ("/api/v1/auth/redirect/{provider}/callback", "get"),
        ("/api/v1/auth/redirect/exchange", "post"),
        ("/api/v1/account/identities/{provider}/link", "post"),
        // Second factor (tests/panel/totp.rs).
        ("/api/v1/auth/login/second-factor", "post"),
        ("/api/v1/account/totp", "get"),
        ("/api/v1/account/totp", "post"),
        ("/api/v1/account/totp", "delete"),
        ("/api/v1/account/totp/confirm", "post"),
        ("/api/v1/account/totp/recovery-codes", "post"),
        // The caller's password (tests/panel/identity.rs, the browser tests).
        ("/api/v1/account/password", "put"),
        // Users and roles (tests/panel/users.rs).
        ("/api/v1/users", "get"),
        ("/api/v1/users", "post"),
        ("/api/v1/users/{id}", "get"),
        ("/api/v1/users/{id}", "patch"),
        ("/api/v1/users/{id}", "delete"),
        ("/api/v1/users/{id}/totp", "delete"),
        ("/api/v1/roles", "get"),
        ("/api/v1/roles", "post"),
        ("/api/v1/roles/{id}", "get"),
        ("/api/v1/roles/{id}", "patch"),
        ("/api/v1/roles/{id}", "delete"),
        ("/api/v1/permissions", "get"),
        // Plugin management (tests/panel/plugins.rs).
        ("/api/v1/plugins", "get"),
        ("/api/v1/plugins", "post"),
        ("/api/v1/plugins/{id}", "get"),
        ("/api/v1/plugins/{id}", "delete"),
        ("/api/v1/plugins/{id}/grant", "post"),
        ("/api/v1/plugins/{id}/activate", "post"),
        ("/api/v1/plugins/{id}/deactivate", "post"),
        ("/api/v1/plugins/{id}/config", "get"),
        ("/api/v1/plugins/{id}/config", "put"),
        ("/api/v1/plugins/{id}/secrets/{key}", "put"),
        ("/api/v1/plugins/{id}/logs", "get"),
        ("/api/v1/plugins/{id}/status", "get"),
        ("/api/v1/plugins/{id}/release", "post"),
        // Plugins' timers (tests/panel/timers.rs).
        ("/api/v1/plugins/{id}/timers", "get"),
        ("/api/v1/plugins/{id}/timer-runs", "get"),
        // Nodes and Agent registration (tests/panel/nodes.rs).
        ("/api/v1/nodes", "get"),
        ("/api/v1/nodes", "post"),
        ("/api/v1/nodes/{id}", "get"),
        ("/api/v1/nodes/{id}", "patch"),
        ("/api/v1/nodes/{id}", "delete"),
        ("/api/v1/nodes/{id}/allocations", "get"),
        ("/api/v1/nodes/{id}/allocations", "post"),
        ("/api/v1/nodes/{id}/allocations/{ip}/{port}", "delete"),
        ("/api/v1/nodes/{id}/registration-tokens", "post"),
        ("/api/v1/agents/register", "post"),
        // Servers (tests/panel/servers.rs).
        ("/api/v1/servers", "get"),
        ("/api/v1/servers", "post"),
        ("/api/v1/servers/{id}", "get"),
        ("/api/v1/servers/{id}", "patch"),
        ("/api/v1/servers/{id}", "delete"),
        ("/api/v1/servers/{id}/power", "post"),
        ("/api/v1/servers/{id}/install", "post"),
        ("/api/v1/servers/{id}/command", "post"),
        ("/api/v1/servers/{id}/commands", "get"),
        ("/api/v1/servers/{id}/subusers", "get"),
        ("/api/v1/servers/{id}/subusers", "post"),
        ("/api/v1/servers/{id}/subusers/{user_id}", "patch"),
        ("/api/v1/servers/{id}/subusers/{user_id}", "delete"),
        // Suspensions (tests/panel/suspension.rs).
        ("/api/v1/servers/{id}/suspension", "post"),
        ("/api/v1/servers/{id}/suspension", "delete"),
        // Transfers between nodes (tests/panel/transfers.rs).
        ("/api/v1/servers/{id}/transfer", "post"),
        ("/api/v1/servers/{id}/transfers", "get"),
        ("/api/v1/servers/{id}/transfers/{transfer_id}", "get"),
        // The console socket's ticket (tests/panel/agents.rs).
        ("/api/v1/servers/{id}/websocket", "get"),
        // Server files (tests/panel/files.rs).
        ("/api/v1/servers/{id}/files", "get"),
        ("/api/v1/servers/{id}/files/stat", "get"),
        ("/api/v1/servers/{id}/files/folders", "post"),
        ("/api/v1/servers/{id}/files/rename", "post"),
        ("/api/v1/servers/{id}/files/copy", "post"),
        ("/api/v1/servers/{id}/files/delete", "post"),
        ("/api/v1/servers/{id}/files/chmod", "post"),
        ("/api/v1/servers/{id}/files/pull", "post"),
        ("/api/v1/servers/{id}/files/compress", "post"),
        ("/api/v1/servers/{id}/files/decompress", "post"),
        ("/api/v1/servers/{id}/files/download", "post"),
        ("/api/v1/servers/{id}/files/upload", "post"),
        // Backups (tests/panel/backups.rs).
        ("/api/v1/servers/{id}/backups", "get"),
        ("/api/v1/servers/{id}/backups", "post"),
        ("/api/v1/servers/{id}/backups/{backup}", "get"),
        ("/api/v1/servers/{id}/backups/{backup}", "delete"),
        ("/api/v1/servers/{id}/backups/{backup}/lock", "post"),
        ("/api/v1/servers/{id}/backups/{backup}/restore", "post"),
        ("/api/v1/servers/{id}/backups/{backup}/download", "post"),
        ("/api/v1/servers/{id}/backup-limit", "put"),
        // A server's allocations (tests/panel/allocations.rs).
        ("/api/v1/servers/{id}/allocations", "get"),
        ("/api/v1/servers/{id}/allocations", "post"),
        ("/api/v1/servers/{id}/allocations/{ip}/{port}", "patch"),
        ("/api/v1/servers/{id}/allocations/{ip}/{port}", "delete"),
        (
            "/api/v1/servers/{id}/allocations/{ip}/{port}/primary",
            "post",
        ),
        ("/api/v1/servers/{id}/allocation-limit", "put"),
        ("/api/v1/backup-storage", "get"),
        ("/api/v1/backup-storage", "put"),
        ("/api/v1/backup-storage", "delete"),
        // Databases (tests/panel/databases.rs).
        ("/api/v1/servers/{id}/databases", "get"),
        ("/api/v1/servers/{id}/databases", "post"),
        ("/api/v1/servers/{id}/databases/{database}", "get"),
        ("/api/v1/servers/{id}/databases/{database}", "delete"),
        (
            "/api/v1/servers/{id}/databases/{database}/rotate-password",
            "post",
        ),
        ("/api/v1/servers/{id}/database-limit", "put"),
        ("/api/v1/database-hosts", "get"),
        ("/api/v1/database-hosts", "post"),
        ("/api/v1/database-hosts/{host}", "get"),
        ("/api/v1/database-hosts/{host}", "put"),
        ("/api/v1/database-hosts/{host}", "delete"),
        // What the web UI needs (tests/panel/web_ui.rs).
        ("/api/v1/auth/providers", "get"),
        ("/api/v1/game-types", "get"),
        ("/api/v1/eggs", "get"),
        ("/api/v1/eggs", "post"),
        ("/api/v1/eggs/{plugin}/{type}", "get"),
        ("/api/v1/eggs/{plugin}/{type}", "delete"),
        ("/api/v1/eggs/{plugin}/{type}/export", "get"),
        ("/api/v1/eggs/{plugin}/{type}/update", "post"),
        ("/api/v1/ui/contributions", "get"),
        ("/api/v1/ui/contributions/{plugin}/{contribution}", "get"),
        (
            "/api/v1/ui/contributions/{plugin}/{contribution}/actions",
            "post",
        ),
        // Installing from the Marketplace (tests/panel/marketplace.rs).
        ("/api/v1/marketplace/packages", "get"),
        ("/api/v1/marketplace/packages/{id}", "get"),
        ("/api/v1/marketplace/install", "post"),
        ("/api/v1/marketplace/update", "post"),
        ("/api/v1/marketplace/lockfile", "get"),
        ("/api/v1/marketplace/checkout", "post"),
        ("/api/v1/marketplace/licenses", "get"),
        ("/api/v1/marketplace/licenses/renew", "post"),
        ("/api/v1/users/{id}/password", "put"),
        ("/api/v1/users/{id}/invitation", "post"),
        ("/api/v1/users/{id}/password-reset", "post"),
        ("/api/v1/auth/password-reset", "post"),
        ("/api/v1/account-links/{token}", "get"),
        ("/api/v1/account-links/{token}", "post"),
        ("/api/v1/mail", "get"),
        ("/api/v1/mail", "put"),
        ("/api/v1/mail", "delete"),
        ("/api/v1/mail/test", "post"),
    ];
    let paths = doc["paths"].as_object().expect("paths");
    let documented: BTreeSet<(String, String)> = paths
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .into_iter()
                .flat_map(|ops| ops.keys())
                .map(move |method| (path.clone(), method.clone()))
        })
        .collect();
    let expected: BTreeSet<(String, String)> = expected
        .iter()
        .map(|(p, m)| (p.to_string(), m.to_string()))
        .collect();
    assert_eq!(documented, expected);

    // Every operation documents its responses; protected ones name the scheme.
    for (path, method) in &expected {
        let op = &doc["paths"][path][method];
        assert!(
            op["responses"].as_object().is_some_and(|r| !r.is_empty()),
            "{path} {method}"
        );
    }
    assert_eq!(
        doc["paths"]["/api/v1/audit-log"]["get"]["security"],
        json!([{ "bearer": [] }])
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let problem = &doc["components"]["schemas"]["Problem"];
    for field in ["type", "title", "status", "code"] {
        assert!(
            problem["required"]
                .as_array()
                .is_some_and(|r| r.contains(&json!(field))),
            "Problem requires {field}: {problem:#}"
        );
    }
    let not_found = &doc["paths"]["/api/v1/settings/{name}"]["get"]["responses"]["404"]["content"];
    assert!(
        not_found.get("application/problem+json").is_some(),
        "{not_found:#}"
    );

    // Free-form JSON is documented as any value, not as an object.
    let value = &doc["components"]["schemas"]["SettingBody"]["properties"]["value"];
    assert!(value.get("type").is_none(), "{value:#}");

    // Every reference resolves.
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for reference in all {
        let pointer = reference.strip_prefix('#').expect("local references only");
        assert!(
            doc.pointer(pointer).is_some(),
            "dangling reference {reference}"
        );
    }

    // The served document is the one the code generates.
    let generated = serde_json::to_value(cap_panel::http::openapi()).expect("serializable");
    assert_eq!(doc, generated);
}

#[tokio::test]
async fn stops_gracefully_and_releases_the_port() {
    let db = TestDb::sqlite().await;
    let panel = start_panel(&db).await;
    let addr = panel.local_addr();
    let url = panel.url("/api/v1/health");
    assert_eq!(
        client().get(&url).send().await.expect("request").status(),
        200
    );
    panel.stop().await.expect("clean stop");
    assert!(
        client().get(&url).send().await.is_err(),
        "nothing answers after stop"
    );
    tokio::net::TcpListener::bind(addr)
        .await
        .expect("the port is free again");
}
