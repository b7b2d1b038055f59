//! Running schedules: what each timer's tick does.
//!
//! - `cron/…`: arms the schedule's next cron time first (so a run that
//!   fails cannot stop the schedule), then decides from the tick's time
//!   and the clock whether the run is on time, missed and run once, or
//!   missed and skipped ([`timing::decide`]), and runs it.
//! - `now/…`: runs the schedule as asked, whatever its cron time.
//! - `task/…`: carries on with a run whose next task waited for its
//!   offset.
//!
//! A run is skipped while the schedule's previous run is still going (a
//! task of it waits for its offset): a schedule runs once at a time, as
//! Pterodactyl's "is processing". Otherwise it first reads the server:
//! gone, the run fails (and the schedule
//! is disabled, since nothing can run on a server that no longer exists);
//! not running while the schedule runs only when it is online, the run is
//! skipped. Then the tasks run in order; a task with an offset arms a
//! `task/…` timer and the run goes on when it fires. A task that fails
//! ends the run unless it continues on failure. Every run is recorded
//! ([`Run`], the last [`KEPT_RUNS`](crate::model::KEPT_RUNS) of a schedule
//! kept) and remembered as the schedule's last run. A tick whose run had a
//! failure answers with an error naming it, which the Panel records as the
//! firing's outcome (administrators see it at `/plugins/scheduler/timer-runs`).

use cap_plugin_sdk::panel::{self, PowerSignal};
use cap_plugin_sdk::timers;
use cap_plugin_sdk::types::{CapabilityError, PluginError};

use crate::keys::TimerKey;
use crate::model::{Action, LastRun, Run, RunState, Schedule, Signal, TaskOutcome, Trigger};
use crate::timing::{self, Decision};
use crate::{clock, store};

/// What the tick of timer `key`, set for `due_ms`, does at `now_ms`.
///
/// # Errors
///
/// The failure of the run (or of this part of it), naming the task.
pub fn on_tick(key: &str, due_ms: u64, now_ms: u64) -> Result<(), PluginError> {
    match TimerKey::parse(key) {
        Some(TimerKey::Cron { server, schedule }) => on_cron(&server, &schedule, due_ms, now_ms),
        Some(TimerKey::Now { server, schedule }) => match store::load(&server, &schedule)? {
            Some(schedule) => start(&schedule, Trigger::Manual, due_ms, now_ms),
            None => Ok(()),
        },
        Some(TimerKey::Task {
            server,
            schedule,
            run,
            index,
        }) => resume(&server, &schedule, &run, index, now_ms),
        None => {
            cap_plugin_sdk::log::warn!("a tick of a timer this plugin does not set: {key}");
            Ok(())
        }
    }
}

/// Arms the schedule's next cron time after `after_ms`, or disarms it when
/// the schedule is disabled or never runs again; the time armed.
///
/// # Errors
///
/// Timer failures.
pub fn arm_next(schedule: &Schedule, after_ms: u64) -> Result<Option<u64>, PluginError> {
    let key = TimerKey::Cron {
        server: schedule.server_id.clone(),
        schedule: schedule.id.clone(),
    }
    .key();
    let next = if schedule.enabled {
        next_run(schedule, after_ms)
    } else {
        None
    };
    match next {
        Some(at) => timers::set(&key, at)?,
        None => {
            timers::cancel(&key)?;
        }
    }
    Ok(next)
}

/// When the schedule runs next after `after_ms`, by its cron expression
/// in its time zone (whether or not it is enabled).
pub fn next_run(schedule: &Schedule, after_ms: u64) -> Option<u64> {
    let cron = timing::parse_cron(&schedule.cron).ok()?;
    let tz = timing::parse_time_zone(&schedule.time_zone).ok()?;
    timing::next_after(&cron, tz, after_ms)
}

/// Asks for a run of the schedule now ("Run now"): a timer due at once,
/// so the run happens in a tick of its own, like every other.
///
/// # Errors
///
/// Timer failures.
pub fn request(schedule: &Schedule, now_ms: u64) -> Result<(), PluginError> {
    let key = TimerKey::Now {
        server: schedule.server_id.clone(),
        schedule: schedule.id.clone(),
    }
    .key();
    timers::set(&key, now_ms)?;
    Ok(())
}

/// Disarms every timer of the schedule (it is being deleted).
///
/// # Errors
///
/// Timer failures.
pub fn disarm_all(schedule: &Schedule) -> Result<(), PluginError> {
    for kind in ["cron", "now", "task"] {
        let prefix = TimerKey::prefix(kind, &schedule.server_id, &schedule.id);
        for timer in timers::list(&prefix, 1000)? {
            // The prefix `cron/s/sch_a` also matches `cron/s/sch_ab`.
            if timer.key == prefix || timer.key.starts_with(&format!("{prefix}/")) {
                timers::cancel(&timer.key)?;
            }
        }
    }
    Ok(())
}

fn on_cron(server: &str, id: &str, due_ms: u64, now_ms: u64) -> Result<(), PluginError> {
    let Some(schedule) = store::load(server, id)? else {
        return Ok(());
    };
    if !schedule.enabled {
        return Ok(());
    }
    arm_next(&schedule, due_ms.max(now_ms))?;
    let trigger = match timing::decide(due_ms, now_ms, schedule.missed) {
        Decision::Run => Trigger::Cron,
        Decision::RunMissed => Trigger::Missed,
        Decision::Skip => {
            let tz = timing::parse_time_zone(&schedule.time_zone).unwrap_or(chrono_tz::Tz::UTC);
            let mut run = Run::new(clock::run_id(now_ms), Trigger::Missed, due_ms, now_ms);
            run.end_early(
                RunState::Skipped,
                format!(
                    "the run due at {} was missed (the Panel could not run it in time); the \
                     schedule skips missed runs",
                    timing::show(due_ms, tz)
                ),
                now_ms,
            );
            store::make_room_for_a_run(server, id)?;
            store::save_run(server, id, &run)?;
            remember(&schedule, &run)?;
            return Ok(());
        }
    };
    start(&schedule, trigger, due_ms, now_ms)
}

/// Starts a run of `schedule`.
fn start(
    schedule: &Schedule,
    trigger: Trigger,
    due_ms: u64,
    now_ms: u64,
) -> Result<(), PluginError> {
    let (server, id) = (schedule.server_id.as_str(), schedule.id.as_str());
    let mut run = Run::new(clock::run_id(now_ms), trigger, due_ms, now_ms);
    store::make_room_for_a_run(server, id)?;
    if let Some(going) = still_going(schedule)? {
        let tz = timing::parse_time_zone(&schedule.time_zone).unwrap_or(chrono_tz::Tz::UTC);
        run.end_early(
            RunState::Skipped,
            format!(
                "the run that started at {} is still going (a task waits for its offset); a \
                 schedule runs once at a time",
                timing::show(going.started_ms, tz)
            ),
            now_ms,
        );
        // Kept in the history, not as the last run: the going one stays
        // that, so that the next tick still sees it.
        store::save_run(server, id, &run)?;
        return Ok(());
    }
    match panel::get_server(server) {
        Err(CapabilityError::NotFound(_)) => {
            let note = format!("the server {server} no longer exists; the schedule is disabled");
            run.end_early(RunState::Failed, note.clone(), now_ms);
            store::save_run(server, id, &run)?;
            remember(schedule, &run)?;
            store::update(server, id, |s| {
                s.enabled = false;
                Ok(())
            })?;
            timers::cancel(
                &TimerKey::Cron {
                    server: server.to_owned(),
                    schedule: id.to_owned(),
                }
                .key(),
            )?;
            return Err(PluginError::new(
                "server-gone",
                format!("schedule {:?} ({id}): {note}", schedule.name),
            ));
        }
        Err(error) => {
            let note = format!("the server could not be read: {}", describe(&error));
            run.end_early(RunState::Failed, note.clone(), now_ms);
            store::save_run(server, id, &run)?;
            remember(schedule, &run)?;
            return Err(PluginError::new(
                error.code(),
                format!("schedule {:?} ({id}): {note}", schedule.name),
            ));
        }
        Ok(found) if schedule.only_when_online && found.state != "running" => {
            run.end_early(
                RunState::Skipped,
                format!(
                    "the server is {}; the schedule runs only while it is online",
                    found.state
                ),
                now_ms,
            );
            store::save_run(server, id, &run)?;
            remember(schedule, &run)?;
            return Ok(());
        }
        Ok(_) => {}
    }
    if schedule.tasks.is_empty() {
        run.end_early(RunState::Ok, "the schedule has no tasks".into(), now_ms);
        store::save_run(server, id, &run)?;
        remember(schedule, &run)?;
        return Ok(());
    }
    store::save_run(server, id, &run)?;
    remember(schedule, &run)?;
    proceed(schedule, run, 0, false)
}

/// Carries on with run `run_id` at task `index`, whose offset passed.
fn resume(
    server: &str,
    id: &str,
    run_id: &str,
    index: usize,
    now_ms: u64,
) -> Result<(), PluginError> {
    let Some(schedule) = store::load(server, id)? else {
        // Deleted meanwhile: its runs went with it.
        return Ok(());
    };
    let Some(mut run) = store::load_run(server, id, run_id)? else {
        return Ok(());
    };
    if run.state != RunState::Running {
        return Ok(());
    }
    if index >= schedule.tasks.len() {
        // Tasks were removed meanwhile.
        run.finish(now_ms);
        store::save_run(server, id, &run)?;
        remember(&schedule, &run)?;
        return Ok(());
    }
    proceed(&schedule, run, index, true)
}

/// Runs the tasks of `run` from `index` (whose offset was waited for when
/// `waited`) until one must wait or the last is done.
fn proceed(
    schedule: &Schedule,
    mut run: Run,
    index: usize,
    waited: bool,
) -> Result<(), PluginError> {
    let (server, id) = (schedule.server_id.as_str(), schedule.id.as_str());
    let mut failures = Vec::new();
    let mut i = index;
    while i < schedule.tasks.len() {
        let task = &schedule.tasks[i];
        if task.offset_secs > 0 && !(waited && i == index) {
            let at = clock::now_ms() + u64::from(task.offset_secs) * 1000;
            let key = TimerKey::Task {
                server: server.to_owned(),
                schedule: id.to_owned(),
                run: run.id.clone(),
                index: i,
            };
            timers::set(&key.key(), at)?;
            store::save_run(server, id, &run)?;
            return answer(schedule, &failures);
        }
        let outcome = execute(server, &task.action);
        let ok = outcome.is_ok();
        let message = outcome.unwrap_or_else(|failure| failure);
        if !ok {
            failures.push(format!(
                "task {} ({}) failed: {message}",
                i + 1,
                task.action.describe()
            ));
        }
        run.tasks.push(TaskOutcome {
            index: i,
            at_ms: clock::now_ms(),
            ok,
            message,
        });
        if !ok && !task.continue_on_failure {
            if i + 1 < schedule.tasks.len() {
                run.note = Some(format!(
                    "task {} failed and does not continue on failure: the tasks after it did not run",
                    i + 1
                ));
            }
            break;
        }
        i += 1;
    }
    run.finish(clock::now_ms());
    store::save_run(server, id, &run)?;
    remember(schedule, &run)?;
    answer(schedule, &failures)
}

/// The tick's answer: an error naming the failed tasks, if any.
fn answer(schedule: &Schedule, failures: &[String]) -> Result<(), PluginError> {
    if failures.is_empty() {
        Ok(())
    } else {
        Err(PluginError::new(
            "task-failed",
            format!(
                "schedule {:?} ({}): {}",
                schedule.name,
                schedule.id,
                failures.join("; ")
            ),
        ))
    }
}

/// Runs one task on `server`: what happened, or why it failed.
fn execute(server: &str, action: &Action) -> Result<String, String> {
    match action {
        Action::Command { line } => {
            panel::send_console_command(server, line).map(|()| format!("sent {line:?}"))
        }
        Action::Power { signal } => {
            let wire = match signal {
                Signal::Start => PowerSignal::Start,
                Signal::Stop => PowerSignal::Stop,
                Signal::Restart => PowerSignal::Restart,
                Signal::Kill => PowerSignal::Kill,
            };
            panel::power_action(server, wire).map(|()| format!("{} queued", signal.name()))
        }
        Action::Backup { name } => panel::create_backup(server, name.as_deref())
            .map(|backup| format!("backup {backup} started")),
    }
    .map_err(|error| describe(&error))
}

/// A host's refusal, for people.
fn describe(error: &CapabilityError) -> String {
    match error {
        CapabilityError::Denied(detail) => format!("denied: {detail}"),
        CapabilityError::NotFound(detail) => format!("{detail} does not exist"),
        CapabilityError::Invalid(detail) => format!("refused: {detail}"),
        CapabilityError::LimitExceeded(detail) => format!("limit reached: {detail}"),
        CapabilityError::Unavailable(detail) => format!("unavailable: {detail}"),
    }
}

/// Remembers `run` as the schedule's last run (unless a newer one is).
/// The schedule's last run when it is still going: recorded as running,
/// with a task's timer armed to carry it on (a run whose timer is gone
/// cannot go on, and holds nothing up).
fn still_going(schedule: &Schedule) -> Result<Option<LastRun>, PluginError> {
    let Some(last) = schedule
        .last_run
        .clone()
        .filter(|last| last.state == RunState::Running)
    else {
        return Ok(None);
    };
    let prefix = format!(
        "{}/{}/",
        TimerKey::prefix("task", &schedule.server_id, &schedule.id),
        last.id
    );
    let armed = timers::list(&prefix, 1)?;
    Ok((!armed.is_empty()).then_some(last))
}

fn remember(schedule: &Schedule, run: &Run) -> Result<(), PluginError> {
    store::update(&schedule.server_id, &schedule.id, |s| {
        if s.last_run.as_ref().is_none_or(|last| last.id <= run.id) {
            s.last_run = Some(LastRun {
                id: run.id.clone(),
                started_ms: run.started_ms,
                state: run.state,
            });
        }
        Ok(())
    })?;
    Ok(())
}
