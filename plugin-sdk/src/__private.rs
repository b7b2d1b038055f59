//! Support code for the expansion of [`crate::export_plugin!`]. Not a public
//! API: it may change in any release.

use std::marker::PhantomData;

use crate::auth::{self, AuthProvider};
use crate::bindings::exports::ctrl_alt_play::plugin::{
    auth_provider as wit_auth, game_console as wit_console, game_type as wit_game,
    hooks as wit_hooks, ui as wit_ui,
};
use crate::game::{self, GameType};
use crate::hooks::{self, Hooks};
use crate::types::{KeyValue, PluginError};
use crate::ui::{self, Ui};

/// Gives the export adapter access to the plugin's single instance. The
/// export macro implements it with a `OnceLock`.
pub trait Instance: Send + Sync + 'static {
    /// The plugin instance, created on first use.
    fn instance() -> &'static Self;
}

/// The type that `wit-bindgen`'s export macro is pointed at. Each flag says
/// whether the plugin implements that kind; unimplemented kinds get exports
/// that panic.
pub struct Adapter<P, const GAME: bool, const AUTH: bool, const HOOKS: bool, const UI: bool>(
    PhantomData<fn() -> P>,
);

/// Runs once before the plugin instance is created.
pub fn init() {
    crate::logging::init();
}

/// The contents of the API-version custom section: [`crate::API_VERSION`]
/// as a byte array of length `N`.
///
/// # Panics
///
/// At compile time, when `N` is not the length of the version.
pub const fn api_version_bytes<const N: usize>() -> [u8; N] {
    let version = crate::API_VERSION.as_bytes();
    assert!(version.len() == N, "N must be API_VERSION.len()");
    let mut bytes = [0u8; N];
    let mut i = 0;
    while i < N {
        bytes[i] = version[i];
        i += 1;
    }
    bytes
}

#[cold]
fn not_implemented(kind: &str) -> ! {
    init();
    panic!("this plugin does not implement {kind}; the host only calls kinds listed in plugin.toml")
}

// API 0.1.0: one game type, `describe`; 0.2.0's are in `v0_2`.
#[cfg(not(feature = "api-0-2"))]
impl<P, const A: bool, const H: bool, const U: bool> wit_game::Guest for Adapter<P, true, A, H, U>
where
    P: GameType + Instance,
{
    fn describe() -> game::GameInfo {
        P::instance().describe()
    }

    fn validate(variables: Vec<KeyValue>) -> Result<(), Vec<game::FieldError>> {
        P::instance().validate(&variables)
    }

    fn plan_install(server: game::ServerContext) -> Result<game::InstallPlan, PluginError> {
        P::instance().install_plan(&server)
    }

    fn plan_startup(server: game::ServerContext) -> Result<game::StartupPlan, PluginError> {
        P::instance().startup_plan(&server)
    }

    fn plan_stop(server: game::ServerContext) -> game::StopPlan {
        P::instance().stop_plan(&server)
    }
}

#[cfg(not(feature = "api-0-2"))]
impl<P, const A: bool, const H: bool, const U: bool> wit_console::Guest
    for Adapter<P, true, A, H, U>
where
    P: GameType + Instance,
{
    fn classify_line(line: String) -> game::LineKind {
        P::instance().classify_line(&line)
    }

    fn status_command() -> Option<String> {
        P::instance().status_command()
    }

    fn parse_status(lines: Vec<String>) -> Option<game::PlayerStatus> {
        P::instance().parse_status(&lines)
    }
}

#[cfg(not(feature = "api-0-2"))]
impl<P, const A: bool, const H: bool, const U: bool> wit_game::Guest
    for Adapter<P, false, A, H, U>
{
    fn describe() -> game::GameInfo {
        not_implemented("game-type")
    }

    fn validate(_: Vec<KeyValue>) -> Result<(), Vec<game::FieldError>> {
        not_implemented("game-type")
    }

    fn plan_install(_: game::ServerContext) -> Result<game::InstallPlan, PluginError> {
        not_implemented("game-type")
    }

    fn plan_startup(_: game::ServerContext) -> Result<game::StartupPlan, PluginError> {
        not_implemented("game-type")
    }

    fn plan_stop(_: game::ServerContext) -> game::StopPlan {
        not_implemented("game-type")
    }
}

#[cfg(not(feature = "api-0-2"))]
impl<P, const A: bool, const H: bool, const U: bool> wit_console::Guest
    for Adapter<P, false, A, H, U>
{
    fn classify_line(_: String) -> game::LineKind {
        not_implemented("game-type")
    }

    fn status_command() -> Option<String> {
        not_implemented("game-type")
    }

    fn parse_status(_: Vec<String>) -> Option<game::PlayerStatus> {
        not_implemented("game-type")
    }
}

impl<P, const G: bool, const H: bool, const U: bool> wit_auth::Guest for Adapter<P, G, true, H, U>
where
    P: AuthProvider + Instance,
{
    fn describe() -> auth::ProviderInfo {
        P::instance().describe()
    }

    fn authenticate(credentials: auth::Credentials) -> Result<auth::Identity, auth::AuthError> {
        P::instance().authenticate(&credentials)
    }

    fn begin_login(callback_url: String) -> Result<auth::LoginRedirect, auth::AuthError> {
        P::instance().begin_login(&callback_url)
    }

    fn complete_login(
        state: String,
        params: Vec<KeyValue>,
    ) -> Result<auth::Identity, auth::AuthError> {
        P::instance().complete_login(&state, &params)
    }

    fn set_password(username: String, password: String) -> Result<(), auth::AuthError> {
        P::instance().set_password(&username, &password)
    }
}

impl<P, const G: bool, const H: bool, const U: bool> wit_auth::Guest
    for Adapter<P, G, false, H, U>
{
    fn describe() -> auth::ProviderInfo {
        not_implemented("auth-provider")
    }

    fn authenticate(_: auth::Credentials) -> Result<auth::Identity, auth::AuthError> {
        not_implemented("auth-provider")
    }

    fn begin_login(_: String) -> Result<auth::LoginRedirect, auth::AuthError> {
        not_implemented("auth-provider")
    }

    fn complete_login(_: String, _: Vec<KeyValue>) -> Result<auth::Identity, auth::AuthError> {
        not_implemented("auth-provider")
    }

    fn set_password(_: String, _: String) -> Result<(), auth::AuthError> {
        not_implemented("auth-provider")
    }
}

impl<P, const G: bool, const A: bool, const U: bool> wit_hooks::Guest for Adapter<P, G, A, true, U>
where
    P: Hooks + Instance,
{
    fn before(event: hooks::Event) -> hooks::Verdict {
        P::instance().before(&event)
    }

    fn after(event: hooks::Event) -> Result<(), PluginError> {
        P::instance().after(&event)
    }
}

impl<P, const G: bool, const A: bool, const U: bool> wit_hooks::Guest
    for Adapter<P, G, A, false, U>
{
    fn before(_: hooks::Event) -> hooks::Verdict {
        not_implemented("hooks")
    }

    fn after(_: hooks::Event) -> Result<(), PluginError> {
        not_implemented("hooks")
    }
}

impl<P, const G: bool, const A: bool, const H: bool> wit_ui::Guest for Adapter<P, G, A, H, true>
where
    P: Ui + Instance,
{
    fn render(context: ui::RenderContext) -> Result<ui::UiTree, PluginError> {
        P::instance().render(&context)
    }

    fn handle_action(
        context: ui::RenderContext,
        action: ui::Action,
    ) -> Result<ui::ActionResult, PluginError> {
        P::instance().handle_action(&context, &action)
    }
}

impl<P, const G: bool, const A: bool, const H: bool> wit_ui::Guest for Adapter<P, G, A, H, false> {
    fn render(_: ui::RenderContext) -> Result<ui::UiTree, PluginError> {
        not_implemented("ui")
    }

    fn handle_action(_: ui::RenderContext, _: ui::Action) -> Result<ui::ActionResult, PluginError> {
        not_implemented("ui")
    }
}

/// Refuses, at compile time, kinds the export macro cannot wire up:
/// `game_catalogue` without the `api-0-2` feature, or without `game_type`
/// (a catalogue's documents are offered as game types).
///
/// # Panics
///
/// At compile time (the macro evaluates it in a `const`), with the reason.
pub const fn check_kinds(game: bool, catalogue: bool) {
    #[cfg(not(feature = "api-0-2"))]
    assert!(
        !catalogue,
        "the game_catalogue kind needs API 0.2.0: enable cap-plugin-sdk's `api-0-2` feature"
    );
    assert!(
        game || !catalogue,
        "game_catalogue is declared beside game_type: list both kinds"
    );
}

/// The `game-catalogue` exports of the plugin type, implemented by
/// [`crate::export_plugin!`]: by the plugin's `GameCatalogue` when it lists
/// `game_catalogue`, by panics otherwise. The catalogue is a trait on the
/// plugin type rather than a flag of [`Adapter`] so that the adapter, and
/// with it every 0.1.0 component, stays exactly what it was before 0.2.0.
/// Without the `api-0-2` feature there are no such exports.
#[cfg(not(feature = "api-0-2"))]
pub trait CatalogueExports {}

/// The body of a catalogue plugin's [`CatalogueExports`] impl; nothing
/// without the `api-0-2` feature, where [`check_kinds`] refuses the kind.
#[cfg(not(feature = "api-0-2"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __catalogue_exports {
    () => {};
}

#[cfg(feature = "api-0-2")]
mod v0_2;
#[cfg(feature = "api-0-2")]
pub use v0_2::CatalogueExports;

#[cfg(test)]
mod tests {
    #[test]
    fn the_api_version_bytes_are_the_plain_version_string() {
        let bytes = super::api_version_bytes::<{ crate::API_VERSION.len() }>();
        let expected: &[u8] = if cfg!(feature = "api-0-2") {
            b"0.2.0"
        } else {
            b"0.1.0"
        };
        assert_eq!(&bytes, expected);
    }

    #[test]
    fn a_catalogue_beside_a_game_type_passes_the_kind_check_with_api_0_2() {
        if cfg!(feature = "api-0-2") {
            super::check_kinds(true, true);
        }
        super::check_kinds(true, false);
        super::check_kinds(false, false);
    }

    #[test]
    #[should_panic(expected = "game_catalogue")]
    fn a_catalogue_without_a_game_type_fails_the_kind_check() {
        super::check_kinds(false, true);
    }
}
