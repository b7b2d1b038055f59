//! Helpers shared by the tests of several crates of the workspace, as a
//! crate of its own rather than source files included by relative
//! `#[path]`: each helper compiles once, under its own name, with its own
//! dependencies, and a crate that uses one says so in its
//! `[dev-dependencies]`.
//!
//! | Module | What |
//! |---|---|
//! | [`stripe`] | A local stand-in for Stripe's API that records checkout requests and delivers signed webhooks |
//! | [`postgres`] | A fresh database per test on the local PostgreSQL server |
//! | [`services`] | Where PostgreSQL, MariaDB and Chromium are, and one clear failure when one is missing |
//! | [`packages`] | Real `.cap` packages built from the example plugins |
//!
//! plus [`repo_root`], [`private_tempdir`] and [`now`].
//!
//! Helpers used by one crate's tests only stay in that crate's test
//! directory; a helper moves here once a second crate needs it.
//!
//! This crate is a dev-dependency only: no library of the workspace links
//! it, and it may panic freely (a failed helper is a failed test).

use std::path::PathBuf;

pub mod packages;
pub mod postgres;
pub mod services;
pub mod stripe;

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    cap_e2e::repo_root()
}

/// The current time, unix seconds.
///
/// # Panics
///
/// When the clock is before 1970.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64
}

/// A temporary directory only its owner can enter (mode 0700), as the
/// Panel and the Marketplace require of their data directories
/// (`tempfile` creates `0777` minus the umask).
///
/// # Panics
///
/// When the directory cannot be created or its mode set.
pub fn private_tempdir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
        .expect("chmod 700 the temporary directory");
    dir
}
