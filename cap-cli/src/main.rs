//! # cap-cli
//!
//! `cap`, the Ctrl-Alt-Play command-line tool: one binary for everything a
//! user runs. `cap up` starts everything on one machine with the bundled
//! plugins, `cap panel` serves the Panel (and `cap panel replay`,
//! `rotate-jwt-key` and `marketplace` maintain one), `cap agent` runs a
//! node, `cap marketplace` serves the plugin Marketplace, `cap plugin …` is
//! for plugin authors (scaffold, build, pack, inspect, sign, publish), and
//! `cap egg …` checks Pterodactyl and Pelican eggs offline and imports them
//! into a Panel.
//!
//! | Module | Holds |
//! |---|---|
//! | [`up`], [`panel`], [`agent`], [`marketplace`], [`plugin`], [`egg`] | one subcommand each: flags, then a call into the library that does the work |
//! | [`panel_marketplace`] | `cap panel marketplace …`, an admin's client of a running Panel |
//! | [`panel_client`] | the Panel API client (`--panel`, `--token`) of every command that talks to a running Panel |
//! | [`bundled`] | the plugins this binary carries, compiled by `build.rs` |
//! | [`local_agent`] | the Agent `cap up` runs beside its Panel |
//!
//! Key decisions:
//!
//! - **The binary is a crate of its own.** The Panel (`cap-panel`), the
//!   Agent (`cap-agent`) and the Marketplace (`cap-marketplace`) are
//!   libraries; only this crate joins them. So the Panel library does not
//!   depend on the Agent, although `cap up` runs one beside it, and nothing
//!   in a library parses flags or prints banners. This crate holds flags,
//!   wiring and reporting; the work is done in the libraries.
//! - **The binary is self-contained.** The plugins `cap up` and `cap panel`
//!   install (`local-password` above all: without it nobody can sign in)
//!   are compiled when `cap` is built and carried inside it ([`bundled`]);
//!   a copied `cap` needs neither the source tree nor cargo. On install
//!   they take the path of any uploaded package: packed by the writer `cap
//!   plugin pack` uses, read and validated by the Panel's plugin manager,
//!   granted what the manifest requests; nothing is trusted for being
//!   bundled.
//! - **One build of the example plugins.** `build.rs` runs
//!   `cargo build --release --target wasm32-wasip2` on the whole
//!   `example-plugins/` workspace and on its API 0.2.0 sibling
//!   `example-plugins/v0.2/` (the egg bridge) into `example-plugins/target`,
//!   the very commands and directory the tests' fixtures
//!   (`cap_e2e::example_plugins`) use. Building there rather than under `OUT_DIR` is deliberate: the
//!   suite then finds every plugin built and compiles none twice, and CI
//!   pays for one build of the example plugins, not two. The script starts
//!   the inner cargo without the outer build's flags, target directory,
//!   profile overrides and clippy's driver (they are meant for this
//!   workspace, not for a `wasm32-wasip2` one), and copies each plugin's
//!   parts under `OUT_DIR`. Building `cap` needs the `wasm32-wasip2` target
//!   (`rustup target add wasm32-wasip2`); without it the build fails saying
//!   so.
//! - **Packed on install, not in `build.rs`.** The package writer is
//!   `cap-runtime`'s. As a build dependency, `cap-runtime` and its
//!   dependencies (wasmtime and cranelift among them) are resolved for the
//!   host with other features than the normal build's and would be
//!   compiled twice, doubling a cold build; so `cap` carries the parts and
//!   packs the missing plugins when it installs them (a few milliseconds,
//!   on the first run), the same bytes `cap plugin pack` writes.
//! - **Errors end in one line.** Subcommands return `anyhow` errors with
//!   context; `main` prints the whole causal chain on one line and exits
//!   with 1, never with a panic.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod agent;
mod bundled;
mod egg;
mod local_agent;
mod marketplace;
mod panel;
mod panel_client;
mod panel_marketplace;
mod plugin;
mod up;

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
    Up(up::UpArgs),
    /// Serve the Panel (web API) until Ctrl-C or SIGTERM.
    Panel(panel::PanelArgs),
    /// Run this machine as a node: register with a Panel once, then keep
    /// its link and run its game servers until Ctrl-C or SIGTERM.
    Agent(agent::AgentArgs),
    /// Serve the plugin Marketplace until Ctrl-C or SIGTERM.
    Marketplace(marketplace::MarketplaceArgs),
    /// Create, build, package and inspect plugins.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// Pterodactyl and Pelican eggs: check one offline, import one into a
    /// Panel.
    #[command(subcommand)]
    Egg(egg::EggCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_log_level = match cli.command {
        Command::Up(_) | Command::Panel(_) | Command::Agent(_) | Command::Marketplace(_) => "info",
        Command::Plugin(_) | Command::Egg(_) => "warn",
    };
    init_logging(default_log_level);
    let result = match cli.command {
        Command::Up(args) => up::run(args),
        Command::Panel(args) => panel::run(args),
        Command::Agent(args) => agent::run(args),
        Command::Marketplace(args) => marketplace::run(args),
        Command::Plugin(cmd) => plugin::run(cmd),
        Command::Egg(cmd) => egg::run(cmd),
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

/// Logs to stderr. `CAP_LOG` sets the filter (`info`,
/// `cap_panel=debug,tower_http=debug`, …; default `default_level`);
/// `CAP_LOG_FORMAT=json` switches to one JSON object per line.
fn init_logging(default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CAP_LOG")
        .unwrap_or_else(|_| default_level.into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("CAP_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json")) {
        builder.json().init();
    } else {
        builder.init();
    }
}
