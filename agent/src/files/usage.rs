//! How much disk each server's directory takes, measured by walking it
//! and kept between walks.
//!
//! A walk of a server's files ([`crate::runtime::disk_usage`]) costs a
//! `stat` per entry: a few milliseconds for a fresh install, a second or
//! more for a world of a hundred thousand region files. Checking the disk
//! limit with a walk on every write made each SFTP file opened, each
//! uploaded chunk and each folder created pay it. [`DiskUsage`] keeps the
//! last walk's figure per directory, as Wings does:
//!
//! - **A figure lives [`DiskUsage::max_age`]** (the node's
//!   `disk_interval`, a minute by default): after that the next question
//!   walks again. Within it, what the game server itself wrote is not
//!   seen, exactly as between two of the runtime's disk-limit checks,
//!   which read and refresh the same figures.
//! - **What the Agent writes is charged** to the figure at once
//!   ([`charge`](DiskUsage::charge)), in allocated bytes (blocks), the
//!   unit the walk counts: a finished upload, an SFTP file closed, a folder
//!   made. Two uploads one after the other therefore see each other
//!   without a walk in between.
//! - **What frees or rewrites many entries forgets the figure**
//!   ([`forget`](DiskUsage::forget)): deletions, copies, archives,
//!   extractions, pulls, restores, wipes. The next check walks. A figure
//!   that is too high would refuse a write that fits (someone deletes a
//!   world to make room, then uploads); one that is too low would let a
//!   write past the limit; forgetting is neither.
//! - Walks happen outside the lock, so two servers' walks (or a walk and
//!   a charge) never wait on each other; two questions about one server at
//!   the same moment may both walk, which is only the old cost.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The last measured usage of each server directory. Cheap to share.
#[derive(Debug)]
pub struct DiskUsage {
    max_age: Duration,
    figures: Mutex<HashMap<PathBuf, Figure>>,
}

#[derive(Debug, Clone, Copy)]
struct Figure {
    /// When the walk behind `bytes` started.
    measured: Instant,
    bytes: u64,
}

impl DiskUsage {
    /// Figures kept for `max_age` after their walk.
    pub fn new(max_age: Duration) -> Arc<DiskUsage> {
        Arc::new(DiskUsage {
            max_age,
            figures: Mutex::default(),
        })
    }

    /// How long a figure is used before the directory is walked again.
    pub fn max_age(&self) -> Duration {
        self.max_age
    }

    /// The bytes `dir` takes: the kept figure (with what was charged since)
    /// while it is younger than [`max_age`](Self::max_age), a new walk
    /// otherwise. Blocking when it walks.
    pub fn of(&self, dir: &Path) -> u64 {
        if let Some(figure) = self.lock().get(dir)
            && figure.measured.elapsed() < self.max_age
        {
            return figure.bytes;
        }
        self.measure(dir)
    }

    /// Walks `dir` now and keeps the figure. Blocking.
    pub fn measure(&self, dir: &Path) -> u64 {
        let measured = Instant::now();
        let bytes = crate::runtime::disk_usage(dir);
        self.lock()
            .insert(dir.to_owned(), Figure { measured, bytes });
        bytes
    }

    /// The kept figure of `dir` with its age, if any (however old).
    pub fn last(&self, dir: &Path) -> Option<(Duration, u64)> {
        self.lock()
            .get(dir)
            .map(|figure| (figure.measured.elapsed(), figure.bytes))
    }

    /// Adds `bytes` (negative: frees them) to the kept figure of `dir`, if
    /// there is one: the Agent just wrote (or removed) them.
    pub fn charge(&self, dir: &Path, bytes: i64) {
        if let Some(figure) = self.lock().get_mut(dir) {
            figure.bytes = figure.bytes.saturating_add_signed(bytes);
        }
    }

    /// Drops the figure of `dir`: the next question walks.
    pub fn forget(&self, dir: &Path) {
        self.lock().remove(dir);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Figure>> {
        self.figures.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("a temporary directory");
        std::fs::write(dir.path().join("world.dat"), vec![1u8; 64 * 1024]).expect("a file");
        dir
    }

    #[test]
    fn a_figure_is_kept_until_it_is_older_than_its_max_age_then_walked_again() {
        let dir = tree();
        let usage = DiskUsage::new(Duration::from_secs(3600));
        let first = usage.of(dir.path());
        assert!(first >= 64 * 1024, "{first}");
        // Written behind the Agent's back: not seen while the figure lives.
        std::fs::write(dir.path().join("more.dat"), vec![1u8; 64 * 1024]).expect("a file");
        assert_eq!(usage.of(dir.path()), first);
        let short = DiskUsage::new(Duration::ZERO);
        assert!(short.of(dir.path()) >= first + 64 * 1024);
        assert!(short.of(dir.path()) >= first + 64 * 1024, "walked again");
    }

    #[test]
    fn charges_move_a_kept_figure_and_are_dropped_when_none_is_kept() {
        let dir = tree();
        let usage = DiskUsage::new(Duration::from_secs(3600));
        usage.charge(dir.path(), 1 << 20);
        assert!(usage.last(dir.path()).is_none(), "nothing kept to charge");
        let first = usage.of(dir.path());
        usage.charge(dir.path(), 1 << 20);
        assert_eq!(usage.of(dir.path()), first + (1 << 20));
        usage.charge(dir.path(), -(1 << 20));
        assert_eq!(usage.of(dir.path()), first);
        usage.charge(dir.path(), -(1 << 40));
        assert_eq!(usage.of(dir.path()), 0, "never below zero");
    }

    #[test]
    fn a_forgotten_figure_is_walked_again() {
        let dir = tree();
        let usage = DiskUsage::new(Duration::from_secs(3600));
        let first = usage.of(dir.path());
        std::fs::remove_file(dir.path().join("world.dat")).expect("removed");
        usage.forget(dir.path());
        assert!(usage.of(dir.path()) < first);
    }
}
