//! The first administrator.
//!
//! [`bootstrap_admin`] creates the user `admin` (an administrator) with a
//! password account at the `local-password` provider, once: if a user named
//! `admin` exists it does nothing, so restarting the Panel never resets a
//! password. The password is the caller's (from `CAP_ADMIN_PASSWORD`) or a
//! generated one, returned once so `cap up` can print it; it is never
//! stored by the Panel (the provider keeps only its argon2id hash) nor
//! logged.

use base64::Engine as _;
use cap_runtime::CallError;
use cap_runtime::api::{AuthError, Credentials, PasswordCredentials};

use super::providers::{LOCAL_PASSWORD, ProviderRegistry};
use super::users::{self, IdentityLink, NewUser, User};
use crate::db::{Actor, Database, DbError};

/// The first administrator's username.
pub const ADMIN_USERNAME: &str = "admin";

/// What [`bootstrap_admin`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootstrapOutcome {
    /// An `admin` user existed; nothing changed.
    AlreadyExists,
    /// The admin was created.
    Created {
        /// The new user.
        user: User,
        /// The password, when it was generated (print it once); `None`
        /// when the caller supplied it.
        generated_password: Option<String>,
    },
}

/// Why the admin could not be created.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// The `local-password` provider is not installed.
    #[error("the local-password provider is not installed")]
    NoProvider,
    /// The provider refused (for instance a password breaking its policy).
    #[error("the local-password provider refused: {0:?}")]
    Refused(AuthError),
    /// The provider plugin failed.
    #[error("the local-password provider failed")]
    ProviderFailed(#[source] CallError),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// A random password that meets the default policy: 24 characters of
/// URL-safe base64 (letters of both cases, digits, `-`, `_`).
pub fn generate_password() -> String {
    let bytes: [u8; 18] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Creates the first administrator if there is no user `admin` yet; see
/// the module docs.
///
/// # Errors
///
/// [`BootstrapError`].
pub async fn bootstrap_admin(
    db: &Database,
    providers: &ProviderRegistry,
    password: Option<String>,
) -> Result<BootstrapOutcome, BootstrapError> {
    if users::find_user_by_name(db, ADMIN_USERNAME)
        .await?
        .is_some()
    {
        return Ok(BootstrapOutcome::AlreadyExists);
    }
    let plugin = providers
        .get(LOCAL_PASSWORD)
        .ok_or(BootstrapError::NoProvider)?;
    let (password, generated) = match password {
        Some(p) => (p, false),
        None => (generate_password(), true),
    };
    plugin
        .set_password(ADMIN_USERNAME, &password)
        .await
        .map_err(BootstrapError::ProviderFailed)?
        .map_err(BootstrapError::Refused)?;
    // The provider names its subject only when asked to authenticate.
    let identity = plugin
        .authenticate(&Credentials::Password(PasswordCredentials {
            username: ADMIN_USERNAME.to_owned(),
            password: password.clone(),
            second_factor: None,
        }))
        .await
        .map_err(BootstrapError::ProviderFailed)?
        .map_err(BootstrapError::Refused)?;
    let new = NewUser {
        username: ADMIN_USERNAME.to_owned(),
        email: None,
        display_name: Some("Administrator".to_owned()),
        admin: true,
    };
    let link = IdentityLink {
        provider_id: LOCAL_PASSWORD.to_owned(),
        subject: identity.subject,
    };
    match users::create_user(db, &new, Some(&link), &Actor::system()).await {
        Ok(user) => Ok(BootstrapOutcome::Created {
            user,
            generated_password: generated.then_some(password),
        }),
        // Another process bootstrapped at the same moment.
        Err(DbError::Conflict { .. }) => Ok(BootstrapOutcome::AlreadyExists),
        Err(e) => Err(e.into()),
    }
}
