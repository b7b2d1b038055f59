//! A scoped view of the Panel API (capability `panel = ["scope", ...]`).
//!
//! | Function | Scope |
//! | --- | --- |
//! | [`list_servers`], [`get_server`] | `servers.read` |
//! | [`send_console_command`] | `console.send` |
//!
//! ```no_run
//! use cap_plugin_sdk::panel;
//!
//! for server in panel::list_servers()? {
//!     if server.state == "running" {
//!         panel::send_console_command(&server.id, "save-all")?;
//!     }
//! }
//! # Ok::<(), cap_plugin_sdk::types::CapabilityError>(())
//! ```

use crate::bindings::ctrl_alt_play::plugin::panel as host;
use crate::types::CapabilityError;

pub use host::ServerSummary;

/// Every server the Panel knows (scope `servers.read`).
///
/// ```no_run
/// let count = cap_plugin_sdk::panel::list_servers()?.len();
/// # Ok::<(), cap_plugin_sdk::types::CapabilityError>(())
/// ```
pub fn list_servers() -> Result<Vec<ServerSummary>, CapabilityError> {
    host::list_servers()
}

/// One server by id (scope `servers.read`);
/// [`CapabilityError::NotFound`] when there is none.
///
/// ```no_run
/// let server = cap_plugin_sdk::panel::get_server("s-1")?;
/// # Ok::<(), cap_plugin_sdk::types::CapabilityError>(())
/// ```
pub fn get_server(id: &str) -> Result<ServerSummary, CapabilityError> {
    host::get_server(id)
}

/// Writes `command` to the console of server `server_id` (scope
/// `console.send`).
///
/// ```no_run
/// cap_plugin_sdk::panel::send_console_command("s-1", "say Restarting in 5 minutes")?;
/// # Ok::<(), cap_plugin_sdk::types::CapabilityError>(())
/// ```
pub fn send_console_command(server_id: &str, command: &str) -> Result<(), CapabilityError> {
    host::send_console_command(server_id, command)
}
