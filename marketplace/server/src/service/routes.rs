//! The HTTP handlers.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cap_marketplace::wire::{
    AdminRevocation, Health, KEY_ID_HEADER, KeyChangeAuthorization, KeyView, MarketplaceKey,
    NewKey, NewPublisher, PACKAGE_ID_HEADER, PACKAGE_MEDIA_TYPE, PACKAGE_VERSION_HEADER,
    PackagePage, PackageSummary, PackageView, PriceView, PublishParams, PublisherCreated,
    PublisherView, RecoveryKey, ReleaseView, RevokeKey, SHA256_HEADER, SIGNATURE_HEADER,
    SearchParams, Yank, key_proof_message,
};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use super::AppState;
use super::error::{ApiError, ApiResult, FieldError, Problem};
use crate::store::{Publisher, Search, StoredPackage, StoredRelease, Tx};
use cap_marketplace::keys::{KeyId, PublicKey, Signature};
use cap_marketplace::log::LogEvent;
use cap_marketplace::signing::{
    KEY_CHANGE_WINDOW, KeyChange, KeyUseError, Revocation, author_message, key_change_message,
};
use subtle::ConstantTimeEq;

/// A JSON body whose rejections are problem documents.
pub(crate) struct ApiJson<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(ApiError::BadRequest(rejection.body_text())),
        }
    }
}

/// A query string whose rejections are problem documents.
pub(crate) struct ApiQuery<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        serde_urlencoded::from_str(query)
            .map(ApiQuery)
            .map_err(|e| ApiError::Validation(vec![FieldError::new("query", "", e.to_string())]))
    }
}

/// The authenticated publisher (`Authorization: Bearer <token>`), whose
/// token has not expired.
pub(crate) struct Authed(pub(crate) Publisher);

/// The stored form of a token.
pub(crate) fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(format!(
        "ctrl-alt-play/publisher-token/v1\n{token}"
    )))
}

/// The bearer token of a request, if well-formed.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

impl FromRequestParts<AppState> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if !parts.headers.contains_key(header::AUTHORIZATION) {
            return Err(ApiError::Unauthenticated(
                "send `Authorization: Bearer <token>`".into(),
            ));
        }
        let token = bearer(&parts.headers)
            .ok_or_else(|| ApiError::Unauthenticated("malformed Authorization header".into()))?;
        let (publisher, expires_at) = state
            .store()
            .publisher_by_token(&token_hash(token))
            .await?
            .ok_or_else(|| ApiError::Unauthenticated("unknown token".into()))?;
        if expires_at <= super::now() {
            return Err(ApiError::TokenExpired(format!(
                "the token of publisher {} expired at {expires_at}; rotate tokens before they expire (`cap plugin rotate-token`), or ask the Marketplace's admin to recover the account",
                publisher.name
            )));
        }
        Ok(Authed(publisher))
    }
}

/// The Marketplace's admin (`Authorization: Bearer <admin token>`), for
/// key recovery. Without a configured admin token the admin routes do not
/// exist (404).
pub(crate) struct Admin;

/// The form in which the admin token is kept in memory and compared.
pub(crate) fn admin_token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(format!(
        "ctrl-alt-play/admin-token/v1\n{token}"
    )))
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(expected) = state.admin_token_hash() else {
            return Err(ApiError::NotFound(
                "admin routes (no admin token is configured)".into(),
            ));
        };
        let given = bearer(&parts.headers).ok_or_else(|| {
            ApiError::Unauthenticated("send `Authorization: Bearer <admin token>`".into())
        })?;
        let given = admin_token_hash(given);
        if bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
            Ok(Admin)
        } else {
            Err(ApiError::Unauthenticated("not the admin token".into()))
        }
    }
}

pub(crate) fn valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (2..=63).contains(&bytes.len())
        && bytes[0].is_ascii_lowercase()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

pub(crate) fn parse_version(field: &str, text: &str) -> ApiResult<semver::Version> {
    semver::Version::parse(text).map_err(|e| {
        ApiError::Validation(vec![FieldError::new(
            "path",
            field,
            format!("not a semantic version: {e}"),
        )])
    })
}

pub(crate) fn random_token() -> ApiResult<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| ApiError::Internal(format!("randomness: {e}")))?;
    Ok(hex::encode(bytes))
}

// ---------------------------------------------------------------- system

/// Reports whether the Marketplace and its database are up.
#[utoipa::path(get, path = "/health", tag = "system",
    responses((status = 200, body = Health), (status = 503, body = Health)))]
pub(crate) async fn health(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let up = tokio::time::timeout(std::time::Duration::from_secs(2), state.store().ping())
        .await
        .unwrap_or(false);
    (
        if up {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        Json(Health {
            status: if up { "ok" } else { "unavailable" }.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            database: up,
        }),
    )
}

/// The keys that sign logs, countersignatures, timestamps and licenses:
/// the online key now, the root clients pin, and the chain between them.
#[utoipa::path(get, path = "/marketplace-key", tag = "transparency",
    responses((status = 200, body = MarketplaceKey)))]
pub(crate) async fn marketplace_key(State(state): State<AppState>) -> Json<MarketplaceKey> {
    let notary = state.notary();
    let key = notary.public_key();
    let chain = notary.chain();
    Json(MarketplaceKey {
        key_id: key.id().to_string(),
        public_key: key.to_hex(),
        key_file: key.to_file(),
        root_key_id: chain.map(|c| c.root.id().to_string()),
        root_key: chain.map(|c| c.root.to_hex()),
        chain: chain.cloned(),
    })
}

/// A timestamp over every log's head, valid for the configured time.
#[utoipa::path(get, path = "/timestamp", tag = "transparency",
    responses((status = 200, description = "A `SignedTimestamp`", body = Object)))]
pub(crate) async fn timestamp(State(state): State<AppState>) -> ApiResult<Response> {
    let heads = state.store().heads().await?;
    let ts = state
        .notary()
        .timestamp(heads, super::now(), state.timestamp_ttl());
    Ok((
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        Json(ts),
    )
        .into_response())
}

/// A package's complete log.
#[utoipa::path(get, path = "/packages/{id}/log", tag = "transparency",
    params(("id" = String, Path, description = "Plugin id")),
    responses((status = 200, description = "The `LogEntry` list, oldest first", body = Object),
              (status = 404, body = Problem)))]
pub(crate) async fn log(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let entries = state.store().log(&id).await?;
    if entries.is_empty() {
        return Err(ApiError::NotFound(format!("package {id}")));
    }
    Ok(Json(entries).into_response())
}

// ---------------------------------------------------------------- publishers
//
// Trust in a publisher rests on its signing keys, not on its bearer token:
//
// * The token (which expires, `MarketplaceConfig::publisher_token_ttl`, and
//   rotates with `POST /publishers/me/token`) authenticates requests; alone
//   it adds only an account's very first key.
// * Every later key change — adding a key, revoking one — needs a
//   key-change statement ([`cap_marketplace::signing::key_change_message`]) signed by
//   one of the publisher's current keys, issued within
//   [`KEY_CHANGE_WINDOW`] seconds of the Marketplace's clock, with a nonce
//   that is spent on use: a stolen token cannot add a key of its own or
//   revoke the real ones, and a captured statement cannot be replayed.
// * A revocation never reaches back to or before the key's last release:
//   what a key legitimately signed stays installable (yank it instead).
// * A publisher who lost every key recovers through the Marketplace's admin
//   (`POST /admin/publishers/{name}/keys`), who checks who they are out of
//   band.

/// Creates a publisher account.
#[utoipa::path(post, path = "/publishers", tag = "publishers", request_body = NewPublisher,
    responses((status = 201, body = PublisherCreated), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub(crate) async fn create_publisher(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<NewPublisher>,
) -> ApiResult<(StatusCode, Json<PublisherCreated>)> {
    if !valid_name(&body.name) {
        return Err(ApiError::Validation(vec![FieldError::new(
            "body",
            "name",
            "2 to 63 characters: lowercase letters, digits and '-', starting with a letter",
        )]));
    }
    let token = random_token()?;
    let id = random_token()?;
    let now = super::now();
    let expires_at = now.saturating_add(state.token_ttl());
    match state
        .store()
        .create_publisher(&id[..32], &body.name, &token_hash(&token), now, expires_at)
        .await?
    {
        Some(p) => Ok((
            StatusCode::CREATED,
            Json(PublisherCreated {
                name: p.name,
                token,
                expires_at,
            }),
        )),
        None => Err(ApiError::NameTaken(format!(
            "publisher name {} is taken",
            body.name
        ))),
    }
}

/// Replaces the caller's token with a new one with a new expiry; the old
/// token stops working at once.
#[utoipa::path(post, path = "/publishers/me/token", tag = "publishers",
    security(("bearer" = [])),
    responses((status = 200, body = PublisherCreated), (status = 401, body = Problem), (status = 409, body = Problem)))]
pub(crate) async fn rotate_token(
    State(state): State<AppState>,
    Authed(publisher): Authed,
    headers: HeaderMap,
) -> ApiResult<Json<PublisherCreated>> {
    // The extractor accepted this very header.
    let old = bearer(&headers).unwrap_or_default();
    let token = random_token()?;
    let expires_at = super::now().saturating_add(state.token_ttl());
    if !state
        .store()
        .rotate_token(
            &publisher.id,
            &token_hash(old),
            &token_hash(&token),
            expires_at,
        )
        .await?
    {
        return Err(ApiError::Conflict(
            "the token was rotated by another request; use the token it returned".into(),
        ));
    }
    tracing::info!(publisher = %publisher.name, "publisher token rotated");
    Ok(Json(PublisherCreated {
        name: publisher.name,
        token,
        expires_at,
    }))
}

/// A publisher's keys and packages.
#[utoipa::path(get, path = "/publishers/{name}", tag = "publishers",
    params(("name" = String, Path, description = "Publisher name")),
    responses((status = 200, body = PublisherView), (status = 404, body = Problem)))]
pub(crate) async fn get_publisher(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<PublisherView>> {
    let publisher = state
        .store()
        .publisher_by_name(&name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("publisher {name}")))?;
    let mut tx = state.store().begin().await?;
    let keys = state.store().keys(&mut tx, &publisher.id).await?;
    let packages = state.store().package_ids_of(&mut tx, &publisher.id).await?;
    tx.commit().await?;
    Ok(Json(PublisherView {
        name: publisher.name,
        keys: keys
            .into_iter()
            .map(|k| KeyView {
                key_id: k.key.id().to_string(),
                public_key: k.key.to_hex(),
                created_at: k.created_at,
                revoked_at: k.revoked.as_ref().map(|r| r.effective_at),
                revoke_reason: k.revoked.map(|r| r.reason),
            })
            .collect(),
        packages,
    }))
}

/// Most keys a publisher may hold, revoked ones included: every key is
/// granted in every log of the publisher, so the keyring stays bounded.
pub const MAX_KEYS_PER_PUBLISHER: usize = 32;

/// Checks that `authorization` is a fresh statement of `change` by one of
/// `publisher`'s current keys, and spends its nonce (in `tx`).
async fn authorize_key_change(
    state: &AppState,
    tx: &mut Tx,
    publisher: &Publisher,
    change: &KeyChange,
    authorization: &KeyChangeAuthorization,
    now: i64,
) -> ApiResult<()> {
    let mut errors = Vec::new();
    let key_id = KeyId::parse(&authorization.key_id)
        .map_err(|e| {
            errors.push(FieldError::new(
                "body",
                "authorization.key_id",
                e.to_string(),
            ))
        })
        .ok();
    let signature = Signature::from_hex(&authorization.signature)
        .map_err(|e| {
            errors.push(FieldError::new(
                "body",
                "authorization.signature",
                e.to_string(),
            ))
        })
        .ok();
    let nonce = &authorization.nonce;
    if !(16..=64).contains(&nonce.len())
        || !nonce
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        errors.push(FieldError::new(
            "body",
            "authorization.nonce",
            "16 to 64 lowercase hex digits",
        ));
    }
    if authorization.issued_at.abs_diff(now) > KEY_CHANGE_WINDOW.unsigned_abs() {
        errors.push(FieldError::new(
            "body",
            "authorization.issued_at",
            format!(
                "{} is more than {KEY_CHANGE_WINDOW} s from the Marketplace's clock ({now}); sign a fresh statement",
                authorization.issued_at
            ),
        ));
    }
    let (Some(key_id), Some(signature), true) = (key_id, signature, errors.is_empty()) else {
        return Err(ApiError::Validation(errors));
    };
    let ring = state.store().keyring(tx, &publisher.id).await?;
    let key = ring.usable(&key_id, now).map_err(|e| {
        ApiError::KeyChangeUnauthorized(format!("the statement's key cannot sign: {e}"))
    })?;
    let message = key_change_message(&publisher.name, change, authorization.issued_at, nonce);
    if !key.verify(&message, &signature) {
        return Err(ApiError::InvalidSignature(format!(
            "the key-change statement does not verify with key {key_id}"
        )));
    }
    if !state
        .store()
        .use_key_change_nonce(tx, &publisher.id, nonce, now, now - 2 * KEY_CHANGE_WINDOW)
        .await?
    {
        return Err(ApiError::StatementReplayed(format!(
            "nonce {nonce} was used before; sign a fresh statement"
        )));
    }
    Ok(())
}

/// Parses a public key field: 64 hex digits or a public key file.
fn parse_public_key(text: &str) -> ApiResult<PublicKey> {
    if text.contains("ctrl-alt-play-public-key") {
        PublicKey::from_file(text)
    } else {
        PublicKey::from_hex(text)
    }
    .map_err(|e| ApiError::Validation(vec![FieldError::new("body", "public_key", e.to_string())]))
}

/// Adds a signing key to the caller's account and grants it in the logs of
/// all the caller's packages.
///
/// The token alone adds only the account's first key. Every later key
/// needs `authorization`: the statement `add <key id>` signed by one of the
/// publisher's current keys.
#[utoipa::path(post, path = "/publishers/me/keys", tag = "publishers", request_body = NewKey,
    security(("bearer" = [])),
    responses((status = 201, body = KeyView), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub(crate) async fn add_key(
    State(state): State<AppState>,
    Authed(publisher): Authed,
    ApiJson(body): ApiJson<NewKey>,
) -> ApiResult<(StatusCode, Json<KeyView>)> {
    let key = parse_public_key(&body.public_key)?;
    let now = super::now();
    let mut tx = state.store().begin().await?;
    let existing = state.store().keys(&mut tx, &publisher.id).await?;
    match &body.authorization {
        Some(authorization) => {
            let change = KeyChange::Add {
                key: key.id().clone(),
            };
            authorize_key_change(&state, &mut tx, &publisher, &change, authorization, now).await?;
        }
        None if existing.is_empty() => {}
        None => {
            return Err(ApiError::KeyChangeUnauthorized(format!(
                "publisher {} has keys already: adding another needs the statement `add {}` signed by one of them (`cap plugin register --signed-by`), or a recovery the Marketplace's admin approves",
                publisher.name,
                key.id()
            )));
        }
    }
    grant_key(
        &state,
        tx,
        &publisher,
        existing.len(),
        key,
        &body.proof,
        now,
    )
    .await
}

/// Key recovery, approved by the Marketplace's admin: adds a key to a
/// publisher without a statement from its keys, for a publisher who lost
/// them all (and whose identity the admin checked out of band). The
/// publisher then revokes what it lost with the recovered key.
#[utoipa::path(post, path = "/admin/publishers/{name}/keys", tag = "publishers", request_body = RecoveryKey,
    params(("name" = String, Path, description = "Publisher name")),
    security(("bearer" = [])),
    responses((status = 201, body = KeyView), (status = 401, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub(crate) async fn recover_key(
    State(state): State<AppState>,
    _admin: Admin,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<RecoveryKey>,
) -> ApiResult<(StatusCode, Json<KeyView>)> {
    if body.reason.trim().is_empty() || body.reason.chars().count() > 500 {
        return Err(ApiError::Validation(vec![FieldError::new(
            "body",
            "reason",
            "1 to 500 characters",
        )]));
    }
    let publisher = state
        .store()
        .publisher_by_name(&name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("publisher {name}")))?;
    let key = parse_public_key(&body.public_key)?;
    let now = super::now();
    let mut tx = state.store().begin().await?;
    let existing = state.store().keys(&mut tx, &publisher.id).await?.len();
    tracing::warn!(publisher = %publisher.name, key = %key.id(), reason = %body.reason, "admin-approved key recovery");
    grant_key(&state, tx, &publisher, existing, key, &body.proof, now).await
}

/// Checks possession of `key` (its `proof`) and adds it to `publisher`,
/// who holds `existing` keys, granting it in every log of theirs.
async fn grant_key(
    state: &AppState,
    mut tx: Tx,
    publisher: &Publisher,
    existing: usize,
    key: PublicKey,
    proof: &str,
    now: i64,
) -> ApiResult<(StatusCode, Json<KeyView>)> {
    let proof = Signature::from_hex(proof)
        .map_err(|e| ApiError::Validation(vec![FieldError::new("body", "proof", e.to_string())]))?;
    if !key.verify(&key_proof_message(&publisher.name, key.id()), &proof) {
        return Err(ApiError::Validation(vec![FieldError::new(
            "body",
            "proof",
            "does not verify: sign `ctrl-alt-play/key-proof/v1\\n<publisher>\\n<key id>` with the key",
        )]));
    }
    if existing >= MAX_KEYS_PER_PUBLISHER {
        return Err(ApiError::Validation(vec![FieldError::new(
            "body",
            "public_key",
            format!(
                "a publisher holds at most {MAX_KEYS_PER_PUBLISHER} keys, revoked ones included"
            ),
        )]));
    }
    let store = state.store();
    if store.key_owner(&mut tx, key.id()).await?.is_some() {
        return Err(ApiError::Conflict(format!(
            "key {} is already registered",
            key.id()
        )));
    }
    store.insert_key(&mut tx, &publisher.id, &key, now).await?;
    for package in store.package_ids_of(&mut tx, &publisher.id).await? {
        let event = LogEvent::KeyGrant {
            key_id: key.id().clone(),
            public_key: key.clone(),
        };
        store
            .append(&mut tx, state.notary(), &package, now, event)
            .await?;
    }
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(KeyView {
            key_id: key.id().to_string(),
            public_key: key.to_hex(),
            created_at: now,
            revoked_at: None,
            revoke_reason: None,
        }),
    ))
}

/// Revokes one of the caller's keys and records it in all their logs.
#[utoipa::path(post, path = "/publishers/me/keys/{key_id}/revoke", tag = "publishers", request_body = RevokeKey,
    params(("key_id" = String, Path, description = "Key id")),
    security(("bearer" = [])),
    responses((status = 200, body = KeyView), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub(crate) async fn revoke_key(
    State(state): State<AppState>,
    Authed(publisher): Authed,
    Path(key_id): Path<String>,
    ApiJson(body): ApiJson<RevokeKey>,
) -> ApiResult<Json<KeyView>> {
    let now = super::now();
    let Some(authorization) = &body.authorization else {
        return Err(ApiError::KeyChangeUnauthorized(
            "revoking a key needs the statement `revoke <key id> <effective at> <sha256 of reason>` signed by one of the publisher's current keys (`cap plugin revoke`)".into(),
        ));
    };
    let mut errors = Vec::new();
    if body.reason.trim().is_empty() || body.reason.chars().count() > 500 {
        errors.push(FieldError::new("body", "reason", "1 to 500 characters"));
    }
    let effective_at = body.effective_at.unwrap_or(authorization.issued_at);
    if effective_at > now {
        errors.push(FieldError::new(
            "body",
            "effective_at",
            "must not be in the future",
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let key_id = KeyId::parse(&key_id).map_err(|_| ApiError::NotFound(format!("key {key_id}")))?;
    let store = state.store();
    let mut tx = store.begin().await?;
    if store.key_owner(&mut tx, &key_id).await?.as_deref() != Some(publisher.id.as_str()) {
        return Err(ApiError::NotFound(format!("key {key_id}")));
    }
    let change = KeyChange::Revoke {
        key: key_id.clone(),
        effective_at,
        reason: body.reason.clone(),
    };
    authorize_key_change(&state, &mut tx, &publisher, &change, authorization, now).await?;
    if let Some(last) = store.last_release_by_key(&mut tx, &key_id).await?
        && effective_at <= last
    {
        return Err(ApiError::Validation(vec![FieldError::new(
            "body",
            "effective_at",
            format!(
                "must be after {last}, when key {key_id} signed its last release: a revocation does not reach back over releases already published (yank them instead)"
            ),
        )]));
    }
    let revocation = Revocation {
        reason: body.reason.clone(),
        effective_at,
    };
    apply_revocation(&state, tx, &publisher, &key_id, revocation, now).await
}

/// Revokes a publisher's key on the Marketplace admin's approval, possibly
/// back over releases it signed (recovery from a leaked key; the admin
/// checks the request out of band).
#[utoipa::path(post, path = "/admin/publishers/{name}/keys/{key_id}/revoke", tag = "publishers", request_body = AdminRevocation,
    params(("name" = String, Path, description = "Publisher name"), ("key_id" = String, Path, description = "Key id")),
    security(("bearer" = [])),
    responses((status = 200, body = KeyView), (status = 401, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub(crate) async fn admin_revoke_key(
    State(state): State<AppState>,
    _admin: Admin,
    Path((name, key_id)): Path<(String, String)>,
    ApiJson(body): ApiJson<AdminRevocation>,
) -> ApiResult<Json<KeyView>> {
    let now = super::now();
    let mut errors = Vec::new();
    if body.reason.trim().is_empty() || body.reason.chars().count() > 500 {
        errors.push(FieldError::new("body", "reason", "1 to 500 characters"));
    }
    if body.effective_at > now {
        errors.push(FieldError::new(
            "body",
            "effective_at",
            "must not be in the future",
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let publisher = state
        .store()
        .publisher_by_name(&name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("publisher {name}")))?;
    let key_id = KeyId::parse(&key_id).map_err(|_| ApiError::NotFound(format!("key {key_id}")))?;
    let mut tx = state.store().begin().await?;
    if state.store().key_owner(&mut tx, &key_id).await?.as_deref() != Some(publisher.id.as_str()) {
        return Err(ApiError::NotFound(format!("key {key_id}")));
    }
    tracing::warn!(publisher = %publisher.name, key = %key_id, reason = %body.reason, effective_at = body.effective_at, "admin-approved key revocation");
    let revocation = Revocation {
        reason: body.reason,
        effective_at: body.effective_at,
    };
    apply_revocation(&state, tx, &publisher, &key_id, revocation, now).await
}

/// Records `revocation` of `key_id` and announces it in every log of
/// `publisher`.
async fn apply_revocation(
    state: &AppState,
    mut tx: Tx,
    publisher: &Publisher,
    key_id: &KeyId,
    revocation: Revocation,
    now: i64,
) -> ApiResult<Json<KeyView>> {
    let store = state.store();
    let key_id = key_id.clone();
    let mut ring = store.keyring(&mut tx, &publisher.id).await?;
    ring.revoke(&key_id, revocation)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let entry = ring
        .get(&key_id)
        .ok_or_else(|| ApiError::Internal("revoked key vanished".into()))?
        .clone();
    let revocation = entry
        .revoked
        .clone()
        .ok_or_else(|| ApiError::Internal("revocation not recorded".into()))?;
    store.revoke_key(&mut tx, &key_id, &revocation).await?;
    for package in store.package_ids_of(&mut tx, &publisher.id).await? {
        let event = LogEvent::KeyRevoke {
            key_id: key_id.clone(),
            reason: revocation.reason.clone(),
            effective_at: revocation.effective_at,
        };
        store
            .append(&mut tx, state.notary(), &package, now, event)
            .await?;
    }
    tx.commit().await?;
    Ok(Json(KeyView {
        key_id: key_id.to_string(),
        public_key: entry.key.to_hex(),
        created_at: entry.granted_at,
        revoked_at: Some(revocation.effective_at),
        revoke_reason: Some(revocation.reason),
    }))
}

// ---------------------------------------------------------------- packages

impl From<StoredRelease> for ReleaseView {
    fn from(r: StoredRelease) -> Self {
        ReleaseView {
            version: r.version.to_string(),
            sha256: r.sha256,
            size: r.size,
            api: r.api,
            dependencies: r.dependencies,
            key_id: r.key_id,
            author_signature: r.author_signature,
            countersignature: r.countersignature,
            yanked: r.yanked,
            yank_reason: r.yank_reason,
            downloads: r.downloads,
            published_at: r.published_at,
            price: None,
        }
    }
}

impl From<StoredPackage> for PackageSummary {
    fn from(p: StoredPackage) -> Self {
        PackageSummary {
            id: p.id,
            publisher: p.publisher,
            name: p.name,
            description: p.description,
            kinds: p.kinds,
            games: p.games,
            paid: p.paid,
            price: p.price.map(Into::into),
            downloads: p.downloads,
            latest_version: p.latest_version,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

/// Publishes a package version: the body is the `.cap` file; the
/// `x-cap-package` and `x-cap-version` headers name the id and version its
/// `plugin.toml` declares, and `x-cap-key-id` and `x-cap-signature` carry
/// the author signature over
/// `ctrl-alt-play/package/v1\n<id>\n<version>\n<sha256>`. Versions are
/// immutable: the same bytes again answer 200, other bytes 409.
///
/// The key, the signature over the body's sha256 and the ownership of the
/// id are checked before a byte of the package is unpacked, so only a
/// holder of one of the publisher's keys can make the Marketplace
/// decompress anything; the unpacked manifest must then declare the id and
/// version that were signed.
#[utoipa::path(post, path = "/packages", tag = "packages",
    params(PublishParams,
        ("x-cap-package" = String, Header, description = "The package id its plugin.toml declares"),
        ("x-cap-version" = String, Header, description = "The version its plugin.toml declares"),
        ("x-cap-key-id" = String, Header, description = "The signing key's id"),
        ("x-cap-signature" = String, Header, description = "The author signature, 128 hex digits")),
    request_body(content = Vec<u8>, content_type = "application/vnd.ctrl-alt-play.package"),
    security(("bearer" = [])),
    responses((status = 201, body = ReleaseView), (status = 200, description = "Already published with these bytes", body = ReleaseView),
              (status = 403, body = Problem), (status = 409, body = Problem), (status = 413, body = Problem), (status = 422, body = Problem)))]
pub(crate) async fn publish(
    State(state): State<AppState>,
    Authed(publisher): Authed,
    ApiQuery(params): ApiQuery<PublishParams>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<ReleaseView>)> {
    let header_field = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let mut errors = Vec::new();
    let mut required = |name: &'static str| {
        let value = header_field(name);
        if value.is_none() {
            errors.push(FieldError::new("header", name, "required"));
        }
        value
    };
    let (key_id, signature, claimed_id, claimed_version) = (
        required(KEY_ID_HEADER),
        required(SIGNATURE_HEADER),
        required(PACKAGE_ID_HEADER),
        required(PACKAGE_VERSION_HEADER),
    );
    let key_id = key_id.and_then(|v| {
        KeyId::parse(v)
            .map_err(|e| errors.push(FieldError::new("header", KEY_ID_HEADER, e.to_string())))
            .ok()
    });
    let signature = signature.and_then(|v| {
        Signature::from_hex(v)
            .map_err(|e| errors.push(FieldError::new("header", SIGNATURE_HEADER, e.to_string())))
            .ok()
    });
    let claimed_id = claimed_id.and_then(|v| {
        if cap_runtime::manifest::is_valid_id(v) {
            Some(v.to_owned())
        } else {
            errors.push(FieldError::new(
                "header",
                PACKAGE_ID_HEADER,
                "not a plugin id",
            ));
            None
        }
    });
    let claimed_version = claimed_version.and_then(|v| {
        semver::Version::parse(v)
            .map_err(|e| {
                errors.push(FieldError::new(
                    "header",
                    PACKAGE_VERSION_HEADER,
                    format!("not a semantic version: {e}"),
                ))
            })
            .ok()
    });
    let mut games: Vec<String> = params
        .games
        .as_deref()
        .unwrap_or_default()
        .split(',')
        .map(|g| g.trim().to_lowercase())
        .filter(|g| !g.is_empty())
        .collect();
    games.sort();
    games.dedup();
    if games.len() > 20 || games.iter().any(|g| !valid_name(g)) {
        errors.push(FieldError::new(
            "query",
            "games",
            "at most 20 names of 2 to 63 lowercase letters, digits and '-'",
        ));
    }
    let (Some(key_id), Some(signature), Some(id), Some(version), true) = (
        key_id,
        signature,
        claimed_id,
        claimed_version,
        errors.is_empty(),
    ) else {
        return Err(ApiError::Validation(errors));
    };
    // Hashing is the only work an unauthenticated body gets: key, signature
    // and ownership are settled before anything is decompressed.
    let upload = body.clone();
    let sha256 = tokio::task::spawn_blocking(move || hex::encode(Sha256::digest(upload)))
        .await
        .map_err(|e| ApiError::Internal(format!("hashing task: {e}")))?;
    let store = state.store();
    let check_author = async |tx: &mut Tx, now: i64| {
        let ring = store.keyring(tx, &publisher.id).await?;
        let key = ring.usable(&key_id, now).map_err(|e| match e {
            KeyUseError::Revoked { .. } => ApiError::KeyRevoked(e.to_string()),
            other => ApiError::UnknownKey(other.to_string()),
        })?;
        if !key.verify(&author_message(&id, &version, &sha256), &signature) {
            return Err(ApiError::InvalidSignature(format!(
                "the signature does not verify with key {key_id} over {id} {version} sha256 {sha256}"
            )));
        }
        let owner = store.package_owner(tx, &id).await?;
        if let Some(owner) = &owner
            && *owner != publisher.id
        {
            return Err(ApiError::NotOwner(format!(
                "package {id} belongs to another publisher"
            )));
        }
        Ok::<_, ApiError>((ring, owner))
    };
    {
        let mut tx = store.begin().await?;
        check_author(&mut tx, super::now()).await?;
        tx.rollback().await?;
    }
    // Unpacking and validating the component is CPU work; keep it off the
    // request threads.
    let upload = body.clone();
    let package = tokio::task::spawn_blocking(move || {
        cap_runtime::Package::read(&upload, cap_runtime::package::MAX_PACKAGE_BYTES)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("package validation task: {e}")))?
    .map_err(|e| ApiError::InvalidPackage(e.to_string()))?;
    let plugin = &package.manifest.plugin;
    if plugin.id != id || plugin.version != version {
        return Err(ApiError::InvalidPackage(format!(
            "the upload was signed as {id} {version} but its plugin.toml declares {} {}",
            plugin.id, plugin.version
        )));
    }
    let now = super::now();
    let mut tx = store.begin().await?;
    // Again inside the transaction that writes: a key revoked meanwhile
    // does not publish.
    let (ring, owner) = check_author(&mut tx, now).await?;
    if let Some(existing) = store.release(&id, &version).await? {
        return if existing.sha256 == sha256 {
            Ok((StatusCode::OK, Json(existing.into())))
        } else {
            Err(ApiError::VersionExists(format!(
                "{id} {version} is already published with sha256 {}; versions are immutable, publish a new version",
                existing.sha256
            )))
        };
    }
    state.write_blob(&sha256, &body).await?;
    let listing = StoredPackage {
        id: id.clone(),
        publisher: publisher.name.clone(),
        name: plugin.name.clone(),
        description: plugin.description.clone(),
        kinds: plugin.kinds.iter().map(|k| k.to_string()).collect(),
        games,
        paid: plugin.price.is_some(),
        downloads: 0,
        latest_version: version.to_string(),
        created_at: now,
        updated_at: now,
        price: None,
    };
    match &owner {
        None => {
            store
                .insert_package(&mut tx, &listing, &publisher.id)
                .await?;
            for entry in ring.active_at(now) {
                let event = LogEvent::KeyGrant {
                    key_id: entry.key.id().clone(),
                    public_key: entry.key.clone(),
                };
                store
                    .append(&mut tx, state.notary(), &id, now, event)
                    .await?;
            }
        }
        Some(_) => {
            let current = store
                .package(&id)
                .await?
                .ok_or_else(|| ApiError::Internal(format!("package {id} vanished")))?;
            let newest = semver::Version::parse(&current.latest_version)
                .map(|v| v < version)
                .unwrap_or(true);
            let listing = if newest {
                listing
            } else {
                StoredPackage {
                    updated_at: now,
                    ..current
                }
            };
            store.touch_package(&mut tx, &listing).await?;
        }
    }
    let countersignature = state
        .notary()
        .countersign(&id, &version, &sha256, &key_id, &signature);
    let dependencies = package.manifest.dependencies.clone();
    let event = LogEvent::Release {
        version: version.clone(),
        sha256: sha256.clone(),
        api: plugin.api.clone(),
        dependencies: dependencies.clone(),
        key_id: key_id.clone(),
        author_signature: signature,
        countersignature,
    };
    store
        .append(&mut tx, state.notary(), &id, now, event)
        .await?;
    let release = StoredRelease {
        version: version.clone(),
        sha256,
        size: body.len() as i64,
        api: plugin.api.to_string(),
        dependencies: dependencies
            .iter()
            .map(|(k, v)| (k.clone(), v.to_string()))
            .collect(),
        key_id: key_id.to_string(),
        author_signature: signature.to_hex(),
        countersignature: countersignature.to_hex(),
        yanked: false,
        yank_reason: None,
        downloads: 0,
        published_at: now,
    };
    store.insert_release(&mut tx, &id, &release).await?;
    tx.commit().await?;
    tracing::info!(package = %id, %version, publisher = %publisher.name, "published");
    Ok((StatusCode::CREATED, Json(release.into())))
}

/// Searches and browses packages.
#[utoipa::path(get, path = "/packages", tag = "packages", params(SearchParams),
    responses((status = 200, body = PackagePage), (status = 422, body = Problem)))]
pub(crate) async fn search(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<SearchParams>,
) -> ApiResult<Json<PackagePage>> {
    let mut errors = Vec::new();
    let page = params.page.unwrap_or(1);
    let per_page = params.per_page.unwrap_or(20);
    if !(1..=10_000).contains(&page) {
        errors.push(FieldError::new(
            "query",
            "page",
            "must be between 1 and 10000",
        ));
    }
    if !(1..=100).contains(&per_page) {
        errors.push(FieldError::new(
            "query",
            "per_page",
            "must be between 1 and 100",
        ));
    }
    if let Some(kind) = &params.kind
        && !cap_runtime::PluginKind::ALL
            .iter()
            .any(|k| k.as_str() == kind)
    {
        errors.push(FieldError::new(
            "query",
            "kind",
            "one of game-type, auth-provider, hooks, ui",
        ));
    }
    if let Some(game) = &params.game
        && !valid_name(&game.to_lowercase())
    {
        errors.push(FieldError::new("query", "game", "not a game name"));
    }
    let by_downloads = match params.sort.as_deref() {
        None | Some("recent") => false,
        Some("downloads") => true,
        Some(_) => {
            errors.push(FieldError::new("query", "sort", "one of downloads, recent"));
            false
        }
    };
    if params.q.as_ref().is_some_and(|q| q.len() > 200) {
        errors.push(FieldError::new("query", "q", "at most 200 characters"));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let (items, total) = state
        .store()
        .search(&Search {
            text: params.q.filter(|q| !q.trim().is_empty()),
            kind: params.kind,
            game: params.game,
            paid: params.paid,
            by_downloads,
            limit: per_page,
            offset: (page - 1) * per_page,
        })
        .await?;
    Ok(Json(PackagePage {
        items: items.into_iter().map(Into::into).collect(),
        page,
        per_page,
        total,
    }))
}

/// A package and all its versions.
#[utoipa::path(get, path = "/packages/{id}", tag = "packages",
    params(("id" = String, Path, description = "Plugin id")),
    responses((status = 200, body = PackageView), (status = 404, body = Problem)))]
pub(crate) async fn get_package(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<PackageView>> {
    let package = state
        .store()
        .package(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("package {id}")))?;
    let versions = state.store().releases(&id).await?;
    let prices = state.store().prices(&id).await?;
    let price_of = |version: &str| {
        prices
            .iter()
            .find(|p| p.version.as_deref() == Some(version))
            .or_else(|| prices.iter().find(|p| p.version.is_none()))
            .map(|p| PriceView::from(p.price.clone()))
    };
    Ok(Json(PackageView {
        summary: package.into(),
        versions: versions
            .into_iter()
            .map(|r| {
                let price = price_of(&r.version.to_string());
                ReleaseView { price, ..r.into() }
            })
            .collect(),
    }))
}

/// Downloads a package file (yanked versions too: lockfiles pin them).
#[utoipa::path(get, path = "/packages/{id}/versions/{version}/download", tag = "packages",
    params(("id" = String, Path, description = "Plugin id"), ("version" = String, Path, description = "Version")),
    responses((status = 200, content_type = "application/vnd.ctrl-alt-play.package", body = Vec<u8>), (status = 404, body = Problem)))]
pub(crate) async fn download(
    State(state): State<AppState>,
    Path((id, version)): Path<(String, String)>,
) -> ApiResult<Response> {
    let version = parse_version("version", &version)?;
    let release = state
        .store()
        .release(&id, &version)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("{id} {version}")))?;
    let bytes = state.read_blob(&release.sha256).await?;
    state.store().count_download(&id, &version).await?;
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(PACKAGE_MEDIA_TYPE),
    );
    if let Ok(v) = HeaderValue::from_str(&release.sha256) {
        headers.insert(SHA256_HEADER, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{id}-{version}.cap\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

async fn set_yank(
    state: &AppState,
    publisher: &Publisher,
    id: &str,
    version: &str,
    reason: Option<&str>,
) -> ApiResult<Json<ReleaseView>> {
    let version = parse_version("version", version)?;
    let store = state.store();
    let mut tx = store.begin().await?;
    match store.package_owner(&mut tx, id).await? {
        None => return Err(ApiError::NotFound(format!("package {id}"))),
        Some(owner) if owner != publisher.id => {
            return Err(ApiError::NotOwner(format!(
                "package {id} belongs to another publisher"
            )));
        }
        Some(_) => {}
    }
    let release = store
        .release(id, &version)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("{id} {version}")))?;
    if release.yanked != reason.is_some() {
        let event = match reason {
            Some(reason) => LogEvent::Yank {
                version: version.clone(),
                reason: reason.to_owned(),
            },
            None => LogEvent::Unyank {
                version: version.clone(),
            },
        };
        store
            .append(&mut tx, state.notary(), id, super::now(), event)
            .await?;
        store.set_yanked(&mut tx, id, &version, reason).await?;
    }
    tx.commit().await?;
    let release = store
        .release(id, &version)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("{id} {version}")))?;
    Ok(Json(release.into()))
}

/// Yanks a version: new installs skip it; lockfiles pinning it still work.
#[utoipa::path(post, path = "/packages/{id}/versions/{version}/yank", tag = "packages", request_body = Yank,
    params(("id" = String, Path, description = "Plugin id"), ("version" = String, Path, description = "Version")),
    security(("bearer" = [])),
    responses((status = 200, body = ReleaseView), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub(crate) async fn yank(
    State(state): State<AppState>,
    Authed(publisher): Authed,
    Path((id, version)): Path<(String, String)>,
    ApiJson(body): ApiJson<Yank>,
) -> ApiResult<Json<ReleaseView>> {
    if body.reason.trim().is_empty() || body.reason.chars().count() > 500 {
        return Err(ApiError::Validation(vec![FieldError::new(
            "body",
            "reason",
            "1 to 500 characters",
        )]));
    }
    set_yank(&state, &publisher, &id, &version, Some(&body.reason)).await
}

/// Withdraws a yank.
#[utoipa::path(post, path = "/packages/{id}/versions/{version}/unyank", tag = "packages",
    params(("id" = String, Path, description = "Plugin id"), ("version" = String, Path, description = "Version")),
    security(("bearer" = [])),
    responses((status = 200, body = ReleaseView), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub(crate) async fn unyank(
    State(state): State<AppState>,
    Authed(publisher): Authed,
    Path((id, version)): Path<(String, String)>,
) -> ApiResult<Json<ReleaseView>> {
    set_yank(&state, &publisher, &id, &version, None).await
}
