//! A server's files, confined to its directory: the operations the Panel
//! asks for over the link ([`cap_protocol::files::FileOp`]), the reads and
//! resumable uploads the Agent's HTTP listener serves with signed grants,
//! and what the SFTP server ([`crate::sftp`]) does: in-place writes at
//! offsets ([`ServerFiles::open_write`]), single folders, a confined
//! `realpath`.
//!
//! Every caller goes through [`ServerFiles`]: open it on the server's
//! directory with the [`FileScope`] the Panel sent, then call its blocking
//! methods (from `spawn_blocking` in async code) or its one async method,
//! [`ServerFiles::pull`].
//!
//! ```no_run
//! use cap_agent::files::ServerFiles;
//! use cap_protocol::files::{FileAnswer, FileOp, FileScope};
//!
//! let scope = FileScope { denylist: vec!["*.key".into()], disk_mb: 1024, read_only: false };
//! let files = ServerFiles::open("/var/lib/cap/servers/s1".as_ref(), scope)?;
//! let answer = files.run(FileOp::List { path: "/".into() })?;
//! if let FileAnswer::Entries { entries } = answer {
//!     for entry in entries {
//!         println!("{} {:?} {}", entry.path, entry.kind, entry.size);
//!     }
//! }
//! # Ok::<(), cap_protocol::files::FileError>(())
//! ```
//!
//! # Decisions
//!
//! - **Confinement is the kernel's, through cap-std.** The server's
//!   directory is opened once as a [`cap_std::fs::Dir`] (the only use of
//!   ambient authority here) and every path is resolved relative to it;
//!   on Linux cap-std does so with `openat2(RESOLVE_BENEATH)`, so `..`
//!   and symbolic links (absolute or relative) that would leave the
//!   directory are refused by the kernel and answered `outside-server`.
//!   Request paths are also parsed first ([`MAX_PATH_BYTES`], no NUL, no
//!   empty names, `..` applied lexically), but no string check is what
//!   keeps a path inside. A symbolic link that stays inside works like its
//!   target; deleting or renaming a link acts on the link itself. The few
//!   calls cap-std has no wrapper for (`renameat2` without replacing,
//!   `fchownat`, `fchmod`, `symlinkat`) take one plain name relative to a
//!   directory cap-std opened, so they cannot be walked outside either.
//! - **The denylist** (`.gitignore` syntax, matched relative to the
//!   server's directory) is checked against the path as requested *and* as
//!   the kernel resolves it (so a link to a denied file is denied too).
//!   Denied entries are hidden from listings and refused everywhere else
//!   (`denied`), as targets of renames and copies too; renaming, copying or
//!   deleting a directory that holds a denied entry is refused, as it would
//!   move the entry out of the denylist's reach or destroy it. Archives
//!   leave denied entries out ([`ServerFiles::compress`]) or are refused
//!   when they would write one ([`ServerFiles::decompress`]). The check
//!   and the use are not one atomic step: a server process that swaps a
//!   link in between can reach a denied file it could reach anyway.
//! - **Disk limit.** A write that would take the server's directory over
//!   `disk_mb` (0 is unlimited) is refused with `disk-limit` before it is
//!   made, and a write whose size is only known while it runs (uploads,
//!   archives, pulls) is stopped and undone when it crosses the limit. The
//!   usage is the node's [`DiskUsage`] figure when the caller gave one
//!   ([`ServerFiles::with_usage`]: the Agent always does): a walk of the
//!   tree ([`crate::runtime::disk_usage`]) kept for the node's disk
//!   interval, to which what these operations write is charged and which
//!   those that free or rewrite many entries forget (see [`usage`]).
//!   Without one, every check walks.
//! - **Read-only scope** (a suspended server): every write is refused with
//!   `read-only`; lists, stats and reads go on. A suspension that comes
//!   after a scope was handed out reaches it through [`ReadOnlyServers`].
//! - **Emptying** ([`ServerFiles::empty`], a reinstall's wipe) removes every
//!   entry of the server's directory, and nothing outside it: a symbolic
//!   link is removed as a link, never followed.
//! - **Ownership.** An Agent running as root gives what it creates to the
//!   owner of the server's directory (which [`crate::isolation::chown_tree`]
//!   set), so that the server's unprivileged user can change the files it
//!   was handed without waiting for the next start.
//! - **Uploads are staged outside the server's directory**, in a directory
//!   the caller passes (`<data>/uploads`), one file per grant (its `jti`):
//!   chunks append at the offset received so far, so an upload resumes
//!   after a dropped connection, and the finished file is renamed into
//!   place in one step, so no crash leaves a half-written target.
//! - **Archives.** [`ServerFiles::compress`] writes `.tar.gz` or `.zip`;
//!   [`ServerFiles::decompress`] reads zip, tar, tar.gz, tar.xz, tar.zst and
//!   7z, recognised by their first bytes, never by the name. Extraction is
//!   bounded by [`ArchiveLimits`] (bytes written, entries, compression
//!   ratio) and refuses absolute names, `..`, links and devices. It writes
//!   into a staging directory inside the destination and moves the result
//!   into place only once the whole archive has been read; a refusal
//!   removes the staging directory, so nothing partial stays.
//! - **Pulls** resolve the URL's host themselves, refuse loopback, private
//!   and other non-public addresses unless the admin allowed the host
//!   (the plugin HTTP rules: [`cap_runtime::capabilities::http`]), pin the
//!   connection to the checked addresses and check every redirect again.

mod archive;
mod denylist;
mod entry;
mod error;
mod extract;
mod ops;
mod path;
mod pull;
mod read_only;
mod session;
mod upload;
pub mod usage;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cap_protocol::files::{FileAnswer, FileError, FileErrorCode, FileOp, FileScope};
use cap_std::fs::{Dir, MetadataExt};
use rustix::fs::{AtFlags, Gid, Uid};

pub use error::DISK_FULL;
pub use extract::{
    ARCHIVE_MEMORY_LIMIT_BYTES, ArchiveLimits, MAX_EXTRACT_BYTES, MAX_EXTRACT_ENTRIES,
    MAX_EXTRACT_RATIO, RATIO_GRACE_BYTES,
};
pub use ops::MAX_TREE_DEPTH;
pub use path::{MAX_NAME_BYTES, MAX_PATH_BYTES};
pub use pull::{MAX_PULL_BYTES, MAX_PULL_REDIRECTS, PULL_CONNECT_TIMEOUT, PULL_IDLE_TIMEOUT};
pub use read_only::ReadOnlyServers;
pub use session::{SftpWrite, WriteMode};
pub use upload::MAX_UPLOAD_ID_BYTES;
pub use usage::DiskUsage;

use denylist::Denylist;
use path::RelPath;

/// The bytes `dir` takes: `usage`'s kept figure, else a walk. Blocking.
fn used(usage: Option<&DiskUsage>, dir: &Path) -> u64 {
    match usage {
        Some(usage) => usage.of(dir),
        None => crate::runtime::disk_usage(dir),
    }
}

/// The bytes the entry described by `meta` takes on disk (its blocks), as
/// [`crate::runtime::disk_usage`] counts them.
fn allocated(meta: &impl MetadataExt) -> i64 {
    blocks_bytes(meta.blocks())
}

/// `blocks` 512-byte blocks, in bytes.
fn blocks_bytes(blocks: u64) -> i64 {
    i64::try_from(blocks.saturating_mul(512)).unwrap_or(i64::MAX)
}

/// A server's files, confined to its directory and to what the Panel's
/// [`FileScope`] allows. See the [module docs](self).
#[derive(Debug)]
pub struct ServerFiles {
    /// The server's directory: every path is resolved beneath it.
    root: Dir,
    /// Its path, for [`crate::runtime::disk_usage`] only.
    server_dir: PathBuf,
    /// The node's usage figures (`None`: every check walks).
    usage: Option<Arc<DiskUsage>>,
    scope: FileScope,
    denylist: Denylist,
    /// Whom new entries are given to (an Agent running as root).
    owner: Option<(Uid, Gid)>,
    limits: ArchiveLimits,
}

impl ServerFiles {
    /// Opens the server's directory `server_dir` for operations limited by
    /// `scope`.
    ///
    /// # Errors
    ///
    /// `unknown-server` when the directory does not exist, `denied` when
    /// the scope's denylist does not compile, `io` otherwise.
    pub fn open(server_dir: &Path, scope: FileScope) -> Result<Self, FileError> {
        let root =
            Dir::open_ambient_dir(server_dir, cap_std::ambient_authority()).map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    FileError::at(
                        FileErrorCode::UnknownServer,
                        "/",
                        format!(
                            "the server's directory {} does not exist",
                            server_dir.display()
                        ),
                    )
                } else {
                    FileError::at(
                        FileErrorCode::Io,
                        "/",
                        format!(
                            "cannot open the server's directory {}: {e}",
                            server_dir.display()
                        ),
                    )
                }
            })?;
        let denylist = Denylist::new(&scope.denylist)?;
        let meta = root.dir_metadata().map_err(|e| error::io_error(&e, "/"))?;
        let me = (rustix::process::geteuid(), rustix::process::getegid());
        let owner = (Uid::from_raw(meta.uid()), Gid::from_raw(meta.gid()));
        let owner = (me.0.is_root() && owner != me).then_some(owner);
        Ok(Self {
            root,
            server_dir: server_dir.to_owned(),
            usage: None,
            scope,
            denylist,
            owner,
            limits: ArchiveLimits::default(),
        })
    }

    /// The same, with other bounds for [`decompress`](Self::decompress).
    pub fn with_archive_limits(mut self, limits: ArchiveLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The same, checking the disk limit against `usage`'s kept figures
    /// (and keeping them current) instead of walking every time.
    pub fn with_usage(mut self, usage: Arc<DiskUsage>) -> Self {
        self.usage = Some(usage);
        self
    }

    /// The scope this was opened with.
    pub fn scope(&self) -> &FileScope {
        &self.scope
    }

    /// Runs `op`: every [`FileOp`] but [`FileOp::Pull`], which is
    /// asynchronous ([`pull`](Self::pull)). Blocking.
    ///
    /// # Errors
    ///
    /// The operation's [`FileError`]; `pull-refused` for [`FileOp::Pull`].
    pub fn run(&self, op: FileOp) -> Result<FileAnswer, FileError> {
        let entry = |entry| Ok(FileAnswer::Entry { entry });
        match op {
            FileOp::List { path } => Ok(FileAnswer::Entries {
                entries: self.list(&path)?,
            }),
            FileOp::Stat { path } => entry(self.stat(&path)?),
            FileOp::CreateFolder { path } => entry(self.create_folder(&path)?),
            FileOp::Rename { from, to } => entry(self.rename(&from, &to)?),
            FileOp::Copy { from, to } => entry(self.copy(&from, &to)?),
            FileOp::Delete { paths } => Ok(FileAnswer::Deleted {
                count: self.delete(&paths)?,
            }),
            FileOp::Chmod { path, mode } => entry(self.chmod(&path, mode)?),
            FileOp::Compress {
                root,
                paths,
                format,
                name,
            } => entry(self.compress(&root, &paths, format, name.as_deref())?),
            FileOp::Decompress { path, destination } => {
                let (entries, bytes) = self.decompress(&path, &destination)?;
                Ok(FileAnswer::Extracted { entries, bytes })
            }
            FileOp::Pull { directory, .. } => Err(FileError::at(
                FileErrorCode::PullRefused,
                &directory,
                "pulls are asynchronous: the Agent runs them with ServerFiles::pull, not run",
            )),
        }
    }

    // ----- shared checks -----

    /// Refuses writes in a read-only scope.
    fn writable(&self, path: &str) -> Result<(), FileError> {
        if self.scope.read_only {
            Err(error::read_only(path))
        } else {
            Ok(())
        }
    }

    /// Refuses `path` (requested as `raw`) when the denylist covers it.
    fn deny(&self, path: &RelPath, is_dir: bool, raw: &str) -> Result<(), FileError> {
        if self.denylist.denies(path, is_dir) {
            Err(error::denied(raw))
        } else {
            Ok(())
        }
    }

    /// How many more bytes the server may use: `None` when unlimited.
    /// Walks the server's directory (see the module docs).
    fn headroom(&self) -> Option<u64> {
        (self.scope.disk_mb > 0).then(|| {
            let limit = self.scope.disk_mb.saturating_mul(1024 * 1024);
            limit.saturating_sub(self.used())
        })
    }

    /// Bytes the server's directory takes (see the module docs).
    fn used(&self) -> u64 {
        used(self.usage.as_deref(), &self.server_dir)
    }

    /// Records that the server's directory grew by `bytes` (shrank, when
    /// negative), in allocated bytes.
    fn charge(&self, bytes: i64) {
        if let Some(usage) = &self.usage {
            usage.charge(&self.server_dir, bytes);
        }
    }

    /// Records that the server's directory changed by an amount not worth
    /// counting: the next check walks it.
    fn forget_usage(&self) {
        if let Some(usage) = &self.usage {
            usage.forget(&self.server_dir);
        }
    }

    /// Records that the entry described by `meta` is gone (or replaced):
    /// its blocks are freed, unless it has other links, whose count the
    /// figure cannot know without a walk.
    fn discharge(&self, meta: &cap_std::fs::Metadata) {
        if meta.is_dir() || meta.nlink() <= 1 {
            self.charge(-allocated(meta));
        } else {
            self.forget_usage();
        }
    }

    /// Who to charge for an open file's later growth (an SFTP write).
    fn usage_handle(&self) -> Option<(Arc<DiskUsage>, PathBuf)> {
        self.usage
            .as_ref()
            .map(|usage| (usage.clone(), self.server_dir.clone()))
    }

    /// Refuses a write of `bytes` at `raw` that would not fit; returns the
    /// headroom.
    fn require_room(&self, bytes: u64, raw: &str) -> Result<Option<u64>, FileError> {
        let headroom = self.headroom();
        match headroom {
            Some(room) if bytes > room => Err(error::disk_limit(raw, self.scope.disk_mb)),
            _ => Ok(headroom),
        }
    }

    /// Opens the directory at `path` (following links that stay inside).
    fn open_dir(&self, path: &RelPath, raw: &str) -> Result<Dir, FileError> {
        if path.is_root() {
            self.root.try_clone()
        } else {
            self.root.open_dir(path.fs_path())
        }
        .map_err(|e| error::io_error(&e, raw))
    }

    /// `path` as the kernel resolves it (every link followed, refused if
    /// it leaves the directory).
    fn canonical(&self, path: &RelPath, raw: &str) -> Result<RelPath, FileError> {
        if path.is_root() {
            return Ok(RelPath::root());
        }
        self.root
            .canonicalize(path.fs_path())
            .map(|p| RelPath::from_fs(&p))
            .map_err(|e| error::io_error(&e, raw))
    }

    /// Gives `name` in `dir`, just created, to the server's owner (the
    /// link itself for a symbolic link).
    fn give(&self, dir: &Dir, name: &str, raw: &str) -> Result<(), FileError> {
        if let Some((uid, gid)) = self.owner {
            rustix::fs::chownat(dir, name, Some(uid), Some(gid), AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| error::io_error(&e.into(), raw))?;
        }
        Ok(())
    }

    /// Gives an open file or directory to the server's owner.
    fn give_fd(&self, fd: impl rustix::fd::AsFd, raw: &str) -> Result<(), FileError> {
        if let Some((uid, gid)) = self.owner {
            rustix::fs::fchown(fd, Some(uid), Some(gid))
                .map_err(|e| error::io_error(&e.into(), raw))?;
        }
        Ok(())
    }
}

/// An entry named by a request, its directory opened: the target of every
/// operation that is not on the server's directory itself.
///
/// `parent` confines what is resolved through it to that directory, so
/// only operations on the entry itself (`lstat`, rename, unlink, create)
/// use it with `name`; whatever follows the entry's final link resolves
/// `rel` from the server's directory instead.
#[derive(Debug)]
struct Located {
    /// The path as requested (for messages).
    raw: String,
    /// The normalised path.
    rel: RelPath,
    /// Its directory, opened beneath the server's directory.
    parent: Dir,
    /// Its last name.
    name: String,
    /// The path with its directory as the kernel resolves it.
    resolved: RelPath,
}

impl ServerFiles {
    /// Parses `raw`, refuses the server's directory itself, and opens the
    /// entry's directory. Refuses paths the denylist covers as files;
    /// [`check`](Self::check) completes the check once the kind is known.
    fn locate(&self, raw: &str) -> Result<Located, FileError> {
        let rel = RelPath::parse(raw)?;
        let Some((parent_rel, name)) = rel.split_last() else {
            return Err(error::invalid(raw, "is the server's directory itself"));
        };
        let name = name.to_owned();
        self.deny(&rel, false, raw)?;
        let parent = self.open_dir(&parent_rel, raw)?;
        let resolved = self.canonical(&parent_rel, raw)?.join(&name);
        Ok(Located {
            raw: raw.to_owned(),
            rel,
            parent,
            name,
            resolved,
        })
    }

    /// Refuses `at` when the denylist covers it (a directory when
    /// `is_dir`), as requested or as resolved.
    fn check(&self, at: &Located, is_dir: bool) -> Result<(), FileError> {
        self.deny(&at.rel, is_dir, &at.raw)?;
        self.deny(&at.resolved, is_dir, &at.raw)
    }

    /// The entry's own metadata (`lstat`); `None` when nothing is there.
    fn lstat(&self, at: &Located) -> Result<Option<cap_std::fs::Metadata>, FileError> {
        match at.parent.symlink_metadata(&at.name) {
            Ok(meta) => Ok(Some(meta)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(error::io_error(&e, &at.raw)),
        }
    }

    /// Like [`lstat`](Self::lstat), but nothing there is `not-found`.
    fn existing(&self, at: &Located) -> Result<cap_std::fs::Metadata, FileError> {
        self.lstat(at)?.ok_or_else(|| error::not_found(&at.raw))
    }

    /// The metadata of the entry's target: symbolic links followed from
    /// the server's directory (so a link may point anywhere inside it).
    fn followed_metadata(&self, at: &Located) -> Result<cap_std::fs::Metadata, FileError> {
        self.root
            .metadata(at.rel.fs_path())
            .map_err(|e| error::io_error(&e, &at.raw))
    }

    /// Refuses the entry if it is, or (following links that stay inside)
    /// resolves to, a denied path; for entries that are followed (reads,
    /// chmod).
    fn check_followed(&self, at: &Located, is_dir: bool) -> Result<(), FileError> {
        self.check(at, is_dir)?;
        let target = self.canonical(&at.rel, &at.raw)?;
        self.deny(&target, is_dir, &at.raw)
    }
}
