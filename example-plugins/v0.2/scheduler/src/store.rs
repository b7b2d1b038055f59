//! Schedules and runs in the plugin's key-value store ([`crate::keys`]).
//!
//! A schedule is changed with compare-and-swap: read, change, swap, and
//! read again when someone else changed it first (a person editing it
//! while a tick records its last run, say; several Panels run the plugin
//! at once). A run is written only by the tick that runs it (the host
//! delivers each tick once), so plain writes do.

use cap_plugin_sdk::kv;
use cap_plugin_sdk::types::PluginError;

use crate::keys;
use crate::model::{KEPT_RUNS, MAX_SCHEDULES, Refusal, Run, Schedule};

/// How often a compare-and-swap is tried before giving up.
const ATTEMPTS: usize = 100;

/// A refusal as the plugin's error.
pub fn refused(refusal: Refusal) -> PluginError {
    PluginError::new(refusal.code, refusal.message)
}

fn corrupt(key: &str, error: &serde_json::Error) -> PluginError {
    PluginError::new(
        "corrupt",
        format!("{key} does not hold what it should: {error}"),
    )
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, PluginError> {
    serde_json::to_vec(value).map_err(|e| PluginError::new("corrupt", e.to_string()))
}

/// The schedule `id` of `server`.
///
/// # Errors
///
/// Store failures, or a value that is not a schedule.
pub fn load(server: &str, id: &str) -> Result<Option<Schedule>, PluginError> {
    let key = keys::schedule(server, id);
    match kv::get(&key)? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| corrupt(&key, &e)),
    }
}

/// Every schedule of `server`, by id.
///
/// # Errors
///
/// Store failures.
pub fn list(server: &str) -> Result<Vec<Schedule>, PluginError> {
    let mut schedules = Vec::new();
    for key in kv::list_keys(&keys::schedules_of(server), 1000)? {
        if let Some(bytes) = kv::get(&key)? {
            match serde_json::from_slice(&bytes) {
                Ok(schedule) => schedules.push(schedule),
                Err(error) => {
                    cap_plugin_sdk::log::warn!("{}", corrupt(&key, &error).message);
                }
            }
        }
    }
    Ok(schedules)
}

/// Stores a new schedule.
///
/// # Errors
///
/// `too-many-schedules` when the server has [`MAX_SCHEDULES`]; store
/// failures.
pub fn create(schedule: &Schedule) -> Result<(), PluginError> {
    let existing = kv::list_keys(&keys::schedules_of(&schedule.server_id), 1000)?;
    if existing.len() >= MAX_SCHEDULES {
        return Err(refused(Refusal::new(
            "too-many-schedules",
            format!("a server has at most {MAX_SCHEDULES} schedules"),
        )));
    }
    let key = keys::schedule(&schedule.server_id, &schedule.id);
    if kv::compare_and_swap(&key, None, Some(to_json(schedule)?.as_slice()))? {
        Ok(())
    } else {
        Err(PluginError::new(
            "conflict",
            format!("a schedule {} exists already", schedule.id),
        ))
    }
}

/// Changes schedule `id` of `server` with `change`, atomically; the
/// schedule as stored after, or `None` when there is none.
///
/// # Errors
///
/// What `change` refuses; `contended` when others kept changing it;
/// store failures.
pub fn update(
    server: &str,
    id: &str,
    mut change: impl FnMut(&mut Schedule) -> Result<(), Refusal>,
) -> Result<Option<Schedule>, PluginError> {
    let key = keys::schedule(server, id);
    for _ in 0..ATTEMPTS {
        let Some(before) = kv::get(&key)? else {
            return Ok(None);
        };
        let mut schedule: Schedule =
            serde_json::from_slice(&before).map_err(|e| corrupt(&key, &e))?;
        change(&mut schedule).map_err(refused)?;
        let after = to_json(&schedule)?;
        if kv::compare_and_swap(&key, Some(before.as_slice()), Some(after.as_slice()))? {
            return Ok(Some(schedule));
        }
    }
    Err(PluginError::new(
        "contended",
        format!("{key} changed {ATTEMPTS} times while being updated"),
    ))
}

/// Deletes schedule `id` of `server` and its runs; whether it existed.
///
/// # Errors
///
/// Store failures.
pub fn delete(server: &str, id: &str) -> Result<bool, PluginError> {
    for key in kv::list_keys(&keys::runs_of(server, id), 1000)? {
        kv::delete(&key)?;
    }
    Ok(kv::delete(&keys::schedule(server, id))?)
}

/// Stores `run` of schedule `id` of `server`.
///
/// # Errors
///
/// Store failures.
pub fn save_run(server: &str, id: &str, run: &Run) -> Result<(), PluginError> {
    kv::set(&keys::run(server, id, &run.id), &to_json(run)?)?;
    Ok(())
}

/// Run `run` of schedule `id` of `server`.
///
/// # Errors
///
/// Store failures, or a value that is not a run.
pub fn load_run(server: &str, id: &str, run: &str) -> Result<Option<Run>, PluginError> {
    let key = keys::run(server, id, run);
    match kv::get(&key)? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| corrupt(&key, &e)),
    }
}

/// The schedule's kept runs, newest first.
///
/// # Errors
///
/// Store failures.
pub fn runs(server: &str, id: &str) -> Result<Vec<Run>, PluginError> {
    let mut runs = Vec::new();
    for key in kv::list_keys(&keys::runs_of(server, id), 1000)?
        .iter()
        .rev()
    {
        if let Some(bytes) = kv::get(key)?
            && let Ok(run) = serde_json::from_slice(&bytes)
        {
            runs.push(run);
        }
    }
    Ok(runs)
}

/// Deletes the oldest runs of the schedule so that a new one keeps
/// [`KEPT_RUNS`].
///
/// # Errors
///
/// Store failures.
pub fn make_room_for_a_run(server: &str, id: &str) -> Result<(), PluginError> {
    let keys = kv::list_keys(&keys::runs_of(server, id), 1000)?;
    let excess = (keys.len() + 1).saturating_sub(KEPT_RUNS);
    for key in keys.iter().take(excess) {
        kv::delete(key)?;
    }
    Ok(())
}
