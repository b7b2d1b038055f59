//! The plugins a Panel comes with: built from this source tree's
//! `example-plugins/` and installed through the [`PluginManager`] — the same
//! validation, grant and activation path as an admin's upload, so nothing
//! bundled gets a shortcut past the sandbox or the capability grants.
//!
//! `cap up` installs all of them on its first run; `cap panel` installs only
//! `local-password`, because the core checks no password itself and a Panel
//! nobody can sign in to is of no use. A plugin already installed (any
//! version, any state) is left alone, so an admin's deactivation or update
//! survives restarts.

use std::path::{Path, PathBuf};
use std::process::Command;

use cap_runtime::component::DEFAULT_MAX_COMPONENT_BYTES;
use cap_runtime::package::read_assets;
use cap_runtime::{Grants, Manifest, Package};

use crate::db::Actor;
use crate::plugins::{PluginError, PluginManager};

/// One bundled plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BundledPlugin {
    /// The password auth provider (argon2id, lockout, policy).
    LocalPassword,
    /// The Minecraft (Paper) game type.
    MinecraftPaper,
    /// The test game type driving `cap-standin-game`.
    TestGame,
    /// Per-user memory quota before-hook.
    QuotaGuard,
    /// Discord announcements after-hook; installed inactive, since it
    /// needs its `webhook-url` secret first.
    DiscordWebhook,
    /// The players on a server (from console events) as a server-page
    /// widget with a kick button.
    PlayerList,
}

impl BundledPlugin {
    /// Every bundled plugin, in install order.
    pub const ALL: [BundledPlugin; 6] = [
        BundledPlugin::LocalPassword,
        BundledPlugin::MinecraftPaper,
        BundledPlugin::TestGame,
        BundledPlugin::QuotaGuard,
        BundledPlugin::DiscordWebhook,
        BundledPlugin::PlayerList,
    ];

    /// Its plugin id, which is also its directory under `example-plugins/`.
    pub fn id(self) -> &'static str {
        match self {
            BundledPlugin::LocalPassword => "local-password",
            BundledPlugin::MinecraftPaper => "minecraft-paper",
            BundledPlugin::TestGame => "test-game",
            BundledPlugin::QuotaGuard => "quota-guard",
            BundledPlugin::DiscordWebhook => "discord-webhook",
            BundledPlugin::PlayerList => "player-list",
        }
    }

    /// Whether it is activated on install (otherwise it waits for the
    /// admin to configure it).
    pub fn activate_on_install(self) -> bool {
        !matches!(self, BundledPlugin::DiscordWebhook)
    }
}

/// Receives one line per step, for a progress display.
pub trait Progress {
    /// A step is starting or has finished.
    fn step(&self, message: &str);
}

/// Discards progress.
#[derive(Debug, Clone, Copy, Default)]
pub struct Quiet;

impl Progress for Quiet {
    fn step(&self, _: &str) {}
}

/// Why the bundled plugins could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// The source tree with `example-plugins/` is not where this binary was
    /// built from.
    #[error(
        "the example plugins' sources are not at {} (run from a checkout, or set CAP_EXAMPLE_PLUGINS)",
        .0.display()
    )]
    NoSources(PathBuf),
    /// `cargo build` failed or could not run.
    #[error("building the example plugins failed: {0}")]
    Build(String),
    /// A file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A manifest or package was refused.
    #[error("packaging {plugin}: {message}")]
    Package {
        /// The plugin.
        plugin: String,
        /// Why.
        message: String,
    },
    /// The plugin manager refused or failed.
    #[error("installing {plugin}")]
    Install {
        /// The plugin.
        plugin: String,
        /// Why.
        #[source]
        source: PluginError,
    },
}

/// Where the example plugins' sources are: `CAP_EXAMPLE_PLUGINS`, else the
/// `example-plugins/` of the tree this binary was built from.
pub fn source_dir() -> PathBuf {
    match std::env::var_os("CAP_EXAMPLE_PLUGINS") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../example-plugins"),
    }
}

/// Installs (and, where [`BundledPlugin::activate_on_install`], grants what
/// it requests and activates) each of `wanted` that is not installed yet,
/// building them first. Returns how many were installed.
///
/// # Errors
///
/// [`BundleError`] naming the step and plugin; plugins installed before the
/// failure stay installed.
pub async fn ensure_installed(
    manager: &PluginManager,
    wanted: &[BundledPlugin],
    progress: &dyn Progress,
) -> Result<usize, BundleError> {
    let mut missing = Vec::new();
    for plugin in wanted {
        match manager.get(plugin.id()).await {
            Ok(_) => {}
            Err(PluginError::NotFound(_)) => missing.push(*plugin),
            Err(source) => {
                return Err(BundleError::Install {
                    plugin: plugin.id().to_owned(),
                    source,
                });
            }
        }
    }
    if missing.is_empty() {
        return Ok(0);
    }
    let sources = source_dir();
    if !sources.join("Cargo.toml").is_file() {
        return Err(BundleError::NoSources(sources));
    }
    progress.step(&format!(
        "building {} plugin(s) for wasm32-wasip2 (first run only)",
        missing.len()
    ));
    let wasm_dir = {
        let sources = sources.clone();
        let ids: Vec<&'static str> = missing.iter().map(|p| p.id()).collect();
        tokio::task::spawn_blocking(move || build(&sources, &ids))
            .await
            .map_err(|e| BundleError::Build(e.to_string()))??
    };
    let actor = Actor::system();
    for (n, plugin) in missing.iter().enumerate() {
        let id = plugin.id();
        let install_error = |source| BundleError::Install {
            plugin: id.to_owned(),
            source,
        };
        let package = package(&sources.join(id), &wasm_dir.join(wasm_file_name(id)))?;
        let installed = manager
            .install(&package, &actor)
            .await
            .map_err(install_error)?;
        let manifest = Manifest::parse(installed.record.manifest.as_bytes()).map_err(|e| {
            BundleError::Package {
                plugin: id.to_owned(),
                message: e.to_string(),
            }
        })?;
        let state = if plugin.activate_on_install() {
            manager
                .grant(id, Grants::all_requested(&manifest), &actor)
                .await
                .map_err(install_error)?;
            manager.activate(id, &actor).await.map_err(install_error)?;
            "active"
        } else {
            "installed, inactive until configured"
        };
        progress.step(&format!(
            "[{}/{}] {id} {} ({state})",
            n + 1,
            missing.len(),
            manifest.plugin.version
        ));
    }
    Ok(missing.len())
}

/// `example_plugins` → the file cargo names a cdylib `id`.
/// The name of the game-server stand-in the `test-game` plugin runs.
pub const STANDIN: &str = "cap-standin-game";

/// Makes sure `bin_dir` holds the `cap-standin-game` program the
/// `test-game` plugin starts, building it from the source tree on first
/// use. Returns its path.
///
/// # Errors
///
/// [`BundleError::NoSources`] outside a checkout, [`BundleError::Build`],
/// [`BundleError::Read`] when it cannot be copied.
pub fn ensure_standin(bin_dir: &Path) -> Result<PathBuf, BundleError> {
    let installed = bin_dir.join(STANDIN);
    if installed.is_file() {
        return Ok(installed);
    }
    let sources = source_dir();
    let workspace = sources.join("../Cargo.toml");
    if !workspace.is_file() {
        return Err(BundleError::NoSources(sources));
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "--quiet", "-p", STANDIN])
        .arg("--manifest-path")
        .arg(&workspace)
        .arg("--target-dir")
        .arg(sources.join("target"))
        .status()
        .map_err(|e| BundleError::Build(format!("cannot run cargo: {e}")))?;
    if !status.success() {
        return Err(BundleError::Build(format!(
            "building {STANDIN}: cargo exited with {status}"
        )));
    }
    let built = sources.join("target/release").join(STANDIN);
    let copy_error = |source| BundleError::Read {
        path: built.clone(),
        source,
    };
    std::fs::create_dir_all(bin_dir).map_err(copy_error)?;
    let partial = installed.with_extension("partial");
    std::fs::copy(&built, &partial).map_err(copy_error)?;
    std::fs::rename(&partial, &installed).map_err(copy_error)?;
    Ok(installed)
}

fn wasm_file_name(id: &str) -> String {
    format!("{}.wasm", id.replace('-', "_"))
}

/// Builds the listed plugins of the `example-plugins` workspace in release
/// mode; returns the directory with their `.wasm` files.
fn build(sources: &Path, ids: &[&str]) -> Result<PathBuf, BundleError> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .arg("--manifest-path")
        .arg(sources.join("Cargo.toml"))
        // Where this function reads them back, whatever CARGO_TARGET_DIR says.
        .arg("--target-dir")
        .arg(sources.join("target"));
    for id in ids {
        command.args(["-p", id]);
    }
    let status = command
        .status()
        .map_err(|e| BundleError::Build(format!("cannot run cargo: {e}")))?;
    if !status.success() {
        return Err(BundleError::Build(format!(
            "cargo exited with {status} (if the target is missing: rustup target add wasm32-wasip2)"
        )));
    }
    Ok(sources.join("target/wasm32-wasip2/release"))
}

/// Packs a plugin directory and its built component into `.cap` bytes.
fn package(dir: &Path, wasm: &Path) -> Result<Vec<u8>, BundleError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| BundleError::Read {
            path: path.to_path_buf(),
            source,
        })
    };
    let manifest = read(&dir.join("plugin.toml"))?;
    let component = read(wasm)?;
    let assets_dir = dir.join("assets");
    let assets = read_assets(&assets_dir).map_err(|source| BundleError::Read {
        path: assets_dir,
        source,
    })?;
    let (_, bytes) = Package::build(manifest, component, assets, DEFAULT_MAX_COMPONENT_BYTES)
        .map_err(|e| BundleError::Package {
            plugin: dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            message: e.to_string(),
        })?;
    Ok(bytes)
}
