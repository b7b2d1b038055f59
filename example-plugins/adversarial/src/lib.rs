//! A plugin that misbehaves on request, so that tests can prove the sandbox
//! contains it. It requests no capabilities.
//!
//! **Hooks** — `before(server.create)` picks a behaviour from the name of the
//! server being created:
//!
//! | Name | Behaviour | The host should |
//! | --- | --- | --- |
//! | `spin` | loops forever | time the call out |
//! | `bomb` | allocates and touches 1 MiB chunks until allocation fails | hit the memory limit |
//! | `recurse` | recurses without bound | trap when the stack runs out (in Rust's wasm targets the stack lives in linear memory, so this is an out-of-bounds access or wasmtime's stack limit) |
//! | `deep-calls` | recurses with scalar frames only, on the engine's call stack | stack-overflow trap |
//! | `sleep` | sleeps for a minute inside a WASI clock poll | stop it at the deadline although no WebAssembly runs |
//! | `bad-utf8` | denies with a reason whose bytes are not UTF-8 | refuse the result while lifting it |
//! | `panic` | panics with "adversarial panic requested" | report the trap |
//! | `huge` | denies with an 8 MiB reason | refuse the oversized result |
//! | `kv` | writes to the key-value store and denies with the error | deny the ungranted call |
//! | `http` | fetches `http://127.0.0.1:9/` and denies with the error | deny the ungranted call |
//! | anything else | allows | |
//!
//! `before(console.command)` (when a test's manifest subscribes to it)
//! denies every line that starts with `deny`, so tests can prove that a
//! command cannot get past the before-hooks by another route.
//!
//! **UI** — `render` returns a tree with a cycle for the contribution
//! `cyclic`, a child index past the end for `out-of-bounds`, and a small
//! valid tree otherwise.
//!
//! **Game type** — `describe` returns an invalid game: an id that is not
//! `[a-z0-9-]`, two variables with the same key and no ports. Should a host
//! accept it anyway, the plans are hostile too: the install plan writes
//! outside the server directory and downloads with a malformed checksum, and
//! the startup plan runs a program by a path that escapes the server
//! directory.

use std::hint::black_box;

use cap_plugin_sdk::game::{
    Arch, Download, GameInfo, GameType, InstallPlan, InstallStep, Os, Platform, ServerContext,
    StartupPlan, StopMethod, StopPlan, Variable, VariableType, WriteFile,
};
use cap_plugin_sdk::hooks::{Event, Hooks, Verdict};
use cap_plugin_sdk::types::{KeyValue, PluginError};
use cap_plugin_sdk::ui::{
    Button, Element, Node, RenderContext, Table, TableRow, Tone, TreeBuilder, Ui, UiTree,
};
use cap_plugin_sdk::{http, kv};

/// The plugin. Stateless.
#[derive(Debug, Default)]
pub struct Adversarial;

cap_plugin_sdk::export_plugin!(Adversarial: hooks, ui, game_type);

/// Size of the `huge` reason.
const HUGE_BYTES: usize = 8 << 20;

/// Size of one `bomb` allocation.
const CHUNK_BYTES: usize = 1 << 20;

/// What `before` does, chosen by server name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    Spin,
    Bomb,
    Recurse,
    DeepCalls,
    BadUtf8,
    Sleep,
    Panic,
    Huge,
    Kv,
    Http,
    Allow,
}

impl Behaviour {
    fn from_name(name: &str) -> Self {
        match name {
            "spin" => Self::Spin,
            "bomb" => Self::Bomb,
            "recurse" => Self::Recurse,
            "deep-calls" => Self::DeepCalls,
            "bad-utf8" => Self::BadUtf8,
            "sleep" => Self::Sleep,
            "panic" => Self::Panic,
            "huge" => Self::Huge,
            "kv" => Self::Kv,
            "http" => Self::Http,
            _ => Self::Allow,
        }
    }
}

impl Hooks for Adversarial {
    fn before(&self, event: &Event) -> Verdict {
        if let Some(console) = event.console()
            && console.line.starts_with("deny")
        {
            return Verdict::Deny(format!("the console line {:?} is denied", console.line));
        }
        let name = event.server().map_or("", |server| server.name.as_str());
        match Behaviour::from_name(name) {
            Behaviour::Spin => spin(),
            Behaviour::Bomb => bomb(),
            Behaviour::Recurse => Verdict::Deny(format!("recursed {} times", recurse(0))),
            Behaviour::DeepCalls => {
                let step: fn(u64) -> u64 = black_box(plus_one);
                Verdict::Deny(format!("descended to {}", descend(0, step)))
            }
            Behaviour::BadUtf8 => Verdict::Deny(invalid_utf8()),
            Behaviour::Sleep => {
                // Blocks in the host (a WASI clock poll), not in WebAssembly,
                // so epoch interruption alone would not stop it.
                std::thread::sleep(std::time::Duration::from_secs(60));
                Verdict::Deny("slept a whole minute".into())
            }
            Behaviour::Panic => panic!("adversarial panic requested"),
            Behaviour::Huge => Verdict::Deny(huge_reason()),
            Behaviour::Kv => match kv::set("adversarial", b"x") {
                Err(err) => Verdict::Deny(format!("kv said: {err:?}")),
                Ok(()) => Verdict::Deny("kv said: Ok, although kv was never granted".into()),
            },
            Behaviour::Http => match http::get("http://127.0.0.1:9/").send() {
                Err(err) => Verdict::Deny(format!("http said: {err:?}")),
                Ok(response) => Verdict::Deny(format!(
                    "http said: status {}, although http was never granted",
                    response.status
                )),
            },
            Behaviour::Allow => Verdict::Allow,
        }
    }
}

/// Loops forever; `black_box` keeps the loop from being optimised away.
fn spin() -> ! {
    let mut counter = 0u64;
    loop {
        counter = black_box(counter.wrapping_add(1));
    }
}

/// Allocates 1 MiB chunks and writes to every page of each, so the memory
/// is really committed, until an allocation fails (which aborts).
fn bomb() -> ! {
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut chunk = vec![0u8; CHUNK_BYTES];
        for byte in chunk.iter_mut().step_by(4096) {
            *byte = black_box(1);
        }
        chunks.push(black_box(chunk));
    }
}

/// Recurses until the stack runs out. Not a tail call: the frame's buffer is
/// used after the recursive call returns.
fn recurse(depth: u64) -> u64 {
    let frame = black_box([depth; 16]);
    if black_box(depth) == u64::MAX {
        return 0;
    }
    recurse(black_box(depth + 1)).wrapping_add(frame[15])
}

/// Recurses through an opaque function pointer with nothing but scalars, so
/// every frame lives on the engine's call stack (not in linear memory): the
/// host must stop it with a stack-overflow trap.
#[inline(never)]
fn descend(depth: u64, step: fn(u64) -> u64) -> u64 {
    if depth == u64::MAX {
        return 0;
    }
    descend(step(depth), step).rotate_left(1) ^ depth
}

fn plus_one(x: u64) -> u64 {
    x + 1
}

/// A `String` whose bytes are not UTF-8: the canonical ABI lift on the host
/// must refuse it.
#[allow(unsafe_code)]
fn invalid_utf8() -> String {
    // SAFETY: deliberately violates `String`'s UTF-8 invariant; the string is
    // only handed to the host, never used as text inside the plugin.
    unsafe { String::from_utf8_unchecked(vec![b'o', b'k', 0xff, 0xfe]) }
}

fn huge_reason() -> String {
    "x".repeat(HUGE_BYTES)
}

impl Ui for Adversarial {
    fn render(&self, context: &RenderContext) -> Result<UiTree, PluginError> {
        Ok(tree_for(&context.contribution))
    }
}

fn tree_for(contribution: &str) -> UiTree {
    match contribution {
        // Node 0 lists itself among its children.
        "cyclic" => UiTree {
            root: 0,
            nodes: vec![
                Node {
                    element: Element::Section(Some("loop".into())),
                    children: vec![1, 0],
                },
                Node {
                    element: Element::Text("inside the loop".into()),
                    children: Vec::new(),
                },
            ],
        },
        "out-of-bounds" => UiTree {
            root: 0,
            nodes: vec![Node {
                element: Element::Row,
                children: vec![99],
            }],
        },
        // Markup, script and `javascript:` URLs in every string.
        "markup" => {
            let mut tree = TreeBuilder::new();
            let heading = tree.push(Element::Heading(
                "<img src=x onerror=\"window.__pwned='heading'\">".into(),
            ));
            let text = tree.push(Element::Text(
                "<script>window.__pwned='text'</script>".into(),
            ));
            let badge = tree.push(Element::Badge((
                "<b onmouseover=\"window.__pwned='badge'\">bold</b>".into(),
                Tone::Danger,
            )));
            let stat = tree.push(Element::Stat(KeyValue::new(
                "<svg onload=\"window.__pwned='stat'\">",
                "javascript:window.__pwned='stat'",
            )));
            let alert = tree.push(Element::Alert((
                "<iframe src=\"javascript:window.__pwned='alert'\"></iframe>".into(),
                Tone::Warning,
            )));
            let table = tree.push(Element::Table(Table {
                columns: vec!["<th onclick=\"window.__pwned='column'\">Name".into()],
                rows: vec![TableRow {
                    cells: vec!["<a href=\"javascript:window.__pwned='cell'\">link</a>".into()],
                    actions: vec![Button {
                        label: "<img src=x onerror=\"window.__pwned='button'\">".into(),
                        action: "noop".into(),
                        tone: Tone::Neutral,
                        confirm: None,
                    }],
                }],
            }));
            let root = tree.section(
                Some("<style>body { display: none }</style>"),
                [heading, text, badge, stat, alert, table],
            );
            tree.finish(root)
        }
        _ => {
            let mut tree = TreeBuilder::new();
            let heading = tree.push(Element::Heading("Adversarial".into()));
            let badge = tree.push(Element::Badge(("harmless here".into(), Tone::Info)));
            let root = tree.section(None, [heading, badge]);
            tree.finish(root)
        }
    }
}

impl GameType for Adversarial {
    fn describe(&self) -> GameInfo {
        invalid_game()
    }

    fn install_plan(&self, _server: &ServerContext) -> Result<InstallPlan, PluginError> {
        Ok(InstallPlan {
            steps: vec![
                InstallStep::WriteFile(WriteFile {
                    path: "../../escaped.txt".into(),
                    contents: "written outside the server directory\n".into(),
                    mode: 0o777,
                }),
                InstallStep::Download(Download {
                    url: "http://127.0.0.1:9/payload".into(),
                    sha256: "not-a-checksum".into(),
                    destination: "/tmp/payload".into(),
                    executable: true,
                }),
            ],
        })
    }

    fn startup_plan(&self, _server: &ServerContext) -> Result<StartupPlan, PluginError> {
        Ok(StartupPlan {
            program: "../../../bin/sh".into(),
            args: vec!["-c".into(), "echo escaped".into()],
            env: vec![KeyValue::new("LD_PRELOAD", "/tmp/payload")],
            working_dir: "../..".into(),
            config_edits: Vec::new(),
        })
    }

    fn stop_plan(&self, _server: &ServerContext) -> StopPlan {
        StopPlan {
            method: StopMethod::ConsoleCommand("stop".into()),
            grace_secs: u32::MAX,
        }
    }
}

fn invalid_game() -> GameInfo {
    GameInfo {
        id: "Not A Valid Id!".into(),
        name: "Adversarial game".into(),
        version: "not-semver".into(),
        description: "Invalid on purpose.".into(),
        variables: vec![
            Variable::new("DUPLICATE", "First", VariableType::String),
            Variable::new("DUPLICATE", "Second", VariableType::Integer),
        ],
        ports: Vec::new(),
        platforms: vec![Platform {
            os: Os::Linux,
            arch: Arch::Amd64,
        }],
        features: Vec::new(),
        min_memory_mb: 0,
    }
}

#[cfg(test)]
mod tests {
    use cap_plugin_sdk::ui::TreeError;

    use super::*;

    #[test]
    fn behaviours_are_chosen_by_exact_server_name() {
        assert_eq!(Behaviour::from_name("spin"), Behaviour::Spin);
        assert_eq!(Behaviour::from_name("bomb"), Behaviour::Bomb);
        assert_eq!(Behaviour::from_name("recurse"), Behaviour::Recurse);
        assert_eq!(Behaviour::from_name("panic"), Behaviour::Panic);
        assert_eq!(Behaviour::from_name("huge"), Behaviour::Huge);
        assert_eq!(Behaviour::from_name("kv"), Behaviour::Kv);
        assert_eq!(Behaviour::from_name("http"), Behaviour::Http);
        assert_eq!(Behaviour::from_name("Spin"), Behaviour::Allow);
        assert_eq!(Behaviour::from_name("survival"), Behaviour::Allow);
    }

    #[test]
    fn the_huge_reason_is_eight_mebibytes() {
        assert_eq!(huge_reason().len(), 8 * 1024 * 1024);
    }

    #[test]
    fn the_cyclic_tree_really_has_a_cycle() {
        assert_eq!(
            tree_for("cyclic").check(),
            Err(TreeError::Cycle { index: 0 })
        );
    }

    #[test]
    fn the_out_of_bounds_tree_really_points_past_the_end() {
        assert_eq!(
            tree_for("out-of-bounds").check(),
            Err(TreeError::OutOfBounds { index: 99 })
        );
    }

    #[test]
    fn the_markup_tree_is_valid_so_the_panel_draws_it() {
        let tree = tree_for("markup");
        assert_eq!(tree.check(), Ok(()));
        assert_eq!(tree.nodes.len(), 7);
    }

    #[test]
    fn other_contributions_get_a_valid_tree() {
        assert_eq!(tree_for("valid").check(), Ok(()));
    }

    #[test]
    fn the_described_game_breaks_every_rule_it_should() {
        let info = invalid_game();
        assert!(
            !info
                .id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        );
        assert_eq!(info.variables[0].key, info.variables[1].key);
        assert!(info.ports.is_empty());
    }
}
