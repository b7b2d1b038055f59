//! Builds the plugins `cap` carries (see `src/bundled.rs` and the crate
//! doc): the example-plugin workspaces (`example-plugins/` for API 0.1.0,
//! `example-plugins/v0.2/` for API 0.2.0) for `wasm32-wasip2` into
//! `example-plugins/target`, the directory the tests' fixtures build into
//! with the same commands; then copies the parts of each plugin of
//! `src/bundled/ids.rs` (`plugin.toml`, the component, `assets/`) to
//! `OUT_DIR/bundled/<id>/` and writes `OUT_DIR/bundled/parts.rs`, the
//! expression `src/bundled.rs` includes.
//!
//! The parts are packed into a `.cap` when `cap` installs them, by
//! `cap-runtime`'s package writer, not here: as a build dependency
//! `cap-runtime` would be compiled a second time for the host with other
//! features (wasmtime and cranelift included), doubling the cold build.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

#[path = "src/bundled/ids.rs"]
mod ids;

/// What the plugins are compiled for.
const TARGET: &str = "wasm32-wasip2";

/// The example plugins' workspaces below the repository root, API 0.1.0's
/// and API 0.2.0's (as `cap_e2e::PLUGIN_WORKSPACES`).
const WORKSPACES: [&str; 2] = ["example-plugins", "example-plugins/v0.2"];

/// Settings the outer build passes to build scripts, or takes from the
/// environment, that are meant for this workspace and this build: its
/// flags, its target and target directory, and clippy's driver (`cargo
/// clippy` sets it as the workspace wrapper). The inner cargo must build
/// the example plugins exactly as the tests' fixtures do, or the two would
/// build them twice.
const CLEARED: &[&str] = &[
    "RUSTFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_BUILD_RUSTFLAGS",
    "RUSTDOCFLAGS",
    "CARGO_ENCODED_RUSTDOCFLAGS",
    "CARGO_BUILD_RUSTDOCFLAGS",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET_DIR",
    "CARGO_BUILD_BUILD_DIR",
    "CARGO_BUILD_TARGET",
    "RUSTC_WORKSPACE_WRAPPER",
    "CARGO_BUILD_RUSTC_WORKSPACE_WRAPPER",
];

/// Prefixes of more such settings: per-target flags, linkers and runners
/// (`CARGO_TARGET_<triple>_…`), and profile overrides
/// (`CARGO_PROFILE_<name>_…`) that would change the plugins' release
/// profile.
const CLEARED_PREFIXES: &[&str] = &["CARGO_TARGET_", "CARGO_PROFILE_"];

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            for line in message.lines() {
                println!("cargo::error={line}");
            }
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let manifest_dir = PathBuf::from(var("CARGO_MANIFEST_DIR")?);
    let root = manifest_dir
        .parent()
        .ok_or("cap-cli's directory has no parent")?;
    let target = root.join("example-plugins/target");
    let out = PathBuf::from(var("OUT_DIR")?).join("bundled");
    watch(root)?;
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    check_target(&rustc)?;
    for workspace in WORKSPACES {
        build(&root.join(workspace), &target)?;
    }
    copy_parts(root, &target, &out)
}

/// The directory of bundled plugin `id`, in whichever workspace holds it.
fn plugin_dir(root: &Path, id: &str) -> Result<PathBuf, String> {
    WORKSPACES
        .iter()
        .map(|workspace| root.join(workspace).join(id))
        .find(|dir| dir.join("plugin.toml").is_file())
        .ok_or_else(|| format!("no example plugin {id} in {WORKSPACES:?}"))
}

fn var(name: &str) -> Result<OsString, String> {
    std::env::var_os(name).ok_or_else(|| format!("cargo did not set {name}"))
}

/// Reruns this script when a bundled plugin, the example plugins'
/// workspaces, the SDK, the egg model or the WIT changes;
/// `example-plugins/target` is not watched (it changes on every build).
fn watch(root: &Path) -> Result<(), String> {
    let mut paths = vec![
        root.join("plugin-sdk"),
        // The egg bridge's model of eggs.
        root.join("egg"),
        root.join("wit"),
        // The SDK takes its dependencies' versions from the root workspace.
        root.join("Cargo.toml"),
    ];
    for workspace in WORKSPACES {
        paths.push(root.join(workspace).join("Cargo.toml"));
        paths.push(root.join(workspace).join("Cargo.lock"));
    }
    for id in ids::IDS {
        paths.push(plugin_dir(root, id)?);
    }
    for path in paths {
        println!("cargo::rerun-if-changed={}", path.display());
    }
    Ok(())
}

/// Fails with the command that installs the target when the compiler
/// has no standard library for it.
fn check_target(rustc: &OsString) -> Result<(), String> {
    let missing = || {
        format!(
            "cap carries its bundled plugins compiled for {TARGET}, and this toolchain cannot \
             build for it.\nInstall the target: rustup target add {TARGET}"
        )
    };
    let output = Command::new(rustc)
        .args(["--print", "target-libdir", "--target", TARGET])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", rustc.to_string_lossy()))?;
    if !output.status.success() {
        return Err(missing());
    }
    let libdir = String::from_utf8_lossy(&output.stdout);
    if Path::new(libdir.trim()).is_dir() {
        Ok(())
    } else {
        Err(missing())
    }
}

/// Builds a whole example-plugin workspace into `target`, as the tests'
/// fixtures do.
fn build(plugins: &Path, target: &Path) -> Result<(), String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .args(["build", "--release", "--target", TARGET, "--manifest-path"])
        .arg(plugins.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target);
    for name in CLEARED {
        command.env_remove(name);
    }
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if CLEARED_PREFIXES.iter().any(|p| name.starts_with(p)) {
            command.env_remove(name.as_ref());
        }
    }
    let status = command
        .status()
        .map_err(|e| format!("cannot run cargo to build the bundled plugins: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "building the bundled plugins ({}) failed: cargo exited with {status}",
            plugins.display()
        ))
    }
}

/// Copies the parts of each bundled plugin to `out/<id>/` and writes
/// `out/parts.rs`: an array of `Parts`, in the order of [`ids::IDS`].
fn copy_parts(root: &Path, target: &Path, out: &Path) -> Result<(), String> {
    let wasm_dir = target.join(TARGET).join("release");
    let mut list = String::from("[\n");
    for id in ids::IDS {
        let source = plugin_dir(root, id)?;
        let dir = out.join(id);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .map_err(|e| format!("removing {}: {e}", dir.display()))?;
        }
        let manifest = copy(&source.join("plugin.toml"), &dir.join("plugin.toml"))?;
        let component = copy(
            &wasm_dir.join(format!("{}.wasm", id.replace('-', "_"))),
            &dir.join("plugin.wasm"),
        )?;
        let _ = writeln!(
            list,
            "    Parts {{\n        manifest: include_bytes!({manifest:?}),\n        \
             component: include_bytes!({component:?}),\n        assets: &["
        );
        for (path, file) in copy_assets(&source.join("assets"), &dir.join("assets"))? {
            let _ = writeln!(list, "            ({path:?}, include_bytes!({file:?})),");
        }
        list.push_str("        ],\n    },\n");
    }
    list.push_str("]\n");
    let file = out.join("parts.rs");
    std::fs::write(&file, list).map_err(|e| format!("writing {}: {e}", file.display()))
}

/// Copies `from` to `to`; returns `to` as a string for `include_bytes!`.
fn copy(from: &Path, to: &Path) -> Result<String, String> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("creating {}: {e}", parent.display()))?;
    }
    std::fs::copy(from, to).map_err(|e| format!("copying {}: {e}", from.display()))?;
    to.to_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("not a UTF-8 path: {}", to.display()))
}

/// Copies every regular file below `from` (none when it does not exist)
/// to the same place below `to`; returns each one's `/`-separated path
/// below `from` and its copy. What a package cannot hold (a symlink, a
/// socket) is refused here already; the package writer checks the paths.
fn copy_assets(from: &Path, to: &Path) -> Result<Vec<(String, String)>, String> {
    let mut copied = Vec::new();
    if !from.is_dir() {
        return Ok(copied);
    }
    let mut stack = vec![from.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries =
            std::fs::read_dir(&dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("reading {}: {e}", dir.display()))?;
            let path = entry.path();
            let kind = entry
                .file_type()
                .map_err(|e| format!("reading {}: {e}", path.display()))?;
            if kind.is_dir() {
                stack.push(path);
                continue;
            }
            if !kind.is_file() {
                return Err(format!(
                    "{}: not a regular file; packages hold only files",
                    path.display()
                ));
            }
            let relative = path
                .strip_prefix(from)
                .map_err(|_| format!("{} is outside {}", path.display(), from.display()))?;
            let name = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            let file = copy(&path, &to.join(relative))?;
            copied.push((name, file));
        }
    }
    copied.sort();
    Ok(copied)
}
