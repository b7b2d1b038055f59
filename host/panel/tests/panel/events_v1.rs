//! The `events-v1` fixture: every kind of event the Panel wrote before its
//! events were typed, as stored, and the projections those writers left.
//!
//! `tests/fixtures/events-v1.json` holds the `events` table (every column,
//! in id order) and `tests/fixtures/projections-v1.json` the projection
//! tables ([`cap_panel::db::replay::PROJECTION_TABLES`]) of one SQLite
//! database, written by [`writes_the_events_v1_fixture`] through the
//! Panel's public API on the commit before events were typed (it has been
//! ported to the typed API since and writes the same kinds). They are
//! data, never rewritten: a later format gets a `v2` beside them.
//!
//! The tests here load them into every backend and check that the typed
//! events read every stored event, write it back byte for byte the same
//! JSON, show it in the audit log as before, and replay it to exactly the
//! projections the old writers left.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use cap_panel::db::replay::replay;
use cap_panel::db::{Actor, DatabaseLocation, DomainEvent, Event, EventId, Subject};
use cap_panel::http::audit_log::{AuditEvent, REDACTED};
use cap_panel::identity::{roles, tokens, totp, users};
use cap_panel::plugins::SetItem;
use cap_runtime::Grants;
use serde_json::{Map, Value, json};
use sqlx::{Connection, Row};

use crate::plugins::{manifest_text, package, package_with, start};
use crate::replay::{record_history, snapshot};
use crate::support::{TestDb, code_at, on_every_database, wrong_code};

/// Where the fixtures live.
fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(name)
}

/// Every row of `events` in id order, each column as JSON.
async fn dump_events(db: &TestDb) -> Vec<Value> {
    let DatabaseLocation::SqliteFile(path) = db.location() else {
        panic!("the fixture is written from SQLite");
    };
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(path);
    let mut conn = sqlx::SqliteConnection::connect_with(&options)
        .await
        .expect("connect");
    let rows = sqlx::query(
        "SELECT id, occurred_at, actor_user_id, actor_ip, request_id, kind, subject_type, \
         subject_id, data FROM events ORDER BY id",
    )
    .fetch_all(&mut conn)
    .await
    .expect("events");
    let mut out = Vec::new();
    for row in &rows {
        let text = |i: usize| json!(row.try_get::<Option<String>, _>(i).expect("text"));
        let mut object = Map::new();
        object.insert("id".into(), json!(row.get::<i64, _>(0)));
        object.insert("occurred_at".into(), json!(row.get::<i64, _>(1)));
        for (i, name) in [
            (2, "actor_user_id"),
            (3, "actor_ip"),
            (4, "request_id"),
            (5, "kind"),
            (6, "subject_type"),
            (7, "subject_id"),
        ] {
            object.insert(name.into(), text(i));
        }
        let data: sqlx::types::Json<Value> = row.get(8);
        object.insert("data".into(), data.0);
        out.push(Value::Object(object));
    }
    let _ = conn.close().await;
    out
}

#[tokio::test]
#[ignore = "writes tests/fixtures/events-v1.json and projections-v1.json; run by hand only to create them"]
async fn writes_the_events_v1_fixture() {
    let db = TestDb::sqlite().await;

    // A legacy secret, stored before sealing existed: the first Panel to
    // start seals it (`secrets.sealed`).
    let legacy = db.create_users(&["legacy"]).await.remove(0);
    db.execute_raw(&format!(
        "INSERT INTO totp_credentials (user_id, secret, created_at, enabled_at) \
         VALUES ('{legacy}', 'JBSWY3DPEHPK3PXP', 1, 1)"
    ))
    .await
    .expect("a legacy TOTP row");

    // Settings, nodes, registration, servers, commands, subusers, and a
    // game plugin installed, granted and activated, over HTTP.
    record_history(&db).await.close().await;

    let panel = start(&db).await;
    let live = panel.state().db().clone();
    let admin = Actor {
        user_id: Some(legacy.clone()),
        ip: Some("2001:db8::1".parse().expect("an address")),
        request_id: Some("fixture-request".into()),
    };

    live.settings()
        .create("fixture.created", &json!({"n": 1}), &admin)
        .await
        .expect("setting created");
    let server_id = snapshot(&db).await["servers"][0]["id"]
        .as_str()
        .expect("a server")
        .to_owned();
    cap_panel::servers::server::set_state(&live, &server_id, "running", Some("the Agent says so"))
        .await
        .expect("state changed");

    // Identity: roles, users, links, sessions, API keys, passwords.
    let role = users::create_role(
        &live,
        "moderators",
        "Read the audit log",
        &["audit.read".into(), "settings.read".into()],
        &admin,
    )
    .await
    .expect("role created");
    let doomed_role = users::create_role(&live, "doomed", "", &[], &admin)
        .await
        .expect("role created");
    let dave = users::create_user_with_roles(
        &live,
        &users::new_user_id(),
        &users::NewUser {
            username: "dave".into(),
            email: Some("dave@example.net".into()),
            display_name: None,
            admin: false,
        },
        Some(&users::IdentityLink {
            provider_id: "local-password".into(),
            subject: "dave".into(),
        }),
        std::slice::from_ref(&role),
        &admin,
    )
    .await
    .expect("user created");
    users::link_identity(
        &live,
        &dave.id,
        &users::IdentityLink {
            provider_id: "oidc-test".into(),
            subject: "dave@idp".into(),
        },
        &admin,
    )
    .await
    .expect("identity linked");
    users::assign_role(&live, &legacy, &role, &admin)
        .await
        .expect("role assigned");
    roles::update_role(
        &live,
        &role,
        &roles::RoleChanges {
            name: Some("mods".into()),
            description: None,
            permissions: Some(vec!["audit.read".into()]),
        },
        &admin,
    )
    .await
    .expect("role updated");
    roles::delete_role(&live, &doomed_role, &admin)
        .await
        .expect("role deleted");
    users::update_user(
        &live,
        &dave.id,
        &users::UserChanges {
            email: Some(None),
            display_name: Some(Some("Dave D.".into())),
            admin: Some(true),
            roles: Some(vec![role.clone()]),
            disabled: None,
        },
        &admin,
    )
    .await
    .expect("user updated");

    let first = tokens::create_session(&live, &dave.id, "local-password", &admin)
        .await
        .expect("session created");
    tokens::rotate_refresh(&live, &first.token, &admin)
        .await
        .expect("rotated");
    assert!(matches!(
        tokens::rotate_refresh(&live, &first.token, &admin).await,
        Err(tokens::RefreshError::Reused)
    ));
    let second = tokens::create_session(&live, &dave.id, "local-password", &admin)
        .await
        .expect("session created");
    tokens::revoke_session(
        &live,
        &dave.id,
        &second.session_id,
        tokens::SessionEnd::Logout,
        &admin,
    )
    .await
    .expect("revoked");
    let third = tokens::create_session(&live, &dave.id, "local-password", &admin)
        .await
        .expect("session created");
    tokens::revoke_session(
        &live,
        &dave.id,
        &third.session_id,
        tokens::SessionEnd::Expired,
        &admin,
    )
    .await
    .expect("expired");
    tokens::rotate_jwt_key(&live, &Actor::system())
        .await
        .expect("key rotated");
    let (key, _) = tokens::create_api_key(&live, &dave.id, "ci", &["servers.read".into()], &admin)
        .await
        .expect("key created");
    tokens::revoke_api_key(&live, &dave.id, &key.id, &admin)
        .await
        .expect("key revoked");
    let kept = tokens::create_session(&live, &dave.id, "local-password", &admin)
        .await
        .expect("session created");
    tokens::create_session(&live, &dave.id, "local-password", &admin)
        .await
        .expect("session created");
    users::revoke_other_sessions(
        &live,
        &dave.id,
        Some(&kept.session_id),
        "local-password",
        &admin,
    )
    .await
    .expect("password changed");
    tokens::create_api_key(&live, &dave.id, "kept", &[], &admin)
        .await
        .expect("key created");
    let disable = users::UserChanges {
        disabled: Some(true),
        ..Default::default()
    };
    users::update_user(&live, &dave.id, &disable, &admin)
        .await
        .expect("disabled");
    let enable = users::UserChanges {
        disabled: Some(false),
        ..Default::default()
    };
    users::update_user(&live, &dave.id, &enable, &admin)
        .await
        .expect("enabled");
    let erin = users::create_user(
        &live,
        &users::NewUser {
            username: "erin".into(),
            admin: true,
            ..Default::default()
        },
        None,
        &admin,
    )
    .await
    .expect("user created");
    users::delete_user(&live, &erin.id, &admin)
        .await
        .expect("user deleted");

    // The second factor: enrolled, used, regenerated, disabled, enrolled
    // again, locked and reset.
    let user = users::find_user(&live, &dave.id)
        .await
        .expect("read")
        .expect("dave");
    let enrollment = totp::begin_enrollment(&live, &user, &admin)
        .await
        .expect("enrollment");
    let codes = totp::confirm_enrollment(&live, &dave.id, &code_at(&enrollment.secret, 0), &admin)
        .await
        .expect("enabled");
    totp::verify(
        &live,
        &dave.id,
        totp::SecondFactor::RecoveryCode(&codes[0]),
        &admin,
    )
    .await
    .expect("recovery code accepted");
    let codes = totp::regenerate_recovery_codes(
        &live,
        &dave.id,
        totp::SecondFactor::RecoveryCode(&codes[1]),
        &admin,
    )
    .await
    .expect("regenerated");
    totp::disable(
        &live,
        &dave.id,
        totp::SecondFactor::RecoveryCode(&codes[0]),
        &admin,
    )
    .await
    .expect("disabled");
    let enrollment = totp::begin_enrollment(&live, &user, &admin)
        .await
        .expect("enrollment");
    totp::confirm_enrollment(&live, &dave.id, &code_at(&enrollment.secret, 0), &admin)
        .await
        .expect("enabled");
    let wrong = wrong_code(&enrollment.secret);
    for _ in 0..totp::MAX_FAILED_ATTEMPTS {
        let refused = totp::verify(&live, &dave.id, totp::SecondFactor::Code(&wrong), &admin).await;
        assert!(matches!(refused, Err(totp::TotpError::InvalidCode)));
    }
    assert!(totp::reset(&live, &dave.id, &admin).await.expect("reset"));

    // Plugins: updated, installed and updated as a set, configured,
    // deactivated (with and without a reason), quarantined, released and
    // uninstalled.
    let manager = panel.state().plugins().expect("a plugin manager");
    let newer = manifest_text("test-game").replace("version = \"1.0.0\"", "version = \"1.1.0\"");
    manager
        .install(&package_with("test-game", &newer), &admin)
        .await
        .expect("updated");
    manager
        .install(&package("quota-guard"), &admin)
        .await
        .expect("installed");
    let grants = Grants {
        config: true,
        secrets: BTreeSet::from(["webhook-url".to_owned()]),
        ..Grants::none()
    };
    let quota_guard =
        manifest_text("quota-guard").replace("version = \"1.0.0\"", "version = \"1.2.0\"");
    manager
        .install_set(
            vec![
                SetItem {
                    bytes: package("discord-webhook"),
                    grants: Some(grants),
                    activate: false,
                },
                SetItem {
                    bytes: package_with("quota-guard", &quota_guard),
                    grants: None,
                    activate: false,
                },
            ],
            &[],
            "marketplace https://market.example.net",
            &admin,
        )
        .await
        .expect("set installed");
    manager
        .set_config(
            "discord-webhook",
            &BTreeMap::from([("username".to_owned(), Some("Fixture bot".to_owned()))]),
            &admin,
        )
        .await
        .expect("configured");
    manager
        .set_secret(
            "discord-webhook",
            "webhook-url",
            "https://discord.example/hook",
            &admin,
        )
        .await
        .expect("secret set");
    manager
        .deactivate("test-game", &admin)
        .await
        .expect("deactivated");
    manager
        .activate("test-game", &admin)
        .await
        .expect("activated");
    manager
        .deactivate_because("test-game", "the license lapsed", &Actor::system())
        .await
        .expect("deactivated");
    manager
        .grant(
            "quota-guard",
            Grants {
                kv: true,
                ..Grants::none()
            },
            &admin,
        )
        .await
        .expect("granted");
    manager
        .activate("quota-guard", &admin)
        .await
        .expect("activated");
    let plugin = manager.active("quota-guard").expect("active");
    plugin.quarantine_now("5 consecutive failed calls; the last: the fixture");
    let quarantined = cap_panel::db::EventQuery {
        filter: cap_panel::db::EventFilter {
            kind: Some("plugin.quarantined".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let mut stored = false;
    for _ in 0..100 {
        if !live
            .events()
            .query(&quarantined)
            .await
            .expect("query")
            .events
            .is_empty()
        {
            stored = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(stored, "the quarantine was never stored");
    manager
        .release("quota-guard", &admin)
        .await
        .expect("released");
    manager
        .uninstall("discord-webhook", true, &admin)
        .await
        .expect("uninstalled");
    panel.stop().await.expect("stops");

    let events = dump_events(&db).await;
    let projections = snapshot(&db).await;
    let kinds: BTreeSet<&str> = events.iter().filter_map(|e| e["kind"].as_str()).collect();
    assert_eq!(kinds, DomainEvent::kinds().collect(), "every kind of event");
    std::fs::create_dir_all(fixture("")).expect("the fixtures directory");
    let pretty = |value: &Value| serde_json::to_string_pretty(value).expect("JSON") + "\n";
    std::fs::write(fixture("events-v1.json"), pretty(&Value::Array(events)))
        .expect("events-v1.json");
    std::fs::write(fixture("projections-v1.json"), pretty(&json!(projections)))
        .expect("projections-v1.json");
}

/// The fixture's events, as the event store hands them out.
fn v1_events() -> Vec<Event> {
    let text = std::fs::read_to_string(fixture("events-v1.json")).expect("events-v1.json");
    let rows: Vec<Value> = serde_json::from_str(&text).expect("JSON");
    rows.iter()
        .map(|row| {
            let text = |key: &str| row[key].as_str().map(str::to_owned);
            Event {
                id: EventId(row["id"].as_i64().expect("an id")),
                occurred_at: time::OffsetDateTime::from_unix_timestamp_nanos(
                    i128::from(row["occurred_at"].as_i64().expect("a time")) * 1_000,
                )
                .expect("in range"),
                actor: Actor {
                    user_id: text("actor_user_id"),
                    ip: text("actor_ip").map(|ip| ip.parse().expect("an address")),
                    request_id: text("request_id"),
                },
                kind: text("kind").expect("a kind"),
                subject: text("subject_type")
                    .zip(text("subject_id"))
                    .map(|(kind, id)| Subject { kind, id }),
                data: row["data"].clone(),
            }
        })
        .collect()
}

/// Kinds added after the fixture was written: no v1 database holds them.
/// Their round trip and replay are tested with the types
/// (`db::domain::tests`) and where they are written.
const ADDED_AFTER_V1: &[&str] = &[
    "node.capabilities.changed",
    "mail.configured",
    "mail.cleared",
    "user.link-issued",
    "user.password-set",
    "user.ssh-key-added",
    "user.ssh-key-removed",
    "backup.started",
    "backup.completed",
    "backup.failed",
    "backup.deleted",
    "backup.lock.changed",
    "backup.restore.started",
    "backup.restore.finished",
    "backup.limit.set",
    "backup-storage.configured",
    "backup-storage.cleared",
    "database-host.created",
    "database-host.updated",
    "database-host.deleted",
    "database.created",
    "database.password.rotated",
    "database.deleted",
    "database.limit.set",
    "server.allocation-limit.set",
    "server.allocation.added",
    "server.allocation.notes.set",
    "server.allocation.primary.set",
    "server.allocation.removed",
    "server.suspended",
    "server.unsuspended",
    "server.transfer.started",
    "server.transferred",
    "server.transfer.failed",
];

#[test]
fn the_v1_fixture_holds_every_kind_the_types_know_but_those_added_since() {
    let stored: BTreeSet<String> = v1_events().into_iter().map(|e| e.kind).collect();
    let known: BTreeSet<String> = DomainEvent::kinds().map(str::to_owned).collect();
    let added: BTreeSet<String> = ADDED_AFTER_V1.iter().map(|k| (*k).to_owned()).collect();
    assert!(
        stored.is_disjoint(&added),
        "a kind added since v1 is in the v1 fixture"
    );
    assert_eq!(
        stored.union(&added).cloned().collect::<BTreeSet<_>>(),
        known
    );
}

#[test]
fn every_v1_event_decodes_and_is_written_back_as_the_same_json() {
    for event in v1_events() {
        let decoded = event
            .decode()
            .unwrap_or_else(|e| panic!("event {} ({}): {e}", event.id.0, event.kind));
        let stored = decoded.to_stored().expect("a stored form");
        assert_eq!(stored.kind, event.kind);
        assert_eq!(stored.subject, event.subject, "event {}", event.id.0);
        assert_eq!(
            stored.data, event.data,
            "event {} ({})",
            event.id.0, event.kind
        );
    }
}

#[test]
fn the_audit_log_shows_every_v1_event_as_stored_but_the_hidden_variables() {
    let mut hiding = 0;
    for event in v1_events() {
        let entry = serde_json::to_value(AuditEvent::from(event.clone())).expect("JSON");
        assert_eq!(entry["kind"], event.kind.as_str());
        let subject = event
            .subject
            .as_ref()
            .map_or(Value::Null, |s| json!({ "type": s.kind, "id": s.id }));
        assert_eq!(entry["subject"], subject, "event {}", event.id.0);
        let mut expected = event.data.clone();
        let secret: Vec<String> = expected["secret_variables"]
            .as_array()
            .map(|keys| {
                keys.iter()
                    .filter_map(|k| k.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        hiding += usize::from(!secret.is_empty());
        for key in &secret {
            if let Some(value) = expected["variable_values"].get_mut(key) {
                *value = json!(REDACTED);
            }
        }
        assert_eq!(
            entry["data"], expected,
            "event {} ({})",
            event.id.0, event.kind
        );
    }
    assert!(hiding > 0, "the fixture holds events with hidden variables");
}

/// Inserts the fixture's rows, ids included, into `events` on `$conn`.
macro_rules! insert_v1 {
    ($conn:expr, $db:ty) => {{
        for event in v1_events() {
            let mut qb = sqlx::QueryBuilder::<$db>::new(
                "INSERT INTO events (id, occurred_at, actor_user_id, actor_ip, request_id, kind, \
                 subject_type, subject_id, data) ",
            );
            if stringify!($db) == "sqlx::Postgres" {
                qb.push("OVERRIDING SYSTEM VALUE ");
            }
            qb.push("VALUES (");
            let micros =
                i64::try_from(event.occurred_at.unix_timestamp_nanos() / 1_000).expect("in range");
            let subject = event.subject.as_ref();
            qb.separated(", ")
                .push_bind(event.id.0)
                .push_bind(micros)
                .push_bind(event.actor.user_id.clone())
                .push_bind(event.actor.ip.map(|ip| ip.to_string()))
                .push_bind(event.actor.request_id.clone())
                .push_bind(event.kind.clone())
                .push_bind(subject.map(|s| s.kind.clone()))
                .push_bind(subject.map(|s| s.id.clone()))
                .push_bind(sqlx::types::Json(event.data.clone()));
            qb.push(")");
            qb.build().execute(&mut $conn).await.expect("a fixture row");
        }
        let _ = $conn.close().await;
    }};
}

/// Loads the fixture's events into `db`, as a Panel of the time left them.
async fn load_v1(db: &TestDb) {
    match db.location() {
        DatabaseLocation::SqliteFile(path) => {
            let options = sqlx::sqlite::SqliteConnectOptions::new().filename(path);
            let mut conn = sqlx::SqliteConnection::connect_with(&options)
                .await
                .expect("connect");
            insert_v1!(conn, sqlx::Sqlite);
        }
        DatabaseLocation::Url(url) if url.starts_with("postgres") => {
            let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
            insert_v1!(conn, sqlx::Postgres);
        }
        DatabaseLocation::Url(url) => {
            let mut conn = sqlx::MySqlConnection::connect(url).await.expect("connect");
            insert_v1!(conn, sqlx::MySql);
        }
    }
}

on_every_database! {
    async fn replays_the_v1_events_to_exactly_the_projections_their_writers_left(db: &TestDb) {
        let handle = db.connect().await;
        load_v1(db).await;
        let report = replay(&handle).await.expect("the v1 events replay");
        assert_eq!(report.events, v1_events().len() as u64);
        let text = std::fs::read_to_string(fixture("projections-v1.json"))
            .expect("projections-v1.json");
        let expected: BTreeMap<String, Vec<Value>> = serde_json::from_str(&text).expect("JSON");
        assert_eq!(snapshot(db).await, expected);

        // And the store reads them back as they were loaded.
        let page = handle
            .events()
            .query(&cap_panel::db::EventQuery {
                order: cap_panel::db::Order::OldestFirst,
                limit: cap_panel::db::MAX_PAGE_SIZE,
                ..Default::default()
            })
            .await
            .expect("query");
        assert_eq!(page.events, v1_events());
        handle.close().await;
    }
}
