//! Private files and directories: the data directory is `0700`, the SQLite
//! database and the key file `0600`.
//!
//! What the Panel creates, it creates with these modes (not after the fact,
//! so there is no moment in which another user could open the file). What
//! exists already is checked: a file that grants the group or others any
//! access, or a directory they may read or write (searching it is allowed),
//! is refused with the `chmod` that fixes it, rather than
//! silently tightened, because a wider mode than expected means someone
//! chose it (or something is wrong) and the admin should know.
//!
//! SQLite creates its `-wal` and `-shm` files with the mode of the database
//! file, so they follow. On non-Unix systems the checks do nothing.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// Whether a path is a directory or a file (for the mode and the message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A directory: expected mode `0700`.
    Dir,
    /// A file: expected mode `0600`.
    File,
}

impl Kind {
    /// The permission bits of the group and others that are refused: any
    /// on a file; read or write on a directory, whose search bit alone
    /// lets a server's user reach its own directory below without listing
    /// or reading anything else (`cap up` runs its Agent's servers under
    /// the Panel's data directory: see `local_agent` in the `cap-cli`
    /// crate).
    fn refused(self) -> u32 {
        match self {
            Kind::Dir => 0o066,
            Kind::File => 0o077,
        }
    }

    fn expected(self) -> u32 {
        match self {
            Kind::Dir => 0o700,
            Kind::File => 0o600,
        }
    }
}

/// Why a private path was refused.
#[derive(Debug, thiserror::Error)]
pub enum PermissionError {
    /// The group or others have access.
    #[error(
        "{} is accessible to other users (mode {mode:o}); restrict it with `chmod {expected:o} {}` and start again",
        path.display(),
        path.display()
    )]
    TooOpen {
        /// The directory or file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
        /// The mode it should have (`700` or `600`).
        expected: u32,
    },
    /// Its mode could not be read, or it could not be created.
    #[error("cannot create or inspect {}", path.display())]
    Io {
        /// The directory or file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> PermissionError + '_ {
    move |source| PermissionError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Refuses `path` if the group or others have any access to it (a file) or
/// may read or write it (a directory).
///
/// # Errors
///
/// [`PermissionError`].
pub fn check_private(path: &Path, kind: Kind) -> Result<(), PermissionError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(path)
            .map_err(io_error(path))?
            .permissions()
            .mode()
            & 0o777;
        if mode & kind.refused() != 0 {
            return Err(PermissionError::TooOpen {
                path: path.to_owned(),
                mode,
                expected: kind.expected(),
            });
        }
    }
    #[cfg(not(unix))]
    let _ = (path, kind);
    Ok(())
}

/// Creates the directory `path` (and missing parents) with mode `0700`, or
/// checks an existing one ([`check_private`]).
///
/// # Errors
///
/// [`PermissionError`].
pub fn ensure_private_dir(path: &Path) -> Result<(), PermissionError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    match std::fs::metadata(path) {
        Ok(_) => check_private(path, Kind::Dir),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            builder.create(path).map_err(io_error(path))
        }
        Err(e) => Err(io_error(path)(e)),
    }
}

/// Creates the empty file `path` with mode `0600` (an empty file is a valid
/// new SQLite database), or checks an existing one ([`check_private`]).
///
/// # Errors
///
/// [`PermissionError`].
pub fn ensure_private_file(path: &Path) -> Result<(), PermissionError> {
    match create_private_file(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => check_private(path, Kind::File),
        Err(e) => Err(io_error(path)(e)),
    }
}

/// Creates `path`, which must not exist, with mode `0600`.
pub(crate) fn create_private_file(path: &Path) -> io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}
