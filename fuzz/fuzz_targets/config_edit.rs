//! The Agent's config-file editors on arbitrary files and edits: an edited
//! file or a typed `ConfigEditError`, never a panic.
//!
//! Input layout: one byte choosing the format, then the file, the key and
//! the value separated by NUL bytes (missing parts are empty).
#![no_main]

use cap_agent::config_edit::edit_text;
use cap_protocol::{ConfigEdit, ConfigFormat, KeyValue};
use libfuzzer_sys::fuzz_target;

const FORMATS: [ConfigFormat; 6] = [
    ConfigFormat::Properties,
    ConfigFormat::Yaml,
    ConfigFormat::Json,
    ConfigFormat::Ini,
    ConfigFormat::Xml,
    ConfigFormat::Plain,
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let rest = String::from_utf8_lossy(rest);
    let mut parts = rest.splitn(3, '\0');
    let original = parts.next().unwrap_or_default();
    let key = parts.next().unwrap_or_default();
    let value = parts.next().unwrap_or_default();
    let edit = ConfigEdit {
        path: "fuzzed.cfg".into(),
        format: FORMATS[usize::from(selector) % FORMATS.len()],
        set: vec![KeyValue::new(key, value)],
        set_if: Vec::new(),
    };
    if let Ok(edited) = edit_text(original, &edit) {
        // The Agent applies startup edits before every start: applying an
        // edit to its own result must not fail.
        let _ = edit_text(&edited, &edit);
    }
});
