//! The service's errors as RFC 9457 problem documents.
//!
//! Same wire form as the Panel's (`type` = `urn:ctrl-alt-play:problem:<code>`,
//! `title`, `status`, `detail`, `code`, per-field `errors`), so one client
//! handles both. `code` is stable; the list is on [`ApiError::code`].
//! Internal errors are logged with their cause and answered without detail.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The media type of problem documents.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An RFC 9457 problem document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// `urn:ctrl-alt-play:problem:<code>`.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// Short summary of the problem type.
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// This occurrence, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The stable, machine-readable code.
    pub code: String,
    /// Per-field problems (`validation-failed` only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// One invalid field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FieldError {
    /// `body`, `query`, `path` or `header`.
    #[serde(rename = "in")]
    pub location: String,
    /// The field's name.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl FieldError {
    /// A problem with `field` in `location`.
    pub fn new(location: &str, field: &str, message: impl Into<String>) -> FieldError {
        FieldError {
            location: location.to_owned(),
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

/// What a handler returns instead of a success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// `422 validation-failed`.
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    /// `400 bad-request`.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// `401 unauthenticated`.
    #[error("authentication required: {0}")]
    Unauthenticated(String),
    /// `401 token-expired`: the publisher token is past its expiry.
    #[error("{0}")]
    TokenExpired(String),
    /// `403 key-change-unauthorized`: adding or revoking a key without a
    /// statement signed by one of the publisher's current keys.
    #[error("{0}")]
    KeyChangeUnauthorized(String),
    /// `409 statement-replayed`: a key-change statement's nonce was used.
    #[error("{0}")]
    StatementReplayed(String),
    /// `403 forbidden`: the package belongs to another publisher.
    #[error("{0}")]
    NotOwner(String),
    /// `404 not-found`.
    #[error("{0} not found")]
    NotFound(String),
    /// `409 version-exists`: the version was published with other bytes.
    #[error("{0}")]
    VersionExists(String),
    /// `409 name-taken`: a publisher name is in use.
    #[error("{0}")]
    NameTaken(String),
    /// `409 conflict`: a concurrent change; retry.
    #[error("{0}")]
    Conflict(String),
    /// `422 invalid-package`: the upload is not a valid package.
    #[error("{0}")]
    InvalidPackage(String),
    /// `422 invalid-signature`: the author signature does not verify.
    #[error("{0}")]
    InvalidSignature(String),
    /// `422 unknown-key`: the key is not one of the publisher's.
    #[error("{0}")]
    UnknownKey(String),
    /// `422 key-revoked`: the key was revoked.
    #[error("{0}")]
    KeyRevoked(String),
    /// `409 not-for-sale`: the package is free (or has no price).
    #[error("{0}")]
    NotForSale(String),
    /// `409 payouts-not-configured`: the publisher has no Stripe account.
    #[error("{0}")]
    PayoutsNotConfigured(String),
    /// `409 already-entitled`: the Panel instance already owns the plugin.
    #[error("{0}")]
    AlreadyEntitled(String),
    /// `403 entitlement-revoked`: refunded or lost in a dispute.
    #[error("{0}")]
    EntitlementRevoked(String),
    /// `400 invalid-webhook-signature`: the `Stripe-Signature` check failed.
    #[error("{0}")]
    InvalidWebhookSignature(String),
    /// `503 billing-disabled`: this Marketplace sells nothing.
    #[error("billing is not configured on this Marketplace")]
    BillingDisabled,
    /// `502 payment-provider-error`: Stripe refused or did not answer.
    #[error("the payment provider failed: {0}")]
    PaymentProvider(String),
    /// `413 payload-too-large`.
    #[error("the request body is larger than the Marketplace accepts")]
    PayloadTooLarge,
    /// `405 method-not-allowed`.
    #[error("this route does not accept that method")]
    MethodNotAllowed,
    /// `429 rate-limited`, with the seconds to wait.
    #[error("too many requests")]
    RateLimited(u64),
    /// `500 internal-error`.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// The status and stable code. Codes: `validation-failed`,
    /// `bad-request`, `unauthenticated`, `token-expired`,
    /// `key-change-unauthorized`, `statement-replayed`, `not-owner`, `not-found`,
    /// `version-exists`, `name-taken`, `conflict`, `invalid-package`,
    /// `invalid-signature`, `unknown-key`, `key-revoked`,
    /// `not-for-sale`, `payouts-not-configured`, `already-entitled`,
    /// `entitlement-revoked`, `invalid-webhook-signature`, `billing-disabled`,
    /// `payment-provider-error`,
    /// `payload-too-large`, `method-not-allowed`, `rate-limited`, `internal-error`.
    pub fn code(&self) -> (StatusCode, &'static str, &'static str) {
        use StatusCode as S;
        match self {
            Self::Validation(_) => (
                S::UNPROCESSABLE_ENTITY,
                "validation-failed",
                "Validation failed",
            ),
            Self::BadRequest(_) => (S::BAD_REQUEST, "bad-request", "Bad request"),
            Self::Unauthenticated(_) => (
                S::UNAUTHORIZED,
                "unauthenticated",
                "Authentication required",
            ),
            Self::TokenExpired(_) => (S::UNAUTHORIZED, "token-expired", "Token expired"),
            Self::KeyChangeUnauthorized(_) => (
                S::FORBIDDEN,
                "key-change-unauthorized",
                "Key change not signed by a current key",
            ),
            Self::StatementReplayed(_) => (
                S::CONFLICT,
                "statement-replayed",
                "Key-change statement already used",
            ),
            Self::NotOwner(_) => (
                S::FORBIDDEN,
                "not-owner",
                "Package owned by another publisher",
            ),
            Self::NotFound(_) => (S::NOT_FOUND, "not-found", "Not found"),
            Self::VersionExists(_) => (S::CONFLICT, "version-exists", "Version already published"),
            Self::NameTaken(_) => (S::CONFLICT, "name-taken", "Name taken"),
            Self::Conflict(_) => (S::CONFLICT, "conflict", "Concurrent change"),
            Self::InvalidPackage(_) => (
                S::UNPROCESSABLE_ENTITY,
                "invalid-package",
                "Invalid package",
            ),
            Self::InvalidSignature(_) => (
                S::UNPROCESSABLE_ENTITY,
                "invalid-signature",
                "Invalid signature",
            ),
            Self::UnknownKey(_) => (S::UNPROCESSABLE_ENTITY, "unknown-key", "Unknown key"),
            Self::KeyRevoked(_) => (S::UNPROCESSABLE_ENTITY, "key-revoked", "Key revoked"),
            Self::NotForSale(_) => (S::CONFLICT, "not-for-sale", "Not for sale"),
            Self::PayoutsNotConfigured(_) => (
                S::CONFLICT,
                "payouts-not-configured",
                "Publisher cannot be paid",
            ),
            Self::AlreadyEntitled(_) => (S::CONFLICT, "already-entitled", "Already purchased"),
            Self::EntitlementRevoked(_) => {
                (S::FORBIDDEN, "entitlement-revoked", "Entitlement revoked")
            }
            Self::InvalidWebhookSignature(_) => (
                S::BAD_REQUEST,
                "invalid-webhook-signature",
                "Invalid webhook signature",
            ),
            Self::BillingDisabled => (
                S::SERVICE_UNAVAILABLE,
                "billing-disabled",
                "Billing disabled",
            ),
            Self::PaymentProvider(_) => (
                S::BAD_GATEWAY,
                "payment-provider-error",
                "Payment provider error",
            ),
            Self::PayloadTooLarge => (
                S::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Payload too large",
            ),
            Self::MethodNotAllowed => (
                S::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
            ),
            Self::RateLimited(_) => (S::TOO_MANY_REQUESTS, "rate-limited", "Too many requests"),
            Self::Internal(_) => (S::INTERNAL_SERVER_ERROR, "internal-error", "Internal error"),
        }
    }

    /// The problem document.
    pub fn problem(&self) -> Problem {
        let (status, code, title) = self.code();
        let detail = match self {
            Self::Internal(_) => Some("an internal error occurred; it has been logged".to_owned()),
            Self::Validation(errors) => Some(format!(
                "{} field{} invalid",
                errors.len(),
                if errors.len() == 1 { " is" } else { "s are" }
            )),
            other => Some(other.to_string()),
        };
        Problem {
            problem_type: format!("urn:ctrl-alt-play:problem:{code}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail,
            code: code.to_owned(),
            errors: match self {
                Self::Validation(errors) => errors.clone(),
                _ => Vec::new(),
            },
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e
            && db.is_unique_violation()
        {
            return ApiError::Conflict("a concurrent change won; retry the request".into());
        }
        ApiError::Internal(format!("database: {e}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Self::Internal(cause) = &self {
            tracing::error!(%cause, "internal error");
        }
        let problem = self.problem();
        let status =
            StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (status, body).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Self::RateLimited(seconds) = self
            && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

/// `Result` with [`ApiError`].
pub type ApiResult<T> = Result<T, ApiError>;
