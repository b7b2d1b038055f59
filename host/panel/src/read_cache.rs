//! Caches of what the Panel reads on every request, valid for exactly one
//! [`ReadVersion`].
//!
//! A [`VersionedCache`] holds the answers computed at one version of the
//! Panel's data. A lookup hits only at that very version; storing an answer
//! computed at a newer version drops everything older first; an answer
//! computed at an older version (a slow request overtaken by a write) is not
//! stored. So a cached answer is always one the database would give now, as
//! long as callers take the version *before* reading (see
//! [`crate::db::Database::read_version`]), and there is nothing to expire or
//! invalidate by hand.
//!
//! Without a version (PostgreSQL, MySQL/MariaDB) nothing is cached.
//! Entries are bounded: a full cache starts over rather than growing.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

use crate::db::ReadVersion;

/// A bounded map of answers, all computed at one [`ReadVersion`].
#[derive(Debug)]
pub struct VersionedCache<K, V> {
    capacity: usize,
    state: Mutex<State<K, V>>,
}

#[derive(Debug)]
struct State<K, V> {
    version: Option<ReadVersion>,
    entries: HashMap<K, V>,
}

impl<K: Eq + Hash, V: Clone> VersionedCache<K, V> {
    /// An empty cache holding at most `capacity` answers.
    pub fn new(capacity: usize) -> Self {
        VersionedCache {
            capacity: capacity.max(1),
            state: Mutex::new(State {
                version: None,
                entries: HashMap::new(),
            }),
        }
    }

    /// The answer for `key` computed at exactly `version`.
    pub fn get(&self, version: Option<ReadVersion>, key: &K) -> Option<V> {
        let version = version?;
        let state = self.lock();
        if state.version != Some(version) {
            return None;
        }
        state.entries.get(key).cloned()
    }

    /// Keeps `value` as the answer for `key` at `version`, unless a newer
    /// version has been seen already.
    pub fn insert(&self, version: Option<ReadVersion>, key: K, value: V) {
        let Some(version) = version else { return };
        let mut state = self.lock();
        match state.version {
            Some(current) if current == version => {}
            Some(current) if !version.supersedes(&current) => return,
            _ => {
                state.version = Some(version);
                state.entries.clear();
            }
        }
        if state.entries.len() >= self.capacity && !state.entries.contains_key(&key) {
            state.entries.clear();
        }
        state.entries.insert(key, value);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<K, V>> {
        // The state is a plain map: a panic elsewhere cannot leave it torn.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{Database, DatabaseLocation, DatabaseOptions, NewEvent};

    /// Three successive versions of a real SQLite database.
    async fn versions() -> [ReadVersion; 3] {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let options =
            DatabaseOptions::new(DatabaseLocation::SqliteFile(dir.path().join("panel.db")));
        let db = Database::connect(&options).await.expect("SQLite connects");
        let mut out = Vec::new();
        for _ in 0..3 {
            out.push(db.read_version().await.expect("reads").expect("some"));
            db.events()
                .append(&NewEvent::new(crate::db::domain::SettingEvent::Deleted {
                    subject: crate::db::domain::SettingName::new("test"),
                    data: crate::db::domain::Empty {},
                }))
                .await
                .expect("appends");
        }
        out.try_into().expect("three versions")
    }

    #[tokio::test]
    async fn an_answer_is_found_only_at_the_version_it_was_computed_at() {
        let [v1, v2, _] = versions().await;
        let cache = VersionedCache::new(8);
        cache.insert(Some(v1), "page", 1);
        assert_eq!(cache.get(Some(v1), &"page"), Some(1));
        assert_eq!(cache.get(Some(v2), &"page"), None);
        assert_eq!(cache.get(None, &"page"), None);
    }

    #[tokio::test]
    async fn a_newer_answer_drops_every_older_one_and_an_older_one_is_not_kept() {
        let [v1, v2, v3] = versions().await;
        let cache = VersionedCache::new(8);
        cache.insert(Some(v1), "a", 1);
        cache.insert(Some(v2), "b", 2);
        assert_eq!(cache.get(Some(v2), &"a"), None, "answers from v1 are gone");
        assert_eq!(cache.get(Some(v2), &"b"), Some(2));

        cache.insert(Some(v1), "a", 1);
        assert_eq!(
            cache.get(Some(v1), &"a"),
            None,
            "a slow reader's answer is not kept"
        );
        assert_eq!(cache.get(Some(v2), &"b"), Some(2));

        cache.insert(Some(v3), "c", 3);
        assert_eq!(cache.get(Some(v3), &"b"), None);
    }

    #[tokio::test]
    async fn nothing_is_cached_without_a_version() {
        let cache: VersionedCache<&str, i32> = VersionedCache::new(8);
        cache.insert(None, "a", 1);
        assert_eq!(cache.get(None, &"a"), None);
    }

    #[tokio::test]
    async fn a_full_cache_starts_over_instead_of_growing() {
        let [v1, ..] = versions().await;
        let cache = VersionedCache::new(2);
        cache.insert(Some(v1), 1, "one");
        cache.insert(Some(v1), 2, "two");
        cache.insert(Some(v1), 2, "two again");
        assert_eq!(
            cache.get(Some(v1), &1),
            Some("one"),
            "replacing a key keeps the rest"
        );
        cache.insert(Some(v1), 3, "three");
        assert_eq!(cache.get(Some(v1), &1), None);
        assert_eq!(cache.get(Some(v1), &3), Some("three"));
    }
}
