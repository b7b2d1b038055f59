//! Authentication providers (plugin kind `auth-provider`).
//!
//! The Panel core checks no password itself: it hands the credentials to a
//! provider and maps the verified [`Identity`] to a Panel user. Password
//! providers implement [`AuthProvider::authenticate`] and
//! [`AuthProvider::set_password`]; redirect providers (OAuth2, OpenID
//! Connect) implement [`AuthProvider::begin_login`] and
//! [`AuthProvider::complete_login`]. With API 0.2.0 (feature `api-0-2`),
//! an [`Identity`] also says whether the Panel may create an account for
//! it when none is linked yet (`may_create_account`, `false` from
//! [`Identity::new`]): the provider's own sign-up rule (the `oidc` example
//! plugin sets it from its `allow-signup`, email-domain and group settings).
//!
//! ```
//! use cap_plugin_sdk::prelude::*;
//! use cap_plugin_sdk::auth::*;
//!
//! /// Accepts one hard-wired token (for demos only).
//! #[derive(Default)]
//! struct DemoToken;
//!
//! impl AuthProvider for DemoToken {
//!     fn describe(&self) -> ProviderInfo {
//!         ProviderInfo {
//!             id: "demo-token".into(),
//!             name: "Demo token".into(),
//!             kind: ProviderKind::Token,
//!             description: "Logs in as `demo` with the token `letmein`.".into(),
//!         }
//!     }
//!
//!     fn authenticate(&self, credentials: &Credentials) -> Result<Identity, AuthError> {
//!         match credentials {
//!             Credentials::Token(token) if token == "letmein" => Ok(Identity::new("demo", "demo")),
//!             Credentials::Token(_) => Err(AuthError::InvalidCredentials),
//!             Credentials::Password(_) => Err(AuthError::Unsupported),
//!         }
//!     }
//! }
//!
//! cap_plugin_sdk::export_plugin!(DemoToken: auth_provider);
//! # fn main() {}
//! ```

use crate::bindings::exports::ctrl_alt_play::plugin::auth_provider;
use crate::types::KeyValue;

pub use auth_provider::{
    AuthError, Credentials, Identity, LoginRedirect, PasswordCredentials, ProviderInfo,
    ProviderKind,
};

/// An authentication provider: the `auth-provider` export of the WIT API.
///
/// The redirect methods and [`set_password`](Self::set_password) default to
/// [`AuthError::Unsupported`]. See the [module documentation](self) for an
/// example.
pub trait AuthProvider: Send + Sync {
    /// The provider's identity and kind.
    fn describe(&self) -> ProviderInfo;

    /// Verifies credentials and returns who they belong to.
    fn authenticate(&self, credentials: &Credentials) -> Result<Identity, AuthError>;

    /// Starts a redirect login; `callback_url` is where the identity
    /// provider sends the browser back. Defaults to
    /// [`AuthError::Unsupported`].
    fn begin_login(&self, callback_url: &str) -> Result<LoginRedirect, AuthError> {
        let _ = callback_url;
        Err(AuthError::Unsupported)
    }

    /// Finishes a redirect login from the callback's query parameters and the
    /// `state` returned by [`begin_login`](Self::begin_login). Defaults to
    /// [`AuthError::Unsupported`].
    fn complete_login(&self, state: &str, params: &[KeyValue]) -> Result<Identity, AuthError> {
        let _ = (state, params);
        Err(AuthError::Unsupported)
    }

    /// Creates or replaces the password of `username`. Defaults to
    /// [`AuthError::Unsupported`].
    fn set_password(&self, username: &str, password: &str) -> Result<(), AuthError> {
        let _ = (username, password);
        Err(AuthError::Unsupported)
    }
}

impl Identity {
    /// An identity with a `subject` (stable within the provider) and a
    /// username, and nothing else.
    ///
    /// ```
    /// use cap_plugin_sdk::auth::Identity;
    ///
    /// let identity = Identity::new("42", "alice");
    /// assert!(identity.groups.is_empty() && identity.email.is_none());
    /// ```
    pub fn new(subject: impl Into<String>, username: impl Into<String>) -> Self {
        Self {
            subject: subject.into(),
            username: username.into(),
            email: None,
            display_name: None,
            groups: Vec::new(),
            claims: Vec::new(),
            #[cfg(feature = "api-0-2")]
            may_create_account: false,
        }
    }
}
