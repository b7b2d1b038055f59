//! The export adapter's API 0.2.0 half: game types through
//! [`GameTypes`](crate::game::GameTypes), and the `game-catalogue` exports.

use super::{Adapter, Instance, not_implemented};
use crate::bindings::exports::ctrl_alt_play::plugin::{
    game_catalogue as wit_catalogue, game_console as wit_console, game_type as wit_game,
};
use crate::catalogue::{CatalogueError, Entry, Update};
use crate::game::{self, GameTypes};
use crate::types::{KeyValue, PluginError};

impl<P, const A: bool, const H: bool, const U: bool> wit_game::Guest for Adapter<P, true, A, H, U>
where
    P: GameTypes + Instance,
{
    fn list_game_types() -> Vec<game::GameInfo> {
        P::instance().list()
    }

    fn validate(game_type: String, variables: Vec<KeyValue>) -> Result<(), Vec<game::FieldError>> {
        P::instance().validate(&game_type, &variables)
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

    fn plan_backup(server: game::ServerContext) -> Option<game::BackupCommands> {
        P::instance().backup_commands(&server)
    }
}

impl<P, const A: bool, const H: bool, const U: bool> wit_console::Guest
    for Adapter<P, true, A, H, U>
where
    P: GameTypes + Instance,
{
    fn classify_line(context: String, line: String) -> game::LineKind {
        P::instance().classify_line(&context, &line)
    }

    fn status_command(context: String) -> Option<String> {
        P::instance().status_command(&context)
    }

    fn parse_status(context: String, lines: Vec<String>) -> Option<game::PlayerStatus> {
        P::instance().parse_status(&context, &lines)
    }
}

impl<P, const A: bool, const H: bool, const U: bool> wit_game::Guest
    for Adapter<P, false, A, H, U>
{
    fn list_game_types() -> Vec<game::GameInfo> {
        not_implemented("game-type")
    }

    fn validate(_: String, _: Vec<KeyValue>) -> Result<(), Vec<game::FieldError>> {
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

    fn plan_backup(_: game::ServerContext) -> Option<game::BackupCommands> {
        not_implemented("game-type")
    }
}

impl<P, const A: bool, const H: bool, const U: bool> wit_console::Guest
    for Adapter<P, false, A, H, U>
{
    fn classify_line(_: String, _: String) -> game::LineKind {
        not_implemented("game-type")
    }

    fn status_command(_: String) -> Option<String> {
        not_implemented("game-type")
    }

    fn parse_status(_: String, _: Vec<String>) -> Option<game::PlayerStatus> {
        not_implemented("game-type")
    }
}

/// The `game-catalogue` exports of the plugin type. [`crate::export_plugin!`]
/// implements it for every plugin: with [`__catalogue_exports!`](crate::__catalogue_exports)
/// (each method calling the plugin's `GameCatalogue`) when it lists
/// `game_catalogue`, with these defaults, which panic, otherwise. It is a
/// trait on the plugin type rather than a flag of [`Adapter`] so that the
/// adapter, and with it every 0.1.0 component, stays what it was.
pub trait CatalogueExports {
    /// `preview`.
    fn preview(document: Vec<u8>) -> Result<Entry, CatalogueError> {
        let _ = document;
        not_implemented("game-catalogue")
    }

    /// `import-document`.
    fn import_document(document: Vec<u8>, replace: bool) -> Result<Entry, CatalogueError> {
        let _ = (document, replace);
        not_implemented("game-catalogue")
    }

    /// `list-entries`.
    fn list_entries() -> Vec<Entry> {
        not_implemented("game-catalogue")
    }

    /// `export-document`.
    fn export_document(game_type: String) -> Result<Vec<u8>, CatalogueError> {
        let _ = game_type;
        not_implemented("game-catalogue")
    }

    /// `check-update`.
    fn check_update(game_type: String) -> Result<Update, CatalogueError> {
        let _ = game_type;
        not_implemented("game-catalogue")
    }

    /// `remove`.
    fn remove(game_type: String) -> Result<(), CatalogueError> {
        let _ = game_type;
        not_implemented("game-catalogue")
    }
}

/// The body of a catalogue plugin's [`CatalogueExports`] impl: every method
/// calls `GameCatalogue` on the plugin's instance.
#[doc(hidden)]
#[macro_export]
macro_rules! __catalogue_exports {
    () => {
        fn preview(
            document: ::std::vec::Vec<u8>,
        ) -> ::core::result::Result<$crate::catalogue::Entry, $crate::catalogue::CatalogueError> {
            $crate::catalogue::GameCatalogue::preview(
                <Self as $crate::__private::Instance>::instance(),
                &document,
            )
        }

        fn import_document(
            document: ::std::vec::Vec<u8>,
            replace: bool,
        ) -> ::core::result::Result<$crate::catalogue::Entry, $crate::catalogue::CatalogueError> {
            $crate::catalogue::GameCatalogue::import(
                <Self as $crate::__private::Instance>::instance(),
                &document,
                replace,
            )
        }

        fn list_entries() -> ::std::vec::Vec<$crate::catalogue::Entry> {
            $crate::catalogue::GameCatalogue::entries(
                <Self as $crate::__private::Instance>::instance(),
            )
        }

        fn export_document(
            game_type: ::std::string::String,
        ) -> ::core::result::Result<::std::vec::Vec<u8>, $crate::catalogue::CatalogueError> {
            $crate::catalogue::GameCatalogue::export(
                <Self as $crate::__private::Instance>::instance(),
                &game_type,
            )
        }

        fn check_update(
            game_type: ::std::string::String,
        ) -> ::core::result::Result<$crate::catalogue::Update, $crate::catalogue::CatalogueError> {
            $crate::catalogue::GameCatalogue::check_update(
                <Self as $crate::__private::Instance>::instance(),
                &game_type,
            )
        }

        fn remove(
            game_type: ::std::string::String,
        ) -> ::core::result::Result<(), $crate::catalogue::CatalogueError> {
            $crate::catalogue::GameCatalogue::remove(
                <Self as $crate::__private::Instance>::instance(),
                &game_type,
            )
        }
    };
}

impl<P, const G: bool, const A: bool, const H: bool, const U: bool> wit_catalogue::Guest
    for Adapter<P, G, A, H, U>
where
    P: CatalogueExports,
{
    fn preview(document: Vec<u8>) -> Result<Entry, CatalogueError> {
        P::preview(document)
    }

    fn import_document(document: Vec<u8>, replace: bool) -> Result<Entry, CatalogueError> {
        P::import_document(document, replace)
    }

    fn list_entries() -> Vec<Entry> {
        P::list_entries()
    }

    fn export_document(game_type: String) -> Result<Vec<u8>, CatalogueError> {
        P::export_document(game_type)
    }

    fn check_update(game_type: String) -> Result<Update, CatalogueError> {
        P::check_update(game_type)
    }

    fn remove(game_type: String) -> Result<(), CatalogueError> {
        P::remove(game_type)
    }
}
