//! Read versions: a cheap answer to "has anything changed since?", for
//! caches of what the Panel reads on every request.
//!
//! # Design
//!
//! Every change to the Panel's projections (servers, allocations, users,
//! roles, sessions, subusers, plugins…) appends a domain event in the same
//! transaction (see [`crate::db::events`]). The event store's head is
//! therefore a version of everything the Panel has written, and a reader
//! that sees the same head twice knows nothing was committed in between.
//!
//! That holds only where event ids follow commit order. SQLite has one
//! writer at a time: an id is taken inside the write transaction, and the
//! next writer starts only after that transaction ends, so a later commit
//! always has a greater id. The head is read from `sqlite_sequence` (the
//! events table is `AUTOINCREMENT`), which survives deleting old events for
//! retention. On PostgreSQL and MySQL/MariaDB, writers run concurrently and
//! a transaction holding a smaller id can commit after one holding a larger
//! id, so the largest id says nothing about what is still to come:
//! [`ReadVersion`] is `None` there, and callers read the database as
//! before.
//!
//! State that lives outside the database but shapes what is read (which
//! plugins are loaded) is covered by an in-process epoch:
//! [`Database::invalidate_reads`] bumps it after such a change, so answers
//! computed before the change never match a version taken after it.
//!
//! A reader must take the version **before** reading the data it caches:
//! the data is then at least as new as the version, and a write in between
//! only makes the next reader miss.

use std::sync::atomic::Ordering;

use super::{Database, DbError, Pool};

/// A point in the Panel's write history: the event store's head and the
/// in-process epoch. Equal versions mean nothing the Panel reads changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReadVersion {
    head: i64,
    epoch: u64,
}

impl ReadVersion {
    /// True if `self` is at least as new as `other` in both parts, and newer
    /// in one.
    pub fn supersedes(&self, other: &ReadVersion) -> bool {
        self != other && self.head >= other.head && self.epoch >= other.epoch
    }
}

impl Database {
    /// The current [`ReadVersion`], or `None` on backends whose event ids
    /// do not follow commit order (PostgreSQL, MySQL/MariaDB).
    ///
    /// # Errors
    ///
    /// Database errors.
    pub async fn read_version(&self) -> Result<Option<ReadVersion>, DbError> {
        let Pool::Sqlite(pool) = &self.pool else {
            return Ok(None);
        };
        // Taken before the head: a change to loaded plugins after this point
        // makes the version read here stale, never the other way round.
        let epoch = self.read_epoch.load(Ordering::Acquire);
        let head: Option<i64> =
            sqlx::query_scalar("SELECT seq FROM sqlite_sequence WHERE name = 'events'")
                .fetch_optional(pool)
                .await?;
        Ok(Some(ReadVersion {
            head: head.unwrap_or(0),
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
            .append(&NewEvent::new("test.changed"))
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
                .append(&NewEvent::new("test.changed"))
                .await
                .expect("appends");
        }
        let before = db.read_version().await.expect("reads").expect("some");
        let Pool::Sqlite(pool) = &db.pool else {
            unreachable!("an SQLite database")
        };
        sqlx::query("DELETE FROM events")
            .execute(pool)
            .await
            .expect("retention may delete events");
        assert_eq!(db.read_version().await.expect("reads"), Some(before));
    }
}
