//! Users, their links to provider identities, and roles.
//!
//! Every change records its event ([`UserEvent`], [`IdentityEvent`],
//! [`RoleEvent`]) in the same transaction, as [`crate::db::settings`]
//! does.
//!
//! Disabling a user revokes every session and API key they have in the
//! same transaction, so nothing they held keeps working, even after they
//! are enabled again.

use std::collections::BTreeSet;

use cap_runtime::api::UserInfo;
use time::OffsetDateTime;

use crate::db::domain::{
    DomainEvent, Empty, IdentityEvent, IdentityLinked, PasswordChanged, PasswordSet, RoleAssigned,
    RoleCreated, RoleEvent, RoleId, UserCreated, UserDeleted, UserDisabled, UserEvent, UserId,
    UserRoles, UserUpdated,
};
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
    /// Must set a new password before anything else: every request of the
    /// user but the password change, `/auth/me` and logout is refused with
    /// `403 password-change-required` (see [`crate::identity::links`]).
    pub must_change_password: bool,
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
    must_change_password: bool,
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
            must_change_password: row.must_change_password,
            created_at: from_micros(row.created_at)?,
        })
    }
}

const USER_COLUMNS: &str = "SELECT u.id, u.username, u.email, u.display_name, u.admin, u.disabled, u.must_change_password, u.created_at FROM users u";

/// Inserts the link of `$link` to `$user_id` at `$at` in transaction
/// `$tx` of `$pool` (its `identity.linked` event is the caller's to record):
/// one statement for creating a user, linking and setting a password.
macro_rules! insert_identity {
    ($pool:expr, $tx:expr, $user_id:expr, $link:expr, $at:expr) => {{
        let mut qb = query_builder(
            $pool,
            "INSERT INTO identities (provider_id, subject, user_id, created_at) VALUES (",
        );
        qb.separated(", ")
            .push_bind(&$link.provider_id)
            .push_bind(&$link.subject)
            .push_bind($user_id)
            .push_bind(to_micros($at));
        qb.push(")");
        qb.build().execute(&mut *$tx).await?;
    }};
}

/// A new random id with `prefix`, e.g. `usr_3f…`.
pub(crate) fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

/// A new user id, for [`create_user_with_roles`]: taken before the user
/// exists, so that the `user.create` before-hooks can name it.
pub fn new_user_id() -> String {
    new_id("usr")
}

impl User {
    /// What hook plugins see of the user (the payload of `user.*`
    /// events).
    pub fn hook_info(&self) -> UserInfo {
        UserInfo {
            id: self.id.clone(),
            username: self.username.clone(),
            email: self.email.clone(),
            admin: self.admin,
        }
    }
}

impl NewUser {
    /// What hook plugins see of this user, to be created with id `id`
    /// (the payload of `user.create`'s before-hooks).
    pub fn hook_info(&self, id: &str) -> UserInfo {
        UserInfo {
            id: id.to_owned(),
            username: self.username.trim().to_owned(),
            email: self.email.clone(),
            admin: self.admin,
        }
    }
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
    create_user_with_roles(db, &new_user_id(), user, link, &[], actor).await
}

/// [`create_user`] with id `id` (from [`new_user_id`]), also giving the
/// user `roles` (ids), all in one transaction (with `user.roles-set` when
/// there are any).
///
/// # Errors
///
/// As for [`create_user`]; [`DbError::ForeignKey`] if a role does not
/// exist.
pub async fn create_user_with_roles(
    db: &Database,
    id: &str,
    user: &NewUser,
    link: Option<&IdentityLink>,
    roles: &[String],
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
    let id = id.to_owned();
    let event =
        |event: crate::db::DomainEvent| NewEvent::new(event).actor(actor.clone()).occurred_at(at);
    let created = event(
        UserEvent::Created {
            subject: UserId::new(&id),
            data: UserCreated {
                username: username.to_owned(),
                admin: user.admin,
            },
        }
        .into(),
    );
    let linked = link.map(|l| event(linked(&id, l).into()));
    let unique_roles: BTreeSet<&String> = roles.iter().collect();
    let roles_set = event(
        UserEvent::RolesSet {
            subject: UserId::new(&id),
            data: UserRoles {
                roles: unique_roles.iter().map(|r| (*r).clone()).collect(),
            },
        }
        .into(),
    );
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
        tx.record(&created).await?;
        if let (Some(l), Some(event)) = (link, &linked) {
            insert_identity!(pool, tx, &id, l, at);
            tx.record(event).await?;
        }
        for role in &unique_roles {
            let mut qb = query_builder(pool, "INSERT INTO user_roles (user_id, role_id) VALUES (");
            qb.separated(", ").push_bind(&id).push_bind(*role);
            qb.push(")");
            qb.build().execute(&mut *tx).await?;
        }
        if !unique_roles.is_empty() {
            tx.record(&roles_set).await?;
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
        must_change_password: false,
        created_at: at,
    })
}

/// The `identity.linked` of `link` to `user_id`.
fn linked(user_id: &str, link: &IdentityLink) -> IdentityEvent {
    IdentityEvent::Linked {
        subject: UserId::new(user_id),
        data: IdentityLinked {
            provider: link.provider_id.clone(),
            subject: link.subject.clone(),
        },
    }
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
    let event = NewEvent::new(linked(user_id, link))
        .actor(actor.clone())
        .occurred_at(at);
    on_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        insert_identity!(pool, tx, user_id, link, at);
        tx.record(&event).await?;
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

/// The user of session `session_id`, if the session belongs to `user_id`
/// and has not been revoked: what an access token needs, in one query.
///
/// # Errors
///
/// Database errors.
pub async fn find_session_user(
    db: &Database,
    user_id: &str,
    session_id: &str,
) -> Result<Option<User>, DbError> {
    let row: Option<UserRow> = on_pool!(db, |pool| {
        let mut qb = query_builder(pool, USER_COLUMNS);
        qb.push(" JOIN sessions s ON s.user_id = u.id WHERE s.id = ")
            .push_bind(session_id)
            .push(" AND u.id = ")
            .push_bind(user_id)
            .push(" AND s.revoked_at IS NULL");
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

/// The one user with the email address `email` (any case); `None` when no
/// user or more than one has it.
///
/// # Errors
///
/// Database errors.
pub async fn find_user_by_email(db: &Database, email: &str) -> Result<Option<User>, DbError> {
    let rows: Vec<UserRow> = on_pool!(db, |pool| {
        let mut qb = query_builder(pool, USER_COLUMNS);
        qb.push(" WHERE LOWER(u.email) = ")
            .push_bind(email.to_lowercase())
            .push(" LIMIT 2");
        qb.build_query_as::<UserRow>().fetch_all(pool).await?
    });
    match <[UserRow; 1]>::try_from(rows) {
        Ok([row]) => Ok(Some(User::try_from(row)?)),
        Err(_) => Ok(None),
    }
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
/// the union of its roles' permissions (without
/// [retired](permissions::RETIRED) ones).
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
    Ok(permissions::drop_retired(
        rows.into_iter().collect(),
        "role_permissions",
    ))
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
    let event = NewEvent::new(RoleEvent::Created {
        subject: RoleId::new(&id),
        data: RoleCreated {
            name: name.to_owned(),
            permissions: role_permissions.to_vec(),
        },
    })
    .actor(actor.clone())
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
        tx.record(&event).await?;
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
    let event = NewEvent::new(RoleEvent::Assigned {
        subject: UserId::new(user_id),
        data: RoleAssigned {
            role: role_id.to_owned(),
        },
    })
    .actor(actor.clone());
    on_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        let mut qb = query_builder(pool, "INSERT INTO user_roles (user_id, role_id) VALUES (");
        qb.separated(", ").push_bind(user_id).push_bind(role_id);
        qb.push(")");
        qb.build().execute(&mut *tx).await?;
        tx.record(&event).await?;
        tx.commit().await?;
    });
    Ok(())
}

/// Changes to a user; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserChanges {
    /// A new email address (`Some(None)` clears it).
    pub email: Option<Option<String>>,
    /// A new display name (`Some(None)` clears it).
    pub display_name: Option<Option<String>>,
    /// Make or unmake an administrator.
    pub admin: Option<bool>,
    /// Disable (revoking sessions and API keys) or enable.
    pub disabled: Option<bool>,
    /// The new set of role ids, replacing the old one.
    pub roles: Option<Vec<String>>,
}

/// What [`update_user`] revoked when it disabled a user.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Revoked {
    /// Sessions ended.
    pub sessions: u64,
    /// API keys revoked.
    pub api_keys: u64,
}

/// Users whose username, email or display name contains `search` (any
/// case), by username: `limit` of them after skipping `offset`.
///
/// # Errors
///
/// Database errors.
pub async fn list_users(
    db: &Database,
    search: Option<&str>,
    offset: i64,
    limit: i64,
) -> Result<Vec<User>, DbError> {
    let pattern = search.map(|s| {
        let mut escaped = String::with_capacity(s.len() + 2);
        escaped.push('%');
        for c in s.to_lowercase().chars() {
            if matches!(c, '%' | '_' | '!') {
                escaped.push('!');
            }
            escaped.push(c);
        }
        escaped.push('%');
        escaped
    });
    let rows: Vec<UserRow> = on_pool!(db, |pool| {
        let mut qb = query_builder(pool, USER_COLUMNS);
        if let Some(pattern) = &pattern {
            qb.push(" WHERE LOWER(u.username) LIKE ")
                .push_bind(pattern)
                .push(" ESCAPE '!' OR LOWER(COALESCE(u.email, '')) LIKE ")
                .push_bind(pattern)
                .push(" ESCAPE '!' OR LOWER(COALESCE(u.display_name, '')) LIKE ")
                .push_bind(pattern)
                .push(" ESCAPE '!'");
        }
        qb.push(" ORDER BY u.username, u.id LIMIT ")
            .push_bind(limit)
            .push(" OFFSET ")
            .push_bind(offset);
        qb.build_query_as::<UserRow>().fetch_all(pool).await?
    });
    rows.into_iter().map(User::try_from).collect()
}

/// The roles `user_id` has: `(id, name)`, by name.
///
/// # Errors
///
/// Database errors.
pub async fn roles_of(db: &Database, user_id: &str) -> Result<Vec<(String, String)>, DbError> {
    Ok(on_pool!(db, |pool| {
        let mut qb = query_builder(
            pool,
            "SELECT r.id, r.name FROM roles r JOIN user_roles ur ON ur.role_id = r.id WHERE ur.user_id = ",
        );
        qb.push_bind(user_id).push(" ORDER BY r.name");
        qb.build_query_as::<(String, String)>()
            .fetch_all(pool)
            .await?
    }))
}

/// The provider identities linked to `user_id`.
///
/// # Errors
///
/// Database errors.
pub async fn identities_of(db: &Database, user_id: &str) -> Result<Vec<IdentityLink>, DbError> {
    let rows: Vec<(String, String)> = on_pool!(db, |pool| {
        let mut qb = query_builder(
            pool,
            "SELECT provider_id, subject FROM identities WHERE user_id = ",
        );
        qb.push_bind(user_id).push(" ORDER BY provider_id, subject");
        qb.build_query_as::<(String, String)>()
            .fetch_all(pool)
            .await?
    });
    Ok(rows
        .into_iter()
        .map(|(provider_id, subject)| IdentityLink {
            provider_id,
            subject,
        })
        .collect())
}

/// Applies `changes` to the user `id` in one transaction; `None` if there
/// is no such user. Disabling revokes every active session and API key of
/// the user (appending `user.disabled` with the counts); enabling appends
/// `user.enabled`; other fields append `user.updated`, roles
/// `user.roles-set`.
///
/// # Errors
///
/// [`DbError::ForeignKey`] if a role does not exist, and other database
/// errors.
pub async fn update_user(
    db: &Database,
    id: &str,
    changes: &UserChanges,
    actor: &Actor,
) -> Result<Option<(User, Revoked)>, DbError> {
    let Some(current) = find_user(db, id).await? else {
        return Ok(None);
    };
    let mut user = current.clone();
    if let Some(email) = &changes.email {
        user.email.clone_from(email);
    }
    if let Some(name) = &changes.display_name {
        user.display_name.clone_from(name);
    }
    if let Some(admin) = changes.admin {
        user.admin = admin;
    }
    if let Some(disabled) = changes.disabled {
        user.disabled = disabled;
    }
    let at = now();
    let event = |event: UserEvent| NewEvent::new(event).actor(actor.clone()).occurred_at(at);
    let subject = || UserId::new(id);
    let fields = UserUpdated {
        email: (user.email != current.email).then(|| user.email.clone()),
        display_name: (user.display_name != current.display_name)
            .then(|| user.display_name.clone()),
        admin: (user.admin != current.admin).then_some(user.admin),
    };
    let updated = (fields != UserUpdated::default()).then(|| {
        event(UserEvent::Updated {
            subject: subject(),
            data: fields,
        })
    });
    let roles: Option<BTreeSet<&String>> = changes.roles.as_ref().map(|r| r.iter().collect());
    let roles_set = roles.as_ref().map(|r| {
        event(UserEvent::RolesSet {
            subject: subject(),
            data: UserRoles {
                roles: r.iter().map(|r| (*r).clone()).collect(),
            },
        })
    });
    let disabling = user.disabled && !current.disabled;
    let enabling = !user.disabled && current.disabled;
    let enabled = enabling.then(|| {
        event(UserEvent::Enabled {
            subject: subject(),
            data: Empty {},
        })
    });
    if updated.is_none() && roles_set.is_none() && !disabling && enabled.is_none() {
        // Nothing changes: nothing to write, nothing to record.
        return Ok(Some((user, Revoked::default())));
    }
    let revoked = on_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        let mut qb = query_builder(pool, "UPDATE users SET email = ");
        qb.push_bind(user.email.as_deref())
            .push(", display_name = ")
            .push_bind(user.display_name.as_deref())
            .push(", admin = ")
            .push_bind(user.admin)
            .push(", disabled = ")
            .push_bind(user.disabled)
            .push(" WHERE id = ")
            .push_bind(id);
        qb.build().execute(&mut *tx).await?;
        if let Some(e) = &updated {
            tx.record(e).await?;
        }
        if let (Some(roles), Some(e)) = (&roles, &roles_set) {
            let mut qb = query_builder(pool, "DELETE FROM user_roles WHERE user_id = ");
            qb.push_bind(id);
            qb.build().execute(&mut *tx).await?;
            for role in roles {
                let mut qb =
                    query_builder(pool, "INSERT INTO user_roles (user_id, role_id) VALUES (");
                qb.separated(", ").push_bind(id).push_bind(*role);
                qb.push(")");
                qb.build().execute(&mut *tx).await?;
            }
            tx.record(e).await?;
        }
        let mut revoked = Revoked::default();
        if disabling {
            let mut qb = query_builder(pool, "UPDATE sessions SET revoked_at = ");
            qb.push_bind(to_micros(at))
                .push(" WHERE revoked_at IS NULL AND user_id = ")
                .push_bind(id);
            revoked.sessions = qb.build().execute(&mut *tx).await?.rows_affected();
            let mut qb = query_builder(pool, "UPDATE api_keys SET revoked_at = ");
            qb.push_bind(to_micros(at))
                .push(" WHERE revoked_at IS NULL AND user_id = ")
                .push_bind(id);
            revoked.api_keys = qb.build().execute(&mut *tx).await?.rows_affected();
            tx.record(&event(UserEvent::Disabled {
                subject: subject(),
                data: UserDisabled {
                    sessions_revoked: revoked.sessions,
                    api_keys_revoked: revoked.api_keys,
                },
            }))
            .await?;
        }
        if let Some(e) = &enabled {
            tx.record(e).await?;
        }
        tx.commit().await?;
        revoked
    });
    Ok(Some((user, revoked)))
}

/// Records that `user_id` changed their password at `provider`, ending
/// every active session of theirs but `keep` (the caller's own) in the same
/// transaction (`user.password-changed`, with the number ended as
/// `sessions_revoked`); returns that number. Whoever held the old
/// password, or a session opened with it, is out.
///
/// # Errors
///
/// Database errors.
pub async fn revoke_other_sessions(
    db: &Database,
    user_id: &str,
    keep: Option<&str>,
    provider: &str,
    actor: &Actor,
) -> Result<u64, DbError> {
    let at = now();
    Ok(on_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        let mut qb = query_builder(pool, "UPDATE sessions SET revoked_at = ");
        qb.push_bind(to_micros(at))
            .push(" WHERE revoked_at IS NULL AND user_id = ")
            .push_bind(user_id);
        if let Some(keep) = keep {
            qb.push(" AND id <> ").push_bind(keep);
        }
        let revoked = qb.build().execute(&mut *tx).await?.rows_affected();
        // The change an administrator required is made.
        let mut qb = query_builder(pool, "UPDATE users SET must_change_password = ");
        qb.push_bind(false)
            .push(" WHERE must_change_password = ")
            .push_bind(true)
            .push(" AND id = ")
            .push_bind(user_id);
        qb.build().execute(&mut *tx).await?;
        let event = NewEvent::new(UserEvent::PasswordChanged {
            subject: UserId::new(user_id),
            data: PasswordChanged {
                provider: provider.to_owned(),
                sessions_revoked: revoked,
            },
        })
        .actor(actor.clone())
        .occurred_at(at);
        tx.record(&event).await?;
        tx.commit().await?;
        revoked
    }))
}

/// When the session `session_id` started, if it exists.
///
/// # Errors
///
/// Database errors.
pub async fn session_started_at(
    db: &Database,
    session_id: &str,
) -> Result<Option<OffsetDateTime>, DbError> {
    let created: Option<i64> = on_pool!(db, |pool| {
        let mut qb = query_builder(pool, "SELECT created_at FROM sessions WHERE id = ");
        qb.push_bind(session_id);
        qb.build_query_scalar::<i64>().fetch_optional(pool).await?
    });
    created.map(from_micros).transpose()
}

/// Deletes the user `id` with their identities, sessions, API keys, roles
/// and second factor, appending `user.deleted`; returns whether they
/// existed.
///
/// # Errors
///
/// [`DbError::ForeignKey`] if something else still refers to the user, and
/// other database errors.
pub async fn delete_user(db: &Database, id: &str, actor: &Actor) -> Result<bool, DbError> {
    let Some(user) = find_user(db, id).await? else {
        return Ok(false);
    };
    let event = NewEvent::new(UserEvent::Deleted {
        subject: UserId::new(id),
        data: UserDeleted {
            username: user.username,
        },
    })
    .actor(actor.clone())
    .occurred_at(now());
    Ok(on_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        let mut qb = query_builder(pool, "DELETE FROM users WHERE id = ");
        qb.push_bind(id);
        let deleted = qb.build().execute(&mut *tx).await?.rows_affected() > 0;
        if deleted {
            tx.record(&event).await?;
        }
        tx.commit().await?;
        deleted
    }))
}

/// How a password came to be set for a user by someone other than the
/// user ([`password_set`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetBy {
    /// An administrator set it.
    Admin,
    /// The user set it through the one-time link `link`: an invitation or
    /// a reset.
    Link {
        /// The link's id.
        link: String,
        /// `invitation` or `reset`.
        purpose: &'static str,
    },
}

/// Records that `provider` now holds a password for `user_id` that was not
/// set through the user's own password change: links `new_identity` when
/// the provider just created it, sets or clears the required change at the
/// next sign-in, ends every session of the user, and appends
/// `user.password-set` (with `identity.linked`), in one transaction.
/// Returns how many sessions ended.
///
/// # Errors
///
/// [`DbError::Conflict`] if `new_identity` is linked already, and other
/// database errors.
pub async fn password_set(
    db: &Database,
    user_id: &str,
    provider: &str,
    new_identity: Option<&IdentityLink>,
    by: &SetBy,
    must_change: bool,
    actor: &Actor,
) -> Result<u64, DbError> {
    let at = now();
    let event = |e: DomainEvent| NewEvent::new(e).actor(actor.clone()).occurred_at(at);
    let linked = new_identity.map(|link| event(linked(user_id, link).into()));
    Ok(on_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        if let (Some(link), Some(linked)) = (new_identity, &linked) {
            insert_identity!(pool, tx, user_id, link, at);
            tx.record(linked).await?;
        }
        let mut qb = query_builder(pool, "UPDATE users SET must_change_password = ");
        qb.push_bind(must_change)
            .push(" WHERE id = ")
            .push_bind(user_id);
        qb.build().execute(&mut *tx).await?;
        let mut qb = query_builder(pool, "UPDATE sessions SET revoked_at = ");
        qb.push_bind(to_micros(at))
            .push(" WHERE revoked_at IS NULL AND user_id = ")
            .push_bind(user_id);
        let revoked = qb.build().execute(&mut *tx).await?.rows_affected();
        let (how, link) = match by {
            SetBy::Admin => ("admin", None),
            SetBy::Link { link, purpose } => (*purpose, Some(link.clone())),
        };
        tx.record(&event(
            UserEvent::PasswordSet {
                subject: UserId::new(user_id),
                data: PasswordSet {
                    provider: provider.to_owned(),
                    by: how.to_owned(),
                    link,
                    must_change,
                    sessions_revoked: revoked,
                },
            }
            .into(),
        ))
        .await?;
        tx.commit().await?;
        revoked
    }))
}
