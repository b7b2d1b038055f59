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
//! The server permissions are the catalogue's server-scoped ones
//! ([`Permission::on_servers`]: [`Scope::Server`](crate::identity::permissions::Scope::Server)
//! ones, which subusers may be given, and `server.delete`, which they may
//! not); nothing here lists them again.

use std::collections::BTreeSet;

use super::ServersError;
use super::server::Server;
use super::subusers;
use crate::db::{Database, DbError};
use crate::identity::permissions::{Gate, Permission, Scope};
use crate::identity::principal::Principal;

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
    pub permissions: BTreeSet<Permission>,
}

impl ServerAccess {
    /// True if and only if the caller holds `permission` on the server.
    pub fn has(&self, permission: Permission) -> bool {
        self.permissions.contains(&permission)
    }

    /// True if and only if the caller holds the permission `gate` checks
    /// on the server.
    pub(crate) fn passes(&self, gate: Gate) -> bool {
        self.has(gate.permission())
    }

    /// `Ok` if the caller holds the permission `gate` checks on the server.
    ///
    /// # Errors
    ///
    /// [`ServersError::Forbidden`] naming it.
    pub(crate) fn require(&self, gate: Gate) -> Result<(), ServersError> {
        if self.passes(gate) {
            Ok(())
        } else {
            Err(ServersError::Forbidden(
                gate.permission().as_str().to_owned(),
            ))
        }
    }

    /// The names of the permissions held, sorted.
    pub fn names(&self) -> Vec<String> {
        self.permissions
            .iter()
            .map(|p| p.as_str().to_owned())
            .collect()
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
        let slot = if principal.passes(Gate::ADMIN_SERVERS) {
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
    let all = Permission::on_servers();
    if principal.passes(Gate::ADMIN_SERVERS) {
        return Ok(Some(ServerAccess {
            relation: Relation::Admin,
            permissions: all.collect(),
        }));
    }
    if server.owner_id == principal.user_id() {
        return Ok(Some(ServerAccess {
            relation: Relation::Owner,
            permissions: all
                .filter(|p| principal.has_permission(p.as_str()))
                .collect(),
        }));
    }
    // A grant is stored as names; only the subuser-grantable ones the
    // caller's own credentials hold count (retired names were dropped on
    // load).
    let granted = subusers::permissions_of(db, &server.id, principal.user_id()).await?;
    Ok(granted.map(|granted| ServerAccess {
        relation: Relation::Subuser,
        permissions: granted
            .iter()
            .filter_map(|name| name.parse::<Permission>().ok())
            .filter(|p| p.scope() == Scope::Server && principal.has_permission(p.as_str()))
            .collect(),
    }))
}
