//! Redirect sign-in (OAuth2 / OpenID Connect providers): begun here, sent
//! to the provider, back through the callback, and exchanged by the
//! browser for a session.
//!
//! # The flow
//!
//! 1. [`IdentityService::begin_redirect`] asks the provider plugin for its
//!    authorize URL (`begin-login`) with the callback URL built from the
//!    Panel's configured base URL only ([`crate::config::Config::base_url`],
//!    never a request header), and answers it with a fresh random
//!    **binding**, which the HTTP layer sets as an HttpOnly, SameSite=Lax
//!    cookie. The Panel keeps, by the digest of the provider's state: the
//!    provider, the intent (sign in, or link to a signed-in user) and the
//!    digest of the binding.
//! 2. [`IdentityService::complete_redirect`] (the callback) takes the
//!    pending entry out (once), checks that the browser holds its binding
//!    and that it has not expired, and only then asks the plugin to
//!    `complete-login`. A state begun in another browser (login CSRF: an
//!    attacker's callback URL opened by a victim) never reaches the plugin.
//! 3. Signing in: an identity linked to a user is that user; otherwise the
//!    user is created when the identity says it may (`may-create-account`,
//!    the provider's own rule: API 0.2.0; 0.1.0 providers never may), with
//!    the `user.create` hooks as a password sign-up; otherwise the sign-in
//!    is refused. The callback does not hand out tokens (they would sit in
//!    a URL): it issues a **ticket**, single use, for two minutes, bound to
//!    the same browser binding, which the web UI exchanges
//!    ([`IdentityService::exchange_ticket`]) for a session exactly as a
//!    password login gives one: disabled users refused, the TOTP challenge
//!    when the user has a second factor, the `user.login` hooks.
//! 4. Linking: the identity is linked to the user who began the flow,
//!    unless it is linked to someone else.
//!
//! # What is kept, and where
//!
//! Pending sign-ins and tickets are kept in this process's memory (bounded:
//! [`MAX_PENDING`] each; expired ones are dropped as new ones come): a
//! sign-in begun on one Panel process completes on the same one, and a
//! restart abandons sign-ins in flight, which their users begin again. The
//! provider keeps its own state (nonce, PKCE verifier) in its plugin KV.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cap_runtime::CallError;
use cap_runtime::api::{AuthError, Identity, KeyValue};

use super::tokens::{digest, random_secret};
use super::{IdentityService, RegisterError, Tokens, totp, users};
use crate::db::{Actor, DbError};
use crate::plugins::hooks::HookDenied;

/// How long a begun sign-in may take.
pub const PENDING_TTL: Duration = Duration::from_secs(600);
/// How long a ticket may wait for its exchange.
pub const TICKET_TTL: Duration = Duration::from_secs(120);
/// The most pending sign-ins (and, apart, tickets) kept at once.
pub const MAX_PENDING: usize = 10_000;

/// What a redirect sign-in is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intent {
    /// Signing in (or up).
    SignIn,
    /// Linking the identity to this signed-in user.
    Link {
        /// The user's id.
        user_id: String,
    },
}

/// A begun redirect sign-in.
#[derive(Debug, Clone)]
pub struct Begun {
    /// Where to send the browser.
    pub authorize_url: String,
    /// The secret the browser keeps (as a cookie) until the callback.
    pub binding: String,
}

/// What a callback achieved.
#[derive(Debug, Clone)]
pub enum Completed {
    /// A user is known: the browser exchanges `ticket` for a session.
    SignedIn {
        /// The ticket (single use).
        ticket: String,
    },
    /// The identity is now linked to the user who began the flow (or was
    /// already).
    Linked {
        /// The user.
        user_id: String,
    },
}

/// Why a redirect sign-in step failed.
#[derive(Debug, thiserror::Error)]
pub enum RedirectError {
    /// No provider with this id is active.
    #[error("unknown provider {0:?}")]
    UnknownProvider(String),
    /// The state is unknown, used or expired, names another provider, or
    /// was begun in another browser; or a ticket is.
    #[error("the sign-in state does not verify")]
    StateMismatch,
    /// The provider refused (`invalid-request` carries its reason).
    #[error("the provider refused: {0:?}")]
    Refused(AuthError),
    /// The provider plugin failed.
    #[error("the provider failed")]
    ProviderFailed(#[source] CallError),
    /// No user is linked and the identity may not create one.
    #[error("no user is linked to this identity")]
    NotLinked,
    /// Linking: the identity is another user's.
    #[error("the identity is linked to another user")]
    LinkedElsewhere,
    /// A sign-up's username is taken.
    #[error("the username {0:?} is taken")]
    UsernameTaken(String),
    /// The user is disabled.
    #[error("the account is disabled")]
    Disabled,
    /// The user has TOTP on: complete with the challenge.
    #[error("a second factor is required")]
    SecondFactorRequired(totp::Challenge),
    /// Too many sign-ins in flight.
    #[error("too many sign-ins in flight")]
    Busy,
    /// A `user.create` or `user.login` before-hook refused.
    #[error(transparent)]
    HookDenied(#[from] HookDenied),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<RegisterError> for RedirectError {
    fn from(error: RegisterError) -> Self {
        match error {
            RegisterError::HookDenied(denied) => RedirectError::HookDenied(denied),
            RegisterError::Db(DbError::Conflict { .. }) => {
                RedirectError::UsernameTaken(String::new())
            }
            RegisterError::Db(error) => RedirectError::Db(error),
        }
    }
}

#[derive(Debug)]
struct Pending {
    provider: String,
    intent: Intent,
    binding: String,
    expires: Instant,
}

#[derive(Debug)]
struct Ticket {
    provider: String,
    user_id: String,
    binding: String,
    expires: Instant,
}

/// The pending sign-ins and tickets of this process.
#[derive(Debug, Default)]
pub(crate) struct Redirects {
    pending: Mutex<HashMap<String, Pending>>,
    tickets: Mutex<HashMap<String, Ticket>>,
}

/// Inserts `value` under `key` unless the map is full of live entries.
fn insert_bounded<T>(
    map: &Mutex<HashMap<String, T>>,
    key: String,
    value: T,
    expires: impl Fn(&T) -> Instant,
) -> Result<(), RedirectError> {
    let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
    if map.len() >= MAX_PENDING {
        let now = Instant::now();
        map.retain(|_, v| expires(v) > now);
        if map.len() >= MAX_PENDING {
            return Err(RedirectError::Busy);
        }
    }
    map.insert(key, value);
    Ok(())
}

/// Takes `key` out of the map (whatever follows, it is used).
fn take<T>(map: &Mutex<HashMap<String, T>>, key: &str) -> Option<T> {
    map.lock().unwrap_or_else(|p| p.into_inner()).remove(key)
}

fn same(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq as _;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

impl IdentityService {
    /// Begins a redirect sign-in through `provider` for `intent`, the
    /// provider returning to `callback_url`.
    ///
    /// # Errors
    ///
    /// [`RedirectError`]: unknown provider, the provider's refusal or
    /// failure, too many in flight.
    pub async fn begin_redirect(
        &self,
        provider: &str,
        intent: Intent,
        callback_url: &str,
    ) -> Result<Begun, RedirectError> {
        let plugin = self
            .providers()
            .get(provider)
            .ok_or_else(|| RedirectError::UnknownProvider(provider.to_owned()))?;
        let redirect = plugin
            .begin_login(callback_url)
            .await
            .map_err(RedirectError::ProviderFailed)?
            .map_err(RedirectError::Refused)?;
        let binding = random_secret("");
        insert_bounded(
            &self.inner.redirects.pending,
            digest(&redirect.state),
            Pending {
                provider: provider.to_owned(),
                intent,
                binding: digest(&binding),
                expires: Instant::now() + PENDING_TTL,
            },
            |p| p.expires,
        )?;
        Ok(Begun {
            authorize_url: redirect.authorize_url,
            binding,
        })
    }

    /// Completes a redirect sign-in at its callback: `state` and `params`
    /// as the provider sent them, `binding` the browser's cookie.
    ///
    /// # Errors
    ///
    /// [`RedirectError`].
    pub async fn complete_redirect(
        &self,
        provider: &str,
        state: &str,
        params: &[KeyValue],
        binding: Option<&str>,
        actor: &Actor,
    ) -> Result<Completed, RedirectError> {
        let pending = take(&self.inner.redirects.pending, &digest(state))
            .ok_or(RedirectError::StateMismatch)?;
        let bound = binding.is_some_and(|b| same(&digest(b), &pending.binding));
        if !bound || pending.provider != provider || pending.expires < Instant::now() {
            return Err(RedirectError::StateMismatch);
        }
        let plugin = self
            .providers()
            .get(provider)
            .ok_or_else(|| RedirectError::UnknownProvider(provider.to_owned()))?;
        let identity = plugin
            .complete_login(state, params)
            .await
            .map_err(RedirectError::ProviderFailed)?
            .map_err(RedirectError::Refused)?;
        let db = self.db();
        let linked = users::find_user_by_identity(db, provider, &identity.subject).await?;
        match pending.intent {
            Intent::Link { user_id } => {
                match linked {
                    Some(user) if user.id == user_id => {}
                    Some(_) => return Err(RedirectError::LinkedElsewhere),
                    None => {
                        let link = users::IdentityLink {
                            provider_id: provider.to_owned(),
                            subject: identity.subject.clone(),
                        };
                        let actor = Actor {
                            user_id: Some(user_id.clone()),
                            ..actor.clone()
                        };
                        match users::link_identity(db, &user_id, &link, &actor).await {
                            Ok(()) => {}
                            Err(DbError::Conflict { .. }) => {
                                return Err(RedirectError::LinkedElsewhere);
                            }
                            Err(error) => return Err(error.into()),
                        }
                    }
                }
                Ok(Completed::Linked { user_id })
            }
            Intent::SignIn => {
                let user = match linked {
                    Some(user) => user,
                    None if identity.may_create_account => self
                        .register(provider, &identity, actor)
                        .await
                        .map_err(|e| username_taken(e.into(), &identity))?,
                    None => return Err(RedirectError::NotLinked),
                };
                let ticket = random_secret("");
                insert_bounded(
                    &self.inner.redirects.tickets,
                    digest(&ticket),
                    Ticket {
                        provider: provider.to_owned(),
                        user_id: user.id,
                        binding: pending.binding,
                        expires: Instant::now() + TICKET_TTL,
                    },
                    |t| t.expires,
                )?;
                Ok(Completed::SignedIn { ticket })
            }
        }
    }

    /// Exchanges a callback's ticket, in the browser that began the
    /// sign-in, for a session, as a password login would start one.
    ///
    /// # Errors
    ///
    /// [`RedirectError::StateMismatch`] for an unknown, used, expired or
    /// foreign ticket; [`RedirectError::Disabled`],
    /// [`RedirectError::SecondFactorRequired`], hook refusals.
    pub async fn exchange_ticket(
        &self,
        ticket: &str,
        binding: Option<&str>,
        actor: &Actor,
    ) -> Result<Tokens, RedirectError> {
        let found = take(&self.inner.redirects.tickets, &digest(ticket))
            .ok_or(RedirectError::StateMismatch)?;
        let bound = binding.is_some_and(|b| same(&digest(b), &found.binding));
        if !bound || found.expires < Instant::now() {
            return Err(RedirectError::StateMismatch);
        }
        let db = self.db();
        let user = users::find_user(db, &found.user_id)
            .await?
            .ok_or(RedirectError::StateMismatch)?;
        if user.disabled {
            return Err(RedirectError::Disabled);
        }
        if totp::is_enabled(db, &user.id).await? {
            let challenge = totp::create_challenge(db, &user.id, &found.provider).await?;
            return Err(RedirectError::SecondFactorRequired(challenge));
        }
        self.ask_login(&user, actor).await?;
        Ok(self.issue_tokens(user, &found.provider, actor).await?)
    }
}

/// Names the username a sign-up found taken.
fn username_taken(error: RedirectError, identity: &Identity) -> RedirectError {
    match error {
        RedirectError::UsernameTaken(_) => RedirectError::UsernameTaken(identity.username.clone()),
        other => other,
    }
}
