//! The HTTP API and its conventions.
//!
//! Everything lives under `/api/v1`, except `GET /metrics`.
//!
//! | Concern | Where |
//! | --- | --- |
//! | Errors: RFC 9457 problem documents with stable codes | [`error`] |
//! | Request ids (`x-request-id`) | [`request_id`] |
//! | JSON bodies and query strings with per-field errors | [`extract`] |
//! | `?limit=&cursor=` pagination | [`pagination`] |
//! | Authentication extension point | [`auth`] |
//! | Client address (trusted proxies) and per-address request limits | [`client_addr`] |
//! | Prometheus metrics | [`metrics`] |
//! | OpenAPI 3.1 document | [`mod@openapi`] |
//! | Plugin-contributed UI, sign-in providers, game types | [`ui_routes`] |
//! | Redirect sign-in (OAuth2, OpenID Connect) and linking | [`redirect_routes`] |
//! | The Web UI's page and assets (not part of the API) | [`web`] |
//! | The Agents' WebSocket and their plugin downloads | [`agent_link`] |
//! | The browsers' console WebSocket and its tokens | [`console_socket`] |
//!
//! Layering: this module is the top of the Panel library. It turns requests
//! into calls on the domain modules ([`crate::identity`],
//! [`crate::servers`], [`crate::agents`], [`crate::plugins`],
//! [`crate::marketplace`]) and their answers and refusals into responses;
//! none of those modules names anything in here. What both sides need sits
//! below them: the caller ([`crate::identity::principal::Principal`]) and
//! the stable error codes ([`crate::error_code::Code`]).
//!
//! Middleware, outermost first: request id → client address → tracing span
//! (method, path, request id) → metrics → problem normalization → request
//! limits per address → panic catcher → body limit → routes. Handlers take [`AppState`] and return
//! [`error::ApiResult`]. The first three wrap the finished router once;
//! the others are layers of the router, which axum applies to each route
//! (the metrics need the route's template, known only once routed), and
//! whose stack is cloned with the route on every request: keeping the
//! route-independent ones outside keeps that clone small (measured in
//! `BENCHMARKS.md`, Panel API).

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Request};
use axum::{Extension, middleware};
use tower_http::LatencyUnit;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::config::Config;
use crate::db::Database;

pub mod account_links_routes;
pub mod agent_link;
pub mod allocations_routes;
pub mod api_keys;
pub mod audit_log;
pub mod auth;
pub mod auth_routes;
pub mod backups_routes;
pub mod client_addr;
pub mod console_socket;
pub mod databases_routes;
pub mod eggs_routes;
pub mod error;
pub mod extract;
pub mod files_routes;
pub mod health;
pub mod mail_routes;
pub mod marketplace_routes;
pub mod metrics;
pub mod nodes_routes;
pub mod openapi;
pub mod pagination;
pub mod password_routes;
pub mod plugins_routes;
pub mod redirect_routes;
pub mod request_id;
pub mod roles_routes;
pub mod servers_routes;
pub mod settings_routes;
pub mod ssh_keys_routes;
pub mod suspension_routes;
pub mod timers_routes;
pub mod totp_routes;
pub mod transfer_routes;
pub mod ui_routes;
pub mod users_routes;
pub mod web;

pub use auth::{Authenticated, Authenticator, Credential, DenyAll, Principal};
pub use error::{ApiError, ApiResult, FieldError, FieldLocation, Problem};
pub use extract::{ApiJson, ApiQuery};
pub use metrics::Metrics;
pub use pagination::{Cursor, PageParams, Pagination};
pub use request_id::RequestId;

/// What every handler can reach: configuration, database, metrics and the
/// authenticator. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    db: Database,
    metrics: Metrics,
    authenticator: Arc<dyn Authenticator>,
    plugins: std::sync::OnceLock<crate::plugins::PluginManager>,
    identity: std::sync::OnceLock<crate::identity::IdentityService>,
    agents: crate::agents::AgentHub,
    console_tokens: console_socket::TokenKeys,
    marketplace: std::sync::OnceLock<crate::marketplace::MarketplaceService>,
    server_pages: servers_routes::ServerPageCache,
    requests: crate::identity::RateLimiter,
    file_grants: std::sync::OnceLock<crate::files::GrantSigner>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("config", &self.inner.config)
            .field("db", &self.inner.db.backend())
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// State for a Panel with `config`, `db`, a fresh metrics registry and
    /// `authenticator`.
    pub fn new(config: Config, db: Database, authenticator: Arc<dyn Authenticator>) -> AppState {
        AppState::with_agents(config, db, authenticator, crate::agents::AgentHub::new())
    }

    /// [`AppState::new`] with an existing Agent hub (whose waker the
    /// plugins' `panel` capability already holds).
    pub fn with_agents(
        config: Config,
        db: Database,
        authenticator: Arc<dyn Authenticator>,
        agents: crate::agents::AgentHub,
    ) -> AppState {
        AppState {
            inner: Arc::new(Inner {
                config,
                db,
                metrics: Metrics::new(),
                authenticator,
                plugins: std::sync::OnceLock::new(),
                identity: std::sync::OnceLock::new(),
                agents,
                console_tokens: console_socket::TokenKeys::generate(),
                marketplace: std::sync::OnceLock::new(),
                server_pages: servers_routes::ServerPageCache::new(
                    servers_routes::CACHED_SERVER_PAGES,
                ),
                requests: crate::identity::RateLimiter::default(),
                file_grants: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Pages of `GET /servers` by caller and page, at one read version.
    fn server_pages(&self) -> &servers_routes::ServerPageCache {
        &self.inner.server_pages
    }

    /// Connected Agents and server consoles.
    pub fn agents(&self) -> &crate::agents::AgentHub {
        &self.inner.agents
    }

    /// The keys console tokens are signed with.
    pub fn console_tokens(&self) -> &console_socket::TokenKeys {
        &self.inner.console_tokens
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The database.
    pub fn db(&self) -> &Database {
        &self.inner.db
    }

    /// The per-address request limits of [`client_addr::limit`].
    pub fn request_limiter(&self) -> &crate::identity::RateLimiter {
        &self.inner.requests
    }

    /// The metrics registry.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The plugin manager, once [`AppState::set_plugins`] installed one.
    pub fn plugins(&self) -> Option<&crate::plugins::PluginManager> {
        self.inner.plugins.get()
    }

    /// Installs the plugin manager; only the first call has an effect.
    pub fn set_plugins(&self, plugins: crate::plugins::PluginManager) {
        let _ = self.inner.plugins.set(plugins);
    }

    /// The identity service, once [`AppState::set_identity`] installed one.
    pub fn identity(&self) -> Option<&crate::identity::IdentityService> {
        self.inner.identity.get()
    }

    /// Installs the identity service; only the first call has an effect.
    pub fn set_identity(&self, identity: crate::identity::IdentityService) {
        let _ = self.inner.identity.set(identity);
    }

    /// The Marketplace connection, once [`AppState::set_marketplace`]
    /// installed one (when `[marketplace] url` is configured).
    pub fn marketplace(&self) -> Option<&crate::marketplace::MarketplaceService> {
        self.inner.marketplace.get()
    }

    /// Installs the Marketplace connection; only the first call has an effect.
    pub fn set_marketplace(&self, marketplace: crate::marketplace::MarketplaceService) {
        let _ = self.inner.marketplace.set(marketplace);
    }

    /// The signer of file grants, derived from the secret key on first use
    /// ([`crate::files::grants`]).
    ///
    /// # Errors
    ///
    /// The database was opened without a secret key.
    pub fn file_grants(&self) -> Result<&crate::files::GrantSigner, crate::db::DbError> {
        if let Some(signer) = self.inner.file_grants.get() {
            return Ok(signer);
        }
        let seed = self
            .inner
            .db
            .sealer()?
            .derive_key(crate::files::grants::KEY_LABEL);
        Ok(self
            .inner
            .file_grants
            .get_or_init(|| crate::files::GrantSigner::from_seed(&seed)))
    }

    /// The authenticator.
    pub fn authenticator(&self) -> Arc<dyn Authenticator> {
        Arc::clone(&self.inner.authenticator)
    }
}

/// Every documented route, unlayered: the single list the router and the
/// OpenAPI document are both made from.
pub fn api_routes() -> OpenApiRouter<AppState> {
    let v1 = OpenApiRouter::new()
        .routes(routes!(health::health))
        .routes(routes!(openapi::document))
        .routes(routes!(audit_log::list))
        .routes(routes!(settings_routes::list, settings_routes::create))
        .routes(routes!(
            settings_routes::get,
            settings_routes::put,
            settings_routes::delete
        ))
        .merge(plugins_routes::router())
        .merge(timers_routes::router())
        .merge(eggs_routes::router())
        .merge(marketplace_routes::router())
        .merge(auth_routes::router())
        .merge(redirect_routes::router())
        .merge(api_keys::router())
        .merge(ssh_keys_routes::router())
        .merge(nodes_routes::router())
        .merge(servers_routes::router())
        .merge(suspension_routes::router())
        .merge(transfer_routes::router())
        .merge(files_routes::router())
        .merge(backups_routes::router())
        .merge(databases_routes::router())
        .merge(allocations_routes::router())
        .merge(totp_routes::router())
        .merge(password_routes::router())
        .merge(account_links_routes::router())
        .merge(mail_routes::router())
        .merge(users_routes::router())
        .merge(roles_routes::router())
        .merge(ui_routes::router());
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .nest("/api/v1", v1)
        .routes(routes!(metrics::scrape))
}

/// The OpenAPI document of [`api_routes`].
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = api_routes().into_openapi();
    openapi::document_errors(&mut doc);
    openapi::document_permissions(&mut doc);
    doc
}

/// The complete application: routes, fallback and middleware, with state.
pub fn router(state: AppState) -> Router {
    let (routes, mut doc) = api_routes().split_for_parts();
    openapi::document_errors(&mut doc);
    openapi::document_permissions(&mut doc);
    let rendered = openapi::RenderedDocument(Bytes::from(
        doc.to_pretty_json().unwrap_or_else(|_| "{}".to_owned()),
    ));
    let trace = TraceLayer::new_for_http()
        .make_span_with(|request: &Request| {
            let request_id = request
                .extensions()
                .get::<RequestId>()
                .map(|id| id.as_str().to_owned())
                .unwrap_or_default();
            tracing::info_span!(
                "http_request",
                method = %request.method(),
                path = %request.uri().path(),
                request_id = %request_id,
            )
        })
        .on_response(
            DefaultOnResponse::new()
                .level(Level::INFO)
                .latency_unit(LatencyUnit::Micros),
        );
    let routed = routes
        .route(
            "/api/v1/agents/connect",
            axum::routing::get(agent_link::connect),
        )
        .route(
            "/api/v1/agents/plugins/{id}",
            axum::routing::get(agent_link::plugin_metadata),
        )
        .route(
            "/api/v1/agents/plugins/{id}/component",
            axum::routing::get(agent_link::plugin_component),
        )
        .route(
            "/api/v1/servers/{id}/console",
            axum::routing::get(console_socket::socket),
        )
        .merge(web::router())
        .fallback(error::not_found)
        .layer(Extension(rendered))
        .layer(DefaultBodyLimit::max(state.config().body_limit))
        .layer(CatchPanicLayer::new())
        .layer(middleware::from_fn_with_state(
            state.clone(),
            client_addr::limit,
        ))
        .layer(middleware::from_fn(error::normalize))
        .layer(middleware::from_fn_with_state(
            state.metrics().clone(),
            metrics::track,
        ))
        .with_state(state.clone());
    let once = tower::ServiceBuilder::new()
        .layer(middleware::from_fn(request_id::assign))
        .layer(middleware::from_fn_with_state(state, client_addr::assign))
        .layer(trace)
        .service(routed);
    Router::new().fallback_service(once)
}
