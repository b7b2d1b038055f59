//! The HTTP handlers.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::billing_routes::PriceView;
use super::error::{ApiError, ApiResult, FieldError, Problem};
use super::store::{Publisher, Search, StoredPackage, StoredRelease};
use crate::keys::{KeyId, PublicKey, Signature};
use crate::log::LogEvent;
use crate::signing::{KeyUseError, Revocation, author_message};

/// The media type of package files.
pub const PACKAGE_MEDIA_TYPE: &str = "application/vnd.ctrl-alt-play.package";
/// Header carrying the author's key id on publish.
pub const KEY_ID_HEADER: &str = "x-cap-key-id";
/// Header carrying the author's signature on publish.
pub const SIGNATURE_HEADER: &str = "x-cap-signature";
/// Header carrying the sha256 of a downloaded package.
pub const SHA256_HEADER: &str = "x-cap-sha256";

/// The message a publisher signs to prove it holds a key it adds.
pub fn key_proof_message(publisher: &str, key: &KeyId) -> Vec<u8> {
    format!("ctrl-alt-play/key-proof/v1\n{publisher}\n{key}").into_bytes()
}

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

/// The authenticated publisher (`Authorization: Bearer <token>`).
pub(crate) struct Authed(pub(crate) Publisher);

/// The stored form of a token.
pub(crate) fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(format!(
        "ctrl-alt-play/publisher-token/v1\n{token}"
    )))
}

impl FromRequestParts<AppState> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let value = parts.headers.get(header::AUTHORIZATION).ok_or_else(|| {
            ApiError::Unauthenticated("send `Authorization: Bearer <token>`".into())
        })?;
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::Unauthenticated("malformed Authorization header".into()))?;
        state
            .store()
            .publisher_by_token(&token_hash(token))
            .await?
            .map(Authed)
            .ok_or_else(|| ApiError::Unauthenticated("unknown token".into()))
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

/// The health report.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok` or `unavailable`.
    pub status: String,
    /// The Marketplace's version.
    pub version: String,
    /// Whether the database answers.
    pub database: bool,
}

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

/// The Marketplace's public key.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MarketplaceKey {
    /// Key id.
    pub key_id: String,
    /// The key, 64 hex digits.
    pub public_key: String,
    /// The key in the public key-file format.
    pub key_file: String,
}

/// The key that signs logs, countersignatures and timestamps.
#[utoipa::path(get, path = "/marketplace-key", tag = "transparency",
    responses((status = 200, body = MarketplaceKey)))]
pub(crate) async fn marketplace_key(State(state): State<AppState>) -> Json<MarketplaceKey> {
    let key = state.notary().public_key();
    Json(MarketplaceKey {
        key_id: key.id().to_string(),
        public_key: key.to_hex(),
        key_file: key.to_file(),
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

/// A new publisher.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NewPublisher {
    /// `^[a-z][a-z0-9-]{1,62}$`.
    pub name: String,
}

/// A created publisher and its token (shown once).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PublisherCreated {
    /// The name.
    pub name: String,
    /// The bearer token. Store it; it is not shown again.
    pub token: String,
}

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
    match state
        .store()
        .create_publisher(&id[..32], &body.name, &token_hash(&token), super::now())
        .await?
    {
        Some(p) => Ok((
            StatusCode::CREATED,
            Json(PublisherCreated {
                name: p.name,
                token,
            }),
        )),
        None => Err(ApiError::NameTaken(format!(
            "publisher name {} is taken",
            body.name
        ))),
    }
}

/// A publisher key.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct KeyView {
    /// Key id.
    pub key_id: String,
    /// The key, 64 hex digits.
    pub public_key: String,
    /// When added (unix seconds).
    pub created_at: i64,
    /// From when revoked (unix seconds).
    pub revoked_at: Option<i64>,
    /// Why revoked.
    pub revoke_reason: Option<String>,
}

/// A publisher's public profile.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PublisherView {
    /// The name.
    pub name: String,
    /// Keys, revoked ones included.
    pub keys: Vec<KeyView>,
    /// Package ids.
    pub packages: Vec<String>,
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

/// A key to add.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NewKey {
    /// The public key: 64 hex digits, or a public key file.
    pub public_key: String,
    /// Signature by the key of `ctrl-alt-play/key-proof/v1\n<publisher>\n<key id>`.
    pub proof: String,
}

/// Adds a signing key to the caller's account and grants it in the logs of
/// all the caller's packages.
#[utoipa::path(post, path = "/publishers/me/keys", tag = "publishers", request_body = NewKey,
    security(("bearer" = [])),
    responses((status = 201, body = KeyView), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub(crate) async fn add_key(
    State(state): State<AppState>,
    Authed(publisher): Authed,
    ApiJson(body): ApiJson<NewKey>,
) -> ApiResult<(StatusCode, Json<KeyView>)> {
    let key = if body.public_key.contains("ctrl-alt-play-public-key") {
        PublicKey::from_file(&body.public_key)
    } else {
        PublicKey::from_hex(&body.public_key)
    }
    .map_err(|e| {
        ApiError::Validation(vec![FieldError::new("body", "public_key", e.to_string())])
    })?;
    let proof = Signature::from_hex(&body.proof)
        .map_err(|e| ApiError::Validation(vec![FieldError::new("body", "proof", e.to_string())]))?;
    if !key.verify(&key_proof_message(&publisher.name, key.id()), &proof) {
        return Err(ApiError::Validation(vec![FieldError::new(
            "body",
            "proof",
            "does not verify: sign `ctrl-alt-play/key-proof/v1\\n<publisher>\\n<key id>` with the key",
        )]));
    }
    let now = super::now();
    let store = state.store();
    let mut tx = store.begin().await?;
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

/// A revocation.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RevokeKey {
    /// Why (1 to 500 characters).
    pub reason: String,
    /// From when signatures are invalid (unix seconds, not in the future;
    /// default now). Releases signed since then become uninstallable.
    #[serde(default)]
    pub effective_at: Option<i64>,
}

/// Revokes one of the caller's keys and records it in all their logs.
#[utoipa::path(post, path = "/publishers/me/keys/{key_id}/revoke", tag = "publishers", request_body = RevokeKey,
    params(("key_id" = String, Path, description = "Key id")),
    security(("bearer" = [])),
    responses((status = 200, body = KeyView), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub(crate) async fn revoke_key(
    State(state): State<AppState>,
    Authed(publisher): Authed,
    Path(key_id): Path<String>,
    ApiJson(body): ApiJson<RevokeKey>,
) -> ApiResult<Json<KeyView>> {
    let now = super::now();
    let mut errors = Vec::new();
    if body.reason.trim().is_empty() || body.reason.chars().count() > 500 {
        errors.push(FieldError::new("body", "reason", "1 to 500 characters"));
    }
    let effective_at = body.effective_at.unwrap_or(now);
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
    let mut ring = store.keyring(&mut tx, &publisher.id).await?;
    ring.revoke(
        &key_id,
        Revocation {
            reason: body.reason.clone(),
            effective_at,
        },
    )
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

/// One version of a package.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReleaseView {
    /// Version.
    pub version: String,
    /// sha256 of the file.
    pub sha256: String,
    /// Size in bytes.
    pub size: i64,
    /// Target plugin API.
    pub api: String,
    /// Dependencies: id → requirement.
    pub dependencies: BTreeMap<String, String>,
    /// The author's key.
    pub key_id: String,
    /// The author's signature.
    pub author_signature: String,
    /// The Marketplace's countersignature.
    pub countersignature: String,
    /// Whether yanked.
    pub yanked: bool,
    /// Why yanked.
    pub yank_reason: Option<String>,
    /// Downloads of this version.
    pub downloads: i64,
    /// When published (unix seconds).
    pub published_at: i64,
    /// What this version costs (its own price or the package-wide one);
    /// absent: free.
    pub price: Option<PriceView>,
}

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

/// A package in listings.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PackageSummary {
    /// Plugin id.
    pub id: String,
    /// Publisher name.
    pub publisher: String,
    /// Display name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Plugin kinds.
    pub kinds: Vec<String>,
    /// Games it is for.
    pub games: Vec<String>,
    /// Whether it is paid (priced, or its manifest names a price).
    pub paid: bool,
    /// The newest version's price; absent: free or not yet priced.
    pub price: Option<PriceView>,
    /// Total downloads.
    pub downloads: i64,
    /// Newest version.
    pub latest_version: String,
    /// First published (unix seconds).
    pub created_at: i64,
    /// Last published (unix seconds).
    pub updated_at: i64,
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

/// A package with all its versions.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PackageView {
    /// The listing.
    #[serde(flatten)]
    pub summary: PackageSummary,
    /// Versions, newest first.
    pub versions: Vec<ReleaseView>,
}

/// Publish parameters.
#[derive(Debug, Default, Deserialize, IntoParams)]
pub struct PublishParams {
    /// Comma-separated games the package is for (e.g. `minecraft`).
    #[serde(default)]
    pub games: Option<String>,
}

/// Publishes a package version: the body is the `.cap` file, the
/// `x-cap-key-id` and `x-cap-signature` headers the author signature over
/// `ctrl-alt-play/package/v1\n<id>\n<version>\n<sha256>`. Versions are
/// immutable: the same bytes again answer 200, other bytes 409.
#[utoipa::path(post, path = "/packages", tag = "packages",
    params(PublishParams,
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
    let key_id = match header_field(KEY_ID_HEADER).map(KeyId::parse) {
        Some(Ok(id)) => Some(id),
        Some(Err(e)) => {
            errors.push(FieldError::new("header", KEY_ID_HEADER, e.to_string()));
            None
        }
        None => {
            errors.push(FieldError::new("header", KEY_ID_HEADER, "required"));
            None
        }
    };
    let signature = match header_field(SIGNATURE_HEADER).map(Signature::from_hex) {
        Some(Ok(sig)) => Some(sig),
        Some(Err(e)) => {
            errors.push(FieldError::new("header", SIGNATURE_HEADER, e.to_string()));
            None
        }
        None => {
            errors.push(FieldError::new("header", SIGNATURE_HEADER, "required"));
            None
        }
    };
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
    let (Some(key_id), Some(signature)) = (key_id, signature) else {
        return Err(ApiError::Validation(errors));
    };
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
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
    let (id, version) = (plugin.id.clone(), plugin.version.clone());
    let sha256 = package.sha256.clone();
    let now = super::now();
    let store = state.store();
    let mut tx = store.begin().await?;
    let ring = store.keyring(&mut tx, &publisher.id).await?;
    let key = ring.usable(&key_id, now).map_err(|e| match e {
        KeyUseError::Revoked { .. } => ApiError::KeyRevoked(e.to_string()),
        other => ApiError::UnknownKey(other.to_string()),
    })?;
    if !key.verify(&author_message(&id, &version, &sha256), &signature) {
        return Err(ApiError::InvalidSignature(format!(
            "the signature does not verify with key {key_id} over {id} {version} sha256 {sha256}"
        )));
    }
    let owner = store.package_owner(&mut tx, &id).await?;
    if let Some(owner) = &owner
        && *owner != publisher.id
    {
        return Err(ApiError::NotOwner(format!(
            "package {id} belongs to another publisher"
        )));
    }
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

/// Search parameters.
#[derive(Debug, Default, Deserialize, IntoParams)]
pub struct SearchParams {
    /// Words to find in id, name or description.
    #[serde(default)]
    pub q: Option<String>,
    /// Plugin kind: `game-type`, `auth-provider`, `hooks`, `ui`.
    #[serde(default)]
    pub kind: Option<String>,
    /// Game.
    #[serde(default)]
    pub game: Option<String>,
    /// `true` for paid, `false` for free.
    #[serde(default)]
    pub paid: Option<bool>,
    /// `downloads` or `recent` (default).
    #[serde(default)]
    pub sort: Option<String>,
    /// Page, from 1.
    #[serde(default)]
    pub page: Option<i64>,
    /// Page size, 1 to 100 (default 20).
    #[serde(default)]
    pub per_page: Option<i64>,
}

/// A page of packages.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PackagePage {
    /// The packages.
    pub items: Vec<PackageSummary>,
    /// This page.
    pub page: i64,
    /// Page size.
    pub per_page: i64,
    /// Matches in all pages.
    pub total: i64,
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

/// A yank.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Yank {
    /// Why (1 to 500 characters).
    pub reason: String,
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
