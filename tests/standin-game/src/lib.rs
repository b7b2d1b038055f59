//! A tiny game-server stand-in for end-to-end tests.
//!
//! The `test-game` example plugin describes this program as a game type, so
//! the whole path — install plan, startup plan, console classification,
//! player status, stop plan — can be exercised offline, in milliseconds, and
//! without Java or a game licence.
//!
//! Behaviour of the `cap-standin-game` binary:
//!
//! 1. Parses `--port N --ready-delay-ms N --max-players N` ([`Options`]).
//! 2. Binds a TCP listener on the port (so the allocation is really in use)
//!    and accepts and drops connections in a background thread.
//! 3. Prints `Starting standin on port N`, sleeps for the ready delay and
//!    prints `READY`.
//! 4. Reads commands from stdin, one per line, and answers on stdout
//!    ([`Game::handle`]):
//!
//! | Command | Output | Effect |
//! | --- | --- | --- |
//! | `stop` | `STOPPING` | exits with 0 |
//! | `say <text>` | `SAY <text>` | |
//! | `join <name>` | `JOIN <name>` | adds a player (`WARN ...` when full or already online) |
//! | `leave <name>` | `LEAVE <name>` | removes a player (`WARN ...` when not online) |
//! | `players` | `PLAYERS n/max: a,b` | |
//! | `crash <cause>` | `CRASH <cause>` | exits with 3 |
//! | `flood <n>` | `FLOOD 1` ... `FLOOD n` | |
//! | `warn <text>` | `WARN <text>` | |
//! | `env <NAME>` | `ENV <NAME>=<value>`, or `ENV <NAME> is not set` | reads its own environment (what the Agent gave it) |
//! | anything else | `UNKNOWN <line>` | |
//!
//! End of input behaves like `stop`. Every line is flushed as it is written.

use std::io::{self, Write};
use std::time::Duration;

/// Exit code of the `crash` command.
pub const CRASH_EXIT_CODE: i32 = 3;

/// Exit code for bad command-line arguments.
pub const USAGE_EXIT_CODE: i32 = 2;

/// The command-line usage text.
pub const USAGE: &str = "usage: cap-standin-game --port N [--ready-delay-ms N] [--max-players N]";

/// Command-line options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// TCP port to listen on; 0 picks a free one.
    pub port: u16,
    /// How long to wait between starting and printing `READY`.
    pub ready_delay: Duration,
    /// Most players that may be online at once.
    pub max_players: u32,
}

impl Options {
    /// Parses the arguments after the program name.
    ///
    /// ```
    /// use cap_standin_game::Options;
    ///
    /// let options = Options::parse(["--port", "25565", "--max-players", "4"].map(String::from))?;
    /// assert_eq!(options.port, 25565);
    /// assert_eq!(options.max_players, 4);
    /// assert_eq!(options.ready_delay.as_millis(), 0);
    /// # Ok::<(), String>(())
    /// ```
    ///
    /// # Errors
    ///
    /// An unknown flag, a flag without a value, a value that is not a
    /// number, or a missing `--port`.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Self, String> {
        let mut port = None;
        let mut ready_delay_ms = 0u64;
        let mut max_players = 10u32;
        let mut args = args.into_iter();
        while let Some(flag) = args.next() {
            let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "--port" => port = Some(parse_number(&flag, &value()?)?),
                "--ready-delay-ms" => ready_delay_ms = parse_number(&flag, &value()?)?,
                "--max-players" => max_players = parse_number(&flag, &value()?)?,
                _ => return Err(format!("unknown argument `{flag}`")),
            }
        }
        Ok(Self {
            port: port.ok_or("--port is required")?,
            ready_delay: Duration::from_millis(ready_delay_ms),
            max_players,
        })
    }
}

fn parse_number<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("{flag} expects a non-negative number, got `{value}`"))
}

/// What the main loop does after a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Read the next command.
    Continue,
    /// Exit the process with this code.
    Exit(i32),
}

/// The game state: who is online, and how many may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Game {
    max_players: u32,
    players: Vec<String>,
}

impl Game {
    /// A game with nobody online.
    ///
    /// ```
    /// let game = cap_standin_game::Game::new(10);
    /// assert!(game.players().is_empty());
    /// ```
    pub fn new(max_players: u32) -> Self {
        Self {
            max_players,
            players: Vec::new(),
        }
    }

    /// The players online, in the order they joined.
    pub fn players(&self) -> &[String] {
        &self.players
    }

    /// Handles one command line (without its newline), writing the answer to
    /// `out`.
    ///
    /// ```
    /// use cap_standin_game::{Game, Outcome};
    ///
    /// let mut game = Game::new(2);
    /// let mut out = Vec::new();
    /// game.handle("join alice", &mut out)?;
    /// assert_eq!(game.handle("players", &mut out)?, Outcome::Continue);
    /// assert_eq!(game.handle("stop", &mut out)?, Outcome::Exit(0));
    /// assert_eq!(String::from_utf8_lossy(&out), "JOIN alice\nPLAYERS 1/2: alice\nSTOPPING\n");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// Writing to `out` failed.
    pub fn handle(&mut self, line: &str, out: &mut impl Write) -> io::Result<Outcome> {
        let line = line.trim_end_matches(['\r', '\n']);
        let (command, argument) = match line.trim().split_once(' ') {
            Some((command, argument)) => (command, argument.trim()),
            None => (line.trim(), ""),
        };
        match (command, argument) {
            ("", _) => {}
            ("stop", "") => {
                say(out, "STOPPING")?;
                return Ok(Outcome::Exit(0));
            }
            ("players", "") => {
                let status = format!(
                    "PLAYERS {}/{}: {}",
                    self.players.len(),
                    self.max_players,
                    self.players.join(",")
                );
                say(out, &status)?;
            }
            ("say", text) if !text.is_empty() => say(out, &format!("SAY {text}"))?,
            ("warn", text) if !text.is_empty() => say(out, &format!("WARN {text}"))?,
            ("env", name) if !name.is_empty() && !name.contains(' ') => {
                say(out, &environment_line(name, std::env::var(name).ok()))?;
            }
            ("join", name) if !name.is_empty() => self.join(name, out)?,
            ("leave", name) if !name.is_empty() => self.leave(name, out)?,
            ("crash", cause) if !cause.is_empty() => {
                say(out, &format!("CRASH {cause}"))?;
                return Ok(Outcome::Exit(CRASH_EXIT_CODE));
            }
            ("flood", count) => match count.parse::<u64>() {
                Ok(count) => {
                    for i in 1..=count {
                        say(out, &format!("FLOOD {i}"))?;
                    }
                }
                Err(_) => say(out, &format!("UNKNOWN {line}"))?,
            },
            _ => say(out, &format!("UNKNOWN {line}"))?,
        }
        Ok(Outcome::Continue)
    }

    fn join(&mut self, name: &str, out: &mut impl Write) -> io::Result<()> {
        if self.players.iter().any(|player| player == name) {
            return say(out, &format!("WARN {name} is already online"));
        }
        let online = u32::try_from(self.players.len()).unwrap_or(u32::MAX);
        if online >= self.max_players {
            return say(out, &format!("WARN server full, {name} was turned away"));
        }
        self.players.push(name.to_owned());
        say(out, &format!("JOIN {name}"))
    }

    fn leave(&mut self, name: &str, out: &mut impl Write) -> io::Result<()> {
        match self.players.iter().position(|player| player == name) {
            Some(index) => {
                self.players.remove(index);
                say(out, &format!("LEAVE {name}"))
            }
            None => say(out, &format!("WARN {name} is not online")),
        }
    }
}

/// The answer to `env <name>`: `ENV <name>=<value>` (control characters
/// of the value as spaces, so that it stays one line), or `ENV <name> is
/// not set`.
///
/// ```
/// use cap_standin_game::environment_line;
///
/// assert_eq!(environment_line("SERVER_PORTS", Some("25565,25566".into())), "ENV SERVER_PORTS=25565,25566");
/// assert_eq!(environment_line("NOPE", None), "ENV NOPE is not set");
/// ```
pub fn environment_line(name: &str, value: Option<String>) -> String {
    match value {
        Some(value) => {
            let value: String = value
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            format!("ENV {name}={value}")
        }
        None => format!("ENV {name} is not set"),
    }
}

/// Writes one line and flushes it.
///
/// # Errors
///
/// Writing or flushing failed.
pub fn say(out: &mut impl Write, line: &str) -> io::Result<()> {
    out.write_all(line.as_bytes())?;
    out.write_all(b"\n")?;
    out.flush()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn run(game: &mut Game, lines: &[&str]) -> (String, Outcome) {
        let mut out = Vec::new();
        let mut outcome = Outcome::Continue;
        for line in lines {
            outcome = game.handle(line, &mut out).unwrap();
        }
        (String::from_utf8(out).unwrap(), outcome)
    }

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|&s| s.to_owned()).collect()
    }

    #[test]
    fn parses_every_flag() {
        let options = Options::parse(args(&[
            "--port",
            "7",
            "--ready-delay-ms",
            "250",
            "--max-players",
            "3",
        ]))
        .unwrap();
        assert_eq!(
            options,
            Options {
                port: 7,
                ready_delay: Duration::from_millis(250),
                max_players: 3
            }
        );
    }

    #[test]
    fn refuses_to_start_without_a_port() {
        assert_eq!(
            Options::parse(args(&["--max-players", "3"])),
            Err("--port is required".to_owned())
        );
    }

    #[test]
    fn refuses_an_unknown_flag_and_a_missing_value() {
        assert!(Options::parse(args(&["--port", "1", "--verbose"])).is_err());
        assert_eq!(
            Options::parse(args(&["--port"])),
            Err("--port needs a value".to_owned())
        );
        assert!(Options::parse(args(&["--port", "70000"])).is_err());
    }

    #[test]
    fn players_join_and_leave_and_are_listed_in_join_order() {
        let mut game = Game::new(10);
        let (out, _) = run(
            &mut game,
            &["join bob", "join alice", "players", "leave bob", "players"],
        );
        assert_eq!(
            out,
            "JOIN bob\nJOIN alice\nPLAYERS 2/10: bob,alice\nLEAVE bob\nPLAYERS 1/10: alice\n"
        );
    }

    #[test]
    fn an_empty_server_lists_no_players() {
        let (out, _) = run(&mut Game::new(4), &["players"]);
        assert_eq!(out, "PLAYERS 0/4: \n");
    }

    #[test]
    fn a_full_server_turns_players_away() {
        let (out, _) = run(&mut Game::new(1), &["join a", "join b", "players"]);
        assert_eq!(
            out,
            "JOIN a\nWARN server full, b was turned away\nPLAYERS 1/1: a\n"
        );
    }

    #[test]
    fn joining_twice_or_leaving_when_absent_is_a_warning() {
        let (out, _) = run(&mut Game::new(5), &["join a", "join a", "leave z"]);
        assert_eq!(
            out,
            "JOIN a\nWARN a is already online\nWARN z is not online\n"
        );
    }

    #[test]
    fn crash_prints_the_cause_and_exits_with_three() {
        let (out, outcome) = run(&mut Game::new(5), &["crash out of memory"]);
        assert_eq!(out, "CRASH out of memory\n");
        assert_eq!(outcome, Outcome::Exit(CRASH_EXIT_CODE));
    }

    #[test]
    fn stop_exits_cleanly() {
        let (out, outcome) = run(&mut Game::new(5), &["stop"]);
        assert_eq!(out, "STOPPING\n");
        assert_eq!(outcome, Outcome::Exit(0));
    }

    #[test]
    fn flood_prints_numbered_lines() {
        let (out, _) = run(&mut Game::new(5), &["flood 3"]);
        assert_eq!(out, "FLOOD 1\nFLOOD 2\nFLOOD 3\n");
    }

    #[test]
    fn say_and_warn_echo_their_text() {
        let (out, _) = run(
            &mut Game::new(5),
            &["say hello world", "warn disk almost full"],
        );
        assert_eq!(out, "SAY hello world\nWARN disk almost full\n");
    }

    #[test]
    fn unknown_and_incomplete_commands_are_reported() {
        let (out, outcome) = run(
            &mut Game::new(5),
            &["dance", "join", "flood many", "stop now", ""],
        );
        assert_eq!(
            out,
            "UNKNOWN dance\nUNKNOWN join\nUNKNOWN flood many\nUNKNOWN stop now\n"
        );
        assert_eq!(outcome, Outcome::Continue);
    }

    #[test]
    fn env_prints_a_variable_of_its_own_environment() {
        let mut game = Game::new(1);
        let (out, outcome) = run(&mut game, &["env PATH", "env CAP_STANDIN_SURELY_UNSET_42"]);
        assert_eq!(outcome, Outcome::Continue);
        let lines: Vec<&str> = out.lines().collect();
        let path = std::env::var("PATH").unwrap_or_default();
        assert_eq!(lines[0], format!("ENV PATH={path}"));
        assert_eq!(lines[1], "ENV CAP_STANDIN_SURELY_UNSET_42 is not set");
        let (out, _) = run(&mut game, &["env", "env A B"]);
        assert_eq!(out, "UNKNOWN env\nUNKNOWN env A B\n");
    }

    #[test]
    fn windows_line_endings_are_ignored() {
        let (out, _) = run(&mut Game::new(5), &["join a\r"]);
        assert_eq!(out, "JOIN a\n");
    }
}
