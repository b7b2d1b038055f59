//! `/api/v1/auth`: logging in through an auth-provider plugin, refreshing
//! and ending sessions, and who the caller is. Signing in through redirect
//! providers (OpenID Connect) is [`super::redirect_routes`].
//!
//! # Second factor
//!
//! When the user has TOTP on, `POST /auth/login` with the right password
//! answers `202 Accepted` with a [`SecondFactorChallengeBody`] —
//! `second_factor_required: true` and a `challenge` (valid five minutes,
//! single use) — and no tokens. `POST /auth/login/second-factor` with the
//! challenge and either `code` (from the authenticator app) or
//! `recovery_code` completes the login with the usual [`TokenResponse`]. A
//! wrong code leaves the challenge open for another try; five wrong codes in
//! a row lock the second factor for fifteen minutes.
//!
//! Refusals carry their own stable codes so clients can react:
//!
//! | Status | Code | When |
//! | --- | --- | --- |
//! | 401 | `invalid-credentials` | the provider refused the credentials, or locked the account (one generic message: a lock must not tell that the account exists) |
//! | 401 | `second-factor-required` | the provider wants a second factor: retry with `second_factor` |
//! | 403 | `account-not-linked` | the identity is verified but no user is linked and auto-registration is off |
//! | 403 | `account-disabled` | the user is disabled |
//! | 403 | `hook-denied` | a plugin's `user.login` before-hook refused the login (or its `user.create` the auto-registration); see [`crate::plugins::hooks`] |
//! | 429 | `rate-limited` | too many attempts from this address or for this account, or too many logins of this address in flight; `Retry-After` |
//! | 503 | `provider-unavailable` | the provider's backend is down |
//! | 503 | `provider-failed` | the provider plugin trapped, timed out or is quarantined |
//! | 401 | `invalid-refresh-token` | unknown, expired or revoked refresh token |
//! | 401 | `refresh-token-reused` | a used refresh token came back: its session is now revoked |
//! | 401 | `invalid-challenge` | the login challenge is unknown, expired or used: log in again |
//! | 401 | `invalid-second-factor` | the code or recovery code is wrong, or the code was used before |
//! | 423 | `account-locked` | (second factor) too many wrong codes; `Retry-After` |

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use cap_runtime::api::{AuthError, EventKind, Payload};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Authenticated;
use super::error::{ApiError, ApiResult, Code, FieldError, FieldLocation};
use super::extract::ApiJson;
use super::request_id::RequestId;
use crate::db::Actor;
use crate::identity::tokens::RefreshError;
use crate::identity::{
    Challenge, IdentityService, LOCAL_PASSWORD, LoginError, SecondFactor, Tokens, User, users,
};
use crate::identity::{SecondFactorError, totp};
use crate::plugins::hooks;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(second_factor))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(me))
}

/// The caller before authentication: address and request id.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    pub(crate) actor: Actor,
}

impl FromRequestParts<AppState> for Client {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, ApiError> {
        let ip = super::auth::client_ip(parts);
        let request_id = parts
            .extensions
            .get::<RequestId>()
            .map(|id| id.as_str().to_owned());
        Ok(Client {
            actor: Actor {
                user_id: None,
                ip,
                request_id,
            },
        })
    }
}

impl Client {
    /// Counts one `action` (`login`, `refresh`, …) from this client's
    /// address against `rule`.
    ///
    /// # Errors
    ///
    /// `429 rate-limited` with `Retry-After` once the rule's budget is spent.
    pub(crate) fn limit_address(
        &self,
        identity: &IdentityService,
        action: &str,
        rule: crate::identity::Rule,
    ) -> ApiResult<()> {
        identity
            .limiter()
            .check(&format!("{action}:ip:{}", self.ip_key()), rule)
            .map_err(ApiError::rate_limited)
    }

    /// The client address as a rate-limit key.
    pub(crate) fn ip_key(&self) -> String {
        self.actor
            .ip
            .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string())
    }
}

/// The identity service, or `503` when the Panel runs without one.
pub(crate) fn identity(state: &AppState) -> ApiResult<&IdentityService> {
    state.identity().ok_or_else(|| {
        ApiError::refused(
            Code::ServiceUnavailable,
            "logins are not configured on this Panel",
        )
    })
}

/// Credentials for a password provider.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// The auth-provider plugin's id (default `local-password`).
    #[serde(default)]
    pub provider: Option<String>,
    /// The username at that provider.
    pub username: String,
    /// The password.
    pub password: String,
    /// A TOTP or recovery code, when the provider asked for one.
    #[serde(default)]
    pub second_factor: Option<String>,
}

/// The logged-in user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UserBody {
    /// The user's id.
    pub id: String,
    /// The username.
    pub username: String,
    /// Email address.
    pub email: Option<String>,
    /// Name to show.
    pub display_name: Option<String>,
    /// Whether the user is an administrator.
    pub admin: bool,
    /// Whether an administrator requires a new password before anything
    /// else: until `PUT /account/password`, other requests answer `403
    /// password-change-required`.
    #[serde(default)]
    pub password_change_required: bool,
}

impl From<User> for UserBody {
    fn from(user: User) -> Self {
        UserBody {
            id: user.id,
            username: user.username,
            email: user.email,
            display_name: user.display_name,
            admin: user.admin,
            password_change_required: user.must_change_password,
        }
    }
}

/// Tokens for a session.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    /// The access token (a JWT); send it as `Authorization: Bearer …`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// The refresh token; exchange it at `/auth/refresh` (once).
    pub refresh_token: String,
    /// Who logged in.
    pub user: UserBody,
}

/// The first factor passed; the login needs a second one.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SecondFactorChallengeBody {
    /// Always `true`.
    pub second_factor_required: bool,
    /// Send it to `/auth/login/second-factor` with a code (once).
    pub challenge: String,
    /// Seconds until the challenge expires.
    pub expires_in: u64,
    /// What completes it: `totp` (field `code`) or `recovery_code`.
    pub methods: Vec<String>,
}

impl From<Challenge> for SecondFactorChallengeBody {
    fn from(challenge: Challenge) -> Self {
        SecondFactorChallengeBody {
            second_factor_required: true,
            challenge: challenge.token,
            expires_in: challenge.expires_in.as_secs(),
            methods: vec!["totp".to_owned(), "recovery_code".to_owned()],
        }
    }
}

impl From<Tokens> for TokenResponse {
    fn from(tokens: Tokens) -> Self {
        TokenResponse {
            access_token: tokens.access_token,
            token_type: "Bearer".to_owned(),
            expires_in: tokens.expires_in.as_secs(),
            refresh_token: tokens.refresh_token,
            user: tokens.user.into(),
        }
    }
}

/// Adds a field error unless `value` has 1 to `max` characters.
pub(crate) fn check_len(errors: &mut Vec<FieldError>, field: &str, value: &str, max: usize) {
    let len = value.chars().count();
    if len == 0 || len > max {
        errors.push(FieldError::new(
            FieldLocation::Body,
            field,
            format!("must be 1 to {max} characters"),
        ));
    }
}

/// The one detail of every refused login: wrong password, unknown account
/// or locked account alike.
pub(crate) const INVALID_CREDENTIALS: &str = "the username or password is wrong, or too many failed \
     logins locked the account for a while";

/// The answer to a login that gave no tokens: `202` with a challenge when
/// the user has a second factor, else the refusal.
fn login_answer(error: LoginError) -> ApiResult<Response> {
    Err(match error {
        LoginError::UnknownProvider(id) => ApiError::field(
            FieldLocation::Body,
            "provider",
            format!("there is no auth provider {id:?}"),
        ),
        // A lock is answered exactly like a wrong password or an unknown
        // account (same status, body and headers), so the answer never tells
        // whether an account exists.
        LoginError::Refused(AuthError::InvalidCredentials | AuthError::Locked(_)) => {
            ApiError::refused(Code::InvalidCredentials, INVALID_CREDENTIALS)
        }
        LoginError::Refused(AuthError::NeedsSecondFactor) => ApiError::refused(
            Code::SecondFactorRequired,
            "send the code of your second factor as second_factor",
        ),
        LoginError::Refused(AuthError::ProviderUnavailable(reason)) => {
            tracing::warn!(%reason, "auth provider unavailable");
            ApiError::refused(
                Code::ProviderUnavailable,
                "the login provider is unavailable; try again later",
            )
        }
        LoginError::Refused(AuthError::Unsupported) => ApiError::BadRequest(
            "this provider does not accept username and password logins".into(),
        ),
        LoginError::Refused(AuthError::PolicyViolation(_) | AuthError::InvalidRequest(_)) => {
            ApiError::BadRequest("the provider refused the request".into())
        }
        LoginError::ProviderFailed(error) => {
            tracing::warn!(%error, "auth provider plugin failed");
            ApiError::refused(
                Code::ProviderFailed,
                "the login provider failed; try again later",
            )
        }
        LoginError::NotLinked => ApiError::refused(
            Code::AccountNotLinked,
            "no Panel account is linked to this identity; ask an administrator",
        ),
        LoginError::Disabled => {
            ApiError::refused(Code::AccountDisabled, "this account is disabled")
        }
        LoginError::SecondFactorRequired(challenge) => {
            return Ok((
                StatusCode::ACCEPTED,
                Json(SecondFactorChallengeBody::from(challenge)),
            )
                .into_response());
        }
        LoginError::HookDenied(denied) => ApiError::from(denied),
        LoginError::Db(error) => ApiError::from(error),
    })
}

/// Logs in through an auth-provider plugin.
#[utoipa::path(
    post,
    path = "/auth/login",
    tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in", body = TokenResponse),
        (status = 202, description = "The password is right and the user has TOTP on: complete the login at /auth/login/second-factor", body = SecondFactorChallengeBody),
        (status = 400, description = "Malformed request"),
        (status = 401, description = "Invalid credentials, or the provider wants a second factor"),
        (status = 403, description = "No linked account, the account is disabled, or a plugin refused the login (hook-denied)"),
        (status = 422, description = "A field is invalid"),
        (status = 429, description = "Too many attempts"),
        (status = 503, description = "The provider is unavailable or failed"),
    )
)]
pub(super) async fn login(
    State(state): State<AppState>,
    client: Client,
    ApiJson(body): ApiJson<LoginRequest>,
) -> ApiResult<Response> {
    let identity = identity(&state)?;
    let provider = body.provider.as_deref().unwrap_or(LOCAL_PASSWORD);
    let mut errors = Vec::new();
    check_len(&mut errors, "provider", provider, 128);
    check_len(&mut errors, "username", &body.username, 256);
    check_len(&mut errors, "password", &body.password, 1024);
    if let Some(code) = &body.second_factor {
        check_len(&mut errors, "second_factor", code, 64);
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let limits = identity.options().rate_limits;
    let limiter = identity.limiter();
    client.limit_address(identity, "login", limits.login_per_ip)?;
    let account = format!(
        "login:account:{provider}:{}",
        body.username.trim().to_lowercase()
    );
    limiter
        .check(&account, limits.login_per_account)
        .map_err(ApiError::rate_limited)?;
    // A few provider calls per address at once: a flood from one address
    // cannot take every instance of the provider from everyone else.
    let _slot = identity
        .address_slots()
        .try_acquire(&client.ip_key())
        .ok_or_else(|| ApiError::rate_limited(std::time::Duration::from_secs(1)))?;
    let tokens = identity
        .login_with_password(
            provider,
            &body.username,
            &body.password,
            body.second_factor.as_deref(),
            &client.actor,
        )
        .await;
    match tokens {
        Ok(tokens) => Ok(Json(TokenResponse::from(tokens)).into_response()),
        Err(error) => login_answer(error),
    }
}

/// A second factor: exactly one of `code` and `recovery_code`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecondFactorBody {
    /// A 6-digit code from the authenticator app.
    #[serde(default)]
    pub code: Option<String>,
    /// One of the recovery codes (works once).
    #[serde(default)]
    pub recovery_code: Option<String>,
}

impl SecondFactorBody {
    /// The factor, or per-field errors.
    pub(crate) fn factor(&self) -> Result<SecondFactor<'_>, ApiError> {
        let field =
            |name: &str, message: &str| Err(ApiError::field(FieldLocation::Body, name, message));
        match (&self.code, &self.recovery_code) {
            (Some(_), Some(_)) => field(
                "recovery_code",
                "send either code or recovery_code, not both",
            ),
            (None, None) => field(
                "code",
                "send code (from the authenticator app) or recovery_code",
            ),
            (Some(code), None) => {
                let len = code.chars().count();
                if len == 0 || len > 16 {
                    field("code", "must be 1 to 16 characters")
                } else {
                    Ok(SecondFactor::Code(code))
                }
            }
            (None, Some(code)) => {
                let len = code.chars().count();
                if len == 0 || len > 64 {
                    field("recovery_code", "must be 1 to 64 characters")
                } else {
                    Ok(SecondFactor::RecoveryCode(code))
                }
            }
        }
    }
}

/// Completes a login that answered `202` with a challenge.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecondFactorLoginRequest {
    /// The challenge from `/auth/login`.
    pub challenge: String,
    /// A 6-digit code from the authenticator app.
    #[serde(default)]
    pub code: Option<String>,
    /// One of the recovery codes (works once).
    #[serde(default)]
    pub recovery_code: Option<String>,
}

/// Completes a login with the second factor: a TOTP code or a recovery
/// code, and the challenge `/auth/login` returned.
#[utoipa::path(
    post,
    path = "/auth/login/second-factor",
    tag = "auth",
    request_body = SecondFactorLoginRequest,
    responses(
        (status = 200, description = "Logged in", body = TokenResponse),
        (status = 401, description = "Invalid or expired challenge, or a wrong or reused code"),
        (status = 403, description = "The account is disabled, or a plugin refused the login (hook-denied)"),
        (status = 422, description = "A field is invalid"),
        (status = 423, description = "Too many wrong codes; the second factor is locked"),
        (status = 429, description = "Too many attempts"),
    )
)]
pub(super) async fn second_factor(
    State(state): State<AppState>,
    client: Client,
    ApiJson(body): ApiJson<SecondFactorLoginRequest>,
) -> ApiResult<Json<TokenResponse>> {
    let identity = identity(&state)?;
    let mut errors = Vec::new();
    check_len(&mut errors, "challenge", &body.challenge, 128);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let factor_body = SecondFactorBody {
        code: body.code.clone(),
        recovery_code: body.recovery_code.clone(),
    };
    let factor = factor_body.factor()?;
    client.limit_address(
        identity,
        "second-factor",
        identity.options().rate_limits.second_factor_per_ip,
    )?;
    match identity
        .complete_second_factor(&body.challenge, factor, &client.actor)
        .await
    {
        Ok(tokens) => Ok(Json(tokens.into())),
        Err(error) => Err(second_factor_error(error)),
    }
}

/// The refusal of a second factor while logging in.
pub(crate) fn second_factor_error(error: SecondFactorError) -> ApiError {
    match error {
        SecondFactorError::InvalidChallenge => ApiError::refused(
            Code::InvalidChallenge,
            "the login challenge is invalid, expired or used; log in again",
        ),
        SecondFactorError::InvalidCode => ApiError::refused(
            Code::InvalidSecondFactor,
            "the code is wrong or was used before",
        ),
        SecondFactorError::Locked(wait) => locked(wait),
        SecondFactorError::RateLimited(wait) => ApiError::rate_limited(wait),
        SecondFactorError::Disabled => {
            ApiError::refused(Code::AccountDisabled, "this account is disabled")
        }
        SecondFactorError::HookDenied(denied) => ApiError::from(denied),
        SecondFactorError::Db(error) => ApiError::from(error),
    }
}

/// `423 account-locked` for a locked second factor, with `Retry-After`.
pub(crate) fn locked(wait: std::time::Duration) -> ApiError {
    ApiError::retry_later(
        Code::AccountLocked,
        format!(
            "too many wrong codes; the second factor is locked for {} more minutes",
            wait.as_secs().div_ceil(60).max(1)
        ),
        wait,
    )
}

/// Keeps the TOTP constants documented here in step with [`totp`].
const _: () = assert!(totp::MAX_FAILED_ATTEMPTS == 5 && totp::LOCKOUT.as_secs() == 900);

/// A refresh token.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// The refresh token from the last login or refresh.
    pub refresh_token: String,
}

/// Exchanges a refresh token for a new access token and refresh token.
/// Each refresh token works once; using one twice revokes its session.
#[utoipa::path(
    post,
    path = "/auth/refresh",
    tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "New tokens", body = TokenResponse),
        (status = 401, description = "Invalid, expired or reused refresh token"),
        (status = 422, description = "A field is invalid"),
        (status = 429, description = "Too many attempts"),
    )
)]
pub(super) async fn refresh(
    State(state): State<AppState>,
    client: Client,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> ApiResult<Json<TokenResponse>> {
    let identity = identity(&state)?;
    client.limit_address(
        identity,
        "refresh",
        identity.options().rate_limits.refresh_per_ip,
    )?;
    match identity.refresh(&body.refresh_token, &client.actor).await {
        Ok(tokens) => Ok(Json(tokens.into())),
        Err(RefreshError::Invalid) => Err(ApiError::refused(
            Code::InvalidRefreshToken,
            "the refresh token is invalid, expired or revoked; log in again",
        )),
        Err(RefreshError::Reused) => Err(ApiError::refused(
            Code::RefreshTokenReused,
            "this refresh token was used before; the session has been revoked, log in again",
        )),
        Err(RefreshError::Db(error)) => Err(ApiError::from(error)),
    }
}

/// Ends the session a refresh token belongs to: its refresh tokens and
/// access tokens stop working. Answers `204` whether or not the token was
/// known.
#[utoipa::path(
    post,
    path = "/auth/logout",
    tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 204, description = "Logged out"),
        (status = 422, description = "A field is invalid"),
    )
)]
pub(super) async fn logout(
    State(state): State<AppState>,
    client: Client,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> ApiResult<StatusCode> {
    let identity = identity(&state)?;
    let db = identity.db();
    let session = crate::identity::tokens::session_of_refresh(db, &body.refresh_token).await?;
    if let Some((user_id, session_id)) = session {
        let actor = Actor {
            user_id: Some(user_id.clone()),
            ..client.actor
        };
        let ended = crate::identity::tokens::revoke_session(
            db,
            &user_id,
            &session_id,
            crate::identity::tokens::SessionEnd::Logout,
            &actor,
        )
        .await?;
        // `user.logout` has after-hooks only: ending a session is never
        // refused (see `crate::plugins::hooks`).
        if ended && let Some(user) = users::find_user(db, &user_id).await? {
            let done = hooks::event(
                EventKind::UserLogout,
                Payload::User(user.hook_info()),
                &actor,
            );
            hooks::spawn_after(state.plugins(), done);
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The caller and the permissions it holds.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MeResponse {
    /// The user.
    pub user: UserBody,
    /// The permissions this request holds (for an API key: its scopes
    /// within the user's permissions).
    pub permissions: Vec<String>,
}

/// Who is calling.
#[utoipa::path(
    get,
    path = "/auth/me",
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller", body = MeResponse),
    )
)]
pub(super) async fn me(
    auth: Authenticated,
    State(state): State<AppState>,
) -> ApiResult<Json<MeResponse>> {
    let identity = identity(&state)?;
    let user = users::find_user(identity.db(), auth.principal.user_id())
        .await?
        .ok_or_else(|| ApiError::NotFound("the user no longer exists".into()))?;
    let permissions = crate::identity::permissions::all()
        .into_iter()
        .filter(|p| auth.principal.has_permission(p))
        .collect();
    Ok(Json(MeResponse {
        user: user.into(),
        permissions,
    }))
}
