//! When a schedule runs: its cron expression in its time zone, and what a
//! late tick means. Pure functions of their arguments (the clock is passed
//! in), so the host's unit tests cover them.

use chrono::{TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// The presets a cron expression may be instead of five fields.
pub const PRESETS: [&str; 5] = ["@hourly", "@daily", "@weekly", "@monthly", "@yearly"];

/// How late a tick may be and still count as on time: a tick delivered
/// within this of its time is the run it was set for, one delivered later
/// is a run the Panel missed (it was down, or the plugin could not take
/// the tick).
pub const GRACE_MS: u64 = 60_000;

/// What is done with a run that was missed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MissedPolicy {
    /// Run it once, as soon as the tick arrives (however many were missed).
    RunOnce,
    /// Skip it, recording that it was skipped; the next run is as usual.
    Skip,
}

impl MissedPolicy {
    /// The form's label.
    pub fn label(self) -> &'static str {
        match self {
            MissedPolicy::RunOnce => "run once",
            MissedPolicy::Skip => "skip",
        }
    }

    /// The policy labelled `label`.
    pub fn from_label(label: &str) -> Option<MissedPolicy> {
        [MissedPolicy::RunOnce, MissedPolicy::Skip]
            .into_iter()
            .find(|p| p.label() == label.trim())
    }
}

/// What to do with a cron tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// On time: run.
    Run,
    /// Late, and the schedule runs missed runs once: run.
    RunMissed,
    /// Late, and the schedule skips missed runs.
    Skip,
}

/// What a cron tick set for `due_ms` and delivered at `now_ms` means under
/// `policy` (see [`GRACE_MS`]).
pub fn decide(due_ms: u64, now_ms: u64, policy: MissedPolicy) -> Decision {
    if now_ms.saturating_sub(due_ms) <= GRACE_MS {
        Decision::Run
    } else {
        match policy {
            MissedPolicy::RunOnce => Decision::RunMissed,
            MissedPolicy::Skip => Decision::Skip,
        }
    }
}

/// Parses a cron expression: five fields (minute, hour, day of month,
/// month, day of week) or one of the [`PRESETS`].
///
/// # Errors
///
/// A sentence naming the expression and what is wrong with it.
pub fn parse_cron(text: &str) -> Result<Cron, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err(
            "a schedule needs a cron expression: five fields (minute, hour, day of month, month, \
             day of week), or a preset such as @daily"
                .into(),
        );
    }
    if text.starts_with('@') {
        if !PRESETS.iter().any(|p| p.eq_ignore_ascii_case(text)) {
            return Err(format!(
                "{text:?} is not a preset; the presets are {}",
                PRESETS.join(", ")
            ));
        }
    } else {
        let fields = text.split_whitespace().count();
        if fields != 5 {
            return Err(format!(
                "{text:?} has {fields} field{}; a cron expression has five: minute, hour, day of \
                 month, month, day of week",
                if fields == 1 { "" } else { "s" }
            ));
        }
    }
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
        .parse(text)
        .map_err(|e| format!("{text:?} is not a valid cron expression: {e}"))
}

/// Parses an IANA time zone name (`Europe/Berlin`, `UTC`).
///
/// # Errors
///
/// A sentence naming the text.
pub fn parse_time_zone(text: &str) -> Result<Tz, String> {
    let text = text.trim();
    text.parse::<Tz>().map_err(|_| {
        format!(
            "{text:?} is not a time zone of the IANA database (such as UTC, Europe/Berlin or \
             America/New_York)"
        )
    })
}

/// The first time after `after_ms` (milliseconds since the Unix epoch)
/// that `cron` matches in `tz`, in milliseconds since the Unix epoch;
/// `None` when it never matches again (a date that does not exist, such
/// as February 30th).
pub fn next_after(cron: &Cron, tz: Tz, after_ms: u64) -> Option<u64> {
    let millis = i64::try_from(after_ms).ok()?;
    let start = Utc
        .timestamp_millis_opt(millis)
        .single()?
        .with_timezone(&tz);
    let next = cron.find_next_occurrence(&start, false).ok()?;
    u64::try_from(next.timestamp_millis()).ok()
}

/// `at_ms` as `2025-03-30 02:30 CEST` in `tz`, for people.
pub fn show(at_ms: u64, tz: Tz) -> String {
    i64::try_from(at_ms)
        .ok()
        .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
        .map(|t| t.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z").to_string())
        .unwrap_or_else(|| format!("{at_ms} ms"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Milliseconds of a UTC date and time.
    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> u64 {
        let t = Utc
            .with_ymd_and_hms(y, mo, d, h, mi, 0)
            .single()
            .expect("a valid date");
        u64::try_from(t.timestamp_millis()).expect("after 1970")
    }

    fn next(cron: &str, tz: &str, after: u64) -> u64 {
        let cron = parse_cron(cron).expect("a valid expression");
        let tz = parse_time_zone(tz).expect("a valid zone");
        next_after(&cron, tz, after).expect("a next time")
    }

    #[test]
    fn five_fields_and_presets_parse_and_anything_else_is_refused_with_a_reason() {
        for good in [
            "*/15 * * * *",
            "0 4 * * 1-5",
            "30 2 1 * *",
            "@daily",
            "@HOURLY",
            " @weekly ",
        ] {
            assert!(parse_cron(good).is_ok(), "{good}");
        }
        let error = parse_cron("0 4 * *").expect_err("four fields");
        assert!(
            error.contains("has 4 fields; a cron expression has five"),
            "{error}"
        );
        let error = parse_cron("0 0 4 * * *").expect_err("six fields");
        assert!(error.contains("has 6 fields"), "{error}");
        let error = parse_cron("61 * * * *").expect_err("a minute out of range");
        assert!(
            error.contains("\"61 * * * *\" is not a valid cron expression"),
            "{error}"
        );
        let error = parse_cron("@fortnightly").expect_err("no such preset");
        assert!(error.contains("is not a preset"), "{error}");
        assert!(
            parse_cron("   ")
                .expect_err("empty")
                .contains("needs a cron expression")
        );
        assert!(parse_cron("* * * * banana").is_err());
    }

    #[test]
    fn time_zones_are_iana_names() {
        assert!(parse_time_zone("UTC").is_ok());
        assert!(parse_time_zone("Europe/Berlin").is_ok());
        let error = parse_time_zone("Mars/Olympus_Mons").expect_err("no such zone");
        assert!(
            error.contains("\"Mars/Olympus_Mons\" is not a time zone of the IANA database"),
            "{error}"
        );
        assert!(parse_time_zone("").is_err());
    }

    #[test]
    fn the_next_run_is_computed_in_the_schedules_time_zone() {
        let after = utc(2025, 1, 15, 12, 0);
        // 04:00 every day: in UTC at 04:00, in Berlin (UTC+1 in January)
        // at 03:00 UTC, in New York (UTC-5) at 09:00 UTC.
        assert_eq!(next("0 4 * * *", "UTC", after), utc(2025, 1, 16, 4, 0));
        assert_eq!(
            next("0 4 * * *", "Europe/Berlin", after),
            utc(2025, 1, 16, 3, 0)
        );
        assert_eq!(
            next("0 4 * * *", "America/New_York", after),
            utc(2025, 1, 16, 9, 0)
        );
        // Strictly after: a time that matches now gives the next one.
        assert_eq!(next("0 12 * * *", "UTC", after), utc(2025, 1, 16, 12, 0));
        assert_eq!(next("*/15 * * * *", "UTC", after), utc(2025, 1, 15, 12, 15));
        assert_eq!(next("@hourly", "UTC", after), utc(2025, 1, 15, 13, 0));
    }

    #[test]
    fn daylight_saving_moves_the_utc_time_of_a_local_time() {
        // Berlin switches to summer time on 2025-03-30: 04:00 local is
        // 03:00 UTC before and 02:00 UTC after.
        let before = utc(2025, 3, 28, 12, 0);
        assert_eq!(
            next("0 4 * * *", "Europe/Berlin", before),
            utc(2025, 3, 29, 3, 0)
        );
        let after = utc(2025, 3, 30, 12, 0);
        assert_eq!(
            next("0 4 * * *", "Europe/Berlin", after),
            utc(2025, 3, 31, 2, 0)
        );
    }

    #[test]
    fn a_date_that_never_comes_has_no_next_run() {
        let cron = parse_cron("0 0 30 2 *").expect("parses");
        assert_eq!(next_after(&cron, Tz::UTC, utc(2025, 1, 1, 0, 0)), None);
    }

    #[test]
    fn a_tick_within_the_grace_runs_and_a_later_one_follows_the_schedules_policy() {
        let due = utc(2025, 1, 15, 4, 0);
        for policy in [MissedPolicy::RunOnce, MissedPolicy::Skip] {
            assert_eq!(decide(due, due, policy), Decision::Run);
            assert_eq!(decide(due, due + GRACE_MS, policy), Decision::Run);
            // Delivered early (another clock): on time.
            assert_eq!(decide(due, due - 5_000, policy), Decision::Run);
        }
        let late = due + GRACE_MS + 1;
        assert_eq!(
            decide(due, late, MissedPolicy::RunOnce),
            Decision::RunMissed
        );
        assert_eq!(decide(due, late, MissedPolicy::Skip), Decision::Skip);
        // A Panel down for a day: still one decision, for one tick.
        assert_eq!(
            decide(due, due + 86_400_000, MissedPolicy::RunOnce),
            Decision::RunMissed
        );
    }

    #[test]
    fn policies_round_trip_through_their_labels() {
        for policy in [MissedPolicy::RunOnce, MissedPolicy::Skip] {
            assert_eq!(MissedPolicy::from_label(policy.label()), Some(policy));
        }
        assert_eq!(MissedPolicy::from_label("sometimes"), None);
    }

    #[test]
    fn times_are_shown_in_the_schedules_zone() {
        let at = utc(2025, 7, 1, 2, 0);
        let berlin = parse_time_zone("Europe/Berlin").expect("a zone");
        assert_eq!(show(at, berlin), "2025-07-01 04:00 CEST");
        assert_eq!(show(at, Tz::UTC), "2025-07-01 02:00 UTC");
    }
}
