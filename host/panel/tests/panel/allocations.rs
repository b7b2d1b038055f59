//! A server's allocations (its "Network"): `/servers/{id}/allocations`
//! and `/servers/{id}/allocation-limit` over HTTP with the real
//! `test-game` on every database — the limit, extra allocations taken from
//! the node's pool (the first free one, or one asked for), refusals of
//! taken and foreign ones, notes, the primary switch, giving one back, who
//! may do what (subusers, API keys), replay — and, through a real Agent
//! (natively, and in a container of a real Podman service), the game
//! finding its extra port in its environment.

use std::collections::BTreeSet;

use cap_panel::Panel;
use cap_panel::RunningPanel;
use cap_panel::db::replay::replay;
use cap_panel::http::Principal;
use cap_panel::identity::permissions::Permission;
use reqwest::Method;
use serde_json::{Value, json};

use crate::agents::{Console, event_is, server_state};
use crate::files::{ADMIN, Files, files_site_on};
use crate::identity::{ADMIN_PASSWORD, IdentityPanel, token};
use crate::nodes::{call, json_of};
use crate::plugins::{PLUGIN_ADMIN, install_and_activate, package};
use crate::replay::snapshot_since_v1;
use crate::support::{TestDb, Tokens, client, expect_problem, on_every_database};

/// The owner of the server.
const ALICE: &str = "allocations-alice-token";
/// A user whose credentials hold every server permission; what they may
/// do on Alice's server is what their subuser grant says.
const BOB: &str = "allocations-bob-token";
/// The owner of another server on the same node.
const CAROL: &str = "allocations-carol-token";

/// A Panel with test-game active; node `n1` (10.0.0.1, ports
/// 25565-25568) with Alice's server on 10.0.0.1:25565; node `n2`
/// (10.0.0.2:25565), whose pool is not `n1`'s.
struct World {
    panel: RunningPanel,
    node_id: String,
    server_id: String,
    bob: String,
    carol: String,
}

async fn world(db: &TestDb) -> World {
    let ids = db.create_users(&["alice", "bob", "carol"]).await;
    let player = |id: &str| {
        Principal::new(id)
            .with_permissions(Permission::on_servers().map(Permission::as_str))
            .with_permissions(["server.create"])
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
        (ALICE, player(&ids[0])),
        (BOB, player(&ids[1])),
        (CAROL, player(&ids[2])),
    ]);
    let panel = Panel::builder(db.config())
        .authenticator(tokens)
        .bind()
        .await
        .expect("the Panel starts")
        .spawn();
    install_and_activate(&panel, "test-game").await;
    let admin = |method: Method, path: String, body: Value| {
        let panel = &panel;
        async move {
            json_of(
                call(panel, method, &path, Some(PLUGIN_ADMIN), Some(body)).await,
                201,
            )
            .await
        }
    };
    let node = |name: &str| {
        json!({"name": name, "address": format!("{name}.example.net"), "memory_mb": 8192,
               "disk_mb": 10000, "cpu_percent": 800})
    };
    let n1 = admin(Method::POST, "/api/v1/nodes".into(), node("n1")).await;
    let node_id = n1["id"].as_str().expect("id").to_owned();
    admin(
        Method::POST,
        format!("/api/v1/nodes/{node_id}/allocations"),
        json!({"ip": "10.0.0.1", "ports": ["25565-25568"]}),
    )
    .await;
    let n2 = admin(Method::POST, "/api/v1/nodes".into(), node("n2")).await;
    let n2 = n2["id"].as_str().expect("id").to_owned();
    admin(
        Method::POST,
        format!("/api/v1/nodes/{n2}/allocations"),
        json!({"ip": "10.0.0.2", "ports": [25565]}),
    )
    .await;
    let server = json_of(
        call(
            &panel,
            Method::POST,
            "/api/v1/servers",
            Some(ALICE),
            Some(server_request(&node_id, "alices", ("10.0.0.1", 25565))),
        )
        .await,
        201,
    )
    .await;
    let server_id = server["id"].as_str().expect("id").to_owned();
    let mut ids = ids.into_iter().skip(1);
    World {
        panel,
        node_id,
        server_id,
        bob: ids.next().expect("bob"),
        carol: ids.next().expect("carol"),
    }
}

/// A test-game server on `node_id` holding `allocation` (ip, port).
fn server_request(node_id: &str, name: &str, allocation: (&str, u16)) -> Value {
    json!({
        "name": name,
        "node_id": node_id,
        "allocation": {"ip": allocation.0, "port": allocation.1},
        "game": {"plugin": "test-game"},
        "variables": {"MAX_PLAYERS": "20"},
        "limits": {"memory_mb": 512, "disk_mb": 1000, "cpu_percent": 100}
    })
}

/// `method /api/v1/servers/{server}{rest}` as `token`.
async fn send(
    world: &World,
    server: &str,
    token: &str,
    method: Method,
    rest: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let path = format!("/api/v1/servers/{server}{rest}");
    call(&world.panel, method, &path, Some(token), body).await
}

/// Sets the allocation limit of `server` as the administrator.
async fn set_limit(world: &World, server: &str, limit: u32) {
    let answer = json_of(
        send(
            world,
            server,
            PLUGIN_ADMIN,
            Method::PUT,
            "/allocation-limit",
            Some(json!({"limit": limit})),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(answer, json!({"limit": limit}));
}

/// `(ip, port, primary, notes)` of each allocation of a list, in its order.
fn rows(list: &Value) -> Vec<(String, u64, bool, Value)> {
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|a| {
            (
                a["ip"].as_str().expect("ip").to_owned(),
                a["port"].as_u64().expect("port"),
                a["primary"].as_bool().expect("primary"),
                a["notes"].clone(),
            )
        })
        .collect()
}

/// The ports of a list, without their order.
fn ports(list: &Value) -> BTreeSet<u64> {
    rows(list).into_iter().map(|(_, port, _, _)| port).collect()
}

async fn listed(world: &World, server: &str, token: &str) -> Value {
    json_of(
        send(world, server, token, Method::GET, "/allocations", None).await,
        200,
    )
    .await
}

/// The kinds of the server's audit-log events, oldest first.
async fn kinds(world: &World) -> Vec<String> {
    let path = format!(
        "/api/v1/audit-log?subject_type=server&subject_id={}&limit=200",
        world.server_id
    );
    let log = json_of(
        call(&world.panel, Method::GET, &path, Some(PLUGIN_ADMIN), None).await,
        200,
    )
    .await;
    let mut kinds: Vec<String> = log["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["kind"].as_str().map(str::to_owned))
        .collect();
    kinds.reverse();
    kinds
}

on_every_database! {
    async fn extra_allocations_are_taken_within_the_limit_and_refused_at_it(db: &TestDb) {
        let world = world(db).await;
        let server = world.server_id.clone();
        let list = listed(&world, &server, ALICE).await;
        assert_eq!(rows(&list), [("10.0.0.1".to_owned(), 25565, true, Value::Null)]);
        assert_eq!(list["limit"], 0, "the primary only, by default");

        // At the default limit nothing more is given.
        let response = send(&world, &server, ALICE, Method::POST, "/allocations", Some(json!({}))).await;
        let problem = expect_problem(response, 409, "allocation-limit-reached").await;
        assert!(problem["detail"].as_str().is_some_and(|d| d.contains("limit is 0")), "{problem:#}");

        // The limit is an administrator's, and bounded.
        let response = send(&world, &server, ALICE, Method::PUT, "/allocation-limit", Some(json!({"limit": 5}))).await;
        let problem = expect_problem(response, 403, "forbidden").await;
        assert!(problem["detail"].as_str().is_some_and(|d| d.contains("admin.servers")), "{problem:#}");
        let response = send(&world, &server, PLUGIN_ADMIN, Method::PUT, "/allocation-limit", Some(json!({"limit": 101}))).await;
        let problem = expect_problem(response, 422, "validation-failed").await;
        assert_eq!(problem["errors"][0]["field"], "limit", "{problem:#}");
        set_limit(&world, &server, 2).await;

        // The node's first free one, then one asked for.
        let first = json_of(send(&world, &server, ALICE, Method::POST, "/allocations", Some(json!({}))).await, 201).await;
        assert_eq!(first, json!({"ip": "10.0.0.1", "port": 25566, "notes": null, "primary": false,
            "applies_at_next_start": false}));
        let asked = json_of(send(&world, &server, ALICE, Method::POST, "/allocations",
            Some(json!({"ip": "10.0.0.1", "port": 25568}))).await, 201).await;
        assert_eq!((asked["port"].clone(), asked["primary"].clone()), (json!(25568), json!(false)));

        // At the limit: refused, naming it; nothing was taken.
        let response = send(&world, &server, ALICE, Method::POST, "/allocations", Some(json!({}))).await;
        let problem = expect_problem(response, 409, "allocation-limit-reached").await;
        assert!(problem["detail"].as_str().is_some_and(|d| d.contains("limit of 2")), "{problem:#}");
        let list = listed(&world, &server, ALICE).await;
        assert_eq!(list["limit"], 2);
        assert_eq!(rows(&list)[0], ("10.0.0.1".to_owned(), 25565, true, Value::Null), "the primary first");
        assert_eq!(ports(&list), BTreeSet::from([25565, 25566, 25568]));
        let free = json_of(call(&world.panel, Method::GET,
            &format!("/api/v1/nodes/{}/allocations?state=free", world.node_id), Some(PLUGIN_ADMIN), None).await, 200).await;
        let free: Vec<u64> = free["items"].as_array().expect("items").iter()
            .filter_map(|a| a["port"].as_u64()).collect();
        assert_eq!(free, [25567]);

        // Lowering the limit takes nothing away.
        set_limit(&world, &server, 0).await;
        assert_eq!(ports(&listed(&world, &server, ALICE).await).len(), 3);

        // Each change is in the audit log, in order.
        let kinds = kinds(&world).await;
        assert_eq!(&kinds[kinds.len() - 4..], [
            "server.allocation-limit.set", "server.allocation.added",
            "server.allocation.added", "server.allocation-limit.set",
        ]);
    }
}

on_every_database! {
    async fn taken_foreign_and_malformed_allocations_are_refused_and_an_empty_pool_says_so(db: &TestDb) {
        let world = world(db).await;
        let server = world.server_id.clone();
        set_limit(&world, &server, 5).await;
        let carols = json_of(call(&world.panel, Method::POST, "/api/v1/servers", Some(CAROL),
            Some(server_request(&world.node_id, "carols", ("10.0.0.1", 25568)))).await, 201).await;
        assert_eq!(carols["owner_id"], world.carol.as_str());
        let add = |body: Value| send(&world, &server, ALICE, Method::POST, "/allocations", Some(body));

        // Taken by another server, or held already.
        let problem = expect_problem(add(json!({"ip": "10.0.0.1", "port": 25568})).await, 409, "allocation-assigned").await;
        assert!(problem["detail"].as_str().is_some_and(|d| d.contains("another server")), "{problem:#}");
        let problem = expect_problem(add(json!({"ip": "10.0.0.1", "port": 25565})).await, 409, "allocation-assigned").await;
        assert!(problem["detail"].as_str().is_some_and(|d| d.contains("already")), "{problem:#}");

        // Not in the pool of the server's node: another node's, or none's.
        for (ip, port) in [("10.0.0.2", 25565), ("10.0.0.1", 30000)] {
            let problem = expect_problem(add(json!({"ip": ip, "port": port})).await, 422, "validation-failed").await;
            assert_eq!(problem["errors"][0]["field"], "port", "{problem:#}");
            assert!(problem["errors"][0]["message"].as_str().is_some_and(|m| m.contains("not an allocation of the server's node")),
                "{problem:#}");
        }
        // Malformed: not an address, half an allocation, port 0, unknown fields.
        for (body, field) in [
            (json!({"ip": "ten.zero", "port": 25566}), "ip"),
            (json!({"ip": "10.0.0.1"}), "port"),
            (json!({"port": 25566}), "ip"),
            (json!({"ip": "10.0.0.1", "port": 0}), "port"),
        ] {
            let problem = expect_problem(add(body.clone()).await, 422, "validation-failed").await;
            assert_eq!(problem["errors"][0]["field"], field, "{body}: {problem:#}");
        }
        expect_problem(add(json!({"ip": "10.0.0.1", "port": 70000})).await, 422, "validation-failed").await;
        expect_problem(add(json!({"host": "10.0.0.1"})).await, 422, "validation-failed").await;

        // The rest of the pool, then an empty pool: refused as such, within the limit.
        for port in [25566, 25567] {
            let added = json_of(add(json!({})).await, 201).await;
            assert_eq!(added["port"], port);
        }
        let problem = expect_problem(add(json!({})).await, 409, "no-free-allocation").await;
        assert!(problem["detail"].as_str().is_some_and(|d| d.contains("no free allocation")), "{problem:#}");
        assert_eq!(ports(&listed(&world, &server, ALICE).await), BTreeSet::from([25565, 25566, 25567]));
        assert_eq!(ports(&listed(&world, carols["id"].as_str().expect("id"), CAROL).await), BTreeSet::from([25568]));
    }
}

on_every_database! {
    async fn notes_are_written_cleared_and_refused_when_too_long_or_not_one_line(db: &TestDb) {
        let world = world(db).await;
        let server = world.server_id.clone();
        set_limit(&world, &server, 1).await;
        json_of(send(&world, &server, ALICE, Method::POST, "/allocations", Some(json!({"ip": "10.0.0.1", "port": 25566}))).await, 201).await;
        let notes = |body: Value| send(&world, &server, ALICE, Method::PATCH, "/allocations/10.0.0.1/25566", Some(body));

        let written = json_of(notes(json!({"notes": "  query port  "})).await, 200).await;
        assert_eq!(written, json!({"ip": "10.0.0.1", "port": 25566, "notes": "query port", "primary": false}));
        // 255 characters fit, several bytes each or not; 256 do not.
        for longest in ["n".repeat(255), "é".repeat(255)] {
            let written = json_of(notes(json!({"notes": longest})).await, 200).await;
            assert_eq!(written["notes"], longest.as_str());
        }
        let problem = expect_problem(notes(json!({"notes": "n".repeat(256)})).await, 422, "validation-failed").await;
        assert_eq!(problem["errors"][0]["field"], "notes");
        assert!(problem["errors"][0]["message"].as_str().is_some_and(|m| m.contains("255")), "{problem:#}");
        let problem = expect_problem(notes(json!({"notes": "one\ntwo"})).await, 422, "validation-failed").await;
        assert_eq!(problem["errors"][0]["field"], "notes");
        let list = listed(&world, &server, ALICE).await;
        assert!(rows(&list).contains(&("10.0.0.1".to_owned(), 25566, false, json!("é".repeat(255)))), "{list:#}");

        // Cleared with null or blank.
        for clear in [json!({"notes": null}), json!({"notes": "   "})] {
            let cleared = json_of(notes(clear).await, 200).await;
            assert_eq!(cleared["notes"], Value::Null);
        }
        // Only allocations the server holds.
        for path in ["/allocations/10.0.0.1/25567", "/allocations/10.0.0.2/25565", "/allocations/x/1"] {
            let response = send(&world, &server, ALICE, Method::PATCH, path, Some(json!({"notes": "mine"}))).await;
            expect_problem(response, 404, "not-found").await;
        }
    }
}

on_every_database! {
    async fn the_primary_switches_even_while_running_and_cannot_be_removed(db: &TestDb) {
        let world = world(db).await;
        let server = world.server_id.clone();
        set_limit(&world, &server, 1).await;
        json_of(send(&world, &server, ALICE, Method::POST, "/allocations", Some(json!({"ip": "10.0.0.1", "port": 25566}))).await, 201).await;

        let primary = json_of(send(&world, &server, ALICE, Method::POST, "/allocations/10.0.0.1/25566/primary", None).await, 200).await;
        assert_eq!(primary, json!({"ip": "10.0.0.1", "port": 25566, "notes": null, "primary": true,
            "applies_at_next_start": false}));
        let list = listed(&world, &server, ALICE).await;
        assert_eq!(rows(&list), [
            ("10.0.0.1".to_owned(), 25566, true, Value::Null),
            ("10.0.0.1".to_owned(), 25565, false, Value::Null),
        ]);
        // The server is shown with its primary, alone and in lists.
        let shown = json_of(call(&world.panel, Method::GET, &format!("/api/v1/servers/{server}"), Some(ALICE), None).await, 200).await;
        assert_eq!(shown["allocation"], json!({"ip": "10.0.0.1", "port": 25566}));
        let page = json_of(call(&world.panel, Method::GET, "/api/v1/servers", Some(ALICE), None).await, 200).await;
        assert_eq!(page["items"][0]["allocation"], json!({"ip": "10.0.0.1", "port": 25566}));

        // The primary stays.
        let response = send(&world, &server, ALICE, Method::DELETE, "/allocations/10.0.0.1/25566", None).await;
        let problem = expect_problem(response, 409, "allocation-primary").await;
        assert!(problem["detail"].as_str().is_some_and(|d| d.contains("make another allocation primary first")), "{problem:#}");

        // Making the primary primary again changes and records nothing.
        let before = kinds(&world).await;
        json_of(send(&world, &server, ALICE, Method::POST, "/allocations/10.0.0.1/25566/primary", None).await, 200).await;
        assert_eq!(kinds(&world).await, before);

        // While it runs: allowed, and the answer says when the game sees it.
        let db_handle = world.panel.state().db().clone();
        cap_panel::servers::server::set_state(&db_handle, &server, "running", None).await.expect("running");
        let back = json_of(send(&world, &server, ALICE, Method::POST, "/allocations/10.0.0.1/25565/primary", None).await, 200).await;
        assert_eq!((back["primary"].clone(), back["applies_at_next_start"].clone()), (json!(true), json!(true)));
        let response = send(&world, &server, ALICE, Method::DELETE, "/allocations/10.0.0.1/25566", None).await;
        assert_eq!(response.status(), 204);
        assert_eq!(rows(&listed(&world, &server, ALICE).await), [("10.0.0.1".to_owned(), 25565, true, Value::Null)]);
        assert!(kinds(&world).await.ends_with(&[
            "server.allocation.primary.set".to_owned(),
            "server.state.changed".to_owned(),
            "server.allocation.primary.set".to_owned(),
            "server.allocation.removed".to_owned(),
        ]));
    }
}

on_every_database! {
    async fn a_removed_allocation_goes_back_to_the_pool_without_its_notes_and_another_server_takes_it(db: &TestDb) {
        let world = world(db).await;
        let server = world.server_id.clone();
        set_limit(&world, &server, 1).await;
        json_of(send(&world, &server, ALICE, Method::POST, "/allocations", Some(json!({"ip": "10.0.0.1", "port": 25566}))).await, 201).await;
        json_of(send(&world, &server, ALICE, Method::PATCH, "/allocations/10.0.0.1/25566", Some(json!({"notes": "voice chat"}))).await, 200).await;
        let response = send(&world, &server, ALICE, Method::DELETE, "/allocations/10.0.0.1/25566", None).await;
        assert_eq!(response.status(), 204);
        // Gone from the server; a second removal finds nothing.
        assert_eq!(ports(&listed(&world, &server, ALICE).await), BTreeSet::from([25565]));
        let response = send(&world, &server, ALICE, Method::DELETE, "/allocations/10.0.0.1/25566", None).await;
        expect_problem(response, 404, "not-found").await;
        let pool = json_of(call(&world.panel, Method::GET,
            &format!("/api/v1/nodes/{}/allocations", world.node_id), Some(PLUGIN_ADMIN), None).await, 200).await;
        let freed = pool["items"].as_array().expect("items").iter()
            .find(|a| a["port"] == 25566).expect("in the pool");
        assert_eq!(freed["server_id"], Value::Null);

        // Carol's server takes it, without Alice's notes.
        let carols = json_of(call(&world.panel, Method::POST, "/api/v1/servers", Some(CAROL),
            Some(server_request(&world.node_id, "carols", ("10.0.0.1", 25567)))).await, 201).await;
        let carols = carols["id"].as_str().expect("id").to_owned();
        set_limit(&world, &carols, 1).await;
        let taken = json_of(send(&world, &carols, CAROL, Method::POST, "/allocations",
            Some(json!({"ip": "10.0.0.1", "port": 25566}))).await, 201).await;
        assert_eq!(taken["notes"], Value::Null);
        let stored = db.fetch_texts("SELECT COALESCE(notes, 'none') FROM allocations WHERE port = 25566").await;
        assert_eq!(stored, ["none"]);
    }
}

on_every_database! {
    async fn subusers_need_each_allocation_permission_and_a_reader_only_sees_the_list(db: &TestDb) {
        let world = world(db).await;
        let server = world.server_id.clone();
        set_limit(&world, &server, 2).await;
        json_of(send(&world, &server, ALICE, Method::POST, "/allocations", Some(json!({"ip": "10.0.0.1", "port": 25566}))).await, 201).await;

        // Not a subuser: the server does not exist for them.
        let response = send(&world, &server, BOB, Method::GET, "/allocations", None).await;
        expect_problem(response, 404, "not-found").await;

        let subusers = format!("/api/v1/servers/{server}/subusers");
        json_of(call(&world.panel, Method::POST, &subusers, Some(ALICE),
            Some(json!({"user_id": world.bob, "permissions": ["allocation.read"]}))).await, 201).await;
        let list = listed(&world, &server, BOB).await;
        assert_eq!(ports(&list), BTreeSet::from([25565, 25566]));
        assert_eq!(list["limit"], 2);
        for (method, path, body, needed) in [
            (Method::POST, "/allocations", Some(json!({})), "allocation.create"),
            (Method::PATCH, "/allocations/10.0.0.1/25566", Some(json!({"notes": "x"})), "allocation.update"),
            (Method::POST, "/allocations/10.0.0.1/25566/primary", None, "allocation.update"),
            (Method::DELETE, "/allocations/10.0.0.1/25566", None, "allocation.delete"),
            (Method::PUT, "/allocation-limit", Some(json!({"limit": 9})), "admin.servers"),
        ] {
            let response = send(&world, &server, BOB, method.clone(), path, body).await;
            let problem = expect_problem(response, 403, "forbidden").await;
            assert!(problem["detail"].as_str().is_some_and(|d| d.contains(needed)), "{method} {path}: {problem:#}");
        }
        assert_eq!(listed(&world, &server, ALICE).await, list, "nothing changed");

        // Given allocation.create (and not allocation.read), they add one
        // but may not list them.
        json_of(call(&world.panel, Method::PATCH, &format!("{subusers}/{}", world.bob), Some(ALICE),
            Some(json!({"permissions": ["allocation.create"]}))).await, 200).await;
        json_of(send(&world, &server, BOB, Method::POST, "/allocations", Some(json!({}))).await, 201).await;
        let response = send(&world, &server, BOB, Method::GET, "/allocations", None).await;
        expect_problem(response, 403, "forbidden").await;
        assert_eq!(ports(&listed(&world, &server, ALICE).await).len(), 3);
    }
}

on_every_database! {
    async fn an_api_key_acts_on_allocations_within_its_scopes_only(db: &TestDb) {
        let p = IdentityPanel::start(db).await;
        let admin = token(&p.login_ok("admin", ADMIN_PASSWORD).await, "access_token");
        let response = client().post(p.url("/api/v1/plugins")).bearer_auth(&admin)
            .header("content-type", "application/octet-stream").body(package("test-game"))
            .send().await.expect("request");
        let uploaded = json_of(response, 201).await;
        let as_admin = |method: Method, path: String, body: Option<Value>| {
            let (panel, admin) = (&p.panel, admin.clone());
            async move { call(panel, method, &path, Some(admin.as_str()), body).await }
        };
        json_of(as_admin(Method::POST, "/api/v1/plugins/test-game/grant".into(),
            Some(uploaded["plugin"]["requested"].clone())).await, 200).await;
        json_of(as_admin(Method::POST, "/api/v1/plugins/test-game/activate".into(), None).await, 200).await;
        let node = json_of(as_admin(Method::POST, "/api/v1/nodes".into(), Some(json!({"name": "n1",
            "address": "10.0.0.1", "memory_mb": 4096, "disk_mb": 10000, "cpu_percent": 400}))).await, 201).await;
        let node = node["id"].as_str().expect("id").to_owned();
        json_of(as_admin(Method::POST, format!("/api/v1/nodes/{node}/allocations"),
            Some(json!({"ip": "10.0.0.1", "ports": ["25565-25567"]}))).await, 201).await;
        // The admin's own server: as its owner, a key narrows what they may do.
        let server = json_of(as_admin(Method::POST, "/api/v1/servers".into(),
            Some(server_request(&node, "keyed", ("10.0.0.1", 25565)))).await, 201).await;
        let server = server["id"].as_str().expect("id").to_owned();
        json_of(as_admin(Method::PUT, format!("/api/v1/servers/{server}/allocation-limit"),
            Some(json!({"limit": 2}))).await, 200).await;
        let key = |scopes: Value| {
            let admin = admin.clone();
            let url = p.url("/api/v1/account/api-keys");
            async move {
                let response = client().post(url).bearer_auth(&admin)
                    .json(&json!({"name": "script", "scopes": scopes})).send().await.expect("request");
                token(&json_of(response, 201).await, "secret")
            }
        };
        let allocations = format!("/api/v1/servers/{server}/allocations");

        let reader = key(json!(["allocation.read"])).await;
        let list = json_of(call(&p.panel, Method::GET, &allocations, Some(reader.as_str()), None).await, 200).await;
        assert_eq!(ports(&list), BTreeSet::from([25565]));
        let response = call(&p.panel, Method::POST, &allocations, Some(reader.as_str()), Some(json!({}))).await;
        let problem = expect_problem(response, 403, "forbidden").await;
        assert!(problem["detail"].as_str().is_some_and(|d| d.contains("allocation.create")), "{problem:#}");
        let response = call(&p.panel, Method::PUT, &format!("/api/v1/servers/{server}/allocation-limit"),
            Some(reader.as_str()), Some(json!({"limit": 9}))).await;
        expect_problem(response, 403, "forbidden").await;

        let adder = key(json!(["allocation.create"])).await;
        let added = json_of(call(&p.panel, Method::POST, &allocations, Some(adder.as_str()), Some(json!({}))).await, 201).await;
        assert_eq!(added["port"], 25566);
        let response = call(&p.panel, Method::GET, &allocations, Some(adder.as_str()), None).await;
        expect_problem(response, 403, "forbidden").await;
        let response = call(&p.panel, Method::DELETE, &format!("{allocations}/10.0.0.1/25566"), Some(adder.as_str()), None).await;
        expect_problem(response, 403, "forbidden").await;

        // The session itself holds every permission.
        let response = call(&p.panel, Method::DELETE, &format!("{allocations}/10.0.0.1/25566"), Some(admin.as_str()), None).await;
        assert_eq!(response.status(), 204);
        p.panel.stop().await.expect("stops");
    }
}

on_every_database! {
    async fn an_ipv6_allocation_is_taken_in_any_spelling_and_addressed_percent_encoded_or_not(db: &TestDb) {
        let world = world(db).await;
        let server = world.server_id.clone();
        json_of(call(&world.panel, Method::POST, &format!("/api/v1/nodes/{}/allocations", world.node_id),
            Some(PLUGIN_ADMIN), Some(json!({"ip": "::1", "ports": [27015]}))).await, 201).await;
        set_limit(&world, &server, 1).await;
        let added = json_of(send(&world, &server, ALICE, Method::POST, "/allocations",
            Some(json!({"ip": "0:0:0:0:0:0:0:1", "port": 27015}))).await, 201).await;
        assert_eq!((added["ip"].clone(), added["port"].clone()), (json!("::1"), json!(27015)));

        let noted = json_of(send(&world, &server, ALICE, Method::PATCH, "/allocations/%3A%3A1/27015",
            Some(json!({"notes": "source tv"}))).await, 200).await;
        assert_eq!(noted["notes"], "source tv");
        let primary = json_of(send(&world, &server, ALICE, Method::POST, "/allocations/::1/27015/primary", None).await, 200).await;
        assert_eq!(primary["primary"], true);
        let response = send(&world, &server, ALICE, Method::DELETE, "/allocations/%3A%3A1/27015", None).await;
        expect_problem(response, 409, "allocation-primary").await;
        let response = send(&world, &server, ALICE, Method::DELETE, "/allocations/10.0.0.1/25565", None).await;
        assert_eq!(response.status(), 204);
        let list = listed(&world, &server, ALICE).await;
        assert_eq!(rows(&list), [("::1".to_owned(), 27015, true, json!("source tv"))]);
    }
}

on_every_database! {
    async fn replay_rebuilds_extra_allocations_their_notes_the_primary_and_the_limit(db: &TestDb) {
        let world = world(db).await;
        let server = world.server_id.clone();
        set_limit(&world, &server, 3).await;
        for port in [25566, 25567, 25568] {
            json_of(send(&world, &server, ALICE, Method::POST, "/allocations", Some(json!({"ip": "10.0.0.1", "port": port}))).await, 201).await;
        }
        json_of(send(&world, &server, ALICE, Method::PATCH, "/allocations/10.0.0.1/25567", Some(json!({"notes": "rcon"}))).await, 200).await;
        json_of(send(&world, &server, ALICE, Method::PATCH, "/allocations/10.0.0.1/25568", Some(json!({"notes": "dropped"}))).await, 200).await;
        json_of(send(&world, &server, ALICE, Method::POST, "/allocations/10.0.0.1/25567/primary", None).await, 200).await;
        let response = send(&world, &server, ALICE, Method::DELETE, "/allocations/10.0.0.1/25568", None).await;
        assert_eq!(response.status(), 204);
        set_limit(&world, &server, 2).await;
        world.panel.stop().await.expect("stops");
        let handle = db.connect().await;

        let live = snapshot_since_v1(db).await;
        let row = |port: i64| live["allocations"].iter().find(|a| a["port"] == port).cloned().expect("a row");
        assert_eq!((row(25567)["notes"].clone(), row(25567)["is_primary"].clone()), (json!("rcon"), json!(true)));
        assert_eq!((row(25565)["is_primary"].clone(), row(25566)["server_id"].clone()), (json!(false), json!(server)));
        assert_eq!((row(25568)["server_id"].clone(), row(25568)["notes"].clone()), (Value::Null, Value::Null));
        assert_eq!(live["servers"][0]["allocation_limit"], 2);

        replay(&handle).await.expect("replay");
        assert_eq!(snapshot_since_v1(db).await, live, "replay changed the allocations");
        for table in ["allocations", "servers", "server_commands", "server_subusers"] {
            db.execute_raw(&format!("DELETE FROM {table}")).await.expect("emptied");
        }
        // The allocations' rows went with the table: the node's pool comes
        // back from `node.allocations.added`, the rest from the servers'
        // events.
        replay(&handle).await.expect("replay");
        assert_eq!(snapshot_since_v1(db).await, live, "replay did not rebuild the allocations");
        handle.close().await;
    }
}

/// Gives the server of `site` an extra allocation on a free port of
/// loopback and returns `(primary, extra)` ports.
async fn with_extra_allocation(site: &Files) -> (u16, u16) {
    let extra = crate::support::free_port();
    json_of(
        call(
            &site.panel,
            Method::POST,
            &format!("/api/v1/nodes/{}/allocations", site.node_id),
            Some(ADMIN),
            Some(json!({"ip": "127.0.0.1", "ports": [extra]})),
        )
        .await,
        201,
    )
    .await;
    let path = |rest: &str| format!("/api/v1/servers/{}{rest}", site.server_id);
    json_of(
        call(
            &site.panel,
            Method::PUT,
            &path("/allocation-limit"),
            Some(ADMIN),
            Some(json!({"limit": 1})),
        )
        .await,
        200,
    )
    .await;
    let added = json_of(
        call(
            &site.panel,
            Method::POST,
            &path("/allocations"),
            Some(ADMIN),
            Some(json!({"ip": "127.0.0.1", "port": extra})),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(
        added["applies_at_next_start"], false,
        "the server is not running yet"
    );
    let list = json_of(
        call(
            &site.panel,
            Method::GET,
            &path("/allocations"),
            Some(ADMIN),
            None,
        )
        .await,
        200,
    )
    .await;
    let primary = list["items"][0]["port"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .expect("the primary");
    (primary, extra)
}

/// Sends `env <name>` to the game's console and waits for its answer
/// among the frames after the first `after`.
async fn game_env(console: &Console, name: &str, value: &str) {
    let after = console.frames().len();
    console.send("send command", json!([format!("env {name}")]));
    let line = format!("ENV {name}={value}");
    console
        .wait_for_after(after, &format!("the game to print {line}"), |f| {
            event_is(f, "console output", json!(line))
        })
        .await;
}

async fn power(site: &Files, action: &str) {
    json_of(
        call(
            &site.panel,
            Method::POST,
            &format!("/api/v1/servers/{}/power", site.server_id),
            Some(ADMIN),
            Some(json!({"action": action})),
        )
        .await,
        202,
    )
    .await;
}

/// Starts the server of `site` with an extra allocation, and checks that
/// the game finds both ports in its environment, and, after a primary
/// switch while it runs, the new primary at its next start only.
async fn the_game_sees_its_allocations(site: &Files) {
    let (primary, extra) = with_extra_allocation(site).await;
    let console = Console::open(&site.panel, &site.server_id, ADMIN).await;
    console
        .wait_for("auth success", |f| f["event"] == "auth success")
        .await;
    power(site, "start").await;
    server_state(&site.panel, &site.server_id, "running").await;
    game_env(&console, "SERVER_PORT", &primary.to_string()).await;
    game_env(&console, "SERVER_PORTS", &format!("{primary},{extra}")).await;
    game_env(&console, "SERVER_IP_1", "127.0.0.1").await;
    game_env(&console, "SERVER_PORT_1", &extra.to_string()).await;

    // The primary switched while it runs: the game moves at its next start.
    let switched = json_of(
        call(
            &site.panel,
            Method::POST,
            &format!(
                "/api/v1/servers/{}/allocations/127.0.0.1/{extra}/primary",
                site.server_id
            ),
            Some(ADMIN),
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(switched["applies_at_next_start"], true, "{switched:#}");
    game_env(&console, "SERVER_PORT", &primary.to_string()).await;
    power(site, "stop").await;
    server_state(&site.panel, &site.server_id, "offline").await;
    power(site, "start").await;
    server_state(&site.panel, &site.server_id, "running").await;
    game_env(&console, "SERVER_PORT", &extra.to_string()).await;
    game_env(&console, "SERVER_PORTS", &format!("{extra},{primary}")).await;
    game_env(&console, "SERVER_PORT_1", &primary.to_string()).await;
    power(site, "kill").await;
}

#[tokio::test]
async fn the_game_finds_its_extra_allocation_in_its_environment_through_a_real_agent() {
    let db = TestDb::sqlite().await;
    let site = files_site_on(&db, 1000, None).await;
    the_game_sees_its_allocations(&site).await;
}

#[tokio::test]
async fn the_game_finds_its_extra_allocation_in_its_environment_in_a_container() {
    let podman = cap_e2e::podman::PodmanService::start();
    let db = TestDb::sqlite().await;
    let site = files_site_on(&db, 1000, Some(&podman)).await;
    the_game_sees_its_allocations(&site).await;
}
