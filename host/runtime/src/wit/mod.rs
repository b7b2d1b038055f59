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
//! # Adding 0.2.0
//!
//! 1. Copy `wit/plugin/since_v0.1.0/` to `wit/plugin/since_v0.2.0/` and make
//!    the changes there. `since_v0.1.0/` and `since_v0_1_0.rs` stay as they
//!    are: components built against 0.1.0 keep loading unchanged.
//! 2. Add `since_v0_2_0.rs` beside this file: its `bindgen!` (reusing the
//!    unchanged interfaces of 0.1.0 through `with:` where that helps), its
//!    `Host` impls calling the same capability functions, its export calls
//!    and its conversions.
//! 3. Extend [`crate::api`] with what 0.2.0 adds (new fields as `Option`,
//!    new cases as new variants), so 0.1.0 still converts into it; where a
//!    0.1.0 conversion can no longer be derived field by field, write it by
//!    hand in `since_v0_1_0.rs`.
//! 4. Add the variant `V0_2_0` to [`ApiVersion`], to [`Exports`] and to
//!    [`Guest`], one match arm each in the dispatch below, and widen
//!    [`SUPPORTED`] and [`LATEST`]. New shared capability logic goes into
//!    [`crate::capabilities`] once, for every version.

mod since_v0_1_0;

use std::sync::Arc;

use wasmtime::Store;
use wasmtime::component::{Instance, InstancePre, Linker};

use crate::api;
use crate::error::LoadError;
use crate::manifest::Manifest;
use crate::plugin::PluginState;

/// Human-readable range of supported versions.
pub const SUPPORTED: &str = ">=0.1.0, <0.2.0";

/// The newest API version (what `cap plugin new` targets).
pub const LATEST: &str = "0.1.0";

/// Interfaces of our package that components of the newest version may
/// import.
pub const IMPORTED_INTERFACES: &[&str] = since_v0_1_0::IMPORTED_INTERFACES;

/// The WIT package versions this host serves, one variant per module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiVersion {
    /// `ctrl-alt-play:plugin@0.1.x`, bound by `since_v0_1_0.rs`.
    V0_1_0,
}

impl ApiVersion {
    /// Picks the module serving `version`, or refuses it naming the
    /// supported range.
    pub fn for_version(version: &semver::Version) -> Result<Self, LoadError> {
        if version.major == 0 && version.minor == 1 && version.pre.is_empty() {
            Ok(Self::V0_1_0)
        } else {
            Err(LoadError::UnsupportedApiVersion {
                found: version.clone(),
                supported: SUPPORTED.to_string(),
            })
        }
    }

    /// The newest supported version.
    pub fn latest() -> semver::Version {
        semver::Version::new(0, 1, 0)
    }

    /// Interfaces of our package that components of this version may import.
    pub fn imported_interfaces(self) -> &'static [&'static str] {
        match self {
            Self::V0_1_0 => since_v0_1_0::IMPORTED_INTERFACES,
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
    since_v0_1_0::add_to_linker(linker)
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
        })
    }

    /// Wraps a fresh instance of the plugin.
    pub(crate) fn guest(&self, instance: Instance) -> Guest {
        match self {
            Self::V0_1_0(exports) => {
                Guest::V0_1_0(since_v0_1_0::Guest::new(Arc::clone(exports), instance))
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
                }
            }
        )*}
    };
}

guest_calls! {
    /// `game-type.describe`.
    fn describe_game() -> api::GameInfo;
    /// `game-type.validate`.
    fn validate_variables(variables: &[api::KeyValue]) -> Result<(), Vec<api::FieldError>>;
    /// `game-type.plan-install`.
    fn install_plan(server: &api::ServerContext) -> Result<api::InstallPlan, api::PluginError>;
    /// `game-type.plan-startup`.
    fn startup_plan(server: &api::ServerContext) -> Result<api::StartupPlan, api::PluginError>;
    /// `game-type.plan-stop`.
    fn stop_plan(server: &api::ServerContext) -> api::StopPlan;
    /// `game-console.classify-line`.
    fn classify_line(line: &str) -> api::LineKind;
    /// `game-console.status-command`.
    fn status_command() -> Option<String>;
    /// `game-console.parse-status`.
    fn parse_status(lines: &[String]) -> Option<api::PlayerStatus>;
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

#[cfg(test)]
mod tests;
