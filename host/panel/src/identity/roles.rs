//! Roles: named sets of permissions given to users.
//!
//! Permissions are checked against the registry ([`super::permissions`]:
//! built-in ones and those plugins declared) by the caller before they get
//! here; the HTTP layer turns unknown ones into per-field errors. Stored
//! names of removed permissions are dropped as they are read
//! ([`permissions::drop_retired`]). Every
//! change appends its event (`role.created`, `role.updated`,
//! `role.deleted`) in the same transaction. Deleting a role takes it from
//! every user who had it.

use std::collections::{BTreeMap, BTreeSet};

use time::OffsetDateTime;

use crate::db::domain::{RoleDeleted, RoleEvent, RoleId, RoleUpdated};
use crate::db::{Actor, Database, DbError, NewEvent, from_micros, now, on_pool, query_builder};

use super::{permissions, users};

/// A role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    /// Its id (`rol_` + 32 hex digits).
    pub id: String,
    /// Unique name.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// The permissions it grants, sorted.
    pub permissions: Vec<String>,
    /// When it was created.
    pub created_at: OffsetDateTime,
}

/// Changes to a role; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleChanges {
    /// A new name.
    pub name: Option<String>,
    /// A new description.
    pub description: Option<String>,
    /// The new permission set, replacing the old one.
    pub permissions: Option<Vec<String>>,
}

#[derive(sqlx::FromRow)]
struct RoleRow {
    id: String,
    name: String,
    description: String,
    created_at: i64,
}

async fn permissions_by_role(
    db: &Database,
    role_id: Option<&str>,
) -> Result<BTreeMap<String, Vec<String>>, DbError> {
    let rows: Vec<(String, String)> = on_pool!(db, |pool| {
        let mut qb = query_builder(pool, "SELECT role_id, permission FROM role_permissions");
        if let Some(id) = role_id {
            qb.push(" WHERE role_id = ").push_bind(id);
        }
        qb.push(" ORDER BY permission");
        qb.build_query_as::<(String, String)>()
            .fetch_all(pool)
            .await?
    });
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (role, permission) in rows {
        map.entry(role).or_default().push(permission);
    }
    Ok(map
        .into_iter()
        .map(|(role, held)| (role, permissions::drop_retired(held, "role_permissions")))
        .collect())
}

fn assemble(
    rows: Vec<RoleRow>,
    mut permissions: BTreeMap<String, Vec<String>>,
) -> Result<Vec<Role>, DbError> {
    rows.into_iter()
        .map(|row| {
            Ok(Role {
                permissions: permissions.remove(&row.id).unwrap_or_default(),
                id: row.id,
                name: row.name,
                description: row.description,
                created_at: from_micros(row.created_at)?,
            })
        })
        .collect()
}

/// Every role, by name.
///
/// # Errors
///
/// Database errors.
pub async fn list_roles(db: &Database) -> Result<Vec<Role>, DbError> {
    let rows: Vec<RoleRow> = on_pool!(db, |pool| {
        let mut qb = query_builder(
            pool,
            "SELECT id, name, description, created_at FROM roles ORDER BY name",
        );
        qb.build_query_as::<RoleRow>().fetch_all(pool).await?
    });
    assemble(rows, permissions_by_role(db, None).await?)
}

/// The role `id`.
///
/// # Errors
///
/// Database errors.
pub async fn find_role(db: &Database, id: &str) -> Result<Option<Role>, DbError> {
    let row: Option<RoleRow> = on_pool!(db, |pool| {
        let mut qb = query_builder(
            pool,
            "SELECT id, name, description, created_at FROM roles WHERE id = ",
        );
        qb.push_bind(id);
        qb.build_query_as::<RoleRow>().fetch_optional(pool).await?
    });
    let Some(row) = row else { return Ok(None) };
    Ok(assemble(vec![row], permissions_by_role(db, Some(id)).await?)?.pop())
}

/// The id of the role called `name`.
///
/// # Errors
///
/// Database errors.
pub async fn role_id_by_name(db: &Database, name: &str) -> Result<Option<String>, DbError> {
    Ok(on_pool!(db, |pool| {
        let mut qb = query_builder(pool, "SELECT id FROM roles WHERE name = ");
        qb.push_bind(name);
        qb.build_query_scalar::<String>()
            .fetch_optional(pool)
            .await?
    }))
}

/// Which of `ids` name no role.
///
/// # Errors
///
/// Database errors.
pub async fn missing_roles(db: &Database, ids: &[String]) -> Result<Vec<String>, DbError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let found: Vec<String> = on_pool!(db, |pool| {
        let mut qb = query_builder(pool, "SELECT id FROM roles WHERE id IN (");
        let mut list = qb.separated(", ");
        for id in ids {
            list.push_bind(id);
        }
        qb.push(")");
        qb.build_query_scalar::<String>().fetch_all(pool).await?
    });
    let found: BTreeSet<String> = found.into_iter().collect();
    Ok(ids
        .iter()
        .filter(|id| !found.contains(*id))
        .cloned()
        .collect())
}

/// Creates a role; see [`users::create_role`].
///
/// # Errors
///
/// As for [`users::create_role`].
pub async fn create_role(
    db: &Database,
    name: &str,
    description: &str,
    permissions: &[String],
    actor: &Actor,
) -> Result<Role, DbError> {
    let id = users::create_role(db, name, description, permissions, actor).await?;
    find_role(db, &id).await?.ok_or(DbError::NotFound)
}

/// Changes the role `id`, appending `role.updated` with what changed;
/// `None` if there is no such role.
///
/// # Errors
///
/// [`DbError::Conflict`] if the new name is taken, and other database
/// errors.
pub async fn update_role(
    db: &Database,
    id: &str,
    changes: &RoleChanges,
    actor: &Actor,
) -> Result<Option<Role>, DbError> {
    let Some(current) = find_role(db, id).await? else {
        return Ok(None);
    };
    let name = changes.name.as_deref().unwrap_or(&current.name);
    let description = changes
        .description
        .as_deref()
        .unwrap_or(&current.description);
    let permissions: Option<BTreeSet<&String>> =
        changes.permissions.as_ref().map(|p| p.iter().collect());
    let event = NewEvent::new(RoleEvent::Updated {
        subject: RoleId::new(id),
        data: RoleUpdated {
            name: changes.name.clone(),
            description: changes.description.clone(),
            permissions: permissions
                .as_ref()
                .map(|p| p.iter().map(|p| (*p).clone()).collect()),
        },
    })
    .actor(actor.clone())
    .occurred_at(now());
    let updated = on_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        let mut qb = query_builder(pool, "UPDATE roles SET name = ");
        qb.push_bind(name)
            .push(", description = ")
            .push_bind(description)
            .push(" WHERE id = ")
            .push_bind(id);
        qb.build().execute(&mut *tx).await?;
        // Counted by existence, not by change: MySQL reports unchanged
        // rows as unaffected.
        let mut qb = query_builder(pool, "SELECT COUNT(*) FROM roles WHERE id = ");
        qb.push_bind(id);
        let exists = qb.build_query_scalar::<i64>().fetch_one(&mut *tx).await? > 0;
        if exists {
            if let Some(permissions) = &permissions {
                let mut qb = query_builder(pool, "DELETE FROM role_permissions WHERE role_id = ");
                qb.push_bind(id);
                qb.build().execute(&mut *tx).await?;
                for permission in permissions {
                    let mut qb = query_builder(
                        pool,
                        "INSERT INTO role_permissions (role_id, permission) VALUES (",
                    );
                    qb.separated(", ").push_bind(id).push_bind(*permission);
                    qb.push(")");
                    qb.build().execute(&mut *tx).await?;
                }
            }
            tx.record(&event).await?;
            tx.commit().await?;
        }
        exists
    });
    if !updated {
        return Ok(None);
    }
    find_role(db, id).await
}

/// Deletes the role `id` (and takes it from its users), appending
/// `role.deleted`; returns whether it existed.
///
/// # Errors
///
/// Database errors.
pub async fn delete_role(db: &Database, id: &str, actor: &Actor) -> Result<bool, DbError> {
    let Some(role) = find_role(db, id).await? else {
        return Ok(false);
    };
    let event = NewEvent::new(RoleEvent::Deleted {
        subject: RoleId::new(id),
        data: RoleDeleted { name: role.name },
    })
    .actor(actor.clone())
    .occurred_at(now());
    Ok(on_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        // Explicit, rather than trusting every backend's cascade.
        let mut qb = query_builder(pool, "DELETE FROM user_roles WHERE role_id = ");
        qb.push_bind(id);
        qb.build().execute(&mut *tx).await?;
        let mut qb = query_builder(pool, "DELETE FROM role_permissions WHERE role_id = ");
        qb.push_bind(id);
        qb.build().execute(&mut *tx).await?;
        let mut qb = query_builder(pool, "DELETE FROM roles WHERE id = ");
        qb.push_bind(id);
        let deleted = qb.build().execute(&mut *tx).await?.rows_affected() > 0;
        if deleted {
            tx.record(&event).await?;
        }
        tx.commit().await?;
        deleted
    }))
}
