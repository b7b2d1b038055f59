//! Extracting archives: zip, tar, tar.gz, tar.xz, tar.zst and 7z, told
//! apart by their first bytes.
//!
//! # What is refused
//!
//! An archive is refused whole (`archive-refused`, naming the entry) when
//! an entry has an absolute name, a `..` name, a name that is not UTF-8, or
//! nests deeper than [`MAX_TREE_DEPTH`](super::MAX_TREE_DEPTH); when it is
//! a symbolic or hard link (all links, wherever they point: the file
//! manager has no use for them, and a link that stays inside today can be
//! retargeted by the next archive); when it is a device, fifo or socket;
//! and when the archive crosses one of the [`ArchiveLimits`]: more bytes
//! written than [`MAX_EXTRACT_BYTES`] (or than the disk limit allows:
//! `disk-limit`), more entries than [`MAX_EXTRACT_ENTRIES`], or, once past
//! [`RATIO_GRACE_BYTES`], more than [`MAX_EXTRACT_RATIO`] bytes written per
//! byte of archive. An entry the denylist covers refuses it too (`denied`).
//! The limits are checked on the bytes actually decompressed, never on the
//! sizes an archive declares, which a hostile archive can fake. Decoders
//! allocate at most [`ARCHIVE_MEMORY_LIMIT_BYTES`] for their dictionaries.
//!
//! # Nothing partial stays
//!
//! Entries are written into a fresh staging directory
//! (`.cap-extract-<random>`) inside the destination, created through the
//! same confined directory handles as everything else. Only when the whole
//! archive has been read are the entries moved into the destination (files
//! replace files of the same name; folders merge into folders; a file where
//! the destination has a folder, or the reverse, refuses the whole archive
//! before anything moves). On any refusal or error the staging directory is
//! removed, and so is the destination if the extraction created it. The
//! staging directory lies in the server's directory, so what it holds
//! counts against the disk limit like any other file.
//!
//! # Restores
//!
//! [`ServerFiles::restore`] is the same extraction for a backup
//! (`crate::backups`): a tar.zst stream read from anywhere (the Agent's
//! backup directory, an S3 download), with the same bounds and the same
//! staging directory (in the server's directory itself), plus one step
//! between reading and moving: the caller checks the stream (its SHA-256)
//! and, with `truncate`, everything else in the server's directory is
//! removed. A refused or corrupt archive changes nothing.

use std::io::{self, BufReader, Read};

use cap_fs_ext::{DirExt, FollowSymlinks, OpenOptionsFollowExt};
use cap_protocol::files::{FileError, FileErrorCode};
use cap_std::fs::{Dir, DirBuilder, DirBuilderExt, OpenOptions, OpenOptionsExt};
use rustix::fs::Mode;

use super::ServerFiles;
use super::error::{self, io_error};
use super::ops::{DIR_MODE, FILE_MODE, MAX_TREE_DEPTH, set_mode};
use super::path::{MAX_NAME_BYTES, MAX_PATH_BYTES, RelPath, printable};

/// The most bytes one extraction writes (8 GiB), whatever the disk limit:
/// more than any game server's archive needs, little enough that a node
/// survives a bomb nobody set a disk limit against.
pub const MAX_EXTRACT_BYTES: u64 = 8 * 1024 * 1024 * 1024;

/// The most entries (files and folders) one archive may hold: modpacks
/// have thousands, not hundreds of thousands, and each entry costs inodes.
pub const MAX_EXTRACT_ENTRIES: u64 = 100_000;

/// The most bytes written per byte of archive: ordinary content
/// compresses 2 to 20 times, logs and sparse worlds up to about 100;
/// zip bombs do thousands.
pub const MAX_EXTRACT_RATIO: u64 = 200;

/// Bytes written before [`MAX_EXTRACT_RATIO`] applies, so that small
/// archives of very compressible files (an empty world, a config of
/// zeros) still extract.
pub const RATIO_GRACE_BYTES: u64 = 1024 * 1024;

/// The memory the xz, zstd and 7z decoders may take for their
/// dictionaries and windows (256 MiB: what `xz -9` and `zstd --long`
/// need, a tenth of a small node).
pub const ARCHIVE_MEMORY_LIMIT_BYTES: u64 = 256 * 1024 * 1024;

/// The bounds of one extraction (see the module docs); the default is the
/// constants above.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchiveLimits {
    /// The most bytes written.
    pub max_bytes: u64,
    /// The most entries.
    pub max_entries: u64,
    /// The most bytes written per byte of archive, past `ratio_grace_bytes`.
    pub max_ratio: u64,
    /// Bytes written before `max_ratio` applies.
    pub ratio_grace_bytes: u64,
}

impl Default for ArchiveLimits {
    fn default() -> Self {
        Self {
            max_bytes: MAX_EXTRACT_BYTES,
            max_entries: MAX_EXTRACT_ENTRIES,
            max_ratio: MAX_EXTRACT_RATIO,
            ratio_grace_bytes: RATIO_GRACE_BYTES,
        }
    }
}

/// The archive formats the Agent reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Zip,
    Tar,
    TarGz,
    TarXz,
    TarZst,
    SevenZ,
}

/// The format of the archive starting with `head`.
fn detect(head: &[u8]) -> Option<Format> {
    const MAGIC: &[(&[u8], Format)] = &[
        (b"PK\x03\x04", Format::Zip),
        // An empty zip: only the end of its central directory.
        (b"PK\x05\x06", Format::Zip),
        (b"\x1f\x8b", Format::TarGz),
        (b"\xfd7zXZ\x00", Format::TarXz),
        (b"\x28\xb5\x2f\xfd", Format::TarZst),
        (b"7z\xbc\xaf\x27\x1c", Format::SevenZ),
    ];
    if let Some((_, format)) = MAGIC.iter().find(|(magic, _)| head.starts_with(magic)) {
        return Some(*format);
    }
    // POSIX (`ustar\0`) and GNU (`ustar `) headers.
    (head.get(257..262) == Some(b"ustar")).then_some(Format::Tar)
}

/// `st_mode` file types, as zip and 7z store them.
const S_IFMT: u32 = 0o170_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFREG: u32 = 0o100_000;
const S_IFDIR: u32 = 0o040_000;

/// 7z's attribute bits: a Windows reparse point (a link), and "the high 16
/// bits are a Unix mode".
const SEVENZ_REPARSE_POINT: u32 = 0x400;
const SEVENZ_UNIX_EXTENSION: u32 = 0x8000;

impl ServerFiles {
    /// Extracts the archive at `path` into the directory `destination`
    /// (created if missing). Returns the entries and the bytes written.
    /// See the module docs for what is refused and how nothing partial
    /// stays.
    ///
    /// # Errors
    ///
    /// `bad-archive` (no format the Agent reads, or corrupt),
    /// `archive-refused`, `disk-limit`, `denied`, `already-exists` (a file
    /// where the destination has a folder, or the reverse), `read-only`,
    /// `is-a-directory`, `special-file`, `not-a-directory`, and those of
    /// [`list`](Self::list).
    pub fn decompress(&self, path: &str, destination: &str) -> Result<(u64, u64), FileError> {
        self.writable(destination)?;
        let at = self.locate(path)?;
        let target = self.followed_metadata(&at)?;
        self.check_followed(&at, target.is_dir())?;
        if !target.is_file() {
            let code = if target.is_dir() {
                FileErrorCode::IsADirectory
            } else {
                FileErrorCode::SpecialFile
            };
            return Err(FileError::at(
                code,
                path,
                format!("`{}` is not a file, so not an archive", printable(path)),
            ));
        }
        let file = self
            .root
            .open_with(
                at.rel.fs_path(),
                OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY),
            )
            .map_err(|e| io_error(&e, path))?
            .into_std();
        let archive_len = file.metadata().map_err(|e| io_error(&e, path))?.len();

        let dest = RelPath::parse(destination)?;
        let mut prefix = RelPath::root();
        for name in dest.names() {
            prefix = prefix.join(name);
            self.deny(&prefix, true, destination)?;
        }
        let headroom = self.headroom();
        let (dest_dir, created) = self.make_dirs(&dest, destination, false)?;
        let dest_resolved = match self.canonical(&dest, destination) {
            Ok(resolved) => resolved,
            Err(e) => {
                self.remove_created(created);
                return Err(e);
            }
        };
        let staging_name = format!(".cap-extract-{}", uuid::Uuid::new_v4().simple());

        let mut extractor = Extractor {
            files: self,
            staging: None,
            dest,
            dest_resolved,
            archive: path,
            archive_len,
            limits: self.limits,
            max_bytes: headroom.map_or(self.limits.max_bytes, |room| {
                room.min(self.limits.max_bytes)
            }),
            disk_bound: headroom.is_some_and(|room| room < self.limits.max_bytes),
            entries: 0,
            bytes: 0,
        };
        let outcome = dest_dir
            .create_dir_with(&staging_name, DirBuilder::new().mode(0o700))
            .and_then(|()| dest_dir.open_dir_nofollow(&staging_name))
            .map_err(|e| io_error(&e, destination))
            .and_then(|staging| {
                extractor.staging = Some(staging);
                let format = detect_format(&file, path)?;
                extractor.run(format, file)?;
                let staging = extractor
                    .staging
                    .take()
                    .ok_or_else(|| bad(path, "lost its staging"))?;
                let root = extractor.dest.clone();
                conflicts(&staging, &dest_dir, &root, 0)?;
                merge(&staging, &dest_dir, &root)
            });
        let cleaned = match dest_dir.remove_dir_all(&staging_name) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
        self.forget_usage();
        match outcome {
            Ok(()) => {
                cleaned.map_err(|e| io_error(&e, destination))?;
                Ok((extractor.entries, extractor.bytes))
            }
            Err(e) => {
                self.remove_created(created);
                Err(e)
            }
        }
    }

    /// Restores a backup: extracts the tar.zst stream `archive`
    /// (`archive_len` bytes, `label` naming it in messages) into the
    /// server's directory with the bounds and the staging of
    /// [`decompress`](Self::decompress), then calls `verify` with the
    /// stream (read up to where the tar ended) before anything outside the
    /// staging directory changes: a `verify` that fails (a digest that
    /// does not match) leaves the server's files as they were. With
    /// `truncate`, every entry of the server's directory is removed once
    /// the archive is verified, and the disk limit bounds the archive
    /// alone rather than the archive on top of the files there.
    ///
    /// The denylist of the scope applies to the archive's entries as it
    /// does to any extraction; open the files with an empty one to restore
    /// denied files too.
    ///
    /// # Errors
    ///
    /// Those of [`decompress`](Self::decompress), and whatever `verify`
    /// returns.
    pub fn restore<R: Read>(
        &self,
        archive: &mut R,
        archive_len: u64,
        label: &str,
        truncate: bool,
        verify: impl FnOnce(&mut R) -> Result<(), FileError>,
    ) -> Result<(u64, u64), FileError> {
        self.writable("/")?;
        let headroom = if truncate {
            (self.scope.disk_mb > 0).then(|| self.scope.disk_mb.saturating_mul(1024 * 1024))
        } else {
            self.headroom()
        };
        let staging_name = format!(".cap-extract-{}", uuid::Uuid::new_v4().simple());
        let mut extractor = Extractor {
            files: self,
            staging: None,
            dest: RelPath::root(),
            dest_resolved: RelPath::root(),
            archive: label,
            archive_len,
            limits: self.limits,
            max_bytes: headroom.map_or(self.limits.max_bytes, |room| {
                room.min(self.limits.max_bytes)
            }),
            disk_bound: headroom.is_some_and(|room| room < self.limits.max_bytes),
            entries: 0,
            bytes: 0,
        };
        let root = &self.root;
        let outcome = root
            .create_dir_with(&staging_name, DirBuilder::new().mode(0o700))
            .and_then(|()| root.open_dir_nofollow(&staging_name))
            .map_err(|e| io_error(&e, "/"))
            .and_then(|staging| {
                extractor.staging = Some(staging);
                extractor.tar_zst(BufReader::with_capacity(256 * 1024, &mut *archive))?;
                verify(archive)?;
                let staging = extractor
                    .staging
                    .take()
                    .ok_or_else(|| bad(label, "lost its staging"))?;
                if truncate {
                    clear(root, &staging_name)?;
                }
                conflicts(&staging, root, &RelPath::root(), 0)?;
                merge(&staging, root, &RelPath::root())
            });
        let cleaned = match root.remove_dir_all(&staging_name) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
        self.forget_usage();
        outcome?;
        cleaned.map_err(|e| io_error(&e, "/"))?;
        Ok((extractor.entries, extractor.bytes))
    }

    /// Removes the outermost directory an extraction created, after a
    /// failure.
    fn remove_created(&self, created: Option<RelPath>) {
        if let Some(created) = created {
            let _ = self.root.remove_dir_all(created.fs_path());
        }
    }
}

/// The format of the archive `file` (at `path`), by its first bytes,
/// leaving the file at offset 0.
fn detect_format(file: &std::fs::File, path: &str) -> Result<Format, FileError> {
    use std::os::unix::fs::FileExt;
    let mut head = [0u8; 512];
    let mut filled = 0;
    while filled < head.len() {
        match file.read_at(&mut head[filled..], filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_error(&e, path)),
        }
    }
    detect(&head[..filled]).ok_or_else(|| {
        bad(
            path,
            "is not an archive the Agent reads (zip, tar, tar.gz, tar.xz, tar.zst, 7z)",
        )
    })
}

/// The archive at `path` cannot be read.
fn bad(path: &str, why: &str) -> FileError {
    FileError::at(
        FileErrorCode::BadArchive,
        path,
        format!("`{}` {why}", printable(path)),
    )
}

/// One extraction's state: where it writes, what it has written.
struct Extractor<'a> {
    files: &'a ServerFiles,
    /// The staging directory (inside the destination).
    staging: Option<Dir>,
    /// The destination, as requested and as resolved (for the denylist).
    dest: RelPath,
    dest_resolved: RelPath,
    /// The archive's path, as requested.
    archive: &'a str,
    archive_len: u64,
    limits: ArchiveLimits,
    /// The bytes this extraction may write.
    max_bytes: u64,
    /// Whether `max_bytes` is the disk limit's headroom.
    disk_bound: bool,
    entries: u64,
    bytes: u64,
}

impl Extractor<'_> {
    fn run(&mut self, format: Format, file: std::fs::File) -> Result<(), FileError> {
        let memory_kb = ARCHIVE_MEMORY_LIMIT_BYTES / 1024;
        let reader = BufReader::new(file);
        match format {
            Format::Zip => self.zip(reader),
            Format::SevenZ => self.seven_z(reader),
            Format::Tar => self.tar(reader),
            Format::TarGz => self.tar(flate2::read::MultiGzDecoder::new(reader)),
            Format::TarXz => self.tar(lzma_rust2::XzReader::new_mem_limit(
                reader,
                true,
                u32::try_from(memory_kb).unwrap_or(u32::MAX),
            )),
            Format::TarZst => self.tar_zst(reader),
        }
    }

    /// A tar stream compressed with zstd, its window bounded by
    /// [`ARCHIVE_MEMORY_LIMIT_BYTES`].
    fn tar_zst(&mut self, reader: impl Read) -> Result<(), FileError> {
        let decoder = ruzstd::decoding::StreamingDecoder::new_with_max_window_size(
            reader,
            ARCHIVE_MEMORY_LIMIT_BYTES,
        )
        .map_err(|e| self.corrupt(&e.to_string()))?;
        self.tar(decoder)
    }

    fn zip(&mut self, reader: BufReader<std::fs::File>) -> Result<(), FileError> {
        let mut archive = zip::ZipArchive::new(reader).map_err(|e| self.corrupt(&e.to_string()))?;
        self.expect_entries(archive.len() as u64)?;
        for index in 0..archive.len() {
            let mut entry = archive
                .by_index(index)
                .map_err(|e| self.corrupt(&e.to_string()))?;
            let name = entry.name_raw().to_vec();
            let mode = entry.unix_mode();
            self.refuse_special(&name, mode.map(|m| m & S_IFMT))?;
            if entry.is_symlink() {
                return Err(self.refuse(&name, "is a symbolic link; links in archives are refused"));
            }
            if entry.is_dir() {
                self.directory(&name, mode)?;
            } else {
                self.file(&name, mode, &mut entry)?;
            }
        }
        Ok(())
    }

    fn tar(&mut self, reader: impl Read) -> Result<(), FileError> {
        use tar::EntryType;
        let mut archive = tar::Archive::new(reader);
        let entries = archive
            .entries()
            .map_err(|e| self.corrupt(&e.to_string()))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| self.corrupt(&e.to_string()))?;
            let name = entry.path_bytes().into_owned();
            let mode = entry.header().mode().ok();
            match entry.header().entry_type() {
                EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                    self.file(&name, mode, &mut entry)?;
                }
                EntryType::Directory => self.directory(&name, mode)?,
                EntryType::Symlink => {
                    return Err(
                        self.refuse(&name, "is a symbolic link; links in archives are refused")
                    );
                }
                EntryType::Link => {
                    return Err(self.refuse(&name, "is a hard link; links in archives are refused"));
                }
                EntryType::Char | EntryType::Block | EntryType::Fifo => {
                    return Err(self.refuse(&name, "is a device or a fifo"));
                }
                // Metadata the tar reader applies to the entries it
                // describes.
                EntryType::XGlobalHeader
                | EntryType::XHeader
                | EntryType::GNULongName
                | EntryType::GNULongLink => {}
                other => {
                    return Err(self.refuse(
                        &name,
                        &format!(
                            "has the entry type {:?}, which the Agent does not extract",
                            other.as_byte() as char
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    fn seven_z(&mut self, reader: BufReader<std::fs::File>) -> Result<(), FileError> {
        let memory_kb = usize::try_from(ARCHIVE_MEMORY_LIMIT_BYTES / 1024).unwrap_or(usize::MAX);
        let mut archive = sevenz_rust2::ArchiveReader::new_with_memory_limit(
            reader,
            sevenz_rust2::Password::empty(),
            memory_kb,
        )
        .map_err(|e| self.corrupt(&e.to_string()))?;
        archive.set_thread_count(1);
        self.expect_entries(archive.archive().files.len() as u64)?;
        let mut refused = None;
        let outcome =
            archive.for_each_entries(|entry, data| match self.seven_z_entry(entry, data) {
                Ok(()) => Ok(true),
                Err(e) => {
                    refused = Some(e);
                    Err(sevenz_rust2::Error::Other("refused".into()))
                }
            });
        if let Some(e) = refused {
            return Err(e);
        }
        outcome.map_err(|e| self.corrupt(&e.to_string()))
    }

    fn seven_z_entry(
        &mut self,
        entry: &sevenz_rust2::ArchiveEntry,
        data: &mut dyn Read,
    ) -> Result<(), FileError> {
        let name = entry.name().as_bytes();
        if entry.is_anti_item() {
            return Ok(());
        }
        let attributes = entry.windows_attributes();
        let mode = (entry.has_windows_attributes && attributes & SEVENZ_UNIX_EXTENSION != 0)
            .then_some(attributes >> 16);
        if entry.has_windows_attributes && attributes & SEVENZ_REPARSE_POINT != 0 {
            return Err(self.refuse(
                name,
                "is a link (a reparse point); links in archives are refused",
            ));
        }
        self.refuse_special(name, mode.map(|m| m & S_IFMT))?;
        if entry.is_directory() {
            self.directory(name, mode)
        } else {
            self.file(name, mode, data)
        }
    }

    /// Refuses links and devices by their `st_mode` type bits.
    fn refuse_special(&self, name: &[u8], file_type: Option<u32>) -> Result<(), FileError> {
        match file_type {
            None | Some(0 | S_IFREG | S_IFDIR) => Ok(()),
            Some(S_IFLNK) => {
                Err(self.refuse(name, "is a symbolic link; links in archives are refused"))
            }
            Some(_) => Err(self.refuse(name, "is a device, a fifo or a socket")),
        }
    }

    /// Refuses an archive that says it has too many entries.
    fn expect_entries(&self, count: u64) -> Result<(), FileError> {
        if count > self.limits.max_entries {
            return Err(FileError::at(
                FileErrorCode::ArchiveRefused,
                self.archive,
                format!(
                    "the archive `{}` was refused: it has {count} entries, more than the {} allowed",
                    printable(self.archive),
                    self.limits.max_entries
                ),
            ));
        }
        Ok(())
    }

    /// The archive was refused because of the entry `name`.
    fn refuse(&self, name: &[u8], why: &str) -> FileError {
        FileError::at(
            FileErrorCode::ArchiveRefused,
            self.archive,
            format!(
                "the archive `{}` was refused: its entry `{}` {why}",
                printable(self.archive),
                printable(&String::from_utf8_lossy(name))
            ),
        )
    }

    /// The archive cannot be read.
    fn corrupt(&self, why: &str) -> FileError {
        bad(
            self.archive,
            &format!("cannot be read as an archive: {why}"),
        )
    }

    /// Counts an entry and checks its name: `None` for entries that name
    /// the destination itself (`./`).
    fn admit(&mut self, raw: &[u8], is_dir: bool) -> Result<Option<RelPath>, FileError> {
        self.entries += 1;
        if self.entries > self.limits.max_entries {
            return Err(FileError::at(
                FileErrorCode::ArchiveRefused,
                self.archive,
                format!(
                    "the archive `{}` was refused: it has more than {} entries",
                    printable(self.archive),
                    self.limits.max_entries
                ),
            ));
        }
        let name = std::str::from_utf8(raw)
            .map_err(|_| self.refuse(raw, "has a name that is not UTF-8"))?;
        if name.contains('\0') {
            return Err(self.refuse(raw, "has a NUL byte in its name"));
        }
        if name.starts_with('/') {
            return Err(self.refuse(raw, "has an absolute path"));
        }
        let mut names = Vec::new();
        for part in name.split('/') {
            match part {
                "" | "." => {}
                ".." => return Err(self.refuse(raw, "climbs out of the destination with `..`")),
                _ if part.len() > MAX_NAME_BYTES => {
                    return Err(self.refuse(
                        raw,
                        &format!("has a name longer than {MAX_NAME_BYTES} bytes"),
                    ));
                }
                _ => names.push(part.to_owned()),
            }
        }
        if names.len() > MAX_TREE_DEPTH {
            return Err(self.refuse(
                raw,
                &format!("nests more than {MAX_TREE_DEPTH} folders deep"),
            ));
        }
        let rel = RelPath::from_names(names);
        if rel.is_root() {
            self.entries -= 1;
            return Ok(None);
        }
        let full = self.dest.join_all(&rel);
        if full.display().len() > MAX_PATH_BYTES {
            return Err(self.refuse(
                raw,
                &format!("has a path longer than {MAX_PATH_BYTES} bytes"),
            ));
        }
        let files = self.files;
        if files.denylist.denies(&full, is_dir)
            || files
                .denylist
                .denies(&self.dest_resolved.join_all(&rel), is_dir)
        {
            return Err(FileError::at(
                FileErrorCode::Denied,
                self.archive,
                format!(
                    "the archive `{}` was refused: its entry `{}` would write `{}`, which is on this game type's file denylist",
                    printable(self.archive),
                    printable(name),
                    printable(&full.display())
                ),
            ));
        }
        Ok(Some(rel))
    }

    /// The staging directory of `rel`, created (with its parents) if
    /// missing.
    fn make_dir(&self, rel: &RelPath) -> Result<Dir, FileError> {
        let shown = self.dest.join_all(rel).display();
        let staging = self
            .staging
            .as_ref()
            .ok_or_else(|| bad(self.archive, "lost its staging"))?;
        let mut dir = staging.try_clone().map_err(|e| io_error(&e, &shown))?;
        for name in rel.names() {
            match dir.create_dir_with(name, DirBuilder::new().mode(DIR_MODE)) {
                Ok(()) => self.files.give(&dir, name, &shown)?,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_error(&e, &shown)),
            }
            dir = dir
                .open_dir_nofollow(name)
                .map_err(|e| io_error(&e, &shown))?;
        }
        Ok(dir)
    }

    fn directory(&mut self, raw: &[u8], mode: Option<u32>) -> Result<(), FileError> {
        let Some(rel) = self.admit(raw, true)? else {
            return Ok(());
        };
        let Some((parent, name)) = rel.split_last() else {
            return Ok(());
        };
        let dir = self.make_dir(&parent)?;
        let shown = self.dest.join_all(&rel).display();
        match dir.create_dir_with(name, DirBuilder::new().mode(DIR_MODE)) {
            Ok(()) => self.files.give(&dir, name, &shown)?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_error(&e, &shown)),
        }
        let mode = mode.map_or(DIR_MODE, |m| (m & 0o777) | 0o700);
        set_mode(&dir, name, mode, false).map_err(|e| io_error(&e, &shown))
    }

    fn file(
        &mut self,
        raw: &[u8],
        mode: Option<u32>,
        data: &mut dyn Read,
    ) -> Result<(), FileError> {
        let Some(rel) = self.admit(raw, false)? else {
            return Err(self.refuse(raw, "is a file without a name"));
        };
        let shown = self.dest.join_all(&rel).display();
        let Some((parent, name)) = rel.split_last() else {
            return Err(self.refuse(raw, "is a file without a name"));
        };
        let dir = self.make_dir(&parent)?;
        let out = dir
            .open_with(
                name,
                OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .follow(FollowSymlinks::No)
                    .mode(0o600),
            )
            .map_err(|e| io_error(&e, &shown))?;
        self.files.give_fd(&out, &shown)?;
        let mode = mode.map_or(FILE_MODE, |m| match m & 0o777 {
            0 => FILE_MODE,
            bits => bits,
        });
        let mut out = out.into_std();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match data.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(self.corrupt(&format!(
                        "entry `{}`: {e}",
                        printable(&String::from_utf8_lossy(raw))
                    )));
                }
            };
            self.bytes = self.bytes.saturating_add(n as u64);
            if self.bytes > self.max_bytes {
                return Err(if self.disk_bound {
                    error::disk_limit(self.archive, self.files.scope.disk_mb)
                } else {
                    FileError::at(
                        FileErrorCode::ArchiveRefused,
                        self.archive,
                        format!(
                            "the archive `{}` was refused: it unpacks to more than {} bytes",
                            printable(self.archive),
                            self.max_bytes
                        ),
                    )
                });
            }
            if self.bytes > self.limits.ratio_grace_bytes
                && self.bytes / self.archive_len.max(1) > self.limits.max_ratio
            {
                return Err(FileError::at(
                    FileErrorCode::ArchiveRefused,
                    self.archive,
                    format!(
                        "the archive `{}` was refused: it unpacks to more than {} times its size (at `{}`), like a zip bomb",
                        printable(self.archive),
                        self.limits.max_ratio,
                        printable(&String::from_utf8_lossy(raw))
                    ),
                ));
            }
            io::Write::write_all(&mut out, &buf[..n]).map_err(|e| io_error(&e, &shown))?;
        }
        rustix::fs::fchmod(&out, Mode::from_raw_mode(mode)).map_err(|e| io_error(&e.into(), &shown))
    }
}

/// Removes every entry of `dir` but `keep`, never following links (a
/// link is removed, not what it points to).
fn clear(dir: &Dir, keep: &str) -> Result<(), FileError> {
    for item in dir.entries().map_err(|e| io_error(&e, "/"))? {
        let item = item.map_err(|e| io_error(&e, "/"))?;
        let name = item.file_name();
        if name.to_str() == Some(keep) {
            continue;
        }
        let shown = format!("/{}", name.to_string_lossy());
        let is_dir = item.file_type().map_err(|e| io_error(&e, &shown))?.is_dir();
        if is_dir {
            dir.remove_dir_all(&name)
        } else {
            dir.remove_file(&name)
        }
        .map_err(|e| {
            FileError::at(
                FileErrorCode::Io,
                &shown,
                format!(
                    "emptying the server's directory before the restore failed at `{}` ({e}); entries removed before it are gone, the backup was not put in place",
                    printable(&shown)
                ),
            )
        })?;
    }
    Ok(())
}

/// Refuses the move of the staged tree into `dest` when a staged folder
/// meets a destination entry that is not a folder, or a staged file meets
/// a folder, before anything moves.
fn conflicts(staged: &Dir, dest: &Dir, at: &RelPath, depth: usize) -> Result<(), FileError> {
    let shown = at.display();
    for item in staged.entries().map_err(|e| io_error(&e, &shown))? {
        let item = item.map_err(|e| io_error(&e, &shown))?;
        let Some(name) = item.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let path = at.join(&name);
        let is_dir = item
            .file_type()
            .map_err(|e| io_error(&e, &path.display()))?
            .is_dir();
        let existing = match dest.symlink_metadata(&name) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_error(&e, &path.display())),
        };
        match (is_dir, existing.is_dir()) {
            (true, true) => {
                if depth >= MAX_TREE_DEPTH {
                    return Err(super::ops::too_deep(&path.display()));
                }
                let sub_staged = staged
                    .open_dir_nofollow(&name)
                    .map_err(|e| io_error(&e, &path.display()))?;
                let sub_dest = dest
                    .open_dir_nofollow(&name)
                    .map_err(|e| io_error(&e, &path.display()))?;
                conflicts(&sub_staged, &sub_dest, &path, depth + 1)?;
            }
            (false, false) => {}
            (staged_dir, _) => {
                let (archive_has, there_is) = if staged_dir {
                    ("a folder", "something else")
                } else {
                    ("a file", "a folder")
                };
                return Err(FileError::at(
                    FileErrorCode::AlreadyExists,
                    &path.display(),
                    format!(
                        "the archive has {archive_has} at `{}`, where there is {there_is}; nothing was extracted",
                        printable(&path.display())
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Moves the staged tree into `dest`: files replace files, folders merge.
fn merge(staged: &Dir, dest: &Dir, at: &RelPath) -> Result<(), FileError> {
    let shown = at.display();
    for item in staged.entries().map_err(|e| io_error(&e, &shown))? {
        let item = item.map_err(|e| io_error(&e, &shown))?;
        let Some(name) = item.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let path = at.join(&name);
        let is_dir = item
            .file_type()
            .map_err(|e| io_error(&e, &path.display()))?
            .is_dir();
        let into_existing_dir =
            is_dir && dest.symlink_metadata(&name).is_ok_and(|meta| meta.is_dir());
        if into_existing_dir {
            let sub_staged = staged
                .open_dir_nofollow(&name)
                .map_err(|e| io_error(&e, &path.display()))?;
            let sub_dest = dest
                .open_dir_nofollow(&name)
                .map_err(|e| io_error(&e, &path.display()))?;
            merge(&sub_staged, &sub_dest, &path)?;
        } else {
            staged
                .rename(&name, dest, &name)
                .map_err(|e| io_error(&e, &path.display()))?;
        }
    }
    Ok(())
}
