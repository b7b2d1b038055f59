//! [`FileEntry`]s from metadata, with a media type for files.

use std::io::Read;

use cap_fs_ext::{FollowSymlinks, OpenOptionsFollowExt};
use cap_protocol::files::{FileEntry, FileKind};
use cap_std::fs::{Dir, Metadata, MetadataExt, OpenOptions, OpenOptionsExt};

use super::path::RelPath;

/// How many leading bytes decide a media type the name does not.
const SNIFF_BYTES: usize = 512;

/// What kind of entry `meta` (from `lstat`) describes.
pub(crate) fn kind_of(meta: &Metadata) -> FileKind {
    let file_type = meta.file_type();
    if file_type.is_symlink() {
        FileKind::Symlink
    } else if file_type.is_dir() {
        FileKind::Directory
    } else if file_type.is_file() {
        FileKind::File
    } else {
        FileKind::Other
    }
}

/// The entry at `path` described by `meta`, with `mime` for files.
pub(crate) fn entry(path: &RelPath, meta: &Metadata, mime: Option<String>) -> FileEntry {
    let kind = kind_of(meta);
    let modified_ms = u64::try_from(meta.mtime())
        .unwrap_or(0)
        .saturating_mul(1000)
        .saturating_add(u64::try_from(meta.mtime_nsec()).unwrap_or(0) / 1_000_000);
    FileEntry {
        name: path.names().last().cloned().unwrap_or_default(),
        path: path.display(),
        kind,
        size: if kind == FileKind::Directory {
            0
        } else {
            meta.len()
        },
        mode: meta.mode() & 0o7777,
        modified_ms,
        mime: if kind == FileKind::File { mime } else { None },
    }
}

/// The media type of the regular file `name` in `dir`: from its name, or
/// else from its first bytes (opened without following a symbolic link and
/// without blocking). `None` when it is not a regular file.
pub(crate) fn sniff_in(dir: &Dir, name: &str) -> Option<String> {
    if let Some(guess) = guess(name) {
        return Some(guess);
    }
    let mut file = dir
        .open_with(
            name,
            OpenOptions::new()
                .read(true)
                .follow(FollowSymlinks::No)
                .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY),
        )
        .ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut head = Vec::with_capacity(SNIFF_BYTES);
    (&mut file)
        .take(SNIFF_BYTES as u64)
        .read_to_end(&mut head)
        .ok()?;
    Some(sniff(&head).to_owned())
}

/// The media type of an open regular file called `name`, reading its
/// first bytes at offset 0 without moving its position.
pub(crate) fn sniff_file(name: &str, file: &std::fs::File) -> String {
    use std::os::unix::fs::FileExt;
    if let Some(guess) = guess(name) {
        return guess;
    }
    let mut head = vec![0; SNIFF_BYTES];
    let mut filled = 0;
    while filled < head.len() {
        match file.read_at(&mut head[filled..], filled as u64) {
            Ok(0) | Err(_) => break,
            Ok(n) => filled += n,
        }
    }
    head.truncate(filled);
    sniff(&head).to_owned()
}

/// The media type the name's extension implies, if any.
fn guess(name: &str) -> Option<String> {
    mime_guess::from_path(name).first_raw().map(str::to_owned)
}

/// The media type of content starting with `head`: a few binary formats
/// by their magic bytes, NUL-free UTF-8 as `text/plain`, else
/// `application/octet-stream`.
pub(crate) fn sniff(head: &[u8]) -> &'static str {
    const MAGIC: &[(&[u8], &str)] = &[
        (b"PK\x03\x04", "application/zip"),
        (b"\x1f\x8b", "application/gzip"),
        (b"\xfd7zXZ\x00", "application/x-xz"),
        (b"\x28\xb5\x2f\xfd", "application/zstd"),
        (b"7z\xbc\xaf\x27\x1c", "application/x-7z-compressed"),
        (b"\x89PNG\r\n\x1a\n", "image/png"),
        (b"\xff\xd8\xff", "image/jpeg"),
        (b"\x7fELF", "application/x-executable"),
    ];
    if let Some((_, mime)) = MAGIC.iter().find(|(magic, _)| head.starts_with(magic)) {
        return mime;
    }
    let utf8 = match std::str::from_utf8(head) {
        Ok(_) => true,
        // Cut in the middle of a character by the sniff's length limit.
        Err(e) => e.error_len().is_none() && head.len() == SNIFF_BYTES,
    };
    if utf8 && !head.contains(&0) {
        "text/plain"
    } else {
        "application/octet-stream"
    }
}
