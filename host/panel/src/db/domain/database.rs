//! `database-host.*` and `database.*`: the database servers administrators
//! register, and the databases users create on them for their servers
//! ([`crate::databases`]). No password is ever recorded.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{DatabaseHostId, Empty, ServerId, namespace};

namespace! {
    /// `database-host.*`: a MySQL/MariaDB or PostgreSQL server the Panel
    /// creates servers' databases on.
    pub enum DatabaseHostEvent {
        /// An administrator registered it (the Panel connected first).
        Created = "database-host.created" { subject: DatabaseHostId, data: DatabaseHostCreated },
        /// An administrator changed it (the Panel connected first).
        Updated = "database-host.updated" { subject: DatabaseHostId, data: DatabaseHostUpdated },
        /// An administrator removed it (it held no databases).
        Deleted = "database-host.deleted" { subject: DatabaseHostId, data: Empty },
    }
}

/// A database host as registered, without its password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DatabaseHostCreated {
    /// Its name for people.
    pub name: String,
    /// `mysql` (MySQL or MariaDB) or `postgres`.
    pub kind: String,
    /// Its address: a host name or IP address.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// The administrative user the Panel connects as.
    pub username: String,
    /// The nodes whose servers may use it; empty for every node.
    pub node_ids: Vec<String>,
    /// The most databases it holds; none for no limit.
    pub max_databases: Option<u32>,
}

/// A database host as changed, without its password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DatabaseHostUpdated {
    /// Its name for people.
    pub name: String,
    /// `mysql` or `postgres`.
    pub kind: String,
    /// Its address.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// The administrative user.
    pub username: String,
    /// The nodes whose servers may use it; empty for every node.
    pub node_ids: Vec<String>,
    /// The most databases it holds; none for no limit.
    pub max_databases: Option<u32>,
    /// Whether a new administrative password was stored.
    pub password_changed: bool,
}

namespace! {
    /// `database.*`: a server's databases (the subject is the server; the
    /// database's id is in the data).
    pub enum DatabaseEvent {
        /// A database and its user were created on a host.
        Created = "database.created" { subject: ServerId, data: DatabaseCreated },
        /// The database user's password was changed on its host.
        PasswordRotated = "database.password.rotated" { subject: ServerId, data: DatabaseRef },
        /// The database was deleted: dropped on its host with its user, or
        /// (a deleted server's, when the host could not be reached) only
        /// forgotten.
        Deleted = "database.deleted" { subject: ServerId, data: DatabaseDeleted },
        /// The server's database limit was set (0: none allowed).
        LimitSet = "database.limit.set" { subject: ServerId, data: DatabaseLimitSet },
    }
}

/// A database created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DatabaseCreated {
    /// The database's id (`sdb_…`).
    pub database_id: String,
    /// The host it is on.
    pub host_id: String,
    /// Its name on the host (with the server's prefix).
    pub name: String,
    /// Its user's name on the host.
    pub username: String,
    /// Where its user may connect from (a MySQL host pattern).
    pub remote: String,
}

/// One database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DatabaseRef {
    /// The database's id.
    pub database_id: String,
}

/// A database deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DatabaseDeleted {
    /// The database's id.
    pub database_id: String,
    /// The host it was on.
    pub host_id: String,
    /// Its name on the host.
    pub name: String,
    /// Whether the database and its user were dropped on the host; false
    /// when a deleted server's database could only be forgotten (the host
    /// could not be reached, or refused).
    pub dropped: bool,
}

/// A server's database limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DatabaseLimitSet {
    /// The most databases the server may have; 0 allows none.
    pub limit: u32,
}
