//! Game types (plugin kind `game-type`): what a game is, which variables it
//! takes, the plans an Agent carries out to install, start and stop it, and
//! how to read its console.
//!
//! Plans are data: a game-type plugin never runs processes or touches files.
//! The Panel asks it for an [`InstallPlan`] (downloads with checksums, files
//! to write, config edits, scripts), a [`StartupPlan`] (program, arguments,
//! environment) and a [`StopPlan`]; the Agent on the node carries them out and
//! feeds console lines back through [`GameType::classify_line`].
//!
//! With the `api-0-2` feature (API 0.2.0) a plugin may offer many game types
//! by implementing `GameTypes`: `list` names them, and every call about a
//! server says which one it was created from (`ServerContext::game_type`);
//! console calls get the startup plan's `console_context` back. A plugin
//! with one game type keeps implementing [`GameType`], which every
//! `GameTypes` caller accepts (a list of one). The example below is the
//! 0.1.0 shape; under 0.2.0 [`GameInfo`] also lists `images`,
//! [`InstallPlan`] names an `image` and [`StartupPlan`] carries a
//! `console_context`.
//!
#![cfg_attr(not(feature = "api-0-2"), doc = "```")]
#![cfg_attr(feature = "api-0-2", doc = "```ignore")]
//! use cap_plugin_sdk::prelude::*;
//! use cap_plugin_sdk::game::*;
//!
//! #[derive(Default)]
//! struct Echo;
//!
//! impl GameType for Echo {
//!     fn describe(&self) -> GameInfo {
//!         GameInfo {
//!             id: "echo".into(),
//!             name: "Echo server".into(),
//!             version: "1.0.0".into(),
//!             description: "Answers every line with itself.".into(),
//!             variables: vec![
//!                 Variable::new("GREETING", "Greeting", VariableType::String)
//!                     .with_default("hello")
//!                     .with_rule(ValidationRule::MaxLength(64)),
//!             ],
//!             ports: vec![PortRequest {
//!                 name: "game".into(),
//!                 protocol: PortProtocol::Tcp,
//!                 primary: true,
//!                 env: Some("SERVER_PORT".into()),
//!             }],
//!             platforms: vec![Platform { os: Os::Linux, arch: Arch::Arm64 }],
//!             features: Vec::new(),
//!             min_memory_mb: 16,
//!         }
//!     }
//!
//!     fn install_plan(&self, _server: &ServerContext) -> Result<InstallPlan, PluginError> {
//!         Ok(InstallPlan { steps: Vec::new() })
//!     }
//!
//!     fn startup_plan(&self, server: &ServerContext) -> Result<StartupPlan, PluginError> {
//!         let port = server
//!             .port("game")
//!             .ok_or_else(|| PluginError::new("missing-port", "no game port allocated"))?;
//!         Ok(StartupPlan {
//!             program: "ncat".into(),
//!             args: vec!["-lk".into(), port.port.to_string(), "-e".into(), "/bin/cat".into()],
//!             env: Vec::new(),
//!             working_dir: ".".into(),
//!             config_edits: Vec::new(),
//!         })
//!     }
//!
//!     fn stop_plan(&self, _server: &ServerContext) -> StopPlan {
//!         StopPlan { method: StopMethod::SendSignal(Signal::Terminate), grace_secs: 5 }
//!     }
//! }
//!
//! cap_plugin_sdk::export_plugin!(Echo: game_type);
//! # fn main() {}
//! ```

use crate::bindings::exports::ctrl_alt_play::plugin::{game_console, game_type};
use crate::types::{KeyValue, PluginError, lookup};

pub use game_console::{LineKind, PlayerStatus};
pub use game_type::{
    AllocatedPort, Arch, ConfigEdit, ConfigFormat, Download, FieldError, GameInfo, InstallPlan,
    InstallStep, Os, Platform, PortProtocol, PortRequest, Script, ServerContext, Signal,
    StartupPlan, StopMethod, StopPlan, ValidationRule, Variable, VariableType, WriteFile,
};
#[cfg(feature = "api-0-2")]
pub use game_type::{BackupCommands, ConditionalSet, Image, NodeContext};

/// A game type: the exports `game-type` (Panel side) and `game-console`
/// (node side) of the WIT API.
///
/// Only [`describe`](Self::describe) and the three plans are required; the
/// console methods default to "nothing recognised" and
/// [`validate`](Self::validate) to "the declared rules are enough".
///
/// See the [module documentation](self) for a complete example.
pub trait GameType: Send + Sync {
    /// The game's identity, variables, ports and platforms. The host calls it
    /// once per component load and checks it (id format, unique variable
    /// keys, exactly one primary port, ...).
    fn describe(&self) -> GameInfo;

    /// Game-specific checks beyond the rules declared on each
    /// [`Variable`], which the host has already checked. Return one
    /// [`FieldError`] per offending variable.
    ///
    /// ```
    /// use cap_plugin_sdk::game::FieldError;
    /// use cap_plugin_sdk::types::{KeyValue, lookup};
    ///
    /// fn validate(variables: &[KeyValue]) -> Result<(), Vec<FieldError>> {
    ///     match lookup(variables, "EULA") {
    ///         Some("true") => Ok(()),
    ///         _ => Err(vec![FieldError::new("EULA", "accept the EULA to continue")]),
    ///     }
    /// }
    /// assert!(validate(&[KeyValue::new("EULA", "false")]).is_err());
    /// ```
    fn validate(&self, variables: &[KeyValue]) -> Result<(), Vec<FieldError>> {
        let _ = variables;
        Ok(())
    }

    /// The steps that install (or reinstall) the server's files.
    fn install_plan(&self, server: &ServerContext) -> Result<InstallPlan, PluginError>;

    /// How to start the server.
    fn startup_plan(&self, server: &ServerContext) -> Result<StartupPlan, PluginError>;

    /// How to stop the server; the Agent sends SIGKILL after the grace
    /// period.
    fn stop_plan(&self, server: &ServerContext) -> StopPlan;

    /// Classifies one console line (without its newline). Defaults to
    /// [`LineKind::Plain`].
    ///
    /// ```
    /// use cap_plugin_sdk::game::LineKind;
    ///
    /// fn classify(line: &str) -> LineKind {
    ///     if line.contains("Done (") { LineKind::Ready } else { LineKind::Plain }
    /// }
    /// assert_eq!(classify("[12:00:00 INFO]: Done (3.2s)!"), LineKind::Ready);
    /// ```
    fn classify_line(&self, line: &str) -> LineKind {
        let _ = line;
        LineKind::Plain
    }

    /// A console command that makes the server print its player list.
    /// Defaults to `None` (the game has none).
    fn status_command(&self) -> Option<String> {
        None
    }

    /// Parses the lines printed after [`status_command`](Self::status_command).
    /// Defaults to `None` (not understood).
    fn parse_status(&self, lines: &[String]) -> Option<PlayerStatus> {
        let _ = lines;
        None
    }

    /// What to write to the server's console around a backup made while it
    /// runs (API 0.2.0), so that the archive holds a consistent world.
    /// Defaults to `None`: the files are archived as they are.
    ///
    /// ```
    /// use cap_plugin_sdk::game::BackupCommands;
    ///
    /// let minecraft = BackupCommands {
    ///     before: vec!["save-off".into(), "save-all flush".into()],
    ///     settle_ms: 5_000,
    ///     after: vec!["save-on".into()],
    /// };
    /// assert_eq!(minecraft.after, ["save-on"]);
    /// ```
    #[cfg(feature = "api-0-2")]
    fn backup_commands(&self, server: &ServerContext) -> Option<BackupCommands> {
        let _ = server;
        None
    }
}

impl Variable {
    /// A variable that users can see and edit, without description, default
    /// or rules; add those with the `with_*` methods.
    ///
    /// ```
    /// use cap_plugin_sdk::game::{ValidationRule, Variable, VariableType};
    ///
    /// let version = Variable::new("MINECRAFT_VERSION", "Minecraft version", VariableType::String)
    ///     .with_description("The game version to install.")
    ///     .with_default("1.21.4")
    ///     .with_rule(ValidationRule::Required);
    /// assert_eq!(version.default_value.as_deref(), Some("1.21.4"));
    /// assert!(version.user_editable);
    /// ```
    pub fn new(key: impl Into<String>, name: impl Into<String>, kind: VariableType) -> Self {
        Self {
            key: key.into(),
            name: name.into(),
            description: String::new(),
            kind,
            default_value: None,
            user_viewable: true,
            user_editable: true,
            rules: Vec::new(),
        }
    }

    /// Sets the description shown next to the field.
    ///
    /// ```
    /// use cap_plugin_sdk::game::{Variable, VariableType};
    ///
    /// let v = Variable::new("A", "A", VariableType::String).with_description("Letter A");
    /// assert_eq!(v.description, "Letter A");
    /// ```
    #[must_use]
    pub fn with_description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// Sets the default value.
    ///
    /// ```
    /// use cap_plugin_sdk::game::{Variable, VariableType};
    ///
    /// let v = Variable::new("N", "N", VariableType::Integer).with_default("10");
    /// assert_eq!(v.default_value.as_deref(), Some("10"));
    /// ```
    #[must_use]
    pub fn with_default(mut self, value: impl Into<String>) -> Self {
        self.default_value = Some(value.into());
        self
    }

    /// Adds a validation rule.
    ///
    /// ```
    /// use cap_plugin_sdk::game::{ValidationRule, Variable, VariableType};
    ///
    /// let v = Variable::new("N", "N", VariableType::Integer)
    ///     .with_rule(ValidationRule::Min(0))
    ///     .with_rule(ValidationRule::Max(100));
    /// assert_eq!(v.rules.len(), 2);
    /// ```
    #[must_use]
    pub fn with_rule(mut self, rule: ValidationRule) -> Self {
        self.rules.push(rule);
        self
    }

    /// Lets users see the value but not change it (admins still can).
    ///
    /// ```
    /// use cap_plugin_sdk::game::{Variable, VariableType};
    ///
    /// let v = Variable::new("BUILD", "Build", VariableType::String).read_only();
    /// assert!(v.user_viewable && !v.user_editable);
    /// ```
    #[must_use]
    pub fn read_only(mut self) -> Self {
        self.user_editable = false;
        self
    }

    /// Hides the variable from users entirely (admins still see it).
    ///
    /// ```
    /// use cap_plugin_sdk::game::{Variable, VariableType};
    ///
    /// let v = Variable::new("TOKEN", "Token", VariableType::String).hidden();
    /// assert!(!v.user_viewable && !v.user_editable);
    /// ```
    #[must_use]
    pub fn hidden(mut self) -> Self {
        self.user_viewable = false;
        self.user_editable = false;
        self
    }
}

impl ServerContext {
    /// The value of variable `key` (defaults are already filled in).
    ///
    #[cfg_attr(not(feature = "api-0-2"), doc = "```")]
    #[cfg_attr(feature = "api-0-2", doc = "```ignore")]
    /// # use cap_plugin_sdk::game::*;
    /// # use cap_plugin_sdk::types::KeyValue;
    /// # let server = ServerContext {
    /// #     server_id: "s-1".into(), name: "Survival".into(), memory_mb: 2048, disk_mb: 10240,
    /// #     cpu_percent: 100, variables: vec![KeyValue::new("SERVER_JARFILE", "server.jar")],
    /// #     ports: Vec::new(), platform: Platform { os: Os::Linux, arch: Arch::Arm64 },
    /// # };
    /// assert_eq!(server.variable("SERVER_JARFILE"), Some("server.jar"));
    /// ```
    pub fn variable(&self, key: &str) -> Option<&str> {
        lookup(&self.variables, key)
    }

    /// The allocated port named `name` (the names of
    /// [`GameInfo::ports`]).
    ///
    #[cfg_attr(not(feature = "api-0-2"), doc = "```")]
    #[cfg_attr(feature = "api-0-2", doc = "```ignore")]
    /// # use cap_plugin_sdk::game::*;
    /// # let server = ServerContext {
    /// #     server_id: "s-1".into(), name: "Survival".into(), memory_mb: 2048, disk_mb: 10240,
    /// #     cpu_percent: 100, variables: Vec::new(),
    /// #     ports: vec![AllocatedPort { name: "game".into(), ip: "0.0.0.0".into(), port: 25565 }],
    /// #     platform: Platform { os: Os::Linux, arch: Arch::Arm64 },
    /// # };
    /// assert_eq!(server.port("game").map(|p| p.port), Some(25565));
    /// assert!(server.port("rcon").is_none());
    /// ```
    pub fn port(&self, name: &str) -> Option<&AllocatedPort> {
        self.ports.iter().find(|port| port.name == name)
    }

    /// The primary allocation, the one players connect to: the first of
    /// `ports` (the Panel names it `game`).
    ///
    #[cfg_attr(not(feature = "api-0-2"), doc = "```")]
    #[cfg_attr(feature = "api-0-2", doc = "```ignore")]
    /// # use cap_plugin_sdk::game::*;
    /// # let server = ServerContext {
    /// #     server_id: "s-1".into(), name: "Survival".into(), memory_mb: 2048, disk_mb: 10240,
    /// #     cpu_percent: 100, variables: Vec::new(),
    /// #     ports: vec![AllocatedPort { name: "game".into(), ip: "0.0.0.0".into(), port: 25565 }],
    /// #     platform: Platform { os: Os::Linux, arch: Arch::Arm64 },
    /// # };
    /// assert_eq!(server.primary_port().map(|p| p.port), Some(25565));
    /// ```
    pub fn primary_port(&self) -> Option<&AllocatedPort> {
        self.ports.first()
    }

    /// The server's extra allocations (`extra-1`, `extra-2`, …, in that
    /// order): users add them within the limit an administrator sets.
    /// Always empty under API 0.1.0: the host shows 0.1.0 plugins the
    /// ports they requested, never the extra allocations.
    ///
    #[cfg_attr(not(feature = "api-0-2"), doc = "```")]
    #[cfg_attr(feature = "api-0-2", doc = "```ignore")]
    /// # use cap_plugin_sdk::game::*;
    /// # let port = |name: &str, port| AllocatedPort { name: name.into(), ip: "0.0.0.0".into(), port };
    /// # let server = ServerContext {
    /// #     server_id: "s-1".into(), name: "Survival".into(), memory_mb: 2048, disk_mb: 10240,
    /// #     cpu_percent: 100, variables: Vec::new(),
    /// #     ports: vec![port("game", 25565), port("extra-1", 25575)],
    /// #     platform: Platform { os: Os::Linux, arch: Arch::Arm64 },
    /// # };
    /// let extra: Vec<u16> = server.extra_ports().iter().map(|p| p.port).collect();
    /// assert_eq!(extra, [25575]);
    /// ```
    pub fn extra_ports(&self) -> Vec<&AllocatedPort> {
        self.ports
            .iter()
            .filter(|p| {
                p.name
                    .strip_prefix("extra-")
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            })
            .collect()
    }
}

impl FieldError {
    /// An error for variable `key`.
    ///
    /// ```
    /// use cap_plugin_sdk::game::FieldError;
    ///
    /// let error = FieldError::new("EULA", "must be true");
    /// assert_eq!(error.key, "EULA");
    /// ```
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

#[cfg(feature = "api-0-2")]
mod v0_2;
#[cfg(feature = "api-0-2")]
pub use v0_2::GameTypes;
