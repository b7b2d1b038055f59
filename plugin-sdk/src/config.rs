//! Admin-set configuration (capability `config = true`) and secrets
//! (capability `secrets = ["key", ...]`).
//!
//! Configuration keys are declared in the manifest's `[[config]]` tables,
//! with a type and a default; the host fills in the default when the admin
//! set nothing. Secrets are never shown back in the Panel and can only be
//! read by plugins that list them.
//!
//! ```no_run
//! use cap_plugin_sdk::config;
//!
//! # fn main() -> Result<(), cap_plugin_sdk::Error> {
//! let quota: u64 = config::get_or("max-memory-mb", 8192)?;
//! let webhook = config::require_secret("webhook-url")?;
//! # Ok(())
//! # }
//! ```

use std::fmt::Display;
use std::str::FromStr;

use crate::Error;
use crate::bindings::ctrl_alt_play::plugin::config as host;
use crate::types::CapabilityError;

/// The raw value of a configuration key declared in the manifest.
///
/// ```no_run
/// let raw: Option<String> = cap_plugin_sdk::config::get("min-length")?;
/// # Ok::<(), cap_plugin_sdk::types::CapabilityError>(())
/// ```
pub fn get(key: &str) -> Result<Option<String>, CapabilityError> {
    host::get(key)
}

/// A secret listed in the manifest's `capabilities.secrets`.
///
/// ```no_run
/// let url: Option<String> = cap_plugin_sdk::config::get_secret("webhook-url")?;
/// # Ok::<(), cap_plugin_sdk::types::CapabilityError>(())
/// ```
pub fn get_secret(key: &str) -> Result<Option<String>, CapabilityError> {
    host::get_secret(key)
}

/// A secret that must be set; [`Error::Missing`] when it is not (or is
/// blank).
///
/// ```no_run
/// let url = cap_plugin_sdk::config::require_secret("webhook-url")?;
/// # Ok::<(), cap_plugin_sdk::Error>(())
/// ```
pub fn require_secret(key: &str) -> Result<String, Error> {
    match host::get_secret(key)? {
        Some(value) if !value.trim().is_empty() => Ok(value),
        _ => Err(Error::Missing(key.to_owned())),
    }
}

/// A configuration value parsed with [`FromStr`], if set.
///
/// ```no_run
/// let lockout: Option<u64> = cap_plugin_sdk::config::get_parsed("lockout-secs")?;
/// # Ok::<(), cap_plugin_sdk::Error>(())
/// ```
pub fn get_parsed<T>(key: &str) -> Result<Option<T>, Error>
where
    T: FromStr,
    T::Err: Display,
{
    host::get(key)?
        .map(|raw| parse_value(key, &raw))
        .transpose()
}

/// A configuration value parsed with [`FromStr`], or `default` when unset.
///
/// ```no_run
/// let min_length: usize = cap_plugin_sdk::config::get_or("min-length", 12)?;
/// # Ok::<(), cap_plugin_sdk::Error>(())
/// ```
pub fn get_or<T>(key: &str, default: T) -> Result<T, Error>
where
    T: FromStr,
    T::Err: Display,
{
    Ok(get_parsed(key)?.unwrap_or(default))
}

/// Parses one raw configuration value (surrounding whitespace ignored),
/// naming the key in the error. This is what [`get_parsed`] does with the
/// host's answer.
///
/// ```
/// use cap_plugin_sdk::config::parse_value;
///
/// assert_eq!(parse_value::<u32>("max-failures", " 5 ").unwrap(), 5);
/// let error = parse_value::<u32>("max-failures", "five").unwrap_err();
/// assert_eq!(
///     error.to_string(),
///     "invalid value for `max-failures`: invalid digit found in string"
/// );
/// ```
pub fn parse_value<T>(key: &str, raw: &str) -> Result<T, Error>
where
    T: FromStr,
    T::Err: Display,
{
    raw.trim().parse().map_err(|error: T::Err| Error::Invalid {
        key: key.to_owned(),
        message: error.to_string(),
    })
}
