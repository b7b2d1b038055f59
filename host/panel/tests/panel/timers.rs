//! Plugins' timers (capability `timers`): armed in the database, delivered
//! to the plugin's own after-hook as `schedule.tick` events by each serving
//! Panel's loop under a lease, and recorded firing by firing at
//! `/api/v1/plugins/{id}/timer-runs`.
//!
//! The witness is the real `event-recorder` plugin with `timers = true`
//! added to its manifest: it records every `after` event it hears under
//! `after/<kind>/<subject>` (a tick's subject is the timer's key) and
//! counts them with compare-and-swap, so a tick delivered twice shows.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cap_panel::http::Principal;
use cap_panel::plugin_kv::DbKv;
use cap_panel::timers::TimerOptions;
use cap_panel::{Panel, RunningPanel};
use cap_runtime::capabilities::kv::KvStore;
use reqwest::Method;
use serde_json::Value;

use crate::agents::{eventually, eventually_within};
use crate::nodes::{call, json_of};
use crate::plugins::{PLUGIN_ADMIN, manifest_text, package_with, post, upload};
use crate::support::{TestDb, Tokens, on_every_database};

const RECORDER: &str = "event-recorder";

/// Quick rounds, so tests do not wait for the production pace.
pub(crate) fn quick() -> TimerOptions {
    TimerOptions {
        poll: Duration::from_millis(200),
        park: Duration::from_millis(500),
    }
}

fn tokens() -> Tokens {
    Tokens::from_principals([(
        PLUGIN_ADMIN,
        Principal::new("user-admin").with_permissions(["admin.plugins", "audit.read"]),
    )])
}

async fn start(db: &TestDb) -> RunningPanel {
    Panel::builder(db.config())
        .authenticator(tokens())
        .timers(quick())
        .bind()
        .await
        .expect("the Panel starts")
        .spawn()
}

/// Installs the event recorder asking for timers, grants what it asks and
/// activates it.
async fn install_recorder(panel: &RunningPanel) {
    let manifest = manifest_text(RECORDER).replacen("kv = true", "kv = true\ntimers = true", 1);
    assert!(manifest.contains("timers = true"));
    let response = upload(panel, package_with(RECORDER, &manifest)).await;
    let body = json_of(response, 201).await;
    assert_eq!(body["plugin"]["requested"]["timers"], true, "{body:#}");
    let requested = body["plugin"]["requested"].clone();
    let response = post(
        panel,
        &format!("/api/v1/plugins/{RECORDER}/grant"),
        Some(requested),
    )
    .await;
    json_of(response, 200).await;
    let response = post(panel, &format!("/api/v1/plugins/{RECORDER}/activate"), None).await;
    json_of(response, 200).await;
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

async fn arm(panel: &RunningPanel, key: &str, at_ms: u64) {
    let armed = panel
        .state()
        .plugins()
        .expect("plugin management")
        .timers()
        .arm(RECORDER, key, at_ms)
        .await
        .expect("armed");
    assert!(armed, "under the quota");
}

/// Every recorded run of the recorder's timers, newest first.
async fn runs(panel: &RunningPanel) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/plugins/{RECORDER}/timer-runs?limit=200&cursor={c}"),
            None => format!("/api/v1/plugins/{RECORDER}/timer-runs?limit=200"),
        };
        let page = json_of(
            call(panel, Method::GET, &path, Some(PLUGIN_ADMIN), None).await,
            200,
        )
        .await;
        items.extend(page["items"].as_array().expect("items").iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return items,
        }
    }
}

async fn armed(panel: &RunningPanel) -> Vec<Value> {
    let list = json_of(
        call(
            panel,
            Method::GET,
            &format!("/api/v1/plugins/{RECORDER}/timers"),
            Some(PLUGIN_ADMIN),
            None,
        )
        .await,
        200,
    )
    .await;
    list["items"].as_array().expect("items").clone()
}

/// What the recorder stored under `key`, as text.
async fn recorded(db: &TestDb, key: &str) -> Option<String> {
    let handle = db.connect().await;
    let value = DbKv::new(handle.clone())
        .get(RECORDER, key)
        .await
        .expect("the recorder's store reads");
    handle.close().await;
    value.map(|v| String::from_utf8(v).expect("text"))
}

on_every_database! {
    async fn a_due_timer_is_delivered_to_its_plugins_after_hook_once_and_its_run_is_recorded(db: &TestDb) {
        let panel = start(db).await;
        install_recorder(&panel).await;
        let due = now_ms() - 1_000;
        arm(&panel, "daily/backup", due).await;
        arm(&panel, "later/one", now_ms() + 3_600_000).await;

        let run = eventually("the firing's run", || async {
            runs(&panel).await.into_iter().next()
        })
        .await;
        assert_eq!(run["key"], "daily/backup", "{run:#}");
        assert_eq!(run["outcome"], "ok", "{run:#}");
        assert_eq!(run["reason"], Value::Null, "{run:#}");
        let due_at = time::OffsetDateTime::parse(
            run["due_at"].as_str().expect("due_at"),
            &time::format_description::well_known::Rfc3339,
        )
        .expect("RFC 3339");
        assert_eq!(
            u64::try_from(due_at.unix_timestamp_nanos() / 1_000_000).expect("after 1970"),
            due,
            "the run names the time the timer was set for"
        );
        assert!(
            recorded(db, "after/schedule.tick/daily/backup").await.is_some(),
            "the after-hook heard the tick, with the key as the schedule's name"
        );
        // Consumed; the future one stays armed and unfired.
        let left = armed(&panel).await;
        assert_eq!(left.len(), 1, "{left:?}");
        assert_eq!(left[0]["key"], "later/one");
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(runs(&panel).await.len(), 1, "a timer fires once");
        assert_eq!(
            recorded(db, "count/after/schedule.tick").await.as_deref(),
            Some("1")
        );
        panel.stop().await.expect("stops");
    }
}

on_every_database! {
    async fn two_panels_on_one_database_deliver_each_firing_once(db: &TestDb) {
        let first = start(db).await;
        install_recorder(&first).await;
        // The second loads the recorder from the same database and data
        // directory, as a Panel of a scaled-out installation would.
        let second = start(db).await;
        assert!(
            second.state().plugins().expect("plugin management").active(RECORDER).is_some(),
            "the second Panel loaded the recorder"
        );
        const FIRINGS: usize = 20;
        let due = now_ms();
        for n in 0..FIRINGS {
            arm(&first, &format!("shared/{n:02}"), due).await;
        }
        eventually_within("every firing's run", Duration::from_secs(60), || async {
            (runs(&first).await.len() >= FIRINGS).then_some(())
        })
        .await;
        // Both Panels keep polling; nothing is delivered again.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let all = runs(&second).await;
        assert_eq!(all.len(), FIRINGS, "{all:#?}");
        let mut keys: Vec<&str> = all.iter().map(|r| r["key"].as_str().expect("key")).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), FIRINGS, "each firing recorded once");
        assert!(all.iter().all(|r| r["outcome"] == "ok"), "{all:#?}");
        assert_eq!(
            recorded(db, "count/after/schedule.tick").await,
            Some(FIRINGS.to_string()),
            "the plugin heard each tick once"
        );
        assert!(armed(&first).await.is_empty());
        second.stop().await.expect("stops");
        first.stop().await.expect("stops");
    }
}

on_every_database! {
    async fn a_firing_of_a_quarantined_plugin_is_recorded_failed_with_the_reason_and_delivered_once_released(db: &TestDb) {
        let panel = start(db).await;
        install_recorder(&panel).await;
        let plugin = panel
            .state()
            .plugins()
            .expect("plugin management")
            .active(RECORDER)
            .expect("active");
        plugin.quarantine_now("5 consecutive failed calls; the last: a test");
        arm(&panel, "nightly/restart", now_ms()).await;

        let failed = eventually("the failed run", || async {
            runs(&panel).await.into_iter().next()
        })
        .await;
        assert_eq!(failed["outcome"], "failed", "{failed:#}");
        let reason = failed["reason"].as_str().expect("a reason");
        assert!(
            reason.contains("quarantined") && reason.contains("the last: a test"),
            "{reason}"
        );
        // The firing waits for the plugin, recorded once however often it
        // is looked at again.
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(runs(&panel).await.len(), 1);
        let waiting = armed(&panel).await;
        assert_eq!(waiting.len(), 1, "{waiting:?}");
        assert!(waiting[0]["missed_at"].is_string(), "{waiting:?}");
        assert!(recorded(db, "after/schedule.tick/nightly/restart").await.is_none());

        let response = post(&panel, &format!("/api/v1/plugins/{RECORDER}/release"), None).await;
        assert!(response.status().is_success(), "{}", response.status());
        let delivered = eventually("the late delivery", || async {
            let all = runs(&panel).await;
            (all.len() == 2).then(|| all[0].clone())
        })
        .await;
        assert_eq!(delivered["outcome"], "ok", "{delivered:#}");
        assert_eq!(delivered["key"], "nightly/restart");
        assert_eq!(delivered["due_at"], failed["due_at"], "the same firing, late");
        assert!(recorded(db, "after/schedule.tick/nightly/restart").await.is_some());
        assert!(armed(&panel).await.is_empty());
        panel.stop().await.expect("stops");
    }
}

on_every_database! {
    async fn a_firing_of_an_inactive_plugin_waits_recorded_failed_until_it_is_active(db: &TestDb) {
        let panel = start(db).await;
        install_recorder(&panel).await;
        let response = post(&panel, &format!("/api/v1/plugins/{RECORDER}/deactivate"), None).await;
        json_of(response, 200).await;
        arm(&panel, "weekly/report", now_ms()).await;
        let failed = eventually("the failed run", || async {
            runs(&panel).await.into_iter().next()
        })
        .await;
        assert_eq!(failed["outcome"], "failed", "{failed:#}");
        assert_eq!(failed["reason"], "the plugin event-recorder is not active");

        let response = post(&panel, &format!("/api/v1/plugins/{RECORDER}/activate"), None).await;
        json_of(response, 200).await;
        let delivered = eventually("the late delivery", || async {
            let all = runs(&panel).await;
            (all.len() == 2).then(|| all[0].clone())
        })
        .await;
        assert_eq!(delivered["outcome"], "ok", "{delivered:#}");
        panel.stop().await.expect("stops");
    }
}

on_every_database! {
    async fn timers_survive_a_restart_and_what_fell_due_meanwhile_fires_once_late(db: &TestDb) {
        let panel = start(db).await;
        install_recorder(&panel).await;
        let due = now_ms() + 1_500;
        arm(&panel, "after/restart", due).await;
        panel.stop().await.expect("stops");
        // Due while no Panel runs.
        tokio::time::sleep(Duration::from_millis(2_500)).await;

        let panel = start(db).await;
        let run = eventually("the late firing", || async {
            runs(&panel).await.into_iter().next()
        })
        .await;
        assert_eq!(run["key"], "after/restart");
        assert_eq!(run["outcome"], "ok", "{run:#}");
        let at = |field: &str| {
            time::OffsetDateTime::parse(
                run[field].as_str().expect("a time"),
                &time::format_description::well_known::Rfc3339,
            )
            .expect("RFC 3339")
        };
        assert!(
            at("started_at") - at("due_at") >= time::Duration::seconds(1),
            "delivered late, after the restart: {run:#}"
        );
        assert!(recorded(db, "after/schedule.tick/after/restart").await.is_some());
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(runs(&panel).await.len(), 1, "once");
        panel.stop().await.expect("stops");
    }
}
