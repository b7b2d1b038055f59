//! The layers of the Panel library, checked: `http` on top, then the
//! domain modules, then `db` at the bottom. A module may name the layers
//! below it, never those above. Doc comments and tests may mention
//! anything (a link to where a thing is used is not a dependency).

use std::path::{Path, PathBuf};

/// `(module, paths it must not name)`: a module is a directory or a file
/// under `src/`.
const RULES: &[(&str, &[&str])] = &[
    (
        "db",
        &[
            "crate::http",
            "crate::servers",
            "crate::agents",
            "crate::identity",
            "crate::plugins",
            "crate::marketplace",
        ],
    ),
    (
        "identity",
        &["crate::http", "crate::servers", "crate::agents"],
    ),
    ("servers", &["crate::http", "crate::agents"]),
    ("agents", &["crate::http"]),
    ("files", &["crate::http"]),
    (
        "backups",
        &["crate::http", "crate::servers", "crate::agents"],
    ),
    (
        "databases",
        &["crate::http", "crate::servers", "crate::agents"],
    ),
    (
        "plugins",
        &["crate::http", "crate::servers", "crate::agents"],
    ),
    (
        "timers.rs",
        &["crate::http", "crate::servers", "crate::agents"],
    ),
    (
        "marketplace",
        &["crate::http", "crate::servers", "crate::agents"],
    ),
    (
        "marketplace.rs",
        &["crate::http", "crate::servers", "crate::agents"],
    ),
    (
        "secrets",
        &["crate::http", "crate::servers", "crate::agents"],
    ),
    (
        "error_code.rs",
        &["crate::http", "crate::servers", "crate::agents"],
    ),
    (
        "read_cache.rs",
        &["crate::http", "crate::servers", "crate::agents"],
    ),
];

fn rust_files(path: &Path, into: &mut Vec<PathBuf>) {
    if path.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(path)
            .expect("read a source directory")
            .map(|e| e.expect("a directory entry").path())
            .collect();
        entries.sort();
        for entry in entries {
            rust_files(&entry, into);
        }
    } else if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("tests.rs") {
        into.push(path.to_path_buf());
    }
}

/// The lines of `source` that are code: no comments, nothing after the
/// first top-level `#[cfg(test)]` (test modules close every file here).
fn code_lines(source: &str) -> impl Iterator<Item = (usize, &str)> {
    source
        .lines()
        .enumerate()
        .take_while(|(_, line)| *line != "#[cfg(test)]")
        .filter(|(_, line)| !line.trim_start().starts_with("//"))
        .map(|(n, line)| (n + 1, line))
}

#[test]
fn no_module_names_a_layer_above_its_own() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut breaches = Vec::new();
    for (module, forbidden) in RULES {
        let root = src.join(module);
        assert!(root.exists(), "{} is gone: update RULES", root.display());
        let mut files = Vec::new();
        rust_files(&root, &mut files);
        for file in files {
            let source = std::fs::read_to_string(&file).expect("read a source file");
            for (number, line) in code_lines(&source) {
                for path in *forbidden {
                    if line.contains(path) {
                        breaches.push(format!(
                            "{}:{number}: {module} names {path}: {}",
                            file.strip_prefix(&src).unwrap_or(&file).display(),
                            line.trim()
                        ));
                    }
                }
            }
        }
    }
    assert!(
        breaches.is_empty(),
        "layering breaches:\n{}",
        breaches.join("\n")
    );
}

#[test]
fn the_check_sees_a_breach_in_code_and_not_in_a_doc_comment() {
    let source =
        "//! see [`crate::http`]\nuse crate::http::ApiError;\n#[cfg(test)]\nuse crate::http::x;\n";
    let hits: Vec<usize> = code_lines(source)
        .filter(|(_, line)| line.contains("crate::http"))
        .map(|(n, _)| n)
        .collect();
    assert_eq!(hits, vec![2]);
}
