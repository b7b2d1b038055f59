//! Users, their links to provider identities, and roles.
//!
//! Every change appends its event (`user.created`, `identity.linked`,
//! `role.created`, `role.assigned`) in the same transaction, as
//! [`crate::db::settings`] does.

use std::collections::BTreeSet;

use serde_json::json;
use time::OffsetDateTime;

use crate::db::events::AppendEvent;
use crate::db::{
    Actor, Database, DbError, NewEvent, from_micros, now, on_pool, query_builder, to_micros,
};

use super::permissions;

/// A Panel user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Its id (`usr_` + 32 hex digits).
    pub id: String,
    /// Unique login name.
    pub username: String,
    /// Email address, if known.
    pub email: Option<String>,
    /// Name to show, if known.
    pub display_name: Option<String>,
    /// Holds every permission.
    pub admin: bool,
    /// Refused at login and on every request.
    pub disabled: bool,
    /// When it was created.
    pub created_at: OffsetDateTime,
}

/// A user to create.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewUser {
    /// Unique login name, 1 to 64 characters.
    pub username: String,
    /// Email address.
    pub email: Option<String>,
    /// Name to show.
    pub display_name: Option<String>,
    /// Whether the user is an administrator.
    pub admin: bool,
}

/// A provider identity to link to the new user, in the same transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityLink {
    /// The auth-provider plugin's id.
    pub provider_id: String,
    /// The provider's stable subject identifier.
    pub subject: String,
}

#[derive(sqlx::FromRow)]
struct UserRow {
    id: String,
    username: String,
    email: Option<String>,
    display_name: Option<String>,
    admin: bool,
    disabled: bool,
    created_at: i64,
}

impl TryFrom<UserRow> for User {
    type Error = DbError;

    fn try_from(row: UserRow) -> Result<User, DbError> {
        Ok(User {
            id: row.id,
            username: row.username,
            email: row.email,
            display_name: row.display_name,
            admin: row.admin,
            disabled: row.disabled,
            created_at: from_micros(row.created_at)?,
        })
    }
}

const USER_COLUMNS: &str = "SELECT u.id, u.username, u.email, u.display_name, u.admin, u.disabled, u.created_at FROM users u";

/// A new random id with `prefix`, e.g. `usr_3f…`.
pub(crate) fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

/// Creates a user, optionally linked to a provider identity, appending
/// `user.created` (and `identity.linked`) by `actor`.
///
/// # Errors
///
/// [`DbError::Conflict`] if the username or identity is taken,
/// [`DbError::Invalid`] for a username that is empty or too long, and other
/// database errors.
pub async fn create_user(
    db: &Database,
    user: &NewUser,
    link: Option<&IdentityLink>,
    actor: &Actor,
) -> Result<User, DbError> {
    let username = user.username.trim();
    if username.is_empty() || username.chars().count() > 64 {
        return Err(DbError::Invalid {
            field: "username",
            reason: "must be 1 to 64 characters".into(),
        });
    }
    let at = now();
    let id = new_id("usr");
    let created = NewEvent::new("user.created")
        .actor(actor.clone())
        .subject("user", &id)
        .data(json!({ "username": username, "admin": user.admin }))
        .occurred_at(at);
    let linked = link.map(|l| {
        NewEvent::new("identity.linked")
            .actor(actor.clone())
            .subject("user", &id)
            .data(json!({ "provider": l.provider_id, "subject": l.subject }))
            .occurred_at(at)
    });
    on_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        let mut qb = query_builder(
            pool,
            "INSERT INTO users (id, username, email, display_name, admin, disabled, created_at) VALUES (",
        );
        qb.separated(", ")
            .push_bind(&id)
            .push_bind(username)
            .push_bind(user.email.as_deref())
            .push_bind(user.display_name.as_deref())
            .push_bind(user.admin)
            .push_bind(false)
            .push_bind(to_micros(at));
        qb.push(")");
        qb.build().execute(&mut *tx).await?;
        tx.append_event(&created).await?;
        if let (Some(l), Some(event)) = (link, &linked) {
            let mut qb = query_builder(
                pool,
                "INSERT INTO identities (provider_id, subject, user_id, created_at) VALUES (",
            );
            qb.separated(", ")
                .push_bind(&l.provider_id)
                .push_bind(&l.subject)
                .push_bind(&id)
                .push_bind(to_micros(at));
            qb.push(")");
            qb.build().execute(&mut *tx).await?;
            tx.append_event(event).await?;
        }
        tx.commit().await?;
    });
    Ok(User {
        id,
        username: username.to_owned(),
        email: user.email.clone(),
        display_name: user.display_name.clone(),
        admin: user.admin,
        disabled: false,
        created_at: at,
    })
}

/// Links a provider identity to an existing user, appending
/// `identity.linked`.
///
/// # Errors
///
/// [`DbError::Conflict`] if the identity is linked already,
/// [`DbError::ForeignKey`] if the user does not exist.
pub async fn link_identity(
    db: &Database,
    user_id: &str,
    link: &IdentityLink,
    actor: &Actor,
) -> Result<(), DbError> {
    let at = now();
    let event = NewEvent::new("identity.linked")
        .actor(actor.clone())
        .subject("user", user_id)
        .data(json!({ "provider": link.provider_id, "subject": link.subject }))
        .occurred_at(at);
    on_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        let mut qb = query_builder(
            pool,
            "INSERT INTO identities (provider_id, subject, user_id, created_at) VALUES (",
        );
        qb.separated(", ")
            .push_bind(&link.provider_id)
            .push_bind(&link.subject)
            .push_bind(user_id)
            .push_bind(to_micros(at));
        qb.push(")");
        qb.build().execute(&mut *tx).await?;
        tx.append_event(&event).await?;
        tx.commit().await?;
    });
    Ok(())
}

/// The user with `id`.
///
/// # Errors
///
/// Database errors.
pub async fn find_user(db: &Database, id: &str) -> Result<Option<User>, DbError> {
    let row: Option<UserRow> = on_pool!(db, |pool| {
        let mut qb = query_builder(pool, USER_COLUMNS);
        qb.push(" WHERE u.id = ").push_bind(id);
        qb.build_query_as::<UserRow>().fetch_optional(pool).await?
    });
    row.map(User::try_from).transpose()
}

/// The user called `username`.
///
/// # Errors
///
/// Database errors.
pub async fn find_user_by_name(db: &Database, username: &str) -> Result<Option<User>, DbError> {
    let row: Option<UserRow> = on_pool!(db, |pool| {
        let mut qb = query_builder(pool, USER_COLUMNS);
        qb.push(" WHERE u.username = ").push_bind(username);
        qb.build_query_as::<UserRow>().fetch_optional(pool).await?
    });
    row.map(User::try_from).transpose()
}

/// The user linked to `subject` at `provider_id`.
///
/// # Errors
///
/// Database errors.
pub async fn find_user_by_identity(
    db: &Database,
    provider_id: &str,
    subject: &str,
) -> Result<Option<User>, DbError> {
    let row: Option<UserRow> = on_pool!(db, |pool| {
        let mut qb = query_builder(pool, USER_COLUMNS);
        qb.push(" JOIN identities i ON i.user_id = u.id WHERE i.provider_id = ")
            .push_bind(provider_id)
            .push(" AND i.subject = ")
            .push_bind(subject);
        qb.build_query_as::<UserRow>().fetch_optional(pool).await?
    });
    row.map(User::try_from).transpose()
}

/// The permissions `user` holds: every known one for administrators, else
/// the union of its roles' permissions.
///
/// # Errors
///
/// Database errors.
pub async fn permissions_of(db: &Database, user: &User) -> Result<BTreeSet<String>, DbError> {
    if user.admin {
        return Ok(permissions::all());
    }
    let rows: Vec<String> = on_pool!(db, |pool| {
        let mut qb = query_builder(
            pool,
            "SELECT DISTINCT rp.permission FROM role_permissions rp \
             JOIN user_roles ur ON ur.role_id = rp.role_id WHERE ur.user_id = ",
        );
        qb.push_bind(&user.id);
        qb.build_query_scalar::<String>().fetch_all(pool).await?
    });
    Ok(rows.into_iter().collect())
}

/// Creates a role holding `permissions`, appending `role.created`; returns
/// its id.
///
/// # Errors
///
/// [`DbError::Invalid`] for an unknown permission, [`DbError::Conflict`] if
/// the name is taken, and other database errors.
pub async fn create_role(
    db: &Database,
    name: &str,
    description: &str,
    role_permissions: &[String],
    actor: &Actor,
) -> Result<String, DbError> {
    if let Some(unknown) = role_permissions.iter().find(|p| !permissions::is_known(p)) {
        return Err(DbError::Invalid {
            field: "permissions",
            reason: format!("unknown permission {unknown:?}"),
        });
    }
    let at = now();
    let id = new_id("rol");
    let event = NewEvent::new("role.created")
        .actor(actor.clone())
        .subject("role", &id)
        .data(json!({ "name": name, "permissions": role_permissions }))
        .occurred_at(at);
    let unique: BTreeSet<&String> = role_permissions.iter().collect();
    on_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        let mut qb = query_builder(
            pool,
            "INSERT INTO roles (id, name, description, created_at) VALUES (",
        );
        qb.separated(", ")
            .push_bind(&id)
            .push_bind(name)
            .push_bind(description)
            .push_bind(to_micros(at));
        qb.push(")");
        qb.build().execute(&mut *tx).await?;
        for permission in &unique {
            let mut qb = query_builder(
                pool,
                "INSERT INTO role_permissions (role_id, permission) VALUES (",
            );
            qb.separated(", ").push_bind(&id).push_bind(*permission);
            qb.push(")");
            qb.build().execute(&mut *tx).await?;
        }
        tx.append_event(&event).await?;
        tx.commit().await?;
    });
    Ok(id)
}

/// Gives `user_id` the role `role_id`, appending `role.assigned`.
///
/// # Errors
///
/// [`DbError::Conflict`] if it has it already, [`DbError::ForeignKey`] if
/// either does not exist.
pub async fn assign_role(
    db: &Database,
    user_id: &str,
    role_id: &str,
    actor: &Actor,
) -> Result<(), DbError> {
    let event = NewEvent::new("role.assigned")
        .actor(actor.clone())
        .subject("user", user_id)
        .data(json!({ "role": role_id }));
    on_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        let mut qb = query_builder(pool, "INSERT INTO user_roles (user_id, role_id) VALUES (");
        qb.separated(", ").push_bind(user_id).push_bind(role_id);
        qb.push(")");
        qb.build().execute(&mut *tx).await?;
        tx.append_event(&event).await?;
        tx.commit().await?;
    });
    Ok(())
}
