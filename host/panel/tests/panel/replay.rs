//! Replay (`cap_panel::db::replay` and `cap panel replay`): a history of
//! real HTTP operations (settings, nodes, allocations, Agent registration,
//! servers created, updated and deleted, lifecycle commands through the
//! outbox, subusers, a server's extra allocations, notes, primary and
//! limit) is recorded; the projection tables are snapshotted row
//! by row, rebuilt from the event store, and snapshotted again. Both must
//! be equal, on every backend.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;

use cap_panel::Panel;
use cap_panel::db::domain::{Empty, NodeEvent, NodeId, NodeUpdated, SettingEvent, SettingName};
use cap_panel::db::replay::{PROJECTION_TABLES, ReplayError, replay};
use cap_panel::db::{Actor, Database, DatabaseLocation, NewEvent};
use cap_panel::http::Principal;
use cap_panel::identity::permissions::Permission;
use cap_panel::servers::{CommandOutbox, access, nodes, server, subusers};
use reqwest::Method;
use serde_json::{Map, Value, json};
use sqlx::{Connection, Row};

use crate::nodes::{call, json_of, registration};
use crate::plugins::{PLUGIN_ADMIN, install_and_activate};
use crate::support::{TestDb, Tokens, cap_binary, on_every_database};

/// Token of a player allowed everything on their own servers.
const ALICE: &str = "replay-alice-token";

/// How a snapshotted column is decoded.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Text,
    Int,
    Int32,
    Bool,
    Json,
}

type Table = (&'static str, &'static str, &'static [(&'static str, Kind)]);

/// Every column of every projection table, and the order of its rows.
const SNAPSHOT: [Table; 7] = [
    (
        "settings",
        "name",
        &[
            ("name", Kind::Text),
            ("value", Kind::Json),
            ("updated_at", Kind::Int),
        ],
    ),
    (
        "nodes",
        "id",
        &[
            ("id", Kind::Text),
            ("name", Kind::Text),
            ("address", Kind::Text),
            ("token_hash", Kind::Text),
            ("created_at", Kind::Int),
            ("memory_mb", Kind::Int),
            ("disk_mb", Kind::Int),
            ("cpu_percent", Kind::Int),
            ("online", Kind::Bool),
            ("last_seen_at", Kind::Int),
            ("agent_id", Kind::Text),
            ("agent_version", Kind::Text),
            ("capabilities", Kind::Json),
            ("supported_games", Kind::Json),
            ("health_endpoint", Kind::Text),
            ("registered_at", Kind::Int),
            ("updated_at", Kind::Int),
        ],
    ),
    (
        "node_registration_tokens",
        "id",
        &[
            ("id", Kind::Text),
            ("node_id", Kind::Text),
            ("token_hash", Kind::Text),
            ("created_at", Kind::Int),
            ("expires_at", Kind::Int),
            ("used_at", Kind::Int),
        ],
    ),
    (
        "allocations",
        "node_id, ip, port",
        &[
            ("node_id", Kind::Text),
            ("ip", Kind::Text),
            ("port", Kind::Int32),
            ("server_id", Kind::Text),
        ],
    ),
    (
        "servers",
        "id",
        &[
            ("id", Kind::Text),
            ("name", Kind::Text),
            ("owner_id", Kind::Text),
            ("node_id", Kind::Text),
            ("game_plugin", Kind::Text),
            ("game_version", Kind::Text),
            ("variables", Kind::Json),
            ("memory_mb", Kind::Int),
            ("disk_mb", Kind::Int),
            ("cpu_percent", Kind::Int),
            ("state", Kind::Text),
            ("created_at", Kind::Int),
        ],
    ),
    (
        "server_subusers",
        "server_id, user_id",
        &[
            ("server_id", Kind::Text),
            ("user_id", Kind::Text),
            ("permissions", Kind::Json),
            ("created_at", Kind::Int),
            ("updated_at", Kind::Int),
        ],
    ),
    (
        "server_commands",
        "id",
        &[
            ("id", Kind::Text),
            ("server_id", Kind::Text),
            ("node_id", Kind::Text),
            ("action", Kind::Text),
            ("state", Kind::Text),
            ("payload", Kind::Json),
            ("actor_user_id", Kind::Text),
            ("detail", Kind::Text),
            ("created_at", Kind::Int),
            ("updated_at", Kind::Int),
        ],
    ),
];

/// The columns of the projections added after the `events-v1` fixture was
/// written, which [`SNAPSHOT`] leaves out so that the fixture's projections
/// still compare (`events_v1`): a server's allocations (notes, the primary
/// flag) and its allocation limit.
const SINCE_V1: [Table; 2] = [
    (
        "allocations",
        "node_id, ip, port",
        &[
            ("node_id", Kind::Text),
            ("ip", Kind::Text),
            ("port", Kind::Int32),
            ("server_id", Kind::Text),
            ("notes", Kind::Text),
            ("is_primary", Kind::Bool),
        ],
    ),
    (
        "servers",
        "id",
        &[("id", Kind::Text), ("allocation_limit", Kind::Int32)],
    ),
];

/// Reads the projection tables `$tables` on `$conn` into `table → rows as
/// JSON`.
macro_rules! read_tables {
    ($conn:expr, $tables:expr) => {{
        let mut tables = BTreeMap::new();
        for &(table, order, columns) in $tables.iter() {
            let columns_sql = columns
                .iter()
                .map(|(name, _)| *name)
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!("SELECT {columns_sql} FROM {table} ORDER BY {order}");
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .fetch_all(&mut $conn)
                .await
                .unwrap_or_else(|e| panic!("reading {table}: {e}"));
            let mut out = Vec::new();
            for row in &rows {
                let mut object = Map::new();
                for (i, (name, kind)) in columns.iter().enumerate() {
                    let what = format!("{table}.{name}");
                    let value = match kind {
                        Kind::Text => json!(row.try_get::<Option<String>, _>(i).expect(&what)),
                        Kind::Int => json!(row.try_get::<Option<i64>, _>(i).expect(&what)),
                        Kind::Int32 => json!(row.try_get::<Option<i32>, _>(i).expect(&what)),
                        Kind::Bool => json!(row.try_get::<Option<bool>, _>(i).expect(&what)),
                        Kind::Json => row
                            .try_get::<Option<sqlx::types::Json<Value>>, _>(i)
                            .expect(&what)
                            .map_or(Value::Null, |j| j.0),
                    };
                    object.insert((*name).to_owned(), value);
                }
                out.push(Value::Object(object));
            }
            tables.insert(table.to_owned(), out);
        }
        let _ = $conn.close().await;
        tables
    }};
}

/// Every row of every projection table, on a connection of its own.
pub(crate) async fn snapshot(db: &TestDb) -> BTreeMap<String, Vec<Value>> {
    read(db, &SNAPSHOT).await
}

/// The columns added since the `events-v1` fixture ([`SINCE_V1`]), every
/// row, on a connection of its own.
pub(crate) async fn snapshot_since_v1(db: &TestDb) -> BTreeMap<String, Vec<Value>> {
    read(db, &SINCE_V1).await
}

async fn read(db: &TestDb, tables: &[Table]) -> BTreeMap<String, Vec<Value>> {
    match db.location() {
        DatabaseLocation::SqliteFile(path) => {
            let options = sqlx::sqlite::SqliteConnectOptions::new().filename(path);
            let mut conn = sqlx::SqliteConnection::connect_with(&options)
                .await
                .expect("connect");
            read_tables!(conn, tables)
        }
        DatabaseLocation::Url(url) if url.starts_with("postgres") => {
            let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
            read_tables!(conn, tables)
        }
        DatabaseLocation::Url(url) => {
            let mut conn = sqlx::MySqlConnection::connect(url).await.expect("connect");
            read_tables!(conn, tables)
        }
    }
}

/// Deletes every projection row behind the data layer's back.
async fn delete_projection_rows(db: &TestDb) {
    for table in PROJECTION_TABLES.iter().rev() {
        db.execute_raw(&format!("DELETE FROM {table}"))
            .await
            .unwrap_or_else(|e| panic!("emptying {table}: {e}"));
    }
}

fn id_of(body: &Value) -> String {
    body["id"].as_str().expect("an id").to_owned()
}

/// Records a history touching every projection through the HTTP API (and
/// the outbox and online state the Agent link drives), then stops the
/// Panel. Returns a connected handle.
pub(crate) async fn record_history(db: &TestDb) -> Database {
    let users = db.create_users(&["alice", "bob", "carol"]).await;
    let handle = db.connect().await;
    let (alice, bob, carol) = (&users[0], &users[1], &users[2]);
    let tokens = Tokens::from_principals([
        (
            PLUGIN_ADMIN,
            Principal::new("user-admin").with_permissions([
                "admin.plugins",
                "admin.nodes",
                "admin.servers",
                "audit.read",
                "server.create",
                "settings.read",
                "settings.write",
            ]),
        ),
        (
            ALICE,
            Principal::new(alice.as_str())
                .with_permissions(Permission::on_servers().map(Permission::as_str))
                .with_permissions(["server.create"]),
        ),
    ]);
    let panel = Panel::builder(db.config())
        .authenticator(tokens)
        .bind()
        .await
        .expect("the Panel starts")
        .spawn();
    let admin = Some(PLUGIN_ADMIN);
    let ok = |status: u16| move |response: reqwest::Response| json_of(response, status);

    // Settings: created, updated, one deleted.
    for (name, value) in [
        ("motd", json!({"text": "welcome", "lines": [1, 2]})),
        ("registration.open", json!(true)),
        ("motd", json!({"text": "welcome back"})),
        ("doomed", json!("x")),
    ] {
        let body = json!({ "value": value });
        let path = format!("/api/v1/settings/{name}");
        ok(200)(call(&panel, Method::PUT, &path, admin, Some(body)).await).await;
    }
    let response = call(
        &panel,
        Method::DELETE,
        "/api/v1/settings/doomed",
        admin,
        None,
    )
    .await;
    assert_eq!(response.status(), 204);

    // Nodes: one kept, one renamed, one deleted with its allocations and token.
    let node = |name: &str| {
        json!({"name": name, "address": format!("{name}.example.net"),
        "memory_mb": 4096, "disk_mb": 10000, "cpu_percent": 400})
    };
    let n1 = id_of(
        &ok(201)(
            call(
                &panel,
                Method::POST,
                "/api/v1/nodes",
                admin,
                Some(node("n1")),
            )
            .await,
        )
        .await,
    );
    let n2 = id_of(
        &ok(201)(
            call(
                &panel,
                Method::POST,
                "/api/v1/nodes",
                admin,
                Some(node("n2")),
            )
            .await,
        )
        .await,
    );
    let n3 = id_of(
        &ok(201)(
            call(
                &panel,
                Method::POST,
                "/api/v1/nodes",
                admin,
                Some(node("n3")),
            )
            .await,
        )
        .await,
    );
    ok(200)(
        call(
            &panel,
            Method::PATCH,
            &format!("/api/v1/nodes/{n2}"),
            admin,
            Some(json!({"name": "n2-renamed", "memory_mb": 2048})),
        )
        .await,
    )
    .await;
    for (node, ip, ports) in [
        (&n1, "10.0.0.1", json!(["25565-25568"])),
        (&n1, "::1", json!([27015])),
        (&n3, "10.0.0.3", json!([25565])),
    ] {
        ok(201)(
            call(
                &panel,
                Method::POST,
                &format!("/api/v1/nodes/{node}/allocations"),
                admin,
                Some(json!({"ip": ip, "ports": ports})),
            )
            .await,
        )
        .await;
    }
    let response = call(
        &panel,
        Method::DELETE,
        &format!("/api/v1/nodes/{n1}/allocations/10.0.0.1/25568"),
        admin,
        None,
    )
    .await;
    assert_eq!(response.status(), 204);
    ok(201)(
        call(
            &panel,
            Method::POST,
            &format!("/api/v1/nodes/{n3}/registration-tokens"),
            admin,
            Some(json!({})),
        )
        .await,
    )
    .await;
    let response = call(
        &panel,
        Method::DELETE,
        &format!("/api/v1/nodes/{n3}"),
        admin,
        None,
    )
    .await;
    assert_eq!(response.status(), 204);

    // Registration: one token spent by the Agent, one left unused.
    let tokens_path = format!("/api/v1/nodes/{n1}/registration-tokens");
    let issued =
        ok(201)(call(&panel, Method::POST, &tokens_path, admin, Some(json!({}))).await).await;
    ok(201)(
        call(
            &panel,
            Method::POST,
            &tokens_path,
            admin,
            Some(json!({"expires_in_seconds": 600})),
        )
        .await,
    )
    .await;
    let token = issued["token"].as_str().expect("token");
    ok(201)(
        call(
            &panel,
            Method::POST,
            "/api/v1/agents/register",
            None,
            Some(registration(token)),
        )
        .await,
    )
    .await;
    let live = &panel.state().db().clone();
    nodes::set_online(live, &n1, true).await.expect("online");
    nodes::set_online(live, &n1, false).await.expect("offline");
    nodes::set_online(live, &n1, true)
        .await
        .expect("online again");

    // Servers: two created (one on the IPv6 allocation), one updated twice.
    install_and_activate(&panel, "test-game").await;
    let server = |name: &str| {
        json!({"name": name, "node_id": n1, "game": {"plugin": "test-game"},
        "variables": {"MAX_PLAYERS": "20"},
        "limits": {"memory_mb": 1024, "disk_mb": 1000, "cpu_percent": 100}})
    };
    let s1 = id_of(
        &ok(201)(
            call(
                &panel,
                Method::POST,
                "/api/v1/servers",
                Some(ALICE),
                Some(server("one")),
            )
            .await,
        )
        .await,
    );
    let mut body = server("two");
    body["allocation"] = json!({"ip": "::1", "port": 27015});
    let s2 = id_of(
        &ok(201)(
            call(
                &panel,
                Method::POST,
                "/api/v1/servers",
                Some(ALICE),
                Some(body),
            )
            .await,
        )
        .await,
    );
    ok(200)(
        call(
            &panel,
            Method::PATCH,
            &format!("/api/v1/servers/{s1}"),
            Some(ALICE),
            Some(json!({"name": "one-renamed", "variables": {"MAX_PLAYERS": "30"}})),
        )
        .await,
    )
    .await;
    ok(200)(
        call(
            &panel,
            Method::PATCH,
            &format!("/api/v1/servers/{s1}"),
            admin,
            Some(json!({"limits": {"memory_mb": 2048, "disk_mb": 1500, "cpu_percent": 150}})),
        )
        .await,
    )
    .await;

    // Commands: queued, acked, done, failed, and one left pending.
    let mut commands = Vec::new();
    for (path, body) in [
        ("power", Some(json!({"action": "start"}))),
        ("command", Some(json!({"command": "say replay"}))),
        ("install", None),
        ("power", Some(json!({"action": "stop"}))),
    ] {
        let accepted = ok(202)(
            call(
                &panel,
                Method::POST,
                &format!("/api/v1/servers/{s1}/{path}"),
                Some(ALICE),
                body,
            )
            .await,
        )
        .await;
        commands.push(
            accepted["commandId"]
                .as_str()
                .expect("commandId")
                .to_owned(),
        );
    }
    let outbox = CommandOutbox::new(live.clone());
    outbox.ack(&n1, &commands[0]).await.expect("ack");
    outbox.complete(&n1, &commands[0]).await.expect("done");
    outbox.complete(&n1, &commands[1]).await.expect("done");
    outbox
        .fail(&n1, &commands[2], "the installer crashed")
        .await
        .expect("failed");

    // Subusers: added, updated, removed; some on the server deleted next.
    let subusers = format!("/api/v1/servers/{s1}/subusers");
    for user in [carol, bob] {
        ok(201)(
            call(
                &panel,
                Method::POST,
                &subusers,
                Some(ALICE),
                Some(json!({"user_id": user, "permissions": ["control.start", "control.console"]})),
            )
            .await,
        )
        .await;
    }
    ok(200)(
        call(
            &panel,
            Method::PATCH,
            &format!("{subusers}/{carol}"),
            Some(ALICE),
            Some(json!({"permissions": ["control.stop"]})),
        )
        .await,
    )
    .await;
    let response = call(
        &panel,
        Method::DELETE,
        &format!("{subusers}/{bob}"),
        Some(ALICE),
        None,
    )
    .await;
    assert_eq!(response.status(), 204);
    ok(201)(
        call(
            &panel,
            Method::POST,
            &format!("/api/v1/servers/{s2}/subusers"),
            Some(ALICE),
            Some(json!({"user_id": bob, "permissions": ["control.start"]})),
        )
        .await,
    )
    .await;

    // Deleting a server: refused once by the Agent, then done.
    let s2_path = format!("/api/v1/servers/{s2}");
    let delete = || call(&panel, Method::DELETE, &s2_path, Some(ALICE), None);
    let accepted = ok(202)(delete().await).await;
    outbox
        .fail(
            &n1,
            accepted["commandId"].as_str().expect("commandId"),
            "busy",
        )
        .await
        .expect("failed");
    let accepted = ok(202)(delete().await).await;
    outbox
        .complete(&n1, accepted["commandId"].as_str().expect("commandId"))
        .await
        .expect("deleted");

    // A server's allocations: a limit, extra ones (one on the IPv6 address
    // the deleted server freed), notes, a primary switch, one given back.
    ok(200)(
        call(
            &panel,
            Method::PUT,
            &format!("/api/v1/servers/{s1}/allocation-limit"),
            admin,
            Some(json!({"limit": 2})),
        )
        .await,
    )
    .await;
    let allocations = format!("/api/v1/servers/{s1}/allocations");
    for (ip, port) in [("10.0.0.1", 25566), ("::1", 27015)] {
        ok(201)(
            call(
                &panel,
                Method::POST,
                &allocations,
                Some(ALICE),
                Some(json!({"ip": ip, "port": port})),
            )
            .await,
        )
        .await;
    }
    for (path, notes) in [("10.0.0.1/25566", "query"), ("%3A%3A1/27015", "to go")] {
        ok(200)(
            call(
                &panel,
                Method::PATCH,
                &format!("{allocations}/{path}"),
                Some(ALICE),
                Some(json!({"notes": notes})),
            )
            .await,
        )
        .await;
    }
    ok(200)(
        call(
            &panel,
            Method::POST,
            &format!("{allocations}/10.0.0.1/25566/primary"),
            Some(ALICE),
            None,
        )
        .await,
    )
    .await;
    let response = call(
        &panel,
        Method::DELETE,
        &format!("{allocations}/%3A%3A1/27015"),
        Some(ALICE),
        None,
    )
    .await;
    assert_eq!(response.status(), 204);

    panel.stop().await.expect("stops");
    handle
}

/// Asserts the allocations of the history: the one server left holds
/// 10.0.0.1:25565 and, as its primary with notes, 10.0.0.1:25566, within a
/// limit of 2; the IPv6 one went back to the pool without its notes.
fn assert_allocations_are_rich(since_v1: &BTreeMap<String, Vec<Value>>) {
    let held: Vec<(i64, Value, bool)> = since_v1["allocations"]
        .iter()
        .filter(|a| !a["server_id"].is_null())
        .map(|a| {
            let port = a["port"].as_i64().expect("a port");
            (port, a["notes"].clone(), a["is_primary"] == json!(true))
        })
        .collect();
    assert_eq!(
        held,
        [(25565, Value::Null, false), (25566, json!("query"), true)],
        "{since_v1:#?}"
    );
    let freed = since_v1["allocations"]
        .iter()
        .find(|a| a["ip"] == "::1")
        .expect("the IPv6 allocation");
    assert_eq!(
        (
            freed["server_id"].clone(),
            freed["notes"].clone(),
            freed["is_primary"].clone()
        ),
        (Value::Null, Value::Null, json!(false))
    );
    assert_eq!(since_v1["servers"][0]["allocation_limit"], 2);
}

/// Asserts the history left rows in every projection, so that comparing
/// snapshots means something.
fn assert_history_is_rich(tables: &BTreeMap<String, Vec<Value>>) {
    for table in PROJECTION_TABLES {
        assert!(!tables[table].is_empty(), "{table} is empty: {tables:#?}");
    }
    assert_eq!(tables["servers"].len(), 1, "one server is left");
    assert_eq!(tables["servers"][0]["name"], "one-renamed");
    assert_eq!(tables["servers"][0]["variables"]["MAX_PLAYERS"], "30");
    assert_eq!(tables["nodes"].len(), 2, "n3 is gone");
    assert_eq!(
        tables["node_registration_tokens"].len(),
        2,
        "n3's token went with it"
    );
    assert_eq!(
        tables["server_subusers"].len(),
        1,
        "only Carol, on the server left"
    );
    assert_eq!(
        tables["server_subusers"][0]["permissions"],
        json!(["control.stop"])
    );
    assert_eq!(
        tables["allocations"].len(),
        4,
        "three on 10.0.0.1, one on ::1"
    );
    let states: Vec<&str> = tables["server_commands"]
        .iter()
        .filter_map(|c| c["state"].as_str())
        .collect();
    assert_eq!(
        states,
        ["done", "done", "failed", "pending", "failed", "done"]
    );
    let node = &tables["nodes"][0];
    assert_eq!(
        (node["online"].clone(), node["memory_mb"].clone()),
        (json!(true), json!(8192))
    );
    assert!(
        node["registered_at"].is_i64() && node["last_seen_at"].is_i64(),
        "{node:#}"
    );
    assert_eq!(tables["settings"].len(), 2);
}

on_every_database! {
    async fn replay_rebuilds_the_projections_to_exactly_the_live_state(db: &TestDb) {
        let handle = record_history(db).await;
        let live = snapshot(db).await;
        assert_history_is_rich(&live);

        let live_since_v1 = snapshot_since_v1(db).await;
        assert_allocations_are_rich(&live_since_v1);

        let report = replay(&handle).await.expect("replay");
        assert_eq!(snapshot(db).await, live, "the replayed state differs from the live one");
        assert_eq!(snapshot_since_v1(db).await, live_since_v1,
            "the replayed allocations, notes, primaries or limits differ from the live ones");
        for (table, rows) in report.rows() {
            assert_eq!(rows, live[table].len() as u64, "{table} in {report}");
        }
        assert!(report.applied > 30 && report.events > report.applied,
            "user events are read but belong to no projection: {report:?}");

        // Idempotent: a second replay changes nothing.
        assert_eq!(replay(&handle).await.expect("replay again"), report);
        assert_eq!(snapshot(db).await, live);
        handle.close().await;
    }
}

on_every_database! {
    async fn subuser_grants_naming_removed_permissions_replay_and_load_without_them(db: &TestDb) {
        let handle = record_history(db).await;
        let live = snapshot(db).await;
        let grant = &live["server_subusers"][0];
        let (server_id, user_id) = (
            grant["server_id"].as_str().expect("a server"),
            grant["user_id"].as_str().expect("a user"),
        );
        // What a Panel from before the removal could store: a grant, and
        // the event recording it, naming permissions that are gone.
        let stored: BTreeSet<String> =
            ["control.stop", "server.read"].map(str::to_owned).into();
        subusers::update(&handle, server_id, user_id, &stored, &Actor::system())
            .await
            .expect("stored");
        let live = snapshot(db).await;
        assert_eq!(live["server_subusers"][0]["permissions"],
            json!(["control.stop", "server.read"]));

        // Replay rebuilds the row exactly as stored…
        replay(&handle).await.expect("replay");
        assert_eq!(snapshot(db).await, live, "the replayed state differs from the live one");
        // …and what reads it sees the grant without the removed names.
        let listed = subusers::list(&handle, server_id).await.expect("listed");
        assert_eq!(listed[0].permissions, BTreeSet::from(["control.stop".to_owned()]));
        let server = server::get(&handle, server_id).await.expect("read").expect("the server");
        let principal = Principal::new(user_id)
            .with_permissions(Permission::on_servers().map(Permission::as_str))
            .with_permissions(["server.read"]);
        let access = access::resolve(&handle, &principal, &server)
            .await
            .expect("resolved")
            .expect("the subuser sees the server");
        assert_eq!(access.names(), ["control.stop"]);
        handle.close().await;
    }
}

on_every_database! {
    async fn replay_restores_every_projection_row_after_they_are_all_deleted(db: &TestDb) {
        let handle = record_history(db).await;
        let live = snapshot(db).await;
        assert_history_is_rich(&live);

        let live_since_v1 = snapshot_since_v1(db).await;
        assert_allocations_are_rich(&live_since_v1);

        delete_projection_rows(db).await;
        let emptied = snapshot(db).await;
        assert!(emptied.values().all(Vec::is_empty), "{emptied:#?}");
        replay(&handle).await.expect("replay");
        assert_eq!(snapshot(db).await, live, "the rebuilt state differs from the one deleted");
        assert_eq!(snapshot_since_v1(db).await, live_since_v1,
            "the rebuilt allocations, notes, primaries or limits differ from the ones deleted");
        handle.close().await;
    }
}

on_every_database! {
    async fn an_event_replay_cannot_apply_is_named_by_id_and_kind_and_changes_nothing(db: &TestDb) {
        let handle = db.connect().await;
        let actor = Actor::system();
        handle.settings().put("motd", &json!("hello"), &actor).await.expect("put");
        handle.settings().put("theme", &json!({"dark": true}), &actor).await.expect("put");
        let missing = NodeEvent::Updated {
            subject: NodeId::new("node_missing"),
            data: NodeUpdated { name: "x".into(), address: "x".into(), memory_mb: 1, disk_mb: 1,
                                cpu_percent: 1, at: 1 },
        };
        let bad = handle.events().append(&NewEvent::new(missing)).await.expect("append");
        // Behind the data layer: a projection row replay would have to delete.
        db.execute_raw("DELETE FROM settings WHERE name = 'theme'").await.expect("delete");
        let before = snapshot(db).await;
        assert_eq!(before["settings"].len(), 1);

        match replay(&handle).await {
            Err(ReplayError::Unapplicable { event, kind, reason }) => {
                assert_eq!((event, kind.as_str()), (bad.id, "node.updated"));
                assert!(reason.contains("node node_missing does not exist"), "{reason}");
            }
            other => panic!("expected an unapplicable event, got {other:?}"),
        }
        assert_eq!(snapshot(db).await, before, "a failed replay changed the projections");
        let message = replay(&handle).await.expect_err("still refused").to_string();
        assert!(message.contains(&format!("event {} (node.updated)", bad.id.0)), "{message}");
        handle.close().await;
    }
}

on_every_database! {
    async fn the_replay_command_rebuilds_the_configured_database_and_prints_counts(db: &TestDb) {
        let handle = db.connect().await;
        let actor = Actor::system();
        handle.settings().put("motd", &json!("hello"), &actor).await.expect("put");
        handle.settings().put("theme", &json!({"dark": true}), &actor).await.expect("put");
        handle.settings().delete("motd", &actor).await.expect("delete");
        let live = snapshot(db).await;
        delete_projection_rows(db).await;

        let config = db.config();
        let run = || async {
            let mut command = tokio::process::Command::new(cap_binary());
            command.args(["panel", "replay", "--data"]).arg(&config.data_dir);
            if let Some(url) = &config.database_url {
                command.args(["--database-url", url.as_str()]);
            }
            command.env_clear().env("CAP_LOG", "warn")
                .stdout(Stdio::piped()).stderr(Stdio::piped()).output().await
        };
        let output = run().await.expect("cap panel replay runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
        assert!(stdout.starts_with("replayed 3 events (3 applied to projections)"), "{stdout}");
        assert!(stdout.contains("settings: 1 rows") && stdout.contains("servers: 0 rows"), "{stdout}");
        assert_eq!(snapshot(db).await, live);
        assert_eq!(handle.settings().get("theme").await.expect("get").map(|s| s.value),
            Some(json!({"dark": true})));

        // An event it cannot apply: a failure naming it, nothing changed.
        let gone = SettingEvent::Deleted { subject: SettingName::new("motd"), data: Empty {} };
        let bad = handle.events().append(&NewEvent::new(gone)).await.expect("append");
        let output = run().await.expect("cap panel replay runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success());
        assert!(stderr.contains(&format!("event {} (setting.deleted)", bad.id.0))
            && stderr.contains("nothing was changed"), "{stderr}");
        assert_eq!(snapshot(db).await, live);
        handle.close().await;
    }
}

on_every_database! {
    async fn replays_racing_with_writers_lose_none_of_their_changes(db: &TestDb) {
        let writer = db.connect().await;
        let replayer = db.connect().await;
        let writes = async {
            for i in 0..40 {
                writer.settings().put(&format!("race.{i}"), &json!(i), &Actor::system())
                    .await.expect("a write beside replays");
            }
        };
        let replays = async {
            for _ in 0..5 {
                replay(&replayer).await.expect("a replay beside writers");
            }
        };
        tokio::join!(writes, replays);
        let live = snapshot(db).await;
        assert_eq!(live["settings"].len(), 40, "a replay lost a write: {:#?}", live["settings"]);
        replay(&replayer).await.expect("replay");
        assert_eq!(snapshot(db).await, live);
        writer.close().await;
        replayer.close().await;
    }
}
