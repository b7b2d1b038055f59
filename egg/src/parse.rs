//! Reading an egg: bytes → [`Tree`] → [`Egg`], every field checked, every
//! error naming its field.

use std::io::Read;

use crate::error::{Error, Result};
use crate::model::{
    Config, ConfigFile, DockerImage, DonePattern, Egg, Find, FindValue, Install, Layout, Parser,
    RESERVED_ENV_NAMES, StartupCommand, Stop, StopSignal, Syntax, Variable, Version,
};
use crate::rules::{Rules, rule_error};
use crate::tree::Tree;

/// The largest egg accepted, in bytes: 4 MiB. The largest community eggs
/// are a few hundred kilobytes, most of it a PLCN_v3 icon; anything near
/// the limit is not an egg.
pub const MAX_EGG_BYTES: usize = 4 * 1024 * 1024;

/// Variable fields a panel's export may carry that mean nothing outside
/// its database.
const DATABASE_FIELDS: &[&str] = &["id", "egg_id", "created_at", "updated_at"];

impl Egg {
    /// Parses an egg from its bytes, JSON or YAML (JSON when the first
    /// character that is not whitespace is `{`).
    ///
    /// # Errors
    ///
    /// [`Error::TooLarge`] above [`MAX_EGG_BYTES`], [`Error::Malformed`]
    /// for bytes that are not JSON or YAML, [`Error::Field`] naming the
    /// first field that is missing, of the wrong type, or not allowed.
    pub fn parse(bytes: &[u8]) -> Result<Egg> {
        if bytes.len() > MAX_EGG_BYTES {
            return Err(Error::TooLarge {
                limit: MAX_EGG_BYTES,
            });
        }
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
        let (syntax, tree) = if first == Some(&b'{') {
            let tree = serde_json::from_slice::<Tree>(bytes).map_err(|e| Error::Malformed {
                syntax: "JSON",
                message: e.to_string(),
            })?;
            (Syntax::Json, tree)
        } else {
            let tree = serde_yaml_ng::from_slice::<Tree>(bytes).map_err(|e| Error::Malformed {
                syntax: "YAML",
                message: e.to_string(),
            })?;
            (Syntax::Yaml, tree)
        };
        from_tree(tree, syntax)
    }

    /// Reads and parses an egg, reading at most [`MAX_EGG_BYTES`] + 1
    /// bytes: a larger input is refused without being read whole.
    ///
    /// # Errors
    ///
    /// As [`Egg::parse`], and [`Error::Io`] when reading fails.
    pub fn read(reader: impl Read) -> Result<Egg> {
        let mut bytes = Vec::new();
        reader
            .take(MAX_EGG_BYTES as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::Io(e.to_string()))?;
        Egg::parse(&bytes)
    }
}

/// An object being read, with its path for errors.
struct Obj<'a> {
    path: String,
    pairs: &'a [(String, Tree)],
}

impl<'a> Obj<'a> {
    fn new(path: impl Into<String>, tree: &'a Tree) -> Result<Obj<'a>> {
        let path = path.into();
        match tree {
            Tree::Object(pairs) => Ok(Obj { path, pairs }),
            other => Err(Error::field(
                display_path(&path),
                format!("expected an object, got {}", other.kind()),
            )),
        }
    }

    fn at(&self, key: &str) -> String {
        join(&self.path, key)
    }

    fn get(&self, key: &str) -> Option<&'a Tree> {
        self.pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// A string field that may be missing or null.
    fn opt_str(&self, key: &str) -> Result<Option<String>> {
        match self.get(key) {
            None | Some(Tree::Null) => Ok(None),
            Some(Tree::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(wrong(&self.at(key), "a string", other)),
        }
    }

    /// A string field that must be there.
    fn req_str(&self, key: &str) -> Result<String> {
        self.opt_str(key)?
            .ok_or_else(|| Error::field(self.at(key), "missing"))
    }

    /// A list of strings that may be missing or null.
    fn str_list(&self, key: &str) -> Result<Option<Vec<String>>> {
        match self.get(key) {
            None | Some(Tree::Null) => Ok(None),
            Some(Tree::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Tree::String(s) => Ok(s.clone()),
                    other => Err(wrong(&format!("{}[{i}]", self.at(key)), "a string", other)),
                })
                .collect::<Result<Vec<_>>>()
                .map(Some),
            Some(other) => Err(wrong(&self.at(key), "a list of strings", other)),
        }
    }
}

fn join(path: &str, key: &str) -> String {
    let key = if key.is_empty() || key.contains(['.', ' ', '"', '[', '/', '\\', ':']) {
        format!("{key:?}")
    } else {
        key.to_owned()
    };
    if path.is_empty() {
        key
    } else {
        format!("{path}.{key}")
    }
}

fn display_path(path: &str) -> String {
    if path.is_empty() {
        "(the egg)".into()
    } else {
        path.into()
    }
}

fn wrong(path: &str, want: &str, got: &Tree) -> Error {
    Error::field(path, format!("expected {want}, got {}", got.kind()))
}

fn from_tree(tree: Tree, syntax: Syntax) -> Result<Egg> {
    let root = Obj::new("", &tree)?;
    let meta = Obj::new(
        "meta",
        root.get("meta")
            .ok_or_else(|| Error::field("meta", "missing"))?,
    )?;
    let version_text = meta.req_str("version")?;
    let version = Version::from_meta(&version_text).ok_or_else(|| {
        let known: Vec<&str> = Version::ALL.iter().map(|v| v.as_str()).collect();
        Error::field(
            "meta.version",
            format!(
                "unknown version {version_text:?} (known: {})",
                known.join(", ")
            ),
        )
    })?;
    let mut layout = Layout::default();
    let mut known_keys = vec![
        "_comment",
        "meta",
        "exported_at",
        "name",
        "author",
        "uuid",
        "description",
        "features",
        "file_denylist",
        "config",
        "scripts",
        "variables",
        "tags",
    ];

    let name = root.req_str("name")?;
    if name.trim().is_empty() {
        return Err(Error::field("name", "empty"));
    }

    let icon = if version == Version::PlcnV3 {
        known_keys.extend(["image", "icon"]);
        let key = ["icon", "image"]
            .into_iter()
            .find(|k| root.get(k).is_some());
        layout.icon_key = key.map(str::to_owned);
        match key {
            Some(k) => root.opt_str(k)?,
            None => None,
        }
    } else {
        None
    };

    let tags = root.str_list("tags")?;
    layout.has_tags = root.get("tags").is_some();
    let features = root.str_list("features")?;
    layout.features_null = features.is_none();

    let docker_images = if version == Version::PtdlV1 {
        known_keys.extend(["images", "image"]);
        let list = match (root.str_list("images")?, root.opt_str("image")?) {
            (Some(list), _) => list,
            (None, Some(image)) => vec![image],
            (None, None) => return Err(Error::field("images", "missing")),
        };
        list.into_iter()
            .map(|image| DockerImage {
                display_name: image.clone(),
                image,
            })
            .collect::<Vec<_>>()
    } else {
        known_keys.push("docker_images");
        let tree = root
            .get("docker_images")
            .ok_or_else(|| Error::field("docker_images", "missing"))?;
        let images = Obj::new("docker_images", tree)?;
        images
            .pairs
            .iter()
            .map(|(display_name, image)| match image {
                Tree::String(image) if !image.trim().is_empty() => Ok(DockerImage {
                    display_name: display_name.clone(),
                    image: image.clone(),
                }),
                other => Err(wrong(&images.at(display_name), "an image name", other)),
            })
            .collect::<Result<Vec<_>>>()?
    };
    if docker_images.is_empty() {
        let field = if version == Version::PtdlV1 {
            "images"
        } else {
            "docker_images"
        };
        return Err(Error::field(field, "lists no image"));
    }

    let file_denylist = root
        .str_list("file_denylist")?
        .unwrap_or_default()
        .into_iter()
        .filter(|p| !p.is_empty())
        .collect();

    let startup_commands = if version == Version::PlcnV3 {
        known_keys.push("startup_commands");
        let tree = root
            .get("startup_commands")
            .ok_or_else(|| Error::field("startup_commands", "missing"))?;
        let map = Obj::new("startup_commands", tree)?;
        let commands = map
            .pairs
            .iter()
            .map(|(name, command)| match command {
                Tree::String(command) if !command.trim().is_empty() => Ok(StartupCommand {
                    name: name.clone(),
                    command: command.clone(),
                }),
                Tree::String(_) => Err(Error::field(map.at(name), "empty")),
                other => Err(wrong(&map.at(name), "a string", other)),
            })
            .collect::<Result<Vec<_>>>()?;
        if commands.is_empty() {
            return Err(Error::field("startup_commands", "no startup command"));
        }
        commands
    } else {
        known_keys.push("startup");
        let command = root.req_str("startup")?;
        if command.trim().is_empty() {
            return Err(Error::field("startup", "empty"));
        }
        vec![StartupCommand {
            name: "Default".into(),
            command,
        }]
    };

    let config = parse_config(
        root.get("config")
            .ok_or_else(|| Error::field("config", "missing"))?,
        &mut layout,
    )?;
    let install = parse_install(root.get("scripts"))?;
    let variables = parse_variables(root.get("variables"))?;

    let extra = root
        .pairs
        .iter()
        .filter(|(k, _)| !known_keys.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), to_json(v)))
        .collect();

    Ok(Egg {
        version,
        syntax,
        layout,
        comment: root.opt_str("_comment")?,
        exported_at: root.opt_str("exported_at")?,
        update_url: meta.opt_str("update_url")?,
        name,
        author: root.opt_str("author")?,
        uuid: root.opt_str("uuid")?,
        description: root.opt_str("description")?,
        icon,
        tags: tags.unwrap_or_default(),
        features: features.unwrap_or_default(),
        docker_images,
        file_denylist,
        startup_commands,
        config,
        install,
        variables,
        extra,
    })
}

pub(crate) fn to_json(tree: &Tree) -> serde_json::Value {
    serde_json::to_value(tree).unwrap_or(serde_json::Value::Null)
}

/// A `config` member: a JSON string (Pterodactyl), an object (Pelican's
/// YAML), or null. Returns the tree and whether it was a string.
fn config_member(config: &Obj<'_>, key: &str) -> Result<(Tree, Option<bool>)> {
    match config.get(key) {
        None | Some(Tree::Null) => Ok((Tree::Object(Vec::new()), None)),
        Some(Tree::String(text)) if text.trim().is_empty() => {
            Ok((Tree::Object(Vec::new()), Some(true)))
        }
        Some(Tree::String(text)) => serde_json::from_str::<Tree>(text)
            .map(|tree| (tree, Some(true)))
            .map_err(|e| Error::field(config.at(key), format!("not valid JSON: {e}"))),
        Some(tree @ (Tree::Object(_) | Tree::Array(_))) => Ok((tree.clone(), Some(false))),
        Some(other) => Err(wrong(&config.at(key), "a JSON string or an object", other)),
    }
}

fn parse_config(tree: &Tree, layout: &mut Layout) -> Result<Config> {
    let config = Obj::new("config", tree)?;
    let (files_tree, files_str) = config_member(&config, "files")?;
    let (startup_tree, startup_str) = config_member(&config, "startup")?;
    let (logs_tree, logs_str) = config_member(&config, "logs")?;
    layout.config_as_strings = [files_str, startup_str, logs_str]
        .into_iter()
        .flatten()
        .next()
        .unwrap_or(true);

    // An empty list is what PHP's json_encode writes for an empty map.
    let empty_list = |t: &Tree| matches!(t, Tree::Array(a) if a.is_empty());

    let mut files = Vec::new();
    if !empty_list(&files_tree) {
        let map = Obj::new("config.files", &files_tree)?;
        for (path, entry) in map.pairs {
            files.push(parse_config_file(&map, path, entry)?);
        }
    }

    let mut done = Vec::new();
    let mut startup_extra = Vec::new();
    if !empty_list(&startup_tree) {
        let startup = Obj::new("config.startup", &startup_tree)?;
        for (key, value) in startup.pairs {
            if key != "done" {
                startup_extra.push((key.clone(), to_json(value)));
            }
        }
        let texts = match startup.get("done") {
            None | Some(Tree::Null) => Vec::new(),
            Some(Tree::String(s)) => vec![s.clone()],
            Some(Tree::Array(_)) => {
                layout.done_as_list = true;
                startup.str_list("done")?.unwrap_or_default()
            }
            Some(other) => return Err(wrong("config.startup.done", "a string or a list", other)),
        };
        for (i, text) in texts.into_iter().enumerate() {
            let path = if layout.done_as_list {
                format!("config.startup.done[{i}]")
            } else {
                "config.startup.done".into()
            };
            if text.is_empty() {
                continue;
            }
            done.push(match text.strip_prefix("regex:") {
                Some(pattern) => DonePattern::Regex(
                    regex::Regex::new(pattern)
                        .map_err(|e| Error::field(path, format!("bad pattern: {e}")))?,
                ),
                None => DonePattern::Contains(text),
            });
        }
    }

    let stop_text = config
        .opt_str("stop")?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            Error::field(
                "config.stop",
                "missing: the egg must say how to stop the server",
            )
        })?;
    let stop = parse_stop(&stop_text)?;

    Ok(Config {
        files,
        done,
        startup_extra,
        logs: to_json(&logs_tree),
        stop,
    })
}

fn parse_stop(text: &str) -> Result<Stop> {
    let Some(signal) = text.strip_prefix('^') else {
        return Ok(Stop::Command(text.to_owned()));
    };
    Ok(Stop::Signal(match signal {
        "C" => StopSignal::Interrupt,
        "^C" => StopSignal::Kill,
        other => {
            let upper = other.to_ascii_uppercase();
            let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
            match bare {
                "TERM" | "INT" | "KILL" | "HUP" | "QUIT" | "USR1" | "USR2" => {
                    StopSignal::Named(other.to_owned())
                }
                _ => {
                    return Err(Error::field(
                        "config.stop",
                        format!("unknown signal {text:?}"),
                    ));
                }
            }
        }
    }))
}

fn parse_config_file(map: &Obj<'_>, path: &str, entry: &Tree) -> Result<ConfigFile> {
    let field = map.at(path);
    check_relative_path(&field, path)?;
    let entry = Obj::new(field.clone(), entry)?;
    if let Some((key, _)) = entry
        .pairs
        .iter()
        .find(|(k, _)| k != "parser" && k != "find")
    {
        return Err(Error::field(
            entry.at(key),
            "unknown field (a config file has `parser` and `find`)",
        ));
    }
    let parser_name = entry.req_str("parser")?;
    let parser = Parser::from_name(&parser_name).ok_or_else(|| {
        Error::field(
            entry.at("parser"),
            format!(
                "unknown parser {parser_name:?} (known: file, properties, ini, yaml, json, xml)"
            ),
        )
    })?;
    let mut find = Vec::new();
    match entry.get("find") {
        None | Some(Tree::Null) => {}
        Some(Tree::Array(a)) if a.is_empty() => {}
        Some(tree) => {
            let finds = Obj::new(entry.at("find"), tree)?;
            for (key, value) in finds.pairs {
                let value = match value {
                    Tree::Object(conditions) => FindValue::When(
                        conditions
                            .iter()
                            .map(|(if_value, with)| match with {
                                Tree::Object(_) | Tree::Array(_) => Err(wrong(
                                    &join(&finds.at(key), if_value),
                                    "a string, number or boolean",
                                    with,
                                )),
                                with => {
                                    if let Some(pattern) = if_value.strip_prefix("regex:") {
                                        regex::Regex::new(pattern).map_err(|e| {
                                            Error::field(
                                                join(&finds.at(key), if_value),
                                                format!("bad pattern: {e}"),
                                            )
                                        })?;
                                    }
                                    Ok((if_value.clone(), to_json(with)))
                                }
                            })
                            .collect::<Result<_>>()?,
                    ),
                    Tree::Array(_) => {
                        return Err(wrong(
                            &finds.at(key),
                            "a string, number, boolean or object",
                            value,
                        ));
                    }
                    scalar => FindValue::Set(to_json(scalar)),
                };
                if key.is_empty() {
                    return Err(Error::field(finds.at(key), "empty key"));
                }
                find.push(Find {
                    key: key.clone(),
                    value,
                });
            }
        }
    }
    Ok(ConfigFile {
        path: path.to_owned(),
        parser,
        parser_name,
        find,
    })
}

/// A config file path must stay inside the server directory: relative,
/// no `..` component, no NUL, no Windows drive.
fn check_relative_path(field: &str, path: &str) -> Result<()> {
    let outside = |why: &str| {
        Err(Error::field(
            field,
            format!("path leaves the server directory: {why}"),
        ))
    };
    if path.trim().is_empty() {
        return Err(Error::field(field, "empty path"));
    }
    if path.starts_with(['/', '\\']) || path.as_bytes().get(1) == Some(&b':') {
        return outside("absolute");
    }
    if path.contains('\0') {
        return outside("NUL byte");
    }
    if path.split(['/', '\\']).any(|part| part == "..") {
        return outside("`..`");
    }
    Ok(())
}

fn parse_install(scripts: Option<&Tree>) -> Result<Option<Install>> {
    let scripts = match scripts {
        None | Some(Tree::Null) => return Ok(None),
        Some(tree) => Obj::new("scripts", tree)?,
    };
    let installation = match scripts.get("installation") {
        None | Some(Tree::Null) => return Ok(None),
        Some(tree) => Obj::new("scripts.installation", tree)?,
    };
    Ok(Some(Install {
        script: installation.opt_str("script")?.unwrap_or_default(),
        container: installation.opt_str("container")?.unwrap_or_default(),
        entrypoint: installation.opt_str("entrypoint")?.unwrap_or_default(),
    }))
}

fn parse_variables(tree: Option<&Tree>) -> Result<Vec<Variable>> {
    let items = match tree {
        None | Some(Tree::Null) => return Ok(Vec::new()),
        Some(Tree::Array(items)) => items,
        Some(other) => return Err(wrong("variables", "a list", other)),
    };
    let mut out: Vec<Variable> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let var = Obj::new(format!("variables[{i}]"), item)?;
        const KNOWN: &[&str] = &[
            "name",
            "description",
            "env_variable",
            "default_value",
            "user_viewable",
            "user_editable",
            "rules",
            "sort",
            "field_type",
        ];
        if let Some((key, _)) = var
            .pairs
            .iter()
            .find(|(k, _)| !KNOWN.contains(&k.as_str()) && !DATABASE_FIELDS.contains(&k.as_str()))
        {
            return Err(Error::field(var.at(key), "unknown field"));
        }
        let env_variable = var.req_str("env_variable")?;
        let env_ok = !env_variable.is_empty()
            && env_variable.len() <= 255
            && env_variable
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !env_ok {
            return Err(Error::field(
                var.at("env_variable"),
                format!("{env_variable:?} is not a variable name (letters, digits, `_`, `-`)"),
            ));
        }
        if RESERVED_ENV_NAMES.contains(&env_variable.to_ascii_uppercase().as_str()) {
            return Err(Error::field(
                var.at("env_variable"),
                format!(
                    "{env_variable:?} is reserved: the Panel sets it (rename it, e.g. SERVER_{env_variable})"
                ),
            ));
        }
        if out.iter().any(|v| v.env_variable == env_variable) {
            return Err(Error::field(
                var.at("env_variable"),
                format!("{env_variable:?} is defined twice"),
            ));
        }
        let default_value = match var.get("default_value") {
            None | Some(Tree::Null) => String::new(),
            Some(tree @ (Tree::String(_) | Tree::Number(_) | Tree::Bool(_))) => {
                tree.scalar_text().unwrap_or_default()
            }
            Some(other) => return Err(wrong(&var.at("default_value"), "a string", other)),
        };
        let flag = |key: &str| -> Result<bool> {
            match var.get(key) {
                None | Some(Tree::Null) => Ok(false),
                Some(Tree::Bool(b)) => Ok(*b),
                Some(Tree::Number(n)) if n.as_u64() == Some(0) => Ok(false),
                Some(Tree::Number(n)) if n.as_u64() == Some(1) => Ok(true),
                Some(Tree::String(s)) if s == "0" => Ok(false),
                Some(Tree::String(s)) if s == "1" => Ok(true),
                Some(other) => Err(wrong(&var.at(key), "true, false, 0 or 1", other)),
            }
        };
        let (rules, rules_as_list) = match var.get("rules") {
            None | Some(Tree::Null) => (Rules::default(), false),
            Some(Tree::String(s)) => (
                Rules::parse(s.split('|')).map_err(|e| rule_error(var.at("rules"), e))?,
                false,
            ),
            Some(Tree::Array(_)) => {
                let list = var.str_list("rules")?.unwrap_or_default();
                (
                    Rules::parse(list.iter().map(String::as_str))
                        .map_err(|e| rule_error(var.at("rules"), e))?,
                    true,
                )
            }
            Some(other) => return Err(wrong(&var.at("rules"), "a rule string or a list", other)),
        };
        if !default_value.trim().is_empty() {
            rules.check(&default_value).map_err(|why| {
                Error::field(
                    var.at("default_value"),
                    format!("the default {default_value:?} of {env_variable} {why}"),
                )
            })?;
        }
        let sort = match var.get("sort") {
            None | Some(Tree::Null) => None,
            Some(Tree::Number(n)) if n.as_i64().is_some() => n.as_i64(),
            Some(other) => return Err(wrong(&var.at("sort"), "a whole number", other)),
        };
        out.push(Variable {
            name: var.req_str("name")?,
            description: var.opt_str("description")?.unwrap_or_default(),
            env_variable,
            default_value,
            user_viewable: flag("user_viewable")?,
            user_editable: flag("user_editable")?,
            rules,
            rules_as_list,
            sort,
            field_type: var.opt_str("field_type")?,
        });
    }
    Ok(out)
}
