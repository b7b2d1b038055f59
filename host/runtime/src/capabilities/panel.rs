//! `panel`: a scoped view of the Panel API.

use super::{BoxFuture, ServiceError, until_deadline};
use crate::api::{CapabilityError, ServerSummary};
use crate::manifest::PanelScope;
use crate::plugin::PluginState;

/// Longest console command, in bytes.
pub const MAX_COMMAND_BYTES: usize = 4096;

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
    if state.caps.grants.panel.contains(&scope) {
        Ok(())
    } else {
        Err(state.caps.deny(&format!("panel {}", scope.as_str())))
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
