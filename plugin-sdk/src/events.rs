//! Publishing to the Panel's event bus (capability
//! `events = { publish = ["topic", ...] }`).
//!
//! Topics are free-form dotted names chosen by the plugin; each must be
//! listed in the manifest. Payloads are JSON documents.
//!
//! ```no_run
//! use cap_plugin_sdk::events;
//!
//! events::publish_json("quota.exceeded", &serde_json::json!({
//!     "owner": "alice",
//!     "requested-mb": 9216,
//! }))?;
//! # Ok::<(), cap_plugin_sdk::Error>(())
//! ```

use serde::Serialize;

use crate::Error;
use crate::bindings::ctrl_alt_play::plugin::events as host;
use crate::types::CapabilityError;

/// Publishes a JSON document (given as text) on `topic`.
///
/// ```no_run
/// cap_plugin_sdk::events::publish("backup.done", r#"{"server":"s-1"}"#)?;
/// # Ok::<(), cap_plugin_sdk::types::CapabilityError>(())
/// ```
pub fn publish(topic: &str, payload: &str) -> Result<(), CapabilityError> {
    host::publish(topic, payload)
}

/// Serialises `payload` as JSON and publishes it on `topic`.
///
/// ```no_run
/// #[derive(serde::Serialize)]
/// struct Done<'a> { server: &'a str }
///
/// cap_plugin_sdk::events::publish_json("backup.done", &Done { server: "s-1" })?;
/// # Ok::<(), cap_plugin_sdk::Error>(())
/// ```
pub fn publish_json<T: Serialize + ?Sized>(topic: &str, payload: &T) -> Result<(), Error> {
    host::publish(topic, &serde_json::to_string(payload)?)?;
    Ok(())
}
