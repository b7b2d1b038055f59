//! Who may see and do what on a server.
//!
//! A caller sees a server if they hold `admin.servers`, own it, or are one
//! of its subusers; anyone else is told it does not exist (`404`), so
//! server ids cannot be probed. What a caller may do there:
//!
//! - holders of `admin.servers`: every server permission;
//! - the owner: the server permissions their own credentials carry (their
//!   roles, narrowed by an API key's scopes);
//! - a subuser: the permissions the subuser grant lists, narrowed the same
//!   way — a credential never exceeds its own permissions.
//!
//! Server permissions follow Pterodactyl's names (`control.start`,
//! `user.create`, `startup.update`, `settings.rename`…); deleting a
//! server (`server.delete`) is never grantable to subusers.

use std::collections::BTreeSet;

use super::ServersError;
use super::server::Server;
use super::subusers;
use crate::db::{Database, DbError};
use crate::http::Principal;

/// The permission that gives every right on every server.
pub const ADMIN_SERVERS: &str = "admin.servers";
/// The permission to delete a server (owners and admins only).
pub const SERVER_DELETE: &str = "server.delete";

/// The permissions that apply to one server and may be granted to
/// subusers.
pub fn server_permissions() -> &'static [&'static str] {
    &[
        "control.console",
        "control.start",
        "control.stop",
        "control.restart",
        "user.create",
        "user.read",
        "user.update",
        "user.delete",
        "file.create",
        "file.read",
        "file.read-content",
        "file.update",
        "file.delete",
        "file.archive",
        "file.sftp",
        "backup.create",
        "backup.read",
        "backup.delete",
        "backup.download",
        "backup.restore",
        "allocation.read",
        "allocation.create",
        "allocation.update",
        "allocation.delete",
        "startup.read",
        "startup.update",
        "database.create",
        "database.read",
        "database.update",
        "database.delete",
        "database.view-password",
        "schedule.create",
        "schedule.read",
        "schedule.update",
        "schedule.delete",
        "settings.rename",
        "settings.reinstall",
        "activity.read",
    ]
}

/// How the caller relates to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    /// Holds `admin.servers`.
    Admin,
    /// Owns it.
    Owner,
    /// Is a subuser of it.
    Subuser,
}

/// What one caller may do on one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerAccess {
    /// How they relate to it.
    pub relation: Relation,
    /// The server permissions they hold there.
    pub permissions: BTreeSet<String>,
}

impl ServerAccess {
    /// True if and only if the caller holds `permission` on the server.
    pub fn has(&self, permission: &str) -> bool {
        self.permissions.contains(permission)
    }

    /// `Ok` if the caller holds `permission` on the server.
    ///
    /// # Errors
    ///
    /// [`ServersError::Forbidden`] naming it.
    pub fn require(&self, permission: &str) -> Result<(), ServersError> {
        if self.has(permission) {
            Ok(())
        } else {
            Err(ServersError::Forbidden(permission.to_owned()))
        }
    }

    /// True for administrators.
    pub fn is_admin(&self) -> bool {
        self.relation == Relation::Admin
    }
}

/// [`resolve`] for many servers and one caller, as a list needs it: an
/// administrator's access, and an owner's, is the same on every server, so
/// it is worked out once per request instead of once per server.
#[derive(Debug, Default)]
pub struct Resolver {
    admin: Option<ServerAccess>,
    owner: Option<ServerAccess>,
}

impl Resolver {
    /// What `principal` may do on `server`, as [`resolve`] says.
    ///
    /// # Errors
    ///
    /// Database errors.
    pub async fn resolve(
        &mut self,
        db: &Database,
        principal: &Principal,
        server: &Server,
    ) -> Result<Option<ServerAccess>, DbError> {
        let slot = if principal.has_permission(ADMIN_SERVERS) {
            &mut self.admin
        } else if server.owner_id == principal.user_id() {
            &mut self.owner
        } else {
            return resolve(db, principal, server).await;
        };
        if slot.is_none() {
            *slot = resolve(db, principal, server).await?;
        }
        Ok(slot.clone())
    }
}

/// What `principal` may do on `server`, or `None` if they may not see it.
///
/// # Errors
///
/// Database errors.
pub async fn resolve(
    db: &Database,
    principal: &Principal,
    server: &Server,
) -> Result<Option<ServerAccess>, DbError> {
    let all = server_permissions()
        .iter()
        .copied()
        .chain([SERVER_DELETE])
        .map(str::to_owned);
    if principal.has_permission(ADMIN_SERVERS) {
        return Ok(Some(ServerAccess {
            relation: Relation::Admin,
            permissions: all.collect(),
        }));
    }
    if server.owner_id == principal.user_id() {
        return Ok(Some(ServerAccess {
            relation: Relation::Owner,
            permissions: all.filter(|p| principal.has_permission(p)).collect(),
        }));
    }
    let granted = subusers::permissions_of(db, &server.id, principal.user_id()).await?;
    Ok(granted.map(|granted| ServerAccess {
        relation: Relation::Subuser,
        permissions: granted
            .into_iter()
            .filter(|p| server_permissions().contains(&p.as_str()) && principal.has_permission(p))
            .collect(),
    }))
}
