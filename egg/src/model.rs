//! The typed egg: what a parsed egg holds, whatever its format.

use std::collections::BTreeMap;
use std::fmt;

use crate::error::{Error, Result};
use crate::rules::Rules;

/// The egg format named by `meta.version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// Pterodactyl's first format: images as a list (`images`).
    PtdlV1,
    /// Pterodactyl's current format: `docker_images` as a map.
    PtdlV2,
    /// Pelican's first format (PTDL_v2 plus `uuid`).
    PlcnV1,
    /// Pelican: adds `tags`.
    PlcnV2,
    /// Pelican's current format: `startup_commands` (a map of named startup
    /// lines) instead of `startup`, and an `image` or `icon` data URL.
    PlcnV3,
}

impl Version {
    /// Every version, oldest first.
    pub const ALL: [Version; 5] = [
        Version::PtdlV1,
        Version::PtdlV2,
        Version::PlcnV1,
        Version::PlcnV2,
        Version::PlcnV3,
    ];

    /// The `meta.version` string.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::PtdlV1 => "PTDL_v1",
            Version::PtdlV2 => "PTDL_v2",
            Version::PlcnV1 => "PLCN_v1",
            Version::PlcnV2 => "PLCN_v2",
            Version::PlcnV3 => "PLCN_v3",
        }
    }

    /// The version a `meta.version` string names, if any.
    pub fn from_meta(s: &str) -> Option<Version> {
        Version::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether the egg was JSON or YAML (export writes the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    /// JSON (all Pterodactyl eggs, most Pelican ones).
    Json,
    /// YAML (Pelican's default export).
    Yaml,
}

/// How the source wrote things that mean the same either way, so that
/// export writes them back as they came.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Layout {
    /// `config.files`, `config.startup` and `config.logs` were JSON strings
    /// inside the egg (Pterodactyl's way, and Pelican's JSON), not objects.
    pub config_as_strings: bool,
    /// `config.startup.done` was a list, not a string.
    pub done_as_list: bool,
    /// The key a PLCN_v3 icon came under (`image` or `icon`).
    pub icon_key: Option<String>,
    /// `features` was `null` rather than a list.
    pub features_null: bool,
    /// `tags` was present.
    pub has_tags: bool,
}

/// An egg: a game type as Pterodactyl and Pelican describe it.
///
/// Built by [`Egg::parse`]; written back by [`Egg::export`]. Two eggs are
/// equal when every field is; import → export → import gives an equal egg.
#[derive(Debug, Clone, PartialEq)]
pub struct Egg {
    /// `meta.version`.
    pub version: Version,
    /// JSON or YAML.
    pub syntax: Syntax,
    /// How the source wrote things (see [`Layout`]).
    pub layout: Layout,
    /// `_comment`, kept as it was.
    pub comment: Option<String>,
    /// `exported_at`, kept as it was.
    pub exported_at: Option<String>,
    /// `meta.update_url`: where a newer version of this egg is published.
    pub update_url: Option<String>,
    /// `name`.
    pub name: String,
    /// `author`.
    pub author: Option<String>,
    /// `uuid` (Pelican formats).
    pub uuid: Option<String>,
    /// `description`.
    pub description: Option<String>,
    /// PLCN_v3's icon, a `data:` URL.
    pub icon: Option<String>,
    /// `tags` (Pelican formats).
    pub tags: Vec<String>,
    /// `features`: names of Panel features the egg asks for (`eula`,
    /// `java_version`, …); none is acted on by this crate, each is reported
    /// by [`Egg::unsupported`].
    pub features: Vec<String>,
    /// `docker_images`, in order (the first is the default). PTDL_v1's
    /// `images` list reads as images named by themselves, as both panels do.
    pub docker_images: Vec<DockerImage>,
    /// `file_denylist`: paths users may not edit through the Panel.
    pub file_denylist: Vec<String>,
    /// The startup lines: one named `Default` for every format before
    /// PLCN_v3, PLCN_v3's `startup_commands` map otherwise.
    pub startup_commands: Vec<StartupCommand>,
    /// `config`.
    pub config: Config,
    /// `scripts.installation`; `None` when the egg has no install script.
    pub install: Option<Install>,
    /// `variables`, in order.
    pub variables: Vec<Variable>,
    /// Top-level fields this crate does not know, kept for export and
    /// reported by [`Egg::unsupported`].
    pub extra: Vec<(String, serde_json::Value)>,
}

/// One docker image an egg lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerImage {
    /// The name shown to the admin or user choosing it, e.g. `Java 21`.
    pub display_name: String,
    /// The image reference, e.g. `ghcr.io/pterodactyl/yolks:java_21`.
    pub image: String,
}

/// One named startup line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartupCommand {
    /// `Default` for formats with a single `startup`.
    pub name: String,
    /// The command template, rendered by [`render_startup`](crate::render_startup).
    pub command: String,
}

/// The egg's `config` section.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `config.files`: files rewritten before each start.
    pub files: Vec<ConfigFile>,
    /// `config.startup.done`: console lines that mean the server is up.
    pub done: Vec<DonePattern>,
    /// Other keys of `config.startup` (old eggs carry `userInteraction`),
    /// kept and reported.
    pub startup_extra: Vec<(String, serde_json::Value)>,
    /// `config.logs`: kept for export, not acted on (Wings ignores it too).
    pub logs: serde_json::Value,
    /// `config.stop`.
    pub stop: Stop,
}

/// A `config.startup.done` entry.
#[derive(Debug, Clone)]
pub enum DonePattern {
    /// The line contains this text.
    Contains(String),
    /// `regex:…`: the line matches this pattern (Wings' form).
    Regex(regex::Regex),
}

impl PartialEq for DonePattern {
    fn eq(&self, other: &Self) -> bool {
        self.as_egg_text() == other.as_egg_text()
    }
}

impl DonePattern {
    /// True if and only if the console line means the server is up.
    pub fn matches(&self, line: &str) -> bool {
        match self {
            DonePattern::Contains(text) => line.contains(text.as_str()),
            DonePattern::Regex(re) => re.is_match(line),
        }
    }

    /// The entry as the egg writes it.
    pub fn as_egg_text(&self) -> String {
        match self {
            DonePattern::Contains(text) => text.clone(),
            DonePattern::Regex(re) => format!("regex:{}", re.as_str()),
        }
    }
}

/// How the server is stopped (`config.stop`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// A line written to the server's console, e.g. `stop`.
    Command(String),
    /// A signal sent to the server's process.
    Signal(StopSignal),
}

impl Stop {
    /// The value as the egg writes it.
    pub fn as_egg_text(&self) -> String {
        match self {
            Stop::Command(c) => c.clone(),
            Stop::Signal(StopSignal::Interrupt) => "^C".into(),
            Stop::Signal(StopSignal::Kill) => "^^C".into(),
            Stop::Signal(StopSignal::Named(name)) => format!("^{name}"),
        }
    }
}

/// The signal a `^…` stop value names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopSignal {
    /// `^C`: SIGINT, as Ctrl-C in a terminal.
    Interrupt,
    /// `^^C`: stop at once (SIGKILL).
    Kill,
    /// `^SIGTERM` and other named signals: `SIGTERM`, `SIGINT`, `SIGKILL`,
    /// `SIGHUP`, `SIGQUIT`, `SIGUSR1`, `SIGUSR2` (the `SIG` is optional).
    Named(String),
}

/// The install step: a script run once in its own container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Install {
    /// The shell script.
    pub script: String,
    /// The image it runs in.
    pub container: String,
    /// The program that runs the script, e.g. `bash`.
    pub entrypoint: String,
}

/// One `config.files` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigFile {
    /// The path inside the server directory, relative, without `..`.
    pub path: String,
    /// How the file is read and written.
    pub parser: Parser,
    /// The parser name as written (`yml` and `yaml` both mean YAML).
    pub parser_name: String,
    /// The replacements, in order.
    pub find: Vec<Find>,
}

/// A config file parser, with Wings' behaviour (see [`crate::config_files`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parser {
    /// `file`: a line starting with a key is replaced whole.
    File,
    /// `properties`: Java properties.
    Properties,
    /// `ini`.
    Ini,
    /// `yaml` (or `yml`).
    Yaml,
    /// `json`.
    Json,
    /// `xml`.
    Xml,
}

impl Parser {
    /// The parser a `parser` value names, if any.
    pub fn from_name(name: &str) -> Option<Parser> {
        Some(match name {
            "file" => Parser::File,
            "properties" => Parser::Properties,
            "ini" => Parser::Ini,
            "yaml" | "yml" => Parser::Yaml,
            "json" => Parser::Json,
            "xml" => Parser::Xml,
            _ => return None,
        })
    }

    /// The canonical name.
    pub fn as_str(self) -> &'static str {
        match self {
            Parser::File => "file",
            Parser::Properties => "properties",
            Parser::Ini => "ini",
            Parser::Yaml => "yaml",
            Parser::Json => "json",
            Parser::Xml => "xml",
        }
    }
}

/// One `find` entry of a config file.
#[derive(Debug, Clone, PartialEq)]
pub struct Find {
    /// What to match: a line prefix (`file`), a key (`properties`,
    /// `ini`), or a dotted path with `*` and `[n]` (`yaml`, `json`, `xml`).
    pub key: String,
    /// What to write.
    pub value: FindValue,
}

/// The value side of a `find` entry.
#[derive(Debug, Clone, PartialEq)]
pub enum FindValue {
    /// Always write this (a string with placeholders, a number or a boolean).
    Set(serde_json::Value),
    /// `{ if_value: replace_with, … }`: write `replace_with` only where the
    /// current value is `if_value`, or matches it when it is `regex:…`
    /// (then `$1`-style groups refer to the match).
    When(Vec<(String, serde_json::Value)>),
}

/// One egg variable: an environment variable of the server.
#[derive(Debug, Clone, PartialEq)]
pub struct Variable {
    /// `name`, shown to users.
    pub name: String,
    /// `description`.
    pub description: String,
    /// `env_variable`: the environment variable's name.
    pub env_variable: String,
    /// `default_value`; an empty default on a `required` variable means the
    /// value must be given when a server is created ([`Variable::needs_value`]).
    pub default_value: String,
    /// `user_viewable`: the server's users may see it.
    pub user_viewable: bool,
    /// `user_editable`: the server's users may change it.
    pub user_editable: bool,
    /// `rules`.
    pub rules: Rules,
    /// The rules were a list, not a pipe string.
    pub rules_as_list: bool,
    /// `sort` (Pelican), kept.
    pub sort: Option<i64>,
    /// `field_type` (Pterodactyl's UI hint, always `text`), kept.
    pub field_type: Option<String>,
}

impl Variable {
    /// True if and only if the default cannot be used as it is: the
    /// variable is `required` and its default is empty.
    pub fn needs_value(&self) -> bool {
        self.default_value.trim().is_empty() && self.rules.is_required()
    }

    /// Checks a value against the variable's rules.
    ///
    /// # Errors
    ///
    /// [`Error::Field`] naming the variable and the rule broken.
    pub fn check(&self, value: &str) -> Result<()> {
        self.rules
            .check(value)
            .map_err(|why| Error::field(self.env_variable.clone(), format!("{value:?} {why}")))
    }
}

/// Something an egg says that nothing acts on yet; the caller shows these
/// to the admin before confirming an import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    /// The field, e.g. `features[0]`.
    pub path: String,
    /// What is not done, e.g. `feature "eula" is not acted on yet`.
    pub what: String,
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.what)
    }
}

/// Names a server's environment may not use for egg variables (Pelican's
/// list): the Panel or the container sets them.
pub const RESERVED_ENV_NAMES: &[&str] = &[
    "P_SERVER_UUID",
    "P_SERVER_ALLOCATION_LIMIT",
    "SERVER_MEMORY",
    "SERVER_IP",
    "SERVER_PORT",
    "ENV",
    "HOME",
    "USER",
    "STARTUP",
    "MODIFIED_STARTUP",
    "SERVER_UUID",
    "UUID",
    "INTERNAL_IP",
    "HOSTNAME",
    "TERM",
    "LANG",
    "PWD",
    "TZ",
    "TIMEZONE",
];

impl Egg {
    /// The variable with this environment name.
    pub fn variable(&self, env_variable: &str) -> Option<&Variable> {
        self.variables
            .iter()
            .find(|v| v.env_variable == env_variable)
    }

    /// The server's environment: every variable's default, overridden by
    /// `values`, each checked against its rules.
    ///
    /// # Errors
    ///
    /// [`Error::Field`] for a value that breaks its variable's rules (a
    /// required variable left empty included), or a name no variable has.
    pub fn environment(
        &self,
        values: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>> {
        if let Some(unknown) = values.keys().find(|k| self.variable(k).is_none()) {
            return Err(Error::field(
                unknown.clone(),
                "the egg has no such variable",
            ));
        }
        let mut env = BTreeMap::new();
        for var in &self.variables {
            let value = values
                .get(&var.env_variable)
                .cloned()
                .unwrap_or_else(|| var.default_value.clone());
            var.check(&value)?;
            env.insert(var.env_variable.clone(), value);
        }
        Ok(env)
    }

    /// What the egg says that nothing acts on yet: each feature, a
    /// non-empty `config.logs`, unknown fields, `config.startup` keys other
    /// than `done`, config files with nothing to find, startup placeholders
    /// nothing defines, and the absence of a `done` pattern.
    pub fn unsupported(&self) -> Vec<Unsupported> {
        let mut out = Vec::new();
        let mut add = |path: String, what: String| out.push(Unsupported { path, what });
        for (i, f) in self.features.iter().enumerate() {
            add(
                format!("features[{i}]"),
                format!("feature {f:?} is not acted on yet"),
            );
        }
        for (key, _) in &self.extra {
            add(key.clone(), "unknown field, kept but not acted on".into());
        }
        if !is_empty_json(&self.config.logs) {
            add(
                "config.logs".into(),
                "log settings are kept but not acted on".into(),
            );
        }
        for (key, _) in &self.config.startup_extra {
            add(
                format!("config.startup.{key}"),
                "kept but not acted on".into(),
            );
        }
        if self.config.done.is_empty() {
            add(
                "config.startup.done".into(),
                "no done pattern: the console never says the server is up".into(),
            );
        }
        for file in &self.config.files {
            if file.find.is_empty() {
                add(
                    format!("config.files.{:?}", file.path),
                    "nothing to find: the file is left as it is".into(),
                );
            }
        }
        for (i, cmd) in self.startup_commands.iter().enumerate() {
            for name in crate::render::referenced_names(&cmd.command) {
                if !crate::render::is_builtin(&name) && self.variable(&name).is_none() {
                    add(
                        self.startup_path(i),
                        format!("{name:?} is no variable of the egg: it renders empty"),
                    );
                }
            }
        }
        out
    }

    /// Where startup command `index` is in the egg, for errors: `startup`,
    /// or `startup_commands."<name>"` in PLCN_v3.
    pub fn startup_path(&self, index: usize) -> String {
        match self.version {
            Version::PlcnV3 => format!("startup_commands.{:?}", self.startup_commands[index].name),
            _ => "startup".into(),
        }
    }
}

fn is_empty_json(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Null => true,
        serde_json::Value::Object(m) => m.is_empty(),
        serde_json::Value::Array(a) => a.is_empty(),
        serde_json::Value::String(s) => s.is_empty(),
        _ => false,
    }
}
