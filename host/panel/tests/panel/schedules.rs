//! Schedules end to end: the real `scheduler` plugin (bundled with `cap`)
//! on a Panel with a real Agent running the test game. Schedules are made
//! and run through the plugin's server widget
//! (`/api/v1/ui/contributions/scheduler/schedules`), as the web UI and API
//! keys do; runs happen in ticks of the host's timers, whose outcomes the
//! Panel records at `/api/v1/plugins/scheduler/timer-runs`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cap_agent::node::RunningNode;
use cap_panel::http::Principal;
use cap_panel::identity::permissions::Permission;
use cap_panel::{Panel, RunningPanel};
use reqwest::Method;
use serde_json::{Value, json};

use crate::agents::{api, eventually, eventually_within, install, node_online, server_state};
use crate::nodes::{call, json_of};
use crate::plugins::{PLUGIN_ADMIN, install_and_activate};
use crate::support::{TestDb, Tokens, expect_problem, free_port, on_every_database, start_agent};
use crate::timers::quick;

/// A user who owns the server; their roles give every server permission.
const OWNER: &str = "schedules-owner-token";
/// A user whose roles give every server permission a subuser may hold:
/// what they may do on the server is what their subuser grant says.
const SUB: &str = "schedules-subuser-token";

const WIDGET: &str = "/api/v1/ui/contributions/scheduler/schedules";
const ACTIONS: &str = "/api/v1/ui/contributions/scheduler/schedules/actions";

struct Site {
    panel: RunningPanel,
    _agent: RunningNode,
    _agent_dir: tempfile::TempDir,
    server_id: String,
    sub_id: String,
}

/// A Panel (quick timers) with test-game and the scheduler, a connected
/// Agent, and an installed test-game server owned by [`OWNER`]'s user.
async fn site(db: &TestDb) -> Site {
    let ids = db.create_users(&["owner", "sub"]).await;
    let (owner_id, sub_id) = (ids[0].clone(), ids[1].clone());
    let on_servers: Vec<&str> = Permission::on_servers()
        .map(Permission::as_str)
        .chain(["server.create"])
        .collect();
    let for_subusers: Vec<&str> = Permission::for_subusers().map(Permission::as_str).collect();
    let tokens = Tokens::from_principals([
        (
            PLUGIN_ADMIN,
            Principal::new("schedules-admin")
                .with_permissions(Permission::ALL.iter().map(|p| p.as_str())),
        ),
        (
            OWNER,
            Principal::new(owner_id.clone()).with_permissions(on_servers),
        ),
        (
            SUB,
            Principal::new(sub_id.clone()).with_permissions(for_subusers),
        ),
    ]);
    let panel = Panel::builder(db.config())
        .authenticator(tokens)
        .timers(quick())
        .bind()
        .await
        .expect("the Panel starts")
        .spawn();
    install_and_activate(&panel, "test-game").await;
    install_and_activate(&panel, "scheduler").await;
    let node = api(
        &panel,
        Method::POST,
        "/api/v1/nodes",
        Some(json!({"name": "n1", "address": "127.0.0.1", "memory_mb": 8192, "disk_mb": 10000, "cpu_percent": 400})),
        201,
    )
    .await;
    let node_id = node["id"].as_str().expect("id").to_owned();
    api(
        &panel,
        Method::POST,
        &format!("/api/v1/nodes/{node_id}/allocations"),
        Some(json!({"ip": "127.0.0.1", "ports": [free_port()]})),
        201,
    )
    .await;
    let token = api(
        &panel,
        Method::POST,
        &format!("/api/v1/nodes/{node_id}/registration-tokens"),
        Some(json!({})),
        201,
    )
    .await;
    let agent_dir = tempfile::tempdir().expect("a temporary directory");
    let token = token["token"].as_str().expect("token").to_owned();
    let agent = start_agent(&panel, agent_dir.path(), Some(token)).await;
    node_online(&panel, &node_id, true).await;
    let server = api(
        &panel,
        Method::POST,
        "/api/v1/servers",
        Some(json!({
            "name": "scheduled",
            "node_id": node_id,
            "owner_id": owner_id,
            "game": {"plugin": "test-game"},
            "variables": {"READY_DELAY_MS": "100"},
            "limits": {"memory_mb": 512, "disk_mb": 1000, "cpu_percent": 100}
        })),
        201,
    )
    .await;
    let server_id = server["id"].as_str().expect("id").to_owned();
    let installed = install(&panel, &server_id).await;
    assert_eq!(installed["state"], "done", "{installed:#}");
    Site {
        panel,
        _agent: agent,
        _agent_dir: agent_dir,
        server_id,
        sub_id,
    }
}

impl Site {
    /// Sends widget action `name` with `values` as `token`.
    async fn act(&self, token: &str, name: &str, values: Value) -> reqwest::Response {
        call(
            &self.panel,
            Method::POST,
            ACTIONS,
            Some(token),
            Some(json!({"server_id": self.server_id, "name": name, "values": values})),
        )
        .await
    }

    /// The widget as `token` sees it.
    async fn widget(&self, token: &str) -> Value {
        json_of(
            call(
                &self.panel,
                Method::GET,
                &format!("{WIDGET}?server_id={}", self.server_id),
                Some(token),
                None,
            )
            .await,
            200,
        )
        .await
    }

    /// Creates a schedule as `token`; its id.
    async fn create(&self, token: &str, values: Value) -> String {
        let answer = json_of(self.act(token, "create", values).await, 200).await;
        assert_eq!(answer["result"], "notify", "{answer:#}");
        let message = answer["message"].as_str().expect("a message");
        let start = message.find("(sch_").expect("the message names the id") + 1;
        let end = start + message[start..].find(')').expect("a closing parenthesis");
        message[start..end].to_owned()
    }

    async fn power(&self, action: &str) {
        api(
            &self.panel,
            Method::POST,
            &format!("/api/v1/servers/{}/power", self.server_id),
            Some(json!({"action": action})),
            202,
        )
        .await;
    }

    /// The server's commands, newest first.
    async fn commands(&self) -> Vec<Value> {
        let page = api(
            &self.panel,
            Method::GET,
            &format!("/api/v1/servers/{}/commands?limit=100", self.server_id),
            None,
            200,
        )
        .await;
        page["items"].as_array().expect("items").clone()
    }

    /// Grants the subuser `permissions` on the server (adding them the
    /// first time).
    async fn grant(&self, permissions: &[&str], first: bool) {
        let path = format!("/api/v1/servers/{}/subusers", self.server_id);
        let (method, path, status, body) = if first {
            (
                Method::POST,
                path,
                201,
                json!({"user_id": self.sub_id, "permissions": permissions}),
            )
        } else {
            (
                Method::PATCH,
                format!("{path}/{}", self.sub_id),
                200,
                json!({"permissions": permissions}),
            )
        };
        json_of(
            call(&self.panel, method, &path, Some(PLUGIN_ADMIN), Some(body)).await,
            status,
        )
        .await;
    }
}

/// The scheduler's recorded firings, newest first.
async fn timer_runs(panel: &RunningPanel) -> Vec<Value> {
    let page = api(
        panel,
        Method::GET,
        "/api/v1/plugins/scheduler/timer-runs?limit=200",
        None,
        200,
    )
    .await;
    page["items"].as_array().expect("items").clone()
}

fn now_ms() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_millis(),
    )
    .expect("fits")
}

/// Fires the scheduler's timer `key` now, as its time coming would.
async fn fire(panel: &RunningPanel, key: &str) {
    let armed = panel
        .state()
        .plugins()
        .expect("plugin management")
        .timers()
        .arm("scheduler", key, now_ms())
        .await
        .expect("armed");
    assert!(armed);
}

on_every_database! {
    async fn an_owner_creates_a_schedule_in_the_widget_and_run_now_sends_its_command_to_the_server(db: &TestDb) {
        let site = site(db).await;
        site.power("start").await;
        server_state(&site.panel, &site.server_id, "running").await;

        // The owner holds schedule.* on their server: the widget offers
        // the form, and the action creates the schedule with its task.
        let empty = site.widget(OWNER).await.to_string();
        assert!(empty.contains("No schedules yet."), "{empty}");
        assert!(empty.contains("Create schedule"), "{empty}");
        let id = site
            .create(
                OWNER,
                json!({
                    "name": "Greeting",
                    "cron": "0 4 * * *",
                    "time_zone": "Europe/Berlin",
                    "task_kind": "command",
                    "task_value": "say scheduled hello",
                }),
            )
            .await;
        let shown = site.widget(OWNER).await.to_string();
        for expected in ["Greeting", "0 4 * * *", "Europe/Berlin", "say scheduled hello", "never", id.as_str()] {
            assert!(shown.contains(expected), "{expected} in {shown}");
        }
        assert!(shown.contains(" CET") || shown.contains(" CEST"), "the next run, in Berlin time: {shown}");
        // Its cron time is a timer of the plugin's.
        let timers = api(&site.panel, Method::GET, "/api/v1/plugins/scheduler/timers", None, 200).await;
        assert!(
            timers["items"].as_array().expect("items").iter().any(|t| t["key"] == format!("cron/{}/{id}", site.server_id)),
            "{timers:#}"
        );

        let answer = json_of(site.act(OWNER, &format!("run:{id}"), json!({})).await, 200).await;
        assert_eq!(answer["message"], "Schedule Greeting runs now");
        let sent = eventually("the scheduled command to reach the server", || async {
            site.commands().await.into_iter().find(|c| {
                c["action"] == "console" && c["actor_user_id"] == "plugin:scheduler" && c["state"] == "done"
            })
        })
        .await;
        assert_eq!(sent["detail"], Value::Null, "{sent:#}");
        // The game heard it: the stand-in answers `say` on its console.
        eventually("the game's answer on the console", || async {
            site.panel
                .state()
                .agents()
                .console(&site.server_id)
                .history()
                .iter()
                .any(|line| line.contains("SAY scheduled hello"))
                .then_some(())
        })
        .await;
        let run = eventually("the firing's record", || async {
            timer_runs(&site.panel).await.into_iter().find(|r| r["key"] == format!("now/{}/{id}", site.server_id))
        })
        .await;
        assert_eq!(run["outcome"], "ok", "{run:#}");
        let shown = eventually("the run in the widget", || async {
            let shown = site.widget(OWNER).await.to_string();
            (shown.contains("manual") && shown.contains("sent \\\"say scheduled hello\\\"")).then_some(shown)
        })
        .await;
        assert!(!shown.contains("never"), "the last run is shown: {shown}");
        site.panel.stop().await.expect("stops");
    }
}

on_every_database! {
    async fn a_power_action_task_starts_the_stopped_server(db: &TestDb) {
        let site = site(db).await;
        let id = site
            .create(
                OWNER,
                json!({
                    "name": "Morning start",
                    "preset": "@daily",
                    "task_kind": "power",
                    "task_value": "start",
                }),
            )
            .await;
        json_of(site.act(OWNER, &format!("run:{id}"), json!({})).await, 200).await;
        server_state(&site.panel, &site.server_id, "running").await;
        let commands = site.commands().await;
        assert!(
            commands.iter().any(|c| c["action"] == "start" && c["actor_user_id"] == "plugin:scheduler"),
            "the plugin queued the start: {commands:#?}"
        );
        let run = eventually("the firing's record", || async {
            timer_runs(&site.panel).await.into_iter().next()
        })
        .await;
        assert_eq!(run["outcome"], "ok", "{run:#}");
        site.panel.stop().await.expect("stops");
    }
}

on_every_database! {
    async fn a_scheduled_start_of_a_suspended_server_is_refused_and_the_run_is_recorded_failed_naming_the_suspension(db: &TestDb) {
        let site = site(db).await;
        let id = site
            .create(
                OWNER,
                json!({
                    "name": "Morning start",
                    "preset": "@daily",
                    "task_kind": "power",
                    "task_value": "start",
                }),
            )
            .await;
        api(
            &site.panel,
            Method::POST,
            &format!("/api/v1/servers/{}/suspension", site.server_id),
            Some(json!({"reason": "the invoice is unpaid"})),
            200,
        )
        .await;
        json_of(site.act(OWNER, &format!("run:{id}"), json!({})).await, 200).await;
        let run = eventually("the firing's record", || async {
            timer_runs(&site.panel).await.into_iter().next()
        })
        .await;
        assert_eq!(run["outcome"], "failed", "{run:#}");
        let reason = run["reason"].as_str().expect("a reason");
        assert!(
            reason.contains("suspended") && reason.contains("the invoice is unpaid"),
            "the run names the suspension: {reason}"
        );
        let commands = site.commands().await;
        assert!(
            !commands.iter().any(|c| c["action"] == "start" && c["state"] != "failed"),
            "no start was queued: {commands:#?}"
        );
        let server = api(&site.panel, Method::GET, &format!("/api/v1/servers/{}", site.server_id), None, 200).await;
        assert_ne!(server["state"], "running", "{server:#}");
        site.panel.stop().await.expect("stops");
    }
}

on_every_database! {
    async fn a_run_while_the_schedules_previous_run_is_still_going_is_skipped_naming_it(db: &TestDb) {
        let site = site(db).await;
        let id = site
            .create(
                OWNER,
                json!({
                    "name": "Slow",
                    "preset": "@daily",
                    "task_kind": "command",
                    "task_value": "say later",
                    "task_offset": "900",
                }),
            )
            .await;
        let task_timers = || async {
            let timers = api(
                &site.panel,
                Method::GET,
                "/api/v1/plugins/scheduler/timers",
                None,
                200,
            )
            .await;
            timers["items"]
                .as_array()
                .expect("items")
                .iter()
                .filter(|t| t["key"].as_str().is_some_and(|k| k.starts_with("task/")))
                .count()
        };
        json_of(site.act(OWNER, &format!("run:{id}"), json!({})).await, 200).await;
        eventually("the first run's task to wait for its offset", || async {
            (task_timers().await == 1).then_some(())
        })
        .await;
        json_of(site.act(OWNER, &format!("run:{id}"), json!({})).await, 200).await;
        eventually("the second run, skipped", || async {
            let widget = site.widget(OWNER).await.to_string();
            widget.contains("is still going").then_some(())
        })
        .await;
        assert_eq!(
            task_timers().await,
            1,
            "the second run armed no task of its own"
        );
        site.panel.stop().await.expect("stops");
    }
}

on_every_database! {
    async fn an_invalid_cron_expression_or_time_zone_is_refused_naming_it(db: &TestDb) {
        let site = site(db).await;
        let refused = |values: Value| {
            let site = &site;
            async move { expect_problem(site.act(OWNER, "create", values).await, 422, "plugin-refused").await }
        };
        let problem = refused(json!({"name": "Bad", "cron": "0 4 * *"})).await;
        let detail = problem["detail"].as_str().expect("a detail");
        assert!(
            detail.contains("\"0 4 * *\" has 4 fields; a cron expression has five"),
            "{detail}"
        );
        let problem = refused(json!({"name": "Bad", "cron": "75 * * * *"})).await;
        let detail = problem["detail"].as_str().expect("a detail");
        assert!(detail.contains("\"75 * * * *\" is not a valid cron expression"), "{detail}");
        let problem = refused(json!({"name": "Bad", "cron": "@fortnightly"})).await;
        assert!(problem["detail"].as_str().expect("a detail").contains("is not a preset"));
        let problem = refused(json!({"name": "Bad", "cron": "@daily", "time_zone": "Mars/Olympus_Mons"})).await;
        let detail = problem["detail"].as_str().expect("a detail");
        assert!(
            detail.contains("\"Mars/Olympus_Mons\" is not a time zone of the IANA database"),
            "{detail}"
        );
        // Nothing was kept.
        assert!(site.widget(OWNER).await.to_string().contains("No schedules yet."));
        site.panel.stop().await.expect("stops");
    }
}

on_every_database! {
    async fn a_subuser_needs_schedule_permissions_on_the_server_and_the_permissions_of_the_tasks(db: &TestDb) {
        let site = site(db).await;
        // Not a subuser: the server does not exist for them.
        let response = call(
            &site.panel,
            Method::GET,
            &format!("{WIDGET}?server_id={}", site.server_id),
            Some(SUB),
            None,
        )
        .await;
        expect_problem(response, 404, "not-found").await;

        site.grant(&["control.console"], true).await;
        let shown = site.widget(SUB).await.to_string();
        assert!(shown.contains("needs schedule.read"), "{shown}");

        site.grant(&["schedule.read"], false).await;
        let shown = site.widget(SUB).await.to_string();
        assert!(shown.contains("No schedules yet."), "{shown}");
        assert!(
            !shown.contains("Create schedule"),
            "no form without schedule.create: {shown}"
        );
        let values = json!({"name": "Mine", "cron": "@hourly"});
        let problem = expect_problem(
            site.act(SUB, "create", values.clone()).await,
            422,
            "plugin-refused",
        )
        .await;
        assert!(
            problem["detail"]
                .as_str()
                .is_some_and(|d| d.contains("schedule.create")),
            "{problem:#}"
        );

        site.grant(&["schedule.read", "schedule.create"], false)
            .await;
        let id = site.create(SUB, values).await;
        // A task needs what it does: no restart without control.restart.
        let restart = json!({"name": "Restart", "cron": "@hourly", "task_kind": "power", "task_value": "restart"});
        let problem = expect_problem(
            site.act(SUB, "create", restart.clone()).await,
            422,
            "plugin-refused",
        )
        .await;
        assert!(
            problem["detail"]
                .as_str()
                .is_some_and(|d| d.contains("control.restart")),
            "{problem:#}"
        );
        // Running, changing and deleting need schedule.update / .delete.
        let problem = expect_problem(
            site.act(SUB, &format!("run:{id}"), json!({})).await,
            422,
            "plugin-refused",
        )
        .await;
        assert!(
            problem["detail"]
                .as_str()
                .is_some_and(|d| d.contains("schedule.update")),
            "{problem:#}"
        );
        let problem = expect_problem(
            site.act(SUB, &format!("delete:{id}"), json!({})).await,
            422,
            "plugin-refused",
        )
        .await;
        assert!(
            problem["detail"]
                .as_str()
                .is_some_and(|d| d.contains("schedule.delete")),
            "{problem:#}"
        );

        site.grant(
            &[
                "schedule.read",
                "schedule.create",
                "control.restart",
                "schedule.delete",
            ],
            false,
        )
        .await;
        site.create(SUB, restart).await;
        let answer = json_of(site.act(SUB, &format!("delete:{id}"), json!({})).await, 200).await;
        assert_eq!(answer["message"], "Schedule Mine deleted");
        let shown = site.widget(SUB).await.to_string();
        assert!(!shown.contains(&id), "{shown}");
        assert!(shown.contains("Restart"), "{shown}");
        site.panel.stop().await.expect("stops");
    }
}

on_every_database! {
    async fn a_run_whose_server_was_deleted_is_recorded_failed_and_the_schedule_stops(db: &TestDb) {
        let site = site(db).await;
        let id = site
            .create(OWNER, json!({"name": "Orphan", "cron": "@yearly", "task_kind": "command", "task_value": "say hi"}))
            .await;
        api(&site.panel, Method::DELETE, &format!("/api/v1/servers/{}", site.server_id), None, 202).await;
        eventually_within("the server to be gone", Duration::from_secs(60), || async {
            let response = call(&site.panel, Method::GET, &format!("/api/v1/servers/{}", site.server_id), Some(PLUGIN_ADMIN), None).await;
            (response.status() == 404).then_some(())
        })
        .await;

        // Its cron time comes.
        let key = format!("cron/{}/{id}", site.server_id);
        fire(&site.panel, &key).await;
        let run = eventually("the failed firing", || async {
            timer_runs(&site.panel).await.into_iter().find(|r| r["key"] == key)
        })
        .await;
        assert_eq!(run["outcome"], "failed", "{run:#}");
        let reason = run["reason"].as_str().expect("a reason");
        assert!(
            reason.starts_with("server-gone:") && reason.contains(&format!("the server {} no longer exists", site.server_id)),
            "{reason}"
        );
        // Disabled: no cron time is armed again.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let timers = api(&site.panel, Method::GET, "/api/v1/plugins/scheduler/timers", None, 200).await;
        assert!(
            !timers["items"].as_array().expect("items").iter().any(|t| t["key"] == key),
            "{timers:#}"
        );
        assert_eq!(timer_runs(&site.panel).await.len(), 1);
        site.panel.stop().await.expect("stops");
    }
}

on_every_database! {
    async fn a_run_of_a_quarantined_scheduler_is_recorded_failed_with_the_reason(db: &TestDb) {
        let site = site(db).await;
        let id = site
            .create(OWNER, json!({"name": "Quiet", "cron": "@daily", "task_kind": "command", "task_value": "say hi"}))
            .await;
        let plugin = site
            .panel
            .state()
            .plugins()
            .expect("plugin management")
            .active("scheduler")
            .expect("active");
        plugin.quarantine_now("5 consecutive failed calls; the last: a test");
        // The widget cannot answer now.
        let response = site.act(OWNER, &format!("run:{id}"), json!({})).await;
        expect_problem(response, 503, "plugin-unavailable").await;

        let key = format!("cron/{}/{id}", site.server_id);
        fire(&site.panel, &key).await;
        let run = eventually("the failed firing", || async {
            timer_runs(&site.panel).await.into_iter().find(|r| r["key"] == key)
        })
        .await;
        assert_eq!(run["outcome"], "failed", "{run:#}");
        let reason = run["reason"].as_str().expect("a reason");
        assert!(
            reason.contains("the plugin scheduler is quarantined") && reason.contains("the last: a test"),
            "{reason}"
        );
        assert!(
            site.commands().await.iter().all(|c| c["action"] != "console"),
            "nothing ran"
        );
        site.panel.stop().await.expect("stops");
    }
}
