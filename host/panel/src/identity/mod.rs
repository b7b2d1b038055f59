//! Identity and access: users, roles and permissions, logins delegated to
//! auth-provider plugins, sessions, API keys and the first administrator.
//!
//! # Design
//!
//! - **The core checks no password.** A login names a provider (a plugin
//!   in the [`ProviderRegistry`]); the provider verifies the credentials and
//!   returns an identity with a stable subject; the core maps
//!   `(provider, subject)` to a user through the `identities` table. A
//!   verified identity with no user is refused unless the admin turned on
//!   the `auth.auto-register` setting, in which case a user is created and
//!   linked. Plugin failures (trap, timeout, quarantine) are the provider's
//!   fault and never a Panel error: the HTTP layer answers `503`.
//! - **Permissions** are `resource.action` strings ([`permissions`]); users
//!   get them through roles, and administrators hold every known one.
//! - **Sessions** ([`tokens`]): 15-minute HS256 access tokens plus rotating
//!   refresh tokens with reuse detection; API keys for scripts.
//! - **Every change is an event** in the same transaction, as elsewhere in
//!   the Panel ([`users`], [`tokens`]).
//! - **Rate limits** ([`rate_limit`]) on login and refresh, per client
//!   address and per account, in memory.
//!
//! The HTTP routes live in [`crate::http::auth_routes`] and
//! [`crate::http::api_keys`]; the [`crate::http::Authenticator`] that turns
//! a bearer token into a principal is [`crate::http::auth::IdentityAuthenticator`].

use std::sync::Arc;
use std::time::Duration;

use cap_runtime::CallError;
use cap_runtime::api::{AuthError, Credentials, PasswordCredentials};

use crate::db::{Actor, Database, DbError};

pub mod bootstrap;
pub mod permissions;
pub mod providers;
pub mod rate_limit;
pub mod tokens;
pub mod users;

pub use bootstrap::{BootstrapOutcome, bootstrap_admin};
pub use providers::{LOCAL_PASSWORD, ProviderRegistry, load_local_password, panel_services};
pub use rate_limit::{RateLimiter, RateLimits, Rule};
pub use tokens::{Claims, JwtKeys};
pub use users::User;

/// The setting that lets a verified identity with no user create one.
pub const AUTO_REGISTER_SETTING: &str = "auth.auto-register";

/// How identity behaves.
#[derive(Debug, Clone, Default)]
pub struct IdentityOptions {
    /// Limits on the login and refresh endpoints.
    pub rate_limits: RateLimits,
}

/// What the Panel's identity routes and authenticator share. Cheap to
/// clone.
#[derive(Debug, Clone)]
pub struct IdentityService {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    db: Database,
    providers: ProviderRegistry,
    keys: JwtKeys,
    options: IdentityOptions,
    limiter: RateLimiter,
}

/// A successful login or refresh.
#[derive(Debug, Clone)]
pub struct Tokens {
    /// The JWT access token.
    pub access_token: String,
    /// Its lifetime.
    pub expires_in: Duration,
    /// The refresh token (shown once).
    pub refresh_token: String,
    /// Who logged in.
    pub user: User,
}

/// Why a login failed.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// No provider with this id is installed.
    #[error("unknown provider {0:?}")]
    UnknownProvider(String),
    /// The provider refused.
    #[error("the provider refused: {0:?}")]
    Refused(AuthError),
    /// The provider plugin failed (trapped, timed out, quarantined…).
    #[error("the provider failed")]
    ProviderFailed(#[source] CallError),
    /// The identity is verified, but no user is linked to it.
    #[error("no user is linked to this identity")]
    NotLinked,
    /// The user is disabled.
    #[error("the account is disabled")]
    Disabled,
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl IdentityService {
    /// Identity on `db` with `providers`: loads (or creates) the signing
    /// secret.
    ///
    /// # Errors
    ///
    /// Database errors.
    pub async fn start(
        db: Database,
        providers: ProviderRegistry,
        options: IdentityOptions,
    ) -> Result<IdentityService, DbError> {
        let secret = tokens::load_or_create_jwt_secret(&db).await?;
        Ok(IdentityService {
            inner: Arc::new(Inner {
                db,
                providers,
                keys: JwtKeys::new(&secret),
                options,
                limiter: RateLimiter::default(),
            }),
        })
    }

    /// The database.
    pub fn db(&self) -> &Database {
        &self.inner.db
    }

    /// The auth providers.
    pub fn providers(&self) -> &ProviderRegistry {
        &self.inner.providers
    }

    /// The access-token keys.
    pub fn keys(&self) -> &JwtKeys {
        &self.inner.keys
    }

    /// The options.
    pub fn options(&self) -> &IdentityOptions {
        &self.inner.options
    }

    /// The rate limiter.
    pub fn limiter(&self) -> &RateLimiter {
        &self.inner.limiter
    }

    /// Logs in through `provider` with a username and password.
    ///
    /// # Errors
    ///
    /// [`LoginError`].
    pub async fn login_with_password(
        &self,
        provider: &str,
        username: &str,
        password: &str,
        second_factor: Option<&str>,
        actor: &Actor,
    ) -> Result<Tokens, LoginError> {
        let plugin = self
            .providers()
            .get(provider)
            .ok_or_else(|| LoginError::UnknownProvider(provider.to_owned()))?;
        let credentials = Credentials::Password(PasswordCredentials {
            username: username.to_owned(),
            password: password.to_owned(),
            second_factor: second_factor.map(str::to_owned),
        });
        let identity = plugin
            .authenticate(&credentials)
            .await
            .map_err(LoginError::ProviderFailed)?
            .map_err(LoginError::Refused)?;
        let db = self.db();
        let user = match users::find_user_by_identity(db, provider, &identity.subject).await? {
            Some(user) => user,
            None => {
                let open = db
                    .settings()
                    .get(AUTO_REGISTER_SETTING)
                    .await?
                    .is_some_and(|s| s.value == serde_json::Value::Bool(true));
                if !open {
                    return Err(LoginError::NotLinked);
                }
                let new = users::NewUser {
                    username: identity.username.clone(),
                    email: identity.email.clone(),
                    display_name: identity.display_name.clone(),
                    admin: false,
                };
                let link = users::IdentityLink {
                    provider_id: provider.to_owned(),
                    subject: identity.subject.clone(),
                };
                users::create_user(db, &new, Some(&link), actor).await?
            }
        };
        if user.disabled {
            return Err(LoginError::Disabled);
        }
        let actor = Actor {
            user_id: Some(user.id.clone()),
            ..actor.clone()
        };
        let refresh = tokens::create_session(db, &user.id, provider, &actor).await?;
        let access_token = self.access_token(&user.id, &refresh.session_id)?;
        Ok(Tokens {
            access_token,
            expires_in: tokens::ACCESS_TOKEN_TTL,
            refresh_token: refresh.token,
            user,
        })
    }

    /// Exchanges a refresh token for new tokens.
    ///
    /// # Errors
    ///
    /// [`tokens::RefreshError`].
    pub async fn refresh(
        &self,
        refresh_token: &str,
        actor: &Actor,
    ) -> Result<Tokens, tokens::RefreshError> {
        let (user_id, refresh) = tokens::rotate_refresh(self.db(), refresh_token, actor).await?;
        let user = users::find_user(self.db(), &user_id)
            .await?
            .filter(|u| !u.disabled)
            .ok_or(tokens::RefreshError::Invalid)?;
        let access_token = self.access_token(&user.id, &refresh.session_id)?;
        Ok(Tokens {
            access_token,
            expires_in: tokens::ACCESS_TOKEN_TTL,
            refresh_token: refresh.token,
            user,
        })
    }

    fn access_token(&self, user_id: &str, session_id: &str) -> Result<String, DbError> {
        let iat = time::OffsetDateTime::now_utc().unix_timestamp();
        let ttl = i64::try_from(tokens::ACCESS_TOKEN_TTL.as_secs()).unwrap_or(900);
        let claims = Claims {
            sub: user_id.to_owned(),
            sid: session_id.to_owned(),
            iat,
            exp: iat + ttl,
        };
        self.keys()
            .sign(&claims)
            .map_err(|e| DbError::Corrupt(format!("signing an access token failed: {e}")))
    }
}
