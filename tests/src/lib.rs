//! Test support: builds the real example plugins once per test process,
//! loads them into a runtime or packs them, and finds the `cap` binary for
//! the crates whose tests run it but do not build it.
//!
//! The plugins live in cargo workspaces of their own, built for
//! `wasm32-wasip2`: `example-plugins/` for API 0.1.0 and
//! `example-plugins/v0.2/` for API 0.2.0 (the SDK picks its API version with
//! a feature, and features unify across one build, so one workspace cannot
//! hold both). Tests build both with the same cargo that runs them, into one
//! target directory, so a fresh clone needs nothing but
//! `rustup target add wasm32-wasip2`, and a plugin is found by its name
//! whichever workspace holds it ([`plugin_dir`]).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use cap_runtime::{Grants, HostServices, Manifest, Plugin, PluginSpec, Runtime, RuntimeConfig};

pub mod game_images;
pub mod podman;
pub mod registry;
pub mod sftp;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The `cap` binary of the build running this test:
/// `<target>/<profile>/cap`, above the `deps/` directory holding the test
/// executable.
///
/// Only `cap-cli`'s own tests get `CARGO_BIN_EXE_cap`; the other crates'
/// tests run the binary `cargo test --workspace` builds with them (it builds
/// `cap-cli`'s tests, and with them its binary, before it runs any test).
///
/// # Panics
///
/// When the binary is not there (`cargo test -p <another crate>` does not
/// build it), naming the command that builds it.
pub fn cap_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let profile = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test executable is in <target>/<profile>/deps");
    let cap = profile.join(format!("cap{}", std::env::consts::EXE_SUFFIX));
    assert!(
        cap.is_file(),
        "{} is missing: run the tests with `cargo test --workspace`, or build it with `cargo build -p cap-cli`",
        cap.display()
    );
    cap
}

/// Builds `cap-standin-game`, the game-server stand-in, once per process
/// (into its own target directory, so the build does not wait for the lock
/// of the cargo running the tests) and returns its path.
pub fn standin() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let root = repo_root();
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| root.join("target"), PathBuf::from)
            .join("standin");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--quiet", "-p", "cap-standin-game", "--target-dir"])
            .arg(&target)
            .current_dir(&root)
            .status()
            .expect("running cargo to build the stand-in");
        assert!(status.success(), "building cap-standin-game failed");
        target.join("debug/cap-standin-game")
    })
}

/// The example plugins' workspaces, below the repository root: API 0.1.0's
/// and API 0.2.0's.
pub const PLUGIN_WORKSPACES: [&str; 2] = ["example-plugins", "example-plugins/v0.2"];

/// Builds every example plugin of both workspaces (once per process) and
/// returns the directory holding the `.wasm` files: both build into
/// `example-plugins/target`, the 0.2.0 plugins beside the 0.1.0 ones.
pub fn example_plugins() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let root = repo_root();
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        for workspace in PLUGIN_WORKSPACES {
            let status = Command::new(&cargo)
                .args([
                    "build",
                    "--release",
                    "--target",
                    "wasm32-wasip2",
                    "--manifest-path",
                ])
                .arg(root.join(workspace).join("Cargo.toml"))
                // Read back from where they are built, even when the caller
                // exported CARGO_TARGET_DIR for the host workspace.
                .arg("--target-dir")
                .arg(root.join("example-plugins/target"))
                .status()
                .expect("running cargo to build the example plugins");
            assert!(status.success(), "building {workspace} failed");
        }
        root.join("example-plugins/target/wasm32-wasip2/release")
    })
}

/// The directory of example plugin `name` (its `plugin.toml`, its crate),
/// in whichever workspace of [`PLUGIN_WORKSPACES`] holds it.
///
/// # Panics
///
/// When no workspace has a plugin of that name.
pub fn plugin_dir(name: &str) -> PathBuf {
    let root = repo_root();
    PLUGIN_WORKSPACES
        .iter()
        .map(|workspace| root.join(workspace).join(name))
        .find(|dir| dir.join("plugin.toml").is_file())
        .unwrap_or_else(|| panic!("no example plugin {name} in {PLUGIN_WORKSPACES:?}"))
}

/// The component bytes of example plugin `name` (its directory name).
pub fn component(name: &str) -> Vec<u8> {
    let file = example_plugins().join(format!("{}.wasm", name.replace('-', "_")));
    std::fs::read(&file).unwrap_or_else(|e| panic!("reading {}: {e}", file.display()))
}

/// Example plugin `name` as a `.cap` package: its `plugin.toml`, its
/// component and its `assets/`, packed by the writer `cap plugin pack`
/// uses.
pub fn package(name: &str) -> Vec<u8> {
    let dir = plugin_dir(name);
    let file = dir.join("plugin.toml");
    let manifest =
        std::fs::read(&file).unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
    let assets = cap_runtime::package::read_assets(&dir.join("assets"))
        .unwrap_or_else(|e| panic!("reading the assets of {name}: {e}"));
    let (_, bytes) = cap_runtime::Package::build(
        manifest,
        component(name),
        assets,
        cap_runtime::component::DEFAULT_MAX_COMPONENT_BYTES,
    )
    .unwrap_or_else(|e| panic!("packing {name}: {e}"));
    bytes
}

/// The parsed `plugin.toml` of example plugin `name`.
pub fn manifest(name: &str) -> Manifest {
    let file = plugin_dir(name).join("plugin.toml");
    let bytes = std::fs::read(&file).unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
    Manifest::parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

/// A runtime with a pool of at most 200 instances: tests run many runtimes
/// at once, and each pool reserves address space for all its slots.
pub fn runtime(config: RuntimeConfig) -> Runtime {
    Runtime::new(RuntimeConfig {
        pool_instances: config.pool_instances.min(200),
        ..config
    })
    .expect("runtime")
}

/// Loads example plugin `name` with every capability it requests granted.
pub async fn load(runtime: &Runtime, name: &str, services: HostServices) -> Plugin {
    let manifest = manifest(name);
    let grants = Grants::all_requested(&manifest);
    load_with(runtime, name, grants, services).await
}

/// Loads example plugin `name` with the given grants.
pub async fn load_with(
    runtime: &Runtime,
    name: &str,
    grants: Grants,
    services: HostServices,
) -> Plugin {
    runtime
        .load(PluginSpec {
            manifest: manifest(name),
            component: Arc::from(component(name)),
            grants,
            limit_caps: None,
            services,
        })
        .await
        .unwrap_or_else(|e| panic!("loading {name}: {e}"))
}

/// A `server.create` event for a server named `name`.
pub fn server_create(name: &str, owner: &str, memory_mb: u64) -> cap_runtime::api::Event {
    use cap_runtime::api::{Actor, Event, EventKind, Payload, ServerInfo};
    Event {
        id: format!("ev-{name}"),
        kind: EventKind::ServerCreate,
        occurred_at_ms: 1_700_000_000_000,
        actor: Actor {
            user_id: Some(owner.to_string()),
            ip: Some("127.0.0.1".into()),
            request_id: None,
        },
        payload: Payload::Server(ServerInfo {
            id: format!("srv-{name}"),
            name: name.to_string(),
            owner_id: owner.to_string(),
            node_id: "node-1".into(),
            game_type: "test-game".into(),
            memory_mb,
            disk_mb: 1024,
            cpu_percent: 100,
            variables: vec![],
            state: "creating".into(),
        }),
    }
}

/// A [`PanelApi`](cap_runtime::capabilities::panel::PanelApi) over a fixed
/// list of servers, recording console commands: the Panel side of plugin
/// tests that run without a Panel.
#[derive(Debug, Default)]
pub struct StaticPanel {
    /// Servers the plugin sees.
    pub servers: std::sync::Mutex<Vec<cap_runtime::api::ServerSummary>>,
    /// `(plugin, server, command)` for every command sent.
    pub commands: std::sync::Mutex<Vec<(String, String, String)>>,
}

impl StaticPanel {
    /// Adds a server owned by `owner`.
    pub fn add_server(&self, id: &str, owner: &str) {
        self.servers
            .lock()
            .expect("lock")
            .push(cap_runtime::api::ServerSummary {
                id: id.into(),
                name: id.into(),
                owner_id: owner.into(),
                node_id: "node-1".into(),
                game_type: "test-game".into(),
                state: "running".into(),
            });
    }
}

impl cap_runtime::capabilities::panel::PanelApi for StaticPanel {
    fn list_servers<'a>(
        &'a self,
        _: &'a str,
    ) -> cap_runtime::capabilities::BoxFuture<
        'a,
        Result<Vec<cap_runtime::api::ServerSummary>, cap_runtime::capabilities::ServiceError>,
    > {
        Box::pin(async move { Ok(self.servers.lock().expect("lock").clone()) })
    }

    fn get_server<'a>(
        &'a self,
        _: &'a str,
        id: &'a str,
    ) -> cap_runtime::capabilities::BoxFuture<
        'a,
        Result<cap_runtime::api::ServerSummary, cap_runtime::capabilities::ServiceError>,
    > {
        Box::pin(async move {
            self.servers
                .lock()
                .expect("lock")
                .iter()
                .find(|s| s.id == id)
                .cloned()
                .ok_or_else(|| cap_runtime::capabilities::ServiceError::NotFound(id.to_string()))
        })
    }

    fn send_console_command<'a>(
        &'a self,
        plugin: &'a str,
        server_id: &'a str,
        command: &'a str,
    ) -> cap_runtime::capabilities::BoxFuture<'a, Result<(), cap_runtime::capabilities::ServiceError>>
    {
        Box::pin(async move {
            self.commands.lock().expect("lock").push((
                plugin.into(),
                server_id.into(),
                command.into(),
            ));
            Ok(())
        })
    }
}

/// Fails the test unless `program --version` runs, naming `program` and
/// `why` (what needs it and how to install it): a missing tool is a
/// failure, never a silent pass.
///
/// # Panics
///
/// When `program` does not run.
pub(crate) fn require_program(program: &str, why: &str) {
    let found = std::process::Command::new(program)
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(found, "{program} is missing: {why}");
}
