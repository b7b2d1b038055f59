//! # Ctrl-Alt-Play plugin SDK
//!
//! Everything in Ctrl-Alt-Play that is not the core — game types, login
//! methods, reactions to Panel events, extra UI — is a plugin: a sandboxed
//! WebAssembly component that implements the `ctrl-alt-play:plugin` WIT API,
//! version 0.1.0, or 0.2.0 with the `api-0-2` feature. This crate turns that
//! API into ordinary Rust: a trait per plugin kind, plain functions for the
//! host capabilities, and one macro that wires a type up as the component's
//! exports.
//!
//! ## Quickstart
//!
//! `Cargo.toml`:
//!
//! ```toml
//! [package]
//! name = "hello-hooks"
//! version = "1.0.0"
//! edition = "2024"
//!
//! [lib]
//! crate-type = ["cdylib"]
//!
//! [dependencies]
//! cap-plugin-sdk = "0.1"
//! ```
//!
//! `src/lib.rs`:
//!
//! ```
//! use cap_plugin_sdk::prelude::*;
//!
//! #[derive(Default)]
//! struct HelloHooks;
//!
//! impl Hooks for HelloHooks {
//!     fn before(&self, event: &Event) -> Verdict {
//!         match event.server() {
//!             Some(server) if server.name.trim().is_empty() => {
//!                 Verdict::Deny("a server needs a name".into())
//!             }
//!             _ => Verdict::Allow,
//!         }
//!     }
//!
//!     fn after(&self, event: &Event) -> Result<(), PluginError> {
//!         log::info!("{} happened", event.kind.name());
//!         Ok(())
//!     }
//! }
//!
//! cap_plugin_sdk::export_plugin!(HelloHooks: hooks);
//! # fn main() {}
//! ```
//!
//! `plugin.toml`, next to `Cargo.toml`:
//!
//! ```toml
//! [plugin]
//! id = "hello-hooks"
//! name = "Hello hooks"
//! version = "1.0.0"
//! description = "Refuses nameless servers and logs every server event."
//! authors = ["You"]
//! license = "Apache-2.0"
//! kinds = ["hooks"]
//! api = "0.1.0"
//!
//! [hooks]
//! before = ["server.create"]
//! after = ["server.create", "server.delete"]
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip2`; the
//! component is `target/wasm32-wasip2/release/hello_hooks.wasm`.
//!
//! ## API 0.2.0
//!
//! New plugins target the newest API: depend on the SDK with
//!
//! ```toml
//! cap-plugin-sdk = { version = "0.1", features = ["api-0-2"] }
//! ```
//!
//! and write `api = "0.2.0"` in `plugin.toml` (`cap plugin new` does both).
//! What changes for game types (see [`game`]): a plugin may offer many game
//! types (`game::GameTypes`; a plugin with one still implements
//! [`game::GameType`]), each lists the container images it runs in, install
//! plans name their image, startup plans carry a `console_context` that every
//! console call gets back, and the kind `game_catalogue` (the `catalogue`
//! module, `GameCatalogue`) lets admins import game types as documents.
//! Plugins may keep timers (the `timers` module), and the `panel`
//! capability adds power actions and backups (`panel::power_action`,
//! `panel::create_backup`). The other kinds and host capabilities are the
//! same in both versions.
//!
//! ## What is where
//!
//! | Module | Contents |
//! | --- | --- |
//! | [`game`] | [`GameType`](game::GameType): variables, install/startup/stop plans, console parsing; with `api-0-2` also `GameTypes`, for many game types |
//! | `catalogue` (`api-0-2`) | `GameCatalogue`: game types imported as documents (eggs, say) |
//! | [`auth`] | [`AuthProvider`](auth::AuthProvider): verifying credentials, redirect logins |
//! | [`hooks`] | [`Hooks`](hooks::Hooks): before/after hooks on Panel events |
//! | [`ui`] | [`Ui`](ui::Ui): declarative UI trees and actions, plus [`TreeBuilder`](ui::TreeBuilder) |
//! | [`types`] | Types shared by every interface ([`KeyValue`](types::KeyValue), [`PluginError`](types::PluginError), ...) |
//! | [`logging`] | The [`log`] facade wired to the host's log |
//! | [`kv`], [`config`], [`http`], [`events`], [`panel`] | Host capabilities, each needing a grant in `plugin.toml` |
//! | `timers` (`api-0-2`) | Wake-ups delivered to the plugin's after-hook as `schedule.tick` events (capability `timers`) |
//! | [`prelude`] | The traits and the types most plugins need |
//! | [`bindings`] | The raw `wit-bindgen` output, for anything the friendly modules do not cover |
//!
//! ## Design decisions
//!
//! **One `plugin` world.** The WIT package has a world per kind
//! (`game-type-plugin`, `hooks-plugin`, ...) and a `plugin` world that
//! includes all of them. This SDK generates bindings for `plugin` only. A
//! plugin may implement several kinds at once (a game type that also ships a
//! UI widget), and Rust's `wit-bindgen` produces one set of types and one
//! export macro per world: binding each kind's world separately would give
//! every shared type (`KeyValue`, `PluginError`, ...) several incompatible
//! Rust definitions, and combinations of kinds would need a world each. With
//! one world there is one type per WIT type, and a component built with this
//! SDK satisfies every kind's world.
//!
//! **Kinds a plugin does not implement panic.** A component of the `plugin`
//! world must export every interface, so [`export_plugin!`] also provides the
//! exports of the kinds the plugin does not list. Those answer with a panic
//! (which traps the component) naming the missing kind. The host never calls
//! them: it only calls the kinds that the manifest's `kinds` declares, and it
//! checks that list when the plugin is installed. Answering with a made-up
//! value instead ("allow", an empty game description) would turn a host bug
//! into silently wrong behaviour; a trap is loud and contained to the one
//! call.
//!
//! **One instance, created lazily.** The plugin type implements [`Default`].
//! The first call into the component creates the instance (after installing
//! the [logger](logging)), and every later call of that component instance
//! reuses it, so a plugin may keep caches in fields. The type must be
//! `Send + Sync` because it lives in a `static`; use `Mutex`/atomics for
//! mutable state (they cost nothing when there is one thread, as in WASI
//! preview 2). The host may start a fresh component instance at any time, so
//! anything that must survive belongs in [`kv`].
//!
//! **One API version per build, chosen by a feature.** Without features the
//! bindings are generated from `wit/plugin/since_v0.1.0`; the `api-0-2`
//! feature generates them from `since_v0.2.0` instead, and nothing of 0.1.0
//! is left in the build. Both cannot live side by side as two modules:
//! `wit_bindgen::generate!` puts each world's type information into the
//! crate as a custom section, and the component encoder merges every such
//! section of the final binary, so a crate holding both versions' bindings
//! would make every component claim (and have to export) both worlds. A
//! Cargo feature is additive across a build, so 0.1.0 and 0.2.0 plugins
//! are built by separate cargo invocations (the example plugins are two
//! workspaces for that reason). The friendly modules ([`kv`], [`http`],
//! [`hooks`], ...) compile in both: the generated module paths do not
//! contain the version, and the interfaces they wrap did not change.
//!
//! **The API version travels with the component.** [`export_plugin!`] puts a
//! custom section named [`API_VERSION_SECTION`] containing [`API_VERSION`]
//! into the plugin crate itself, so it is in the final component whether or
//! not the plugin refers to it; the host reads it to refuse components built
//! against an API it does not speak.
//!
//! **Host functions only work inside the host.** The crate also compiles for
//! native targets so that plugins can unit-test their pure logic with
//! `cargo test`, but calling a host capability ([`kv::get`], [`http::fetch`],
//! ...) outside of a component traps. Keep logic in plain functions and test
//! those.

// `wit-bindgen`'s output needs `unsafe` for the canonical ABI; only
// `bindings` and the expansion of `export_plugin!` allow it (the workspace
// denies `unsafe_code`), the rest of the crate is safe code.
#[allow(
    missing_docs,
    unsafe_code,
    unreachable_pub,
    clippy::all,
    clippy::unwrap_used,
    clippy::pedantic
)]
pub mod bindings {
    //! The raw bindings that `wit-bindgen` generates for the `plugin` world of
    //! `ctrl-alt-play:plugin@0.1.0` (`@0.2.0` with the `api-0-2` feature).
    //!
    //! Prefer the friendly modules ([`crate::game`], [`crate::hooks`], ...),
    //! which re-export these types with helpers. The export machinery of
    //! [`crate::export_plugin!`] goes through this module.
    //!
    //! ```
    //! use cap_plugin_sdk::bindings::ctrl_alt_play::plugin::types::KeyValue;
    //!
    //! let pair = KeyValue { key: "A".into(), value: "1".into() };
    //! assert_eq!(pair, cap_plugin_sdk::types::KeyValue::new("A", "1"));
    //! ```
    #[cfg(not(feature = "api-0-2"))]
    wit_bindgen::generate!({
        world: "plugin",
        path: "../wit/plugin/since_v0.1.0",
        pub_export_macro: true,
        default_bindings_module: "cap_plugin_sdk::bindings",
        additional_derives: [PartialEq],
    });

    #[cfg(feature = "api-0-2")]
    wit_bindgen::generate!({
        world: "plugin",
        path: "../wit/plugin/since_v0.2.0",
        pub_export_macro: true,
        default_bindings_module: "cap_plugin_sdk::bindings",
        additional_derives: [PartialEq],
    });
}

pub mod auth;
#[cfg(feature = "api-0-2")]
pub mod catalogue;
pub mod config;
mod error;
pub mod events;
pub mod game;
pub mod hooks;
pub mod http;
pub mod kv;
pub mod logging;
pub mod panel;
pub mod prelude;
#[cfg(feature = "api-0-2")]
pub mod timers;
pub mod types;
pub mod ui;

#[doc(hidden)]
// The 0.1.0 adapter's imports (the single-game `GameType`) are unused
// with `api-0-2`; they stay as they are so that 0.1.0 builds do not change.
#[cfg_attr(feature = "api-0-2", allow(unused_imports))]
pub mod __private;

pub use error::Error;

/// The `log` crate, re-exported so that plugins can log without depending on
/// it themselves. [`export_plugin!`] routes it to the host's log.
///
/// ```
/// cap_plugin_sdk::log::info!("server {} is ready", "mc-1");
/// ```
pub use log;

/// The version of the WIT API (`ctrl-alt-play:plugin`) this SDK implements.
///
/// A plugin's manifest names it as `api = "0.1.0"`, and [`export_plugin!`]
/// records it in the component's [`API_VERSION_SECTION`] custom section.
/// The `api-0-2` feature makes it `0.2.0`.
///
/// ```
/// assert_eq!(cap_plugin_sdk::API_VERSION, "0.1.0");
/// ```
#[cfg(not(feature = "api-0-2"))]
pub const API_VERSION: &str = "0.1.0";

/// The version of the WIT API (`ctrl-alt-play:plugin`) this SDK implements:
/// `0.2.0`, chosen by the `api-0-2` feature.
///
/// A plugin's manifest names it as `api = "0.2.0"`, and [`export_plugin!`]
/// records it in the component's [`API_VERSION_SECTION`] custom section.
///
/// ```
/// assert_eq!(cap_plugin_sdk::API_VERSION, "0.2.0");
/// ```
#[cfg(feature = "api-0-2")]
pub const API_VERSION: &str = "0.2.0";

/// The name of the custom section that holds [`API_VERSION`] (as raw UTF-8,
/// without terminator or length prefix) in every component built with this
/// SDK.
///
/// ```
/// assert_eq!(cap_plugin_sdk::API_VERSION_SECTION, "ctrl-alt-play:api-version");
/// ```
pub const API_VERSION_SECTION: &str = "ctrl-alt-play:api-version";

/// Exports a type as the plugin implemented by this crate.
///
/// Name the type, a colon, and the kinds it implements, in any order:
/// `game_type` (the type implements [`game::GameType`]; with the `api-0-2`
/// feature `game::GameTypes`, which every `GameType` implements),
/// `auth_provider` ([`auth::AuthProvider`]), `hooks` ([`hooks::Hooks`]), `ui`
/// ([`ui::Ui`]) and, with the `api-0-2` feature, `game_catalogue`
/// (`catalogue::GameCatalogue`, listed beside `game_type`). List the same
/// kinds as `kinds` in `plugin.toml` (`game-catalogue` for
/// `game_catalogue`).
///
/// The type must implement [`Default`] (the instance is created on the first
/// call) and be `Send + Sync + 'static`. Use the macro exactly once, in the
/// crate root of a `cdylib` crate.
///
/// The expansion:
///
/// - implements every export of the `plugin` world: listed kinds call the
///   type's trait methods, unlisted kinds panic with "this plugin does not
///   implement ...", because the host only calls kinds the manifest declares;
/// - installs the [host logger](logging) and a panic hook that logs panics,
///   before the instance is created;
/// - embeds the `ctrl-alt-play:api-version` custom section holding
///   [`API_VERSION`].
///
/// ```
/// use cap_plugin_sdk::prelude::*;
///
/// #[derive(Default)]
/// struct Widgets;
///
/// impl Hooks for Widgets {}
///
/// impl Ui for Widgets {
///     fn render(&self, _context: &RenderContext) -> Result<UiTree, PluginError> {
///         let mut tree = TreeBuilder::new();
///         let text = tree.push(Element::Text("Hello".into()));
///         Ok(tree.finish(text))
///     }
/// }
///
/// cap_plugin_sdk::export_plugin!(Widgets: hooks, ui);
/// # fn main() {}
/// ```
///
/// Listing a kind whose trait the type does not implement is a compile
/// error, and so is an unknown kind:
///
/// ```compile_fail
/// #[derive(Default)]
/// struct Nothing;
/// cap_plugin_sdk::export_plugin!(Nothing: hooks);
/// # fn main() {}
/// ```
///
/// ```compile_fail
/// #[derive(Default)]
/// struct Typo;
/// impl cap_plugin_sdk::hooks::Hooks for Typo {}
/// cap_plugin_sdk::export_plugin!(Typo: hook);
/// # fn main() {}
/// ```
///
/// `game_catalogue` needs the `api-0-2` feature and `game_type` beside it
/// (a catalogue's documents are offered as game types):
///
/// ```compile_fail
/// #[derive(Default)]
/// struct Lonely;
/// cap_plugin_sdk::export_plugin!(Lonely: game_catalogue);
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! export_plugin {
    (@kinds $plugin:ty; [$game:tt, $auth:tt, $hooks:tt, $ui:tt, $catalogue:tt];) => {
        const _: () = {
            const _: () = $crate::__private::check_kinds($game, $catalogue);

            impl $crate::__private::Instance for $plugin {
                fn instance() -> &'static Self {
                    static INSTANCE: ::std::sync::OnceLock<$plugin> = ::std::sync::OnceLock::new();
                    INSTANCE.get_or_init(|| {
                        $crate::__private::init();
                        <$plugin as ::core::default::Default>::default()
                    })
                }
            }

            $crate::export_plugin!(@catalogue $catalogue; $plugin);

            type __CapPluginAdapter = $crate::__private::Adapter<$plugin, $game, $auth, $hooks, $ui>;

            #[allow(unsafe_code)]
            const _: () = {
                $crate::bindings::export!(__CapPluginAdapter with_types_in $crate::bindings);
            };

            #[cfg(target_arch = "wasm32")]
            #[used]
            #[allow(unsafe_code)]
            #[unsafe(link_section = "ctrl-alt-play:api-version")]
            static __CAP_PLUGIN_API_VERSION: [u8; $crate::API_VERSION.len()] =
                $crate::__private::api_version_bytes::<{ $crate::API_VERSION.len() }>();
        };
    };
    (@catalogue false; $plugin:ty) => {
        impl $crate::__private::CatalogueExports for $plugin {}
    };
    (@catalogue true; $plugin:ty) => {
        impl $crate::__private::CatalogueExports for $plugin {
            $crate::__catalogue_exports!();
        }
    };
    (@kinds $plugin:ty; [$game:tt, $auth:tt, $hooks:tt, $ui:tt, $cat:tt]; game_type $(, $rest:ident)*) => {
        $crate::export_plugin!(@kinds $plugin; [true, $auth, $hooks, $ui, $cat]; $($rest),*);
    };
    (@kinds $plugin:ty; [$game:tt, $auth:tt, $hooks:tt, $ui:tt, $cat:tt]; auth_provider $(, $rest:ident)*) => {
        $crate::export_plugin!(@kinds $plugin; [$game, true, $hooks, $ui, $cat]; $($rest),*);
    };
    (@kinds $plugin:ty; [$game:tt, $auth:tt, $hooks:tt, $ui:tt, $cat:tt]; hooks $(, $rest:ident)*) => {
        $crate::export_plugin!(@kinds $plugin; [$game, $auth, true, $ui, $cat]; $($rest),*);
    };
    (@kinds $plugin:ty; [$game:tt, $auth:tt, $hooks:tt, $ui:tt, $cat:tt]; ui $(, $rest:ident)*) => {
        $crate::export_plugin!(@kinds $plugin; [$game, $auth, $hooks, true, $cat]; $($rest),*);
    };
    (@kinds $plugin:ty; [$game:tt, $auth:tt, $hooks:tt, $ui:tt, $cat:tt]; game_catalogue $(, $rest:ident)*) => {
        $crate::export_plugin!(@kinds $plugin; [$game, $auth, $hooks, $ui, true]; $($rest),*);
    };
    (@kinds $plugin:ty; [$($flags:tt)*]; $unknown:ident $(, $rest:ident)*) => {
        ::core::compile_error!(::core::concat!(
            "unknown plugin kind `",
            ::core::stringify!($unknown),
            "`; expected game_type, auth_provider, hooks, ui or game_catalogue",
        ));
    };
    ($plugin:ty : $($kind:ident),+ $(,)?) => {
        $crate::export_plugin!(@kinds $plugin; [false, false, false, false, false]; $($kind),+);
    };
}
