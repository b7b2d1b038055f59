//! Request paths: parsed and normalised before any file system call.
//!
//! A request path is `/`-separated and relative to the server's directory
//! (a leading `/` means that directory). Parsing refuses NUL bytes, empty
//! names (`a//b`) and over-long paths (`invalid-path`), drops `.` and
//! applies `..` lexically, refusing one that would climb above the server's
//! directory (`outside-server`). The result is a list of plain names that
//! cap-std then resolves beneath the directory: symbolic links on the way
//! are the kernel's business (and its refusals), never string checks'.
//!
//! `..` is applied lexically (`a/link/..` is `a`, whatever `link` points
//! to), so that the path the denylist is checked against is the path that
//! is opened.

use cap_protocol::files::{FileError, FileErrorCode};

/// The longest request path, in bytes (Linux's `PATH_MAX`).
pub const MAX_PATH_BYTES: usize = 4096;

/// The longest name of one entry, in bytes (Linux's `NAME_MAX`).
pub const MAX_NAME_BYTES: usize = 255;

/// A normalised path beneath the server's directory: plain names only
/// (never empty, `.`, `..`, nor containing `/` or NUL). No names is the
/// server's directory itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RelPath(Vec<String>);

impl RelPath {
    /// The server's directory.
    pub(crate) fn root() -> Self {
        Self::default()
    }

    /// Parses a request path (see the module docs).
    pub(crate) fn parse(raw: &str) -> Result<Self, FileError> {
        let invalid = |why: &str| {
            FileError::at(
                FileErrorCode::InvalidPath,
                raw,
                format!("the path `{}` {why}", printable(raw)),
            )
        };
        if raw.contains('\0') {
            return Err(invalid("contains a NUL byte"));
        }
        if raw.is_empty() {
            return Err(invalid("is empty (the server's directory is `/`)"));
        }
        if raw.len() > MAX_PATH_BYTES {
            return Err(invalid(&format!("is longer than {MAX_PATH_BYTES} bytes")));
        }
        let body = raw.strip_prefix('/').unwrap_or(raw);
        let body = body.strip_suffix('/').unwrap_or(body);
        let mut names: Vec<String> = Vec::new();
        if body.is_empty() {
            return Ok(Self(names));
        }
        for name in body.split('/') {
            match name {
                "" => return Err(invalid("has an empty name (`//`)")),
                "." => {}
                ".." => {
                    if names.pop().is_none() {
                        return Err(FileError::at(
                            FileErrorCode::OutsideServer,
                            raw,
                            format!(
                                "the path `{}` climbs above the server's directory with `..`",
                                printable(raw)
                            ),
                        ));
                    }
                }
                _ if name.len() > MAX_NAME_BYTES => {
                    return Err(invalid(&format!(
                        "has a name longer than {MAX_NAME_BYTES} bytes"
                    )));
                }
                _ => names.push(name.to_owned()),
            }
        }
        Ok(Self(names))
    }

    /// Parses a single name (a file name in a request, an archive's name):
    /// one plain name, no `/`.
    pub(crate) fn parse_name(raw: &str) -> Result<String, FileError> {
        let invalid = |why: &str| {
            FileError::at(
                FileErrorCode::InvalidPath,
                raw,
                format!("the name `{}` {why}", printable(raw)),
            )
        };
        if raw.contains('\0') {
            return Err(invalid("contains a NUL byte"));
        }
        if raw.is_empty() || raw == "." || raw == ".." {
            return Err(invalid("is not a file name"));
        }
        if raw.contains('/') {
            return Err(invalid("contains `/`: give a name, not a path"));
        }
        if raw.len() > MAX_NAME_BYTES {
            return Err(invalid(&format!("is longer than {MAX_NAME_BYTES} bytes")));
        }
        Ok(raw.to_owned())
    }

    /// Builds a path from names already checked to be plain.
    pub(crate) fn from_names(names: Vec<String>) -> Self {
        Self(names)
    }

    /// Builds a path from names the file system gave (a canonical path);
    /// names that are not UTF-8 are converted lossily, which only matters
    /// for denylist matching.
    pub(crate) fn from_fs(path: &std::path::Path) -> Self {
        Self(
            path.components()
                .filter_map(|c| match c {
                    std::path::Component::Normal(name) => Some(name.to_string_lossy().into_owned()),
                    _ => None,
                })
                .collect(),
        )
    }

    /// Whether this is the server's directory itself.
    pub(crate) fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The names, outermost first.
    pub(crate) fn names(&self) -> &[String] {
        &self.0
    }

    /// This path with `name` appended.
    pub(crate) fn join(&self, name: &str) -> Self {
        let mut names = self.0.clone();
        names.push(name.to_owned());
        Self(names)
    }

    /// This path with `other`'s names appended.
    pub(crate) fn join_all(&self, other: &Self) -> Self {
        let mut names = self.0.clone();
        names.extend(other.0.iter().cloned());
        Self(names)
    }

    /// The parent and the last name; `None` for the server's directory.
    pub(crate) fn split_last(&self) -> Option<(Self, &str)> {
        let (last, parent) = self.0.split_last()?;
        Some((Self(parent.to_vec()), last))
    }

    /// Whether `self` is `other` or lies beneath it.
    pub(crate) fn starts_with(&self, other: &Self) -> bool {
        self.0.starts_with(&other.0)
    }

    /// The path for cap-std, relative to the server's directory (`.` for
    /// the directory itself).
    pub(crate) fn fs_path(&self) -> std::path::PathBuf {
        if self.0.is_empty() {
            ".".into()
        } else {
            self.0.join("/").into()
        }
    }

    /// The path relative to the server's directory, without a leading `/`
    /// (what the denylist matches against).
    pub(crate) fn relative(&self) -> String {
        self.0.join("/")
    }

    /// The path as answers show it: `/` and then the names.
    pub(crate) fn display(&self) -> String {
        format!("/{}", self.0.join("/"))
    }
}

/// `raw` with control characters escaped, for messages.
pub(crate) fn printable(raw: &str) -> String {
    raw.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}
