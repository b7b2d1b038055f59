//! The plans a game-type plugin makes, as they travel from the Panel to an
//! Agent.
//!
//! These mirror the WIT records of `game-type` (see `wit/`) with camelCase
//! JSON names, so the wire format does not change when the plugin runtime's
//! generated types do. With the `runtime` feature, `From` conversions from
//! `cap_runtime::api` exist.

use serde::{Deserialize, Serialize};

/// A `key = value` pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeyValue {
    /// The key.
    pub key: String,
    /// The value.
    pub value: String,
}

impl KeyValue {
    /// A pair.
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            value: value.into(),
        }
    }
}

/// How to install (or reinstall) a server: steps run in order in the server
/// directory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InstallPlan {
    /// The steps, in order.
    pub steps: Vec<InstallStep>,
    /// The image its scripts run in on a container node (script at
    /// `/mnt/install/install.sh`, server files at `/mnt/server`); `None`
    /// on a native node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Empty the server directory before the steps (a reinstall asked
    /// with `wipe`): every entry in it goes, through the Agent's confined
    /// file code. The server's backups live outside it and stay. Absent
    /// (false) in plans from Panels older than the field; an Agent older
    /// than it refuses a plan that sets it (unknown field) rather than
    /// reinstalling over the old files.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub wipe: bool,
}

/// One install step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum InstallStep {
    /// Download a file and check its sha256.
    Download(Download),
    /// Run a script in the server directory.
    RunScript(Script),
    /// Write a file.
    WriteFile(WriteFile),
    /// Edit a config file.
    EditConfig(ConfigEdit),
}

/// A file to download.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Download {
    /// Where from.
    pub url: String,
    /// Lowercase hex sha256 of the file; the download fails on mismatch.
    pub sha256: String,
    /// Path relative to the server directory.
    pub destination: String,
    /// Whether to mark the file executable.
    pub executable: bool,
}

/// A script to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Script {
    /// `bash`, `sh`, `python3`, ...
    pub interpreter: String,
    /// The script text.
    pub contents: String,
    /// Extra environment.
    pub env: Vec<KeyValue>,
    /// The script is killed after this long.
    pub timeout_secs: u32,
}

/// A file to write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WriteFile {
    /// Path relative to the server directory.
    pub path: String,
    /// The whole contents.
    pub contents: String,
    /// Unix permission bits, e.g. `0o644`.
    pub mode: u32,
}

/// The format of a config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConfigFormat {
    /// Java `.properties`: `key=value`.
    Properties,
    /// YAML; keys are dotted paths.
    Yaml,
    /// JSON; keys are dotted paths.
    Json,
    /// INI; keys are `section.key` (a key without a dot is in no section).
    Ini,
    /// XML; keys are `/`-separated element paths below the root.
    Xml,
    /// Plain text; keys are line prefixes whose lines are replaced.
    Plain,
}

/// Edits to one config file (created when missing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigEdit {
    /// Path relative to the server directory.
    pub path: String,
    /// How to read `set`'s keys.
    pub format: ConfigFormat,
    /// The values to set.
    pub set: Vec<KeyValue>,
    /// Values set only where the key's current value is as expected,
    /// after `set`, in order. Absent on the wire when empty, so Agents
    /// older than conditional edits still read every plan without one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub set_if: Vec<ConditionalSet>,
}

/// A key set only where its current value equals `if_value`, or matches
/// it when it is `regex:<pattern>` (then `value` replaces each match and
/// may name the pattern's groups, `$1`); never where the key has no value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConditionalSet {
    /// The key, spelled as in [`ConfigEdit::set`].
    pub key: String,
    /// The condition.
    pub if_value: String,
    /// What is written.
    pub value: String,
}

/// How to start a server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StartupPlan {
    /// Program to execute, looked up in the server directory, then `PATH`.
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Extra environment.
    pub env: Vec<KeyValue>,
    /// Relative to the server directory.
    pub working_dir: String,
    /// Config edits applied before every start.
    pub config_edits: Vec<ConfigEdit>,
    /// Handed unchanged to the game type's console calls on the node (its
    /// done patterns, say); empty for game types that need none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub console_context: String,
}

/// A signal a stop plan may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Signal {
    /// SIGINT.
    Interrupt,
    /// SIGTERM.
    Terminate,
    /// SIGQUIT.
    Quit,
    /// SIGHUP.
    Hangup,
    /// SIGKILL.
    Kill,
}

/// The first thing a stop does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum StopMethod {
    /// Write this line to the server's console.
    ConsoleCommand {
        /// The line.
        command: String,
    },
    /// Send a signal to the server's process group.
    SendSignal {
        /// The signal.
        signal: Signal,
    },
}

/// How to stop a server: `method`, then SIGTERM and SIGKILL once
/// `grace_secs` have passed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StopPlan {
    /// What to do first.
    pub method: StopMethod,
    /// How long the server may take to exit after `method`.
    pub grace_secs: u32,
}

#[cfg(feature = "runtime")]
mod from_runtime {
    use super::*;
    use cap_runtime::api;

    fn pairs(list: Vec<api::KeyValue>) -> Vec<KeyValue> {
        list.into_iter()
            .map(|kv| KeyValue::new(kv.key, kv.value))
            .collect()
    }

    impl From<api::ConfigFormat> for ConfigFormat {
        fn from(format: api::ConfigFormat) -> Self {
            match format {
                api::ConfigFormat::Properties => Self::Properties,
                api::ConfigFormat::Yaml => Self::Yaml,
                api::ConfigFormat::Json => Self::Json,
                api::ConfigFormat::Ini => Self::Ini,
                api::ConfigFormat::Xml => Self::Xml,
                api::ConfigFormat::Plain => Self::Plain,
            }
        }
    }

    impl From<api::ConfigEdit> for ConfigEdit {
        fn from(edit: api::ConfigEdit) -> Self {
            Self {
                path: edit.path,
                format: edit.format.into(),
                set: pairs(edit.set),
                set_if: edit
                    .set_if
                    .into_iter()
                    .map(|c| ConditionalSet {
                        key: c.key,
                        if_value: c.if_value,
                        value: c.value,
                    })
                    .collect(),
            }
        }
    }

    impl From<api::InstallPlan> for InstallPlan {
        fn from(plan: api::InstallPlan) -> Self {
            let steps = plan
                .steps
                .into_iter()
                .map(|step| match step {
                    api::InstallStep::Download(d) => InstallStep::Download(Download {
                        url: d.url,
                        sha256: d.sha256,
                        destination: d.destination,
                        executable: d.executable,
                    }),
                    api::InstallStep::RunScript(s) => InstallStep::RunScript(Script {
                        interpreter: s.interpreter,
                        contents: s.contents,
                        env: pairs(s.env),
                        timeout_secs: s.timeout_secs,
                    }),
                    api::InstallStep::WriteFile(w) => InstallStep::WriteFile(WriteFile {
                        path: w.path,
                        contents: w.contents,
                        mode: w.mode,
                    }),
                    api::InstallStep::EditConfig(e) => InstallStep::EditConfig(e.into()),
                })
                .collect();
            Self {
                steps,
                image: plan.image,
                wipe: false,
            }
        }
    }

    impl From<api::StartupPlan> for StartupPlan {
        fn from(plan: api::StartupPlan) -> Self {
            Self {
                program: plan.program,
                args: plan.args,
                env: pairs(plan.env),
                working_dir: plan.working_dir,
                config_edits: plan.config_edits.into_iter().map(Into::into).collect(),
                console_context: plan.console_context,
            }
        }
    }

    impl From<api::Signal> for Signal {
        fn from(signal: api::Signal) -> Self {
            match signal {
                api::Signal::Interrupt => Self::Interrupt,
                api::Signal::Terminate => Self::Terminate,
                api::Signal::Quit => Self::Quit,
                api::Signal::Hangup => Self::Hangup,
                api::Signal::Kill => Self::Kill,
            }
        }
    }

    impl From<api::StopPlan> for StopPlan {
        fn from(plan: api::StopPlan) -> Self {
            Self {
                method: match plan.method {
                    api::StopMethod::ConsoleCommand(command) => {
                        StopMethod::ConsoleCommand { command }
                    }
                    api::StopMethod::SendSignal(signal) => StopMethod::SendSignal {
                        signal: signal.into(),
                    },
                },
                grace_secs: plan.grace_secs,
            }
        }
    }
}
