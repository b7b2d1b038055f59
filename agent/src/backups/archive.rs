//! Writing a backup archive: the server's directory as a tar stream
//! compressed with zstd, hashed as it is written.
//!
//! The walk goes through [`cap_std`] handles opened beneath the server's
//! directory and never follows a symbolic link: links are left out, as are
//! fifos, sockets and devices (the restore refuses archives holding them,
//! like every extraction, so storing them would make a backup that cannot
//! come back). Directories and regular files keep their permission bits
//! and modification times; owners are not stored (a restore gives every
//! file to the server's owner). A file that changes size while it is read
//! is stored at the size its header announced (cut, or padded with
//! zeros), so a running server cannot break the stream.

use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use cap_fs_ext::{DirExt, FollowSymlinks, OpenOptionsFollowExt};
use cap_std::fs::{Dir, Metadata, MetadataExt, OpenOptions, OpenOptionsExt};
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use sha2::{Digest as _, Sha256};

use crate::files::MAX_TREE_DEPTH;

/// The zstd level backups are written with (what `zstd -3` uses: fast,
/// and within a few percent of the ratios of much slower levels).
pub const ZSTD_LEVEL: i32 = 3;
/// zstd's compression workers per backup: one, beside the thread that
/// reads and tars, so a backup takes at most two cores.
pub const ZSTD_WORKERS: u32 = 1;

/// Names the Agent's own extraction leaves while it runs; never backed up.
const STAGING_PREFIX: &str = ".cap-extract-";

/// Why an archive could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// An ignore line does not compile.
    #[error("the ignore pattern `{pattern}` is invalid: {reason}")]
    Ignore {
        /// The line.
        pattern: String,
        /// Why.
        reason: String,
    },
    /// Reading the server's files or writing the archive failed.
    #[error("{0}")]
    Io(String),
}

/// `.pteroignore` lines compiled: paths relative to the server's
/// directory that a backup leaves out.
#[derive(Debug, Clone)]
pub struct IgnoreList(Gitignore);

impl IgnoreList {
    /// Compiles `lines` (`.gitignore` syntax: `*.log`, `/cache/`,
    /// `!keep.log`; blank lines and `#` comments are skipped).
    ///
    /// # Errors
    ///
    /// [`ArchiveError::Ignore`] naming the first line that does not compile.
    pub fn new(lines: &[String]) -> Result<Self, ArchiveError> {
        let mut builder = GitignoreBuilder::new("/");
        for line in lines {
            builder
                .add_line(None, line)
                .map_err(|e| ArchiveError::Ignore {
                    pattern: line.clone(),
                    reason: e.to_string(),
                })?;
        }
        let compiled = builder.build().map_err(|e| ArchiveError::Ignore {
            pattern: lines.join("\n"),
            reason: e.to_string(),
        })?;
        Ok(Self(compiled))
    }

    fn ignores(&self, relative: &str, is_dir: bool) -> bool {
        self.0
            .matched_path_or_any_parents(relative, is_dir)
            .is_ignore()
    }
}

/// A writer that hashes and counts what passes through it.
#[derive(Debug)]
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> HashingWriter<W> {
    /// Hashes what goes to `inner`.
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// The writer, the lowercase hex SHA-256 and the count of the bytes
    /// written.
    pub fn finish(self) -> (W, String, u64) {
        (self.inner, hex::encode(self.hasher.finalize()), self.bytes)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes and counts what is read through it.
#[derive(Debug)]
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
}

impl<R: Read> HashingReader<R> {
    /// Hashes what is read from `inner`.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// Reads what is left, then answers the lowercase hex SHA-256 and the
    /// count of every byte read.
    ///
    /// # Errors
    ///
    /// Reading the rest failed.
    pub fn drain(&mut self) -> io::Result<(String, u64)> {
        io::copy(self, &mut io::sink())?;
        Ok((hex::encode(self.hasher.clone().finalize()), self.bytes))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// What an archive holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Written {
    /// Files stored.
    pub files: u64,
    /// Directories stored.
    pub directories: u64,
    /// Entries left out: ignored, links, special files.
    pub skipped: u64,
}

/// Writes the directory `server_dir` as tar.zst to `out`, leaving out what
/// `ignore` covers. Blocking.
///
/// # Errors
///
/// [`ArchiveError::Io`] naming the path that failed.
pub fn write_archive(
    server_dir: &Path,
    ignore: &IgnoreList,
    out: impl Write,
) -> Result<Written, ArchiveError> {
    write_archive_counting(server_dir, ignore, out, &AtomicU64::new(0))
}

/// [`write_archive`], adding the bytes of the tar stream (before
/// compression: the files' contents and their headers) to `tarred` as it
/// goes, for a progress display.
///
/// # Errors
///
/// As [`write_archive`].
pub fn write_archive_counting(
    server_dir: &Path,
    ignore: &IgnoreList,
    out: impl Write,
    tarred: &AtomicU64,
) -> Result<Written, ArchiveError> {
    let io = |what: &str, e: io::Error| ArchiveError::Io(format!("{what}: {e}"));
    let root = Dir::open_ambient_dir(server_dir, cap_std::ambient_authority())
        .map_err(|e| io("opening the server's directory", e))?;
    let mut encoder =
        zstd::stream::write::Encoder::new(out, ZSTD_LEVEL).map_err(|e| io("starting zstd", e))?;
    // One worker compresses while this thread walks, reads and tars (and
    // the writer hashes): `zstd -T1`'s split, same format.
    encoder
        .multithread(ZSTD_WORKERS)
        .map_err(|e| io("starting zstd's worker", e))?;
    let mut builder = tar::Builder::new(Counting {
        inner: encoder,
        count: tarred,
    });
    let mut walk = Walk {
        ignore,
        builder: &mut builder,
        written: Written::default(),
    };
    walk.directory(&root, "", 0)?;
    let written = walk.written;
    let encoder = builder
        .into_inner()
        .map_err(|e| io("finishing the tar stream", e))?
        .inner;
    let mut out = encoder
        .finish()
        .map_err(|e| io("finishing the zstd stream", e))?;
    out.flush().map_err(|e| io("writing the archive", e))?;
    Ok(written)
}

/// Counts what passes into `inner`.
struct Counting<'a, W> {
    inner: W,
    count: &'a AtomicU64,
}

impl<W: Write> Write for Counting<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

struct Walk<'a, W: Write> {
    ignore: &'a IgnoreList,
    builder: &'a mut tar::Builder<W>,
    written: Written,
}

impl<W: Write> Walk<'_, W> {
    /// Stores the entries of `dir` (at `prefix`, `""` for the server's
    /// directory), sorted by name so that equal trees make equal archives.
    fn directory(&mut self, dir: &Dir, prefix: &str, depth: usize) -> Result<(), ArchiveError> {
        let shown = if prefix.is_empty() { "/" } else { prefix };
        let failed = |e: io::Error| ArchiveError::Io(format!("reading `{shown}` failed: {e}"));
        if depth > MAX_TREE_DEPTH {
            return Err(ArchiveError::Io(format!(
                "`{shown}` nests more than {MAX_TREE_DEPTH} folders deep"
            )));
        }
        let mut names = Vec::new();
        for item in dir.entries().map_err(failed)? {
            let item = item.map_err(failed)?;
            match item.file_name().into_string() {
                Ok(name) => names.push(name),
                // A name that is not UTF-8 cannot be restored by the
                // extraction (it refuses such names): left out.
                Err(_) => self.written.skipped += 1,
            }
        }
        names.sort();
        for name in names {
            if depth == 0 && name.starts_with(STAGING_PREFIX) {
                continue;
            }
            let relative = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}/{name}")
            };
            let failed =
                |e: io::Error| ArchiveError::Io(format!("reading `/{relative}` failed: {e}"));
            let meta = match dir.symlink_metadata(&name) {
                Ok(meta) => meta,
                // Removed while we walked: nothing to store.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(failed(e)),
            };
            let is_dir = meta.is_dir();
            if self.ignore.ignores(&relative, is_dir) {
                self.written.skipped += 1;
                continue;
            }
            if is_dir {
                let sub = match dir.open_dir_nofollow(&name) {
                    Ok(sub) => sub,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(failed(e)),
                };
                self.append(&relative, &meta, tar::EntryType::Directory, io::empty())?;
                self.written.directories += 1;
                self.directory(&sub, &relative, depth + 1)?;
            } else if meta.is_file() {
                let file = match dir.open_with(
                    &name,
                    OpenOptions::new()
                        .read(true)
                        .follow(FollowSymlinks::No)
                        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY),
                ) {
                    Ok(file) => file,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(failed(e)),
                };
                let len = meta.len();
                let data = file.take(len).chain(io::repeat(0)).take(len);
                self.append(&relative, &meta, tar::EntryType::Regular, data)?;
                self.written.files += 1;
            } else {
                // Symbolic links, fifos, sockets, devices.
                self.written.skipped += 1;
            }
        }
        Ok(())
    }

    fn append(
        &mut self,
        relative: &str,
        meta: &Metadata,
        kind: tar::EntryType,
        data: impl Read,
    ) -> Result<(), ArchiveError> {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_size(if kind == tar::EntryType::Regular {
            meta.len()
        } else {
            0
        });
        header.set_mode(meta.mode() & 0o777);
        header.set_mtime(u64::try_from(meta.mtime()).unwrap_or(0));
        let name = if kind == tar::EntryType::Directory {
            format!("{relative}/")
        } else {
            relative.to_owned()
        };
        self.builder
            .append_data(&mut header, name, data)
            .map_err(|e| ArchiveError::Io(format!("archiving `/{relative}` failed: {e}")))
    }
}
