//! Game types that are documents admins import (Pterodactyl and Pelican
//! eggs), kept by a `game-catalogue` plugin such as the bundled
//! `egg-bridge`.
//!
//! The core knows no document format: it hands the file over as it is to
//! the plugin (WIT 0.2.0 `game-catalogue`), which checks it and keeps it
//! whole or not at all; what the core adds is what only it knows: which
//! servers use a game type (a game type is not removed while any does)
//! and which plugin answers. Plugins that keep documents are found by
//! their manifest kind; with more than one active, the caller names one.

use cap_runtime::api::{CatalogueEntry, CatalogueError, CatalogueUpdate};
use cap_runtime::manifest::PluginKind;

use super::{FieldProblem, ServersError};
use crate::db::{Database, on_pool, query_builder};
use crate::error_code::Code;
use crate::plugins::PluginManager;

/// The active plugin that keeps game-type documents: `wanted`, or the only
/// one there is.
///
/// # Errors
///
/// [`Code::NoCatalogue`] when there is none, not found when `wanted` is
/// not one, a field problem on `plugin` when several are active and none
/// was named.
pub fn catalogue_plugin(
    plugins: Option<&PluginManager>,
    wanted: Option<&str>,
) -> Result<cap_runtime::Plugin, ServersError> {
    let mut active: Vec<cap_runtime::Plugin> = plugins
        .map(PluginManager::active_plugins)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.manifest().has_kind(PluginKind::GameCatalogue))
        .collect();
    active.sort_by(|a, b| a.id().cmp(b.id()));
    match wanted {
        Some(id) => active.into_iter().find(|p| p.id() == id).ok_or_else(|| {
            ServersError::NotFound(format!("an active plugin {id} that imports game types"))
        }),
        None if active.len() == 1 => Ok(active.remove(0)),
        None if active.is_empty() => Err(ServersError::conflict(
            Code::NoCatalogue,
            "no active plugin imports game types: install and activate egg-bridge",
        )),
        None => Err(ServersError::field(
            "plugin",
            format!(
                "is required: several plugins import game types ({})",
                active
                    .iter()
                    .map(cap_runtime::Plugin::id)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

/// The active catalogue plugins, by id.
pub fn catalogue_plugins(plugins: Option<&PluginManager>) -> Vec<cap_runtime::Plugin> {
    let mut active: Vec<cap_runtime::Plugin> = plugins
        .map(PluginManager::active_plugins)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.manifest().has_kind(PluginKind::GameCatalogue))
        .collect();
    active.sort_by(|a, b| a.id().cmp(b.id()));
    active
}

/// A catalogue call's refusal as the server domain answers it.
fn refused(plugin: &str, error: CatalogueError) -> ServersError {
    match error {
        CatalogueError::Invalid(problems) => ServersError::Invalid(
            problems
                .into_iter()
                .map(|p| FieldProblem::new(p.key, p.message))
                .collect(),
        ),
        CatalogueError::Exists(id) => ServersError::conflict(
            Code::GameTypeExists,
            format!(
                "{plugin} has a game type {id:?} already; import with replace=true to replace it"
            ),
        ),
        CatalogueError::NotFound(id) => {
            ServersError::NotFound(format!("game type {id} of {plugin}"))
        }
        CatalogueError::Failed(error) => ServersError::conflict(
            Code::UpdateSourceFailed,
            format!("{plugin}: {} ({})", error.message, error.code),
        ),
    }
}

/// A call that did not run (trap, timeout, quarantine).
fn unavailable(plugin: &cap_runtime::Plugin, error: impl std::fmt::Display) -> ServersError {
    ServersError::PluginUnavailable {
        plugin: plugin.id().to_owned(),
        reason: error.to_string(),
    }
}

/// What `document` would create; keeps nothing.
///
/// # Errors
///
/// The plugin's refusal (fields named), or it is unavailable.
pub async fn preview(
    plugin: &cap_runtime::Plugin,
    document: &[u8],
) -> Result<CatalogueEntry, ServersError> {
    plugin
        .catalogue_preview(document)
        .await
        .map_err(|e| unavailable(plugin, e))?
        .map_err(|e| refused(plugin.id(), e))
}

/// Imports `document`, replacing a game type of the same id only when
/// `replace`.
///
/// # Errors
///
/// As for [`preview`], and [`Code::GameTypeExists`].
pub async fn import(
    plugin: &cap_runtime::Plugin,
    document: &[u8],
    replace: bool,
) -> Result<CatalogueEntry, ServersError> {
    plugin
        .catalogue_import(document, replace)
        .await
        .map_err(|e| unavailable(plugin, e))?
        .map_err(|e| refused(plugin.id(), e))
}

/// The imported game types of `plugin`.
///
/// # Errors
///
/// The plugin is unavailable.
pub async fn entries(plugin: &cap_runtime::Plugin) -> Result<Vec<CatalogueEntry>, ServersError> {
    plugin
        .catalogue_entries()
        .await
        .map_err(|e| unavailable(plugin, e))
}

/// The imported game type `id` of `plugin`.
///
/// # Errors
///
/// Not found, or the plugin is unavailable.
pub async fn entry(plugin: &cap_runtime::Plugin, id: &str) -> Result<CatalogueEntry, ServersError> {
    entries(plugin)
        .await?
        .into_iter()
        .find(|e| e.game.id == id)
        .ok_or_else(|| ServersError::NotFound(format!("game type {id} of {}", plugin.id())))
}

/// The game type `id` as a document of its own format.
///
/// # Errors
///
/// Not found, or the plugin is unavailable.
pub async fn export(plugin: &cap_runtime::Plugin, id: &str) -> Result<Vec<u8>, ServersError> {
    plugin
        .catalogue_export(id)
        .await
        .map_err(|e| unavailable(plugin, e))?
        .map_err(|e| refused(plugin.id(), e))
}

/// The newer document of game type `id` and what it would change.
///
/// # Errors
///
/// Not found, [`Code::UpdateSourceFailed`], an invalid newer document, or
/// the plugin is unavailable.
pub async fn check_update(
    plugin: &cap_runtime::Plugin,
    id: &str,
) -> Result<CatalogueUpdate, ServersError> {
    plugin
        .catalogue_check_update(id)
        .await
        .map_err(|e| unavailable(plugin, e))?
        .map_err(|e| refused(plugin.id(), e))
}

/// How many servers run game type `game_type` of plugin `plugin`.
///
/// # Errors
///
/// Database errors.
pub async fn servers_using(
    db: &Database,
    plugin: &str,
    game_type: &str,
) -> Result<u64, ServersError> {
    let count: i64 = on_pool!(db, |pool| {
        let mut qb = query_builder(pool, "SELECT COUNT(*) FROM servers WHERE game_plugin = ");
        qb.push_bind(plugin)
            .push(" AND game_type = ")
            .push_bind(game_type);
        qb.build_query_scalar().fetch_one(pool).await?
    });
    Ok(u64::try_from(count).unwrap_or_default())
}

/// Removes game type `id` of `plugin`, refused while servers use it.
///
/// # Errors
///
/// [`Code::GameTypeInUse`], not found, or the plugin is unavailable.
pub async fn remove(
    db: &Database,
    plugin: &cap_runtime::Plugin,
    id: &str,
) -> Result<(), ServersError> {
    let used = servers_using(db, plugin.id(), id).await?;
    if used > 0 {
        return Err(ServersError::conflict(
            Code::GameTypeInUse,
            format!(
                "{used} server{} of game type {id} still exist; delete or move them first",
                if used == 1 { "" } else { "s" }
            ),
        ));
    }
    plugin
        .catalogue_remove(id)
        .await
        .map_err(|e| unavailable(plugin, e))?
        .map_err(|e| refused(plugin.id(), e))
}
