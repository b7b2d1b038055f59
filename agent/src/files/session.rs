//! What an SFTP session needs beyond the file manager's operations: opening
//! files for writing at offsets, single-level folders, removing one file or
//! one empty folder, following stats and a confined `realpath`.
//!
//! SFTP writes go straight into the target file, at the offsets the client
//! names, as OpenSSH's `sftp-server` does (a client resumes a `put` by
//! writing from where the file ends); they are not staged like the HTTP
//! uploads. The disk limit is checked when the file is opened and on every
//! write: an [`SftpWrite`] counts how far the file grew past its size at
//! open and refuses the write that would take it past the headroom.

use std::os::unix::fs::FileExt as _;
use std::path::PathBuf;
use std::sync::Arc;

use cap_fs_ext::{FollowSymlinks, OpenOptionsFollowExt};
use cap_protocol::files::{FileEntry, FileError, FileErrorCode};
use cap_std::fs::{DirBuilder, DirBuilderExt, OpenOptions, OpenOptionsExt};

use super::entry::entry;
use super::error::{self, io_error};
use super::ops::{DIR_MODE, FILE_MODE};
use super::path::{RelPath, printable};
use super::{DiskUsage, ServerFiles};

/// How an SFTP client opens a file for writing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteMode {
    /// Create the file if it is missing.
    pub create: bool,
    /// Refuse if the file exists (`O_EXCL`).
    pub exclusive: bool,
    /// Empty the file first.
    pub truncate: bool,
    /// Also read from it.
    pub read: bool,
}

/// A file open for writing by an SFTP session, with the disk limit's
/// headroom taken at open.
#[derive(Debug)]
pub struct SftpWrite {
    file: std::fs::File,
    path: String,
    limit_mb: u64,
    /// Bytes the server may still grow by when the file was opened
    /// (`None`: unlimited).
    headroom: Option<u64>,
    /// The file's size when opened (after any truncation).
    opened_size: u64,
    /// The largest end of a write so far.
    end: u64,
    /// Bytes written through this handle.
    written: u64,
    /// Where its growth is charged when it is closed.
    usage: Option<(Arc<DiskUsage>, PathBuf)>,
    /// The bytes it took on disk when opened (after any truncation).
    opened_blocks: i64,
}

impl Drop for SftpWrite {
    /// Charges what the file grew by (its blocks now less at open) to the
    /// server's usage figure.
    fn drop(&mut self) {
        if let Some((usage, dir)) = &self.usage
            && self.written > 0
        {
            match self.file.metadata() {
                Ok(meta) => {
                    use std::os::unix::fs::MetadataExt as _;
                    usage.charge(dir, super::blocks_bytes(meta.blocks()) - self.opened_blocks);
                }
                Err(_) => usage.forget(dir),
            }
        }
    }
}

impl SftpWrite {
    /// Writes `data` at `offset`.
    ///
    /// # Errors
    ///
    /// `disk-limit` when the file would grow past the headroom it was
    /// opened with (nothing is written then), `io`.
    pub fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<(), FileError> {
        let end = offset.saturating_add(data.len() as u64);
        if let Some(room) = self.headroom {
            let grown = end.max(self.end).saturating_sub(self.opened_size);
            if grown > room {
                return Err(error::disk_limit(&self.path, self.limit_mb));
            }
        }
        self.file
            .write_all_at(data, offset)
            .map_err(|e| io_error(&e, &self.path))?;
        self.end = self.end.max(end);
        self.written = self.written.saturating_add(data.len() as u64);
        Ok(())
    }

    /// Reads into `buf` at `offset` (a file opened for reading and
    /// writing); returns how many bytes were read, 0 at the end.
    ///
    /// # Errors
    ///
    /// `io`.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize, FileError> {
        self.file
            .read_at(buf, offset)
            .map_err(|e| io_error(&e, &self.path))
    }

    /// The file's metadata now.
    ///
    /// # Errors
    ///
    /// `io`.
    pub fn metadata(&self) -> Result<std::fs::Metadata, FileError> {
        self.file.metadata().map_err(|e| io_error(&e, &self.path))
    }

    /// The path it was opened at.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Bytes written through this handle.
    pub fn written(&self) -> u64 {
        self.written
    }
}

impl ServerFiles {
    /// Opens the file at `path` for writing (following symbolic links that
    /// stay inside), creating it with mode `0o644` when `mode.create` and
    /// it is missing.
    ///
    /// # Errors
    ///
    /// `read-only`, `denied`, `outside-server`, `is-a-directory`,
    /// `special-file`, `already-exists` (`exclusive`), `not-found` (no
    /// `create`, or a missing folder), `disk-limit` (no room at all).
    pub fn open_write(&self, path: &str, mode: WriteMode) -> Result<SftpWrite, FileError> {
        self.writable(path)?;
        let at = self.locate(path)?;
        self.check(&at, false)?;
        let file = match self.lstat(&at)? {
            Some(meta) => {
                if mode.exclusive {
                    return Err(error::exists(path));
                }
                if meta.is_dir() {
                    return Err(is_a_directory(path));
                }
                let target = self.followed_metadata(&at)?;
                self.check_followed(&at, target.is_dir())?;
                if target.is_dir() {
                    return Err(is_a_directory(path));
                }
                if !target.is_file() {
                    return Err(special(path));
                }
                self.root
                    .open_with(
                        at.rel.fs_path(),
                        OpenOptions::new()
                            .read(mode.read)
                            .write(true)
                            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY),
                    )
                    .map_err(|e| io_error(&e, path))?
            }
            None if !mode.create => return Err(error::not_found(path)),
            None => {
                let file = at
                    .parent
                    .open_with(
                        &at.name,
                        OpenOptions::new()
                            .read(mode.read)
                            .write(true)
                            .create_new(true)
                            .follow(FollowSymlinks::No)
                            .mode(FILE_MODE)
                            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY),
                    )
                    .map_err(|e| io_error(&e, path))?;
                self.give_fd(&file, path)?;
                file
            }
        };
        let meta = file.metadata().map_err(|e| io_error(&e, path))?;
        if !meta.is_file() {
            return Err(special(path));
        }
        let opened_blocks = if mode.truncate {
            file.set_len(0).map_err(|e| io_error(&e, path))?;
            self.discharge(&meta);
            0
        } else {
            super::allocated(&meta)
        };
        let opened_size = if mode.truncate { 0 } else { meta.len() };
        Ok(SftpWrite {
            file: file.into_std(),
            path: path.to_owned(),
            limit_mb: self.scope.disk_mb,
            headroom: self.headroom(),
            opened_size,
            end: opened_size,
            written: 0,
            usage: self.usage_handle(),
            opened_blocks,
        })
    }

    /// Creates the folder at `path`, whose parent must exist.
    ///
    /// # Errors
    ///
    /// `already-exists`, `not-found` (the parent), `read-only`, `denied`,
    /// `disk-limit`, `outside-server`.
    pub fn make_folder(&self, path: &str) -> Result<FileEntry, FileError> {
        self.writable(path)?;
        let at = self.locate(path)?;
        self.check(&at, true)?;
        self.require_room(4096, path)?;
        at.parent
            .create_dir_with(&at.name, DirBuilder::new().mode(DIR_MODE))
            .map_err(|e| io_error(&e, path))?;
        match at.parent.symlink_metadata(&at.name) {
            Ok(meta) => self.charge(super::allocated(&meta)),
            Err(_) => self.forget_usage(),
        }
        self.give(&at.parent, &at.name, path)?;
        self.describe(&at)
    }

    /// Removes the empty folder at `path`.
    ///
    /// # Errors
    ///
    /// `not-found`, `not-a-directory`, `already-exists` (not empty: the
    /// kernel's `ENOTEMPTY`), `read-only`, `denied`.
    pub fn remove_folder(&self, path: &str) -> Result<(), FileError> {
        self.writable(path)?;
        let at = self.locate(path)?;
        let meta = self.existing(&at)?;
        if !meta.is_dir() {
            return Err(FileError::at(
                FileErrorCode::NotADirectory,
                path,
                format!("`{}` is not a folder", printable(path)),
            ));
        }
        self.check(&at, true)?;
        at.parent
            .remove_dir(&at.name)
            .map_err(|e| io_error(&e, path))?;
        self.discharge(&meta);
        Ok(())
    }

    /// Removes the file (or symbolic link, never its target) at `path`.
    ///
    /// # Errors
    ///
    /// `not-found`, `is-a-directory`, `read-only`, `denied`.
    pub fn remove_file(&self, path: &str) -> Result<(), FileError> {
        self.writable(path)?;
        let at = self.locate(path)?;
        let meta = self.existing(&at)?;
        if meta.is_dir() {
            return Err(is_a_directory(path));
        }
        self.check(&at, false)?;
        at.parent
            .remove_file(&at.name)
            .map_err(|e| io_error(&e, path))?;
        self.discharge(&meta);
        Ok(())
    }

    /// The entry `path` resolves to, symbolic links followed (only those
    /// that stay inside).
    ///
    /// # Errors
    ///
    /// As [`list`](Self::list).
    pub fn stat_followed(&self, path: &str) -> Result<FileEntry, FileError> {
        let rel = RelPath::parse(path)?;
        if rel.is_root() {
            return self.stat(path);
        }
        let at = self.locate(path)?;
        let meta = self.followed_metadata(&at)?;
        self.check_followed(&at, meta.is_dir())?;
        Ok(entry(&at.rel, &meta, None))
    }

    /// `path` made absolute and normal, within the server's directory: `.`
    /// and `..` applied (`..` at the top stays at the top, as in `/`),
    /// symbolic links resolved where the path exists. `/` is the server's
    /// directory.
    ///
    /// # Errors
    ///
    /// `invalid-path` (NUL, too long), `outside-server` (an existing link
    /// leading outside).
    pub fn realpath(&self, path: &str) -> Result<String, FileError> {
        let raw = if path.is_empty() { "." } else { path };
        if raw.contains('\0') || raw.len() > super::MAX_PATH_BYTES {
            return Err(error::invalid(raw, "is not a valid path"));
        }
        let mut names: Vec<String> = Vec::new();
        for name in raw.split('/') {
            match name {
                "" | "." => {}
                ".." => {
                    names.pop();
                }
                name => names.push(name.to_owned()),
            }
        }
        let rel = RelPath::from_names(names);
        match self.canonical(&rel, raw) {
            Ok(resolved) => Ok(resolved.display()),
            Err(e) if e.code == FileErrorCode::NotFound => Ok(rel.display()),
            Err(e) => Err(e),
        }
    }
}

fn is_a_directory(path: &str) -> FileError {
    FileError::at(
        FileErrorCode::IsADirectory,
        path,
        format!("`{}` is a folder, not a file", printable(path)),
    )
}

fn special(path: &str) -> FileError {
    FileError::at(
        FileErrorCode::SpecialFile,
        path,
        format!(
            "`{}` is a device, fifo or socket, which is never opened",
            printable(path)
        ),
    )
}
