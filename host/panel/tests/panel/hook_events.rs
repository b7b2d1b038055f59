//! The user, node and plugin kinds of the hook event catalogue, fired over
//! real HTTP on every database and heard by a real hook plugin: the
//! `event-recorder` example plugin (API 0.2.0), which records every event
//! it receives in its key-value store (`<phase>/<kind>/<subject>`) and
//! denies the before-events its `deny-kinds` configuration lists, or traps
//! on those of `fail-kinds`.
//!
//! Each vetoable kind is shown refused with `403 hook-denied` (the
//! plugin's reason reaching the client) and nothing written; the kinds
//! that must not be refused (`user.logout`, `plugin.deactivate`, a plugin's
//! own lifecycle, a login whose hook fails) are shown going through.

use std::collections::BTreeMap;
use std::time::Duration;

use cap_panel::db::{Actor, Database};
use cap_panel::plugin_kv::DbKv;
use cap_panel::plugins::PluginManager;
use cap_runtime::capabilities::kv::KvStore;
use cap_runtime::{Grants, Manifest};
use reqwest::Method;
use serde_json::{Value, json};

use crate::identity::{ADMIN_PASSWORD, IdentityPanel, token};
use crate::plugins::package;
use crate::support::{client, expect_problem, on_every_database};
use crate::totp::send;
use crate::users::create_linked_user;

const RECORDER: &str = "event-recorder";

/// A Panel with identity on, its administrator's access token, and the
/// recorder installed, granted and active.
struct World {
    p: IdentityPanel,
    admin: String,
}

impl World {
    async fn start(db: &crate::support::TestDb) -> World {
        let p = IdentityPanel::start(db).await;
        let admin = token(&p.login_ok("admin", ADMIN_PASSWORD).await, "access_token");
        let world = World { p, admin };
        install(world.plugins(), RECORDER).await;
        world
            .plugins()
            .activate(RECORDER, &Actor::system())
            .await
            .expect("the recorder activates");
        world
    }

    fn plugins(&self) -> &PluginManager {
        self.p.panel.state().plugins().expect("a plugin manager")
    }

    fn db(&self) -> &Database {
        self.p.panel.state().db()
    }

    /// Makes the recorder deny the before-events of `kinds`.
    async fn deny(&self, kinds: &str) {
        self.configure("deny-kinds", kinds).await;
    }

    async fn configure(&self, key: &str, kinds: &str) {
        let values = BTreeMap::from([(key.to_owned(), Some(kinds.to_owned()))]);
        self.plugins()
            .set_config(RECORDER, &values, &Actor::system())
            .await
            .expect("the recorder takes the configuration");
    }

    /// Whether the recorder received `kind` about `subject` in `phase`.
    async fn recorded(&self, phase: &str, kind: &str, subject: &str) -> bool {
        DbKv::new(self.db().clone())
            .get(RECORDER, &format!("{phase}/{kind}/{subject}"))
            .await
            .expect("the recorder's store reads")
            .is_some()
    }

    /// Waits (at most ten seconds) until the recorder's `after` hook
    /// received `kind` about `subject`: after-hooks run on a task of their
    /// own.
    async fn heard_after(&self, kind: &str, subject: &str) {
        for _ in 0..200 {
            if self.recorded("after", kind, subject).await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the recorder never heard after/{kind}/{subject}");
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> reqwest::Response {
        send(&self.p, method, path, Some(&self.admin), body).await
    }

    /// Uploads example plugin `name` as the administrator.
    async fn upload(&self, name: &str) -> reqwest::Response {
        client()
            .post(self.p.url("/api/v1/plugins"))
            .bearer_auth(&self.admin)
            .header("content-type", "application/octet-stream")
            .body(package(name))
            .send()
            .await
            .expect("request")
    }
}

/// Installs example plugin `name` in-process and grants what it requests.
pub(crate) async fn install(plugins: &PluginManager, name: &str) {
    let installed = plugins
        .install(&package(name), &Actor::system())
        .await
        .unwrap_or_else(|e| panic!("{name} installs: {e}"));
    let manifest = Manifest::parse(installed.record.manifest.as_bytes()).expect("its manifest");
    plugins
        .grant(name, Grants::all_requested(&manifest), &Actor::system())
        .await
        .unwrap_or_else(|e| panic!("{name} is granted: {e}"));
}

/// Asserts `response` is the recorder's veto of `kind`.
async fn vetoed(response: reqwest::Response, kind: &str) {
    let problem = expect_problem(response, 403, "hook-denied").await;
    let detail = problem["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(&format!("event-recorder denies {kind}")),
        "{problem:#}"
    );
}

/// The user called `username`, if any, as the administrator sees it.
async fn find_user(w: &World, username: &str) -> Option<Value> {
    let response = w
        .call(
            Method::GET,
            &format!("/api/v1/users?search={username}"),
            None,
        )
        .await;
    assert_eq!(response.status(), 200);
    let page: Value = response.json().await.expect("JSON");
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|u| u["username"] == username)
        .cloned()
}

/// How many sessions were ever started, as the audit log tells.
async fn sessions_started(w: &World) -> usize {
    let response = w
        .call(
            Method::GET,
            "/api/v1/audit-log?kind=session.created&limit=200",
            None,
        )
        .await;
    assert_eq!(response.status(), 200);
    let page: Value = response.json().await.expect("JSON");
    page["items"].as_array().expect("items").len()
}

on_every_database! {
    async fn user_create_reaches_a_hook_plugin_whose_veto_creates_nobody(db: &TestDb) {
        let w = World::start(db).await;
        let response = w.call(Method::POST, "/api/v1/users", Some(json!({"username": "carol"}))).await;
        assert_eq!(response.status(), 201);
        let carol = token(&response.json::<Value>().await.expect("JSON"), "id");
        assert!(w.recorded("before", "user.create", &carol).await,
            "the before-hook names the user it is asked about by its id");
        w.heard_after("user.create", &carol).await;

        w.deny("user.create").await;
        let response = w.call(Method::POST, "/api/v1/users", Some(json!({"username": "dave"}))).await;
        vetoed(response, "user.create").await;
        assert!(find_user(&w, "dave").await.is_none(), "the vetoed user was created");
    }
}

on_every_database! {
    async fn a_login_that_auto_registers_its_user_fires_user_create_whose_veto_creates_nobody(db: &TestDb) {
        let w = World::start(db).await;
        let response = w.call(Method::PUT, "/api/v1/settings/auth.auto-register",
            Some(json!({ "value": true }))).await;
        assert_eq!(response.status(), 200);
        for name in ["erin", "frank"] {
            w.p.plugin.set_password(name, "Long-Enough-Password-2024").await
                .expect("the call succeeds").expect("the password is accepted");
        }

        let erin = w.p.login_ok("erin", "Long-Enough-Password-2024").await;
        let erin = token(&erin["user"], "id");
        assert!(w.recorded("before", "user.create", &erin).await);
        w.heard_after("user.create", &erin).await;

        w.deny("user.create").await;
        vetoed(w.p.login("frank", "Long-Enough-Password-2024").await, "user.create").await;
        assert!(find_user(&w, "frank").await.is_none(), "the vetoed login registered frank");
    }
}

on_every_database! {
    async fn user_update_reaches_a_hook_plugin_whose_veto_changes_nothing(db: &TestDb) {
        let w = World::start(db).await;
        let carol = create_linked_user(&w.p, &w.admin, "carol", "Carols-Password-2024", json!({})).await;
        let path = format!("/api/v1/users/{carol}");
        let response = w.call(Method::PATCH, &path, Some(json!({"email": "carol@example.net"}))).await;
        assert_eq!(response.status(), 200);
        assert!(w.recorded("before", "user.update", &carol).await);
        w.heard_after("user.update", &carol).await;

        w.deny("user.update").await;
        let response = w.call(Method::PATCH, &path,
            Some(json!({"email": "other@example.net", "disabled": true}))).await;
        vetoed(response, "user.update").await;
        let user = find_user(&w, "carol").await.expect("carol");
        assert_eq!(user["email"], "carol@example.net");
        assert_eq!(user["disabled"], false);
        assert_eq!(w.p.login("carol", "Carols-Password-2024").await.status(), 200,
            "the vetoed change disabled carol");
    }
}

on_every_database! {
    async fn user_invite_reaches_a_0_2_hook_plugin_whose_veto_makes_no_link(db: &TestDb) {
        let w = World::start(db).await;
        let response = w.call(Method::POST, "/api/v1/users", Some(json!({"username": "ivy"}))).await;
        let ivy = token(&response.json::<Value>().await.expect("JSON"), "id");
        let path = format!("/api/v1/users/{ivy}/invitation");
        let response = w.call(Method::POST, &path, Some(json!({}))).await;
        assert_eq!(response.status(), 201);
        assert!(w.recorded("before", "user.invite", &ivy).await);
        w.heard_after("user.invite", &ivy).await;

        w.deny("user.invite").await;
        let issued = links_issued(&w, &ivy).await;
        vetoed(w.call(Method::POST, &path, Some(json!({}))).await, "user.invite").await;
        assert_eq!(links_issued(&w, &ivy).await, issued, "the vetoed invitation made a link");
    }
}

/// The links issued for `user_id` so far, by the `user.link-issued` events.
async fn links_issued(w: &World, user_id: &str) -> usize {
    let response = w
        .call(
            Method::GET,
            &format!(
                "/api/v1/audit-log?kind=user.link-issued&subject_type=user&subject_id={user_id}"
            ),
            None,
        )
        .await;
    assert_eq!(response.status(), 200);
    let page: Value = response.json().await.expect("JSON");
    page["items"].as_array().map_or(0, Vec::len)
}

on_every_database! {
    async fn a_0_2_plugin_counts_concurrent_events_once_each_with_an_atomic_kv_update(db: &TestDb) {
        let w = World::start(db).await;
        let carol = create_linked_user(&w.p, &w.admin, "carol", "Carols-Password-2024", json!({})).await;
        let path = format!("/api/v1/users/{carol}");
        // Twelve changes at once: their before-hooks run in instances of
        // their own, each adding one to the same count.
        let changes = (0..12).map(|i| {
            w.call(Method::PATCH, &path, Some(json!({"display_name": format!("Carol {i}")})))
        });
        for response in futures::future::join_all(changes).await {
            assert_eq!(response.status(), 200);
        }
        let count = DbKv::new(w.db().clone())
            .get(RECORDER, "count/before/user.update")
            .await
            .expect("the recorder's store reads");
        assert_eq!(count.as_deref(), Some(&b"12"[..]));
    }
}

on_every_database! {
    async fn user_delete_reaches_a_hook_plugin_whose_veto_keeps_the_user(db: &TestDb) {
        let w = World::start(db).await;
        let response = w.call(Method::POST, "/api/v1/users", Some(json!({"username": "carol"}))).await;
        let carol = token(&response.json::<Value>().await.expect("JSON"), "id");
        let response = w.call(Method::POST, "/api/v1/users", Some(json!({"username": "dave"}))).await;
        let dave = token(&response.json::<Value>().await.expect("JSON"), "id");

        let response = w.call(Method::DELETE, &format!("/api/v1/users/{carol}"), None).await;
        assert_eq!(response.status(), 204);
        assert!(w.recorded("before", "user.delete", &carol).await);
        w.heard_after("user.delete", &carol).await;

        w.deny("user.delete").await;
        let response = w.call(Method::DELETE, &format!("/api/v1/users/{dave}"), None).await;
        vetoed(response, "user.delete").await;
        assert!(find_user(&w, "dave").await.is_some(), "the vetoed deletion deleted dave");
    }
}

on_every_database! {
    async fn user_login_reaches_a_hook_plugin_whose_veto_starts_no_session(db: &TestDb) {
        let w = World::start(db).await;
        let bob = create_linked_user(&w.p, &w.admin, "bob", "Bobs-Password-2024", json!({})).await;
        w.p.login_ok("bob", "Bobs-Password-2024").await;
        assert!(w.recorded("before", "user.login", &bob).await);
        w.heard_after("user.login", &bob).await;

        w.deny("user.login").await;
        let sessions = sessions_started(&w).await;
        vetoed(w.p.login("bob", "Bobs-Password-2024").await, "user.login").await;
        assert_eq!(sessions_started(&w).await, sessions, "the vetoed login started a session");
    }
}

on_every_database! {
    async fn a_failing_hook_plugin_never_refuses_a_login_though_it_refuses_what_it_may(db: &TestDb) {
        let w = World::start(db).await;
        let bob = create_linked_user(&w.p, &w.admin, "bob", "Bobs-Password-2024", json!({})).await;
        // The recorder is fail-closed: its failures deny where failures may.
        w.configure("fail-kinds", "user.login user.create").await;

        let response = w.call(Method::POST, "/api/v1/users", Some(json!({"username": "dave"}))).await;
        let problem = expect_problem(response, 403, "hook-denied").await;
        assert!(problem["detail"].as_str().is_some_and(|d| d.contains("could not decide")), "{problem:#}");
        assert!(find_user(&w, "dave").await.is_none());

        w.p.login_ok("bob", "Bobs-Password-2024").await;
        assert!(w.recorded("before", "user.login", &bob).await, "the failing hook was asked");
        w.p.login_ok("admin", ADMIN_PASSWORD).await;
    }
}

on_every_database! {
    async fn user_logout_reaches_a_hook_plugin_which_cannot_refuse_it(db: &TestDb) {
        let w = World::start(db).await;
        w.deny("user.logout").await;
        let tokens = w.p.login_ok("admin", ADMIN_PASSWORD).await;
        let admin_id = token(&tokens["user"], "id");
        let refresh = token(&tokens, "refresh_token");
        let response = client().post(w.p.url("/api/v1/auth/logout"))
            .json(&json!({"refresh_token": refresh})).send().await.expect("request");
        assert_eq!(response.status(), 204);
        w.heard_after("user.logout", &admin_id).await;
        assert!(!w.recorded("before", "user.logout", &admin_id).await,
            "a logout was put to a before-hook");
        expect_problem(w.p.refresh(&refresh).await, 401, "invalid-refresh-token").await;
    }
}

on_every_database! {
    async fn node_create_reaches_a_hook_plugin_whose_veto_creates_no_node(db: &TestDb) {
        let w = World::start(db).await;
        let node = |name: &str| json!({"name": name, "address": format!("{name}.example.net"),
            "memory_mb": 4096, "disk_mb": 20000, "cpu_percent": 200});
        let response = w.call(Method::POST, "/api/v1/nodes", Some(node("fra-1"))).await;
        assert_eq!(response.status(), 201);
        let id = token(&response.json::<Value>().await.expect("JSON"), "id");
        assert!(w.recorded("before", "node.create", &id).await);
        w.heard_after("node.create", &id).await;

        w.deny("node.create").await;
        vetoed(w.call(Method::POST, "/api/v1/nodes", Some(node("fra-2"))).await, "node.create").await;
        let page: Value = w.call(Method::GET, "/api/v1/nodes", None).await.json().await.expect("JSON");
        let names: Vec<&str> = page["items"].as_array().expect("items").iter()
            .filter_map(|n| n["name"].as_str()).collect();
        assert_eq!(names, ["fra-1"]);
    }
}

on_every_database! {
    async fn node_delete_reaches_a_hook_plugin_whose_veto_keeps_the_node(db: &TestDb) {
        let w = World::start(db).await;
        let mut ids = Vec::new();
        for name in ["fra-1", "fra-2"] {
            let response = w.call(Method::POST, "/api/v1/nodes",
                Some(json!({"name": name, "address": format!("{name}.example.net")}))).await;
            assert_eq!(response.status(), 201);
            ids.push(token(&response.json::<Value>().await.expect("JSON"), "id"));
        }
        let response = w.call(Method::DELETE, &format!("/api/v1/nodes/{}", ids[0]), None).await;
        assert_eq!(response.status(), 204);
        assert!(w.recorded("before", "node.delete", &ids[0]).await);
        w.heard_after("node.delete", &ids[0]).await;

        w.deny("node.delete").await;
        let path = format!("/api/v1/nodes/{}", ids[1]);
        vetoed(w.call(Method::DELETE, &path, None).await, "node.delete").await;
        assert_eq!(w.call(Method::GET, &path, None).await.status(), 200, "the vetoed deletion deleted the node");
    }
}

on_every_database! {
    async fn plugin_install_reaches_a_hook_plugin_whose_veto_installs_nothing(db: &TestDb) {
        let w = World::start(db).await;
        // The veto shows the before-hook asked; the after-hook hears of
        // the install that goes through.
        w.deny("plugin.install").await;
        vetoed(w.upload("quota-guard").await, "plugin.install").await;
        expect_problem(w.call(Method::GET, "/api/v1/plugins/quota-guard", None).await, 404, "not-found").await;

        w.deny("").await;
        assert_eq!(w.upload("quota-guard").await.status(), 201);
        w.heard_after("plugin.install", "quota-guard").await;
    }
}

on_every_database! {
    async fn plugin_activate_reaches_a_hook_plugin_whose_veto_leaves_it_inactive(db: &TestDb) {
        let w = World::start(db).await;
        install(w.plugins(), "quota-guard").await;
        w.deny("plugin.activate").await;
        let path = "/api/v1/plugins/quota-guard/activate";
        vetoed(w.call(Method::POST, path, None).await, "plugin.activate").await;
        assert!(w.plugins().active("quota-guard").is_none());
        let plugin: Value = w.call(Method::GET, "/api/v1/plugins/quota-guard", None).await.json().await.expect("JSON");
        assert_eq!(plugin["state"], "installed", "{plugin:#}");

        w.deny("").await;
        assert_eq!(w.call(Method::POST, path, None).await.status(), 200);
        assert!(w.plugins().active("quota-guard").is_some());
        w.heard_after("plugin.activate", "quota-guard").await;
    }
}

on_every_database! {
    async fn plugin_deactivate_reaches_a_hook_plugin_which_cannot_refuse_it(db: &TestDb) {
        let w = World::start(db).await;
        install(w.plugins(), "quota-guard").await;
        w.plugins().activate("quota-guard", &Actor::system()).await.expect("quota-guard activates");
        w.deny("plugin.deactivate").await;
        let response = w.call(Method::POST, "/api/v1/plugins/quota-guard/deactivate", None).await;
        assert_eq!(response.status(), 200);
        assert!(w.plugins().active("quota-guard").is_none());
        w.heard_after("plugin.deactivate", "quota-guard").await;
        assert!(!w.recorded("before", "plugin.deactivate", "quota-guard").await,
            "a deactivation was put to a before-hook");

        // The recorder itself, denying deactivations, is deactivated too.
        let response = w.call(Method::POST, "/api/v1/plugins/event-recorder/deactivate", None).await;
        assert_eq!(response.status(), 200);
        assert!(w.plugins().active(RECORDER).is_none());
    }
}

on_every_database! {
    async fn plugin_uninstall_reaches_a_hook_plugin_whose_veto_keeps_it_but_never_about_itself(db: &TestDb) {
        let w = World::start(db).await;
        install(w.plugins(), "quota-guard").await;
        w.deny("plugin.uninstall").await;
        vetoed(w.call(Method::DELETE, "/api/v1/plugins/quota-guard", None).await, "plugin.uninstall").await;
        assert_eq!(w.call(Method::GET, "/api/v1/plugins/quota-guard", None).await.status(), 200,
            "the vetoed uninstall removed the plugin");

        // A plugin is never asked about its own lifecycle: the recorder,
        // denying every uninstall, is uninstalled.
        let response = w.call(Method::DELETE, "/api/v1/plugins/event-recorder", None).await;
        assert_eq!(response.status(), 204);
        assert!(w.plugins().active(RECORDER).is_none());

        // Installed anew (its configuration kept) and told to allow, the
        // recorder hears of the other plugin's uninstall.
        install(w.plugins(), RECORDER).await;
        w.plugins().activate(RECORDER, &Actor::system()).await.expect("the recorder activates");
        w.deny("").await;
        let response = w.call(Method::DELETE, "/api/v1/plugins/quota-guard", None).await;
        assert_eq!(response.status(), 204);
        w.heard_after("plugin.uninstall", "quota-guard").await;
    }
}
