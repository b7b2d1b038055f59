//! Applying a plan's [`ConfigEdit`]s to config files, one module per format.
//!
//! Line-based formats (properties, INI, plain) are edited in place so
//! comments, order and unrelated lines survive. YAML and JSON are parsed into
//! an order-preserving tree (`serde_yaml_ng::Value`), edited along the
//! dotted key and written back (YAML comments do not survive). XML uses
//! `xmltree`. Values that look like numbers, booleans or null become those
//! types in YAML and JSON; everything else is a string.

use std::path::Path;

use cap_protocol::{ConfigEdit, ConfigFormat, KeyValue};
use serde_yaml_ng::{Mapping, Value};

/// A config edit failed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigEditError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The existing file is not valid in its format.
    #[error("{path} is not valid {format}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// The format.
        format: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A `plain` edit's key or value holds a line break (CR or LF) or NUL:
    /// it would write lines the edit does not name (a second directive
    /// smuggled into the file), so it is refused rather than rewritten.
    #[error("{path}: the plain edit of `{}` contains a line break or NUL", key.escape_debug())]
    LineBreak {
        /// The file.
        path: String,
        /// The key of the offending edit.
        key: String,
    },
    /// A key cannot be set (e.g. a path through a scalar).
    #[error("{path}: cannot set `{key}`: {message}")]
    Key {
        /// The file.
        path: String,
        /// The key.
        key: String,
        /// Why not.
        message: String,
    },
}

/// Applies `edit` to the file at `file` (creating it when missing) and
/// writes the result atomically.
///
/// # Errors
///
/// [`ConfigEditError`]; the file is unchanged then.
pub fn apply(file: &Path, edit: &ConfigEdit) -> Result<(), ConfigEditError> {
    let io = |source| ConfigEditError::Io {
        path: edit.path.clone(),
        source,
    };
    let original = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(error) => return Err(io(error)),
    };
    let edited = edit_text(&original, edit)?;
    crate::install::write_atomically(file, edited.as_bytes(), None).map_err(io)
}

/// Returns `original` with `edit` applied.
///
/// ```
/// use cap_protocol::{ConfigEdit, ConfigFormat, KeyValue};
///
/// let edit = ConfigEdit { path: "server.properties".into(), format: ConfigFormat::Properties,
///     set: vec![KeyValue::new("server-port", "25566")] };
/// let text = cap_agent::config_edit::edit_text("# ports\nserver-port=25565\nmotd=hi\n", &edit)?;
/// assert_eq!(text, "# ports\nserver-port=25566\nmotd=hi\n");
/// # Ok::<(), cap_agent::config_edit::ConfigEditError>(())
/// ```
///
/// # Errors
///
/// [`ConfigEditError::Parse`], [`ConfigEditError::Key`], or
/// [`ConfigEditError::LineBreak`] for a `plain` key or value with CR, LF or
/// NUL.
pub fn edit_text(original: &str, edit: &ConfigEdit) -> Result<String, ConfigEditError> {
    match edit.format {
        ConfigFormat::Properties => Ok(properties(original, &edit.set)),
        ConfigFormat::Plain => plain(original, edit),
        ConfigFormat::Ini => Ok(ini(original, &edit.set)),
        ConfigFormat::Yaml | ConfigFormat::Json => tree(original, edit),
        ConfigFormat::Xml => xml(original, edit),
    }
}

fn lines_of(text: &str) -> Vec<String> {
    // `lines` keeps a `\r` that ends the text without a `\n`; dropping it
    // makes a second edit see the same lines as the first.
    text.lines()
        .map(|line| line.strip_suffix('\r').unwrap_or(line).to_owned())
        .collect()
}

fn join_lines(lines: &[String]) -> String {
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

/// Whitespace as `java.util.Properties` reads it.
fn is_property_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\u{c}')
}

fn escape_property(text: &str, is_key: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, c) in text.chars().enumerate() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{c}' => out.push_str("\\f"),
            '=' | ':' | ' ' if is_key => {
                out.push('\\');
                out.push(c);
            }
            // A key starting with `#` or `!` would make a comment line.
            '#' | '!' if is_key && i == 0 => {
                out.push('\\');
                out.push(c);
            }
            ' ' if i == 0 => out.push_str("\\ "),
            _ => out.push(c),
        }
    }
    out
}

/// Whether `line` ends in an odd number of backslashes, i.e. continues on
/// the next line.
fn continues(line: &str) -> bool {
    line.chars().rev().take_while(|c| *c == '\\').count() % 2 == 1
}

/// The key of a logical properties line, or `None` for comments and blank
/// lines. Escapes are read as `java.util.Properties` reads them.
fn property_key(line: &str) -> Option<String> {
    let trimmed = line.trim_start_matches(is_property_blank);
    if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('!') {
        return None;
    }
    let mut key = String::new();
    let mut chars = trimmed.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('t') => key.push('\t'),
                Some('n') => key.push('\n'),
                Some('r') => key.push('\r'),
                Some('f') => key.push('\u{c}'),
                Some('u') => {
                    let hex: String = chars.by_ref().take(4).collect();
                    key.extend(u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32));
                }
                Some(other) => key.push(other),
                None => {}
            },
            '=' | ':' => break,
            c if is_property_blank(c) => break,
            _ => key.push(c),
        }
    }
    Some(key)
}

/// The logical lines of a properties file as ranges of `lines` (a line
/// ending in an odd number of backslashes continues on the next; comments
/// never do), each with its key.
fn property_entries(lines: &[String]) -> Vec<(std::ops::Range<usize>, Option<String>)> {
    let mut entries = Vec::new();
    let mut start = 0;
    while start < lines.len() {
        let first = lines[start].trim_start_matches(is_property_blank);
        let is_comment = first.starts_with('#') || first.starts_with('!');
        let mut end = start;
        let mut logical = String::new();
        loop {
            let line = lines[end].trim_start_matches(is_property_blank);
            if !is_comment && continues(line) && end + 1 < lines.len() {
                logical.push_str(&line[..line.len() - 1]);
                end += 1;
            } else {
                logical.push_str(line);
                break;
            }
        }
        entries.push((start..end + 1, property_key(&logical)));
        start = end + 1;
    }
    entries
}

fn properties(original: &str, set: &[KeyValue]) -> String {
    let mut lines = lines_of(original);
    for pair in set {
        let line = format!(
            "{}={}",
            escape_property(&pair.key, true),
            escape_property(&pair.value, false)
        );
        let entries = property_entries(&lines);
        let matching: Vec<_> = entries
            .iter()
            .filter(|(_, key)| key.as_deref() == Some(pair.key.as_str()))
            .map(|(range, _)| range.clone())
            .collect();
        if matching.is_empty() {
            // A last line that continues would swallow the new one: end it.
            if entries
                .last()
                .is_some_and(|(range, key)| key.is_some() && continues(&lines[range.end - 1]))
            {
                lines.push(String::new());
            }
            lines.push(line);
        } else {
            // Every occurrence (readers take the last one), continuation
            // lines included; back to front so the ranges stay valid.
            for range in matching.into_iter().rev() {
                lines.splice(range, [line.clone()]);
            }
        }
    }
    join_lines(&lines)
}

/// Each key is a line prefix; its value replaces every line that starts
/// with it, or is appended. One value is one line: CR, LF and NUL are
/// refused, in keys too (a key with a line break matches no line, so its
/// value would be appended).
fn plain(original: &str, edit: &ConfigEdit) -> Result<String, ConfigEditError> {
    let breaks = |text: &str| text.contains(['\r', '\n', '\0']);
    if let Some(pair) = edit
        .set
        .iter()
        .find(|pair| breaks(&pair.key) || breaks(&pair.value))
    {
        return Err(ConfigEditError::LineBreak {
            path: edit.path.clone(),
            key: pair.key.clone(),
        });
    }
    let mut lines = lines_of(original);
    for pair in &edit.set {
        let mut found = false;
        for line in lines.iter_mut().filter(|l| l.starts_with(&pair.key)) {
            line.clone_from(&pair.value);
            found = true;
        }
        if !found {
            lines.push(pair.value.clone());
        }
    }
    Ok(join_lines(&lines))
}

fn ini_section(line: &str) -> Option<&str> {
    let trimmed = line.trim();
    trimmed.strip_prefix('[')?.strip_suffix(']').map(str::trim)
}

fn ini_key(line: &str) -> Option<&str> {
    let trimmed = line.trim();
    if trimmed.starts_with(';') || trimmed.starts_with('#') || trimmed.starts_with('[') {
        return None;
    }
    trimmed.split_once('=').map(|(key, _)| key.trim())
}

fn ini(original: &str, set: &[KeyValue]) -> String {
    let mut lines = lines_of(original);
    for pair in set {
        let (section, key) = match pair.key.rsplit_once('.') {
            Some((section, key)) => (Some(section), key),
            None => (None, pair.key.as_str()),
        };
        let new_line = format!("{key} = {}", pair.value.replace(['\n', '\r'], " "));
        // The range of lines belonging to the section: after its header up
        // to the next header (or the first header for no section).
        let start = match section {
            None => Some(0),
            Some(name) => lines
                .iter()
                .position(|l| ini_section(l) == Some(name))
                .map(|i| i + 1),
        };
        let Some(start) = start else {
            if lines.last().is_some_and(|l| !l.trim().is_empty()) {
                lines.push(String::new());
            }
            lines.push(format!("[{}]", section.unwrap_or_default()));
            lines.push(new_line);
            continue;
        };
        let end = lines[start..]
            .iter()
            .position(|l| ini_section(l).is_some())
            .map_or(lines.len(), |i| start + i);
        match (start..end).find(|&i| ini_key(&lines[i]) == Some(key)) {
            Some(i) => lines[i] = new_line,
            None => {
                // After the section's last non-blank line.
                let mut at = end;
                while at > start && lines[at - 1].trim().is_empty() {
                    at -= 1;
                }
                lines.insert(at, new_line);
            }
        }
    }
    join_lines(&lines)
}

/// A YAML scalar for `value`: numbers, booleans and null keep their type.
/// JSON has no NaN or infinity (it would write `null`), so for JSON those
/// stay strings.
fn scalar(value: &str, json: bool) -> Value {
    match serde_yaml_ng::from_str::<Value>(value) {
        Ok(Value::Number(n)) if json && n.as_f64().is_some_and(|f| !f.is_finite()) => {
            Value::String(value.to_owned())
        }
        Ok(parsed @ (Value::Bool(_) | Value::Number(_))) => parsed,
        Ok(Value::Null) if value.trim() == "null" => Value::Null,
        _ => Value::String(value.to_owned()),
    }
}

fn tree(original: &str, edit: &ConfigEdit) -> Result<String, ConfigEditError> {
    let json = edit.format == ConfigFormat::Json;
    let format = if json { "JSON" } else { "YAML" };
    let parse_error = |message: String| ConfigEditError::Parse {
        path: edit.path.clone(),
        format,
        message,
    };
    let mut root: Value = if original.trim().is_empty() {
        Value::Mapping(Mapping::new())
    } else if json {
        serde_json::from_str(original).map_err(|e| parse_error(e.to_string()))?
    } else {
        serde_yaml_ng::from_str(original).map_err(|e| parse_error(e.to_string()))?
    };
    for pair in &edit.set {
        let key_error = |message: &str| ConfigEditError::Key {
            path: edit.path.clone(),
            key: pair.key.clone(),
            message: message.to_owned(),
        };
        let mut node = &mut root;
        let parts: Vec<&str> = pair.key.split('.').collect();
        for (i, part) in parts.iter().enumerate() {
            let last = i + 1 == parts.len();
            if node.is_null() {
                *node = Value::Mapping(Mapping::new());
            }
            node = match node {
                Value::Mapping(map) => {
                    let key = Value::String((*part).to_owned());
                    if !map.contains_key(&key) {
                        map.insert(key.clone(), Value::Null);
                    }
                    map.get_mut(&key).ok_or_else(|| key_error("missing"))?
                }
                Value::Sequence(items) => {
                    let index: usize = part
                        .parse()
                        .map_err(|_| key_error("an array needs a numeric index"))?;
                    items
                        .get_mut(index)
                        .ok_or_else(|| key_error("array index out of range"))?
                }
                _ => return Err(key_error("the path runs through a scalar")),
            };
            if last {
                *node = scalar(&pair.value, json);
            }
        }
    }
    if json {
        let mut out =
            serde_json::to_string_pretty(&root).map_err(|e| parse_error(e.to_string()))?;
        out.push('\n');
        Ok(out)
    } else {
        serde_yaml_ng::to_string(&root).map_err(|e| parse_error(e.to_string()))
    }
}

fn xml(original: &str, edit: &ConfigEdit) -> Result<String, ConfigEditError> {
    use xmltree::{Element, EmitterConfig, XMLNode};
    let parse_error = |message: String| ConfigEditError::Parse {
        path: edit.path.clone(),
        format: "XML",
        message,
    };
    let mut root = if original.trim().is_empty() {
        Element::new("config")
    } else {
        Element::parse(original.as_bytes()).map_err(|e| parse_error(e.to_string()))?
    };
    for pair in &edit.set {
        // XML 1.0 has no way to write most control characters, not even
        // escaped: writing them would leave a file no parser reads.
        if let Some(c) = pair.key.chars().chain(pair.value.chars()).find(|&c| {
            (u32::from(c) < 0x20 && !matches!(c, '\t' | '\n' | '\r'))
                || matches!(c, '\u{fffe}' | '\u{ffff}')
        }) {
            return Err(ConfigEditError::Key {
                path: edit.path.clone(),
                key: pair.key.clone(),
                message: format!("XML cannot hold the character {c:?}"),
            });
        }
        let (element_path, attribute) = match pair.key.rsplit_once('@') {
            Some((path, attribute)) => (path, Some(attribute)),
            None => (pair.key.as_str(), None),
        };
        let mut node = &mut root;
        for part in element_path.split('/').filter(|p| !p.is_empty()) {
            if node.get_child(part).is_none() {
                node.children.push(XMLNode::Element(Element::new(part)));
            }
            node = node
                .get_mut_child(part)
                .ok_or_else(|| ConfigEditError::Key {
                    path: edit.path.clone(),
                    key: pair.key.clone(),
                    message: "element vanished".into(),
                })?;
        }
        match attribute {
            Some(attribute) => {
                node.attributes
                    .insert(attribute.to_owned(), pair.value.clone());
            }
            None => {
                node.children
                    .retain(|child| !matches!(child, XMLNode::Text(_) | XMLNode::CData(_)));
                node.children.insert(0, XMLNode::Text(pair.value.clone()));
            }
        }
    }
    let mut out = Vec::new();
    root.write_with_config(
        &mut out,
        EmitterConfig::new()
            .perform_indent(true)
            .write_document_declaration(true),
    )
    .map_err(|e| parse_error(e.to_string()))?;
    let mut text = String::from_utf8(out).map_err(|e| parse_error(e.to_string()))?;
    text.push('\n');
    Ok(text)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn edit(format: ConfigFormat, set: &[(&str, &str)]) -> ConfigEdit {
        ConfigEdit {
            path: "file".into(),
            format,
            set: set.iter().map(|&(k, v)| KeyValue::new(k, v)).collect(),
        }
    }

    #[test]
    fn properties_keep_comments_replace_in_place_and_append_new_keys() {
        let text = "#Minecraft server properties\nmotd = A server\nserver-port: 25565\n";
        let out = edit_text(
            text,
            &edit(
                ConfigFormat::Properties,
                &[("server-port", "25566"), ("max-players", "20")],
            ),
        )
        .unwrap();
        assert_eq!(
            out,
            "#Minecraft server properties\nmotd = A server\nserver-port=25566\nmax-players=20\n"
        );
    }

    #[test]
    fn a_property_value_with_a_newline_cannot_inject_a_second_key() {
        let out = edit_text(
            "",
            &edit(ConfigFormat::Properties, &[("motd", "hi\nop=alice")]),
        )
        .unwrap();
        assert_eq!(out, "motd=hi\\nop=alice\n");
    }

    #[test]
    fn ini_sets_keys_in_their_section_and_creates_missing_sections() {
        let text = "top = 1\n\n[server]\n; the port\nport = 1\n\n[other]\nport = 9\n";
        let out = edit_text(
            text,
            &edit(
                ConfigFormat::Ini,
                &[
                    ("server.port", "2"),
                    ("server.name", "x"),
                    ("top", "3"),
                    ("new.key", "v"),
                ],
            ),
        )
        .unwrap();
        assert_eq!(
            out,
            "top = 3\n\n[server]\n; the port\nport = 2\nname = x\n\n[other]\nport = 9\n\n[new]\nkey = v\n"
        );
    }

    #[test]
    fn yaml_sets_dotted_paths_with_typed_scalars_and_keeps_key_order() {
        let text = "zeta: 1\nsettings:\n  port: 1\n  name: old\n";
        let out = edit_text(
            text,
            &edit(
                ConfigFormat::Yaml,
                &[
                    ("settings.port", "25565"),
                    ("settings.online", "true"),
                    ("new.deep.key", "text"),
                ],
            ),
        )
        .unwrap();
        let value: Value = serde_yaml_ng::from_str(&out).unwrap();
        assert_eq!(value["settings"]["port"], Value::from(25565));
        assert_eq!(value["settings"]["online"], Value::Bool(true));
        assert_eq!(value["new"]["deep"]["key"], Value::from("text"));
        assert!(out.starts_with("zeta: 1\n"), "{out}");
    }

    #[test]
    fn json_keeps_key_order_and_refuses_a_path_through_a_scalar() {
        let text = r#"{"b": {"port": 1}, "a": "x"}"#;
        let out = edit_text(text, &edit(ConfigFormat::Json, &[("b.port", "7")])).unwrap();
        assert_eq!(
            out,
            "{\n  \"b\": {\n    \"port\": 7\n  },\n  \"a\": \"x\"\n}\n"
        );
        let error = edit_text(text, &edit(ConfigFormat::Json, &[("a.b", "1")])).unwrap_err();
        assert!(matches!(error, ConfigEditError::Key { .. }), "{error}");
        let broken = edit_text("{", &edit(ConfigFormat::Json, &[("a", "1")])).unwrap_err();
        assert!(matches!(broken, ConfigEditError::Parse { .. }), "{broken}");
    }

    #[test]
    fn xml_sets_element_text_and_attributes_below_the_root() {
        let text = "<config><network><port>1</port></network><name>n</name></config>";
        let out = edit_text(
            text,
            &edit(
                ConfigFormat::Xml,
                &[
                    ("network/port", "2"),
                    ("network@bind", "0.0.0.0"),
                    ("limits/players", "8"),
                ],
            ),
        )
        .unwrap();
        let root = xmltree::Element::parse(out.as_bytes()).unwrap();
        let network = root.get_child("network").unwrap();
        assert_eq!(network.get_child("port").unwrap().get_text().unwrap(), "2");
        assert_eq!(network.attributes.get("bind").unwrap(), "0.0.0.0");
        let players = root
            .get_child("limits")
            .unwrap()
            .get_child("players")
            .unwrap();
        assert_eq!(players.get_text().unwrap(), "8");
        assert_eq!(root.get_child("name").unwrap().get_text().unwrap(), "n");
    }

    #[test]
    fn a_plain_value_or_key_with_a_line_break_or_nul_is_refused() {
        let text = "eula=false\n";
        for (key, value) in [
            ("eula=", "eula=true\nop alice"),
            ("eula=", "eula=true\rop alice"),
            ("eula=", "eula=true\0"),
            ("motd\n", "motd hi"),
        ] {
            let error = edit_text(text, &edit(ConfigFormat::Plain, &[(key, value)])).unwrap_err();
            assert!(
                matches!(&error, ConfigEditError::LineBreak { key: k, .. } if k == key),
                "{error}"
            );
        }
        // The other edits of a refused plan are not applied either.
        let error = edit_text(
            text,
            &edit(
                ConfigFormat::Plain,
                &[("eula=", "eula=true"), ("x", "a\nb")],
            ),
        )
        .unwrap_err();
        assert!(
            matches!(error, ConfigEditError::LineBreak { .. }),
            "{error}"
        );
    }

    #[test]
    fn plain_replaces_every_line_with_the_prefix_or_appends() {
        let text = "eula=false\nother\n";
        let out = edit_text(
            text,
            &edit(
                ConfigFormat::Plain,
                &[("eula=", "eula=true"), ("motd", "motd hello")],
            ),
        )
        .unwrap();
        assert_eq!(out, "eula=true\nother\nmotd hello\n");
    }
}
