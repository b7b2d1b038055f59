//! `/api/v1/account/ssh-keys`: the SSH public keys the caller signs in to
//! the Agents' SFTP servers with ([`crate::identity::ssh_keys`]).
//!
//! | route | what |
//! | --- | --- |
//! | `GET /account/ssh-keys` | the caller's keys, oldest first |
//! | `POST /account/ssh-keys` | adds one (`name`, `public_key`: one OpenSSH line) |
//! | `DELETE /account/ssh-keys/{key}` | removes one, named by its id or its `SHA256:…` fingerprint |
//!
//! Adding and removing keys needs a login session (an API key gets `403
//! session-required`, as for API keys themselves): a key is a credential,
//! and a leaked API key must not be able to plant one. Refusals: `422
//! invalid-ssh-key` (not one OpenSSH public key of an accepted kind: a
//! private key, a DSA key, an RSA key under 2048 bits, two keys at once),
//! `409 ssh-key-exists` (the account holds that key), `409 conflict` (the
//! account holds the most keys it may), `404` (no such key of the
//! caller's: another user's key is not found either).

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
use super::error::{ApiError, ApiResult, Code, FieldError, FieldLocation};
use super::extract::ApiJson;
use crate::identity::ssh_keys::{self, SshKey, SshKeyError};

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, add))
        .routes(routes!(remove))
}

/// A key to add.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSshKey {
    /// A name for people, 1 to 128 characters.
    pub name: String,
    /// One OpenSSH public key line (`ssh-ed25519 AAAA… you@host`, the
    /// content of a `.pub` file).
    pub public_key: String,
}

/// An SSH public key on the caller's account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SshKeyBody {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The key, OpenSSH one-line form.
    pub public_key: String,
    /// Its SHA-256 fingerprint, as `ssh-keygen -l` prints it
    /// (`SHA256:…`).
    pub fingerprint: String,
    /// When it was added (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl From<SshKey> for SshKeyBody {
    fn from(key: SshKey) -> Self {
        SshKeyBody {
            id: key.id,
            name: key.name,
            public_key: key.public_key,
            fingerprint: key.fingerprint,
            created_at: key.created_at,
        }
    }
}

/// The caller's keys.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SshKeyList {
    /// Oldest first.
    pub items: Vec<SshKeyBody>,
}

/// Lists the caller's SSH keys.
#[utoipa::path(
    get,
    path = "/account/ssh-keys",
    tag = "account",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The keys", body = SshKeyList),
    )
)]
pub(super) async fn list(
    auth: Authenticated,
    State(state): State<AppState>,
) -> ApiResult<Json<SshKeyList>> {
    let keys = ssh_keys::list(state.db(), auth.principal.user_id()).await?;
    Ok(Json(SshKeyList {
        items: keys.into_iter().map(SshKeyBody::from).collect(),
    }))
}

/// Adds an SSH public key to the caller's account, for SFTP sign-ins.
#[utoipa::path(
    post,
    path = "/account/ssh-keys",
    tag = "account",
    security(("bearer" = [])),
    request_body = NewSshKey,
    responses(
        (status = 201, description = "Added", body = SshKeyBody),
        (status = 400, description = "The body is not JSON"),
        (status = 403, description = "Called with an API key (session-required)"),
        (status = 409, description = "The account holds this key already (ssh-key-exists), or holds the most keys it may (conflict)"),
        (status = 422, description = "Not one OpenSSH public key of an accepted kind (invalid-ssh-key), or an invalid name"),
    )
)]
pub(super) async fn add(
    auth: Authenticated,
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<NewSshKey>,
) -> ApiResult<(StatusCode, Json<SshKeyBody>)> {
    require_session(&headers)?;
    let name = body.name.trim();
    let len = name.chars().count();
    if len == 0 || len > 128 {
        return Err(ApiError::Validation(vec![FieldError::new(
            FieldLocation::Body,
            "name",
            "must be 1 to 128 characters",
        )]));
    }
    let added = ssh_keys::add(
        state.db(),
        auth.principal.user_id(),
        name,
        &body.public_key,
        &auth.actor,
    )
    .await;
    match added {
        Ok(key) => Ok((StatusCode::CREATED, Json(key.into()))),
        Err(error @ SshKeyError::Invalid(_)) => {
            Err(ApiError::refused(Code::InvalidSshKey, error.to_string()))
        }
        Err(error @ SshKeyError::Exists(_)) => {
            Err(ApiError::refused(Code::SshKeyExists, error.to_string()))
        }
        Err(error @ SshKeyError::TooMany) => {
            Err(ApiError::refused(Code::Conflict, error.to_string()))
        }
        Err(SshKeyError::Db(error)) => Err(error.into()),
    }
}

/// Removes one of the caller's SSH keys.
#[utoipa::path(
    delete,
    path = "/account/ssh-keys/{key}",
    tag = "account",
    security(("bearer" = [])),
    params(("key" = String, Path, description = "The key's id, or its fingerprint (`SHA256:…`)")),
    responses(
        (status = 204, description = "Removed"),
        (status = 403, description = "Called with an API key (session-required)"),
        (status = 404, description = "The caller holds no such key"),
    )
)]
pub(super) async fn remove(
    auth: Authenticated,
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(key): Path<String>,
) -> ApiResult<StatusCode> {
    require_session(&headers)?;
    if ssh_keys::remove(state.db(), auth.principal.user_id(), &key, &auth.actor).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!(
            "there is no SSH key {key:?} on your account"
        )))
    }
}
