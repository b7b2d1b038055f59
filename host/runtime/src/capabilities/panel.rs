//! `panel`: a scoped view of the Panel API.
//!
//! Each function needs its scope (`servers.read`, `console.send`, and
//! since API 0.2.0 `power` and `backups.create`); the embedder's
//! [`PanelApi`] does the rest, as the Panel's own routes would, with the
//! plugin as the actor.

use std::time::Instant;

use super::{BoxFuture, CapabilityContext, ServiceError, until_deadline};
use crate::api::{CapabilityError, PowerSignal, ServerSummary};
use crate::manifest::PanelScope;
use crate::plugin::PluginState;

/// Longest console command, in bytes.
pub const MAX_COMMAND_BYTES: usize = 4096;
/// Longest backup name a plugin may give, in characters (the Panel's
/// limit for every backup).
pub const MAX_BACKUP_NAME_CHARS: usize = 191;
/// Longest suspension reason, in characters.
pub const MAX_REASON_CHARS: usize = 512;

/// What the embedder exposes to plugins with the `panel` capability.
pub trait PanelApi: Send + Sync {
    /// Every server, as the plugin may see it.
    fn list_servers<'a>(
        &'a self,
        plugin: &'a str,
    ) -> BoxFuture<'a, Result<Vec<ServerSummary>, ServiceError>>;
    /// One server.
    fn get_server<'a>(
        &'a self,
        plugin: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, Result<ServerSummary, ServiceError>>;
    /// Sends a console command to a server.
    fn send_console_command<'a>(
        &'a self,
        plugin: &'a str,
        server_id: &'a str,
        command: &'a str,
    ) -> BoxFuture<'a, Result<(), ServiceError>>;
    /// Queues a power action for a server (API 0.2.0). Hosts without
    /// power actions answer `unavailable`.
    fn power_action<'a>(
        &'a self,
        _plugin: &'a str,
        _server_id: &'a str,
        _action: PowerSignal,
    ) -> BoxFuture<'a, Result<(), ServiceError>> {
        Box::pin(async {
            Err(ServiceError::Unavailable(
                "this host has no power actions".into(),
            ))
        })
    }
    /// Starts a backup of a server, returning its id (API 0.2.0). Hosts
    /// without backups answer `unavailable`.
    fn create_backup<'a>(
        &'a self,
        _plugin: &'a str,
        _server_id: &'a str,
        _name: Option<&'a str>,
    ) -> BoxFuture<'a, Result<String, ServiceError>> {
        Box::pin(async { Err(ServiceError::Unavailable("this host has no backups".into())) })
    }
    /// Suspends a server for `reason` (API 0.2.0). The default answers
    /// `unavailable`: embedders without suspensions need not implement it.
    fn suspend_server<'a>(
        &'a self,
        _plugin: &'a str,
        _server_id: &'a str,
        _reason: &'a str,
    ) -> BoxFuture<'a, Result<(), ServiceError>> {
        Box::pin(async {
            Err(ServiceError::Unavailable(
                "this host suspends no servers".into(),
            ))
        })
    }
    /// Lifts a server's suspension (API 0.2.0); the default answers
    /// `unavailable`.
    fn unsuspend_server<'a>(
        &'a self,
        _plugin: &'a str,
        _server_id: &'a str,
    ) -> BoxFuture<'a, Result<(), ServiceError>> {
        Box::pin(async {
            Err(ServiceError::Unavailable(
                "this host suspends no servers".into(),
            ))
        })
    }
}

/// A [`PanelApi`] for hosts without a Panel (tools, tests): every call
/// answers `unavailable`.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoPanel;

impl PanelApi for NoPanel {
    fn list_servers<'a>(
        &'a self,
        _: &'a str,
    ) -> BoxFuture<'a, Result<Vec<ServerSummary>, ServiceError>> {
        Box::pin(async { Err(ServiceError::Unavailable("no Panel is connected".into())) })
    }

    fn get_server<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
    ) -> BoxFuture<'a, Result<ServerSummary, ServiceError>> {
        Box::pin(async { Err(ServiceError::Unavailable("no Panel is connected".into())) })
    }

    fn send_console_command<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
        _: &'a str,
    ) -> BoxFuture<'a, Result<(), ServiceError>> {
        Box::pin(async { Err(ServiceError::Unavailable("no Panel is connected".into())) })
    }
}

fn require(state: &PluginState, scope: PanelScope) -> Result<(), CapabilityError> {
    require_in(&state.caps, scope)
}

fn require_in(caps: &CapabilityContext, scope: PanelScope) -> Result<(), CapabilityError> {
    if caps.grants.panel.contains(&scope) {
        Ok(())
    } else {
        Err(caps.deny(&format!("panel {}", scope.as_str())))
    }
}

/// `panel.list-servers` (scope `servers.read`).
pub(crate) async fn list_servers(
    state: &mut PluginState,
) -> Result<Vec<ServerSummary>, CapabilityError> {
    require(state, PanelScope::ServersRead)?;
    Ok(until_deadline(
        state.deadline,
        state
            .caps
            .services
            .panel
            .list_servers(&state.caps.plugin_id),
    )
    .await?)
}

/// `panel.get-server` (scope `servers.read`).
pub(crate) async fn get_server(
    state: &mut PluginState,
    id: String,
) -> Result<ServerSummary, CapabilityError> {
    require(state, PanelScope::ServersRead)?;
    Ok(until_deadline(
        state.deadline,
        state
            .caps
            .services
            .panel
            .get_server(&state.caps.plugin_id, &id),
    )
    .await?)
}

/// `panel.send-console-command` (scope `console.send`): one line of at most
/// [`MAX_COMMAND_BYTES`].
pub(crate) async fn send_console_command(
    state: &mut PluginState,
    server_id: String,
    command: String,
) -> Result<(), CapabilityError> {
    require(state, PanelScope::ConsoleSend)?;
    if command.len() > MAX_COMMAND_BYTES || command.contains(['\n', '\r']) {
        return Err(CapabilityError::Invalid(format!(
            "a console command is one line of at most {MAX_COMMAND_BYTES} bytes"
        )));
    }
    Ok(until_deadline(
        state.deadline,
        state
            .caps
            .services
            .panel
            .send_console_command(&state.caps.plugin_id, &server_id, &command),
    )
    .await?)
}

/// `panel.power-action` (scope `power`) for the plugin of `caps`.
pub(crate) async fn power_action_with(
    caps: &CapabilityContext,
    deadline: Instant,
    server_id: String,
    action: PowerSignal,
) -> Result<(), CapabilityError> {
    require_in(caps, PanelScope::Power)?;
    Ok(until_deadline(
        deadline,
        caps.services
            .panel
            .power_action(&caps.plugin_id, &server_id, action),
    )
    .await?)
}

/// `panel.create-backup` (scope `backups.create`) for the plugin of
/// `caps`: a name of at most [`MAX_BACKUP_NAME_CHARS`] characters without
/// control characters, or none.
pub(crate) async fn create_backup_with(
    caps: &CapabilityContext,
    deadline: Instant,
    server_id: String,
    name: Option<String>,
) -> Result<String, CapabilityError> {
    require_in(caps, PanelScope::BackupsCreate)?;
    if let Some(name) = &name
        && (name.chars().count() > MAX_BACKUP_NAME_CHARS || name.chars().any(char::is_control))
    {
        return Err(CapabilityError::Invalid(format!(
            "a backup name is at most {MAX_BACKUP_NAME_CHARS} characters without control characters"
        )));
    }
    Ok(until_deadline(
        deadline,
        caps.services
            .panel
            .create_backup(&caps.plugin_id, &server_id, name.as_deref()),
    )
    .await?)
}

/// `panel.suspend-server` (scope `servers.suspend`) for the plugin of
/// `caps`: a reason of one line, 1 to [`MAX_REASON_CHARS`] characters.
pub(crate) async fn suspend_server_with(
    caps: &CapabilityContext,
    deadline: Instant,
    server_id: String,
    reason: String,
) -> Result<(), CapabilityError> {
    require_in(caps, PanelScope::ServersSuspend)?;
    let length = reason.trim().chars().count();
    if length == 0 || length > MAX_REASON_CHARS || reason.contains(['\n', '\r', '\0']) {
        return Err(CapabilityError::Invalid(format!(
            "a suspension reason is one line of 1 to {MAX_REASON_CHARS} characters"
        )));
    }
    Ok(until_deadline(
        deadline,
        caps.services
            .panel
            .suspend_server(&caps.plugin_id, &server_id, &reason),
    )
    .await?)
}

/// `panel.unsuspend-server` (scope `servers.suspend`) for the plugin of
/// `caps`.
pub(crate) async fn unsuspend_server_with(
    caps: &CapabilityContext,
    deadline: Instant,
    server_id: String,
) -> Result<(), CapabilityError> {
    require_in(caps, PanelScope::ServersSuspend)?;
    Ok(until_deadline(
        deadline,
        caps.services
            .panel
            .unsuspend_server(&caps.plugin_id, &server_id),
    )
    .await?)
}

/// `panel.power-action` (scope `power`, API 0.2.0).
pub(crate) async fn power_action(
    state: &mut PluginState,
    server_id: String,
    action: PowerSignal,
) -> Result<(), CapabilityError> {
    power_action_with(&state.caps, state.deadline, server_id, action).await
}

/// `panel.create-backup` (scope `backups.create`, API 0.2.0).
pub(crate) async fn create_backup(
    state: &mut PluginState,
    server_id: String,
    name: Option<String>,
) -> Result<String, CapabilityError> {
    create_backup_with(&state.caps, state.deadline, server_id, name).await
}

/// `panel.suspend-server` (scope `servers.suspend`, API 0.2.0).
pub(crate) async fn suspend_server(
    state: &mut PluginState,
    server_id: String,
    reason: String,
) -> Result<(), CapabilityError> {
    suspend_server_with(&state.caps, state.deadline, server_id, reason).await
}

/// `panel.unsuspend-server` (scope `servers.suspend`, API 0.2.0).
pub(crate) async fn unsuspend_server(
    state: &mut PluginState,
    server_id: String,
) -> Result<(), CapabilityError> {
    unsuspend_server_with(&state.caps, state.deadline, server_id).await
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use super::*;
    use crate::capabilities::{Grants, HostServices};

    /// Records what reaches it.
    #[derive(Default)]
    struct Recording(Mutex<Vec<String>>);

    impl PanelApi for Recording {
        fn list_servers<'a>(
            &'a self,
            _: &'a str,
        ) -> BoxFuture<'a, Result<Vec<ServerSummary>, ServiceError>> {
            Box::pin(async { Ok(Vec::new()) })
        }

        fn get_server<'a>(
            &'a self,
            _: &'a str,
            id: &'a str,
        ) -> BoxFuture<'a, Result<ServerSummary, ServiceError>> {
            Box::pin(async move { Err(ServiceError::NotFound(format!("server {id}"))) })
        }

        fn send_console_command<'a>(
            &'a self,
            _: &'a str,
            _: &'a str,
            _: &'a str,
        ) -> BoxFuture<'a, Result<(), ServiceError>> {
            Box::pin(async { Ok(()) })
        }

        fn power_action<'a>(
            &'a self,
            plugin: &'a str,
            server_id: &'a str,
            action: PowerSignal,
        ) -> BoxFuture<'a, Result<(), ServiceError>> {
            Box::pin(async move {
                self.0
                    .lock()
                    .expect("lock")
                    .push(format!("{plugin} {action:?} {server_id}"));
                Ok(())
            })
        }

        fn create_backup<'a>(
            &'a self,
            plugin: &'a str,
            server_id: &'a str,
            name: Option<&'a str>,
        ) -> BoxFuture<'a, Result<String, ServiceError>> {
            Box::pin(async move {
                self.0
                    .lock()
                    .expect("lock")
                    .push(format!("{plugin} backup {server_id} {name:?}"));
                Ok("bkp_1".to_owned())
            })
        }

        fn suspend_server<'a>(
            &'a self,
            plugin: &'a str,
            server_id: &'a str,
            reason: &'a str,
        ) -> BoxFuture<'a, Result<(), ServiceError>> {
            Box::pin(async move {
                self.0
                    .lock()
                    .expect("lock")
                    .push(format!("{plugin} suspend {server_id} {reason}"));
                Ok(())
            })
        }

        fn unsuspend_server<'a>(
            &'a self,
            plugin: &'a str,
            server_id: &'a str,
        ) -> BoxFuture<'a, Result<(), ServiceError>> {
            Box::pin(async move {
                self.0
                    .lock()
                    .expect("lock")
                    .push(format!("{plugin} unsuspend {server_id}"));
                Ok(())
            })
        }
    }

    fn context(scopes: &[PanelScope], panel: Arc<Recording>) -> CapabilityContext {
        let services = HostServices {
            panel,
            ..HostServices::in_memory()
        };
        let grants = Grants {
            panel: scopes.iter().copied().collect::<BTreeSet<_>>(),
            ..Grants::none()
        };
        CapabilityContext::new("scheduler", grants, services)
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    #[tokio::test]
    async fn power_actions_and_backups_need_their_own_scopes() {
        let panel = Arc::new(Recording::default());
        let caps = context(
            &[PanelScope::ServersRead, PanelScope::ConsoleSend],
            Arc::clone(&panel),
        );
        match power_action_with(&caps, soon(), "srv".into(), PowerSignal::Restart).await {
            Err(CapabilityError::Denied(what)) => assert!(what.contains("panel power"), "{what}"),
            other => panic!("expected a denial, got {other:?}"),
        }
        match create_backup_with(&caps, soon(), "srv".into(), None).await {
            Err(CapabilityError::Denied(what)) => {
                assert!(what.contains("panel backups.create"), "{what}");
            }
            other => panic!("expected a denial, got {other:?}"),
        }
        assert!(
            panel.0.lock().expect("lock").is_empty(),
            "nothing reached the Panel"
        );

        let caps = context(&[PanelScope::Power], Arc::clone(&panel));
        power_action_with(&caps, soon(), "srv".into(), PowerSignal::Restart)
            .await
            .expect("allowed");
        assert!(matches!(
            create_backup_with(&caps, soon(), "srv".into(), None).await,
            Err(CapabilityError::Denied(_))
        ));
        let caps = context(&[PanelScope::BackupsCreate], Arc::clone(&panel));
        assert_eq!(
            create_backup_with(&caps, soon(), "srv".into(), Some("nightly".into())).await,
            Ok("bkp_1".to_owned())
        );
        assert_eq!(
            *panel.0.lock().expect("lock"),
            [
                "scheduler PowerSignal::Restart srv".to_owned(),
                "scheduler backup srv Some(\"nightly\")".to_owned()
            ]
        );
    }

    #[tokio::test]
    async fn a_backup_name_that_is_too_long_or_has_control_characters_is_refused_here() {
        let panel = Arc::new(Recording::default());
        let caps = context(&[PanelScope::BackupsCreate], Arc::clone(&panel));
        for name in [
            "x".repeat(MAX_BACKUP_NAME_CHARS + 1),
            "two\nlines".to_owned(),
        ] {
            assert!(matches!(
                create_backup_with(&caps, soon(), "srv".into(), Some(name)).await,
                Err(CapabilityError::Invalid(_))
            ));
        }
        assert!(panel.0.lock().expect("lock").is_empty());
    }

    #[tokio::test]
    async fn hosts_without_power_actions_or_backups_say_so() {
        let services = HostServices::in_memory();
        let grants = Grants {
            panel: PanelScope::ALL.into_iter().collect(),
            ..Grants::none()
        };
        let caps = CapabilityContext::new("scheduler", grants, services);
        assert!(matches!(
            power_action_with(&caps, soon(), "srv".into(), PowerSignal::Start).await,
            Err(CapabilityError::Unavailable(_))
        ));
        assert!(matches!(
            create_backup_with(&caps, soon(), "srv".into(), None).await,
            Err(CapabilityError::Unavailable(_))
        ));
    }

    #[tokio::test]
    async fn suspensions_need_their_scope_and_a_reason_of_one_line() {
        let panel = Arc::new(Recording::default());
        let caps = context(
            &[PanelScope::ServersRead, PanelScope::Power],
            Arc::clone(&panel),
        );
        match suspend_server_with(&caps, soon(), "srv".into(), "unpaid".into()).await {
            Err(CapabilityError::Denied(what)) => {
                assert!(what.contains("panel servers.suspend"), "{what}");
            }
            other => panic!("expected a denial, got {other:?}"),
        }
        assert!(matches!(
            unsuspend_server_with(&caps, soon(), "srv".into()).await,
            Err(CapabilityError::Denied(_))
        ));
        let caps = context(&[PanelScope::ServersSuspend], Arc::clone(&panel));
        for reason in [
            String::new(),
            "   ".to_owned(),
            "two\nlines".to_owned(),
            "x".repeat(MAX_REASON_CHARS + 1),
        ] {
            assert!(
                matches!(
                    suspend_server_with(&caps, soon(), "srv".into(), reason.clone()).await,
                    Err(CapabilityError::Invalid(_))
                ),
                "{reason:?}"
            );
        }
        assert!(
            panel.0.lock().expect("lock").is_empty(),
            "nothing reached the Panel"
        );
        suspend_server_with(&caps, soon(), "srv".into(), "x".repeat(MAX_REASON_CHARS))
            .await
            .expect("the longest reason");
        unsuspend_server_with(&caps, soon(), "srv".into())
            .await
            .expect("lifted");
        assert_eq!(
            *panel.0.lock().expect("lock"),
            [
                format!("scheduler suspend srv {}", "x".repeat(MAX_REASON_CHARS)),
                "scheduler unsuspend srv".to_owned()
            ]
        );
        // Hosts without suspensions say so.
        let services = HostServices::in_memory();
        let grants = Grants {
            panel: PanelScope::ALL.into_iter().collect(),
            ..Grants::none()
        };
        let caps = CapabilityContext::new("billing", grants, services);
        assert!(matches!(
            suspend_server_with(&caps, soon(), "srv".into(), "unpaid".into()).await,
            Err(CapabilityError::Unavailable(_))
        ));
    }
}
