//! Applying a plan's [`ConfigEdit`]s to config files, through the one
//! config-file editor of the workspace: `cap_egg::config_files`, which
//! also applies eggs' `config.files`.
//!
//! A `config-edit` is that editor's [`Dialect::Plan`]: keys as the plugin
//! API's `config-edit` record documents them (a property name, a dotted
//! path for YAML and JSON, `section.key` for INI, a `/`-separated element
//! path below the root with `@attr` for XML, a line prefix for plain
//! files), with `*` for every child in YAML, JSON and XML paths
//! (`servers.*.port`). Line-based formats are edited in place, so
//! comments, order and unrelated lines survive; YAML and JSON values that
//! read as numbers, booleans or null keep that type. See
//! `cap_egg::config_files` for each format.
//!
//! This module reads the file (at most [`MAX_FILE_BYTES`]), maps the
//! editor's errors onto [`ConfigEditError`], which names the file and the
//! key, and writes the result atomically.

use std::io::Read;
use std::path::Path;

use cap_egg::Parser;
use cap_egg::config_files::{self, Dialect, Edit};
use cap_protocol::{ConfigEdit, ConfigFormat};

pub use cap_egg::config_files::MAX_FILE_BYTES;

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
    /// The existing file is larger than [`MAX_FILE_BYTES`].
    #[error("{path} is larger than the {limit} byte limit for config files")]
    TooLarge {
        /// The file.
        path: String,
        /// The limit in bytes.
        limit: usize,
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
    /// A line-based edit's key (a plain or INI key) or a plain value holds
    /// a line break (CR or LF) or NUL: it would write lines the edit does
    /// not name (a second directive smuggled into the file), so it is
    /// refused rather than rewritten.
    #[error("{path}: the edit of `{}` contains a line break or NUL", key.escape_debug())]
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
    let original = match std::fs::File::open(file) {
        Ok(opened) => {
            let mut bytes = Vec::new();
            opened
                .take(MAX_FILE_BYTES as u64 + 1)
                .read_to_end(&mut bytes)
                .map_err(io)?;
            if bytes.len() > MAX_FILE_BYTES {
                return Err(ConfigEditError::TooLarge {
                    path: edit.path.clone(),
                    limit: MAX_FILE_BYTES,
                });
            }
            Some(bytes)
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
        Err(error) => return Err(io(error)),
    };
    let edited = edit_bytes(original.as_deref(), edit)?;
    crate::install::write_atomically(file, &edited, None).map_err(io)
}

/// Returns `original` with `edit` applied.
///
/// ```
/// use cap_protocol::{ConfigEdit, ConfigFormat, KeyValue};
///
/// let edit = ConfigEdit { path: "server.properties".into(), format: ConfigFormat::Properties,
///     set: vec![KeyValue::new("server-port", "25566")], set_if: vec![] };
/// let text = cap_agent::config_edit::edit_text("# ports\nserver-port=25565\nmotd=hi\n", &edit)?;
/// assert_eq!(text, "# ports\nserver-port=25566\nmotd=hi\n");
/// # Ok::<(), cap_agent::config_edit::ConfigEditError>(())
/// ```
///
/// # Errors
///
/// [`ConfigEditError::Parse`], [`ConfigEditError::Key`], or
/// [`ConfigEditError::LineBreak`] for a plain key or value, or an INI key,
/// with CR, LF or NUL.
pub fn edit_text(original: &str, edit: &ConfigEdit) -> Result<String, ConfigEditError> {
    let edited = edit_bytes(Some(original.as_bytes()), edit)?;
    String::from_utf8(edited).map_err(|e| ConfigEditError::Parse {
        path: edit.path.clone(),
        format: format_name(edit.format),
        message: e.to_string(),
    })
}

fn parser(format: ConfigFormat) -> Parser {
    match format {
        ConfigFormat::Properties => Parser::Properties,
        ConfigFormat::Yaml => Parser::Yaml,
        ConfigFormat::Json => Parser::Json,
        ConfigFormat::Ini => Parser::Ini,
        ConfigFormat::Xml => Parser::Xml,
        ConfigFormat::Plain => Parser::File,
    }
}

fn format_name(format: ConfigFormat) -> &'static str {
    match format {
        ConfigFormat::Properties => "properties",
        ConfigFormat::Yaml => "YAML",
        ConfigFormat::Json => "JSON",
        ConfigFormat::Ini => "INI",
        ConfigFormat::Xml => "XML",
        ConfigFormat::Plain => "text",
    }
}

fn edit_bytes(original: Option<&[u8]>, edit: &ConfigEdit) -> Result<Vec<u8>, ConfigEditError> {
    let conditional = edit.set_if.iter().map(|c| Edit {
        key: c.key.clone(),
        value: cap_egg::config_files::EditValue::Text(c.value.clone()),
        when: Some(c.if_value.clone()),
    });
    let edits: Vec<Edit> = edit
        .set
        .iter()
        .map(|pair| Edit::set(pair.key.clone(), pair.value.clone()))
        .chain(conditional)
        .collect();
    config_files::edit(
        &edit.path,
        parser(edit.format),
        Dialect::Plan,
        original,
        &edits,
    )
    .map_err(|error| match error {
        cap_egg::Error::ConfigKey { key, message, .. } => ConfigEditError::Key {
            path: edit.path.clone(),
            key,
            message,
        },
        cap_egg::Error::ConfigLineBreak { key, .. } => ConfigEditError::LineBreak {
            path: edit.path.clone(),
            key,
        },
        other => ConfigEditError::Parse {
            path: edit.path.clone(),
            format: format_name(edit.format),
            message: match other {
                cap_egg::Error::ConfigFile { message, .. } => message,
                other => other.to_string(),
            },
        },
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use cap_protocol::KeyValue;
    use serde_yaml_ng::Value;

    fn edit(format: ConfigFormat, set: &[(&str, &str)]) -> ConfigEdit {
        ConfigEdit {
            path: "file".into(),
            format,
            set: set.iter().map(|&(k, v)| KeyValue::new(k, v)).collect(),
            set_if: vec![],
        }
    }

    #[test]
    fn conditional_sets_apply_after_the_plain_ones_where_their_condition_holds() {
        let mut edit = edit(ConfigFormat::Yaml, &[("listeners.0.host", "0.0.0.0:25577")]);
        edit.set_if = vec![cap_protocol::ConditionalSet {
            key: "servers.*.address".into(),
            if_value: r"regex:^(127\.0\.0\.1|localhost)(:\d{1,5})?$".into(),
            value: "10.88.0.1$2".into(),
        }];
        let text = "listeners:\n- host: x\nservers:\n  lobby:\n    address: localhost:25566\n  far:\n    address: 10.1.1.1:25565\n";
        let out: Value = serde_yaml_ng::from_str(&edit_text(text, &edit).unwrap()).unwrap();
        assert_eq!(out["servers"]["lobby"]["address"], "10.88.0.1:25566");
        assert_eq!(out["servers"]["far"]["address"], "10.1.1.1:25565");
        assert_eq!(out["listeners"][0]["host"], "0.0.0.0:25577");
        // A pattern the editor cannot compile names the key; nothing is written.
        edit.set_if[0].if_value = "regex:(".into();
        let error = edit_text(text, &edit).unwrap_err();
        assert!(
            matches!(&error, ConfigEditError::Key { key, .. } if key == "servers.*.address"),
            "{error}"
        );
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
        // A file without indentation is written with four spaces, as the
        // egg editor writes JSON (and PHP's pretty print).
        let text = r#"{"b": {"port": 1}, "a": "x"}"#;
        let out = edit_text(text, &edit(ConfigFormat::Json, &[("b.port", "7")])).unwrap();
        assert_eq!(
            out,
            "{\n    \"b\": {\n        \"port\": 7\n    },\n    \"a\": \"x\"\n}\n"
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
    fn a_wildcard_key_sets_the_key_in_every_child_in_json_yaml_and_xml() {
        let json = edit_text(
            r#"{"servers": {"lobby": {"port": 1}, "hub": {"port": 2, "motd": "x"}}}"#,
            &edit(ConfigFormat::Json, &[("servers.*.port", "25565")]),
        )
        .unwrap();
        let json: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(json["servers"]["lobby"]["port"], 25565);
        assert_eq!(json["servers"]["hub"]["port"], 25565);
        assert_eq!(json["servers"]["hub"]["motd"], "x");

        let yaml = edit_text(
            "listeners:\n- host: a\n- host: b\n",
            &edit(ConfigFormat::Yaml, &[("listeners.*.host", "0.0.0.0:25577")]),
        )
        .unwrap();
        let yaml: Value = serde_yaml_ng::from_str(&yaml).unwrap();
        assert_eq!(yaml["listeners"][0]["host"], Value::from("0.0.0.0:25577"));
        assert_eq!(yaml["listeners"][1]["host"], Value::from("0.0.0.0:25577"));

        let xml = edit_text(
            "<config><a><port>1</port></a><b><port>2</port></b></config>",
            &edit(
                ConfigFormat::Xml,
                &[("*/port", "7"), ("*/port@open", "yes")],
            ),
        )
        .unwrap();
        let root = xmltree::Element::parse(xml.as_bytes()).unwrap();
        for name in ["a", "b"] {
            let port = root.get_child(name).unwrap().get_child("port").unwrap();
            assert_eq!(port.get_text().unwrap(), "7", "{xml}");
            assert_eq!(port.attributes.get("open").unwrap(), "yes", "{xml}");
        }
    }

    #[test]
    fn a_config_file_over_the_limit_is_refused_naming_it_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.properties");
        let big = vec![b'#'; MAX_FILE_BYTES + 1];
        std::fs::write(&path, &big).unwrap();
        let error = apply(
            &path,
            &ConfigEdit {
                path: "big.properties".into(),
                format: ConfigFormat::Properties,
                set: vec![KeyValue::new("a", "b")],
                set_if: vec![],
            },
        )
        .unwrap_err();
        assert!(
            matches!(&error, ConfigEditError::TooLarge { path, .. } if path == "big.properties"),
            "{error}"
        );
        assert_eq!(std::fs::metadata(&path).unwrap().len(), big.len() as u64);
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
