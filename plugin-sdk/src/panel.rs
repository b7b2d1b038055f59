//! A scoped view of the Panel API (capability `panel = ["scope", ...]`).
//!
//! | Function | Scope |
//! | --- | --- |
//! | [`list_servers`], [`get_server`] | `servers.read` |
//! | [`send_console_command`] | `console.send` |
//! | `power_action` (API 0.2.0, feature `api-0-2`) | `power` |
//! | `create_backup` (API 0.2.0, feature `api-0-2`) | `backups.create` |
//! | `suspend_server`, `unsuspend_server` (API 0.2.0, feature `api-0-2`) | `servers.suspend` |
//!
//! The plugin acts as itself (the audit log names `plugin:<id>`), through
//! the checks and before-hooks a user's request passes; a refusal is
//! [`CapabilityError::Invalid`] with the reason.
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

#[cfg(feature = "api-0-2")]
pub use host::PowerSignal;
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

/// Queues a power action for server `server_id` (scope `power`, API
/// 0.2.0), as `POST /servers/{id}/power` does.
///
/// ```no_run
/// use cap_plugin_sdk::panel::{self, PowerSignal};
///
/// panel::power_action("s-1", PowerSignal::Restart)?;
/// # Ok::<(), cap_plugin_sdk::types::CapabilityError>(())
/// ```
#[cfg(feature = "api-0-2")]
pub fn power_action(server_id: &str, action: PowerSignal) -> Result<(), CapabilityError> {
    host::power_action(server_id, action)
}

/// Starts a backup of server `server_id` named `name` (the date and time
/// when `None`; at most 191 characters), as `POST /servers/{id}/backups`
/// does (scope `backups.create`, API 0.2.0); returns the backup's id. The
/// backup is pending until the server's Agent reports.
///
/// ```no_run
/// let id = cap_plugin_sdk::panel::create_backup("s-1", Some("nightly"))?;
/// # Ok::<(), cap_plugin_sdk::types::CapabilityError>(())
/// ```
#[cfg(feature = "api-0-2")]
pub fn create_backup(server_id: &str, name: Option<&str>) -> Result<String, CapabilityError> {
    host::create_backup(server_id, name)
}

/// Suspends server `server_id` for `reason` (API 0.2.0, feature `api-0-2`;
/// scope `servers.suspend`): the Panel stops it, refuses to start,
/// reinstall or send console commands to it, and makes its files
/// read-only, until [`unsuspend_server`]. `reason` is one line of at most
/// 512 characters; its owner sees it. [`CapabilityError::Invalid`] when a
/// `server.suspend` before-hook refuses (its reason in the message), the
/// server is suspended already or being deleted.
///
/// ```no_run
/// cap_plugin_sdk::panel::suspend_server("srv_1", "invoice 2041 is unpaid")?;
/// # Ok::<(), cap_plugin_sdk::types::CapabilityError>(())
/// ```
#[cfg(feature = "api-0-2")]
pub fn suspend_server(server_id: &str, reason: &str) -> Result<(), CapabilityError> {
    host::suspend_server(server_id, reason)
}

/// Lifts server `server_id`'s suspension (API 0.2.0, feature `api-0-2`;
/// scope `servers.suspend`); [`CapabilityError::Invalid`] when it is not
/// suspended or a `server.unsuspend` before-hook refuses.
///
/// ```no_run
/// cap_plugin_sdk::panel::unsuspend_server("srv_1")?;
/// # Ok::<(), cap_plugin_sdk::types::CapabilityError>(())
/// ```
#[cfg(feature = "api-0-2")]
pub fn unsuspend_server(server_id: &str) -> Result<(), CapabilityError> {
    host::unsuspend_server(server_id)
}
