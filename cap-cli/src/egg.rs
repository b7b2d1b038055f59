//! `cap egg …`: Pterodactyl and Pelican eggs.
//!
//! - `cap egg check FILE` is offline: it parses the egg with `cap-egg` and
//!   prints the game type it would create, and what of the egg nothing acts
//!   on yet.
//! - `cap egg import FILE|URL` imports it into a running Panel (`POST
//!   /api/v1/eggs`, flags as every command that talks to a Panel:
//!   [`PanelConnection`]). It runs the same offline check first and sends
//!   nothing unless the egg passes, so a bad egg fails with the very message
//!   `cap egg check` prints, whether or not a Panel is reachable. What the
//!   Panel's plugin then refuses is printed from its problem document, one
//!   line per field of the egg.
//!
//! A URL is downloaded by the rule the Agent applies to its Panel URL:
//! `https://` anywhere, cleartext `http://` only to a loopback address
//! unless `--insecure` (an egg is code: its install script runs as root in
//! its container), and every redirect is held to the same rule. A download
//! stops at the egg model's own limit ([`MAX_EGG_BYTES`]) whatever the
//! server announces, and gives up after [`DOWNLOAD_TIMEOUT`].

use std::fmt::Write as _;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use cap_egg::{Egg, FindValue, MAX_EGG_BYTES, Stop, StopSignal};
use clap::{Args, Subcommand};
use serde_json::Value;

use crate::panel_client::PanelConnection;

/// How long downloading an egg may take, all of it.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the Panel may take to import an egg (its plugin checks and
/// keeps it).
const IMPORT_TIMEOUT: Duration = Duration::from_secs(120);
/// Redirects followed when downloading an egg.
const MAX_REDIRECTS: usize = 5;

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
    /// Import an egg into a running Panel as a game type. The egg is
    /// checked offline first, as `cap egg check` does, and sent only if it
    /// passes.
    Import(ImportArgs),
}

/// Flags of `cap egg import`.
#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    /// The egg: a file, or an https:// URL to download it from
    source: String,
    /// Replace the game type with the same id, if there is one
    #[arg(long)]
    replace: bool,
    /// Only show what the import would create; the Panel keeps nothing
    #[arg(long, conflicts_with = "replace")]
    preview: bool,
    /// The plugin to import into, when several import eggs
    #[arg(long, value_name = "ID")]
    plugin: Option<String>,
    /// Accept a cleartext http:// URL to a host that is not loopback: the
    /// egg, whose install script runs as root in its container, could be
    /// altered on the way
    #[arg(long)]
    insecure: bool,
    /// Print the Panel's JSON answer instead of text
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connection: PanelConnection,
}

pub(crate) fn run(cmd: EggCommand) -> anyhow::Result<()> {
    match cmd {
        EggCommand::Check { file } => {
            let bytes = read_file(&file)?;
            let egg = check(&file.display().to_string(), &bytes)?;
            print!("{}", describe(&egg));
            Ok(())
        }
        EggCommand::Import(args) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            runtime.block_on(import(args))
        }
    }
}

/// Reads an egg file, at most one byte past the egg limit (so that a
/// larger one is refused as such without reading it whole).
fn read_file(path: &Path) -> anyhow::Result<Vec<u8>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(MAX_EGG_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(bytes)
}

/// The offline check both commands run: the egg, or why `name` is not one.
fn check(name: &str, bytes: &[u8]) -> anyhow::Result<Egg> {
    Egg::parse(bytes).with_context(|| format!("{name} is not a usable egg"))
}

async fn import(args: ImportArgs) -> anyhow::Result<()> {
    let bytes = if is_url(&args.source) {
        let url = source_url(&args.source, args.insecure)?;
        download(url, args.insecure).await?
    } else {
        read_file(Path::new(&args.source))?
    };
    check(&args.source, &bytes)?;
    let api = args.connection.client(IMPORT_TIMEOUT)?;
    let mut query = Vec::new();
    if args.preview {
        query.push(("preview", "true".to_owned()));
    }
    if args.replace {
        query.push(("replace", "true".to_owned()));
    }
    if let Some(plugin) = args.plugin {
        query.push(("plugin", plugin));
    }
    let answer = api
        .upload(reqwest::Method::POST, "/eggs", &query, bytes)
        .await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    } else {
        print!("{}", imported(&answer, args.preview));
    }
    Ok(())
}

/// Whether the source names a URL (`scheme://…`) rather than a file.
fn is_url(source: &str) -> bool {
    source.split_once("://").is_some_and(|(scheme, _)| {
        scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    })
}

/// Parses `text` as a URL eggs may be downloaded from ([`allowed`]).
fn source_url(text: &str, insecure: bool) -> anyhow::Result<reqwest::Url> {
    let url = reqwest::Url::parse(text).with_context(|| format!("{text} is not a URL"))?;
    allowed(&url, insecure).map_err(anyhow::Error::msg)?;
    Ok(url)
}

/// `https://` anywhere; `http://` to a loopback host, or anywhere when
/// `insecure`.
fn allowed(url: &reqwest::Url, insecure: bool) -> Result<(), String> {
    let loopback = match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => return Err(format!("{url} names no host")),
    };
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback || insecure => Ok(()),
        "http" => Err(format!(
            "refusing the cleartext URL {url}: the egg (whose install script runs as root in its container) could be altered on the way; use https://, or pass --insecure to accept the risk"
        )),
        other => Err(format!(
            "{url}: eggs are downloaded over https:// (not {other}:)"
        )),
    }
}

/// Downloads an egg, refusing more than [`MAX_EGG_BYTES`] as soon as the
/// server announces it or sends it.
async fn download(url: reqwest::Url, insecure: bool) -> anyhow::Result<Vec<u8>> {
    let policy = reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() >= MAX_REDIRECTS {
            return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
        }
        match allowed(attempt.url(), insecure) {
            Ok(()) => attempt.follow(),
            Err(refusal) => attempt.error(format!("redirected: {refusal}")),
        }
    });
    let http = reqwest::Client::builder()
        .redirect(policy)
        .timeout(DOWNLOAD_TIMEOUT)
        .build()
        .context("setting up HTTP")?;
    let too_large =
        || format!("downloading {url}: the egg is larger than the {MAX_EGG_BYTES} byte limit");
    let mut response = http
        .get(url.clone())
        .send()
        .await
        .with_context(|| format!("downloading {url}"))?;
    if !response.status().is_success() {
        bail!(
            "downloading {url}: the server answered {}",
            response.status()
        );
    }
    if response
        .content_length()
        .is_some_and(|n| n > MAX_EGG_BYTES as u64)
    {
        bail!("{}", too_large());
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .with_context(|| format!("downloading {url}"))?
    {
        if bytes.len() + chunk.len() > MAX_EGG_BYTES {
            bail!("{}", too_large());
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// What `cap egg import` prints: the game type the Panel created (or, with
/// `--preview`, would create), from its answer.
fn imported(egg: &Value, preview: bool) -> String {
    let text = |v: &Value| v.as_str().unwrap_or("?").to_owned();
    let mut out = String::new();
    let w = &mut out;
    let what = format!(
        "{} ({}) in {}, from a {} egg",
        text(&egg["type"]),
        text(&egg["name"]),
        text(&egg["plugin"]),
        text(&egg["format"])
    );
    if preview {
        let _ = writeln!(w, "Would import {what}; nothing was kept.");
    } else {
        let _ = writeln!(w, "Imported {what}.");
    }
    if let Some(servers) = egg["servers"].as_u64().filter(|n| *n > 0) {
        let _ = writeln!(w, "Servers running it: {servers}");
    }
    if let Some(url) = egg["update_url"].as_str() {
        let _ = writeln!(w, "Updates from: {url}");
    }
    let _ = writeln!(w, "Images:");
    for (i, image) in egg["images"].as_array().into_iter().flatten().enumerate() {
        let default = if i == 0 { " (default)" } else { "" };
        let _ = writeln!(
            w,
            "  {}: {}{default}",
            text(&image["name"]),
            text(&image["reference"])
        );
    }
    let _ = writeln!(w, "Variables:");
    for var in egg["variables"].as_array().into_iter().flatten() {
        let access = match (
            var["user_viewable"].as_bool() == Some(true),
            var["user_editable"].as_bool() == Some(true),
        ) {
            (_, true) => "user-editable",
            (true, false) => "user-viewable",
            (false, false) => "admin only",
        };
        let default = match var["default_value"].as_str() {
            Some(value) => format!("{value:?}"),
            None => "none".to_owned(),
        };
        let rules: Vec<String> = var["rules"]
            .as_array()
            .into_iter()
            .flatten()
            .map(text)
            .collect();
        let _ = writeln!(
            w,
            "  {} ({}): default {default}; rules {}; {access}",
            text(&var["key"]),
            text(&var["name"]),
            if rules.is_empty() {
                "none".to_owned()
            } else {
                rules.join(", ")
            }
        );
    }
    let features: Vec<String> = egg["features"]
        .as_array()
        .into_iter()
        .flatten()
        .map(text)
        .collect();
    let _ = writeln!(
        w,
        "Features: {}",
        if features.is_empty() {
            "none".to_owned()
        } else {
            features.join(", ")
        }
    );
    let _ = writeln!(w, "Not supported yet:");
    let unsupported = egg["unsupported"].as_array().cloned().unwrap_or_default();
    if unsupported.is_empty() {
        let _ = writeln!(w, "  nothing");
    }
    for item in &unsupported {
        let _ = writeln!(w, "  {}", text(item));
    }
    out
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
