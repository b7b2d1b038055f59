//! Subusers: other users given a subset of the server permissions on one
//! server. The HTTP layer checks that a grant is a subset of the granting
//! caller's own permissions there ([`super::access`]); this module stores
//! grants, one per (server, user), with an event per change
//! (`subuser.added`, `subuser.updated`, `subuser.removed`, subject the
//! server).

use std::collections::BTreeSet;

use sqlx::types::Json;
use time::OffsetDateTime;

use super::ServersError;
use crate::db::domain::{Null, ServerId, SubuserEvent, SubuserPermissions, SubuserRemoved};
use crate::db::{
    Actor, Database, DbError, NewEvent, from_micros, now, on_pool, query_builder, to_micros,
};
use crate::error_code::Code;
use crate::identity::permissions;

/// One subuser of a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subuser {
    /// The server.
    pub server_id: String,
    /// The user.
    pub user_id: String,
    /// What they may do there (stored names of
    /// [retired](crate::identity::permissions::RETIRED) ones are dropped on
    /// load).
    pub permissions: BTreeSet<String>,
    /// When they were added.
    pub created_at: OffsetDateTime,
    /// When their permissions last changed.
    pub updated_at: OffsetDateTime,
}

#[derive(sqlx::FromRow)]
struct SubuserRow {
    server_id: String,
    user_id: String,
    permissions: Json<BTreeSet<String>>,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<SubuserRow> for Subuser {
    type Error = DbError;

    fn try_from(row: SubuserRow) -> Result<Self, DbError> {
        Ok(Subuser {
            server_id: row.server_id,
            user_id: row.user_id,
            permissions: permissions::drop_retired(
                row.permissions.0,
                "server_subusers.permissions",
            ),
            created_at: from_micros(row.created_at)?,
            updated_at: from_micros(row.updated_at)?,
        })
    }
}

const COLUMNS: &str =
    "SELECT server_id, user_id, permissions, created_at, updated_at FROM server_subusers";

/// What `subuser.added` and `subuser.updated` record.
fn granted(
    user_id: &str,
    permissions: &BTreeSet<String>,
    at: OffsetDateTime,
) -> SubuserPermissions {
    SubuserPermissions {
        user_id: user_id.to_owned(),
        permissions: permissions.clone(),
        at: to_micros(at),
    }
}

/// The permissions `user_id` was granted on `server_id`, if they are a
/// subuser of it.
///
/// # Errors
///
/// Database errors.
pub async fn permissions_of(
    db: &Database,
    server_id: &str,
    user_id: &str,
) -> Result<Option<BTreeSet<String>>, DbError> {
    Ok(get(db, server_id, user_id).await?.map(|s| s.permissions))
}

/// The subuser `user_id` of `server_id`, if there is one.
///
/// # Errors
///
/// Database errors.
pub async fn get(
    db: &Database,
    server_id: &str,
    user_id: &str,
) -> Result<Option<Subuser>, DbError> {
    let row: Option<SubuserRow> = on_pool!(db, |pool| {
        let mut qb = query_builder(pool, COLUMNS);
        qb.push(" WHERE server_id = ")
            .push_bind(server_id)
            .push(" AND user_id = ")
            .push_bind(user_id);
        qb.build_query_as::<SubuserRow>()
            .fetch_optional(pool)
            .await?
    });
    row.map(Subuser::try_from).transpose()
}

/// Every subuser of `server_id`, by user id.
///
/// # Errors
///
/// Database errors.
pub async fn list(db: &Database, server_id: &str) -> Result<Vec<Subuser>, DbError> {
    let rows: Vec<SubuserRow> = on_pool!(db, |pool| {
        let mut qb = query_builder(pool, COLUMNS);
        qb.push(" WHERE server_id = ")
            .push_bind(server_id)
            .push(" ORDER BY user_id");
        qb.build_query_as::<SubuserRow>().fetch_all(pool).await?
    });
    rows.into_iter().map(Subuser::try_from).collect()
}

/// Adds `user_id` as a subuser of `server_id` with `permissions`.
///
/// # Errors
///
/// [`ServersError::Conflict`] (`subuser-exists`), database errors.
pub async fn add(
    db: &Database,
    server_id: &str,
    user_id: &str,
    permissions: &BTreeSet<String>,
    actor: &Actor,
) -> Result<Subuser, ServersError> {
    let at = now();
    let event = NewEvent::new(SubuserEvent::Added {
        subject: ServerId::new(server_id),
        data: granted(user_id, permissions, at),
    })
    .actor(actor.clone());
    let result: Result<(), DbError> = on_pool!(db, |pool| {
        async {
            let mut tx = pool.begin().await?;
            let mut qb = query_builder(
                pool,
                "INSERT INTO server_subusers (server_id, user_id, permissions, created_at, updated_at) VALUES (",
            );
            qb.separated(", ")
                .push_bind(server_id)
                .push_bind(user_id)
                .push_bind(Json(permissions))
                .push_bind(to_micros(at))
                .push_bind(to_micros(at));
            qb.push(")");
            qb.build().execute(&mut *tx).await?;
            tx.record(&event).await?;
            tx.commit().await?;
            Ok(())
        }
        .await
    });
    match result {
        Err(DbError::Conflict { .. }) => Err(ServersError::conflict(
            Code::SubuserExists,
            "the user is a subuser of this server already",
        )),
        Err(other) => Err(other.into()),
        Ok(()) => Ok(Subuser {
            server_id: server_id.to_owned(),
            user_id: user_id.to_owned(),
            permissions: permissions.clone(),
            created_at: at,
            updated_at: at,
        }),
    }
}

/// Replaces the permissions of subuser `user_id` of `server_id`.
///
/// # Errors
///
/// [`ServersError::NotFound`], database errors.
pub async fn update(
    db: &Database,
    server_id: &str,
    user_id: &str,
    permissions: &BTreeSet<String>,
    actor: &Actor,
) -> Result<Subuser, ServersError> {
    let at = now();
    let event = NewEvent::new(SubuserEvent::Updated {
        subject: ServerId::new(server_id),
        data: granted(user_id, permissions, at),
    })
    .actor(actor.clone());
    on_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        let mut qb = query_builder(pool, "UPDATE server_subusers SET permissions = ");
        qb.push_bind(Json(permissions))
            .push(", updated_at = ")
            .push_bind(to_micros(at))
            .push(" WHERE server_id = ")
            .push_bind(server_id)
            .push(" AND user_id = ")
            .push_bind(user_id);
        if qb.build().execute(&mut *tx).await?.rows_affected() != 1 {
            return Err(ServersError::NotFound(format!("subuser {user_id}")));
        }
        tx.record(&event).await?;
        tx.commit().await?;
    });
    get(db, server_id, user_id)
        .await?
        .ok_or_else(|| ServersError::NotFound(format!("subuser {user_id}")))
}

/// Removes subuser `user_id` from `server_id`.
///
/// # Errors
///
/// [`ServersError::NotFound`], database errors.
pub async fn remove(
    db: &Database,
    server_id: &str,
    user_id: &str,
    actor: &Actor,
) -> Result<(), ServersError> {
    let event = NewEvent::new(SubuserEvent::Removed {
        subject: ServerId::new(server_id),
        data: SubuserRemoved {
            user_id: user_id.to_owned(),
            permissions: Null,
        },
    })
    .actor(actor.clone());
    on_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        let mut qb = query_builder(pool, "DELETE FROM server_subusers WHERE server_id = ");
        qb.push_bind(server_id)
            .push(" AND user_id = ")
            .push_bind(user_id);
        if qb.build().execute(&mut *tx).await?.rows_affected() != 1 {
            return Err(ServersError::NotFound(format!("subuser {user_id}")));
        }
        tx.record(&event).await?;
        tx.commit().await?;
    });
    Ok(())
}
