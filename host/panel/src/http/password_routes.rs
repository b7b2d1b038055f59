//! `PUT /api/v1/account/password`: the caller changes their own password
//! through the password provider their account signs in with (the core
//! stores no password; the provider checks the current one, applies its
//! policy to the new one and keeps it).
//!
//! Only a login session may do this (an API key gets `403
//! session-required`), attempts count against the per-account login rate
//! limit, and a wrong current password counts toward the provider's own
//! lockout. Refusals: `422` with a field error on `current_password` (wrong)
//! or `new_password` (the provider's policy, in its words), `409
//! no-password-identity` when the account signs in without a password,
//! `423 account-locked`, `429 rate-limited`, `503` when the provider is
//! unavailable or fails. A change appends `user.password-changed`.
//!
//! A change ends every other session of the account at once (their refresh
//! and access tokens stop working, and their console sockets close); the
//! session that made the change stays, so the person changing it is not
//! logged out. The event records how many ended (`sessions_revoked`).
//! API keys stay: each is a deliberate, scoped credential for a script,
//! listed with its creation and last use and revocable one by one, and
//! since only a login session can create one, a person who suspects a key
//! leaked revokes it there; revoking every key on each password rotation
//! would break automation for no gain when only the password leaked.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use cap_runtime::api::{AuthError, Credentials, PasswordCredentials};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::require_session;
use super::auth::{Authenticated, Credential};
use super::auth_routes::{check_len, identity};
use super::error::{ApiError, ApiResult, Code, FieldLocation};
use super::extract::ApiJson;
use crate::identity::passwords::password_identity;
use crate::identity::users;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(change))
}

/// A password change.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    /// The password now.
    pub current_password: String,
    /// The new password; the provider's policy decides what it accepts.
    pub new_password: String,
}

fn unavailable(detail: &str) -> ApiError {
    ApiError::refused(Code::ProviderUnavailable, detail)
}

/// Changes the caller's password through their password provider.
#[utoipa::path(
    put,
    path = "/account/password",
    tag = "account",
    security(("bearer" = [])),
    request_body = PasswordChange,
    responses(
        (status = 204, description = "Changed"),
        (status = 403, description = "Called with an API key"),
        (status = 409, description = "The account signs in without a password"),
        (status = 422, description = "The current password is wrong, or the provider refuses the new one"),
        (status = 423, description = "Too many wrong passwords; locked for now"),
        (status = 429, description = "Too many attempts"),
        (status = 503, description = "The provider is unavailable or failed"),
    )
)]
pub(super) async fn change(
    auth: Authenticated,
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<PasswordChange>,
) -> ApiResult<StatusCode> {
    require_session(&headers)?;
    let mut errors = Vec::new();
    check_len(
        &mut errors,
        "current_password",
        &body.current_password,
        1024,
    );
    check_len(&mut errors, "new_password", &body.new_password, 1024);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let identity = identity(&state)?;
    let user_id = auth.principal.user_id().to_owned();
    let limits = identity.options().rate_limits;
    identity
        .limiter()
        .check(
            &format!("password:account:{user_id}"),
            limits.login_per_account,
        )
        .map_err(ApiError::rate_limited)?;
    let db = state.db();
    let user = users::find_user(db, &user_id)
        .await?
        .ok_or_else(|| ApiError::NotFound("this account no longer exists".into()))?;
    let Some((plugin, link)) = password_identity(identity, &user_id).await? else {
        return Err(ApiError::refused(
            Code::NoPasswordIdentity,
            "this account signs in through a provider without passwords",
        ));
    };
    let turn = identity
        .account_turn(&link.provider_id, &user.username)
        .await;
    let checked = plugin
        .authenticate(&Credentials::Password(PasswordCredentials {
            username: user.username.clone(),
            password: body.current_password.clone(),
            second_factor: None,
        }))
        .await;
    drop(turn);
    match checked {
        Ok(Ok(found)) if found.subject == link.subject => {}
        Ok(Ok(_) | Err(AuthError::InvalidCredentials | AuthError::NeedsSecondFactor)) => {
            return Err(ApiError::field(
                FieldLocation::Body,
                "current_password",
                "is not your current password",
            ));
        }
        Ok(Err(AuthError::Locked(retry))) => {
            return Err(ApiError::Refused {
                code: Code::AccountLocked,
                detail: "too many wrong passwords; the account is locked for now".into(),
                retry_after: retry,
            });
        }
        Ok(Err(error)) => {
            tracing::warn!(%error, "auth provider refused a password check");
            return Err(unavailable(
                "the sign-in provider could not check the password",
            ));
        }
        Err(error) => {
            tracing::warn!(%error, "auth provider plugin failed");
            return Err(unavailable("the sign-in provider failed; try again later"));
        }
    }
    match plugin
        .set_password(&user.username, &body.new_password)
        .await
    {
        Ok(Ok(())) => {}
        Ok(Err(AuthError::PolicyViolation(reasons))) => {
            return Err(ApiError::field(
                FieldLocation::Body,
                "new_password",
                reasons.join("; "),
            ));
        }
        Ok(Err(AuthError::InvalidRequest(reason))) => {
            return Err(ApiError::field(FieldLocation::Body, "new_password", reason));
        }
        Ok(Err(error)) => {
            tracing::warn!(%error, "auth provider refused a new password");
            return Err(unavailable(
                "the sign-in provider could not store the password",
            ));
        }
        Err(error) => {
            tracing::warn!(%error, "auth provider plugin failed");
            return Err(unavailable("the sign-in provider failed; try again later"));
        }
    }
    let current = match auth.principal.credential() {
        Some(Credential::Session(session_id)) => Some(session_id.as_str()),
        _ => None,
    };
    users::revoke_other_sessions(db, &user_id, current, &link.provider_id, &auth.actor).await?;
    Ok(StatusCode::NO_CONTENT)
}
