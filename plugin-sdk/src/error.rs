use std::fmt;

use crate::http::HttpError;
use crate::types::{CapabilityError, PluginError};

/// The error of the SDK's capability helpers that do more than one host call
/// or decode what the host returned ([`crate::kv::get_json`],
/// [`crate::config::get_parsed`], [`crate::http::RequestBuilder::json`], ...).
///
/// It converts into a [`PluginError`], so hooks and game types can use `?`:
///
/// ```no_run
/// use cap_plugin_sdk::{config, types::PluginError};
///
/// fn max_memory() -> Result<u64, PluginError> {
///     Ok(config::get_or("max-memory-mb", 8192u64)?)
/// }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The host refused or failed a capability call.
    Capability(CapabilityError),
    /// An outbound HTTP request failed.
    Http(HttpError),
    /// A value could not be encoded as, or decoded from, JSON.
    Json(serde_json::Error),
    /// A configuration value, secret or stored value has the wrong form.
    Invalid {
        /// The key whose value was rejected.
        key: String,
        /// Why it was rejected.
        message: String,
    },
    /// A required configuration value or secret is not set.
    Missing(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Capability(error) => {
                write!(
                    f,
                    "host capability error ({}): {}",
                    error.code(),
                    error.detail()
                )
            }
            Self::Http(error) => write!(f, "HTTP request failed: {}", crate::http::describe(error)),
            Self::Json(error) => write!(f, "invalid JSON: {error}"),
            Self::Invalid { key, message } => write!(f, "invalid value for `{key}`: {message}"),
            Self::Missing(key) => write!(f, "`{key}` is not set"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Capability(error) => Some(error),
            Self::Http(error) => Some(error),
            Self::Json(error) => Some(error),
            Self::Invalid { .. } | Self::Missing(_) => None,
        }
    }
}

impl From<CapabilityError> for Error {
    fn from(error: CapabilityError) -> Self {
        Self::Capability(error)
    }
}

impl From<HttpError> for Error {
    fn from(error: HttpError) -> Self {
        Self::Http(error)
    }
}

impl From<serde_json::Error> for Error {
    fn from(error: serde_json::Error) -> Self {
        Self::Json(error)
    }
}

impl From<Error> for PluginError {
    /// Codes: the capability error's [code](CapabilityError::code), `http`,
    /// `invalid-json`, `invalid-config` or `missing-config`.
    ///
    /// ```
    /// use cap_plugin_sdk::{Error, types::PluginError};
    ///
    /// let error = PluginError::from(Error::Missing("webhook-url".into()));
    /// assert_eq!(error.code, "missing-config");
    /// assert_eq!(error.message, "`webhook-url` is not set");
    /// ```
    fn from(error: Error) -> Self {
        let code = match &error {
            Error::Capability(inner) => inner.code(),
            Error::Http(_) => "http",
            Error::Json(_) => "invalid-json",
            Error::Invalid { .. } => "invalid-config",
            Error::Missing(_) => "missing-config",
        };
        PluginError::new(code, error.to_string())
    }
}
