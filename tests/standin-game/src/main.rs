//! `cap-standin-game`: a tiny game-server stand-in. See the library
//! documentation for the protocol.

use std::io::{self, BufRead};
use std::net::TcpListener;
use std::process::ExitCode;
use std::thread;

use cap_standin_game::{Game, Options, Outcome, USAGE, USAGE_EXIT_CODE, say};

fn main() -> ExitCode {
    let options = match Options::parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("cap-standin-game: {message}\n{USAGE}");
            return exit_code(USAGE_EXIT_CODE);
        }
    };
    match run(&options) {
        Ok(code) => exit_code(code),
        Err(error) => {
            eprintln!("cap-standin-game: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(options: &Options) -> io::Result<i32> {
    let listener = TcpListener::bind(("0.0.0.0", options.port)).map_err(|error| {
        io::Error::new(
            error.kind(),
            format!("cannot listen on port {}: {error}", options.port),
        )
    })?;
    let port = listener.local_addr()?.port();
    // Accept and drop connections so that port checks see a live server.
    thread::spawn(move || {
        for connection in listener.incoming() {
            drop(connection);
        }
    });

    let stdout = io::stdout();
    let mut out = stdout.lock();
    say(&mut out, &format!("Starting standin on port {port}"))?;
    thread::sleep(options.ready_delay);
    say(&mut out, "READY")?;

    let mut game = Game::new(options.max_players);
    for line in io::stdin().lock().lines() {
        if let Outcome::Exit(code) = game.handle(&line?, &mut out)? {
            return Ok(code);
        }
    }
    // End of input: nobody can send commands any more, so shut down.
    say(&mut out, "STOPPING")?;
    Ok(0)
}

fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
