//! The registry service: HTTP API over the [`Store`], the package
//! blob directory and the [`Notary`].
//!
//! Everything lives under `/api/v1`; errors are problem documents
//! ([`error`]); every client address is rate limited ([`rate_limit`]);
//! `GET /api/v1/openapi.json` describes the API.
//!
//! Billing ([`billing_routes`], the billing half of the [`Store`]) is enabled by a
//! [`BillingConfig`]; without one its endpoints answer
//! `503 billing-disabled`.
//!
//! Package files are stored once per content at
//! `<data>/packages/<sha256[0..2]>/<sha256>.cap`, written to a temporary
//! name and renamed, so a reader never sees half a file and identical
//! uploads share one file.

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::billing::BillingConfig;
use crate::billing::stripe::Gateway;
use cap_marketplace::log::Notary;

pub mod billing_routes;
pub mod error;
pub mod rate_limit;
pub mod routes;

use crate::store::Store;
use error::{ApiError, PROBLEM_JSON};

/// Default lifetime of a publisher token: 90 days.
pub const DEFAULT_TOKEN_TTL: i64 = 90 * 24 * 3600;

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// What handlers reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    notary: Notary,
    blobs: PathBuf,
    timestamp_ttl: i64,
    billing: Option<Billing>,
    token_ttl: i64,
    admin_token_hash: Option<String>,
}

/// Billing's configuration and Stripe client, when billing is enabled.
#[derive(Debug, Clone)]
pub struct Billing {
    /// The configuration.
    pub config: BillingConfig,
    /// The Stripe client.
    pub gateway: Gateway,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("blobs", &self.inner.blobs)
            .field("key", self.inner.notary.public_key().id())
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// State over `store`, signing with `notary`, storing files below
    /// `blobs`, selling through `billing` if set.
    pub fn new(
        store: Store,
        notary: Notary,
        blobs: PathBuf,
        timestamp_ttl: i64,
        billing: Option<Billing>,
    ) -> AppState {
        AppState {
            inner: Arc::new(Inner {
                store,
                notary,
                blobs,
                timestamp_ttl,
                billing,
                token_ttl: DEFAULT_TOKEN_TTL,
                admin_token_hash: None,
            }),
        }
    }

    /// This state with publisher tokens living `token_ttl` seconds and the
    /// admin routes (key recovery) open to `admin_token`, if any.
    pub fn with_trust(self, token_ttl: i64, admin_token: Option<&str>) -> AppState {
        let inner = Arc::try_unwrap(self.inner).unwrap_or_else(|shared| Inner {
            store: shared.store.clone(),
            notary: shared.notary.clone(),
            blobs: shared.blobs.clone(),
            timestamp_ttl: shared.timestamp_ttl,
            billing: shared.billing.clone(),
            token_ttl: shared.token_ttl,
            admin_token_hash: shared.admin_token_hash.clone(),
        });
        AppState {
            inner: Arc::new(Inner {
                token_ttl,
                admin_token_hash: admin_token.map(routes::admin_token_hash),
                ..inner
            }),
        }
    }

    /// How long a publisher token lives, seconds.
    pub fn token_ttl(&self) -> i64 {
        self.inner.token_ttl
    }

    /// The hash of the admin token, if admin routes are open.
    pub(crate) fn admin_token_hash(&self) -> Option<&str> {
        self.inner.admin_token_hash.as_deref()
    }

    /// Billing, or `503 billing-disabled`.
    pub fn billing(&self) -> Result<&Billing, ApiError> {
        self.inner.billing.as_ref().ok_or(ApiError::BillingDisabled)
    }

    /// The database.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The signer.
    pub fn notary(&self) -> &Notary {
        &self.inner.notary
    }

    /// How long timestamps are valid, seconds.
    pub fn timestamp_ttl(&self) -> i64 {
        self.inner.timestamp_ttl
    }

    fn blob_path(&self, sha256: &str) -> PathBuf {
        self.inner
            .blobs
            .join(sha256.get(..2).unwrap_or("xx"))
            .join(format!("{sha256}.cap"))
    }

    /// Stores a package file under its sha256 (no-op if present).
    pub(crate) async fn write_blob(&self, sha256: &str, bytes: &[u8]) -> Result<(), ApiError> {
        let path = self.blob_path(sha256);
        if tokio::fs::try_exists(&path).await.unwrap_or(false) {
            return Ok(());
        }
        let io = |e: std::io::Error| ApiError::Internal(format!("storing {}: {e}", path.display()));
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await.map_err(io)?;
        }
        let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
        tokio::fs::write(&tmp, bytes).await.map_err(io)?;
        tokio::fs::rename(&tmp, &path).await.map_err(io)
    }

    /// Reads a stored package file.
    pub(crate) async fn read_blob(&self, sha256: &str) -> Result<Vec<u8>, ApiError> {
        let path = self.blob_path(sha256);
        tokio::fs::read(&path)
            .await
            .map_err(|e| ApiError::Internal(format!("reading {}: {e}", path.display())))
    }
}

/// The OpenAPI document's frame.
#[derive(OpenApi)]
#[openapi(
    info(title = "Ctrl-Alt-Play Marketplace", description = "Signed plugin packages, transparency logs and search."),
    modifiers(&BearerAuth),
    tags(
        (name = "system", description = "Health and this document"),
        (name = "publishers", description = "Accounts and signing keys"),
        (name = "packages", description = "Publishing, browsing, downloading, yanking"),
        (name = "transparency", description = "Logs, timestamps and the Marketplace key"),
        (name = "billing", description = "Prices, payouts, checkout, the Stripe webhook, licenses"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A publisher token from POST /api/v1/publishers."))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "panel",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A Panel instance token from POST /api/v1/panels (not a publisher token).",
                    ))
                    .build(),
            ),
        );
    }
}

/// Every documented route.
pub fn api_routes() -> OpenApiRouter<AppState> {
    let v1 = OpenApiRouter::new()
        .routes(routes!(routes::health))
        .routes(routes!(routes::marketplace_key))
        .routes(routes!(routes::timestamp))
        .routes(routes!(routes::create_publisher))
        .routes(routes!(routes::get_publisher))
        .routes(routes!(routes::rotate_token))
        .routes(routes!(routes::add_key))
        .routes(routes!(routes::revoke_key))
        .routes(routes!(routes::recover_key))
        .routes(routes!(routes::admin_revoke_key))
        .routes(routes!(routes::publish, routes::search))
        .routes(routes!(routes::get_package))
        .routes(routes!(routes::log))
        .routes(routes!(routes::download))
        .routes(routes!(routes::yank))
        .routes(routes!(routes::unyank))
        .routes(routes!(
            billing_routes::set_price,
            billing_routes::clear_price
        ))
        .routes(routes!(billing_routes::set_payouts))
        .routes(routes!(billing_routes::register_panel))
        .routes(routes!(billing_routes::checkout))
        .routes(routes!(billing_routes::stripe_webhook))
        .routes(routes!(billing_routes::licenses))
        .routes(routes!(billing_routes::renew_license));
    OpenApiRouter::with_openapi(ApiDoc::openapi()).nest("/api/v1", v1)
}

/// The OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_routes().into_openapi()
}

/// The application: routes, OpenAPI, problem documents, limits.
pub fn router(state: AppState, limit: rate_limit::RateLimit, max_upload: usize) -> Router {
    let (routes, doc) = api_routes().split_for_parts();
    let document = Bytes::from(doc.to_pretty_json().unwrap_or_else(|_| "{}".to_owned()));
    routes
        .route(
            "/api/v1/openapi.json",
            axum::routing::get(move || {
                let document = document.clone();
                async move { ([(header::CONTENT_TYPE, "application/json")], document) }
            }),
        )
        .fallback(|| async { ApiError::NotFound("route".into()) })
        .layer(DefaultBodyLimit::max(max_upload))
        .layer(middleware::from_fn(normalize))
        .layer(middleware::from_fn_with_state(
            rate_limit::Limiter::new(limit),
            rate_limit::enforce,
        ))
        .layer(tower_http::catch_panic::CatchPanicLayer::new())
        .with_state(state)
}

/// Turns error responses that are not problem documents (axum's own 405,
/// 413, extractor rejections) into problem documents.
async fn normalize(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return response;
    }
    let error = match status {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
        StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed,
        StatusCode::NOT_FOUND => ApiError::NotFound("route".into()),
        StatusCode::UNAUTHORIZED => ApiError::Unauthenticated("credentials required".into()),
        s if s.is_server_error() => ApiError::Internal(format!("status {s}")),
        s => ApiError::BadRequest(
            s.canonical_reason()
                .unwrap_or("the request was refused")
                .to_owned(),
        ),
    };
    error.into_response()
}
