//! Plugin package files (`.cap`): a gzip-compressed tar holding
//! `plugin.toml`, `plugin.wasm` and optional `assets/…`, identified by the
//! sha256 of the whole file.
//!
//! Reading is defensive: sizes and entry counts are bounded before anything
//! is buffered, only regular files with plain relative paths are accepted,
//! duplicates are refused, and the manifest and component are validated
//! against each other before a [`Package`] exists.
//!
//! # Bounding what the `tar` reader does on its own
//!
//! The `tar` crate reads some entries for itself before it hands us the entry
//! they describe: GNU long names (`L`), long link names (`K`) and PAX
//! extended headers (`x`) are each read whole into memory, whatever size
//! their header declares, and the data of entries it skips (directories) is
//! decompressed and thrown away. A checked size on the entries we read
//! therefore bounds neither memory nor work: a 1 MB package declaring a
//! 1 GiB long name made the reader allocate 1 GiB.
//!
//! So the decompressed stream goes through a [`StreamGuard`] before the tar
//! reader sees it. The guard follows the tar framing itself (512-byte header
//! blocks, each entry's data padded to 512 bytes, a PAX `size` record
//! overriding the next entry's size, exactly as `tar` applies it) and fails
//! the read, before a byte of the entry's data is passed on, when
//!
//! - a long name or long link declares more than [`MAX_LONG_NAME_BYTES`],
//! - a PAX header declares more than [`MAX_PAX_HEADER_BYTES`],
//! - an entry is a GNU sparse file (its extension blocks would break the
//!   framing, and packages hold plain files), or
//! - the whole decompressed stream passes [`MAX_DECOMPRESSED_BYTES`].
//!
//! The refusal is recorded in the guard and reported as a typed
//! [`PackageError`], whatever the `tar` crate makes of the failed read.

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
/// Largest GNU long-name or long-link entry: a path, so a few KiB at most.
pub const MAX_LONG_NAME_BYTES: u64 = 4 * 1024;
/// Largest PAX extended header entry.
pub const MAX_PAX_HEADER_BYTES: u64 = 64 * 1024;
/// Largest decompressed tar stream: the unpacked entries plus 16 MiB, room
/// for [`MAX_ENTRIES`] entries' headers, padding and long names (a few PAX
/// headers fit too; a package that needs more is refused).
pub const MAX_DECOMPRESSED_BYTES: u64 = MAX_UNPACKED_BYTES + 16 * 1024 * 1024;

/// The tar block size.
const BLOCK: u64 = 512;

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
    /// A header entry the `tar` reader would buffer whole declares more
    /// than its bound (see the module docs).
    #[error("package header entry ({kind}) declares {size} bytes; the limit is {limit}")]
    HeaderTooLarge {
        /// Which header: `long name`, `long link name` or `PAX header`.
        kind: &'static str,
        /// The declared size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The decompressed stream is longer than [`MAX_DECOMPRESSED_BYTES`].
    #[error("package decompresses to more than {limit} bytes")]
    DecompressedTooLarge {
        /// The limit.
        limit: u64,
    },
    /// An entry type that packages never hold and that the reader cannot
    /// bound (GNU sparse files).
    #[error("package holds a {0} entry; packages hold only regular files")]
    UnsupportedEntry(&'static str),
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
            if !is_asset_path(path) {
                return Err(PackageError::BadEntry {
                    path: path.clone(),
                    reason: ASSET_PATH_RULE.into(),
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
        let guard = StreamGuard::new(flate2::read::GzDecoder::new(bytes), MAX_DECOMPRESSED_BYTES);
        let Unpacked {
            manifest_bytes,
            component,
            assets,
        } = unpack(guard)?;
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

/// The files of a package, before validation.
#[derive(Debug)]
struct Unpacked {
    manifest_bytes: Option<Vec<u8>>,
    component: Option<Vec<u8>>,
    assets: BTreeMap<String, Vec<u8>>,
}

/// Reads the entries of a decompressed tar stream behind a guard. A refusal
/// the guard recorded wins over the error the `tar` crate built from it.
fn unpack<R: Read>(guard: StreamGuard<R>) -> Result<Unpacked, PackageError> {
    let mut archive = tar::Archive::new(guard);
    let result = read_entries(&mut archive);
    match (result, archive.into_inner().refusal) {
        (Err(_), Some(refusal)) => Err(refusal.into()),
        (result, _) => result,
    }
}

fn read_entries<R: Read>(archive: &mut tar::Archive<R>) -> Result<Unpacked, PackageError> {
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
        // The size the reader will deliver: a PAX `size` record overrides
        // the header's field.
        let size = entry.size();
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
                if !is_asset_path(asset) {
                    return Err(bad(ASSET_PATH_RULE));
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
    Ok(Unpacked {
        manifest_bytes,
        component,
        assets,
    })
}

/// Why the [`StreamGuard`] stopped a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    Header {
        kind: &'static str,
        size: u64,
        limit: u64,
    },
    Stream {
        limit: u64,
    },
    Sparse,
}

impl From<Refusal> for PackageError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Header { kind, size, limit } => Self::HeaderTooLarge { kind, size, limit },
            Refusal::Stream { limit } => Self::DecompressedTooLarge { limit },
            Refusal::Sparse => Self::UnsupportedEntry("GNU sparse file"),
        }
    }
}

/// A reader under the tar reader that follows the tar framing and refuses
/// what the tar reader would buffer or decompress without bound (see the
/// module docs). It mirrors `tar` 0.4's reading: which headers are
/// extensions, and that a PAX `size` record sets the size of the next entry
/// that is not an extension header.
struct StreamGuard<R> {
    inner: R,
    /// Bytes passed on so far, and the most allowed.
    passed: u64,
    limit: u64,
    /// The header block being assembled, and how much of it has passed.
    header: [u8; BLOCK as usize],
    filled: usize,
    /// Bytes of the current entry's data and padding still to pass.
    body: u64,
    /// A PAX header's records being collected, and how many of its data
    /// bytes (padding excluded) are still to come.
    pax: Option<(Vec<u8>, u64)>,
    /// The size a collected PAX header sets for the next entry.
    pax_size: Option<u64>,
    /// Why reading stopped, once it did.
    refusal: Option<Refusal>,
}

impl<R: Read> StreamGuard<R> {
    fn new(inner: R, limit: u64) -> Self {
        Self {
            inner,
            passed: 0,
            limit,
            header: [0; BLOCK as usize],
            filled: 0,
            body: 0,
            pax: None,
            pax_size: None,
            refusal: None,
        }
    }

    /// Follows the framing over bytes that are about to be passed on.
    fn follow(&mut self, mut bytes: &[u8]) -> Result<(), Refusal> {
        while !bytes.is_empty() {
            if self.body > 0 {
                let take = self.body.min(bytes.len() as u64) as usize;
                if let Some((records, left)) = &mut self.pax {
                    let data = (*left).min(take as u64) as usize;
                    records.extend_from_slice(&bytes[..data]);
                    *left -= data as u64;
                }
                self.body -= take as u64;
                bytes = &bytes[take..];
                if self.body == 0
                    && let Some((records, _)) = self.pax.take()
                {
                    self.pax_size = pax_size(&records);
                }
            } else {
                let take = (self.header.len() - self.filled).min(bytes.len());
                self.header[self.filled..self.filled + take].copy_from_slice(&bytes[..take]);
                self.filled += take;
                bytes = &bytes[take..];
                if self.filled == self.header.len() {
                    self.filled = 0;
                    self.on_header()?;
                }
            }
        }
        Ok(())
    }

    /// A whole header block has passed: work out how much data follows it.
    fn on_header(&mut self) -> Result<(), Refusal> {
        if self.header.iter().all(|b| *b == 0) {
            // End-of-archive marker; the tar reader stops here.
            return Ok(());
        }
        let header = tar::Header::from_byte_slice(&self.header);
        let kind = header.entry_type();
        if kind.is_gnu_sparse() {
            return Err(Refusal::Sparse);
        }
        // A size the tar reader cannot parse fails it on this same header.
        let Ok(declared) = header.entry_size() else {
            return Ok(());
        };
        let recognized = header.as_gnu().is_some() || header.as_ustar().is_some();
        let extension = kind.is_gnu_longname()
            || kind.is_gnu_longlink()
            || kind.is_pax_local_extensions()
            || kind.is_pax_global_extensions();
        let size = if extension {
            let (name, limit) = if kind.is_gnu_longname() {
                ("long name", MAX_LONG_NAME_BYTES)
            } else if kind.is_gnu_longlink() {
                ("long link name", MAX_LONG_NAME_BYTES)
            } else {
                ("PAX header", MAX_PAX_HEADER_BYTES)
            };
            if declared > limit {
                return Err(Refusal::Header {
                    kind: name,
                    size: declared,
                    limit,
                });
            }
            if recognized && kind.is_pax_local_extensions() {
                self.pax = Some((Vec::with_capacity(declared as usize), declared));
            } else if !recognized || kind.is_pax_global_extensions() {
                // Handed out as an entry of its own, which ends the PAX
                // header's reach.
                self.pax_size = None;
            }
            declared
        } else {
            self.pax_size.take().unwrap_or(declared)
        };
        self.body = size
            .checked_next_multiple_of(BLOCK)
            .ok_or(Refusal::Stream { limit: self.limit })?;
        if self.body == 0
            && let Some((records, _)) = self.pax.take()
        {
            self.pax_size = pax_size(&records);
        }
        Ok(())
    }
}

/// The `size` record of a PAX header, read as the `tar` crate reads it.
fn pax_size(records: &[u8]) -> Option<u64> {
    for record in tar::PaxExtensions::new(records) {
        let record = record.ok()?;
        if record.key() != Ok("size") {
            continue;
        }
        return record.value().ok()?.parse().ok();
    }
    None
}

impl<R: Read> Read for StreamGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if let Some(refusal) = self.refusal {
            return Err(refused(refusal));
        }
        let n = self.inner.read(buf)?;
        self.passed = self.passed.saturating_add(n as u64);
        let checked = if self.passed > self.limit {
            Err(Refusal::Stream { limit: self.limit })
        } else {
            self.follow(&buf[..n])
        };
        checked.map_err(|refusal| {
            self.refusal = Some(refusal);
            refused(refusal)
        })?;
        Ok(n)
    }
}

fn refused(refusal: Refusal) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        PackageError::from(refusal).to_string(),
    )
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

/// What [`is_asset_path`] asks of an asset's path.
const ASSET_PATH_RULE: &str =
    "asset paths must be relative, stay inside assets/ and have no empty or `.` components";

/// Whether `path` names an asset exactly as a tar reader gives it back: a
/// safe relative path with no empty or `.` components, which archives
/// normalise away (`a/./b` would read back as `a/b`, and `x` beside `x/.`
/// as a duplicate).
fn is_asset_path(path: &str) -> bool {
    is_safe_relative_path(path) && path.split('/').all(|c| !c.is_empty() && c != ".")
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

    /// A header block of `kind` for `path` declaring `size` bytes of data.
    fn header(kind: tar::EntryType, path: &str, size: u64) -> Vec<u8> {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(0o644);
        h.set_path(path).expect("short path");
        h.set_cksum();
        h.as_bytes().to_vec()
    }

    /// `data` padded to whole blocks.
    fn padded(data: &[u8]) -> Vec<u8> {
        let mut out = data.to_vec();
        out.resize(data.len().next_multiple_of(512), 0);
        out
    }

    /// A PAX header entry holding `records` (`key=value` pairs).
    fn pax(records: &[(&str, &str)]) -> Vec<u8> {
        let mut body = Vec::new();
        for (key, value) in records {
            let rest = format!(" {key}={value}\n");
            // The length field counts itself.
            let mut len = rest.len() + 1;
            while format!("{len}{rest}").len() != len {
                len += 1;
            }
            body.extend_from_slice(format!("{len}{rest}").as_bytes());
        }
        let mut out = header(tar::EntryType::XHeader, "PaxHeaders/x", body.len() as u64);
        out.extend(padded(&body));
        out
    }

    /// Gzip of `prefix` followed by `zeros` zero bytes, written in chunks so
    /// a bomb never sits in memory uncompressed.
    fn gzip(prefix: &[u8], zeros: u64) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(prefix).expect("write");
        let chunk = vec![0u8; 1 << 20];
        let mut left = zeros;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            e.write_all(&chunk[..n]).expect("write");
            left -= n as u64;
        }
        e.finish().expect("finish")
    }

    /// A decompressed stream that serves `prefix` and then zeros without
    /// end, counting what the reader took.
    struct Endless {
        prefix: Vec<u8>,
        served: std::rc::Rc<std::cell::Cell<u64>>,
    }

    impl Read for Endless {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let at = self.served.get();
            let n = buf.len();
            for (i, b) in buf.iter_mut().enumerate() {
                *b = self.prefix.get(at as usize + i).copied().unwrap_or(0);
            }
            self.served.set(at + n as u64);
            Ok(n)
        }
    }

    /// Unpacks `prefix` followed by endless zeros behind a guard of
    /// `limit`; returns the result and how many bytes were read.
    fn unpack_endless(prefix: Vec<u8>, limit: u64) -> (Result<Unpacked, PackageError>, u64) {
        let served = std::rc::Rc::new(std::cell::Cell::new(0));
        let reader = Endless {
            prefix,
            served: served.clone(),
        };
        let result = unpack(StreamGuard::new(reader, limit));
        (result, served.get())
    }

    const GIB: u64 = 1 << 30;

    #[test]
    fn a_package_declaring_a_one_gib_long_name_is_refused_before_reading_it() {
        // What the attack looked like: a small file whose long name entry
        // declares 1 GiB (only part of it is present; the old reader
        // buffered whatever was there before it failed).
        let bytes = gzip(
            &header(tar::EntryType::GNULongName, "././@LongLink", GIB),
            8 << 20,
        );
        assert!(bytes.len() < 1 << 20, "{} bytes", bytes.len());
        let err = Package::read(&bytes, u64::MAX).unwrap_err();
        assert!(
            matches!(
                err,
                PackageError::HeaderTooLarge {
                    kind: "long name",
                    size: GIB,
                    limit: MAX_LONG_NAME_BYTES
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn a_long_name_bomb_is_refused_without_reading_past_its_header() {
        let (result, served) = unpack_endless(
            header(tar::EntryType::GNULongName, "././@LongLink", GIB),
            MAX_DECOMPRESSED_BYTES,
        );
        assert!(
            matches!(result, Err(PackageError::HeaderTooLarge { .. })),
            "{result:?}"
        );
        assert!(served <= 64 * 1024, "read {served} bytes");
    }

    #[test]
    fn a_long_link_name_bomb_is_refused_without_reading_past_its_header() {
        let (result, served) = unpack_endless(
            header(tar::EntryType::GNULongLink, "././@LongLink", GIB),
            MAX_DECOMPRESSED_BYTES,
        );
        assert!(
            matches!(
                result,
                Err(PackageError::HeaderTooLarge {
                    kind: "long link name",
                    size: GIB,
                    ..
                })
            ),
            "{result:?}"
        );
        assert!(served <= 64 * 1024, "read {served} bytes");
    }

    #[test]
    fn a_pax_header_bomb_is_refused_without_reading_past_its_header() {
        for kind in [tar::EntryType::XHeader, tar::EntryType::XGlobalHeader] {
            let (result, served) =
                unpack_endless(header(kind, "PaxHeaders/x", GIB), MAX_DECOMPRESSED_BYTES);
            assert!(
                matches!(
                    result,
                    Err(PackageError::HeaderTooLarge {
                        kind: "PAX header",
                        size: GIB,
                        limit: MAX_PAX_HEADER_BYTES
                    })
                ),
                "{kind:?}: {result:?}"
            );
            assert!(served <= 64 * 1024, "{kind:?}: read {served} bytes");
        }
        // And through the whole reader, gzip and all.
        let bytes = gzip(
            &header(tar::EntryType::XHeader, "PaxHeaders/x", GIB),
            1 << 20,
        );
        assert!(matches!(
            Package::read(&bytes, u64::MAX),
            Err(PackageError::HeaderTooLarge {
                kind: "PAX header",
                ..
            })
        ));
    }

    #[test]
    fn a_long_name_just_over_the_bound_is_refused_and_one_at_it_is_not() {
        let name = "a".repeat(MAX_LONG_NAME_BYTES as usize);
        let mut at_bound = header(
            tar::EntryType::GNULongName,
            "././@LongLink",
            MAX_LONG_NAME_BYTES,
        );
        at_bound.extend(padded(name.as_bytes()));
        at_bound.extend(header(tar::EntryType::Regular, "ignored", 0));
        // The long name is read; the entry is then refused for its path, not
        // for the header's size.
        let (result, _) = unpack_endless(at_bound, MAX_DECOMPRESSED_BYTES);
        assert!(
            matches!(result, Err(PackageError::BadEntry { ref path, .. }) if *path == name),
            "{result:?}"
        );
        let (result, _) = unpack_endless(
            header(
                tar::EntryType::GNULongName,
                "././@LongLink",
                MAX_LONG_NAME_BYTES + 1,
            ),
            MAX_DECOMPRESSED_BYTES,
        );
        assert!(matches!(result, Err(PackageError::HeaderTooLarge { .. })));
    }

    #[test]
    fn a_gzip_bomb_past_the_decompressed_bound_is_refused() {
        // A directory entry's data is skipped by the tar reader, never
        // counted as unpacked: only the bound on the whole stream stops it.
        let size = MAX_DECOMPRESSED_BYTES + (1 << 20);
        let bytes = gzip(&header(tar::EntryType::Directory, "assets/", size), size);
        assert!(bytes.len() < 1 << 20, "{} bytes", bytes.len());
        let err = Package::read(&bytes, u64::MAX).unwrap_err();
        assert!(
            matches!(
                err,
                PackageError::DecompressedTooLarge {
                    limit: MAX_DECOMPRESSED_BYTES
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn the_decompressed_bound_stops_reading_at_the_bound() {
        let limit = 4 << 20;
        let (result, served) =
            unpack_endless(header(tar::EntryType::Directory, "assets/", 1 << 40), limit);
        assert!(
            matches!(result, Err(PackageError::DecompressedTooLarge { limit: l }) if l == limit),
            "{result:?}"
        );
        assert!(served <= limit + 64 * 1024, "read {served} bytes");
    }

    #[test]
    fn a_pax_size_record_is_followed_so_its_entry_cannot_hide_a_bomb() {
        // The PAX header says the next entry holds 1 TiB while its own header
        // says 0: the guard must frame the stream as the tar reader does.
        let mut prefix = pax(&[("size", "1099511627776")]);
        prefix.extend(header(tar::EntryType::Directory, "assets/", 0));
        let limit = 4 << 20;
        let (result, served) = unpack_endless(prefix, limit);
        assert!(
            matches!(result, Err(PackageError::DecompressedTooLarge { .. })),
            "{result:?}"
        );
        assert!(served <= limit + 64 * 1024, "read {served} bytes");
    }

    #[test]
    fn a_gnu_sparse_entry_is_refused() {
        let (result, _) = unpack_endless(
            header(tar::EntryType::GNUSparse, "assets/a", 512),
            MAX_DECOMPRESSED_BYTES,
        );
        assert!(
            matches!(result, Err(PackageError::UnsupportedEntry(_))),
            "{result:?}"
        );
    }

    #[test]
    fn long_asset_paths_and_small_pax_headers_still_unpack() {
        let long = format!("assets/{}/file.txt", "d".repeat(300));
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        let mut tar = tar::Builder::new(gz);
        let mut h = tar::Header::new_gnu();
        h.set_size(5);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        // Longer than a header holds: the builder writes a GNU long name.
        tar.append_data(&mut h, &long, &b"hello"[..])
            .expect("append");
        let mut raw = tar.into_inner().expect("tar").finish().expect("gz");
        let mut stream = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut stream)
            .expect("gunzip");
        // Then a PAX header that renames the next entry and sets its size.
        let end = stream.len() - 1024;
        stream.truncate(end);
        stream.extend(pax(&[("path", "assets/renamed.txt"), ("size", "3")]));
        stream.extend(header(tar::EntryType::Regular, "assets/x", 0));
        stream.extend(padded(b"abc"));
        stream.extend([0u8; 1024]);
        raw = gzip(&stream, 0);
        let unpacked = unpack(StreamGuard::new(
            flate2::read::GzDecoder::new(&raw[..]),
            MAX_DECOMPRESSED_BYTES,
        ))
        .expect("unpacks");
        let key = long.strip_prefix("assets/").expect("prefix");
        assert_eq!(
            unpacked.assets.get(key).map(Vec::as_slice),
            Some(&b"hello"[..])
        );
        assert_eq!(
            unpacked.assets.get("renamed.txt").map(Vec::as_slice),
            Some(&b"abc"[..])
        );
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
