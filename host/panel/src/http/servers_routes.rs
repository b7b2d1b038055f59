//! `/api/v1/servers`: creating, listing, reading, changing and deleting
//! game servers, power actions, installs, console commands, the command
//! history, and subusers.
//!
//! Creating needs `server.create` (setting another owner also
//! `admin.servers`). Everything else acts on one server and needs a
//! server permission there (see [`crate::servers::access`]): a caller who
//! may not see the server gets `404`, one who sees it but lacks the
//! permission `403 forbidden`.
//!
//! Errors specific to servers have their own problem codes: `hook-denied`
//! (`403`, a plugin's before-hook refused; its reason is the `detail`),
//! `plugin-unavailable` (`503`, the game-type plugin failed),
//! `allocation-unavailable`, `server-deleting`, `subuser-exists`,
//! `server-suspended` (a start, restart, reinstall or console command of a
//! suspended server; the `detail` names the reason) and `server-running`
//! (a reinstall of a running server) (`409`).
//! Power actions, installs, console commands and deletions are queued for
//! the server's Agent and answered `202 {"commandId": …}`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Authenticated;
use super::error::{ApiError, ApiResult, Code, FieldError, FieldLocation};
use super::extract::{ApiJson, OptionalApiJson};
use super::pagination::{Cursor, PageParams, Pagination};
use crate::identity::permissions::{Gate, Permission, Scope};
use crate::identity::users;
use crate::read_cache::VersionedCache;
use crate::servers::access::{self, ServerAccess};
use crate::servers::commands::{self, Command, CommandAction};
use crate::servers::server::{
    self, NewServer, Server, ServerChanges, ServerResourceLimits, Visibility,
};
use crate::servers::{ServersError, Suspension, nodes, subusers};

impl From<ServersError> for ApiError {
    fn from(e: ServersError) -> Self {
        match e {
            ServersError::NotFound(what) => ApiError::NotFound(format!("{what} does not exist")),
            ServersError::Invalid(problems) => ApiError::Validation(
                problems
                    .into_iter()
                    .map(|p| FieldError::new(FieldLocation::Body, p.field, p.message))
                    .collect(),
            ),
            ServersError::Conflict { code, message } => ApiError::refused(code, message),
            ServersError::Forbidden(permission) => ApiError::Forbidden { permission },
            ServersError::HookDenied { plugin, reason } => {
                ApiError::from(crate::plugins::hooks::HookDenied { plugin, reason })
            }
            ServersError::PluginUnavailable { plugin, reason } => {
                tracing::warn!(%plugin, %reason, "the game-type plugin failed");
                ApiError::refused(
                    Code::PluginUnavailable,
                    format!("the game-type plugin {plugin} could not answer; try again later"),
                )
            }
            ServersError::Registration(e) => ApiError::refused(e.code(), e.to_string()),
            ServersError::Db(e) => ApiError::from(e),
        }
    }
}

/// An ip:port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AllocationRef {
    /// The IP address.
    pub ip: String,
    /// The port.
    pub port: u16,
}

/// A game type: a game-type plugin, the game type among its own and,
/// optionally, the version expected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GameRef {
    /// The game-type plugin's id.
    pub plugin: String,
    /// The game type among the plugin's (an imported egg's, say); may be
    /// left out when the plugin offers only one.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub game_type: Option<String>,
    /// Its version; when given, it must be the active one.
    #[serde(default)]
    pub version: Option<String>,
}

/// What a server may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitsBody {
    /// Memory, MiB.
    pub memory_mb: u64,
    /// Disk, MiB.
    pub disk_mb: u64,
    /// CPU, percent of one core.
    pub cpu_percent: u64,
}

impl From<LimitsBody> for ServerResourceLimits {
    fn from(l: LimitsBody) -> Self {
        ServerResourceLimits {
            memory_mb: l.memory_mb,
            disk_mb: l.disk_mb,
            cpu_percent: l.cpu_percent,
        }
    }
}

impl From<ServerResourceLimits> for LimitsBody {
    fn from(l: ServerResourceLimits) -> Self {
        LimitsBody {
            memory_mb: l.memory_mb,
            disk_mb: l.disk_mb,
            cpu_percent: l.cpu_percent,
        }
    }
}

/// A server to create.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerCreate {
    /// Display name.
    pub name: String,
    /// The owner; default the caller. Another user needs `admin.servers`.
    #[serde(default)]
    pub owner_id: Option<String>,
    /// The node to place it on.
    pub node_id: String,
    /// The allocation; default the node's first free one.
    #[serde(default)]
    pub allocation: Option<AllocationRef>,
    /// The game type.
    pub game: GameRef,
    /// The image to run in, among those the game type lists; default its
    /// first.
    #[serde(default)]
    pub image: Option<String>,
    /// The startup command to run, among those the game type names
    /// (`startup_commands`); default its first.
    #[serde(default)]
    pub startup_command: Option<String>,
    /// Game variables (`KEY` to value); omitted ones take their defaults.
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    /// What it may use; must fit in what the node has left.
    pub limits: LimitsBody,
}

/// Changes to a server.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerUpdate {
    /// New name (`settings.rename`).
    #[serde(default)]
    pub name: Option<String>,
    /// Variables to change (`startup.update`).
    #[serde(default)]
    pub variables: Option<BTreeMap<String, String>>,
    /// New limits (`admin.servers`).
    #[serde(default)]
    pub limits: Option<LimitsBody>,
    /// Another of the images its game type lists
    /// (`startup.docker-image`); taken on the next start.
    #[serde(default)]
    pub image: Option<String>,
    /// Another of the startup commands its game type names
    /// (`startup.update`); taken on the next start.
    #[serde(default)]
    pub startup_command: Option<String>,
}

/// A server as the caller may see it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ServerBody {
    /// Its id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// The owning user.
    pub owner_id: String,
    /// The node it runs on.
    pub node_id: Option<String>,
    /// Its primary allocation.
    pub allocation: Option<AllocationRef>,
    /// Its game type.
    pub game: GameRef,
    /// The image it runs in on container nodes, when its game type lists
    /// images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The startup command it runs, when its game type names several and
    /// one was picked (absent: the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup_command: Option<String>,
    /// Its variables: with `startup.read`, those the game lets users see
    /// (all of them for administrators).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variables: Option<BTreeMap<String, String>>,
    /// What it may use.
    pub limits: LimitsBody,
    /// `offline`, `deleting`, or what its Agent reports.
    pub state: String,
    /// The caller's permissions on it.
    pub permissions: BTreeSet<Permission>,
    /// When it was created (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Where the caller reaches the server's files over SFTP: in the
    /// answer for one server, to a caller with `file.sftp`, while its
    /// node's Agent serves SFTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sftp: Option<SftpBody>,
    /// Its suspension, while it is suspended (absent otherwise): it cannot
    /// be started, restarted, reinstalled or sent console commands, and
    /// its files are read-only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspension: Option<SuspensionBody>,
    /// The transfer to another node it is in (absent otherwise): until it
    /// ends the server cannot be started, restarted, reinstalled, sent
    /// console commands or deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer_id: Option<String>,
}

/// A server's suspension, as its users see it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SuspensionBody {
    /// Why it is suspended.
    pub reason: String,
    /// Since when (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
}

impl From<&Suspension> for SuspensionBody {
    fn from(s: &Suspension) -> Self {
        SuspensionBody {
            reason: s.reason.clone(),
            since: s.since,
        }
    }
}

/// Where a user signs in to a server over SFTP.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SftpBody {
    /// The node's address.
    pub host: String,
    /// The port its Agent serves SFTP on.
    pub port: u16,
    /// The username to sign in with: `<panel username>.<server>`.
    pub username: String,
}

/// The SFTP details for `user_id` on `server`, when it may use them.
async fn sftp_body(
    state: &AppState,
    server: &Server,
    access: &ServerAccess,
    user_id: &str,
) -> ApiResult<Option<SftpBody>> {
    if !access.passes(Gate::FILE_SFTP) {
        return Ok(None);
    }
    let Some(node_id) = &server.node_id else {
        return Ok(None);
    };
    let Some(port) = state.agents().status(node_id).and_then(|s| s.sftp_port) else {
        return Ok(None);
    };
    let (Some(node), Some(user)) = (
        nodes::get(state.db(), node_id).await?,
        users::find_user(state.db(), user_id).await?,
    ) else {
        return Ok(None);
    };
    Ok(Some(SftpBody {
        host: node.address,
        port,
        username: cap_protocol::sftp::sftp_username(&user.username, &server.id),
    }))
}

pub(super) async fn server_body(
    state: &AppState,
    server: &Server,
    access: &ServerAccess,
) -> ApiResult<ServerBody> {
    let allocation = nodes::allocations_of_server(state.db(), &server.id)
        .await?
        .into_iter()
        .next();
    let mut games = GameDescriptions::default();
    Ok(server_body_with(state, server, access, allocation, &mut games).await)
}

/// [`server_body`] with the allocation already read.
async fn server_body_with(
    state: &AppState,
    server: &Server,
    access: &ServerAccess,
    allocation: Option<nodes::Allocation>,
    games: &mut GameDescriptions,
) -> ServerBody {
    let allocation = allocation.map(|a| AllocationRef {
        ip: a.ip,
        port: a.port,
    });
    ServerBody {
        id: server.id.clone(),
        name: server.name.clone(),
        owner_id: server.owner_id.clone(),
        node_id: server.node_id.clone(),
        allocation,
        game: GameRef {
            plugin: server.game_plugin.clone(),
            game_type: server.game_type.clone(),
            version: Some(server.game_version.clone()),
        },
        image: server.image.clone(),
        startup_command: server.startup_command.clone(),
        variables: visible_variables(state, server, access, games).await,
        limits: server.limits.into(),
        state: server.state.clone(),
        permissions: access.permissions.clone(),
        created_at: server.created_at,
        sftp: None,
        suspension: server.suspension.as_ref().map(SuspensionBody::from),
        transfer_id: server.transfer_id.clone(),
    }
}

/// The variables the caller may see: none without `startup.read`, all for
/// administrators, otherwise those the game declares user-viewable (none
/// while the game-type plugin cannot say which).
async fn visible_variables(
    state: &AppState,
    server: &Server,
    access: &ServerAccess,
    games: &mut GameDescriptions,
) -> Option<BTreeMap<String, String>> {
    if !access.passes(Gate::STARTUP_READ) {
        return None;
    }
    if access.is_admin() {
        return Some(server.variables.clone());
    }
    match games
        .describe(state, &server.game_plugin, server.game_type.as_deref())
        .await
    {
        Some(info) => Some(crate::servers::variables::user_viewable(
            &info.variables,
            &server.variables,
        )),
        None => Some(BTreeMap::new()),
    }
}

/// The game-type plugins' game types, asked once per plugin per request: a
/// page of servers mostly shares a few games, and each listing is a plugin
/// call.
#[derive(Default)]
struct GameDescriptions {
    games: HashMap<String, Option<Vec<cap_runtime::api::GameInfo>>>,
    /// True once an active plugin failed to list its game types.
    failed: bool,
}

impl GameDescriptions {
    /// The game type `game_type` of `plugin` (its only one when `None`);
    /// `None` when the plugin is not active, fails or lacks it (then users
    /// see no variables rather than all of them).
    async fn describe(
        &mut self,
        state: &AppState,
        plugin_id: &str,
        game_type: Option<&str>,
    ) -> Option<&cap_runtime::api::GameInfo> {
        if !self.games.contains_key(plugin_id) {
            let games = match state.plugins().and_then(|p| p.active(plugin_id)) {
                Some(plugin) => match plugin.game_types().await {
                    Ok(games) => Some(games),
                    Err(error) => {
                        tracing::warn!(plugin = %plugin_id, %error, "cannot tell which variables users may see");
                        self.failed = true;
                        None
                    }
                },
                None => None,
            };
            self.games.insert(plugin_id.to_owned(), games);
        }
        let games = self.games.get(plugin_id).and_then(Option::as_ref)?;
        match game_type {
            Some(id) => games.iter().find(|g| g.id == id),
            None => match games.as_slice() {
                [only] => Some(only),
                _ => None,
            },
        }
    }
}

/// A page of servers.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ServerPage {
    /// The servers, oldest first.
    pub items: Vec<ServerBody>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// The answer to a queued command.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CommandAccepted {
    /// The command's id.
    #[serde(rename = "commandId")]
    pub command_id: String,
}

/// A power action.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PowerAction {
    /// `control.start`.
    Start,
    /// `control.stop`.
    Stop,
    /// `control.restart`.
    Restart,
    /// `control.stop`.
    Kill,
}

/// `POST /servers/{id}/power`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PowerRequest {
    /// What to do.
    pub action: PowerAction,
}

/// `POST /servers/{id}/command`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsoleRequest {
    /// One line for the server's console.
    pub command: String,
}

/// A recorded command.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CommandBody {
    /// Its id.
    pub id: String,
    /// `start`, `stop`, `restart`, `kill`, `install`, `delete`, `console`.
    pub action: String,
    /// `pending`, `acked`, `done` or `failed`.
    pub state: String,
    /// Who asked; null for plugins and the Panel.
    pub actor_user_id: Option<String>,
    /// Why it failed.
    pub detail: Option<String>,
    /// When it was recorded (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it last changed (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl From<Command> for CommandBody {
    fn from(c: Command) -> Self {
        CommandBody {
            id: c.id,
            action: c.action.as_str().to_owned(),
            state: c.state.as_str().to_owned(),
            actor_user_id: c.actor_user_id,
            detail: c.detail,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// A page of commands.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CommandPage {
    /// The commands, newest first.
    pub items: Vec<CommandBody>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// A subuser to add.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubuserCreate {
    /// The user.
    pub user_id: String,
    /// Server permissions, a subset of the caller's own there.
    pub permissions: BTreeSet<String>,
}

/// New permissions of a subuser.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubuserUpdate {
    /// Server permissions, a subset of the caller's own there.
    pub permissions: BTreeSet<String>,
}

/// A subuser.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SubuserBody {
    /// The user.
    pub user_id: String,
    /// Their permissions on the server.
    pub permissions: BTreeSet<String>,
    /// When they were added (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When their permissions last changed (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl From<subusers::Subuser> for SubuserBody {
    fn from(s: subusers::Subuser) -> Self {
        SubuserBody {
            user_id: s.user_id,
            permissions: s.permissions,
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

/// The subusers of a server.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SubuserList {
    /// By user id.
    pub items: Vec<SubuserBody>,
}

/// The server `id` and what the caller may do there; `404` if they may
/// not see it.
pub(super) async fn visible(
    state: &AppState,
    auth: &Authenticated,
    id: &str,
) -> ApiResult<(Server, ServerAccess)> {
    let not_found = || ServersError::NotFound(format!("server {id}"));
    let server = server::get(state.db(), id).await?.ok_or_else(not_found)?;
    let access = access::resolve(state.db(), &auth.principal, &server)
        .await?
        .ok_or_else(not_found)?;
    Ok((server, access))
}

/// Creates a server (`server.create`; for another owner, also
/// `admin.servers`).
#[utoipa::path(
    post,
    path = "/servers",
    tag = "servers",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::ServerCreate, Permission::AdminServers]))),
    request_body = ServerCreate,
    responses(
        (status = 201, description = "Created", body = ServerBody),
        (status = 403, description = "a plugin denied it (hook-denied)"),
        (status = 409, description = "The allocation was just taken"),
        (status = 422, description = "Invalid fields, variables or limits"),
        (status = 503, description = "The game-type plugin failed"),
    )
)]
pub(super) async fn create(
    auth: Authenticated,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ServerCreate>,
) -> ApiResult<(StatusCode, Json<ServerBody>)> {
    auth.principal.require(Gate::SERVER_CREATE)?;
    let admin = auth.principal.passes(Gate::ADMIN_SERVERS);
    let owner_id = match body.owner_id {
        Some(owner) if owner != auth.principal.user_id() => {
            auth.principal.require(Gate::ADMIN_SERVERS)?;
            if users::find_user(state.db(), &owner).await?.is_none() {
                return Err(ServersError::field("owner_id", "there is no such user").into());
            }
            owner
        }
        _ => auth.principal.user_id().to_owned(),
    };
    let new = NewServer {
        name: body.name,
        owner_id,
        node_id: body.node_id,
        allocation: body.allocation.map(|a| (a.ip, a.port)),
        game_plugin: body.game.plugin,
        game_version: body.game.version,
        game_type: body.game.game_type,
        image: body.image,
        startup_command: body.startup_command,
        variables: body.variables,
        limits: body.limits.into(),
    };
    let created = server::create(state.db(), state.plugins(), &new, admin, &auth.actor).await?;
    let access = access::resolve(state.db(), &auth.principal, &created)
        .await?
        .unwrap_or(ServerAccess {
            relation: access::Relation::Admin,
            permissions: BTreeSet::new(),
        });
    Ok((
        StatusCode::CREATED,
        Json(server_body(&state, &created, &access).await?),
    ))
}

/// Lists the servers the caller may see: owned and subuser servers, or
/// every server with `admin.servers`.
#[utoipa::path(
    get,
    path = "/servers",
    tag = "servers",
    security(("bearer" = [])),
    extensions(("x-permissions-visibility" = json!([Permission::AdminServers]))),
    params(PageParams),
    responses(
        (status = 200, description = "A page of servers", body = ServerPage),
        (status = 422, description = "Bad limit or cursor"),
    )
)]
pub(super) async fn list(
    auth: Authenticated,
    State(state): State<AppState>,
    page: Pagination,
) -> ApiResult<Response> {
    let principal = &auth.principal;
    let key = ServerPageKey {
        user_id: principal.user_id().to_owned(),
        permissions: principal.permissions().clone(),
        after: page.after_key().map(str::to_owned),
        limit: page.limit,
    };
    // The version was taken before the caller was read, so before anything
    // below reads the page.
    let version = principal.read_version();
    if let Some(page) = state.server_pages().get(version, &key) {
        return Ok(Json(&*page).into_response());
    }
    let visibility = if principal.passes(Gate::ADMIN_SERVERS) {
        Visibility::All
    } else {
        Visibility::User(principal.user_id())
    };
    let (page, more) =
        server::list_with_allocations(state.db(), visibility, key.after.as_deref(), key.limit)
            .await?;
    let next_cursor = more
        .then(|| page.last().map(|(s, _)| Cursor::after(&s.id).encode()))
        .flatten();
    let mut games = GameDescriptions::default();
    let mut items = Vec::with_capacity(page.len());
    let mut resolver = access::Resolver::default();
    for (server, allocation) in page {
        if let Some(access) = resolver.resolve(state.db(), principal, &server).await? {
            items.push(server_body_with(&state, &server, &access, allocation, &mut games).await);
        }
    }
    let page = ServerPage { next_cursor, items };
    let response = Json(&page).into_response();
    // A game-type plugin that failed to describe itself hid variables this
    // once; the next request asks it again.
    if !games.failed {
        state.server_pages().insert(version, key, Arc::new(page));
    }
    Ok(response)
}

/// How many pages of servers are kept per read version.
pub(super) const CACHED_SERVER_PAGES: usize = 1024;

/// Pages of `GET /servers`, valid at one read version (see
/// [`crate::read_cache`]): a page depends on nothing but the database, the
/// caller and the loaded game-type plugins, and a change to any of them
/// moves the version.
pub(super) type ServerPageCache = VersionedCache<ServerPageKey, Arc<ServerPage>>;

/// What a page of `GET /servers` depends on besides the data: who asks
/// (their permissions decide visibility, variables and the permissions
/// shown) and which page.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct ServerPageKey {
    user_id: String,
    permissions: Arc<BTreeSet<String>>,
    after: Option<String>,
    limit: u32,
}

/// Reads one server.
#[utoipa::path(
    get,
    path = "/servers/{id}",
    tag = "servers",
    security(("bearer" = [])),
    extensions(("x-permissions-visibility" = json!([Permission::AdminServers, Permission::StartupRead, Permission::FileSftp]))),
    params(("id" = String, Path, description = "The server's id")),
    responses(
        (status = 200, description = "The server", body = ServerBody),
        (status = 404, description = "No such server, or not visible to the caller"),
    )
)]
pub(super) async fn get(
    auth: Authenticated,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<ServerBody>> {
    let (server, access) = visible(&state, &auth, &id).await?;
    let mut body = server_body(&state, &server, &access).await?;
    body.sftp = sftp_body(&state, &server, &access, auth.principal.user_id()).await?;
    Ok(Json(body))
}

/// Changes a server's name (`settings.rename`), variables and startup
/// command (`startup.update`), image (`startup.docker-image`) or limits
/// (`admin.servers`).
#[utoipa::path(
    patch,
    path = "/servers/{id}",
    tag = "servers",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::SettingsRename, Permission::StartupUpdate, Permission::StartupDockerImage, Permission::AdminServers]))),
    params(("id" = String, Path, description = "The server's id")),
    request_body = ServerUpdate,
    responses(
        (status = 200, description = "Changed", body = ServerBody),
        (status = 403, description = "a plugin denied it (hook-denied)"),
        (status = 404, description = "No such server"),
        (status = 422, description = "Invalid fields, variables or limits"),
        (status = 503, description = "The game-type plugin failed"),
    )
)]
pub(super) async fn update(
    auth: Authenticated,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ServerUpdate>,
) -> ApiResult<Json<ServerBody>> {
    let (current, access) = visible(&state, &auth, &id).await?;
    if body.name.is_some() {
        access.require(Gate::SETTINGS_RENAME)?;
    }
    if body.variables.is_some() || body.startup_command.is_some() {
        access.require(Gate::STARTUP_UPDATE)?;
    }
    if body.limits.is_some() {
        auth.principal.require(Gate::ADMIN_SERVERS)?;
    }
    if body.image.is_some() {
        access.require(Gate::STARTUP_DOCKER_IMAGE)?;
    }
    if current.state == server::STATE_DELETING {
        return Err(
            ServersError::conflict(Code::ServerDeleting, "the server is being deleted").into(),
        );
    }
    let changes = ServerChanges {
        name: body.name,
        variables: body.variables,
        limits: body.limits.map(ServerResourceLimits::from),
        image: body.image,
        startup_command: body.startup_command,
    };
    let updated = server::update(
        state.db(),
        state.plugins(),
        &current,
        &changes,
        access.is_admin(),
        &auth.actor,
    )
    .await?;
    Ok(Json(server_body(&state, &updated, &access).await?))
}

async fn queue(
    state: &AppState,
    auth: &Authenticated,
    id: &str,
    action: CommandAction,
    line: Option<&str>,
) -> ApiResult<(StatusCode, Json<CommandAccepted>)> {
    let (server, access) = visible(state, auth, id).await?;
    access.require(action.permission())?;
    let command = commands::enqueue(
        state.db(),
        state.plugins(),
        &server,
        action,
        line,
        &auth.actor,
    )
    .await?;
    accepted(state, command)
}

/// `202` for `command`, queued: wakes its node's Agent.
fn accepted(state: &AppState, command: Command) -> ApiResult<(StatusCode, Json<CommandAccepted>)> {
    if let Some(node) = &command.node_id {
        state.agents().wake(node);
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(CommandAccepted {
            command_id: command.id,
        }),
    ))
}

/// Deletes a server: queues a `delete` command for its Agent and marks it
/// `deleting`; it is removed when the Agent confirms. Needs
/// `server.delete` (owners and admins).
#[utoipa::path(
    delete,
    path = "/servers/{id}",
    tag = "servers",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::ServerDelete]))),
    params(("id" = String, Path, description = "The server's id")),
    responses(
        (status = 202, description = "Queued", body = CommandAccepted),
        (status = 403, description = "a plugin denied it (hook-denied)"),
        (status = 404, description = "No such server"),
        (status = 409, description = "Already being deleted"),
    )
)]
pub(super) async fn delete(
    auth: Authenticated,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<CommandAccepted>)> {
    queue(&state, &auth, &id, CommandAction::Delete, None).await
}

/// Starts, stops, restarts or kills a server (`control.start`,
/// `control.stop`, `control.restart`; a kill needs `control.stop`).
#[utoipa::path(
    post,
    path = "/servers/{id}/power",
    tag = "servers",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::ControlStart, Permission::ControlStop, Permission::ControlRestart]))),
    params(("id" = String, Path, description = "The server's id")),
    request_body = PowerRequest,
    responses(
        (status = 202, description = "Queued", body = CommandAccepted),
        (status = 403, description = "a plugin denied it (hook-denied)"),
        (status = 404, description = "No such server"),
        (status = 409, description = "Being deleted, or suspended (server-suspended: start and restart)"),
        (status = 422, description = "Unknown action"),
    )
)]
pub(super) async fn power(
    auth: Authenticated,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PowerRequest>,
) -> ApiResult<(StatusCode, Json<CommandAccepted>)> {
    let action = match body.action {
        PowerAction::Start => CommandAction::Start,
        PowerAction::Stop => CommandAction::Stop,
        PowerAction::Restart => CommandAction::Restart,
        PowerAction::Kill => CommandAction::Kill,
    };
    queue(&state, &auth, &id, action, None).await
}

/// `POST /servers/{id}/install` (the body is optional: none keeps the
/// files).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InstallRequest {
    /// Empty the server's directory before the install plan runs (its
    /// backups live elsewhere and stay); default false: the files are
    /// kept and the plan runs over them.
    #[serde(default)]
    pub wipe: bool,
}

/// (Re)installs a server with its game's install plan
/// (`settings.reinstall`), over its files or, with `wipe`, into an
/// emptied directory. Refused while the server is starting, running,
/// stopping or installing (`server-running`: stop it first; the Agent does
/// not install over a live server) and while it is suspended.
#[utoipa::path(
    post,
    path = "/servers/{id}/install",
    tag = "servers",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::SettingsReinstall]))),
    params(("id" = String, Path, description = "The server's id")),
    request_body = Option<InstallRequest>,
    responses(
        (status = 202, description = "Queued", body = CommandAccepted),
        (status = 403, description = "a plugin denied it (hook-denied)"),
        (status = 404, description = "No such server"),
        (status = 409, description = "Being deleted (server-deleting), running (server-running) or suspended (server-suspended)"),
        (status = 422, description = "A body that is not an install request"),
    )
)]
pub(super) async fn install(
    auth: Authenticated,
    State(state): State<AppState>,
    Path(id): Path<String>,
    OptionalApiJson(body): OptionalApiJson<InstallRequest>,
) -> ApiResult<(StatusCode, Json<CommandAccepted>)> {
    let (server, access) = visible(&state, &auth, &id).await?;
    access.require(CommandAction::Install.permission())?;
    let command =
        commands::enqueue_install(state.db(), state.plugins(), &server, body.wipe, &auth.actor)
            .await?;
    accepted(&state, command)
}

/// Sends one line to a server's console (`control.console`).
#[utoipa::path(
    post,
    path = "/servers/{id}/command",
    tag = "servers",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::ControlConsole]))),
    params(("id" = String, Path, description = "The server's id")),
    request_body = ConsoleRequest,
    responses(
        (status = 202, description = "Queued", body = CommandAccepted),
        (status = 403, description = "a plugin denied it (hook-denied)"),
        (status = 404, description = "No such server"),
        (status = 409, description = "Being deleted, or suspended (server-suspended)"),
        (status = 422, description = "Not one line"),
    )
)]
pub(super) async fn console(
    auth: Authenticated,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ConsoleRequest>,
) -> ApiResult<(StatusCode, Json<CommandAccepted>)> {
    queue(
        &state,
        &auth,
        &id,
        CommandAction::Console,
        Some(&body.command),
    )
    .await
}

/// A console token and where to use it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConsoleTicket {
    /// Send it as `{"event":"auth","args":[token]}` first on the socket.
    pub token: String,
    /// The WebSocket's path on this Panel.
    pub socket: String,
    /// When the token expires; the socket warns a minute before.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// The caller's permissions on the server, as the token carries them.
    pub permissions: Vec<String>,
}

/// Issues a short-lived, single-use token for the server's console
/// WebSocket (`control.console`). The token carries the caller's
/// permissions on the server; the socket at `socket` streams history,
/// output, events, stats and state, and takes console lines and power
/// actions, each authorised again when it is sent. The socket closes when
/// the caller's session, user or access to the server goes.
#[utoipa::path(
    get,
    path = "/servers/{id}/websocket",
    tag = "servers",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::ControlConsole]))),
    params(("id" = String, Path, description = "The server's id")),
    responses(
        (status = 200, description = "A console token", body = ConsoleTicket),
        (status = 404, description = "No such server"),
    )
)]
pub(super) async fn console_ticket(
    auth: Authenticated,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<ConsoleTicket>> {
    let (server, access) = visible(&state, &auth, &id).await?;
    access.require(CommandAction::Console.permission())?;
    let permissions = access.names();
    let (token, claims) =
        state
            .console_tokens()
            .issue(&auth.principal, &server.id, permissions.clone())?;
    let expires_at = OffsetDateTime::from_unix_timestamp(i64::try_from(claims.exp).unwrap_or(0))
        .unwrap_or_else(|_| OffsetDateTime::now_utc());
    Ok(Json(ConsoleTicket {
        token,
        socket: format!("/api/v1/servers/{}/console", server.id),
        expires_at,
        permissions,
    }))
}

/// Lists a server's commands, newest first (`activity.read`).
#[utoipa::path(
    get,
    path = "/servers/{id}/commands",
    tag = "servers",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::ActivityRead]))),
    params(("id" = String, Path, description = "The server's id"), PageParams),
    responses(
        (status = 200, description = "A page of commands", body = CommandPage),
        (status = 404, description = "No such server"),
    )
)]
pub(super) async fn list_commands(
    auth: Authenticated,
    State(state): State<AppState>,
    Path(id): Path<String>,
    page: Pagination,
) -> ApiResult<Json<CommandPage>> {
    let (server, access) = visible(&state, &auth, &id).await?;
    access.require(Gate::ACTIVITY_READ)?;
    let (items, more) =
        commands::list_for_server(state.db(), &server.id, page.after_key(), page.limit).await?;
    Ok(Json(CommandPage {
        next_cursor: more
            .then(|| items.last().map(|c| Cursor::after(&c.id).encode()))
            .flatten(),
        items: items.into_iter().map(CommandBody::from).collect(),
    }))
}

/// Checks a subuser grant: permissions subusers may be given
/// ([`Scope::Server`]), all held by the granting caller there.
fn check_grant(access: &ServerAccess, permissions: &BTreeSet<String>) -> Result<(), ServersError> {
    let mut problems = Vec::new();
    for (i, permission) in permissions.iter().enumerate() {
        let field = format!("permissions[{i}]");
        let grantable = permission
            .parse::<Permission>()
            .ok()
            .filter(|p| p.scope() == Scope::Server);
        let Some(grantable) = grantable else {
            problems.push(crate::servers::FieldProblem::new(
                field,
                format!("{permission} is not a server permission"),
            ));
            continue;
        };
        if !access.has(grantable) {
            problems.push(crate::servers::FieldProblem::new(
                field,
                format!("you do not hold {permission} on this server, so you cannot grant it"),
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ServersError::Invalid(problems))
    }
}

/// Adds a subuser (`user.create`); the permissions must be a subset of the
/// caller's own on the server.
#[utoipa::path(
    post,
    path = "/servers/{id}/subusers",
    tag = "servers",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::UserCreate]))),
    params(("id" = String, Path, description = "The server's id")),
    request_body = SubuserCreate,
    responses(
        (status = 201, description = "Added", body = SubuserBody),
        (status = 404, description = "No such server"),
        (status = 409, description = "Already a subuser"),
        (status = 422, description = "Unknown user, or permissions the caller cannot grant"),
    )
)]
pub(super) async fn add_subuser(
    auth: Authenticated,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<SubuserCreate>,
) -> ApiResult<(StatusCode, Json<SubuserBody>)> {
    let (server, access) = visible(&state, &auth, &id).await?;
    access.require(Gate::USER_CREATE)?;
    if body.user_id == server.owner_id {
        return Err(ServersError::field("user_id", "the owner cannot be a subuser").into());
    }
    if body.user_id == auth.principal.user_id() {
        return Err(ServersError::field("user_id", "you cannot add yourself").into());
    }
    if users::find_user(state.db(), &body.user_id).await?.is_none() {
        return Err(ServersError::field("user_id", "there is no such user").into());
    }
    check_grant(&access, &body.permissions)?;
    let added = subusers::add(
        state.db(),
        &server.id,
        &body.user_id,
        &body.permissions,
        &auth.actor,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(added.into())))
}

/// Lists a server's subusers (`user.read`).
#[utoipa::path(
    get,
    path = "/servers/{id}/subusers",
    tag = "servers",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::UserRead]))),
    params(("id" = String, Path, description = "The server's id")),
    responses(
        (status = 200, description = "The subusers", body = SubuserList),
        (status = 404, description = "No such server"),
    )
)]
pub(super) async fn list_subusers(
    auth: Authenticated,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<SubuserList>> {
    let (server, access) = visible(&state, &auth, &id).await?;
    access.require(Gate::USER_READ)?;
    let items = subusers::list(state.db(), &server.id).await?;
    Ok(Json(SubuserList {
        items: items.into_iter().map(SubuserBody::from).collect(),
    }))
}

/// Replaces a subuser's permissions (`user.update`); a subset of the
/// caller's own on the server.
#[utoipa::path(
    patch,
    path = "/servers/{id}/subusers/{user_id}",
    tag = "servers",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::UserUpdate]))),
    params(
        ("id" = String, Path, description = "The server's id"),
        ("user_id" = String, Path, description = "The subuser's user id"),
    ),
    request_body = SubuserUpdate,
    responses(
        (status = 200, description = "Changed", body = SubuserBody),
        (status = 404, description = "No such server or subuser"),
        (status = 422, description = "Permissions the caller cannot grant"),
    )
)]
pub(super) async fn update_subuser(
    auth: Authenticated,
    State(state): State<AppState>,
    Path((id, user_id)): Path<(String, String)>,
    ApiJson(body): ApiJson<SubuserUpdate>,
) -> ApiResult<Json<SubuserBody>> {
    let (server, access) = visible(&state, &auth, &id).await?;
    access.require(Gate::USER_UPDATE)?;
    if user_id == auth.principal.user_id() {
        return Err(
            ServersError::field("user_id", "you cannot change your own permissions").into(),
        );
    }
    check_grant(&access, &body.permissions)?;
    let updated = subusers::update(
        state.db(),
        &server.id,
        &user_id,
        &body.permissions,
        &auth.actor,
    )
    .await?;
    Ok(Json(updated.into()))
}

/// Removes a subuser (`user.delete`).
#[utoipa::path(
    delete,
    path = "/servers/{id}/subusers/{user_id}",
    tag = "servers",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::UserDelete]))),
    params(
        ("id" = String, Path, description = "The server's id"),
        ("user_id" = String, Path, description = "The subuser's user id"),
    ),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such server or subuser"),
    )
)]
pub(super) async fn remove_subuser(
    auth: Authenticated,
    State(state): State<AppState>,
    Path((id, user_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let (server, access) = visible(&state, &auth, &id).await?;
    access.require(Gate::USER_DELETE)?;
    subusers::remove(state.db(), &server.id, &user_id, &auth.actor).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The server routes, relative to `/api/v1`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(get, update, delete))
        .routes(routes!(power))
        .routes(routes!(install))
        .routes(routes!(console))
        .routes(routes!(console_ticket))
        .routes(routes!(list_commands))
        .routes(routes!(add_subuser, list_subusers))
        .routes(routes!(update_subuser, remove_subuser))
}
