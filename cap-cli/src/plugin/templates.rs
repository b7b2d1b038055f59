//! Files written by `cap plugin new`, one set per kind. Each builds as it is
//! and does something real, so authors start from working code.
//!
//! New plugins target the newest API ([`cap_runtime::api_version::LATEST`]):
//! the manifest names it and the SDK dependency enables the feature that
//! makes the SDK speak it (`api-0-2` for 0.2.0).

use std::path::{Path, PathBuf};

use cap_runtime::manifest::PluginKind;

/// The SDK feature that targets [`cap_runtime::api_version::LATEST`].
const LATEST_API_FEATURE: &str = "api-0-2";

/// The `cap-plugin-sdk` dependency line: a path to this checkout's SDK when
/// `cap` runs from a source tree, else the registry version; with the
/// feature of the newest API either way.
pub(super) fn sdk_dependency() -> String {
    let local = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugin-sdk");
    match std::fs::canonicalize(&local) {
        Ok(path) if path.join("Cargo.toml").is_file() => {
            format!(
                "cap-plugin-sdk = {{ path = {:?}, features = [\"{LATEST_API_FEATURE}\"] }}",
                path.display().to_string()
            )
        }
        _ => format!(
            "cap-plugin-sdk = {{ version = \"{}\", features = [\"{LATEST_API_FEATURE}\"] }}",
            env!("CARGO_PKG_VERSION")
        ),
    }
}

fn pascal(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// Renders the files of a new plugin crate.
pub(super) fn render(name: &str, kind: PluginKind, sdk: &str) -> Vec<(PathBuf, String)> {
    let ty = pascal(name);
    let cargo = format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
{sdk}

[profile.release]
opt-level = "s"
lto = true
strip = true
codegen-units = 1

# A plugin is its own workspace, even when created inside another one.
[workspace]
"#
    );
    let (kinds_toml, extra_toml, source) = match kind {
        PluginKind::Hooks => (
            "\"hooks\"",
            "\n[hooks]\nbefore = [\"server.create\"]\nafter = [\"server.create\"]\n",
            format!(
                r#"//! {name}: refuses servers without a name, logs every created server.

use cap_plugin_sdk::prelude::*;

#[derive(Default)]
struct {ty};

impl Hooks for {ty} {{
    fn before(&self, event: &Event) -> Verdict {{
        match event.server() {{
            Some(server) if server.name.trim().is_empty() => Verdict::Deny("a server needs a name".into()),
            _ => Verdict::Allow,
        }}
    }}

    fn after(&self, event: &Event) -> Result<(), PluginError> {{
        if let Some(server) = event.server() {{
            log::info!("server {{}} was created", server.name);
        }}
        Ok(())
    }}
}}

cap_plugin_sdk::export_plugin!({ty}: hooks);
"#
            ),
        ),
        PluginKind::Ui => (
            "\"ui\"",
            "\n[[ui.contributions]]\nid = \"hello\"\nslot = \"dashboard-widget\"\ntitle = \"Hello\"\n",
            format!(
                r#"//! {name}: a dashboard widget greeting the viewer.

use cap_plugin_sdk::prelude::*;

#[derive(Default)]
struct {ty};

impl Ui for {ty} {{
    fn render(&self, context: &RenderContext) -> Result<UiTree, PluginError> {{
        let mut tree = TreeBuilder::new();
        let text = tree.push(Element::Text(format!("Hello, {{}}!", context.user_id)));
        Ok(tree.finish(text))
    }}
}}

cap_plugin_sdk::export_plugin!({ty}: ui);
"#
            ),
        ),
        PluginKind::AuthProvider => (
            "\"auth-provider\"",
            "",
            format!(
                r#"//! {name}: accepts one static API token (an example; use real secrets).

use cap_plugin_sdk::prelude::*;

#[derive(Default)]
struct {ty};

impl AuthProvider for {ty} {{
    fn describe(&self) -> ProviderInfo {{
        ProviderInfo {{
            id: "{name}".into(),
            name: "{ty}".into(),
            kind: ProviderKind::Token,
            description: "Signs in holders of the configured token.".into(),
        }}
    }}

    fn authenticate(&self, credentials: &Credentials) -> Result<Identity, AuthError> {{
        match credentials {{
            Credentials::Token(token) if token == "change-me" => {{
                Ok(Identity::new("token-user", "token-user"))
            }}
            _ => Err(AuthError::InvalidCredentials),
        }}
    }}
}}

cap_plugin_sdk::export_plugin!({ty}: auth_provider);
"#
            ),
        ),
        PluginKind::GameType => (
            "\"game-type\"",
            "",
            format!(
                r#"//! {name}: a game type. Replace the program and console patterns with your game's.

use cap_plugin_sdk::prelude::*;

#[derive(Default)]
struct {ty};

impl GameType for {ty} {{
    fn describe(&self) -> GameInfo {{
        GameInfo {{
            id: "{name}".into(),
            name: "{ty}".into(),
            version: "0.1.0".into(),
            description: "A game server started from a single binary.".into(),
            variables: vec![Variable {{
                key: "SERVER_BINARY".into(),
                name: "Server binary".into(),
                description: "Program to run, relative to the server directory.".into(),
                kind: VariableType::String,
                default_value: Some("./server".into()),
                user_viewable: true,
                user_editable: false,
                rules: vec![ValidationRule::Required, ValidationRule::MaxLength(255)],
            }}],
            ports: vec![PortRequest {{
                name: "game".into(),
                protocol: PortProtocol::Tcp,
                primary: true,
                env: Some("SERVER_PORT".into()),
            }}],
            platforms: vec![Platform {{ os: Os::Linux, arch: Arch::Amd64 }}],
            features: vec![],
            min_memory_mb: 256,
            images: vec![],
            startup_commands: vec![],
            file_denylist: vec![],
        }}
    }}

    fn install_plan(&self, _server: &ServerContext) -> Result<InstallPlan, PluginError> {{
        Ok(InstallPlan {{ steps: vec![], image: None }})
    }}

    fn startup_plan(&self, server: &ServerContext) -> Result<StartupPlan, PluginError> {{
        let program = server
            .variables
            .iter()
            .find(|v| v.key == "SERVER_BINARY")
            .map(|v| v.value.clone())
            .unwrap_or_else(|| "./server".into());
        Ok(StartupPlan {{
            program,
            args: vec![],
            env: vec![],
            working_dir: ".".into(),
            config_edits: vec![],
            console_context: String::new(),
        }})
    }}

    fn stop_plan(&self, _server: &ServerContext) -> StopPlan {{
        StopPlan {{ method: StopMethod::SendSignal(Signal::Terminate), grace_secs: 30 }}
    }}

    fn classify_line(&self, line: &str) -> LineKind {{
        if line.contains("Server started") {{ LineKind::Ready }} else {{ LineKind::Plain }}
    }}
}}

cap_plugin_sdk::export_plugin!({ty}: game_type);
"#
            ),
        ),
        PluginKind::GameCatalogue => (
            "\"game-type\", \"game-catalogue\"",
            "\n[capabilities]\n# The imported documents are kept here.\nkv = true\n",
            catalogue_source(name, &ty),
        ),
    };
    let manifest = format!(
        r#"[plugin]
id = "{name}"
name = "{ty}"
version = "0.1.0"
description = "A new {kind} plugin."
authors = []
license = "Apache-2.0"
kinds = [{kinds_toml}]
api = "{api}"
{extra_toml}"#,
        kind = kind.as_str(),
        api = cap_runtime::api_version::LATEST,
    );
    vec![
        (PathBuf::from("Cargo.toml"), cargo),
        (PathBuf::from("plugin.toml"), manifest),
        (PathBuf::from("src/lib.rs"), source),
        (PathBuf::from(".gitignore"), "/target\n".to_string()),
    ]
}

/// The source of a game-catalogue plugin: game types imported as documents
/// of `key = value` lines, kept in KV.
fn catalogue_source(name: &str, ty: &str) -> String {
    format!(
        r#"//! {name}: game types imported as documents. A document is lines of
//! `key = value`: `id`, `name` and `program` (run from the server
//! directory); each imported document is kept whole, as one KV value.

use cap_plugin_sdk::catalogue::*;
use cap_plugin_sdk::kv;
use cap_plugin_sdk::prelude::*;

#[derive(Default)]
struct {ty};

/// One imported document.
struct Document {{
    id: String,
    name: String,
    program: String,
}}

fn parse(bytes: &[u8]) -> Result<Document, CatalogueError> {{
    let text = std::str::from_utf8(bytes)
        .map_err(|_| CatalogueError::invalid("document", "not UTF-8"))?;
    let (mut id, mut name, mut program) = (None, None, None);
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {{
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| CatalogueError::invalid("document", format!("not `key = value`: {{line}}")))?;
        let value = Some(value.trim().to_owned());
        match key.trim() {{
            "id" => id = value,
            "name" => name = value,
            "program" => program = value,
            other => return Err(CatalogueError::invalid(other, "unknown key")),
        }}
    }}
    let id = id.ok_or_else(|| CatalogueError::invalid("id", "missing"))?;
    let valid = (2..=63).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {{
        return Err(CatalogueError::invalid("id", "use 2-63 characters of a-z, 0-9 and -"));
    }}
    Ok(Document {{
        id,
        name: name.ok_or_else(|| CatalogueError::invalid("name", "missing"))?,
        program: program.ok_or_else(|| CatalogueError::invalid("program", "missing"))?,
    }})
}}

impl Document {{
    fn game(&self) -> GameInfo {{
        GameInfo {{
            id: self.id.clone(),
            name: self.name.clone(),
            version: "1.0.0".into(),
            description: String::new(),
            variables: vec![],
            ports: vec![PortRequest {{
                name: "game".into(),
                protocol: PortProtocol::Tcp,
                primary: true,
                env: Some("SERVER_PORT".into()),
            }}],
            platforms: vec![Platform {{ os: Os::Linux, arch: Arch::Amd64 }}],
            features: vec![],
            min_memory_mb: 64,
            images: vec![],
            startup_commands: vec![],
            file_denylist: vec![],
        }}
    }}

    fn entry(&self) -> Entry {{
        Entry {{ game: self.game(), format: "lines".into(), update_url: None, unsupported: vec![] }}
    }}
}}

fn key(id: &str) -> String {{
    format!("game/{{id}}")
}}

/// Every kept document. The WIT's list calls have no error case: a store
/// that cannot be listed traps rather than answer "nothing".
fn all() -> Vec<Document> {{
    let keys = kv::list_all_keys("game/", 100)
        .unwrap_or_else(|e| panic!("listing the game types: {{}}", e.detail()));
    keys.iter()
        .filter_map(|k| kv::get(k).ok().flatten())
        .filter_map(|bytes| parse(&bytes).ok())
        .collect()
}}

impl GameTypes for {ty} {{
    fn list(&self) -> Vec<GameInfo> {{
        all().iter().map(Document::game).collect()
    }}

    fn install_plan(&self, _server: &ServerContext) -> Result<InstallPlan, PluginError> {{
        Ok(InstallPlan {{ steps: vec![], image: None }})
    }}

    fn startup_plan(&self, server: &ServerContext) -> Result<StartupPlan, PluginError> {{
        let bytes = kv::get(&key(&server.game_type))?
            .ok_or_else(|| PluginError::new("not-found", format!("no game type {{}}", server.game_type)))?;
        let document = parse(&bytes).map_err(|_| PluginError::new("corrupt", "a kept document no longer parses"))?;
        Ok(StartupPlan {{
            program: document.program,
            args: vec![],
            env: vec![],
            working_dir: ".".into(),
            config_edits: vec![],
            console_context: String::new(),
        }})
    }}

    fn stop_plan(&self, _server: &ServerContext) -> StopPlan {{
        StopPlan {{ method: StopMethod::SendSignal(Signal::Terminate), grace_secs: 30 }}
    }}
}}

impl GameCatalogue for {ty} {{
    fn preview(&self, document: &[u8]) -> Result<Entry, CatalogueError> {{
        Ok(parse(document)?.entry())
    }}

    fn import(&self, document: &[u8], replace: bool) -> Result<Entry, CatalogueError> {{
        let parsed = parse(document)?;
        if !replace && kv::get(&key(&parsed.id))?.is_some() {{
            return Err(CatalogueError::Exists(parsed.id));
        }}
        // One value: the import is kept whole or not at all.
        kv::set(&key(&parsed.id), document)?;
        Ok(parsed.entry())
    }}

    fn entries(&self) -> Vec<Entry> {{
        all().iter().map(Document::entry).collect()
    }}

    fn export(&self, game_type: &str) -> Result<Vec<u8>, CatalogueError> {{
        kv::get(&key(game_type))?.ok_or_else(|| CatalogueError::NotFound(game_type.into()))
    }}

    fn remove(&self, game_type: &str) -> Result<(), CatalogueError> {{
        if kv::delete(&key(game_type))? {{
            Ok(())
        }} else {{
            Err(CatalogueError::NotFound(game_type.into()))
        }}
    }}
}}

cap_plugin_sdk::export_plugin!({ty}: game_type, game_catalogue);
"#
    )
}
