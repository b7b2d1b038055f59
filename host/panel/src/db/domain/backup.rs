//! `backup.*` and `backup-storage.*`: servers' backups, their limits, and
//! the S3-compatible storage they go to ([`crate::backups`]).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Empty, Null, ServerId, namespace};

namespace! {
    /// `backup.*`: a server's backups (the subject is the server; the
    /// backup's id is in the data).
    pub enum BackupEvent {
        /// A backup was asked of the server's Agent.
        Started = "backup.started" { subject: ServerId, data: BackupStarted },
        /// The Agent finished it: the archive is stored.
        Completed = "backup.completed" { subject: ServerId, data: BackupCompleted },
        /// It failed (the Agent said why, or its node went offline).
        Failed = "backup.failed" { subject: ServerId, data: BackupFailed },
        /// It was deleted (by a user, or by rotation at the server's limit).
        Deleted = "backup.deleted" { subject: ServerId, data: BackupDeleted },
        /// It was locked against deletion, or unlocked.
        LockChanged = "backup.lock.changed" { subject: ServerId, data: BackupLock },
        /// A restore from it was asked of the server's Agent.
        RestoreStarted = "backup.restore.started" { subject: ServerId, data: RestoreStarted },
        /// The restore ended, one way or the other.
        RestoreFinished = "backup.restore.finished" { subject: ServerId, data: RestoreFinished },
        /// The server's backup limit was set (0 turns backups off).
        LimitSet = "backup.limit.set" { subject: ServerId, data: BackupLimitSet },
    }
}

/// A backup asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BackupStarted {
    /// The backup.
    pub backup_id: String,
    /// Its name.
    pub name: String,
    /// Its ignore lines.
    pub ignored: Vec<String>,
    /// `local` or `s3`.
    pub target: String,
    /// The node that makes it.
    pub node_id: String,
    /// When, in microseconds since the Unix epoch.
    pub at: i64,
}

/// A backup stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BackupCompleted {
    /// The backup.
    pub backup_id: String,
    /// The archive's SHA-256, lowercase hex.
    pub sha256: String,
    /// The archive's size in bytes.
    pub bytes: u64,
    /// When, in microseconds since the Unix epoch.
    pub at: i64,
}

/// A backup that failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BackupFailed {
    /// The backup.
    pub backup_id: String,
    /// Why.
    pub reason: String,
    /// When, in microseconds since the Unix epoch.
    pub at: i64,
}

/// A deleted backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BackupDeleted {
    /// The backup.
    pub backup_id: String,
    /// Whether rotation deleted it, to make room for a new one.
    pub rotated: bool,
}

/// A lock set or lifted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BackupLock {
    /// The backup.
    pub backup_id: String,
    /// Whether it is locked now.
    pub locked: bool,
}

/// A restore asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RestoreStarted {
    /// The backup restored from.
    pub backup_id: String,
    /// Whether the server's files are removed first.
    pub truncate: bool,
    /// When, in microseconds since the Unix epoch.
    pub at: i64,
}

/// A restore that ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RestoreFinished {
    /// The backup restored from.
    pub backup_id: String,
    /// Whether it worked.
    pub ok: bool,
    /// Why not, when it did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    pub reason: Option<String>,
    /// When, in microseconds since the Unix epoch.
    pub at: i64,
}

/// A server's backup limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BackupLimitSet {
    /// The most backups the server keeps; 0 turns backups off.
    pub limit: u32,
}

namespace! {
    /// `backup-storage.*`: the S3-compatible storage backups go to. The
    /// secret key is never recorded.
    pub enum BackupStorageEvent {
        /// Backups go to this storage from now on.
        Configured = "backup-storage.configured" { subject: Null, data: BackupStorageConfigured },
        /// The storage settings were removed: backups stay on the nodes.
        Cleared = "backup-storage.cleared" { subject: Null, data: Empty },
    }
}

/// The storage as set, without the secret key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BackupStorageConfigured {
    /// The endpoint URL.
    pub endpoint: String,
    /// The region.
    pub region: String,
    /// The bucket.
    pub bucket: String,
    /// The key prefix.
    pub prefix: String,
    /// The access key id.
    pub access_key_id: String,
    /// Path-style URLs.
    pub path_style: bool,
}
