//! `cap`: the Ctrl-Alt-Play command-line tool.
//!
//! One binary for everything a user runs: `cap plugin …` for plugin authors
//! (scaffold, build, pack, inspect). The Panel, Agent and Marketplace
//! subcommands join as those components land.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cli;

/// Ctrl-Alt-Play: game-server hosting where every game, login and hook is a
/// sandboxed WebAssembly plugin.
#[derive(Debug, Parser)]
#[command(name = "cap", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create, build, package and inspect plugins.
    #[command(subcommand)]
    Plugin(cli::plugin::PluginCommand),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CAP_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Plugin(cmd) => cli::plugin::run(cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, the whole causal chain.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
