//! `cap egg …`: Pterodactyl and Pelican eggs. `cap egg check FILE` is
//! offline: it parses the egg with `cap-egg` and prints the game type it
//! would create, and what of the egg nothing acts on yet.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use cap_egg::{Egg, FindValue, Stop, StopSignal};
use clap::Subcommand;

/// `cap egg` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum EggCommand {
    /// Parse an egg file (JSON or YAML, any Pterodactyl or Pelican format)
    /// offline and print the game type it would create; exits non-zero
    /// naming the field when the egg is refused.
    Check {
        /// The egg file.
        file: PathBuf,
    },
}

pub(crate) fn run(cmd: EggCommand) -> anyhow::Result<()> {
    match cmd {
        EggCommand::Check { file } => {
            let reader = std::fs::File::open(&file)
                .with_context(|| format!("opening {}", file.display()))?;
            let egg = Egg::read(reader)
                .with_context(|| format!("{} is not a usable egg", file.display()))?;
            print!("{}", describe(&egg));
            Ok(())
        }
    }
}

/// The report `cap egg check` prints.
fn describe(egg: &Egg) -> String {
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(w, "Game type: {}", egg.name);
    let _ = writeln!(w, "Format: {} ({:?})", egg.version, egg.syntax);
    if let Some(author) = &egg.author {
        let _ = writeln!(w, "Author: {author}");
    }
    if let Some(url) = &egg.update_url {
        let _ = writeln!(w, "Updates from: {url}");
    }
    let _ = writeln!(w, "Images:");
    for (i, image) in egg.docker_images.iter().enumerate() {
        let default = if i == 0 { " (default)" } else { "" };
        let _ = writeln!(w, "  {}: {}{default}", image.display_name, image.image);
    }
    let _ = writeln!(w, "Startup:");
    for cmd in &egg.startup_commands {
        let _ = writeln!(w, "  {}: {}", cmd.name, cmd.command);
    }
    let _ = writeln!(w, "Variables:");
    for var in &egg.variables {
        let access = match (var.user_viewable, var.user_editable) {
            (_, true) => "user-editable",
            (true, false) => "user-viewable",
            (false, false) => "admin only",
        };
        let default = if var.needs_value() {
            "(none: must be set when a server is created)".to_owned()
        } else {
            format!("{:?}", var.default_value)
        };
        let _ = writeln!(
            w,
            "  {} ({}): default {default}; rules {}; {access}",
            var.env_variable,
            var.name,
            if var.rules.is_empty() {
                "none".to_owned()
            } else {
                var.rules.to_string()
            },
        );
    }
    let _ = writeln!(w, "Config files:");
    if egg.config.files.is_empty() {
        let _ = writeln!(w, "  none");
    }
    for file in &egg.config.files {
        let _ = writeln!(w, "  {} ({})", file.path, file.parser.as_str());
        for find in &file.find {
            match &find.value {
                FindValue::Set(v) => {
                    let _ = writeln!(w, "    {} = {v}", find.key);
                }
                FindValue::When(pairs) => {
                    for (if_value, v) in pairs {
                        let _ = writeln!(w, "    {} = {v} where it is {if_value:?}", find.key);
                    }
                }
            }
        }
    }
    let stop = match &egg.config.stop {
        Stop::Command(c) => format!("the console command {c:?}"),
        Stop::Signal(StopSignal::Interrupt) => "SIGINT (^C)".to_owned(),
        Stop::Signal(StopSignal::Kill) => "SIGKILL (^^C)".to_owned(),
        Stop::Signal(StopSignal::Named(n)) => format!("the signal {n}"),
    };
    let _ = writeln!(w, "Stop: {stop}");
    let _ = writeln!(w, "Done when the console shows:");
    for done in &egg.config.done {
        let _ = writeln!(w, "  {:?}", done.as_egg_text());
    }
    if let Some(install) = &egg.install {
        let _ = writeln!(
            w,
            "Install: {} lines run by {} in {}",
            install.script.lines().count(),
            install.entrypoint,
            install.container
        );
    }
    if !egg.file_denylist.is_empty() {
        let _ = writeln!(w, "Users may not edit: {}", egg.file_denylist.join(", "));
    }
    let unsupported = egg.unsupported();
    let _ = writeln!(w, "Not supported yet:");
    if unsupported.is_empty() {
        let _ = writeln!(w, "  nothing");
    }
    for item in unsupported {
        let _ = writeln!(w, "  {item}");
    }
    out
}
