//! `kv`: a key-value store scoped to the calling plugin.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::{BoxFuture, ServiceError, until_deadline};
use crate::api::CapabilityError;
use crate::plugin::PluginState;

/// Longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 256;
/// Largest value, in bytes.
pub const MAX_VALUE_BYTES: usize = 1024 * 1024;
/// Most keys returned by one `list-keys`.
pub const MAX_LIST: u32 = 1000;

/// Storage behind the `kv` capability. Implementations scope every key by
/// `plugin`; the capability has already validated sizes.
pub trait KvStore: Send + Sync {
    /// Reads a value.
    fn get<'a>(
        &'a self,
        plugin: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>, ServiceError>>;
    /// Writes a value.
    fn set<'a>(
        &'a self,
        plugin: &'a str,
        key: &'a str,
        value: Vec<u8>,
    ) -> BoxFuture<'a, Result<(), ServiceError>>;
    /// Deletes a value, returning whether it existed.
    fn delete<'a>(
        &'a self,
        plugin: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<bool, ServiceError>>;
    /// Lists keys with `prefix`, sorted, at most `limit`.
    fn list_keys<'a>(
        &'a self,
        plugin: &'a str,
        prefix: &'a str,
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<String>, ServiceError>>;
    /// Replaces the value of `key` with `value` (`None`: deletes it) only
    /// if the value now is `expected` (`None`: absent), atomically;
    /// returns whether it did. Creating a key counts against the quota.
    fn compare_and_swap<'a>(
        &'a self,
        plugin: &'a str,
        key: &'a str,
        expected: Option<Vec<u8>>,
        value: Option<Vec<u8>>,
    ) -> BoxFuture<'a, Result<bool, ServiceError>>;
}

/// An in-memory [`KvStore`] with a per-plugin key quota.
#[derive(Debug)]
pub struct MemoryKv {
    data: Mutex<BTreeMap<(String, String), Vec<u8>>>,
    max_keys_per_plugin: usize,
}

impl Default for MemoryKv {
    fn default() -> Self {
        Self::with_quota(10_000)
    }
}

impl MemoryKv {
    /// A store allowing `max_keys_per_plugin` keys per plugin.
    pub fn with_quota(max_keys_per_plugin: usize) -> Self {
        Self {
            data: Mutex::default(),
            max_keys_per_plugin,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, String), Vec<u8>>> {
        self.data.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl KvStore for MemoryKv {
    fn get<'a>(
        &'a self,
        plugin: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>, ServiceError>> {
        Box::pin(async move {
            Ok(self
                .lock()
                .get(&(plugin.to_string(), key.to_string()))
                .cloned())
        })
    }

    fn set<'a>(
        &'a self,
        plugin: &'a str,
        key: &'a str,
        value: Vec<u8>,
    ) -> BoxFuture<'a, Result<(), ServiceError>> {
        Box::pin(async move {
            let mut data = self.lock();
            let k = (plugin.to_string(), key.to_string());
            if !data.contains_key(&k) {
                let count = data.keys().filter(|(p, _)| p == plugin).count();
                if count >= self.max_keys_per_plugin {
                    return Err(ServiceError::LimitExceeded(format!(
                        "at most {} keys per plugin",
                        self.max_keys_per_plugin
                    )));
                }
            }
            data.insert(k, value);
            Ok(())
        })
    }

    fn delete<'a>(
        &'a self,
        plugin: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<bool, ServiceError>> {
        Box::pin(async move {
            Ok(self
                .lock()
                .remove(&(plugin.to_string(), key.to_string()))
                .is_some())
        })
    }

    fn list_keys<'a>(
        &'a self,
        plugin: &'a str,
        prefix: &'a str,
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<String>, ServiceError>> {
        Box::pin(async move {
            let data = self.lock();
            let start = (plugin.to_string(), prefix.to_string());
            Ok(data
                .range(start..)
                .take_while(|((p, k), _)| p == plugin && k.starts_with(prefix))
                .take(limit as usize)
                .map(|((_, k), _)| k.clone())
                .collect())
        })
    }

    fn compare_and_swap<'a>(
        &'a self,
        plugin: &'a str,
        key: &'a str,
        expected: Option<Vec<u8>>,
        value: Option<Vec<u8>>,
    ) -> BoxFuture<'a, Result<bool, ServiceError>> {
        Box::pin(async move {
            let mut data = self.lock();
            let k = (plugin.to_string(), key.to_string());
            if data.get(&k) != expected.as_ref() {
                return Ok(false);
            }
            match value {
                None => {
                    data.remove(&k);
                }
                Some(value) => {
                    if expected.is_none() {
                        let count = data.keys().filter(|(p, _)| p == plugin).count();
                        if count >= self.max_keys_per_plugin {
                            return Err(ServiceError::LimitExceeded(format!(
                                "at most {} keys per plugin",
                                self.max_keys_per_plugin
                            )));
                        }
                    }
                    data.insert(k, value);
                }
            }
            Ok(true)
        })
    }
}

fn check_value(value: &[u8]) -> Result<(), CapabilityError> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(CapabilityError::LimitExceeded(format!(
            "values are at most {MAX_VALUE_BYTES} bytes"
        )));
    }
    Ok(())
}

fn check_key(key: &str) -> Result<(), CapabilityError> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(CapabilityError::Invalid(format!(
            "keys must be 1-{MAX_KEY_BYTES} bytes"
        )));
    }
    if key.chars().any(char::is_control) {
        return Err(CapabilityError::Invalid(
            "keys may not contain control characters".into(),
        ));
    }
    Ok(())
}

/// `kv.get`.
pub(crate) async fn get(
    state: &mut PluginState,
    key: String,
) -> Result<Option<Vec<u8>>, CapabilityError> {
    if !state.caps.grants.kv {
        return Err(state.caps.deny("kv"));
    }
    check_key(&key)?;
    Ok(until_deadline(
        state.deadline,
        state.caps.services.kv.get(&state.caps.plugin_id, &key),
    )
    .await?)
}

/// `kv.set`.
pub(crate) async fn set(
    state: &mut PluginState,
    key: String,
    value: Vec<u8>,
) -> Result<(), CapabilityError> {
    if !state.caps.grants.kv {
        return Err(state.caps.deny("kv"));
    }
    check_key(&key)?;
    check_value(&value)?;
    Ok(until_deadline(
        state.deadline,
        state
            .caps
            .services
            .kv
            .set(&state.caps.plugin_id, &key, value),
    )
    .await?)
}

/// `kv.delete`.
pub(crate) async fn delete(state: &mut PluginState, key: String) -> Result<bool, CapabilityError> {
    if !state.caps.grants.kv {
        return Err(state.caps.deny("kv"));
    }
    check_key(&key)?;
    Ok(until_deadline(
        state.deadline,
        state.caps.services.kv.delete(&state.caps.plugin_id, &key),
    )
    .await?)
}

/// `kv.compare-and-swap` (0.2.0).
pub(crate) async fn compare_and_swap(
    state: &mut PluginState,
    key: String,
    expected: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
) -> Result<bool, CapabilityError> {
    if !state.caps.grants.kv {
        return Err(state.caps.deny("kv"));
    }
    check_key(&key)?;
    if let Some(value) = &value {
        check_value(value)?;
    }
    Ok(until_deadline(
        state.deadline,
        state
            .caps
            .services
            .kv
            .compare_and_swap(&state.caps.plugin_id, &key, expected, value),
    )
    .await?)
}

/// `kv.list-keys`, at most [`MAX_LIST`] keys.
pub(crate) async fn list_keys(
    state: &mut PluginState,
    prefix: String,
    limit: u32,
) -> Result<Vec<String>, CapabilityError> {
    if !state.caps.grants.kv {
        return Err(state.caps.deny("kv"));
    }
    if prefix.len() > MAX_KEY_BYTES {
        return Err(CapabilityError::Invalid(format!(
            "prefixes are at most {MAX_KEY_BYTES} bytes"
        )));
    }
    let limit = limit.min(MAX_LIST);
    Ok(until_deadline(
        state.deadline,
        state
            .caps
            .services
            .kv
            .list_keys(&state.caps.plugin_id, &prefix, limit),
    )
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn scopes_keys_by_plugin_and_enforces_the_quota() {
        let kv = MemoryKv::with_quota(2);
        kv.set("a", "k1", b"1".to_vec()).await.expect("set");
        kv.set("a", "k2", b"2".to_vec()).await.expect("set");
        kv.set("b", "k1", b"other".to_vec()).await.expect("set");
        assert_eq!(kv.get("a", "k1").await, Ok(Some(b"1".to_vec())));
        assert_eq!(kv.get("b", "k1").await, Ok(Some(b"other".to_vec())));
        assert!(matches!(
            kv.set("a", "k3", vec![]).await,
            Err(ServiceError::LimitExceeded(_))
        ));
        // Overwriting an existing key is not a new key.
        kv.set("a", "k1", b"again".to_vec())
            .await
            .expect("overwrite");
        assert_eq!(
            kv.list_keys("a", "k", 10).await,
            Ok(vec!["k1".to_string(), "k2".to_string()])
        );
        assert_eq!(kv.delete("a", "k1").await, Ok(true));
        assert_eq!(kv.delete("a", "k1").await, Ok(false));
    }

    #[tokio::test]
    async fn compare_and_swap_changes_only_what_it_expected() {
        let kv = MemoryKv::with_quota(1);
        let v = |s: &str| Some(s.as_bytes().to_vec());
        assert_eq!(kv.compare_and_swap("a", "n", None, v("1")).await, Ok(true));
        // Creating what exists, or replacing what changed, is refused.
        assert_eq!(kv.compare_and_swap("a", "n", None, v("x")).await, Ok(false));
        assert_eq!(
            kv.compare_and_swap("a", "n", v("0"), v("x")).await,
            Ok(false)
        );
        assert_eq!(
            kv.compare_and_swap("a", "n", v("1"), v("2")).await,
            Ok(true)
        );
        assert_eq!(kv.get("a", "n").await, Ok(v("2")));
        // A new key counts against the quota; another plugin's does not.
        assert!(matches!(
            kv.compare_and_swap("a", "m", None, v("1")).await,
            Err(ServiceError::LimitExceeded(_))
        ));
        assert_eq!(kv.compare_and_swap("b", "n", v("2"), None).await, Ok(false));
        assert_eq!(kv.compare_and_swap("a", "n", v("2"), None).await, Ok(true));
        assert_eq!(kv.get("a", "n").await, Ok(None));
        assert_eq!(kv.compare_and_swap("a", "n", None, None).await, Ok(true));
    }
}
