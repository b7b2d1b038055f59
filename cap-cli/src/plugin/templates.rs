//! Files written by `cap plugin new`, one set per kind. Each builds as it is
//! and does something real, so authors start from working code.

use std::path::{Path, PathBuf};

use super::KindArg;

/// The `cap-plugin-sdk` dependency line: a path to this checkout's SDK when
/// `cap` runs from a source tree, else the registry version.
pub(super) fn sdk_dependency() -> String {
    let local = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugin-sdk");
    match std::fs::canonicalize(&local) {
        Ok(path) if path.join("Cargo.toml").is_file() => {
            format!(
                "cap-plugin-sdk = {{ path = {:?} }}",
                path.display().to_string()
            )
        }
        _ => format!("cap-plugin-sdk = \"{}\"", env!("CARGO_PKG_VERSION")),
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

/// Renders the files of a new plugin crate. Only the kinds `cap plugin
/// new` offers ([`KindArg`]) have a template: a `game-catalogue` plugin is
/// an importer of other panels' documents, not a starting point.
pub(super) fn render(name: &str, kind: KindArg, sdk: &str) -> Vec<(PathBuf, String)> {
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
        KindArg::Hooks => (
            "hooks",
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
        KindArg::Ui => (
            "ui",
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
        KindArg::AuthProvider => (
            "auth-provider",
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
            Credentials::Token(token) if token == "change-me" => Ok(Identity {{
                subject: "token-user".into(),
                username: "token-user".into(),
                email: None,
                display_name: None,
                groups: vec![],
                claims: vec![],
            }}),
            _ => Err(AuthError::InvalidCredentials),
        }}
    }}
}}

cap_plugin_sdk::export_plugin!({ty}: auth_provider);
"#
            ),
        ),
        KindArg::GameType => (
            "game-type",
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
        }}
    }}

    fn install_plan(&self, _server: &ServerContext) -> Result<InstallPlan, PluginError> {{
        Ok(InstallPlan {{ steps: vec![] }})
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
    };
    let manifest = format!(
        r#"[plugin]
id = "{name}"
name = "{ty}"
version = "0.1.0"
description = "A new {kind} plugin."
authors = []
license = "Apache-2.0"
kinds = ["{kinds_toml}"]
api = "{api}"
{extra_toml}"#,
        kind = cap_runtime::manifest::PluginKind::from(kind).as_str(),
        api = cap_runtime::api_version::LATEST,
    );
    vec![
        (PathBuf::from("Cargo.toml"), cargo),
        (PathBuf::from("plugin.toml"), manifest),
        (PathBuf::from("src/lib.rs"), source),
        (PathBuf::from(".gitignore"), "/target\n".to_string()),
    ]
}
