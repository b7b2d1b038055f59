//! Property tests of the config-file editors the Agent applies to server
//! files (`cap_agent::config_edit`), with contents and edits a game-type
//! plugin or a server could produce:
//!
//! - any file and any edit gives an edited file or a typed
//!   [`ConfigEditError`], never a panic;
//! - an edit is idempotent: applying it to its own result changes nothing
//!   (the Agent applies startup edits before every start);
//! - a value that was set reads back from the edited file with a reader of
//!   that format, and an edit adds no line a reader would see as another key.
//!
//! Idempotence and read-back are checked for keys made of the characters
//! real config keys use; arbitrary keys are checked for the first property.
//! Case counts are bounded so the file runs in a few seconds; the cargo-fuzz
//! target `config_edit` (in `fuzz/`) explores the same editors unbounded.

#![allow(clippy::unwrap_used)]

use cap_agent::config_edit::{ConfigEditError, edit_text};
use cap_protocol::{ConfigEdit, ConfigFormat, KeyValue};
use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use serde_yaml_ng::Value;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        // Failing cases are saved beside this file and replayed first.
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    }
}

fn edit(format: ConfigFormat, set: Vec<KeyValue>) -> ConfigEdit {
    ConfigEdit {
        path: "server.cfg".into(),
        format,
        set,
        set_if: Vec::new(),
    }
}

fn format() -> impl Strategy<Value = ConfigFormat> {
    prop_oneof![
        Just(ConfigFormat::Properties),
        Just(ConfigFormat::Yaml),
        Just(ConfigFormat::Json),
        Just(ConfigFormat::Ini),
        Just(ConfigFormat::Xml),
        Just(ConfigFormat::Plain),
    ]
}

/// Text biased towards the characters config syntaxes care about, with
/// any other character mixed in.
fn text(max: usize) -> impl Strategy<Value = String> {
    let syntax = prop::sample::select(vec![
        '\n', '\r', '\t', ' ', '=', ':', '#', '!', ';', '[', ']', '{', '}', '"', '\'', '\\', '.',
        '/', '@', '<', '>', '&', '-', '?', '|', '*', '%', ',', 'a', 'b', 'k', '0', '1',
    ]);
    prop::collection::vec(prop_oneof![3 => syntax, 1 => any::<char>()], 0..max)
        .prop_map(String::from_iter)
}

/// File contents: free text, or text built from lines of the format.
fn contents() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        text(24),
        "[a-z]{1,6} ?[=:] ?[a-z0-9 ]{0,8}",
        "\\[[a-z]{1,6}\\]",
        "[#;!] [a-z ]{0,10}",
        "[a-z]{1,6}:( [a-z0-9]{1,6})?",
        "  [a-z]{1,6}: [a-z0-9]{1,6}",
        "<[a-z]{1,4}>[a-z0-9]{0,4}</[a-z]{1,4}>",
    ];
    prop_oneof![
        text(120),
        prop::collection::vec(line, 0..8).prop_map(|lines| lines.join("\n")),
    ]
}

/// A key of the shape real config keys have, dotted or slashed per format.
fn plain_key(format: ConfigFormat) -> BoxedStrategy<String> {
    let part = "[a-z][a-z0-9_-]{0,7}";
    match format {
        ConfigFormat::Yaml | ConfigFormat::Json | ConfigFormat::Ini => {
            prop::collection::vec(part, 1..4)
                .prop_map(|parts| parts.join("."))
                .boxed()
        }
        ConfigFormat::Xml => (prop::collection::vec(part, 1..4), prop::option::of(part))
            .prop_map(|(parts, attribute)| match attribute {
                Some(attribute) => format!("{}@{attribute}", parts.join("/")),
                None => parts.join("/"),
            })
            .boxed(),
        ConfigFormat::Properties | ConfigFormat::Plain => part.boxed(),
    }
}

/// A value as plans set them: numbers, booleans, words, or any text
/// (for the line formats, without a line break).
fn value(format: ConfigFormat) -> BoxedStrategy<String> {
    let free = text(16);
    let free = if matches!(format, ConfigFormat::Plain) {
        // `plain` refuses values with a line break or NUL (a separate
        // test covers that refusal), so values that read back leave them
        // out.
        free.prop_map(|v| v.replace(['\n', '\r', '\0'], " "))
            .boxed()
    } else {
        free.boxed()
    };
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        Just("true".to_owned()),
        Just("false".to_owned()),
        "[a-zA-Z0-9 ._-]{0,12}",
        // Scalars YAML reads as something other than a plain string.
        prop::sample::select(vec![
            ".nan", ".NaN", ".inf", "-.inf", "1e400", "0x1F", "0o17", "+1", "1_000", "~", "null",
            "Null", "yes", "on", "-0", "0.", "1e3",
        ])
        .prop_map(String::from),
        free,
    ]
    .boxed()
}

/// A set whose keys are distinct and none a path prefix of another, so
/// that no pair undoes or blocks another.
fn independent_set(format: ConfigFormat) -> impl Strategy<Value = Vec<KeyValue>> {
    prop::collection::vec((plain_key(format), value(format)), 1..4).prop_map(move |pairs| {
        let mut set: Vec<KeyValue> = Vec::new();
        for (key, value) in pairs {
            let clashes = set.iter().any(|other| {
                let (a, b) = (path_of(format, &other.key), path_of(format, &key));
                a.starts_with(&b) || b.starts_with(&a)
            });
            if !clashes {
                // A `plain` edit replaces the lines starting with its key by
                // its value; plans write values that start with the key
                // (`eula=` → `eula=true`), or each run would append again.
                let value = match format {
                    ConfigFormat::Plain => format!("{key}{value}"),
                    _ => value,
                };
                set.push(KeyValue::new(key, value));
            }
        }
        set
    })
}

/// The key as a list of path parts (`plain` keys are prefixes of whole
/// lines, so any string prefix clashes there).
fn path_of(format: ConfigFormat, key: &str) -> Vec<String> {
    match format {
        ConfigFormat::Yaml | ConfigFormat::Json => key.split('.').map(str::to_owned).collect(),
        ConfigFormat::Ini => vec![key.to_owned()],
        ConfigFormat::Xml => {
            let (path, attribute) = key.split_once('@').unwrap_or((key, ""));
            let mut parts: Vec<String> = path.split('/').map(str::to_owned).collect();
            parts.push(format!("@{attribute}"));
            parts
        }
        ConfigFormat::Properties => vec![key.to_owned()],
        ConfigFormat::Plain => key.chars().map(String::from).collect(),
    }
}

/// The file a valid edit starts from: empty, or one the editor itself
/// produced from arbitrary seed pairs (so it is valid in its format).
fn starting_file(format: ConfigFormat) -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        independent_set(format).prop_filter_map("a value the format cannot hold", move |set| {
            edit_text("", &edit(format, set)).ok()
        }),
        contents().prop_filter_map("not valid in the format", move |text| {
            // Keep only contents the editor accepts at all.
            edit_text(&text, &edit(format, Vec::new()))
                .ok()
                .map(|_| text)
        }),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_file_and_any_edit_give_an_edited_file_or_a_typed_error(
        format in format(),
        original in contents(),
        set in prop::collection::vec((text(20), text(20)), 0..4),
    ) {
        let set = set.into_iter().map(|(k, v)| KeyValue::new(k, v)).collect();
        match edit_text(&original, &edit(format, set)) {
            Ok(_)
            | Err(
                ConfigEditError::Parse { .. }
                | ConfigEditError::Key { .. }
                | ConfigEditError::LineBreak { .. },
            ) => {}
            Err(other) => prop_assert!(false, "no I/O happens here: {}", other),
        }
    }

    #[test]
    fn an_edit_applied_to_its_own_result_changes_nothing(
        (format, original, set) in format().prop_flat_map(|f| {
            (Just(f), starting_file(f), independent_set(f))
        }),
    ) {
        let edit = edit(format, set);
        if let Ok(once) = edit_text(&original, &edit) {
            let twice = edit_text(&once, &edit);
            prop_assert_eq!(twice.as_ref().ok(), Some(&once), "{:?}", twice);
        }
    }

    #[test]
    fn every_value_set_reads_back_from_the_edited_file(
        (format, original, set) in format().prop_flat_map(|f| {
            (Just(f), starting_file(f), independent_set(f))
        }),
    ) {
        let edit = edit(format, set);
        // Edits through a scalar are refused; everything else must apply.
        let edited = match edit_text(&original, &edit) {
            Ok(edited) => edited,
            Err(ConfigEditError::Key { .. }) => return Ok(()),
            Err(error) => return Err(TestCaseError::fail(error.to_string())),
        };
        for pair in &edit.set {
            let read = read_back(format, &edited, &pair.key);
            prop_assert!(
                reads_as(format, &pair.value, read.as_ref()),
                "{:?} = {:?} reads back as {:?} from {:?}", pair.key, pair.value, read, edited
            );
        }
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn a_value_cannot_add_a_key_to_a_properties_or_ini_file(
        (format, original, set) in prop_oneof![Just(ConfigFormat::Properties), Just(ConfigFormat::Ini)]
            .prop_flat_map(|f| (Just(f), starting_file(f), independent_set(f))),
        hostile in prop::collection::vec(
            prop::sample::select(vec!["\n", "\r", "\r\n", "\\", "=", "[evil]", "op=alice", "\u{85}", "\u{2028}", " ", "#"]),
            1..6,
        ),
    ) {
        // Values are where players' text ends up (a MOTD, a server name).
        let set: Vec<KeyValue> = set
            .into_iter()
            .map(|pair| KeyValue::new(pair.key, format!("{}{}", pair.value, hostile.concat())))
            .collect();
        let edited = edit_text(&original, &edit(format, set.clone())).unwrap();
        let mut allowed = line_format_keys(format, &original);
        allowed.extend(set.iter().map(|pair| pair.key.clone()));
        let after = line_format_keys(format, &edited);
        prop_assert!(
            after.is_subset(&allowed),
            "new keys {:?} in {:?}", after.difference(&allowed).collect::<Vec<_>>(), edited
        );
    }
}

/// What a reader of `format` sees at `key` in `text`.
#[derive(Debug)]
enum Read {
    Text(String),
    Tree(Value),
}

fn read_back(format: ConfigFormat, text: &str, key: &str) -> Option<Read> {
    match format {
        ConfigFormat::Properties => properties::read(text).remove(key).map(Read::Text),
        ConfigFormat::Ini => ini_read(text, key).map(Read::Text),
        ConfigFormat::Plain => text
            .lines()
            .find(|line| line.starts_with(key))
            .map(|line| Read::Text(line.to_owned())),
        ConfigFormat::Yaml => {
            let root: Value = serde_yaml_ng::from_str(text).ok()?;
            walk(&root, key).cloned().map(Read::Tree)
        }
        ConfigFormat::Json => {
            let root: Value = serde_json::from_str(text).ok()?;
            walk(&root, key).cloned().map(Read::Tree)
        }
        ConfigFormat::Xml => {
            let root = xmltree::Element::parse(text.as_bytes()).ok()?;
            let (path, attribute) = match key.rsplit_once('@') {
                Some((path, attribute)) => (path, Some(attribute)),
                None => (key, None),
            };
            let mut node = &root;
            for part in path.split('/').filter(|p| !p.is_empty()) {
                node = node.get_child(part)?;
            }
            match attribute {
                Some(attribute) => node.attributes.get(attribute).cloned(),
                None => Some(node.get_text().map(|t| t.into_owned()).unwrap_or_default()),
            }
            .map(Read::Text)
        }
    }
}

fn walk<'a>(root: &'a Value, key: &str) -> Option<&'a Value> {
    key.split('.').try_fold(root, |node, part| match node {
        Value::Mapping(map) => map.get(part),
        Value::Sequence(items) => items.get(part.parse::<usize>().ok()?),
        _ => None,
    })
}

/// Whether `read` is what setting `value` promises: the value itself, or
/// for YAML and JSON the number, boolean or null YAML reads it as.
fn reads_as(format: ConfigFormat, value: &str, read: Option<&Read>) -> bool {
    match (format, read) {
        (ConfigFormat::Ini, Some(Read::Text(text))) => {
            *text == value.replace(['\n', '\r'], " ").trim()
        }
        (ConfigFormat::Plain, Some(Read::Text(text))) => text == value,
        // xmltree, like many XML readers, drops whitespace around text.
        (ConfigFormat::Xml, Some(Read::Text(text))) => text.trim() == value.trim(),
        (_, Some(Read::Text(text))) => text == value,
        (_, Some(Read::Tree(Value::String(text)))) => text == value,
        (_, Some(Read::Tree(typed))) => {
            serde_yaml_ng::from_str::<Value>(value).ok().as_ref() == Some(typed)
        }
        (_, None) => false,
    }
}

/// An INI reader: `[section]` headers, `key = value` lines, `;`/`#`
/// comments. Every entry in file order, as (section, key, value).
fn ini_entries(text: &str) -> Vec<(Option<String>, String, String)> {
    let mut section: Option<String> = None;
    let mut entries = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if let Some(name) = trimmed.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            section = Some(name.trim().to_owned());
            continue;
        }
        if trimmed.starts_with(';') || trimmed.starts_with('#') {
            continue;
        }
        // As go-ini (Wings' reader): the first `=` or `:` ends the key.
        if let Some(at) = trimmed.find(['=', ':']) {
            let (k, v) = (&trimmed[..at], &trimmed[at + 1..]);
            entries.push((section.clone(), k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    entries
}

/// The first value of `key` (`section.key`, or `key` before any section).
fn ini_read(text: &str, key: &str) -> Option<String> {
    let (want_section, want_key) = match key.rsplit_once('.') {
        Some((section, key)) => (Some(section), key),
        None => (None, key),
    };
    ini_entries(text)
        .into_iter()
        .find(|(section, k, _)| section.as_deref() == want_section && k == want_key)
        .map(|(_, _, value)| value)
}

/// The keys a reader of `format` sees in `text`, for the line formats.
fn line_format_keys(format: ConfigFormat, text: &str) -> BTreeSet<String> {
    match format {
        ConfigFormat::Properties => properties::read(text).into_keys().collect(),
        ConfigFormat::Ini => ini_entries(text)
            .into_iter()
            .map(|(section, key, _)| match section {
                Some(section) => format!("{section}.{key}"),
                None => key,
            })
            .collect(),
        _ => BTreeSet::new(),
    }
}

/// A `.properties` reader following `java.util.Properties.load`.
mod properties {
    use std::collections::BTreeMap;

    fn is_blank(c: char) -> bool {
        matches!(c, ' ' | '\t' | '\u{c}')
    }

    /// The logical lines: continuation lines (after an odd number of
    /// trailing backslashes) joined, leading blanks of each removed.
    fn logical_lines(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut current: Option<String> = None;
        for raw in text.replace("\r\n", "\n").split(['\n', '\r']) {
            let line = raw.trim_start_matches(is_blank);
            let mut joined = match current.take() {
                Some(mut previous) => {
                    previous.push_str(line);
                    previous
                }
                None => {
                    if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                        continue;
                    }
                    line.to_owned()
                }
            };
            let backslashes = joined.chars().rev().take_while(|c| *c == '\\').count();
            if backslashes % 2 == 1 {
                joined.pop();
                current = Some(joined);
            } else {
                out.push(joined);
            }
        }
        out.extend(current);
        out
    }

    fn unescape(chars: &mut std::iter::Peekable<std::str::Chars<'_>>, out: &mut String) {
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\u{c}'),
            Some('u') => {
                // A UTF-16 unit; a high surrogate pairs with a `\\u` low
                // surrogate after it, as in a Java string.
                let hex: String = chars.by_ref().take(4).collect();
                let Ok(unit) = u16::from_str_radix(&hex, 16) else {
                    return;
                };
                let mut units = vec![unit];
                if (0xd800..0xdc00).contains(&unit) {
                    let mut ahead = chars.clone();
                    if ahead.next() == Some('\\') && ahead.next() == Some('u') {
                        let low: String = ahead.by_ref().take(4).collect();
                        if let Ok(low) = u16::from_str_radix(&low, 16) {
                            units.push(low);
                            *chars = ahead;
                        }
                    }
                }
                out.extend(char::decode_utf16(units).flatten());
            }
            Some(other) => out.push(other),
            None => {}
        }
    }

    /// Every key with its value; a later line wins.
    pub(crate) fn read(text: &str) -> BTreeMap<String, String> {
        let mut map = BTreeMap::new();
        for line in logical_lines(text) {
            let mut chars = line.chars().peekable();
            let mut key = String::new();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => unescape(&mut chars, &mut key),
                    '=' | ':' => break,
                    c if is_blank(c) => {
                        while chars.peek().is_some_and(|c| is_blank(*c)) {
                            chars.next();
                        }
                        if chars.peek().is_some_and(|c| matches!(c, '=' | ':')) {
                            chars.next();
                        }
                        break;
                    }
                    c => key.push(c),
                }
            }
            while chars.peek().is_some_and(|c| is_blank(*c)) {
                chars.next();
            }
            let mut value = String::new();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => unescape(&mut chars, &mut value),
                    c => value.push(c),
                }
            }
            map.insert(key, value);
        }
        map
    }
}

/// Applies one `properties` pair and reads the file back as
/// `java.util.Properties` would.
fn set_property(original: &str, key: &str, value: &str) -> (String, BTreeMap<String, String>) {
    let edited = edit_text(
        original,
        &edit(ConfigFormat::Properties, vec![KeyValue::new(key, value)]),
    )
    .unwrap();
    let read = properties::read(&edited);
    (edited, read)
}

#[test]
fn a_property_set_in_a_file_that_lists_it_twice_reads_back() {
    // Readers take the last occurrence; the editor used to change the first.
    let (edited, read) = set_property("k=1\nother=x\nk=2\n", "k", "3");
    assert_eq!(read.get("k").map(String::as_str), Some("3"), "{edited:?}");
    assert_eq!(read.get("other").map(String::as_str), Some("x"));
}

#[test]
fn a_continuation_line_is_not_mistaken_for_a_key_of_its_own() {
    // `x` is "1k=2": the second line continues the first.
    let (edited, read) = set_property("x=1\\\nk=2\n", "k", "3");
    assert_eq!(
        read.get("x").map(String::as_str),
        Some("1k=2"),
        "{edited:?}"
    );
    assert_eq!(read.get("k").map(String::as_str), Some("3"), "{edited:?}");
}

#[test]
fn a_property_replacing_a_continued_line_takes_its_continuation_lines_along() {
    let (edited, read) = set_property("k=a\\\n  b=c\nz=1\n", "k", "new");
    assert_eq!(read.get("k").map(String::as_str), Some("new"), "{edited:?}");
    assert_eq!(read.get("b"), None, "{edited:?}");
    assert_eq!(read.get("z").map(String::as_str), Some("1"));
}

#[test]
fn a_property_appended_after_a_dangling_continuation_is_a_key_of_its_own() {
    let (edited, read) = set_property("x=1\\", "k", "3");
    assert_eq!(read.get("k").map(String::as_str), Some("3"), "{edited:?}");
    assert_eq!(read.get("x").map(String::as_str), Some("1"), "{edited:?}");
}

#[test]
fn property_keys_with_comment_marks_tabs_and_form_feeds_read_back_and_are_set_once() {
    for key in ["#motd", "!x", "a\tb", "a\u{c}b", "a\nb"] {
        let (edited, read) = set_property("", key, "v");
        assert_eq!(read.get(key).map(String::as_str), Some("v"), "{edited:?}");
        let (again, _) = set_property(&edited, key, "v");
        assert_eq!(again, edited, "setting {key:?} twice");
    }
}

#[test]
fn a_property_value_starting_with_a_form_feed_keeps_it() {
    let (edited, read) = set_property("", "k", "\u{c}x");
    assert_eq!(
        read.get("k").map(String::as_str),
        Some("\u{c}x"),
        "{edited:?}"
    );
}

#[test]
fn a_json_value_of_nan_or_infinity_is_kept_as_text_not_turned_into_null() {
    for value in [".nan", ".inf", "-.inf", "1e400"] {
        let edited = edit_text(
            "",
            &edit(ConfigFormat::Json, vec![KeyValue::new("a", value)]),
        )
        .unwrap();
        let read: serde_json::Value = serde_json::from_str(&edited).unwrap();
        assert_eq!(read["a"], serde_json::Value::from(value), "{edited}");
    }
}

#[test]
fn an_xml_value_with_a_character_xml_cannot_hold_is_refused_not_written() {
    for value in ["\0", "a\u{1b}[31m", "\u{fffe}"] {
        let error = edit_text(
            "<config/>",
            &edit(ConfigFormat::Xml, vec![KeyValue::new("motd", value)]),
        )
        .unwrap_err();
        assert!(
            error.to_string().contains("XML cannot hold the character"),
            "{error}"
        );
    }
}

#[test]
fn an_ini_edit_of_a_file_ending_in_a_carriage_return_is_idempotent() {
    let set = vec![KeyValue::new("a", "0")];
    let once = edit_text("\r", &edit(ConfigFormat::Ini, set.clone())).unwrap();
    let twice = edit_text(&once, &edit(ConfigFormat::Ini, set)).unwrap();
    assert_eq!(twice, once);
}
