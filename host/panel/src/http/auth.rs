//! Authentication: the extension point the identity work plugs into.
//!
//! Handlers that need a caller take the [`Authenticated`] extractor. It asks
//! the Panel's [`Authenticator`] who made the request; the resulting
//! [`Principal`] carries the user id and the caller's permission strings
//! (`resource.action`, such as `audit.read`: built-in ones and those plugins
//! declared), and `Principal::require` turns a missing built-in
//! permission, named by its gate ([`crate::identity::permissions`]), into
//! `403 forbidden`.
//!
//! The real authenticator is [`IdentityAuthenticator`] (access tokens and
//! API keys, see [`crate::identity`]); it is installed by
//! [`PanelBuilder::identity`](crate::PanelBuilder::identity). A Panel built
//! without identity keeps the default, [`DenyAll`], which answers every
//! protected route with `401 unauthenticated`. Tests may install their own
//! through [`PanelBuilder::authenticator`](crate::PanelBuilder::authenticator).

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use futures::future::BoxFuture;

use super::AppState;
use super::error::{ApiError, Code};
use super::request_id::RequestId;
use crate::db::{Actor, ReadVersion};
pub use crate::identity::principal::{Credential, Principal};
use crate::read_cache::VersionedCache;

/// Decides who made a request.
///
/// Implementations read what they need from the request head (an
/// `Authorization` header, a cookie, the client address in the
/// [`ConnectInfo`] extension) and return the caller, or an [`ApiError`]:
/// normally [`ApiError::Unauthenticated`], or
/// [`ApiError::Unavailable`] when a backing store is down.
///
/// `version` is the database's [`ReadVersion`], taken before the call:
/// an authenticator may answer from what it read at that very version
/// (see [`crate::read_cache`]).
pub trait Authenticator: Send + Sync + 'static {
    /// Authenticates the request whose head is `parts`.
    fn authenticate<'a>(
        &'a self,
        parts: &'a Parts,
        version: Option<ReadVersion>,
    ) -> BoxFuture<'a, Result<Principal, ApiError>>;
}

/// The default [`Authenticator`]: refuses everyone, because no identity
/// provider is installed.
#[derive(Debug, Clone, Copy, Default)]
pub struct DenyAll;

impl Authenticator for DenyAll {
    fn authenticate<'a>(
        &'a self,
        _parts: &'a Parts,
        _version: Option<ReadVersion>,
    ) -> BoxFuture<'a, Result<Principal, ApiError>> {
        Box::pin(async {
            Err(ApiError::Unauthenticated(
                "no authentication provider is configured on this Panel".into(),
            ))
        })
    }
}

/// The extractor for protected handlers: the caller, and the [`Actor`] to
/// record in the events the request causes (user, client address, request
/// id).
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// Who is calling.
    pub principal: Principal,
    /// The caller as the event store records it.
    pub actor: Actor,
}

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let authenticator: Arc<dyn Authenticator> = state.authenticator();
        // Before anything about the caller is read, so what is read (and
        // what the handler reads after) is at least this new.
        let version = state.db().read_version().await?;
        let principal = authenticator
            .authenticate(parts, version)
            .await?
            .at_version(version);
        if principal.password_change_required() && !allowed_before_password_change(parts) {
            return Err(ApiError::refused(
                Code::PasswordChangeRequired,
                "an administrator requires you to set a new password first \
                 (PUT /api/v1/account/password)",
            ));
        }
        let request_id = parts
            .extensions
            .get::<RequestId>()
            .map(|id| id.as_str().to_owned());
        let actor = Actor {
            user_id: Some(principal.user_id().to_owned()),
            ip: client_ip(parts),
            request_id,
        };
        Ok(Authenticated { principal, actor })
    }
}

/// The requests a caller who must set a new password may still make: the
/// change itself, who they are, and logging out. Everything else waits for
/// the new password, API keys included (an administrator who requires a
/// change suspects the password, and a key may have been made with it).
fn allowed_before_password_change(parts: &Parts) -> bool {
    use axum::extract::OriginalUri;
    use axum::http::Method;
    // Nested routers see the path without `/api/v1`; the original is kept.
    let path = parts
        .extensions
        .get::<OriginalUri>()
        .map_or(parts.uri.path(), |OriginalUri(uri)| uri.path());
    matches!(
        (&parts.method, path),
        (&Method::PUT, "/api/v1/account/password")
            | (&Method::GET, "/api/v1/auth/me")
            | (&Method::POST, "/api/v1/auth/logout")
    )
}

/// The client's address: the one [`super::client_addr::assign`] decided
/// (the TCP peer, or behind a trusted proxy the forwarded client), else the
/// TCP peer.
pub fn client_ip(parts: &Parts) -> Option<IpAddr> {
    if let Some(super::client_addr::ClientAddr(ip)) = parts.extensions.get() {
        return *ip;
    }
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_canonical())
}

/// The Panel's real [`Authenticator`]: `Authorization: Bearer <token>`
/// where the token is either an access token (a JWT from
/// `POST /api/v1/auth/login`) or an API key (`cap_…`).
///
/// - An access token must verify (HS256 only, signature, expiry), its
///   session must still be active (logout and refresh-token reuse end it)
///   and its user must exist and not be disabled. The caller holds the
///   user's permissions (every known one for administrators).
/// - An API key must exist and not be revoked; the caller holds the key's
///   scopes intersected with its owner's current permissions.
///
/// Every refusal is the same `401 unauthenticated` with a generic detail,
/// so callers cannot tell an expired token from a forged one.
///
/// Every request still verifies its access token (signature and expiry);
/// what a verified token's session stands for (its user, not disabled,
/// and the user's permissions) is cached per session for as long as the
/// database's [`ReadVersion`] stays the same, i.e. until the next write of
/// any kind (a logout, a role change, a disabled user…). So the answer is
/// always the one the database gives now, and the steady state of a
/// dashboard polling the Panel costs one small query per request instead of
/// two or three. API keys are not cached: each use records its time.
#[derive(Debug, Clone)]
pub struct IdentityAuthenticator {
    identity: crate::identity::IdentityService,
    /// Callers by (user id, session id).
    sessions: Arc<VersionedCache<(String, String), Principal>>,
}

impl IdentityAuthenticator {
    /// How many sessions' callers are kept per version.
    const CACHED_SESSIONS: usize = 4096;

    /// An authenticator backed by `identity`.
    pub fn new(identity: crate::identity::IdentityService) -> IdentityAuthenticator {
        IdentityAuthenticator {
            identity,
            sessions: Arc::new(VersionedCache::new(Self::CACHED_SESSIONS)),
        }
    }

    async fn principal(
        &self,
        token: &str,
        version: Option<ReadVersion>,
    ) -> Result<Principal, ApiError> {
        use crate::identity::tokens;
        let db = self.identity.db();
        let refused = || ApiError::Unauthenticated("the credentials are invalid or expired".into());
        if token.starts_with(tokens::API_KEY_PREFIX) {
            let key = tokens::use_api_key(db, token).await?.ok_or_else(refused)?;
            return key_principal(db, key).await?.ok_or_else(refused);
        }
        let claims = self.identity.keys().verify(token).map_err(|error| {
            tracing::debug!(%error, "access token refused");
            refused()
        })?;
        let session = (claims.sub, claims.sid);
        if let Some(principal) = self.sessions.get(version, &session) {
            return Ok(principal);
        }
        let principal = session_principal(db, &session.0, &session.1)
            .await?
            .ok_or_else(refused)?;
        self.sessions.insert(version, session, principal.clone());
        Ok(principal)
    }
}

/// The caller of session `session_id` of `user_id` as the database says
/// now: `None` if the session ended or the user is gone or disabled.
async fn session_principal(
    db: &crate::db::Database,
    user_id: &str,
    session_id: &str,
) -> Result<Option<Principal>, crate::db::DbError> {
    use crate::identity::users;
    let Some(user) = users::find_session_user(db, user_id, session_id)
        .await?
        .filter(|u| !u.disabled)
    else {
        return Ok(None);
    };
    let held = users::permissions_of(db, &user).await?;
    Ok(Some(
        Principal::new(user.id)
            .with_permissions(held)
            .with_credential(Credential::Session(session_id.to_owned()))
            .with_password_change_required(user.must_change_password),
    ))
}

/// The caller of an active API key as the database says now: its scopes
/// intersected with its owner's permissions; `None` if the owner is gone
/// or disabled.
async fn key_principal(
    db: &crate::db::Database,
    key: crate::identity::tokens::ApiKey,
) -> Result<Option<Principal>, crate::db::DbError> {
    use crate::identity::users;
    let Some(user) = users::find_user(db, &key.user_id)
        .await?
        .filter(|u| !u.disabled)
    else {
        return Ok(None);
    };
    let held = users::permissions_of(db, &user).await?;
    let scopes: BTreeSet<String> = key.scopes.into_iter().collect();
    Ok(Some(
        Principal::new(user.id)
            .with_permissions(held.intersection(&scopes).cloned())
            .with_credential(Credential::ApiKey(key.id))
            .with_password_change_required(user.must_change_password),
    ))
}

/// `principal` as the database says now, for connections that outlive the
/// request that authenticated them: `None` once its session ended (logout,
/// refresh-token reuse, a password change elsewhere), its API key was
/// revoked, or its user was disabled or deleted; otherwise the caller with
/// the permissions they hold now (a demotion shows at once).
///
/// A principal without a [`Credential`] (from an authenticator that does
/// not record one) cannot be asked again and is returned as it is.
///
/// # Errors
///
/// Database errors.
pub async fn recheck(
    db: &crate::db::Database,
    principal: &Principal,
) -> Result<Option<Principal>, crate::db::DbError> {
    match principal.credential() {
        None => Ok(Some(principal.clone())),
        Some(Credential::Session(session_id)) => {
            session_principal(db, principal.user_id(), session_id).await
        }
        Some(Credential::ApiKey(key_id)) => {
            let key = crate::identity::tokens::list_api_keys(db, principal.user_id())
                .await?
                .into_iter()
                .find(|k| &k.id == key_id && k.revoked_at.is_none());
            match key {
                Some(key) => key_principal(db, key).await,
                None => Ok(None),
            }
        }
    }
}

/// The bearer token of a request, if it sent one.
pub fn bearer_token(parts: &Parts) -> Option<&str> {
    bearer_from_headers(&parts.headers)
}

/// The bearer token in `headers`, if any (for handlers that take headers,
/// such as WebSocket upgrades).
pub fn bearer_from_headers(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// True if and only if `headers` authenticate with an API key rather than
/// a login session's access token (the same test
/// [`IdentityAuthenticator`] makes).
pub fn uses_api_key(headers: &axum::http::HeaderMap) -> bool {
    bearer_from_headers(headers)
        .is_some_and(|t| t.starts_with(crate::identity::tokens::API_KEY_PREFIX))
}

/// `Ok` unless the request authenticates with an API key: the routes that
/// manage credentials (API keys, the second factor, the password) need a
/// login session, so a leaked key cannot mint, revoke or replace them.
///
/// # Errors
///
/// [`ApiError::SessionRequired`].
pub fn require_session(headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
    if uses_api_key(headers) {
        Err(ApiError::SessionRequired)
    } else {
        Ok(())
    }
}

impl Authenticator for IdentityAuthenticator {
    fn authenticate<'a>(
        &'a self,
        parts: &'a Parts,
        version: Option<ReadVersion>,
    ) -> BoxFuture<'a, Result<Principal, ApiError>> {
        Box::pin(async move {
            let token = bearer_token(parts).ok_or_else(|| {
                ApiError::Unauthenticated(
                    "send an access token or API key as Authorization: Bearer <token>".into(),
                )
            })?;
            self.principal(token, version).await
        })
    }
}
