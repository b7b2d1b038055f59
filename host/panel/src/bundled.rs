//! Installing the plugins a Panel comes with. Its embedder carries them
//! (the `cap` binary carries the example plugins, compiled when it is
//! built) as the parts of a package; they are packed here with the writer
//! `cap plugin pack` uses and go through the [`PluginManager`] — the same
//! reading, validation, grant and activation path as an admin's upload, so
//! nothing bundled gets a shortcut past the sandbox or the capability
//! grants.
//!
//! The Panel library carries no plugin itself: which plugins come with a
//! Panel, and how they were built, is the embedder's choice. This module
//! decides how they are installed: a plugin already installed (any
//! version, any state) is left alone, so an admin's deactivation or update
//! survives restarts, and only the missing ones are packed.

use std::collections::BTreeMap;

use cap_runtime::component::DEFAULT_MAX_COMPONENT_BYTES;
use cap_runtime::{Grants, Package, PackageError};

use crate::db::Actor;
use crate::plugins::{PluginError, PluginManager};

/// One bundled plugin: the parts of its package and how it is installed.
#[derive(Debug, Clone, Copy)]
pub struct Bundled<'a> {
    /// The plugin id its manifest must declare.
    pub id: &'a str,
    /// Its `plugin.toml`.
    pub manifest: &'a [u8],
    /// Its component.
    pub component: &'a [u8],
    /// Its `assets/` files by `/`-separated path below `assets/`.
    pub assets: &'a [(&'a str, &'a [u8])],
    /// Whether it is granted what it requests and activated on install
    /// (otherwise it waits for the admin to configure it).
    pub activate_on_install: bool,
}

impl Bundled<'_> {
    /// Its `.cap` package, packed by [`Package::build`] as `cap plugin
    /// pack` packs (the same bytes for the same parts).
    ///
    /// # Errors
    ///
    /// [`PackageError`] when the parts do not make a valid package.
    pub fn package(&self) -> Result<Vec<u8>, PackageError> {
        self.pack().map(|(_, bytes)| bytes)
    }

    fn pack(&self) -> Result<(Package, Vec<u8>), PackageError> {
        let assets: BTreeMap<String, Vec<u8>> = self
            .assets
            .iter()
            .map(|(path, bytes)| ((*path).to_owned(), bytes.to_vec()))
            .collect();
        Package::build(
            self.manifest.to_vec(),
            self.component.to_vec(),
            assets,
            DEFAULT_MAX_COMPONENT_BYTES,
        )
    }
}

/// Receives one line per step, for a progress display.
pub trait Progress {
    /// A step is starting or has finished.
    fn step(&self, message: &str);
}

/// Discards progress.
#[derive(Debug, Clone, Copy, Default)]
pub struct Quiet;

impl Progress for Quiet {
    fn step(&self, _: &str) {}
}

/// Why the bundled plugins could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// The parts do not make a valid package.
    #[error("packing {plugin}")]
    Package {
        /// The plugin.
        plugin: String,
        /// Why.
        #[source]
        source: PackageError,
    },
    /// A package declares another plugin id than the one it is bundled as.
    #[error("the plugin bundled as {expected} is {found}")]
    WrongId {
        /// The id it is bundled as.
        expected: String,
        /// The id its manifest declares.
        found: String,
    },
    /// The plugin manager refused or failed (an invalid package is refused
    /// here, as an upload would be).
    #[error("installing {plugin}")]
    Install {
        /// The plugin.
        plugin: String,
        /// Why.
        #[source]
        source: PluginError,
    },
}

/// Installs (and, where [`Bundled::activate_on_install`], grants what it
/// requests and activates) each of `wanted` that is not installed yet.
/// Returns how many were installed.
///
/// # Errors
///
/// [`BundleError`] naming the plugin; plugins installed before the failure
/// stay installed.
pub async fn ensure_installed(
    manager: &PluginManager,
    wanted: &[Bundled<'_>],
    progress: &dyn Progress,
) -> Result<usize, BundleError> {
    let mut missing = Vec::new();
    for bundled in wanted {
        match manager.get(bundled.id).await {
            Ok(_) => {}
            Err(PluginError::NotFound(_)) => missing.push(*bundled),
            Err(source) => {
                return Err(BundleError::Install {
                    plugin: bundled.id.to_owned(),
                    source,
                });
            }
        }
    }
    let actor = Actor::system();
    for (n, bundled) in missing.iter().enumerate() {
        let id = bundled.id;
        let install_error = |source| BundleError::Install {
            plugin: id.to_owned(),
            source,
        };
        let (package, bytes) = bundled.pack().map_err(|source| BundleError::Package {
            plugin: id.to_owned(),
            source,
        })?;
        let manifest = package.manifest;
        // Compared before anything is stored under another id.
        if manifest.plugin.id != id {
            return Err(BundleError::WrongId {
                expected: id.to_owned(),
                found: manifest.plugin.id,
            });
        }
        // The manager reads and validates the bytes as it does an upload's.
        manager
            .install(&bytes, &actor)
            .await
            .map_err(install_error)?;
        let state = if bundled.activate_on_install {
            manager
                .grant(id, Grants::all_requested(&manifest), &actor)
                .await
                .map_err(install_error)?;
            manager.activate(id, &actor).await.map_err(install_error)?;
            "active"
        } else {
            "installed, inactive until configured"
        };
        progress.step(&format!(
            "[{}/{}] {id} {} ({state})",
            n + 1,
            missing.len(),
            manifest.plugin.version
        ));
    }
    Ok(missing.len())
}
