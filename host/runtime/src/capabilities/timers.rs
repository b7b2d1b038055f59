//! `timers` (API 0.2.0): wake-ups a plugin asks the host to keep.
//!
//! A plugin arms a timer under a key of its own (`set`), disarms it
//! (`cancel`) and lists what is armed (`list`). The capability checks the
//! grant and the arguments; the embedder's [`TimerStore`] keeps the timers
//! and delivers them: the Panel stores them in its database and calls the
//! plugin's own `hooks.after` with a `schedule-tick` event when one is due
//! (see the Panel's `timers` module). Keys are scoped by plugin like the
//! `kv` capability's, so a plugin never sees or disarms another's timers.
//!
//! What the store is told has been checked here: a key of 1 to
//! [`MAX_KEY_BYTES`] bytes without control characters, a time no later
//! than [`MAX_AT_MS`], a list limit of at most [`MAX_LIST`].

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use super::{BoxFuture, CapabilityContext, ServiceError, until_deadline};
use crate::api::{CapabilityError, Timer};
use crate::plugin::PluginState;

/// Longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 256;
/// Most timers one `list` returns.
pub const MAX_LIST: u32 = 1000;
/// The latest time a timer may be set for: the last millisecond of the
/// year 9999.
pub const MAX_AT_MS: u64 = 253_402_300_799_999;
/// How many timers one plugin may keep armed in [`MemoryTimers`] by
/// default.
pub const DEFAULT_MAX_TIMERS_PER_PLUGIN: usize = 10_000;

/// Storage behind the `timers` capability. Implementations scope every key
/// by `plugin`; the capability has already checked the arguments.
pub trait TimerStore: Send + Sync {
    /// Arms `key` for `at_ms`, replacing the time it had. Arming a new key
    /// counts against the plugin's quota.
    fn set<'a>(
        &'a self,
        plugin: &'a str,
        key: &'a str,
        at_ms: u64,
    ) -> BoxFuture<'a, Result<(), ServiceError>>;
    /// Disarms `key`, returning whether it was armed.
    fn cancel<'a>(
        &'a self,
        plugin: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<bool, ServiceError>>;
    /// The armed timers whose keys start with `prefix`, by key, at most
    /// `limit`.
    fn list<'a>(
        &'a self,
        plugin: &'a str,
        prefix: &'a str,
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<Timer>, ServiceError>>;
}

/// An in-memory [`TimerStore`] that keeps timers and never fires them: for
/// tools and tests (the Agent has no use for timers).
#[derive(Debug)]
pub struct MemoryTimers {
    timers: Mutex<BTreeMap<(String, String), u64>>,
    max_per_plugin: usize,
}

impl Default for MemoryTimers {
    fn default() -> Self {
        Self::with_quota(DEFAULT_MAX_TIMERS_PER_PLUGIN)
    }
}

impl MemoryTimers {
    /// A store allowing `max_per_plugin` armed timers per plugin.
    pub fn with_quota(max_per_plugin: usize) -> Self {
        Self {
            timers: Mutex::default(),
            max_per_plugin,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, String), u64>> {
        self.timers.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl TimerStore for MemoryTimers {
    fn set<'a>(
        &'a self,
        plugin: &'a str,
        key: &'a str,
        at_ms: u64,
    ) -> BoxFuture<'a, Result<(), ServiceError>> {
        Box::pin(async move {
            let mut timers = self.lock();
            let k = (plugin.to_owned(), key.to_owned());
            if !timers.contains_key(&k)
                && timers.keys().filter(|(p, _)| p == plugin).count() >= self.max_per_plugin
            {
                return Err(ServiceError::LimitExceeded(format!(
                    "at most {} armed timers per plugin",
                    self.max_per_plugin
                )));
            }
            timers.insert(k, at_ms);
            Ok(())
        })
    }

    fn cancel<'a>(
        &'a self,
        plugin: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<bool, ServiceError>> {
        Box::pin(async move {
            Ok(self
                .lock()
                .remove(&(plugin.to_owned(), key.to_owned()))
                .is_some())
        })
    }

    fn list<'a>(
        &'a self,
        plugin: &'a str,
        prefix: &'a str,
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<Timer>, ServiceError>> {
        Box::pin(async move {
            let timers = self.lock();
            Ok(timers
                .range((plugin.to_owned(), prefix.to_owned())..)
                .take_while(|((p, k), _)| p == plugin && k.starts_with(prefix))
                .take(limit as usize)
                .map(|((_, key), at_ms)| Timer {
                    key: key.clone(),
                    at_ms: *at_ms,
                })
                .collect())
        })
    }
}

/// Refuses a key the store must never see.
pub fn check_key(key: &str) -> Result<(), CapabilityError> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(CapabilityError::Invalid(format!(
            "timer keys must be 1-{MAX_KEY_BYTES} bytes"
        )));
    }
    if key.chars().any(char::is_control) {
        return Err(CapabilityError::Invalid(
            "timer keys may not contain control characters".into(),
        ));
    }
    Ok(())
}

fn granted(caps: &CapabilityContext) -> Result<(), CapabilityError> {
    if caps.grants.timers {
        Ok(())
    } else {
        Err(caps.deny("timers"))
    }
}

/// `timers.set` for the plugin of `caps`, waiting at most until `deadline`.
pub(crate) async fn set_with(
    caps: &CapabilityContext,
    deadline: Instant,
    key: String,
    at_ms: u64,
) -> Result<(), CapabilityError> {
    granted(caps)?;
    check_key(&key)?;
    if at_ms > MAX_AT_MS {
        return Err(CapabilityError::Invalid(format!(
            "a timer is set for {MAX_AT_MS} (the end of the year 9999) at the latest, not {at_ms}"
        )));
    }
    Ok(until_deadline(
        deadline,
        caps.services.timers.set(&caps.plugin_id, &key, at_ms),
    )
    .await?)
}

/// `timers.cancel` for the plugin of `caps`.
pub(crate) async fn cancel_with(
    caps: &CapabilityContext,
    deadline: Instant,
    key: String,
) -> Result<bool, CapabilityError> {
    granted(caps)?;
    check_key(&key)?;
    Ok(until_deadline(deadline, caps.services.timers.cancel(&caps.plugin_id, &key)).await?)
}

/// `timers.list` for the plugin of `caps`, at most [`MAX_LIST`] timers.
pub(crate) async fn list_with(
    caps: &CapabilityContext,
    deadline: Instant,
    prefix: String,
    limit: u32,
) -> Result<Vec<Timer>, CapabilityError> {
    granted(caps)?;
    if prefix.len() > MAX_KEY_BYTES {
        return Err(CapabilityError::Invalid(format!(
            "prefixes are at most {MAX_KEY_BYTES} bytes"
        )));
    }
    let limit = limit.min(MAX_LIST);
    Ok(until_deadline(
        deadline,
        caps.services.timers.list(&caps.plugin_id, &prefix, limit),
    )
    .await?)
}

/// `timers.set`.
pub(crate) async fn set(
    state: &mut PluginState,
    key: String,
    at_ms: u64,
) -> Result<(), CapabilityError> {
    set_with(&state.caps, state.deadline, key, at_ms).await
}

/// `timers.cancel`.
pub(crate) async fn cancel(state: &mut PluginState, key: String) -> Result<bool, CapabilityError> {
    cancel_with(&state.caps, state.deadline, key).await
}

/// `timers.list`.
pub(crate) async fn list(
    state: &mut PluginState,
    prefix: String,
    limit: u32,
) -> Result<Vec<Timer>, CapabilityError> {
    list_with(&state.caps, state.deadline, prefix, limit).await
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::capabilities::{Grants, HostServices};

    fn context(timers: bool, store: Arc<MemoryTimers>) -> CapabilityContext {
        let services = HostServices {
            timers: store,
            ..HostServices::in_memory()
        };
        let grants = Grants {
            timers,
            kv: true,
            ..Grants::none()
        };
        CapabilityContext::new("scheduler", grants, services)
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    #[tokio::test]
    async fn without_the_grant_every_call_is_denied_and_nothing_is_stored() {
        let store = Arc::new(MemoryTimers::default());
        let caps = context(false, Arc::clone(&store));
        let denied = |result: Result<(), CapabilityError>| match result {
            Err(CapabilityError::Denied(what)) => assert!(what.contains("timers"), "{what}"),
            other => panic!("expected a denial, got {other:?}"),
        };
        denied(set_with(&caps, soon(), "a".into(), 1).await);
        denied(cancel_with(&caps, soon(), "a".into()).await.map(|_| ()));
        denied(
            list_with(&caps, soon(), String::new(), 10)
                .await
                .map(|_| ()),
        );
        assert_eq!(store.list("scheduler", "", 10).await, Ok(Vec::new()));
    }

    #[tokio::test]
    async fn with_the_grant_timers_are_armed_listed_replaced_and_cancelled() {
        let store = Arc::new(MemoryTimers::default());
        let caps = context(true, Arc::clone(&store));
        set_with(&caps, soon(), "cron/s1".into(), 2_000)
            .await
            .expect("armed");
        set_with(&caps, soon(), "cron/s2".into(), 3_000)
            .await
            .expect("armed");
        set_with(&caps, soon(), "other".into(), 1_000)
            .await
            .expect("armed");
        // Arming a key again replaces its time.
        set_with(&caps, soon(), "cron/s1".into(), 4_000)
            .await
            .expect("re-armed");
        let listed = list_with(&caps, soon(), "cron/".into(), 10)
            .await
            .expect("listed");
        assert_eq!(
            listed,
            [
                Timer {
                    key: "cron/s1".into(),
                    at_ms: 4_000
                },
                Timer {
                    key: "cron/s2".into(),
                    at_ms: 3_000
                }
            ]
        );
        assert_eq!(cancel_with(&caps, soon(), "cron/s1".into()).await, Ok(true));
        assert_eq!(
            cancel_with(&caps, soon(), "cron/s1".into()).await,
            Ok(false)
        );
        // Another plugin's keys are its own.
        assert_eq!(store.list("another", "", 10).await, Ok(Vec::new()));
    }

    #[tokio::test]
    async fn bad_keys_times_and_prefixes_are_refused_before_the_store_sees_them() {
        let store = Arc::new(MemoryTimers::default());
        let caps = context(true, Arc::clone(&store));
        for key in [String::new(), "x".repeat(MAX_KEY_BYTES + 1), "a\nb".into()] {
            assert!(
                matches!(
                    set_with(&caps, soon(), key.clone(), 1).await,
                    Err(CapabilityError::Invalid(_))
                ),
                "{key:?}"
            );
        }
        assert!(matches!(
            set_with(&caps, soon(), "late".into(), MAX_AT_MS + 1).await,
            Err(CapabilityError::Invalid(_))
        ));
        assert!(matches!(
            list_with(&caps, soon(), "p".repeat(MAX_KEY_BYTES + 1), 1).await,
            Err(CapabilityError::Invalid(_))
        ));
        assert_eq!(store.list("scheduler", "", 10).await, Ok(Vec::new()));
    }

    #[test]
    fn grants_stored_before_timers_read_and_write_back_unchanged() {
        let stored = serde_json::to_value(Grants {
            kv: true,
            ..Grants::none()
        })
        .expect("serialises");
        assert!(stored.get("timers").is_none(), "{stored}");
        let read: Grants = serde_json::from_value(stored.clone()).expect("reads");
        assert!(!read.timers);
        assert_eq!(serde_json::to_value(&read).expect("serialises"), stored);
        let granted = serde_json::to_value(Grants {
            timers: true,
            ..Grants::none()
        })
        .expect("serialises");
        assert_eq!(granted["timers"], true);
    }

    #[tokio::test]
    async fn the_quota_counts_new_keys_only() {
        let store = Arc::new(MemoryTimers::with_quota(1));
        let caps = context(true, Arc::clone(&store));
        set_with(&caps, soon(), "one".into(), 1)
            .await
            .expect("armed");
        set_with(&caps, soon(), "one".into(), 2)
            .await
            .expect("re-arming is not a new timer");
        assert!(matches!(
            set_with(&caps, soon(), "two".into(), 1).await,
            Err(CapabilityError::LimitExceeded(_))
        ));
    }
}
