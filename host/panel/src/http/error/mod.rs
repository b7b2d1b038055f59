//! [`ApiError`] and its wire form, the RFC 9457 problem document.
//!
//! Every error response of the API — from a handler, an extractor, the
//! router (unknown route, wrong method), a body limit or a panic — is an
//! `application/problem+json` document:
//!
//! ```json
//! {
//!   "type": "urn:ctrl-alt-play:problem:validation-failed",
//!   "title": "Validation failed",
//!   "status": 422,
//!   "detail": "1 field is invalid",
//!   "instance": "/api/v1/audit-log",
//!   "code": "validation-failed",
//!   "request_id": "5f0c…",
//!   "errors": [{ "in": "query", "field": "limit", "message": "must be between 1 and 200" }]
//! }
//! ```
//!
//! `code` is the stable, machine-readable part: clients branch on it, and
//! it never changes meaning once released. Every code, with its status and
//! title, is a row of one table, the [`Code`] enum (its docs show the
//! table, generated from the enum). `type` is the same code as a URN. `title` and `detail` are for
//! people. `errors` lists per-field problems and is present only for
//! `validation-failed`.
//!
//! Internal errors are logged with their whole causal chain and the
//! request id, and answered with a generic `internal-error` document that
//! carries the request id but no detail.
//!
//! [`ApiError`] is the one error type of every Panel route: handlers,
//! extractors, the Agent and console sockets and the middleware all
//! answer through it, so a refusal with a code of its own is
//! [`ApiError::Refused`] with a [`Code`], never a hand-built document.
//!
//! [`ApiError::into_response`] renders the document at once; the
//! [`normalize`] middleware then adds the request id and `instance`, and
//! turns any other error response (the router's `405`, a panic's `500`)
//! into a problem document too.

use std::fmt;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::request_id::RequestId;
use crate::db::DbError;

pub use crate::error_code::Code;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The media type of problem documents.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The `type` URI prefix; the code follows it.
pub const PROBLEM_TYPE_PREFIX: &str = "urn:ctrl-alt-play:problem:";

/// `Result` with [`ApiError`] as the default error, for handlers.
pub type ApiResult<T, E = ApiError> = std::result::Result<T, E>;

/// An RFC 9457 problem document, as sent to clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "type": "urn:ctrl-alt-play:problem:validation-failed",
    "title": "Validation failed",
    "status": 422,
    "detail": "1 field is invalid",
    "instance": "/api/v1/audit-log",
    "code": "validation-failed",
    "request_id": "0b5c4bd6a3f04c1c9d1e2f3a4b5c6d7e",
    "errors": [{"in": "query", "field": "limit", "message": "must be between 1 and 200"}]
}))]
pub struct Problem {
    /// `urn:ctrl-alt-play:problem:<code>`.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// A short, human-readable summary of the problem type.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// A human-readable explanation of this occurrence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The request path this occurrence is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// The stable, machine-readable error code.
    pub code: String,
    /// The request's id, as in the `x-request-id` response header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Per-field problems (only for `validation-failed`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

impl Problem {
    /// A problem with `status`, `code` and `title` and nothing else.
    pub fn new(status: StatusCode, code: &str, title: &str) -> Problem {
        Problem {
            problem_type: format!("{PROBLEM_TYPE_PREFIX}{code}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: None,
            instance: None,
            code: code.to_owned(),
            request_id: None,
            errors: Vec::new(),
        }
    }

    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn into_response_with(self, mut response: Response) -> Response {
        let body = serde_json::to_vec(&self).unwrap_or_else(|_| b"{}".to_vec());
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        headers.remove(header::CONTENT_LENGTH);
        *response.status_mut() = self.status_code();
        response.extensions_mut().insert(self);
        *response.body_mut() = Body::from(body);
        response
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        self.into_response_with(Response::new(Body::empty()))
    }
}

/// Where an invalid field was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FieldLocation {
    /// The JSON body; `field` is a dotted path (`server.limits.memory`).
    Body,
    /// The query string; `field` is the parameter.
    Query,
    /// The path; `field` is the path parameter.
    Path,
    /// A header; `field` is its name.
    Header,
}

/// One invalid field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FieldError {
    /// Where the field is.
    #[serde(rename = "in")]
    pub location: FieldLocation,
    /// Its name or path; empty when the problem is with the whole input.
    pub field: String,
    /// What is wrong, for people.
    pub message: String,
}

impl FieldError {
    /// A problem with `field` in `location`.
    pub fn new(
        location: FieldLocation,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        FieldError {
            location,
            field: field.into(),
            message: message.into(),
        }
    }
}

/// An API error: what every handler, extractor and middleware of the
/// Panel returns instead of a success.
///
/// Each variant answers with the status and title of its [`Code`] (see the
/// module docs for the wire form). The generic variants carry what their
/// detail needs; [`ApiError::Refused`] is every refusal with a code of its
/// own (a route's module lists its codes).
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// `422 validation-failed`: one or more fields are invalid.
    #[error("validation failed: {}", summarize(.0))]
    Validation(Vec<FieldError>),
    /// `400 malformed-json`: the body is not JSON.
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    /// `400 bad-request`: the request is wrong in a way no field explains.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// `415 unsupported-media-type`: the body's content type is not
    /// accepted; the detail names the accepted type.
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(String),
    /// `413 payload-too-large`: the body exceeds the configured limit.
    #[error("request body too large")]
    PayloadTooLarge,
    /// `401 unauthenticated`: no valid credentials.
    #[error("authentication required: {0}")]
    Unauthenticated(String),
    /// `403 forbidden`: authenticated, but lacking the named permission.
    #[error("missing permission {permission}")]
    Forbidden {
        /// The permission the operation needs.
        permission: String,
    },
    /// `403 session-required`: the operation manages credentials (API
    /// keys, the second factor, the password) and was called with an API
    /// key; it needs a login session's access token.
    #[error("a login session is required")]
    SessionRequired,
    /// `403 permission-not-held`: the caller grants permissions (to a role,
    /// through a role assignment or as an API key's scopes) that they do
    /// not hold themselves.
    #[error("grants permissions not held: {}", .0.join(", "))]
    PermissionNotHeld(Vec<String>),
    /// `403 admin-only-permission`: a non-administrator grants permissions
    /// only administrators may grant
    /// ([`is_admin_only`](crate::identity::permissions::is_admin_only)).
    #[error("grants admin-only permissions: {}", .0.join(", "))]
    AdminOnlyPermission(Vec<String>),
    /// `403 own-roles`: the caller changes their own roles.
    #[error("changes their own roles")]
    OwnRoles,
    /// `404 not-found`: no such route or resource.
    #[error("not found: {0}")]
    NotFound(String),
    /// `405 method-not-allowed`.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// `409 conflict`: the resource exists or changed meanwhile.
    #[error("conflict: {0}")]
    Conflict(String),
    /// `503 service-unavailable`: a dependency (the database) is down.
    #[error("service unavailable")]
    Unavailable(#[source] BoxError),
    /// `500 internal-error`: a bug or an unexpected failure. The source is
    /// logged, never sent.
    #[error("internal error")]
    Internal(#[source] BoxError),
    /// A refusal with a code of its own: the status and title are the
    /// code's, `detail` is sent as is, and `retry_after` (seconds, at
    /// least 1) becomes a `Retry-After` header.
    #[error("{code}: {detail}")]
    Refused {
        /// The stable code.
        code: Code,
        /// For people.
        detail: String,
        /// Seconds before trying again is worth it.
        retry_after: Option<u64>,
    },
    /// The Marketplace refused to start a checkout: its code, relayed
    /// (a code the Panel does not know becomes `502
    /// marketplace-unavailable`), with the title "The Marketplace refused
    /// the checkout".
    #[error("the Marketplace refused the checkout ({code}): {detail}")]
    CheckoutRefused {
        /// The Marketplace's code.
        code: Code,
        /// Its explanation.
        detail: String,
    },
}

fn summarize(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

impl ApiError {
    /// A validation error about a single field.
    pub fn field(
        location: FieldLocation,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        ApiError::Validation(vec![FieldError::new(location, field, message)])
    }

    /// An internal error wrapping `source`.
    pub fn internal(source: impl Into<BoxError>) -> Self {
        ApiError::Internal(source.into())
    }

    /// A refusal with `code` and `detail`.
    pub fn refused(code: Code, detail: impl Into<String>) -> Self {
        ApiError::Refused {
            code,
            detail: detail.into(),
            retry_after: None,
        }
    }

    /// A refusal with `code` and `detail`, worth retrying after `wait`
    /// (rounded up to whole seconds, at least one).
    pub fn retry_later(code: Code, detail: impl Into<String>, wait: std::time::Duration) -> Self {
        ApiError::Refused {
            code,
            detail: detail.into(),
            retry_after: Some(wait.as_secs_f64().ceil() as u64),
        }
    }

    /// `429 rate-limited` with `Retry-After`.
    pub fn rate_limited(wait: std::time::Duration) -> Self {
        ApiError::retry_later(
            Code::RateLimited,
            "too many attempts; wait before trying again",
            wait,
        )
    }

    /// The HTTP status: the [code](ApiError::code)'s.
    pub fn status_code(&self) -> StatusCode {
        self.code().status()
    }

    /// The stable code (the list is [`Code`]).
    pub fn code(&self) -> Code {
        match self {
            ApiError::Validation(_) => Code::ValidationFailed,
            ApiError::MalformedJson(_) => Code::MalformedJson,
            ApiError::BadRequest(_) => Code::BadRequest,
            ApiError::UnsupportedMediaType(_) => Code::UnsupportedMediaType,
            ApiError::PayloadTooLarge => Code::PayloadTooLarge,
            ApiError::Unauthenticated(_) => Code::Unauthenticated,
            ApiError::Forbidden { .. } => Code::Forbidden,
            ApiError::SessionRequired => Code::SessionRequired,
            ApiError::PermissionNotHeld(_) => Code::PermissionNotHeld,
            ApiError::AdminOnlyPermission(_) => Code::AdminOnlyPermission,
            ApiError::OwnRoles => Code::OwnRoles,
            ApiError::NotFound(_) => Code::NotFound,
            ApiError::MethodNotAllowed => Code::MethodNotAllowed,
            ApiError::Conflict(_) => Code::Conflict,
            ApiError::Unavailable(_) => Code::ServiceUnavailable,
            ApiError::Internal(_) => Code::InternalError,
            ApiError::Refused { code, .. } | ApiError::CheckoutRefused { code, .. } => *code,
        }
    }

    fn title(&self) -> &'static str {
        match self {
            ApiError::CheckoutRefused { .. } => "The Marketplace refused the checkout",
            other => other.code().title(),
        }
    }

    /// The detail sent to the client; never includes internal sources.
    fn detail(&self) -> Option<String> {
        match self {
            ApiError::Validation(errors) => Some(match errors.len() {
                1 => "1 field is invalid".to_owned(),
                n => format!("{n} fields are invalid"),
            }),
            ApiError::MalformedJson(d)
            | ApiError::BadRequest(d)
            | ApiError::UnsupportedMediaType(d)
            | ApiError::Unauthenticated(d)
            | ApiError::NotFound(d)
            | ApiError::Conflict(d)
            | ApiError::Refused { detail: d, .. }
            | ApiError::CheckoutRefused { detail: d, .. } => Some(d.clone()),
            ApiError::Forbidden { permission } => {
                Some(format!("this operation needs the {permission} permission"))
            }
            ApiError::SessionRequired => Some(
                "API keys cannot manage API keys, the second factor or the password; \
                 log in and use the access token"
                    .into(),
            ),
            ApiError::PermissionNotHeld(permissions) => Some(format!(
                "you cannot grant permissions you do not hold: {}",
                permissions.join(", ")
            )),
            ApiError::AdminOnlyPermission(permissions) => Some(format!(
                "only administrators may grant {}",
                permissions.join(", ")
            )),
            ApiError::OwnRoles => {
                Some("nobody changes their own roles; another user administrator must do it".into())
            }
            ApiError::PayloadTooLarge => Some("the request body exceeds the size limit".into()),
            ApiError::MethodNotAllowed => {
                Some("the resource does not support this method; see the Allow header".into())
            }
            ApiError::Unavailable(_) => {
                Some("a service the Panel depends on is unavailable; try again later".into())
            }
            ApiError::Internal(_) => None,
        }
    }

    /// The problem document for this error (without request id and
    /// instance, which the [`normalize`] middleware adds).
    pub fn to_problem(&self) -> Problem {
        let code = self.code();
        let mut problem = Problem::new(code.status(), code.as_str(), self.title());
        problem.detail = self.detail();
        if let ApiError::Validation(errors) = self {
            problem.errors = errors.clone();
        }
        problem
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            ApiError::Internal(_) => {
                tracing::error!(error = %ErrorChain(&self), "internal error");
            }
            ApiError::Unavailable(_) => {
                tracing::warn!(error = %ErrorChain(&self), "dependency unavailable");
            }
            _ => tracing::debug!(error = %self, "request failed"),
        }
        let mut response = self.to_problem().into_response();
        let headers = response.headers_mut();
        // RFC 9110: a 401 names the scheme that would be accepted.
        if self.status_code() == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let ApiError::Refused {
            retry_after: Some(secs),
            ..
        } = self
            && let Ok(value) = HeaderValue::from_str(&secs.max(1).to_string())
        {
            headers.insert(header::RETRY_AFTER, value);
        }
        response
    }
}

impl From<crate::identity::permissions::GrantRefusal> for ApiError {
    fn from(refusal: crate::identity::permissions::GrantRefusal) -> Self {
        use crate::identity::permissions::GrantRefusal;
        match refusal {
            GrantRefusal::AdminOnly(permissions) => ApiError::AdminOnlyPermission(permissions),
            GrantRefusal::NotHeld(permissions) => ApiError::PermissionNotHeld(permissions),
        }
    }
}

impl From<crate::identity::principal::Forbidden> for ApiError {
    fn from(refusal: crate::identity::principal::Forbidden) -> Self {
        ApiError::Forbidden {
            permission: refusal.permission,
        }
    }
}

impl From<crate::plugins::hooks::HookDenied> for ApiError {
    fn from(denied: crate::plugins::hooks::HookDenied) -> Self {
        tracing::info!(plugin = %denied.plugin, reason = %denied.reason, "a before-hook denied the request");
        ApiError::refused(Code::HookDenied, denied.reason)
    }
}

impl From<DbError> for ApiError {
    fn from(error: DbError) -> Self {
        match error {
            DbError::Conflict { .. } => ApiError::Conflict("the resource already exists".into()),
            DbError::NotFound => ApiError::NotFound("the resource does not exist".into()),
            DbError::Unavailable(_) => ApiError::Unavailable(Box::new(error)),
            other => ApiError::Internal(Box::new(other)),
        }
    }
}

/// Displays an error with its sources: `a: b: c`.
pub(crate) struct ErrorChain<'a>(pub(crate) &'a (dyn std::error::Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(e) = source {
            write!(f, ": {e}")?;
            source = e.source();
        }
        Ok(())
    }
}

/// Largest original body kept as `detail` when converting a framework's
/// plain-text error response.
const MAX_CONVERTED_DETAIL: usize = 1024;

/// Middleware: makes every error response a complete problem document.
///
/// A problem rendered by [`ApiError`] gets the request id and the request
/// path (`instance`). Any other response with status ≥ 400 and no body
/// type or a plain-text one — the router's `405`, an extractor's rejection,
/// a caught panic's `500` — is replaced by a problem for its status,
/// keeping its headers (such as `Allow`); a short plain-text body of a 4xx
/// is kept as `detail`, the body of a 5xx never is. Responses with another
/// body type (a problem document already, or a deliberate JSON answer such
/// as the health report's `503`) pass through unchanged.
pub async fn normalize(request: Request, next: Next) -> Response {
    let request_id = request.extensions().get::<RequestId>().cloned();
    let instance = request.uri().path().to_owned();
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let mut problem = match parts.extensions.remove::<Problem>() {
        Some(problem) => problem,
        None => {
            // Framework responses have no body type or plain text; anything
            // else (a problem document, the health report's JSON) is a
            // handler's deliberate answer and passes through.
            let content_type = parts
                .headers
                .get(header::CONTENT_TYPE)
                .map(|v| v.as_bytes());
            let is_text = content_type.is_some_and(|v| v.starts_with(b"text/plain"));
            if content_type.is_some() && !is_text {
                return Response::from_parts(parts, body);
            }
            let detail = if status.is_client_error() && is_text {
                axum::body::to_bytes(body, MAX_CONVERTED_DETAIL)
                    .await
                    .ok()
                    .and_then(|b| String::from_utf8(b.to_vec()).ok())
                    .filter(|s| !s.trim().is_empty())
            } else {
                None
            };
            let mut problem = problem_for_status(status);
            if detail.is_some() {
                problem.detail = detail;
            }
            problem
        }
    };
    problem.request_id = request_id.map(|id| id.as_str().to_owned());
    problem.instance = Some(instance);
    problem.into_response_with(Response::from_parts(parts, Body::empty()))
}

/// The problem for a bare status, using [`ApiError`]'s code and title when
/// one has that status, else a code derived from the reason phrase.
fn problem_for_status(status: StatusCode) -> Problem {
    let known = match status {
        StatusCode::BAD_REQUEST => Some(ApiError::BadRequest(String::new())),
        StatusCode::UNAUTHORIZED => Some(ApiError::Unauthenticated(String::new())),
        StatusCode::NOT_FOUND => Some(ApiError::NotFound(String::new())),
        StatusCode::METHOD_NOT_ALLOWED => Some(ApiError::MethodNotAllowed),
        StatusCode::PAYLOAD_TOO_LARGE => Some(ApiError::PayloadTooLarge),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => Some(ApiError::UnsupportedMediaType(String::new())),
        StatusCode::INTERNAL_SERVER_ERROR => Some(ApiError::Internal("".into())),
        _ => None,
    };
    match known {
        Some(error) => {
            let mut problem = error.to_problem();
            if problem.detail.as_deref() == Some("") {
                problem.detail = None;
            }
            problem
        }
        None => {
            let reason = status.canonical_reason().unwrap_or("Error");
            let code = reason.to_ascii_lowercase().replace([' ', '\''], "-");
            Problem::new(status, &code, reason)
        }
    }
}

/// The fallback for unknown routes: `404 not-found`.
pub async fn not_found() -> ApiError {
    ApiError::NotFound("no route matches this path".into())
}
