//! `/api/v1/settings`: Panel-wide named JSON values. Reading needs
//! `settings.read`, changing needs `settings.write`; every change is
//! recorded in the audit log with the caller, address and request id.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::AppState;
use super::auth::Authenticated;
use super::error::{ApiError, ApiResult, FieldError, FieldLocation};
use super::extract::ApiJson;
use crate::db::settings::{MAX_NAME_LEN, Setting, is_valid_setting_name};
use crate::identity::permissions::{Gate, Permission};

/// A setting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SettingBody {
    /// Its name.
    pub name: String,
    /// Its value, any JSON.
    pub value: serde_json::Value,
    /// When it was last written (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl From<Setting> for SettingBody {
    fn from(setting: Setting) -> Self {
        SettingBody {
            name: setting.name,
            value: setting.value,
            updated_at: setting.updated_at,
        }
    }
}

/// Every setting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SettingList {
    /// The settings, by name.
    pub items: Vec<SettingBody>,
}

/// A new setting.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSetting {
    /// Its name: 1 to 128 characters, a lowercase letter or digit, then
    /// lowercase letters, digits, `.`, `_` or `-`.
    pub name: String,
    /// Its value, any JSON.
    pub value: serde_json::Value,
}

/// A setting's new value.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingValue {
    /// The value, any JSON.
    pub value: serde_json::Value,
}

fn check_name(location: FieldLocation, name: &str) -> Result<(), ApiError> {
    if is_valid_setting_name(name) {
        Ok(())
    } else {
        Err(ApiError::Validation(vec![FieldError::new(
            location,
            "name",
            format!(
                "must be 1 to {MAX_NAME_LEN} characters: a lowercase letter or digit, then lowercase letters, digits, '.', '_' or '-'"
            ),
        )]))
    }
}

fn not_found(name: &str) -> ApiError {
    ApiError::NotFound(format!("there is no setting {name:?}"))
}

/// Lists every setting.
#[utoipa::path(
    get,
    path = "/settings",
    tag = "settings",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::SettingsRead]))),
    responses(
        (status = 200, description = "The settings", body = SettingList),
    )
)]
pub(super) async fn list(
    auth: Authenticated,
    State(state): State<AppState>,
) -> ApiResult<Json<SettingList>> {
    auth.principal.require(Gate::SETTINGS_READ)?;
    let items = state.db().settings().list().await?;
    Ok(Json(SettingList {
        items: items.into_iter().map(SettingBody::from).collect(),
    }))
}

/// Creates a setting that does not exist yet.
#[utoipa::path(
    post,
    path = "/settings",
    tag = "settings",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::SettingsWrite]))),
    request_body = NewSetting,
    responses(
        (status = 201, description = "Created", body = SettingBody),
        (status = 400, description = "The body is not JSON"),
        (status = 409, description = "A setting with this name exists"),
        (status = 413, description = "The body is too large"),
        (status = 422, description = "A field is invalid"),
    )
)]
pub(super) async fn create(
    auth: Authenticated,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<NewSetting>,
) -> ApiResult<(StatusCode, Json<SettingBody>)> {
    auth.principal.require(Gate::SETTINGS_WRITE)?;
    check_name(FieldLocation::Body, &body.name)?;
    let setting = state
        .db()
        .settings()
        .create(&body.name, &body.value, &auth.actor)
        .await
        .map_err(|e| match ApiError::from(e) {
            ApiError::Conflict(_) => {
                ApiError::Conflict(format!("a setting named {:?} exists", body.name))
            }
            other => other,
        })?;
    Ok((StatusCode::CREATED, Json(setting.into())))
}

/// Reads one setting.
#[utoipa::path(
    get,
    path = "/settings/{name}",
    tag = "settings",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::SettingsRead]))),
    params(("name" = String, Path, description = "The setting's name")),
    responses(
        (status = 200, description = "The setting", body = SettingBody),
        (status = 404, description = "No such setting"),
        (status = 422, description = "The name is invalid"),
    )
)]
pub(super) async fn get(
    auth: Authenticated,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<SettingBody>> {
    auth.principal.require(Gate::SETTINGS_READ)?;
    check_name(FieldLocation::Path, &name)?;
    match state.db().settings().get(&name).await? {
        Some(setting) => Ok(Json(setting.into())),
        None => Err(not_found(&name)),
    }
}

/// Sets a setting, creating it if needed.
#[utoipa::path(
    put,
    path = "/settings/{name}",
    tag = "settings",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::SettingsWrite]))),
    params(("name" = String, Path, description = "The setting's name")),
    request_body = SettingValue,
    responses(
        (status = 200, description = "The setting as stored", body = SettingBody),
        (status = 400, description = "The body is not JSON"),
        (status = 413, description = "The body is too large"),
        (status = 422, description = "The name or body is invalid"),
    )
)]
pub(super) async fn put(
    auth: Authenticated,
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<SettingValue>,
) -> ApiResult<Json<SettingBody>> {
    auth.principal.require(Gate::SETTINGS_WRITE)?;
    check_name(FieldLocation::Path, &name)?;
    let setting = state
        .db()
        .settings()
        .put(&name, &body.value, &auth.actor)
        .await?;
    Ok(Json(setting.into()))
}

/// Deletes a setting.
#[utoipa::path(
    delete,
    path = "/settings/{name}",
    tag = "settings",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::SettingsWrite]))),
    params(("name" = String, Path, description = "The setting's name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such setting"),
        (status = 422, description = "The name is invalid"),
    )
)]
pub(super) async fn delete(
    auth: Authenticated,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    auth.principal.require(Gate::SETTINGS_WRITE)?;
    check_name(FieldLocation::Path, &name)?;
    if state.db().settings().delete(&name, &auth.actor).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found(&name))
    }
}
