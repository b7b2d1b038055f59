//! What API 0.2.0 adds to game types: [`GameTypes`], the trait behind the
//! `game-type` and `game-console` exports, and the convenience that makes
//! every single-game [`GameType`] one.

use super::{
    BackupCommands, FieldError, GameInfo, GameType, Image, InstallPlan, LineKind, PlayerStatus,
    ServerContext, StartupPlan, StopPlan,
};
use crate::types::{KeyValue, PluginError};

/// Game types, any number of them: the exports `game-type` (Panel side)
/// and `game-console` (node side) of API 0.2.0.
///
/// [`list`](Self::list) names the game types; every other call says which
/// one it is about: `validate` by id, the plans through
/// [`ServerContext::game_type`], the console calls through the
/// `console_context` the startup plan put there. A plugin with one game
/// type implements [`GameType`] instead, which implements this trait (a
/// list of one). Only `list` and the three plans are required.
///
/// ```
/// use cap_plugin_sdk::prelude::*;
///
/// /// Two echo servers that differ in their greeting.
/// #[derive(Default)]
/// struct Echoes;
///
/// fn echo(id: &str, greeting: &str) -> GameInfo {
///     GameInfo {
///         id: id.into(),
///         name: format!("Echo ({greeting})"),
///         version: "1.0.0".into(),
///         description: "Answers every line with itself.".into(),
///         variables: vec![Variable::new("GREETING", "Greeting", VariableType::String)
///             .with_default(greeting)],
///         ports: vec![PortRequest {
///             name: "game".into(),
///             protocol: PortProtocol::Tcp,
///             primary: true,
///             env: Some("SERVER_PORT".into()),
///         }],
///         platforms: vec![Platform { os: Os::Linux, arch: Arch::Amd64 }],
///         features: vec![],
///         min_memory_mb: 16,
///         images: vec![Image::new("Debian", "docker.io/library/debian:stable")],
///         startup_commands: vec![],
///         file_denylist: vec![],
///     }
/// }
///
/// impl GameTypes for Echoes {
///     fn list(&self) -> Vec<GameInfo> {
///         vec![echo("echo-hello", "hello"), echo("echo-howdy", "howdy")]
///     }
///
///     fn install_plan(&self, _server: &ServerContext) -> Result<InstallPlan, PluginError> {
///         Ok(InstallPlan { steps: vec![], image: None })
///     }
///
///     fn startup_plan(&self, server: &ServerContext) -> Result<StartupPlan, PluginError> {
///         Ok(StartupPlan {
///             program: "ncat".into(),
///             args: vec!["-lk".into(), "-e".into(), "/bin/cat".into()],
///             env: vec![],
///             working_dir: ".".into(),
///             config_edits: vec![],
///             // What the console calls need: here, which echo it is.
///             console_context: server.game_type.clone(),
///         })
///     }
///
///     fn stop_plan(&self, _server: &ServerContext) -> StopPlan {
///         StopPlan { method: StopMethod::SendSignal(Signal::Terminate), grace_secs: 5 }
///     }
///
///     fn classify_line(&self, context: &str, line: &str) -> LineKind {
///         let ready = if context == "echo-howdy" { "howdy" } else { "hello" };
///         if line == ready { LineKind::Ready } else { LineKind::Plain }
///     }
/// }
///
/// cap_plugin_sdk::export_plugin!(Echoes: game_type);
///
/// fn main() {
///     assert_eq!(Echoes.list().len(), 2);
///     assert_eq!(Echoes.classify_line("echo-howdy", "howdy"), LineKind::Ready);
/// }
/// ```
pub trait GameTypes: Send + Sync {
    /// Every game type the plugin offers now, ids unique. The host calls it
    /// whenever it needs them (a catalogue's list changes with each
    /// import) and checks each one as it checks a single game.
    fn list(&self) -> Vec<GameInfo>;

    /// Game-specific checks of `game_type`'s variables beyond the rules
    /// declared on each [`Variable`](super::Variable), which the host has
    /// already checked. Defaults to "the declared rules are enough".
    fn validate(&self, game_type: &str, variables: &[KeyValue]) -> Result<(), Vec<FieldError>> {
        let _ = (game_type, variables);
        Ok(())
    }

    /// The steps that install (or reinstall) the server's files, for the
    /// server's [`game_type`](ServerContext::game_type).
    fn install_plan(&self, server: &ServerContext) -> Result<InstallPlan, PluginError>;

    /// How to start the server. Its `console_context` comes back with
    /// every console call about this run.
    fn startup_plan(&self, server: &ServerContext) -> Result<StartupPlan, PluginError>;

    /// How to stop the server; the Agent sends SIGKILL after the grace
    /// period.
    fn stop_plan(&self, server: &ServerContext) -> StopPlan;

    /// Classifies one console line (without its newline); `context` is the
    /// startup plan's `console_context`. Called for every line the server
    /// prints: keep it fast. Defaults to [`LineKind::Plain`].
    fn classify_line(&self, context: &str, line: &str) -> LineKind {
        let _ = (context, line);
        LineKind::Plain
    }

    /// A console command that makes the server print its player list.
    /// Defaults to `None`.
    fn status_command(&self, context: &str) -> Option<String> {
        let _ = context;
        None
    }

    /// Parses the lines printed after
    /// [`status_command`](Self::status_command). Defaults to `None`.
    fn parse_status(&self, context: &str, lines: &[String]) -> Option<PlayerStatus> {
        let _ = (context, lines);
        None
    }

    /// What to write to the server's console around a backup made while it
    /// runs. Defaults to `None`: the files are archived as they are.
    fn backup_commands(&self, server: &ServerContext) -> Option<BackupCommands> {
        let _ = server;
        None
    }
}

/// A plugin with one game type: [`GameType::describe`] is the list of one,
/// and the calls that name a game type or context go to the single game's
/// methods (the host only names game types the plugin listed).
///
/// ```
/// use cap_plugin_sdk::prelude::*;
///
/// #[derive(Default)]
/// struct Solo;
///
/// impl GameType for Solo {
///     fn describe(&self) -> GameInfo {
///         GameInfo {
///             id: "solo".into(),
///             name: "Solo".into(),
///             version: "1.0.0".into(),
///             description: String::new(),
///             variables: vec![],
///             ports: vec![PortRequest {
///                 name: "game".into(),
///                 protocol: PortProtocol::Udp,
///                 primary: true,
///                 env: None,
///             }],
///             platforms: vec![Platform { os: Os::Linux, arch: Arch::Arm64 }],
///             features: vec![],
///             min_memory_mb: 64,
///             images: vec![],
///             startup_commands: vec![],
///             file_denylist: vec![],
///         }
///     }
///     fn install_plan(&self, _: &ServerContext) -> Result<InstallPlan, PluginError> {
///         Ok(InstallPlan { steps: vec![], image: None })
///     }
///     fn startup_plan(&self, _: &ServerContext) -> Result<StartupPlan, PluginError> {
///         Err(PluginError::new("not-yet", "nothing to start"))
///     }
///     fn stop_plan(&self, _: &ServerContext) -> StopPlan {
///         StopPlan { method: StopMethod::ConsoleCommand("quit".into()), grace_secs: 10 }
///     }
///     fn classify_line(&self, line: &str) -> LineKind {
///         if line == "up" { LineKind::Ready } else { LineKind::Plain }
///     }
/// }
///
/// let ids: Vec<String> = GameTypes::list(&Solo).into_iter().map(|g| g.id).collect();
/// assert_eq!(ids, ["solo"]);
/// assert_eq!(GameTypes::classify_line(&Solo, "any context", "up"), LineKind::Ready);
/// ```
impl<T: GameType> GameTypes for T {
    fn list(&self) -> Vec<GameInfo> {
        vec![self.describe()]
    }

    fn validate(&self, _game_type: &str, variables: &[KeyValue]) -> Result<(), Vec<FieldError>> {
        GameType::validate(self, variables)
    }

    fn install_plan(&self, server: &ServerContext) -> Result<InstallPlan, PluginError> {
        GameType::install_plan(self, server)
    }

    fn startup_plan(&self, server: &ServerContext) -> Result<StartupPlan, PluginError> {
        GameType::startup_plan(self, server)
    }

    fn stop_plan(&self, server: &ServerContext) -> StopPlan {
        GameType::stop_plan(self, server)
    }

    fn classify_line(&self, _context: &str, line: &str) -> LineKind {
        GameType::classify_line(self, line)
    }

    fn status_command(&self, _context: &str) -> Option<String> {
        GameType::status_command(self)
    }

    fn parse_status(&self, _context: &str, lines: &[String]) -> Option<PlayerStatus> {
        GameType::parse_status(self, lines)
    }

    fn backup_commands(&self, server: &ServerContext) -> Option<BackupCommands> {
        GameType::backup_commands(self, server)
    }
}

impl Image {
    /// An image named `name` for people, at `reference`.
    ///
    /// ```
    /// use cap_plugin_sdk::game::Image;
    ///
    /// let image = Image::new("Java 21", "ghcr.io/pterodactyl/yolks:java_21");
    /// assert_eq!(image.reference, "ghcr.io/pterodactyl/yolks:java_21");
    /// ```
    pub fn new(name: impl Into<String>, reference: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            reference: reference.into(),
        }
    }
}
