//! `/api/v1/settings` over HTTP.

use serde_json::{Value, json};

use crate::support::{ADMIN_TOKEN, READER_TOKEN, TestDb, client, expect_problem, start_panel};

#[tokio::test]
async fn creates_reads_lists_updates_and_deletes_a_setting() {
    let db = TestDb::sqlite().await;
    let panel = start_panel(&db).await;
    let http = client();
    let url = panel.url("/api/v1/settings/registration.open");

    let response = http
        .post(panel.url("/api/v1/settings"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({ "name": "registration.open", "value": false }))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.expect("JSON");
    assert_eq!(created["name"], "registration.open");
    assert_eq!(created["value"], false);
    assert!(
        created["updated_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );

    let read: Value = http
        .get(&url)
        .bearer_auth(READER_TOKEN)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("JSON");
    assert_eq!(read, created);

    let response = http
        .put(&url)
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({ "value": true }))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let list: Value = http
        .get(panel.url("/api/v1/settings"))
        .bearer_auth(READER_TOKEN)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("JSON");
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(list["items"][0]["value"], true);

    let response = http
        .delete(&url)
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 204);
    let response = http
        .get(&url)
        .bearer_auth(READER_TOKEN)
        .send()
        .await
        .expect("request");
    expect_problem(response, 404, "not-found").await;
    let response = http
        .delete(&url)
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("request");
    expect_problem(response, 404, "not-found").await;
}

#[tokio::test]
async fn answers_a_duplicate_setting_with_a_conflict_problem() {
    let db = TestDb::sqlite().await;
    let panel = start_panel(&db).await;
    let create = || {
        client()
            .post(panel.url("/api/v1/settings"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({ "name": "motd", "value": "hello" }))
            .send()
    };
    assert_eq!(create().await.expect("request").status(), 201);
    let problem = expect_problem(create().await.expect("request"), 409, "conflict").await;
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("motd")),
        "{problem:#}"
    );
    let detail = problem.to_string().to_lowercase();
    for leak in ["unique", "constraint", "sqlite", "insert"] {
        assert!(
            !detail.contains(leak),
            "the problem leaks {leak:?}: {problem:#}"
        );
    }
}

#[tokio::test]
async fn refuses_writes_to_a_caller_without_settings_write() {
    let db = TestDb::sqlite().await;
    let panel = start_panel(&db).await;
    let response = client()
        .put(panel.url("/api/v1/settings/motd"))
        .bearer_auth(READER_TOKEN)
        .json(&json!({ "value": 1 }))
        .send()
        .await
        .expect("request");
    expect_problem(response, 403, "forbidden").await;
    assert_eq!(
        panel
            .state()
            .db()
            .settings()
            .get("motd")
            .await
            .expect("read"),
        None
    );
}

#[tokio::test]
async fn rejects_an_invalid_setting_name_in_the_path() {
    let db = TestDb::sqlite().await;
    let panel = start_panel(&db).await;
    let response = client()
        .get(panel.url("/api/v1/settings/Not%20Valid"))
        .bearer_auth(READER_TOKEN)
        .send()
        .await
        .expect("request");
    let problem = expect_problem(response, 422, "validation-failed").await;
    assert_eq!(problem["errors"][0]["in"], "path");
    assert_eq!(problem["errors"][0]["field"], "name");
}
