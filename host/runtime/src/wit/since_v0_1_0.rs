//! Everything bound to `ctrl-alt-play:plugin@0.1.0` (`wit/plugin/since_v0.1.0`,
//! frozen): its bindings, the `Host` impls of its imports, the calls into
//! its exports, and the conversions between its types and [`crate::api`].
//! See [`crate::wit`] for why this lives in one module and how 0.2.0 joins.
//!
//! This module serves every 0.1.x component and, like the WIT folder, stays
//! as it is once a newer version exists.

use std::sync::Arc;

use wasmtime::Store;
use wasmtime::component::{HasSelf, Instance, InstancePre, Linker};

use super::{Convert, ExportError};
use crate::api;
use crate::capabilities as cap;
use crate::error::LoadError;
use crate::manifest::{Manifest, PluginKind};
use crate::plugin::PluginState;

/// The generated bindings of the `plugin` world (every kind at once).
#[allow(missing_docs, unreachable_pub, clippy::all)]
mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit/plugin/since_v0.1.0",
        world: "plugin",
        imports: { default: async },
        exports: { default: async },
    });
}

use bindings::Plugin as PluginWorld;
use bindings::ctrl_alt_play::plugin::{config, events, http, kv, log, panel, types};
use bindings::exports::ctrl_alt_play::plugin::{auth_provider, game_console, game_type, hooks, ui};

/// Interfaces of the package that 0.1.x components may import.
pub(crate) const IMPORTED_INTERFACES: &[&str] =
    &["types", "log", "kv", "config", "http", "events", "panel"];

/// Adds the 0.1.0 imports to `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    PluginWorld::add_to_linker::<PluginState, HasSelf<PluginState>>(linker, |s| s)
}

// ---------------------------------------------------------------------------
// Imports: thin adapters over the shared capability code.

host_imports!();

// ---------------------------------------------------------------------------
// Exports.

/// The export lookups of one plugin, per kind its manifest declares.
#[derive(Default)]
pub(crate) struct Exports {
    game_type: Option<game_type::GuestIndices>,
    game_console: Option<game_console::GuestIndices>,
    auth_provider: Option<auth_provider::GuestIndices>,
    hooks: Option<hooks::GuestIndices>,
    ui: Option<ui::GuestIndices>,
}

impl Exports {
    pub(crate) fn new(
        pre: &InstancePre<PluginState>,
        manifest: &Manifest,
    ) -> Result<Self, LoadError> {
        let missing = |kind: PluginKind, interface: &str| LoadError::MissingExport {
            kind: kind.to_string(),
            interface: format!("ctrl-alt-play:plugin/{interface}"),
        };
        let mut exports = Self::default();
        for kind in &manifest.plugin.kinds {
            match kind {
                PluginKind::GameType => {
                    exports.game_type = Some(
                        game_type::GuestIndices::new(pre)
                            .map_err(|_| missing(*kind, "game-type"))?,
                    );
                    exports.game_console = Some(
                        game_console::GuestIndices::new(pre)
                            .map_err(|_| missing(*kind, "game-console"))?,
                    );
                }
                PluginKind::AuthProvider => {
                    exports.auth_provider = Some(
                        auth_provider::GuestIndices::new(pre)
                            .map_err(|_| missing(*kind, "auth-provider"))?,
                    );
                }
                PluginKind::Hooks => {
                    exports.hooks =
                        Some(hooks::GuestIndices::new(pre).map_err(|_| missing(*kind, "hooks"))?);
                }
                PluginKind::Ui => {
                    exports.ui =
                        Some(ui::GuestIndices::new(pre).map_err(|_| missing(*kind, "ui"))?);
                }
                // The manifest refuses the kind below 0.2.0.
                PluginKind::GameCatalogue => return Err(missing(*kind, "game-catalogue")),
            }
        }
        Ok(exports)
    }
}

/// One instance and the export handles it has looked up so far.
pub(crate) struct Guest {
    exports: Arc<Exports>,
    instance: Instance,
    game_type: Option<game_type::Guest>,
    game_console: Option<game_console::Guest>,
    auth_provider: Option<auth_provider::Guest>,
    hooks: Option<hooks::Guest>,
    ui: Option<ui::Guest>,
}

/// The handle of export `$field`, looked up on first use.
macro_rules! handle {
    ($self:ident, $store:ident, $field:ident) => {
        match &$self.$field {
            Some(handle) => handle.clone(),
            None => {
                let indices = $self.exports.$field.as_ref().ok_or(ExportError::Missing)?;
                let handle = indices
                    .load(&mut *$store, &$self.instance)
                    .map_err(ExportError::Load)?;
                $self.$field = Some(handle.clone());
                handle
            }
        }
    };
}

/// The same value as this version's type, for passing a borrowed
/// [`crate::api`] value into a call.
fn to_wit<A: Clone + Convert<B>, B>(value: &A) -> B {
    value.clone().convert()
}

/// [`to_wit`] for every element of a slice.
fn to_wit_all<A: Clone + Convert<B>, B>(values: &[A]) -> Vec<B> {
    values.iter().map(to_wit).collect()
}

/// The `server-context` a 0.1.x game type plans for: every port but a
/// server's extra allocations ([`api::AllocatedPort::is_extra`]). Those
/// came with 0.2.0; a 0.1.x plugin was written for the ports it requested
/// (it may map every port it is given), so it keeps seeing exactly those.
fn server_context(server: &api::ServerContext) -> game_type::ServerContext {
    let mut server = server.clone();
    server.ports.retain(|p| !p.is_extra());
    server.convert()
}

type Outcome<T> = Result<wasmtime::Result<T>, ExportError>;

impl Guest {
    pub(crate) fn new(exports: Arc<Exports>, instance: Instance) -> Self {
        Self {
            exports,
            instance,
            game_type: None,
            game_console: None,
            auth_provider: None,
            hooks: None,
            ui: None,
        }
    }

    /// A 0.1.x plugin offers the one game type it describes.
    pub(crate) async fn list_game_types(
        &mut self,
        store: &mut Store<PluginState>,
    ) -> Outcome<Vec<api::GameInfo>> {
        let g = handle!(self, store, game_type);
        Ok(g.call_describe(store)
            .await
            .map(|info| vec![info.convert()]))
    }

    /// `game_type` is the plugin's one game type (the Panel asks for no
    /// other), so 0.1.x's `validate` needs no name.
    pub(crate) async fn validate_variables(
        &mut self,
        store: &mut Store<PluginState>,
        _game_type: &str,
        variables: &[api::KeyValue],
    ) -> Outcome<Result<(), Vec<api::FieldError>>> {
        let g = handle!(self, store, game_type);
        let variables: Vec<types::KeyValue> = to_wit_all(variables);
        Ok(g.call_validate(store, &variables)
            .await
            .map(Convert::convert))
    }

    pub(crate) async fn install_plan(
        &mut self,
        store: &mut Store<PluginState>,
        server: &api::ServerContext,
    ) -> Outcome<Result<api::InstallPlan, api::PluginError>> {
        let g = handle!(self, store, game_type);
        let server = server_context(server);
        Ok(g.call_plan_install(store, &server)
            .await
            .map(Convert::convert))
    }

    pub(crate) async fn startup_plan(
        &mut self,
        store: &mut Store<PluginState>,
        server: &api::ServerContext,
    ) -> Outcome<Result<api::StartupPlan, api::PluginError>> {
        let g = handle!(self, store, game_type);
        let server = server_context(server);
        Ok(g.call_plan_startup(store, &server)
            .await
            .map(Convert::convert))
    }

    pub(crate) async fn stop_plan(
        &mut self,
        store: &mut Store<PluginState>,
        server: &api::ServerContext,
    ) -> Outcome<api::StopPlan> {
        let g = handle!(self, store, game_type);
        let server = server_context(server);
        Ok(g.call_plan_stop(store, &server).await.map(Convert::convert))
    }

    /// 0.1.x consoles take no context: their startup plans gave none.
    pub(crate) async fn classify_line(
        &mut self,
        store: &mut Store<PluginState>,
        _context: &str,
        line: &str,
    ) -> Outcome<api::LineKind> {
        let g = handle!(self, store, game_console);
        Ok(g.call_classify_line(store, line)
            .await
            .map(Convert::convert))
    }

    pub(crate) async fn status_command(
        &mut self,
        store: &mut Store<PluginState>,
        _context: &str,
    ) -> Outcome<Option<String>> {
        let g = handle!(self, store, game_console);
        Ok(g.call_status_command(store).await)
    }

    pub(crate) async fn parse_status(
        &mut self,
        store: &mut Store<PluginState>,
        _context: &str,
        lines: &[String],
    ) -> Outcome<Option<api::PlayerStatus>> {
        let g = handle!(self, store, game_console);
        Ok(g.call_parse_status(store, lines)
            .await
            .map(Convert::convert))
    }

    pub(crate) async fn describe_auth(
        &mut self,
        store: &mut Store<PluginState>,
    ) -> Outcome<api::ProviderInfo> {
        let g = handle!(self, store, auth_provider);
        Ok(g.call_describe(store).await.map(Convert::convert))
    }

    pub(crate) async fn authenticate(
        &mut self,
        store: &mut Store<PluginState>,
        credentials: &api::Credentials,
    ) -> Outcome<Result<api::Identity, api::AuthError>> {
        let g = handle!(self, store, auth_provider);
        let credentials = to_wit(credentials);
        Ok(g.call_authenticate(store, &credentials)
            .await
            .map(Convert::convert))
    }

    pub(crate) async fn begin_login(
        &mut self,
        store: &mut Store<PluginState>,
        callback_url: &str,
    ) -> Outcome<Result<api::LoginRedirect, api::AuthError>> {
        let g = handle!(self, store, auth_provider);
        Ok(g.call_begin_login(store, callback_url)
            .await
            .map(Convert::convert))
    }

    pub(crate) async fn complete_login(
        &mut self,
        store: &mut Store<PluginState>,
        state: &str,
        params: &[api::KeyValue],
    ) -> Outcome<Result<api::Identity, api::AuthError>> {
        let g = handle!(self, store, auth_provider);
        let params: Vec<types::KeyValue> = to_wit_all(params);
        Ok(g.call_complete_login(store, state, &params)
            .await
            .map(Convert::convert))
    }

    pub(crate) async fn set_password(
        &mut self,
        store: &mut Store<PluginState>,
        username: &str,
        password: &str,
    ) -> Outcome<Result<(), api::AuthError>> {
        let g = handle!(self, store, auth_provider);
        Ok(g.call_set_password(store, username, password)
            .await
            .map(Convert::convert))
    }

    pub(crate) async fn hook_before(
        &mut self,
        store: &mut Store<PluginState>,
        event: &api::Event,
    ) -> Outcome<api::Verdict> {
        let g = handle!(self, store, hooks);
        let Some(event) = event_0_1(event) else {
            return Ok(Ok(api::Verdict::Allow));
        };
        Ok(g.call_before(store, &event).await.map(Convert::convert))
    }

    pub(crate) async fn hook_after(
        &mut self,
        store: &mut Store<PluginState>,
        event: &api::Event,
    ) -> Outcome<Result<(), api::PluginError>> {
        let g = handle!(self, store, hooks);
        let Some(event) = event_0_1(event) else {
            return Ok(Ok(Ok(())));
        };
        Ok(g.call_after(store, &event).await.map(Convert::convert))
    }

    pub(crate) async fn render_ui(
        &mut self,
        store: &mut Store<PluginState>,
        context: &api::RenderContext,
    ) -> Outcome<Result<api::UiTree, api::PluginError>> {
        let g = handle!(self, store, ui);
        let context = to_wit(context);
        Ok(g.call_render(store, &context).await.map(Convert::convert))
    }

    pub(crate) async fn handle_ui_action(
        &mut self,
        store: &mut Store<PluginState>,
        context: &api::RenderContext,
        action: &api::Action,
    ) -> Outcome<Result<api::ActionResult, api::PluginError>> {
        let g = handle!(self, store, ui);
        let context = to_wit(context);
        let action = to_wit(action);
        Ok(g.call_handle_action(store, &context, &action)
            .await
            .map(Convert::convert))
    }
}

// ---------------------------------------------------------------------------
// Conversions, both ways, field by field and case by case: a record's
// conversion names every field of the target and a variant's matches every
// case of the source, so the compiler checks that both sides agree.

shared_conversions!();

/// The 0.1.0 event kinds. Kinds a later API added have no 0.1.0 value:
/// a 0.1.x manifest cannot subscribe to them ([`Manifest`] validation),
/// and [`Guest::hook_before`] and [`Guest::hook_after`] never pass one on.
macro_rules! event_kinds_0_1 {
    ($($case:ident),* ; later: $($added:ident),*) => {
        impl Convert<api::EventKind> for hooks::EventKind {
            fn convert(self) -> api::EventKind {
                match self {
                    $( Self::$case => api::EventKind::$case, )*
                }
            }
        }

        /// `None` for a kind 0.1.0 does not have.
        fn event_kind_0_1(kind: api::EventKind) -> Option<hooks::EventKind> {
            match kind {
                $( api::EventKind::$case => Some(hooks::EventKind::$case), )*
                $( api::EventKind::$added => None, )*
            }
        }
    };
}

event_kinds_0_1! {
    UserCreate, UserUpdate, UserDelete, UserLogin, UserLogout,
    ServerCreate, ServerUpdate, ServerDelete, ServerInstall, ServerStart, ServerStop,
    ServerRestart, ServerKill, ServerStateChanged,
    NodeCreate, NodeDelete, NodeOnline, NodeOffline,
    PluginInstall, PluginActivate, PluginDeactivate, PluginUninstall,
    ConsoleCommand, ConsoleReady, ConsolePlayerJoined, ConsolePlayerLeft, ConsoleCrash,
    ScheduleTick;
    later: UserInvite, FileWrite, BackupCreate, BackupComplete, BackupRestore, BackupDelete,
        DatabaseCreate, DatabaseDelete, ServerSuspend, ServerUnsuspend, ServerTransfer
}

/// The 0.1.0 payloads. Payloads a later API added have no 0.1.0 value; they
/// come only with kinds 0.1.0 does not have either.
macro_rules! payloads_0_1 {
    ($($case:ident),* ; later: $($added:ident),*) => {
        impl Convert<api::Payload> for hooks::Payload {
            fn convert(self) -> api::Payload {
                match self {
                    $( Self::$case(x) => api::Payload::$case(x.convert()), )*
                }
            }
        }

        /// `None` for a payload 0.1.0 does not have.
        fn payload_0_1(payload: &api::Payload) -> Option<hooks::Payload> {
            match payload {
                $( api::Payload::$case(x) => Some(hooks::Payload::$case(to_wit(x))), )*
                $( api::Payload::$added(_) => None, )*
            }
        }
    };
}

payloads_0_1! {
    User, Server, Node, Plugin, Console, Schedule;
    later: File, Backup, Database, Suspension, Transfer
}

/// The 0.1.0 form of `event`; `None` for a kind 0.1.0 does not have.
fn event_0_1(event: &api::Event) -> Option<hooks::Event> {
    Some(hooks::Event {
        id: event.id.clone(),
        kind: event_kind_0_1(event.kind)?,
        occurred_at_ms: event.occurred_at_ms,
        actor: to_wit(&event.actor),
        payload: payload_0_1(&event.payload)?,
    })
}

records! {
    ui::RenderContext => RenderContext {
        contribution, server_id, user_id, permissions; later: server_permissions
    }
    auth_provider::Identity => Identity {
        subject, username, email, display_name, groups, claims; later: may_create_account
    }
    game_type::Variable => Variable {
        key, name, description, kind, default_value, user_viewable, user_editable, rules
    }
    game_type::PortRequest => PortRequest { name, protocol, primary, env }
    game_type::Platform => Platform { os, arch }
    game_type::GameInfo => GameInfo {
        id, name, version, description, variables, ports, platforms, features, min_memory_mb;
        later: images, startup_commands, file_denylist
    }
    game_type::AllocatedPort => AllocatedPort { name, ip, port }
    game_type::ServerContext => ServerContext {
        server_id, name, memory_mb, disk_mb, cpu_percent, variables, ports, platform;
        later: game_type, image, startup_command, node
    }
    game_type::FieldError => FieldError { key, message }
    game_type::Download => Download { url, sha256, destination, executable }
    game_type::Script => Script { interpreter, contents, env, timeout_secs }
    game_type::WriteFile => WriteFile { path, contents, mode }
    game_type::ConfigEdit => ConfigEdit { path, format, set; later: set_if }
    game_type::InstallPlan => InstallPlan { steps; later: image }
    game_type::StartupPlan => StartupPlan {
        program, args, env, working_dir, config_edits;
        later: console_context
    }
    game_type::StopPlan => StopPlan { method, grace_secs }

    game_console::PlayerStatus => PlayerStatus { online, max, players }
}

variants! {
    game_type::VariableType => VariableType { String, Integer, Boolean, Choice }
    game_type::ValidationRule => ValidationRule {
        Required, MinLength(x), MaxLength(x), Min(x), Max(x), Pattern(x), OneOf(x)
    }
    game_type::PortProtocol => PortProtocol { Tcp, Udp, TcpAndUdp }
    game_type::Os => Os { Linux, Windows, Macos }
    game_type::Arch => Arch { Amd64, Arm64 }
    game_type::ConfigFormat => ConfigFormat { Properties, Yaml, Json, Ini, Xml, Plain }
    game_type::InstallStep => InstallStep {
        Download(x), RunScript(x), WriteFile(x), EditConfig(x)
    }
    game_type::Signal => Signal { Interrupt, Terminate, Quit, Hangup, Kill }
    game_type::StopMethod => StopMethod { ConsoleCommand(x), SendSignal(x) }

    game_console::LineKind => LineKind {
        Plain, Ready, PlayerJoined(x), PlayerLeft(x), Warning(x), Crash(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_0_1_game_type_sees_the_ports_it_requested_and_no_extra_allocation() {
        let port = |name: &str, port: u16| api::AllocatedPort {
            name: name.into(),
            ip: "10.0.0.1".into(),
            port,
        };
        let context = api::ServerContext {
            server_id: "srv_1".into(),
            name: "Survival".into(),
            memory_mb: 1024,
            disk_mb: 1024,
            cpu_percent: 100,
            variables: Vec::new(),
            ports: vec![
                port("game", 25565),
                port("query", 25567),
                port("extra-1", 25566),
                port("extra-2", 25568),
            ],
            platform: api::Platform {
                os: api::Os::Linux,
                arch: api::Arch::Amd64,
            },
            game_type: "test-game".into(),
            image: None,
            startup_command: None,
            node: api::NodeContext::default(),
        };
        let seen = server_context(&context);
        let ports: Vec<(String, u16)> = seen.ports.into_iter().map(|p| (p.name, p.port)).collect();
        assert_eq!(
            ports,
            [("game".to_owned(), 25565), ("query".to_owned(), 25567)],
            "the ports it requested, not the extra allocations"
        );
    }
}
