//! `GET /api/v1/audit-log`: authentication, filters, pagination, and the
//! record a change leaves behind.

use cap_panel::db::NewEvent;
use cap_panel::db::domain::{At, NodeEvent, NodeId};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::datetime;

use crate::support::{
    ADMIN_TOKEN, ADMIN_USER, READER_TOKEN, TestDb, client, expect_problem, on_every_database,
    start_default_panel, start_panel,
};

#[tokio::test]
async fn refuses_the_audit_log_without_an_authenticator_by_default() {
    let db = TestDb::sqlite().await;
    let panel = start_default_panel(&db).await;
    let response = client()
        .get(panel.url("/api/v1/audit-log"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("request");
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    let problem = expect_problem(response, 401, "unauthenticated").await;
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("no authentication provider"))
    );
}

#[tokio::test]
async fn refuses_the_audit_log_without_credentials() {
    let db = TestDb::sqlite().await;
    let panel = start_panel(&db).await;
    let response = client()
        .get(panel.url("/api/v1/audit-log"))
        .send()
        .await
        .expect("request");
    expect_problem(response, 401, "unauthenticated").await;
}

#[tokio::test]
async fn refuses_the_audit_log_to_a_caller_without_audit_read() {
    let db = TestDb::sqlite().await;
    let panel = start_panel(&db).await;
    let response = client()
        .get(panel.url("/api/v1/audit-log"))
        .bearer_auth(READER_TOKEN)
        .send()
        .await
        .expect("request");
    let problem = expect_problem(response, 403, "forbidden").await;
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("audit.read"))
    );
}

async fn audit_log(panel: &cap_panel::RunningPanel, query: &str) -> Value {
    let response = client()
        .get(panel.url(&format!("/api/v1/audit-log?{query}")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200, "{query}");
    response.json().await.expect("JSON")
}

fn ids(page: &Value) -> Vec<i64> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["id"].as_i64().expect("an id"))
        .collect()
}

#[tokio::test]
async fn lists_events_newest_first_with_filters_and_cursor_pagination() {
    let db = TestDb::sqlite().await;
    let panel = start_panel(&db).await;
    let events = panel.state().db().events();
    let times: [OffsetDateTime; 5] = [
        datetime!(2026-01-01 00:00 UTC),
        datetime!(2026-01-02 00:00 UTC),
        datetime!(2026-01-03 00:00 UTC),
        datetime!(2026-01-04 00:00 UTC),
        datetime!(2026-01-05 00:00 UTC),
    ];
    let mut stored = Vec::new();
    for (i, at) in times.iter().enumerate() {
        let subject = NodeId::new(format!("s{}", i % 2));
        let data = At { at: i as i64 };
        let event = if i % 2 == 0 {
            NodeEvent::Online { subject, data }
        } else {
            NodeEvent::Offline { subject, data }
        };
        let event = NewEvent::new(event).occurred_at(*at);
        stored.push(events.append(&event).await.expect("append").id.0);
    }

    // Pages of two, newest first, until next_cursor is null.
    let mut seen = Vec::new();
    let mut query = "limit=2".to_owned();
    loop {
        let page = audit_log(&panel, &query).await;
        seen.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(cursor) => query = format!("limit=2&cursor={cursor}"),
            None => break,
        }
    }
    let mut newest_first = stored.clone();
    newest_first.reverse();
    assert_eq!(seen, newest_first);

    let page = audit_log(&panel, "kind=node.offline").await;
    assert_eq!(ids(&page), [stored[3], stored[1]]);
    let page = audit_log(&panel, "subject_type=node&subject_id=s0").await;
    assert_eq!(ids(&page), [stored[4], stored[2], stored[0]]);
    let page = audit_log(
        &panel,
        "since=2026-01-02T00:00:00Z&until=2026-01-04T00:00:00Z",
    )
    .await;
    assert_eq!(
        ids(&page),
        [stored[2], stored[1]],
        "since is inclusive, until exclusive"
    );

    let entry = &audit_log(&panel, "limit=1").await["items"][0];
    assert_eq!(entry["occurred_at"], "2026-01-05T00:00:00Z");
    assert_eq!(entry["kind"], "node.online");
    assert_eq!(entry["subject"], json!({ "type": "node", "id": "s0" }));
    assert_eq!(entry["data"], json!({ "at": 4 }));
    assert_eq!(
        entry["actor"],
        json!({ "user_id": null, "ip": null, "request_id": null })
    );
}

#[tokio::test]
async fn lists_an_event_of_a_kind_it_does_not_know_without_its_data() {
    let db = TestDb::sqlite().await;
    let panel = start_panel(&db).await;
    db.execute_raw(
        "INSERT INTO events (occurred_at, kind, subject_type, subject_id, data) \
         VALUES (1, 'server.teleported', 'server', 's1', '{\"password\": \"hunter2\"}')",
    )
    .await
    .expect("an event a newer Panel wrote");
    let page = audit_log(&panel, "kind=server.teleported").await;
    let entry = &page["items"][0];
    assert_eq!(entry["subject"], json!({ "type": "server", "id": "s1" }));
    assert_eq!(entry["data"], Value::Null, "{page:#}");
}

#[tokio::test]
async fn rejects_invalid_filters_with_per_field_errors() {
    let db = TestDb::sqlite().await;
    let panel = start_panel(&db).await;
    for (query, field) in [
        ("kind=Not%20A%20Kind", "kind"),
        ("subject_id=42", "subject_id"),
        ("since=yesterday", "since"),
        (
            "since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z",
            "until",
        ),
        ("subject_type=server&subject_id=", "subject_id"),
    ] {
        let response = client()
            .get(panel.url(&format!("/api/v1/audit-log?{query}")))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("request");
        let problem = expect_problem(response, 422, "validation-failed").await;
        let fields: Vec<&str> = problem["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .filter_map(|e| e["field"].as_str())
            .collect();
        assert!(fields.contains(&field), "{query}: {problem:#}");
    }
}

on_every_database! {
    /// A change through the API leaves an event naming the user, the
    /// client's address and the request id, readable through the audit log.
    async fn records_who_changed_a_setting_from_where_and_in_which_request(db: &TestDb) {
        let panel = start_panel(db).await;
        let response = client()
            .put(panel.url("/api/v1/settings/motd"))
            .bearer_auth(ADMIN_TOKEN)
            .header("x-request-id", "change-motd-1")
            .json(&json!({ "value": { "text": "Wartung um 22 Uhr ✓" } }))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 200);

        let page = audit_log(&panel, "kind=setting.updated").await;
        let items = page["items"].as_array().expect("items");
        assert_eq!(items.len(), 1, "{page:#}");
        let entry = &items[0];
        assert_eq!(entry["actor"]["user_id"], ADMIN_USER);
        assert_eq!(entry["actor"]["ip"], "127.0.0.1");
        assert_eq!(entry["actor"]["request_id"], "change-motd-1");
        assert_eq!(entry["subject"], json!({ "type": "setting", "id": "motd" }));
        assert_eq!(entry["data"], json!({ "value": { "text": "Wartung um 22 Uhr ✓" } }));
        panel.stop().await.expect("clean stop");
    }
}
