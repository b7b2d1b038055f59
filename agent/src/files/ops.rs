//! Listing, reading and changing entries: everything but uploads, archives
//! and pulls.

use std::io;

use cap_fs_ext::{DirExt, FollowSymlinks, OpenOptionsFollowExt, OpenOptionsMaybeDirExt};
use cap_protocol::files::{FileEntry, FileError, FileErrorCode, FileKind};
use cap_std::fs::{Dir, DirBuilder, DirBuilderExt, MetadataExt, OpenOptions, OpenOptionsExt};
use rustix::fs::{Mode, RenameFlags};

use super::entry::{entry, kind_of, sniff_file, sniff_in};
use super::error::{self, io_error};
use super::path::RelPath;
use super::{Located, ServerFiles};

/// How deep a tree the Agent walks (copies, archives, denylist checks)
/// before giving up: bounds its recursion against a server that nests
/// directories without end.
pub const MAX_TREE_DEPTH: usize = 128;

/// Mode of directories the Agent creates.
pub(crate) const DIR_MODE: u32 = 0o755;

/// Mode of files the Agent creates when nothing says otherwise.
pub(crate) const FILE_MODE: u32 = 0o644;

impl ServerFiles {
    /// The entries of the directory at `path`, directories first, then by
    /// name. Entries the denylist covers, and entries whose names are not
    /// UTF-8, are left out.
    ///
    /// # Errors
    ///
    /// `not-found`, `not-a-directory`, `outside-server` (the path or a link
    /// on it leaves the server's directory), `denied`, `invalid-path`.
    pub fn list(&self, path: &str) -> Result<Vec<FileEntry>, FileError> {
        let rel = RelPath::parse(path)?;
        self.deny(&rel, true, path)?;
        let dir = self.open_dir(&rel, path)?;
        let resolved = self.canonical(&rel, path)?;
        self.deny(&resolved, true, path)?;
        let mut entries = Vec::new();
        for item in dir.entries().map_err(|e| io_error(&e, path))? {
            let item = item.map_err(|e| io_error(&e, path))?;
            let Some(name) = item.file_name().to_str().map(str::to_owned) else {
                tracing::debug!(path, "left a name that is not UTF-8 out of a listing");
                continue;
            };
            // Gone since the directory was read: leave it out.
            let Ok(meta) = dir.symlink_metadata(&name) else {
                continue;
            };
            let is_dir = meta.is_dir()
                || (meta.file_type().is_symlink()
                    && self
                        .root
                        .metadata(rel.join(&name).fs_path())
                        .is_ok_and(|target| target.is_dir()));
            let child = rel.join(&name);
            if self.denylist.denies(&child, is_dir)
                || self.denylist.denies(&resolved.join(&name), is_dir)
            {
                continue;
            }
            let mime = meta.is_file().then(|| sniff_in(&dir, &name)).flatten();
            entries.push(entry(&child, &meta, mime));
        }
        entries.sort_by(|a, b| {
            (a.kind != FileKind::Directory, &a.name).cmp(&(b.kind != FileKind::Directory, &b.name))
        });
        Ok(entries)
    }

    /// The entry at `path` itself (a symbolic link is described, not
    /// followed).
    ///
    /// # Errors
    ///
    /// As [`list`](Self::list).
    pub fn stat(&self, path: &str) -> Result<FileEntry, FileError> {
        let rel = RelPath::parse(path)?;
        if rel.is_root() {
            let meta = self.root.dir_metadata().map_err(|e| io_error(&e, path))?;
            return Ok(entry(&rel, &meta, None));
        }
        let at = self.locate(path)?;
        self.describe(&at)
    }

    /// The entry at `at`, checked against the denylist.
    pub(super) fn describe(&self, at: &Located) -> Result<FileEntry, FileError> {
        let meta = self.existing(at)?;
        self.check(at, meta.is_dir())?;
        let mime = meta
            .is_file()
            .then(|| sniff_in(&at.parent, &at.name))
            .flatten();
        Ok(entry(&at.rel, &meta, mime))
    }

    /// Opens the regular file at `path` for reading (following symbolic
    /// links that stay inside), with its entry. The file is at offset 0;
    /// range requests seek it.
    ///
    /// # Errors
    ///
    /// `is-a-directory`, `special-file` (devices, fifos, sockets), and those
    /// of [`list`](Self::list).
    pub fn open_read(&self, path: &str) -> Result<(std::fs::File, FileEntry), FileError> {
        let rel = RelPath::parse(path)?;
        if rel.is_root() {
            return Err(is_a_directory(path));
        }
        let at = self.locate(path)?;
        let target = self.followed_metadata(&at)?;
        self.check_followed(&at, target.is_dir())?;
        if target.is_dir() {
            return Err(is_a_directory(path));
        }
        if !target.is_file() {
            return Err(special(path));
        }
        let file = self
            .root
            .open_with(
                at.rel.fs_path(),
                OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY),
            )
            .map_err(|e| io_error(&e, path))?;
        let meta = file.metadata().map_err(|e| io_error(&e, path))?;
        if !meta.is_file() {
            return Err(special(path));
        }
        let file = file.into_std();
        let mime = sniff_file(&at.name, &file);
        Ok((file, entry(&at.rel, &meta, Some(mime))))
    }

    /// Creates the directory at `path` and its missing parents.
    ///
    /// # Errors
    ///
    /// `already-exists` when `path` exists, `read-only`, `disk-limit`,
    /// `denied` (for `path` or a parent), and those of [`list`](Self::list).
    pub fn create_folder(&self, path: &str) -> Result<FileEntry, FileError> {
        self.writable(path)?;
        let rel = RelPath::parse(path)?;
        if rel.is_root() {
            return Err(error::exists(path));
        }
        let mut prefix = RelPath::root();
        for name in rel.names() {
            prefix = prefix.join(name);
            self.deny(&prefix, true, path)?;
        }
        // A directory takes a block.
        self.require_room(4096, path)?;
        let made = self.make_dirs(&rel, path, true);
        self.forget_usage();
        made?;
        let resolved = self.canonical(&rel, path)?;
        self.deny(&resolved, true, path)?;
        self.stat(path)
    }

    /// Creates the directories of `rel` beneath the server's directory,
    /// each given to the server's owner, and returns the last one opened
    /// and the outermost one created (if any). With `exclusive`, an
    /// existing last directory is `already-exists`.
    pub(crate) fn make_dirs(
        &self,
        rel: &RelPath,
        raw: &str,
        exclusive: bool,
    ) -> Result<(Dir, Option<RelPath>), FileError> {
        let mut dir = self.root.try_clone().map_err(|e| io_error(&e, raw))?;
        let mut created = None;
        let mut prefix = RelPath::root();
        let last = rel.names().len();
        for (i, name) in rel.names().iter().enumerate() {
            prefix = prefix.join(name);
            match dir.create_dir_with(name, DirBuilder::new().mode(DIR_MODE)) {
                Ok(()) => {
                    self.give(&dir, name, raw)?;
                    created.get_or_insert_with(|| prefix.clone());
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    if exclusive && i + 1 == last {
                        return Err(error::exists(raw));
                    }
                }
                Err(e) => return Err(io_error(&e, raw)),
            }
            // From the root, so that a link on the way may point anywhere
            // inside the server's directory.
            dir = self
                .root
                .open_dir(prefix.fs_path())
                .map_err(|e| io_error(&e, raw))?;
        }
        Ok((dir, created))
    }

    /// Renames or moves the entry at `from` to `to`, which must not exist.
    ///
    /// # Errors
    ///
    /// `already-exists`, `not-found`, `denied` (either path, or an entry
    /// inside a directory being moved), `invalid-path` (a directory into
    /// itself), `read-only`, and those of [`list`](Self::list).
    pub fn rename(&self, from: &str, to: &str) -> Result<FileEntry, FileError> {
        self.writable(from)?;
        let source = self.locate(from)?;
        let target = self.locate(to)?;
        let meta = self.existing(&source)?;
        let is_dir = meta.is_dir();
        self.check(&source, is_dir)?;
        self.check(&target, is_dir)?;
        if self.lstat(&target)?.is_some() {
            return Err(error::exists(to));
        }
        if is_dir {
            if target.rel.starts_with(&source.rel) || target.resolved.starts_with(&source.resolved)
            {
                return Err(error::invalid(to, "is inside the folder being moved"));
            }
            self.scan(&source, false)?;
        }
        let renamed = rustix::fs::renameat_with(
            &source.parent,
            source.name.as_str(),
            &target.parent,
            target.name.as_str(),
            RenameFlags::NOREPLACE,
        );
        match renamed {
            Ok(()) => {}
            // File systems without RENAME_NOREPLACE: the target was checked
            // to be absent just above.
            Err(rustix::io::Errno::INVAL) => source
                .parent
                .rename(&source.name, &target.parent, &target.name)
                .map_err(|e| io_error(&e, to))?,
            Err(e) => return Err(io_error(&e.into(), to)),
        }
        self.describe(&target)
    }

    /// Copies the file or directory tree at `from` to `to`, which must not
    /// exist. Symbolic links are copied as links (`from` itself only when
    /// it resolves inside the server's directory); fifos, sockets and
    /// devices are left out; a copy that fails is removed.
    ///
    /// # Errors
    ///
    /// `disk-limit` when the copy would not fit, and those of
    /// [`rename`](Self::rename).
    pub fn copy(&self, from: &str, to: &str) -> Result<FileEntry, FileError> {
        self.writable(from)?;
        let source = self.locate(from)?;
        let target = self.locate(to)?;
        let meta = self.existing(&source)?;
        let is_dir = meta.is_dir();
        self.check(&source, is_dir)?;
        self.check(&target, is_dir)?;
        if self.lstat(&target)?.is_some() {
            return Err(error::exists(to));
        }
        if meta.file_type().is_symlink() {
            // The copy is a link too: only of one that stays inside.
            let resolved = self.canonical(&source.rel, from)?;
            self.deny(&resolved, false, from)?;
        }
        let bytes = if is_dir {
            if target.rel.starts_with(&source.rel) || target.resolved.starts_with(&source.resolved)
            {
                return Err(error::invalid(to, "is inside the folder being copied"));
            }
            self.scan(&source, true)?
        } else {
            meta.len()
        };
        self.require_room(bytes, to)?;
        let copied = self.copy_entry(
            &source.parent,
            &source.name,
            &target.parent,
            &target.name,
            &target.raw,
            0,
        );
        self.forget_usage();
        if let Err(e) = copied {
            let _ = remove_entry(&target.parent, &target.name);
            return Err(e);
        }
        self.describe(&target)
    }

    /// Copies `name` in `from` to `to_name` in `to`.
    fn copy_entry(
        &self,
        from: &Dir,
        name: &str,
        to: &Dir,
        to_name: &str,
        raw: &str,
        depth: usize,
    ) -> Result<(), FileError> {
        let meta = from.symlink_metadata(name).map_err(|e| io_error(&e, raw))?;
        let mode = meta.mode() & 0o777;
        match kind_of(&meta) {
            FileKind::File => {
                let mut input = from
                    .open_with(
                        name,
                        OpenOptions::new()
                            .read(true)
                            .follow(FollowSymlinks::No)
                            .custom_flags(libc::O_NONBLOCK),
                    )
                    .map_err(|e| io_error(&e, raw))?
                    .into_std();
                let output = to
                    .open_with(
                        to_name,
                        OpenOptions::new().write(true).create_new(true).mode(mode),
                    )
                    .map_err(|e| io_error(&e, raw))?;
                self.give_fd(&output, raw)?;
                let mut output = output.into_std();
                io::copy(&mut input, &mut output).map_err(|e| io_error(&e, raw))?;
            }
            FileKind::Directory => {
                if depth >= MAX_TREE_DEPTH {
                    return Err(too_deep(raw));
                }
                to.create_dir_with(to_name, DirBuilder::new().mode(mode | 0o700))
                    .map_err(|e| io_error(&e, raw))?;
                self.give(to, to_name, raw)?;
                let source = from
                    .open_dir_nofollow(name)
                    .map_err(|e| io_error(&e, raw))?;
                let target = to
                    .open_dir_nofollow(to_name)
                    .map_err(|e| io_error(&e, raw))?;
                for item in source.entries().map_err(|e| io_error(&e, raw))? {
                    let item = item.map_err(|e| io_error(&e, raw))?;
                    let Some(child) = item.file_name().to_str().map(str::to_owned) else {
                        continue;
                    };
                    self.copy_entry(&source, &child, &target, &child, raw, depth + 1)?;
                }
                set_mode(to, to_name, mode, false).map_err(|e| io_error(&e, raw))?;
            }
            FileKind::Symlink => {
                let link = rustix::fs::readlinkat(from, name, Vec::new())
                    .map_err(|e| io_error(&e.into(), raw))?;
                rustix::fs::symlinkat(link.as_c_str(), to, to_name)
                    .map_err(|e| io_error(&e.into(), raw))?;
                self.give(to, to_name, raw)?;
            }
            FileKind::Other => {}
        }
        Ok(())
    }

    /// Walks the directory at `at`: refuses it (`denied`) when the
    /// denylist covers an entry inside, and returns the bytes of its
    /// regular files (when `measure`; without it and without a denylist
    /// nothing is walked).
    fn scan(&self, at: &Located, measure: bool) -> Result<u64, FileError> {
        if !measure && self.denylist.is_empty() {
            return Ok(0);
        }
        let dir = at
            .parent
            .open_dir_nofollow(&at.name)
            .map_err(|e| io_error(&e, &at.raw))?;
        self.scan_dir(&dir, &at.rel, &at.resolved, &at.raw, 0)
    }

    fn scan_dir(
        &self,
        dir: &Dir,
        rel: &RelPath,
        resolved: &RelPath,
        raw: &str,
        depth: usize,
    ) -> Result<u64, FileError> {
        if depth >= MAX_TREE_DEPTH {
            return Err(too_deep(raw));
        }
        let mut bytes = 0u64;
        for item in dir.entries().map_err(|e| io_error(&e, raw))? {
            let item = item.map_err(|e| io_error(&e, raw))?;
            let Some(name) = item.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let Ok(meta) = dir.symlink_metadata(&name) else {
                continue;
            };
            let (child, child_resolved) = (rel.join(&name), resolved.join(&name));
            if self.denylist.denies(&child, meta.is_dir())
                || self.denylist.denies(&child_resolved, meta.is_dir())
            {
                let shown = child.display();
                return Err(FileError::at(
                    FileErrorCode::Denied,
                    raw,
                    format!(
                        "`{}` holds `{shown}`, which is on this game type's file denylist",
                        super::path::printable(raw)
                    ),
                ));
            }
            if meta.is_dir() {
                let sub = dir
                    .open_dir_nofollow(&name)
                    .map_err(|e| io_error(&e, raw))?;
                bytes = bytes.saturating_add(self.scan_dir(
                    &sub,
                    &child,
                    &child_resolved,
                    raw,
                    depth + 1,
                )?);
            } else if meta.is_file() {
                bytes = bytes.saturating_add(meta.len());
            }
        }
        Ok(bytes)
    }

    /// Deletes the entries at `paths` (directories with their contents,
    /// symbolic links themselves, never their targets). Every path is
    /// checked before any is deleted; paths where nothing is are skipped.
    /// Returns how many entries were removed.
    ///
    /// # Errors
    ///
    /// `denied` (a path, or an entry inside a directory to delete),
    /// `invalid-path` (the server's directory itself), `read-only`, and
    /// those of [`list`](Self::list).
    pub fn delete(&self, paths: &[String]) -> Result<u32, FileError> {
        let first = paths.first().map(String::as_str).unwrap_or("/");
        self.writable(first)?;
        let mut targets = Vec::with_capacity(paths.len());
        for path in paths {
            let at = self.locate(path)?;
            let Some(meta) = self.lstat(&at)? else {
                continue;
            };
            self.check(&at, meta.is_dir())?;
            if meta.is_dir() {
                self.scan(&at, false)?;
            }
            targets.push(at);
        }
        let mut count = 0u32;
        self.forget_usage();
        for at in targets {
            match remove_entry(&at.parent, &at.name) {
                Ok(()) => count += 1,
                // Removed with an earlier path (`a` and `a/b`).
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_error(&e, &at.raw)),
            }
        }
        Ok(count)
    }

    /// Removes every entry of the server's directory and keeps the
    /// directory: a reinstall's wipe. Each entry goes as it is (a symbolic
    /// link as a link, never what it points at), those the denylist covers
    /// too: emptying is the Agent's own step of a reinstall, not a user's
    /// operation. Returns how many entries it removed. Blocking.
    ///
    /// # Errors
    ///
    /// `read-only`, or `io` naming the first entry that could not be
    /// removed (those before it are gone).
    pub fn empty(&self) -> Result<u32, FileError> {
        self.writable("/")?;
        let mut names = Vec::new();
        for entry in self.root.entries().map_err(|e| io_error(&e, "/"))? {
            names.push(entry.map_err(|e| io_error(&e, "/"))?.file_name());
        }
        let mut count = 0u32;
        self.forget_usage();
        for name in names {
            let removed = match self.root.symlink_metadata(&name) {
                Ok(meta) if meta.is_dir() => self.root.remove_dir_all(&name),
                Ok(_) => self.root.remove_file(&name),
                Err(e) => Err(e),
            };
            match removed {
                Ok(()) => count += 1,
                // Gone meanwhile (the server's own process, say).
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_error(&e, &format!("/{}", name.to_string_lossy()))),
            }
        }
        Ok(count)
    }

    /// Sets the permission bits of the entry at `path` (following symbolic
    /// links that stay inside).
    ///
    /// # Errors
    ///
    /// `invalid-mode` for bits other than `0o777` (set-id, sticky, file
    /// type), `special-file`, `read-only`, and those of [`list`](Self::list).
    pub fn chmod(&self, path: &str, mode: u32) -> Result<FileEntry, FileError> {
        self.writable(path)?;
        if mode & !0o777 != 0 {
            return Err(FileError::at(
                FileErrorCode::InvalidMode,
                path,
                format!(
                    "mode {mode:#o} for `{}` has bits besides the permission bits 0o777 (set-user-id, set-group-id and sticky bits are refused)",
                    super::path::printable(path)
                ),
            ));
        }
        let rel = RelPath::parse(path)?;
        if rel.is_root() {
            set_mode(&self.root, ".", mode, false).map_err(|e| io_error(&e, path))?;
            return self.stat(path);
        }
        let at = self.locate(path)?;
        let target = self.followed_metadata(&at)?;
        self.check_followed(&at, target.is_dir())?;
        if !target.is_dir() && !target.is_file() {
            return Err(special(path));
        }
        set_mode(&self.root, at.rel.fs_path(), mode, true).map_err(|e| {
            if e.raw_os_error() == Some(libc::EPERM) {
                special(path)
            } else {
                io_error(&e, path)
            }
        })?;
        self.describe(&at)
    }
}

/// Sets the permission bits of `name` in `dir` (a file or a directory),
/// following a final symbolic link only when `follow` (and then only one
/// that stays beneath `dir`'s root). cap-std's directory handles are
/// `O_PATH`, which `fchmod` refuses, so the entry is opened for reading.
pub(crate) fn set_mode(
    dir: &Dir,
    name: impl AsRef<std::path::Path>,
    mode: u32,
    follow: bool,
) -> io::Result<()> {
    let handle = dir.open_with(
        name,
        OpenOptions::new()
            .read(true)
            .maybe_dir(true)
            .follow(if follow {
                FollowSymlinks::Yes
            } else {
                FollowSymlinks::No
            })
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY),
    )?;
    let meta = handle.metadata()?;
    if !meta.is_dir() && !meta.is_file() {
        return Err(io::Error::from_raw_os_error(libc::EPERM));
    }
    rustix::fs::fchmod(&handle, Mode::from_raw_mode(mode))?;
    Ok(())
}

/// Removes `name` in `dir`: a directory with its contents, anything else
/// (a symbolic link included) itself.
pub(crate) fn remove_entry(dir: &Dir, name: &str) -> io::Result<()> {
    if dir.symlink_metadata(name)?.is_dir() {
        dir.remove_dir_all(name)
    } else {
        dir.remove_file(name)
    }
}

fn is_a_directory(path: &str) -> FileError {
    FileError::at(
        FileErrorCode::IsADirectory,
        path,
        format!("`{}` is a folder, not a file", super::path::printable(path)),
    )
}

fn special(path: &str) -> FileError {
    FileError::at(
        FileErrorCode::SpecialFile,
        path,
        format!(
            "`{}` is a device, fifo or socket, which is never opened",
            super::path::printable(path)
        ),
    )
}

pub(crate) fn too_deep(path: &str) -> FileError {
    FileError::at(
        FileErrorCode::Io,
        path,
        format!(
            "`{}` nests folders more than {MAX_TREE_DEPTH} deep",
            super::path::printable(path)
        ),
    )
}
