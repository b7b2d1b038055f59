//! Hook events: how the Panel tells hook plugins what is about to happen
//! (before-hooks, which may refuse or modify it) and what happened
//! (after-hooks, notifications), for every kind of the catalogue
//! ([`cap_runtime::api::EventKind`]).
//!
//! Every operation that fires hooks follows the same three steps:
//!
//! 1. [`event`] describes the operation (kind, payload, actor);
//! 2. [`run_before`] asks the active plugins' before-hooks, once every
//!    check of the Panel's own passed and before anything is written: a
//!    deny is [`HookDenied`] (`403 hook-denied` with the plugin's reason)
//!    and nothing is written; a modification changes the allowed fields;
//! 3. after the change is committed, [`spawn_after`] notifies the
//!    after-hooks on a task of its own, never delaying the answer.
//!
//! # Where each kind fires, and what may be refused
//!
//! | Kind | Fired by | Before-hooks may refuse |
//! | --- | --- | --- |
//! | `user.create` | `POST /users`, and a login that auto-registers its user | yes |
//! | `user.update` | `PATCH /users/{id}` | yes |
//! | `user.delete` | `DELETE /users/{id}` | yes |
//! | `user.login` | every login, just before its session starts (after the second factor, when there is one) | yes — but a *failing* hook never refuses a login ([`Failures::Ignored`]) |
//! | `user.logout` | `POST /auth/logout` ending a session | no: after-hooks only |
//! | `user.invite` (API 0.2.0) | `POST /users/{id}/invitation` | yes |
//! | `backup.create`, `backup.restore`, `backup.delete` (API 0.2.0) | the backup routes (and a new backup's rotation, whose deletes are asked before anything is deleted); after-hooks once the Agent was asked (create, restore) or the backup is gone | yes |
//! | `backup.complete` (API 0.2.0) | the Agent's report that a backup is done or failed | no: after-hooks only |
//! | `database.create`, `database.delete` (API 0.2.0) | the database routes, after the Panel's own checks and before the database host is asked; after-hooks once the database exists or is dropped (a deleted server's databases go without hooks) | yes |
//! | `file.write` (API 0.2.0) | every write route of `/servers/{id}/files` (before: the route, after: its success) and uploads (before: the signed URL is issued, after: the Agent reports the file in place) | yes |
//! | `node.create`, `node.delete` | the node routes | yes |
//! | `plugin.install` | an upload, a Marketplace install (a new plugin or a newer version) | yes, except by the plugin installed |
//! | `plugin.activate` | activation, an install that activates | yes, except by the plugin activated |
//! | `plugin.deactivate` | every deactivation (an admin's, a lapsed license's) | no: after-hooks only |
//! | `plugin.uninstall` | uninstalling | yes, except by the plugin uninstalled |
//! | `server.suspend`, `server.unsuspend` (API 0.2.0) | `POST`/`DELETE /servers/{id}/suspension` and the `panel` capability's `suspend-server`/`unsuspend-server`; after-hooks for people's only | yes |
//! | `server.transfer` (API 0.2.0) | `POST /servers/{id}/transfer`, after the nodes are found connected and before anything changes (payload `pending`); after-hooks once the transfer ended, `done` or `failed` with the reason | yes |
//! | `server.*`, `node.online`/`offline`, `console.*` | [`crate::servers`] and the Agent link | see there |
//! | `schedule.tick` (API 0.2.0) | a plugin's own timer falling due ([`crate::timers`]), to that plugin's after-hook alone, once (not retried) | no: after-hooks only |
//!
//! Why some operations cannot be refused — each would let a plugin lock
//! the administrators out:
//!
//! - **Deactivation is never refused.** It is the admin's way out of any
//!   plugin that misbehaves; if a plugin could refuse it, two plugins
//!   refusing each other's deactivation could never be removed. Because
//!   deactivation always works, every other refusal is escapable: an admin
//!   deactivates the refusing plugin and tries again. The same holds for
//!   the Panel deactivating a plugin whose license lapsed.
//! - **A plugin is never asked about its own lifecycle.** Its before-hook
//!   is not called for its own update, activation or uninstall, so a
//!   broken hook plugin can always be replaced by a fixed version or
//!   removed.
//! - **A failing hook never refuses a login**, even with
//!   `fail-closed = true`: a plugin that traps or times out on
//!   `user.login` would otherwise keep everyone, administrators included,
//!   from logging in to remove it. An explicit deny still refuses (a
//!   policy plugin may restrict logins on purpose; deactivating it needs an
//!   administrator's session or API key that it let through).
//! - **Logging out is never refused**: a session must always be endable.
//! - **The first administrator** ([`crate::identity::bootstrap_admin`]) and
//!   the local node of `cap up` are created by the Panel setting itself
//!   up, not by a request, and fire no hooks: no plugin can keep a Panel
//!   from having an administrator, or `cap up` from having its node.

use std::time::{SystemTime, UNIX_EPOCH};

use cap_runtime::Plugin;
use cap_runtime::api::{self, EventKind, Payload, PluginRef};
use cap_runtime::hooks::{Decision, RetryPolicy, dispatch_after, dispatch_before_with};

pub use cap_runtime::hooks::Failures;

use super::PluginManager;
use crate::db::Actor;

/// A plugin's before-hook refused an operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("denied by {plugin}: {reason}")]
pub struct HookDenied {
    /// The plugin that refused.
    pub plugin: String,
    /// Its reason, shown to the client.
    pub reason: String,
}

/// A hook event of `kind` about `payload`, caused by `actor`.
pub fn event(kind: EventKind, payload: Payload, actor: &Actor) -> api::Event {
    let occurred_at_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or_default();
    api::Event {
        id: format!("evt_{}", uuid::Uuid::now_v7().simple()),
        kind,
        occurred_at_ms,
        actor: api::Actor {
            user_id: actor.user_id.clone(),
            ip: actor.ip.map(|ip| ip.to_string()),
            request_id: actor.request_id.clone(),
        },
        payload,
    }
}

/// The payload of `plugin.*` events about plugin `id` at `version`.
pub fn plugin_ref(id: &str, version: &semver::Version) -> Payload {
    Payload::Plugin(PluginRef {
        id: id.to_owned(),
        version: version.to_string(),
    })
}

/// Runs the before-hooks of the active plugins on `event`: the event to
/// go ahead with (possibly modified), or why not. Failures count as each
/// plugin's manifest declares.
///
/// # Errors
///
/// [`HookDenied`] with the first denying plugin's reason.
pub async fn run_before(
    plugins: Option<&PluginManager>,
    event: api::Event,
) -> Result<api::Event, HookDenied> {
    match plugins {
        Some(plugins) => ask(plugins.active_plugins(), event, Failures::AsDeclared).await,
        None => Ok(event),
    }
}

/// [`run_before`] with failures counting as `failures` says, asking every
/// active plugin but `except` (the plugin an event is about: see the
/// module docs).
///
/// # Errors
///
/// [`HookDenied`] with the first denying plugin's reason.
pub async fn run_before_with(
    plugins: Option<&PluginManager>,
    event: api::Event,
    failures: Failures,
    except: Option<&str>,
) -> Result<api::Event, HookDenied> {
    let Some(plugins) = plugins else {
        return Ok(event);
    };
    let mut active = plugins.active_plugins();
    active.retain(|p| Some(p.id()) != except);
    ask(active, event, failures).await
}

async fn ask(
    active: Vec<Plugin>,
    event: api::Event,
    failures: Failures,
) -> Result<api::Event, HookDenied> {
    let outcome = dispatch_before_with(&active, &event, failures).await;
    for report in &outcome.reports {
        if let Err(error) = &report.outcome {
            tracing::warn!(plugin = %report.plugin, kind = event.kind.dotted(), %error, "a before-hook failed");
        }
    }
    match outcome.decision {
        Decision::Allow(event) => Ok(*event),
        Decision::Deny { plugin, reason } => Err(HookDenied { plugin, reason }),
    }
}

/// Fires the after-hooks of the active plugins on `event` on a task of its
/// own, retrying failures; never waits for them.
pub fn spawn_after(plugins: Option<&PluginManager>, event: api::Event) {
    let Some(plugins) = plugins else {
        return;
    };
    let active = plugins.active_plugins();
    tokio::spawn(async move {
        for report in dispatch_after(&active, &event, RetryPolicy::default()).await {
            if let Err(error) = report.outcome {
                tracing::warn!(plugin = %report.plugin, kind = event.kind.dotted(), %error,
                    attempts = report.attempts, "an after-hook failed");
            }
        }
    });
}
