//! Where things are kept: the key-value store's keys and the timers' keys.
//!
//! | Key | Holds |
//! | --- | --- |
//! | `schedule/<server>/<schedule>` | a [`Schedule`](crate::model::Schedule), JSON |
//! | `run/<server>/<schedule>/<run>` | a [`Run`](crate::model::Run), JSON; run ids sort by time |
//!
//! | Timer | Fires |
//! | --- | --- |
//! | `cron/<server>/<schedule>` | the schedule's next cron time |
//! | `now/<server>/<schedule>` | a run someone asked for ("Run now") |
//! | `task/<server>/<schedule>/<run>/<index>` | a task whose offset has passed |

/// The key of a schedule.
pub fn schedule(server: &str, schedule: &str) -> String {
    format!("schedule/{server}/{schedule}")
}

/// The prefix of a server's schedules.
pub fn schedules_of(server: &str) -> String {
    format!("schedule/{server}/")
}

/// The key of a run.
pub fn run(server: &str, schedule: &str, run: &str) -> String {
    format!("run/{server}/{schedule}/{run}")
}

/// The prefix of a schedule's runs.
pub fn runs_of(server: &str, schedule: &str) -> String {
    format!("run/{server}/{schedule}/")
}

/// Whether `id` can be a part of a key: 1 to 64 characters of letters,
/// digits, `_` and `-` (the Panel's ids and ours are).
pub fn is_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A timer of the plugin, by what it fires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimerKey {
    /// A schedule's next cron time.
    Cron {
        /// The server.
        server: String,
        /// The schedule.
        schedule: String,
    },
    /// A run someone asked for.
    Now {
        /// The server.
        server: String,
        /// The schedule.
        schedule: String,
    },
    /// A task of a run whose offset has passed.
    Task {
        /// The server.
        server: String,
        /// The schedule.
        schedule: String,
        /// The run.
        run: String,
        /// The task's position, from 0.
        index: usize,
    },
}

impl TimerKey {
    /// The timer's key.
    pub fn key(&self) -> String {
        match self {
            TimerKey::Cron { server, schedule } => format!("cron/{server}/{schedule}"),
            TimerKey::Now { server, schedule } => format!("now/{server}/{schedule}"),
            TimerKey::Task {
                server,
                schedule,
                run,
                index,
            } => format!("task/{server}/{schedule}/{run}/{index}"),
        }
    }

    /// The timer a key names; `None` for a key this plugin never sets.
    pub fn parse(key: &str) -> Option<TimerKey> {
        let parts: Vec<&str> = key.split('/').collect();
        if parts[1..].iter().any(|p| !is_id(p)) {
            return None;
        }
        let owned = |i: usize| parts[i].to_owned();
        match parts.as_slice() {
            ["cron", _, _] => Some(TimerKey::Cron {
                server: owned(1),
                schedule: owned(2),
            }),
            ["now", _, _] => Some(TimerKey::Now {
                server: owned(1),
                schedule: owned(2),
            }),
            ["task", _, _, _, index] => Some(TimerKey::Task {
                server: owned(1),
                schedule: owned(2),
                run: owned(3),
                index: index.parse().ok()?,
            }),
            _ => None,
        }
    }

    /// The prefix of every timer of one schedule of `kind` (`cron`, `now`,
    /// `task`).
    pub fn prefix(kind: &str, server: &str, schedule: &str) -> String {
        format!("{kind}/{server}/{schedule}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timer_keys_round_trip_and_foreign_keys_are_not_ours() {
        let keys = [
            TimerKey::Cron {
                server: "srv_1".into(),
                schedule: "sch_a".into(),
            },
            TimerKey::Now {
                server: "srv_1".into(),
                schedule: "sch_a".into(),
            },
            TimerKey::Task {
                server: "srv_1".into(),
                schedule: "sch_a".into(),
                run: "0001700000000000-00ff".into(),
                index: 3,
            },
        ];
        for key in keys {
            assert_eq!(TimerKey::parse(&key.key()), Some(key.clone()), "{key:?}");
        }
        for foreign in [
            "cron/srv_1",
            "cron/srv_1/sch_a/extra",
            "task/srv_1/sch_a/run/x",
            "cron/srv 1/sch_a",
            "cron//sch_a",
            "other/srv_1/sch_a",
            "",
        ] {
            assert_eq!(TimerKey::parse(foreign), None, "{foreign:?}");
        }
    }

    #[test]
    fn ids_are_key_safe() {
        assert!(is_id("srv_0123abcd"));
        assert!(is_id("0001700000000000-00ff"));
        assert!(!is_id("a/b"));
        assert!(!is_id(""));
        assert!(!is_id(&"x".repeat(65)));
    }
}
