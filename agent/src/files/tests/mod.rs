//! Tests of the confined file operations, against real directories (and,
//! for pulls, a real HTTP server on loopback).

mod archives;
mod confinement;
mod denylist;
mod limits;
mod ops;
mod pull;
mod uploads;

use std::fmt::Debug;
use std::path::Path;

use cap_protocol::files::{FileError, FileErrorCode, FileScope};

use super::ServerFiles;

/// A server directory in a temporary directory of its own (so that `..`
/// from it reaches directories that are not the server's).
pub(super) struct Server {
    _outer: tempfile::TempDir,
    dir: std::path::PathBuf,
}

impl Server {
    pub(super) fn new() -> Self {
        let outer = tempfile::tempdir().unwrap();
        let dir = outer.path().join("server");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(outer.path().join("neighbour.txt"), b"not the server's").unwrap();
        Self { _outer: outer, dir }
    }

    pub(super) fn path(&self) -> &Path {
        &self.dir
    }

    /// Files with an unrestricted scope.
    pub(super) fn files(&self) -> ServerFiles {
        self.with(FileScope::default())
    }

    pub(super) fn with(&self, scope: FileScope) -> ServerFiles {
        ServerFiles::open(&self.dir, scope).unwrap()
    }

    /// Files whose scope denies `patterns`.
    pub(super) fn denying(&self, patterns: &[&str]) -> ServerFiles {
        self.with(FileScope {
            denylist: patterns.iter().map(|p| (*p).to_owned()).collect(),
            ..FileScope::default()
        })
    }

    /// Files limited to `disk_mb`.
    pub(super) fn limited(&self, disk_mb: u64) -> ServerFiles {
        self.with(FileScope {
            disk_mb,
            ..FileScope::default()
        })
    }

    pub(super) fn write(&self, rel: &str, contents: &[u8]) {
        let path = self.dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }

    pub(super) fn read(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.dir.join(rel)).unwrap()
    }

    pub(super) fn exists(&self, rel: &str) -> bool {
        std::fs::symlink_metadata(self.dir.join(rel)).is_ok()
    }

    pub(super) fn symlink(&self, target: &str, rel: &str) {
        std::os::unix::fs::symlink(target, self.dir.join(rel)).unwrap();
    }

    /// The names in the server's directory (or a directory in it).
    pub(super) fn names(&self, rel: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.dir.join(rel))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

/// The error's code, failing the test on success.
#[track_caller]
pub(super) fn code<T: Debug>(result: Result<T, FileError>) -> FileErrorCode {
    let error = result.expect_err("the operation should have failed");
    assert!(
        error.path.is_some(),
        "every error names its path: {error:?}"
    );
    assert!(!error.message.is_empty());
    error.code
}

/// Incompressible bytes (xorshift), so that archives of them keep their
/// size.
pub(super) fn noise(len: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}
