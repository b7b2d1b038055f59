//! The servers whose files are read-only now: the suspended ones, as the
//! Panel last said ([`cap_protocol::PanelMessage::ReadOnlyServers`]).
//!
//! A [`FileScope`](cap_protocol::files::FileScope) is fixed when a session
//! signs in or a grant is signed; this set is how a suspension reaches what
//! is already open. The SFTP sessions ask it before every write, and file
//! transfers and the Panel's file requests open a listed server's files
//! read-only whatever their scope says.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

/// The set of read-only servers. Cheap to share; starts empty (an Agent
/// that has not heard from its Panel since it started knows of no
/// suspension, and its sessions' scopes still hold).
#[derive(Debug, Default)]
pub struct ReadOnlyServers {
    ids: RwLock<HashSet<String>>,
}

impl ReadOnlyServers {
    /// An empty set.
    pub fn new() -> Arc<ReadOnlyServers> {
        Arc::new(ReadOnlyServers::default())
    }

    /// Replaces the set with `ids` (the Panel sends the whole set).
    pub fn replace(&self, ids: impl IntoIterator<Item = String>) {
        let ids: HashSet<String> = ids.into_iter().collect();
        *self.ids.write().unwrap_or_else(|e| e.into_inner()) = ids;
    }

    /// True if and only if server `id`'s files are read-only now.
    pub fn contains(&self, id: &str) -> bool {
        self.ids
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_set_is_replaced_whole() {
        let set = ReadOnlyServers::new();
        assert!(!set.contains("srv_a"));
        set.replace(["srv_a".to_owned(), "srv_b".to_owned()]);
        assert!(set.contains("srv_a") && set.contains("srv_b"));
        set.replace(["srv_b".to_owned()]);
        assert!(!set.contains("srv_a"), "lifted");
        assert!(set.contains("srv_b"));
    }
}
