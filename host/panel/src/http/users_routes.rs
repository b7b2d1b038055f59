//! `/api/v1/users`: user administration. Every route needs the
//! `admin.users` permission.
//!
//! | Method | Path | What |
//! | --- | --- | --- |
//! | `GET` | `/users?search=&limit=&cursor=` | users by username; `search` matches username, email or display name, any case |
//! | `POST` | `/users` | create, optionally with roles and linked to a provider identity |
//! | `GET` | `/users/{id}` | one user with roles, linked identities and whether TOTP is on |
//! | `PATCH` | `/users/{id}` | change email, display name, roles, `admin`, `disabled` |
//! | `DELETE` | `/users/{id}` | delete, with sessions, API keys and second factor |
//! | `DELETE` | `/users/{id}/totp` | reset a user's TOTP (lost device and recovery codes) |
//!
//! Rules beyond the permission:
//!
//! - Disabling a user revokes their sessions and API keys at once (see
//!   [`users::update_user`]); a disabled user cannot log in or use any
//!   token.
//! - Only administrators may create administrators, or change, disable or
//!   delete one, so `admin.users` cannot be used to climb to `admin`.
//! - Nobody can disable, demote or delete themselves: the last
//!   administrator cannot lock everyone out by accident.
//! - Nobody changes their own roles (`403 own-roles`), administrators
//!   included: a role set is always someone else's decision.
//! - Giving a user a role grants its permissions, so the caller must be
//!   allowed to grant each of them (`403 permission-not-held`, `403
//!   admin-only-permission`; see
//!   [`check_grant`](crate::identity::permissions::check_grant)). Only the
//!   roles a request adds are checked: roles the user keeps or loses grant
//!   nothing new.
//! - Invalid fields, unknown roles, a taken username and an identity linked
//!   to someone else are per-field `422` errors; nothing is half-written.
//! - Creating, changing and deleting fire `user.create`, `user.update` and
//!   `user.delete` (see [`crate::plugins::hooks`]): once the request passed
//!   every check above, a plugin's before-hook may refuse it (`403
//!   hook-denied`, nothing written) or change the email (checked again);
//!   the after-hooks hear of the change once it is committed.
//!
//! Pages are ordered by username; the cursor is opaque (today an offset).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use cap_runtime::api::{self, EventKind, Payload};
use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Authenticated;
use super::error::{ApiError, ApiResult, FieldError, FieldLocation};
use super::extract::{ApiJson, ApiQuery};
use super::pagination::{Cursor, PageParams, Pagination};
use crate::db::{Database, DbError};
use crate::error_code::Code;
use crate::identity::permissions::{Gate, Permission};
use crate::identity::users::{self, IdentityLink, NewUser, User, UserChanges};
use crate::identity::{roles, totp};
use crate::plugins::hooks;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get, update, delete))
        .routes(routes!(reset_totp))
}

/// A user as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UserSummary {
    /// Its id.
    pub id: String,
    /// Unique login name.
    pub username: String,
    /// Email address.
    pub email: Option<String>,
    /// Name to show.
    pub display_name: Option<String>,
    /// Holds every permission.
    pub admin: bool,
    /// Cannot log in or use tokens.
    pub disabled: bool,
    /// Must choose a new password at the next sign-in.
    #[serde(default)]
    pub must_change_password: bool,
    /// When it was created (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl From<User> for UserSummary {
    fn from(user: User) -> Self {
        UserSummary {
            id: user.id,
            username: user.username,
            email: user.email,
            display_name: user.display_name,
            admin: user.admin,
            disabled: user.disabled,
            must_change_password: user.must_change_password,
            created_at: user.created_at,
        }
    }
}

/// A role as a user holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RoleRef {
    /// The role's id.
    pub id: String,
    /// Its name.
    pub name: String,
}

/// A provider identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentityBody {
    /// The auth-provider plugin's id, e.g. `local-password`.
    pub provider: String,
    /// The provider's stable subject identifier.
    pub subject: String,
}

/// One user in full.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UserDetail {
    /// The user.
    #[serde(flatten)]
    pub user: UserSummary,
    /// Its roles, by name.
    pub roles: Vec<RoleRef>,
    /// The provider identities it logs in with.
    pub identities: Vec<IdentityBody>,
    /// Whether logins need a TOTP code.
    pub totp_enabled: bool,
}

/// One page of users.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UserPage {
    /// The users, by username.
    pub items: Vec<UserSummary>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// The list filter.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserFilter {
    /// Text the username, email or display name contains (any case).
    pub search: Option<String>,
}

/// A user to create.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUserRequest {
    /// Unique login name, 1 to 64 characters.
    pub username: String,
    /// Email address.
    #[serde(default)]
    pub email: Option<String>,
    /// Name to show, 1 to 128 characters.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Whether the user is an administrator (only administrators may say
    /// yes).
    #[serde(default)]
    pub admin: bool,
    /// Role ids to give the user.
    #[serde(default)]
    pub roles: Vec<String>,
    /// A provider identity to link, so the user can log in through it.
    #[serde(default)]
    pub identity: Option<IdentityBody>,
}

pub(super) fn double_option<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// Changes to a user: absent fields stay as they are; `null` clears
/// `email` and `display_name`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    /// A new email address, or `null` to clear it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub email: Option<Option<String>>,
    /// A new display name, or `null` to clear it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub display_name: Option<Option<String>>,
    /// Make or unmake an administrator (administrators only).
    #[serde(default)]
    pub admin: Option<bool>,
    /// Disable (revoking sessions and API keys) or enable.
    #[serde(default)]
    pub disabled: Option<bool>,
    /// The complete new set of role ids.
    #[serde(default)]
    pub roles: Option<Vec<String>>,
}

fn field(errors: &mut Vec<FieldError>, name: impl Into<String>, message: impl Into<String>) {
    errors.push(FieldError::new(FieldLocation::Body, name, message));
}

fn check_username(errors: &mut Vec<FieldError>, username: &str) {
    let len = username.chars().count();
    if len == 0 || len > 64 {
        field(errors, "username", "must be 1 to 64 characters");
    } else if username.trim() != username || username.chars().any(char::is_control) {
        field(
            errors,
            "username",
            "must not start or end with spaces or contain control characters",
        );
    }
}

fn check_email(errors: &mut Vec<FieldError>, email: &str) {
    let len = email.chars().count();
    let shaped = email
        .split_once('@')
        .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
        && !email.chars().any(char::is_whitespace);
    if !(3..=255).contains(&len) || !shaped {
        field(
            errors,
            "email",
            "must be an email address of at most 255 characters",
        );
    }
}

fn check_display_name(errors: &mut Vec<FieldError>, name: &str) {
    let len = name.trim().chars().count();
    if len == 0 || name.chars().count() > 128 || name.chars().any(char::is_control) {
        field(
            errors,
            "display_name",
            "must be 1 to 128 characters, not blank, without control characters",
        );
    }
}

async fn check_roles(
    db: &Database,
    errors: &mut Vec<FieldError>,
    role_ids: &[String],
) -> Result<(), DbError> {
    if role_ids.len() > 100 {
        field(errors, "roles", "must list at most 100 roles");
        return Ok(());
    }
    let missing = roles::missing_roles(db, role_ids).await?;
    for (i, id) in role_ids.iter().enumerate() {
        if missing.contains(id) {
            field(
                errors,
                format!("roles[{i}]"),
                "there is no role with this id",
            );
        }
    }
    Ok(())
}

/// `Ok` if the caller may give `user_id` (none for a new user) the roles
/// `role_ids`: every permission of a role the user does not have yet must
/// be grantable by the caller. Unknown roles are skipped (they are `422`s
/// of their own).
async fn check_role_grant(
    db: &Database,
    auth: &Authenticated,
    user_id: Option<&str>,
    role_ids: &[String],
) -> ApiResult<()> {
    let current: Vec<String> = match user_id {
        Some(id) => users::roles_of(db, id)
            .await?
            .into_iter()
            .map(|(id, _)| id)
            .collect(),
        None => Vec::new(),
    };
    let mut granted = std::collections::BTreeSet::new();
    for id in role_ids.iter().filter(|id| !current.contains(id)) {
        if let Some(role) = roles::find_role(db, id).await? {
            granted.extend(role.permissions);
        }
    }
    super::roles_routes::check_grant(db, auth, granted.iter().map(String::as_str)).await
}

pub(super) async fn caller(db: &Database, auth: &Authenticated) -> ApiResult<User> {
    users::find_user(db, auth.principal.user_id())
        .await?
        .ok_or_else(|| ApiError::Unauthenticated("the caller no longer exists".into()))
}

pub(super) fn admins_only() -> ApiError {
    ApiError::Forbidden {
        permission: "admin".to_owned(),
    }
}

async fn detail(db: &Database, user: User) -> ApiResult<UserDetail> {
    let roles = users::roles_of(db, &user.id)
        .await?
        .into_iter()
        .map(|(id, name)| RoleRef { id, name })
        .collect();
    let identities = users::identities_of(db, &user.id)
        .await?
        .into_iter()
        .map(|l| IdentityBody {
            provider: l.provider_id,
            subject: l.subject,
        })
        .collect();
    let totp_enabled = totp::is_enabled(db, &user.id).await?;
    Ok(UserDetail {
        user: user.into(),
        roles,
        identities,
        totp_enabled,
    })
}

pub(super) fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("there is no user {id:?}"))
}

/// Lists users by username, optionally filtered.
#[utoipa::path(
    get,
    path = "/users",
    tag = "users",
    params(UserFilter, PageParams),
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::AdminUsers]))),
    responses(
        (status = 200, description = "One page of users", body = UserPage),
        (status = 422, description = "A parameter is invalid"),
    )
)]
pub(super) async fn list(
    auth: Authenticated,
    State(state): State<AppState>,
    page: Pagination,
    ApiQuery(filter): ApiQuery<UserFilter>,
) -> ApiResult<Json<UserPage>> {
    auth.principal.require(Gate::ADMIN_USERS)?;
    let search = filter
        .search
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    if search.is_some_and(|s| s.chars().count() > 128) {
        return Err(ApiError::field(
            FieldLocation::Query,
            "search",
            "must be at most 128 characters",
        ));
    }
    let offset = page.after_number()?.unwrap_or(0);
    if offset < 0 {
        return Err(ApiError::field(
            FieldLocation::Query,
            "cursor",
            "is not a cursor returned by this API",
        ));
    }
    let limit = i64::from(page.limit);
    let mut found = users::list_users(state.db(), search, offset, limit + 1).await?;
    let next_cursor = if found.len() > usize::try_from(limit).unwrap_or(usize::MAX) {
        found.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Some(Cursor::after(offset + limit).encode())
    } else {
        None
    };
    Ok(Json(UserPage {
        items: found.into_iter().map(UserSummary::from).collect(),
        next_cursor,
    }))
}

/// Creates a user.
#[utoipa::path(
    post,
    path = "/users",
    tag = "users",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::AdminUsers]))),
    request_body = NewUserRequest,
    responses(
        (status = 201, description = "Created", body = UserDetail),
        (status = 403, description = "creates an administrator without being one, gives roles with permissions the caller may not grant (permission-not-held, admin-only-permission), or a plugin's before-hook refused (hook-denied)"),
        (status = 422, description = "A field is invalid, the username is taken or the identity is linked"),
    )
)]
pub(super) async fn create(
    auth: Authenticated,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<NewUserRequest>,
) -> ApiResult<(StatusCode, Json<UserDetail>)> {
    auth.principal.require(Gate::ADMIN_USERS)?;
    let db = state.db();
    if body.admin && !caller(db, &auth).await?.admin {
        return Err(admins_only());
    }
    let mut errors = Vec::new();
    check_username(&mut errors, &body.username);
    if let Some(email) = &body.email {
        check_email(&mut errors, email);
    }
    if let Some(name) = &body.display_name {
        check_display_name(&mut errors, name);
    }
    check_roles(db, &mut errors, &body.roles).await?;
    if let Some(identity) = &body.identity {
        let provider_len = identity.provider.chars().count();
        if provider_len == 0 || provider_len > 128 {
            field(
                &mut errors,
                "identity.provider",
                "must be 1 to 128 characters",
            );
        } else if let Some(service) = state.identity()
            && service.providers().get(&identity.provider).is_none()
        {
            field(
                &mut errors,
                "identity.provider",
                format!("there is no auth provider {:?}", identity.provider),
            );
        }
        let subject_len = identity.subject.chars().count();
        if subject_len == 0 || subject_len > 255 {
            field(
                &mut errors,
                "identity.subject",
                "must be 1 to 255 characters",
            );
        } else if users::find_user_by_identity(db, &identity.provider, &identity.subject)
            .await?
            .is_some()
        {
            field(&mut errors, "identity", "is linked to another user already");
        }
    }
    if errors.iter().all(|e| e.field != "username")
        && users::find_user_by_name(db, &body.username)
            .await?
            .is_some()
    {
        field(&mut errors, "username", "is taken");
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    check_role_grant(db, &auth, None, &body.roles).await?;
    let mut new = NewUser {
        username: body.username.clone(),
        email: body.email.clone(),
        display_name: body.display_name.clone(),
        admin: body.admin,
    };
    let link = body.identity.as_ref().map(|i| IdentityLink {
        provider_id: i.provider.clone(),
        subject: i.subject.clone(),
    });
    let id = users::new_user_id();
    let plugins = state.plugins();
    let asked = hooks::event(
        EventKind::UserCreate,
        Payload::User(new.hook_info(&id)),
        &auth.actor,
    );
    new.email = hooked_email(hooks::run_before(plugins, asked).await?, new.email)?;
    let user =
        users::create_user_with_roles(db, &id, &new, link.as_ref(), &body.roles, &auth.actor)
            .await
            .map_err(|e| match e {
                DbError::Conflict { .. } => {
                    ApiError::Conflict("the username or identity was taken meanwhile".into())
                }
                DbError::ForeignKey { .. } => {
                    ApiError::Conflict("a role was deleted meanwhile".into())
                }
                other => other.into(),
            })?;
    let done = hooks::event(
        EventKind::UserCreate,
        Payload::User(user.hook_info()),
        &auth.actor,
    );
    hooks::spawn_after(plugins, done);
    Ok((StatusCode::CREATED, Json(detail(db, user).await?)))
}

/// The email a `user.create` or `user.update` before-hook let through
/// (`allowed`; hooks may change only the email), checked again when a
/// plugin changed it from `asked`.
fn hooked_email(allowed: api::Event, asked: Option<String>) -> ApiResult<Option<String>> {
    let Payload::User(info) = allowed.payload else {
        return Ok(asked);
    };
    if info.email != asked
        && let Some(email) = &info.email
    {
        let mut errors = Vec::new();
        check_email(&mut errors, email);
        if !errors.is_empty() {
            return Err(ApiError::Validation(errors));
        }
    }
    Ok(info.email)
}

/// One user, with roles, identities and whether TOTP is on.
#[utoipa::path(
    get,
    path = "/users/{id}",
    tag = "users",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::AdminUsers]))),
    params(("id" = String, Path, description = "The user's id")),
    responses(
        (status = 200, description = "The user", body = UserDetail),
        (status = 404, description = "No such user"),
    )
)]
pub(super) async fn get(
    auth: Authenticated,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<UserDetail>> {
    auth.principal.require(Gate::ADMIN_USERS)?;
    let user = users::find_user(state.db(), &id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    Ok(Json(detail(state.db(), user).await?))
}

/// Changes a user. Disabling revokes their sessions and API keys.
#[utoipa::path(
    patch,
    path = "/users/{id}",
    tag = "users",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::AdminUsers]))),
    params(("id" = String, Path, description = "The user's id")),
    request_body = UserPatch,
    responses(
        (status = 200, description = "The changed user", body = UserDetail),
        (status = 403, description = "touches administrator rights without being an administrator, changes the caller's own roles (own-roles), gives roles with permissions the caller may not grant (permission-not-held, admin-only-permission), or a plugin's before-hook refused (hook-denied)"),
        (status = 404, description = "No such user"),
        (status = 422, description = "A field is invalid"),
    )
)]
pub(super) async fn update(
    auth: Authenticated,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UserPatch>,
) -> ApiResult<Json<UserDetail>> {
    auth.principal.require(Gate::ADMIN_USERS)?;
    let db = state.db();
    let target = users::find_user(db, &id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    if (target.admin || body.admin.is_some()) && !caller(db, &auth).await?.admin {
        return Err(admins_only());
    }
    let mut errors = Vec::new();
    if let Some(Some(email)) = &body.email {
        check_email(&mut errors, email);
    }
    if let Some(Some(name)) = &body.display_name {
        check_display_name(&mut errors, name);
    }
    if let Some(role_ids) = &body.roles {
        check_roles(db, &mut errors, role_ids).await?;
    }
    let myself = target.id == auth.principal.user_id();
    if myself && let Some(role_ids) = &body.roles {
        let current: std::collections::BTreeSet<String> = users::roles_of(db, &target.id)
            .await?
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        if role_ids
            .iter()
            .cloned()
            .collect::<std::collections::BTreeSet<_>>()
            != current
        {
            return Err(ApiError::OwnRoles);
        }
    }
    if myself && body.disabled == Some(true) {
        field(
            &mut errors,
            "disabled",
            "you cannot disable your own account",
        );
    }
    if myself && target.admin && body.admin == Some(false) {
        field(
            &mut errors,
            "admin",
            "you cannot remove your own administrator rights",
        );
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    if let Some(role_ids) = &body.roles {
        check_role_grant(db, &auth, Some(&target.id), role_ids).await?;
    }
    let mut changes = UserChanges {
        email: body.email,
        display_name: body.display_name,
        admin: body.admin,
        disabled: body.disabled,
        roles: body.roles,
    };
    // The before-hooks see the user as the change would leave it.
    let mut planned = target.hook_info();
    if let Some(email) = &changes.email {
        planned.email.clone_from(email);
    }
    if let Some(admin) = changes.admin {
        planned.admin = admin;
    }
    let asked_email = planned.email.clone();
    let plugins = state.plugins();
    let asked = hooks::event(EventKind::UserUpdate, Payload::User(planned), &auth.actor);
    let email = hooked_email(
        hooks::run_before(plugins, asked).await?,
        asked_email.clone(),
    )?;
    if email != asked_email {
        changes.email = Some(email);
    }
    let (user, _revoked) = users::update_user(db, &id, &changes, &auth.actor)
        .await
        .map_err(|e| match e {
            DbError::ForeignKey { .. } => {
                ApiError::Conflict("the user or a role was deleted meanwhile".into())
            }
            other => other.into(),
        })?
        .ok_or_else(|| not_found(&id))?;
    let done = hooks::event(
        EventKind::UserUpdate,
        Payload::User(user.hook_info()),
        &auth.actor,
    );
    hooks::spawn_after(plugins, done);
    Ok(Json(detail(db, user).await?))
}

/// Deletes a user with their sessions, API keys and second factor.
#[utoipa::path(
    delete,
    path = "/users/{id}",
    tag = "users",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::AdminUsers]))),
    params(("id" = String, Path, description = "The user's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "deletes an administrator without being one, or a plugin's before-hook refused (hook-denied)"),
        (status = 404, description = "No such user"),
        (status = 409, description = "It is the caller, or something still refers to the user"),
        (status = 503, description = "The user's sign-in provider could not revoke their password (provider-unavailable): nothing was deleted"),
    )
)]
pub(super) async fn delete(
    auth: Authenticated,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    auth.principal.require(Gate::ADMIN_USERS)?;
    let db = state.db();
    let target = users::find_user(db, &id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    if target.id == auth.principal.user_id() {
        return Err(ApiError::Conflict(
            "you cannot delete your own account".into(),
        ));
    }
    if target.admin && !caller(db, &auth).await?.admin {
        return Err(admins_only());
    }
    let plugins = state.plugins();
    let info = || Payload::User(target.hook_info());
    hooks::run_before(
        plugins,
        hooks::event(EventKind::UserDelete, info(), &auth.actor),
    )
    .await?;
    // The password goes first: a user deleted must not sign in again (an
    // auto-registered account, a new one of the same name).
    if let Some(identity) = state.identity() {
        crate::identity::passwords::revoke_password(identity, &target.id, &target.username)
            .await
            .map_err(|error| {
                tracing::warn!(user = %target.id, %error, "a deleted user's password could not be revoked");
                ApiError::refused(
                    Code::ProviderUnavailable,
                    format!("the sign-in provider could not revoke the user's password, so the user was not deleted: {error}; try again, or disable the user meanwhile"),
                )
            })?;
    }
    match users::delete_user(db, &id, &auth.actor).await {
        Ok(true) => {
            let done = hooks::event(EventKind::UserDelete, info(), &auth.actor);
            hooks::spawn_after(plugins, done);
            Ok(StatusCode::NO_CONTENT)
        }
        Ok(false) => Err(not_found(&id)),
        Err(DbError::ForeignKey { .. }) => Err(ApiError::Conflict(
            "something (such as a server) still belongs to this user; disable the user instead"
                .into(),
        )),
        Err(e) => Err(e.into()),
    }
}

/// Removes a user's TOTP (enabled or pending) so they can log in with the
/// first factor alone and enroll again.
#[utoipa::path(
    delete,
    path = "/users/{id}/totp",
    tag = "users",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::AdminUsers]))),
    params(("id" = String, Path, description = "The user's id")),
    responses(
        (status = 204, description = "Reset"),
        (status = 403, description = "resets an administrator without being one"),
        (status = 404, description = "No such user, or it has no TOTP"),
    )
)]
pub(super) async fn reset_totp(
    auth: Authenticated,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    auth.principal.require(Gate::ADMIN_USERS)?;
    let db = state.db();
    let target = users::find_user(db, &id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    if target.admin && !caller(db, &auth).await?.admin {
        return Err(admins_only());
    }
    if totp::reset(db, &id, &auth.actor).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("user {id:?} has no TOTP")))
    }
}
