//! `cap plugin`: new, build, pack, inspect, and the Marketplace author
//! commands keygen, register, sign, publish ([`publish`]).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use cap_runtime::component::{ComponentInfo, DEFAULT_MAX_COMPONENT_BYTES, inspect};
use cap_runtime::manifest::{Manifest, PluginKind, is_valid_id};
use cap_runtime::package::{MAX_PACKAGE_BYTES, Package, check_component_matches, read_assets};
use clap::{Subcommand, ValueEnum};
use serde::Serialize;

mod publish;
mod templates;

#[derive(Debug, Subcommand)]
pub(crate) enum PluginCommand {
    /// Scaffold a new plugin crate that builds as it is.
    New {
        /// Plugin id (also the crate and directory name), e.g. `my-hooks`.
        name: String,
        /// What the plugin implements.
        #[arg(long, value_enum)]
        kind: KindArg,
        /// Parent directory (default: the current one).
        #[arg(long, default_value = ".")]
        path: PathBuf,
    },
    /// Build for wasm32-wasip2 and validate the component against plugin.toml.
    Build {
        /// The plugin crate (default: the current directory).
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// Build, then pack manifest, component and assets into a .cap package.
    Pack {
        /// The plugin crate (default: the current directory).
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Output file.
        #[arg(short, long)]
        output: PathBuf,
        /// Use this component instead of building.
        #[arg(long)]
        wasm: Option<PathBuf>,
    },
    /// Show what a package or component is and what it asks for.
    Inspect {
        /// A .cap package or a .wasm component.
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Create an Ed25519 signing key file (mode 0600; never overwrites).
    Keygen {
        /// The key file to create.
        #[arg(
            short,
            long,
            default_value = "publisher.key",
            env = "CAP_PUBLISHER_KEY"
        )]
        out: PathBuf,
    },
    /// Create a publisher account on a Marketplace (or use --token's) and
    /// register a signing key with it.
    Register {
        /// Publisher name.
        name: String,
        /// The key file to register.
        #[arg(long, default_value = "publisher.key", env = "CAP_PUBLISHER_KEY")]
        key: PathBuf,
        /// The Marketplace.
        #[arg(long, env = "CAP_MARKETPLACE_URL", default_value = publish::DEFAULT_MARKETPLACE)]
        marketplace: String,
        /// An existing publisher's token: add the key instead of creating an account.
        #[arg(long, env = "CAP_MARKETPLACE_TOKEN")]
        token: Option<String>,
        /// One of the publisher's current key files, which signs the
        /// addition (needed for every key but an account's first).
        #[arg(long)]
        signed_by: Option<PathBuf>,
    },
    /// Revoke one of a publisher's signing keys, signed by one of its
    /// current keys (the revoked key itself will do).
    RevokeKey {
        /// Publisher name.
        name: String,
        /// The id of the key to revoke.
        key_id: String,
        /// Why (shown to everyone who installs the publisher's plugins).
        #[arg(long)]
        reason: String,
        /// From when its signatures are invalid (unix seconds; default now).
        /// Cannot reach back to or before the key's last release.
        #[arg(long)]
        effective_at: Option<i64>,
        /// The key file that signs the revocation.
        #[arg(long, default_value = "publisher.key", env = "CAP_PUBLISHER_KEY")]
        signed_by: PathBuf,
        /// The Marketplace.
        #[arg(long, env = "CAP_MARKETPLACE_URL", default_value = publish::DEFAULT_MARKETPLACE)]
        marketplace: String,
        /// The publisher's token.
        #[arg(long, env = "CAP_MARKETPLACE_TOKEN")]
        token: String,
    },
    /// Replace a publisher token (before it expires) with a new one; prints
    /// the new token, the old one stops working.
    RotateToken {
        /// The Marketplace.
        #[arg(long, env = "CAP_MARKETPLACE_URL", default_value = publish::DEFAULT_MARKETPLACE)]
        marketplace: String,
        /// The publisher's current token.
        #[arg(long, env = "CAP_MARKETPLACE_TOKEN")]
        token: String,
    },
    /// Sign a .cap package: writes <file>.sig with the author signature
    /// over the package's sha256.
    Sign {
        /// The .cap package.
        file: PathBuf,
        /// The key file.
        #[arg(long, default_value = "publisher.key", env = "CAP_PUBLISHER_KEY")]
        key: PathBuf,
        /// Where to write the signature (default: <file>.sig).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Pack (unless --package is given), sign and upload to a Marketplace.
    Publish {
        /// The plugin crate (default: the current directory).
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Publish this .cap file instead of packing the crate.
        #[arg(long)]
        package: Option<PathBuf>,
        /// Use this component when packing instead of building.
        #[arg(long)]
        wasm: Option<PathBuf>,
        /// The key file to sign with.
        #[arg(long, env = "CAP_PUBLISHER_KEY")]
        key: Option<PathBuf>,
        /// A signature file from `cap plugin sign` instead of --key.
        #[arg(long)]
        signature: Option<PathBuf>,
        /// The Marketplace.
        #[arg(long, env = "CAP_MARKETPLACE_URL", default_value = publish::DEFAULT_MARKETPLACE)]
        marketplace: String,
        /// The publisher token from `cap plugin register`.
        #[arg(long, env = "CAP_MARKETPLACE_TOKEN")]
        token: String,
        /// Games the plugin is for, comma-separated (e.g. minecraft).
        #[arg(long, value_delimiter = ',')]
        games: Vec<String>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum KindArg {
    GameType,
    AuthProvider,
    Hooks,
    Ui,
    /// Game types imported as documents (with `game-type` beside it).
    GameCatalogue,
}

impl From<KindArg> for PluginKind {
    fn from(k: KindArg) -> Self {
        match k {
            KindArg::GameType => PluginKind::GameType,
            KindArg::AuthProvider => PluginKind::AuthProvider,
            KindArg::Hooks => PluginKind::Hooks,
            KindArg::Ui => PluginKind::Ui,
            KindArg::GameCatalogue => PluginKind::GameCatalogue,
        }
    }
}

pub(crate) fn run(cmd: PluginCommand) -> anyhow::Result<()> {
    match cmd {
        PluginCommand::New { name, kind, path } => new(&name, kind.into(), &path),
        PluginCommand::Build { dir } => {
            let (wasm, info, manifest) = build(&dir)?;
            println!(
                "built {} {} -> {} ({} bytes, API {}, sha256 {})",
                manifest.plugin.id,
                manifest.plugin.version,
                wasm.display(),
                info.size,
                info.api_version,
                info.sha256
            );
            Ok(())
        }
        PluginCommand::Pack { dir, output, wasm } => pack(&dir, &output, wasm.as_deref()),
        PluginCommand::Inspect { file, json } => inspect_file(&file, json),
        PluginCommand::Keygen { out } => publish::keygen(&out),
        PluginCommand::Register {
            name,
            key,
            marketplace,
            token,
            signed_by,
        } => publish::register(
            &marketplace,
            &name,
            &key,
            token.as_deref(),
            signed_by.as_deref(),
        ),
        PluginCommand::RevokeKey {
            name,
            key_id,
            reason,
            effective_at,
            signed_by,
            marketplace,
            token,
        } => publish::revoke_key(publish::RevokeArgs {
            marketplace: &marketplace,
            token: &token,
            name: &name,
            key_id: &key_id,
            reason: &reason,
            effective_at,
            signed_by: &signed_by,
        }),
        PluginCommand::RotateToken { marketplace, token } => {
            publish::rotate_token(&marketplace, &token)
        }
        PluginCommand::Sign { file, key, output } => publish::sign(&file, &key, output.as_deref()),
        PluginCommand::Publish {
            dir,
            package,
            wasm,
            key,
            signature,
            marketplace,
            token,
            games,
        } => {
            let package = match package {
                Some(p) => p,
                None => {
                    let out = dir.join("target").join("plugin.cap");
                    if let Some(parent) = out.parent() {
                        fs::create_dir_all(parent)
                            .with_context(|| format!("creating {}", parent.display()))?;
                    }
                    pack(&dir, &out, wasm.as_deref())?;
                    out
                }
            };
            publish::publish(publish::PublishArgs {
                marketplace: &marketplace,
                token: &token,
                package,
                key: key.as_deref(),
                signature: signature.as_deref(),
                games,
            })
        }
    }
}

fn new(name: &str, kind: PluginKind, parent: &Path) -> anyhow::Result<()> {
    if !is_valid_id(name) {
        bail!(
            "{name:?} is not a valid plugin id: use 2-63 characters of a-z, 0-9 and single '-', starting with a letter"
        );
    }
    let dir = parent.join(name);
    if dir.exists() {
        bail!("{} already exists", dir.display());
    }
    let files = templates::render(name, kind, &templates::sdk_dependency());
    fs::create_dir_all(dir.join("src")).with_context(|| format!("creating {}", dir.display()))?;
    for (path, contents) in files {
        let target = dir.join(path);
        fs::write(&target, contents).with_context(|| format!("writing {}", target.display()))?;
    }
    println!("created {kind} plugin {name} in {}", dir.display());
    println!("next: cap plugin build {}", dir.display());
    Ok(())
}

fn read_manifest(dir: &Path) -> anyhow::Result<Manifest> {
    let path = dir.join("plugin.toml");
    let bytes = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    Manifest::parse(&bytes).with_context(|| format!("{}", path.display()))
}

/// Runs `cargo build` for wasm32-wasip2 and returns the component path.
fn cargo_build(dir: &Path) -> anyhow::Result<PathBuf> {
    let manifest_path = dir.join("Cargo.toml");
    if !manifest_path.is_file() {
        bail!("{} has no Cargo.toml", dir.display());
    }
    let manifest_path = fs::canonicalize(&manifest_path)?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--message-format=json-render-diagnostics",
        ])
        .arg("--manifest-path")
        .arg(&manifest_path)
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("running cargo (is Rust installed?)")?;
    if !output.status.success() {
        bail!(
            "cargo build failed for {} (if the target is missing: rustup target add wasm32-wasip2)",
            dir.display()
        );
    }
    let mut wasm = None;
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if msg["reason"] == "compiler-artifact"
            && msg["manifest_path"].as_str().map(Path::new) == Some(manifest_path.as_path())
            && let Some(files) = msg["filenames"].as_array()
        {
            wasm = files
                .iter()
                .filter_map(|f| f.as_str())
                .find(|f| f.ends_with(".wasm"))
                .map(PathBuf::from);
        }
    }
    wasm.with_context(|| {
        format!(
            "cargo produced no .wasm for {}; is crate-type = [\"cdylib\"] set?",
            dir.display()
        )
    })
}

fn build(dir: &Path) -> anyhow::Result<(PathBuf, ComponentInfo, Manifest)> {
    let manifest = read_manifest(dir)?;
    let wasm = cargo_build(dir)?;
    let (info, _) = read_component(&wasm)?;
    check_component_matches(&manifest, &info)
        .with_context(|| format!("{} does not match plugin.toml", wasm.display()))?;
    Ok((wasm, info, manifest))
}

fn read_limited(path: &Path, limit: u64) -> anyhow::Result<Vec<u8>> {
    let meta = fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if !meta.is_file() {
        bail!("{} is not a file", path.display());
    }
    if meta.len() > limit {
        bail!(
            "{} is {} bytes; the limit is {limit}",
            path.display(),
            meta.len()
        );
    }
    fs::read(path).with_context(|| format!("reading {}", path.display()))
}

fn read_component(path: &Path) -> anyhow::Result<(ComponentInfo, Vec<u8>)> {
    let bytes = read_limited(path, DEFAULT_MAX_COMPONENT_BYTES)?;
    let info = inspect(&bytes, DEFAULT_MAX_COMPONENT_BYTES)
        .with_context(|| format!("{}", path.display()))?;
    Ok((info, bytes))
}

fn pack(dir: &Path, output: &Path, wasm: Option<&Path>) -> anyhow::Result<()> {
    let manifest_path = dir.join("plugin.toml");
    let manifest_bytes =
        fs::read(&manifest_path).with_context(|| format!("reading {}", manifest_path.display()))?;
    let wasm = match wasm {
        Some(w) => w.to_path_buf(),
        None => build(dir)?.0,
    };
    let (_, component) = read_component(&wasm)?;
    let assets = read_assets(&dir.join("assets")).context("reading assets")?;
    let (package, bytes) = Package::build(
        manifest_bytes,
        component,
        assets,
        DEFAULT_MAX_COMPONENT_BYTES,
    )
    .with_context(|| format!("packing {}", dir.display()))?;
    write_atomic(output, &bytes)?;
    let name = output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let sha_path = PathBuf::from(format!("{}.sha256", output.display()));
    write_atomic(
        &sha_path,
        format!("{}  {name}\n", package.sha256).as_bytes(),
    )?;
    println!(
        "packed {} {} -> {} ({} bytes)\nsha256 {}",
        package.manifest.plugin.id,
        package.manifest.plugin.version,
        output.display(),
        bytes.len(),
        package.sha256
    );
    Ok(())
}

fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

#[derive(Debug, Serialize)]
struct Inspection {
    file: String,
    format: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    package_sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    manifest: Option<Manifest>,
    component: ComponentInfo,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    assets: Vec<String>,
}

fn inspect_file(path: &Path, json: bool) -> anyhow::Result<()> {
    let bytes = read_limited(path, MAX_PACKAGE_BYTES)?;
    let inspection = if bytes.starts_with(&[0x1f, 0x8b]) {
        let package = Package::read(&bytes, DEFAULT_MAX_COMPONENT_BYTES)
            .with_context(|| format!("{}", path.display()))?;
        Inspection {
            file: path.display().to_string(),
            format: "package",
            package_sha256: Some(package.sha256),
            manifest: Some(package.manifest),
            component: package.info,
            assets: package.assets.into_keys().collect(),
        }
    } else {
        let info = inspect(&bytes, DEFAULT_MAX_COMPONENT_BYTES)
            .with_context(|| format!("{}", path.display()))?;
        Inspection {
            file: path.display().to_string(),
            format: "component",
            package_sha256: None,
            manifest: None,
            component: info,
            assets: Vec::new(),
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&inspection)?);
    } else {
        print!("{}", render_text(&inspection));
    }
    Ok(())
}

fn requested_capabilities(m: &Manifest) -> Vec<String> {
    let caps = &m.capabilities;
    let mut requested = Vec::new();
    if caps.kv {
        requested.push("kv".to_string());
    }
    if caps.config {
        requested.push("config".to_string());
    }
    for secret in &caps.secrets {
        requested.push(format!("secret {secret}"));
    }
    if caps.clock {
        requested.push("clock".to_string());
    }
    if caps.random {
        requested.push("random".to_string());
    }
    if let Some(http) = &caps.http {
        requested.push(format!("http to {}", http.allowed_hosts.join(", ")));
    }
    if let Some(events) = &caps.events {
        for topic in &events.publish {
            requested.push(format!("publish {topic}"));
        }
    }
    for scope in &caps.panel {
        requested.push(format!("panel {}", scope.as_str()));
    }
    if caps.timers {
        requested.push("timers".to_string());
    }
    requested
}

fn render_text(i: &Inspection) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let c = &i.component;
    let _ = writeln!(s, "{} ({})", i.file, i.format);
    if let Some(sha) = &i.package_sha256 {
        let _ = writeln!(s, "  package sha256: {sha}");
    }
    if let Some(m) = &i.manifest {
        let p = &m.plugin;
        let _ = writeln!(s, "  plugin:        {} {} ({})", p.id, p.version, p.name);
        if !p.description.is_empty() {
            let _ = writeln!(s, "  description:   {}", p.description);
        }
        let kinds: Vec<_> = p.kinds.iter().map(|k| k.as_str()).collect();
        let _ = writeln!(s, "  kinds:         {}", kinds.join(", "));
        let requested = requested_capabilities(m);
        let _ = writeln!(
            s,
            "  capabilities:  {}",
            if requested.is_empty() {
                "none".to_string()
            } else {
                requested.join("; ")
            }
        );
        if let Some(hooks) = &m.hooks {
            let before: Vec<_> = hooks.before.iter().map(String::as_str).collect();
            let after: Vec<_> = hooks.after.iter().map(String::as_str).collect();
            let _ = writeln!(
                s,
                "  hooks:         before [{}], after [{}]",
                before.join(", "),
                after.join(", ")
            );
        }
        for (dep, req) in &m.dependencies {
            let _ = writeln!(s, "  depends on:    {dep} {req}");
        }
    }
    let _ = writeln!(s, "  component:     {} bytes, sha256 {}", c.size, c.sha256);
    let _ = writeln!(s, "  API version:   {}", c.api_version);
    let kinds: Vec<_> = c.kinds.iter().map(|k| k.as_str()).collect();
    let _ = writeln!(s, "  kinds exported: {}", kinds.join(", "));
    let _ = writeln!(s, "  exports:");
    for e in &c.exports {
        let _ = writeln!(s, "    {e}");
    }
    let _ = writeln!(s, "  imports:");
    for e in &c.imports {
        let _ = writeln!(s, "    {e}");
    }
    for a in &i.assets {
        let _ = writeln!(s, "  asset:         {a}");
    }
    s
}
