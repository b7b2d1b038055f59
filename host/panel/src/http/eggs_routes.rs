//! `/api/v1/eggs`: importing game types from Pterodactyl and Pelican eggs
//! (and any other document a `game-catalogue` plugin takes), reviewing,
//! updating, exporting and removing them. Every route needs
//! `admin.plugins`: a game type decides what runs on every node.
//!
//! An egg is uploaded as the file it is (JSON or YAML, any content type,
//! at most [`MAX_DOCUMENT_BYTES`]); the Panel does not read it, the plugin
//! does ([`crate::servers::game_catalogue`]). `preview=true` checks it and
//! answers what it would create without keeping anything: the web UI's
//! review step. A refused egg answers 422 with one problem per field the
//! plugin names (`variables[2].rules`, `startup`, ...).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use cap_runtime::api::CatalogueEntry;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::auth::Authenticated;
use super::error::ApiResult;
use super::extract::ApiQuery;
use super::ui_routes::{ImageBody, VariableBody, variable_body};
use crate::identity::permissions::{Gate, Permission};
use crate::servers::game_catalogue;

/// Largest egg upload, bytes (the egg model's own limit: community eggs
/// are tens of KiB).
pub const MAX_DOCUMENT_BYTES: usize = 4 << 20;

/// An imported game type.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EggBody {
    /// The plugin that keeps it (`game.plugin` of its servers).
    pub plugin: String,
    /// Its id among the plugin's game types (`game.type`).
    #[serde(rename = "type")]
    pub game_type: String,
    /// The game's name.
    pub name: String,
    /// What it is.
    pub description: String,
    /// The document's format, e.g. `PTDL_v2` or `PLCN_v3`.
    pub format: String,
    /// Where newer versions of the egg are published, if it says.
    pub update_url: Option<String>,
    /// The variables it takes, every one (admins review them all).
    pub variables: Vec<VariableBody>,
    /// The images it runs in, the default first.
    pub images: Vec<ImageBody>,
    /// Its features (`eula`, `java_version`, ...).
    pub features: Vec<String>,
    /// Its named startup commands, the default first (PLCN_v3); empty
    /// when it has one.
    #[serde(default)]
    pub startup_commands: Vec<String>,
    /// Files users may not reach through file access (`file_denylist`).
    #[serde(default)]
    pub file_denylist: Vec<String>,
    /// What it asks for that the Panel does not honour (yet), one line
    /// each.
    pub unsupported: Vec<String>,
    /// How many servers run it (absent in previews).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub servers: Option<u64>,
}

impl EggBody {
    fn new(plugin: &str, entry: CatalogueEntry, servers: Option<u64>) -> Self {
        let game = entry.game;
        EggBody {
            plugin: plugin.to_owned(),
            game_type: game.id,
            name: game.name,
            description: game.description,
            format: entry.format,
            update_url: entry.update_url,
            variables: game.variables.into_iter().map(variable_body).collect(),
            images: game
                .images
                .into_iter()
                .map(|i| ImageBody {
                    name: i.name,
                    reference: i.reference,
                })
                .collect(),
            features: game.features,
            startup_commands: game.startup_commands,
            file_denylist: game.file_denylist,
            unsupported: entry.unsupported,
            servers,
        }
    }
}

/// The imported game types.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EggList {
    /// By plugin, then id.
    pub items: Vec<EggBody>,
}

/// `POST /eggs` options.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(default, deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ImportParams {
    /// Check the egg and answer what it would create, keeping nothing.
    pub preview: bool,
    /// Replace a game type with the same id (otherwise 409
    /// `game-type-exists`).
    pub replace: bool,
    /// The plugin to import into, when several take eggs.
    pub plugin: Option<String>,
}

/// Imports an egg (or, with `preview=true`, says what it would create).
#[utoipa::path(
    post,
    path = "/eggs",
    tag = "eggs",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::AdminPlugins]))),
    params(ImportParams),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The egg file as it is (JSON or YAML)"),
    responses(
        (status = 200, description = "Preview: what it would create", body = EggBody),
        (status = 201, description = "Imported", body = EggBody),
        (status = 404, description = "The plugin named is not an active one that imports eggs"),
        (status = 409, description = "A game type with its id exists (`game-type-exists`), or no plugin imports eggs (`no-catalogue`)"),
        (status = 413, description = "Larger than 4 MiB"),
        (status = 422, description = "The egg is invalid; each problem names its field"),
        (status = 503, description = "The plugin failed"),
    )
)]
pub(super) async fn import(
    auth: Authenticated,
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<ImportParams>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<EggBody>)> {
    auth.principal.require(Gate::ADMIN_PLUGINS)?;
    let plugin = game_catalogue::catalogue_plugin(state.plugins(), params.plugin.as_deref())?;
    if params.preview {
        let entry = game_catalogue::preview(&plugin, &body).await?;
        return Ok((StatusCode::OK, Json(EggBody::new(plugin.id(), entry, None))));
    }
    let entry = game_catalogue::import(&plugin, &body, params.replace).await?;
    tracing::info!(plugin = %plugin.id(), game_type = %entry.game.id, actor = ?auth.actor.user_id, "imported a game type");
    let servers = game_catalogue::servers_using(state.db(), plugin.id(), &entry.game.id).await?;
    Ok((
        StatusCode::CREATED,
        Json(EggBody::new(plugin.id(), entry, Some(servers))),
    ))
}

/// Lists the imported game types of every plugin that imports them.
#[utoipa::path(
    get,
    path = "/eggs",
    tag = "eggs",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::AdminPlugins]))),
    responses(
        (status = 200, description = "The imported game types", body = EggList),
        (status = 503, description = "A plugin failed"),
    )
)]
pub(super) async fn list(
    auth: Authenticated,
    State(state): State<AppState>,
) -> ApiResult<Json<EggList>> {
    auth.principal.require(Gate::ADMIN_PLUGINS)?;
    let mut items = Vec::new();
    for plugin in game_catalogue::catalogue_plugins(state.plugins()) {
        let mut entries = game_catalogue::entries(&plugin).await?;
        entries.sort_by(|a, b| a.game.id.cmp(&b.game.id));
        for entry in entries {
            let servers =
                game_catalogue::servers_using(state.db(), plugin.id(), &entry.game.id).await?;
            items.push(EggBody::new(plugin.id(), entry, Some(servers)));
        }
    }
    Ok(Json(EggList { items }))
}

/// One imported game type.
#[utoipa::path(
    get,
    path = "/eggs/{plugin}/{type}",
    tag = "eggs",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::AdminPlugins]))),
    params(
        ("plugin" = String, Path, description = "The plugin that keeps it"),
        ("type" = String, Path, description = "Its id"),
    ),
    responses(
        (status = 200, description = "The game type", body = EggBody),
        (status = 404, description = "No such game type"),
        (status = 503, description = "The plugin failed"),
    )
)]
pub(super) async fn get(
    auth: Authenticated,
    State(state): State<AppState>,
    Path((plugin, game_type)): Path<(String, String)>,
) -> ApiResult<Json<EggBody>> {
    auth.principal.require(Gate::ADMIN_PLUGINS)?;
    let plugin = game_catalogue::catalogue_plugin(state.plugins(), Some(&plugin))?;
    let entry = game_catalogue::entry(&plugin, &game_type).await?;
    let servers = game_catalogue::servers_using(state.db(), plugin.id(), &game_type).await?;
    Ok(Json(EggBody::new(plugin.id(), entry, Some(servers))))
}

/// The egg of an imported game type, in its own format: importing it gives
/// the same game type.
#[utoipa::path(
    get,
    path = "/eggs/{plugin}/{type}/export",
    tag = "eggs",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::AdminPlugins]))),
    params(
        ("plugin" = String, Path, description = "The plugin that keeps it"),
        ("type" = String, Path, description = "Its id"),
    ),
    responses(
        (status = 200, description = "The egg file, JSON or YAML as it was written", content(
            (serde_json::Value = "application/json"),
            (String = "application/yaml"),
        )),
        (status = 404, description = "No such game type"),
        (status = 503, description = "The plugin failed"),
    )
)]
pub(super) async fn export(
    auth: Authenticated,
    State(state): State<AppState>,
    Path((plugin, game_type)): Path<(String, String)>,
) -> ApiResult<Response> {
    auth.principal.require(Gate::ADMIN_PLUGINS)?;
    let plugin = game_catalogue::catalogue_plugin(state.plugins(), Some(&plugin))?;
    let document = game_catalogue::export(&plugin, &game_type).await?;
    // JSON eggs start with `{`; the rest are YAML. The name is the id,
    // which is `[a-z0-9-]` (the runtime checks), so it needs no quoting.
    let json = document
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{');
    let (content_type, extension) = if json {
        ("application/json", "json")
    } else {
        ("application/yaml", "yaml")
    };
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"egg-{game_type}.{extension}\""),
            ),
        ],
        document,
    )
        .into_response())
}

/// `POST /eggs/{plugin}/{type}/update` options.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(default, deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UpdateParams {
    /// Import the newer egg (otherwise only say what would change).
    pub apply: bool,
}

/// What an update from the egg's `update_url` changes.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EggUpdate {
    /// One line per change; empty when the published egg is the same.
    pub changes: Vec<String>,
    /// Whether the newer egg was imported.
    pub applied: bool,
    /// The game type as it is now (after applying, the newer one).
    pub egg: EggBody,
}

/// Fetches the egg's newer version from its `update_url` and says what it
/// changes; `apply=true` imports it.
#[utoipa::path(
    post,
    path = "/eggs/{plugin}/{type}/update",
    tag = "eggs",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::AdminPlugins]))),
    params(
        ("plugin" = String, Path, description = "The plugin that keeps it"),
        ("type" = String, Path, description = "Its id"),
        UpdateParams,
    ),
    responses(
        (status = 200, description = "The changes (and whether they were applied)", body = EggUpdate),
        (status = 404, description = "No such game type"),
        (status = 422, description = "The published egg is invalid"),
        (status = 502, description = "The update source failed (`update-source-failed`), or the egg names none"),
        (status = 503, description = "The plugin failed"),
    )
)]
pub(super) async fn update(
    auth: Authenticated,
    State(state): State<AppState>,
    Path((plugin, game_type)): Path<(String, String)>,
    ApiQuery(params): ApiQuery<UpdateParams>,
) -> ApiResult<Json<EggUpdate>> {
    auth.principal.require(Gate::ADMIN_PLUGINS)?;
    let plugin = game_catalogue::catalogue_plugin(state.plugins(), Some(&plugin))?;
    let update = game_catalogue::check_update(&plugin, &game_type).await?;
    let apply = params.apply && !update.changes.is_empty();
    let entry = if apply {
        let entry = game_catalogue::import(&plugin, &update.document, true).await?;
        tracing::info!(plugin = %plugin.id(), %game_type, changes = update.changes.len(), "updated a game type from its source");
        entry
    } else {
        game_catalogue::entry(&plugin, &game_type).await?
    };
    let servers = game_catalogue::servers_using(state.db(), plugin.id(), &entry.game.id).await?;
    Ok(Json(EggUpdate {
        changes: update.changes,
        applied: apply,
        egg: EggBody::new(plugin.id(), entry, Some(servers)),
    }))
}

/// Removes an imported game type; refused while servers run it.
#[utoipa::path(
    delete,
    path = "/eggs/{plugin}/{type}",
    tag = "eggs",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::AdminPlugins]))),
    params(
        ("plugin" = String, Path, description = "The plugin that keeps it"),
        ("type" = String, Path, description = "Its id"),
    ),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such game type"),
        (status = 409, description = "Servers run it (`game-type-in-use`)"),
        (status = 503, description = "The plugin failed"),
    )
)]
pub(super) async fn delete(
    auth: Authenticated,
    State(state): State<AppState>,
    Path((plugin, game_type)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    auth.principal.require(Gate::ADMIN_PLUGINS)?;
    let plugin = game_catalogue::catalogue_plugin(state.plugins(), Some(&plugin))?;
    game_catalogue::remove(state.db(), &plugin, &game_type).await?;
    tracing::info!(plugin = %plugin.id(), %game_type, actor = ?auth.actor.user_id, "removed a game type");
    Ok(StatusCode::NO_CONTENT)
}

pub(super) fn router() -> utoipa_axum::router::OpenApiRouter<AppState> {
    use utoipa_axum::routes;
    let upload = utoipa_axum::router::OpenApiRouter::new()
        .routes(routes!(import, list))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_DOCUMENT_BYTES));
    utoipa_axum::router::OpenApiRouter::new()
        .merge(upload)
        .routes(routes!(get, delete))
        .routes(routes!(export))
        .routes(routes!(update))
}
