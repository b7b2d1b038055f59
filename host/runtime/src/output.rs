//! Checks on what plugins return. The canonical ABI already guarantees
//! types; these checks bound sizes and enforce the meaning each WIT
//! function documents, so nothing malformed reaches the Panel, the Agent or
//! a browser.

use std::collections::HashSet;
use std::io;

use serde::Serialize;

use crate::api::{
    CatalogueEntry, ConfigEdit, Element, GameInfo, InstallPlan, InstallStep, StartupPlan, UiTree,
    Verdict,
};
use crate::manifest::{is_image_reference, is_valid_id};

/// Most game types one plugin may offer (a catalogue's imported documents).
pub const MAX_GAME_TYPES: usize = 1000;

/// Largest document a `game-catalogue` call answers (an egg), in bytes:
/// what the Panel accepts as an upload.
pub const MAX_DOCUMENT_BYTES: usize = 4 << 20;

/// The JSON size bound of an answer holding one such document: the size
/// check counts JSON, where a byte list takes up to four characters a
/// byte (`255,`), plus room for the rest of the answer.
pub const MAX_DOCUMENT_JSON_BYTES: usize = 4 * MAX_DOCUMENT_BYTES + (1 << 20);

/// Largest `console-context` of a startup plan, in bytes: it travels to the
/// node with every start and into every console call.
pub const MAX_CONSOLE_CONTEXT_BYTES: usize = 64 * 1024;

/// Deepest UI tree accepted.
pub const MAX_UI_DEPTH: usize = 32;
/// Most nodes in a UI tree.
pub const MAX_UI_NODES: usize = 2000;

struct Counter {
    written: usize,
    limit: usize,
}

impl io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.written += buf.len();
        if self.written > self.limit {
            return Err(io::Error::other("limit"));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Fails if `value` serialises to more than `limit` bytes of JSON. Stops
/// counting at the limit, so a huge value costs no more than the limit.
pub fn check_size<T: Serialize>(value: &T, limit: usize) -> Result<(), String> {
    let mut counter = Counter { written: 0, limit };
    match serde_json::to_writer(&mut counter, value) {
        Ok(()) => Ok(()),
        Err(_) if counter.written > limit => {
            Err(format!("result is larger than the {limit}-byte limit"))
        }
        Err(e) => Err(format!("result cannot be represented: {e}")),
    }
}

/// No check beyond size.
pub fn unchecked<T>(_: &T) -> Result<(), String> {
    Ok(())
}

/// Applies `check` to the `Ok` side of a plugin's `result`.
pub fn if_ok<T, E>(
    check: fn(&T) -> Result<(), String>,
) -> impl FnOnce(&Result<T, E>) -> Result<(), String> {
    move |r| match r {
        Ok(v) => check(v),
        Err(_) => Ok(()),
    }
}

fn is_env_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        && !s.as_bytes()[0].is_ascii_digit()
}

/// A relative path that stays inside the server directory.
pub fn is_safe_relative_path(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 1024
        && !p.starts_with('/')
        && !p.contains('\0')
        && !p.contains('\\')
        && p.split('/').all(|c| c != "..")
}

/// `game-type.describe`.
pub fn check_game_info(info: &GameInfo) -> Result<(), String> {
    if !is_valid_id(&info.id) {
        return Err(format!("game id {:?} is not a valid id", info.id));
    }
    if info.name.trim().is_empty() {
        return Err("game name is empty".into());
    }
    semver::Version::parse(&info.version)
        .map_err(|e| format!("game version {:?}: {e}", info.version))?;
    let mut keys = HashSet::new();
    for v in &info.variables {
        if !is_env_name(&v.key) {
            return Err(format!(
                "variable key {:?} is not an environment variable name",
                v.key
            ));
        }
        if !keys.insert(&v.key) {
            return Err(format!("variable {:?} is declared twice", v.key));
        }
    }
    if info.ports.is_empty() {
        return Err("the game requests no ports".into());
    }
    if info.ports.iter().filter(|p| p.primary).count() != 1 {
        return Err("exactly one port must be primary".into());
    }
    let mut names = HashSet::new();
    for p in &info.ports {
        if !names.insert(&p.name) {
            return Err(format!("port {:?} is declared twice", p.name));
        }
    }
    if info.platforms.is_empty() {
        return Err("the game supports no platform".into());
    }
    let mut references = HashSet::new();
    for image in &info.images {
        if !is_image_reference(&image.reference) {
            return Err(format!(
                "image {:?} is not a container image reference",
                image.reference
            ));
        }
        if image.name.trim().is_empty() || image.name.len() > 100 {
            return Err(format!(
                "image {:?} needs a name of 1-100 characters",
                image.reference
            ));
        }
        if !references.insert(&image.reference) {
            return Err(format!("image {:?} is listed twice", image.reference));
        }
    }
    let mut commands = HashSet::new();
    for command in &info.startup_commands {
        if command.trim().is_empty() || command.len() > 191 || command.contains(char::is_control) {
            return Err(format!(
                "startup command {command:?} needs a name of 1-191 bytes without control characters"
            ));
        }
        if !commands.insert(command) {
            return Err(format!("startup command {command:?} is named twice"));
        }
    }
    if info.file_denylist.len() > 1024 || info.file_denylist.iter().any(|p| p.len() > 1024) {
        return Err("the file denylist has more than 1024 patterns or one over 1024 bytes".into());
    }
    Ok(())
}

/// `game-type.list-game-types`: each game type valid, ids unique, at most
/// [`MAX_GAME_TYPES`]. (Checks take `&T` of the call's answer, hence the
/// `&Vec`.)
#[allow(clippy::ptr_arg)]
pub fn check_game_types(games: &Vec<GameInfo>) -> Result<(), String> {
    if games.len() > MAX_GAME_TYPES {
        return Err(format!(
            "{} game types, more than {MAX_GAME_TYPES}",
            games.len()
        ));
    }
    let mut ids = HashSet::new();
    for game in games {
        check_game_info(game).map_err(|e| format!("game type {:?}: {e}", game.id))?;
        if !ids.insert(&game.id) {
            return Err(format!("game type {:?} is listed twice", game.id));
        }
    }
    Ok(())
}

/// A `game-catalogue` document: at most [`MAX_DOCUMENT_BYTES`].
#[allow(clippy::ptr_arg)]
pub fn check_document(document: &Vec<u8>) -> Result<(), String> {
    if document.len() > MAX_DOCUMENT_BYTES {
        return Err(format!(
            "a document of {} bytes, more than {MAX_DOCUMENT_BYTES}",
            document.len()
        ));
    }
    Ok(())
}

/// `game-catalogue` answers: the entry's game type is valid.
pub fn check_catalogue_entry(entry: &CatalogueEntry) -> Result<(), String> {
    check_game_info(&entry.game).map_err(|e| format!("game type {:?}: {e}", entry.game.id))
}

/// `game-catalogue.list-entries`.
#[allow(clippy::ptr_arg)]
pub fn check_catalogue_entries(entries: &Vec<CatalogueEntry>) -> Result<(), String> {
    if entries.len() > MAX_GAME_TYPES {
        return Err(format!(
            "{} entries, more than {MAX_GAME_TYPES}",
            entries.len()
        ));
    }
    entries.iter().try_for_each(check_catalogue_entry)
}

/// `game-type.install-plan`.
pub fn check_install_plan(plan: &InstallPlan) -> Result<(), String> {
    if let Some(image) = &plan.image
        && !is_image_reference(image)
    {
        return Err(format!(
            "install image {image:?} is not a container image reference"
        ));
    }
    for (i, step) in plan.steps.iter().enumerate() {
        let path = match step {
            InstallStep::Download(d) => {
                if d.sha256.len() != 64 || !d.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(format!("step {i}: sha256 must be 64 hex digits"));
                }
                let url = url::Url::parse(&d.url).map_err(|e| format!("step {i}: bad URL: {e}"))?;
                if !matches!(url.scheme(), "http" | "https") {
                    return Err(format!("step {i}: only http(s) downloads are allowed"));
                }
                &d.destination
            }
            InstallStep::RunScript(s) => {
                if s.interpreter.is_empty() || s.timeout_secs == 0 {
                    return Err(format!(
                        "step {i}: a script needs an interpreter and a timeout"
                    ));
                }
                continue;
            }
            InstallStep::WriteFile(w) => &w.path,
            InstallStep::EditConfig(e) => {
                check_conditions(e).map_err(|e| format!("step {i}: {e}"))?;
                &e.path
            }
        };
        if !is_safe_relative_path(path) {
            return Err(format!(
                "step {i}: path {path:?} leaves the server directory"
            ));
        }
    }
    Ok(())
}

/// `game-type.startup-plan`.
pub fn check_startup_plan(plan: &StartupPlan) -> Result<(), String> {
    if plan.program.is_empty() {
        return Err("the startup plan names no program".into());
    }
    if plan.console_context.len() > MAX_CONSOLE_CONTEXT_BYTES {
        return Err(format!(
            "the console context is {} bytes, more than {MAX_CONSOLE_CONTEXT_BYTES}",
            plan.console_context.len()
        ));
    }
    if !plan.working_dir.is_empty()
        && plan.working_dir != "."
        && !is_safe_relative_path(&plan.working_dir)
    {
        return Err(format!(
            "working dir {:?} leaves the server directory",
            plan.working_dir
        ));
    }
    for e in &plan.config_edits {
        if !is_safe_relative_path(&e.path) {
            return Err(format!(
                "config edit path {:?} leaves the server directory",
                e.path
            ));
        }
        check_conditions(e)?;
    }
    Ok(())
}

/// A `config-edit`'s `regex:` conditions are patterns the Agent can
/// compile (checked here so that a plan fails when it is made, not on the
/// node before a start).
fn check_conditions(edit: &ConfigEdit) -> Result<(), String> {
    for condition in &edit.set_if {
        if let Some(pattern) = condition.if_value.strip_prefix("regex:") {
            regex::RegexBuilder::new(pattern)
                .size_limit(1 << 20)
                .build()
                .map_err(|e| {
                    format!(
                        "config edit {:?}: the condition of {:?} is no valid pattern: {e}",
                        edit.path, condition.key
                    )
                })?;
        }
    }
    Ok(())
}

/// `hooks.before`: a `modify` patch must be a JSON object.
pub fn check_verdict(verdict: &Verdict) -> Result<(), String> {
    match verdict {
        Verdict::Modify(patch) => match serde_json::from_str::<serde_json::Value>(patch) {
            Ok(serde_json::Value::Object(_)) => Ok(()),
            Ok(_) => Err("a modify patch must be a JSON object".into()),
            Err(e) => Err(format!("a modify patch is not JSON: {e}")),
        },
        Verdict::Deny(reason) if reason.len() > 1024 => {
            Err("a deny reason is longer than 1024 bytes".into())
        }
        _ => Ok(()),
    }
}

/// `ui.render`: indices in bounds, every node reachable once from the root
/// (a tree, not a graph), bounded depth and size.
pub fn check_ui_tree(tree: &UiTree) -> Result<(), String> {
    let n = tree.nodes.len();
    if n == 0 {
        return Err("the UI tree is empty".into());
    }
    if n > MAX_UI_NODES {
        return Err(format!(
            "the UI tree has {n} nodes; the limit is {MAX_UI_NODES}"
        ));
    }
    let root = tree.root as usize;
    if root >= n {
        return Err(format!("root index {root} is out of bounds ({n} nodes)"));
    }
    let mut seen = vec![false; n];
    let mut stack = vec![(root, 1usize)];
    while let Some((i, depth)) = stack.pop() {
        if seen[i] {
            return Err(format!(
                "node {i} is reachable twice (cycle or shared child)"
            ));
        }
        seen[i] = true;
        if depth > MAX_UI_DEPTH {
            return Err(format!("the UI tree is deeper than {MAX_UI_DEPTH}"));
        }
        let node = &tree.nodes[i];
        let container = matches!(node.element, Element::Section(_) | Element::Row);
        if !container && !node.children.is_empty() {
            return Err(format!("node {i} cannot have children"));
        }
        for &c in &node.children {
            let c = c as usize;
            if c >= n {
                return Err(format!("node {i} has child {c}, out of bounds ({n} nodes)"));
            }
            stack.push((c, depth + 1));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Node;

    fn node(element: Element, children: &[u32]) -> Node {
        Node {
            element,
            children: children.to_vec(),
        }
    }

    fn game_info(startup_commands: &[&str]) -> GameInfo {
        use crate::api::{Arch, Os, Platform, PortProtocol, PortRequest};
        GameInfo {
            id: "game".into(),
            name: "Game".into(),
            version: "1.0.0".into(),
            description: String::new(),
            variables: Vec::new(),
            ports: vec![PortRequest {
                name: "game".into(),
                protocol: PortProtocol::Tcp,
                primary: true,
                env: None,
            }],
            platforms: vec![Platform {
                os: Os::Linux,
                arch: Arch::Amd64,
            }],
            features: Vec::new(),
            min_memory_mb: 64,
            images: Vec::new(),
            startup_commands: startup_commands.iter().map(|&c| c.to_owned()).collect(),
            file_denylist: Vec::new(),
        }
    }

    #[test]
    fn startup_command_names_are_unique_bounded_single_lines() {
        assert_eq!(
            check_game_info(&game_info(&["Default", "With Aikar's flags"])),
            Ok(())
        );
        let twice = check_game_info(&game_info(&["Default", "Default"])).unwrap_err();
        assert!(twice.contains("named twice"), "{twice}");
        for bad in ["", "a\nb", &"x".repeat(192)] {
            let error = check_game_info(&game_info(&[bad])).unwrap_err();
            assert!(error.contains("1-191 bytes"), "{error}");
        }
    }

    #[test]
    fn bounds_the_serialised_size() {
        assert!(check_size(&"x".repeat(100), 1000).is_ok());
        let err = check_size(&"x".repeat(2000), 1000).unwrap_err();
        assert!(err.contains("1000-byte limit"), "{err}");
    }

    #[test]
    fn accepts_a_valid_ui_tree() {
        let tree = UiTree {
            root: 0,
            nodes: vec![
                node(Element::Section(Some("Players".into())), &[1, 2]),
                node(Element::Text("hello".into()), &[]),
                node(Element::Divider, &[]),
            ],
        };
        assert_eq!(check_ui_tree(&tree), Ok(()));
    }

    #[test]
    fn refuses_cycles_out_of_bounds_children_and_leaf_children() {
        let cyclic = UiTree {
            root: 0,
            nodes: vec![node(Element::Row, &[0])],
        };
        assert!(
            check_ui_tree(&cyclic)
                .unwrap_err()
                .contains("reachable twice")
        );
        let oob = UiTree {
            root: 0,
            nodes: vec![node(Element::Row, &[7])],
        };
        assert!(check_ui_tree(&oob).unwrap_err().contains("out of bounds"));
        let leaf = UiTree {
            root: 0,
            nodes: vec![node(Element::Text("a".into()), &[0])],
        };
        assert!(
            check_ui_tree(&leaf)
                .unwrap_err()
                .contains("cannot have children")
        );
    }

    #[test]
    fn refuses_a_tree_deeper_than_the_limit() {
        let nodes = (0..40u32)
            .map(|i| node(Element::Row, if i < 39 { &[0][..] } else { &[] }))
            .collect::<Vec<_>>();
        let nodes = nodes
            .into_iter()
            .enumerate()
            .map(|(i, mut n)| {
                if !n.children.is_empty() {
                    n.children = vec![i as u32 + 1];
                }
                n
            })
            .collect();
        let err = check_ui_tree(&UiTree { root: 0, nodes }).unwrap_err();
        assert!(err.contains("deeper"), "{err}");
    }

    #[test]
    fn keeps_paths_inside_the_server_directory() {
        assert!(is_safe_relative_path("server.properties"));
        assert!(is_safe_relative_path("config/paper.yml"));
        assert!(!is_safe_relative_path("../etc/passwd"));
        assert!(!is_safe_relative_path("/etc/passwd"));
        assert!(!is_safe_relative_path("a/../../b"));
        assert!(!is_safe_relative_path(""));
    }

    #[test]
    fn refuses_a_modify_patch_that_is_not_an_object() {
        assert!(check_verdict(&Verdict::Modify("[1]".into())).is_err());
        assert!(check_verdict(&Verdict::Modify("{not json".into())).is_err());
        assert!(check_verdict(&Verdict::Modify(r#"{"memory-mb": 1024}"#.into())).is_ok());
    }
}
