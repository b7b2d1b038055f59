//! Shared helpers: where the community eggs are, and a small egg to vary.

use std::path::PathBuf;

/// The directory holding `pterodactyl/` and `pelican/` eggs: `CAP_EGGS_DIR`,
/// or the copies under `tests/fixtures`.
pub(crate) fn eggs_dir() -> PathBuf {
    std::env::var_os("CAP_EGGS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"))
}

/// Every community egg as (file name, bytes), sorted.
pub(crate) fn community_eggs() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for sub in ["pterodactyl", "pelican"] {
        let dir = eggs_dir().join(sub);
        let mut paths: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("a directory entry").path())
            .filter(|p| {
                p.extension()
                    .is_some_and(|e| e == "json" || e == "yaml" || e == "yml")
            })
            .collect();
        paths.sort();
        for p in paths {
            let name = format!("{sub}/{}", p.file_name().expect("a name").to_string_lossy());
            out.push((name, std::fs::read(&p).expect("an egg")));
        }
    }
    out
}

/// A valid PTDL_v2 egg as JSON, with `patch` applied to it.
pub(crate) fn egg_json(patch: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let mut egg: serde_json::Value =
        serde_json::from_str(include_str!("../test-egg.json")).expect("the test egg");
    patch(&mut egg);
    serde_json::to_vec(&egg).expect("JSON")
}
