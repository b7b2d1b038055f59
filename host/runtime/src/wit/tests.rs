//! Guards the layout the module docs promise, by scanning the crate's
//! source tree: generated bindings and version modules are named only where
//! they belong.

use std::path::{Path, PathBuf};

/// The root of every generated path (the WIT package's namespace as a Rust
/// identifier), spelt in pieces so that this file does not contain it.
const GENERATED_ROOT: &str = concat!("ctrl", "_alt_play");

/// A bindings invocation, spelt so that this file does not contain it.
const BINDGEN_CALL: &str = concat!("bindgen", "!(");

/// Identifiers in `text` that name a version module: `since_v0_1_0` (the
/// modules under `src/wit/`) or `v0_1` (the old per-version module).
fn versioned_identifiers(text: &str) -> Vec<&str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| {
            let rest = word.strip_prefix("since_").unwrap_or(word);
            let Some(numbers) = rest.strip_prefix('v') else {
                return false;
            };
            let parts: Vec<&str> = numbers.split('_').collect();
            parts.len() >= 2
                && parts
                    .iter()
                    .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        })
        .collect()
}

fn has_word(text: &str, word: &str) -> bool {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .any(|w| w == word)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source directory") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Whether `path` (relative to `src/`) is a version module.
fn is_version_module(relative: &Path) -> bool {
    relative.parent() == Some(Path::new("wit"))
        && relative
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("since_v"))
}

#[test]
fn the_detector_finds_version_modules_and_nothing_else() {
    assert_eq!(
        versioned_identifiers("use crate::bindings::v0_1::exports; wit::since_v0_1_0::Guest"),
        ["v0_1", "since_v0_1_0"]
    );
    assert_eq!(
        versioned_identifiers("since_v0_2_0 v12_3_4"),
        ["since_v0_2_0", "v12_3_4"]
    );
    assert!(
        versioned_identifiers(
            "ApiVersion::V0_1_0, wit/plugin/since_v0.1.0, v0, v_1, dev_1, semver::Version"
        )
        .is_empty()
    );
    assert!(has_word(
        &format!("a::{GENERATED_ROOT}::plugin"),
        GENERATED_ROOT
    ));
    assert!(!has_word(
        &format!("a::{GENERATED_ROOT}s::plugin"),
        GENERATED_ROOT
    ));
}

#[test]
fn only_version_modules_name_generated_bindings_and_only_wit_names_version_modules() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut offences = Vec::new();
    let mut version_modules = 0;
    for path in &files {
        let relative = path.strip_prefix(&src).expect("under src");
        let text = std::fs::read_to_string(path).expect("readable source file");
        if is_version_module(relative) {
            version_modules += 1;
            continue;
        }
        if text.contains(BINDGEN_CALL) {
            offences.push(format!("{}: invokes bindgen", relative.display()));
        }
        if has_word(&text, GENERATED_ROOT) {
            offences.push(format!("{}: names a generated path", relative.display()));
        }
        if !relative.starts_with("wit") {
            for word in versioned_identifiers(&text) {
                offences.push(format!("{}: names {word}", relative.display()));
            }
        }
    }
    assert!(
        files.len() > 20 && files.iter().any(|f| f.ends_with("capabilities/kv.rs")),
        "the scan must see the whole source tree, saw {files:?}"
    );
    assert!(version_modules >= 1, "no version module under src/wit/");
    assert!(offences.is_empty(), "{offences:#?}");
}

/// The SHA-256 of a WIT folder: each file's name, a NUL, its bytes and a
/// NUL, by name.
fn folder_digest(dir: &Path) -> String {
    use sha2::{Digest, Sha256};
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .expect("a WIT folder")
        .map(|e| e.expect("an entry").file_name())
        .collect();
    names.sort();
    let mut hasher = Sha256::new();
    for name in names {
        hasher.update(name.as_encoded_bytes());
        hasher.update([0]);
        hasher.update(std::fs::read(dir.join(&name)).expect("a WIT file"));
        hasher.update([0]);
    }
    hex::encode(hasher.finalize())
}

#[test]
fn the_released_0_1_0_contract_stays_byte_for_byte_as_released() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../wit/plugin");
    assert_eq!(
        folder_digest(&root.join("since_v0.1.0")),
        "6888b1e809c4d24b6cdf484a861f385b2b69210b7e2b485558a8a4182d45b4fc",
        "wit/plugin/since_v0.1.0 is released and frozen: add to since_v0.2.0 instead"
    );
}

#[test]
fn the_0_2_0_contract_stays_byte_for_byte_as_frozen_when_the_wave_ended() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../wit/plugin");
    assert_eq!(
        folder_digest(&root.join("since_v0.2.0")),
        "e0c2a3bb9bc37827869e42b77b69f89fde1b696caa1db21d8adf0907eae797c2",
        "wit/plugin/since_v0.2.0 is frozen: add to a new since_v0.3.0 instead"
    );
}

#[test]
fn the_host_serves_0_1_and_0_2_and_refuses_other_versions_naming_the_range() {
    use super::ApiVersion;
    let version = |v: &str| semver::Version::parse(v).expect("a version");
    assert_eq!(
        ApiVersion::for_version(&version("0.1.0")).ok(),
        Some(ApiVersion::V0_1_0)
    );
    assert_eq!(
        ApiVersion::for_version(&version("0.1.7")).ok(),
        Some(ApiVersion::V0_1_0)
    );
    assert_eq!(
        ApiVersion::for_version(&version("0.2.0")).ok(),
        Some(ApiVersion::V0_2_0)
    );
    for unserved in ["0.3.0", "1.0.0", "0.0.9", "0.2.0-rc.1"] {
        let error = ApiVersion::for_version(&version(unserved))
            .expect_err("not served")
            .to_string();
        assert!(
            error.contains(unserved) && error.contains(">=0.1.0, <0.3.0"),
            "{unserved}: {error}"
        );
    }
}
