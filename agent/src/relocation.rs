//! Moving a server to another node: this Agent as the *source* (it
//! streams the server's files to the target and, once the Panel
//! committed, forgets the server) or as the *target* (it takes the stream
//! on its transfer listener, `POST /api/transfers/receive`, and discards
//! it if the Panel says the transfer failed). The protocol and its
//! decisions are in [`cap_protocol::transfers`].
//!
//! # Decisions
//!
//! - **The backup archive, not a new format.** The source writes the
//!   server's directory with the backup writer
//!   ([`crate::backups::write_archive_counting`]: tar + zstd, links and
//!   special files left out, hashed as written) straight into the HTTP
//!   request body; nothing is staged on either disk but the target's
//!   unpacking.
//! - **The target's bounds are the restore's.** The target unpacks with
//!   [`ServerFiles::restore`] (staging, no links, devices or paths leaving
//!   the directory) bounded by the server's disk limit from the grant and
//!   by the size the source declared, with room for nothing more; the
//!   ratio bound of uploaded archives does not apply (the stream has no
//!   known length), the declared size does its work.
//! - **A stopped server only.** The source refuses to send a server that
//!   runs (the Panel stops it first): files that change while read would
//!   arrive torn.
//! - **The source's copy goes only on the Panel's word**
//!   ([`TransferOp::Forget`]), after the Panel recorded the server on the
//!   target. Local backups stay on the source, where the Panel's records
//!   say they are.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use cap_protocol::AgentMessage;
use cap_protocol::files::{FileError, FileErrorCode, FileGrant, FileScope};
use cap_protocol::transfers::{
    ReceiveRefusal, Received, TRANSFER_SIZE_HEADER, TransferErrorCode, TransferOp,
    TransferProgress, TransferReport, TransferRequest, TransferResult,
};
use futures::StreamExt as _;
use tokio::sync::mpsc;

use crate::backups::{ChannelWriter, HashingReader, HashingWriter, IgnoreList};
use crate::files::{ArchiveLimits, ServerFiles};
use crate::runtime::{RuntimeError, ServerRuntime};

/// How often a `send` reports its progress.
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);
/// How long the source waits to connect to the target.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The most entries a transferred server may hold.
pub const MAX_ENTRIES: u64 = 5_000_000;
/// Free space a target keeps beyond the declared size (file system
/// blocks, directories, the staging directory).
pub const FREE_SPACE_MARGIN: u64 = 16 * 1024 * 1024;

/// A failed step: its code and a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// What went wrong.
    pub code: TransferErrorCode,
    /// Why.
    pub reason: String,
}

impl Failure {
    fn new(code: TransferErrorCode, reason: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason.into(),
        }
    }
}

/// The target's side: servers being received now.
#[derive(Debug, Default)]
pub struct Receiving {
    servers: Mutex<HashSet<String>>,
}

impl Receiving {
    /// Marks `server_id` as being received; `None` when it is already.
    fn begin(self: &Arc<Self>, server_id: &str) -> Option<ReceiveGuard> {
        let mut servers = self.servers.lock().unwrap_or_else(|e| e.into_inner());
        servers.insert(server_id.to_owned()).then(|| ReceiveGuard {
            receiving: self.clone(),
            server_id: server_id.to_owned(),
        })
    }

    /// Whether `server_id` is being received.
    pub fn contains(&self, server_id: &str) -> bool {
        self.servers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(server_id)
    }
}

struct ReceiveGuard {
    receiving: Arc<Receiving>,
    server_id: String,
}

impl Drop for ReceiveGuard {
    fn drop(&mut self) {
        self.receiving
            .servers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.server_id);
    }
}

/// The bytes the regular files under `dir` hold (apparent sizes), and the
/// size of the tar stream of them (headers and padding included), leaving
/// out what the archive leaves out (links, special files, the Agent's
/// staging directories). Blocking.
///
/// # Errors
///
/// Reading a directory failed.
pub fn tree_size(dir: &Path) -> std::io::Result<(u64, u64)> {
    let mut files = 0u64;
    let mut tar = 1024u64;
    let mut stack = vec![(dir.to_path_buf(), 0usize)];
    while let Some((path, depth)) = stack.pop() {
        for entry in std::fs::read_dir(&path)? {
            let entry = entry?;
            if depth == 0
                && entry
                    .file_name()
                    .to_string_lossy()
                    .starts_with(".cap-extract-")
            {
                continue;
            }
            let Ok(meta) = entry.path().symlink_metadata() else {
                continue;
            };
            if meta.is_dir() {
                tar = tar.saturating_add(512);
                stack.push((entry.path(), depth + 1));
            } else if meta.is_file() {
                files = files.saturating_add(meta.len());
                tar = tar
                    .saturating_add(512)
                    .saturating_add(meta.len().div_ceil(512) * 512);
            }
        }
    }
    Ok((files, tar))
}

fn server_dir(data_dir: &Path, server_id: &str) -> Option<PathBuf> {
    cap_protocol::backups::is_safe_id(server_id).then(|| data_dir.join("servers").join(server_id))
}

/// Runs one step on this Agent; `events` takes a `send`'s progress.
pub async fn run<R: ServerRuntime>(
    request: TransferRequest,
    data_dir: &Path,
    runtime: &R,
    receiving: &Receiving,
    events: &mpsc::UnboundedSender<AgentMessage>,
) -> TransferReport {
    let TransferRequest {
        transfer_id,
        server_id,
        op,
    } = request;
    let name = op.name().to_owned();
    let outcome = match op {
        TransferOp::Send { url, token } => {
            send(
                &transfer_id,
                &server_id,
                data_dir,
                runtime,
                &url,
                &token,
                events,
            )
            .await
        }
        TransferOp::Forget => forget(&server_id, data_dir, runtime)
            .await
            .map(|()| Received::default()),
        TransferOp::Discard => discard(&server_id, data_dir, runtime, receiving)
            .await
            .map(|()| Received::default()),
    };
    let result = match outcome {
        Ok(received) => TransferResult::Ok {
            sha256: received.sha256,
            bytes: received.bytes,
            files_bytes: received.files_bytes,
        },
        Err(Failure { code, reason }) => {
            tracing::warn!(server = %server_id, transfer = %transfer_id, op = %name, code = code.as_str(), %reason, "a transfer step failed");
            TransferResult::Failed { code, reason }
        }
    };
    TransferReport {
        transfer_id,
        server_id,
        op: name,
        result,
    }
}

fn is_running<R: ServerRuntime>(runtime: &R, server_id: &str) -> bool {
    runtime
        .reports()
        .iter()
        .any(|r| r.server_id == server_id && r.state.is_alive())
}

/// The source: streams the server's files to the target at `url`.
async fn send<R: ServerRuntime>(
    transfer_id: &str,
    server_id: &str,
    data_dir: &Path,
    runtime: &R,
    url: &str,
    token: &str,
    events: &mpsc::UnboundedSender<AgentMessage>,
) -> Result<Received, Failure> {
    let dir = server_dir(data_dir, server_id)
        .filter(|d| d.is_dir())
        .ok_or_else(|| {
            Failure::new(
                TransferErrorCode::UnknownServer,
                format!("server {server_id} is not on the source node"),
            )
        })?;
    if is_running(runtime, server_id) {
        return Err(Failure::new(
            TransferErrorCode::Conflict,
            format!("server {server_id} runs on the source node: it must be stopped to be moved"),
        ));
    }
    let sized = dir.clone();
    let (files_bytes, tar_bytes) = tokio::task::spawn_blocking(move || tree_size(&sized))
        .await
        .map_err(|e| Failure::new(TransferErrorCode::Io, format!("measuring failed: {e}")))?
        .map_err(|e| {
            Failure::new(
                TransferErrorCode::Io,
                format!("measuring the server's files on the source node failed: {e}"),
            )
        })?;
    let client = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .build()
        .map_err(|e| Failure::new(TransferErrorCode::Io, format!("no HTTP client: {e}")))?;
    // The grant is a JWT: URL-safe as it is.
    let with_token = format!("{url}?token={token}");
    // Asked first, so that a target without the room (or the grant) says
    // so before a byte is read.
    let asked = client
        .get(&with_token)
        .header(TRANSFER_SIZE_HEADER, files_bytes)
        .send()
        .await
        .map_err(|e| link_failure(url, 0, e))?;
    if !asked.status().is_success() {
        return Err(refusal(asked).await);
    }
    let (chunks, received) = mpsc::channel::<Bytes>(4);
    let tarred = Arc::new(AtomicU64::new(0));
    let writer = {
        let tarred = tarred.clone();
        tokio::task::spawn_blocking(move || {
            // Tells a writer stopped by the stream's end (the connection
            // broke) from one whose reading failed.
            let probe = chunks.clone();
            let written = (|| {
                let ignore = IgnoreList::new(&[]).map_err(|e| e.to_string())?;
                let mut sink = HashingWriter::new(ChannelWriter::new(chunks));
                crate::backups::write_archive_counting(&dir, &ignore, &mut sink, &tarred)
                    .map_err(|e| e.to_string())?;
                let (mut writer, sha256, bytes) = sink.finish();
                std::io::Write::flush(&mut writer).map_err(|e| e.to_string())?;
                Ok::<_, String>((sha256, bytes))
            })();
            let cut = probe.is_closed();
            drop(probe);
            written.map_err(|reason| (reason, cut))
        })
    };
    let done = Arc::new(AtomicBool::new(false));
    let ticker = {
        let (done, tarred, events) = (done.clone(), tarred.clone(), events.clone());
        let (transfer_id, server_id) = (transfer_id.to_owned(), server_id.to_owned());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(PROGRESS_INTERVAL);
            loop {
                tick.tick().await;
                if done.load(Ordering::Relaxed) {
                    break;
                }
                let progress = TransferProgress {
                    transfer_id: transfer_id.clone(),
                    server_id: server_id.clone(),
                    sent_bytes: tarred.load(Ordering::Relaxed).min(tar_bytes),
                    total_bytes: tar_bytes,
                };
                if events
                    .send(AgentMessage::TransferProgress(progress))
                    .is_err()
                {
                    break;
                }
            }
        })
    };
    let mut received = received;
    let body =
        futures::stream::poll_fn(move |cx| received.poll_recv(cx)).map(Ok::<Bytes, std::io::Error>);
    let answer = client
        .post(&with_token)
        .header(TRANSFER_SIZE_HEADER, files_bytes)
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await;
    done.store(true, Ordering::Relaxed);
    ticker.abort();
    let written = writer.await.map_err(|e| {
        Failure::new(
            TransferErrorCode::Io,
            format!("the archive writer failed: {e}"),
        )
    });
    let answer = match answer {
        Ok(answer) if answer.status().is_success() => answer,
        Ok(answer) => return Err(refusal(answer).await),
        Err(error) => {
            // A writer whose reading failed explains the cut stream.
            if let Ok(Err((reason, false))) = &written {
                return Err(Failure::new(
                    TransferErrorCode::Io,
                    format!("reading the server's files on the source node failed: {reason}"),
                ));
            }
            return Err(link_failure(url, tarred.load(Ordering::Relaxed), error));
        }
    };
    let (sha256, bytes) = written?.map_err(|(reason, _)| {
        Failure::new(
            TransferErrorCode::Io,
            format!("reading the server's files on the source node failed: {reason}"),
        )
    })?;
    let got: Received = answer.json().await.map_err(|e| {
        Failure::new(
            TransferErrorCode::Link,
            format!("the target node's answer could not be read: {e}"),
        )
    })?;
    if got.sha256 != sha256 || got.bytes != bytes {
        return Err(Failure::new(
            TransferErrorCode::Mismatch,
            format!(
                "the target node unpacked {} bytes with SHA-256 {}, but the source sent {bytes} bytes with SHA-256 {sha256}",
                got.bytes, got.sha256
            ),
        ));
    }
    Ok(got)
}

/// The connection to the target broke; the reason names the URL without
/// its query (the grant stays out of records and logs).
fn link_failure(url: &str, sent: u64, error: reqwest::Error) -> Failure {
    let error = error.without_url();
    let mut reason = format!("the connection to the target node ({url}) broke");
    if sent > 0 {
        reason.push_str(&format!(" after {sent} bytes"));
    }
    reason.push_str(&format!(": {error}"));
    let mut source = std::error::Error::source(&error);
    while let Some(inner) = source {
        reason.push_str(&format!(": {inner}"));
        source = inner.source();
    }
    Failure::new(TransferErrorCode::Link, reason)
}

/// The target's refusal, from its answer.
async fn refusal(answer: reqwest::Response) -> Failure {
    let status = answer.status();
    match answer.json::<ReceiveRefusal>().await {
        Ok(refusal) => Failure::new(refusal.code, refusal.reason),
        Err(_) if status == reqwest::StatusCode::FORBIDDEN => Failure::new(
            TransferErrorCode::Unauthorized,
            "the target node refused the transfer's grant",
        ),
        Err(_) => Failure::new(
            TransferErrorCode::Link,
            format!("the target node answered {status}"),
        ),
    }
}

/// The source, after the commit: the server goes (process, files,
/// bookkeeping); a server the runtime does not know loses its files.
async fn forget<R: ServerRuntime>(
    server_id: &str,
    data_dir: &Path,
    runtime: &R,
) -> Result<(), Failure> {
    match runtime.delete(server_id).await {
        Ok(()) | Err(RuntimeError::UnknownServer(_)) => {}
        Err(error) => {
            return Err(Failure::new(
                TransferErrorCode::Io,
                format!("removing server {server_id} from the source node failed: {error}"),
            ));
        }
    }
    remove_dirs(server_id, data_dir)
}

/// The target, after a failure: the files it received go, unless the
/// server runs here or is still being received.
async fn discard<R: ServerRuntime>(
    server_id: &str,
    data_dir: &Path,
    runtime: &R,
    receiving: &Receiving,
) -> Result<(), Failure> {
    if runtime.reports().iter().any(|r| r.server_id == server_id) {
        return Err(Failure::new(
            TransferErrorCode::Conflict,
            format!("server {server_id} is known to the target node's runtime: its files stay"),
        ));
    }
    if receiving.contains(server_id) {
        // The receive ends by itself and cleans up after a failure.
        return Ok(());
    }
    remove_dirs(server_id, data_dir)
}

fn remove_dirs(server_id: &str, data_dir: &Path) -> Result<(), Failure> {
    let Some(dir) = server_dir(data_dir, server_id) else {
        return Ok(());
    };
    for dir in [dir, data_dir.join("run").join(server_id)] {
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(Failure::new(
                    TransferErrorCode::Io,
                    format!("cannot remove {}: {e}", dir.display()),
                ));
            }
        }
    }
    Ok(())
}

/// The bytes free for unprivileged use on the file system of `path`.
fn free_bytes(path: &Path) -> std::io::Result<u64> {
    let stat = rustix::fs::statvfs(path)?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// Checks, for the target, that server `grant.sub` may be received here
/// with `declared` bytes of files: a plain id, not known to this node's
/// runtime (no bookkeeping), and room on the disk.
///
/// # Errors
///
/// The refusal to answer.
pub fn check_receive(
    data_dir: &Path,
    node_id: &str,
    grant: &FileGrant,
    declared: u64,
) -> Result<PathBuf, Failure> {
    let server_id = &grant.sub;
    let dir = server_dir(data_dir, server_id).ok_or_else(|| {
        Failure::new(
            TransferErrorCode::UnknownServer,
            format!("{server_id:?} is not a server id"),
        )
    })?;
    if data_dir.join("run").join(server_id).exists() {
        return Err(Failure::new(
            TransferErrorCode::Conflict,
            format!("server {server_id} exists on node {node_id} already"),
        ));
    }
    let servers = data_dir.join("servers");
    std::fs::create_dir_all(&servers).map_err(|e| {
        Failure::new(
            TransferErrorCode::Io,
            format!("cannot create {}: {e}", servers.display()),
        )
    })?;
    let free = free_bytes(&servers).map_err(|e| {
        Failure::new(
            TransferErrorCode::Io,
            format!("cannot measure the free space on node {node_id}: {e}"),
        )
    })?;
    let needed = declared.saturating_add(FREE_SPACE_MARGIN);
    if free < needed {
        return Err(Failure::new(
            TransferErrorCode::DiskFull,
            format!(
                "node {node_id} has {free} bytes free; the server's files need {declared} bytes and {FREE_SPACE_MARGIN} more to spare"
            ),
        ));
    }
    if grant.scope.disk_mb > 0 && declared > grant.scope.disk_mb.saturating_mul(1024 * 1024) {
        return Err(Failure::new(
            TransferErrorCode::DiskLimit,
            format!(
                "the server's files hold {declared} bytes, more than its disk limit of {} MiB",
                grant.scope.disk_mb
            ),
        ));
    }
    Ok(dir)
}

/// The target: unpacks the stream `body` of server `grant.sub`
/// (`declared` bytes of files) into its directory. A failure leaves no
/// directory behind.
///
/// # Errors
///
/// The refusal or failure to answer.
pub async fn receive(
    data_dir: &Path,
    node_id: &str,
    receiving: &Arc<Receiving>,
    grant: &FileGrant,
    declared: u64,
    body: impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
) -> Result<Received, Failure> {
    let dir = check_receive(data_dir, node_id, grant, declared)?;
    let _receiving = receiving.begin(&grant.sub).ok_or_else(|| {
        Failure::new(
            TransferErrorCode::Conflict,
            format!("server {} is being received already", grant.sub),
        )
    })?;
    use std::os::unix::fs::DirBuilderExt as _;
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        // A directory an earlier receive could not remove: emptied by the
        // restore's truncation below.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(Failure::new(
                TransferErrorCode::Io,
                format!("cannot create {}: {e}", dir.display()),
            ));
        }
    }
    let limits = ArchiveLimits {
        max_bytes: declared,
        max_entries: MAX_ENTRIES,
        max_ratio: u64::MAX,
        ..ArchiveLimits::default()
    };
    let scope = FileScope {
        denylist: Vec::new(),
        disk_mb: grant.scope.disk_mb,
        read_only: false,
    };
    let label = format!("the transfer of server {}", grant.sub);
    let reader =
        tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(Box::pin(body)));
    let opened = dir.clone();
    let node = node_id.to_owned();
    let unpacked = tokio::task::spawn_blocking(move || {
        let files = ServerFiles::open(&opened, scope)
            .map_err(|e| failure_of(e, &node))?
            .with_archive_limits(limits);
        let mut reader = HashingReader::new(reader);
        let mut read = (String::new(), 0);
        let (_, files_bytes) = files
            .restore(&mut reader, u64::MAX, &label, true, |reader| {
                read = reader.drain().map_err(|e| {
                    FileError::new(
                        FileErrorCode::BadArchive,
                        format!("reading the rest of {label} failed: {e}"),
                    )
                })?;
                Ok(())
            })
            .map_err(|e| failure_of(e, &node))?;
        Ok(Received {
            sha256: read.0,
            bytes: read.1,
            files_bytes,
        })
    })
    .await
    .unwrap_or_else(|e| {
        Err(Failure::new(
            TransferErrorCode::Io,
            format!("the unpacking failed: {e}"),
        ))
    });
    if unpacked.is_err() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    unpacked
}

/// A file error of the target's unpacking as a transfer failure.
fn failure_of(error: FileError, node_id: &str) -> Failure {
    let code = match error.code {
        FileErrorCode::DiskLimit if error.message.starts_with(crate::files::DISK_FULL) => {
            TransferErrorCode::DiskFull
        }
        FileErrorCode::DiskLimit => TransferErrorCode::DiskLimit,
        FileErrorCode::BadArchive | FileErrorCode::ArchiveRefused => TransferErrorCode::Archive,
        _ => TransferErrorCode::Io,
    };
    Failure::new(code, format!("on node {node_id}: {}", error.message))
}

#[cfg(test)]
mod tests;
