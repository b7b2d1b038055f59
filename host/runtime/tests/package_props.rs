//! Property tests of the package reader ([`Package::read`]), through its
//! public API only:
//!
//! - arbitrary bytes, arbitrary bytes behind a gzip header and gzip'd tar
//!   streams of arbitrary entries (links, devices, GNU long names, PAX
//!   headers, escaping paths) give a package or a typed [`PackageError`],
//!   never a panic; whatever is accepted holds only safe asset paths;
//! - a package [`Package::build`] made reads back to the same parts;
//! - reading stays within a heap budget: the reader's allocations are
//!   measured by a counting allocator (this file's test binary only).
//!
//! Case counts are bounded so the file runs in a few seconds; the cargo-fuzz
//! target `package` (in `fuzz/`) explores the reader without a bound.

// The counting allocator below is the only unsafe code: it forwards to the
// system allocator unchanged.
#![allow(unsafe_code)]
#![allow(clippy::unwrap_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::io::Write;

use cap_runtime::{Package, PackageError};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

/// Counts the bytes the current thread has live, and their peak.
struct Counting;

thread_local! {
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn grow(by: usize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get().saturating_add(by);
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

fn shrink(by: usize) {
    let _ = LIVE.try_with(|live| live.set(live.get().saturating_sub(by)));
}

// SAFETY: every method forwards to `System` with the caller's arguments;
// the bookkeeping touches only `const`-initialised thread-locals, which
// never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grow(layout.size());
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        shrink(layout.size());
        // SAFETY: the caller upholds `GlobalAlloc::dealloc`'s contract.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        grow(new_size);
        shrink(layout.size());
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The peak of heap bytes `f` had live at once (on top of what was live
/// before), and its result.
fn peak_heap<T>(f: impl FnOnce() -> T) -> (usize, T) {
    let before = LIVE.with(Cell::get);
    PEAK.with(|peak| peak.set(before));
    let result = f();
    (PEAK.with(Cell::get).saturating_sub(before), result)
}

const MIB: usize = 1024 * 1024;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 128,
        // Failing cases are saved beside this file and replayed first.
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

const MANIFEST: &str = r#"
[plugin]
id = "prop-hooks"
name = "Property hooks"
version = "1.0.0"
kinds = ["hooks"]
api = "0.1.0"

[hooks]
after = ["server.create"]
"#;

/// The smallest component that passes `inspect` for [`MANIFEST`].
fn component() -> Vec<u8> {
    wat::parse_str(
        r#"(component
             (@custom "ctrl-alt-play:api-version" "0.1.0")
             (instance $hooks)
             (export "ctrl-alt-play:plugin/hooks@0.1.0" (instance $hooks)))"#,
    )
    .unwrap()
}

/// One tar entry as an attacker might write it.
#[derive(Debug, Clone)]
enum Entry {
    /// A file of any name and type byte.
    Raw {
        name: Vec<u8>,
        kind: u8,
        data: Vec<u8>,
    },
    /// The package's own files.
    Known { name: &'static str, data: Vec<u8> },
    /// A header entry (GNU long name `L`, long link `K`, PAX `x`/`g`)
    /// declaring `declared` bytes of zeros.
    Header { kind: u8, declared: usize },
}

fn entry() -> impl Strategy<Value = Entry> {
    let name = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..40),
        prop::sample::select(vec![
            "assets/a.txt",
            "assets/../escape",
            "/etc/passwd",
            "assets/",
            "plugin.toml",
            "plugin.wasm",
            "assets/dir/x",
            "assets/./y",
        ])
        .prop_map(|n| n.as_bytes().to_vec()),
    ];
    prop_oneof![
        (
            name,
            prop::sample::select(b"0125673xgLKSV\0".to_vec()),
            prop::collection::vec(any::<u8>(), 0..64),
        )
            .prop_map(|(name, kind, data)| Entry::Raw { name, kind, data }),
        (
            prop::sample::select(vec!["plugin.toml", "plugin.wasm"]),
            prop::collection::vec(any::<u8>(), 0..64),
        )
            .prop_map(|(name, data)| Entry::Known { name, data }),
        (prop::sample::select(b"LKxg".to_vec()), 0usize..4096)
            .prop_map(|(kind, declared)| Entry::Header { kind, declared }),
    ]
}

/// A tar stream of `entries`, each header written by hand so that any
/// name and type byte gets through.
fn tar_of(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in entries {
        let (name, kind, data): (&[u8], u8, Vec<u8>) = match entry {
            Entry::Raw { name, kind, data } => (name, *kind, data.clone()),
            Entry::Known { name, data } => (name.as_bytes(), b'0', data.clone()),
            Entry::Header { kind, declared } => (b"././@LongLink", *kind, vec![b'a'; *declared]),
        };
        push_entry(&mut out, name, kind, &data);
    }
    out.extend_from_slice(&[0; 1024]);
    out
}

fn push_entry(out: &mut Vec<u8>, name: &[u8], kind: u8, data: &[u8]) {
    let mut header = tar::Header::new_gnu();
    let bytes = header.as_mut_bytes();
    let len = name.len().min(100);
    bytes[..len].copy_from_slice(&name[..len]);
    header.set_mode(0o644);
    header.set_size(data.len() as u64);
    header.set_entry_type(tar::EntryType::new(kind));
    header.set_cksum();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
}

/// `Package::read` answers with a package or a typed error; an accepted
/// package holds only assets with safe relative paths.
fn check_read(bytes: &[u8]) {
    match Package::read(bytes, u64::MAX) {
        Ok(package) => {
            for path in package.assets.keys() {
                assert!(
                    !path.starts_with('/') && !path.split('/').any(|part| part == ".."),
                    "{path:?}"
                );
            }
        }
        Err(
            PackageError::TooLarge { .. }
            | PackageError::Format(_)
            | PackageError::BadEntry { .. }
            | PackageError::Missing(_)
            | PackageError::Manifest(_)
            | PackageError::Component(_),
        ) => {}
        Err(PackageError::Io(error)) => panic!("reading does no I/O: {error}"),
        // The reader may gain refusals of its own (header limits); each
        // is typed, which is all this property asks.
        #[allow(unreachable_patterns)]
        Err(_) => {}
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_give_a_package_or_a_typed_error(
        gzip_magic in any::<bool>(),
        bytes in prop::collection::vec(any::<u8>(), 0..1024),
    ) {
        let mut bytes = bytes;
        if gzip_magic {
            bytes.splice(0..0, [0x1f, 0x8b]);
        }
        check_read(&bytes);
    }

    #[test]
    fn arbitrary_bytes_behind_gzip_give_a_package_or_a_typed_error(
        bytes in prop::collection::vec(any::<u8>(), 0..2048),
    ) {
        check_read(&gzip(&bytes));
    }

    #[test]
    fn gzipped_tar_streams_of_arbitrary_entries_give_a_package_or_a_typed_error(
        entries in prop::collection::vec(entry(), 0..6),
    ) {
        check_read(&gzip(&tar_of(&entries)));
    }

    #[test]
    fn a_built_package_reads_back_to_the_same_parts(
        assets in prop::collection::btree_map(
            "[a-z0-9]{1,8}(/[a-z0-9_-][a-z0-9._-]{0,7}){0,2}",
            prop::collection::vec(any::<u8>(), 0..256),
            0..4,
        ),
    ) {
        let (built, bytes) =
            Package::build(MANIFEST.as_bytes().to_vec(), component(), assets, u64::MAX).unwrap();
        let read = Package::read(&bytes, u64::MAX).unwrap();
        prop_assert_eq!(&read.manifest, &built.manifest);
        prop_assert_eq!(&read.manifest_bytes, &built.manifest_bytes);
        prop_assert_eq!(&read.component, &built.component);
        prop_assert_eq!(&read.assets, &built.assets);
        prop_assert_eq!(&read.sha256, &built.sha256);
    }

    #[test]
    fn reading_a_small_package_stays_within_a_small_heap_budget(
        entries in prop::collection::vec(entry(), 0..6),
    ) {
        let bytes = gzip(&tar_of(&entries));
        let (peak, _) = peak_heap(|| Package::read(&bytes, u64::MAX));
        // Decompression state and the entries' contents (at most ~16 KiB
        // here) fit in 2 MiB with room to spare.
        prop_assert!(peak < 2 * MIB, "peak heap {} bytes", peak);
    }
}

/// Issue 12, item 3: header entries (GNU long names and links, PAX) were
/// buffered whole before any limit applied. A package that declares a
/// 64 MiB long name compresses to about 64 KiB; reading it must refuse it
/// without holding anything near 64 MiB.
#[test]
fn a_header_entry_bomb_is_refused_within_a_small_heap_budget() {
    for kind in [b'L', b'K', b'x', b'g'] {
        let mut tar = Vec::new();
        push_entry(&mut tar, b"././@LongLink", kind, &vec![b'a'; 64 * MIB]);
        push_entry(&mut tar, b"plugin.toml", b'0', MANIFEST.as_bytes());
        tar.extend_from_slice(&[0; 1024]);
        let bytes = gzip(&tar);
        assert!(bytes.len() < MIB, "{} bytes", bytes.len());
        let (peak, result) = peak_heap(|| Package::read(&bytes, u64::MAX));
        assert!(result.is_err(), "type {}: accepted", kind as char);
        assert!(
            peak < 8 * MIB,
            "type {}: peak heap {} bytes",
            kind as char,
            peak
        );
    }
}

/// Found by `a_built_package_reads_back_to_the_same_parts`: `build`
/// accepts the asset path `0/.`, which the tar reader normalises to `0`,
/// so the package reads back with other asset names (and `x` next to
/// `x/.` builds a package that `read` refuses as a duplicate). `build`
/// should refuse `.` and empty path components.
#[test]
fn an_asset_path_with_a_dot_component_is_refused_by_build_or_reads_back_unchanged() {
    let assets = BTreeMap::from([("0/.".to_owned(), Vec::new())]);
    if let Ok((built, bytes)) =
        Package::build(MANIFEST.as_bytes().to_vec(), component(), assets, u64::MAX)
    {
        let read = Package::read(&bytes, u64::MAX).unwrap();
        assert_eq!(read.assets, built.assets);
    }
}

#[test]
fn an_empty_asset_map_and_the_smallest_component_make_a_readable_package() {
    let (_, bytes) = Package::build(
        MANIFEST.as_bytes().to_vec(),
        component(),
        BTreeMap::new(),
        u64::MAX,
    )
    .unwrap();
    let package = Package::read(&bytes, u64::MAX).unwrap();
    assert_eq!(package.manifest.plugin.id, "prop-hooks");
}
