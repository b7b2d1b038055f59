//! Backups of a server's directory: created, restored and deleted on the
//! Panel's request ([`cap_protocol::backups::BackupRequest`]), answered by
//! one [`BackupReport`] each.
//!
//! ```no_run
//! # async fn example(runtime: &cap_agent::NodeRuntime) {
//! use cap_agent::backups::Backups;
//! use cap_protocol::backups::{BackupOp, BackupRequest, BackupTarget};
//!
//! let backups = Backups::new("/var/lib/cap".as_ref());
//! let report = backups
//!     .run(
//!         BackupRequest {
//!             backup_id: "bkp_1".into(),
//!             server_id: "srv_1".into(),
//!             scope: Default::default(),
//!             op: BackupOp::Create { ignore: vec!["*.log".into()], target: BackupTarget::Local, save: None },
//!         },
//!         runtime,
//!     )
//!     .await;
//! println!("{:?}", report.result); // Ok { sha256, bytes } or Failed { code, reason }
//! # }
//! ```
//!
//! # Decisions
//!
//! - **tar + zstd, streamed, hashed on the way.** The archive is written
//!   as it is read ([`archive`]): a tar stream through the reference zstd
//!   encoder at level 3, through a SHA-256 hasher, to its target. Nothing
//!   is staged whole: a local backup goes to a `.part` file renamed into
//!   place once complete and synced, an S3 backup goes up in 8 MiB parts
//!   of a multipart upload ([`s3`]) while the rest is still being read.
//!   A failure removes the part file or aborts the upload, so a failed
//!   backup leaves nothing that could be taken for a complete one.
//! - **Confined like the file manager.** The walk uses `cap-std` handles
//!   beneath the server's directory and never follows a symbolic link;
//!   links and special files are left out (see [`archive`]). `.pteroignore`
//!   lines ([`IgnoreList`], `.gitignore` syntax) leave out more.
//! - **Outside the server's reach.** Local archives live in
//!   `<data>/backups/<server>/<backup>.tar.zst`, beside (not inside) the
//!   servers' directories, so a server cannot read, change or fill them,
//!   and they survive a reinstall (which empties the server's directory).
//!   They are served to clients holding a Panel grant by the transfer
//!   listener ([`crate::transfer`], `GET /api/backups/download`).
//! - **Restores reuse the extraction.** A restore goes through
//!   [`ServerFiles::restore`], the same code as the file manager's
//!   extraction with the same bounds (bytes, entries, ratio, no links, no
//!   devices, no path leaving the directory) and the same staging: the
//!   archive is unpacked into a staging directory, its SHA-256 is checked
//!   against the one the backup recorded, and only then is the server's
//!   directory emptied (`truncate`) and the staged files moved in. A
//!   corrupt, tampered or over-large archive changes nothing. The
//!   game type's denylist does not apply to restores: the archive was made
//!   by this Agent from the same directory and its digest is the Panel's.
//!   A running server is refused a restore (`refused`): its process would
//!   write over the restored files.
//! - **One at a time per server.** A per-server lock serialises backups,
//!   restores and deletes of one server (a second one waits for the first,
//!   it is not refused); different servers' run side by side.
//! - **Consistent worlds, when the game type says how.** A create may
//!   carry [`SaveCommands`](cap_protocol::backups::SaveCommands): when the
//!   server is running they are written to its console before the archive
//!   (`save-off`, `save-all flush`) and after it (`save-on`), whatever the
//!   outcome. A server that is not running gets none. Without them a
//!   running server is archived as it is, files that change while read
//!   included (each stored at the size it had when its header was written).

pub mod archive;
pub mod s3;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use cap_protocol::backups::{
    BackupErrorCode, BackupOp, BackupReport, BackupRequest, BackupResult, BackupTarget,
    SaveCommands, is_safe_id, local_file_name,
};
use cap_protocol::files::{FileError, FileErrorCode, FileScope};
use tokio::sync::{mpsc, oneshot};

pub use archive::{
    ArchiveError, HashingReader, HashingWriter, IgnoreList, write_archive, write_archive_counting,
};

use crate::files::ServerFiles;
use crate::runtime::ServerRuntime;

/// The longest wait after the `before` save commands.
pub const MAX_SETTLE: Duration = Duration::from_secs(60);
/// Bytes the archive writer gathers before handing them to an upload.
const UPLOAD_CHUNK: usize = 1024 * 1024;

/// A failed operation: its code and a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// What went wrong.
    pub code: BackupErrorCode,
    /// Why.
    pub reason: String,
}

impl Failure {
    fn new(code: BackupErrorCode, reason: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason.into(),
        }
    }
}

impl From<FileError> for Failure {
    fn from(error: FileError) -> Self {
        let code = match error.code {
            FileErrorCode::BadArchive => BackupErrorCode::Corrupt,
            FileErrorCode::ArchiveRefused
            | FileErrorCode::Denied
            | FileErrorCode::AlreadyExists
            | FileErrorCode::ReadOnly => BackupErrorCode::Refused,
            FileErrorCode::DiskLimit => BackupErrorCode::DiskLimit,
            FileErrorCode::UnknownServer => BackupErrorCode::UnknownServer,
            _ => BackupErrorCode::Io,
        };
        Self::new(code, error.message)
    }
}

impl From<ArchiveError> for Failure {
    fn from(error: ArchiveError) -> Self {
        let code = match error {
            ArchiveError::Ignore { .. } => BackupErrorCode::InvalidIgnore,
            ArchiveError::Io(_) => BackupErrorCode::Io,
        };
        Self::new(code, error.to_string())
    }
}

impl From<s3::StorageError> for Failure {
    fn from(error: s3::StorageError) -> Self {
        let code = match error {
            s3::StorageError::NotFound(_) => BackupErrorCode::NotFound,
            s3::StorageError::Failed(_) => BackupErrorCode::Storage,
        };
        Self::new(code, error.to_string())
    }
}

/// A backup's outcome: its archive's digest and size.
type Outcome = Result<(String, u64), Failure>;

/// The node's backups. See the [module docs](self).
#[derive(Debug)]
pub struct Backups {
    servers_dir: PathBuf,
    backups_dir: PathBuf,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// The node's disk usage figures, which a restore changes.
    usage: std::sync::OnceLock<Arc<crate::files::DiskUsage>>,
}

impl Backups {
    /// Backups of the servers under `<data_dir>/servers`, kept (when local)
    /// under `<data_dir>/backups`.
    pub fn new(data_dir: &Path) -> Arc<Backups> {
        Arc::new(Backups {
            servers_dir: data_dir.join("servers"),
            backups_dir: data_dir.join("backups"),
            locks: Mutex::default(),
            usage: std::sync::OnceLock::new(),
        })
    }

    /// Restores keep `usage` (the node's figures) current; until this is
    /// called, the disk limit of a restore is checked with a walk.
    pub fn keep_usage(&self, usage: Arc<crate::files::DiskUsage>) {
        let _ = self.usage.set(usage);
    }

    /// Where local backup `backup_id` of `server_id` is kept; `None` for
    /// ids that name no file ([`is_safe_id`]).
    pub fn local_path(&self, server_id: &str, backup_id: &str) -> Option<PathBuf> {
        (is_safe_id(server_id) && is_safe_id(backup_id)).then(|| {
            self.backups_dir
                .join(server_id)
                .join(local_file_name(backup_id))
        })
    }

    /// Deletes every local backup of `server_id`, once a backup or restore
    /// running for it ended: the server was deleted, and its backups go
    /// with it.
    ///
    /// # Errors
    ///
    /// The file system's, naming the folder.
    pub async fn forget_server(&self, server_id: &str) -> std::io::Result<()> {
        if !is_safe_id(server_id) {
            return Ok(());
        }
        let lock = self.lock(server_id);
        let _running = lock.lock().await;
        let dir = self.backups_dir.join(server_id);
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(std::io::Error::new(
                e.kind(),
                format!("cannot delete {}: {e}", dir.display()),
            )),
        }
    }

    fn server_dir(&self, server_id: &str) -> Result<PathBuf, Failure> {
        let dir = self.servers_dir.join(server_id);
        if is_safe_id(server_id) && dir.is_dir() {
            Ok(dir)
        } else {
            Err(Failure::new(
                BackupErrorCode::UnknownServer,
                format!("server {server_id} is not on this node"),
            ))
        }
    }

    fn lock(&self, server_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.locks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(server_id.to_owned())
            .or_default()
            .clone()
    }

    /// Runs `request`, after any other backup operation of the same server
    /// ended; `runtime` takes the save commands of a running server.
    pub async fn run<R: ServerRuntime>(&self, request: BackupRequest, runtime: &R) -> BackupReport {
        let BackupRequest {
            backup_id,
            server_id,
            scope,
            op,
        } = request;
        let name = op.name().to_owned();
        let lock = self.lock(&server_id);
        let _held = lock.lock().await;
        let outcome = if is_safe_id(&backup_id) {
            match op {
                BackupOp::Create {
                    ignore,
                    target,
                    save,
                } => {
                    let running = runtime
                        .reports()
                        .iter()
                        .any(|r| r.server_id == server_id && r.state.is_alive());
                    let save = save.filter(|_| running);
                    if let Some(save) = &save {
                        console(runtime, &server_id, &save.before).await;
                        tokio::time::sleep(Duration::from_millis(save.settle_ms).min(MAX_SETTLE))
                            .await;
                    }
                    let outcome = self.create(&server_id, &backup_id, &ignore, &target).await;
                    if let Some(SaveCommands { after, .. }) = &save {
                        console(runtime, &server_id, after).await;
                    }
                    outcome
                }
                BackupOp::Restore {
                    target,
                    sha256,
                    truncate,
                } => {
                    let running = runtime
                        .reports()
                        .iter()
                        .any(|r| r.server_id == server_id && r.state.is_alive());
                    if running {
                        Err(Failure::new(
                            BackupErrorCode::Refused,
                            format!(
                                "server {server_id} is running: stop it before restoring a backup"
                            ),
                        ))
                    } else {
                        self.restore(&server_id, &backup_id, &scope, &target, &sha256, truncate)
                            .await
                    }
                }
                BackupOp::Delete { target } => self.delete(&server_id, &backup_id, &target).await,
            }
        } else {
            Err(Failure::new(
                BackupErrorCode::NotFound,
                format!("{backup_id:?} is not a backup id"),
            ))
        };
        let result = match outcome {
            Ok((sha256, bytes)) => BackupResult::Ok { sha256, bytes },
            Err(Failure { code, reason }) => {
                tracing::warn!(server = %server_id, backup = %backup_id, op = %name, code = code.as_str(), %reason, "backup operation failed");
                BackupResult::Failed { code, reason }
            }
        };
        BackupReport {
            backup_id,
            server_id,
            op: name,
            result,
        }
    }

    /// Archives the server's directory to `target`.
    async fn create(
        &self,
        server_id: &str,
        backup_id: &str,
        ignore: &[String],
        target: &BackupTarget,
    ) -> Outcome {
        let dir = self.server_dir(server_id)?;
        let ignore = IgnoreList::new(ignore)?;
        match target {
            BackupTarget::Local => {
                let path = self
                    .local_path(server_id, backup_id)
                    .ok_or_else(|| Failure::new(BackupErrorCode::NotFound, "bad id"))?;
                blocking(move || create_local(&dir, &ignore, &path)).await
            }
            BackupTarget::S3(settings) => {
                let store = s3::store(settings)?;
                let key = BackupTarget::object_key(&settings.prefix, server_id, backup_id);
                let (chunks, received) = mpsc::channel::<Bytes>(4);
                let (finished, complete) = oneshot::channel::<bool>();
                let writer = tokio::task::spawn_blocking(move || {
                    let outcome = write_to_channel(&dir, &ignore, chunks);
                    let _ = finished.send(outcome.is_ok());
                    outcome
                });
                let uploaded = s3::upload(&store, &key, received, async {
                    complete.await.unwrap_or(false)
                })
                .await;
                let written = writer.await.map_err(|e| {
                    Failure::new(
                        BackupErrorCode::Io,
                        format!("the archive writer failed: {e}"),
                    )
                })?;
                match (uploaded, written) {
                    (Ok(()), Ok(done)) => Ok(done),
                    // The storage's reason explains the writer's broken
                    // pipe, not the other way round.
                    (Err(e), _) => Err(e.into()),
                    (Ok(()), Err(e)) => Err(e),
                }
            }
        }
    }

    /// Puts the archive's files back, refusing bytes whose digest is not
    /// `sha256`.
    async fn restore(
        &self,
        server_id: &str,
        backup_id: &str,
        scope: &FileScope,
        target: &BackupTarget,
        sha256: &str,
        truncate: bool,
    ) -> Outcome {
        let dir = self.server_dir(server_id)?;
        let mut files = ServerFiles::open(
            &dir,
            FileScope {
                denylist: Vec::new(),
                ..scope.clone()
            },
        )?;
        if let Some(usage) = self.usage.get() {
            files = files.with_usage(usage.clone());
        }
        let label = format!("backup {backup_id}");
        let expected = sha256.to_ascii_lowercase();
        match target {
            BackupTarget::Local => {
                let path = self
                    .local_path(server_id, backup_id)
                    .ok_or_else(|| Failure::new(BackupErrorCode::NotFound, "bad id"))?;
                let file = std::fs::File::open(&path).map_err(|e| {
                    if e.kind() == std::io::ErrorKind::NotFound {
                        Failure::new(
                            BackupErrorCode::NotFound,
                            format!("the archive of backup {backup_id} is not on this node"),
                        )
                    } else {
                        Failure::new(
                            BackupErrorCode::Io,
                            format!("cannot open the archive of backup {backup_id}: {e}"),
                        )
                    }
                })?;
                let len = file
                    .metadata()
                    .map_err(|e| Failure::new(BackupErrorCode::Io, e.to_string()))?
                    .len();
                blocking(move || restore_from(&files, file, len, &label, truncate, &expected)).await
            }
            BackupTarget::S3(settings) => {
                let store = s3::store(settings)?;
                let key = BackupTarget::object_key(&settings.prefix, server_id, backup_id);
                let (len, stream) = s3::download(&store, &key).await?;
                let reader =
                    tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(stream));
                blocking(move || restore_from(&files, reader, len, &label, truncate, &expected))
                    .await
            }
        }
    }

    /// Removes the archive (one already gone is fine).
    async fn delete(&self, server_id: &str, backup_id: &str, target: &BackupTarget) -> Outcome {
        match target {
            BackupTarget::Local => {
                let path = self
                    .local_path(server_id, backup_id)
                    .ok_or_else(|| Failure::new(BackupErrorCode::NotFound, "bad id"))?;
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(Failure::new(
                            BackupErrorCode::Io,
                            format!("cannot delete the archive of backup {backup_id}: {e}"),
                        ));
                    }
                }
            }
            BackupTarget::S3(settings) => {
                let store = s3::store(settings)?;
                let key = BackupTarget::object_key(&settings.prefix, server_id, backup_id);
                s3::delete(&store, &key).await?;
            }
        }
        Ok((String::new(), 0))
    }
}

/// Writes the lines to the server's console, logging what fails.
async fn console<R: ServerRuntime>(runtime: &R, server_id: &str, lines: &[String]) {
    for line in lines {
        if let Err(error) = runtime.console_input(server_id, line).await {
            tracing::warn!(server = %server_id, %line, %error, "a backup's save command could not be sent");
        }
    }
}

async fn blocking(work: impl FnOnce() -> Outcome + Send + 'static) -> Outcome {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Failure::new(BackupErrorCode::Io, format!("the backup task failed: {e}")))?
}

/// Writes the archive to `<path>.part`, syncs it and renames it to `path`.
fn create_local(dir: &Path, ignore: &IgnoreList, path: &Path) -> Outcome {
    use std::os::unix::fs::DirBuilderExt as _;
    let io =
        |what: &str, e: std::io::Error| Failure::new(BackupErrorCode::Io, format!("{what}: {e}"));
    let parent = path
        .parent()
        .ok_or_else(|| Failure::new(BackupErrorCode::Io, "a backup path has no directory"))?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(parent)
        .map_err(|e| io("cannot create the backup directory", e))?;
    let mut part = path.as_os_str().to_owned();
    part.push(".part");
    let part = PathBuf::from(part);
    let written = write_file(dir, ignore, &part, path);
    if written.is_err() {
        let _ = std::fs::remove_file(&part);
    }
    written
}

/// Writes the archive to `part`, syncs it and renames it to `path`.
fn write_file(dir: &Path, ignore: &IgnoreList, part: &Path, path: &Path) -> Outcome {
    use std::os::unix::fs::OpenOptionsExt as _;
    let io =
        |what: &str, e: std::io::Error| Failure::new(BackupErrorCode::Io, format!("{what}: {e}"));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(part)
        .map_err(|e| io("cannot create the archive", e))?;
    let mut sink = HashingWriter::new(BufWriter::with_capacity(UPLOAD_CHUNK, file));
    write_archive(dir, ignore, &mut sink)?;
    let (buffered, sha256, bytes) = sink.finish();
    let file = buffered
        .into_inner()
        .map_err(|e| io("writing the archive", e.into_error()))?;
    file.sync_all().map_err(|e| io("syncing the archive", e))?;
    std::fs::rename(part, path).map_err(|e| io("putting the archive in place", e))?;
    Ok((sha256, bytes))
}

/// Writes the archive into `chunks` (an upload), closing the channel at
/// the end.
fn write_to_channel(dir: &Path, ignore: &IgnoreList, chunks: mpsc::Sender<Bytes>) -> Outcome {
    let mut sink = HashingWriter::new(ChannelWriter {
        chunks,
        buffer: Vec::with_capacity(UPLOAD_CHUNK),
    });
    write_archive(dir, ignore, &mut sink)?;
    let (mut writer, sha256, bytes) = sink.finish();
    writer
        .flush()
        .map_err(|e| Failure::new(BackupErrorCode::Storage, format!("the upload stopped: {e}")))?;
    Ok((sha256, bytes))
}

/// Restores from `source` (`len` bytes), checking its digest against
/// `expected` before anything changes.
fn restore_from(
    files: &ServerFiles,
    source: impl std::io::Read,
    len: u64,
    label: &str,
    truncate: bool,
    expected: &str,
) -> Outcome {
    let mut reader = HashingReader::new(source);
    let mut read = (String::new(), 0);
    files.restore(&mut reader, len, label, truncate, |reader| {
        read = reader.drain().map_err(|e| {
            FileError::new(
                FileErrorCode::BadArchive,
                format!("reading the rest of {label} failed: {e}"),
            )
        })?;
        if read.0 != expected {
            return Err(FileError::new(
                FileErrorCode::BadArchive,
                format!(
                    "{label} is corrupt: its SHA-256 is {}, not the {expected} recorded when it was made; nothing was restored",
                    read.0
                ),
            ));
        }
        Ok(())
    })?;
    Ok(read)
}

/// Hands what is written to an upload, in chunks of [`UPLOAD_CHUNK`].
pub(crate) struct ChannelWriter {
    chunks: mpsc::Sender<Bytes>,
    buffer: Vec<u8>,
}

impl ChannelWriter {
    /// A writer handing chunks to `chunks`; flush it at the end.
    pub(crate) fn new(chunks: mpsc::Sender<Bytes>) -> Self {
        Self {
            chunks,
            buffer: Vec::with_capacity(UPLOAD_CHUNK),
        }
    }

    fn send(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buffer, Vec::with_capacity(UPLOAD_CHUNK));
        self.chunks
            .blocking_send(Bytes::from(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the upload stopped"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let room = UPLOAD_CHUNK - self.buffer.len();
        let n = buf.len().min(room);
        self.buffer.extend_from_slice(&buf[..n]);
        if self.buffer.len() >= UPLOAD_CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}
