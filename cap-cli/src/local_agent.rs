//! The Agent `cap up` runs beside the Panel, in the same process.
//!
//! It is a real Agent going through the real front door: on the first run
//! the Panel creates a node named [`LOCAL_NODE`] with
//! [`LOCAL_PORTS`] on 127.0.0.1, issues a registration token for it, and
//! the Agent registers over HTTP and connects its WebSocket like any
//! remote one. Later runs find the Agent's credentials in its data
//! directory and only reconnect. Console lines are classified by the
//! Panel's own active game-type plugins (the same sandboxed instances; no
//! second copy is loaded).
//!
//! The stand-in game the bundled `test-game` plugin runs
//! (`cap-standin-game`, a native program) is not carried by `cap`: on first
//! use [`ensure_standin`] builds it from the checkout `cap` was built from.
//! A copied `cap` without that checkout or cargo runs every other game and
//! says the stand-in is missing.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use cap_agent::node::{NodeError, NodeOptions, RunningNode, measure_resources};
use cap_agent::{Classifier, Classifiers, NodeRuntimeConfig, PluginClassifier};
use cap_runtime::PluginKind;

use cap_panel::db::Actor;
use cap_panel::http::AppState;
use cap_panel::servers::{NewNode, ServersError, nodes, registration};

/// The local node's name.
pub(crate) const LOCAL_NODE: &str = "local";
/// Ports the local node offers on 127.0.0.1.
pub(crate) const LOCAL_PORTS: std::ops::RangeInclusive<u16> = 25565..=25584;

/// Why the local Agent could not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LocalAgentError {
    /// The node, its allocations or its token could not be made.
    #[error("preparing the local node: {0}")]
    Node(#[from] ServersError),
    /// The database failed.
    #[error("preparing the local node: {0}")]
    Db(#[from] cap_panel::db::DbError),
    /// The Agent did not start.
    #[error(transparent)]
    Agent(#[from] NodeError),
    /// The directory above the Agent's could not be opened to its servers.
    #[error("letting the game servers reach the Agent's directory: {0}")]
    Permissions(#[from] std::io::Error),
}

/// Where and how to run the local Agent.
#[derive(Debug, Clone)]
pub(crate) struct LocalAgentOptions {
    /// The Agent's data directory.
    pub(crate) data_dir: PathBuf,
    /// The Panel's URL.
    pub(crate) panel_url: String,
    /// Extra directories for game programs (see
    /// [`cap_agent::NodeRuntimeConfig::program_dirs`]).
    pub(crate) program_dirs: Vec<PathBuf>,
    /// Native processes or containers.
    pub(crate) backend: cap_agent::node::BackendChoice,
    /// Where it serves SFTP, if anywhere (`cap up --sftp-listen`).
    pub(crate) sftp_listen: Option<std::net::SocketAddr>,
}

/// Game-type classifiers from the Panel's active plugins.
pub(crate) fn classifiers(state: &AppState) -> Classifiers {
    let mut classifiers = Classifiers::new();
    if let Some(plugins) = state.plugins() {
        for plugin in plugins.active_plugins() {
            if plugin.manifest().has_kind(PluginKind::GameType) {
                let classifier: Arc<dyn Classifier> =
                    Arc::new(PluginClassifier::new(plugin.clone()));
                classifiers.insert(plugin.id().to_owned(), classifier);
            }
        }
    }
    classifiers
}

/// Starts the local Agent, creating and registering its node on the first
/// run.
///
/// # Errors
///
/// [`LocalAgentError`].
pub(crate) async fn start(
    state: &AppState,
    options: LocalAgentOptions,
) -> Result<RunningNode, LocalAgentError> {
    open_parent_for_servers(&options.data_dir)?;
    let registered = options.data_dir.join("credentials.json").exists();
    let token = if registered {
        None
    } else {
        Some(prepare_node(state, &options).await?)
    };
    let mut runtime = NodeRuntimeConfig::new(&options.data_dir);
    runtime.program_dirs = options.program_dirs.clone();
    let node = cap_agent::node::start(NodeOptions {
        panel_url: Some(options.panel_url.clone()),
        registration_token: token,
        data_dir: options.data_dir.clone(),
        health_listen: ([127, 0, 0, 1], 0).into(),
        classifiers: classifiers(state),
        supported_games: state
            .plugins()
            .map(|plugins| {
                plugins
                    .active_plugins()
                    .iter()
                    .filter(|p| p.manifest().has_kind(PluginKind::GameType))
                    .map(|p| cap_protocol::SupportedGame {
                        plugin: p.id().to_owned(),
                        version: p.manifest().plugin.version.to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        runtime: Some(runtime),
        resource_limits: None,
        // The local Agent reaches its Panel on loopback.
        insecure: false,
        backend: options.backend,
        // The local Agent's transfers are for browsers on this machine.
        files_listen: Some(([127, 0, 0, 1], 0).into()),
        files_public_url: None,
        files_tls: None,
        // Off unless asked for: a fixed port could be taken, and the local
        // Agent must start.
        sftp_listen: options.sftp_listen,
    })
    .await?;
    Ok(node)
}

/// Finds or creates the local node and its allocations; a fresh
/// registration token for it.
async fn prepare_node(
    state: &AppState,
    options: &LocalAgentOptions,
) -> Result<String, LocalAgentError> {
    let db = state.db();
    let actor = Actor::system();
    let mut existing = None;
    let mut after: Option<String> = None;
    loop {
        let (page, more) = nodes::list(db, after.as_deref(), 100).await?;
        after = page.last().map(|n| n.id.clone());
        if let Some(node) = page.into_iter().find(|n| n.name == LOCAL_NODE) {
            existing = Some(node);
            break;
        }
        if !more {
            break;
        }
    }
    let node = match existing {
        Some(node) => node,
        None => {
            std::fs::create_dir_all(&options.data_dir).ok();
            let offered = measure_resources(&options.data_dir);
            // The Panel setting itself up, like its first administrator:
            // no hook plugin is asked (see `cap_panel::plugins::hooks`).
            nodes::create(
                db,
                None,
                &NewNode {
                    name: LOCAL_NODE.to_owned(),
                    address: "127.0.0.1".to_owned(),
                    memory_mb: offered.memory_mb,
                    disk_mb: offered.disk_mb,
                    cpu_percent: u64::from(offered.cpu_percent),
                },
                &actor,
            )
            .await?
        }
    };
    let ports: BTreeSet<u16> = LOCAL_PORTS.collect();
    match nodes::add_allocations(db, &node.id, "127.0.0.1", &ports, &actor).await {
        Ok(_) | Err(ServersError::Conflict { .. }) => {}
        Err(error) => return Err(error.into()),
    }
    let issued =
        registration::issue_token(db, &node.id, time::Duration::minutes(10), &actor).await?;
    Ok(issued.token)
}

/// Lets the game servers' user pass through the directory above the
/// Agent's (the Panel's private data directory, `0700`) to reach their own
/// directories: when the Agent runs as root, its servers run as an
/// unprivileged user (see [`cap_agent::isolation`]), which needs the search
/// bit on every directory above its own. Only the search bit is added
/// (`0711`): the Panel's files stay unreadable, and the Panel's own check
/// accepts it.
fn open_parent_for_servers(agent_dir: &Path) -> Result<(), LocalAgentError> {
    #[cfg(unix)]
    if cap_agent::isolation::agent_is_root() {
        use std::os::unix::fs::PermissionsExt as _;
        if let Some(parent) = agent_dir.parent().filter(|p| p.is_dir()) {
            let mode = std::fs::metadata(parent)?.permissions().mode() & 0o7777;
            if mode & 0o011 != 0o011 {
                std::fs::set_permissions(parent, std::fs::Permissions::from_mode(mode | 0o011))?;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = agent_dir;
    Ok(())
}

/// The name of the game-server stand-in the `test-game` plugin runs.
pub(crate) const STANDIN: &str = "cap-standin-game";

/// Why the stand-in game is not available.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StandinError {
    /// `cap` does not run from the checkout it was built from.
    #[error("{STANDIN} is built from a checkout, and there is none at {}", .0.display())]
    NoSources(PathBuf),
    /// `cargo build` failed or could not run.
    #[error("building {STANDIN} failed: {0}")]
    Build(String),
    /// The built program could not be copied into place.
    #[error("copying {} into place", path.display())]
    Copy {
        /// The built program.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Makes sure `bin_dir` holds the `cap-standin-game` program the
/// `test-game` plugin starts, building it from the checkout `cap` was built
/// from on first use. Returns its path.
///
/// # Errors
///
/// [`StandinError`]: no checkout, a failed build, a failed copy.
pub(crate) fn ensure_standin(bin_dir: &Path) -> Result<PathBuf, StandinError> {
    let installed = bin_dir.join(STANDIN);
    if installed.is_file() {
        return Ok(installed);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let workspace = root.join("Cargo.toml");
    if !workspace.is_file() {
        return Err(StandinError::NoSources(root));
    }
    // Beside the example plugins' build (`example-plugins/target`), out of
    // the way of a cargo building this workspace.
    let target = root.join("example-plugins/target");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "--quiet", "-p", STANDIN])
        .arg("--manifest-path")
        .arg(&workspace)
        .arg("--target-dir")
        .arg(&target)
        .status()
        .map_err(|e| StandinError::Build(format!("cannot run cargo: {e}")))?;
    if !status.success() {
        return Err(StandinError::Build(format!("cargo exited with {status}")));
    }
    let built = target.join("release").join(STANDIN);
    let copy_error = |source| StandinError::Copy {
        path: built.clone(),
        source,
    };
    std::fs::create_dir_all(bin_dir).map_err(copy_error)?;
    let partial = installed.with_extension("partial");
    std::fs::copy(&built, &partial).map_err(copy_error)?;
    std::fs::rename(&partial, &installed).map_err(copy_error)?;
    Ok(installed)
}
