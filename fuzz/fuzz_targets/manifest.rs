//! `Manifest::parse` on arbitrary bytes: a manifest or a typed error, never
//! a panic; an accepted manifest survives `to_toml` and `parse` unchanged.
#![no_main]

use cap_runtime::Manifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(manifest) = Manifest::parse(data) {
        let again = Manifest::parse(manifest.to_toml().as_bytes());
        assert_eq!(again.as_ref(), Ok(&manifest));
    }
});
