//! Reading a component before anything runs: validation, API version,
//! imports and exports.
//!
//! The whole binary is validated first; only then is the
//! `ctrl-alt-play:api-version` custom section trusted, the version checked
//! against what this host supports, and the imports checked against what it
//! provides. All of this happens before compilation, so a bad component costs
//! milliseconds, not a compile.

use serde::Serialize;
use sha2::{Digest, Sha256};
use wasmparser::{Parser, Payload, Validator, WasmFeatures};

use crate::api_version::ApiVersion;
use crate::error::LoadError;
use crate::manifest::PluginKind;

/// Name of the custom section holding the targeted API version.
pub const API_VERSION_SECTION: &str = "ctrl-alt-play:api-version";

/// Default maximum component size: 64 MiB.
pub const DEFAULT_MAX_COMPONENT_BYTES: u64 = 64 * 1024 * 1024;

/// What a component is, read without running it.
#[derive(Debug, Clone, Serialize)]
pub struct ComponentInfo {
    /// Lowercase hex sha256 of the bytes.
    pub sha256: String,
    /// Size in bytes.
    pub size: usize,
    /// The API version from the custom section.
    pub api_version: semver::Version,
    /// Top-level import names.
    pub imports: Vec<String>,
    /// Top-level export names.
    pub exports: Vec<String>,
    /// Kinds whose interfaces the component exports in full.
    pub kinds: Vec<PluginKind>,
}

impl ComponentInfo {
    /// The bindings generation serving this component.
    pub fn binding_version(&self) -> Result<ApiVersion, LoadError> {
        ApiVersion::for_version(&self.api_version)
    }

    /// Whether the component exports the interface `name` (unversioned,
    /// e.g. `hooks`) of our package.
    pub fn exports_interface(&self, name: &str) -> bool {
        self.exports
            .iter()
            .any(|e| parse_interface_name(e).is_some_and(|n| n.is_ours() && n.interface == name))
    }
}

/// Hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Validates `bytes` and reads what the host needs to know.
pub fn inspect(bytes: &[u8], max_bytes: u64) -> Result<ComponentInfo, LoadError> {
    if bytes.len() as u64 > max_bytes {
        return Err(LoadError::TooLarge {
            size: bytes.len() as u64,
            limit: max_bytes,
        });
    }
    if bytes.len() < 8 || &bytes[0..4] != b"\0asm" {
        return Err(LoadError::NotWasm);
    }
    if wasmparser::Parser::is_core_wasm(bytes) {
        return Err(LoadError::CoreModule);
    }
    if !wasmparser::Parser::is_component(bytes) {
        return Err(LoadError::Invalid(
            "unknown WebAssembly binary version".into(),
        ));
    }

    let features = WasmFeatures::default() | WasmFeatures::COMPONENT_MODEL;
    Validator::new_with_features(features)
        .validate_all(bytes)
        .map_err(|e| LoadError::Invalid(e.to_string()))?;

    let mut depth = 0usize;
    let mut versions = Vec::new();
    let mut imports = Vec::new();
    let mut exports = Vec::new();
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|e| LoadError::Invalid(e.to_string()))?;
        match payload {
            Payload::Version { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::CustomSection(section) if section.name() == API_VERSION_SECTION => {
                versions.push(section.data().to_vec());
            }
            Payload::ComponentImportSection(reader) if depth == 1 => {
                for import in reader {
                    let import = import.map_err(|e| LoadError::Invalid(e.to_string()))?;
                    imports.push(import.name.name.to_string());
                }
            }
            Payload::ComponentExportSection(reader) if depth == 1 => {
                for export in reader {
                    let export = export.map_err(|e| LoadError::Invalid(e.to_string()))?;
                    exports.push(export.name.name.to_string());
                }
            }
            _ => {}
        }
    }

    let api_version = declared_version(&versions)?;
    // Refuse unsupported versions before looking any further.
    ApiVersion::for_version(&api_version)?;
    for import in &imports {
        check_import(import, &api_version)?;
    }

    let info = ComponentInfo {
        sha256: sha256_hex(bytes),
        size: bytes.len(),
        api_version,
        imports,
        exports,
        kinds: Vec::new(),
    };
    let kinds = PluginKind::ALL
        .into_iter()
        .filter(|k| k.interfaces().iter().all(|i| info.exports_interface(i)))
        .collect();
    Ok(ComponentInfo { kinds, ..info })
}

fn declared_version(sections: &[Vec<u8>]) -> Result<semver::Version, LoadError> {
    let mut found: Option<semver::Version> = None;
    for data in sections {
        let text = std::str::from_utf8(data)
            .map_err(|_| LoadError::BadApiVersion("the section is not UTF-8".into()))?;
        // Linkers concatenate same-named sections, so one section may hold
        // the version several times over; every copy must agree.
        for part in split_concatenated(text) {
            let version = semver::Version::parse(part)
                .map_err(|e| LoadError::BadApiVersion(format!("{part:?}: {e}")))?;
            match &found {
                Some(v) if *v != version => {
                    return Err(LoadError::BadApiVersion(format!(
                        "the component declares both {v} and {version}"
                    )));
                }
                _ => found = Some(version),
            }
        }
    }
    found.ok_or(LoadError::MissingApiVersion)
}

/// Splits `"0.1.00.1.0"` (two concatenated copies) into its copies. Versions
/// in the section are written without separators, so a repeat is detected by
/// the text being a whole multiple of a prefix.
fn split_concatenated(text: &str) -> Vec<&str> {
    let text = text.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    for len in 1..=text.len() / 2 {
        if text.len() % len == 0 && text.is_char_boundary(len) {
            let unit = &text[..len];
            if text.as_bytes().chunks(len).all(|c| c == unit.as_bytes()) {
                return vec![unit; text.len() / len];
            }
        }
    }
    vec![text]
}

/// A parsed `namespace:package/interface@version` name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceName<'a> {
    /// `ctrl-alt-play`, `wasi`, ...
    pub namespace: &'a str,
    /// `plugin`, `cli`, ...
    pub package: &'a str,
    /// The interface.
    pub interface: &'a str,
    /// The package version, if any.
    pub version: Option<&'a str>,
}

impl InterfaceName<'_> {
    /// Whether this names an interface of the plugin API package.
    pub fn is_ours(&self) -> bool {
        self.namespace == "ctrl-alt-play" && self.package == "plugin"
    }
}

/// Parses a component import or export name of interface form.
pub fn parse_interface_name(name: &str) -> Option<InterfaceName<'_>> {
    let (path, version) = match name.split_once('@') {
        Some((p, v)) => (p, Some(v)),
        None => (name, None),
    };
    let (pkg, interface) = path.split_once('/')?;
    let (namespace, package) = pkg.split_once(':')?;
    Some(InterfaceName {
        namespace,
        package,
        interface,
        version,
    })
}

/// Host interfaces, besides our own imports, that components may import.
const WASI_PROVIDED: &[(&str, &[&str])] = &[
    (
        "cli",
        &[
            "environment",
            "exit",
            "stdin",
            "stdout",
            "stderr",
            "terminal-input",
            "terminal-output",
            "terminal-stdin",
            "terminal-stdout",
            "terminal-stderr",
        ],
    ),
    ("clocks", &["monotonic-clock", "wall-clock"]),
    ("filesystem", &["types", "preopens"]),
    ("io", &["error", "poll", "streams"]),
    ("random", &["random", "insecure", "insecure-seed"]),
];

fn check_import(name: &str, api: &semver::Version) -> Result<(), LoadError> {
    let unknown = || LoadError::UnknownImport(name.to_string());
    let parsed = parse_interface_name(name).ok_or_else(unknown)?;
    if parsed.is_ours() {
        let version = parsed
            .version
            .and_then(|v| semver::Version::parse(v).ok())
            .ok_or_else(unknown)?;
        if version != *api {
            return Err(LoadError::BadApiVersion(format!(
                "the component imports {name} but declares API {api}"
            )));
        }
        let interfaces = ApiVersion::for_version(api)?.imported_interfaces();
        return if interfaces.contains(&parsed.interface) {
            Ok(())
        } else {
            Err(unknown())
        };
    }
    if parsed.namespace == "wasi" {
        let version_ok = parsed
            .version
            .and_then(|v| semver::Version::parse(v).ok())
            .is_some_and(|v| v.major == 0 && v.minor == 2);
        let provided = WASI_PROVIDED
            .iter()
            .any(|(pkg, ifaces)| *pkg == parsed.package && ifaces.contains(&parsed.interface));
        if version_ok && provided {
            return Ok(());
        }
        if parsed.package == "sockets" || parsed.package == "http" {
            return Err(LoadError::UnknownImport(format!(
                "{name} (plugins reach the network only through ctrl-alt-play:plugin/http)"
            )));
        }
    }
    Err(unknown())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_concatenated_version_sections() {
        assert_eq!(split_concatenated("0.1.0"), vec!["0.1.0"]);
        assert_eq!(split_concatenated("0.1.00.1.0"), vec!["0.1.0", "0.1.0"]);
        assert_eq!(split_concatenated("1.2.3\n"), vec!["1.2.3"]);
    }

    #[test]
    fn refuses_conflicting_version_sections() {
        let err = declared_version(&[b"0.1.0".to_vec(), b"0.2.0".to_vec()]).unwrap_err();
        assert!(err.to_string().contains("both 0.1.0 and 0.2.0"), "{err}");
    }

    #[test]
    fn parses_interface_names() {
        let n = parse_interface_name("ctrl-alt-play:plugin/hooks@0.1.0").expect("parses");
        assert!(n.is_ours());
        assert_eq!(n.interface, "hooks");
        assert_eq!(n.version, Some("0.1.0"));
        assert!(parse_interface_name("plain-name").is_none());
    }

    #[test]
    fn refuses_sockets_with_a_pointer_to_http() {
        let v = semver::Version::new(0, 1, 0);
        let err = check_import("wasi:sockets/tcp@0.2.6", &v).unwrap_err();
        assert!(
            err.to_string().contains("ctrl-alt-play:plugin/http"),
            "{err}"
        );
        assert!(check_import("wasi:cli/stdout@0.2.6", &v).is_ok());
        assert!(check_import("ctrl-alt-play:plugin/kv@0.1.0", &v).is_ok());
        assert!(check_import("ctrl-alt-play:plugin/kv@0.2.0", &v).is_err());
        assert!(check_import("evil:pkg/iface@1.0.0", &v).is_err());
    }

    #[test]
    fn names_a_core_module_as_such() {
        let module = wat::parse_str("(module)").expect("wat");
        assert!(matches!(
            inspect(&module, u64::MAX),
            Err(LoadError::CoreModule)
        ));
    }

    #[test]
    fn refuses_garbage_and_oversized_input() {
        assert!(matches!(
            inspect(b"hello world", u64::MAX),
            Err(LoadError::NotWasm)
        ));
        assert!(matches!(
            inspect(&[0u8; 100], 10),
            Err(LoadError::TooLarge {
                size: 100,
                limit: 10
            })
        ));
    }

    #[test]
    fn refuses_a_component_without_the_version_section() {
        let component = wat::parse_str("(component)").expect("wat");
        assert!(matches!(
            inspect(&component, u64::MAX),
            Err(LoadError::MissingApiVersion)
        ));
    }

    #[test]
    fn refuses_an_unsupported_version_naming_the_supported_range() {
        let component =
            wat::parse_str(r#"(component (@custom "ctrl-alt-play:api-version" "0.9.0"))"#)
                .expect("wat");
        let err = inspect(&component, u64::MAX).unwrap_err();
        assert!(
            matches!(err, LoadError::UnsupportedApiVersion { .. }),
            "{err}"
        );
        assert!(err.to_string().contains(">=0.1.0, <0.3.0"), "{err}");
    }

    #[test]
    fn refuses_a_truncated_component() {
        let component =
            wat::parse_str(r#"(component (@custom "ctrl-alt-play:api-version" "0.1.0"))"#)
                .expect("wat");
        let cut = &component[..component.len() - 3];
        assert!(matches!(inspect(cut, u64::MAX), Err(LoadError::Invalid(_))));
    }

    #[test]
    fn refuses_an_import_the_host_does_not_provide() {
        let component = wat::parse_str(
            r#"(component
                 (@custom "ctrl-alt-play:api-version" "0.1.0")
                 (import "acme:secrets/steal@1.0.0" (instance)))"#,
        )
        .expect("wat");
        let err = inspect(&component, u64::MAX).unwrap_err();
        assert_eq!(
            err.to_string(),
            "component imports `acme:secrets/steal@1.0.0`, which Ctrl-Alt-Play does not provide"
        );
    }
}
