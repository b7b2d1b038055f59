//! Plugin package files (`.cap`): a gzip-compressed tar holding
//! `plugin.toml`, `plugin.wasm` and optional `assets/…`, identified by the
//! sha256 of the whole file.
//!
//! Reading is defensive: sizes and entry counts are bounded before anything
//! is buffered, only regular files with plain relative paths are accepted,
//! duplicates are refused, and the manifest and component are validated
//! against each other before a [`Package`] exists.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;

use crate::component::{ComponentInfo, inspect, sha256_hex};
use crate::error::LoadError;
use crate::manifest::{Manifest, ManifestError};
use crate::output::is_safe_relative_path;

/// Largest package file, compressed.
pub const MAX_PACKAGE_BYTES: u64 = 100 * 1024 * 1024;
/// Largest total of unpacked entries.
pub const MAX_UNPACKED_BYTES: u64 = 200 * 1024 * 1024;
/// Most entries in a package.
pub const MAX_ENTRIES: usize = 1000;

/// Why a package was refused.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// Too big.
    #[error("package is {size} bytes; the limit is {limit}")]
    TooLarge {
        /// Actual or running size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// Not a gzip'd tar, or corrupt.
    #[error("not a plugin package (expected a .cap file: gzip-compressed tar): {0}")]
    Format(String),
    /// A path, type or count rule was broken.
    #[error("package entry {path:?}: {reason}")]
    BadEntry {
        /// The entry.
        path: String,
        /// Why.
        reason: String,
    },
    /// A required file is missing.
    #[error("package has no {0}")]
    Missing(&'static str),
    /// The manifest is invalid.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The component is invalid or does not match the manifest.
    #[error(transparent)]
    Component(#[from] LoadError),
    /// Writing failed.
    #[error("writing the package: {0}")]
    Io(#[from] std::io::Error),
}

/// A validated package.
#[derive(Debug, Clone)]
pub struct Package {
    /// The manifest.
    pub manifest: Manifest,
    /// The manifest's raw bytes, as packed.
    pub manifest_bytes: Vec<u8>,
    /// The component bytes.
    pub component: Vec<u8>,
    /// What the component is.
    pub info: ComponentInfo,
    /// Other files, by path below `assets/`.
    pub assets: BTreeMap<String, Vec<u8>>,
    /// sha256 of the package file.
    pub sha256: String,
}

/// Checks that a component fits its manifest: same API version, and every
/// declared kind's interfaces exported.
pub fn check_component_matches(manifest: &Manifest, info: &ComponentInfo) -> Result<(), LoadError> {
    if info.api_version != manifest.plugin.api {
        return Err(LoadError::ApiVersionMismatch {
            manifest: manifest.plugin.api.clone(),
            component: info.api_version.clone(),
        });
    }
    for kind in &manifest.plugin.kinds {
        for interface in kind.interfaces() {
            if !info.exports_interface(interface) {
                return Err(LoadError::MissingExport {
                    kind: kind.to_string(),
                    interface: format!("ctrl-alt-play:plugin/{interface}"),
                });
            }
        }
    }
    Ok(())
}

impl Package {
    /// Builds and validates a package from its parts.
    pub fn build(
        manifest_bytes: Vec<u8>,
        component: Vec<u8>,
        assets: BTreeMap<String, Vec<u8>>,
        max_component_bytes: u64,
    ) -> Result<(Self, Vec<u8>), PackageError> {
        let manifest = Manifest::parse(&manifest_bytes)?;
        let info = inspect(&component, max_component_bytes)?;
        check_component_matches(&manifest, &info)?;
        for path in assets.keys() {
            if !is_safe_relative_path(path) {
                return Err(PackageError::BadEntry {
                    path: path.clone(),
                    reason: "asset paths must be relative and stay inside assets/".into(),
                });
            }
        }
        let bytes = write_archive(&manifest_bytes, &component, &assets)?;
        let sha256 = sha256_hex(&bytes);
        Ok((
            Self {
                manifest,
                manifest_bytes,
                component,
                info,
                assets,
                sha256,
            },
            bytes,
        ))
    }

    /// Reads and validates a package file's bytes.
    pub fn read(bytes: &[u8], max_component_bytes: u64) -> Result<Self, PackageError> {
        if bytes.len() as u64 > MAX_PACKAGE_BYTES {
            return Err(PackageError::TooLarge {
                size: bytes.len() as u64,
                limit: MAX_PACKAGE_BYTES,
            });
        }
        if bytes.len() < 2 || bytes[0] != 0x1f || bytes[1] != 0x8b {
            return Err(PackageError::Format("missing gzip header".into()));
        }
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
        let mut manifest_bytes = None;
        let mut component = None;
        let mut assets = BTreeMap::new();
        let mut total = 0u64;
        let entries = archive
            .entries()
            .map_err(|e| PackageError::Format(e.to_string()))?;
        for (count, entry) in entries.enumerate() {
            if count >= MAX_ENTRIES {
                return Err(PackageError::Format(format!(
                    "more than {MAX_ENTRIES} entries"
                )));
            }
            let mut entry = entry.map_err(|e| PackageError::Format(e.to_string()))?;
            let path = entry
                .path()
                .map_err(|e| PackageError::Format(e.to_string()))?
                .to_string_lossy()
                .into_owned();
            let bad = |reason: &str| PackageError::BadEntry {
                path: path.clone(),
                reason: reason.to_string(),
            };
            let kind = entry.header().entry_type();
            if kind.is_dir() {
                continue;
            }
            if !kind.is_file() {
                return Err(bad("only regular files are allowed (no links or devices)"));
            }
            let size = entry
                .header()
                .size()
                .map_err(|e| PackageError::Format(e.to_string()))?;
            total = total.saturating_add(size);
            if total > MAX_UNPACKED_BYTES {
                return Err(PackageError::TooLarge {
                    size: total,
                    limit: MAX_UNPACKED_BYTES,
                });
            }
            let mut data = Vec::with_capacity(size.min(MAX_UNPACKED_BYTES) as usize);
            (&mut entry)
                .take(size)
                .read_to_end(&mut data)
                .map_err(|e| PackageError::Format(e.to_string()))?;
            let slot = match path.as_str() {
                "plugin.toml" => &mut manifest_bytes,
                "plugin.wasm" => &mut component,
                other => {
                    let Some(asset) = other.strip_prefix("assets/") else {
                        return Err(bad(
                            "unexpected file; packages hold plugin.toml, plugin.wasm and assets/",
                        ));
                    };
                    if !is_safe_relative_path(asset) {
                        return Err(bad("asset paths must be relative and stay inside assets/"));
                    }
                    if assets.insert(asset.to_string(), data).is_some() {
                        return Err(bad("appears twice"));
                    }
                    continue;
                }
            };
            if slot.replace(data).is_some() {
                return Err(bad("appears twice"));
            }
        }
        let manifest_bytes = manifest_bytes.ok_or(PackageError::Missing("plugin.toml"))?;
        let component = component.ok_or(PackageError::Missing("plugin.wasm"))?;
        let manifest = Manifest::parse(&manifest_bytes)?;
        let info = inspect(&component, max_component_bytes)?;
        check_component_matches(&manifest, &info)?;
        Ok(Self {
            manifest,
            manifest_bytes,
            component,
            info,
            assets,
            sha256: sha256_hex(bytes),
        })
    }
}

fn write_archive(
    manifest: &[u8],
    component: &[u8],
    assets: &BTreeMap<String, Vec<u8>>,
) -> Result<Vec<u8>, std::io::Error> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    let mut add = |path: &str, data: &[u8]| -> std::io::Result<()> {
        let mut header = tar::Header::new_ustar();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        // Fixed metadata makes packing reproducible: same inputs, same sha256.
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, path, data)
    };
    add("plugin.toml", manifest)?;
    add("plugin.wasm", component)?;
    for (path, data) in assets {
        add(&format!("assets/{path}"), data)?;
    }
    let mut gz = tar.into_inner()?;
    gz.flush()?;
    gz.finish()
}

/// Reads a plugin's `assets/` directory for [`Package::build`]: every
/// regular file below `root`, keyed by its `/`-separated path. A missing
/// directory is no assets; anything but files and directories (a symlink, a
/// socket) is refused, and so is a file over [`MAX_PACKAGE_BYTES`], each
/// with an error naming the path.
///
/// # Errors
///
/// The I/O error, or [`std::io::ErrorKind::InvalidInput`] for what a
/// package cannot hold.
pub fn read_assets(root: &Path) -> std::io::Result<BTreeMap<String, Vec<u8>>> {
    let mut assets = BTreeMap::new();
    if !root.is_dir() {
        return Ok(assets);
    }
    let with_path = |path: &Path, e: std::io::Error| {
        std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
    };
    let refuse = |path: &Path, why: &str| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{}: {why}", path.display()),
        )
    };
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).map_err(|e| with_path(&dir, e))? {
            let entry = entry.map_err(|e| with_path(&dir, e))?;
            let path = entry.path();
            let kind = entry.file_type().map_err(|e| with_path(&path, e))?;
            if kind.is_dir() {
                stack.push(path);
                continue;
            }
            if !kind.is_file() {
                return Err(refuse(
                    &path,
                    "not a regular file; packages hold only files",
                ));
            }
            let size = entry.metadata().map_err(|e| with_path(&path, e))?.len();
            if size > MAX_PACKAGE_BYTES {
                return Err(refuse(
                    &path,
                    &format!("{size} bytes; the limit is {MAX_PACKAGE_BYTES}"),
                ));
            }
            let relative = path
                .strip_prefix(root)
                .map_err(|_| refuse(&path, "outside the assets directory"))?
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            let bytes = std::fs::read(&path).map_err(|e| with_path(&path, e))?;
            assets.insert(relative, bytes);
        }
    }
    Ok(assets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_bytes_that_are_not_a_package() {
        assert!(matches!(
            Package::read(b"garbage", u64::MAX),
            Err(PackageError::Format(_))
        ));
        let gz_garbage = {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(b"not a tar at all, just text").expect("write");
            e.finish().expect("finish")
        };
        assert!(Package::read(&gz_garbage, u64::MAX).is_err());
    }

    #[test]
    fn refuses_a_package_without_a_manifest() {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        let mut tar = tar::Builder::new(gz);
        let mut h = tar::Header::new_gnu();
        h.set_size(4);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut h, "plugin.wasm", &b"\0asm"[..])
            .expect("append");
        let bytes = tar.into_inner().expect("tar").finish().expect("gz");
        assert!(matches!(
            Package::read(&bytes, u64::MAX),
            Err(PackageError::Missing("plugin.toml"))
        ));
    }

    #[test]
    fn refuses_a_symlink_entry() {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        let mut tar = tar::Builder::new(gz);
        let mut h = tar::Header::new_gnu();
        h.set_size(0);
        h.set_entry_type(tar::EntryType::Symlink);
        tar.append_link(&mut h, "assets/x", "/etc/passwd")
            .expect("append");
        let bytes = tar.into_inner().expect("tar").finish().expect("gz");
        let err = Package::read(&bytes, u64::MAX).unwrap_err();
        assert!(err.to_string().contains("only regular files"), "{err}");
    }
}
