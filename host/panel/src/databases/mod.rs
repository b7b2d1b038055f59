//! Servers' databases: MySQL/MariaDB and PostgreSQL databases that the
//! users of a game server create for it (a plugin's storage, a web map's
//! tables), on database servers an administrator registered as *hosts*,
//! as in Pterodactyl and Pelican.
//!
//! The routes are in [`crate::http::databases_routes`]; this module holds
//! the rows (`database_hosts`, `server_databases`, `database_limits`),
//! the names and secrets ([`names`]) and what is done on the hosts
//! ([`remote`]).
//!
//! # Decisions
//!
//! - **The host first, then the row.** Creating a database runs its
//!   statements on the host and then records the row with its
//!   `database.created` event; a row that cannot be recorded has its
//!   database dropped again. Rotating a password changes it on the host,
//!   then in the row. Deleting drops on the host, then removes the row: a
//!   host that cannot be reached refuses the delete (`502`) rather than
//!   leave a database behind that the Panel no longer lists. Only a
//!   deleted server's databases ([`forget_server`]) go from the Panel
//!   whatever the host says: best effort there, logged, and recorded as
//!   `dropped: false`.
//! - **Names are the server's.** A database is `s<8 hex>_<name>` (the
//!   server's prefix, then what the user picked, `[a-z0-9_]`); its user
//!   and password are generated ([`names`]). Users never choose what is
//!   written into a statement beyond a validated name and host pattern,
//!   and everything is checked again, and quoted, where the statement is
//!   written ([`remote`]).
//! - **Least privilege on the host.** On MySQL/MariaDB the user gets
//!   `ALL PRIVILEGES` on its one database and nothing else; on
//!   PostgreSQL the role owns its database, and `CONNECT` is revoked from
//!   `PUBLIC` there, so the roles of other servers cannot even connect to
//!   it. PostgreSQL decides where a role may connect from in its
//!   `pg_hba.conf`: the `remote` pattern is MySQL's only, and a
//!   PostgreSQL database takes `%` alone.
//! - **Secrets sealed, shown on request.** The administrative password of
//!   a host and every database user's password are sealed at rest
//!   ([`crate::secrets`]) and never recorded in events. A host's password
//!   is never answered by any route; a database's only to callers holding
//!   `database.view-password` on its server.
//! - **Limits.** Each server has a database limit set by an
//!   administrator (`database_limits`; [`DEFAULT_LIMIT`], none allowed,
//!   when none was set, as in Pterodactyl). A host may cap how many
//!   databases it holds (`max_databases`) and name the nodes whose
//!   servers may use it (none: every node); a database whose host is not
//!   named goes to the allowed host with the fewest databases. The
//!   counts are checked before the host is asked, not locked: two
//!   creations at the same instant may both pass.
//! - **Not a projection.** Like backups, these tables are not rebuilt by
//!   replay and have no foreign key to `servers`; every change is still
//!   recorded in the same transaction as its `database-host.*` or
//!   `database.*` event (the audit log).
//! - **Hooks (API 0.2.0).** `database.create` and `database.delete` go
//!   past the before-hooks after the Panel's own checks and before the
//!   host is asked (the routes do this); a deleted server's databases go
//!   without asking, as its backups do.

pub mod names;
pub mod remote;

use std::fmt;
use std::str::FromStr;

use cap_runtime::api::{DatabaseInfo, Payload};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use self::remote::{Endpoint, Grant, RemoteError};
use crate::db::domain::{
    DatabaseCreated, DatabaseDeleted, DatabaseEvent, DatabaseHostCreated, DatabaseHostEvent,
    DatabaseHostId, DatabaseHostUpdated, DatabaseLimitSet, DatabaseRef, Empty, ServerId,
};
use crate::db::{
    Actor, Database, DbError, NewEvent, from_micros, now, on_pool, query_builder, to_micros,
};
use crate::error_code::Code;
use crate::secrets::Purpose;

/// A server's database limit when none was set: none allowed.
pub const DEFAULT_LIMIT: u32 = 0;
/// The highest database limit of a server.
pub const MAX_LIMIT: u32 = 1000;
/// The highest `max_databases` of a host.
pub const MAX_HOST_DATABASES: u32 = 1_000_000;

/// Which database server a host runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum Kind {
    /// MySQL or MariaDB (`mysql`).
    #[serde(rename = "mysql")]
    MySql,
    /// PostgreSQL (`postgres`).
    #[serde(rename = "postgres")]
    Postgres,
}

impl Kind {
    /// `mysql` or `postgres`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::MySql => "mysql",
            Kind::Postgres => "postgres",
        }
    }

    /// The URL scheme of a connection string: `mysql` or `postgresql`.
    pub const fn scheme(self) -> &'static str {
        match self {
            Kind::MySql => "mysql",
            Kind::Postgres => "postgresql",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Kind {
    type Err = DbError;

    fn from_str(s: &str) -> Result<Kind, DbError> {
        match s {
            "mysql" => Ok(Kind::MySql),
            "postgres" => Ok(Kind::Postgres),
            other => Err(DbError::Corrupt(format!(
                "unknown database host kind {other:?}"
            ))),
        }
    }
}

/// A database server the Panel creates servers' databases on.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseHost {
    /// Its id (`dbh_…`).
    pub id: String,
    /// Its name for people.
    pub name: String,
    /// MySQL/MariaDB or PostgreSQL.
    pub kind: Kind,
    /// Its address: host name or IP address.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// The administrative user the Panel connects as.
    pub username: String,
    /// The nodes whose servers may use it; empty for every node.
    pub node_ids: Vec<String>,
    /// The most databases it holds; `None` for no limit.
    pub max_databases: Option<u32>,
    /// How many databases it holds now.
    pub databases: u64,
    /// When it was registered.
    pub created_at: OffsetDateTime,
    /// When it was last changed.
    pub updated_at: OffsetDateTime,
    sealed_password: String,
}

impl fmt::Debug for DatabaseHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseHost")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("node_ids", &self.node_ids)
            .field("max_databases", &self.max_databases)
            .field("databases", &self.databases)
            .finish_non_exhaustive()
    }
}

impl DatabaseHost {
    /// True if and only if servers on node `node_id` may use it (a server
    /// on no node may use only hosts open to every node).
    pub fn serves(&self, node_id: Option<&str>) -> bool {
        self.node_ids.is_empty()
            || node_id.is_some_and(|node| self.node_ids.iter().any(|n| n == node))
    }

    /// True if and only if it holds as many databases as it may.
    pub fn is_full(&self) -> bool {
        self.max_databases
            .is_some_and(|max| self.databases >= u64::from(max))
    }

    /// How messages name it: `name (host:port)`.
    pub fn label(&self) -> String {
        format!("{} ({})", self.name, address(&self.host, self.port))
    }

    /// Where to connect, with the administrative password.
    ///
    /// # Errors
    ///
    /// [`DbError::Sealed`] if the password does not open.
    pub fn endpoint(&self, db: &Database) -> Result<Endpoint, DbError> {
        let password = db.sealer()?.open(
            &Purpose::database_host_password(&self.id),
            &self.sealed_password,
        )?;
        Ok(Endpoint {
            kind: self.kind,
            host: self.host.clone(),
            port: self.port,
            username: self.username.clone(),
            password,
        })
    }
}

/// `host:port`, an IPv6 address in brackets.
pub fn address(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// A database of a server.
#[derive(Clone, PartialEq, Eq)]
pub struct ServerDatabase {
    /// Its id (`sdb_…`).
    pub id: String,
    /// Its server.
    pub server_id: String,
    /// The host it is on.
    pub host_id: String,
    /// Its name on the host (`s<8 hex>_<name>`).
    pub name: String,
    /// Its user's name on the host.
    pub username: String,
    /// Where its user may connect from (MySQL host pattern).
    pub remote: String,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// When its password was last set.
    pub updated_at: OffsetDateTime,
    sealed_password: String,
}

impl fmt::Debug for ServerDatabase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerDatabase")
            .field("id", &self.id)
            .field("server_id", &self.server_id)
            .field("host_id", &self.host_id)
            .field("name", &self.name)
            .field("username", &self.username)
            .field("remote", &self.remote)
            .finish_non_exhaustive()
    }
}

impl ServerDatabase {
    /// Its user's password.
    ///
    /// # Errors
    ///
    /// [`DbError::Sealed`] if it does not open.
    pub fn password(&self, db: &Database) -> Result<String, DbError> {
        Ok(db.sealer()?.open(
            &Purpose::server_database_password(&self.id),
            &self.sealed_password,
        )?)
    }

    fn grant<'a>(&'a self, password: &'a str) -> Grant<'a> {
        Grant {
            database: &self.name,
            username: &self.username,
            password,
            remote: &self.remote,
        }
    }
}

/// Why a database operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum DatabasesError {
    /// No such database on this server.
    #[error("database {0} not found")]
    NotFound(String),
    /// The server (or the host) has a database of this name.
    #[error("{0}")]
    NameTaken(String),
    /// The server has as many databases as its limit allows.
    #[error("{}", limit_message(.server, .limit))]
    LimitReached {
        /// The server.
        server: String,
        /// Its limit.
        limit: u32,
    },
    /// No host serves the server's node, or each that does is full.
    #[error("{0}")]
    NoHost(String),
    /// The host named does not serve the server's node.
    #[error("database host {host} does not serve the servers of node {node}")]
    HostNotAllowed {
        /// The host.
        host: String,
        /// The server's node (`none` for no node).
        node: String,
    },
    /// The host holds as many databases as it may.
    #[error(
        "database host {host} holds {max} databases, its limit: pick another host or ask an administrator"
    )]
    HostFull {
        /// The host.
        host: String,
        /// Its limit.
        max: u32,
    },
    /// No such host.
    #[error("database host {0} not found")]
    HostNotFound(String),
    /// Another host has the name.
    #[error("a database host is called {0:?} already")]
    HostNameTaken(String),
    /// The host still holds databases.
    #[error("database host {host} still holds {databases} {}: delete them (or the servers they belong to) first", databases_word(.databases))]
    HostInUse {
        /// The host.
        host: String,
        /// How many.
        databases: u64,
    },
    /// The host could not be reached.
    #[error("database host {host} could not be reached: {reason}")]
    Unreachable {
        /// The host.
        host: String,
        /// Why.
        reason: String,
    },
    /// The host refused the administrative login.
    #[error("database host {host} refused the Panel's user name or password: {reason}")]
    LoginRefused {
        /// The host.
        host: String,
        /// Its message.
        reason: String,
    },
    /// The host refused a statement.
    #[error("database host {host} refused: {reason}")]
    HostFailed {
        /// The host.
        host: String,
        /// Its message.
        reason: String,
    },
    /// The Panel's database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

fn limit_message(server: &str, limit: &u32) -> String {
    let limit = *limit;
    if limit == 0 {
        format!(
            "databases are turned off for this server (its database limit is 0); an administrator can set one with PUT /api/v1/servers/{server}/database-limit"
        )
    } else {
        format!(
            "the server has {limit} {}, its limit: delete one first",
            if limit == 1 { "database" } else { "databases" }
        )
    }
}

fn databases_word(count: &u64) -> &'static str {
    if *count == 1 { "database" } else { "databases" }
}

impl DatabasesError {
    /// The stable code the HTTP layer answers with.
    pub fn code(&self) -> Code {
        match self {
            DatabasesError::NotFound(_) => Code::DatabaseNotFound,
            DatabasesError::NameTaken(_) => Code::DatabaseNameTaken,
            DatabasesError::LimitReached { .. } => Code::DatabaseLimitReached,
            DatabasesError::NoHost(_) => Code::NoDatabaseHost,
            DatabasesError::HostNotAllowed { .. } => Code::DatabaseHostNotAllowed,
            DatabasesError::HostFull { .. } => Code::DatabaseHostFull,
            DatabasesError::HostNotFound(_) => Code::DatabaseHostNotFound,
            DatabasesError::HostNameTaken(_) => Code::DatabaseHostNameTaken,
            DatabasesError::HostInUse { .. } => Code::DatabaseHostInUse,
            DatabasesError::Unreachable { .. } => Code::DatabaseHostUnreachable,
            DatabasesError::LoginRefused { .. } => Code::DatabaseHostLoginRefused,
            DatabasesError::HostFailed { .. } => Code::DatabaseHostFailed,
            DatabasesError::Db(_) => Code::InternalError,
        }
    }

    /// `error` of an operation on the host called `label`.
    pub fn remote(label: String, error: RemoteError) -> DatabasesError {
        match error {
            RemoteError::Unreachable(reason) => DatabasesError::Unreachable {
                host: label,
                reason,
            },
            RemoteError::LoginRefused(reason) => DatabasesError::LoginRefused {
                host: label,
                reason,
            },
            RemoteError::Exists(reason) => DatabasesError::NameTaken(format!(
                "database host {label} has a database of that name already: {reason}"
            )),
            RemoteError::Failed(reason) => DatabasesError::HostFailed {
                host: label,
                reason,
            },
        }
    }
}

// ------------------------------------------------------------- hosts

#[derive(sqlx::FromRow)]
struct HostRow {
    id: String,
    name: String,
    kind: String,
    host: String,
    port: i32,
    username: String,
    password: String,
    node_ids: String,
    max_databases: Option<i32>,
    created_at: i64,
    updated_at: i64,
    database_count: i64,
}

const HOST_COLUMNS: &str = "h.id, h.name, h.kind, h.host, h.port, h.username, h.password, h.node_ids, h.max_databases, h.created_at, h.updated_at, (SELECT COUNT(*) FROM server_databases d WHERE d.host_id = h.id) AS database_count";

impl TryFrom<HostRow> for DatabaseHost {
    type Error = DbError;

    fn try_from(row: HostRow) -> Result<Self, DbError> {
        Ok(DatabaseHost {
            kind: row.kind.parse()?,
            port: u16::try_from(row.port)
                .map_err(|_| DbError::Corrupt(format!("port {} of host {}", row.port, row.id)))?,
            id: row.id,
            name: row.name,
            host: row.host,
            username: row.username,
            node_ids: split_lines(&row.node_ids),
            max_databases: row.max_databases.map(|n| u32::try_from(n).unwrap_or(0)),
            databases: u64::try_from(row.database_count).unwrap_or(0),
            created_at: from_micros(row.created_at)?,
            updated_at: from_micros(row.updated_at)?,
            sealed_password: row.password,
        })
    }
}

fn split_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Every database host, by name.
///
/// # Errors
///
/// Database errors.
pub async fn list_hosts(db: &Database) -> Result<Vec<DatabaseHost>, DbError> {
    let rows: Vec<HostRow> = on_pool!(db, |pool| {
        let mut qb = query_builder(pool, "SELECT ");
        qb.push(HOST_COLUMNS)
            .push(" FROM database_hosts h ORDER BY h.name, h.id");
        qb.build_query_as::<HostRow>().fetch_all(pool).await?
    });
    rows.into_iter().map(DatabaseHost::try_from).collect()
}

/// Database host `id`.
///
/// # Errors
///
/// Database errors.
pub async fn get_host(db: &Database, id: &str) -> Result<Option<DatabaseHost>, DbError> {
    let row: Option<HostRow> = on_pool!(db, |pool| {
        let mut qb = query_builder(pool, "SELECT ");
        qb.push(HOST_COLUMNS)
            .push(" FROM database_hosts h WHERE h.id = ")
            .push_bind(id);
        qb.build_query_as::<HostRow>().fetch_optional(pool).await?
    });
    row.map(DatabaseHost::try_from).transpose()
}

/// A database host's settings, as an administrator gives them.
#[derive(Clone, PartialEq, Eq)]
pub struct HostSettings {
    /// Its name for people.
    pub name: String,
    /// MySQL/MariaDB or PostgreSQL.
    pub kind: Kind,
    /// Its address.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// The administrative user.
    pub username: String,
    /// Its password (empty: none).
    pub password: String,
    /// The nodes whose servers may use it; empty for every node.
    pub node_ids: Vec<String>,
    /// The most databases it may hold.
    pub max_databases: Option<u32>,
}

impl fmt::Debug for HostSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostSettings")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("node_ids", &self.node_ids)
            .field("max_databases", &self.max_databases)
            .finish_non_exhaustive()
    }
}

impl HostSettings {
    /// Where to connect.
    pub fn endpoint(&self) -> Endpoint {
        Endpoint {
            kind: self.kind,
            host: self.host.clone(),
            port: self.port,
            username: self.username.clone(),
            password: self.password.clone(),
        }
    }

    /// How messages name the host.
    pub fn label(&self) -> String {
        format!("{} ({})", self.name, address(&self.host, self.port))
    }
}

/// Connects to the host `settings` describe as its administrative user:
/// what a new or changed host must pass.
///
/// # Errors
///
/// [`DatabasesError::Unreachable`], [`DatabasesError::LoginRefused`] or
/// [`DatabasesError::HostFailed`].
pub async fn test_connection(settings: &HostSettings) -> Result<(), DatabasesError> {
    remote::check(&settings.endpoint())
        .await
        .map_err(|e| DatabasesError::remote(settings.label(), e))
}

fn stored_max(max: Option<u32>) -> Option<i32> {
    max.map(|m| i32::try_from(m.min(MAX_HOST_DATABASES)).unwrap_or(i32::MAX))
}

fn name_taken(error: DbError, name: &str) -> DatabasesError {
    match error {
        DbError::Conflict { .. } => DatabasesError::HostNameTaken(name.to_owned()),
        other => DatabasesError::Db(other),
    }
}

/// Registers a host (without connecting: see [`test_connection`]),
/// recording `database-host.created`.
///
/// # Errors
///
/// [`DatabasesError::HostNameTaken`], database errors.
pub async fn create_host(
    db: &Database,
    settings: &HostSettings,
    actor: &Actor,
) -> Result<DatabaseHost, DatabasesError> {
    let id = format!("dbh_{}", uuid::Uuid::now_v7().simple());
    let sealed = db
        .sealer()?
        .seal(&Purpose::database_host_password(&id), &settings.password);
    let at = now();
    let event = NewEvent::new(DatabaseHostEvent::Created {
        subject: DatabaseHostId::new(&id),
        data: DatabaseHostCreated {
            name: settings.name.clone(),
            kind: settings.kind.as_str().to_owned(),
            host: settings.host.clone(),
            port: settings.port,
            username: settings.username.clone(),
            node_ids: settings.node_ids.clone(),
            max_databases: settings.max_databases,
        },
    })
    .actor(actor.clone())
    .occurred_at(at);
    let nodes = settings.node_ids.join("\n");
    let inserted: Result<(), DbError> = async {
        on_pool!(db, |pool| {
            let mut tx = pool.begin().await?;
            let mut qb = query_builder(
                pool,
                "INSERT INTO database_hosts (id, name, kind, host, port, username, password, node_ids, max_databases, created_at, updated_at) VALUES (",
            );
            qb.separated(", ")
                .push_bind(&id)
                .push_bind(&settings.name)
                .push_bind(settings.kind.as_str())
                .push_bind(&settings.host)
                .push_bind(i32::from(settings.port))
                .push_bind(&settings.username)
                .push_bind(&sealed)
                .push_bind(&nodes)
                .push_bind(stored_max(settings.max_databases))
                .push_bind(to_micros(at))
                .push_bind(to_micros(at));
            qb.push(")");
            qb.build().execute(&mut *tx).await?;
            tx.record(&event).await?;
            tx.commit().await?;
        });
        Ok(())
    }
    .await;
    inserted.map_err(|e| name_taken(e, &settings.name))?;
    get_host(db, &id)
        .await?
        .ok_or_else(|| DbError::Corrupt(format!("database host {id} vanished")).into())
}

/// Replaces host `id`'s settings (without connecting: see
/// [`test_connection`]), recording `database-host.updated`;
/// `password_changed` says whether `settings.password` is new.
///
/// # Errors
///
/// [`DatabasesError::HostNotFound`], [`DatabasesError::HostNameTaken`],
/// database errors.
pub async fn update_host(
    db: &Database,
    id: &str,
    settings: &HostSettings,
    password_changed: bool,
    actor: &Actor,
) -> Result<DatabaseHost, DatabasesError> {
    let sealed = db
        .sealer()?
        .seal(&Purpose::database_host_password(id), &settings.password);
    let at = now();
    let event = NewEvent::new(DatabaseHostEvent::Updated {
        subject: DatabaseHostId::new(id),
        data: DatabaseHostUpdated {
            name: settings.name.clone(),
            kind: settings.kind.as_str().to_owned(),
            host: settings.host.clone(),
            port: settings.port,
            username: settings.username.clone(),
            node_ids: settings.node_ids.clone(),
            max_databases: settings.max_databases,
            password_changed,
        },
    })
    .actor(actor.clone())
    .occurred_at(at);
    let nodes = settings.node_ids.join("\n");
    let updated: Result<bool, DbError> = async {
        Ok(on_pool!(db, |pool| {
            let mut tx = pool.begin().await?;
            let mut qb = query_builder(pool, "UPDATE database_hosts SET name = ");
            qb.push_bind(&settings.name)
                .push(", kind = ")
                .push_bind(settings.kind.as_str())
                .push(", host = ")
                .push_bind(&settings.host)
                .push(", port = ")
                .push_bind(i32::from(settings.port))
                .push(", username = ")
                .push_bind(&settings.username)
                .push(", password = ")
                .push_bind(&sealed)
                .push(", node_ids = ")
                .push_bind(&nodes)
                .push(", max_databases = ")
                .push_bind(stored_max(settings.max_databases))
                .push(", updated_at = ")
                .push_bind(to_micros(at))
                .push(" WHERE id = ")
                .push_bind(id);
            let changed = qb.build().execute(&mut *tx).await?.rows_affected() > 0;
            if changed {
                tx.record(&event).await?;
            }
            tx.commit().await?;
            changed
        }))
    }
    .await;
    if !updated.map_err(|e| name_taken(e, &settings.name))? {
        return Err(DatabasesError::HostNotFound(id.to_owned()));
    }
    get_host(db, id)
        .await?
        .ok_or_else(|| DatabasesError::HostNotFound(id.to_owned()))
}

/// Removes host `id`, recording `database-host.deleted`; refused while it
/// holds databases.
///
/// # Errors
///
/// [`DatabasesError::HostNotFound`], [`DatabasesError::HostInUse`]
/// naming how many, database errors.
pub async fn delete_host(db: &Database, id: &str, actor: &Actor) -> Result<(), DatabasesError> {
    let host = get_host(db, id)
        .await?
        .ok_or_else(|| DatabasesError::HostNotFound(id.to_owned()))?;
    if host.databases > 0 {
        return Err(DatabasesError::HostInUse {
            host: host.label(),
            databases: host.databases,
        });
    }
    let event = NewEvent::new(DatabaseHostEvent::Deleted {
        subject: DatabaseHostId::new(id),
        data: Empty {},
    })
    .actor(actor.clone());
    let deleted: Result<bool, DbError> = async {
        Ok(on_pool!(db, |pool| {
            let mut tx = pool.begin().await?;
            let mut qb = query_builder(pool, "DELETE FROM database_hosts WHERE id = ");
            qb.push_bind(id);
            let changed = qb.build().execute(&mut *tx).await?.rows_affected() > 0;
            if changed {
                tx.record(&event).await?;
            }
            tx.commit().await?;
            changed
        }))
    }
    .await;
    match deleted {
        Ok(true) => Ok(()),
        Ok(false) => Err(DatabasesError::HostNotFound(id.to_owned())),
        // A database was created on it meanwhile.
        Err(DbError::ForeignKey { .. }) => {
            let databases = get_host(db, id).await?.map_or(1, |h| h.databases.max(1));
            Err(DatabasesError::HostInUse {
                host: host.label(),
                databases,
            })
        }
        Err(other) => Err(other.into()),
    }
}

/// The host for a new database of a server on node `node_id`: `requested`
/// if given (it must serve the node and have room), otherwise the host
/// with the fewest databases among those that serve the node and have
/// room.
///
/// # Errors
///
/// [`DatabasesError::HostNotFound`], [`DatabasesError::HostNotAllowed`],
/// [`DatabasesError::HostFull`], [`DatabasesError::NoHost`], database
/// errors.
pub async fn pick_host(
    db: &Database,
    node_id: Option<&str>,
    requested: Option<&str>,
) -> Result<DatabaseHost, DatabasesError> {
    if let Some(id) = requested {
        let host = get_host(db, id)
            .await?
            .ok_or_else(|| DatabasesError::HostNotFound(id.to_owned()))?;
        if !host.serves(node_id) {
            return Err(DatabasesError::HostNotAllowed {
                host: host.name,
                node: node_id.unwrap_or("none").to_owned(),
            });
        }
        if let Some(max) = host.max_databases.filter(|_| host.is_full()) {
            return Err(DatabasesError::HostFull {
                host: host.name,
                max,
            });
        }
        return Ok(host);
    }
    let serving: Vec<DatabaseHost> = list_hosts(db)
        .await?
        .into_iter()
        .filter(|h| h.serves(node_id))
        .collect();
    if serving.is_empty() {
        return Err(DatabasesError::NoHost(format!(
            "no database host serves the servers of node {}: an administrator must add one",
            node_id.unwrap_or("none")
        )));
    }
    serving
        .into_iter()
        .filter(|h| !h.is_full())
        .min_by_key(|h| (h.databases, h.name.clone()))
        .ok_or_else(|| {
            DatabasesError::NoHost(
                "every database host that serves this server's node is full: an administrator must raise a limit or add a host"
                    .to_owned(),
            )
        })
}

// --------------------------------------------------------- databases

#[derive(sqlx::FromRow)]
struct DatabaseRow {
    id: String,
    server_id: String,
    host_id: String,
    name: String,
    username: String,
    password: String,
    remote: String,
    created_at: i64,
    updated_at: i64,
}

const COLUMNS: &str =
    "id, server_id, host_id, name, username, password, remote, created_at, updated_at";

impl TryFrom<DatabaseRow> for ServerDatabase {
    type Error = DbError;

    fn try_from(row: DatabaseRow) -> Result<Self, DbError> {
        Ok(ServerDatabase {
            id: row.id,
            server_id: row.server_id,
            host_id: row.host_id,
            name: row.name,
            username: row.username,
            remote: row.remote,
            created_at: from_micros(row.created_at)?,
            updated_at: from_micros(row.updated_at)?,
            sealed_password: row.password,
        })
    }
}

/// The server's databases, oldest first.
///
/// # Errors
///
/// Database errors.
pub async fn list(db: &Database, server_id: &str) -> Result<Vec<ServerDatabase>, DbError> {
    let rows: Vec<DatabaseRow> = on_pool!(db, |pool| {
        let mut qb = query_builder(pool, "SELECT ");
        qb.push(COLUMNS)
            .push(" FROM server_databases WHERE server_id = ")
            .push_bind(server_id)
            .push(" ORDER BY created_at, id");
        qb.build_query_as::<DatabaseRow>().fetch_all(pool).await?
    });
    rows.into_iter().map(ServerDatabase::try_from).collect()
}

/// Database `id` of `server_id`.
///
/// # Errors
///
/// Database errors.
pub async fn get(
    db: &Database,
    server_id: &str,
    id: &str,
) -> Result<Option<ServerDatabase>, DbError> {
    let row: Option<DatabaseRow> = on_pool!(db, |pool| {
        let mut qb = query_builder(pool, "SELECT ");
        qb.push(COLUMNS)
            .push(" FROM server_databases WHERE id = ")
            .push_bind(id)
            .push(" AND server_id = ")
            .push_bind(server_id);
        qb.build_query_as::<DatabaseRow>()
            .fetch_optional(pool)
            .await?
    });
    row.map(ServerDatabase::try_from).transpose()
}

/// The server's database limit ([`DEFAULT_LIMIT`] when none was set).
///
/// # Errors
///
/// Database errors.
pub async fn limit(db: &Database, server_id: &str) -> Result<u32, DbError> {
    let found: Option<i32> = on_pool!(db, |pool| {
        let mut qb = query_builder(
            pool,
            "SELECT max_databases FROM database_limits WHERE server_id = ",
        );
        qb.push_bind(server_id);
        qb.build_query_scalar::<i32>().fetch_optional(pool).await?
    });
    Ok(found.map_or(DEFAULT_LIMIT, |n| u32::try_from(n).unwrap_or(0)))
}

fn event(server_id: &str, make: impl FnOnce(ServerId) -> DatabaseEvent, actor: &Actor) -> NewEvent {
    NewEvent::new(make(ServerId::new(server_id))).actor(actor.clone())
}

/// Sets the server's database limit (at most [`MAX_LIMIT`]), recording
/// `database.limit.set`. Databases over a lowered limit stay.
///
/// # Errors
///
/// Database errors.
pub async fn set_limit(
    db: &Database,
    server_id: &str,
    limit: u32,
    actor: &Actor,
) -> Result<(), DbError> {
    let limit = limit.min(MAX_LIMIT);
    let recorded = event(
        server_id,
        |subject| DatabaseEvent::LimitSet {
            subject,
            data: DatabaseLimitSet { limit },
        },
        actor,
    );
    let stored = i32::try_from(limit).unwrap_or(i32::MAX);
    on_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        let mut qb = query_builder(pool, "DELETE FROM database_limits WHERE server_id = ");
        qb.push_bind(server_id);
        qb.build().execute(&mut *tx).await?;
        let mut qb = query_builder(
            pool,
            "INSERT INTO database_limits (server_id, max_databases, updated_at) VALUES (",
        );
        qb.separated(", ")
            .push_bind(server_id)
            .push_bind(stored)
            .push_bind(to_micros(now()));
        qb.push(")");
        qb.build().execute(&mut *tx).await?;
        tx.record(&recorded).await?;
        tx.commit().await?;
    });
    Ok(())
}

/// A database to create.
#[derive(Clone)]
pub struct NewDatabase {
    /// Its id (`sdb_…`, taken before so that hooks can name it).
    pub id: String,
    /// Its server.
    pub server_id: String,
    /// Its full name on the host ([`names::database_name`]).
    pub name: String,
    /// Its user ([`names::username`]).
    pub username: String,
    /// The user's password ([`names::password`]).
    pub password: String,
    /// Where the user may connect from.
    pub remote: String,
}

impl fmt::Debug for NewDatabase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewDatabase")
            .field("id", &self.id)
            .field("server_id", &self.server_id)
            .field("name", &self.name)
            .field("username", &self.username)
            .field("remote", &self.remote)
            .finish_non_exhaustive()
    }
}

/// A fresh database id.
pub fn new_id() -> String {
    format!("sdb_{}", uuid::Uuid::now_v7().simple())
}

/// Creates `new` on `host` and records it, with `database.created`. When
/// the row cannot be recorded, the database is dropped on the host again.
///
/// # Errors
///
/// [`DatabasesError::NameTaken`] (on the server, or on the host), the
/// host's errors, database errors.
pub async fn create(
    db: &Database,
    host: &DatabaseHost,
    new: &NewDatabase,
    actor: &Actor,
) -> Result<ServerDatabase, DatabasesError> {
    let endpoint = host.endpoint(db)?;
    let grant = Grant {
        database: &new.name,
        username: &new.username,
        password: &new.password,
        remote: &new.remote,
    };
    remote::create(&endpoint, &grant)
        .await
        .map_err(|e| DatabasesError::remote(host.label(), e))?;
    match insert(db, host, new, actor).await {
        Ok(database) => Ok(database),
        Err(error) => {
            if let Err(drop_error) =
                remote::drop_database(&endpoint, &new.name, &new.username, &new.remote).await
            {
                tracing::warn!(host = %host.label(), database = %new.name, error = %drop_error, "a database whose row could not be recorded is left on its host");
            }
            Err(match error {
                DbError::Conflict { .. } => DatabasesError::NameTaken(format!(
                    "the server has a database called {} already",
                    new.name
                )),
                other => other.into(),
            })
        }
    }
}

async fn insert(
    db: &Database,
    host: &DatabaseHost,
    new: &NewDatabase,
    actor: &Actor,
) -> Result<ServerDatabase, DbError> {
    let sealed = db
        .sealer()?
        .seal(&Purpose::server_database_password(&new.id), &new.password);
    let at = now();
    let recorded = event(
        &new.server_id,
        |subject| DatabaseEvent::Created {
            subject,
            data: DatabaseCreated {
                database_id: new.id.clone(),
                host_id: host.id.clone(),
                name: new.name.clone(),
                username: new.username.clone(),
                remote: new.remote.clone(),
            },
        },
        actor,
    )
    .occurred_at(at);
    on_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        let mut qb = query_builder(
            pool,
            "INSERT INTO server_databases (id, server_id, host_id, name, username, password, remote, created_at, updated_at) VALUES (",
        );
        qb.separated(", ")
            .push_bind(&new.id)
            .push_bind(&new.server_id)
            .push_bind(&host.id)
            .push_bind(&new.name)
            .push_bind(&new.username)
            .push_bind(&sealed)
            .push_bind(&new.remote)
            .push_bind(to_micros(at))
            .push_bind(to_micros(at));
        qb.push(")");
        qb.build().execute(&mut *tx).await?;
        tx.record(&recorded).await?;
        tx.commit().await?;
    });
    get(db, &new.server_id, &new.id)
        .await?
        .ok_or_else(|| DbError::Corrupt(format!("database {} vanished", new.id)))
}

/// The host `database` is on, with a message naming it.
async fn host_of(db: &Database, database: &ServerDatabase) -> Result<DatabaseHost, DatabasesError> {
    get_host(db, &database.host_id).await?.ok_or_else(|| {
        DatabasesError::Db(DbError::Corrupt(format!(
            "database {} is on host {}, which is gone",
            database.id, database.host_id
        )))
    })
}

/// Gives `database`'s user a new random password, on its host and then
/// in its row, recording `database.password.rotated`.
///
/// # Errors
///
/// The host's errors (the old password stays), database errors.
pub async fn rotate_password(
    db: &Database,
    database: &ServerDatabase,
    actor: &Actor,
) -> Result<ServerDatabase, DatabasesError> {
    let host = host_of(db, database).await?;
    let endpoint = host.endpoint(db)?;
    let password = names::password();
    remote::set_password(&endpoint, &database.grant(&password))
        .await
        .map_err(|e| DatabasesError::remote(host.label(), e))?;
    let sealed = db
        .sealer()?
        .seal(&Purpose::server_database_password(&database.id), &password);
    let at = now();
    let recorded = event(
        &database.server_id,
        |subject| DatabaseEvent::PasswordRotated {
            subject,
            data: DatabaseRef {
                database_id: database.id.clone(),
            },
        },
        actor,
    )
    .occurred_at(at);
    let stored: Result<(), DbError> = async {
        on_pool!(db, |pool| {
            let mut tx = pool.begin().await?;
            let mut qb = query_builder(pool, "UPDATE server_databases SET password = ");
            qb.push_bind(&sealed)
                .push(", updated_at = ")
                .push_bind(to_micros(at))
                .push(" WHERE id = ")
                .push_bind(&database.id);
            if qb.build().execute(&mut *tx).await?.rows_affected() > 0 {
                tx.record(&recorded).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }
    .await;
    if let Err(error) = stored {
        tracing::error!(database = %database.id, %error, "a database password was changed on its host but could not be stored: rotate it again");
        return Err(error.into());
    }
    get(db, &database.server_id, &database.id)
        .await?
        .ok_or_else(|| DatabasesError::NotFound(database.id.clone()))
}

/// Removes `database`'s row with `database.deleted` (`dropped`: whether
/// it was dropped on its host).
async fn remove(
    db: &Database,
    database: &ServerDatabase,
    dropped: bool,
    actor: &Actor,
) -> Result<bool, DbError> {
    let recorded = event(
        &database.server_id,
        |subject| DatabaseEvent::Deleted {
            subject,
            data: DatabaseDeleted {
                database_id: database.id.clone(),
                host_id: database.host_id.clone(),
                name: database.name.clone(),
                dropped,
            },
        },
        actor,
    );
    Ok(on_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        let mut qb = query_builder(pool, "DELETE FROM server_databases WHERE id = ");
        qb.push_bind(&database.id);
        let changed = qb.build().execute(&mut *tx).await?.rows_affected() > 0;
        if changed {
            tx.record(&recorded).await?;
        }
        tx.commit().await?;
        changed
    }))
}

/// Drops `database` and its user on its host, then removes its row.
///
/// # Errors
///
/// The host's errors (nothing is removed then), database errors.
pub async fn delete(
    db: &Database,
    database: &ServerDatabase,
    actor: &Actor,
) -> Result<(), DatabasesError> {
    let host = host_of(db, database).await?;
    let endpoint = host.endpoint(db)?;
    remote::drop_database(
        &endpoint,
        &database.name,
        &database.username,
        &database.remote,
    )
    .await
    .map_err(|e| DatabasesError::remote(host.label(), e))?;
    remove(db, database, true, actor).await?;
    Ok(())
}

/// Forgets the databases of deleted server `server_id`: each is dropped
/// on its host where the host lets it (best effort: a failure is logged
/// and recorded as `dropped: false`), then its row goes; the server's
/// limit goes too. Returns how many databases there were.
///
/// # Errors
///
/// Database errors.
pub async fn forget_server(db: &Database, server_id: &str) -> Result<usize, DbError> {
    let databases = list(db, server_id).await?;
    let system = Actor::system();
    for database in &databases {
        let dropped = match get_host(db, &database.host_id).await? {
            Some(host) => {
                let result = match host.endpoint(db) {
                    Ok(endpoint) => remote::drop_database(
                        &endpoint,
                        &database.name,
                        &database.username,
                        &database.remote,
                    )
                    .await
                    .map_err(|e| e.to_string()),
                    Err(error) => Err(error.to_string()),
                };
                match result {
                    Ok(()) => true,
                    Err(error) => {
                        tracing::warn!(server = server_id, database = %database.name, host = %host.label(), %error, "a deleted server's database could not be dropped on its host; it is forgotten");
                        false
                    }
                }
            }
            None => false,
        };
        remove(db, database, dropped, &system).await?;
    }
    let cleared = event(
        server_id,
        |subject| DatabaseEvent::LimitSet {
            subject,
            data: DatabaseLimitSet { limit: 0 },
        },
        &system,
    );
    on_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        let mut qb = query_builder(pool, "DELETE FROM database_limits WHERE server_id = ");
        qb.push_bind(server_id);
        if qb.build().execute(&mut *tx).await?.rows_affected() > 0 {
            tx.record(&cleared).await?;
        }
        tx.commit().await?;
    });
    Ok(databases.len())
}

/// The hook payload (API 0.2.0) of a database: `id`, its server, its
/// name on the host, its host and user.
pub fn hook_payload(
    id: &str,
    server_id: &str,
    name: &str,
    host: &DatabaseHost,
    username: &str,
    remote: &str,
) -> Payload {
    Payload::Database(DatabaseInfo {
        server_id: server_id.to_owned(),
        id: id.to_owned(),
        name: name.to_owned(),
        host_id: host.id.clone(),
        host_kind: host.kind.as_str().to_owned(),
        username: username.to_owned(),
        remote: remote.to_owned(),
    })
}
