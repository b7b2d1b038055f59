//! The lockfile: the exact versions and digests an install resolved to.
//!
//! ```toml
//! version = 1
//!
//! [[package]]
//! id = "quota-guard"
//! version = "1.0.0"
//! sha256 = "9f86d0…"
//! dependencies = []
//! ```
//!
//! Entries are sorted by id so that the file diffs well. A locked version is
//! kept by the next resolution when it still fits, even if it has been
//! yanked since; its sha256 must still be the one the index lists.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// The only lockfile format version so far.
pub const LOCKFILE_VERSION: u32 = 1;

/// Why a lockfile could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LockfileError {
    /// Not TOML, or the wrong shape.
    #[error("lockfile: {0}")]
    Parse(String),
    /// A format version this build does not know.
    #[error("lockfile version {0} is not supported (expected {LOCKFILE_VERSION})")]
    Version(u32),
    /// A package appears twice.
    #[error("lockfile lists {0} twice")]
    Duplicate(String),
    /// A digest is not 64 hex digits.
    #[error("lockfile: {id} has an invalid sha256")]
    Digest {
        /// The package.
        id: String,
    },
}

/// One locked package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedPackage {
    /// Plugin id.
    pub id: String,
    /// Exact version.
    pub version: semver::Version,
    /// sha256 of the package file.
    pub sha256: String,
    /// Ids of the packages it depends on.
    #[serde(default)]
    pub dependencies: Vec<String>,
}

/// A lockfile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lockfile {
    /// Format version ([`LOCKFILE_VERSION`]).
    pub version: u32,
    /// Locked packages, sorted by id.
    #[serde(rename = "package", default)]
    pub packages: Vec<LockedPackage>,
}

impl Default for Lockfile {
    fn default() -> Self {
        Lockfile {
            version: LOCKFILE_VERSION,
            packages: Vec::new(),
        }
    }
}

impl Lockfile {
    /// A lockfile of `packages` (sorted here).
    pub fn new(mut packages: Vec<LockedPackage>) -> Lockfile {
        packages.sort_by(|a, b| a.id.cmp(&b.id));
        Lockfile {
            version: LOCKFILE_VERSION,
            packages,
        }
    }

    /// The entry for `id`.
    pub fn get(&self, id: &str) -> Option<&LockedPackage> {
        self.packages.iter().find(|p| p.id == id)
    }

    /// Parses and checks a lockfile.
    pub fn from_toml(text: &str) -> Result<Lockfile, LockfileError> {
        let lock: Lockfile =
            toml::from_str(text).map_err(|e| LockfileError::Parse(e.to_string()))?;
        if lock.version != LOCKFILE_VERSION {
            return Err(LockfileError::Version(lock.version));
        }
        let mut seen = BTreeSet::new();
        for p in &lock.packages {
            if !seen.insert(p.id.as_str()) {
                return Err(LockfileError::Duplicate(p.id.clone()));
            }
            if p.sha256.len() != 64 || !p.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(LockfileError::Digest { id: p.id.clone() });
            }
        }
        Ok(Lockfile::new(lock.packages))
    }

    /// The lockfile as TOML.
    pub fn to_toml(&self) -> String {
        // A struct of strings, versions and vectors always serializes.
        toml::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lockfile_round_trips_through_toml_sorted_by_id() {
        let lock = Lockfile::new(vec![
            LockedPackage {
                id: "zeta".into(),
                version: semver::Version::new(1, 2, 3),
                sha256: "a".repeat(64),
                dependencies: vec!["alpha".into()],
            },
            LockedPackage {
                id: "alpha".into(),
                version: semver::Version::new(0, 1, 0),
                sha256: "b".repeat(64),
                dependencies: vec![],
            },
        ]);
        let text = lock.to_toml();
        assert!(text.find("alpha") < text.find("zeta"));
        assert_eq!(Lockfile::from_toml(&text).expect("parses"), lock);
    }

    #[test]
    fn a_lockfile_with_a_duplicate_or_a_bad_digest_is_refused() {
        let entry = |id: &str, sha: &str| {
            format!("[[package]]\nid = \"{id}\"\nversion = \"1.0.0\"\nsha256 = \"{sha}\"\n")
        };
        let dup = format!(
            "version = 1\n{}{}",
            entry("a", &"c".repeat(64)),
            entry("a", &"d".repeat(64))
        );
        assert!(matches!(
            Lockfile::from_toml(&dup),
            Err(LockfileError::Duplicate(_))
        ));
        let bad = format!("version = 1\n{}", entry("a", "xyz"));
        assert!(matches!(
            Lockfile::from_toml(&bad),
            Err(LockfileError::Digest { .. })
        ));
        assert!(matches!(
            Lockfile::from_toml("version = 2\n"),
            Err(LockfileError::Version(2))
        ));
    }
}
