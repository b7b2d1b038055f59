//! `cap`: the Ctrl-Alt-Play command-line tool.
//!
//! One binary for everything a user runs: `cap up` starts everything on
//! one machine with the bundled plugins, `cap panel` serves the Panel,
//! `cap marketplace` serves the plugin Marketplace,
//! `cap plugin …` is for plugin authors (scaffold, build, pack, inspect).
//! `cap agent` runs a node.
//! The Panel itself lives in the `cap_panel` library; this binary only
//! parses arguments, sets up logging and reports errors.

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
    /// Start everything on this machine on embedded defaults (SQLite under
    /// ./data), installing the bundled plugins on first run.
    Up(cli::up::UpArgs),
    /// Serve the Panel (web API) until Ctrl-C or SIGTERM.
    Panel(cli::panel::PanelArgs),
    /// Run this machine as a node: register with a Panel once, then keep
    /// its link and run its game servers until Ctrl-C or SIGTERM.
    Agent(cli::agent::AgentArgs),
    /// Serve the plugin Marketplace until Ctrl-C or SIGTERM.
    Marketplace(cli::marketplace::MarketplaceArgs),
    /// Create, build, package and inspect plugins.
    #[command(subcommand)]
    Plugin(cli::plugin::PluginCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_log_level = match cli.command {
        Command::Up(_) | Command::Panel(_) | Command::Agent(_) | Command::Marketplace(_) => "info",
        Command::Plugin(_) => "warn",
    };
    cli::init_logging(default_log_level);
    let result = match cli.command {
        Command::Up(args) => cli::up::run(args),
        Command::Panel(args) => cli::panel::run(args),
        Command::Agent(args) => cli::agent::run(args),
        Command::Marketplace(args) => cli::marketplace::run(args),
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
