//! The Panel's database: SQLite, PostgreSQL or MySQL/MariaDB behind one
//! [`Database`] handle.
//!
//! # Design
//!
//! [`Database`] wraps an enum over the three typed sqlx pools rather than
//! `sqlx::Any`. Each backend keeps its native types (`JSONB` on PostgreSQL,
//! `JSON` on MySQL, `STRICT` tables on SQLite), its own error codes and its
//! own migrations, and every query is type-checked per backend:
//!
//! - **SQL that is the same everywhere** is written once, usually with
//!   [`sqlx::QueryBuilder`], which emits each dialect's placeholders (`?` on
//!   SQLite and MySQL, `$1` on PostgreSQL); the crate-internal `on_pool!`
//!   macro expands the body once per backend.
//! - **SQL that differs** (`RETURNING` vs `LAST_INSERT_ID()`, `ON CONFLICT`
//!   vs `ON DUPLICATE KEY`) is one `match` arm per backend, side by side.
//!
//! Each backend has its own migrations directory (`migrations/sqlite`,
//! `migrations/postgres`, `migrations/mysql`), embedded in the binary with
//! [`sqlx::migrate!`] and run by [`Database::connect`] before the handle is
//! returned. Migrations are numbered and never edited once they have landed:
//! sqlx refuses to start against a database whose applied migration differs
//! from the embedded one.
//!
//! Portable column conventions, so the same Rust code reads every backend:
//! timestamps are `BIGINT` microseconds since the Unix epoch (UTC) — exact,
//! ordered, and free of per-session time-zone settings; identifiers of
//! other rows (users, servers…) are strings, so the audit log outlives the
//! rows it mentions; free-form data is JSON. On MySQL, text columns use the
//! `utf8mb4_bin` collation so that comparisons are case-sensitive as on the
//! other two.
//!
//! Errors are [`DbError`]s: constraint violations are told apart (a unique
//! violation is [`DbError::Conflict`]), an unreachable server is
//! [`DbError::Unavailable`], and nothing else about the SQL escapes to HTTP
//! clients.
//!
//! # The rule: no change without its event
//!
//! Every change the Panel makes is recorded as a typed
//! [`DomainEvent`] ([`domain`]) in the event store ([`events`]), in the
//! same transaction as the change. The event store is the audit log, the
//! source replay rebuilds the projections from ([`replay`]), and the clock
//! of the read caches ([`ReadVersion`]): a cached page or session stays
//! valid exactly as long as no event was appended. A write without its
//! event would be missing from the audit log, lost by replay, and served
//! stale from the caches.
//!
//! So the rule is enforced rather than documented only (`db/write.rs`):
//!
//! - Outside this module, no code holds a sqlx pool. `on_pool!` hands it a
//!   `Reader`, which runs `SELECT`s and refuses anything else.
//! - The only write transaction is a `Recorder` (`Reader::begin`).
//!   Statements run on it as on any transaction; `Recorder::record`
//!   appends a [`NewEvent`]; `Recorder::commit` rolls back and fails with
//!   [`DbError::Unrecorded`] when rows changed and no event was recorded.
//! - The few tables that change without events on purpose (an Agent's
//!   heartbeat, the bookkeeping of credentials in use, plugins' key/value
//!   data, Marketplace licenses) are written only under a named
//!   `Unrecorded` reason, which lists the tables it covers.
//! - Inside this module, replay (which rebuilds projections from the
//!   events) and the one-time sealing of legacy secrets use the pool
//!   directly.
//!
//! # Example
//!
//! ```
//! use cap_panel::db::{Actor, Database, DatabaseLocation, DatabaseOptions};
//! use serde_json::json;
//!
//! # tokio::runtime::Runtime::new().expect("a runtime").block_on(async {
//! let dir = tempfile::tempdir()?;
//! let options = DatabaseOptions::new(DatabaseLocation::SqliteFile(dir.path().join("panel.db")));
//! let db = Database::connect(&options).await?; // connects and migrates
//! // A setting and its `setting.updated` event, in one transaction.
//! db.settings().put("motd", &json!("hello"), &Actor::system()).await?;
//! let page = db.events().query(&Default::default()).await?;
//! assert_eq!(page.events[0].kind, "setting.updated");
//! db.close().await;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).expect("the example runs");
//! ```

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use time::OffsetDateTime;

use crate::secrets::{Sealer, SecretKey};

pub mod domain;
mod error;
pub mod events;
mod read_version;
pub mod replay;
mod sealed;
pub mod settings;
mod write;

pub use domain::DomainEvent;
pub use error::DbError;
pub use events::{
    Actor, Event, EventFilter, EventId, EventPage, EventQuery, EventStore, MAX_PAGE_SIZE, NewEvent,
    Order, Subject,
};
pub use read_version::ReadVersion;
pub use settings::{Setting, Settings};
pub(crate) use write::{Reader, Unrecorded};

/// Runs `$body` once per backend with `$pool` bound to that backend's
/// [`Reader`], so SQL that is the same on every backend is written once
/// and still type-checked per backend.
macro_rules! on_pool {
    ($db:expr, |$pool:ident| $body:expr) => {
        match &$db.pool {
            $crate::db::Pool::Sqlite($pool) => $body,
            $crate::db::Pool::Postgres($pool) => $body,
            $crate::db::Pool::MySql($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");
static MYSQL_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/mysql");

/// Which database server a [`Database`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// SQLite, embedded (the default).
    Sqlite,
    /// PostgreSQL.
    Postgres,
    /// MySQL or MariaDB.
    MySql,
}

impl Backend {
    /// A stable lowercase name: `sqlite`, `postgres` or `mysql`.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
            Backend::MySql => "mysql",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the database is.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseLocation {
    /// A SQLite file, created (with its directory) if missing.
    SqliteFile(PathBuf),
    /// A URL: `sqlite:…`, `postgres://…` / `postgresql://…`, or
    /// `mysql://…` / `mariadb://…`.
    Url(String),
}

impl DatabaseLocation {
    /// The backend this location selects.
    ///
    /// # Errors
    ///
    /// [`DbError::InvalidUrl`] for a URL with any other scheme.
    pub fn backend(&self) -> Result<Backend, DbError> {
        match self {
            DatabaseLocation::SqliteFile(_) => Ok(Backend::Sqlite),
            DatabaseLocation::Url(url) => {
                let scheme = url.split(':').next().unwrap_or_default();
                match scheme.to_ascii_lowercase().as_str() {
                    "sqlite" => Ok(Backend::Sqlite),
                    "postgres" | "postgresql" => Ok(Backend::Postgres),
                    "mysql" | "mariadb" => Ok(Backend::MySql),
                    _ => Err(DbError::InvalidUrl(format!(
                        "unsupported scheme {scheme:?}: expected sqlite, postgres, postgresql, mysql or mariadb"
                    ))),
                }
            }
        }
    }
}

/// Shows the location with any password replaced, so it is safe to log.
impl fmt::Display for DatabaseLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatabaseLocation::SqliteFile(path) => write!(f, "sqlite file {}", path.display()),
            DatabaseLocation::Url(url) => match url::Url::parse(url) {
                Ok(mut parsed) => {
                    if parsed.password().is_some() {
                        // Cannot fail: a URL with a password has a host.
                        let _ = parsed.set_password(Some("REDACTED"));
                    }
                    f.write_str(parsed.as_str())
                }
                Err(_) => f.write_str("<unparseable database URL>"),
            },
        }
    }
}

/// Same as `Display`: never shows a password.
impl fmt::Debug for DatabaseLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// How to connect: where, and the pool's shape.
#[derive(Debug, Clone)]
pub struct DatabaseOptions {
    location: DatabaseLocation,
    max_connections: u32,
    acquire_timeout: Duration,
    secret_key: Option<SecretKey>,
}

impl DatabaseOptions {
    /// Options for `location` with a pool of 10 connections and a 10-second
    /// acquire timeout.
    pub fn new(location: DatabaseLocation) -> Self {
        DatabaseOptions {
            location,
            max_connections: 10,
            acquire_timeout: Duration::from_secs(10),
            secret_key: None,
        }
    }

    /// Sets the key that seals secrets at rest (see [`crate::secrets`]).
    /// Without one, the handle can neither read nor write sealed secrets
    /// ([`crate::secrets::SealError::NoKey`]).
    pub fn secret_key(mut self, key: SecretKey) -> Self {
        self.secret_key = Some(key);
        self
    }

    /// Sets the maximum number of pooled connections (at least 1).
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// Sets how long to wait for a connection, including the first one,
    /// before reporting [`DbError::Unavailable`].
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// Where the database is.
    pub fn location(&self) -> &DatabaseLocation {
        &self.location
    }
}

/// The typed pool behind a [`Database`], read-only outside this module
/// (see [`write`]). Crate-internal modules match on it (usually through
/// `on_pool!`) to run backend-specific SQL.
#[derive(Debug, Clone)]
pub(crate) enum Pool {
    Sqlite(Reader<sqlx::Sqlite>),
    Postgres(Reader<sqlx::Postgres>),
    MySql(Reader<sqlx::MySql>),
}

/// A migrated connection pool to one of the supported backends. Cheap to
/// clone; clones share the pool.
#[derive(Debug, Clone)]
pub struct Database {
    pub(crate) pool: Pool,
    /// Bumped by [`Database::invalidate_reads`]; shared by clones.
    read_epoch: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Seals and opens secrets at rest; `None` without a secret key.
    sealer: Option<std::sync::Arc<Sealer>>,
}

impl Database {
    /// Connects, then runs the backend's pending migrations.
    ///
    /// SQLite files are created with their parent directory, in WAL mode
    /// with foreign keys on. An in-memory SQLite URL (`sqlite::memory:`)
    /// gets a single connection, since every connection would otherwise see
    /// its own empty database.
    ///
    /// # Errors
    ///
    /// [`DbError::InvalidUrl`] for a URL that does not parse or names an
    /// unsupported scheme, [`DbError::Unavailable`] when the server cannot be
    /// reached within the acquire timeout, [`DbError::Migrate`] when a
    /// migration fails or the database holds migrations this build does not
    /// know, [`DbError::Sealed`] with
    /// [`SealError::WrongKey`](crate::secrets::SealError::WrongKey) when the
    /// options' secret key is not the one the database was sealed with.
    ///
    /// With a secret key, secrets a database holds from before sealing
    /// existed are sealed now (see [`crate::secrets`]).
    pub async fn connect(options: &DatabaseOptions) -> Result<Database, DbError> {
        let db = Self::connect_without_migrating(options).await?;
        db.migrate().await?;
        if db.sealer.is_some() {
            sealed::check_key_and_seal_legacy(&db).await?;
        }
        Ok(db)
    }

    async fn connect_without_migrating(options: &DatabaseOptions) -> Result<Database, DbError> {
        let invalid = |e: sqlx::Error| DbError::InvalidUrl(e.to_string());
        let pool = match (&options.location, options.location.backend()?) {
            (DatabaseLocation::SqliteFile(path), _) => {
                let unavailable = |e: std::io::Error| DbError::Unavailable(Box::new(e));
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    let mut builder = std::fs::DirBuilder::new();
                    builder.recursive(true);
                    #[cfg(unix)]
                    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
                    builder.create(dir).map_err(unavailable)?;
                }
                // A new database file is private from its first byte (see
                // `crate::secrets::files`); SQLite's `-wal` and `-shm`
                // files take its mode.
                match crate::secrets::files::create_private_file(path) {
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(unavailable(e)),
                }
                let connect = SqliteConnectOptions::new().filename(path);
                Pool::Sqlite(Reader::new(
                    Self::sqlite_pool(connect, false, options).await?,
                ))
            }
            (DatabaseLocation::Url(url), Backend::Sqlite) => {
                let connect = SqliteConnectOptions::from_str(url).map_err(invalid)?;
                let in_memory = url.contains(":memory:") || url.contains("mode=memory");
                Pool::Sqlite(Reader::new(
                    Self::sqlite_pool(connect, in_memory, options).await?,
                ))
            }
            (DatabaseLocation::Url(url), Backend::Postgres) => {
                let connect = PgConnectOptions::from_str(url).map_err(invalid)?;
                let pool = PgPoolOptions::new()
                    .max_connections(options.max_connections)
                    .acquire_timeout(options.acquire_timeout)
                    .connect_with(connect)
                    .await
                    .map_err(DbError::from)?;
                Pool::Postgres(Reader::new(pool))
            }
            (DatabaseLocation::Url(url), Backend::MySql) => {
                // sqlx knows the `mysql` scheme only; MariaDB speaks the same protocol.
                let url = match url.get(..8) {
                    Some(prefix) if prefix.eq_ignore_ascii_case("mariadb:") => {
                        format!("mysql:{}", &url[8..])
                    }
                    _ => url.clone(),
                };
                let connect = MySqlConnectOptions::from_str(&url)
                    .map_err(invalid)?
                    .charset("utf8mb4")
                    .collation("utf8mb4_bin");
                let pool = MySqlPoolOptions::new()
                    .max_connections(options.max_connections)
                    .acquire_timeout(options.acquire_timeout)
                    .connect_with(connect)
                    .await
                    .map_err(DbError::from)?;
                Pool::MySql(Reader::new(pool))
            }
        };
        Ok(Database {
            pool,
            read_epoch: Default::default(),
            sealer: options
                .secret_key
                .as_ref()
                .map(|key| std::sync::Arc::new(Sealer::new(key))),
        })
    }

    async fn sqlite_pool(
        connect: SqliteConnectOptions,
        in_memory: bool,
        options: &DatabaseOptions,
    ) -> Result<SqlitePool, DbError> {
        // secure_delete: deleted rows (a replaced secret) are overwritten,
        // not left readable in free pages of the file.
        let connect = connect
            .create_if_missing(true)
            .foreign_keys(true)
            .pragma("secure_delete", "ON")
            .busy_timeout(Duration::from_secs(5));
        let (connect, pool) = if in_memory {
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
            (connect, pool)
        } else {
            let connect = connect
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal);
            let pool = SqlitePoolOptions::new().max_connections(options.max_connections);
            (connect, pool)
        };
        pool.acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await
            .map_err(DbError::from)
    }

    /// Runs the backend's pending migrations. [`Database::connect`] already
    /// did; running again is a no-op.
    ///
    /// # Errors
    ///
    /// [`DbError::Migrate`].
    pub async fn migrate(&self) -> Result<(), DbError> {
        match &self.pool {
            Pool::Sqlite(pool) => SQLITE_MIGRATIONS.run(pool.raw()).await?,
            Pool::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool.raw()).await?,
            Pool::MySql(pool) => MYSQL_MIGRATIONS.run(pool.raw()).await?,
        }
        Ok(())
    }

    /// The backend this handle talks to.
    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
            Pool::MySql(_) => Backend::MySql,
        }
    }

    /// Checks the database answers a query.
    ///
    /// # Errors
    ///
    /// [`DbError::Unavailable`] when no connection can be had, or another
    /// [`DbError`] if the query fails.
    pub async fn ping(&self) -> Result<(), DbError> {
        on_pool!(self, |pool| {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }

    /// The append-only event store (the audit log).
    pub fn events(&self) -> EventStore<'_> {
        EventStore::new(self)
    }

    /// The key/value settings.
    pub fn settings(&self) -> Settings<'_> {
        Settings::new(self)
    }

    /// The sealer of secrets at rest.
    ///
    /// # Errors
    ///
    /// [`SealError::NoKey`](crate::secrets::SealError::NoKey) when the
    /// handle was opened without a secret key.
    pub(crate) fn sealer(&self) -> Result<&Sealer, DbError> {
        self.sealer
            .as_deref()
            .ok_or(DbError::Sealed(crate::secrets::SealError::NoKey))
    }

    /// Closes every pooled connection, waiting for checked-out ones to
    /// come back.
    pub async fn close(&self) {
        on_pool!(self, |pool| pool.raw().close().await)
    }
}

/// A query builder for `pool`'s dialect; naming the pool lets the same
/// code inside `on_pool!` infer the backend.
pub(crate) fn query_builder<P: Dialect>(_pool: &P, init: &str) -> sqlx::QueryBuilder<P::DB> {
    sqlx::QueryBuilder::new(init)
}

/// Deletes the one row of settings table `table` (`id = 1`: the mail
/// settings, the backup storage), recording `event` in the same
/// transaction; `false`, with nothing recorded, when there was none.
///
/// # Errors
///
/// Database errors.
pub(crate) async fn clear_singleton(
    db: &Database,
    table: &'static str,
    event: &NewEvent,
) -> Result<bool, DbError> {
    let sql = format!("DELETE FROM {table} WHERE id = 1");
    Ok(on_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        let mut qb = query_builder(pool, &sql);
        let removed = qb.build().execute(&mut *tx).await?.rows_affected() > 0;
        if removed {
            tx.record(event).await?;
        }
        tx.commit().await?;
        removed
    }))
}

/// Something that belongs to one backend: a [`Reader`] or a sqlx pool.
pub(crate) trait Dialect {
    /// The backend.
    type DB: sqlx::Database;
}

impl<DB: sqlx::Database> Dialect for Reader<DB> {
    type DB = DB;
}

impl<DB: sqlx::Database> Dialect for sqlx::Pool<DB> {
    type DB = DB;
}

/// The current time, truncated to the microseconds the database stores, so
/// that a value written and read back compares equal.
pub fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    let micros = t.nanosecond() / 1_000;
    t.replace_nanosecond(micros * 1_000).unwrap_or(t)
}

/// Converts a timestamp to the stored form: microseconds since the Unix
/// epoch. Saturates outside `i64` (about ±292,000 years), which
/// `OffsetDateTime` cannot reach.
pub(crate) fn to_micros(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000).unwrap_or(if t.unix_timestamp() < 0 {
        i64::MIN
    } else {
        i64::MAX
    })
}

/// Converts a stored timestamp back.
pub(crate) fn from_micros(micros: i64) -> Result<OffsetDateTime, DbError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
        .map_err(|e| DbError::Corrupt(format!("timestamp {micros} out of range: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_the_password_when_showing_a_url() {
        let location = DatabaseLocation::Url("postgres://cap:hunter2@db.internal/cap".into());
        let shown = location.to_string();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("db.internal"), "{shown}");
        assert!(!format!("{location:?}").contains("hunter2"));
    }

    #[test]
    fn picks_the_backend_from_the_url_scheme() {
        let backend = |url: &str| DatabaseLocation::Url(url.into()).backend();
        assert_eq!(backend("sqlite::memory:").ok(), Some(Backend::Sqlite));
        assert_eq!(backend("postgresql://h/d").ok(), Some(Backend::Postgres));
        assert_eq!(backend("postgres://h/d").ok(), Some(Backend::Postgres));
        assert_eq!(backend("mysql://h/d").ok(), Some(Backend::MySql));
        assert_eq!(backend("MariaDB://h/d").ok(), Some(Backend::MySql));
        assert!(matches!(backend("redis://h"), Err(DbError::InvalidUrl(_))));
    }

    #[test]
    fn round_trips_timestamps_through_microseconds() {
        let t = now();
        assert_eq!(from_micros(to_micros(t)).ok(), Some(t));
        assert_eq!(t.nanosecond() % 1_000, 0);
    }
}
