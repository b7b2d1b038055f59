//! `/api/v1/account/api-keys`: the caller's API keys.
//!
//! A key is shown once, at creation; afterwards only its id, name, prefix
//! (the first 12 characters, to recognize it), scopes and times are. A key
//! acts with its scopes intersected with its owner's permissions at the
//! time of each request, so demoting a user demotes their keys.
//!
//! Creating and revoking keys needs a login session: an API key gets `403
//! session-required` (as on the password and second-factor routes), so a
//! leaked key cannot mint a permanent replacement of itself, nor revoke the
//! owner's other keys. A new key's scopes must be permissions the caller
//! holds now (`403 permission-not-held` lists the others): a key is a
//! narrower copy of its owner, never a wider one. Listing stays open to
//! keys, since it shows no secret.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::{Authenticated, require_session};
use super::error::{ApiError, ApiResult, FieldError, FieldLocation};
use super::extract::ApiJson;
use crate::identity::permissions;
use crate::identity::tokens::{self, ApiKey};

/// Most scopes one key may carry.
pub const MAX_SCOPES: usize = 200;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(revoke))
}

/// A new API key.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApiKey {
    /// A name for people, 1 to 128 characters.
    pub name: String,
    /// The permissions the key may use (`resource.action`), each known.
    pub scopes: Vec<String>,
}

/// An API key, without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyBody {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The key's first characters.
    pub prefix: String,
    /// The permissions it may use.
    pub scopes: Vec<String>,
    /// When it was created (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it was last used (RFC 3339).
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    /// When it was revoked (RFC 3339).
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
}

impl From<ApiKey> for ApiKeyBody {
    fn from(key: ApiKey) -> Self {
        ApiKeyBody {
            id: key.id,
            name: key.name,
            prefix: key.prefix,
            scopes: key.scopes,
            created_at: key.created_at,
            last_used_at: key.last_used_at,
            revoked_at: key.revoked_at,
        }
    }
}

/// A created key, with its secret (shown this once).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreatedApiKey {
    /// The key.
    #[serde(flatten)]
    pub key: ApiKeyBody,
    /// The secret; send it as `Authorization: Bearer …`.
    pub secret: String,
}

/// The caller's keys.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyList {
    /// Newest first.
    pub items: Vec<ApiKeyBody>,
}

fn validate(body: &NewApiKey) -> Result<(), ApiError> {
    let mut errors = Vec::new();
    let len = body.name.trim().chars().count();
    if len == 0 || len > 128 {
        errors.push(FieldError::new(
            FieldLocation::Body,
            "name",
            "must be 1 to 128 characters",
        ));
    }
    if body.scopes.is_empty() || body.scopes.len() > MAX_SCOPES {
        errors.push(FieldError::new(
            FieldLocation::Body,
            "scopes",
            format!("must list 1 to {MAX_SCOPES} permissions"),
        ));
    }
    for (i, scope) in body.scopes.iter().enumerate() {
        if !permissions::is_known(scope) {
            errors.push(FieldError::new(
                FieldLocation::Body,
                format!("scopes[{i}]"),
                "is not a known permission",
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(errors))
    }
}

/// Lists the caller's API keys (never their secrets).
#[utoipa::path(
    get,
    path = "/account/api-keys",
    tag = "account",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The keys", body = ApiKeyList),
    )
)]
pub(super) async fn list(
    auth: Authenticated,
    State(state): State<AppState>,
) -> ApiResult<Json<ApiKeyList>> {
    let keys = tokens::list_api_keys(state.db(), auth.principal.user_id()).await?;
    Ok(Json(ApiKeyList {
        items: keys.into_iter().map(ApiKeyBody::from).collect(),
    }))
}

/// Creates an API key; the response holds its secret, shown only now.
#[utoipa::path(
    post,
    path = "/account/api-keys",
    tag = "account",
    security(("bearer" = [])),
    request_body = NewApiKey,
    responses(
        (status = 201, description = "Created", body = CreatedApiKey),
        (status = 400, description = "The body is not JSON"),
        (status = 403, description = "Called with an API key (session-required), or a scope the caller does not hold (permission-not-held)"),
        (status = 422, description = "A field is invalid"),
    )
)]
pub(super) async fn create(
    auth: Authenticated,
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<NewApiKey>,
) -> ApiResult<(StatusCode, Json<CreatedApiKey>)> {
    require_session(&headers)?;
    validate(&body)?;
    let not_held: Vec<String> = body
        .scopes
        .iter()
        .filter(|scope| !auth.principal.has_permission(scope))
        .cloned()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if !not_held.is_empty() {
        return Err(ApiError::PermissionNotHeld(not_held));
    }
    let (key, secret) = tokens::create_api_key(
        state.db(),
        auth.principal.user_id(),
        body.name.trim(),
        &body.scopes,
        &auth.actor,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedApiKey {
            key: key.into(),
            secret,
        }),
    ))
}

/// Revokes one of the caller's API keys.
#[utoipa::path(
    delete,
    path = "/account/api-keys/{id}",
    tag = "account",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The key's id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 403, description = "Called with an API key (session-required)"),
        (status = 404, description = "No such active key"),
    )
)]
pub(super) async fn revoke(
    auth: Authenticated,
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    require_session(&headers)?;
    if tokens::revoke_api_key(state.db(), auth.principal.user_id(), &id, &auth.actor).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!(
            "there is no active API key {id:?}"
        )))
    }
}
