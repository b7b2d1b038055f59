//! Supported plugin API (WIT package) versions.
//!
//! Each released WIT version under `wit/plugin/since_vX.Y.Z` is frozen and
//! has a bindings module in [`crate::bindings`]. A component states the
//! version it targets; the host picks the bindings for it here, or refuses
//! it naming the supported range.

use crate::error::LoadError;

/// The API versions this host runs, one variant per bindings module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiVersion {
    /// `ctrl-alt-play:plugin@0.1.x`.
    V0_1,
}

/// Human-readable range of supported versions.
pub const SUPPORTED: &str = ">=0.1.0, <0.2.0";

/// The newest API version (what `cap plugin new` targets).
pub const LATEST: &str = "0.1.0";

/// Interfaces of our package that components may import.
pub const IMPORTED_INTERFACES: &[&str] =
    &["types", "log", "kv", "config", "http", "events", "panel"];

impl ApiVersion {
    /// Picks the bindings serving `version`.
    pub fn for_version(version: &semver::Version) -> Result<Self, LoadError> {
        if version.major == 0 && version.minor == 1 && version.pre.is_empty() {
            Ok(Self::V0_1)
        } else {
            Err(LoadError::UnsupportedApiVersion {
                found: version.clone(),
                supported: SUPPORTED.to_string(),
            })
        }
    }

    /// The newest supported version.
    pub fn latest() -> semver::Version {
        semver::Version::new(0, 1, 0)
    }
}
