//! A key-value store private to the plugin (capability `kv = true`).
//!
//! Keys are strings, values are bytes; [`get_json`] and [`set_json`] store
//! any `serde` type as JSON. The store survives component restarts and
//! plugin upgrades; the host enforces size quotas
//! ([`CapabilityError::LimitExceeded`]).
//!
//! ```no_run
//! use cap_plugin_sdk::kv;
//!
//! # fn main() -> Result<(), cap_plugin_sdk::Error> {
//! kv::set("greeting", b"hello")?;
//! assert_eq!(kv::get("greeting")?.as_deref(), Some(&b"hello"[..]));
//!
//! kv::set_json("counter", &41u32)?;
//! let next = kv::get_json::<u32>("counter")?.unwrap_or(0) + 1;
//! kv::set_json("counter", &next)?;
//! # Ok(())
//! # }
//! ```

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Error;
use crate::bindings::ctrl_alt_play::plugin::kv as host;
use crate::types::CapabilityError;

/// The value stored under `key`, if any.
///
/// ```no_run
/// let token = cap_plugin_sdk::kv::get("token")?;
/// # Ok::<(), cap_plugin_sdk::types::CapabilityError>(())
/// ```
pub fn get(key: &str) -> Result<Option<Vec<u8>>, CapabilityError> {
    host::get(key)
}

/// Stores `value` under `key`, replacing any previous value.
///
/// ```no_run
/// cap_plugin_sdk::kv::set("token", b"abc")?;
/// # Ok::<(), cap_plugin_sdk::types::CapabilityError>(())
/// ```
pub fn set(key: &str, value: &[u8]) -> Result<(), CapabilityError> {
    host::set(key, value)
}

/// Removes `key`; returns whether it existed.
///
/// ```no_run
/// let existed = cap_plugin_sdk::kv::delete("token")?;
/// # Ok::<(), cap_plugin_sdk::types::CapabilityError>(())
/// ```
pub fn delete(key: &str) -> Result<bool, CapabilityError> {
    host::delete(key)
}

/// Replaces the value under `key` with `value` (`None` deletes it) only if
/// the value there now is `expected` (`None`: the key is absent), in one
/// atomic step; returns whether it did (API 0.2.0, feature `api-0-2`).
///
/// Several instances of a plugin may run at once (one per concurrent call,
/// on several Panels): a read followed by [`set`] can lose an update,
/// compare-and-swap cannot. Read, compute, swap, and read again when the
/// swap says `false`:
///
/// ```no_run
/// use cap_plugin_sdk::kv;
///
/// # fn main() -> Result<(), cap_plugin_sdk::types::CapabilityError> {
/// loop {
///     let now = kv::get("visits")?;
///     let count = now.as_deref().map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])));
///     let next = (count + 1).to_le_bytes();
///     if kv::compare_and_swap("visits", now.as_deref(), Some(&next))? {
///         break;
///     }
/// }
/// # Ok(())
/// # }
/// ```
#[cfg(feature = "api-0-2")]
pub fn compare_and_swap(
    key: &str,
    expected: Option<&[u8]>,
    value: Option<&[u8]>,
) -> Result<bool, CapabilityError> {
    host::compare_and_swap(key, expected, value)
}

/// Up to `limit` keys starting with `prefix`, in byte order.
///
/// When exactly `limit` keys come back there may be more: raise the limit,
/// or use [`list_all_keys`].
///
/// ```no_run
/// let users = cap_plugin_sdk::kv::list_keys("user/", 100)?;
/// # Ok::<(), cap_plugin_sdk::types::CapabilityError>(())
/// ```
pub fn list_keys(prefix: &str, limit: u32) -> Result<Vec<String>, CapabilityError> {
    host::list_keys(prefix, limit)
}

/// Every key starting with `prefix`, in byte order, fetched in pages of
/// `page` keys. The host's list call has no cursor, so each page after the
/// first re-lists from the prefix and skips what was already returned; use
/// it for modest key counts.
///
/// ```no_run
/// let all = cap_plugin_sdk::kv::list_all_keys("owner/", 500)?;
/// # Ok::<(), cap_plugin_sdk::types::CapabilityError>(())
/// ```
pub fn list_all_keys(prefix: &str, page: u32) -> Result<Vec<String>, CapabilityError> {
    let page = page.max(1);
    let mut limit = page;
    loop {
        let keys = host::list_keys(prefix, limit)?;
        if u32::try_from(keys.len()).map_or(true, |n| n < limit) {
            return Ok(keys);
        }
        limit = limit.saturating_add(page);
        if limit == u32::MAX {
            return host::list_keys(prefix, limit);
        }
    }
}

/// The value under `key` decoded from JSON, if any.
///
/// ```no_run
/// #[derive(serde::Deserialize)]
/// struct Totals { memory_mb: u64 }
///
/// let totals: Option<Totals> = cap_plugin_sdk::kv::get_json("owner/alice")?;
/// # Ok::<(), cap_plugin_sdk::Error>(())
/// ```
pub fn get_json<T: DeserializeOwned>(key: &str) -> Result<Option<T>, Error> {
    match host::get(key)? {
        Some(bytes) => Ok(Some(decode(&bytes)?)),
        None => Ok(None),
    }
}

/// Stores `value` under `key` as JSON.
///
/// ```no_run
/// cap_plugin_sdk::kv::set_json("owner/alice", &serde_json::json!({"memory_mb": 4096}))?;
/// # Ok::<(), cap_plugin_sdk::Error>(())
/// ```
pub fn set_json<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<(), Error> {
    host::set(key, &encode(value)?)?;
    Ok(())
}

/// Decodes a stored JSON value (what [`get_json`] does after the host call).
///
/// ```
/// let n: u32 = cap_plugin_sdk::kv::decode(b"42")?;
/// assert_eq!(n, 42);
/// # Ok::<(), cap_plugin_sdk::Error>(())
/// ```
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    Ok(serde_json::from_slice(bytes)?)
}

/// Encodes a value as JSON for storage (what [`set_json`] does before the
/// host call).
///
/// ```
/// assert_eq!(cap_plugin_sdk::kv::encode(&[1, 2])?, b"[1,2]");
/// # Ok::<(), cap_plugin_sdk::Error>(())
/// ```
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, Error> {
    Ok(serde_json::to_vec(value)?)
}
