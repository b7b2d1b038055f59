//! Hook fan-out: deliver a Panel event to every subscribed plugin at once,
//! each under its own deadline, and combine the answers deterministically.
//!
//! Before-hooks: plugins are ordered by id. Any deny wins (the first deny in
//! id order is the one reported); a plugin that fails counts as a deny if
//! its manifest says `fail-closed = true` and is otherwise ignored (and
//! reported); [`dispatch_before_with`] and [`Failures::Ignored`] ignore
//! every failure, for operations a broken plugin must never block. If nobody denies, `modify` patches (JSON merge patches, RFC
//! 7396) are applied in id order to the payload; a patch touching a field
//! the event kind does not declare modifiable, or producing a payload that
//! no longer fits the event, is that plugin's failure. All plugins see the
//! original event, so the result does not depend on timing.
//!
//! After-hooks are notifications: each plugin is called independently and
//! retried with exponential backoff when it fails.

use std::time::{Duration, Instant};

use futures::future::join_all;
use serde::Serialize;

use crate::api::{Event, EventKind, Payload, Verdict};
use crate::error::CallError;
use crate::manifest::PluginKind;
use crate::plugin::Plugin;

impl EventKind {
    /// Every event kind.
    pub const ALL: [EventKind; 39] = [
        EventKind::UserCreate,
        EventKind::UserUpdate,
        EventKind::UserDelete,
        EventKind::UserLogin,
        EventKind::UserLogout,
        EventKind::ServerCreate,
        EventKind::ServerUpdate,
        EventKind::ServerDelete,
        EventKind::ServerInstall,
        EventKind::ServerStart,
        EventKind::ServerStop,
        EventKind::ServerRestart,
        EventKind::ServerKill,
        EventKind::ServerStateChanged,
        EventKind::NodeCreate,
        EventKind::NodeDelete,
        EventKind::NodeOnline,
        EventKind::NodeOffline,
        EventKind::PluginInstall,
        EventKind::PluginActivate,
        EventKind::PluginDeactivate,
        EventKind::PluginUninstall,
        EventKind::ConsoleCommand,
        EventKind::ConsoleReady,
        EventKind::ConsolePlayerJoined,
        EventKind::ConsolePlayerLeft,
        EventKind::ConsoleCrash,
        EventKind::ScheduleTick,
        EventKind::UserInvite,
        EventKind::FileWrite,
        EventKind::BackupCreate,
        EventKind::BackupComplete,
        EventKind::BackupRestore,
        EventKind::BackupDelete,
        EventKind::DatabaseCreate,
        EventKind::DatabaseDelete,
        EventKind::ServerSuspend,
        EventKind::ServerUnsuspend,
        EventKind::ServerTransfer,
    ];

    /// The manifest name, e.g. `server.create`.
    pub fn dotted(self) -> &'static str {
        match self {
            EventKind::UserCreate => "user.create",
            EventKind::UserUpdate => "user.update",
            EventKind::UserDelete => "user.delete",
            EventKind::UserLogin => "user.login",
            EventKind::UserLogout => "user.logout",
            EventKind::ServerCreate => "server.create",
            EventKind::ServerUpdate => "server.update",
            EventKind::ServerDelete => "server.delete",
            EventKind::ServerInstall => "server.install",
            EventKind::ServerStart => "server.start",
            EventKind::ServerStop => "server.stop",
            EventKind::ServerRestart => "server.restart",
            EventKind::ServerKill => "server.kill",
            EventKind::ServerStateChanged => "server.state-changed",
            EventKind::NodeCreate => "node.create",
            EventKind::NodeDelete => "node.delete",
            EventKind::NodeOnline => "node.online",
            EventKind::NodeOffline => "node.offline",
            EventKind::PluginInstall => "plugin.install",
            EventKind::PluginActivate => "plugin.activate",
            EventKind::PluginDeactivate => "plugin.deactivate",
            EventKind::PluginUninstall => "plugin.uninstall",
            EventKind::ConsoleCommand => "console.command",
            EventKind::ConsoleReady => "console.ready",
            EventKind::ConsolePlayerJoined => "console.player-joined",
            EventKind::ConsolePlayerLeft => "console.player-left",
            EventKind::ConsoleCrash => "console.crash",
            EventKind::ScheduleTick => "schedule.tick",
            EventKind::UserInvite => "user.invite",
            EventKind::FileWrite => "file.write",
            EventKind::BackupCreate => "backup.create",
            EventKind::BackupComplete => "backup.complete",
            EventKind::BackupRestore => "backup.restore",
            EventKind::BackupDelete => "backup.delete",
            EventKind::DatabaseCreate => "database.create",
            EventKind::DatabaseDelete => "database.delete",
            EventKind::ServerSuspend => "server.suspend",
            EventKind::ServerUnsuspend => "server.unsuspend",
            EventKind::ServerTransfer => "server.transfer",
        }
    }

    /// The minor version of the plugin API (0.x) that introduced the kind:
    /// a plugin of an older API can neither subscribe to it (its manifest
    /// is refused) nor receive it.
    pub fn since_minor(self) -> u64 {
        match self {
            EventKind::UserInvite
            | EventKind::FileWrite
            | EventKind::BackupCreate
            | EventKind::BackupComplete
            | EventKind::BackupRestore
            | EventKind::BackupDelete
            | EventKind::DatabaseCreate
            | EventKind::DatabaseDelete
            | EventKind::ServerSuspend
            | EventKind::ServerUnsuspend
            | EventKind::ServerTransfer => 2,
            _ => 1,
        }
    }

    /// Parses a manifest name.
    pub fn from_dotted(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.dotted() == name)
    }

    /// Payload fields a before-hook may change with `modify`.
    pub fn modifiable_fields(self) -> &'static [&'static str] {
        match self {
            EventKind::ServerCreate | EventKind::ServerUpdate => {
                &["name", "memory_mb", "disk_mb", "cpu_percent", "variables"]
            }
            EventKind::UserCreate | EventKind::UserUpdate => &["email"],
            EventKind::ConsoleCommand => &["line"],
            _ => &[],
        }
    }
}

/// One plugin's part in a dispatch.
#[derive(Debug, Clone, Serialize)]
pub struct HookReport {
    /// Plugin id.
    pub plugin: String,
    /// What it answered: `allow`, `deny`, `modify`, `ok`, or the failure.
    pub outcome: Result<String, String>,
    /// Time the call took.
    pub elapsed: Duration,
    /// Attempts made (after-hooks retry).
    pub attempts: u32,
}

/// The combined answer of the before-hooks.
#[derive(Debug, Clone)]
pub enum Decision {
    /// Go ahead with `event` (possibly modified).
    Allow(Box<Event>),
    /// Refuse.
    Deny {
        /// The plugin that refused.
        plugin: String,
        /// Shown to the client.
        reason: String,
    },
}

/// Result of [`dispatch_before`].
#[derive(Debug, Clone)]
pub struct BeforeOutcome {
    /// The decision.
    pub decision: Decision,
    /// Every subscribed plugin's answer, in id order.
    pub reports: Vec<HookReport>,
}

fn subscribed(plugins: &[Plugin], kind: EventKind, before: bool) -> Vec<&Plugin> {
    let mut out: Vec<&Plugin> = plugins
        .iter()
        .filter(|p| p.manifest().has_kind(PluginKind::Hooks))
        .filter(|p| {
            p.manifest().hooks.as_ref().is_some_and(|h| {
                if before {
                    h.wants_before(kind)
                } else {
                    h.wants_after(kind)
                }
            })
        })
        .collect();
    out.sort_by(|a, b| a.id().cmp(b.id()));
    out
}

/// What a before-hook that fails (traps, times out, is quarantined, or
/// returns a bad modification) means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Failures {
    /// What the plugin's manifest says: a deny with `fail-closed = true`,
    /// ignored otherwise.
    #[default]
    AsDeclared,
    /// Ignored whatever the manifest says: for operations a broken plugin
    /// must never block, such as logging in (otherwise no administrator
    /// could log in to remove it). Explicit denies still deny.
    Ignored,
}

/// Runs the before-hooks of `plugins` subscribed to `event.kind`; failures
/// count as their manifests declare ([`Failures::AsDeclared`]).
pub async fn dispatch_before(plugins: &[Plugin], event: &Event) -> BeforeOutcome {
    dispatch_before_with(plugins, event, Failures::AsDeclared).await
}

/// [`dispatch_before`], with failures counting as `failures` says.
pub async fn dispatch_before_with(
    plugins: &[Plugin],
    event: &Event,
    failures: Failures,
) -> BeforeOutcome {
    let targets = subscribed(plugins, event.kind, true);
    let answers = join_all(targets.iter().map(|p| async move {
        let started = Instant::now();
        let answer = p.hook_before(event).await;
        HookAnswer {
            plugin: p.id().to_string(),
            fail_closed: failures == Failures::AsDeclared
                && p.manifest().hooks.as_ref().is_some_and(|h| h.fail_closed),
            answer,
            elapsed: started.elapsed(),
        }
    }))
    .await;
    combine(event, answers)
}

/// One plugin's answer to a before-hook, as input to [`combine`].
#[derive(Debug, Clone)]
pub struct HookAnswer {
    /// Plugin id.
    pub plugin: String,
    /// Whether a failure denies.
    pub fail_closed: bool,
    /// What the call returned.
    pub answer: Result<Verdict, CallError>,
    /// How long it took.
    pub elapsed: Duration,
}

/// Combines before-hook answers: sorted by plugin id, any deny wins (the
/// first in id order is reported), failures deny only for fail-closed
/// plugins, and modifications apply in id order.
pub fn combine(event: &Event, mut answers: Vec<HookAnswer>) -> BeforeOutcome {
    answers.sort_by(|a, b| a.plugin.cmp(&b.plugin));
    let mut reports = Vec::with_capacity(answers.len());
    let mut deny: Option<(String, String)> = None;
    let mut patches = Vec::new();
    for a in answers {
        let outcome = match a.answer {
            Ok(Verdict::Allow) => Ok("allow".to_string()),
            Ok(Verdict::Deny(reason)) => {
                deny.get_or_insert_with(|| (a.plugin.clone(), reason.clone()));
                Ok(format!("deny: {reason}"))
            }
            Ok(Verdict::Modify(patch)) => {
                patches.push((a.plugin.clone(), a.fail_closed, patch));
                Ok("modify".to_string())
            }
            Err(e) => {
                if a.fail_closed {
                    deny.get_or_insert_with(|| {
                        (
                            a.plugin.clone(),
                            format!("policy plugin {} could not decide ({})", a.plugin, e.code()),
                        )
                    });
                }
                Err(e.to_string())
            }
        };
        reports.push(HookReport {
            plugin: a.plugin,
            outcome,
            elapsed: a.elapsed,
            attempts: 1,
        });
    }

    if let Some((plugin, reason)) = deny {
        return BeforeOutcome {
            decision: Decision::Deny { plugin, reason },
            reports,
        };
    }

    let mut current = event.clone();
    for (plugin, fail_closed, patch) in patches {
        match apply_patch(&current, &patch) {
            Ok(next) => current = next,
            Err(why) => {
                tracing::warn!(%plugin, %why, "refused a hook modification");
                if let Some(r) = reports.iter_mut().find(|r| r.plugin == plugin) {
                    r.outcome = Err(format!("bad modification: {why}"));
                }
                if fail_closed {
                    return BeforeOutcome {
                        decision: Decision::Deny {
                            reason: format!("{plugin} returned a bad modification: {why}"),
                            plugin,
                        },
                        reports,
                    };
                }
            }
        }
    }
    BeforeOutcome {
        decision: Decision::Allow(Box::new(current)),
        reports,
    }
}

/// Applies a `modify` patch to the event's payload, allowing only the
/// fields the event kind declares modifiable.
pub fn apply_patch(event: &Event, patch: &str) -> Result<Event, String> {
    let patch: serde_json::Value =
        serde_json::from_str(patch).map_err(|e| format!("not JSON: {e}"))?;
    let serde_json::Value::Object(patch) = patch else {
        return Err("the patch is not a JSON object".into());
    };
    let allowed = event.kind.modifiable_fields();
    let mut normalised = serde_json::Map::new();
    for (key, value) in patch {
        let key = key.replace('-', "_");
        if !allowed.contains(&key.as_str()) {
            return Err(format!(
                "field {key:?} of {} may not be modified (allowed: {})",
                event.kind.dotted(),
                if allowed.is_empty() {
                    "none".to_string()
                } else {
                    allowed.join(", ")
                }
            ));
        }
        normalised.insert(key, value);
    }
    let mut payload = serde_json::to_value(&event.payload).map_err(|e| e.to_string())?;
    // Payloads serialise as `{"Variant": {fields}}`; patch the fields.
    let serde_json::Value::Object(outer) = &mut payload else {
        return Err("payload has no fields".into());
    };
    let Some((_, inner)) = outer.iter_mut().next() else {
        return Err("payload has no fields".into());
    };
    json_patch::merge(inner, &serde_json::Value::Object(normalised));
    let patched: Payload = serde_json::from_value(payload)
        .map_err(|e| format!("the patched payload is invalid: {e}"))?;
    Ok(Event {
        payload: patched,
        ..event.clone()
    })
}

/// Retry policy for after-hooks.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all (at least 1).
    pub attempts: u32,
    /// Delay before the second attempt; doubles each time.
    pub backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 4,
            backoff: Duration::from_millis(200),
        }
    }
}

/// Runs the after-hooks of `plugins` subscribed to `event.kind`
/// concurrently, retrying failures. Returns when every plugin succeeded or
/// ran out of attempts; callers that must not wait spawn it.
pub async fn dispatch_after(
    plugins: &[Plugin],
    event: &Event,
    retry: RetryPolicy,
) -> Vec<HookReport> {
    let targets = subscribed(plugins, event.kind, false);
    join_all(targets.into_iter().map(|p| async move {
        let started = Instant::now();
        let mut attempts = 0;
        let mut delay = retry.backoff;
        let outcome = loop {
            attempts += 1;
            let result = match p.hook_after(event).await {
                Ok(Ok(())) => Ok("ok".to_string()),
                Ok(Err(e)) => Err(format!("{}: {}", e.code, e.message)),
                Err(e @ (CallError::Quarantined { .. } | CallError::NotImplemented { .. })) => {
                    break Err(e.to_string());
                }
                Err(e) => Err(e.to_string()),
            };
            if result.is_ok() || attempts >= retry.attempts.max(1) {
                break result;
            }
            tokio::time::sleep(delay).await;
            delay = delay.saturating_mul(2);
        };
        HookReport {
            plugin: p.id().to_string(),
            outcome,
            elapsed: started.elapsed(),
            attempts,
        }
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Actor, ServerInfo};

    fn server_create() -> Event {
        Event {
            id: "ev1".into(),
            kind: EventKind::ServerCreate,
            occurred_at_ms: 0,
            actor: Actor {
                user_id: Some("u1".into()),
                ip: None,
                request_id: None,
            },
            payload: Payload::Server(ServerInfo {
                id: "s1".into(),
                name: "survival".into(),
                owner_id: "u1".into(),
                node_id: "n1".into(),
                game_type: "minecraft-paper".into(),
                memory_mb: 4096,
                disk_mb: 10240,
                cpu_percent: 200,
                variables: vec![],
                state: "creating".into(),
            }),
        }
    }

    fn answer(plugin: &str, fail_closed: bool, answer: Result<Verdict, CallError>) -> HookAnswer {
        HookAnswer {
            plugin: plugin.into(),
            fail_closed,
            answer,
            elapsed: Duration::ZERO,
        }
    }

    fn trap(plugin: &str) -> CallError {
        CallError::Trap {
            plugin: plugin.into(),
            message: "boom".into(),
            stderr: String::new(),
        }
    }

    fn memory_of(outcome: &BeforeOutcome) -> u64 {
        match &outcome.decision {
            Decision::Allow(e) => match &e.payload {
                Payload::Server(s) => s.memory_mb,
                _ => panic!("payload changed variant"),
            },
            Decision::Deny { reason, .. } => panic!("denied: {reason}"),
        }
    }

    #[test]
    fn any_deny_wins_and_the_first_in_id_order_is_reported() {
        let out = combine(
            &server_create(),
            vec![
                answer("zeta", false, Ok(Verdict::Deny("z says no".into()))),
                answer("alpha", false, Ok(Verdict::Allow)),
                answer("beta", false, Ok(Verdict::Deny("b says no".into()))),
                answer(
                    "gamma",
                    false,
                    Ok(Verdict::Modify(r#"{"memory-mb": 1}"#.into())),
                ),
            ],
        );
        match out.decision {
            Decision::Deny { plugin, reason } => {
                assert_eq!((plugin.as_str(), reason.as_str()), ("beta", "b says no"))
            }
            Decision::Allow(_) => panic!("allowed"),
        }
        let order: Vec<_> = out.reports.iter().map(|r| r.plugin.as_str()).collect();
        assert_eq!(order, ["alpha", "beta", "gamma", "zeta"]);
    }

    #[test]
    fn modifications_apply_in_id_order_whatever_the_arrival_order() {
        let a = answer(
            "a-first",
            false,
            Ok(Verdict::Modify(r#"{"memory-mb": 1000}"#.into())),
        );
        let b = answer(
            "b-second",
            false,
            Ok(Verdict::Modify(r#"{"memory-mb": 2000}"#.into())),
        );
        let one = combine(&server_create(), vec![a.clone(), b.clone()]);
        let two = combine(&server_create(), vec![b, a]);
        assert_eq!(memory_of(&one), 2000);
        assert_eq!(memory_of(&two), 2000);
    }

    #[test]
    fn a_failure_denies_only_when_the_plugin_is_fail_closed() {
        let open = combine(
            &server_create(),
            vec![answer("guard", false, Err(trap("guard")))],
        );
        assert_eq!(memory_of(&open), 4096);
        assert!(open.reports[0].outcome.is_err());
        let closed = combine(
            &server_create(),
            vec![answer("guard", true, Err(trap("guard")))],
        );
        match closed.decision {
            Decision::Deny { plugin, reason } => {
                assert_eq!(plugin, "guard");
                assert!(reason.contains("could not decide (trap)"), "{reason}");
            }
            Decision::Allow(_) => panic!("a fail-closed failure must deny"),
        }
    }

    #[test]
    fn a_bad_modification_is_ignored_or_denies_by_the_plugins_policy() {
        let bad = r#"{"owner-id": "attacker"}"#;
        let open = combine(
            &server_create(),
            vec![answer("m", false, Ok(Verdict::Modify(bad.into())))],
        );
        assert_eq!(memory_of(&open), 4096);
        let closed = combine(
            &server_create(),
            vec![answer("m", true, Ok(Verdict::Modify(bad.into())))],
        );
        assert!(matches!(closed.decision, Decision::Deny { .. }));
    }

    #[test]
    fn maps_every_event_kind_to_a_unique_dotted_name() {
        let names: std::collections::HashSet<_> =
            EventKind::ALL.iter().map(|k| k.dotted()).collect();
        assert_eq!(names.len(), EventKind::ALL.len());
        for k in EventKind::ALL {
            assert_eq!(EventKind::from_dotted(k.dotted()), Some(k));
        }
        assert_eq!(EventKind::from_dotted("server.explode"), None);
    }

    #[test]
    fn applies_a_patch_to_modifiable_fields() {
        let patched = apply_patch(
            &server_create(),
            r#"{"memory-mb": 2048, "name": "smaller"}"#,
        )
        .expect("patch");
        let Payload::Server(s) = patched.payload else {
            panic!("payload changed variant");
        };
        assert_eq!(s.memory_mb, 2048);
        assert_eq!(s.name, "smaller");
        assert_eq!(s.owner_id, "u1");
    }

    #[test]
    fn refuses_a_patch_to_a_protected_field() {
        let err = apply_patch(&server_create(), r#"{"owner-id": "attacker"}"#).unwrap_err();
        assert!(
            err.contains("owner_id") && err.contains("may not be modified"),
            "{err}"
        );
    }

    #[test]
    fn refuses_a_patch_that_breaks_the_payload_type() {
        let err = apply_patch(&server_create(), r#"{"memory-mb": "lots"}"#).unwrap_err();
        assert!(err.contains("invalid"), "{err}");
        let err = apply_patch(&server_create(), r#"{"memory-mb": null}"#).unwrap_err();
        assert!(err.contains("invalid"), "{err}");
    }
}
