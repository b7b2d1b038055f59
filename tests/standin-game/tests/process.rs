//! Runs the real `cap-standin-game` binary as the Agent would: arguments in,
//! commands on stdin, console lines out.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(20);

struct Standin {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl Standin {
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cap-standin-game"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        Self {
            child,
            stdin,
            lines,
        }
    }

    fn next_line(&self) -> String {
        self.lines
            .recv_timeout(TIMEOUT)
            .expect("the stand-in printed nothing in time")
    }

    fn send(&mut self, command: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{command}").unwrap();
        stdin.flush().unwrap();
    }

    fn close_stdin(&mut self) {
        self.stdin = None;
    }

    fn wait(&mut self) -> Option<i32> {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(Instant::now() < deadline, "the stand-in did not exit");
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Reads `Starting standin on port N` and returns N.
    fn started_port(&self) -> u16 {
        let line = self.next_line();
        line.strip_prefix("Starting standin on port ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse()
            .unwrap()
    }
}

impl Drop for Standin {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[test]
fn starts_listens_becomes_ready_and_stops_on_command() {
    let mut game = Standin::start(&["--port", "0", "--ready-delay-ms", "50"]);
    let port = game.started_port();
    assert_ne!(port, 0);
    assert!(TcpStream::connect(("127.0.0.1", port)).is_ok());
    assert_eq!(game.next_line(), "READY");

    game.send("join alice");
    assert_eq!(game.next_line(), "JOIN alice");
    game.send("players");
    assert_eq!(game.next_line(), "PLAYERS 1/10: alice");
    game.send("say hi there");
    assert_eq!(game.next_line(), "SAY hi there");
    game.send("stop");
    assert_eq!(game.next_line(), "STOPPING");
    assert_eq!(game.wait(), Some(0));
}

#[test]
fn waits_for_the_ready_delay_before_printing_ready() {
    let game = Standin::start(&["--port", "0", "--ready-delay-ms", "300"]);
    game.started_port();
    let started = Instant::now();
    assert_eq!(game.next_line(), "READY");
    assert!(started.elapsed() >= Duration::from_millis(250));
}

#[test]
fn crash_exits_with_code_three() {
    let mut game = Standin::start(&["--port", "0", "--max-players", "2"]);
    game.started_port();
    assert_eq!(game.next_line(), "READY");
    game.send("crash out of cheese");
    assert_eq!(game.next_line(), "CRASH out of cheese");
    assert_eq!(game.wait(), Some(3));
}

#[test]
fn flood_prints_every_line() {
    let mut game = Standin::start(&["--port", "0"]);
    game.started_port();
    assert_eq!(game.next_line(), "READY");
    game.send("flood 5000");
    for i in 1..=5000 {
        assert_eq!(game.next_line(), format!("FLOOD {i}"));
    }
    game.send("stop");
    assert_eq!(game.next_line(), "STOPPING");
    assert_eq!(game.wait(), Some(0));
}

#[test]
fn closing_stdin_stops_the_server() {
    let mut game = Standin::start(&["--port", "0"]);
    game.started_port();
    assert_eq!(game.next_line(), "READY");
    game.close_stdin();
    assert_eq!(game.next_line(), "STOPPING");
    assert_eq!(game.wait(), Some(0));
}

#[test]
fn a_port_in_use_is_a_startup_failure() {
    let taken = TcpListener::bind(("0.0.0.0", 0)).unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let mut game = Standin::start(&["--port", &port]);
    assert_eq!(game.wait(), Some(1));
}

#[test]
fn bad_arguments_exit_with_code_two() {
    let mut game = Standin::start(&["--port", "0", "--colour", "blue"]);
    assert_eq!(game.wait(), Some(2));
}
