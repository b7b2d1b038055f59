//! Timers (API 0.2.0, feature `api-0-2`; capability `timers = true`):
//! wake-ups the host keeps for the plugin in its database, across
//! restarts.
//!
//! When a timer is due, the host calls the plugin's own
//! [`Hooks::after`](crate::hooks::Hooks::after) (the manifest must list
//! `schedule.tick` in `[hooks] after`) with an event of kind
//! [`EventKind::ScheduleTick`](crate::hooks::EventKind::ScheduleTick) whose
//! payload is `Payload::Schedule` with the timer's key as `name`, and whose
//! `occurred_at_ms` is the time the timer was set for. A timer fires once:
//! set it again for the next time. It is delivered once even with several
//! Panels, and late (once) when no Panel ran at its time or the plugin
//! could not take it (inactive, quarantined): compare `occurred_at_ms` with
//! the clock (the `clock` capability gives the real one) to tell. What
//! `after` returns is recorded as the firing's outcome for
//! administrators; a tick is not retried.
//!
//! ```no_run
//! use cap_plugin_sdk::timers;
//!
//! // Fire in one minute, as `after` sees it: `Payload::Schedule` named
//! // "reminder/srv-1".
//! let now_ms = 1_700_000_000_000;
//! timers::set("reminder/srv-1", now_ms + 60_000)?;
//! for timer in timers::list("reminder/", 100)? {
//!     println!("{} at {}", timer.key, timer.at_ms);
//! }
//! timers::cancel("reminder/srv-1")?;
//! # Ok::<(), cap_plugin_sdk::types::CapabilityError>(())
//! ```

use crate::bindings::ctrl_alt_play::plugin::timers as host;
use crate::types::CapabilityError;

pub use host::Timer;

/// Arms timer `key` (1-256 bytes, no control characters) for `at_ms`
/// (milliseconds since the Unix epoch; a time past fires at once),
/// replacing the time it had.
///
/// ```no_run
/// cap_plugin_sdk::timers::set("daily", 1_700_000_000_000)?;
/// # Ok::<(), cap_plugin_sdk::types::CapabilityError>(())
/// ```
pub fn set(key: &str, at_ms: u64) -> Result<(), CapabilityError> {
    host::set(key, at_ms)
}

/// Disarms timer `key`; returns whether it was armed.
///
/// ```no_run
/// let was_armed = cap_plugin_sdk::timers::cancel("daily")?;
/// # Ok::<(), cap_plugin_sdk::types::CapabilityError>(())
/// ```
pub fn cancel(key: &str) -> Result<bool, CapabilityError> {
    host::cancel(key)
}

/// The armed timers whose keys start with `prefix`, in key order, at most
/// `limit` (the host returns at most 1000).
///
/// ```no_run
/// let armed = cap_plugin_sdk::timers::list("cron/", 1000)?;
/// # Ok::<(), cap_plugin_sdk::types::CapabilityError>(())
/// ```
pub fn list(prefix: &str, limit: u32) -> Result<Vec<Timer>, CapabilityError> {
    host::list(prefix, limit)
}
