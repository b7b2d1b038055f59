//! Setting a user's password on their behalf: an administrator's initial
//! password or reset, and the password a user chooses through a one-time
//! link ([`super::links`]). The user's own change of their password is
//! [`crate::http`]'s `PUT /account/password`, which checks the current one.
//!
//! The core still checks and stores no password: the password goes to the
//! auth-provider plugin that owns the user's identity, whose policy decides
//! whether it is good enough. Which provider:
//!
//! 1. the first identity linked to the user whose provider takes
//!    passwords; otherwise
//! 2. the bundled `local-password` provider, which creates an account named
//!    after the user; its identity (the provider names its subject only
//!    when asked to authenticate, as at bootstrap) is then linked to the
//!    user.
//!
//! Every session of the user ends with the new password, and the event
//! (`user.password-set`) says who set it and how.
//!
//! Deleting a user reaches their provider too ([`revoke_password`]): the
//! provider's account gets an unguessable secret no one holds, through the
//! same `set-password` call every password provider has (API 0.1.0 and
//! 0.2.0 alike), so the deleted user's password opens nothing any more —
//! not an account auto-registered again, nor a new account given the same
//! name before its own password is set.

use cap_runtime::Plugin;
use cap_runtime::api::{self, AuthError, Credentials, PasswordCredentials};

use super::IdentityService;
use super::providers::LOCAL_PASSWORD;
use super::users::{self, IdentityLink, SetBy, User};
use crate::db::{Actor, DbError};

/// Why a password was not set.
#[derive(Debug, thiserror::Error)]
pub enum SetPasswordError {
    /// No provider that takes passwords is installed.
    #[error("no sign-in provider that takes passwords is installed")]
    NoProvider,
    /// The provider refused the password: one message per broken rule.
    #[error("the password breaks the provider's policy: {}", .0.join("; "))]
    Policy(Vec<String>),
    /// The provider is unavailable, failed, or refused for another reason.
    #[error("the sign-in provider could not store the password: {0}")]
    Unavailable(String),
    /// The identity the provider named is another user's.
    #[error("the sign-in provider's account {0:?} belongs to another user")]
    IdentityTaken(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// The first identity linked to `user_id` whose provider takes passwords,
/// with that provider; `None` when the user signs in without a password.
///
/// # Errors
///
/// Database errors.
pub async fn password_identity(
    identity: &IdentityService,
    user_id: &str,
) -> Result<Option<(Plugin, IdentityLink)>, DbError> {
    for link in users::identities_of(identity.db(), user_id).await? {
        let Some(plugin) = identity.providers().get(&link.provider_id) else {
            continue;
        };
        if let Ok(info) = plugin.describe_auth().await
            && matches!(info.kind, api::ProviderKind::Password)
        {
            return Ok(Some((plugin, link)));
        }
    }
    Ok(None)
}

/// The length of the secret [`revoke_password`] leaves with a provider:
/// 256 hexadecimal digits (1024 bits), within every policy's bounds.
const REVOKED_SECRET_DIGITS: usize = 256;

/// Takes the password of user `user_id` (named `username`) away at their
/// password provider, if they have one: the provider's account gets a
/// random secret nobody holds. Returns whether a provider was asked.
///
/// # Errors
///
/// [`SetPasswordError`]: the provider refused or failed (the user keeps
/// their password), the database failed.
pub async fn revoke_password(
    identity: &IdentityService,
    user_id: &str,
    username: &str,
) -> Result<bool, SetPasswordError> {
    let Some((plugin, _)) = password_identity(identity, user_id).await? else {
        return Ok(false);
    };
    let secret: String = (0..REVOKED_SECRET_DIGITS / 64)
        .map(|_| hex::encode(rand::random::<[u8; 32]>()))
        .collect();
    match plugin.set_password(username, &secret).await {
        Ok(Ok(())) => Ok(true),
        Ok(Err(AuthError::PolicyViolation(reasons))) => Err(SetPasswordError::Policy(reasons)),
        Ok(Err(error)) => Err(SetPasswordError::Unavailable(error.to_string())),
        Err(error) => Err(SetPasswordError::Unavailable(error.to_string())),
    }
}

/// Sets `password` for `user` through their password provider (see the
/// module docs), sets or clears the change required at the next sign-in,
/// ends the user's sessions and records how (`by`, by `actor`). Returns
/// how many sessions ended.
///
/// # Errors
///
/// [`SetPasswordError`]; on any error nothing changed in the Panel (a
/// provider that stored the password before a later step failed keeps it,
/// which the user's next set overwrites).
pub async fn set_password(
    identity: &IdentityService,
    user: &User,
    password: &str,
    by: &SetBy,
    must_change: bool,
    actor: &Actor,
) -> Result<u64, SetPasswordError> {
    let db = identity.db();
    let (plugin, link) = match password_identity(identity, &user.id).await? {
        Some((plugin, link)) => (plugin, Some(link)),
        None => (
            identity
                .providers()
                .get(LOCAL_PASSWORD)
                .ok_or(SetPasswordError::NoProvider)?,
            None,
        ),
    };
    let provider = plugin.id().to_owned();
    match plugin.set_password(&user.username, password).await {
        Ok(Ok(())) => {}
        Ok(Err(AuthError::PolicyViolation(reasons))) => {
            return Err(SetPasswordError::Policy(reasons));
        }
        Ok(Err(AuthError::InvalidRequest(reason))) => {
            return Err(SetPasswordError::Policy(vec![reason]));
        }
        Ok(Err(error)) => return Err(SetPasswordError::Unavailable(error.to_string())),
        Err(error) => return Err(SetPasswordError::Unavailable(error.to_string())),
    }
    let new_identity = match link {
        Some(_) => None,
        None => {
            let turn = identity.account_turn(&provider, &user.username).await;
            let named = plugin
                .authenticate(&Credentials::Password(PasswordCredentials {
                    username: user.username.clone(),
                    password: password.to_owned(),
                    second_factor: None,
                }))
                .await;
            drop(turn);
            let subject = match named {
                Ok(Ok(found)) => found.subject,
                Ok(Err(error)) => return Err(SetPasswordError::Unavailable(error.to_string())),
                Err(error) => return Err(SetPasswordError::Unavailable(error.to_string())),
            };
            let link = IdentityLink {
                provider_id: provider.clone(),
                subject,
            };
            if let Some(owner) = users::find_user_by_identity(db, &provider, &link.subject).await?
                && owner.id != user.id
            {
                return Err(SetPasswordError::IdentityTaken(user.username.clone()));
            }
            Some(link)
        }
    };
    Ok(users::password_set(
        db,
        &user.id,
        &provider,
        new_identity.as_ref(),
        by,
        must_change,
        actor,
    )
    .await?)
}
