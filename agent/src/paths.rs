//! Confining plan paths to a server's directory.

use std::path::{Component, Path, PathBuf};

/// A plan named a path outside the server directory.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("path `{0}` leaves the server directory")]
pub struct PathEscape(pub String);

/// Joins the relative `path` to `root`, refusing absolute paths, `..`
/// components and (for existing parents) symlinks that lead outside `root`.
/// Creates missing parent directories.
///
/// # Errors
///
/// [`PathEscape`] (also for I/O errors while checking, which are reported as
/// escapes because the path could not be shown to be inside).
pub fn confined(root: &Path, path: &str) -> Result<PathBuf, PathEscape> {
    let escape = || PathEscape(path.to_owned());
    let relative = Path::new(path);
    if path.is_empty() || path.contains('\0') {
        return Err(escape());
    }
    let mut clean = PathBuf::new();
    for component in relative.components() {
        match component {
            Component::Normal(part) => clean.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(escape());
            }
        }
    }
    let full = root.join(&clean);
    let root = root.canonicalize().map_err(|_| escape())?;
    let parent = full.parent().unwrap_or(&root);
    std::fs::create_dir_all(parent).map_err(|_| escape())?;
    let real_parent = parent.canonicalize().map_err(|_| escape())?;
    if !real_parent.starts_with(&root) {
        return Err(escape());
    }
    // A final component that is a symlink pointing outside is refused too.
    if let Ok(meta) = std::fs::symlink_metadata(&full)
        && meta.file_type().is_symlink()
    {
        let target = full.canonicalize().map_err(|_| escape())?;
        if !target.starts_with(&root) {
            return Err(escape());
        }
    }
    Ok(full)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn relative_paths_stay_inside_and_escapes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let inside = confined(dir.path(), "config/server.properties").unwrap();
        assert!(inside.starts_with(dir.path()));
        assert!(dir.path().join("config").is_dir());
        for bad in ["../x", "/etc/passwd", "a/../../x", ""] {
            assert!(confined(dir.path(), bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_symlinked_directory_pointing_outside_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("link")).unwrap();
        assert!(confined(dir.path(), "link/file").is_err());
    }
}
