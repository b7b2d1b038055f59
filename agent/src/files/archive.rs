//! Writing archives: entries of one directory into a `.tar.gz` or `.zip`
//! beside them.
//!
//! The walk never follows a symbolic link: links, fifos, sockets and
//! devices are left out (following a link could loop or leave the tree,
//! and storing one would make an archive the Agent's own extraction
//! refuses). Entries the denylist covers are refused when named and left
//! out when found inside a named directory. The archive's bytes count
//! against the disk limit as they are written; crossing it stops the
//! archive, which is then removed, as it is on any other failure.

use std::cell::Cell;
use std::io::{self, Read, Seek, SeekFrom, Write};

use cap_fs_ext::{DirExt, FollowSymlinks, OpenOptionsFollowExt};
use cap_protocol::files::{ArchiveFormat, FileEntry, FileError, FileErrorCode};
use cap_std::fs::{Dir, Metadata, MetadataExt, OpenOptions, OpenOptionsExt};
use flate2::Compression;
use flate2::write::GzEncoder;
use zip::write::SimpleFileOptions;

use super::ServerFiles;
use super::error::{self, io_error};
use super::ops::{MAX_TREE_DEPTH, too_deep};
use super::path::RelPath;

/// A writer that counts what reaches the file and refuses to grow it past
/// `limit` (flagging `exceeded`, so the error is known for what it is
/// through the archive writers' own error types).
struct Bounded<'a, W> {
    inner: W,
    pos: u64,
    len: u64,
    limit: Option<u64>,
    exceeded: &'a Cell<bool>,
}

impl<W: Write> Write for Bounded<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let end = self.pos.saturating_add(buf.len() as u64);
        if self.limit.is_some_and(|limit| end.max(self.len) > limit) {
            self.exceeded.set(true);
            return Err(io::Error::other("the archive would cross the disk limit"));
        }
        let n = self.inner.write(buf)?;
        self.pos += n as u64;
        self.len = self.len.max(self.pos);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<W: Seek> Seek for Bounded<'_, W> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.pos = self.inner.seek(pos)?;
        Ok(self.pos)
    }
}

/// Where walked entries go: a tar (gzip'd) or a zip.
trait Sink {
    fn directory(&mut self, name: &str, meta: &Metadata) -> Result<(), String>;
    fn file(&mut self, name: &str, meta: &Metadata, data: &mut dyn Read) -> Result<(), String>;
}

struct TarSink<W: Write>(tar::Builder<GzEncoder<W>>);

impl<W: Write> Sink for TarSink<W> {
    fn directory(&mut self, name: &str, meta: &Metadata) -> Result<(), String> {
        let mut header = header(meta, tar::EntryType::Directory, 0);
        self.0
            .append_data(&mut header, format!("{name}/"), io::empty())
            .map_err(|e| e.to_string())
    }

    fn file(&mut self, name: &str, meta: &Metadata, data: &mut dyn Read) -> Result<(), String> {
        let mut header = header(meta, tar::EntryType::Regular, meta.len());
        self.0
            .append_data(&mut header, name, data)
            .map_err(|e| e.to_string())
    }
}

fn header(meta: &Metadata, kind: tar::EntryType, size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_size(size);
    header.set_mode(meta.mode() & 0o777);
    header.set_mtime(u64::try_from(meta.mtime()).unwrap_or(0));
    header
}

struct ZipSink<W: Write + Seek>(zip::ZipWriter<W>);

fn zip_options(meta: &Metadata) -> SimpleFileOptions {
    let modified = time::OffsetDateTime::from_unix_timestamp(meta.mtime())
        .ok()
        .and_then(|t| {
            zip::DateTime::from_date_and_time(
                u16::try_from(t.year()).ok()?,
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second(),
            )
            .ok()
        })
        .unwrap_or_default();
    SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(meta.mode() & 0o777)
        .last_modified_time(modified)
}

impl<W: Write + Seek> Sink for ZipSink<W> {
    fn directory(&mut self, name: &str, meta: &Metadata) -> Result<(), String> {
        self.0
            .add_directory(format!("{name}/"), zip_options(meta))
            .map_err(|e| e.to_string())
    }

    fn file(&mut self, name: &str, meta: &Metadata, data: &mut dyn Read) -> Result<(), String> {
        self.0
            .start_file(name, zip_options(meta))
            .map_err(|e| e.to_string())?;
        io::copy(data, &mut self.0)
            .map(drop)
            .map_err(|e| e.to_string())
    }
}

/// A member named in the request: its directory, its name there, and its
/// path inside the archive.
struct Member {
    parent: Dir,
    name: String,
    rel: RelPath,
}

impl ServerFiles {
    /// Puts the entries `paths` (relative to `root`) of the directory
    /// `root` into a new archive `name` in `root` (made up from the date
    /// when `None`: `archive-2025-01-31-120000.tar.gz`). Returns the
    /// archive's entry. See the module docs for what is left out.
    ///
    /// # Errors
    ///
    /// `already-exists` (the archive's name), `denied` (a named entry or
    /// the archive's path), `disk-limit`, `not-found`, `invalid-path`
    /// (nothing named, or `root` itself), `read-only`, `outside-server`,
    /// `io`.
    pub fn compress(
        &self,
        root: &str,
        paths: &[String],
        format: ArchiveFormat,
        name: Option<&str>,
    ) -> Result<FileEntry, FileError> {
        self.writable(root)?;
        let root_rel = RelPath::parse(root)?;
        self.deny(&root_rel, true, root)?;
        let dir = self.open_dir(&root_rel, root)?;
        let root_resolved = self.canonical(&root_rel, root)?;
        self.deny(&root_resolved, true, root)?;
        if paths.is_empty() {
            return Err(error::invalid(
                root,
                "has nothing to compress: name at least one entry in it",
            ));
        }
        let mut members = Vec::with_capacity(paths.len());
        for path in paths {
            let rel = RelPath::parse(path)?;
            let full = root_rel.join_all(&rel);
            let shown = full.display();
            let Some((parent_rel, member)) = rel.split_last() else {
                return Err(error::invalid(
                    path,
                    "is the folder being compressed; name the entries in it",
                ));
            };
            let full_parent = root_rel.join_all(&parent_rel);
            let parent = self.open_dir(&full_parent, &shown)?;
            let meta = parent
                .symlink_metadata(member)
                .map_err(|e| io_error(&e, &shown))?;
            let resolved = self.canonical(&full_parent, &shown)?.join(member);
            self.deny(&full, meta.is_dir(), &shown)?;
            self.deny(&resolved, meta.is_dir(), &shown)?;
            members.push(Member {
                parent,
                name: member.to_owned(),
                rel,
            });
        }
        let name = match name {
            Some(name) => RelPath::parse_name(name)?,
            None => default_name(format),
        };
        let archive_rel = root_rel.join(&name);
        let shown = archive_rel.display();
        self.deny(&archive_rel, false, &shown)?;
        self.deny(&root_resolved.join(&name), false, &shown)?;
        let headroom = self.headroom();
        let file = dir
            .open_with(
                &name,
                OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .follow(FollowSymlinks::No)
                    .mode(0o644),
            )
            .map_err(|e| io_error(&e, &shown))?;
        let exceeded = Cell::new(false);
        let written = self.give_fd(&file, &shown).and_then(|()| {
            let out = Bounded {
                inner: file.into_std(),
                pos: 0,
                len: 0,
                limit: headroom,
                exceeded: &exceeded,
            };
            self.write_archive(out, format, &members, &root_rel, &root_resolved, &shown)
        });
        self.forget_usage();
        if let Err(e) = written {
            let _ = dir.remove_file(&name);
            return Err(if exceeded.get() {
                error::disk_limit(&shown, self.scope.disk_mb)
            } else {
                e
            });
        }
        self.stat(&shown)
    }

    fn write_archive(
        &self,
        out: Bounded<'_, std::fs::File>,
        format: ArchiveFormat,
        members: &[Member],
        root: &RelPath,
        root_resolved: &RelPath,
        shown: &str,
    ) -> Result<(), FileError> {
        let failed = |e: String| {
            FileError::at(
                FileErrorCode::Io,
                shown,
                format!("writing the archive `{shown}` failed: {e}"),
            )
        };
        let file = match format {
            ArchiveFormat::TarGz => {
                let mut sink = TarSink(tar::Builder::new(GzEncoder::new(
                    out,
                    Compression::default(),
                )));
                self.add_members(&mut sink, members, root, root_resolved)?;
                let gz = sink.0.into_inner().map_err(|e| failed(e.to_string()))?;
                gz.finish().map_err(|e| failed(e.to_string()))?.inner
            }
            ArchiveFormat::Zip => {
                let mut sink = ZipSink(zip::ZipWriter::new(out).set_auto_large_file());
                self.add_members(&mut sink, members, root, root_resolved)?;
                sink.0.finish().map_err(|e| failed(e.to_string()))?.inner
            }
        };
        file.sync_all().map_err(|e| io_error(&e, shown))
    }

    fn add_members(
        &self,
        sink: &mut dyn Sink,
        members: &[Member],
        root: &RelPath,
        root_resolved: &RelPath,
    ) -> Result<(), FileError> {
        for member in members {
            self.add(
                sink,
                &member.parent,
                &member.name,
                &member.rel,
                root,
                root_resolved,
                0,
            )?;
        }
        Ok(())
    }

    /// Adds `name` in `dir` as `rel` (relative to the archive's root
    /// `root`), recursing into directories.
    #[allow(clippy::too_many_arguments)]
    fn add(
        &self,
        sink: &mut dyn Sink,
        dir: &Dir,
        name: &str,
        rel: &RelPath,
        root: &RelPath,
        root_resolved: &RelPath,
        depth: usize,
    ) -> Result<(), FileError> {
        let full = root.join_all(rel);
        let shown = full.display();
        let meta = dir
            .symlink_metadata(name)
            .map_err(|e| io_error(&e, &shown))?;
        if depth > 0
            && (self.denylist.denies(&full, meta.is_dir())
                || self
                    .denylist
                    .denies(&root_resolved.join_all(rel), meta.is_dir()))
        {
            return Ok(());
        }
        let in_archive = rel.relative();
        let failed = |e: String| {
            FileError::at(
                FileErrorCode::Io,
                &shown,
                format!("adding `{shown}` to the archive failed: {e}"),
            )
        };
        if meta.is_file() {
            let file = dir
                .open_with(
                    name,
                    OpenOptions::new()
                        .read(true)
                        .follow(FollowSymlinks::No)
                        .custom_flags(libc::O_NONBLOCK),
                )
                .map_err(|e| io_error(&e, &shown))?;
            let len = meta.len();
            // Exactly the size the header announced, even if the file
            // changes while it is read.
            let mut data = file.take(len).chain(io::repeat(0)).take(len);
            sink.file(&in_archive, &meta, &mut data).map_err(failed)?;
        } else if meta.is_dir() {
            if depth >= MAX_TREE_DEPTH {
                return Err(too_deep(&shown));
            }
            sink.directory(&in_archive, &meta).map_err(failed)?;
            let sub = dir
                .open_dir_nofollow(name)
                .map_err(|e| io_error(&e, &shown))?;
            let mut names = Vec::new();
            for item in sub.entries().map_err(|e| io_error(&e, &shown))? {
                let item = item.map_err(|e| io_error(&e, &shown))?;
                if let Some(child) = item.file_name().to_str() {
                    names.push(child.to_owned());
                }
            }
            names.sort();
            for child in names {
                self.add(
                    sink,
                    &sub,
                    &child,
                    &rel.join(&child),
                    root,
                    root_resolved,
                    depth + 1,
                )?;
            }
        }
        Ok(())
    }
}

/// `archive-<UTC date and time>.<extension>`.
fn default_name(format: ArchiveFormat) -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "archive-{:04}-{:02}-{:02}-{:02}{:02}{:02}.{}",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        format.extension()
    )
}
