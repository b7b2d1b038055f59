//! `/api/v1/roles` and `/api/v1/permissions`: roles and the permission
//! catalog they draw from. Every route needs the `admin.users` permission.
//!
//! | Method | Path | What |
//! | --- | --- | --- |
//! | `GET` | `/permissions` | every known permission: built-in ones with descriptions, then plugin-declared ones |
//! | `GET` | `/roles` | every role, by name |
//! | `POST` | `/roles` | create |
//! | `GET` | `/roles/{id}` | one role |
//! | `PATCH` | `/roles/{id}` | change name, description, or the whole permission set |
//! | `DELETE` | `/roles/{id}` | delete (taking it from its users) |
//!
//! Permissions are checked against the registry (core and plugin-declared,
//! [`crate::identity::permissions`]): an unknown one is a `422` naming its
//! index (`permissions[2]`), as is a taken name (`name`).
//!
//! Holding `admin.users` does not make its holder an administrator: a role
//! may only be given permissions its editor holds (`403
//! permission-not-held`), and admin-only ones only by an administrator
//! (`403 admin-only-permission`; see
//! [`permissions::check_grant`]). Editing a role checks only the
//! permissions it adds, so a role an administrator made stays editable in
//! name and description and can lose permissions; role assignments follow
//! the same rule in [`super::users_routes`].

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Authenticated;
use super::error::{ApiError, ApiResult, FieldError, FieldLocation};
use super::extract::ApiJson;
use crate::db::{Database, DbError};
use crate::identity::permissions::{self, Gate, Permission, Scope};
use crate::identity::roles::{self, Role, RoleChanges};
use crate::identity::users;

/// Most permissions one role may hold.
pub const MAX_ROLE_PERMISSIONS: usize = 500;
/// Longest role description, in characters.
pub const MAX_DESCRIPTION_LEN: usize = 1000;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_permissions))
        .routes(routes!(list, create))
        .routes(routes!(get, update, delete))
}

/// A permission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PermissionBody {
    /// `resource.action`: a built-in permission (`source` = `core`, see the
    /// `Permission` schema) or one a plugin declared.
    pub name: String,
    /// What it allows.
    pub description: Option<String>,
    /// `core` or `plugin`.
    pub source: String,
    /// Where it applies. Plugin permissions are `panel`, or `admin` for
    /// an `admin.*` name.
    pub scope: Scope,
    /// The plugin that declared it (`source` = `plugin`), or for a core
    /// permission no route checks, the bundled plugin that checks it
    /// (`schedule.*`: `scheduler`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<String>,
}

/// Every known permission.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PermissionList {
    /// Built-in ones first, then plugin-declared ones, each sorted.
    pub items: Vec<PermissionBody>,
}

/// A role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RoleBody {
    /// Its id.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// The permissions it grants, sorted.
    pub permissions: Vec<String>,
    /// When it was created (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl From<Role> for RoleBody {
    fn from(role: Role) -> Self {
        RoleBody {
            id: role.id,
            name: role.name,
            description: role.description,
            permissions: role.permissions,
            created_at: role.created_at,
        }
    }
}

/// Every role.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RoleList {
    /// By name.
    pub items: Vec<RoleBody>,
}

/// A role to create.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRoleRequest {
    /// Unique name, 1 to 64 characters.
    pub name: String,
    /// What it is for, at most 1000 characters.
    #[serde(default)]
    pub description: String,
    /// Known permissions (`resource.action`).
    pub permissions: Vec<String>,
}

/// Changes to a role; absent fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RolePatch {
    /// A new name.
    #[serde(default)]
    pub name: Option<String>,
    /// A new description.
    #[serde(default)]
    pub description: Option<String>,
    /// The complete new permission set.
    #[serde(default)]
    pub permissions: Option<Vec<String>>,
}

fn field(errors: &mut Vec<FieldError>, name: impl Into<String>, message: impl Into<String>) {
    errors.push(FieldError::new(FieldLocation::Body, name, message));
}

/// Checks a role's fields; `id` is the role being changed, if any, so its
/// own name does not count as taken.
async fn validate(
    db: &Database,
    id: Option<&str>,
    name: Option<&str>,
    description: Option<&str>,
    role_permissions: Option<&[String]>,
) -> ApiResult<()> {
    let mut errors = Vec::new();
    if let Some(name) = name {
        let len = name.chars().count();
        if len == 0 || len > 64 || name.trim() != name || name.chars().any(char::is_control) {
            field(
                &mut errors,
                "name",
                "must be 1 to 64 characters, without surrounding spaces or control characters",
            );
        } else if let Some(existing) = roles::role_id_by_name(db, name).await?
            && Some(existing.as_str()) != id
        {
            field(&mut errors, "name", "is taken");
        }
    }
    if let Some(description) = description
        && description.chars().count() > MAX_DESCRIPTION_LEN
    {
        field(
            &mut errors,
            "description",
            format!("must be at most {MAX_DESCRIPTION_LEN} characters"),
        );
    }
    if let Some(list) = role_permissions {
        if list.len() > MAX_ROLE_PERMISSIONS {
            field(
                &mut errors,
                "permissions",
                format!("must list at most {MAX_ROLE_PERMISSIONS} permissions"),
            );
        }
        for (i, permission) in list.iter().enumerate() {
            if !permissions::is_known(permission) {
                field(
                    &mut errors,
                    format!("permissions[{i}]"),
                    format!("{permission:?} is not a known permission"),
                );
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(errors))
    }
}

/// `Ok` if the caller may grant every permission in `granted`: they hold
/// it, and it is not admin-only unless they are an administrator (see
/// [`permissions::check_grant`]).
///
/// # Errors
///
/// `403 admin-only-permission` or `403 permission-not-held`, and database
/// errors.
pub(super) async fn check_grant<'a, I>(
    db: &Database,
    auth: &Authenticated,
    granted: I,
) -> ApiResult<()>
where
    I: IntoIterator<Item = &'a str>,
{
    let admin = users::find_user(db, auth.principal.user_id())
        .await?
        .is_some_and(|caller| caller.admin);
    permissions::check_grant(granted, auth.principal.permissions(), admin)?;
    Ok(())
}

fn conflict_on_name(error: DbError) -> ApiError {
    match error {
        DbError::Conflict { .. } => ApiError::field(FieldLocation::Body, "name", "is taken"),
        other => other.into(),
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("there is no role {id:?}"))
}

/// Lists every known permission.
#[utoipa::path(
    get,
    path = "/permissions",
    tag = "roles",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::AdminUsers]))),
    responses(
        (status = 200, description = "The permissions", body = PermissionList),
    )
)]
pub(super) async fn list_permissions(auth: Authenticated) -> ApiResult<Json<PermissionList>> {
    auth.principal.require(Gate::ADMIN_USERS)?;
    let mut builtin: Vec<PermissionBody> = Permission::ALL
        .iter()
        .map(|p| PermissionBody {
            name: p.as_str().to_owned(),
            description: Some(p.description().to_owned()),
            source: "core".to_owned(),
            scope: p.scope(),
            plugin: p.checked_by().map(str::to_owned),
        })
        .collect();
    builtin.sort_by(|a, b| a.name.cmp(&b.name));
    let plugin = permissions::plugin_declared()
        .into_iter()
        .map(|(name, declared)| PermissionBody {
            scope: if permissions::is_admin_only(&name) {
                Scope::Admin
            } else {
                Scope::Panel
            },
            name,
            description: Some(declared.description),
            source: "plugin".to_owned(),
            plugin: Some(declared.plugin),
        });
    builtin.extend(plugin);
    Ok(Json(PermissionList { items: builtin }))
}

/// Lists every role.
#[utoipa::path(
    get,
    path = "/roles",
    tag = "roles",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::AdminUsers]))),
    responses(
        (status = 200, description = "The roles", body = RoleList),
    )
)]
pub(super) async fn list(
    auth: Authenticated,
    State(state): State<AppState>,
) -> ApiResult<Json<RoleList>> {
    auth.principal.require(Gate::ADMIN_USERS)?;
    let items = roles::list_roles(state.db())
        .await?
        .into_iter()
        .map(RoleBody::from)
        .collect();
    Ok(Json(RoleList { items }))
}

/// Creates a role.
#[utoipa::path(
    post,
    path = "/roles",
    tag = "roles",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::AdminUsers]))),
    request_body = NewRoleRequest,
    responses(
        (status = 201, description = "Created", body = RoleBody),
        (status = 403, description = "grants a permission the caller does not hold (permission-not-held) or an admin-only one without being an administrator (admin-only-permission)"),
        (status = 422, description = "A field is invalid: an unknown permission, a taken name…"),
    )
)]
pub(super) async fn create(
    auth: Authenticated,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<NewRoleRequest>,
) -> ApiResult<(StatusCode, Json<RoleBody>)> {
    auth.principal.require(Gate::ADMIN_USERS)?;
    let db = state.db();
    validate(
        db,
        None,
        Some(&body.name),
        Some(&body.description),
        Some(&body.permissions),
    )
    .await?;
    check_grant(db, &auth, body.permissions.iter().map(String::as_str)).await?;
    let role = roles::create_role(
        db,
        &body.name,
        &body.description,
        &body.permissions,
        &auth.actor,
    )
    .await
    .map_err(conflict_on_name)?;
    Ok((StatusCode::CREATED, Json(role.into())))
}

/// One role.
#[utoipa::path(
    get,
    path = "/roles/{id}",
    tag = "roles",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::AdminUsers]))),
    params(("id" = String, Path, description = "The role's id")),
    responses(
        (status = 200, description = "The role", body = RoleBody),
        (status = 404, description = "No such role"),
    )
)]
pub(super) async fn get(
    auth: Authenticated,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<RoleBody>> {
    auth.principal.require(Gate::ADMIN_USERS)?;
    let role = roles::find_role(state.db(), &id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    Ok(Json(role.into()))
}

/// Changes a role; `permissions` replaces the whole set.
#[utoipa::path(
    patch,
    path = "/roles/{id}",
    tag = "roles",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::AdminUsers]))),
    params(("id" = String, Path, description = "The role's id")),
    request_body = RolePatch,
    responses(
        (status = 200, description = "The changed role", body = RoleBody),
        (status = 403, description = "adds a permission the caller does not hold (permission-not-held) or an admin-only one without being an administrator (admin-only-permission)"),
        (status = 404, description = "No such role"),
        (status = 422, description = "A field is invalid"),
    )
)]
pub(super) async fn update(
    auth: Authenticated,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RolePatch>,
) -> ApiResult<Json<RoleBody>> {
    auth.principal.require(Gate::ADMIN_USERS)?;
    let db = state.db();
    let current = roles::find_role(db, &id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    validate(
        db,
        Some(&id),
        body.name.as_deref(),
        body.description.as_deref(),
        body.permissions.as_deref(),
    )
    .await?;
    if let Some(new) = &body.permissions {
        let added = new
            .iter()
            .filter(|p| !current.permissions.contains(p))
            .map(String::as_str);
        check_grant(db, &auth, added).await?;
    }
    let changes = RoleChanges {
        name: body.name,
        description: body.description,
        permissions: body.permissions,
    };
    let role = roles::update_role(db, &id, &changes, &auth.actor)
        .await
        .map_err(conflict_on_name)?
        .ok_or_else(|| not_found(&id))?;
    Ok(Json(role.into()))
}

/// Deletes a role, taking it from every user who had it.
#[utoipa::path(
    delete,
    path = "/roles/{id}",
    tag = "roles",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::AdminUsers]))),
    params(("id" = String, Path, description = "The role's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such role"),
    )
)]
pub(super) async fn delete(
    auth: Authenticated,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    auth.principal.require(Gate::ADMIN_USERS)?;
    if roles::delete_role(state.db(), &id, &auth.actor).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found(&id))
    }
}
