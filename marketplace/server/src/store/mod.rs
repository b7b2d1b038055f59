//! The registry's database: publishers, keys, packages, releases and logs
//! ([`registry`]), and prices, Panel instances, checkouts, entitlements and
//! Stripe events ([`billing`]), on SQLite or PostgreSQL.
//!
//! # Design
//!
//! As in the Panel (`cap_panel::db`), [`Store`] wraps an enum over the
//! typed sqlx pools rather than `sqlx::Any`: each backend has its own
//! driver, error codes and migrations directory, and every query is
//! compiled once per backend. The SQL itself is written once: it uses
//! `$n` placeholders (which both drivers accept) and portable types only
//! (`TEXT`, `BIGINT`; flags are `0`/`1`, lists are `,a,b,` strings matched
//! with `LIKE`), and the crate-internal `on_pool!` and `on_tx!` macros
//! expand each body once per backend. Rows are read through
//! `sqlx::FromRow` records, which decode from either backend.
//!
//! # Migrations
//!
//! The schema is `migrations/sqlite` and `migrations/postgres`, numbered,
//! embedded with [`sqlx::migrate!`] and run by [`Store::connect`] before
//! the handle is returned. A migration never changes once it has landed:
//! sqlx refuses to start against a database whose applied migration
//! differs from the embedded one. The two directories hold the same
//! statements, CHECK constraints included, so both backends refuse the
//! same rows.
//!
//! Databases created before numbered migrations (with the Marketplace's
//! own `schema_migrations` table) are adopted on first open (`legacy.rs`):
//! brought to that schema's last version, then recorded as holding
//! migration 1, which is that schema; the later migrations then run as on
//! any database.
//!
//! # Transactions
//!
//! Every change that touches a log runs in one [`Tx`] with the log append,
//! so a package row, a release and its log entry appear together or not
//! at all. The log's `(package_id, seq)` primary key turns a concurrent
//! append into a unique violation instead of a fork.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

pub mod billing;
mod legacy;
pub mod registry;

use legacy::Adopt as _;

pub use billing::{ACTIVE, Checkout, Entitlement, PriceRow, REVOKED};
pub use registry::{
    Price, Publisher, Search, StoredKey, StoredPackage, StoredRelease, list_column,
};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// Runs `$body` once per backend with `$pool` bound to that backend's
/// pool, so SQL that is the same on both is written once.
macro_rules! on_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &$store.pool {
            $crate::store::Pool::Sqlite($pool) => $body,
            $crate::store::Pool::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

/// Runs `$body` once per backend with `$conn` bound to the transaction's
/// connection (`&mut SqliteConnection` or `&mut PgConnection`; pass it to
/// each query as `&mut *$conn`).
macro_rules! on_tx {
    ($tx:expr, |$conn:ident| $body:expr) => {
        match &mut $tx.0 {
            $crate::store::TxInner::Sqlite(tx) => {
                let $conn: &mut sqlx::SqliteConnection = &mut *tx;
                $body
            }
            $crate::store::TxInner::Postgres(tx) => {
                let $conn: &mut sqlx::PgConnection = &mut *tx;
                $body
            }
        }
    };
}
pub(crate) use on_tx;

/// Which database server a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// SQLite, embedded (the default, `<data>/marketplace.db`).
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

impl Backend {
    /// The backend a database URL selects: `sqlite:…`, or `postgres://…` /
    /// `postgresql://…`.
    ///
    /// # Errors
    ///
    /// [`StoreError::InvalidUrl`] for any other scheme.
    pub fn of_url(url: &str) -> Result<Backend, StoreError> {
        let scheme = url.split(':').next().unwrap_or_default();
        match scheme.to_ascii_lowercase().as_str() {
            "sqlite" => Ok(Backend::Sqlite),
            "postgres" | "postgresql" => Ok(Backend::Postgres),
            _ => Err(StoreError::InvalidUrl(format!(
                "unsupported scheme {scheme:?}: the Marketplace stores its data in SQLite (sqlite:) or PostgreSQL (postgres:, postgresql:)"
            ))),
        }
    }
}

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL names no supported backend or does not parse.
    #[error("marketplace database URL: {0}")]
    InvalidUrl(String),
    /// Connecting, or adopting a database from before numbered
    /// migrations, failed.
    #[error("marketplace database: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration failed, or the database holds migrations this build
    /// does not know or that differ from this build's.
    #[error("marketplace database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// The typed pool behind a [`Store`].
#[derive(Debug, Clone)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// The registry's database. Cheap to clone; clones share the pool.
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) pool: Pool,
}

/// A database transaction; dropped without [`Tx::commit`], it rolls back.
#[derive(Debug)]
pub struct Tx(pub(crate) TxInner);

#[derive(Debug)]
pub(crate) enum TxInner {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

impl Tx {
    /// Commits.
    ///
    /// # Errors
    ///
    /// The database's, e.g. a deferred constraint violation.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self.0 {
            TxInner::Sqlite(tx) => tx.commit().await,
            TxInner::Postgres(tx) => tx.commit().await,
        }
    }

    /// Rolls back.
    ///
    /// # Errors
    ///
    /// The database's.
    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        match self.0 {
            TxInner::Sqlite(tx) => tx.rollback().await,
            TxInner::Postgres(tx) => tx.rollback().await,
        }
    }
}

impl Store {
    /// Connects to `url` (`sqlite:…` or `postgres://…`) with at most
    /// `max_connections` connections, adopts a database from before
    /// numbered migrations, and runs the pending migrations.
    ///
    /// SQLite databases run in WAL mode with foreign keys on and a
    /// 5-second busy timeout.
    ///
    /// # Errors
    ///
    /// [`StoreError::InvalidUrl`] for an unsupported or unparseable URL,
    /// [`StoreError::Database`] when the server cannot be reached,
    /// [`StoreError::Migrate`] when a migration fails or the database
    /// holds migrations this build does not know.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Store, StoreError> {
        let invalid = |e: sqlx::Error| StoreError::InvalidUrl(e.to_string());
        let pool = match Backend::of_url(url)? {
            Backend::Sqlite => {
                let options = SqliteConnectOptions::from_str(url)
                    .map_err(invalid)?
                    .journal_mode(SqliteJournalMode::Wal)
                    .busy_timeout(Duration::from_secs(5))
                    .foreign_keys(true);
                let pool = SqlitePoolOptions::new()
                    .max_connections(max_connections)
                    .connect_with(options)
                    .await?;
                Pool::Sqlite(pool)
            }
            Backend::Postgres => {
                let options = PgConnectOptions::from_str(url).map_err(invalid)?;
                let pool = PgPoolOptions::new()
                    .max_connections(max_connections)
                    .connect_with(options)
                    .await?;
                Pool::Postgres(pool)
            }
        };
        let store = Store { pool };
        store.migrate().await?;
        Ok(store)
    }

    /// Adopts a database from before numbered migrations, then runs the
    /// pending migrations. [`Store::connect`] already did; running again is
    /// a no-op.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`] or [`StoreError::Migrate`].
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match &self.pool {
            Pool::Sqlite(pool) => {
                pool.adopt(&SQLITE_MIGRATIONS).await?;
                SQLITE_MIGRATIONS.run(pool).await?;
            }
            Pool::Postgres(pool) => {
                pool.adopt(&POSTGRES_MIGRATIONS).await?;
                POSTGRES_MIGRATIONS.run(pool).await?;
            }
        }
        Ok(())
    }

    /// The backend this store talks to.
    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> bool {
        on_pool!(self, |pool| sqlx::query("SELECT 1")
            .execute(pool)
            .await
            .is_ok())
    }

    /// Closes the pool.
    pub async fn close(&self) {
        on_pool!(self, |pool| pool.close().await)
    }

    /// Starts a transaction.
    ///
    /// # Errors
    ///
    /// The database's.
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        Ok(Tx(match &self.pool {
            // IMMEDIATE: the write lock is taken (waiting up to the busy
            // timeout) when the transaction starts. A deferred one that read
            // first and then writes while another connection wrote in
            // between fails at once with SQLITE_BUSY, without waiting (the
            // likely cause of a 500 a test met on SQLite only, under load).
            Pool::Sqlite(pool) => TxInner::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?),
            Pool::Postgres(pool) => TxInner::Postgres(pool.begin().await?),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_scheme_picks_the_backend() {
        assert_eq!(
            Backend::of_url("sqlite://m.db?mode=rwc").ok(),
            Some(Backend::Sqlite)
        );
        assert_eq!(
            Backend::of_url("postgres://h/d").ok(),
            Some(Backend::Postgres)
        );
        assert_eq!(
            Backend::of_url("PostgreSQL://h/d").ok(),
            Some(Backend::Postgres)
        );
        assert!(matches!(
            Backend::of_url("mysql://h/d"),
            Err(StoreError::InvalidUrl(_))
        ));
    }
}
