//! Everything bound to `ctrl-alt-play:plugin@0.2.0` (`wit/plugin/since_v0.2.0`):
//! its bindings, the `Host` impls of its imports, the calls into its
//! exports, and the conversions between its types and [`crate::api`]. See
//! [`crate::wit`] for why this lives in one module.
//!
//! What 0.2.0 adds for game types: a plugin offers many game types
//! (`list-game-types`; calls about a server name its game type), each with
//! the images it runs in; install plans name their image; startup plans
//! carry a `console-context` the node hands back to every console call; and
//! the `game-catalogue` interface lets admins import game types as
//! documents (Pterodactyl and Pelican eggs through the egg bridge).
//! For auth providers, an identity says whether it may create an account
//! (`may-create-account`, the provider's sign-up rule; 0.1.0 identities
//! convert with `false`). Plugins may keep timers (the `timers`
//! interface, capability `timers`), which the host delivers to their own
//! after-hook as `schedule-tick` events, and with the `panel` scopes
//! `power` and `backups.create` queue power actions and start backups.
//! 0.2.0 is open for additions until this wave's operations issue ends;
//! then it freezes like 0.1.0.

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
        path: "../../wit/plugin/since_v0.2.0",
        world: "plugin",
        imports: { default: async },
        exports: { default: async },
    });
}

use bindings::Plugin as PluginWorld;
use bindings::ctrl_alt_play::plugin::{config, events, http, kv, log, panel, timers, types};
use bindings::exports::ctrl_alt_play::plugin::{
    auth_provider, game_catalogue, game_console, game_type, hooks, ui,
};

/// Interfaces of the package that 0.2.x components may import.
pub(crate) const IMPORTED_INTERFACES: &[&str] = &[
    "types", "log", "kv", "config", "http", "events", "panel", "timers",
];

/// Adds the 0.2.0 imports to `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    PluginWorld::add_to_linker::<PluginState, HasSelf<PluginState>>(linker, |s| s)
}

// ---------------------------------------------------------------------------
// Imports: thin adapters over the shared capability code.

host_imports!(kv: {
    async fn compare_and_swap(
        &mut self,
        key: String,
        expected: Option<Vec<u8>>,
        value: Option<Vec<u8>>,
    ) -> Result<bool, types::CapabilityError> {
        cap::kv::compare_and_swap(self, key, expected, value)
            .await
            .convert()
    }
}, panel: {
    async fn power_action(
        &mut self,
        server_id: String,
        action: panel::PowerSignal,
    ) -> Result<(), types::CapabilityError> {
        cap::panel::power_action(self, server_id, action.convert())
            .await
            .convert()
    }

    async fn create_backup(
        &mut self,
        server_id: String,
        name: Option<String>,
    ) -> Result<String, types::CapabilityError> {
        cap::panel::create_backup(self, server_id, name)
            .await
            .convert()
    }

    async fn suspend_server(
        &mut self,
        server_id: String,
        reason: String,
    ) -> Result<(), types::CapabilityError> {
        cap::panel::suspend_server(self, server_id, reason)
            .await
            .convert()
    }

    async fn unsuspend_server(
        &mut self,
        server_id: String,
    ) -> Result<(), types::CapabilityError> {
        cap::panel::unsuspend_server(self, server_id).await.convert()
    }
});

impl timers::Host for PluginState {
    async fn set(&mut self, key: String, at_ms: u64) -> Result<(), types::CapabilityError> {
        cap::timers::set(self, key, at_ms).await.convert()
    }

    async fn cancel(&mut self, key: String) -> Result<bool, types::CapabilityError> {
        cap::timers::cancel(self, key).await.convert()
    }

    async fn list(
        &mut self,
        prefix: String,
        limit: u32,
    ) -> Result<Vec<timers::Timer>, types::CapabilityError> {
        cap::timers::list(self, prefix, limit).await.convert()
    }
}

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
    game_catalogue: Option<game_catalogue::GuestIndices>,
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
                PluginKind::GameCatalogue => {
                    exports.game_catalogue = Some(
                        game_catalogue::GuestIndices::new(pre)
                            .map_err(|_| missing(*kind, "game-catalogue"))?,
                    );
                }
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
    game_catalogue: Option<game_catalogue::Guest>,
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
            game_catalogue: None,
        }
    }

    pub(crate) async fn list_game_types(
        &mut self,
        store: &mut Store<PluginState>,
    ) -> Outcome<Vec<api::GameInfo>> {
        let g = handle!(self, store, game_type);
        Ok(g.call_list_game_types(store).await.map(Convert::convert))
    }

    pub(crate) async fn validate_variables(
        &mut self,
        store: &mut Store<PluginState>,
        game_type: &str,
        variables: &[api::KeyValue],
    ) -> Outcome<Result<(), Vec<api::FieldError>>> {
        let g = handle!(self, store, game_type);
        let variables: Vec<types::KeyValue> = to_wit_all(variables);
        Ok(g.call_validate(store, game_type, &variables)
            .await
            .map(Convert::convert))
    }

    pub(crate) async fn install_plan(
        &mut self,
        store: &mut Store<PluginState>,
        server: &api::ServerContext,
    ) -> Outcome<Result<api::InstallPlan, api::PluginError>> {
        let g = handle!(self, store, game_type);
        let server = to_wit(server);
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
        let server = to_wit(server);
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
        let server = to_wit(server);
        Ok(g.call_plan_stop(store, &server).await.map(Convert::convert))
    }

    pub(crate) async fn classify_line(
        &mut self,
        store: &mut Store<PluginState>,
        context: &str,
        line: &str,
    ) -> Outcome<api::LineKind> {
        let g = handle!(self, store, game_console);
        Ok(g.call_classify_line(store, context, line)
            .await
            .map(Convert::convert))
    }

    pub(crate) async fn status_command(
        &mut self,
        store: &mut Store<PluginState>,
        context: &str,
    ) -> Outcome<Option<String>> {
        let g = handle!(self, store, game_console);
        Ok(g.call_status_command(store, context).await)
    }

    pub(crate) async fn parse_status(
        &mut self,
        store: &mut Store<PluginState>,
        context: &str,
        lines: &[String],
    ) -> Outcome<Option<api::PlayerStatus>> {
        let g = handle!(self, store, game_console);
        Ok(g.call_parse_status(store, context, lines)
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
        let event = to_wit(event);
        Ok(g.call_before(store, &event).await.map(Convert::convert))
    }

    pub(crate) async fn hook_after(
        &mut self,
        store: &mut Store<PluginState>,
        event: &api::Event,
    ) -> Outcome<Result<(), api::PluginError>> {
        let g = handle!(self, store, hooks);
        let event = to_wit(event);
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
    pub(crate) async fn backup_plan(
        &mut self,
        store: &mut Store<PluginState>,
        server: &api::ServerContext,
    ) -> Outcome<Option<api::BackupCommands>> {
        let g = handle!(self, store, game_type);
        let server = to_wit(server);
        Ok(g.call_plan_backup(store, &server)
            .await
            .map(Convert::convert))
    }

    pub(crate) async fn catalogue_preview(
        &mut self,
        store: &mut Store<PluginState>,
        document: &[u8],
    ) -> Outcome<Result<api::CatalogueEntry, api::CatalogueError>> {
        let g = handle!(self, store, game_catalogue);
        Ok(g.call_preview(store, document).await.map(Convert::convert))
    }

    pub(crate) async fn catalogue_import(
        &mut self,
        store: &mut Store<PluginState>,
        document: &[u8],
        replace: bool,
    ) -> Outcome<Result<api::CatalogueEntry, api::CatalogueError>> {
        let g = handle!(self, store, game_catalogue);
        Ok(g.call_import_document(store, document, replace)
            .await
            .map(Convert::convert))
    }

    pub(crate) async fn catalogue_entries(
        &mut self,
        store: &mut Store<PluginState>,
    ) -> Outcome<Vec<api::CatalogueEntry>> {
        let g = handle!(self, store, game_catalogue);
        Ok(g.call_list_entries(store).await.map(Convert::convert))
    }

    pub(crate) async fn catalogue_export(
        &mut self,
        store: &mut Store<PluginState>,
        game_type: &str,
    ) -> Outcome<Result<Vec<u8>, api::CatalogueError>> {
        let g = handle!(self, store, game_catalogue);
        Ok(g.call_export_document(store, game_type)
            .await
            .map(Convert::convert))
    }

    pub(crate) async fn catalogue_check_update(
        &mut self,
        store: &mut Store<PluginState>,
        game_type: &str,
    ) -> Outcome<Result<api::CatalogueUpdate, api::CatalogueError>> {
        let g = handle!(self, store, game_catalogue);
        Ok(g.call_check_update(store, game_type)
            .await
            .map(Convert::convert))
    }

    pub(crate) async fn catalogue_remove(
        &mut self,
        store: &mut Store<PluginState>,
        game_type: &str,
    ) -> Outcome<Result<(), api::CatalogueError>> {
        let g = handle!(self, store, game_catalogue);
        Ok(g.call_remove(store, game_type).await.map(Convert::convert))
    }
}

// ---------------------------------------------------------------------------
// Conversions, both ways, field by field and case by case: a record's
// conversion names every field of the target and a variant's matches every
// case of the source, so the compiler checks that both sides agree.

shared_conversions!();

variants! {
    panel::PowerSignal => PowerSignal { Start, Stop, Restart, Kill }
    hooks::EventKind => EventKind {
        UserCreate, UserUpdate, UserDelete, UserLogin, UserLogout,
        ServerCreate, ServerUpdate, ServerDelete, ServerInstall, ServerStart, ServerStop,
        ServerRestart, ServerKill, ServerStateChanged,
        NodeCreate, NodeDelete, NodeOnline, NodeOffline,
        PluginInstall, PluginActivate, PluginDeactivate, PluginUninstall,
        ConsoleCommand, ConsoleReady, ConsolePlayerJoined, ConsolePlayerLeft, ConsoleCrash,
        ScheduleTick, UserInvite, FileWrite, BackupCreate, BackupComplete, BackupRestore,
        BackupDelete, DatabaseCreate, DatabaseDelete, ServerSuspend, ServerUnsuspend,
        ServerTransfer
    }
    hooks::Payload => Payload {
        User(x), Server(x), Node(x), Plugin(x), Console(x), Schedule(x), File(x), Backup(x),
        Database(x), Suspension(x), Transfer(x)
    }
}

records! {
    timers::Timer => Timer { key, at_ms }
    hooks::Event => Event { id, kind, occurred_at_ms, actor, payload }
    hooks::FileInfo => FileInfo { server_id, action, paths, via }
    hooks::BackupInfo => BackupInfo {
        server_id, id, name, state, size_bytes, sha256, reason, locked
    }
    hooks::DatabaseInfo => DatabaseInfo {
        server_id, id, name, host_id, host_kind, username, remote
    }
    hooks::SuspensionInfo => SuspensionInfo { server, reason }
    hooks::TransferInfo => TransferInfo { server, id, from_node, to_node, state, reason }
    ui::RenderContext => RenderContext {
        contribution, server_id, user_id, permissions, server_permissions
    }
    game_type::Variable => Variable {
        key, name, description, kind, default_value, user_viewable, user_editable, rules
    }
    game_type::PortRequest => PortRequest { name, protocol, primary, env }
    game_type::Platform => Platform { os, arch }
    game_type::Image => Image { name, reference }
    game_type::GameInfo => GameInfo {
        id, name, version, description, variables, ports, platforms, features, min_memory_mb,
        images, startup_commands, file_denylist
    }
    game_type::AllocatedPort => AllocatedPort { name, ip, port }
    game_type::ServerContext => ServerContext {
        server_id, name, memory_mb, disk_mb, cpu_percent, variables, ports, platform,
        game_type, image, startup_command, node
    }
    game_type::NodeContext => NodeContext { name, address, host_address }
    game_type::FieldError => FieldError { key, message }
    game_type::Download => Download { url, sha256, destination, executable }
    game_type::Script => Script { interpreter, contents, env, timeout_secs }
    game_type::WriteFile => WriteFile { path, contents, mode }
    game_type::ConfigEdit => ConfigEdit { path, format, set, set_if }
    game_type::ConditionalSet => ConditionalSet { key, if_value, value }
    game_type::InstallPlan => InstallPlan { steps, image }
    game_type::StartupPlan => StartupPlan {
        program, args, env, working_dir, config_edits, console_context
    }
    game_type::StopPlan => StopPlan { method, grace_secs }
    game_type::BackupCommands => BackupCommands { before, settle_ms, after }

    game_console::PlayerStatus => PlayerStatus { online, max, players }

    auth_provider::Identity => Identity {
        subject, username, email, display_name, groups, claims, may_create_account
    }

    game_catalogue::Entry => CatalogueEntry { game, format, update_url, unsupported }
    game_catalogue::Update => CatalogueUpdate { document, changes }
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

    game_catalogue::CatalogueError => CatalogueError {
        Invalid(x), Exists(x), NotFound(x), Failed(x)
    }
}
