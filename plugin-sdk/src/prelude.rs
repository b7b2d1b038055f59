//! Everything a plugin usually needs, for one glob import: the four kind
//! traits, every type of the four kinds' interfaces, the shared types and
//! the [`log`] macros. With the `api-0-2` feature also `GameTypes`,
//! `GameCatalogue` and `CatalogueError` (the catalogue's records stay in
//! `catalogue`).
//!
//! Local definitions shadow glob imports, so a plugin may still name its own
//! types `Table` or `Action`.
//!
#![cfg_attr(not(feature = "api-0-2"), doc = "```")]
#![cfg_attr(feature = "api-0-2", doc = "```ignore")]
//! use cap_plugin_sdk::prelude::*;
//!
//! #[derive(Default)]
//! struct Example;
//!
//! impl GameType for Example {
//!     fn describe(&self) -> GameInfo {
//!         GameInfo {
//!             id: "example".into(),
//!             name: "Example".into(),
//!             version: "0.1.0".into(),
//!             description: "A server started from one binary.".into(),
//!             variables: vec![Variable::new("SERVER_BINARY", "Server binary", VariableType::String)
//!                 .with_default("./server")
//!                 .with_rule(ValidationRule::Required)],
//!             ports: vec![PortRequest {
//!                 name: "game".into(),
//!                 protocol: PortProtocol::Tcp,
//!                 primary: true,
//!                 env: Some("SERVER_PORT".into()),
//!             }],
//!             platforms: vec![Platform { os: Os::Linux, arch: Arch::Amd64 }],
//!             features: vec![],
//!             min_memory_mb: 256,
//!         }
//!     }
//!
//!     fn install_plan(&self, _server: &ServerContext) -> Result<InstallPlan, PluginError> {
//!         Ok(InstallPlan { steps: vec![] })
//!     }
//!
//!     fn startup_plan(&self, server: &ServerContext) -> Result<StartupPlan, PluginError> {
//!         Ok(StartupPlan {
//!             program: server.variable("SERVER_BINARY").unwrap_or("./server").into(),
//!             args: vec![],
//!             env: vec![KeyValue::new("MODE", "production")],
//!             working_dir: ".".into(),
//!             config_edits: vec![],
//!         })
//!     }
//!
//!     fn stop_plan(&self, _server: &ServerContext) -> StopPlan {
//!         StopPlan { method: StopMethod::SendSignal(Signal::Terminate), grace_secs: 30 }
//!     }
//!
//!     fn classify_line(&self, line: &str) -> LineKind {
//!         if line.contains("Server started") { LineKind::Ready } else { LineKind::Plain }
//!     }
//! }
//!
//! impl AuthProvider for Example {
//!     fn describe(&self) -> ProviderInfo {
//!         ProviderInfo {
//!             id: "example".into(),
//!             name: "Example".into(),
//!             kind: ProviderKind::Token,
//!             description: "Accepts one token.".into(),
//!         }
//!     }
//!
//!     fn authenticate(&self, credentials: &Credentials) -> Result<Identity, AuthError> {
//!         match credentials {
//!             Credentials::Token(token) if token == "change-me" => Ok(Identity::new("t", "token-user")),
//!             _ => Err(AuthError::InvalidCredentials),
//!         }
//!     }
//! }
//!
//! impl Hooks for Example {
//!     fn before(&self, event: &Event) -> Verdict {
//!         log::debug!("{} by {:?}", event.kind, event.actor.user_id);
//!         Verdict::Allow
//!     }
//! }
//!
//! impl Ui for Example {
//!     fn render(&self, context: &RenderContext) -> Result<UiTree, PluginError> {
//!         let mut tree = TreeBuilder::new();
//!         let text = tree.push(Element::Text(format!("Hello, {}!", context.user_id)));
//!         Ok(tree.finish(text))
//!     }
//! }
//!
//! cap_plugin_sdk::export_plugin!(Example: game_type, auth_provider, hooks, ui);
//! # fn main() {}
//! ```

pub use crate::auth::*;
#[cfg(feature = "api-0-2")]
pub use crate::catalogue::{CatalogueError, GameCatalogue};
pub use crate::game::*;
pub use crate::hooks::*;
pub use crate::log;
pub use crate::types::*;
pub use crate::ui::*;
