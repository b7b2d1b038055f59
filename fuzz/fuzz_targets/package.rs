//! `Package::read` on arbitrary bytes: a package or a typed error, never a
//! panic, an abort or an allocation past libFuzzer's `-rss_limit_mb`.
#![no_main]

use cap_runtime::Package;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(package) = Package::read(data, 16 * 1024 * 1024) {
        for path in package.assets.keys() {
            assert!(!path.starts_with('/') && !path.split('/').any(|part| part == ".."));
        }
    }
});
