//! What the tests of `cap` share.

use std::path::PathBuf;
use std::time::Duration;

/// The path of the `cap` binary under test.
pub(crate) fn cap_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_cap"))
}

/// An HTTP client that follows no redirects and gives up after 30 s.
pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client")
}

/// A temporary directory only its owner can enter (mode 0700), as the
/// Panel and the Marketplace require of their data directories
/// (`tempfile` creates `0777` minus the umask).
pub(crate) fn private_tempdir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
        .expect("chmod 700 the temporary directory");
    dir
}
