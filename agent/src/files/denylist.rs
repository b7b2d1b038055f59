//! The game type's `file_denylist`, in `.gitignore` syntax.

use cap_protocol::files::{FileError, FileErrorCode};
use ignore::gitignore::{Gitignore, GitignoreBuilder};

use super::path::RelPath;

/// Compiled denylist patterns, matched against paths relative to the
/// server's directory.
#[derive(Debug, Clone)]
pub(crate) struct Denylist(Gitignore);

impl Denylist {
    /// Compiles `patterns`.
    ///
    /// A pattern that does not compile refuses the whole request (`denied`):
    /// a denylist that is half applied would let through what the game
    /// type meant to keep out.
    pub(crate) fn new(patterns: &[String]) -> Result<Self, FileError> {
        // Paths are matched relative (`a/b`); the root only anchors `/x`.
        let mut builder = GitignoreBuilder::new("/");
        for pattern in patterns {
            builder.add_line(None, pattern).map_err(|e| {
                FileError::at(
                    FileErrorCode::Denied,
                    "/",
                    format!("the game type's denylist pattern `{pattern}` is invalid ({e}), so every file operation is refused"),
                )
            })?;
        }
        let compiled = builder.build().map_err(|e| {
            FileError::at(
                FileErrorCode::Denied,
                "/",
                format!(
                    "the game type's denylist is invalid ({e}), so every file operation is refused"
                ),
            )
        })?;
        Ok(Self(compiled))
    }

    /// Whether the list is empty (no walk over a tree is needed to find
    /// denied entries in it).
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `path` (a directory when `is_dir`) is denied, itself or
    /// through a denied directory above it. The server's directory itself
    /// is never denied.
    pub(crate) fn denies(&self, path: &RelPath, is_dir: bool) -> bool {
        !path.is_root()
            && self
                .0
                .matched_path_or_any_parents(path.relative(), is_dir)
                .is_ignore()
    }
}
