//! Plugins' timers (capability `timers`, plugin API 0.2.0): kept in the
//! database, fired by a delivery loop that every serving Panel runs, and
//! recorded firing by firing.
//!
//! A plugin arms a timer under a key of its own (`timers.set(key, at-ms)`,
//! [`Timers`] as the capability's [`TimerStore`]). When it is due, a Panel
//! calls the plugin's own `hooks.after` with a `schedule.tick` event (payload
//! `schedule { name: <key>, server_id: None }`, `occurred_at_ms` the time
//! the timer was set for) and records the outcome in `plugin_timer_runs`;
//! administrators read both at `GET /api/v1/plugins/{id}/timers` and
//! `/timer-runs` ([`crate::http::timers_routes`]). The `scheduler` plugin
//! builds schedules on this; any plugin granted `timers` may.
//!
//! # Decisions
//!
//! - **A lease in the database, not a leader.** Each Panel's loop
//!   ([`spawn_delivery`]) reads the due timers and takes each one's lease
//!   with a single conditional `UPDATE … WHERE arming = ? AND (lease_until
//!   IS NULL OR lease_until < now)`; only the Panel whose update changed
//!   the row delivers. So several Panels on one database (the scale-out
//!   work) deliver each firing once, without electing anyone, and a Panel
//!   that dies holding a lease only delays the firing until the lease
//!   expires. The lease outlasts the call it covers: twice the plugin's
//!   timeout (the wait for a call slot and the call) and a margin.
//! - **A firing is delivered once, its outcome recorded once.** The
//!   plugin's `after` is called once, never retried (a retried tick could
//!   run a schedule's tasks twice); what it answers is the run's outcome,
//!   `ok` or `failed` with the plugin's error or the call's failure (a trap,
//!   a timeout). The timer is consumed in the same transaction as its run is
//!   recorded, unless the plugin armed the key again meanwhile (each
//!   arming has an id of its own, and only the delivered arming is
//!   removed).
//! - **A firing the plugin cannot take waits for it.** When the plugin is
//!   quarantined, inactive, not installed or no longer granted `timers`, the
//!   firing is recorded `failed` with that reason once, and the timer stays,
//!   parked: re-examined every [`TimerOptions::park`], and delivered when the
//!   plugin can take it again, late, with its original `occurred_at_ms`. The
//!   plugin then decides what a late tick means (the scheduler runs a missed
//!   schedule once or skips it, as each schedule says). A Panel where the
//!   plugin is active but did not load leaves the timer to the other Panels
//!   for a while without recording anything. A call refused because the host
//!   is overloaded is not the plugin's fault either: the timer is released
//!   and tried again shortly.
//! - **Timers outlive restarts and uninstalls.** They are rows, so a
//!   restarted Panel delivers what fell due while it was down (once: a
//!   timer fires once, however late). Like `plugin_kv`, they stay when a
//!   plugin is uninstalled, so a reinstalled plugin finds them; while it is
//!   gone its due timers wait, recorded failed.
//! - **Not events.** Arming, leasing and recording firings change
//!   `plugin_timers` and `plugin_timer_runs` without events
//!   ([`Unrecorded::PluginTimers`]): they are the plugins' own scheduling
//!   data, written many times a minute, and whatever a plugin does when a
//!   timer fires is recorded where it happens (a console command's
//!   `server.command.queued` event with the plugin as its actor). Runs older
//!   than [`RUN_RETENTION`] are deleted as new ones are recorded.
//! - **Prompt, bounded.** The loop sleeps until the next due timer or
//!   lease end, at most [`TimerOptions::poll`], and a plugin arming a timer
//!   on this Panel wakes it at once; timers armed through another Panel are
//!   seen at the next poll. At most [`MAX_DELIVERIES`] deliveries run at
//!   once, and a stopping Panel lets those running finish (for at most
//!   [`STOP_GRACE`]) before its database closes.

use std::sync::Arc;
use std::time::Duration;

use cap_runtime::api::{EventKind, Payload, ScheduleInfo, Timer};
use cap_runtime::capabilities::timers::TimerStore;
use cap_runtime::capabilities::{BoxFuture, ServiceError};
use cap_runtime::{CallError, Plugin, PluginKind};
use time::OffsetDateTime;
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::{JoinHandle, JoinSet};

use crate::db::{
    Actor, Database, DbError, Unrecorded, from_micros, now, on_pool, query_builder, to_micros,
};
use crate::plugins::hooks;
use crate::plugins::{PluginError, PluginLifecycle, PluginManager};

/// How many timers one plugin may keep armed by default.
pub const DEFAULT_MAX_TIMERS_PER_PLUGIN: i64 = 10_000;
/// Due timers read per round of the loop.
const BATCH: i64 = 100;
/// Deliveries one Panel runs at once.
pub const MAX_DELIVERIES: usize = 16;
/// How long runs are kept.
pub const RUN_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);
/// Added to a delivery's lease beyond twice the plugin's timeout.
const LEASE_MARGIN: Duration = Duration::from_secs(30);
/// When a call refused for overload is tried again.
const OVERLOAD_RETRY: Duration = Duration::from_secs(5);
/// How long a stopping Panel waits for its running deliveries.
pub const STOP_GRACE: Duration = Duration::from_secs(10);
/// The longest reason recorded, in characters.
const MAX_REASON_CHARS: usize = 2000;

/// How the delivery loop paces itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerOptions {
    /// The longest the loop sleeps before looking for due timers again
    /// (timers armed through another Panel are seen within it).
    pub poll: Duration,
    /// How often a firing the plugin could not take is re-examined.
    pub park: Duration,
}

impl Default for TimerOptions {
    fn default() -> Self {
        TimerOptions {
            poll: Duration::from_secs(5),
            park: Duration::from_secs(60),
        }
    }
}

/// The plugins' timers in `plugin_timers`, and their runs: the `timers`
/// capability's store, and what the delivery loop and the admin routes
/// read. Cheap to clone.
#[derive(Clone)]
pub struct Timers {
    db: Database,
    wake: Arc<Notify>,
    max_per_plugin: i64,
}

impl std::fmt::Debug for Timers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timers")
            .field("max_per_plugin", &self.max_per_plugin)
            .finish_non_exhaustive()
    }
}

/// An armed timer, as administrators see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArmedTimer {
    /// The plugin's key.
    pub key: String,
    /// When it is due.
    pub due_at: OffsetDateTime,
    /// Until when a Panel holds it (delivering it, or parked).
    pub leased_until: Option<OffsetDateTime>,
    /// When its firing was recorded failed because the plugin could not
    /// take it; it waits for the plugin since.
    pub missed_at: Option<OffsetDateTime>,
}

/// How a firing ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    /// The plugin took the tick and answered `ok`.
    Ok,
    /// The plugin failed, or could not take the tick; the reason says why.
    Failed,
}

impl RunOutcome {
    /// The stored name: `ok`, `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            RunOutcome::Ok => "ok",
            RunOutcome::Failed => "failed",
        }
    }
}

/// One firing's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerRun {
    /// Its id (`trn_…`, in time order).
    pub id: String,
    /// The plugin.
    pub plugin_id: String,
    /// The timer's key.
    pub key: String,
    /// When the timer was due.
    pub due_at: OffsetDateTime,
    /// When the delivery (or the finding that it cannot be delivered)
    /// started.
    pub started_at: OffsetDateTime,
    /// When it ended.
    pub finished_at: OffsetDateTime,
    /// How it ended.
    pub outcome: RunOutcome,
    /// Why it failed.
    pub reason: Option<String>,
    /// The Panel process that recorded it (its lease owner id).
    pub panel_id: String,
}

#[derive(sqlx::FromRow)]
struct RunRow {
    id: String,
    plugin_id: String,
    timer_key: String,
    due_at: i64,
    started_at: i64,
    finished_at: i64,
    outcome: String,
    reason: Option<String>,
    panel_id: String,
}

impl TryFrom<RunRow> for TimerRun {
    type Error = DbError;

    fn try_from(row: RunRow) -> Result<Self, DbError> {
        Ok(TimerRun {
            outcome: match row.outcome.as_str() {
                "ok" => RunOutcome::Ok,
                "failed" => RunOutcome::Failed,
                other => return Err(DbError::Corrupt(format!("unknown run outcome {other:?}"))),
            },
            due_at: from_micros(row.due_at)?,
            started_at: from_micros(row.started_at)?,
            finished_at: from_micros(row.finished_at)?,
            id: row.id,
            plugin_id: row.plugin_id,
            key: row.timer_key,
            reason: row.reason,
            panel_id: row.panel_id,
        })
    }
}

/// A due timer as the loop reads it.
#[derive(Debug, Clone, sqlx::FromRow)]
struct Due {
    plugin_id: String,
    timer_key: String,
    arming: String,
    due_at: i64,
    missed_at: Option<i64>,
}

impl Due {
    fn due_ms(&self) -> u64 {
        u64::try_from(self.due_at / 1000).unwrap_or(0)
    }
}

/// Microseconds since the Unix epoch of `at_ms`.
fn micros_of_ms(at_ms: u64) -> i64 {
    i64::try_from(at_ms)
        .unwrap_or(i64::MAX)
        .saturating_mul(1000)
}

fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

fn clip(reason: &str) -> String {
    reason.chars().take(MAX_REASON_CHARS).collect()
}

/// Inserts one run inside the transaction `$tx` of `$pool` (expanded per
/// backend inside `on_pool!`).
macro_rules! insert_run {
    ($pool:ident, $tx:ident, $due:expr, $owner:expr, $started:expr, $finished:expr, $outcome:expr, $reason:expr) => {{
        let mut qb = query_builder(
            $pool,
            "INSERT INTO plugin_timer_runs (id, plugin_id, timer_key, arming, due_at, started_at, \
             finished_at, outcome, reason, panel_id) VALUES (",
        );
        qb.separated(", ")
            .push_bind(new_id("trn"))
            .push_bind($due.plugin_id.as_str())
            .push_bind($due.timer_key.as_str())
            .push_bind($due.arming.as_str())
            .push_bind($due.due_at)
            .push_bind(to_micros($started))
            .push_bind(to_micros($finished))
            .push_bind($outcome.as_str())
            .push_bind($reason)
            .push_bind($owner);
        qb.push(")");
        qb.build().execute(&mut *$tx).await?;
    }};
}

impl Timers {
    /// The timers of `db`, at most [`DEFAULT_MAX_TIMERS_PER_PLUGIN`] per
    /// plugin.
    pub fn new(db: Database) -> Timers {
        Timers {
            db,
            wake: Arc::new(Notify::new()),
            max_per_plugin: DEFAULT_MAX_TIMERS_PER_PLUGIN,
        }
    }

    /// Sets how many timers one plugin may keep armed.
    pub fn with_quota(mut self, max_per_plugin: i64) -> Timers {
        self.max_per_plugin = max_per_plugin;
        self
    }

    /// Wakes this Panel's delivery loop (after a timer was armed).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Arms `plugin`'s timer `key` for `at_ms` (milliseconds since the
    /// Unix epoch), replacing its time, lease and missed firing: a new
    /// arming. `false` when it is a new key and the plugin is at its quota.
    ///
    /// Single statements, no transaction, as [`crate::plugin_kv::DbKv`]
    /// writes: an update of the key, else the quota and an insert, and the
    /// update again when a concurrent insert won.
    ///
    /// # Errors
    ///
    /// Database errors.
    pub async fn arm(&self, plugin: &str, key: &str, at_ms: u64) -> Result<bool, DbError> {
        let arming = new_id("tmr");
        let due = micros_of_ms(at_ms);
        let armed = if self.rearm(plugin, key, &arming, due).await? {
            true
        } else {
            let count: i64 = on_pool!(self.db, |pool| {
                let mut qb = query_builder(
                    pool,
                    "SELECT COUNT(*) FROM plugin_timers WHERE plugin_id = ",
                );
                qb.push_bind(plugin);
                qb.build_query_scalar().fetch_one(pool).await?
            });
            if count >= self.max_per_plugin {
                return Ok(false);
            }
            self.insert(plugin, key, &arming, due).await?
                || self.rearm(plugin, key, &arming, due).await?
        };
        if armed {
            self.wake();
        }
        Ok(armed)
    }

    async fn rearm(
        &self,
        plugin: &str,
        key: &str,
        arming: &str,
        due: i64,
    ) -> Result<bool, DbError> {
        let at = to_micros(now());
        Ok(on_pool!(self.db, |pool| {
            let mut qb = query_builder(pool, "UPDATE plugin_timers SET arming = ");
            qb.push_bind(arming)
                .push(", due_at = ")
                .push_bind(due)
                .push(", lease_owner = NULL, lease_until = NULL, missed_at = NULL, updated_at = ")
                .push_bind(at)
                .push(" WHERE plugin_id = ")
                .push_bind(plugin)
                .push(" AND timer_key = ")
                .push_bind(key);
            qb.build()
                .execute(pool.unrecorded(Unrecorded::PluginTimers))
                .await?
                .rows_affected()
                == 1
        }))
    }

    async fn insert(
        &self,
        plugin: &str,
        key: &str,
        arming: &str,
        due: i64,
    ) -> Result<bool, DbError> {
        let at = to_micros(now());
        Ok(on_pool!(self.db, |pool| {
            let mut qb = query_builder(
                pool,
                "INSERT INTO plugin_timers (plugin_id, timer_key, arming, due_at, updated_at) VALUES (",
            );
            qb.separated(", ")
                .push_bind(plugin)
                .push_bind(key)
                .push_bind(arming)
                .push_bind(due)
                .push_bind(at);
            qb.push(")");
            match qb
                .build()
                .execute(pool.unrecorded(Unrecorded::PluginTimers))
                .await
            {
                Ok(done) => done.rows_affected() == 1,
                Err(error)
                    if error
                        .as_database_error()
                        .is_some_and(|e| e.is_unique_violation()) =>
                {
                    false
                }
                Err(error) => return Err(error.into()),
            }
        }))
    }

    /// Disarms `plugin`'s timer `key`; whether it was armed.
    ///
    /// # Errors
    ///
    /// Database errors.
    pub async fn disarm(&self, plugin: &str, key: &str) -> Result<bool, DbError> {
        Ok(on_pool!(self.db, |pool| {
            let mut qb = query_builder(pool, "DELETE FROM plugin_timers WHERE plugin_id = ");
            qb.push_bind(plugin)
                .push(" AND timer_key = ")
                .push_bind(key);
            qb.build()
                .execute(pool.unrecorded(Unrecorded::PluginTimers))
                .await?
                .rows_affected()
                > 0
        }))
    }

    /// `plugin`'s armed timers whose keys start with `prefix`, by key, at
    /// most `limit`.
    ///
    /// # Errors
    ///
    /// Database errors.
    pub async fn list(
        &self,
        plugin: &str,
        prefix: &str,
        limit: u32,
    ) -> Result<Vec<Timer>, DbError> {
        Ok(self
            .armed_with(plugin, prefix, limit)
            .await?
            .into_iter()
            .map(|t| Timer {
                key: t.key,
                at_ms: u64::try_from(t.due_at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0),
            })
            .collect())
    }

    /// `plugin`'s armed timers, by key, at most `limit`, with their leases.
    ///
    /// # Errors
    ///
    /// Database errors.
    pub async fn armed(&self, plugin: &str, limit: u32) -> Result<Vec<ArmedTimer>, DbError> {
        self.armed_with(plugin, "", limit).await
    }

    async fn armed_with(
        &self,
        plugin: &str,
        prefix: &str,
        limit: u32,
    ) -> Result<Vec<ArmedTimer>, DbError> {
        // As plugin_kv's listing: the prefix compared as the key's first
        // characters, so `%` and `_` need no escaping.
        let prefix_chars = i32::try_from(prefix.chars().count()).unwrap_or(i32::MAX);
        let rows: Vec<(String, i64, Option<i64>, Option<i64>)> = on_pool!(self.db, |pool| {
            let mut qb = query_builder(
                pool,
                "SELECT timer_key, due_at, lease_until, missed_at FROM plugin_timers WHERE plugin_id = ",
            );
            qb.push_bind(plugin)
                .push(" AND substr(timer_key, 1, ")
                .push_bind(prefix_chars)
                .push(") = ")
                .push_bind(prefix)
                .push(" ORDER BY timer_key LIMIT ")
                .push_bind(i64::from(limit));
            qb.build_query_as().fetch_all(pool).await?
        });
        rows.into_iter()
            .map(|(key, due, lease, missed)| {
                Ok(ArmedTimer {
                    key,
                    due_at: from_micros(due)?,
                    leased_until: lease.map(from_micros).transpose()?,
                    missed_at: missed.map(from_micros).transpose()?,
                })
            })
            .collect()
    }

    /// Up to `limit` runs of `plugin`'s timers, newest first, before the
    /// run `before`, and whether more follow.
    ///
    /// # Errors
    ///
    /// Database errors.
    pub async fn runs(
        &self,
        plugin: &str,
        before: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<TimerRun>, bool), DbError> {
        let rows: Vec<RunRow> = on_pool!(self.db, |pool| {
            let mut qb = query_builder(
                pool,
                "SELECT id, plugin_id, timer_key, due_at, started_at, finished_at, outcome, \
                 reason, panel_id FROM plugin_timer_runs WHERE plugin_id = ",
            );
            qb.push_bind(plugin);
            if let Some(before) = before {
                qb.push(" AND id < ").push_bind(before);
            }
            qb.push(" ORDER BY id DESC LIMIT ")
                .push_bind(i64::from(limit) + 1);
            qb.build_query_as::<RunRow>().fetch_all(pool).await?
        });
        let mut runs = rows
            .into_iter()
            .map(TimerRun::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        let more = runs.len() > limit as usize;
        runs.truncate(limit as usize);
        Ok((runs, more))
    }

    /// The due timers nobody holds, oldest first, at most [`BATCH`].
    async fn due(&self, at: i64) -> Result<Vec<Due>, DbError> {
        Ok(on_pool!(self.db, |pool| {
            let mut qb = query_builder(
                pool,
                "SELECT plugin_id, timer_key, arming, due_at, missed_at FROM plugin_timers \
                 WHERE due_at <= ",
            );
            qb.push_bind(at)
                .push(" AND (lease_until IS NULL OR lease_until < ")
                .push_bind(at)
                .push(") ORDER BY due_at LIMIT ")
                .push_bind(BATCH);
            qb.build_query_as::<Due>().fetch_all(pool).await?
        }))
    }

    /// When the loop has something to do next: the next due timer nobody
    /// holds, or the next lease to end.
    async fn next_wake(&self, at: i64) -> Result<Option<i64>, DbError> {
        let (due, lease): (Option<i64>, Option<i64>) = on_pool!(self.db, |pool| {
            let mut qb = query_builder(
                pool,
                "SELECT MIN(due_at) FROM plugin_timers WHERE lease_until IS NULL AND due_at > ",
            );
            qb.push_bind(at);
            let due: Option<i64> = qb.build_query_scalar().fetch_one(pool).await?;
            let mut qb = query_builder(
                pool,
                "SELECT MIN(lease_until) FROM plugin_timers WHERE lease_until > ",
            );
            qb.push_bind(at);
            let lease: Option<i64> = qb.build_query_scalar().fetch_one(pool).await?;
            (due, lease)
        });
        Ok(match (due, lease) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }

    /// Takes `due`'s lease for `owner` until `until`: whether this Panel
    /// got it (another may have been first, or the plugin armed it anew).
    async fn claim(&self, due: &Due, owner: &str, at: i64, until: i64) -> Result<bool, DbError> {
        Ok(on_pool!(self.db, |pool| {
            let mut qb = query_builder(pool, "UPDATE plugin_timers SET lease_owner = ");
            qb.push_bind(owner)
                .push(", lease_until = ")
                .push_bind(until)
                .push(" WHERE plugin_id = ")
                .push_bind(due.plugin_id.as_str())
                .push(" AND timer_key = ")
                .push_bind(due.timer_key.as_str())
                .push(" AND arming = ")
                .push_bind(due.arming.as_str())
                .push(" AND due_at <= ")
                .push_bind(at)
                .push(" AND (lease_until IS NULL OR lease_until < ")
                .push_bind(at)
                .push(")");
            qb.build()
                .execute(pool.unrecorded(Unrecorded::PluginTimers))
                .await?
                .rows_affected()
                == 1
        }))
    }

    /// Moves the end of `owner`'s lease on `due` to `until`.
    async fn extend(&self, due: &Due, owner: &str, until: i64) -> Result<(), DbError> {
        on_pool!(self.db, |pool| {
            let mut qb = query_builder(pool, "UPDATE plugin_timers SET lease_until = ");
            qb.push_bind(until)
                .push(" WHERE plugin_id = ")
                .push_bind(due.plugin_id.as_str())
                .push(" AND timer_key = ")
                .push_bind(due.timer_key.as_str())
                .push(" AND arming = ")
                .push_bind(due.arming.as_str())
                .push(" AND lease_owner = ")
                .push_bind(owner);
            qb.build()
                .execute(pool.unrecorded(Unrecorded::PluginTimers))
                .await?;
        });
        Ok(())
    }

    /// Records the delivered firing `due` (`reason` when it failed) and
    /// removes its arming, in one transaction.
    async fn finish(
        &self,
        due: &Due,
        owner: &str,
        started: OffsetDateTime,
        reason: Option<&str>,
    ) -> Result<(), DbError> {
        let finished = now();
        let cutoff = to_micros(finished) - micros(RUN_RETENTION);
        let outcome = if reason.is_some() {
            RunOutcome::Failed
        } else {
            RunOutcome::Ok
        };
        let reason = reason.map(clip);
        on_pool!(self.db, |pool| {
            let mut tx = pool.begin_unrecorded(Unrecorded::PluginTimers).await?;
            insert_run!(
                pool,
                tx,
                due,
                owner,
                started,
                finished,
                outcome,
                reason.as_deref()
            );
            let mut qb = query_builder(pool, "DELETE FROM plugin_timers WHERE plugin_id = ");
            qb.push_bind(due.plugin_id.as_str())
                .push(" AND timer_key = ")
                .push_bind(due.timer_key.as_str())
                .push(" AND arming = ")
                .push_bind(due.arming.as_str())
                .push(" AND lease_owner = ")
                .push_bind(owner);
            qb.build().execute(&mut *tx).await?;
            let mut qb = query_builder(pool, "DELETE FROM plugin_timer_runs WHERE started_at < ");
            qb.push_bind(cutoff);
            qb.build().execute(&mut *tx).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Records that the firing `due` could not be delivered (`reason`),
    /// once per arming; the timer stays, leased by `owner`, and waits.
    async fn missed(
        &self,
        due: &Due,
        owner: &str,
        started: OffsetDateTime,
        reason: &str,
    ) -> Result<bool, DbError> {
        let finished = now();
        let reason = clip(reason);
        Ok(on_pool!(self.db, |pool| {
            let mut tx = pool.begin_unrecorded(Unrecorded::PluginTimers).await?;
            let mut qb = query_builder(pool, "UPDATE plugin_timers SET missed_at = ");
            qb.push_bind(to_micros(finished))
                .push(" WHERE plugin_id = ")
                .push_bind(due.plugin_id.as_str())
                .push(" AND timer_key = ")
                .push_bind(due.timer_key.as_str())
                .push(" AND arming = ")
                .push_bind(due.arming.as_str())
                .push(" AND lease_owner = ")
                .push_bind(owner)
                .push(" AND missed_at IS NULL");
            let first = qb.build().execute(&mut *tx).await?.rows_affected() == 1;
            if first {
                insert_run!(
                    pool,
                    tx,
                    due,
                    owner,
                    started,
                    finished,
                    RunOutcome::Failed,
                    Some(reason.as_str())
                );
            }
            tx.commit().await?;
            first
        }))
    }
}

fn unavailable(error: DbError) -> ServiceError {
    tracing::warn!(%error, "the timers capability could not reach the database");
    ServiceError::Unavailable("the Panel's database is unavailable".into())
}

impl TimerStore for Timers {
    fn set<'a>(
        &'a self,
        plugin: &'a str,
        key: &'a str,
        at_ms: u64,
    ) -> BoxFuture<'a, Result<(), ServiceError>> {
        Box::pin(async move {
            if self.arm(plugin, key, at_ms).await.map_err(unavailable)? {
                Ok(())
            } else {
                Err(ServiceError::LimitExceeded(format!(
                    "at most {} armed timers per plugin",
                    self.max_per_plugin
                )))
            }
        })
    }

    fn cancel<'a>(
        &'a self,
        plugin: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<bool, ServiceError>> {
        Box::pin(async move { self.disarm(plugin, key).await.map_err(unavailable) })
    }

    fn list<'a>(
        &'a self,
        plugin: &'a str,
        prefix: &'a str,
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<Timer>, ServiceError>> {
        Box::pin(async move {
            Timers::list(self, plugin, prefix, limit)
                .await
                .map_err(unavailable)
        })
    }
}

/// What becomes of a due timer on this Panel.
enum Fate {
    /// Deliver it to the loaded plugin.
    Deliver(Plugin),
    /// The plugin cannot take it: record why, once, and let it wait.
    Refuse(String),
    /// The plugin is active but not loaded here: leave it to the others.
    Elsewhere,
}

/// Whether `plugin` takes ticks: kind `hooks`, subscribed to
/// `schedule.tick` after the fact (its manifest was checked for that when
/// it asked for timers).
fn takes_ticks(plugin: &Plugin) -> bool {
    let manifest = plugin.manifest();
    manifest.has_kind(PluginKind::Hooks)
        && manifest
            .hooks
            .as_ref()
            .is_some_and(|h| h.wants_after(EventKind::ScheduleTick))
}

async fn fate(manager: &PluginManager, id: &str) -> Result<Fate, DbError> {
    if let Some(plugin) = manager.active(id) {
        return Ok(if let Some(quarantine) = plugin.quarantine() {
            Fate::Refuse(format!(
                "the plugin {id} is quarantined: {}",
                quarantine.reason
            ))
        } else if !plugin.grants().timers {
            Fate::Refuse(format!("the plugin {id} is not granted timers"))
        } else if !takes_ticks(&plugin) {
            Fate::Refuse(format!(
                "the plugin {id} does not take schedule.tick in its after-hook"
            ))
        } else {
            Fate::Deliver(plugin)
        });
    }
    Ok(match manager.get(id).await {
        Err(PluginError::NotFound(_)) => Fate::Refuse(format!("the plugin {id} is not installed")),
        Err(PluginError::Db(error)) => return Err(error),
        Err(_) => Fate::Elsewhere,
        Ok(record) if record.state != PluginLifecycle::Active => {
            Fate::Refuse(format!("the plugin {id} is not active"))
        }
        Ok(_) => Fate::Elsewhere,
    })
}

/// The delivery loop of a serving Panel ([`spawn_delivery`]).
#[derive(Debug)]
pub struct DeliveryLoop {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl DeliveryLoop {
    /// Stops claiming timers and waits (at most [`STOP_GRACE`]) for the
    /// deliveries running to finish and record their runs.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let mut task = self.task;
        if tokio::time::timeout(STOP_GRACE, &mut task).await.is_err() {
            tracing::warn!("timer deliveries still running after {STOP_GRACE:?}; cut off");
            task.abort();
        }
    }
}

/// Starts this Panel's delivery loop over `manager`'s timers (see the
/// module docs).
pub fn spawn_delivery(manager: PluginManager, options: TimerOptions) -> DeliveryLoop {
    let (stop, stopping) = watch::channel(false);
    let task = tokio::spawn(deliver_until_stopped(manager, options, stopping));
    DeliveryLoop { stop, task }
}

async fn deliver_until_stopped(
    manager: PluginManager,
    options: TimerOptions,
    mut stopping: watch::Receiver<bool>,
) {
    let owner = new_id("pnl");
    let timers = manager.timers().clone();
    let slots = Arc::new(Semaphore::new(MAX_DELIVERIES));
    let mut running = JoinSet::new();
    tracing::info!(panel = %owner, "timer delivery started");
    loop {
        // Collect finished deliveries.
        while running.try_join_next().is_some() {}
        let next = match round(&manager, &timers, &owner, &options, &slots, &mut running).await {
            Ok(next) => next,
            Err(error) => {
                tracing::warn!(%error, "the timer delivery could not read the database");
                None
            }
        };
        let now_us = to_micros(now());
        let sleep = next.map_or(options.poll, |at| {
            Duration::from_micros(u64::try_from(at.saturating_sub(now_us)).unwrap_or(0))
                .min(options.poll)
        });
        tokio::select! {
            () = tokio::time::sleep(sleep) => {}
            () = timers.wake.notified() => {}
            _ = stopping.changed() => break,
        }
        if *stopping.borrow() {
            break;
        }
    }
    // Let what runs finish and record itself.
    while running.join_next().await.is_some() {}
    tracing::info!(panel = %owner, "timer delivery stopped");
}

/// One round: claims what is due and starts its deliveries; returns when
/// to look again.
async fn round(
    manager: &PluginManager,
    timers: &Timers,
    owner: &str,
    options: &TimerOptions,
    slots: &Arc<Semaphore>,
    running: &mut JoinSet<()>,
) -> Result<Option<i64>, DbError> {
    let at = to_micros(now());
    let batch = timers.due(at).await?;
    // A full batch may have left due timers behind: look again at once.
    let more = i64::try_from(batch.len()).unwrap_or(i64::MAX) >= BATCH;
    for due in batch {
        let started = now();
        match fate(manager, &due.plugin_id).await? {
            Fate::Deliver(plugin) => {
                // Wait for a free slot before taking the lease, so a
                // claimed timer never waits here.
                let Ok(permit) = Arc::clone(slots).acquire_owned().await else {
                    break;
                };
                let lease = plugin.limits().timeout * 2 + LEASE_MARGIN;
                let until = to_micros(now()) + micros(lease);
                if !timers.claim(&due, owner, to_micros(now()), until).await? {
                    continue;
                }
                let (timers, owner, park) = (timers.clone(), owner.to_owned(), options.park);
                running.spawn(async move {
                    deliver(&timers, &plugin, &due, &owner, park).await;
                    drop(permit);
                });
            }
            Fate::Refuse(reason) => {
                let until = at + micros(options.park);
                if timers.claim(&due, owner, at, until).await?
                    && due.missed_at.is_none()
                    && timers.missed(&due, owner, started, &reason).await?
                {
                    tracing::warn!(plugin = %due.plugin_id, key = %due.timer_key, %reason,
                        "a timer fired that its plugin cannot take; it waits");
                }
            }
            Fate::Elsewhere => {
                timers
                    .claim(&due, owner, at, at + micros(options.park))
                    .await?;
            }
        }
    }
    if more {
        return Ok(Some(to_micros(now())));
    }
    timers.next_wake(to_micros(now())).await
}

/// Delivers `due` to `plugin` and records the outcome (see the module
/// docs for each case).
async fn deliver(timers: &Timers, plugin: &Plugin, due: &Due, owner: &str, park: Duration) {
    let started = now();
    let mut event = hooks::event(
        EventKind::ScheduleTick,
        Payload::Schedule(ScheduleInfo {
            name: due.timer_key.clone(),
            server_id: None,
        }),
        &Actor::system(),
    );
    event.occurred_at_ms = due.due_ms();
    let answer = plugin.hook_after(&event).await;
    let recorded = match answer {
        Ok(Ok(())) => timers.finish(due, owner, started, None).await,
        Ok(Err(error)) => {
            let reason = format!("{}: {}", error.code, error.message);
            timers.finish(due, owner, started, Some(&reason)).await
        }
        Err(CallError::Overloaded { .. }) => {
            let until = to_micros(now()) + micros(OVERLOAD_RETRY);
            timers.extend(due, owner, until).await
        }
        Err(error @ CallError::Quarantined { .. }) => {
            let until = to_micros(now()) + micros(park);
            match timers.extend(due, owner, until).await {
                Ok(()) => timers
                    .missed(due, owner, started, &error.to_string())
                    .await
                    .map(|_| ()),
                Err(e) => Err(e),
            }
        }
        Err(error) => {
            timers
                .finish(due, owner, started, Some(&error.to_string()))
                .await
        }
    };
    if let Err(error) = recorded {
        tracing::error!(plugin = %due.plugin_id, key = %due.timer_key, %error,
            "a timer's firing could not be recorded; its lease will expire and it fires again");
    }
}
