//! `/api/v1/mail`: the Panel's SMTP settings ([`crate::mail`]). Reading
//! needs `settings.read`, changing and testing `settings.write`.
//!
//! | Method | Path | What |
//! | --- | --- | --- |
//! | `GET` | `/mail` | the settings, without the password (`404` when there are none) |
//! | `PUT` | `/mail` | set them; an absent `password` keeps the stored one, `null` removes it |
//! | `DELETE` | `/mail` | remove them: the Panel sends no mail |
//! | `POST` | `/mail/test` | send a test message, to `to` or the caller's own address |
//!
//! A test that fails answers `502 mail-failed` with the server's words (or
//! why it could not be reached); without settings, `409
//! mail-not-configured`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Authenticated;
use super::error::{ApiError, ApiResult, Code, FieldError, FieldLocation};
use super::extract::ApiJson;
use super::users_routes::double_option;
use crate::identity::permissions::{Gate, Permission};
use crate::identity::users;
use crate::mail::{self, Mail, MailError, MailSettings, Security};

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get, put, delete))
        .routes(routes!(test))
}

/// The SMTP settings, as shown.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MailSettingsBody {
    /// The SMTP server's host name or address.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// `none`, `starttls` or `tls`.
    pub security: String,
    /// The user name it signs in with, if any.
    pub username: Option<String>,
    /// Whether a password is stored (it is never shown).
    pub has_password: bool,
    /// The sender: `address` or `Name <address>`.
    pub from: String,
    /// When they were set (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// New SMTP settings.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MailSettingsPut {
    /// The SMTP server's host name or address.
    pub host: String,
    /// Its port (587 for `starttls`, 465 for `tls`, 25 for a relay).
    pub port: u16,
    /// `none` (loopback relays), `starttls` or `tls`.
    pub security: String,
    /// The user name to sign in with, if the server wants one.
    #[serde(default)]
    pub username: Option<String>,
    /// The password: absent keeps the stored one, `null` removes it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub password: Option<Option<String>>,
    /// The sender: `address` or `Name <address>`.
    pub from: String,
}

/// A test message.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MailTest {
    /// Where to send it; the caller's own address when absent.
    #[serde(default)]
    pub to: Option<String>,
}

fn body(settings: MailSettings, updated_at: OffsetDateTime) -> MailSettingsBody {
    MailSettingsBody {
        host: settings.host,
        port: settings.port,
        security: settings.security.as_str().to_owned(),
        username: settings.username,
        has_password: settings.password.is_some(),
        from: settings.from,
        updated_at,
    }
}

fn not_configured() -> ApiError {
    ApiError::refused(
        Code::MailNotConfigured,
        "the Panel has no mail settings; set them with PUT /api/v1/mail",
    )
}

/// The SMTP settings.
#[utoipa::path(
    get,
    path = "/mail",
    tag = "settings",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::SettingsRead]))),
    responses(
        (status = 200, description = "The settings", body = MailSettingsBody),
        (status = 404, description = "The Panel has no mail settings"),
    )
)]
pub(super) async fn get(
    auth: Authenticated,
    State(state): State<AppState>,
) -> ApiResult<Json<MailSettingsBody>> {
    auth.principal.require(Gate::SETTINGS_READ)?;
    let (settings, at) = mail::load(state.db())
        .await?
        .ok_or_else(|| ApiError::NotFound("the Panel has no mail settings".into()))?;
    Ok(Json(body(settings, at)))
}

/// Sets the SMTP settings.
#[utoipa::path(
    put,
    path = "/mail",
    tag = "settings",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::SettingsWrite]))),
    request_body = MailSettingsPut,
    responses(
        (status = 200, description = "Set", body = MailSettingsBody),
        (status = 422, description = "A field is invalid"),
    )
)]
pub(super) async fn put(
    auth: Authenticated,
    State(state): State<AppState>,
    ApiJson(put): ApiJson<MailSettingsPut>,
) -> ApiResult<Json<MailSettingsBody>> {
    auth.principal.require(Gate::SETTINGS_WRITE)?;
    let db = state.db();
    let Some(security) = Security::parse(&put.security) else {
        return Err(ApiError::field(
            FieldLocation::Body,
            "security",
            "must be none, starttls or tls",
        ));
    };
    let password = match put.password {
        Some(password) => password,
        None => mail::load(db)
            .await?
            .and_then(|(stored, _)| stored.password),
    };
    let settings = MailSettings {
        host: put.host,
        port: put.port,
        security,
        username: put.username,
        password,
        from: put.from,
    };
    let problems = settings.problems();
    if !problems.is_empty() {
        return Err(ApiError::Validation(
            problems
                .into_iter()
                .map(|p| FieldError::new(FieldLocation::Body, p.field, p.reason))
                .collect(),
        ));
    }
    mail::save(db, &settings, &auth.actor).await?;
    let (settings, at) = mail::load(db).await?.ok_or_else(not_configured)?;
    Ok(Json(body(settings, at)))
}

/// Removes the SMTP settings.
#[utoipa::path(
    delete,
    path = "/mail",
    tag = "settings",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::SettingsWrite]))),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "The Panel has no mail settings"),
    )
)]
pub(super) async fn delete(
    auth: Authenticated,
    State(state): State<AppState>,
) -> ApiResult<StatusCode> {
    auth.principal.require(Gate::SETTINGS_WRITE)?;
    if mail::clear(state.db(), &auth.actor).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("the Panel has no mail settings".into()))
    }
}

/// Sends a test message with the stored settings.
#[utoipa::path(
    post,
    path = "/mail/test",
    tag = "settings",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::SettingsWrite]))),
    request_body = MailTest,
    responses(
        (status = 204, description = "The SMTP server took the message"),
        (status = 409, description = "The Panel has no mail settings"),
        (status = 422, description = "No address to send to"),
        (status = 502, description = "The SMTP server refused the message or could not be reached"),
    )
)]
pub(super) async fn test(
    auth: Authenticated,
    State(state): State<AppState>,
    ApiJson(request): ApiJson<MailTest>,
) -> ApiResult<StatusCode> {
    auth.principal.require(Gate::SETTINGS_WRITE)?;
    let db = state.db();
    let to = match request.to {
        Some(to) => to,
        None => users::find_user(db, auth.principal.user_id())
            .await?
            .and_then(|u| u.email)
            .ok_or_else(|| {
                ApiError::field(
                    FieldLocation::Body,
                    "to",
                    "you have no email address: say where to send the test",
                )
            })?,
    };
    let mail = Mail {
        to,
        subject: "Ctrl-Alt-Play mail test".to_owned(),
        body: format!(
            "This is a test from the Ctrl-Alt-Play Panel at {}: its mail settings work.\n",
            state.config().base_url()
        ),
    };
    match mail::send_stored(db, state.config().mail_roots.as_deref(), &mail).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(MailError::NotConfigured) => Err(not_configured()),
        Err(MailError::BadRecipient(to)) => Err(ApiError::field(
            FieldLocation::Body,
            "to",
            format!("{to:?} is not a mail address"),
        )),
        Err(error) => Err(ApiError::refused(Code::MailFailed, error.to_string())),
    }
}
