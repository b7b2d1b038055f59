//! Resumable uploads, staged outside the server's directory.
//!
//! An upload (one signed grant, named by its `jti`) is a staging file
//! `<id>.part` in the staging directory the caller passes (`<data>/uploads`,
//! outside every server's directory, so that a half-received file is never
//! visible to the server nor counted as its file). Chunks append at the
//! offset received so far ([`ServerFiles::upload_status`]); a chunk at any
//! other offset is refused (`offset-mismatch`), so a client that lost its
//! connection asks for the status and goes on from there.
//! [`ServerFiles::upload_finish`] renames the staged file over the target
//! in one step (a copy to a temporary name beside the target, then a
//! rename, when the staging directory is on another file system): a crash
//! at any point leaves either the old file or the new one, never half of
//! one. A copy that a crash interrupts leaves a `.cap-upload-<id>.tmp`
//! beside the target, which the next finish of that upload replaces.

use std::io::{self, BufRead, Seek, SeekFrom, Write};

use cap_fs_ext::{FollowSymlinks, OpenOptionsFollowExt, OpenOptionsMaybeDirExt};
use cap_protocol::files::{FileEntry, FileError, FileErrorCode};
use cap_std::fs::{Dir, MetadataExt, OpenOptions, OpenOptionsExt};
use rustix::fs::Mode;

use super::error::{self, io_error};
use super::ops::FILE_MODE;
use super::{Located, ServerFiles};

/// The longest upload id (a grant's `jti`), in bytes.
pub const MAX_UPLOAD_ID_BYTES: usize = 128;

/// The staging file's name for upload `id`, checked to be a plain token.
fn staged_name(id: &str) -> Result<String, FileError> {
    let plain = !id.is_empty()
        && id.len() <= MAX_UPLOAD_ID_BYTES
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if plain {
        Ok(format!("{id}.part"))
    } else {
        Err(FileError::at(
            FileErrorCode::InvalidPath,
            id,
            format!(
                "the upload id `{}` is not 1 to {MAX_UPLOAD_ID_BYTES} letters, digits, `-` or `_`",
                super::path::printable(id)
            ),
        ))
    }
}

/// Bytes staged so far for `name` (0 when none).
fn staged_len(staging: &Dir, name: &str, raw: &str) -> Result<u64, FileError> {
    match staging.symlink_metadata(name) {
        Ok(meta) if meta.is_file() => Ok(meta.len()),
        Ok(_) => Err(FileError::at(
            FileErrorCode::Io,
            raw,
            format!("the staging entry `{name}` is not a regular file"),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(io_error(&e, raw)),
    }
}

impl ServerFiles {
    /// How many bytes of upload `id` the staging directory holds (0 for an
    /// upload not started).
    ///
    /// # Errors
    ///
    /// `invalid-path` for an id that is not a plain token, `io`.
    pub fn upload_status(&self, staging: &Dir, id: &str) -> Result<u64, FileError> {
        let name = staged_name(id)?;
        staged_len(staging, &name, id)
    }

    /// Appends what `reader` yields to upload `id`, bound for `path`, at
    /// `offset`, which must be the bytes received so far. `declared_total`
    /// (the size the client announced, if any) is checked against the
    /// disk limit before anything is written, and bounds what is accepted.
    /// Returns the bytes received now.
    ///
    /// The target is checked first (confinement, denylist, its directory
    /// exists, it is not a directory). The disk limit counts the server's
    /// usage plus what is staged, less the size of the file the upload
    /// replaces. When the reader fails, what it gave so far stays staged
    /// (the client resumes from [`upload_status`](Self::upload_status));
    /// when a limit is crossed, the chunk is undone.
    ///
    /// # Errors
    ///
    /// `offset-mismatch` (wrong offset, or more than `declared_total`),
    /// `disk-limit`, `read-only`, `denied`, `outside-server`,
    /// `is-a-directory`, `not-found` (the target's directory), `io`.
    pub fn upload_append(
        &self,
        staging: &Dir,
        id: &str,
        path: &str,
        offset: u64,
        reader: &mut dyn BufRead,
        declared_total: Option<u64>,
    ) -> Result<u64, FileError> {
        self.writable(path)?;
        let name = staged_name(id)?;
        let target = self.upload_target(path)?;
        let received = staged_len(staging, &name, path)?;
        if offset != received {
            return Err(FileError::at(
                FileErrorCode::OffsetMismatch,
                path,
                format!(
                    "the upload of `{}` has {received} bytes, so its next chunk starts at offset {received}, not {offset}",
                    super::path::printable(path)
                ),
            ));
        }
        if let Some(total) = declared_total
            && total < received
        {
            return Err(beyond_declared(path, total));
        }
        let replaced = self.replaced_len(&target)?;
        let headroom = self
            .headroom()
            .map(|room| room.saturating_add(replaced).saturating_sub(received));
        if let (Some(room), Some(total)) = (headroom, declared_total)
            && total - received > room
        {
            return Err(error::disk_limit(path, self.scope.disk_mb));
        }
        let mut file = staging
            .open_with(
                &name,
                OpenOptions::new()
                    .write(true)
                    .create(true)
                    .follow(FollowSymlinks::No)
                    .mode(0o600),
            )
            .map_err(|e| io_error(&e, path))?;
        file.seek(SeekFrom::Start(received))
            .map_err(|e| io_error(&e, path))?;
        // Straight from the reader's own buffer (the request body's
        // chunks, for the HTTP listener) into the file: no copy between.
        let mut written = 0u64;
        let outcome = loop {
            let chunk = match reader.fill_buf() {
                Ok([]) => break Ok(()),
                Ok(chunk) => chunk,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    break Err(FileError::at(
                        FileErrorCode::Io,
                        path,
                        format!(
                            "the upload of `{}` was interrupted after {} bytes: {e}",
                            super::path::printable(path),
                            received + written
                        ),
                    ));
                }
            };
            let n = chunk.len();
            let after = written + n as u64;
            if let Some(total) = declared_total
                && received + after > total
            {
                break Err(undo(&file, received, beyond_declared(path, total)));
            }
            if headroom.is_some_and(|room| after > room) {
                break Err(undo(
                    &file,
                    received,
                    error::disk_limit(path, self.scope.disk_mb),
                ));
            }
            if let Err(e) = file.write_all(chunk) {
                break Err(undo(&file, received, io_error(&e, path)));
            }
            reader.consume(n);
            written = after;
        };
        outcome?;
        Ok(received + written)
    }

    /// Moves the finished upload `id` into place at `path`, replacing a
    /// file there, with the server owner and mode `0o644` (or the replaced
    /// file's mode). Returns the new entry.
    ///
    /// # Errors
    ///
    /// `not-found` when nothing was staged, and those of
    /// [`upload_append`](Self::upload_append).
    pub fn upload_finish(
        &self,
        staging: &Dir,
        id: &str,
        path: &str,
    ) -> Result<FileEntry, FileError> {
        self.writable(path)?;
        let name = staged_name(id)?;
        let target = self.upload_target(path)?;
        let staged = staging
            .open_with(
                &name,
                OpenOptions::new()
                    .read(true)
                    .write(true)
                    .follow(FollowSymlinks::No),
            )
            .map_err(|e| {
                if e.kind() == io::ErrorKind::NotFound {
                    FileError::at(
                        FileErrorCode::NotFound,
                        path,
                        format!(
                            "no upload of `{}` was started (nothing is staged for it)",
                            super::path::printable(path)
                        ),
                    )
                } else {
                    io_error(&e, path)
                }
            })?;
        let replaced = self.lstat(&target)?;
        let mode = match &replaced {
            Some(meta) if meta.is_file() => meta.mode() & 0o777,
            _ => FILE_MODE,
        };
        rustix::fs::fchmod(&staged, Mode::from_raw_mode(mode))
            .map_err(|e| io_error(&e.into(), path))?;
        self.give_fd(&staged, path)?;
        staged.sync_all().map_err(|e| io_error(&e, path))?;
        let staged_meta = staged.metadata().map_err(|e| io_error(&e, path))?;
        match staging.rename(&name, &target.parent, &target.name) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
                self.finish_by_copy(staged.into_std(), &target, id, mode)?;
                staging.remove_file(&name).map_err(|e| io_error(&e, path))?;
            }
            Err(e) => return Err(io_error(&e, path)),
        }
        // The server's directory gained the staged file and lost the one
        // it replaced.
        if let Some(meta) = &replaced {
            self.discharge(meta);
        }
        self.charge(super::allocated(&staged_meta));
        // The rename itself, on disk (best effort: the file is in place).
        if let Ok(dir) = target
            .parent
            .open_with(".", OpenOptions::new().read(true).maybe_dir(true))
        {
            let _ = dir.sync_all();
        }
        self.describe(&target)
    }

    /// Forgets upload `id`: removes what was staged (an expired grant, a
    /// cancelled upload). Nothing staged is not an error.
    ///
    /// # Errors
    ///
    /// `invalid-path` for an id that is not a plain token, `io`.
    pub fn upload_abort(&self, staging: &Dir, id: &str) -> Result<(), FileError> {
        let name = staged_name(id)?;
        match staging.remove_file(&name) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_error(&e, id)),
            _ => Ok(()),
        }
    }

    /// The upload's target, checked: confined, not denied, its directory
    /// there, not a directory itself.
    fn upload_target(&self, path: &str) -> Result<Located, FileError> {
        let target = self.locate(path)?;
        self.check(&target, false)?;
        if let Some(meta) = self.lstat(&target)?
            && meta.is_dir()
        {
            return Err(FileError::at(
                FileErrorCode::IsADirectory,
                path,
                format!(
                    "`{}` is a folder; an upload needs a file name",
                    super::path::printable(path)
                ),
            ));
        }
        Ok(target)
    }

    /// The size of the regular file an upload would replace (0 if none).
    fn replaced_len(&self, target: &Located) -> Result<u64, FileError> {
        Ok(match self.lstat(target)? {
            Some(meta) if meta.is_file() => meta.len(),
            _ => 0,
        })
    }

    /// Finishes across file systems: copies to a temporary name beside the
    /// target, then renames it over the target.
    fn finish_by_copy(
        &self,
        mut staged: std::fs::File,
        target: &Located,
        id: &str,
        mode: u32,
    ) -> Result<(), FileError> {
        let path = target.raw.as_str();
        let temp = format!(".cap-upload-{id}.tmp");
        let copy = target
            .parent
            .open_with(
                &temp,
                OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .follow(FollowSymlinks::No)
                    .mode(mode),
            )
            .map_err(|e| io_error(&e, path))?;
        let done = (|| {
            rustix::fs::fchmod(&copy, Mode::from_raw_mode(mode))
                .map_err(|e| io_error(&e.into(), path))?;
            self.give_fd(&copy, path)?;
            let mut copy = copy.into_std();
            staged
                .seek(SeekFrom::Start(0))
                .map_err(|e| io_error(&e, path))?;
            io::copy(&mut staged, &mut copy).map_err(|e| io_error(&e, path))?;
            copy.sync_all().map_err(|e| io_error(&e, path))?;
            target
                .parent
                .rename(&temp, &target.parent, &target.name)
                .map_err(|e| io_error(&e, path))
        })();
        if done.is_err() {
            let _ = target.parent.remove_file(&temp);
        }
        done
    }
}

/// Truncates the staging file back to `received` (undoing a refused
/// chunk), then returns `error`.
fn undo(file: &cap_std::fs::File, received: u64, error: FileError) -> FileError {
    let _ = file.set_len(received);
    error
}

fn beyond_declared(path: &str, total: u64) -> FileError {
    FileError::at(
        FileErrorCode::OffsetMismatch,
        path,
        format!(
            "the upload of `{}` sent more than the {total} bytes it declared",
            super::path::printable(path)
        ),
    )
}
