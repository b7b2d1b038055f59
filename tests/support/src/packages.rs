//! Real `.cap` packages built from the example plugins, with their
//! `plugin.toml` edited per test (id, version, dependencies, price).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use cap_runtime::Package;

/// Packs example plugin `name` with its `plugin.toml` text passed through
/// `edit`; returns the package and the file's bytes.
///
/// # Panics
///
/// When the plugin has no built component or the edited manifest does not
/// pack.
pub fn pack(name: &str, edit: impl FnOnce(String) -> String) -> (Package, Vec<u8>) {
    static CACHE: Mutex<Option<HashMap<String, Vec<u8>>>> = Mutex::new(None);
    let component = {
        let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .get_or_insert_with(HashMap::new)
            .entry(name.to_owned())
            .or_insert_with(|| component(name))
            .clone()
    };
    let path = cap_e2e::plugin_dir(name).join("plugin.toml");
    let text = std::fs::read_to_string(&path).expect("reading plugin.toml");
    Package::build(
        edit(text).into_bytes(),
        component,
        BTreeMap::new(),
        u64::MAX,
    )
    .expect("packing the example plugin")
}

/// [`pack`] with the version (`1.0.0` in every example) changed.
pub fn pack_version(name: &str, version: &str) -> (Package, Vec<u8>) {
    pack(name, |t| {
        t.replacen(
            "version = \"1.0.0\"",
            &format!("version = \"{version}\""),
            1,
        )
    })
}

/// The example plugin's component. `cap_e2e` builds the example plugins
/// with the calling cargo, which honours `CARGO_TARGET_DIR`; look there too.
fn component(name: &str) -> Vec<u8> {
    let built = cap_e2e::example_plugins();
    let file = format!("{}.wasm", name.replace('-', "_"));
    let mut candidates = vec![built.join(&file)];
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        candidates.push(
            std::path::PathBuf::from(dir)
                .join("wasm32-wasip2/release")
                .join(&file),
        );
    }
    candidates
        .iter()
        .find_map(|path| std::fs::read(path).ok())
        .unwrap_or_else(|| panic!("no built component for {name} in {candidates:?}"))
}
