//! Access to the pools: reads anywhere, writes only with their event.
//!
//! Outside [`crate::db`], code never holds a sqlx pool. `on_pool!` hands
//! it a [`Reader`], which runs `SELECT` statements and nothing else. A
//! change starts a [`Recorder`] ([`Reader::begin`]): a transaction whose
//! [`Recorder::commit`] refuses, and rolls back, a transaction that changed
//! rows without recording a [`DomainEvent`](super::DomainEvent)
//! ([`Recorder::record`]). So every committed change of a projection moves
//! the event store's head with it, which is what the read caches
//! ([`super::ReadVersion`]) rely on.
//!
//! Some tables change without an event on purpose; each such write names
//! its [`Unrecorded`] reason, and may touch only the tables that reason
//! lists ([`Reader::unrecorded`] for one statement,
//! [`Reader::begin_unrecorded`] for a transaction that records an event
//! only sometimes).
//!
//! # How the statements are checked
//!
//! Every statement's SQL is read before it runs: a statement that does not
//! start with `SELECT` is a write, to the table named after `INSERT INTO`,
//! `UPDATE` or `DELETE FROM` (any other statement is a write to an unnamed
//! table). Writes through a [`Reader`] fail before they reach the
//! database; writes inside a [`Recorder`] are noted when they change at
//! least one row (a conditional write that changed nothing needs no
//! event). This is a check of the SQL this crate writes, not a sandbox.

use std::collections::BTreeSet;
use std::fmt;
use std::ops::{Deref, DerefMut};

use futures::future::BoxFuture;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use sqlx::{Describe, Either, Execute, Executor, SqlStr};

use super::events::AppendEvent;
use super::{DbError, Event, NewEvent};

/// Why a write records no event, and the only tables it may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unrecorded {
    /// An Agent's heartbeat: `nodes.last_seen_at`, and `nodes.online` when
    /// it did not change. It moves every few seconds; replay restores it
    /// from the last `node.online`, and no cached page shows it.
    Liveness,
    /// The bookkeeping of credentials in use: an API key's
    /// `last_used_at`, refresh-token rotation, login challenges, TOTP time
    /// steps and failed attempts, deleting signing keys no longer
    /// accepted, and one-time links being used or mailed. It changes on
    /// every sign-in, holds secrets' digests, and
    /// is read without caching.
    Credentials,
    /// A plugin's own key/value data ([`crate::plugin_kv`]): content, not
    /// a change of the Panel's state.
    PluginData,
    /// Plugins' timers and the record of their firings
    /// ([`crate::timers`]): the plugins' own scheduling data, armed and
    /// leased many times a minute; each firing's outcome is its row in
    /// `plugin_timer_runs`, and what a plugin does when it fires is
    /// recorded where it happens (a console command's event, say).
    PluginTimers,
    /// How far a server's transfer to another node got
    /// ([`crate::servers::transfers`]): its stage and bytes, written about
    /// once a second while it streams, and its end when nothing else
    /// changes then. The transfer's start, the move and a failure that
    /// frees the server are recorded as `server.transfer.*` events.
    TransferProgress,
    /// The Marketplace client's bookkeeping: stored licenses, this
    /// Panel's instance registration, and its lockfile, requests and
    /// pinned trust ([`crate::marketplace`]).
    Marketplace,
}

impl Unrecorded {
    /// The tables a write for this reason may change.
    pub(crate) fn tables(self) -> &'static [&'static str] {
        match self {
            Unrecorded::Liveness => &["nodes"],
            Unrecorded::Credentials => &[
                "api_keys",
                "refresh_tokens",
                "login_challenges",
                "totp_credentials",
                "jwt_keys",
                "account_links",
            ],
            Unrecorded::PluginData => &["plugin_kv"],
            Unrecorded::PluginTimers => &["plugin_timers", "plugin_timer_runs"],
            Unrecorded::TransferProgress => &["server_transfers"],
            Unrecorded::Marketplace => &[
                "marketplace_licenses",
                "marketplace_instance",
                "marketplace_state",
            ],
        }
    }

    fn allows(allowance: Option<Unrecorded>, table: &str) -> bool {
        allowance.is_some_and(|reason| reason.tables().contains(&table))
    }
}

/// What a statement does, as far as the checks here care.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Statement {
    /// A `SELECT`.
    Read,
    /// Anything else, with the table it changes (`?` if it names none
    /// this module recognises).
    Write(String),
}

impl Statement {
    fn of(sql: &str) -> Statement {
        let mut words = sql
            .split(|c: char| c.is_whitespace() || c == '(')
            .filter(|w| !w.is_empty());
        let first = words.next().unwrap_or_default().to_ascii_uppercase();
        let table = match first.as_str() {
            "SELECT" => return Statement::Read,
            // Past `INTO` or `FROM`.
            "INSERT" | "DELETE" => words.nth(1),
            "UPDATE" => words.next(),
            _ => None,
        };
        let table = table
            .map(|t| {
                t.trim_matches(|c| c == '"' || c == '`')
                    .to_ascii_lowercase()
            })
            .unwrap_or_else(|| "?".to_owned());
        Statement::Write(table)
    }
}

/// The rows a statement changed, for each backend's result type.
pub(crate) trait RowsAffected: sqlx::Database {
    /// The rows `result` reports changed.
    fn rows_affected(result: &Self::QueryResult) -> u64;
}

impl RowsAffected for sqlx::Sqlite {
    fn rows_affected(result: &Self::QueryResult) -> u64 {
        result.rows_affected()
    }
}

impl RowsAffected for sqlx::Postgres {
    fn rows_affected(result: &Self::QueryResult) -> u64 {
        result.rows_affected()
    }
}

impl RowsAffected for sqlx::MySql {
    fn rows_affected(result: &Self::QueryResult) -> u64 {
        result.rows_affected()
    }
}

/// Takes `query` apart into its SQL and arguments, so the SQL can be
/// checked and the query still run.
fn take_apart<'q, DB: sqlx::Database, E: Execute<'q, DB>>(
    mut query: E,
) -> Result<(SqlStr, Option<DB::Arguments>), sqlx::Error> {
    let arguments = query.take_arguments().map_err(sqlx::Error::Encode)?;
    Ok((query.sql(), arguments))
}

fn refused(sql: &str, why: &str) -> sqlx::Error {
    let start: String = sql.trim_start().chars().take(60).collect();
    sqlx::Error::InvalidArgument(format!("{start:?}…: {why} (see crate::db)"))
}

/// Read-only access to one backend's pool; see the module documentation.
pub(crate) struct Reader<DB: sqlx::Database> {
    pool: sqlx::Pool<DB>,
}

impl<DB: sqlx::Database> Clone for Reader<DB> {
    fn clone(&self) -> Self {
        Reader {
            pool: self.pool.clone(),
        }
    }
}

impl<DB: sqlx::Database> fmt::Debug for Reader<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Reader").field(&self.pool).finish()
    }
}

impl<DB: sqlx::Database> Reader<DB> {
    pub(super) fn new(pool: sqlx::Pool<DB>) -> Self {
        Reader { pool }
    }

    /// The pool itself, for the data layer's own maintenance (migrations,
    /// the event store, replay).
    pub(super) fn raw(&self) -> &sqlx::Pool<DB> {
        &self.pool
    }

    /// Begins a write transaction that must record an event if it changes
    /// anything.
    ///
    /// # Errors
    ///
    /// When no connection can be had.
    pub(crate) async fn begin(&self) -> Result<Recorder<DB>, sqlx::Error> {
        self.begin_with(None).await
    }

    /// Begins a write transaction that may change `reason`'s tables
    /// without an event (and records one only when something else
    /// happened, e.g. a lockout after failed attempts).
    ///
    /// # Errors
    ///
    /// When no connection can be had.
    pub(crate) async fn begin_unrecorded(
        &self,
        reason: Unrecorded,
    ) -> Result<Recorder<DB>, sqlx::Error> {
        self.begin_with(Some(reason)).await
    }

    async fn begin_with(&self, allowance: Option<Unrecorded>) -> Result<Recorder<DB>, sqlx::Error> {
        Ok(Recorder {
            writes: Writes {
                tx: self.pool.begin().await?,
                allowance,
                unrecorded: BTreeSet::new(),
            },
            recorded: 0,
        })
    }

    /// Runs single statements that change `reason`'s tables without an
    /// event; any other write is refused.
    pub(crate) fn unrecorded(&self, reason: Unrecorded) -> UnrecordedWriter<'_, DB> {
        UnrecordedWriter {
            pool: &self.pool,
            reason,
        }
    }
}

/// Runs `SELECT`s only.
impl<'p, DB> Executor<'p> for &'p Reader<DB>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    type Database = DB;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<DB::QueryResult, DB::Row>, sqlx::Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, DB>,
    {
        match take_apart(query) {
            Ok((sql, _)) if Statement::of(sql.as_str()) != Statement::Read => {
                let error = refused(sql.as_str(), "a write outside a Recorder");
                futures::stream::once(async move { Err(error) }).boxed()
            }
            Ok(query) => (&self.pool).fetch_many(query),
            Err(error) => futures::stream::once(async move { Err(error) }).boxed(),
        }
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<DB::Row>, sqlx::Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, DB>,
    {
        match take_apart(query) {
            Ok((sql, _)) if Statement::of(sql.as_str()) != Statement::Read => {
                let error = refused(sql.as_str(), "a write outside a Recorder");
                Box::pin(async move { Err(error) })
            }
            Ok(query) => (&self.pool).fetch_optional(query),
            Err(error) => Box::pin(async move { Err(error) }),
        }
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [DB::TypeInfo],
    ) -> BoxFuture<'e, Result<DB::Statement, sqlx::Error>>
    where
        'p: 'e,
    {
        (&self.pool).prepare_with(sql, parameters)
    }

    fn describe<'e>(self, sql: SqlStr) -> BoxFuture<'e, Result<Describe<DB>, sqlx::Error>>
    where
        'p: 'e,
    {
        (&self.pool).describe(sql)
    }
}

/// Single statements for one [`Unrecorded`] reason; see
/// [`Reader::unrecorded`].
pub(crate) struct UnrecordedWriter<'a, DB: sqlx::Database> {
    pool: &'a sqlx::Pool<DB>,
    reason: Unrecorded,
}

impl<DB: sqlx::Database> fmt::Debug for UnrecordedWriter<'_, DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("UnrecordedWriter")
            .field(&self.reason)
            .finish()
    }
}

impl<DB: sqlx::Database> UnrecordedWriter<'_, DB> {
    fn check(&self, sql: &str) -> Result<(), sqlx::Error> {
        match Statement::of(sql) {
            Statement::Read => Ok(()),
            Statement::Write(table) if Unrecorded::allows(Some(self.reason), &table) => Ok(()),
            Statement::Write(_) => Err(refused(
                sql,
                "a table this reason to write without an event does not cover",
            )),
        }
    }
}

impl<'a, DB> Executor<'a> for UnrecordedWriter<'a, DB>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    type Database = DB;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<DB::QueryResult, DB::Row>, sqlx::Error>>
    where
        'a: 'e,
        E: 'q + Execute<'q, DB>,
    {
        match take_apart(query).and_then(|q| self.check(q.0.as_str()).map(|()| q)) {
            Ok(query) => self.pool.fetch_many(query),
            Err(error) => futures::stream::once(async move { Err(error) }).boxed(),
        }
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<DB::Row>, sqlx::Error>>
    where
        'a: 'e,
        E: 'q + Execute<'q, DB>,
    {
        match take_apart(query).and_then(|q| self.check(q.0.as_str()).map(|()| q)) {
            Ok(query) => self.pool.fetch_optional(query),
            Err(error) => Box::pin(async move { Err(error) }),
        }
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [DB::TypeInfo],
    ) -> BoxFuture<'e, Result<DB::Statement, sqlx::Error>>
    where
        'a: 'e,
    {
        self.pool.prepare_with(sql, parameters)
    }

    fn describe<'e>(self, sql: SqlStr) -> BoxFuture<'e, Result<Describe<DB>, sqlx::Error>>
    where
        'a: 'e,
    {
        self.pool.describe(sql)
    }
}

/// A write transaction that records its events; see the module
/// documentation. Statements run on `&mut *recorder`; dropping it without
/// [`Recorder::commit`] rolls everything back.
pub(crate) struct Recorder<DB: sqlx::Database> {
    writes: Writes<DB>,
    recorded: usize,
}

impl<DB: sqlx::Database> fmt::Debug for Recorder<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recorder")
            .field("writes", &self.writes)
            .field("recorded", &self.recorded)
            .finish()
    }
}

impl<DB: sqlx::Database> Deref for Recorder<DB> {
    type Target = Writes<DB>;

    fn deref(&self) -> &Writes<DB> {
        &self.writes
    }
}

impl<DB: sqlx::Database> DerefMut for Recorder<DB> {
    fn deref_mut(&mut self) -> &mut Writes<DB> {
        &mut self.writes
    }
}

impl<DB> Recorder<DB>
where
    DB: sqlx::Database,
    DB::Connection: AppendEvent,
{
    /// Appends `event` in this transaction and returns it as it will be
    /// stored.
    ///
    /// # Errors
    ///
    /// As [`super::EventStore::append`].
    pub(crate) async fn record(&mut self, event: &NewEvent) -> Result<Event, DbError> {
        let stored = (*self.writes.tx).append_event(event).await?;
        self.recorded += 1;
        Ok(stored)
    }

    /// Commits, unless rows were changed and no event was recorded (beyond
    /// what the transaction's [`Unrecorded`] reason allows): then it rolls
    /// back and reports [`DbError::Unrecorded`].
    ///
    /// # Errors
    ///
    /// [`DbError::Unrecorded`], or the database's.
    pub(crate) async fn commit(self) -> Result<(), DbError> {
        if self.recorded == 0 && !self.writes.unrecorded.is_empty() {
            let tables = self
                .writes
                .unrecorded
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(", ");
            self.writes.tx.rollback().await?;
            return Err(DbError::Unrecorded { tables });
        }
        self.writes.tx.commit().await?;
        Ok(())
    }
}

/// The connection of a [`Recorder`]: runs any statement, noting the
/// tables it changes.
pub(crate) struct Writes<DB: sqlx::Database> {
    tx: sqlx::Transaction<'static, DB>,
    allowance: Option<Unrecorded>,
    /// Tables changed that need an event.
    unrecorded: BTreeSet<String>,
}

impl<DB: sqlx::Database> fmt::Debug for Writes<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Writes")
            .field("allowance", &self.allowance)
            .field("unrecorded", &self.unrecorded)
            .finish_non_exhaustive()
    }
}

impl<'c, DB> Executor<'c> for &'c mut Writes<DB>
where
    DB: RowsAffected,
    for<'e> &'e mut DB::Connection: Executor<'e, Database = DB>,
{
    type Database = DB;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<DB::QueryResult, DB::Row>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, DB>,
    {
        let (sql, arguments) = match take_apart(query) {
            Ok(parts) => parts,
            Err(error) => return futures::stream::once(async move { Err(error) }).boxed(),
        };
        let noted = match Statement::of(sql.as_str()) {
            Statement::Write(table) if !Unrecorded::allows(self.allowance, &table) => Some(table),
            _ => None,
        };
        let Writes { tx, unrecorded, .. } = self;
        let rows = (&mut **tx).fetch_many((sql, arguments));
        match noted {
            None => rows,
            Some(table) => rows
                .inspect_ok(move |step| {
                    if let Either::Left(result) = step
                        && DB::rows_affected(result) > 0
                    {
                        unrecorded.insert(table.clone());
                    }
                })
                .boxed(),
        }
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<DB::Row>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, DB>,
    {
        let (sql, arguments) = match take_apart(query) {
            Ok(parts) => parts,
            Err(error) => return Box::pin(async move { Err(error) }),
        };
        // A write that returns a row (`RETURNING`) is taken to change one.
        if let Statement::Write(table) = Statement::of(sql.as_str())
            && !Unrecorded::allows(self.allowance, &table)
        {
            self.unrecorded.insert(table);
        }
        (&mut *self.tx).fetch_optional((sql, arguments))
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [DB::TypeInfo],
    ) -> BoxFuture<'e, Result<DB::Statement, sqlx::Error>>
    where
        'c: 'e,
    {
        (&mut *self.tx).prepare_with(sql, parameters)
    }

    fn describe<'e>(self, sql: SqlStr) -> BoxFuture<'e, Result<Describe<DB>, sqlx::Error>>
    where
        'c: 'e,
    {
        (&mut *self.tx).describe(sql)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::domain::{SettingEvent, SettingName, SettingValueData};
    use crate::db::{Database, DatabaseLocation, DatabaseOptions, Pool};

    async fn sqlite() -> (tempfile::TempDir, Database) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let options =
            DatabaseOptions::new(DatabaseLocation::SqliteFile(dir.path().join("panel.db")));
        let db = Database::connect(&options).await.expect("SQLite connects");
        (dir, db)
    }

    fn reader(db: &Database) -> &Reader<sqlx::Sqlite> {
        let Pool::Sqlite(reader) = &db.pool else {
            unreachable!("an SQLite database")
        };
        reader
    }

    const INSERT_SETTING: &str =
        "INSERT INTO settings (name, value, updated_at) VALUES ('motd', '1', 0)";

    async fn settings(db: &Database) -> usize {
        db.settings().list().await.expect("lists").len()
    }

    #[tokio::test]
    async fn a_change_without_its_event_is_rolled_back_and_reported() {
        let (_dir, db) = sqlite().await;
        let mut tx = reader(&db).begin().await.expect("begins");
        sqlx::query(INSERT_SETTING)
            .execute(&mut *tx)
            .await
            .expect("the statement runs");
        match tx.commit().await {
            Err(DbError::Unrecorded { tables }) => assert_eq!(tables, "settings"),
            other => panic!("expected an unrecorded change, got {other:?}"),
        }
        assert_eq!(settings(&db).await, 0);
    }

    #[tokio::test]
    async fn a_change_with_its_event_commits_and_one_that_changed_nothing_needs_none() {
        let (_dir, db) = sqlite().await;
        let mut tx = reader(&db).begin().await.expect("begins");
        sqlx::query(INSERT_SETTING)
            .execute(&mut *tx)
            .await
            .expect("the statement runs");
        let event = NewEvent::new(SettingEvent::Created {
            subject: SettingName::new("motd"),
            data: SettingValueData {
                value: serde_json::json!(1),
            },
        });
        tx.record(&event).await.expect("records");
        tx.commit().await.expect("commits");
        assert_eq!(settings(&db).await, 1);

        let mut tx = reader(&db).begin().await.expect("begins");
        sqlx::query("DELETE FROM settings WHERE name = 'nothing'")
            .execute(&mut *tx)
            .await
            .expect("the statement runs");
        tx.commit()
            .await
            .expect("nothing changed, nothing to record");
    }

    #[tokio::test]
    async fn the_reader_runs_selects_and_refuses_writes_before_they_run() {
        let (_dir, db) = sqlite().await;
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM settings")
            .fetch_one(reader(&db))
            .await
            .expect("a read");
        assert_eq!(count, 0);
        let error = sqlx::query(INSERT_SETTING)
            .execute(reader(&db))
            .await
            .expect_err("a write through the reader");
        assert!(error.to_string().contains("outside a Recorder"), "{error}");
        assert_eq!(settings(&db).await, 0);
    }

    #[tokio::test]
    async fn an_unrecorded_write_may_change_its_reasons_tables_only() {
        let (_dir, db) = sqlite().await;
        sqlx::query("DELETE FROM plugin_kv WHERE plugin_id = 'p'")
            .execute(reader(&db).unrecorded(Unrecorded::PluginData))
            .await
            .expect("plugin data needs no event");
        let error = sqlx::query(INSERT_SETTING)
            .execute(reader(&db).unrecorded(Unrecorded::PluginData))
            .await
            .expect_err("settings are no plugin data");
        assert!(error.to_string().contains("does not cover"), "{error}");

        let mut tx = reader(&db)
            .begin_unrecorded(Unrecorded::Liveness)
            .await
            .expect("begins");
        sqlx::query(INSERT_SETTING)
            .execute(&mut *tx)
            .await
            .expect("the statement runs");
        assert!(matches!(tx.commit().await, Err(DbError::Unrecorded { .. })));
        assert_eq!(settings(&db).await, 0);
    }

    #[test]
    fn tells_reads_from_writes_and_names_the_table_written() {
        assert_eq!(Statement::of("  select 1"), Statement::Read);
        assert_eq!(
            Statement::of("SELECT COUNT(*) FROM nodes WHERE id = ?"),
            Statement::Read
        );
        let write = |t: &str| Statement::Write(t.to_owned());
        assert_eq!(
            Statement::of("INSERT INTO servers (id) VALUES ($1)"),
            write("servers")
        );
        assert_eq!(
            Statement::of("insert into `plugin_kv`(a)"),
            write("plugin_kv")
        );
        assert_eq!(
            Statement::of("UPDATE nodes SET last_seen_at = ?"),
            write("nodes")
        );
        assert_eq!(
            Statement::of("DELETE FROM \"sessions\" WHERE id = ?"),
            write("sessions")
        );
        assert_eq!(
            Statement::of("WITH x AS (SELECT 1) DELETE FROM y"),
            write("?")
        );
        assert_eq!(Statement::of(""), write("?"));
    }

    #[test]
    fn an_unrecorded_reason_covers_its_own_tables_only() {
        assert!(Unrecorded::allows(Some(Unrecorded::Liveness), "nodes"));
        assert!(!Unrecorded::allows(Some(Unrecorded::Liveness), "servers"));
        assert!(Unrecorded::allows(
            Some(Unrecorded::Credentials),
            "refresh_tokens"
        ));
        assert!(!Unrecorded::allows(
            Some(Unrecorded::Credentials),
            "sessions"
        ));
        assert!(!Unrecorded::allows(None, "nodes"));
    }
}
