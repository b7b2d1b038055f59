//! File system errors as [`FileError`]s: one code, a sentence naming the
//! path, the path itself.

use std::io;

use cap_protocol::files::{FileError, FileErrorCode};

use super::path::printable;

/// Whether `error` is cap-std's refusal of a path that leads outside the
/// directory it resolves beneath: the kernel's `EXDEV` from `openat2` with
/// `RESOLVE_BENEATH` (or cap-std's own check where that is missing), which
/// cap-std reports as a `PermissionDenied` error without an OS error number.
/// A real `EACCES`/`EPERM` always carries its number.
pub(crate) fn is_escape(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::PermissionDenied && error.raw_os_error().is_none()
}

/// `error`, met while working on `path`, as a [`FileError`].
/// How a write that found the node's file system full begins its message.
pub const DISK_FULL: &str = "the node's disk is full";

pub(crate) fn io_error(error: &io::Error, path: &str) -> FileError {
    let shown = printable(path);
    if is_escape(error) {
        return outside(path);
    }
    let (code, message) = match error.raw_os_error() {
        Some(libc::ENOENT) => (FileErrorCode::NotFound, format!("`{shown}` does not exist")),
        Some(libc::EEXIST | libc::ENOTEMPTY) => (
            FileErrorCode::AlreadyExists,
            format!("`{shown}` already exists"),
        ),
        Some(libc::ENOTDIR) => (
            FileErrorCode::NotADirectory,
            format!("a part of `{shown}` is not a folder"),
        ),
        Some(libc::EISDIR) => (
            FileErrorCode::IsADirectory,
            format!("`{shown}` is a folder"),
        ),
        Some(libc::ENOSPC | libc::EDQUOT) => (
            FileErrorCode::DiskLimit,
            format!("{DISK_FULL} (writing `{shown}`)"),
        ),
        Some(libc::ENAMETOOLONG) => (
            FileErrorCode::InvalidPath,
            format!("`{shown}` is too long for the file system"),
        ),
        Some(libc::ELOOP) => (
            FileErrorCode::Io,
            format!("`{shown}` goes through too many symbolic links, or is one where none may be"),
        ),
        _ => (FileErrorCode::Io, format!("`{shown}`: {error}")),
    };
    FileError::at(code, path, message)
}

/// `path` leads outside the server's directory.
pub(crate) fn outside(path: &str) -> FileError {
    FileError::at(
        FileErrorCode::OutsideServer,
        path,
        format!(
            "`{}` leads outside the server's directory (through `..` or a symbolic link)",
            printable(path)
        ),
    )
}

/// The denylist covers `path`.
pub(crate) fn denied(path: &str) -> FileError {
    FileError::at(
        FileErrorCode::Denied,
        path,
        format!("`{}` is on this game type's file denylist", printable(path)),
    )
}

/// Nothing is at `path`.
pub(crate) fn not_found(path: &str) -> FileError {
    FileError::at(
        FileErrorCode::NotFound,
        path,
        format!("`{}` does not exist", printable(path)),
    )
}

/// Something is already at `path`.
pub(crate) fn exists(path: &str) -> FileError {
    FileError::at(
        FileErrorCode::AlreadyExists,
        path,
        format!("`{}` already exists", printable(path)),
    )
}

/// `path` is malformed or names the wrong thing.
pub(crate) fn invalid(path: &str, why: &str) -> FileError {
    FileError::at(
        FileErrorCode::InvalidPath,
        path,
        format!("`{}` {why}", printable(path)),
    )
}

/// A write would take the server over its disk limit.
pub(crate) fn disk_limit(path: &str, limit_mb: u64) -> FileError {
    FileError::at(
        FileErrorCode::DiskLimit,
        path,
        format!(
            "writing `{}` would take the server over its disk limit of {limit_mb} MiB",
            printable(path)
        ),
    )
}

/// The server's files are read-only.
pub(crate) fn read_only(path: &str) -> FileError {
    FileError::at(
        FileErrorCode::ReadOnly,
        path,
        format!(
            "`{}` cannot be changed: the server's files are read-only (suspended)",
            printable(path)
        ),
    )
}
