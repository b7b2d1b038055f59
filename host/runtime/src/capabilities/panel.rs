//! `panel`: a scoped view of the Panel API.

use super::{BoxFuture, ServiceError, until_deadline};
use crate::bindings::v0_1::ctrl_alt_play::plugin::panel::{Host, ServerSummary};
use crate::bindings::v0_1::ctrl_alt_play::plugin::types::CapabilityError;
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

impl PluginState {
    fn require(&self, scope: PanelScope) -> Result<(), CapabilityError> {
        if self.caps.grants.panel.contains(&scope) {
            Ok(())
        } else {
            Err(self.caps.deny(&format!("panel {}", scope.as_str())))
        }
    }
}

impl Host for PluginState {
    async fn list_servers(&mut self) -> Result<Vec<ServerSummary>, CapabilityError> {
        self.require(PanelScope::ServersRead)?;
        Ok(until_deadline(
            self.deadline,
            self.caps.services.panel.list_servers(&self.caps.plugin_id),
        )
        .await?)
    }

    async fn get_server(&mut self, id: String) -> Result<ServerSummary, CapabilityError> {
        self.require(PanelScope::ServersRead)?;
        Ok(until_deadline(
            self.deadline,
            self.caps
                .services
                .panel
                .get_server(&self.caps.plugin_id, &id),
        )
        .await?)
    }

    async fn send_console_command(
        &mut self,
        server_id: String,
        command: String,
    ) -> Result<(), CapabilityError> {
        self.require(PanelScope::ConsoleSend)?;
        if command.len() > MAX_COMMAND_BYTES || command.contains(['\n', '\r']) {
            return Err(CapabilityError::Invalid(format!(
                "a console command is one line of at most {MAX_COMMAND_BYTES} bytes"
            )));
        }
        Ok(until_deadline(
            self.deadline,
            self.caps.services.panel.send_console_command(
                &self.caps.plugin_id,
                &server_id,
                &command,
            ),
        )
        .await?)
    }
}
