//! What `/proc` tells about a process: identity (start time, to survive pid
//! reuse), liveness and resource use.

use std::time::Duration;

/// A snapshot of `/proc/<pid>/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// The process state letter (`R`, `S`, `Z`, ...).
    pub state: char,
    /// The process group.
    pub pgrp: i32,
    /// User plus system CPU time, in clock ticks.
    pub cpu_ticks: u64,
    /// Start time in clock ticks since boot: with the pid, a process's
    /// identity.
    pub start_ticks: u64,
    /// Resident set size in pages.
    pub rss_pages: u64,
}

/// Reads `/proc/<pid>/stat`; `None` when there is no such process.
pub fn stat(pid: u32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// Parses the text of a `/proc/<pid>/stat` file. The command name (field 2)
/// may contain spaces and parentheses, so fields are counted from the last
/// `)`.
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `fields[0]` is field 3 (state).
    let field = |n: usize| fields.get(n - 3).copied();
    let number = |n: usize| field(n)?.parse::<u64>().ok();
    Some(ProcStat {
        state: field(3)?.chars().next()?,
        pgrp: field(5)?.parse().ok()?,
        cpu_ticks: number(14)?.checked_add(number(15)?)?,
        start_ticks: number(22)?,
        rss_pages: number(24)?,
    })
}

/// Whether process `pid` is alive (and not a zombie) and is the process that
/// started at `start_ticks`.
pub fn is_same_live_process(pid: u32, start_ticks: u64) -> bool {
    stat(pid).is_some_and(|s| s.start_ticks == start_ticks && s.state != 'Z' && s.state != 'X')
}

/// Clock ticks per second (`_SC_CLK_TCK`).
pub fn ticks_per_second() -> u64 {
    rustix::param::clock_ticks_per_second().max(1)
}

/// Seconds since boot, from `/proc/uptime`.
pub fn system_uptime() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/uptime").ok()?;
    let secs: f64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_secs_f64(secs))
}

/// How long ago a process that started at `start_ticks` started.
pub fn process_age(start_ticks: u64) -> Option<Duration> {
    let started = Duration::from_secs_f64(start_ticks as f64 / ticks_per_second() as f64);
    system_uptime()?.checked_sub(started)
}

/// The page size in bytes.
pub fn page_size() -> u64 {
    u64::try_from(rustix::param::page_size()).unwrap_or(4096)
}

/// The one-minute load average.
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// `MemAvailable` from `/proc/meminfo`, in MiB.
pub fn memory_available_mb() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("MemAvailable:"))
                .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib / 1024)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_command_name_with_spaces_and_parentheses_does_not_shift_fields() {
        let text = "1234 (my (weird) game) S 1 1234 1234 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 2 0 98765 1000000 250 18446744073709551615";
        let stat = parse_stat(text).unwrap();
        assert_eq!(stat.state, 'S');
        assert_eq!(stat.pgrp, 1234);
        assert_eq!(stat.cpu_ticks, 10);
        assert_eq!(stat.start_ticks, 98765);
        assert_eq!(stat.rss_pages, 250);
    }

    #[test]
    fn our_own_process_is_alive_and_a_wrong_start_time_is_not_us() {
        let me = std::process::id();
        let stat = stat(me).unwrap();
        assert!(is_same_live_process(me, stat.start_ticks));
        assert!(!is_same_live_process(me, stat.start_ticks + 1));
        assert!(process_age(stat.start_ticks).is_some());
    }
}
