//! The time and fresh ids. The plugin is granted the real clock (`clock`
//! in its manifest); without it WASI's clock is frozen and every schedule
//! would seem to run late.

use std::hash::{BuildHasher, Hasher};
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// 64 random bits (the standard library's hasher keys come from the
/// host's secure randomness, which is always real).
fn random() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(now_ms());
    hasher.finish()
}

/// A new schedule id: `sch_` and 16 hex digits.
pub fn schedule_id() -> String {
    format!("sch_{:016x}", random())
}

/// A new run id starting at `started_ms`: the time, zero-padded to 16
/// digits so that ids sort by time, and 4 random hex digits.
pub fn run_id(started_ms: u64) -> String {
    format!("{started_ms:016}-{:04x}", random() & 0xffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_sort_by_time_and_ids_are_key_safe() {
        let early = run_id(1_700_000_000_000);
        let late = run_id(1_700_000_000_001);
        assert!(early < late, "{early} {late}");
        assert!(crate::keys::is_id(&early));
        assert!(crate::keys::is_id(&schedule_id()));
        assert_ne!(schedule_id(), schedule_id());
    }
}
