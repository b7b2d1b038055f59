//! `/api/v1/plugins`: installing, granting, activating, configuring and
//! watching plugins. Every route needs `admin.plugins`.
//!
//! A package is uploaded as the raw `.cap` file
//! (`Content-Type: application/octet-stream`, at most
//! [`MAX_UPLOAD_BYTES`]); uploading a newer version of an installed plugin
//! updates it. Errors specific to plugins have their own problem codes:
//! `invalid-package`, `version-not-newer`, `plugin-config-missing`,
//! `plugin-load-failed`, `plugin-damaged`, `plugin-not-active`, and
//! `plugin-unlicensed` (402) for a paid plugin whose license check failed.
//! Another plugin's before-hook may refuse an upload, an activation or an
//! uninstall (`403 hook-denied`, nothing changed), never a deactivation
//! (see [`crate::plugins::hooks`]).

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use cap_runtime::Grants;
use cap_runtime::manifest::PanelScope;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::AppState;
use super::auth::Authenticated;
use super::error::{ApiError, ApiResult, Code, FieldError, FieldLocation};
use super::extract::{ApiJson, ApiQuery};
use crate::identity::permissions::{Gate, Permission};
use crate::plugins::{ConfigEntry, PluginError, PluginManager, PluginRecord};

/// Largest package upload, bytes.
pub const MAX_UPLOAD_BYTES: usize = 40 << 20;

impl From<PluginError> for ApiError {
    fn from(e: PluginError) -> Self {
        let detail = e.to_string();
        let refused = |code: Code| {
            tracing::debug!(%code, "plugin request refused");
            ApiError::refused(code, detail.clone())
        };
        match e {
            PluginError::NotFound(_) => ApiError::NotFound(detail),
            PluginError::InvalidPackage(_) => refused(Code::InvalidPackage),
            PluginError::NotNewer { .. } => refused(Code::VersionNotNewer),
            PluginError::NotRequested(what) => ApiError::field(
                FieldLocation::Body,
                "grants",
                format!("{what} is not requested by the plugin"),
            ),
            PluginError::MissingConfig(_) => refused(Code::PluginConfigMissing),
            PluginError::InvalidConfig(problems) => ApiError::Validation(
                problems
                    .into_iter()
                    .map(|(k, m)| FieldError::new(FieldLocation::Body, k, m))
                    .collect(),
            ),
            PluginError::Load(_) => refused(Code::PluginLoadFailed),
            PluginError::Damaged { .. } => refused(Code::PluginDamaged),
            PluginError::NotActive(_) => refused(Code::PluginNotActive),
            PluginError::Unlicensed { .. } => refused(Code::PluginUnlicensed),
            PluginError::HookDenied(denied) => ApiError::from(denied),
            PluginError::Io(e) => ApiError::internal(e),
            PluginError::Db(e) => ApiError::from(e),
        }
    }
}

/// What a plugin's manifest requests, or what an admin grants.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct GrantSet {
    /// The plugin-scoped key-value store.
    pub kv: bool,
    /// Reading its configuration.
    pub config: bool,
    /// Secret keys it may read.
    pub secrets: BTreeSet<String>,
    /// A real wall clock.
    pub clock: bool,
    /// Real randomness.
    pub random: bool,
    /// Outbound HTTP host patterns.
    pub http_hosts: Vec<String>,
    /// Event topics it may publish.
    pub events_publish: BTreeSet<String>,
    /// Panel API scopes (`servers.read`, `console.send`, `power`,
    /// `backups.create`, `servers.suspend`).
    pub panel: BTreeSet<String>,
    /// Timers (API 0.2.0): wake-ups delivered to the plugin's after-hook.
    pub timers: bool,
}

impl From<&Grants> for GrantSet {
    fn from(g: &Grants) -> Self {
        GrantSet {
            kv: g.kv,
            config: g.config,
            secrets: g.secrets.clone(),
            clock: g.clock,
            random: g.random,
            http_hosts: g.http_hosts.clone(),
            events_publish: g.events_publish.clone(),
            panel: g.panel.iter().map(|s| s.as_str().to_owned()).collect(),
            timers: g.timers,
        }
    }
}

impl GrantSet {
    pub(super) fn into_grants(self) -> Result<Grants, ApiError> {
        let panel = self
            .panel
            .iter()
            .map(|s| {
                PanelScope::from_name(s).ok_or_else(|| {
                    let known: Vec<&str> = PanelScope::ALL.iter().map(|s| s.as_str()).collect();
                    ApiError::field(
                        FieldLocation::Body,
                        "panel",
                        format!("{s:?} is not a panel scope ({})", known.join(", ")),
                    )
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Grants {
            kv: self.kv,
            config: self.config,
            secrets: self.secrets,
            clock: self.clock,
            random: self.random,
            http_hosts: self.http_hosts,
            events_publish: self.events_publish,
            panel,
            timers: self.timers,
        })
    }
}

/// An installed plugin.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PluginBody {
    /// Its id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// `game-type`, `auth-provider`, `hooks`, `ui`.
    pub kinds: Vec<String>,
    /// `installed`, `active` or `inactive`.
    pub state: String,
    /// Whether it is loaded in the runtime now.
    pub loaded: bool,
    /// sha256 of the uploaded package.
    pub sha256: String,
    /// What the manifest requests.
    pub requested: GrantSet,
    /// What the admin granted.
    pub granted: GrantSet,
    /// When it was first installed (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub installed_at: OffsetDateTime,
    /// When it last changed (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl PluginBody {
    pub(super) fn new(record: &PluginRecord, manager: &PluginManager) -> Self {
        let manifest = cap_runtime::Manifest::parse(record.manifest.as_bytes()).ok();
        PluginBody {
            id: record.id.clone(),
            name: manifest
                .as_ref()
                .map(|m| m.plugin.name.clone())
                .unwrap_or_default(),
            version: record.version.to_string(),
            kinds: manifest
                .as_ref()
                .map(|m| {
                    m.plugin
                        .kinds
                        .iter()
                        .map(|k| k.as_str().to_owned())
                        .collect()
                })
                .unwrap_or_default(),
            state: record.state.as_str().to_owned(),
            loaded: manager.active(&record.id).is_some(),
            sha256: record.package_sha256.clone(),
            requested: manifest
                .as_ref()
                .map(|m| GrantSet::from(&Grants::all_requested(m)))
                .unwrap_or_default(),
            granted: GrantSet::from(&record.grants),
            installed_at: record.installed_at,
            updated_at: record.updated_at,
        }
    }
}

/// The answer to an upload.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UploadBody {
    /// The plugin as stored.
    pub plugin: PluginBody,
    /// The version this upload replaced, for an update.
    pub replaced: Option<String>,
}

/// Every installed plugin.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PluginList {
    /// By id.
    pub items: Vec<PluginBody>,
}

/// Configuration values to set; `null` removes a value.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigUpdate {
    /// Key to value (as a string), or `null`.
    pub values: BTreeMap<String, Option<String>>,
}

/// A plugin's configuration.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConfigBody {
    /// Every declared key.
    pub items: Vec<ConfigEntry>,
    /// The names of the secrets that have a value.
    pub secrets_set: Vec<String>,
}

/// A secret's value.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretValue {
    /// The value; never readable through the API.
    pub value: String,
}

/// `?purge=` of an uninstall.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct UninstallParams {
    /// Also delete the plugin's configuration and secrets.
    #[serde(default)]
    pub purge: bool,
}

/// A log line.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LogLineBody {
    /// When (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// `trace` .. `error`, `stdout` or `stderr`.
    pub level: String,
    /// The text.
    pub message: String,
}

/// A plugin's recent log.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LogsBody {
    /// Oldest first.
    pub items: Vec<LogLineBody>,
}

/// A plugin's health.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StatusBody {
    /// Whether it is loaded.
    pub loaded: bool,
    /// Calls made since it was loaded.
    pub calls: u64,
    /// Calls that failed.
    pub failures: u64,
    /// Failures since the last success.
    pub consecutive_failures: u32,
    /// The last failure.
    pub last_error: Option<String>,
    /// Why it is quarantined, if it is.
    pub quarantine_reason: Option<String>,
    /// Since when (RFC 3339).
    #[serde(with = "time::serde::rfc3339::option")]
    pub quarantined_since: Option<OffsetDateTime>,
}

fn manager(state: &AppState) -> Result<&PluginManager, ApiError> {
    state.plugins().ok_or_else(|| {
        ApiError::Unavailable("plugin management is not running on this Panel".into())
    })
}

fn loaded(manager: &PluginManager, id: &str) -> ApiResult<cap_runtime::Plugin> {
    manager
        .active(id)
        .ok_or_else(|| PluginError::NotActive(id.to_owned()).into())
}

/// Installs a package, or updates an installed plugin to a newer version.
#[utoipa::path(
    post,
    path = "/plugins",
    tag = "plugins",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::AdminPlugins]))),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The .cap package file"),
    responses(
        (status = 201, description = "Installed or updated", body = UploadBody),
        (status = 402, description = "A paid plugin whose license fails the offline check (`plugin-unlicensed`, naming the check)"),
        (status = 403, description = "Another plugin's before-hook refused (hook-denied)"),
        (status = 409, description = "Not newer, or required configuration missing"),
        (status = 413, description = "Too large"),
        (status = 415, description = "Not application/octet-stream"),
        (status = 422, description = "Invalid package, or the new version failed to load"),
    )
)]
pub(super) async fn upload(
    auth: Authenticated,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<UploadBody>)> {
    auth.principal.require(Gate::ADMIN_PLUGINS)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !content_type.starts_with("application/octet-stream") {
        return Err(ApiError::UnsupportedMediaType(
            "send the package as application/octet-stream".into(),
        ));
    }
    let manager = manager(&state)?;
    let installed = manager.install(&body, &auth.actor).await?;
    Ok((
        StatusCode::CREATED,
        Json(UploadBody {
            plugin: PluginBody::new(&installed.record, manager),
            replaced: installed.replaced.map(|v| v.to_string()),
        }),
    ))
}

/// Lists installed plugins.
#[utoipa::path(
    get,
    path = "/plugins",
    tag = "plugins",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::AdminPlugins]))),
    responses(
        (status = 200, description = "The plugins", body = PluginList),
    )
)]
pub(super) async fn list(
    auth: Authenticated,
    State(state): State<AppState>,
) -> ApiResult<Json<PluginList>> {
    auth.principal.require(Gate::ADMIN_PLUGINS)?;
    let manager = manager(&state)?;
    let items = manager
        .list()
        .await?
        .iter()
        .map(|r| PluginBody::new(r, manager))
        .collect();
    Ok(Json(PluginList { items }))
}

/// Reads one plugin.
#[utoipa::path(
    get,
    path = "/plugins/{id}",
    tag = "plugins",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::AdminPlugins]))),
    params(("id" = String, Path, description = "The plugin's id")),
    responses(
        (status = 200, description = "The plugin", body = PluginBody),
        (status = 404, description = "Not installed"),
    )
)]
pub(super) async fn get(
    auth: Authenticated,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<PluginBody>> {
    auth.principal.require(Gate::ADMIN_PLUGINS)?;
    let manager = manager(&state)?;
    let record = manager.get(&id).await?;
    Ok(Json(PluginBody::new(&record, manager)))
}

/// Uninstalls a plugin; `?purge=true` also deletes its configuration and
/// secrets.
#[utoipa::path(
    delete,
    path = "/plugins/{id}",
    tag = "plugins",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::AdminPlugins]))),
    params(
        ("id" = String, Path, description = "The plugin's id"),
        ("purge" = Option<bool>, Query, description = "Also delete its configuration and secrets"),
    ),
    responses(
        (status = 204, description = "Uninstalled"),
        (status = 403, description = "Another plugin's before-hook refused (hook-denied)"),
        (status = 404, description = "Not installed"),
        (status = 422, description = "Bad query"),
    )
)]
pub(super) async fn delete(
    auth: Authenticated,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(params): ApiQuery<UninstallParams>,
) -> ApiResult<StatusCode> {
    auth.principal.require(Gate::ADMIN_PLUGINS)?;
    manager(&state)?
        .uninstall(&id, params.purge, &auth.actor)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sets what the admin grants: a subset of what the manifest requests.
#[utoipa::path(
    post,
    path = "/plugins/{id}/grant",
    tag = "plugins",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::AdminPlugins]))),
    params(("id" = String, Path, description = "The plugin's id")),
    request_body = GrantSet,
    responses(
        (status = 200, description = "The plugin with its new grants", body = PluginBody),
        (status = 402, description = "A paid plugin whose license fails the offline check (`plugin-unlicensed`, naming the check)"),
        (status = 404, description = "Not installed"),
        (status = 422, description = "Grants something not requested"),
    )
)]
pub(super) async fn grant(
    auth: Authenticated,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<GrantSet>,
) -> ApiResult<Json<PluginBody>> {
    auth.principal.require(Gate::ADMIN_PLUGINS)?;
    let manager = manager(&state)?;
    let record = manager.grant(&id, body.into_grants()?, &auth.actor).await?;
    Ok(Json(PluginBody::new(&record, manager)))
}

/// Loads the plugin and marks it active.
#[utoipa::path(
    post,
    path = "/plugins/{id}/activate",
    tag = "plugins",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::AdminPlugins]))),
    params(("id" = String, Path, description = "The plugin's id")),
    responses(
        (status = 200, description = "Active", body = PluginBody),
        (status = 402, description = "A paid plugin whose license fails the offline check (`plugin-unlicensed`, naming the check)"),
        (status = 403, description = "Another plugin's before-hook refused (hook-denied)"),
        (status = 404, description = "Not installed"),
        (status = 409, description = "Required configuration missing"),
        (status = 422, description = "It failed to load"),
    )
)]
pub(super) async fn activate(
    auth: Authenticated,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<PluginBody>> {
    auth.principal.require(Gate::ADMIN_PLUGINS)?;
    let manager = manager(&state)?;
    let record = manager.activate(&id, &auth.actor).await?;
    Ok(Json(PluginBody::new(&record, manager)))
}

/// Unloads the plugin and marks it inactive.
#[utoipa::path(
    post,
    path = "/plugins/{id}/deactivate",
    tag = "plugins",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::AdminPlugins]))),
    params(("id" = String, Path, description = "The plugin's id")),
    responses(
        (status = 200, description = "Inactive", body = PluginBody),
        (status = 404, description = "Not installed"),
    )
)]
pub(super) async fn deactivate(
    auth: Authenticated,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<PluginBody>> {
    auth.principal.require(Gate::ADMIN_PLUGINS)?;
    let manager = manager(&state)?;
    let record = manager.deactivate(&id, &auth.actor).await?;
    Ok(Json(PluginBody::new(&record, manager)))
}

/// Reads the plugin's configuration (and which secrets are set).
#[utoipa::path(
    get,
    path = "/plugins/{id}/config",
    tag = "plugins",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::AdminPlugins]))),
    params(("id" = String, Path, description = "The plugin's id")),
    responses(
        (status = 200, description = "The configuration", body = ConfigBody),
        (status = 404, description = "Not installed"),
    )
)]
pub(super) async fn get_config(
    auth: Authenticated,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<ConfigBody>> {
    auth.principal.require(Gate::ADMIN_PLUGINS)?;
    let manager = manager(&state)?;
    Ok(Json(ConfigBody {
        items: manager.config(&id).await?,
        secrets_set: manager.secret_names(&id).await?,
    }))
}

/// Sets configuration values, checked against the manifest's types.
#[utoipa::path(
    put,
    path = "/plugins/{id}/config",
    tag = "plugins",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::AdminPlugins]))),
    params(("id" = String, Path, description = "The plugin's id")),
    request_body = ConfigUpdate,
    responses(
        (status = 200, description = "The configuration as stored", body = ConfigBody),
        (status = 404, description = "Not installed"),
        (status = 422, description = "Unknown keys or wrong types"),
    )
)]
pub(super) async fn put_config(
    auth: Authenticated,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ConfigUpdate>,
) -> ApiResult<Json<ConfigBody>> {
    auth.principal.require(Gate::ADMIN_PLUGINS)?;
    let manager = manager(&state)?;
    let items = manager.set_config(&id, &body.values, &auth.actor).await?;
    Ok(Json(ConfigBody {
        items,
        secrets_set: manager.secret_names(&id).await?,
    }))
}

/// Sets a secret the plugin requests. Secrets can be written, never read.
#[utoipa::path(
    put,
    path = "/plugins/{id}/secrets/{key}",
    tag = "plugins",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::AdminPlugins]))),
    params(
        ("id" = String, Path, description = "The plugin's id"),
        ("key" = String, Path, description = "The secret's key"),
    ),
    request_body = SecretValue,
    responses(
        (status = 204, description = "Stored"),
        (status = 404, description = "Not installed"),
        (status = 422, description = "Not a secret the plugin requests"),
    )
)]
pub(super) async fn put_secret(
    auth: Authenticated,
    State(state): State<AppState>,
    Path((id, key)): Path<(String, String)>,
    ApiJson(body): ApiJson<SecretValue>,
) -> ApiResult<StatusCode> {
    auth.principal.require(Gate::ADMIN_PLUGINS)?;
    manager(&state)?
        .set_secret(&id, &key, &body.value, &auth.actor)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The active plugin's recent log lines.
#[utoipa::path(
    get,
    path = "/plugins/{id}/logs",
    tag = "plugins",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::AdminPlugins]))),
    params(("id" = String, Path, description = "The plugin's id")),
    responses(
        (status = 200, description = "Recent lines", body = LogsBody),
        (status = 404, description = "Not installed"),
        (status = 409, description = "Not active"),
    )
)]
pub(super) async fn logs(
    auth: Authenticated,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<LogsBody>> {
    auth.principal.require(Gate::ADMIN_PLUGINS)?;
    let manager = manager(&state)?;
    manager.get(&id).await?;
    let plugin = loaded(manager, &id)?;
    let items = plugin
        .logs()
        .into_iter()
        .map(|line| LogLineBody {
            at: to_time(line.at),
            level: line.level,
            message: line.message,
        })
        .collect();
    Ok(Json(LogsBody { items }))
}

/// The plugin's health: calls, failures, quarantine.
#[utoipa::path(
    get,
    path = "/plugins/{id}/status",
    tag = "plugins",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::AdminPlugins]))),
    params(("id" = String, Path, description = "The plugin's id")),
    responses(
        (status = 200, description = "Its health", body = StatusBody),
        (status = 404, description = "Not installed"),
    )
)]
pub(super) async fn status(
    auth: Authenticated,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<StatusBody>> {
    auth.principal.require(Gate::ADMIN_PLUGINS)?;
    let manager = manager(&state)?;
    manager.get(&id).await?;
    Ok(Json(match manager.active(&id) {
        Some(plugin) => {
            let s = plugin.status();
            StatusBody {
                loaded: true,
                calls: s.calls,
                failures: s.failures,
                consecutive_failures: s.consecutive_failures,
                last_error: s.last_error,
                quarantine_reason: s.quarantine.as_ref().map(|q| q.reason.clone()),
                quarantined_since: s.quarantine.map(|q| to_time(q.since)),
            }
        }
        None => StatusBody {
            loaded: false,
            calls: 0,
            failures: 0,
            consecutive_failures: 0,
            last_error: None,
            quarantine_reason: None,
            quarantined_since: None,
        },
    }))
}

/// Lifts the plugin's quarantine.
#[utoipa::path(
    post,
    path = "/plugins/{id}/release",
    tag = "plugins",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::AdminPlugins]))),
    params(("id" = String, Path, description = "The plugin's id")),
    responses(
        (status = 204, description = "Released"),
        (status = 404, description = "Not installed"),
        (status = 409, description = "Not active"),
    )
)]
pub(super) async fn release(
    auth: Authenticated,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    auth.principal.require(Gate::ADMIN_PLUGINS)?;
    let manager = manager(&state)?;
    manager.get(&id).await?;
    loaded(manager, &id)?;
    manager.release(&id, &auth.actor).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn to_time(at: SystemTime) -> OffsetDateTime {
    OffsetDateTime::from(at)
}

/// The plugin routes (relative to `/api/v1`), the upload with its own body
/// limit.
pub(super) fn router() -> utoipa_axum::router::OpenApiRouter<AppState> {
    use utoipa_axum::routes;
    let upload = utoipa_axum::router::OpenApiRouter::new()
        .routes(routes!(upload, list))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_UPLOAD_BYTES));
    utoipa_axum::router::OpenApiRouter::new()
        .merge(upload)
        .routes(routes!(get, delete))
        .routes(routes!(grant))
        .routes(routes!(activate))
        .routes(routes!(deactivate))
        .routes(routes!(get_config, put_config))
        .routes(routes!(put_secret))
        .routes(routes!(logs))
        .routes(routes!(status))
        .routes(routes!(release))
}
