//! `/api/v1/marketplace`: browse the configured Marketplace through the
//! Panel, install from it, update everything installed from it, and read
//! the lockfile. Every route needs `admin.plugins`; without
//! `[marketplace] url` every route answers `409 conflict`.
//!
//! Problem codes of their own:
//!
//! | Code | Status | When |
//! | --- | --- | --- |
//! | `verification-failed` | 422 | a signature, log, timestamp or digest check failed; `detail` starts with the check's name in backquotes (`` `sha256` ``, `` `key-not-revoked` ``, `` `log-rollback` ``, `` `timestamp-fresh` ``, `` `dependency-sha256` ``, …) |
//! | `resolution-failed` | 409 | no versions satisfy the request; `detail` explains why in sentences |
//! | `license-required` | 402 | a paid plugin without a license |
//! | `marketplace-key-mismatch` | 502 | the Marketplace presents a key other than the trusted one |
//! | `marketplace-unavailable` | 502 | the Marketplace cannot be reached or answered wrongly |
//!
//! Installing errors (`plugin-load-failed`, `plugin-config-missing`,
//! `version-not-newer`) are those of `/plugins`. Whatever the error,
//! nothing was installed.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use cap_marketplace::resolve::ResolveError;
use cap_marketplace::service::routes::{PackagePage, PackageView};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::auth::Authenticated;
use super::error::{ApiError, FieldLocation, Problem};
use super::extract::{ApiJson, ApiQuery};
use super::plugins_routes::{ADMIN_PLUGINS, GrantSet, PluginBody, PluginFailure, problem};
use crate::marketplace::{InstallRequest, MarketplaceError, MarketplaceService, Outcome};

type Reply<T> = Result<T, PluginFailure>;

impl From<MarketplaceError> for PluginFailure {
    fn from(e: MarketplaceError) -> Self {
        let detail = e.to_string();
        match e {
            MarketplaceError::Client(cap_marketplace::client::ClientError::NotFound(_))
            | MarketplaceError::UnknownPackage(_) => ApiError::NotFound(detail).into(),
            MarketplaceError::Client(_) => problem(
                StatusCode::BAD_GATEWAY,
                "marketplace-unavailable",
                "Marketplace unavailable",
                detail,
            ),
            MarketplaceError::BadRequirement { .. } => {
                ApiError::field(FieldLocation::Body, "requirement", detail).into()
            }
            MarketplaceError::KeyMismatch { .. } => problem(
                StatusCode::BAD_GATEWAY,
                "marketplace-key-mismatch",
                "Marketplace key mismatch",
                detail,
            ),
            MarketplaceError::Verify(_) => problem(
                StatusCode::UNPROCESSABLE_ENTITY,
                "verification-failed",
                "Package verification failed",
                detail,
            ),
            MarketplaceError::Resolve(ResolveError::InvalidId(_)) => {
                ApiError::field(FieldLocation::Body, "package", detail).into()
            }
            MarketplaceError::Resolve(ResolveError::Internal(_)) => {
                ApiError::internal(detail).into()
            }
            MarketplaceError::Resolve(_) => problem(
                StatusCode::CONFLICT,
                "resolution-failed",
                "No versions satisfy the request",
                detail,
            ),
            MarketplaceError::LicenseRequired { .. } => problem(
                StatusCode::PAYMENT_REQUIRED,
                "license-required",
                "License required",
                detail,
            ),
            MarketplaceError::GrantForOther(_) => {
                ApiError::field(FieldLocation::Body, "grants", detail).into()
            }
            MarketplaceError::Corrupt(_) => ApiError::internal(detail).into(),
            MarketplaceError::Plugin(e) => e.into(),
            MarketplaceError::Db(e) => ApiError::from(e).into(),
        }
    }
}

fn service(state: &AppState) -> Result<&MarketplaceService, ApiError> {
    // A setting missing on this Panel, not a failure of it: 409, so that
    // clients (and API fuzzers) see a refusal rather than a server error.
    state.marketplace().ok_or_else(|| {
        ApiError::Conflict(
            "no Marketplace is configured: set [marketplace] url or CAP_MARKETPLACE_URL".into(),
        )
    })
}

/// Search filters, passed on to the Marketplace.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BrowseParams {
    /// Words to find in id, name or description.
    pub q: Option<String>,
    /// Plugin kind: `game-type`, `auth-provider`, `hooks`, `ui`.
    pub kind: Option<String>,
    /// Game.
    pub game: Option<String>,
    /// `true` for paid, `false` for free.
    pub paid: Option<bool>,
    /// `downloads` or `recent` (default).
    pub sort: Option<String>,
    /// Page, from 1.
    pub page: Option<i64>,
    /// Page size, 1 to 100 (default 20).
    pub per_page: Option<i64>,
}

/// An install request.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InstallBody {
    /// The plugin's id.
    pub package: String,
    /// A version requirement, cargo-style (`1.2` means `^1.2`); default any.
    #[serde(default)]
    pub requirement: Option<String>,
    /// What to grant, per plugin id, to the plugins this install adds
    /// (the requested one and new dependencies); each must be a subset of
    /// what that plugin's manifest requests. Default: nothing.
    #[serde(default)]
    pub grants: BTreeMap<String, GrantSet>,
    /// Activate the plugins this install adds (default true).
    #[serde(default = "yes")]
    pub activate: bool,
}

fn yes() -> bool {
    true
}

/// One locked package.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LockedBody {
    /// Plugin id.
    pub id: String,
    /// Exact version.
    pub version: String,
    /// sha256 of the package file.
    pub sha256: String,
    /// Ids of its dependencies.
    pub dependencies: Vec<String>,
}

/// The lockfile and the requirements it was resolved from.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LockBody {
    /// Installed from the Marketplace, by id.
    pub lockfile: Vec<LockedBody>,
    /// What admins asked for: id → requirement.
    pub requests: BTreeMap<String, String>,
    /// The lockfile as TOML.
    pub toml: String,
}

/// One plugin an operation installed or updated.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ChangedBody {
    /// The plugin as stored now.
    pub plugin: PluginBody,
    /// The version replaced, for an update.
    pub replaced: Option<String>,
}

/// What an install or update did.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OutcomeBody {
    /// Plugins installed or updated (empty when nothing changed).
    pub changed: Vec<ChangedBody>,
    /// The lockfile afterwards.
    pub lock: LockBody,
}

fn lock_body(lockfile: &cap_marketplace::Lockfile, requests: BTreeMap<String, String>) -> LockBody {
    LockBody {
        lockfile: lockfile
            .packages
            .iter()
            .map(|p| LockedBody {
                id: p.id.clone(),
                version: p.version.to_string(),
                sha256: p.sha256.clone(),
                dependencies: p.dependencies.clone(),
            })
            .collect(),
        requests,
        toml: lockfile.to_toml(),
    }
}

fn outcome_body(state: &AppState, outcome: Outcome) -> Result<OutcomeBody, ApiError> {
    let manager = state
        .plugins()
        .ok_or_else(|| ApiError::Unavailable("plugin management is not running".into()))?;
    Ok(OutcomeBody {
        changed: outcome
            .installed
            .iter()
            .map(|i| ChangedBody {
                plugin: PluginBody::new(&i.record, manager),
                replaced: i.replaced.as_ref().map(ToString::to_string),
            })
            .collect(),
        lock: lock_body(&outcome.lockfile, outcome.requests),
    })
}

/// Searches the Marketplace.
#[utoipa::path(
    get,
    path = "/marketplace/packages",
    tag = "marketplace",
    security(("bearer" = [])),
    params(BrowseParams),
    responses(
        (status = 200, description = "A page of packages, as the Marketplace lists them", body = PackagePage),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks admin.plugins", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "The Marketplace failed", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "No Marketplace configured (conflict)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(super) async fn browse(
    auth: Authenticated,
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<BrowseParams>,
) -> Reply<Json<PackagePage>> {
    auth.principal.require(ADMIN_PLUGINS)?;
    let mut query: Vec<(&str, String)> = Vec::new();
    let text = [
        ("q", params.q),
        ("kind", params.kind),
        ("game", params.game),
        ("sort", params.sort),
    ];
    for (name, value) in text {
        if let Some(value) = value {
            query.push((name, value));
        }
    }
    if let Some(paid) = params.paid {
        query.push(("paid", paid.to_string()));
    }
    if let Some(page) = params.page {
        query.push(("page", page.to_string()));
    }
    if let Some(per_page) = params.per_page {
        query.push(("per_page", per_page.to_string()));
    }
    let page = service(&state)?
        .client()
        .search(&query)
        .await
        .map_err(MarketplaceError::from)?;
    Ok(Json(page))
}

/// One Marketplace package with all its versions.
#[utoipa::path(
    get,
    path = "/marketplace/packages/{id}",
    tag = "marketplace",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The plugin's id")),
    responses(
        (status = 200, description = "The package, as the Marketplace lists it", body = PackageView),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks admin.plugins", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such package", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "The Marketplace failed", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "No Marketplace configured (conflict)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(super) async fn package(
    auth: Authenticated,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Reply<Json<PackageView>> {
    auth.principal.require(ADMIN_PLUGINS)?;
    let view = service(&state)?
        .client()
        .package(&id)
        .await
        .map_err(MarketplaceError::from)?;
    Ok(Json(view))
}

/// Installs a plugin and its dependencies from the Marketplace: resolve
/// (against this Panel's plugin API and the lockfile), download, verify
/// every check, license check, grant, activate — all or nothing.
#[utoipa::path(
    post,
    path = "/marketplace/install",
    tag = "marketplace",
    security(("bearer" = [])),
    request_body = InstallBody,
    responses(
        (status = 200, description = "Installed; the lockfile afterwards", body = OutcomeBody),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 402, description = "A paid plugin without a license (`license-required`)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks admin.plugins", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such package", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "No Marketplace configured, or: No versions satisfy the request (`resolution-failed`, explained in `detail`), or configuration is missing", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A check failed (`verification-failed`, the check named in `detail`), bad grants, or the plugin failed to load", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "The Marketplace failed or presents another key", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(super) async fn install(
    auth: Authenticated,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<InstallBody>,
) -> Reply<Json<OutcomeBody>> {
    auth.principal.require(ADMIN_PLUGINS)?;
    let market = service(&state)?;
    let mut grants = BTreeMap::new();
    for (id, set) in body.grants {
        grants.insert(id, set.into_grants()?);
    }
    let outcome = market
        .install(
            InstallRequest {
                package: body.package,
                requirement: body.requirement,
                grants,
                activate: body.activate,
            },
            &auth.actor,
        )
        .await?;
    Ok(Json(outcome_body(&state, outcome)?))
}

/// Resolves every requirement again to the newest versions and installs
/// the changes — all or nothing: if any package fails to download, verify
/// or load, nothing changes.
#[utoipa::path(
    post,
    path = "/marketplace/update",
    tag = "marketplace",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Updated; the lockfile afterwards", body = OutcomeBody),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 402, description = "A paid plugin without a license", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks admin.plugins", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "No Marketplace configured, or: No versions satisfy the requirements (`resolution-failed`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A check failed (`verification-failed`) or a plugin failed to load", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "The Marketplace failed or presents another key", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(super) async fn update(
    auth: Authenticated,
    State(state): State<AppState>,
) -> Reply<Json<OutcomeBody>> {
    auth.principal.require(ADMIN_PLUGINS)?;
    let outcome = service(&state)?.update_all(&auth.actor).await?;
    Ok(Json(outcome_body(&state, outcome)?))
}

/// The lockfile: what was installed from the Marketplace, and why.
#[utoipa::path(
    get,
    path = "/marketplace/lockfile",
    tag = "marketplace",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The lockfile and requirements", body = LockBody),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks admin.plugins", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "No Marketplace configured (conflict)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(super) async fn lockfile(
    auth: Authenticated,
    State(state): State<AppState>,
) -> Reply<Json<LockBody>> {
    auth.principal.require(ADMIN_PLUGINS)?;
    let (lockfile, requests) = service(&state)?.locked().await?;
    Ok(Json(lock_body(&lockfile, requests)))
}

/// The Marketplace routes (relative to `/api/v1`).
pub(super) fn router() -> utoipa_axum::router::OpenApiRouter<AppState> {
    use utoipa_axum::routes;
    utoipa_axum::router::OpenApiRouter::new()
        .routes(routes!(browse))
        .routes(routes!(package))
        .routes(routes!(install))
        .routes(routes!(update))
        .routes(routes!(lockfile))
}
