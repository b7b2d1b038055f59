//! `/api/v1/marketplace`: browse the configured Marketplace through the
//! Panel, install from it, update everything installed from it, read the
//! lockfile, start buying a paid plugin (checkout) and see and renew the
//! licenses of paid plugins. Every route needs `admin.plugins`; without
//! `[marketplace] url` every route answers `409 conflict`.
//!
//! Problem codes of their own:
//!
//! | Code | Status | When |
//! | --- | --- | --- |
//! | `verification-failed` | 422 | a signature, log, timestamp or digest check failed; `detail` starts with the check's name in backquotes (`` `sha256` ``, `` `key-not-revoked` ``, `` `log-rollback` ``, `` `timestamp-fresh` ``, `` `dependency-sha256` ``, …) |
//! | `resolution-failed` | 409 | no versions satisfy the request; `detail` explains why in sentences |
//! | `license-required` | 402 | a paid plugin this Panel has not bought (`detail` says how to buy it) |
//! | `license-revoked` | 402 | a paid plugin whose purchase was refunded or lost in a dispute |
//! | `license-invalid` | 402 | a license token failed an offline check; `detail` names it (`` `license-signature` ``, `` `license-instance` ``, `` `license-expiry` ``, …) |
//! | *the Marketplace's code* | its 4xx (503 becomes 409) | a refused checkout: `not-for-sale`, `already-entitled`, `payouts-not-configured`, `billing-disabled` |
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
use cap_marketplace::wire::{PackagePage, PackageSummary, PackageView};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::auth::Authenticated;
use super::error::{ApiError, ApiResult, Code, FieldError, FieldLocation};
use super::extract::{ApiJson, ApiQuery};
use super::pagination::Cursor;
use super::plugins_routes::{GrantSet, PluginBody};
use crate::identity::permissions::{Gate, Permission};
use crate::marketplace::licenses::{LicenseProblem, LicenseState};
use crate::marketplace::{
    InstallRequest, LicenseReport, MarketplaceError, MarketplaceService, Outcome,
};
use cap_marketplace::license::LicenseStatus;
use cap_marketplace::wire::{CheckoutView, NewCheckout};
use time::OffsetDateTime;

impl From<MarketplaceError> for ApiError {
    fn from(e: MarketplaceError) -> Self {
        let detail = e.to_string();
        match e {
            MarketplaceError::Client(cap_marketplace::client::ClientError::NotFound(_))
            | MarketplaceError::UnknownPackage(_) => ApiError::NotFound(detail),
            MarketplaceError::Client(_) => ApiError::refused(Code::MarketplaceUnavailable, detail),
            MarketplaceError::BadRequirement { .. } => {
                ApiError::field(FieldLocation::Body, "requirement", detail)
            }
            MarketplaceError::KeyMismatch { .. } => {
                ApiError::refused(Code::MarketplaceKeyMismatch, detail)
            }
            MarketplaceError::Verify(_) => ApiError::refused(Code::VerificationFailed, detail),
            MarketplaceError::Resolve(ResolveError::InvalidId(_)) => {
                ApiError::field(FieldLocation::Body, "package", detail)
            }
            MarketplaceError::Resolve(ResolveError::Internal(_)) => ApiError::internal(detail),
            MarketplaceError::Resolve(_) => ApiError::refused(Code::ResolutionFailed, detail),
            MarketplaceError::License { problem: why, .. } => {
                let code = match why {
                    LicenseProblem::NotEntitled { .. } | LicenseProblem::NotRegistered => {
                        Code::LicenseRequired
                    }
                    LicenseProblem::Revoked { .. } => Code::LicenseRevoked,
                    LicenseProblem::Invalid(_) | LicenseProblem::NoTrustedKey => {
                        Code::LicenseInvalid
                    }
                };
                ApiError::refused(code, detail)
            }
            MarketplaceError::CheckoutRefused { code, .. } => match Code::parse(&code) {
                Some(code) => ApiError::CheckoutRefused { code, detail },
                None => {
                    tracing::warn!(%code, "the Marketplace refused a checkout with an unknown code");
                    ApiError::refused(
                        Code::MarketplaceUnavailable,
                        format!("the Marketplace answered with an unknown problem code: {detail}"),
                    )
                }
            },
            MarketplaceError::GrantForOther(_) => {
                ApiError::field(FieldLocation::Body, "grants", detail)
            }
            MarketplaceError::Corrupt(_) => ApiError::internal(detail),
            MarketplaceError::Plugin(e) => e.into(),
            MarketplaceError::Db(e) => ApiError::from(e),
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

/// Search filters, passed on to the Marketplace, and which page.
///
/// Pages are asked for with `limit` and `cursor`, as every list of the
/// Panel ([`super::pagination`]); the Marketplace's own `page` and
/// `per_page` are still accepted, but not together with them.
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
    /// How many packages to return: 1 to 100, default 20.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// Where to continue: the `next_cursor` of the previous page (asked
    /// for with the same `limit`).
    pub cursor: Option<String>,
    /// Page, from 1 (the older form of `cursor`).
    pub page: Option<i64>,
    /// Page size, 1 to 100 (default 20; the older form of `limit`).
    pub per_page: Option<i64>,
}

/// The most packages the Marketplace lists per page, and its default.
const MAX_BROWSE_LIMIT: u32 = 100;
const DEFAULT_BROWSE_LIMIT: u32 = 20;

impl BrowseParams {
    /// The Marketplace's `page` and `per_page` to ask for: from `limit`
    /// and `cursor` (the cursor carries the offset of the page's first
    /// package), else as given.
    fn marketplace_page(&self) -> ApiResult<(Option<i64>, Option<i64>)> {
        if self.limit.is_none() && self.cursor.is_none() {
            return Ok((self.page, self.per_page));
        }
        let mut errors = Vec::new();
        for (field, given) in [
            ("page", self.page.is_some()),
            ("per_page", self.per_page.is_some()),
        ] {
            if given {
                errors.push(FieldError::new(
                    FieldLocation::Query,
                    field,
                    "use limit and cursor, or page and per_page, not both",
                ));
            }
        }
        let limit = self.limit.unwrap_or(DEFAULT_BROWSE_LIMIT);
        if !(1..=MAX_BROWSE_LIMIT).contains(&limit) {
            errors.push(FieldError::new(
                FieldLocation::Query,
                "limit",
                format!("must be between 1 and {MAX_BROWSE_LIMIT}"),
            ));
        }
        let offset = match self.cursor.as_deref().map(Cursor::decode) {
            None => Some(0),
            Some(cursor) => cursor
                .and_then(|c| c.key().parse::<i64>().ok())
                .filter(|offset| *offset >= 0),
        };
        let page = match offset {
            Some(offset) if offset % i64::from(limit.max(1)) == 0 => {
                Some(offset / i64::from(limit.max(1)) + 1)
            }
            Some(_) => {
                errors.push(FieldError::new(
                    FieldLocation::Query,
                    "cursor",
                    "was made for another limit: pass the limit of the previous page",
                ));
                None
            }
            None => {
                errors.push(FieldError::new(
                    FieldLocation::Query,
                    "cursor",
                    "is not a cursor returned by this API",
                ));
                None
            }
        };
        if errors.is_empty() {
            Ok((page, Some(i64::from(limit))))
        } else {
            Err(ApiError::Validation(errors))
        }
    }
}

/// A page of packages, as the Marketplace lists them, with the cursor of
/// the next one.
#[derive(Debug, Serialize, ToSchema)]
pub struct PackagePageBody {
    /// The packages.
    pub items: Vec<PackageSummary>,
    /// This page, from 1.
    pub page: i64,
    /// Page size.
    pub per_page: i64,
    /// Matches in all pages.
    pub total: i64,
    /// Pass as `cursor` (with the same `limit`) for the next page; null on
    /// the last page.
    pub next_cursor: Option<String>,
}

impl From<PackagePage> for PackagePageBody {
    fn from(page: PackagePage) -> Self {
        let seen = page.page.saturating_mul(page.per_page);
        let next_cursor =
            (page.per_page > 0 && seen < page.total).then(|| Cursor::after(seen).encode());
        PackagePageBody {
            items: page.items,
            page: page.page,
            per_page: page.per_page,
            total: page.total,
            next_cursor,
        }
    }
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
    extensions(("x-permissions" = json!([Permission::AdminPlugins]))),
    params(BrowseParams),
    responses(
        (status = 200, description = "A page of packages, as the Marketplace lists them", body = PackagePageBody),
        (status = 502, description = "The Marketplace failed"),
        (status = 409, description = "No Marketplace configured (conflict)"),
    )
)]
pub(super) async fn browse(
    auth: Authenticated,
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<BrowseParams>,
) -> ApiResult<Json<PackagePageBody>> {
    auth.principal.require(Gate::ADMIN_PLUGINS)?;
    let (page, per_page) = params.marketplace_page()?;
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
    if let Some(page) = page {
        query.push(("page", page.to_string()));
    }
    if let Some(per_page) = per_page {
        query.push(("per_page", per_page.to_string()));
    }
    let page = service(&state)?
        .client()
        .search(&query)
        .await
        .map_err(MarketplaceError::from)?;
    Ok(Json(page.into()))
}

/// One Marketplace package with all its versions.
#[utoipa::path(
    get,
    path = "/marketplace/packages/{id}",
    tag = "marketplace",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::AdminPlugins]))),
    params(("id" = String, Path, description = "The plugin's id")),
    responses(
        (status = 200, description = "The package, as the Marketplace lists it", body = PackageView),
        (status = 404, description = "No such package"),
        (status = 502, description = "The Marketplace failed"),
        (status = 409, description = "No Marketplace configured (conflict)"),
    )
)]
pub(super) async fn package(
    auth: Authenticated,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<PackageView>> {
    auth.principal.require(Gate::ADMIN_PLUGINS)?;
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
    extensions(("x-permissions" = json!([Permission::AdminPlugins]))),
    request_body = InstallBody,
    responses(
        (status = 200, description = "Installed; the lockfile afterwards", body = OutcomeBody),
        (status = 402, description = "A paid plugin without a valid license (`license-required`, `license-revoked`, `license-invalid` naming the failed check)"),
        (status = 404, description = "No such package"),
        (status = 409, description = "No Marketplace configured, or: No versions satisfy the request (`resolution-failed`, explained in `detail`), or configuration is missing"),
        (status = 422, description = "A check failed (`verification-failed`, the check named in `detail`), bad grants, or the plugin failed to load"),
        (status = 502, description = "The Marketplace failed or presents another key"),
    )
)]
pub(super) async fn install(
    auth: Authenticated,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<InstallBody>,
) -> ApiResult<Json<OutcomeBody>> {
    auth.principal.require(Gate::ADMIN_PLUGINS)?;
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
    extensions(("x-permissions" = json!([Permission::AdminPlugins]))),
    responses(
        (status = 200, description = "Updated; the lockfile afterwards", body = OutcomeBody),
        (status = 402, description = "A paid plugin without a valid license (`license-required`, `license-revoked`, `license-invalid`)"),
        (status = 409, description = "No Marketplace configured, or: No versions satisfy the requirements (`resolution-failed`)"),
        (status = 422, description = "A check failed (`verification-failed`) or a plugin failed to load"),
        (status = 502, description = "The Marketplace failed or presents another key"),
    )
)]
pub(super) async fn update(
    auth: Authenticated,
    State(state): State<AppState>,
) -> ApiResult<Json<OutcomeBody>> {
    auth.principal.require(Gate::ADMIN_PLUGINS)?;
    let outcome = service(&state)?.update_all(&auth.actor).await?;
    Ok(Json(outcome_body(&state, outcome)?))
}

/// The lockfile: what was installed from the Marketplace, and why.
#[utoipa::path(
    get,
    path = "/marketplace/lockfile",
    tag = "marketplace",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::AdminPlugins]))),
    responses(
        (status = 200, description = "The lockfile and requirements", body = LockBody),
        (status = 409, description = "No Marketplace configured (conflict)"),
    )
)]
pub(super) async fn lockfile(
    auth: Authenticated,
    State(state): State<AppState>,
) -> ApiResult<Json<LockBody>> {
    auth.principal.require(Gate::ADMIN_PLUGINS)?;
    let (lockfile, requests) = service(&state)?.locked().await?;
    Ok(Json(lock_body(&lockfile, requests)))
}

/// A purchase to start.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutBody {
    /// The plugin's id.
    pub package: String,
    /// The version to buy (its own price applies if it has one); default
    /// the newest. The license covers the plugin, not one version.
    #[serde(default)]
    pub version: Option<String>,
    /// Where Stripe sends the admin after paying (http or https URL).
    pub success_url: String,
    /// Where Stripe sends the admin after cancelling.
    pub cancel_url: String,
}

/// Starts buying a paid plugin for this Panel: registers the Panel with the
/// Marketplace if it never did, and asks it for a Stripe Checkout Session.
/// Send the admin to `url`; once Stripe confirms the payment the license
/// is there, and `POST /marketplace/install` installs the plugin.
#[utoipa::path(
    post,
    path = "/marketplace/checkout",
    tag = "marketplace",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::AdminPlugins]))),
    request_body = CheckoutBody,
    responses(
        (status = 201, description = "The Checkout Session: send the admin to `url`", body = CheckoutView),
        (status = 404, description = "No such package"),
        (status = 409, description = "No Marketplace configured, or the Marketplace refused (`not-for-sale`, `already-entitled`, `payouts-not-configured`, `billing-disabled`)"),
        (status = 422, description = "Bad URLs or version (the Marketplace's `validation-failed`)"),
        (status = 502, description = "The Marketplace or Stripe failed"),
    )
)]
pub(super) async fn checkout(
    auth: Authenticated,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CheckoutBody>,
) -> ApiResult<(StatusCode, Json<CheckoutView>)> {
    auth.principal.require(Gate::ADMIN_PLUGINS)?;
    if !cap_runtime::manifest::is_valid_id(&body.package) {
        return Err(ApiError::field(
            FieldLocation::Body,
            "package",
            format!("{:?} is not a plugin id", body.package),
        ));
    }
    let view = service(&state)?
        .checkout(
            &body.package,
            &NewCheckout {
                version: body.version,
                success_url: body.success_url,
                cancel_url: body.cancel_url,
            },
        )
        .await?;
    tracing::info!(package = %body.package, checkout = %view.checkout_id, "checkout started");
    Ok((StatusCode::CREATED, Json(view)))
}

/// One license of a paid plugin, as this Panel holds it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LicenseBody {
    /// The plugin.
    pub plugin: String,
    /// What the Marketplace said last: `active`, `revoked` or `missing`.
    pub state: LicenseState,
    /// The entitlement (purchase) the token stems from.
    pub entitlement: Option<String>,
    /// The token's expiry.
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// The end of its grace period: the plugin stops after it.
    #[serde(with = "time::serde::rfc3339::option")]
    pub grace_until: Option<OffsetDateTime>,
    /// When the Panel renews it.
    #[serde(with = "time::serde::rfc3339::option")]
    pub renew_after: Option<OffsetDateTime>,
    /// The offline check now: `valid`, `in-grace` or `refused`.
    pub check: String,
    /// For `refused`: the failed check and why, e.g. ``the `license-expiry` check failed: …``.
    pub refusal: Option<String>,
    /// The last renewal failure, or why the Panel deactivated the plugin.
    pub problem: Option<String>,
    /// The plugin's state here (`installed`, `active`, `inactive`); absent
    /// when not installed.
    pub plugin_state: Option<String>,
    /// Whether the plugin is loaded and running.
    pub running: bool,
}

impl From<LicenseReport> for LicenseBody {
    fn from(r: LicenseReport) -> Self {
        let (check, refusal) = match &r.check {
            Ok(LicenseStatus::Valid) => ("valid", None),
            Ok(LicenseStatus::InGrace { .. }) => ("in-grace", None),
            Err(problem) => ("refused", Some(problem.explain())),
        };
        LicenseBody {
            plugin: r.record.plugin,
            state: r.record.state,
            entitlement: r.record.entitlement,
            expires_at: r.record.expires_at,
            grace_until: r.record.grace_until,
            renew_after: r.record.renew_after,
            check: check.into(),
            refusal,
            problem: r.record.problem,
            plugin_state: r.plugin_state.map(|s| s.as_str().to_owned()),
            running: r.running,
        }
    }
}

/// The licenses of paid plugins this Panel holds.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LicensesBody {
    /// This Panel's instance id at the Marketplace (licenses are bound to
    /// it); absent until it first buys or installs a paid plugin.
    pub instance_id: Option<String>,
    /// One per paid plugin, by id.
    pub licenses: Vec<LicenseBody>,
}

async fn licenses_body(
    market: &MarketplaceService,
    reports: Vec<LicenseReport>,
) -> ApiResult<Json<LicensesBody>> {
    Ok(Json(LicensesBody {
        instance_id: market.registered_instance().await?,
        licenses: reports.into_iter().map(LicenseBody::from).collect(),
    }))
}

/// The licenses of paid plugins, each checked offline now (signature,
/// plugin, this Panel's instance, expiry and grace), with the last renewal
/// failure or the reason a plugin was deactivated.
#[utoipa::path(
    get,
    path = "/marketplace/licenses",
    tag = "marketplace",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::AdminPlugins]))),
    responses(
        (status = 200, description = "The licenses", body = LicensesBody),
        (status = 409, description = "No Marketplace configured (conflict)"),
    )
)]
pub(super) async fn licenses(
    auth: Authenticated,
    State(state): State<AppState>,
) -> ApiResult<Json<LicensesBody>> {
    auth.principal.require(Gate::ADMIN_PLUGINS)?;
    let market = service(&state)?;
    let reports = market.licenses().await?;
    licenses_body(market, reports).await
}

/// Renews the due licenses now instead of waiting for the background
/// renewal, and enforces them: a paid plugin whose license lapsed is
/// deactivated, one licensed again runs again. Marketplace failures are
/// recorded as each license's `problem`.
#[utoipa::path(
    post,
    path = "/marketplace/licenses/renew",
    tag = "marketplace",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::AdminPlugins]))),
    responses(
        (status = 200, description = "The licenses afterwards", body = LicensesBody),
        (status = 409, description = "No Marketplace configured (conflict)"),
    )
)]
pub(super) async fn renew_licenses(
    auth: Authenticated,
    State(state): State<AppState>,
) -> ApiResult<Json<LicensesBody>> {
    auth.principal.require(Gate::ADMIN_PLUGINS)?;
    let market = service(&state)?;
    let reports = market.upkeep().await?;
    licenses_body(market, reports).await
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
        .routes(routes!(checkout))
        .routes(routes!(licenses))
        .routes(routes!(renew_licenses))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn browse(limit: Option<u32>, cursor: Option<String>) -> BrowseParams {
        BrowseParams {
            limit,
            cursor,
            ..BrowseParams::default()
        }
    }

    fn fields(error: ApiError) -> Vec<String> {
        match error {
            ApiError::Validation(errors) => errors.into_iter().map(|e| e.field).collect(),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn the_older_page_parameters_pass_through_unchanged() {
        let params = BrowseParams {
            page: Some(3),
            per_page: Some(7),
            ..BrowseParams::default()
        };
        assert_eq!(params.marketplace_page().ok(), Some((Some(3), Some(7))));
        let none = BrowseParams::default();
        assert_eq!(none.marketplace_page().ok(), Some((None, None)));
    }

    #[test]
    fn a_cursor_continues_on_the_marketplace_page_after_the_previous_one() {
        let first = PackagePageBody::from(PackagePage {
            items: Vec::new(),
            page: 1,
            per_page: 10,
            total: 25,
        });
        let cursor = first.next_cursor.expect("more pages");
        let params = browse(Some(10), Some(cursor));
        assert_eq!(params.marketplace_page().ok(), Some((Some(2), Some(10))));
        let last = PackagePageBody::from(PackagePage {
            items: Vec::new(),
            page: 3,
            per_page: 10,
            total: 25,
        });
        assert_eq!(last.next_cursor, None);
        let default_limit = browse(None, Some(Cursor::after(40).encode()));
        assert_eq!(
            default_limit.marketplace_page().ok(),
            Some((Some(3), Some(20)))
        );
    }

    #[test]
    fn a_cursor_for_another_limit_or_mixed_parameters_are_refused_by_field() {
        let cursor = Cursor::after(10).encode();
        let error = browse(Some(20), Some(cursor.clone()))
            .marketplace_page()
            .unwrap_err();
        assert_eq!(fields(error), ["cursor"]);
        let mixed = BrowseParams {
            limit: Some(10),
            page: Some(2),
            ..BrowseParams::default()
        };
        assert_eq!(fields(mixed.marketplace_page().unwrap_err()), ["page"]);
        let error = browse(Some(0), Some("forged".into()))
            .marketplace_page()
            .unwrap_err();
        assert_eq!(fields(error), ["limit", "cursor"]);
        let word = browse(Some(10), Some(Cursor::after("srv_1").encode()));
        assert_eq!(fields(word.marketplace_page().unwrap_err()), ["cursor"]);
        let ok = browse(Some(MAX_BROWSE_LIMIT), None).marketplace_page().ok();
        assert_eq!(ok, Some((Some(1), Some(i64::from(MAX_BROWSE_LIMIT)))));
    }
}
