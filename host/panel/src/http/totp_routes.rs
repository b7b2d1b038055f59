//! `/api/v1/account/totp`: the caller's TOTP second factor.
//!
//! | Method | Path | What |
//! | --- | --- | --- |
//! | `GET` | `/account/totp` | enabled, pending, recovery codes left |
//! | `POST` | `/account/totp` | begin enrollment: the secret and `otpauth://` URL, shown this once |
//! | `POST` | `/account/totp/confirm` | `{code}`: enable, returning 10 recovery codes, shown this once |
//! | `DELETE` | `/account/totp` | `{code}` or `{recovery_code}`: turn it off |
//! | `POST` | `/account/totp/recovery-codes` | `{code}` or `{recovery_code}`: replace the recovery codes, shown this once |
//!
//! Only a login session manages the second factor: a request made with an
//! API key gets `403 session-required`, so a leaked script key cannot put
//! its own authenticator between the owner and their account, nor remove
//! theirs.
//!
//! Refusals: `409 totp-already-enabled`, `409 totp-not-pending`,
//! `409 totp-not-enabled`, `422` with a field error for a wrong
//! confirmation code, `403 invalid-second-factor` for a wrong code when
//! turning it off (which counts toward the lockout), `423 account-locked`,
//! `429 rate-limited`. See [`crate::identity::totp`] for the design.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Authenticated;
use super::auth::require_session;
use super::auth_routes::{SecondFactorBody, identity, locked};
use super::error::{ApiError, ApiResult, Code, FieldLocation};
use super::extract::ApiJson;
use crate::identity::totp::{self, TotpError};
use crate::identity::users;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(status, begin, disable))
        .routes(routes!(confirm))
        .routes(routes!(regenerate_recovery_codes))
}

/// The caller's second-factor state.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TotpStatusBody {
    /// Logins need a code.
    pub enabled: bool,
    /// An enrollment awaits confirmation.
    pub pending: bool,
    /// Unused recovery codes.
    pub recovery_codes_remaining: u32,
}

/// What the authenticator app needs. Shown once.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TotpEnrollmentBody {
    /// The secret, base32 (RFC 4648, no padding), for manual entry.
    pub secret: String,
    /// The `otpauth://totp/…` URL, for a QR code.
    pub otpauth_url: String,
    /// The issuer shown in the app.
    pub issuer: String,
    /// Always `SHA1`.
    pub algorithm: String,
    /// Digits per code (6).
    pub digits: u8,
    /// Seconds per code (30).
    pub period: u64,
}

/// A code from the authenticator app.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpConfirmRequest {
    /// The current 6-digit code.
    pub code: String,
}

/// Recovery codes, shown once: each works once in place of a code.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RecoveryCodesBody {
    /// The codes.
    pub recovery_codes: Vec<String>,
}

fn totp_error(error: TotpError) -> ApiError {
    match error {
        TotpError::AlreadyEnabled => ApiError::refused(
            Code::TotpAlreadyEnabled,
            "TOTP is already enabled; turn it off first to enroll again",
        ),
        TotpError::NotPending => ApiError::refused(
            Code::TotpNotPending,
            "start an enrollment with POST /api/v1/account/totp first",
        ),
        TotpError::NotEnabled => {
            ApiError::refused(Code::TotpNotEnabled, "TOTP is not enabled on this account")
        }
        TotpError::InvalidCode => ApiError::refused(
            Code::WrongSecondFactor,
            "the code is wrong or was used before",
        ),
        TotpError::Locked(wait) => locked(wait),
        TotpError::Db(error) => ApiError::from(error),
    }
}

/// The caller's TOTP state.
#[utoipa::path(
    get,
    path = "/account/totp",
    tag = "account",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The state", body = TotpStatusBody),
    )
)]
pub(super) async fn status(
    auth: Authenticated,
    State(state): State<AppState>,
) -> ApiResult<Json<TotpStatusBody>> {
    let status = totp::status(state.db(), auth.principal.user_id()).await?;
    Ok(Json(TotpStatusBody {
        enabled: status.enabled,
        pending: status.pending,
        recovery_codes_remaining: status.recovery_codes_remaining,
    }))
}

/// Begins TOTP enrollment: returns a fresh secret, shown only now. TOTP is
/// not on until confirmed with a code; calling again replaces a pending
/// secret.
#[utoipa::path(
    post,
    path = "/account/totp",
    tag = "account",
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Enrollment started", body = TotpEnrollmentBody),
        (status = 403, description = "Called with an API key"),
        (status = 409, description = "TOTP is already enabled"),
    )
)]
pub(super) async fn begin(
    auth: Authenticated,
    State(state): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<(StatusCode, Json<TotpEnrollmentBody>)> {
    require_session(&headers)?;
    let user = users::find_user(state.db(), auth.principal.user_id())
        .await?
        .ok_or_else(|| ApiError::NotFound("the user no longer exists".into()))?;
    let enrollment = totp::begin_enrollment(state.db(), &user, &auth.actor)
        .await
        .map_err(totp_error)?;
    Ok((
        StatusCode::CREATED,
        Json(TotpEnrollmentBody {
            secret: enrollment.secret,
            otpauth_url: enrollment.otpauth_url,
            issuer: totp::ISSUER.to_owned(),
            algorithm: "SHA1".to_owned(),
            digits: totp::DIGITS,
            period: totp::PERIOD,
        }),
    ))
}

/// Confirms enrollment with a current code: TOTP is on from now, and the
/// response holds 10 recovery codes, shown only now.
#[utoipa::path(
    post,
    path = "/account/totp/confirm",
    tag = "account",
    security(("bearer" = [])),
    request_body = TotpConfirmRequest,
    responses(
        (status = 200, description = "Enabled", body = RecoveryCodesBody),
        (status = 403, description = "Called with an API key"),
        (status = 409, description = "No enrollment pending, or already enabled"),
        (status = 422, description = "The code is wrong"),
    )
)]
pub(super) async fn confirm(
    auth: Authenticated,
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<TotpConfirmRequest>,
) -> ApiResult<Json<RecoveryCodesBody>> {
    require_session(&headers)?;
    let len = body.code.chars().count();
    if len == 0 || len > 16 {
        return Err(ApiError::field(
            FieldLocation::Body,
            "code",
            "must be 1 to 16 characters",
        ));
    }
    match totp::confirm_enrollment(
        state.db(),
        auth.principal.user_id(),
        &body.code,
        &auth.actor,
    )
    .await
    {
        Ok(recovery_codes) => Ok(Json(RecoveryCodesBody { recovery_codes })),
        Err(TotpError::InvalidCode) => Err(ApiError::field(
            FieldLocation::Body,
            "code",
            "is not the current code of the authenticator app",
        )),
        Err(error) => Err(totp_error(error)),
    }
}

/// Turns TOTP off; needs a current code or a recovery code. Wrong codes
/// count toward the lockout.
#[utoipa::path(
    delete,
    path = "/account/totp",
    tag = "account",
    security(("bearer" = [])),
    request_body = SecondFactorBody,
    responses(
        (status = 204, description = "Turned off"),
        (status = 403, description = "The code is wrong or was used before, or called with an API key"),
        (status = 409, description = "TOTP is not enabled"),
        (status = 422, description = "A field is invalid"),
        (status = 423, description = "Too many wrong codes"),
        (status = 429, description = "Too many attempts"),
    )
)]
pub(super) async fn disable(
    auth: Authenticated,
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<SecondFactorBody>,
) -> ApiResult<StatusCode> {
    require_session(&headers)?;
    let factor = body.factor()?;
    let user_id = auth.principal.user_id();
    limit_second_factor(&state, &auth)?;
    totp::disable(state.db(), user_id, factor, &auth.actor)
        .await
        .map_err(totp_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Replaces the recovery codes; needs a current code or a recovery code.
/// The old codes stop working; the response holds the new ones, shown only
/// now.
#[utoipa::path(
    post,
    path = "/account/totp/recovery-codes",
    tag = "account",
    security(("bearer" = [])),
    request_body = SecondFactorBody,
    responses(
        (status = 200, description = "The new codes", body = RecoveryCodesBody),
        (status = 403, description = "The code is wrong or was used before, or called with an API key"),
        (status = 409, description = "TOTP is not enabled"),
        (status = 422, description = "A field is invalid"),
        (status = 423, description = "Too many wrong codes"),
        (status = 429, description = "Too many attempts"),
    )
)]
pub(super) async fn regenerate_recovery_codes(
    auth: Authenticated,
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<SecondFactorBody>,
) -> ApiResult<Json<RecoveryCodesBody>> {
    require_session(&headers)?;
    let factor = body.factor()?;
    limit_second_factor(&state, &auth)?;
    let recovery_codes =
        totp::regenerate_recovery_codes(state.db(), auth.principal.user_id(), factor, &auth.actor)
            .await
            .map_err(totp_error)?;
    Ok(Json(RecoveryCodesBody { recovery_codes }))
}

/// The second-factor rate limits, per client address and per account.
fn limit_second_factor(state: &AppState, auth: &Authenticated) -> ApiResult<()> {
    let user_id = auth.principal.user_id();
    let identity = identity(state)?;
    let limits = identity.options().rate_limits;
    let ip = auth
        .actor
        .ip
        .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
    identity
        .limiter()
        .check(
            &format!("second-factor:ip:{ip}"),
            limits.second_factor_per_ip,
        )
        .map_err(ApiError::rate_limited)?;
    identity
        .limiter()
        .check(
            &format!("second-factor:account:{user_id}"),
            limits.second_factor_per_account,
        )
        .map_err(ApiError::rate_limited)?;
    Ok(())
}
