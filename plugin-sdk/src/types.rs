//! Types shared by every interface of the plugin API.
//!
//! ```
//! use cap_plugin_sdk::types::{KeyValue, PluginError, lookup};
//!
//! let env = vec![KeyValue::new("SERVER_JARFILE", "server.jar")];
//! assert_eq!(lookup(&env, "SERVER_JARFILE"), Some("server.jar"));
//!
//! let error = PluginError::new("invalid-variable", "SERVER_JARFILE must end in .jar");
//! assert_eq!(error.code, "invalid-variable");
//! ```

pub use crate::bindings::ctrl_alt_play::plugin::types::{CapabilityError, KeyValue, PluginError};

impl KeyValue {
    /// Creates a pair.
    ///
    /// ```
    /// use cap_plugin_sdk::types::KeyValue;
    ///
    /// let pair = KeyValue::new("EULA", "true");
    /// assert_eq!((pair.key.as_str(), pair.value.as_str()), ("EULA", "true"));
    /// ```
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            value: value.into(),
        }
    }
}

impl<K: Into<String>, V: Into<String>> From<(K, V)> for KeyValue {
    /// ```
    /// use cap_plugin_sdk::types::KeyValue;
    ///
    /// let pair: KeyValue = ("motd", "Welcome").into();
    /// assert_eq!(pair, KeyValue::new("motd", "Welcome"));
    /// ```
    fn from((key, value): (K, V)) -> Self {
        Self::new(key, value)
    }
}

/// The value of the first pair whose key is `key`.
///
/// ```
/// use cap_plugin_sdk::types::{KeyValue, lookup};
///
/// let vars = [KeyValue::new("A", "1"), KeyValue::new("B", "2")];
/// assert_eq!(lookup(&vars, "B"), Some("2"));
/// assert_eq!(lookup(&vars, "C"), None);
/// ```
pub fn lookup<'a>(pairs: &'a [KeyValue], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|pair| pair.key == key)
        .map(|pair| pair.value.as_str())
}

/// Builds a list of pairs from anything that yields `(key, value)` tuples.
///
/// ```
/// use cap_plugin_sdk::types::{KeyValue, pairs};
///
/// let env = pairs([("A", "1"), ("B", "2")]);
/// assert_eq!(env, vec![KeyValue::new("A", "1"), KeyValue::new("B", "2")]);
/// ```
pub fn pairs<K, V>(items: impl IntoIterator<Item = (K, V)>) -> Vec<KeyValue>
where
    K: Into<String>,
    V: Into<String>,
{
    items.into_iter().map(KeyValue::from).collect()
}

impl PluginError {
    /// Creates an error from a short stable `code` (`invalid-variable`,
    /// `upstream-down`, ...) and a message for people.
    ///
    /// ```
    /// use cap_plugin_sdk::types::PluginError;
    ///
    /// let error = PluginError::new("upstream-down", "Discord answered 502");
    /// assert_eq!(error.message, "Discord answered 502");
    /// ```
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
        }
    }
}

impl CapabilityError {
    /// A short stable identifier of the variant, used as a
    /// [`PluginError::code`] when the error is passed on.
    ///
    /// ```
    /// use cap_plugin_sdk::types::CapabilityError;
    ///
    /// assert_eq!(CapabilityError::Denied("kv".into()).code(), "capability-denied");
    /// ```
    pub fn code(&self) -> &'static str {
        match self {
            Self::Denied(_) => "capability-denied",
            Self::NotFound(_) => "not-found",
            Self::Invalid(_) => "invalid-argument",
            Self::LimitExceeded(_) => "limit-exceeded",
            Self::Unavailable(_) => "unavailable",
        }
    }

    /// The explanation the host gave.
    ///
    /// ```
    /// use cap_plugin_sdk::types::CapabilityError;
    ///
    /// let error = CapabilityError::NotFound("no server s-1".into());
    /// assert_eq!(error.detail(), "no server s-1");
    /// ```
    pub fn detail(&self) -> &str {
        match self {
            Self::Denied(detail)
            | Self::NotFound(detail)
            | Self::Invalid(detail)
            | Self::LimitExceeded(detail)
            | Self::Unavailable(detail) => detail,
        }
    }
}

impl From<CapabilityError> for PluginError {
    /// ```
    /// use cap_plugin_sdk::types::{CapabilityError, PluginError};
    ///
    /// let error = PluginError::from(CapabilityError::Unavailable("kv is down".into()));
    /// assert_eq!(error, PluginError::new("unavailable", "kv is down"));
    /// ```
    fn from(error: CapabilityError) -> Self {
        Self::new(error.code(), error.detail())
    }
}
