//! Transfers of a server between nodes: what the Panel asks the source and
//! the target Agents, and what they answer.
//!
//! A transfer moves a server's files from the Agent of the node it is on
//! (the *source*) to the Agent of another node (the *target*), straight
//! from one to the other:
//!
//! 1. the Panel signs a grant for the target ([`crate::files::FileGrant`],
//!    operation [`GrantOp::TransferReceive`](crate::files::GrantOp::TransferReceive),
//!    `sub` the server, `path` the transfer) and asks the source
//!    ([`TransferOp::Send`]) to stream the server's directory, as the
//!    backup archive (tar + zstd), to the target's transfer listener
//!    ([`RECEIVE_PATH`]) with it;
//! 2. the source reports progress ([`TransferProgress`]) while it sends,
//!    and one [`TransferReport`] at the end: the archive's SHA-256 as it
//!    sent it and as the target unpacked it;
//! 3. the Panel commits (the server's node, its allocations) and then asks
//!    the source to remove its copy ([`TransferOp::Forget`]); a transfer
//!    that failed after the target unpacked asks the target to remove its
//!    copy ([`TransferOp::Discard`]).
//!
//! Key decisions:
//!
//! - **The source is never touched before the commit.** It only reads its
//!   files until the Panel says the target holds the server. Whatever
//!   fails before (the target's disk, the link between the nodes, either
//!   Agent's link to the Panel, the Panel itself) leaves the server whole
//!   where it was.
//! - **The target unpacks beside, then in.** It unpacks into a staging
//!   directory with the bounds of every extraction (the server's disk
//!   limit, the size the source declared, entries, no links or devices or
//!   paths leaving the directory) and moves the files in only once the
//!   stream ended well; a stream cut short leaves nothing.
//! - **Disk is checked before the first byte.** The source declares the
//!   bytes its files hold ([`TRANSFER_SIZE_HEADER`]); a target whose file
//!   system has less free is refused at once, naming both figures, and
//!   one that fills up all the same stops with
//!   [`TransferErrorCode::DiskFull`].
//! - **Fire and report**, as backups: the Panel does not wait on the link.

use serde::{Deserialize, Serialize};

/// Where a target Agent's transfer listener takes a transfer
/// (`POST <files_url>/api/transfers/receive?token=<grant>`).
pub const RECEIVE_PATH: &str = "/api/transfers/receive";

/// The request header in which the source declares the bytes the server's
/// files hold (their apparent sizes, summed).
pub const TRANSFER_SIZE_HEADER: &str = "x-cap-transfer-size";

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "op",
    rename_all = "kebab-case",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
pub enum TransferOp {
    /// To the source: stream the server's files to the target.
    Send {
        /// The target's receive URL ([`RECEIVE_PATH`] under the target's
        /// files URL), without the token.
        url: String,
        /// The grant for the target, a signed JWT.
        token: String,
    },
    /// To the source, after the commit: remove the server (its process,
    /// files and bookkeeping). Its local backups stay where they are.
    Forget,
    /// To the target, after a transfer failed once the target had
    /// unpacked: remove the files it received, unless the server runs
    /// there.
    Discard,
}

impl TransferOp {
    /// The operation's wire name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Send { .. } => "send",
            Self::Forget => "forget",
            Self::Discard => "discard",
        }
    }
}

/// A transfer step the Panel asks of an Agent
/// ([`crate::PanelMessage::Transfer`]), answered by one [`TransferReport`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TransferRequest {
    /// The transfer.
    pub transfer_id: String,
    /// The server.
    pub server_id: String,
    /// What to do.
    pub op: TransferOp,
}

/// Why a transfer step failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TransferErrorCode {
    /// The Agent does not have the server (source), or has it running or
    /// known already (target).
    UnknownServer,
    /// The server exists on the target already.
    Conflict,
    /// The target's file system has not enough free space.
    DiskFull,
    /// The files exceed the server's disk limit.
    DiskLimit,
    /// The archive could not be unpacked (cut short, corrupt, refused by
    /// the extraction bounds).
    Archive,
    /// The target could not be reached, or the connection between the
    /// nodes broke.
    Link,
    /// The target refused the grant.
    Unauthorized,
    /// The bytes the target unpacked are not those the source sent.
    Mismatch,
    /// The file system failed.
    Io,
}

impl TransferErrorCode {
    /// The code's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnknownServer => "unknown-server",
            Self::Conflict => "conflict",
            Self::DiskFull => "disk-full",
            Self::DiskLimit => "disk-limit",
            Self::Archive => "archive",
            Self::Link => "link",
            Self::Unauthorized => "unauthorized",
            Self::Mismatch => "mismatch",
            Self::Io => "io",
        }
    }
}

/// How a [`TransferRequest`] ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "status",
    rename_all = "kebab-case",
    rename_all_fields = "camelCase"
)]
pub enum TransferResult {
    /// It worked. For `send`, the archive: its SHA-256 as the target
    /// unpacked it (the source checked it against its own), its size and
    /// the files' bytes; zeros and an empty digest for the other steps.
    Ok {
        /// Lowercase hex SHA-256 of the archive.
        sha256: String,
        /// The archive's size.
        bytes: u64,
        /// The bytes of the files in it.
        files_bytes: u64,
    },
    /// It did not.
    Failed {
        /// What went wrong.
        code: TransferErrorCode,
        /// A sentence saying why, naming the node that failed.
        reason: String,
    },
}

/// The answer to a [`TransferRequest`] ([`crate::AgentMessage::TransferDone`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TransferReport {
    /// The transfer.
    pub transfer_id: String,
    /// The server.
    pub server_id: String,
    /// The operation's wire name ([`TransferOp::name`]).
    pub op: String,
    /// How it ended.
    pub result: TransferResult,
}

/// How far a `send` is ([`crate::AgentMessage::TransferProgress`]), about
/// once a second.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TransferProgress {
    /// The transfer.
    pub transfer_id: String,
    /// The server.
    pub server_id: String,
    /// Bytes of the tar stream (before compression) sent so far.
    pub sent_bytes: u64,
    /// Bytes the whole tar stream will have (the files, their headers and
    /// padding).
    pub total_bytes: u64,
}

/// What a target's transfer listener answers, as JSON: `200` with
/// [`Received`], or an error status with a [`ReceiveRefusal`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Received {
    /// Lowercase hex SHA-256 of the archive as it arrived.
    pub sha256: String,
    /// Its size.
    pub bytes: u64,
    /// The bytes of the files unpacked.
    pub files_bytes: u64,
}

/// Why a target refused or failed a transfer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReceiveRefusal {
    /// What went wrong.
    pub code: TransferErrorCode,
    /// Why.
    pub reason: String,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_send_request_and_a_failed_report_read_back_as_sent() {
        let request = TransferRequest {
            transfer_id: "xfr_1".into(),
            server_id: "srv_1".into(),
            op: TransferOp::Send {
                url: "http://127.0.0.1:8443/api/transfers/receive".into(),
                token: "jwt".into(),
            },
        };
        let json = serde_json::to_string(&request).unwrap();
        assert!(json.contains(r#""op":"send""#), "{json}");
        assert_eq!(
            serde_json::from_str::<TransferRequest>(&json).unwrap(),
            request
        );
        let report = TransferReport {
            transfer_id: "xfr_1".into(),
            server_id: "srv_1".into(),
            op: "send".into(),
            result: TransferResult::Failed {
                code: TransferErrorCode::DiskFull,
                reason: "full".into(),
            },
        };
        let json = serde_json::to_string(&report).unwrap();
        assert!(json.contains(r#""code":"disk-full""#), "{json}");
        assert_eq!(
            serde_json::from_str::<TransferReport>(&json).unwrap(),
            report
        );
    }
}
