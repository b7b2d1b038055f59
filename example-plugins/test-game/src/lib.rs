//! Game type for `cap-standin-game`, the tiny game-server stand-in in
//! `tests/standin-game`.
//!
//! It exercises every part of the game-type contract without downloads,
//! Java or a game licence, so end-to-end tests run offline in milliseconds:
//!
//! - install: writes `standin.cfg` and edits it as a properties file;
//! - startup: `{STANDIN_PATH} --port {game port} --ready-delay-ms {READY_DELAY_MS}
//!   --max-players {MAX_PLAYERS}`;
//! - stop: the console command `stop`, then SIGKILL after 5 s;
//! - console: `READY`, `JOIN <name>`, `LEAVE <name>`, `WARN <text>` and
//!   `CRASH <cause>` lines; `players` prints `PLAYERS n/max: a,b`.

use cap_plugin_sdk::game::{
    Arch, ConfigEdit, ConfigFormat, FieldError, GameInfo, GameType, InstallPlan, InstallStep,
    LineKind, Os, Platform, PlayerStatus, PortProtocol, PortRequest, ServerContext, StartupPlan,
    StopMethod, StopPlan, ValidationRule, Variable, VariableType, WriteFile,
};
use cap_plugin_sdk::types::{KeyValue, PluginError, lookup};

/// The plugin. Stateless: everything comes from the server context.
#[derive(Debug, Default)]
pub struct TestGame;

cap_plugin_sdk::export_plugin!(TestGame: game_type);

const STANDIN_PATH: &str = "STANDIN_PATH";
const READY_DELAY_MS: &str = "READY_DELAY_MS";
const MAX_PLAYERS: &str = "MAX_PLAYERS";
const RCON_PASSWORD: &str = "RCON_PASSWORD";

const DEFAULT_STANDIN_PATH: &str = "cap-standin-game";
const DEFAULT_READY_DELAY_MS: u32 = 200;
const MAX_READY_DELAY_MS: u32 = 60_000;
const DEFAULT_MAX_PLAYERS: u32 = 10;
const MAX_MAX_PLAYERS: u32 = 1_000;

/// The config file the install plan writes.
const CONFIG_FILE: &str = "standin.cfg";

impl GameType for TestGame {
    fn describe(&self) -> GameInfo {
        describe()
    }

    fn validate(&self, variables: &[KeyValue]) -> Result<(), Vec<FieldError>> {
        Settings::from_variables(variables).map(|_| ())
    }

    fn install_plan(&self, server: &ServerContext) -> Result<InstallPlan, PluginError> {
        install_plan(server)
    }

    fn startup_plan(&self, server: &ServerContext) -> Result<StartupPlan, PluginError> {
        startup_plan(server)
    }

    fn stop_plan(&self, _server: &ServerContext) -> StopPlan {
        StopPlan {
            method: StopMethod::ConsoleCommand("stop".into()),
            grace_secs: 5,
        }
    }

    fn classify_line(&self, line: &str) -> LineKind {
        classify_line(line)
    }

    fn status_command(&self) -> Option<String> {
        Some("players".into())
    }

    fn parse_status(&self, lines: &[String]) -> Option<PlayerStatus> {
        lines.iter().find_map(|line| parse_players(line))
    }
}

fn describe() -> GameInfo {
    GameInfo {
        id: "test-game".into(),
        name: "Test game (stand-in)".into(),
        version: "1.0.0".into(),
        description: "cap-standin-game, a tiny offline game-server stand-in for end-to-end tests."
            .into(),
        variables: vec![
            Variable::new(STANDIN_PATH, "Stand-in program", VariableType::String)
                .with_description(
                    "Path of the cap-standin-game binary, looked up in the server directory, \
                     then PATH.",
                )
                .with_default(DEFAULT_STANDIN_PATH)
                .with_rule(ValidationRule::Required)
                .with_rule(ValidationRule::MaxLength(4096))
                .read_only(),
            Variable::new(READY_DELAY_MS, "Ready delay (ms)", VariableType::Integer)
                .with_description("How long the stand-in takes to print READY.")
                .with_default(DEFAULT_READY_DELAY_MS.to_string())
                .with_rule(ValidationRule::Required)
                .with_rule(ValidationRule::Min(0))
                .with_rule(ValidationRule::Max(i64::from(MAX_READY_DELAY_MS))),
            Variable::new(MAX_PLAYERS, "Max players", VariableType::Integer)
                .with_description("How many players may be online at once.")
                .with_default(DEFAULT_MAX_PLAYERS.to_string())
                .with_rule(ValidationRule::Required)
                .with_rule(ValidationRule::Min(1))
                .with_rule(ValidationRule::Max(i64::from(MAX_MAX_PLAYERS))),
            Variable::new(
                RCON_PASSWORD,
                "Remote console password",
                VariableType::String,
            )
            .with_description(
                "Handed to the stand-in as RCON_PASSWORD. A secret: hidden from players \
                     and redacted in the audit log.",
            )
            .with_rule(ValidationRule::MaxLength(128))
            .hidden(),
        ],
        ports: vec![PortRequest {
            name: "game".into(),
            protocol: PortProtocol::Tcp,
            primary: true,
            env: Some("SERVER_PORT".into()),
        }],
        platforms: [Os::Linux, Os::Macos]
            .into_iter()
            .flat_map(|os| [Arch::Amd64, Arch::Arm64].map(|arch| Platform { os, arch }))
            .collect(),
        features: Vec::new(),
        min_memory_mb: 16,
    }
}

/// The validated variables.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Settings {
    standin_path: String,
    ready_delay_ms: u32,
    max_players: u32,
}

impl Settings {
    /// Reads and checks the variables, with one error per bad variable.
    /// Missing variables take their defaults.
    fn from_variables(variables: &[KeyValue]) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let standin_path = lookup(variables, STANDIN_PATH)
            .unwrap_or(DEFAULT_STANDIN_PATH)
            .trim()
            .to_owned();
        if standin_path.is_empty() {
            errors.push(FieldError::new(STANDIN_PATH, "must not be empty"));
        }
        let ready_delay_ms = integer(
            variables,
            READY_DELAY_MS,
            DEFAULT_READY_DELAY_MS,
            0..=MAX_READY_DELAY_MS,
        )
        .map_err(|error| errors.push(error));
        let max_players = integer(
            variables,
            MAX_PLAYERS,
            DEFAULT_MAX_PLAYERS,
            1..=MAX_MAX_PLAYERS,
        )
        .map_err(|error| errors.push(error));
        match (ready_delay_ms, max_players) {
            (Ok(ready_delay_ms), Ok(max_players)) if errors.is_empty() => Ok(Self {
                standin_path,
                ready_delay_ms,
                max_players,
            }),
            _ => Err(errors),
        }
    }

    fn from_server(server: &ServerContext) -> Result<Self, PluginError> {
        Self::from_variables(&server.variables).map_err(|errors| {
            let details: Vec<String> = errors
                .iter()
                .map(|error| format!("{}: {}", error.key, error.message))
                .collect();
            PluginError::new("invalid-variable", details.join("; "))
        })
    }
}

fn integer(
    variables: &[KeyValue],
    key: &str,
    default: u32,
    range: std::ops::RangeInclusive<u32>,
) -> Result<u32, FieldError> {
    let Some(raw) = lookup(variables, key) else {
        return Ok(default);
    };
    let out_of_range = || {
        FieldError::new(
            key,
            format!(
                "must be a whole number from {} to {}",
                range.start(),
                range.end()
            ),
        )
    };
    let value: u32 = raw.trim().parse().map_err(|_| out_of_range())?;
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(out_of_range())
    }
}

fn game_port(server: &ServerContext) -> Result<u16, PluginError> {
    server
        .port("game")
        .map(|port| port.port)
        .ok_or_else(|| PluginError::new("missing-port", "no `game` port is allocated"))
}

/// Edits applied on install and before every start, so the file always
/// names the current allocation.
fn config_edit(server: &ServerContext, settings: &Settings) -> Result<ConfigEdit, PluginError> {
    Ok(ConfigEdit {
        path: CONFIG_FILE.into(),
        format: ConfigFormat::Properties,
        set: vec![
            KeyValue::new("server-name", one_line(&server.name)),
            KeyValue::new("server-port", game_port(server)?.to_string()),
            KeyValue::new("max-players", settings.max_players.to_string()),
        ],
    })
}

fn install_plan(server: &ServerContext) -> Result<InstallPlan, PluginError> {
    let settings = Settings::from_server(server)?;
    Ok(InstallPlan {
        steps: vec![
            InstallStep::WriteFile(WriteFile {
                path: CONFIG_FILE.into(),
                contents: format!(
                    "# cap-standin-game settings, written by the test-game plugin.\n\
                     server-id={}\n",
                    server.server_id
                ),
                mode: 0o644,
            }),
            InstallStep::EditConfig(config_edit(server, &settings)?),
        ],
    })
}

fn startup_plan(server: &ServerContext) -> Result<StartupPlan, PluginError> {
    let settings = Settings::from_server(server)?;
    let port = game_port(server)?;
    Ok(StartupPlan {
        program: settings.standin_path.clone(),
        args: vec![
            "--port".into(),
            port.to_string(),
            "--ready-delay-ms".into(),
            settings.ready_delay_ms.to_string(),
            "--max-players".into(),
            settings.max_players.to_string(),
        ],
        env: server
            .variable(RCON_PASSWORD)
            .filter(|password| !password.is_empty())
            .map(|password| KeyValue::new(RCON_PASSWORD, password))
            .into_iter()
            .collect(),
        working_dir: ".".into(),
        config_edits: vec![config_edit(server, &settings)?],
    })
}

/// Replaces line breaks and other control characters, which would end a
/// properties value early.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn classify_line(line: &str) -> LineKind {
    let line = line.trim_end();
    let word = |prefix: &str| {
        line.strip_prefix(prefix)
            .map(str::trim)
            .filter(|rest| !rest.is_empty())
            .map(str::to_owned)
    };
    if line == "READY" {
        LineKind::Ready
    } else if let Some(name) = word("JOIN ") {
        LineKind::PlayerJoined(name)
    } else if let Some(name) = word("LEAVE ") {
        LineKind::PlayerLeft(name)
    } else if let Some(text) = word("WARN ") {
        LineKind::Warning(text)
    } else if let Some(cause) = word("CRASH ") {
        LineKind::Crash(cause)
    } else {
        LineKind::Plain
    }
}

/// Parses `PLAYERS n/max: a,b`.
fn parse_players(line: &str) -> Option<PlayerStatus> {
    let rest = line.trim().strip_prefix("PLAYERS ")?;
    let (counts, names) = rest.split_once(':')?;
    let (online, max) = counts.split_once('/')?;
    let players: Vec<String> = names
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .collect();
    let online: u32 = online.trim().parse().ok()?;
    if usize::try_from(online).ok()? != players.len() {
        return None;
    }
    Some(PlayerStatus {
        online,
        max: max.trim().parse().ok()?,
        players,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use cap_plugin_sdk::game::AllocatedPort;

    fn server(variables: &[(&str, &str)]) -> ServerContext {
        ServerContext {
            server_id: "s-1".into(),
            name: "Stand-in\nserver".into(),
            memory_mb: 64,
            disk_mb: 100,
            cpu_percent: 50,
            variables: variables
                .iter()
                .map(|&(key, value)| KeyValue::new(key, value))
                .collect(),
            ports: vec![AllocatedPort {
                name: "game".into(),
                ip: "127.0.0.1".into(),
                port: 30_000,
            }],
            platform: Platform {
                os: Os::Linux,
                arch: Arch::Amd64,
            },
        }
    }

    #[test]
    fn describes_four_variables_one_of_them_hidden_and_one_primary_port() {
        let info = describe();
        assert_eq!(info.id, "test-game");
        let keys: Vec<&str> = info.variables.iter().map(|v| v.key.as_str()).collect();
        assert_eq!(
            keys,
            [STANDIN_PATH, READY_DELAY_MS, MAX_PLAYERS, RCON_PASSWORD]
        );
        let hidden: Vec<&str> = info
            .variables
            .iter()
            .filter(|v| !v.user_viewable)
            .map(|v| v.key.as_str())
            .collect();
        assert_eq!(hidden, [RCON_PASSWORD]);
        assert_eq!(info.ports.iter().filter(|p| p.primary).count(), 1);
        assert_eq!(info.platforms.len(), 4);
    }

    #[test]
    fn startup_runs_the_standin_with_port_delay_and_player_limit() {
        let plan = startup_plan(&server(&[(READY_DELAY_MS, "50"), (MAX_PLAYERS, "3")])).unwrap();
        assert_eq!(plan.program, "cap-standin-game");
        assert_eq!(
            plan.args,
            [
                "--port",
                "30000",
                "--ready-delay-ms",
                "50",
                "--max-players",
                "3"
            ]
        );
    }

    #[test]
    fn missing_variables_take_their_defaults() {
        let settings = Settings::from_variables(&[]).unwrap();
        assert_eq!(
            settings,
            Settings {
                standin_path: "cap-standin-game".into(),
                ready_delay_ms: 200,
                max_players: 10
            }
        );
    }

    #[test]
    fn rejects_a_ready_delay_above_one_minute_and_zero_players_separately() {
        let errors = Settings::from_variables(&[
            KeyValue::new(READY_DELAY_MS, "60001"),
            KeyValue::new(MAX_PLAYERS, "0"),
        ])
        .unwrap_err();
        let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, [READY_DELAY_MS, MAX_PLAYERS]);
    }

    #[test]
    fn rejects_a_negative_or_non_numeric_delay() {
        for bad in ["-1", "soon", ""] {
            assert!(
                Settings::from_variables(&[KeyValue::new(READY_DELAY_MS, bad)]).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn install_writes_the_config_then_edits_it_without_downloading() {
        let plan = install_plan(&server(&[])).unwrap();
        assert!(matches!(&plan.steps[0], InstallStep::WriteFile(file) if file.path == CONFIG_FILE));
        let InstallStep::EditConfig(edit) = &plan.steps[1] else {
            panic!("expected an edit, got {:?}", plan.steps[1]);
        };
        assert_eq!(lookup(&edit.set, "server-port"), Some("30000"));
        assert_eq!(lookup(&edit.set, "server-name"), Some("Stand-in server"));
        assert!(
            !plan
                .steps
                .iter()
                .any(|step| matches!(step, InstallStep::Download(_)))
        );
    }

    #[test]
    fn a_plan_without_a_game_port_is_an_error() {
        let mut context = server(&[]);
        context.ports.clear();
        assert_eq!(startup_plan(&context).unwrap_err().code, "missing-port");
    }

    #[test]
    fn classifies_every_standin_line() {
        assert_eq!(classify_line("READY"), LineKind::Ready);
        assert_eq!(
            classify_line("JOIN alice"),
            LineKind::PlayerJoined("alice".into())
        );
        assert_eq!(
            classify_line("LEAVE bob"),
            LineKind::PlayerLeft("bob".into())
        );
        assert_eq!(
            classify_line("WARN disk almost full"),
            LineKind::Warning("disk almost full".into())
        );
        assert_eq!(
            classify_line("CRASH out of cheese"),
            LineKind::Crash("out of cheese".into())
        );
        assert_eq!(classify_line("SAY READY"), LineKind::Plain);
        assert_eq!(classify_line("JOIN "), LineKind::Plain);
        assert_eq!(classify_line("Starting standin on port 1"), LineKind::Plain);
    }

    #[test]
    fn parses_a_player_list() {
        assert_eq!(
            parse_players("PLAYERS 2/10: alice,bob"),
            Some(PlayerStatus {
                online: 2,
                max: 10,
                players: vec!["alice".into(), "bob".into()]
            })
        );
    }

    #[test]
    fn parses_an_empty_player_list() {
        assert_eq!(
            parse_players("PLAYERS 0/4: "),
            Some(PlayerStatus {
                online: 0,
                max: 4,
                players: Vec::new()
            })
        );
    }

    #[test]
    fn a_count_that_disagrees_with_the_names_is_not_a_status() {
        assert_eq!(parse_players("PLAYERS 3/4: a"), None);
        assert_eq!(parse_players("JOIN a"), None);
        assert_eq!(parse_players("PLAYERS x/4: "), None);
    }

    #[test]
    fn the_status_is_found_among_other_lines() {
        let lines = vec!["SAY hi".to_owned(), "PLAYERS 1/10: a".to_owned()];
        assert_eq!(TestGame.parse_status(&lines).map(|s| s.online), Some(1));
    }
}
