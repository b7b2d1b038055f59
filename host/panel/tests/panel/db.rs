//! The data layer against every backend: migrations, the event store,
//! settings and error mapping.

use std::net::IpAddr;
use std::time::Duration;

use cap_panel::db::domain::{
    At, Empty, NodeEvent, NodeId, Null, SecretsEvent, SecretsSealed, ServerDeleted, ServerEvent,
    ServerId, SettingEvent, SettingName, SettingValueData, StateChanged, UserCreated, UserEvent,
    UserId,
};
use cap_panel::db::{
    Actor, Database, DatabaseLocation, DatabaseOptions, DbError, DomainEvent, EventFilter, EventId,
    EventQuery, MAX_PAGE_SIZE, NewEvent, Order, Subject,
};
use serde_json::{Value, json};
use time::macros::datetime;

use crate::support::{TestDb, on_every_database};

fn actor() -> Actor {
    Actor {
        user_id: Some("user-1".into()),
        ip: Some("2001:db8::7".parse::<IpAddr>().expect("an address")),
        request_id: Some("req-1".into()),
    }
}

async fn select_ids(db: &Database, filter: EventFilter) -> Vec<EventId> {
    let query = EventQuery {
        filter,
        order: Order::OldestFirst,
        ..EventQuery::default()
    };
    db.events()
        .query(&query)
        .await
        .expect("query")
        .events
        .into_iter()
        .map(|e| e.id)
        .collect()
}

/// `setting.updated` of `name` to `value`, on its own.
fn setting(name: &str, value: Value) -> NewEvent {
    NewEvent::new(SettingEvent::Updated {
        subject: SettingName::new(name),
        data: SettingValueData { value },
    })
}

/// `secrets.sealed`: an event about nothing.
fn sealed() -> NewEvent {
    NewEvent::new(SecretsEvent::Sealed {
        subject: Null,
        data: SecretsSealed {
            totp_secrets: 1,
            plugin_secrets: 0,
            marketplace_tokens: 0,
        },
    })
}

async fn append_numbered(db: &Database, count: usize) -> Vec<EventId> {
    let mut ids = Vec::new();
    for n in 0..count {
        let event = setting("numbered", json!({ "n": n }));
        ids.push(db.events().append(&event).await.expect("append").id);
    }
    ids
}

on_every_database! {
    async fn appends_an_event_and_reads_it_back_unchanged(db: &TestDb) {
        let db = db.connect().await;
        let changed = ServerEvent::StateChanged {
            subject: ServerId::new("Srv-ÄÖ-1"),
            data: StateChanged {
                from: "offline".into(),
                to: "Überwelt ✓".into(),
                reason: None,
                at: 4096,
            },
        };
        let new = NewEvent::new(changed.clone())
            .actor(actor())
            .occurred_at(datetime!(2026-03-04 05:06:07.123456789 UTC));
        let stored = db.events().append(&new).await.expect("append");
        assert!(stored.id.0 > 0);
        assert_eq!(stored.kind, "server.state.changed");
        assert_eq!(stored.actor, actor());
        assert_eq!(stored.subject, Some(Subject::new("server", "Srv-ÄÖ-1")));
        assert_eq!(
            stored.data,
            json!({ "from": "offline", "to": "Überwelt ✓", "reason": null, "at": 4096 })
        );
        assert_eq!(
            stored.occurred_at,
            datetime!(2026-03-04 05:06:07.123456 UTC),
            "stored with microsecond precision"
        );

        assert_eq!(db.events().get(stored.id).await.expect("get"), Some(stored.clone()));
        assert_eq!(stored.decode(), Ok(DomainEvent::Server(changed)));
        let page = db.events().query(&EventQuery::default()).await.expect("query");
        assert_eq!(page.events, std::slice::from_ref(&stored));
        assert_eq!(page.next, None);
        assert_eq!(db.events().get(EventId(stored.id.0 + 1000)).await.expect("get"), None);

        let bare = db.events().append(&sealed()).await.expect("append");
        let read = db.events().get(bare.id).await.expect("get").expect("exists");
        assert_eq!(read.actor, Actor::system());
        assert_eq!(read.subject, None);
        assert_eq!(read.data, json!({ "totp_secrets": 1, "plugin_secrets": 0, "marketplace_tokens": 0 }));
        assert_eq!(read.decode().map(|e| e.kind()), Ok("secrets.sealed"));
        assert!(read.id > stored.id, "ids increase");
        db.close().await;
    }
}

on_every_database! {
    async fn pages_through_events_in_both_orders_with_a_cursor(db: &TestDb) {
        let db = db.connect().await;
        let ids = append_numbered(&db, 7).await;
        for order in [Order::NewestFirst, Order::OldestFirst] {
            let mut seen = Vec::new();
            let mut pages = 0;
            let mut after = None;
            loop {
                let query = EventQuery { order, after, limit: 3, ..EventQuery::default() };
                let page = db.events().query(&query).await.expect("query");
                pages += 1;
                assert!(page.events.len() <= 3);
                seen.extend(page.events.iter().map(|e| e.id));
                match page.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
            let mut expected = ids.clone();
            if order == Order::NewestFirst {
                expected.reverse();
            }
            assert_eq!(seen, expected, "{order:?}");
            assert_eq!(pages, 3, "{order:?}: 3 + 3 + 1");
        }
        // A page that ends exactly at the end has no next cursor.
        let query = EventQuery { limit: 7, ..EventQuery::default() };
        assert_eq!(db.events().query(&query).await.expect("query").next, None);
        db.close().await;
    }
}

on_every_database! {
    async fn filters_events_by_kind_subject_actor_and_time_range(db: &TestDb) {
        let db = db.connect().await;
        let events = db.events();
        let node = |kind: &str, id: &str| {
            let (subject, data) = (NodeId::new(id), At { at: 1 });
            NewEvent::new(match kind {
                "online" => NodeEvent::Online { subject, data },
                _ => NodeEvent::Offline { subject, data },
            })
        };
        let a = events.append(&node("online", "1")
            .occurred_at(datetime!(2026-01-01 00:00 UTC)).actor(actor())).await.expect("append");
        let b = events.append(&node("offline", "1")
            .occurred_at(datetime!(2026-01-02 00:00 UTC))).await.expect("append");
        let c = events.append(&node("online", "2")
            .occurred_at(datetime!(2026-01-03 00:00 UTC))).await.expect("append");
        let user = UserEvent::Created {
            subject: UserId::new("1"),
            data: UserCreated { username: "one".into(), admin: false },
        };
        let d = events.append(&NewEvent::new(user)
            .occurred_at(datetime!(2026-01-04 00:00 UTC)).actor(actor())).await.expect("append");

        let select = |filter: EventFilter| select_ids(&db, filter);
        assert_eq!(select(EventFilter { kind: Some("node.online".into()), ..Default::default() }).await, [a.id, c.id]);
        assert_eq!(
            select(EventFilter { subject_kind: Some("node".into()), subject_id: Some("1".into()), ..Default::default() }).await,
            [a.id, b.id]
        );
        assert_eq!(select(EventFilter { subject_id: Some("1".into()), ..Default::default() }).await, [a.id, b.id, d.id]);
        assert_eq!(select(EventFilter { actor_user_id: Some("user-1".into()), ..Default::default() }).await, [a.id, d.id]);
        assert_eq!(
            select(EventFilter {
                since: Some(datetime!(2026-01-02 00:00 UTC)),
                until: Some(datetime!(2026-01-04 00:00 UTC)),
                ..Default::default()
            }).await,
            [b.id, c.id],
            "since inclusive, until exclusive"
        );
        assert_eq!(
            select(EventFilter { kind: Some("node.online".into()), actor_user_id: Some("user-1".into()), ..Default::default() }).await,
            [a.id],
            "filters combine"
        );
        assert_eq!(select(EventFilter { kind: Some("nothing.here".into()), ..Default::default() }).await, []);
        db.close().await;
    }
}

on_every_database! {
    /// MySQL's default collations ignore case and accents; the schema uses
    /// utf8mb4_bin so every backend compares exactly.
    async fn matches_subject_ids_exactly_including_case_and_accents(db: &TestDb) {
        let db = db.connect().await;
        let deleted = |id: &str| NewEvent::new(ServerEvent::Deleted {
            subject: ServerId::new(id),
            data: ServerDeleted { command_id: "cmd_1".into() },
        });
        let upper = db.events().append(&deleted("Äpfel")).await.expect("append");
        let lower = db.events().append(&deleted("äpfel")).await.expect("append");
        let plain = db.events().append(&deleted("apfel")).await.expect("append");
        for (id, wanted) in [("Äpfel", upper.id), ("äpfel", lower.id), ("apfel", plain.id)] {
            let filter = EventFilter { subject_kind: Some("server".into()), subject_id: Some(id.into()), ..Default::default() };
            let page = db.events().query(&EventQuery { filter, ..EventQuery::default() }).await.expect("query");
            assert_eq!(page.events.iter().map(|e| e.id).collect::<Vec<_>>(), [wanted], "{id}");
        }
        db.close().await;
    }
}

on_every_database! {
    async fn never_returns_more_than_the_maximum_page_size(db: &TestDb) {
        let db = db.connect().await;
        append_numbered(&db, MAX_PAGE_SIZE as usize + 1).await;
        let query = EventQuery { limit: u32::MAX, ..EventQuery::default() };
        let page = db.events().query(&query).await.expect("query");
        assert_eq!(page.events.len(), MAX_PAGE_SIZE as usize);
        assert!(page.next.is_some());
        let rest = db.events().query(&EventQuery { after: page.next, ..query }).await.expect("query");
        assert_eq!(rest.events.len(), 1);
        db.close().await;
    }
}

on_every_database! {
    async fn refuses_to_update_a_stored_event(db: &TestDb) {
        let database = db.connect().await;
        let event = database.events().append(&sealed()).await.expect("append");
        let error = db
            .execute_raw(&format!("UPDATE events SET kind = 'audit.forged' WHERE id = {}", event.id.0))
            .await
            .expect_err("the trigger refuses updates");
        assert!(error.to_string().contains("append-only"), "{error}");
        let read = database.events().get(event.id).await.expect("get").expect("exists");
        assert_eq!(read.kind, "secrets.sealed");
        database.close().await;
    }
}

on_every_database! {
    async fn refuses_events_that_break_the_field_rules(db: &TestDb) {
        let db = db.connect().await;
        let deleted = |name: String| NewEvent::new(SettingEvent::Deleted {
            subject: SettingName::new(name),
            data: Empty {},
        });
        let cases = [
            (deleted(String::new()), "subject.id"),
            (deleted("x".repeat(129)), "subject.id"),
            (sealed().actor(Actor { user_id: Some("u".repeat(65)), ..Actor::default() }), "actor.user_id"),
            (sealed().actor(Actor { request_id: Some(String::new()), ..Actor::default() }), "actor.request_id"),
        ];
        for (event, expected) in cases {
            match db.events().append(&event).await {
                Err(DbError::Invalid { field, .. }) => assert_eq!(field, expected),
                other => panic!("expected an invalid {expected}, got {other:?}"),
            }
        }
        assert!(db.events().query(&EventQuery::default()).await.expect("query").events.is_empty());
        db.close().await;
    }
}

on_every_database! {
    async fn migrates_once_and_keeps_data_across_reconnects(db: &TestDb) {
        let first = db.connect().await;
        let event = first.events().append(&sealed()).await.expect("append");
        first.migrate().await.expect("migrating again is a no-op");
        first.close().await;
        let second = db.connect().await;
        assert_eq!(second.events().get(event.id).await.expect("get").map(|e| e.kind), Some("secrets.sealed".to_owned()));
        second.close().await;
    }
}

on_every_database! {
    async fn creates_updates_and_deletes_settings_recording_each_change(db: &TestDb) {
        let db = db.connect().await;
        let settings = db.settings();
        assert_eq!(settings.get("motd").await.expect("get"), None);

        let created = settings.create("motd", &json!("hello"), &actor()).await.expect("create");
        assert_eq!(settings.get("motd").await.expect("get"), Some(created.clone()));
        let updated = settings.put("motd", &json!({ "text": "bye ✓" }), &actor()).await.expect("put");
        assert_eq!(settings.get("motd").await.expect("get"), Some(updated.clone()));
        settings.put("a.first", &json!([1, 2]), &Actor::system()).await.expect("put");
        let names: Vec<String> = settings.list().await.expect("list").into_iter().map(|s| s.name).collect();
        assert_eq!(names, ["a.first", "motd"]);

        assert!(settings.delete("motd", &actor()).await.expect("delete"));
        assert!(!settings.delete("motd", &actor()).await.expect("delete"), "already gone");
        assert_eq!(settings.get("motd").await.expect("get"), None);

        let filter = EventFilter { subject_kind: Some("setting".into()), subject_id: Some("motd".into()), ..Default::default() };
        let query = EventQuery { filter, order: Order::OldestFirst, ..EventQuery::default() };
        let events = db.events().query(&query).await.expect("query").events;
        let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, ["setting.created", "setting.updated", "setting.deleted"]);
        assert_eq!(events[1].data, json!({ "value": { "text": "bye ✓" } }));
        assert_eq!(events[1].actor, actor());
        assert_eq!(events[1].occurred_at, updated.updated_at);
        db.close().await;
    }
}

on_every_database! {
    /// The second create fails with a conflict, and its transaction leaves
    /// no event behind.
    async fn reports_a_duplicate_setting_as_a_conflict_without_recording_it(db: &TestDb) {
        let db = db.connect().await;
        db.settings().create("motd", &json!(1), &actor()).await.expect("create");
        match db.settings().create("motd", &json!(2), &actor()).await {
            Err(DbError::Conflict { .. }) => {}
            other => panic!("expected a conflict, got {other:?}"),
        }
        assert_eq!(db.settings().get("motd").await.expect("get").map(|s| s.value), Some(json!(1)));
        let query = EventQuery { filter: EventFilter { kind: Some("setting.created".into()), ..Default::default() }, ..EventQuery::default() };
        assert_eq!(db.events().query(&query).await.expect("query").events.len(), 1);
        db.close().await;
    }
}

async fn expect_unavailable(url: &str) {
    let options = DatabaseOptions::new(DatabaseLocation::Url(url.into()))
        .acquire_timeout(Duration::from_secs(3));
    match Database::connect(&options).await {
        Err(error @ DbError::Unavailable(_)) => assert!(error.is_unavailable()),
        other => panic!("expected unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn reports_an_unreachable_postgres_server_as_unavailable() {
    expect_unavailable("postgres://postgres@127.0.0.1:1/test").await;
}

#[tokio::test]
async fn reports_an_unreachable_mysql_server_as_unavailable() {
    expect_unavailable("mysql://root@127.0.0.1:1/test").await;
}

#[tokio::test]
async fn refuses_an_unsupported_database_url() {
    for url in ["redis://127.0.0.1/0", "nonsense"] {
        let options = DatabaseOptions::new(DatabaseLocation::Url(url.into()));
        match Database::connect(&options).await {
            Err(DbError::InvalidUrl(_)) => {}
            other => panic!("{url}: expected an invalid URL, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn accepts_a_mariadb_url_for_a_mysql_server() {
    let test_db = TestDb::mysql().await;
    let DatabaseLocation::Url(url) = test_db.location() else {
        panic!("MySQL test databases have URLs");
    };
    let url = url.replacen("mysql:", "mariadb:", 1);
    let db = Database::connect(&DatabaseOptions::new(DatabaseLocation::Url(url)))
        .await
        .expect("connect through mariadb://");
    assert_eq!(db.backend(), cap_panel::db::Backend::MySql);
    db.ping().await.expect("ping");
    db.close().await;
}

#[tokio::test]
async fn runs_on_an_in_memory_sqlite_database() {
    let options = DatabaseOptions::new(DatabaseLocation::Url("sqlite::memory:".into()));
    let db = Database::connect(&options).await.expect("connect");
    let event = db.events().append(&sealed()).await.expect("append");
    assert_eq!(
        db.events().get(event.id).await.expect("get").map(|e| e.id),
        Some(event.id)
    );
    db.close().await;
}

#[tokio::test]
async fn a_postgres_read_version_taken_before_a_commit_is_superseded_by_one_after_it() {
    use sqlx::Connection as _;
    let test_db = TestDb::postgres().await;
    let db = test_db.connect().await;
    let DatabaseLocation::Url(url) = test_db.location() else {
        panic!("PostgreSQL test databases have URLs");
    };
    let mut writer = sqlx::PgConnection::connect(url)
        .await
        .expect("a second connection");
    sqlx::raw_sql(
        "BEGIN; INSERT INTO settings (name, value, updated_at) VALUES ('read.version', '1', 0)",
    )
    .execute(&mut writer)
    .await
    .expect("an uncommitted write");
    let during = db
        .read_version()
        .await
        .expect("reads")
        .expect("PostgreSQL has read versions");
    sqlx::raw_sql("COMMIT")
        .execute(&mut writer)
        .await
        .expect("the write commits");
    let after = db.read_version().await.expect("reads").expect("some");
    // Other tests write to the same server meanwhile, so only the order is
    // certain, never that two versions are equal.
    assert_ne!(after, during, "a commit always moves the version");
    assert!(after.supersedes(&during));
    assert!(!during.supersedes(&after));
    db.close().await;
}

#[tokio::test]
async fn a_mysql_database_has_no_read_version_so_nothing_is_cached() {
    let test_db = TestDb::mysql().await;
    let db = test_db.connect().await;
    assert_eq!(db.read_version().await.expect("no query fails"), None);
    db.close().await;
}
