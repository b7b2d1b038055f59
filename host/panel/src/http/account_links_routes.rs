//! Passwords set for someone: an administrator's initial password or
//! reset, invitations, and password resets by mail.
//!
//! | Method | Path | Who | What |
//! | --- | --- | --- | --- |
//! | `PUT` | `/users/{id}/password` | `admin.users` | set a user's password, optionally requiring a change at the next sign-in |
//! | `POST` | `/users/{id}/invitation` | `admin.users` | a one-time link to set a first password, shown once and optionally mailed |
//! | `POST` | `/users/{id}/password-reset` | `admin.users` | a one-time reset link, shown once and optionally mailed |
//! | `POST` | `/auth/password-reset` | anyone | mail a reset link to the account with this username or email |
//! | `GET` | `/account-links/{token}` | the link's holder | what the link is for, and for whom |
//! | `POST` | `/account-links/{token}` | the link's holder | set the password (once) |
//!
//! The passwords go to the user's auth-provider plugin
//! ([`crate::identity::passwords`]); links are [`crate::identity::links`].
//!
//! Rules:
//!
//! - The administrator routes follow the user administration's: only
//!   administrators act on administrators, and nobody sets their own
//!   password here (`PUT /account/password` checks the current one).
//! - A link's URL is built from the Panel's configured public URL, never
//!   from the request, and carries the token in the fragment
//!   (`/#/link/<token>`), which browsers never send to a server.
//! - A mail that fails leaves the link in place: the answer says
//!   `mail: "failed: …"` and the administrator can pass the link on.
//! - `POST /auth/password-reset` answers `202` whatever it finds (no
//!   account, no email, no password, mail failing), so it tells nobody
//!   which accounts exist; it is rate-limited per address and per account
//!   like logins. Reset links last an hour; invitations 72 hours unless
//!   the administrator says (1 hour to 30 days).
//! - Issuing an invitation fires `user.invite` (API 0.2.0 hook plugins):
//!   a before-hook may refuse it (`403 hook-denied`, no link made).
//! - Setting a password ends every session of the user; so does a reset.
//!   A used link, an expired link and an unknown one are `410
//!   link-used`, `410 link-expired` and `404 link-not-found`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use cap_runtime::api::{EventKind, Payload};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Authenticated;
use super::auth_routes::{Client, check_len, identity};
use super::error::{ApiError, ApiResult, Code, FieldLocation};
use super::extract::ApiJson;
use super::users_routes::{admins_only, caller, not_found};
use crate::identity::links::{self, LinkState, Purpose};
use crate::identity::passwords::{SetPasswordError, set_password};
use crate::identity::permissions::{Gate, Permission};
use crate::identity::users::{self, SetBy, User};
use crate::mail::{self, Mail};
use crate::plugins::hooks;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(admin_set_password))
        .routes(routes!(invite))
        .routes(routes!(admin_reset))
        .routes(routes!(request_reset))
        .routes(routes!(show_link, use_link))
}

/// A password an administrator sets.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminPassword {
    /// The new password; the provider's policy decides what it accepts.
    pub password: String,
    /// Whether the user must choose another one at their next sign-in.
    #[serde(default)]
    pub must_change: bool,
}

/// A one-time link to make.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkRequest {
    /// Hours the link works: 1 to 720 (an invitation's default is 72; a
    /// reset always lasts 1).
    #[serde(default)]
    pub expires_in_hours: Option<u32>,
    /// Whether to mail the link to the user's email address.
    #[serde(default)]
    pub send_mail: bool,
}

/// A one-time link, as made.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LinkBody {
    /// The link's id.
    pub id: String,
    /// `invitation` or `reset`.
    pub purpose: String,
    /// The link: shown this once, never again.
    pub url: String,
    /// When it stops working (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// What happened to its mail: `not-requested`, `sent`, or
    /// `failed: <reason>`.
    pub mail: String,
}

/// What a link is for.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LinkInfo {
    /// `invitation` or `reset`.
    pub purpose: String,
    /// The account's username.
    pub username: String,
    /// When the link stops working (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// The password chosen through a link.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkPassword {
    /// The new password; the provider's policy decides what it accepts.
    pub password: String,
}

/// A forgotten password.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    /// The account's username or email address.
    pub login: String,
}

/// The user `id`, if the caller may set their password.
async fn target(state: &AppState, auth: &Authenticated, id: &str) -> ApiResult<User> {
    auth.principal.require(Gate::ADMIN_USERS)?;
    let db = state.db();
    let target = users::find_user(db, id)
        .await?
        .ok_or_else(|| not_found(id))?;
    if target.id == auth.principal.user_id() {
        return Err(ApiError::field(
            FieldLocation::Path,
            "id",
            "use PUT /account/password to change your own password",
        ));
    }
    if target.admin && !caller(db, auth).await?.admin {
        return Err(admins_only());
    }
    Ok(target)
}

/// The answer to a refused set: the policy's words on `field`.
fn set_error(field: &str, error: SetPasswordError) -> ApiError {
    match error {
        SetPasswordError::Policy(reasons) => {
            ApiError::field(FieldLocation::Body, field, reasons.join("; "))
        }
        SetPasswordError::NoProvider => ApiError::refused(
            Code::NoPasswordIdentity,
            "no sign-in provider that takes passwords is installed",
        ),
        SetPasswordError::IdentityTaken(name) => ApiError::refused(
            Code::IdentityTaken,
            format!("the password provider's account {name:?} is another user's"),
        ),
        SetPasswordError::Unavailable(reason) => {
            tracing::warn!(%reason, "auth provider could not set a password");
            ApiError::refused(
                Code::ProviderUnavailable,
                "the sign-in provider could not store the password; try again later",
            )
        }
        SetPasswordError::Db(error) => error.into(),
    }
}

/// Sets a user's password.
#[utoipa::path(
    put,
    path = "/users/{id}/password",
    tag = "users",
    params(("id" = String, Path, description = "The user's id")),
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::AdminUsers]))),
    request_body = AdminPassword,
    responses(
        (status = 204, description = "Set; the user's sessions ended"),
        (status = 403, description = "The user is an administrator and the caller is not"),
        (status = 404, description = "No such user"),
        (status = 409, description = "No provider takes passwords, or its account is another user's"),
        (status = 422, description = "The provider's policy refuses the password, or it is the caller's own"),
        (status = 503, description = "The provider is unavailable or failed"),
    )
)]
pub(super) async fn admin_set_password(
    auth: Authenticated,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<AdminPassword>,
) -> ApiResult<StatusCode> {
    let user = target(&state, &auth, &id).await?;
    let mut errors = Vec::new();
    check_len(&mut errors, "password", &body.password, 1024);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let identity = identity(&state)?;
    set_password(
        identity,
        &user,
        &body.password,
        &SetBy::Admin,
        body.must_change,
        &auth.actor,
    )
    .await
    .map_err(|e| set_error("password", e))?;
    Ok(StatusCode::NO_CONTENT)
}

/// The URL of a link with `token`.
fn link_url(state: &AppState, token: &str) -> String {
    format!("{}/#/link/{token}", state.config().base_url())
}

/// The mail that carries a link.
fn link_mail(
    state: &AppState,
    user: &User,
    purpose: Purpose,
    url: &str,
    expires: OffsetDateTime,
) -> Option<Mail> {
    let to = user.email.clone()?;
    let base = state.config().base_url();
    let until = expires
        .format(&time::format_description::well_known::Rfc2822)
        .unwrap_or_default();
    let (subject, body) = match purpose {
        Purpose::Invitation => (
            "Your Ctrl-Alt-Play account".to_owned(),
            format!(
                "An administrator made an account for you on the Ctrl-Alt-Play Panel at {base}.\n\n\
                 Username: {}\n\n\
                 Choose your password here (the link works once, until {until}):\n{url}\n",
                user.username
            ),
        ),
        Purpose::Reset => (
            "Reset your Ctrl-Alt-Play password".to_owned(),
            format!(
                "Someone asked to reset the password of {} on the Ctrl-Alt-Play Panel at {base}.\n\n\
                 Choose a new password here (the link works once, until {until}):\n{url}\n\n\
                 If this was not you, ignore this mail: your password stays as it is.\n",
                user.username
            ),
        ),
    };
    Some(Mail { to, subject, body })
}

/// Issues a link of `purpose` for `user` and mails it when asked.
async fn issue_link(
    state: &AppState,
    user: &User,
    purpose: Purpose,
    request: &LinkRequest,
    actor: &crate::db::Actor,
) -> ApiResult<LinkBody> {
    let ttl = match (purpose, request.expires_in_hours) {
        (Purpose::Reset, _) => links::RESET_TTL,
        (Purpose::Invitation, None) => links::INVITATION_TTL,
        (Purpose::Invitation, Some(hours)) => {
            let ttl = time::Duration::hours(i64::from(hours));
            if hours == 0 || ttl > links::MAX_INVITATION_TTL {
                return Err(ApiError::field(
                    FieldLocation::Body,
                    "expires_in_hours",
                    "must be 1 to 720 hours",
                ));
            }
            ttl
        }
    };
    if request.send_mail && user.email.is_none() {
        return Err(ApiError::field(
            FieldLocation::Body,
            "send_mail",
            "the user has no email address",
        ));
    }
    let db = state.db();
    let issued = links::issue(db, &user.id, purpose, ttl, request.send_mail, actor).await?;
    let url = link_url(state, &issued.token);
    let mail = match request.send_mail {
        false => "not-requested".to_owned(),
        true => {
            let outcome = match link_mail(state, user, purpose, &url, issued.expires_at) {
                Some(mail) => {
                    match mail::send_stored(db, state.config().mail_roots.as_deref(), &mail).await {
                        Ok(()) => "sent".to_owned(),
                        Err(error) => format!("failed: {error}"),
                    }
                }
                None => "failed: the user has no email address".to_owned(),
            };
            links::record_mail(db, &issued.id, &outcome).await?;
            outcome
        }
    };
    Ok(LinkBody {
        id: issued.id,
        purpose: purpose.as_str().to_owned(),
        url,
        expires_at: issued.expires_at,
        mail,
    })
}

/// Invites a user to choose their first password.
#[utoipa::path(
    post,
    path = "/users/{id}/invitation",
    tag = "users",
    params(("id" = String, Path, description = "The user's id")),
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::AdminUsers]))),
    request_body = LinkRequest,
    responses(
        (status = 201, description = "The invitation; its URL is shown only now", body = LinkBody),
        (status = 403, description = "A plugin's before-hook refused (hook-denied)"),
        (status = 403, description = "The user is an administrator and the caller is not"),
        (status = 404, description = "No such user"),
        (status = 422, description = "A bad expiry, or mail asked for a user without an email address"),
    )
)]
pub(super) async fn invite(
    auth: Authenticated,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<LinkRequest>,
) -> ApiResult<(StatusCode, Json<LinkBody>)> {
    let user = target(&state, &auth, &id).await?;
    let plugins = state.plugins();
    let info = || Payload::User(user.hook_info());
    hooks::run_before(
        plugins,
        hooks::event(EventKind::UserInvite, info(), &auth.actor),
    )
    .await?;
    let link = issue_link(&state, &user, Purpose::Invitation, &body, &auth.actor).await?;
    hooks::spawn_after(
        plugins,
        hooks::event(EventKind::UserInvite, info(), &auth.actor),
    );
    Ok((StatusCode::CREATED, Json(link)))
}

/// Makes a password reset link for a user.
#[utoipa::path(
    post,
    path = "/users/{id}/password-reset",
    tag = "users",
    params(("id" = String, Path, description = "The user's id")),
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::AdminUsers]))),
    request_body = LinkRequest,
    responses(
        (status = 201, description = "The reset link; its URL is shown only now", body = LinkBody),
        (status = 403, description = "The user is an administrator and the caller is not"),
        (status = 404, description = "No such user"),
        (status = 422, description = "Mail asked for a user without an email address"),
    )
)]
pub(super) async fn admin_reset(
    auth: Authenticated,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<LinkRequest>,
) -> ApiResult<(StatusCode, Json<LinkBody>)> {
    let user = target(&state, &auth, &id).await?;
    let link = issue_link(&state, &user, Purpose::Reset, &body, &auth.actor).await?;
    Ok((StatusCode::CREATED, Json(link)))
}

/// Mails a password reset link to the account with this username or email.
#[utoipa::path(
    post,
    path = "/auth/password-reset",
    tag = "auth",
    request_body = ResetRequest,
    responses(
        (status = 202, description = "If an account with a password and an email address matches, a link is on its way"),
        (status = 422, description = "A field is invalid"),
        (status = 429, description = "Too many attempts"),
    )
)]
pub(super) async fn request_reset(
    State(state): State<AppState>,
    client: Client,
    ApiJson(body): ApiJson<ResetRequest>,
) -> ApiResult<StatusCode> {
    let mut errors = Vec::new();
    check_len(&mut errors, "login", &body.login, 255);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let identity = identity(&state)?;
    let limits = identity.options().rate_limits;
    let limiter = identity.limiter();
    client.limit_address(identity, "reset", limits.login_per_ip)?;
    let login = body.login.trim();
    limiter
        .check(
            &format!("reset:account:{}", login.to_lowercase()),
            limits.login_per_account,
        )
        .map_err(ApiError::rate_limited)?;
    let db = state.db();
    let user = match users::find_user_by_name(db, login).await? {
        Some(user) => Some(user),
        None => users::find_user_by_email(db, login).await?,
    };
    let Some(user) = user.filter(|u| !u.disabled && u.email.is_some()) else {
        return Ok(StatusCode::ACCEPTED);
    };
    let request = LinkRequest {
        expires_in_hours: None,
        send_mail: true,
    };
    // The answer is the same whatever happens next.
    if let Err(error) = issue_link(&state, &user, Purpose::Reset, &request, &client.actor).await {
        tracing::warn!(?error, user = %user.id, "a password reset link could not be issued");
    }
    Ok(StatusCode::ACCEPTED)
}

/// The usable link `token`, or the refusal.
async fn usable(state: &AppState, token: &str) -> ApiResult<links::Link> {
    match links::check(state.db(), token).await? {
        LinkState::Usable(link) => Ok(link),
        LinkState::NotFound => Err(ApiError::refused(
            Code::LinkNotFound,
            "this link does not exist; ask for a new one",
        )),
        LinkState::Expired(_) => Err(ApiError::refused(
            Code::LinkExpired,
            "this link expired; ask for a new one",
        )),
        LinkState::Used(_) => Err(ApiError::refused(
            Code::LinkUsed,
            "this link was used already; each link works once",
        )),
    }
}

/// Says what a link is for.
#[utoipa::path(
    get,
    path = "/account-links/{token}",
    tag = "auth",
    params(("token" = String, Path, description = "The link's token")),
    responses(
        (status = 200, description = "The link works", body = LinkInfo),
        (status = 404, description = "No such link"),
        (status = 410, description = "The link expired or was used"),
    )
)]
pub(super) async fn show_link(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> ApiResult<Json<LinkInfo>> {
    let link = usable(&state, &token).await?;
    let user = users::find_user(state.db(), &link.user_id)
        .await?
        .ok_or_else(|| ApiError::refused(Code::LinkNotFound, "this link's account is gone"))?;
    Ok(Json(LinkInfo {
        purpose: link.purpose.as_str().to_owned(),
        username: user.username,
        expires_at: link.expires_at,
    }))
}

/// Sets the password through a link (once).
#[utoipa::path(
    post,
    path = "/account-links/{token}",
    tag = "auth",
    params(("token" = String, Path, description = "The link's token")),
    request_body = LinkPassword,
    responses(
        (status = 204, description = "The password is set; sign in with it"),
        (status = 403, description = "The account is disabled"),
        (status = 404, description = "No such link"),
        (status = 410, description = "The link expired or was used"),
        (status = 422, description = "The provider's policy refuses the password"),
        (status = 429, description = "Too many attempts"),
        (status = 503, description = "The provider is unavailable or failed"),
    )
)]
pub(super) async fn use_link(
    State(state): State<AppState>,
    client: Client,
    Path(token): Path<String>,
    ApiJson(body): ApiJson<LinkPassword>,
) -> ApiResult<StatusCode> {
    let mut errors = Vec::new();
    check_len(&mut errors, "password", &body.password, 1024);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let identity = identity(&state)?;
    client.limit_address(
        identity,
        "link",
        identity.options().rate_limits.login_per_ip,
    )?;
    let link = usable(&state, &token).await?;
    let db = state.db();
    let user = users::find_user(db, &link.user_id)
        .await?
        .ok_or_else(|| ApiError::refused(Code::LinkNotFound, "this link's account is gone"))?;
    if user.disabled {
        return Err(ApiError::refused(
            Code::AccountDisabled,
            "this account is disabled",
        ));
    }
    // Taken before the provider is asked: of two uses at once, one goes on.
    if !links::claim(db, &link.id).await? {
        return Err(ApiError::refused(
            Code::LinkUsed,
            "this link was used already; each link works once",
        ));
    }
    let by = SetBy::Link {
        link: link.id.clone(),
        purpose: link.purpose.as_str(),
    };
    let actor = crate::db::Actor {
        user_id: Some(user.id.clone()),
        ..client.actor.clone()
    };
    match set_password(identity, &user, &body.password, &by, false, &actor).await {
        Ok(_) => Ok(StatusCode::NO_CONTENT),
        Err(error) => {
            // Nothing was done with the link: it works again.
            links::release(db, &link.id).await?;
            Err(set_error("password", error))
        }
    }
}
