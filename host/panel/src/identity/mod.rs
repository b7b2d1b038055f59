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
//! - **Permissions** are `resource.action` strings: the built-in ones are
//!   one typed catalogue ([`permissions::Permission`]) that every route
//!   check, the OpenAPI document and the web UI's list derive from, and
//!   plugins may declare more ([`permissions`]); users get them through
//!   roles, and administrators hold every known one.
//! - **Sessions** ([`tokens`]): 15-minute HS256 access tokens plus rotating
//!   refresh tokens with reuse detection; API keys for scripts.
//! - **Every change is an event** in the same transaction, as elsewhere in
//!   the Panel ([`users`], [`tokens`]).
//! - **Second factor** ([`totp`], [`recovery`]): when a user has TOTP on, a
//!   verified password yields a short-lived, single-use challenge
//!   ([`LoginError::SecondFactorRequired`]) instead of tokens;
//!   [`IdentityService::complete_second_factor`] exchanges it, with a code
//!   or a recovery code, for tokens. A caller that does not handle the
//!   challenge gets no tokens: the safe default.
//! - **Administration** ([`users`], [`roles`]): users are listed, created
//!   (linked to a provider identity), changed, disabled — which revokes
//!   their sessions and API keys at once — and deleted; roles hold
//!   permissions checked against the registry.
//! - **Rate limits** ([`rate_limit`]) on login, second factor and refresh,
//!   per client address and per account, in memory, configurable
//!   ([`crate::config`]; [`IdentityOptions::from_config`]).
//! - **One provider call per account at a time** ([`slots`]): the
//!   provider's lockout counter is a read-modify-write over plugin KV, so
//!   attempts on one `(provider, username)` are serialised around the
//!   provider call and the lockout threshold holds under concurrent
//!   guesses. The HTTP layer also bounds provider calls per client address
//!   ([`IdentityService::address_slots`]).
//! - **A lock reads like a wrong password.** The HTTP layer answers a
//!   provider's `locked` with the same `401 invalid-credentials` as an
//!   unknown account or a wrong password, so the answer never tells whether
//!   an account exists.
//! - **Hooks** ([`crate::plugins::hooks`], once
//!   [`IdentityService::set_plugins`] lent the plugins): every login fires
//!   `user.login` just before its session starts — after the second
//!   factor, when there is one — and a before-hook may refuse it (`403
//!   hook-denied`); a plugin that *fails* never does, whatever its
//!   manifest says, so a broken hook plugin cannot keep the administrators
//!   from logging in to remove it. A login that auto-registers its user
//!   fires `user.create` first, which may refuse too.
//!
//! - **Redirect sign-in** ([`redirect`]): OAuth2 and OpenID Connect
//!   providers (the `oidc` plugin, one instance per provider) sign users
//!   in through the browser; the state is bound to the browser that began
//!   it, an unlinked identity gets an account only where its provider
//!   says it may (`may-create-account`, API 0.2.0), and the session starts
//!   exactly as a password login's (disabled users, TOTP, hooks). Signed-in
//!   users link further identities the same way.
//!
//! The HTTP routes live in [`crate::http::auth_routes`],
//! [`crate::http::redirect_routes`] and
//! [`crate::http::api_keys`]; the [`crate::http::Authenticator`] that turns
//! a bearer token into a principal is [`crate::http::auth::IdentityAuthenticator`].

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use cap_runtime::CallError;
use cap_runtime::api::{AuthError, Credentials, EventKind, Identity, PasswordCredentials, Payload};

use crate::db::{Actor, Database, DbError};
use crate::plugins::PluginManager;
use crate::plugins::hooks::{self, Failures, HookDenied};

pub mod bootstrap;
pub mod links;
pub mod passwords;
pub mod permissions;
pub mod principal;
pub mod providers;
pub mod rate_limit;
pub mod recovery;
pub mod redirect;
pub mod roles;
pub mod slots;
pub mod ssh_keys;
pub mod tokens;
pub mod totp;
pub mod users;

pub use bootstrap::{BootstrapOutcome, bootstrap_admin};
pub use providers::{LOCAL_PASSWORD, ProviderRegistry, load_local_password, panel_services};
pub use rate_limit::{RateLimiter, RateLimits, Rule};
pub use tokens::{Claims, JwtKeys};
pub use totp::{Challenge, SecondFactor};
pub use users::User;

/// The setting that lets a verified identity with no user create one.
pub const AUTO_REGISTER_SETTING: &str = "auth.auto-register";

/// How long a session lasts at most, from its login, by default.
pub const DEFAULT_SESSION_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);

/// How identity behaves.
#[derive(Debug, Clone)]
pub struct IdentityOptions {
    /// Limits on the login, second-factor and refresh endpoints.
    pub rate_limits: RateLimits,
    /// The absolute lifetime of a session, counted from its login: a
    /// refresh after it is refused (the session is ended, appending
    /// `session.expired`), and no access token of a session outlives it,
    /// however often the session was refreshed. A stolen refresh token
    /// thus works for a bounded time even if it keeps racing its owner
    /// undetected. Default [`DEFAULT_SESSION_LIFETIME`].
    pub session_lifetime: Duration,
}

impl Default for IdentityOptions {
    fn default() -> Self {
        IdentityOptions {
            rate_limits: RateLimits::default(),
            session_lifetime: DEFAULT_SESSION_LIFETIME,
        }
    }
}

impl IdentityOptions {
    /// The options `config` asks for (its `[rate-limits]` and session
    /// lifetime).
    pub fn from_config(config: &crate::config::Config) -> IdentityOptions {
        IdentityOptions {
            rate_limits: config.rate_limits,
            session_lifetime: Duration::from_secs(
                u64::from(config.session_lifetime_days) * 24 * 3600,
            ),
        }
    }
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
    accounts: slots::KeyedSlots,
    addresses: slots::KeyedSlots,
    plugins: OnceLock<PluginManager>,
    redirects: redirect::Redirects,
}

/// Provider calls (logins, password checks) one client address may have
/// in flight at once; more are answered `429` at once.
pub const PROVIDER_CALLS_PER_ADDRESS: usize = 4;

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
    /// The first factor passed, and the user has TOTP on: complete the
    /// login with [`IdentityService::complete_second_factor`].
    #[error("a second factor is required")]
    SecondFactorRequired(Challenge),
    /// A plugin's `user.login` (or, for a user being auto-registered,
    /// `user.create`) before-hook refused.
    #[error(transparent)]
    HookDenied(#[from] HookDenied),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Why creating a user for a verified identity failed.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// A `user.create` before-hook refused.
    #[error(transparent)]
    HookDenied(#[from] HookDenied),
    /// The database failed (a taken username is [`DbError::Conflict`]).
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<RegisterError> for LoginError {
    fn from(error: RegisterError) -> Self {
        match error {
            RegisterError::HookDenied(denied) => LoginError::HookDenied(denied),
            RegisterError::Db(error) => LoginError::Db(error),
        }
    }
}

/// Why completing a login with a second factor failed.
#[derive(Debug, thiserror::Error)]
pub enum SecondFactorError {
    /// The challenge is unknown, expired or used, or its user is gone or
    /// no longer has TOTP: log in again.
    #[error("the login challenge is invalid or expired")]
    InvalidChallenge,
    /// The code or recovery code is wrong or was used before.
    #[error("the second factor is wrong")]
    InvalidCode,
    /// Too many wrong codes: the second factor is locked for this long.
    #[error("the second factor is locked")]
    Locked(Duration),
    /// Too many attempts for this account: wait this long.
    #[error("too many attempts")]
    RateLimited(Duration),
    /// The user was disabled since the first factor.
    #[error("the account is disabled")]
    Disabled,
    /// A plugin's `user.login` before-hook refused.
    #[error(transparent)]
    HookDenied(#[from] HookDenied),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl IdentityService {
    /// Identity on `db` with `providers`: loads the JWT signing keys
    /// (creating the first one if there is none).
    ///
    /// # Errors
    ///
    /// Database errors.
    pub async fn start(
        db: Database,
        providers: ProviderRegistry,
        options: IdentityOptions,
    ) -> Result<IdentityService, DbError> {
        let keys = JwtKeys::load(&db).await?;
        Ok(IdentityService {
            inner: Arc::new(Inner {
                db,
                providers,
                keys,
                options,
                limiter: RateLimiter::default(),
                accounts: slots::KeyedSlots::new(1),
                addresses: slots::KeyedSlots::new(PROVIDER_CALLS_PER_ADDRESS),
                plugins: OnceLock::new(),
                redirects: redirect::Redirects::default(),
            }),
        })
    }

    /// Lends the plugins whose hooks hear of logins and auto-registered
    /// users (none until then); only the first call has an effect.
    pub fn set_plugins(&self, plugins: PluginManager) {
        let _ = self.inner.plugins.set(plugins);
    }

    fn plugins(&self) -> Option<&PluginManager> {
        self.inner.plugins.get()
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

    /// Waits for the turn of `username` at `provider` (case and surrounding
    /// blanks ignored, as providers do): hold it around every provider call
    /// that checks that account's password.
    pub async fn account_turn(&self, provider: &str, username: &str) -> slots::Slot {
        self.inner
            .accounts
            .acquire(&format!("{provider}\n{}", username.trim().to_lowercase()))
            .await
    }

    /// Provider-call slots by client address
    /// ([`PROVIDER_CALLS_PER_ADDRESS`] each).
    pub fn address_slots(&self) -> &slots::KeyedSlots {
        &self.inner.addresses
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
        // One attempt per account at a time: see the module docs.
        let turn = self.account_turn(provider, username).await;
        let answer = plugin.authenticate(&credentials).await;
        drop(turn);
        let identity = answer
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
                self.register(provider, &identity, actor).await?
            }
        };
        if user.disabled {
            return Err(LoginError::Disabled);
        }
        if totp::is_enabled(db, &user.id).await? {
            let challenge = totp::create_challenge(db, &user.id, provider).await?;
            return Err(LoginError::SecondFactorRequired(challenge));
        }
        self.ask_login(&user, actor).await?;
        Ok(self.issue_tokens(user, provider, actor).await?)
    }

    /// Creates a user for `identity` (verified by `provider`) and links it,
    /// asking the `user.create` before-hooks first and telling the
    /// after-hooks.
    async fn register(
        &self,
        provider: &str,
        identity: &Identity,
        actor: &Actor,
    ) -> Result<User, RegisterError> {
        let mut new = users::NewUser {
            username: identity.username.clone(),
            email: identity.email.clone(),
            display_name: identity.display_name.clone(),
            admin: false,
        };
        let link = users::IdentityLink {
            provider_id: provider.to_owned(),
            subject: identity.subject.clone(),
        };
        let id = users::new_user_id();
        let asked = hooks::event(
            EventKind::UserCreate,
            Payload::User(new.hook_info(&id)),
            actor,
        );
        let allowed = hooks::run_before(self.plugins(), asked).await?;
        if let Payload::User(info) = allowed.payload {
            new.email = info.email;
        }
        let user =
            users::create_user_with_roles(self.db(), &id, &new, Some(&link), &[], actor).await?;
        let done = hooks::event(
            EventKind::UserCreate,
            Payload::User(user.hook_info()),
            actor,
        );
        hooks::spawn_after(self.plugins(), done);
        Ok(user)
    }

    /// Completes a login that answered
    /// [`LoginError::SecondFactorRequired`]: checks `factor` (consuming it,
    /// see [`totp::verify`]), then consumes the challenge and starts the
    /// session. A wrong factor leaves the challenge open for another try
    /// until it expires or the second factor locks.
    ///
    /// # Errors
    ///
    /// [`SecondFactorError`].
    pub async fn complete_second_factor(
        &self,
        challenge: &str,
        factor: SecondFactor<'_>,
        actor: &Actor,
    ) -> Result<Tokens, SecondFactorError> {
        let db = self.db();
        let pending = totp::find_challenge(db, challenge)
            .await?
            .ok_or(SecondFactorError::InvalidChallenge)?;
        self.limiter()
            .check(
                &format!("second-factor:account:{}", pending.user_id),
                self.options().rate_limits.second_factor_per_account,
            )
            .map_err(SecondFactorError::RateLimited)?;
        let user = users::find_user(db, &pending.user_id)
            .await?
            .ok_or(SecondFactorError::InvalidChallenge)?;
        if user.disabled {
            return Err(SecondFactorError::Disabled);
        }
        let actor = Actor {
            user_id: Some(user.id.clone()),
            ..actor.clone()
        };
        match totp::verify(db, &user.id, factor, &actor).await {
            Ok(()) => {}
            Err(totp::TotpError::InvalidCode) => return Err(SecondFactorError::InvalidCode),
            Err(totp::TotpError::Locked(wait)) => return Err(SecondFactorError::Locked(wait)),
            Err(totp::TotpError::Db(e)) => return Err(e.into()),
            Err(
                totp::TotpError::NotEnabled
                | totp::TotpError::NotPending
                | totp::TotpError::AlreadyEnabled,
            ) => return Err(SecondFactorError::InvalidChallenge),
        }
        if !totp::claim_challenge(db, challenge).await? {
            return Err(SecondFactorError::InvalidChallenge);
        }
        self.ask_login(&user, &actor).await?;
        Ok(self
            .issue_tokens(user, &pending.provider_id, &actor)
            .await?)
    }

    /// Asks the `user.login` before-hooks whether `user` may log in now.
    /// Hooks that fail are ignored ([`Failures::Ignored`]): see the module
    /// docs.
    async fn ask_login(&self, user: &User, actor: &Actor) -> Result<(), HookDenied> {
        let actor = Actor {
            user_id: Some(user.id.clone()),
            ..actor.clone()
        };
        let asked = hooks::event(
            EventKind::UserLogin,
            Payload::User(user.hook_info()),
            &actor,
        );
        hooks::run_before_with(self.plugins(), asked, Failures::Ignored, None).await?;
        Ok(())
    }

    /// Starts a session for `user`, logged in through `provider`, and tells
    /// the `user.login` after-hooks.
    async fn issue_tokens(
        &self,
        user: User,
        provider: &str,
        actor: &Actor,
    ) -> Result<Tokens, DbError> {
        let actor = Actor {
            user_id: Some(user.id.clone()),
            ..actor.clone()
        };
        let refresh = tokens::create_session(self.db(), &user.id, provider, &actor).await?;
        let done = hooks::event(
            EventKind::UserLogin,
            Payload::User(user.hook_info()),
            &actor,
        );
        hooks::spawn_after(self.plugins(), done);
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
        // The session's absolute lifetime: checked before rotating, so an
        // expired session's token is not even marked used.
        let lifetime = time::Duration::try_from(self.options().session_lifetime)
            .unwrap_or(time::Duration::MAX);
        let mut ends_at = None;
        if let Some((user_id, session_id)) =
            tokens::session_of_refresh(self.db(), refresh_token).await?
            && let Some(started) = users::session_started_at(self.db(), &session_id).await?
        {
            let end = started.saturating_add(lifetime);
            if time::OffsetDateTime::now_utc() >= end {
                tokens::revoke_session(
                    self.db(),
                    &user_id,
                    &session_id,
                    tokens::SessionEnd::Expired,
                    actor,
                )
                .await?;
                return Err(tokens::RefreshError::Invalid);
            }
            ends_at = Some(end);
        }
        let (user_id, refresh) = tokens::rotate_refresh(self.db(), refresh_token, actor).await?;
        let user = users::find_user(self.db(), &user_id)
            .await?
            .filter(|u| !u.disabled)
            .ok_or(tokens::RefreshError::Invalid)?;
        let (access_token, expires_in) =
            self.access_token_until(&user.id, &refresh.session_id, ends_at)?;
        Ok(Tokens {
            access_token,
            expires_in,
            refresh_token: refresh.token,
            user,
        })
    }

    fn access_token(&self, user_id: &str, session_id: &str) -> Result<String, DbError> {
        self.access_token_until(user_id, session_id, None)
            .map(|(token, _)| token)
    }

    /// An access token valid for [`tokens::ACCESS_TOKEN_TTL`], or until
    /// `not_after` if that is sooner; with how long it is valid.
    fn access_token_until(
        &self,
        user_id: &str,
        session_id: &str,
        not_after: Option<time::OffsetDateTime>,
    ) -> Result<(String, Duration), DbError> {
        let iat = time::OffsetDateTime::now_utc().unix_timestamp();
        let ttl = i64::try_from(tokens::ACCESS_TOKEN_TTL.as_secs()).unwrap_or(900);
        let exp = not_after.map_or(iat + ttl, |end| (iat + ttl).min(end.unix_timestamp()));
        let claims = Claims {
            sub: user_id.to_owned(),
            sid: session_id.to_owned(),
            iat,
            exp,
        };
        let token = self
            .keys()
            .sign(&claims)
            .map_err(|e| DbError::Corrupt(format!("signing an access token failed: {e}")))?;
        let valid = Duration::from_secs(u64::try_from(exp - iat).unwrap_or(0));
        Ok((token, valid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, ConfigLayer};

    #[test]
    fn options_take_the_configured_rate_limits() {
        let layer = ConfigLayer::from_env([("CAP_RATE_LIMIT_REFRESH_PER_IP", "4/1m")])
            .expect("a valid variable");
        let options = IdentityOptions::from_config(&Config::from_layers([layer]));
        assert_eq!(
            options.rate_limits.refresh_per_ip,
            Rule::new(4, Duration::from_secs(60))
        );
        assert_eq!(
            options.rate_limits.login_per_ip,
            RateLimits::default().login_per_ip
        );
    }

    #[test]
    fn options_take_the_configured_session_lifetime_in_days() {
        let options = IdentityOptions::from_config(&Config::default());
        assert_eq!(options.session_lifetime, DEFAULT_SESSION_LIFETIME);
        let layer =
            ConfigLayer::from_env([("CAP_SESSION_LIFETIME_DAYS", "7")]).expect("a valid variable");
        let options = IdentityOptions::from_config(&Config::from_layers([layer]));
        assert_eq!(options.session_lifetime, Duration::from_secs(7 * 24 * 3600));
    }
}
