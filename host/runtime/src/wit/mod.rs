//! The WIT glue: everything bound to a version of the WIT package
//! `ctrl-alt-play:plugin`, one module per version, and the one enum the rest
//! of the host dispatches through.
//!
//! # The decision
//!
//! Each released WIT version is a frozen folder (`wit/plugin/since_v0.1.0/`,
//! never edited once released, byte for byte) and has exactly one host
//! module here, named after it (`since_v0_1_0.rs`, as Zed keeps its
//! extension API). That module holds, for its version and nothing else:
//!
//! - the `bindgen!` invocation (the only one in the crate for that version);
//! - the `Host` trait impls of the version's imports (`log`, `kv`, `config`,
//!   `http`, `events`, `panel`): each converts the generated arguments into
//!   the version-neutral types of [`crate::api`], calls the shared
//!   capability code in [`crate::capabilities`] and converts the answer back;
//! - the calls into the version's exports (`game-type`, `game-console`,
//!   `auth-provider`, `hooks`, `ui`), converting the same way;
//! - the conversions between its generated types and [`crate::api`].
//!
//! Nothing outside `src/wit/` names a version module or a generated path,
//! and nothing in this file names a generated path; a test scans the source
//! tree to keep it so. The capability modules hold the logic every version
//! shares (grants, limits, deadlines) and see only [`crate::api`] types.
//!
//! # Dispatch
//!
//! A component declares the version it targets (the
//! `ctrl-alt-play:api-version` custom section, read by
//! [`crate::component::inspect`]), which picks an [`ApiVersion`]. The linker
//! carries the imports of every served version side by side (their
//! interface names differ by version), so linking needs no choice; after
//! linking, [`Exports::new`] looks the version's exports up once per plugin
//! and [`Exports::guest`] wraps each instance in a [`Guest`] of the same
//! version. Every call matches on the version and converts; callers see
//! [`crate::api`] types only.
//!
//! # The versions served, and how the next one joins
//!
//! 0.1.0 (frozen) and 0.2.0 (open for additions until this wave's
//! operations issue ends, then frozen) are served side by side. A version
//! joins like 0.2.0 did:
//!
//! 1. Copy the newest `wit/plugin/since_vX/` to a new folder and make the
//!    changes there. Released folders stay byte for byte (a test checks
//!    0.1.0's hash): components built against them keep loading unchanged.
//! 2. Add its module beside this file: its `bindgen!`, `host_imports!()` for
//!    the imports that kept their shape (its own impls for the rest), its
//!    export calls, `shared_conversions!()` and the conversions of what it
//!    changed.
//! 3. Extend [`crate::api`] with what it adds (new fields with a default,
//!    new cases as new variants); older versions convert with the new
//!    fields listed after `later:` in their `records!`, which fills them
//!    with their defaults.
//! 4. Add its variant to [`ApiVersion`], [`Exports`] and [`Guest`], one
//!    match arm each in the dispatch below (calls into interfaces it
//!    introduces answer [`ExportError::Missing`] for older versions), and
//!    widen [`SUPPORTED`] and [`LATEST`]. New shared capability logic goes
//!    into [`crate::capabilities`] once, for every version.

/// The `Host` impls of the imports every served version shares in shape
/// (`log`, `kv`, `config`, `http`, `events`, `panel`), expanded in each
/// version module against its own generated modules: each converts into
/// [`crate::api`], calls the shared capability code and converts back.
/// Functions a version added to `kv` (0.2.0's `compare-and-swap`) or
/// `panel` (0.2.0's `power-action`, `create-backup`, `suspend-server` and
/// `unsuspend-server`) are passed in as `kv: { … }` and `panel: { … }`
/// and join the shared ones.
macro_rules! host_imports {
    () => {
        host_imports!(kv: {}, panel: {});
    };
    (kv: { $($kv_added:item)* }, panel: { $($panel_added:item)* }) => {
        impl types::Host for PluginState {}

        impl log::Host for PluginState {
            async fn log(&mut self, level: log::Level, target: String, message: String) {
                cap::log::log(self, level.convert(), &target, &message);
            }
        }

        impl kv::Host for PluginState {
            async fn get(
                &mut self,
                key: String,
            ) -> Result<Option<Vec<u8>>, types::CapabilityError> {
                cap::kv::get(self, key).await.convert()
            }

            async fn set(
                &mut self,
                key: String,
                value: Vec<u8>,
            ) -> Result<(), types::CapabilityError> {
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

            $($kv_added)*
        }

        impl config::Host for PluginState {
            async fn get(&mut self, key: String) -> Result<Option<String>, types::CapabilityError> {
                cap::config::get(self, key).await.convert()
            }

            async fn get_secret(
                &mut self,
                key: String,
            ) -> Result<Option<String>, types::CapabilityError> {
                cap::config::get_secret(self, key).await.convert()
            }
        }

        impl http::Host for PluginState {
            async fn fetch(
                &mut self,
                request: http::Request,
            ) -> Result<http::Response, http::HttpError> {
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
            async fn list_servers(
                &mut self,
            ) -> Result<Vec<panel::ServerSummary>, types::CapabilityError> {
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

            $($panel_added)*
        }
    };
}

/// Records: `module::WitName => ApiName { fields }`. Fields a later
/// version added to the [`crate::api`] type follow `; later:` and take
/// their default when an older version's value converts.
macro_rules! records {
    ($( $module:ident :: $wit:ident => $api:ident {
        $($field:ident),* $(; later: $($added:ident),*)? $(,)?
    } )*) => {$(
        impl Convert<api::$api> for $module::$wit {
            fn convert(self) -> api::$api {
                api::$api {
                    $( $field: self.$field.convert(), )*
                    $($( $added: Default::default(), )*)?
                }
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

/// The conversions of the interfaces every served version shares in shape
/// (all but `game-type`, `game-console` and `game-catalogue`), expanded in
/// each version module. A record's conversion names every field of the
/// target and a variant's matches every case of the source, so the compiler
/// checks that both sides agree, version by version.
macro_rules! shared_conversions {
    () => {
        records! {
            types::KeyValue => KeyValue { key, value }
            types::PluginError => PluginError { code, message }

            http::Request => HttpRequest { method, url, headers, body, timeout_ms }
            http::Response => HttpResponse { status, headers, body }

            panel::ServerSummary => ServerSummary { id, name, owner_id, node_id, game_type, state }

            auth_provider::ProviderInfo => ProviderInfo { id, name, kind, description }
            auth_provider::PasswordCredentials => PasswordCredentials {
                username, password, second_factor
            }
            auth_provider::LoginRedirect => LoginRedirect { authorize_url, state }

            hooks::UserInfo => UserInfo { id, username, email, admin }
            hooks::ServerInfo => ServerInfo {
                id, name, owner_id, node_id, game_type, memory_mb, disk_mb, cpu_percent,
                variables, state
            }
            hooks::NodeInfo => NodeInfo { id, name, address }
            hooks::PluginRef => PluginRef { id, version }
            hooks::ConsoleInfo => ConsoleInfo { server_id, line, detail }
            hooks::ScheduleInfo => ScheduleInfo { name, server_id }
            hooks::Actor => Actor { user_id, ip, request_id }

            ui::Button => Button { label, action, tone, confirm }
            ui::FormField => FormField { name, label, kind, value, options, required }
            ui::Form => Form { fields, submit }
            ui::TableRow => TableRow { cells, actions }
            ui::Table => Table { columns, rows }
            ui::Series => Series { name, points }
            ui::Chart => Chart { kind, series }
            ui::Node => Node { element, children }
            ui::UiTree => UiTree { root, nodes }
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

            auth_provider::ProviderKind => ProviderKind { Password, Redirect, Token }
            auth_provider::Credentials => Credentials { Password(x), Token(x) }
            auth_provider::AuthError => AuthError {
                InvalidCredentials, Locked(x), NeedsSecondFactor, ProviderUnavailable(x),
                Unsupported, PolicyViolation(x), InvalidRequest(x)
            }

            hooks::Verdict => Verdict { Allow, Deny(x), Modify(x) }

            ui::Tone => Tone { Neutral, Info, Success, Warning, Danger }
            ui::FieldKind => FieldKind { Text, Number, Toggle, Select, Secret }
            ui::ChartKind => ChartKind { Line, Bar }
            ui::Element => Element {
                Section(x), Row, Heading(x), Text(x), Badge(x), Stat(x), Alert(x), Button(x),
                Form(x), Table(x), Chart(x), Divider
            }
            ui::ActionResult => ActionResult { Refresh, Notify(x) }
        }
    };
}

mod since_v0_1_0;
mod since_v0_2_0;

use std::sync::Arc;

use wasmtime::Store;
use wasmtime::component::{Instance, InstancePre, Linker};

use crate::api;
use crate::error::LoadError;
use crate::manifest::Manifest;
use crate::plugin::PluginState;

/// Human-readable range of supported versions.
pub const SUPPORTED: &str = ">=0.1.0, <0.3.0";

/// The newest API version (what `cap plugin new` targets).
pub const LATEST: &str = "0.2.0";

/// Interfaces of our package that components of the newest version may
/// import.
pub const IMPORTED_INTERFACES: &[&str] = since_v0_2_0::IMPORTED_INTERFACES;

/// The WIT package versions this host serves, one variant per module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiVersion {
    /// `ctrl-alt-play:plugin@0.1.x`, bound by `since_v0_1_0.rs`.
    V0_1_0,
    /// `ctrl-alt-play:plugin@0.2.x`, bound by `since_v0_2_0.rs`.
    V0_2_0,
}

impl ApiVersion {
    /// Picks the module serving `version`, or refuses it naming the
    /// supported range.
    pub fn for_version(version: &semver::Version) -> Result<Self, LoadError> {
        match (version.major, version.minor, version.pre.is_empty()) {
            (0, 1, true) => Ok(Self::V0_1_0),
            (0, 2, true) => Ok(Self::V0_2_0),
            _ => Err(LoadError::UnsupportedApiVersion {
                found: version.clone(),
                supported: SUPPORTED.to_string(),
            }),
        }
    }

    /// The newest supported version.
    pub fn latest() -> semver::Version {
        semver::Version::new(0, 2, 0)
    }

    /// One version of each compatibility line served (0.1.x, 0.2.x), oldest
    /// first: what a Panel tells the Marketplace's resolver it runs.
    pub fn served() -> Vec<semver::Version> {
        vec![semver::Version::new(0, 1, 0), semver::Version::new(0, 2, 0)]
    }

    /// Interfaces of our package that components of this version may import.
    pub fn imported_interfaces(self) -> &'static [&'static str] {
        match self {
            Self::V0_1_0 => since_v0_1_0::IMPORTED_INTERFACES,
            Self::V0_2_0 => since_v0_2_0::IMPORTED_INTERFACES,
        }
    }
}

/// Converts between a version's generated types and [`crate::api`]; each
/// version module implements it both ways for its own types.
pub(crate) trait Convert<T> {
    /// The value as a `T`.
    fn convert(self) -> T;
}

/// Scalars and strings are the same in every version.
macro_rules! unchanged {
    ($($ty:ty),*) => {$(
        impl Convert<$ty> for $ty {
            fn convert(self) -> $ty {
                self
            }
        }
    )*};
}

unchanged!((), bool, u8, u16, u32, u64, i64, f64, String);

impl<A: Convert<B>, B> Convert<Vec<B>> for Vec<A> {
    fn convert(self) -> Vec<B> {
        self.into_iter().map(Convert::convert).collect()
    }
}

impl<A: Convert<B>, B> Convert<Option<B>> for Option<A> {
    fn convert(self) -> Option<B> {
        self.map(Convert::convert)
    }
}

impl<A: Convert<C>, B: Convert<D>, C, D> Convert<(C, D)> for (A, B) {
    fn convert(self) -> (C, D) {
        (self.0.convert(), self.1.convert())
    }
}

impl<T: Convert<U>, E: Convert<F>, U, F> Convert<Result<U, F>> for Result<T, E> {
    fn convert(self) -> Result<U, F> {
        match self {
            Ok(value) => Ok(value.convert()),
            Err(error) => Err(error.convert()),
        }
    }
}

/// Adds the imports of every served version to `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    since_v0_1_0::add_to_linker(linker)?;
    since_v0_2_0::add_to_linker(linker)
}

/// Why an export could not be called at all (as opposed to a call that ran
/// and failed, which the caller classifies).
#[derive(Debug)]
pub(crate) enum ExportError {
    /// The plugin does not export the interface (its manifest did not
    /// declare the kind).
    Missing,
    /// The instance's export could not be looked up.
    Load(wasmtime::Error),
}

/// A plugin's exports, looked up once per plugin for its version.
#[derive(Clone)]
pub(crate) enum Exports {
    /// `ctrl-alt-play:plugin@0.1.x`.
    V0_1_0(Arc<since_v0_1_0::Exports>),
    /// `ctrl-alt-play:plugin@0.2.x`.
    V0_2_0(Arc<since_v0_2_0::Exports>),
}

impl Exports {
    /// Looks up the exports of every kind `manifest` declares, failing with
    /// [`LoadError::MissingExport`] naming the first one absent.
    pub(crate) fn new(
        version: ApiVersion,
        pre: &InstancePre<PluginState>,
        manifest: &Manifest,
    ) -> Result<Self, LoadError> {
        Ok(match version {
            ApiVersion::V0_1_0 => {
                Self::V0_1_0(Arc::new(since_v0_1_0::Exports::new(pre, manifest)?))
            }
            ApiVersion::V0_2_0 => {
                Self::V0_2_0(Arc::new(since_v0_2_0::Exports::new(pre, manifest)?))
            }
        })
    }

    /// Wraps a fresh instance of the plugin.
    pub(crate) fn guest(&self, instance: Instance) -> Guest {
        match self {
            Self::V0_1_0(exports) => {
                Guest::V0_1_0(since_v0_1_0::Guest::new(Arc::clone(exports), instance))
            }
            Self::V0_2_0(exports) => {
                Guest::V0_2_0(since_v0_2_0::Guest::new(Arc::clone(exports), instance))
            }
        }
    }
}

/// One instance of a plugin, of its version. Export handles are looked up
/// on the first call of each interface, so a fresh instance pays only for
/// what it calls.
pub(crate) enum Guest {
    /// `ctrl-alt-play:plugin@0.1.x`.
    V0_1_0(since_v0_1_0::Guest),
    /// `ctrl-alt-play:plugin@0.2.x`.
    V0_2_0(since_v0_2_0::Guest),
}

/// The calls into a plugin: each matches on the version and converts. The
/// outer `Result` says whether the export could be called, the inner one
/// how the call went.
macro_rules! guest_calls {
    ($(
        $(#[$doc:meta])*
        fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty;
    )*) => {
        impl Guest {$(
            $(#[$doc])*
            pub(crate) async fn $name(
                &mut self,
                store: &mut Store<PluginState>,
                $($arg: $ty),*
            ) -> Result<wasmtime::Result<$ret>, ExportError> {
                match self {
                    Self::V0_1_0(guest) => guest.$name(store, $($arg),*).await,
                    Self::V0_2_0(guest) => guest.$name(store, $($arg),*).await,
                }
            }
        )*}
    };
}

guest_calls! {
    /// `game-type.list-game-types` (0.1.x: `describe`, as a list of one).
    fn list_game_types() -> Vec<api::GameInfo>;
    /// `game-type.validate`.
    fn validate_variables(
        game_type: &str,
        variables: &[api::KeyValue]
    ) -> Result<(), Vec<api::FieldError>>;
    /// `game-type.plan-install`.
    fn install_plan(server: &api::ServerContext) -> Result<api::InstallPlan, api::PluginError>;
    /// `game-type.plan-startup`.
    fn startup_plan(server: &api::ServerContext) -> Result<api::StartupPlan, api::PluginError>;
    /// `game-type.plan-stop`.
    fn stop_plan(server: &api::ServerContext) -> api::StopPlan;
    /// `game-console.classify-line`.
    fn classify_line(context: &str, line: &str) -> api::LineKind;
    /// `game-console.status-command`.
    fn status_command(context: &str) -> Option<String>;
    /// `game-console.parse-status`.
    fn parse_status(context: &str, lines: &[String]) -> Option<api::PlayerStatus>;
    /// `auth-provider.describe`.
    fn describe_auth() -> api::ProviderInfo;
    /// `auth-provider.authenticate`.
    fn authenticate(credentials: &api::Credentials) -> Result<api::Identity, api::AuthError>;
    /// `auth-provider.begin-login`.
    fn begin_login(callback_url: &str) -> Result<api::LoginRedirect, api::AuthError>;
    /// `auth-provider.complete-login`.
    fn complete_login(
        state: &str,
        params: &[api::KeyValue]
    ) -> Result<api::Identity, api::AuthError>;
    /// `auth-provider.set-password`.
    fn set_password(username: &str, password: &str) -> Result<(), api::AuthError>;
    /// `hooks.before`.
    fn hook_before(event: &api::Event) -> api::Verdict;
    /// `hooks.after`.
    fn hook_after(event: &api::Event) -> Result<(), api::PluginError>;
    /// `ui.render`.
    fn render_ui(context: &api::RenderContext) -> Result<api::UiTree, api::PluginError>;
    /// `ui.handle-action`.
    fn handle_ui_action(
        context: &api::RenderContext,
        action: &api::Action
    ) -> Result<api::ActionResult, api::PluginError>;
}

/// The calls into interfaces a version introduced: versions before it
/// answer [`ExportError::Missing`], as for an undeclared kind.
macro_rules! guest_calls_since_0_2 {
    ($(
        $(#[$doc:meta])*
        fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty;
    )*) => {
        impl Guest {$(
            $(#[$doc])*
            pub(crate) async fn $name(
                &mut self,
                store: &mut Store<PluginState>,
                $($arg: $ty),*
            ) -> Result<wasmtime::Result<$ret>, ExportError> {
                match self {
                    Self::V0_1_0(_) => Err(ExportError::Missing),
                    Self::V0_2_0(guest) => guest.$name(store, $($arg),*).await,
                }
            }
        )*}
    };
}

guest_calls_since_0_2! {
    /// `game-type.plan-backup`.
    fn backup_plan(server: &api::ServerContext) -> Option<api::BackupCommands>;
    /// `game-catalogue.preview`.
    fn catalogue_preview(document: &[u8]) -> Result<api::CatalogueEntry, api::CatalogueError>;
    /// `game-catalogue.import-document`.
    fn catalogue_import(
        document: &[u8],
        replace: bool
    ) -> Result<api::CatalogueEntry, api::CatalogueError>;
    /// `game-catalogue.list-entries`.
    fn catalogue_entries() -> Vec<api::CatalogueEntry>;
    /// `game-catalogue.export-document`.
    fn catalogue_export(game_type: &str) -> Result<Vec<u8>, api::CatalogueError>;
    /// `game-catalogue.check-update`.
    fn catalogue_check_update(game_type: &str) -> Result<api::CatalogueUpdate, api::CatalogueError>;
    /// `game-catalogue.remove`.
    fn catalogue_remove(game_type: &str) -> Result<(), api::CatalogueError>;
}

#[cfg(test)]
mod tests;
