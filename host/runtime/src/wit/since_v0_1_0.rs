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

impl types::Host for PluginState {}

impl log::Host for PluginState {
    async fn log(&mut self, level: log::Level, target: String, message: String) {
        cap::log::log(self, level.convert(), &target, &message);
    }
}

impl kv::Host for PluginState {
    async fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, types::CapabilityError> {
        cap::kv::get(self, key).await.convert()
    }

    async fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), types::CapabilityError> {
        cap::kv::set(self, key, value).await.convert()
    }

    async fn delete(&mut self, key: String) -> Result<bool, types::CapabilityError> {
        cap::kv::delete(self, key).await.convert()
    }

    async fn list_keys(
        &mut self,
        prefix: String,
        limit: u32,
    ) -> Result<Vec<String>, types::CapabilityError> {
        cap::kv::list_keys(self, prefix, limit).await.convert()
    }
}

impl config::Host for PluginState {
    async fn get(&mut self, key: String) -> Result<Option<String>, types::CapabilityError> {
        cap::config::get(self, key).await.convert()
    }

    async fn get_secret(&mut self, key: String) -> Result<Option<String>, types::CapabilityError> {
        cap::config::get_secret(self, key).await.convert()
    }
}

impl http::Host for PluginState {
    async fn fetch(&mut self, request: http::Request) -> Result<http::Response, http::HttpError> {
        cap::http::fetch(self, request.convert()).await.convert()
    }
}

impl events::Host for PluginState {
    async fn publish(
        &mut self,
        topic: String,
        payload: String,
    ) -> Result<(), types::CapabilityError> {
        cap::events::publish(self, topic, payload).await.convert()
    }
}

impl panel::Host for PluginState {
    async fn list_servers(&mut self) -> Result<Vec<panel::ServerSummary>, types::CapabilityError> {
        cap::panel::list_servers(self).await.convert()
    }

    async fn get_server(
        &mut self,
        id: String,
    ) -> Result<panel::ServerSummary, types::CapabilityError> {
        cap::panel::get_server(self, id).await.convert()
    }

    async fn send_console_command(
        &mut self,
        server_id: String,
        command: String,
    ) -> Result<(), types::CapabilityError> {
        cap::panel::send_console_command(self, server_id, command)
            .await
            .convert()
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

    pub(crate) async fn describe_game(
        &mut self,
        store: &mut Store<PluginState>,
    ) -> Outcome<api::GameInfo> {
        let g = handle!(self, store, game_type);
        Ok(g.call_describe(store).await.map(Convert::convert))
    }

    pub(crate) async fn validate_variables(
        &mut self,
        store: &mut Store<PluginState>,
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
    ) -> Outcome<Option<String>> {
        let g = handle!(self, store, game_console);
        Ok(g.call_status_command(store).await)
    }

    pub(crate) async fn parse_status(
        &mut self,
        store: &mut Store<PluginState>,
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
}

// ---------------------------------------------------------------------------
// Conversions, both ways, field by field and case by case: a record's
// conversion names every field of the target and a variant's matches every
// case of the source, so the compiler checks that both sides agree.

/// Records: `module::WitName => ApiName { fields }`.
macro_rules! records {
    ($( $module:ident :: $wit:ident => $api:ident { $($field:ident),* $(,)? } )*) => {$(
        impl Convert<api::$api> for $module::$wit {
            fn convert(self) -> api::$api {
                api::$api { $( $field: self.$field.convert(), )* }
            }
        }

        impl Convert<$module::$wit> for api::$api {
            fn convert(self) -> $module::$wit {
                $module::$wit { $( $field: self.$field.convert(), )* }
            }
        }
    )*};
}

/// Variants and enums: `module::WitName => ApiName { Case(payload), Case }`.
macro_rules! variants {
    ($( $module:ident :: $wit:ident => $api:ident { $($case:ident $(($x:ident))?),* $(,)? } )*) => {$(
        impl Convert<api::$api> for $module::$wit {
            fn convert(self) -> api::$api {
                match self {
                    $( Self::$case $(($x))? => api::$api::$case $(($x.convert()))?, )*
                }
            }
        }

        impl Convert<$module::$wit> for api::$api {
            fn convert(self) -> $module::$wit {
                match self {
                    $( Self::$case $(($x))? => $module::$wit::$case $(($x.convert()))?, )*
                }
            }
        }
    )*};
}

records! {
    types::KeyValue => KeyValue { key, value }
    types::PluginError => PluginError { code, message }

    http::Request => HttpRequest { method, url, headers, body, timeout_ms }
    http::Response => HttpResponse { status, headers, body }

    panel::ServerSummary => ServerSummary { id, name, owner_id, node_id, game_type, state }

    game_type::Variable => Variable {
        key, name, description, kind, default_value, user_viewable, user_editable, rules
    }
    game_type::PortRequest => PortRequest { name, protocol, primary, env }
    game_type::Platform => Platform { os, arch }
    game_type::GameInfo => GameInfo {
        id, name, version, description, variables, ports, platforms, features, min_memory_mb
    }
    game_type::AllocatedPort => AllocatedPort { name, ip, port }
    game_type::ServerContext => ServerContext {
        server_id, name, memory_mb, disk_mb, cpu_percent, variables, ports, platform
    }
    game_type::FieldError => FieldError { key, message }
    game_type::Download => Download { url, sha256, destination, executable }
    game_type::Script => Script { interpreter, contents, env, timeout_secs }
    game_type::WriteFile => WriteFile { path, contents, mode }
    game_type::ConfigEdit => ConfigEdit { path, format, set }
    game_type::InstallPlan => InstallPlan { steps }
    game_type::StartupPlan => StartupPlan { program, args, env, working_dir, config_edits }
    game_type::StopPlan => StopPlan { method, grace_secs }

    game_console::PlayerStatus => PlayerStatus { online, max, players }

    auth_provider::ProviderInfo => ProviderInfo { id, name, kind, description }
    auth_provider::PasswordCredentials => PasswordCredentials { username, password, second_factor }
    auth_provider::Identity => Identity {
        subject, username, email, display_name, groups, claims
    }
    auth_provider::LoginRedirect => LoginRedirect { authorize_url, state }

    hooks::UserInfo => UserInfo { id, username, email, admin }
    hooks::ServerInfo => ServerInfo {
        id, name, owner_id, node_id, game_type, memory_mb, disk_mb, cpu_percent, variables, state
    }
    hooks::NodeInfo => NodeInfo { id, name, address }
    hooks::PluginRef => PluginRef { id, version }
    hooks::ConsoleInfo => ConsoleInfo { server_id, line, detail }
    hooks::ScheduleInfo => ScheduleInfo { name, server_id }
    hooks::Actor => Actor { user_id, ip, request_id }
    hooks::Event => Event { id, kind, occurred_at_ms, actor, payload }

    ui::Button => Button { label, action, tone, confirm }
    ui::FormField => FormField { name, label, kind, value, options, required }
    ui::Form => Form { fields, submit }
    ui::TableRow => TableRow { cells, actions }
    ui::Table => Table { columns, rows }
    ui::Series => Series { name, points }
    ui::Chart => Chart { kind, series }
    ui::Node => Node { element, children }
    ui::UiTree => UiTree { root, nodes }
    ui::RenderContext => RenderContext { contribution, server_id, user_id, permissions }
    ui::Action => Action { name, values }
}

variants! {
    types::CapabilityError => CapabilityError {
        Denied(x), NotFound(x), Invalid(x), LimitExceeded(x), Unavailable(x)
    }

    log::Level => LogLevel { Trace, Debug, Info, Warn, Error }

    http::Method => HttpMethod { Get, Head, Post, Put, Patch, Delete }
    http::HttpError => HttpError {
        Denied(x), InvalidRequest(x), Timeout, Transport(x), TooLarge
    }

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

    auth_provider::ProviderKind => ProviderKind { Password, Redirect, Token }
    auth_provider::Credentials => Credentials { Password(x), Token(x) }
    auth_provider::AuthError => AuthError {
        InvalidCredentials, Locked(x), NeedsSecondFactor, ProviderUnavailable(x), Unsupported,
        PolicyViolation(x), InvalidRequest(x)
    }

    hooks::EventKind => EventKind {
        UserCreate, UserUpdate, UserDelete, UserLogin, UserLogout,
        ServerCreate, ServerUpdate, ServerDelete, ServerInstall, ServerStart, ServerStop,
        ServerRestart, ServerKill, ServerStateChanged,
        NodeCreate, NodeDelete, NodeOnline, NodeOffline,
        PluginInstall, PluginActivate, PluginDeactivate, PluginUninstall,
        ConsoleCommand, ConsoleReady, ConsolePlayerJoined, ConsolePlayerLeft, ConsoleCrash,
        ScheduleTick
    }
    hooks::Payload => Payload {
        User(x), Server(x), Node(x), Plugin(x), Console(x), Schedule(x)
    }
    hooks::Verdict => Verdict { Allow, Deny(x), Modify(x) }

    ui::Tone => Tone { Neutral, Info, Success, Warning, Danger }
    ui::FieldKind => FieldKind { Text, Number, Toggle, Select, Secret }
    ui::ChartKind => ChartKind { Line, Bar }
    ui::Element => Element {
        Section(x), Row, Heading(x), Text(x), Badge(x), Stat(x), Alert(x), Button(x), Form(x),
        Table(x), Chart(x), Divider
    }
    ui::ActionResult => ActionResult { Refresh, Notify(x) }
}
