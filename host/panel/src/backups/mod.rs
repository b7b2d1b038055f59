//! Server backups: what the Panel records and decides; the archives
//! themselves are made, kept, restored and deleted by the server's Agent
//! ([`cap_protocol::backups`], the Agent's `backups` module).
//!
//! The routes are in [`crate::http::backups_routes`]; this module holds
//! the rows (`backups`, `backup_limits`), the storage settings
//! ([`storage`]) and the outcome the Agent reports
//! ([`record_report`]).
//!
//! # Decisions
//!
//! - **A backup is asked for, then reported.** Creating one records it
//!   `pending` and sends the request over the node's link; the Agent
//!   answers with `backup-done` minutes later, which makes it `done` (with
//!   the archive's SHA-256 and size) or `failed` (with the Agent's reason).
//!   Restores work the same way, recorded on the backup as its
//!   `restore_state`. Requests are not persisted: when a node's link drops,
//!   its pending backups and running restores are marked failed ("the node
//!   went offline"), and so are all of them when the Panel starts. A late
//!   report for a backup already failed is ignored: a failed backup never
//!   turns complete, and is never listed as such.
//! - **Per-server limit, with rotation.** `backup_limits` holds each
//!   server's limit ([`DEFAULT_LIMIT`] when none was set: backups are off
//!   until an administrator allows some, as in Pterodactyl). Pending and
//!   complete backups count against it; failed ones do not. At the limit,
//!   a new backup deletes the oldest complete, unlocked backup first; when
//!   every one is locked it is refused (`backup-limit-reached`).
//! - **Locked backups stay.** A locked backup cannot be deleted, by a user
//!   or by rotation, until it is unlocked (`backup.delete` does both).
//! - **Where archives go.** With storage settings ([`storage`]) every new
//!   backup goes to that S3-compatible bucket, otherwise to the disk of the
//!   server's node. The row keeps which (`target`); an S3 backup is found
//!   with the settings of the day, so moving to another bucket leaves the
//!   old backups behind.
//! - **Not a projection.** These tables are not rebuilt by replay and
//!   have no foreign key to `servers`: backups outlive a reinstall, and a
//!   replay that rebuilds the servers leaves them alone. Every change is
//!   still recorded in the same transaction as its `backup.*` event (the
//!   audit log).
//! - **Save commands** around a backup of a running server come from its
//!   game type (API 0.2.0 `plan-backup`; the egg bridge asks Minecraft
//!   Java servers for `save-off` and `save-all flush` before and `save-on`
//!   after); the Agent writes them to the console. A 0.1.0 game type, or
//!   one that does not answer, gets none: the files are archived as they
//!   are.
//! - **A deleted server's backups go with it** ([`forget_server`]): its
//!   Agent deletes the local archives with the server's directory, the
//!   Panel the S3 ones and the rows. A reinstall keeps them, one that
//!   wipes the server's directory too: local archives are in the node's
//!   `backups/`, not in the server's directory.
//! - **Suspended servers** (see `servers::suspension`): a backup may be
//!   made and downloaded, which only reads the files; a restore, which
//!   writes them, is refused (`server-suspended`, naming the reason).
//! - **Hooks (API 0.2.0).** `backup.create`, `backup.restore` and
//!   `backup.delete` go past the before-hooks before anything is recorded
//!   or sent (a rotation's deletes too, so a veto there refuses the new
//!   backup); `backup.complete` tells after-hooks how a backup ended
//!   ([`record_report`] returns the backup for that).
//! - **One path for people and plugins.** `POST /servers/{id}/backups` and
//!   a plugin's `panel.create-backup` (API 0.2.0, scope `backups.create`:
//!   the scheduler's backup tasks) both run
//!   `crate::agents::backups::start` (checks, rotation, before-hooks, the
//!   Agent's request); a plugin's backup is recorded with the plugin as
//!   the actor and fires no after-hooks, as a plugin's commands do.

pub mod storage;

use cap_protocol::backups::{BackupReport, BackupResult};
use cap_runtime::api::{BackupInfo, Payload};
use time::OffsetDateTime;

use crate::db::domain::{
    BackupCompleted, BackupDeleted, BackupEvent, BackupFailed, BackupLimitSet, BackupLock,
    BackupStarted, RestoreFinished, RestoreStarted, ServerId,
};
use crate::db::{
    Actor, Database, DbError, NewEvent, from_micros, now, on_pool, query_builder, to_micros,
};
use crate::error_code::Code;

/// A server's backup limit when none was set: backups are off.
pub const DEFAULT_LIMIT: u32 = 0;
/// The highest limit an administrator may set.
pub const MAX_LIMIT: u32 = 1000;

/// A backup's state.
pub mod state {
    /// Asked of the Agent, not finished.
    pub const PENDING: &str = "pending";
    /// The archive is stored.
    pub const DONE: &str = "done";
    /// It failed; nothing is stored.
    pub const FAILED: &str = "failed";
    /// A restore is running (`restore_state`).
    pub const RUNNING: &str = "running";
}

/// One backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backup {
    /// Its id (`bkp_…`).
    pub id: String,
    /// Its server.
    pub server_id: String,
    /// The node that made it (where a local archive lives).
    pub node_id: String,
    /// Its name.
    pub name: String,
    /// Its `.pteroignore` lines.
    pub ignored: Vec<String>,
    /// `local` or `s3`.
    pub target: String,
    /// `pending`, `done` or `failed`.
    pub state: String,
    /// The archive's SHA-256, once done.
    pub sha256: Option<String>,
    /// The archive's size, once done.
    pub bytes: u64,
    /// Locked against deletion.
    pub locked: bool,
    /// Why it failed.
    pub failure: Option<String>,
    /// The last restore from it: `running`, `done` or `failed`.
    pub restore_state: Option<String>,
    /// Why the last restore failed.
    pub restore_failure: Option<String>,
    /// When it was asked for.
    pub created_at: OffsetDateTime,
    /// When it was done or failed.
    pub completed_at: Option<OffsetDateTime>,
    /// When the last restore ended.
    pub restored_at: Option<OffsetDateTime>,
}

impl Backup {
    /// Whether it counts against the server's limit.
    pub fn counts(&self) -> bool {
        self.state != state::FAILED
    }

    /// Whether a restore from it is running.
    pub fn restoring(&self) -> bool {
        self.restore_state.as_deref() == Some(state::RUNNING)
    }
}

#[derive(sqlx::FromRow)]
struct BackupRow {
    id: String,
    server_id: String,
    node_id: String,
    name: String,
    ignored: String,
    target: String,
    state: String,
    sha256: Option<String>,
    bytes: i64,
    locked: bool,
    failure: Option<String>,
    restore_state: Option<String>,
    restore_failure: Option<String>,
    created_at: i64,
    completed_at: Option<i64>,
    restored_at: Option<i64>,
}

const COLUMNS: &str = "id, server_id, node_id, name, ignored, target, state, sha256, bytes, locked, failure, restore_state, restore_failure, created_at, completed_at, restored_at";

impl TryFrom<BackupRow> for Backup {
    type Error = DbError;

    fn try_from(row: BackupRow) -> Result<Self, DbError> {
        Ok(Backup {
            id: row.id,
            server_id: row.server_id,
            node_id: row.node_id,
            name: row.name,
            ignored: split_lines(&row.ignored),
            target: row.target,
            state: row.state,
            sha256: row.sha256,
            bytes: u64::try_from(row.bytes).unwrap_or(0),
            locked: row.locked,
            failure: row.failure,
            restore_state: row.restore_state,
            restore_failure: row.restore_failure,
            created_at: from_micros(row.created_at)?,
            completed_at: row.completed_at.map(from_micros).transpose()?,
            restored_at: row.restored_at.map(from_micros).transpose()?,
        })
    }
}

/// The lines of a `.pteroignore` text: trimmed of trailing whitespace and
/// carriage returns, blank lines dropped.
pub fn split_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim_end)
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Why a backup operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum BackupsError {
    /// No such backup on this server.
    #[error("backup {0} not found")]
    NotFound(String),
    /// The server's limit is 0.
    #[error(
        "backups are turned off for this server (its backup limit is 0); an administrator can set one with PUT /api/v1/servers/{0}/backup-limit"
    )]
    Disabled(String),
    /// At the limit, and every backup is locked.
    #[error(
        "the server has {limit} backups, its limit, and every one is locked: unlock or delete one first"
    )]
    LimitReached {
        /// The limit.
        limit: u32,
    },
    /// The backup is locked.
    #[error("backup {0} is locked: unlock it before deleting it")]
    Locked(String),
    /// The backup is not complete.
    #[error("backup {id} is {state}, not done")]
    NotComplete {
        /// The backup.
        id: String,
        /// Its state.
        state: String,
    },
    /// A backup or restore of this server is running (`"backup"`,
    /// `"restore"`): one at a time, so that neither archives or changes
    /// files the other is writing.
    #[error("a {0} of this server is running: wait for it to end")]
    Busy(&'static str),
    /// The server runs.
    #[error("the server is {0}: stop it before restoring a backup")]
    ServerRunning(String),
    /// The object storage failed.
    #[error("the backup storage failed: {0}")]
    Storage(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl BackupsError {
    /// The stable code the HTTP layer answers with.
    pub fn code(&self) -> Code {
        match self {
            BackupsError::NotFound(_) => Code::BackupNotFound,
            BackupsError::Disabled(_) => Code::BackupsDisabled,
            BackupsError::LimitReached { .. } => Code::BackupLimitReached,
            BackupsError::Locked(_) => Code::BackupLocked,
            BackupsError::NotComplete { .. } => Code::BackupNotComplete,
            BackupsError::Busy(_) => Code::BackupBusy,
            BackupsError::ServerRunning(_) => Code::ServerRunning,
            BackupsError::Storage(_) => Code::BackupStorageFailed,
            BackupsError::Db(_) => Code::InternalError,
        }
    }
}

fn event(server_id: &str, make: impl FnOnce(ServerId) -> BackupEvent, actor: &Actor) -> NewEvent {
    NewEvent::new(make(ServerId::new(server_id))).actor(actor.clone())
}

/// The server's backups, newest first.
///
/// # Errors
///
/// Database errors.
pub async fn list(db: &Database, server_id: &str) -> Result<Vec<Backup>, DbError> {
    let rows: Vec<BackupRow> = on_pool!(db, |pool| {
        let mut qb = query_builder(pool, "SELECT ");
        qb.push(COLUMNS)
            .push(" FROM backups WHERE server_id = ")
            .push_bind(server_id)
            .push(" ORDER BY created_at DESC, id DESC");
        qb.build_query_as::<BackupRow>().fetch_all(pool).await?
    });
    rows.into_iter().map(Backup::try_from).collect()
}

/// Backup `backup_id` of `server_id`.
///
/// # Errors
///
/// Database errors.
pub async fn get(
    db: &Database,
    server_id: &str,
    backup_id: &str,
) -> Result<Option<Backup>, DbError> {
    let row: Option<BackupRow> = on_pool!(db, |pool| {
        let mut qb = query_builder(pool, "SELECT ");
        qb.push(COLUMNS)
            .push(" FROM backups WHERE id = ")
            .push_bind(backup_id)
            .push(" AND server_id = ")
            .push_bind(server_id);
        qb.build_query_as::<BackupRow>()
            .fetch_optional(pool)
            .await?
    });
    row.map(Backup::try_from).transpose()
}

/// The server's backup limit ([`DEFAULT_LIMIT`] when none was set).
///
/// # Errors
///
/// Database errors.
pub async fn limit(db: &Database, server_id: &str) -> Result<u32, DbError> {
    let found: Option<i32> = on_pool!(db, |pool| {
        let mut qb = query_builder(
            pool,
            "SELECT max_backups FROM backup_limits WHERE server_id = ",
        );
        qb.push_bind(server_id);
        qb.build_query_scalar::<i32>().fetch_optional(pool).await?
    });
    Ok(found.map_or(DEFAULT_LIMIT, |n| u32::try_from(n).unwrap_or(0)))
}

/// Sets the server's backup limit (at most [`MAX_LIMIT`]), recording
/// `backup.limit.set`. Existing backups over it are removed by the next
/// rotation, not now.
///
/// # Errors
///
/// Database errors.
pub async fn set_limit(
    db: &Database,
    server_id: &str,
    limit: u32,
    actor: &Actor,
) -> Result<(), DbError> {
    let limit = limit.min(MAX_LIMIT);
    let recorded = event(
        server_id,
        |subject| BackupEvent::LimitSet {
            subject,
            data: BackupLimitSet { limit },
        },
        actor,
    );
    let stored = i32::try_from(limit).unwrap_or(i32::MAX);
    on_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        let mut qb = query_builder(pool, "DELETE FROM backup_limits WHERE server_id = ");
        qb.push_bind(server_id);
        qb.build().execute(&mut *tx).await?;
        let mut qb = query_builder(
            pool,
            "INSERT INTO backup_limits (server_id, max_backups, updated_at) VALUES (",
        );
        qb.separated(", ")
            .push_bind(server_id)
            .push_bind(stored)
            .push_bind(to_micros(now()));
        qb.push(")");
        qb.build().execute(&mut *tx).await?;
        tx.record(&recorded).await?;
        tx.commit().await?;
    });
    Ok(())
}

/// A backup to record as asked for.
#[derive(Debug, Clone)]
pub struct NewBackup {
    /// Its id.
    pub id: String,
    /// Its server.
    pub server_id: String,
    /// The server's node.
    pub node_id: String,
    /// Its name.
    pub name: String,
    /// Its ignore lines.
    pub ignored: Vec<String>,
    /// `local` or `s3`.
    pub target: String,
    /// Locked from the start.
    pub locked: bool,
}

/// Records `backup` as `pending`, with `backup.started` (and
/// `backup.lock.changed` when it starts locked).
///
/// # Errors
///
/// Database errors.
pub async fn insert(db: &Database, backup: &NewBackup, actor: &Actor) -> Result<Backup, DbError> {
    let at = now();
    let started = event(
        &backup.server_id,
        |subject| BackupEvent::Started {
            subject,
            data: BackupStarted {
                backup_id: backup.id.clone(),
                name: backup.name.clone(),
                ignored: backup.ignored.clone(),
                target: backup.target.clone(),
                node_id: backup.node_id.clone(),
                at: to_micros(at),
            },
        },
        actor,
    )
    .occurred_at(at);
    let locked = event(
        &backup.server_id,
        |subject| BackupEvent::LockChanged {
            subject,
            data: BackupLock {
                backup_id: backup.id.clone(),
                locked: true,
            },
        },
        actor,
    )
    .occurred_at(at);
    let ignored = backup.ignored.join("\n");
    on_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        let mut qb = query_builder(
            pool,
            "INSERT INTO backups (id, server_id, node_id, name, ignored, target, state, bytes, locked, created_at) VALUES (",
        );
        qb.separated(", ")
            .push_bind(&backup.id)
            .push_bind(&backup.server_id)
            .push_bind(&backup.node_id)
            .push_bind(&backup.name)
            .push_bind(&ignored)
            .push_bind(&backup.target)
            .push_bind(state::PENDING)
            .push_bind(0_i64)
            .push_bind(backup.locked)
            .push_bind(to_micros(at));
        qb.push(")");
        qb.build().execute(&mut *tx).await?;
        tx.record(&started).await?;
        if backup.locked {
            tx.record(&locked).await?;
        }
        tx.commit().await?;
    });
    get(db, &backup.server_id, &backup.id)
        .await?
        .ok_or_else(|| DbError::Corrupt(format!("backup {} vanished", backup.id)))
}

/// Marks a pending backup failed with `reason`; `false` when it was not
/// pending.
///
/// # Errors
///
/// Database errors.
pub async fn fail(
    db: &Database,
    server_id: &str,
    backup_id: &str,
    reason: &str,
    actor: &Actor,
) -> Result<bool, DbError> {
    let at = now();
    let recorded = event(
        server_id,
        |subject| BackupEvent::Failed {
            subject,
            data: BackupFailed {
                backup_id: backup_id.to_owned(),
                reason: reason.to_owned(),
                at: to_micros(at),
            },
        },
        actor,
    )
    .occurred_at(at);
    Ok(on_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        let mut qb = query_builder(pool, "UPDATE backups SET state = ");
        qb.push_bind(state::FAILED)
            .push(", failure = ")
            .push_bind(reason)
            .push(", completed_at = ")
            .push_bind(to_micros(at))
            .push(" WHERE id = ")
            .push_bind(backup_id)
            .push(" AND server_id = ")
            .push_bind(server_id)
            .push(" AND state = ")
            .push_bind(state::PENDING);
        let changed = qb.build().execute(&mut *tx).await?.rows_affected() > 0;
        if changed {
            tx.record(&recorded).await?;
        }
        tx.commit().await?;
        changed
    }))
}

/// Marks a pending backup done; `false` when it was not pending.
async fn complete(
    db: &Database,
    server_id: &str,
    backup_id: &str,
    sha256: &str,
    bytes: u64,
) -> Result<bool, DbError> {
    let at = now();
    let recorded = event(
        server_id,
        |subject| BackupEvent::Completed {
            subject,
            data: BackupCompleted {
                backup_id: backup_id.to_owned(),
                sha256: sha256.to_owned(),
                bytes,
                at: to_micros(at),
            },
        },
        &Actor::system(),
    )
    .occurred_at(at);
    Ok(on_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        let mut qb = query_builder(pool, "UPDATE backups SET state = ");
        qb.push_bind(state::DONE)
            .push(", sha256 = ")
            .push_bind(sha256)
            .push(", bytes = ")
            .push_bind(i64::try_from(bytes).unwrap_or(i64::MAX))
            .push(", completed_at = ")
            .push_bind(to_micros(at))
            .push(" WHERE id = ")
            .push_bind(backup_id)
            .push(" AND server_id = ")
            .push_bind(server_id)
            .push(" AND state = ")
            .push_bind(state::PENDING);
        let changed = qb.build().execute(&mut *tx).await?.rows_affected() > 0;
        if changed {
            tx.record(&recorded).await?;
        }
        tx.commit().await?;
        changed
    }))
}

/// Removes the row, with `backup.deleted` (`rotated` when rotation did).
///
/// # Errors
///
/// Database errors.
pub async fn delete(
    db: &Database,
    server_id: &str,
    backup_id: &str,
    rotated: bool,
    actor: &Actor,
) -> Result<bool, DbError> {
    let recorded = event(
        server_id,
        |subject| BackupEvent::Deleted {
            subject,
            data: BackupDeleted {
                backup_id: backup_id.to_owned(),
                rotated,
            },
        },
        actor,
    );
    Ok(on_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        let mut qb = query_builder(pool, "DELETE FROM backups WHERE id = ");
        qb.push_bind(backup_id)
            .push(" AND server_id = ")
            .push_bind(server_id);
        let changed = qb.build().execute(&mut *tx).await?.rows_affected() > 0;
        if changed {
            tx.record(&recorded).await?;
        }
        tx.commit().await?;
        changed
    }))
}

/// Forgets the backups of deleted server `server_id`: its S3 archives
/// are deleted from the bucket (the Agent deleted its local ones with the
/// server), then its rows and its limit. Best effort past the rows: an
/// archive the bucket refuses to delete is logged and left.
///
/// # Errors
///
/// Database errors.
pub async fn forget_server(db: &Database, server_id: &str) -> Result<usize, DbError> {
    let backups = list(db, server_id).await?;
    if backups
        .iter()
        .any(|b| b.target == "s3" && b.state != state::FAILED)
    {
        match storage::load(db).await? {
            Some((target, _)) => {
                for backup in backups
                    .iter()
                    .filter(|b| b.target == "s3" && b.state != state::FAILED)
                {
                    if let Err(error) = storage::delete_object(&target, server_id, &backup.id).await
                    {
                        tracing::warn!(server = server_id, backup = %backup.id, %error, "could not delete a deleted server's backup from the bucket");
                    }
                }
            }
            None => {
                tracing::warn!(
                    server = server_id,
                    "a deleted server's S3 backups are left in the bucket: no storage settings remain"
                );
            }
        }
    }
    let system = Actor::system();
    for backup in &backups {
        delete(db, server_id, &backup.id, false, &system).await?;
    }
    // The limit goes too, recorded as cleared (a write in a transaction:
    // the pool itself only reads).
    let cleared = event(
        server_id,
        |subject| BackupEvent::LimitSet {
            subject,
            data: BackupLimitSet { limit: 0 },
        },
        &system,
    );
    on_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        let mut qb = query_builder(pool, "DELETE FROM backup_limits WHERE server_id = ");
        qb.push_bind(server_id);
        if qb.build().execute(&mut *tx).await?.rows_affected() > 0 {
            tx.record(&cleared).await?;
        }
        tx.commit().await?;
    });
    Ok(backups.len())
}

/// Locks or unlocks the backup.
///
/// # Errors
///
/// Database errors.
pub async fn set_locked(
    db: &Database,
    server_id: &str,
    backup_id: &str,
    locked: bool,
    actor: &Actor,
) -> Result<(), DbError> {
    let recorded = event(
        server_id,
        |subject| BackupEvent::LockChanged {
            subject,
            data: BackupLock {
                backup_id: backup_id.to_owned(),
                locked,
            },
        },
        actor,
    );
    on_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        let mut qb = query_builder(pool, "UPDATE backups SET locked = ");
        qb.push_bind(locked)
            .push(" WHERE id = ")
            .push_bind(backup_id)
            .push(" AND server_id = ")
            .push_bind(server_id);
        if qb.build().execute(&mut *tx).await?.rows_affected() > 0 {
            tx.record(&recorded).await?;
        }
        tx.commit().await?;
    });
    Ok(())
}

/// Records that a restore from the backup was asked for.
///
/// # Errors
///
/// Database errors.
pub async fn restore_started(
    db: &Database,
    server_id: &str,
    backup_id: &str,
    truncate: bool,
    actor: &Actor,
) -> Result<(), DbError> {
    let at = now();
    let recorded = event(
        server_id,
        |subject| BackupEvent::RestoreStarted {
            subject,
            data: RestoreStarted {
                backup_id: backup_id.to_owned(),
                truncate,
                at: to_micros(at),
            },
        },
        actor,
    )
    .occurred_at(at);
    on_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        let mut qb = query_builder(pool, "UPDATE backups SET restore_state = ");
        qb.push_bind(state::RUNNING)
            .push(", restore_failure = NULL, restored_at = NULL WHERE id = ")
            .push_bind(backup_id)
            .push(" AND server_id = ")
            .push_bind(server_id);
        if qb.build().execute(&mut *tx).await?.rows_affected() > 0 {
            tx.record(&recorded).await?;
        }
        tx.commit().await?;
    });
    Ok(())
}

/// Records how a running restore ended; `false` when none was running.
///
/// # Errors
///
/// Database errors.
pub async fn restore_finished(
    db: &Database,
    server_id: &str,
    backup_id: &str,
    failure: Option<&str>,
    actor: &Actor,
) -> Result<bool, DbError> {
    let at = now();
    let recorded = event(
        server_id,
        |subject| BackupEvent::RestoreFinished {
            subject,
            data: RestoreFinished {
                backup_id: backup_id.to_owned(),
                ok: failure.is_none(),
                reason: failure.map(str::to_owned),
                at: to_micros(at),
            },
        },
        actor,
    )
    .occurred_at(at);
    let to = if failure.is_some() {
        state::FAILED
    } else {
        state::DONE
    };
    Ok(on_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        let mut qb = query_builder(pool, "UPDATE backups SET restore_state = ");
        qb.push_bind(to)
            .push(", restore_failure = ")
            .push_bind(failure)
            .push(", restored_at = ")
            .push_bind(to_micros(at))
            .push(" WHERE id = ")
            .push_bind(backup_id)
            .push(" AND server_id = ")
            .push_bind(server_id)
            .push(" AND restore_state = ")
            .push_bind(state::RUNNING);
        let changed = qb.build().execute(&mut *tx).await?.rows_affected() > 0;
        if changed {
            tx.record(&recorded).await?;
        }
        tx.commit().await?;
        changed
    }))
}

/// What of `backups` (one server's) is running, if anything: `"backup"`
/// or `"restore"`.
pub fn running(backups: &[Backup]) -> Option<&'static str> {
    if backups.iter().any(Backup::restoring) {
        Some("restore")
    } else if backups.iter().any(|b| b.state == state::PENDING) {
        Some("backup")
    } else {
        None
    }
}

/// Fails the pending backups and running restores of node `node_id` (of
/// every node when `None`) with `reason`: their Agent can no longer
/// report them. Returns how many were failed.
///
/// # Errors
///
/// Database errors.
pub async fn fail_unfinished(
    db: &Database,
    node_id: Option<&str>,
    reason: &str,
) -> Result<usize, DbError> {
    #[derive(sqlx::FromRow)]
    struct Unfinished {
        id: String,
        server_id: String,
        state: String,
        restore_state: Option<String>,
    }
    let rows: Vec<Unfinished> = on_pool!(db, |pool| {
        let mut qb = query_builder(
            pool,
            "SELECT id, server_id, state, restore_state FROM backups WHERE (state = ",
        );
        qb.push_bind(state::PENDING)
            .push(" OR restore_state = ")
            .push_bind(state::RUNNING)
            .push(")");
        if let Some(node) = node_id {
            qb.push(" AND node_id = ").push_bind(node);
        }
        qb.build_query_as::<Unfinished>().fetch_all(pool).await?
    });
    let mut failed = 0;
    for row in rows {
        if row.state == state::PENDING
            && fail(db, &row.server_id, &row.id, reason, &Actor::system()).await?
        {
            failed += 1;
        }
        if row.restore_state.as_deref() == Some(state::RUNNING)
            && restore_finished(db, &row.server_id, &row.id, Some(reason), &Actor::system()).await?
        {
            failed += 1;
        }
    }
    Ok(failed)
}

/// The hook payload (API 0.2.0) describing `backup`.
pub fn hook_payload(backup: &Backup) -> Payload {
    Payload::Backup(BackupInfo {
        server_id: backup.server_id.clone(),
        id: backup.id.clone(),
        name: backup.name.clone(),
        state: backup.state.clone(),
        size_bytes: (backup.state == state::DONE).then_some(backup.bytes),
        sha256: backup.sha256.clone(),
        reason: backup.failure.clone(),
        locked: backup.locked,
    })
}

/// Records what node `node_id`'s Agent reported about a backup: a create
/// makes it done or failed, a restore ends its restore, a failed delete
/// is logged (the row is gone already). Reports about backups of other
/// nodes, and late ones, are ignored.
///
/// Returns the backup as it is now when a create ended here (done or
/// failed), for the `backup.complete` after-hooks.
///
/// # Errors
///
/// Database errors.
pub async fn record_report(
    db: &Database,
    node_id: &str,
    report: BackupReport,
) -> Result<Option<Backup>, DbError> {
    let BackupReport {
        backup_id,
        server_id,
        op,
        result,
    } = report;
    let Some(backup) = get(db, &server_id, &backup_id).await? else {
        if let BackupResult::Failed { reason, .. } = &result {
            tracing::warn!(backup = %backup_id, server = %server_id, %op, %reason, "a backup operation failed on the Agent");
        }
        return Ok(None);
    };
    if backup.node_id != node_id {
        tracing::warn!(backup = %backup_id, node = %node_id, "a node reported on a backup it does not hold; ignored");
        return Ok(None);
    }
    let system = Actor::system();
    match (op.as_str(), result) {
        ("create", BackupResult::Ok { sha256, bytes }) => {
            if !complete(db, &server_id, &backup_id, &sha256, bytes).await? {
                tracing::info!(backup = %backup_id, state = %backup.state, "a late backup report was ignored");
                return Ok(None);
            }
            return get(db, &server_id, &backup_id).await;
        }
        ("create", BackupResult::Failed { reason, .. }) => {
            if backup.state != state::PENDING {
                return Ok(None);
            }
            fail(db, &server_id, &backup_id, &reason, &system).await?;
            return get(db, &server_id, &backup_id).await;
        }
        ("restore", BackupResult::Ok { .. }) => {
            restore_finished(db, &server_id, &backup_id, None, &system).await?;
        }
        ("restore", BackupResult::Failed { reason, .. }) => {
            restore_finished(db, &server_id, &backup_id, Some(&reason), &system).await?;
        }
        (op, BackupResult::Failed { reason, .. }) => {
            tracing::warn!(backup = %backup_id, %op, %reason, "a backup operation failed on the Agent");
        }
        _ => {}
    }
    Ok(None)
}
