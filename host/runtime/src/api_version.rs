//! Supported plugin API (WIT package) versions.
//!
//! Each released WIT version under `wit/plugin/` is frozen and has one host
//! module in [`crate::wit`], which defines the version enum and explains how
//! a new version joins. A component states the version it targets; the host
//! picks the module for it ([`ApiVersion::for_version`]) or refuses it
//! naming the supported range. This module keeps the public names.

pub use crate::wit::{ApiVersion, IMPORTED_INTERFACES, LATEST, SUPPORTED};
