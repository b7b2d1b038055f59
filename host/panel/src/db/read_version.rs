//! Read versions: a cheap answer to "has anything changed since?", for
//! caches of what the Panel reads on every request.
//!
//! # Design
//!
//! A [`ReadVersion`] is taken with one small query and compares equal to
//! another exactly when no write was committed between the two: a reader
//! that sees the same version twice knows its earlier answer still holds.
//!
//! - **SQLite** has one writer at a time, and every change to the Panel's
//!   projections (servers, allocations, users, roles, sessions, subusers,
//!   plugins…) appends a domain event in the same transaction (see
//!   [`crate::db::events`]). An event id is taken inside the write
//!   transaction and the next writer starts only after it ends, so the
//!   event store's head moves with every commit. It is read from
//!   `sqlite_sequence` (the events table is `AUTOINCREMENT`), which
//!   survives deleting old events for retention.
//! - **PostgreSQL** runs writers concurrently, so a smaller event id can
//!   commit after a larger one and the head proves nothing. Its snapshot
//!   does: `pg_current_snapshot()` names the first unassigned transaction
//!   id (`xmax`) and the transactions still in progress. Between two
//!   snapshots taken one after the other, a transaction that starts writing
//!   raises `xmax` and one that commits leaves the in-progress list, so
//!   `xmax` and the length of that list are equal only if nothing committed
//!   in between — anywhere in the cluster, which costs only cache misses.
//! - **MySQL/MariaDB** offers no such cheap, commit-ordered number:
//!   [`ReadVersion`] is `None` there, and callers read the database as
//!   before.
//!
//! State that lives outside the database but shapes what is read (which
//! plugins are loaded, the permissions they declare) is covered by an
//! in-process epoch: [`Database::invalidate_reads`] bumps it after such a
//! change, so answers computed before the change never match a version
//! taken after it.
//!
//! A reader must take the version **before** reading the data it caches:
//! the data is then at least as new as the version, and a write in between
//! only makes the next reader miss.

use std::sync::atomic::Ordering;

use super::{Database, DbError, Pool};

/// A point in the Panel's write history and the in-process epoch. Equal
/// versions mean nothing the Panel reads changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReadVersion {
    /// SQLite: the event store's head. PostgreSQL: the snapshot's `xmax`.
    head: i64,
    /// PostgreSQL: how many transactions were in progress (0 on SQLite).
    in_progress: i64,
    epoch: u64,
}

impl ReadVersion {
    /// True if `self` was taken after `other` and something changed in
    /// between: the data is at least as new (a higher head, or the same one
    /// with no more transactions in progress) and so is the epoch.
    pub fn supersedes(&self, other: &ReadVersion) -> bool {
        let data_as_new = self.head > other.head
            || (self.head == other.head && self.in_progress <= other.in_progress);
        self != other && data_as_new && self.epoch >= other.epoch
    }
}

impl Database {
    /// The current [`ReadVersion`] (one query), or `None` on MySQL/MariaDB,
    /// which has none.
    ///
    /// # Errors
    ///
    /// Database errors.
    pub async fn read_version(&self) -> Result<Option<ReadVersion>, DbError> {
        // Taken before the database's part: a change to loaded plugins after
        // this point makes the version read here stale, never the other way
        // round.
        let epoch = self.read_epoch.load(Ordering::Acquire);
        let (head, in_progress) = match &self.pool {
            Pool::Sqlite(pool) => {
                let head: Option<i64> =
                    sqlx::query_scalar("SELECT seq FROM sqlite_sequence WHERE name = 'events'")
                        .fetch_optional(pool)
                        .await?;
                (head.unwrap_or(0), 0)
            }
            Pool::Postgres(pool) => {
                sqlx::query_as(
                    "SELECT pg_snapshot_xmax(s)::text::bigint, \
                     (SELECT count(*) FROM pg_snapshot_xip(s)) \
                     FROM pg_current_snapshot() AS s",
                )
                .fetch_one(pool)
                .await?
            }
            Pool::MySql(_) => return Ok(None),
        };
        Ok(Some(ReadVersion {
            head,
            in_progress,
            epoch,
        }))
    }

    /// Marks every earlier [`ReadVersion`] stale, for changes to state that
    /// lives outside the database but shapes what is read (call it after
    /// the change is visible).
    pub fn invalidate_reads(&self) {
        self.read_epoch.fetch_add(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{DatabaseLocation, DatabaseOptions, NewEvent};

    async fn sqlite() -> (tempfile::TempDir, Database) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let options =
            DatabaseOptions::new(DatabaseLocation::SqliteFile(dir.path().join("panel.db")));
        let db = Database::connect(&options).await.expect("SQLite connects");
        (dir, db)
    }

    #[tokio::test]
    async fn the_version_moves_with_every_committed_event_and_with_invalidation_only() {
        let (_dir, db) = sqlite().await;
        let first = db
            .read_version()
            .await
            .expect("reads")
            .expect("SQLite has one");
        assert_eq!(db.read_version().await.expect("reads"), Some(first));

        db.events()
            .append(&NewEvent::new(crate::db::domain::SettingEvent::Deleted {
                subject: crate::db::domain::SettingName::new("test"),
                data: crate::db::domain::Empty {},
            }))
            .await
            .expect("appends");
        let after_write = db.read_version().await.expect("reads").expect("some");
        assert!(after_write.supersedes(&first));

        db.invalidate_reads();
        let after_invalidation = db.read_version().await.expect("reads").expect("some");
        assert!(after_invalidation.supersedes(&after_write));
        assert!(!after_write.supersedes(&after_invalidation));
        assert!(!after_invalidation.supersedes(&after_invalidation));
    }

    #[tokio::test]
    async fn deleting_old_events_never_takes_the_version_back() {
        let (_dir, db) = sqlite().await;
        for _ in 0..3 {
            db.events()
                .append(&NewEvent::new(crate::db::domain::SettingEvent::Deleted {
                    subject: crate::db::domain::SettingName::new("test"),
                    data: crate::db::domain::Empty {},
                }))
                .await
                .expect("appends");
        }
        let before = db.read_version().await.expect("reads").expect("some");
        let Pool::Sqlite(pool) = &db.pool else {
            unreachable!("an SQLite database")
        };
        sqlx::query("DELETE FROM events")
            .execute(pool.raw())
            .await
            .expect("retention may delete events");
        assert_eq!(db.read_version().await.expect("reads"), Some(before));
    }
}
