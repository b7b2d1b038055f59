//! One SFTP session's requests, answered through [`ServerFiles`].
//!
//! Every request first checks the file permission it needs (from the
//! Panel's answer to the sign-in), then runs the file operation on a
//! blocking thread — except a write of at most [`INLINE_WRITE`] bytes to
//! a handle already open, a copy into the page cache made on the
//! session's task. What needs what:
//!
//! | Request | Permission |
//! | --- | --- |
//! | `opendir`/`readdir`, `stat`, `lstat`, `fstat` | `file.read` |
//! | `open` for reading, `read` | `file.read-content` |
//! | `open` for writing a new file, `mkdir` | `file.create` |
//! | `open` for writing an existing file, `rename`, `setstat` (mode) | `file.update` |
//! | `remove`, `rmdir` | `file.delete` |
//! | `symlink` | never |
//!
//! `realpath` needs nothing: it only normalises a path within the server's
//! directory.
//!
//! Every write (each row above but the reads, and `write` to a handle
//! already open) is refused with "permission denied" while the server is
//! in the Agent's set of read-only servers (suspended): the set is asked
//! each time, so a suspension reaches sessions already open.

use std::collections::HashMap;
use std::os::unix::fs::FileExt as _;
use std::sync::{Arc, Mutex};

use cap_protocol::AgentMessage;
use cap_protocol::files::{FileChange, FileEntry, FileError, FileErrorCode, FileKind};
use cap_protocol::sftp::SftpPermissions;
use russh_sftp::protocol::{
    Attrs, Data, File, FileAttributes, Handle, Name, OpenFlags, Status, StatusCode, Version,
};
use russh_sftp::server::StatusReply;
use tokio::sync::mpsc;

use crate::files::{ReadOnlyServers, ServerFiles, SftpWrite, WriteMode};

/// Most handles one session keeps open.
pub const MAX_HANDLES: usize = 128;
/// Most bytes one `read` answers with.
pub const MAX_READ: u32 = 256 * 1024;
/// Writes of at most this many bytes (OpenSSH's clients send 32 KiB) are
/// made on the session's task; larger ones on the blocking pool.
const INLINE_WRITE: usize = 64 * 1024;
/// Entries per `readdir` answer.
const ENTRIES_PER_READDIR: usize = 128;

/// What a handle refers to.
enum Open {
    /// A listed folder: entries not sent yet.
    Dir(std::vec::IntoIter<FileEntry>),
    /// A file open for reading.
    Read(Arc<std::fs::File>),
    /// A file open for writing.
    Write {
        file: Arc<Mutex<SftpWrite>>,
        created: bool,
    },
}

/// One session's state.
pub(crate) struct SftpSession {
    files: Arc<ServerFiles>,
    permissions: SftpPermissions,
    server_id: String,
    user_id: String,
    changes: mpsc::Sender<AgentMessage>,
    read_only: Arc<ReadOnlyServers>,
    handles: HashMap<String, Open>,
    next_handle: u64,
    initialised: bool,
}

impl SftpSession {
    pub(crate) fn new(
        files: ServerFiles,
        permissions: SftpPermissions,
        server_id: String,
        user_id: String,
        changes: mpsc::Sender<AgentMessage>,
        read_only: Arc<ReadOnlyServers>,
    ) -> Self {
        Self {
            files: Arc::new(files),
            permissions,
            server_id,
            user_id,
            changes,
            read_only,
            handles: HashMap::new(),
            next_handle: 0,
            initialised: false,
        }
    }

    fn need(&self, held: bool, permission: &str) -> Result<(), StatusReply> {
        if held {
            Ok(())
        } else {
            Err(StatusCode::PermissionDenied.with_message(format!(
                "this needs the permission {permission} on the server"
            )))
        }
    }

    /// Refuses a write while the server is read-only (suspended), however
    /// the session began.
    fn writable(&self) -> Result<(), StatusReply> {
        if self.read_only.contains(&self.server_id) || self.files.scope().read_only {
            Err(StatusCode::PermissionDenied
                .with_message("the server is suspended: its files are read-only"))
        } else {
            Ok(())
        }
    }

    fn add_handle(&mut self, open: Open) -> Result<String, StatusReply> {
        if self.handles.len() >= MAX_HANDLES {
            return Err(StatusCode::Failure
                .with_message(format!("at most {MAX_HANDLES} handles may be open at once")));
        }
        self.next_handle += 1;
        let handle = self.next_handle.to_string();
        self.handles.insert(handle.clone(), open);
        Ok(handle)
    }

    /// Runs `work` on the server's files on a blocking thread.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&ServerFiles) -> Result<T, FileError> + Send + 'static,
    ) -> Result<T, StatusReply> {
        let files = self.files.clone();
        tokio::task::spawn_blocking(move || work(&files))
            .await
            .map_err(|e| StatusCode::Failure.with_message(format!("the operation failed: {e}")))?
            .map_err(status)
    }

    async fn report(&self, action: &str, path: String, bytes: Option<u64>) {
        let change = FileChange {
            server_id: self.server_id.clone(),
            user_id: self.user_id.clone(),
            via: "sftp".into(),
            action: action.into(),
            path,
            bytes,
        };
        let _ = self.changes.send(AgentMessage::FileChanged(change)).await;
    }

    fn path_of(&self, handle: &str) -> Result<String, StatusReply> {
        match self.handles.get(handle) {
            Some(Open::Write { file, .. }) => Ok(lock(file).path().to_owned()),
            Some(_) => Err(StatusCode::OpUnsupported
                .with_message("only files open for writing take attributes by handle")),
            None => Err(bad_handle()),
        }
    }

    async fn set_attributes(
        &self,
        id: u32,
        path: String,
        attrs: FileAttributes,
    ) -> Result<Status, StatusReply> {
        self.need(self.permissions.update, "file.update")?;
        self.writable()?;
        if attrs.size.is_some() {
            return Err(StatusCode::OpUnsupported
                .with_message("sizes are changed by writing, not by setting attributes"));
        }
        if attrs.uid.is_some() || attrs.gid.is_some() {
            return Err(StatusCode::PermissionDenied
                .with_message("owners are the Agent's to set, not the client's"));
        }
        if let Some(permissions) = attrs.permissions {
            let mode = permissions & 0o7777;
            self.run(move |files| files.chmod(&path, mode)).await?;
        }
        // Times are accepted and left as they are.
        Ok(ok(id))
    }
}

impl russh_sftp::server::Handler for SftpSession {
    type Error = StatusReply;

    fn unimplemented(&self) -> Self::Error {
        StatusCode::OpUnsupported.into()
    }

    async fn init(
        &mut self,
        _version: u32,
        _extensions: HashMap<String, String>,
    ) -> Result<Version, Self::Error> {
        if self.initialised {
            return Err(StatusCode::BadMessage.with_message("the session is initialised already"));
        }
        self.initialised = true;
        Ok(Version::new())
    }

    async fn open(
        &mut self,
        id: u32,
        filename: String,
        pflags: OpenFlags,
        _attrs: FileAttributes,
    ) -> Result<Handle, Self::Error> {
        let writes = pflags.intersects(
            OpenFlags::WRITE | OpenFlags::APPEND | OpenFlags::CREATE | OpenFlags::TRUNCATE,
        );
        if !writes {
            self.need(self.permissions.read_content, "file.read-content")?;
            let (file, _) = self.run(move |files| files.open_read(&filename)).await?;
            let handle = self.add_handle(Open::Read(Arc::new(file)))?;
            return Ok(Handle { id, handle });
        }
        if pflags.contains(OpenFlags::READ) {
            self.need(self.permissions.read_content, "file.read-content")?;
        }
        self.writable()?;
        let probe = filename.clone();
        let exists = match self.run(move |files| files.stat(&probe)).await {
            Ok(_) => true,
            Err(reply) if reply.status_code == StatusCode::NoSuchFile => false,
            Err(reply) => return Err(reply),
        };
        if exists {
            self.need(self.permissions.update, "file.update")?;
        } else {
            self.need(self.permissions.create, "file.create")?;
        }
        let mode = WriteMode {
            create: pflags.contains(OpenFlags::CREATE),
            exclusive: pflags.contains(OpenFlags::EXCLUDE),
            truncate: pflags.contains(OpenFlags::TRUNCATE),
            read: pflags.contains(OpenFlags::READ),
        };
        let file = self
            .run(move |files| files.open_write(&filename, mode))
            .await?;
        let handle = self.add_handle(Open::Write {
            file: Arc::new(Mutex::new(file)),
            created: !exists,
        })?;
        Ok(Handle { id, handle })
    }

    async fn close(&mut self, id: u32, handle: String) -> Result<Status, Self::Error> {
        match self.handles.remove(&handle) {
            None => Err(bad_handle()),
            Some(Open::Write { file, created }) => {
                let (path, written, size) = {
                    let file = lock(&file);
                    let size = file.metadata().map(|m| m.len()).ok();
                    (file.path().to_owned(), file.written(), size)
                };
                if created || written > 0 {
                    let shown = display(&path);
                    self.report("write", shown, size).await;
                }
                Ok(ok(id))
            }
            Some(_) => Ok(ok(id)),
        }
    }

    async fn read(
        &mut self,
        id: u32,
        handle: String,
        offset: u64,
        len: u32,
    ) -> Result<Data, Self::Error> {
        let len = len.min(MAX_READ) as usize;
        let data = match self.handles.get(&handle) {
            Some(Open::Read(file)) => {
                let file = file.clone();
                tokio::task::spawn_blocking(move || {
                    let mut buf = vec![0u8; len];
                    let n = file.read_at(&mut buf, offset)?;
                    buf.truncate(n);
                    Ok::<_, std::io::Error>(buf)
                })
                .await
                .map_err(|e| StatusCode::Failure.with_message(e.to_string()))?
                .map_err(|e| StatusCode::Failure.with_message(e.to_string()))?
            }
            Some(Open::Write { file, .. }) => {
                let file = file.clone();
                tokio::task::spawn_blocking(move || {
                    let mut buf = vec![0u8; len];
                    let n = lock(&file).read_at(&mut buf, offset)?;
                    buf.truncate(n);
                    Ok::<_, FileError>(buf)
                })
                .await
                .map_err(|e| StatusCode::Failure.with_message(e.to_string()))?
                .map_err(status)?
            }
            Some(Open::Dir(_)) => {
                return Err(StatusCode::Failure.with_message("a folder is not read, but listed"));
            }
            None => return Err(bad_handle()),
        };
        if data.is_empty() && len > 0 {
            return Err(StatusCode::Eof.into());
        }
        Ok(Data { id, data })
    }

    async fn write(
        &mut self,
        id: u32,
        handle: String,
        offset: u64,
        data: Vec<u8>,
    ) -> Result<Status, Self::Error> {
        let Some(Open::Write { file, .. }) = self.handles.get(&handle) else {
            return Err(
                StatusCode::PermissionDenied.with_message("the handle is not open for writing")
            );
        };
        self.writable()?;
        if data.len() <= INLINE_WRITE {
            // A copy into the page cache: shorter than a hop to the
            // blocking pool and back.
            lock(file).write_at(offset, &data).map_err(status)?;
        } else {
            let file = file.clone();
            tokio::task::spawn_blocking(move || lock(&file).write_at(offset, &data))
                .await
                .map_err(|e| StatusCode::Failure.with_message(e.to_string()))?
                .map_err(status)?;
        }
        Ok(ok(id))
    }

    async fn lstat(&mut self, id: u32, path: String) -> Result<Attrs, Self::Error> {
        self.need(self.permissions.read, "file.read")?;
        let entry = self.run(move |files| files.stat(&path)).await?;
        Ok(Attrs {
            id,
            attrs: attributes(&entry),
        })
    }

    async fn stat(&mut self, id: u32, path: String) -> Result<Attrs, Self::Error> {
        self.need(self.permissions.read, "file.read")?;
        let entry = self.run(move |files| files.stat_followed(&path)).await?;
        Ok(Attrs {
            id,
            attrs: attributes(&entry),
        })
    }

    async fn fstat(&mut self, id: u32, handle: String) -> Result<Attrs, Self::Error> {
        let meta = match self.handles.get(&handle) {
            Some(Open::Read(file)) => file.metadata(),
            Some(Open::Write { file, .. }) => lock(file)
                .metadata()
                .map_err(|e| std::io::Error::other(e.message)),
            Some(Open::Dir(_)) => {
                return Err(StatusCode::OpUnsupported.with_message("stat a folder by its path"));
            }
            None => return Err(bad_handle()),
        }
        .map_err(|e| StatusCode::Failure.with_message(e.to_string()))?;
        use std::os::unix::fs::MetadataExt as _;
        let attrs = FileAttributes {
            size: Some(meta.len()),
            permissions: Some(0o100_000 | (meta.mode() & 0o7777)),
            mtime: Some(u32::try_from(meta.mtime()).unwrap_or(0)),
            atime: Some(u32::try_from(meta.atime()).unwrap_or(0)),
            ..FileAttributes::empty()
        };
        Ok(Attrs { id, attrs })
    }

    async fn setstat(
        &mut self,
        id: u32,
        path: String,
        attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        self.set_attributes(id, path, attrs).await
    }

    async fn fsetstat(
        &mut self,
        id: u32,
        handle: String,
        attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        let path = self.path_of(&handle)?;
        self.set_attributes(id, path, attrs).await
    }

    async fn opendir(&mut self, id: u32, path: String) -> Result<Handle, Self::Error> {
        self.need(self.permissions.read, "file.read")?;
        let entries = self.run(move |files| files.list(&path)).await?;
        let handle = self.add_handle(Open::Dir(entries.into_iter()))?;
        Ok(Handle { id, handle })
    }

    async fn readdir(&mut self, id: u32, handle: String) -> Result<Name, Self::Error> {
        let Some(Open::Dir(entries)) = self.handles.get_mut(&handle) else {
            return Err(bad_handle());
        };
        let files: Vec<File> = entries
            .by_ref()
            .take(ENTRIES_PER_READDIR)
            .map(|entry| File::new(entry.name.clone(), attributes(&entry)))
            .collect();
        if files.is_empty() {
            return Err(StatusCode::Eof.into());
        }
        Ok(Name { id, files })
    }

    async fn remove(&mut self, id: u32, filename: String) -> Result<Status, Self::Error> {
        self.need(self.permissions.delete, "file.delete")?;
        self.writable()?;
        let path = filename.clone();
        self.run(move |files| files.remove_file(&path)).await?;
        self.report("delete", display(&filename), None).await;
        Ok(ok(id))
    }

    async fn mkdir(
        &mut self,
        id: u32,
        path: String,
        _attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        self.need(self.permissions.create, "file.create")?;
        self.writable()?;
        let entry = self.run(move |files| files.make_folder(&path)).await?;
        self.report("create-folder", entry.path, None).await;
        Ok(ok(id))
    }

    async fn rmdir(&mut self, id: u32, path: String) -> Result<Status, Self::Error> {
        self.need(self.permissions.delete, "file.delete")?;
        self.writable()?;
        let target = path.clone();
        self.run(move |files| files.remove_folder(&target)).await?;
        self.report("delete", display(&path), None).await;
        Ok(ok(id))
    }

    async fn realpath(&mut self, id: u32, path: String) -> Result<Name, Self::Error> {
        let real = self.run(move |files| files.realpath(&path)).await?;
        Ok(Name {
            id,
            files: vec![File::dummy(real)],
        })
    }

    async fn rename(
        &mut self,
        id: u32,
        oldpath: String,
        newpath: String,
    ) -> Result<Status, Self::Error> {
        self.need(self.permissions.update, "file.update")?;
        self.writable()?;
        let entry = self
            .run(move |files| files.rename(&oldpath, &newpath))
            .await?;
        self.report("rename", entry.path, None).await;
        Ok(ok(id))
    }

    async fn symlink(
        &mut self,
        _id: u32,
        _linkpath: String,
        _targetpath: String,
    ) -> Result<Status, Self::Error> {
        Err(StatusCode::PermissionDenied.with_message("symbolic links cannot be created over SFTP"))
    }
}

/// The SFTP status for a refused or failed file operation, with its
/// sentence.
fn status(error: FileError) -> StatusReply {
    let code = match error.code {
        FileErrorCode::NotFound | FileErrorCode::UnknownServer => StatusCode::NoSuchFile,
        FileErrorCode::OutsideServer
        | FileErrorCode::Denied
        | FileErrorCode::ReadOnly
        | FileErrorCode::InvalidMode
        | FileErrorCode::SpecialFile => StatusCode::PermissionDenied,
        _ => StatusCode::Failure,
    };
    code.with_message(error.message)
}

fn ok(id: u32) -> Status {
    Status {
        id,
        status_code: StatusCode::Ok,
        error_message: "Ok".into(),
        language_tag: "en-US".into(),
    }
}

fn bad_handle() -> StatusReply {
    StatusCode::Failure.with_message("no such handle")
}

/// `path` as answers show it (`/` and the names).
fn display(path: &str) -> String {
    let trimmed = path.trim_start_matches('/');
    format!("/{trimmed}")
}

/// SFTP attributes for an entry: the file type in the mode's high bits,
/// as `ls -l` expects.
fn attributes(entry: &FileEntry) -> FileAttributes {
    let kind = match entry.kind {
        FileKind::Directory => 0o040_000,
        FileKind::File => 0o100_000,
        FileKind::Symlink => 0o120_000,
        FileKind::Other => 0,
    };
    let mtime = u32::try_from(entry.modified_ms / 1000).unwrap_or(u32::MAX);
    FileAttributes {
        size: Some(entry.size),
        permissions: Some(kind | (entry.mode & 0o7777)),
        mtime: Some(mtime),
        atime: Some(mtime),
        ..FileAttributes::empty()
    }
}

fn lock(file: &Mutex<SftpWrite>) -> std::sync::MutexGuard<'_, SftpWrite> {
    file.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
