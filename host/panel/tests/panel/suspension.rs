//! Suspensions (`/api/v1/servers/{id}/suspension`, `cap_panel::servers::suspension`)
//! over real HTTP, on every database: an administrator suspends a server
//! with a reason its owner and subusers see; it is stopped and refused
//! starts, restarts, reinstalls and console commands by every path (the
//! REST routes, the console socket, a real plugin's `panel` capability);
//! its files are read-only through the file routes, signed grants and a
//! real Agent's SFTP; before-hooks may refuse; a real API 0.2.0 plugin
//! (`billing-hold`) suspends and lifts through `panel.suspend-server`;
//! replay rebuilds the suspension. And reinstalls: an optional `wipe`, a
//! running server refused, and a real Agent emptying the directory.

use std::time::Duration;

use cap_panel::agents::plans::{self, PlanError};
use cap_panel::db::Actor;
use cap_panel::db::replay::replay;
use cap_panel::http::Principal;
use cap_panel::identity::permissions::Permission;
use cap_panel::plugin_kv::DbKv;
use cap_panel::servers::{CommandAction, CommandOutbox, DbPanelApi, server, suspension};
use cap_panel::{Panel, RunningPanel};
use cap_runtime::capabilities::ServiceError;
use cap_runtime::capabilities::kv::KvStore;
use cap_runtime::capabilities::panel::PanelApi;
use reqwest::Method;
use serde_json::{Value, json};

use crate::agents::{Console, command_state, eventually, install, server_state, site};
use crate::files::{ADMIN as FILES_ADMIN, files_site};
use crate::nodes::{call, json_of};
use crate::plugins::{PLUGIN_ADMIN, install_and_activate, post, upload};
use crate::support::{TestDb, Tokens, client, expect_problem, on_every_database};

/// The server's owner, with every server permission but no `admin.servers`.
const ALICE: &str = "suspension-alice-token";
/// A subuser of the server.
const BOB: &str = "suspension-bob-token";
/// A user with no relation to the server.
const CAROL: &str = "suspension-carol-token";

const REASON: &str = "Invoice 2041 is unpaid";

/// A Panel with test-game active, a node without an Agent, and a server
/// alice owns and bob is a subuser of (start, console, files).
struct World {
    panel: RunningPanel,
    node_id: String,
    server_id: String,
}

impl World {
    fn path(&self, rest: &str) -> String {
        format!("/api/v1/servers/{}{rest}", self.server_id)
    }

    async fn call(
        &self,
        token: &str,
        method: Method,
        rest: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        call(&self.panel, method, &self.path(rest), Some(token), body).await
    }

    /// Suspends the server as the administrator; its answer.
    async fn suspend(&self, reason: &str) -> Value {
        json_of(
            self.call(
                PLUGIN_ADMIN,
                Method::POST,
                "/suspension",
                Some(json!({ "reason": reason })),
            )
            .await,
            200,
        )
        .await
    }

    /// The server as `token` sees it.
    async fn server(&self, token: &str) -> Value {
        json_of(self.call(token, Method::GET, "", None).await, 200).await
    }

    /// The server's commands, oldest first, as `(action, state, detail)`.
    async fn commands(&self) -> Vec<(String, String, Option<String>)> {
        let page = json_of(
            self.call(PLUGIN_ADMIN, Method::GET, "/commands?limit=100", None)
                .await,
            200,
        )
        .await;
        let mut commands: Vec<_> = page["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|c| {
                (
                    c["action"].as_str().expect("action").to_owned(),
                    c["state"].as_str().expect("state").to_owned(),
                    c["detail"].as_str().map(str::to_owned),
                )
            })
            .collect();
        commands.reverse();
        commands
    }

    /// The audit log's events of `kind` about the server, newest first.
    async fn audited(&self, kind: &str) -> Vec<Value> {
        let log = json_of(
            call(
                &self.panel,
                Method::GET,
                &format!(
                    "/api/v1/audit-log?subject_type=server&subject_id={}&kind={kind}",
                    self.server_id
                ),
                Some(PLUGIN_ADMIN),
                None,
            )
            .await,
            200,
        )
        .await;
        log["items"].as_array().expect("items").clone()
    }

    fn db(&self) -> &cap_panel::db::Database {
        self.panel.state().db()
    }

    /// Records `state` as the Agent would report it.
    async fn set_state(&self, state: &str) {
        server::set_state(self.db(), &self.server_id, state, None)
            .await
            .expect("the state is recorded");
    }
}

async fn world(db: &TestDb) -> World {
    let ids = db.create_users(&["alice", "bob", "carol"]).await;
    let on_servers: Vec<&str> = Permission::on_servers().map(Permission::as_str).collect();
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
        (
            ALICE,
            Principal::new(ids[0].as_str()).with_permissions(on_servers.iter().copied()),
        ),
        (
            BOB,
            Principal::new(ids[1].as_str()).with_permissions(on_servers.iter().copied()),
        ),
        (
            CAROL,
            Principal::new(ids[2].as_str()).with_permissions(on_servers.iter().copied()),
        ),
    ]);
    let panel = Panel::builder(db.config())
        .authenticator(tokens)
        .bind()
        .await
        .expect("the Panel starts")
        .spawn();
    install_and_activate(&panel, "test-game").await;
    let admin = Some(PLUGIN_ADMIN);
    let node = json_of(
        call(
            &panel,
            Method::POST,
            "/api/v1/nodes",
            admin,
            Some(
                json!({"name": "n1", "address": "10.0.0.1", "memory_mb": 4096,
                        "disk_mb": 10000, "cpu_percent": 400}),
            ),
        )
        .await,
        201,
    )
    .await;
    let node_id = node["id"].as_str().expect("id").to_owned();
    json_of(
        call(
            &panel,
            Method::POST,
            &format!("/api/v1/nodes/{node_id}/allocations"),
            admin,
            Some(json!({"ip": "10.0.0.1", "ports": ["25565-25567"]})),
        )
        .await,
        201,
    )
    .await;
    let server = json_of(
        call(
            &panel,
            Method::POST,
            "/api/v1/servers",
            admin,
            Some(
                json!({"name": "survival", "owner_id": ids[0], "node_id": node_id,
                        "game": {"plugin": "test-game"}, "variables": {"MAX_PLAYERS": "20"},
                        "limits": {"memory_mb": 1024, "disk_mb": 1000, "cpu_percent": 100}}),
            ),
        )
        .await,
        201,
    )
    .await;
    let server_id = server["id"].as_str().expect("id").to_owned();
    json_of(
        call(
            &panel,
            Method::POST,
            &format!("/api/v1/servers/{server_id}/subusers"),
            Some(ALICE),
            Some(json!({"user_id": ids[1],
                        "permissions": ["control.start", "control.console", "file.read"]})),
        )
        .await,
        201,
    )
    .await;
    World {
        panel,
        node_id,
        server_id,
    }
}

/// Asserts `response` is the refusal of a suspended server naming
/// `reason`.
async fn refused_as_suspended(response: reqwest::Response, reason: &str) {
    let problem = expect_problem(response, 409, "server-suspended").await;
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains(reason)),
        "the refusal names the reason: {problem:#}"
    );
}

on_every_database! {
    async fn an_administrator_suspends_a_server_and_its_owner_and_subusers_see_the_reason(db: &TestDb) {
        let w = world(db).await;
        assert!(w.server(ALICE).await.get("suspension").is_none(), "not suspended yet");

        let answer = w.suspend(REASON).await;
        assert_eq!(answer["suspension"]["reason"], REASON, "{answer:#}");
        let since = answer["suspension"]["since"].as_str().expect("since").to_owned();
        assert!(since.starts_with("20"), "{since}");

        for token in [ALICE, BOB] {
            let seen = w.server(token).await;
            assert_eq!(seen["suspension"], json!({"reason": REASON, "since": since}), "{seen:#}");
            let list = json_of(call(&w.panel, Method::GET, "/api/v1/servers", Some(token), None).await, 200).await;
            assert_eq!(list["items"][0]["suspension"]["reason"], REASON, "{list:#}");
        }
        let audited = w.audited("server.suspended").await;
        assert_eq!(audited.len(), 1);
        assert_eq!(audited[0]["actor"]["user_id"], "user-admin");
        assert_eq!(audited[0]["data"]["reason"], REASON);
        w.panel.stop().await.expect("stops");
    }
}

on_every_database! {
    async fn a_suspended_server_is_refused_starts_restarts_reinstalls_and_console_commands_naming_the_reason(db: &TestDb) {
        let w = world(db).await;
        w.suspend(REASON).await;
        for token in [ALICE, BOB] {
            refused_as_suspended(w.call(token, Method::POST, "/power", Some(json!({"action": "start"}))).await, REASON).await;
            refused_as_suspended(w.call(token, Method::POST, "/command", Some(json!({"command": "say hi"}))).await, REASON).await;
        }
        refused_as_suspended(w.call(ALICE, Method::POST, "/power", Some(json!({"action": "restart"}))).await, REASON).await;
        refused_as_suspended(w.call(ALICE, Method::POST, "/install", None).await, REASON).await;
        refused_as_suspended(w.call(ALICE, Method::POST, "/install", Some(json!({"wipe": true}))).await, REASON).await;
        // Administrators are refused too: a suspension is lifted, not bypassed.
        refused_as_suspended(w.call(PLUGIN_ADMIN, Method::POST, "/power", Some(json!({"action": "start"}))).await, REASON).await;

        // Stopping and killing go on.
        for action in ["stop", "kill"] {
            json_of(w.call(ALICE, Method::POST, "/power", Some(json!({"action": action}))).await, 202).await;
        }
        let actions: Vec<String> = w.commands().await.into_iter().map(|(a, _, _)| a).collect();
        assert_eq!(actions, ["stop", "kill"], "nothing refused was queued");

        // The plugins' panel capability takes the same path.
        let api = DbPanelApi::new(w.db().clone());
        match api.send_console_command("some-plugin", &w.server_id, "say from a plugin").await {
            Err(ServiceError::Invalid(message)) => assert!(message.contains(REASON), "{message}"),
            other => panic!("a plugin's command to a suspended server was {other:?}"),
        }
        assert_eq!(w.commands().await.len(), 2, "the plugin's command was not queued");
        w.panel.stop().await.expect("stops");
    }
}

on_every_database! {
    async fn a_real_plugins_console_command_to_a_suspended_server_is_refused_through_the_panel_capability(db: &TestDb) {
        let w = world(db).await;
        // The player list (API 0.1.0) kicks through `panel.send-console-command`.
        install_and_activate(&w.panel, "player-list").await;
        let kick = || call(&w.panel, Method::POST, "/api/v1/ui/contributions/player-list/players/actions",
            Some(PLUGIN_ADMIN),
            Some(json!({"server_id": w.server_id, "name": "kick", "values": {"0": "Steve"}})));
        w.suspend(REASON).await;
        let problem = expect_problem(kick().await, 422, "plugin-refused").await;
        assert!(problem["detail"].as_str().is_some_and(|d| d.contains(REASON)), "{problem:#}");
        assert!(w.commands().await.is_empty(), "no kick was queued");

        json_of(w.call(PLUGIN_ADMIN, Method::DELETE, "/suspension", None).await, 200).await;
        json_of(kick().await, 200).await;
        let commands = w.commands().await;
        assert_eq!(commands.len(), 1);
        assert_eq!((commands[0].0.as_str(), commands[0].1.as_str()), ("console", "pending"));
        w.panel.stop().await.expect("stops");
    }
}

on_every_database! {
    async fn only_administrators_suspend_and_lift_suspensions(db: &TestDb) {
        let w = world(db).await;
        let body = || Some(json!({"reason": REASON}));
        for token in [ALICE, BOB] {
            let problem = expect_problem(w.call(token, Method::POST, "/suspension", body()).await, 403, "forbidden").await;
            assert!(problem["detail"].as_str().is_some_and(|d| d.contains("admin.servers")), "{problem:#}");
        }
        // Someone who may not see the server is told it does not exist.
        expect_problem(w.call(CAROL, Method::POST, "/suspension", body()).await, 404, "not-found").await;
        let anonymous = client().post(w.panel.url(&w.path("/suspension"))).json(&json!({"reason": REASON}))
            .send().await.expect("request");
        assert_eq!(anonymous.status(), 401);
        assert!(w.server(ALICE).await.get("suspension").is_none(), "nothing was suspended");

        w.suspend(REASON).await;
        for token in [ALICE, BOB] {
            expect_problem(w.call(token, Method::DELETE, "/suspension", None).await, 403, "forbidden").await;
        }
        expect_problem(w.call(CAROL, Method::DELETE, "/suspension", None).await, 404, "not-found").await;
        assert_eq!(w.server(ALICE).await["suspension"]["reason"], REASON, "still suspended");
        w.panel.stop().await.expect("stops");
    }
}

on_every_database! {
    async fn bad_suspension_requests_are_refused_naming_the_problem(db: &TestDb) {
        let w = world(db).await;
        let field_refused = |body: Value, field: &'static str| {
            let w = &w;
            async move {
                let problem = expect_problem(w.call(PLUGIN_ADMIN, Method::POST, "/suspension", Some(body)).await,
                    422, "validation-failed").await;
                assert_eq!(problem["errors"][0]["field"], field, "{problem:#}");
            }
        };
        field_refused(json!({"reason": ""}), "reason").await;
        field_refused(json!({"reason": "   "}), "reason").await;
        field_refused(json!({"reason": "x".repeat(513)}), "reason").await;
        field_refused(json!({"reason": "unpaid\nreally"}), "reason").await;
        field_refused(json!({"reason": "nul\u{0}"}), "reason").await;
        field_refused(json!({"reason": 7}), "reason").await;
        field_refused(json!({}), "reason").await;
        field_refused(json!({"reason": REASON, "until": "tomorrow"}), "until").await;
        let text = client().post(w.panel.url(&w.path("/suspension"))).bearer_auth(PLUGIN_ADMIN)
            .header("content-type", "text/plain").body("unpaid").send().await.expect("request");
        expect_problem(text, 415, "unsupported-media-type").await;
        let malformed = client().post(w.panel.url(&w.path("/suspension"))).bearer_auth(PLUGIN_ADMIN)
            .header("content-type", "application/json").body("{\"reason\": ").send().await.expect("request");
        expect_problem(malformed, 400, "malformed-json").await;
        let missing = call(&w.panel, Method::POST, "/api/v1/servers/srv_missing/suspension",
            Some(PLUGIN_ADMIN), Some(json!({"reason": REASON}))).await;
        expect_problem(missing, 404, "not-found").await;
        let missing = call(&w.panel, Method::DELETE, "/api/v1/servers/srv_missing/suspension",
            Some(PLUGIN_ADMIN), None).await;
        expect_problem(missing, 404, "not-found").await;
        assert!(w.audited("server.suspended").await.is_empty(), "nothing bad was recorded");

        // The longest reason is kept whole, trimmed.
        let longest = "y".repeat(512);
        let answer = w.suspend(&format!("  {longest}  ")).await;
        assert_eq!(answer["suspension"]["reason"], longest.as_str());
        // Not twice: the refusal names the reason in force.
        let again = w.call(PLUGIN_ADMIN, Method::POST, "/suspension", Some(json!({"reason": "another"}))).await;
        refused_as_suspended(again, &longest).await;
        json_of(w.call(PLUGIN_ADMIN, Method::DELETE, "/suspension", None).await, 200).await;
        let problem = expect_problem(w.call(PLUGIN_ADMIN, Method::DELETE, "/suspension", None).await,
            409, "server-not-suspended").await;
        assert!(problem["detail"].as_str().is_some_and(|d| d.contains(&w.server_id)), "{problem:#}");

        // A server being deleted is not suspended.
        json_of(w.call(PLUGIN_ADMIN, Method::DELETE, "", None).await, 202).await;
        expect_problem(w.call(PLUGIN_ADMIN, Method::POST, "/suspension", Some(json!({"reason": REASON}))).await,
            409, "server-deleting").await;
        w.panel.stop().await.expect("stops");
    }
}

on_every_database! {
    async fn suspending_a_running_server_stops_it_and_fails_its_pending_starts_installs_and_console_commands(db: &TestDb) {
        let w = world(db).await;
        w.set_state("running").await;
        json_of(w.call(ALICE, Method::POST, "/command", Some(json!({"command": "say bye"}))).await, 202).await;
        json_of(w.call(ALICE, Method::POST, "/power", Some(json!({"action": "restart"}))).await, 202).await;
        json_of(w.call(ALICE, Method::POST, "/power", Some(json!({"action": "kill"}))).await, 202).await;
        w.suspend(REASON).await;
        let commands = w.commands().await;
        let detail = format!("the server was suspended: {REASON}");
        assert_eq!(commands, [
            ("console".to_owned(), "failed".to_owned(), Some(detail.clone())),
            ("restart".to_owned(), "failed".to_owned(), Some(detail)),
            ("kill".to_owned(), "pending".to_owned(), None),
            ("stop".to_owned(), "pending".to_owned(), None),
        ], "the refused commands failed, the kill stays, a stop follows");
        let pending = CommandOutbox::new(w.db().clone()).pending(&w.node_id, 10).await.expect("pending");
        let stop = pending.iter().find(|c| c.action == CommandAction::Stop).expect("the stop");
        assert_eq!(stop.actor_user_id.as_deref(), Some("user-admin"));
        assert_eq!(w.audited("server.command.failed").await.len(), 2);

        // An offline server is not sent a stop.
        json_of(w.call(PLUGIN_ADMIN, Method::DELETE, "/suspension", None).await, 200).await;
        w.set_state("offline").await;
        let before = w.commands().await.len();
        w.suspend(REASON).await;
        assert_eq!(w.commands().await.len(), before, "no command for an offline server");
        w.panel.stop().await.expect("stops");
    }
}

on_every_database! {
    async fn a_suspended_server_that_runs_anyway_is_stopped_again_once(db: &TestDb) {
        let w = world(db).await;
        w.suspend(REASON).await;
        // Its Agent reports it running (a start it had taken before, or its
        // restart policy): what the Agent link does then.
        let running = server::set_state(w.db(), &w.server_id, "running", None).await
            .expect("recorded").expect("changed");
        let stop = suspension::stop_if_suspended(w.db(), &running).await.expect("checked");
        assert_eq!(stop.map(|c| c.action), Some(CommandAction::Stop));
        assert!(suspension::stop_if_suspended(w.db(), &running).await.expect("checked").is_none(),
            "one stop on its way is enough");
        // Not suspended: left alone.
        json_of(w.call(PLUGIN_ADMIN, Method::DELETE, "/suspension", None).await, 200).await;
        let running = server::get(w.db(), &w.server_id).await.expect("read").expect("the server");
        assert!(suspension::stop_if_suspended(w.db(), &running).await.expect("checked").is_none());
        w.panel.stop().await.expect("stops");
    }
}

on_every_database! {
    async fn lifting_a_suspension_lets_the_server_start_and_reinstall_again(db: &TestDb) {
        let w = world(db).await;
        w.suspend(REASON).await;
        refused_as_suspended(w.call(ALICE, Method::POST, "/power", Some(json!({"action": "start"}))).await, REASON).await;
        let lifted = json_of(w.call(PLUGIN_ADMIN, Method::DELETE, "/suspension", None).await, 200).await;
        assert!(lifted.get("suspension").is_none(), "{lifted:#}");
        assert!(w.server(ALICE).await.get("suspension").is_none());
        json_of(w.call(ALICE, Method::POST, "/power", Some(json!({"action": "start"}))).await, 202).await;
        json_of(w.call(BOB, Method::POST, "/command", Some(json!({"command": "say back"}))).await, 202).await;
        json_of(w.call(ALICE, Method::POST, "/install", None).await, 202).await;
        let audited = w.audited("server.unsuspended").await;
        assert_eq!(audited.len(), 1);
        assert_eq!(audited[0]["data"]["reason"], REASON);
        w.panel.stop().await.expect("stops");
    }
}

on_every_database! {
    async fn replay_rebuilds_a_suspension_with_its_reason_time_and_author(db: &TestDb) {
        let w = world(db).await;
        w.suspend(REASON).await;
        let handle = w.db().clone();
        let live = server::get(&handle, &w.server_id).await.expect("read").expect("the server");
        let suspended = live.suspension.clone().expect("suspended");
        assert_eq!(suspended.reason, REASON);
        assert_eq!(suspended.by.as_deref(), Some("user-admin"));

        // Lost behind the data layer's back, and rebuilt from the events.
        db.execute_raw("UPDATE servers SET suspended_reason = NULL, suspended_at = NULL, suspended_by = NULL")
            .await.expect("cleared");
        assert!(server::get(&handle, &w.server_id).await.expect("read").expect("the server").suspension.is_none());
        replay(&handle).await.expect("replay");
        let rebuilt = server::get(&handle, &w.server_id).await.expect("read").expect("the server");
        assert_eq!(rebuilt.suspension, Some(suspended), "the same reason, time and author");

        // A lifted suspension replays as none.
        json_of(w.call(PLUGIN_ADMIN, Method::DELETE, "/suspension", None).await, 200).await;
        replay(&handle).await.expect("replay");
        assert!(server::get(&handle, &w.server_id).await.expect("read").expect("the server").suspension.is_none());
        // And replaying changes nothing on a consistent database.
        w.suspend("again").await;
        let before = server::get(&handle, &w.server_id).await.expect("read");
        replay(&handle).await.expect("replay");
        assert_eq!(server::get(&handle, &w.server_id).await.expect("read"), before);
        w.panel.stop().await.expect("stops");
    }
}

on_every_database! {
    async fn a_before_hook_may_refuse_a_suspension_or_its_lifting_and_after_hooks_hear_of_both(db: &TestDb) {
        let w = world(db).await;
        let plugins = w.panel.state().plugins().expect("a plugin manager");
        crate::hook_events::install(plugins, "event-recorder").await;
        plugins.activate("event-recorder", &Actor::system()).await.expect("activated");
        let deny = |kinds: &str| {
            let values = std::collections::BTreeMap::from([("deny-kinds".to_owned(), Some(kinds.to_owned()))]);
            async move {
                plugins.set_config("event-recorder", &values, &Actor::system()).await.expect("configured");
            }
        };
        let recorded = |phase: &'static str, kind: &'static str| {
            let db = w.db().clone();
            let key = format!("{phase}/{kind}/{}", w.server_id);
            async move {
                DbKv::new(db).get("event-recorder", &key).await.expect("the store reads").is_some()
            }
        };

        deny("server.suspend").await;
        let problem = expect_problem(
            w.call(PLUGIN_ADMIN, Method::POST, "/suspension", Some(json!({"reason": REASON}))).await,
            403, "hook-denied").await;
        assert!(problem["detail"].as_str().is_some_and(|d| d.contains("event-recorder denies server.suspend")),
            "{problem:#}");
        assert!(w.server(ALICE).await.get("suspension").is_none(), "not suspended");
        assert!(w.audited("server.suspended").await.is_empty());

        deny("").await;
        w.suspend(REASON).await;
        eventually("the after-hook of the suspension", || async {
            recorded("after", "server.suspend").await.then_some(())
        }).await;

        deny("server.unsuspend").await;
        expect_problem(w.call(PLUGIN_ADMIN, Method::DELETE, "/suspension", None).await, 403, "hook-denied").await;
        assert_eq!(w.server(ALICE).await["suspension"]["reason"], REASON, "still suspended");
        assert!(recorded("before", "server.unsuspend").await);
        deny("").await;
        json_of(w.call(PLUGIN_ADMIN, Method::DELETE, "/suspension", None).await, 200).await;
        eventually("the after-hook of the lifting", || async {
            recorded("after", "server.unsuspend").await.then_some(())
        }).await;
        w.panel.stop().await.expect("stops");
    }
}

on_every_database! {
    async fn a_0_2_plugin_suspends_and_lifts_a_server_through_the_panel_capability(db: &TestDb) {
        let w = world(db).await;
        install_and_activate(&w.panel, "billing-hold").await;
        let widget = format!("/api/v1/ui/contributions/billing-hold/billing?server_id={}", w.server_id);
        let forms = |token: &'static str| {
            let (panel, widget) = (&w.panel, &widget);
            async move {
                let tree = json_of(call(panel, Method::GET, widget, Some(token), None).await, 200).await;
                tree["nodes"].as_array().expect("nodes").iter()
                    .filter(|n| n["element"]["type"] == "form").count()
            }
        };
        assert_eq!(forms(PLUGIN_ADMIN).await, 1);
        assert_eq!(forms(ALICE).await, 0, "the form is for administrators");
        let act = |token: &'static str, name: &'static str, reason: Option<&'static str>| {
            let w = &w;
            let values = reason.map_or_else(|| json!({}), |r| json!({"reason": r}));
            async move {
                call(&w.panel, Method::POST, "/api/v1/ui/contributions/billing-hold/billing/actions",
                    Some(token), Some(json!({"server_id": w.server_id, "name": name, "values": values}))).await
            }
        };

        let answer = json_of(act(PLUGIN_ADMIN, "hold", Some("invoice 7 is unpaid")).await, 200).await;
        assert_eq!(answer["message"], "On hold: invoice 7 is unpaid", "{answer:#}");
        assert_eq!(w.server(ALICE).await["suspension"]["reason"], "invoice 7 is unpaid");
        let audited = w.audited("server.suspended").await;
        assert_eq!(audited[0]["actor"]["user_id"], "plugin:billing-hold", "{audited:#?}");
        let live = server::get(w.db(), &w.server_id).await.expect("read").expect("the server");
        assert_eq!(live.suspension.and_then(|s| s.by).as_deref(), Some("plugin:billing-hold"));
        refused_as_suspended(w.call(ALICE, Method::POST, "/power", Some(json!({"action": "start"}))).await,
            "invoice 7 is unpaid").await;

        // The Panel's refusals reach the plugin, which passes them on.
        let problem = expect_problem(act(PLUGIN_ADMIN, "hold", None).await, 422, "plugin-refused").await;
        assert!(problem["detail"].as_str().is_some_and(|d| d.contains("suspended already")), "{problem:#}");
        let problem = expect_problem(act(ALICE, "release", None).await, 422, "plugin-refused").await;
        assert!(problem["detail"].as_str().is_some_and(|d| d.contains("admin.servers")), "{problem:#}");

        json_of(act(PLUGIN_ADMIN, "release", None).await, 200).await;
        assert!(w.server(ALICE).await.get("suspension").is_none());
        assert_eq!(w.audited("server.unsuspended").await[0]["actor"]["user_id"], "plugin:billing-hold");
        let problem = expect_problem(act(PLUGIN_ADMIN, "release", None).await, 422, "plugin-refused").await;
        assert!(problem["detail"].as_str().is_some_and(|d| d.contains("not suspended")), "{problem:#}");
        // The default reason when the form's is blank.
        json_of(act(PLUGIN_ADMIN, "hold", Some("  ")).await, 200).await;
        assert_eq!(w.server(ALICE).await["suspension"]["reason"], "the bill is unpaid");
        w.panel.stop().await.expect("stops");
    }
}

on_every_database! {
    async fn a_plugin_not_granted_servers_suspend_is_denied_and_suspends_nothing(db: &TestDb) {
        let w = world(db).await;
        let response = upload(&w.panel, crate::plugins::package("billing-hold")).await;
        let body: Value = response.json().await.expect("JSON");
        assert_eq!(body["plugin"]["requested"]["panel"], json!(["servers.suspend"]), "{body:#}");
        // Granted nothing, then activated.
        assert_eq!(post(&w.panel, "/api/v1/plugins/billing-hold/grant", Some(json!({}))).await.status(), 200);
        assert_eq!(post(&w.panel, "/api/v1/plugins/billing-hold/activate", None).await.status(), 200);
        let response = call(&w.panel, Method::POST, "/api/v1/ui/contributions/billing-hold/billing/actions",
            Some(PLUGIN_ADMIN), Some(json!({"server_id": w.server_id, "name": "hold", "values": {}}))).await;
        let problem = expect_problem(response, 422, "plugin-refused").await;
        assert!(problem["detail"].as_str().is_some_and(|d| d.contains("servers.suspend")), "{problem:#}");
        assert!(w.server(ALICE).await.get("suspension").is_none(), "nothing was suspended");
        w.panel.stop().await.expect("stops");
    }
}

on_every_database! {
    async fn a_reinstall_takes_an_optional_wipe_and_is_refused_while_the_server_runs(db: &TestDb) {
        let w = world(db).await;
        let outbox = CommandOutbox::new(w.db().clone());
        let installs = || async {
            outbox.pending(&w.node_id, 100).await.expect("pending").into_iter()
                .filter(|c| c.action == CommandAction::Install).collect::<Vec<_>>()
        };
        // No body, an empty object, `null` and `false` keep the files.
        json_of(w.call(ALICE, Method::POST, "/install", None).await, 202).await;
        for body in [json!({}), Value::Null, json!({"wipe": false})] {
            json_of(w.call(ALICE, Method::POST, "/install", Some(body)).await, 202).await;
        }
        json_of(w.call(ALICE, Method::POST, "/install", Some(json!({"wipe": true}))).await, 202).await;
        let queued = installs().await;
        let payloads: Vec<Option<Value>> = queued.iter().map(|c| c.payload.clone()).collect();
        assert_eq!(payloads, [None, None, None, None, Some(json!({"wipe": true}))]);

        // What the Agent is sent: the plan says wipe only for that one.
        let plugins = w.panel.state().plugins();
        for (command, wipe) in queued.iter().zip([false, false, false, false, true]) {
            match plans::to_wire(w.db(), plugins, command, None).await.expect("a plan").action {
                cap_protocol::Action::Install(plan) => assert_eq!(plan.wipe, wipe, "{command:?}"),
                other => panic!("an install became {other:?}"),
            }
        }

        // Bad bodies are named.
        let problem = expect_problem(w.call(ALICE, Method::POST, "/install", Some(json!({"wipe": "yes"}))).await,
            422, "validation-failed").await;
        assert_eq!(problem["errors"][0]["field"], "wipe", "{problem:#}");
        let problem = expect_problem(w.call(ALICE, Method::POST, "/install", Some(json!({"wip": true}))).await,
            422, "validation-failed").await;
        assert_eq!(problem["errors"][0]["field"], "wip", "{problem:#}");
        let text = client().post(w.panel.url(&w.path("/install"))).bearer_auth(ALICE)
            .header("content-type", "text/plain").body("wipe").send().await.expect("request");
        expect_problem(text, 415, "unsupported-media-type").await;
        let malformed = client().post(w.panel.url(&w.path("/install"))).bearer_auth(ALICE)
            .header("content-type", "application/json").body("{\"wipe\": ").send().await.expect("request");
        expect_problem(malformed, 400, "malformed-json").await;
        // Without settings.reinstall: refused before the body matters.
        expect_problem(w.call(BOB, Method::POST, "/install", Some(json!({"wipe": true}))).await,
            403, "forbidden").await;

        // Not over a live server: stop it first.
        for state in ["starting", "running", "stopping", "installing"] {
            w.set_state(state).await;
            let problem = expect_problem(w.call(ALICE, Method::POST, "/install", Some(json!({"wipe": true}))).await,
                409, "server-running").await;
            assert!(problem["detail"].as_str().is_some_and(|d| d.contains(state)), "{problem:#}");
        }
        w.set_state("crashed").await;
        json_of(w.call(ALICE, Method::POST, "/install", None).await, 202).await;
        assert_eq!(installs().await.len(), 6);

        // A pending install of a server suspended since is not delivered:
        // the suspension failed it, and the plan refuses it too.
        w.suspend(REASON).await;
        assert!(installs().await.is_empty(), "the suspension failed the pending installs");
        match plans::to_wire(w.db(), plugins, &queued[4], None).await {
            Err(error @ PlanError::Suspended(_)) => assert_eq!(error.code(), "server-suspended"),
            other => panic!("a suspended server's install was {other:?}"),
        }
        w.panel.stop().await.expect("stops");
    }
}

on_every_database! {
    async fn restoring_a_backup_of_a_suspended_server_is_refused(db: &TestDb) {
        let w = world(db).await;
        w.suspend(REASON).await;
        refused_as_suspended(
            w.call(PLUGIN_ADMIN, Method::POST, "/backups/bkp_00000000000000000000000000000000/restore",
                Some(json!({"truncate": true}))).await,
            REASON,
        ).await;
        w.panel.stop().await.expect("stops");
    }
}

// ----- with a real Agent -----

on_every_database! {
    async fn a_suspended_servers_files_are_read_only_through_the_files_api_and_reads_and_backups_go_on(db: &TestDb) {
        let site = files_site(db, 1000).await;
        std::fs::write(site.server_dir().join("notes.txt"), b"notes").expect("a file");
        // An upload grant signed before the suspension.
        let early = site.url(FILES_ADMIN, "upload", "/early.txt", None).await;
        let path = format!("/api/v1/servers/{}/suspension", site.server_id);
        json_of(call(&site.panel, Method::POST, &path, Some(FILES_ADMIN), Some(json!({"reason": REASON}))).await, 200).await;

        // Reads go on.
        assert!(site.list("/").await.contains(&"notes.txt".to_owned()));
        site.ok(Method::GET, "/stat?path=/notes.txt", None).await;
        assert_eq!(site.download("/notes.txt").await, b"notes");
        // Every write is refused by the Panel, naming the reason.
        for (rest, body) in [
            ("/folders", json!({"path": "/d"})),
            ("/rename", json!({"from": "/notes.txt", "to": "/n.txt"})),
            ("/copy", json!({"from": "/notes.txt", "to": "/n.txt"})),
            ("/delete", json!({"paths": ["/notes.txt"]})),
            ("/chmod", json!({"path": "/notes.txt", "mode": "600"})),
            ("/compress", json!({"root": "/", "paths": ["notes.txt"], "name": "n.tar.gz"})),
            ("/decompress", json!({"path": "/notes.tar.gz", "destination": "/x"})),
            ("/pull", json!({"url": "https://example.com/a.jar", "directory": "/"})),
            ("/upload", json!({"path": "/new.txt"})),
        ] {
            let response = site.call(FILES_ADMIN, Method::POST, rest, Some(body)).await;
            let problem = expect_problem(response, 409, "files-read-only").await;
            assert!(problem["detail"].as_str().is_some_and(|d| d.contains(REASON)), "{rest}: {problem:#}");
        }
        // The grant signed before: once the Agent holds the server
        // read-only, which the Panel told it, the grant writes nothing.
        let agent = site.agent.as_ref().expect("the Agent");
        eventually("the Agent to hold the server read-only", || async {
            agent.read_only.contains(&site.server_id).then_some(())
        }).await;
        let late = client().put(&early).body("late").send().await.expect("upload");
        assert_eq!(late.status(), 409, "{:?}", late.text().await);
        assert_eq!(std::fs::read(site.server_dir().join("notes.txt")).expect("kept"), b"notes");
        for gone in ["d", "n.txt", "n.tar.gz", "early.txt", "new.txt"] {
            assert!(!site.server_dir().join(gone).exists(), "{gone} was written");
        }
        // A backup only reads the files: allowed.
        json_of(call(&site.panel, Method::PUT, &format!("/api/v1/servers/{}/backup-limit", site.server_id),
            Some(FILES_ADMIN), Some(json!({"limit": 1}))).await, 200).await;
        let backup = json_of(call(&site.panel, Method::POST, &format!("/api/v1/servers/{}/backups", site.server_id),
            Some(FILES_ADMIN), Some(json!({"name": "while suspended"}))).await, 202).await;
        let backup_id = backup["id"].as_str().expect("id").to_owned();
        let done = eventually("the backup", || async {
            let backup = json_of(call(&site.panel, Method::GET,
                &format!("/api/v1/servers/{}/backups/{backup_id}", site.server_id), Some(FILES_ADMIN), None).await, 200).await;
            (backup["state"] != "pending").then_some(backup)
        }).await;
        assert_eq!(done["state"], "done", "{done:#}");

        // Lifted: once the Agent heard, writes go again, the early grant too.
        json_of(call(&site.panel, Method::DELETE, &path, Some(FILES_ADMIN), None).await, 200).await;
        eventually("the Agent to let the server write again", || async {
            (!agent.read_only.contains(&site.server_id)).then_some(())
        }).await;
        site.ok(Method::POST, "/folders", Some(json!({"path": "/d"}))).await;
        let late = client().put(&early).body("late").send().await.expect("upload");
        assert_eq!(late.status(), 201, "{:?}", late.text().await);
        assert_eq!(std::fs::read(site.server_dir().join("early.txt")).expect("written"), b"late");
    }
}

on_every_database! {
    async fn a_reinstall_with_wipe_removes_a_file_that_a_reinstall_without_wipe_keeps(db: &TestDb) {
        let site = files_site(db, 1000).await;
        let dir = site.server_dir();
        std::fs::create_dir_all(dir.join("world")).expect("a folder");
        std::fs::write(dir.join("world/level.dat"), b"the world").expect("a file");

        let kept = install(&site.panel, &site.server_id).await;
        assert_eq!(kept["state"], "done", "{kept:#}");
        assert_eq!(std::fs::read(dir.join("world/level.dat")).expect("kept"), b"the world");
        // The Agent reports the install's end as a command result and the
        // server's state apart; a reinstall is taken once both arrived.
        crate::agents::server_state(&site.panel, &site.server_id, "offline").await;

        let path = format!("/api/v1/servers/{}/install", site.server_id);
        let accepted = json_of(call(&site.panel, Method::POST, &path, Some(FILES_ADMIN),
            Some(json!({"wipe": true}))).await, 202).await;
        let wiped = command_state(&site.panel, &site.server_id,
            accepted["commandId"].as_str().expect("id")).await;
        assert_eq!(wiped["state"], "done", "{wiped:#}");
        assert!(!dir.join("world").exists(), "the wipe removed the world");
        assert!(dir.join("standin.cfg").is_file(), "the install plan ran after the wipe");
    }
}

#[tokio::test]
async fn the_console_socket_refuses_a_suspended_servers_start_and_commands_naming_the_reason() {
    let db = TestDb::sqlite().await;
    let (site, _agent) = site(&db).await;
    let panel = &site.panel;
    let server = &site.server_id;
    let finished = install(panel, server).await;
    assert_eq!(finished["state"], "done", "{finished:#}");
    json_of(
        call(
            panel,
            Method::POST,
            &format!("/api/v1/servers/{server}/power"),
            Some(PLUGIN_ADMIN),
            Some(json!({"action": "start"})),
        )
        .await,
        202,
    )
    .await;
    server_state(panel, server, "running").await;
    let console = Console::open(panel, server, PLUGIN_ADMIN).await;
    console
        .wait_for("auth success", |f| f["event"] == "auth success")
        .await;

    // Suspended: the real Agent stops it.
    let path = format!("/api/v1/servers/{server}/suspension");
    json_of(
        call(
            panel,
            Method::POST,
            &path,
            Some(PLUGIN_ADMIN),
            Some(json!({"reason": REASON})),
        )
        .await,
        200,
    )
    .await;
    server_state(panel, server, "offline").await;

    let start = console.frames().len();
    console.send("set state", json!(["start"]));
    let frame = console
        .wait_for_after(start, "the start's refusal", |f| f["event"] == "error")
        .await;
    assert_eq!(frame["args"][0]["code"], "server-suspended", "{frame:#}");
    assert!(
        frame["args"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains(REASON)),
        "{frame:#}"
    );
    let start = console.frames().len();
    console.send("send command", json!(["say hello"]));
    let frame = console
        .wait_for_after(start, "the command's refusal", |f| f["event"] == "error")
        .await;
    assert_eq!(frame["args"][0]["code"], "server-suspended", "{frame:#}");
    assert!(
        frame["args"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains(REASON)),
        "{frame:#}"
    );
    // Nothing was queued: the server stays down.
    tokio::time::sleep(Duration::from_millis(500)).await;
    server_state(panel, server, "offline").await;
    let commands = json_of(
        call(
            panel,
            Method::GET,
            &format!("/api/v1/servers/{server}/commands?limit=100"),
            Some(PLUGIN_ADMIN),
            None,
        )
        .await,
        200,
    )
    .await;
    let actions: Vec<&str> = commands["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|c| c["action"].as_str())
        .collect();
    assert_eq!(
        actions.iter().filter(|a| **a == "start").count(),
        1,
        "only the first start: {actions:?}"
    );
    assert!(!actions.contains(&"console"), "{actions:?}");
    assert_eq!(
        actions[0], "stop",
        "the suspension's stop is the newest: {actions:?}"
    );

    // Lifted: the socket starts it again.
    json_of(
        call(panel, Method::DELETE, &path, Some(PLUGIN_ADMIN), None).await,
        200,
    )
    .await;
    let start = console.frames().len();
    console.send("set state", json!(["start"]));
    console
        .wait_for_after(start, "the start's acceptance", |f| {
            f["event"] == "command accepted"
        })
        .await;
    server_state(panel, server, "running").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_servers_sftp_sessions_are_read_only() {
    use crate::sftp::{ADMIN, ALICE_PASSWORD, password, sftp_site};
    let db = TestDb::sqlite().await;
    let Some(site) = sftp_site(&db, 0).await else {
        return;
    };
    std::fs::write(site.server_dir().join("motd.txt"), "hi").expect("a file");
    std::fs::write(site.local.path().join("up.txt"), "uploaded").expect("a file");
    let path = format!("/api/v1/servers/{}/suspension", site.server_id);
    json_of(
        call(
            site.panel(),
            Method::POST,
            &path,
            Some(ADMIN),
            Some(json!({"reason": REASON})),
        )
        .await,
        200,
    )
    .await;

    let run = site
        .sftp(&site.alice, password(ALICE_PASSWORD), "ls\nget motd.txt\n")
        .await;
    assert!(run.success, "reads go on: {}", run.output);
    for batch in [
        "put up.txt\n",
        "rm motd.txt\n",
        "mkdir d\n",
        "rename motd.txt m.txt\n",
        "chmod 600 motd.txt\n",
    ] {
        let run = site
            .sftp(&site.alice, password(ALICE_PASSWORD), batch)
            .await;
        assert!(!run.success, "{batch}: {}", run.output);
    }
    assert!(!site.server_dir().join("up.txt").exists());
    assert!(!site.server_dir().join("d").exists());
    assert_eq!(
        std::fs::read_to_string(site.server_dir().join("motd.txt")).expect("kept"),
        "hi"
    );

    // Lifted: a new session writes once the Agent heard of it.
    json_of(
        call(site.panel(), Method::DELETE, &path, Some(ADMIN), None).await,
        200,
    )
    .await;
    eventually("a write after the suspension was lifted", || async {
        let run = site
            .sftp(&site.alice, password(ALICE_PASSWORD), "put up.txt\n")
            .await;
        run.success.then_some(())
    })
    .await;
    assert_eq!(
        std::fs::read_to_string(site.server_dir().join("up.txt")).expect("written"),
        "uploaded"
    );
}
