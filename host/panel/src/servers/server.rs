//! Servers: creating, reading, listing and changing them.
//!
//! Creating a server ([`create`]) goes through, in order:
//!
//! 1. the request's own fields (name, limits, node, allocation);
//! 2. the game-type plugin: it must be active; its `describe` declares the
//!    variables and their rules ([`super::variables`]), then its
//!    `validate` gets the resolved values; problems name
//!    `variables.<KEY>`;
//! 3. the node's remaining resources;
//! 4. the `server.create` before-hooks: a deny is
//!    [`ServersError::HookDenied`]; a modification changes the allowed
//!    fields, which are then checked again;
//! 5. one transaction: lock the node, check resources again, insert the
//!    server, take the allocation, append `server.created`;
//! 6. the after-hooks, on a task of their own — never delaying the answer.
//!
//! Updates ([`update`]) follow the same steps with `server.update`.

use std::collections::BTreeMap;

use cap_runtime::api::{self, EventKind, KeyValue, Payload, ServerInfo};
use cap_runtime::manifest::PluginKind;
use sqlx::types::Json;
use time::OffsetDateTime;

use super::nodes::{self, USAGE_QUERY, check_resource, sum_usage};
use super::suspension::Suspension;
use super::{FieldProblem, ServersError, check_text, new_id, to_i64, to_u64, variables};
use crate::db::domain::{
    GameVersion, Resources, ServerCreated, ServerEvent, ServerId, ServerUpdated, StateChanged,
};
use crate::db::{
    Actor, Database, DbError, NewEvent, from_micros, now, on_pool, query_builder, to_micros,
};
use crate::error_code::Code;
use crate::plugins::PluginManager;
use crate::plugins::hooks::{event as hook_event, run_before, spawn_after};

/// Longest server name, characters.
pub const MAX_NAME_LEN: usize = 128;
/// Most variables a request may send.
pub const MAX_VARIABLES: usize = 128;

/// The state of a server that was just created.
pub const STATE_OFFLINE: &str = "offline";
/// The state of a server whose deletion waits for its Agent.
pub const STATE_DELETING: &str = "deleting";

/// What a server may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ServerResourceLimits {
    /// Memory, MiB.
    pub memory_mb: u64,
    /// Disk, MiB.
    pub disk_mb: u64,
    /// CPU, percent of one core.
    pub cpu_percent: u64,
}

/// A server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// Its id (`srv_…`).
    pub id: String,
    /// Display name.
    pub name: String,
    /// The owning user.
    pub owner_id: String,
    /// The node it runs on.
    pub node_id: Option<String>,
    /// Its game-type plugin.
    pub game_plugin: String,
    /// The plugin's version when the server was created or last changed.
    pub game_version: String,
    /// The game type among the plugin's (WIT 0.2.0: a plugin may offer
    /// several, such as the eggs the egg bridge keeps); `None` for servers
    /// created before, which run the plugin's only game type.
    pub game_type: Option<String>,
    /// The image it runs in on container nodes, one its game type lists;
    /// `None`: the package's image.
    pub image: Option<String>,
    /// The startup command it runs, one its game type names (Pelican's
    /// `startup_commands`); `None`: the game type's first.
    pub startup_command: Option<String>,
    /// Its game variables, resolved (defaults filled in).
    pub variables: BTreeMap<String, String>,
    /// What it may use.
    pub limits: ServerResourceLimits,
    /// `offline`, `deleting`, and what its Agent reports later.
    pub state: String,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// Its suspension, while it is suspended ([`super::suspension`]).
    pub suspension: Option<Suspension>,
    /// The transfer to another node it is in ([`super::transfers`]).
    pub transfer_id: Option<String>,
}

/// A server to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewServer {
    /// Display name.
    pub name: String,
    /// The owning user.
    pub owner_id: String,
    /// The node to place it on.
    pub node_id: String,
    /// The allocation to give it; `None` takes the node's first free one.
    pub allocation: Option<(String, u16)>,
    /// The game-type plugin.
    pub game_plugin: String,
    /// The plugin version the caller expects, if they care.
    pub game_version: Option<String>,
    /// The game type among the plugin's; `None` when it offers only one.
    pub game_type: Option<String>,
    /// The image among those the game type lists; `None`: the first.
    pub image: Option<String>,
    /// The startup command among those the game type names; `None`: the
    /// first.
    pub startup_command: Option<String>,
    /// Game variables.
    pub variables: BTreeMap<String, String>,
    /// What it may use.
    pub limits: ServerResourceLimits,
}

/// Changes to a server; `None` keeps the current value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerChanges {
    /// New name.
    pub name: Option<String>,
    /// Variables to change (others keep their values).
    pub variables: Option<BTreeMap<String, String>>,
    /// New limits.
    pub limits: Option<ServerResourceLimits>,
    /// Another of the images its game type lists.
    pub image: Option<String>,
    /// Another of the startup commands its game type names.
    pub startup_command: Option<String>,
}

/// A `servers` row, as sqlx reads it or as SQLite's JSON functions write it
/// for [`list_with_allocations`] (which alone fills `allocation`).
#[derive(sqlx::FromRow, serde::Deserialize)]
struct ServerRow {
    id: String,
    name: String,
    owner_id: String,
    node_id: Option<String>,
    game_plugin: String,
    game_version: String,
    game_type: Option<String>,
    image: Option<String>,
    startup_command: Option<String>,
    variables: Json<BTreeMap<String, String>>,
    memory_mb: i64,
    disk_mb: i64,
    cpu_percent: i64,
    state: String,
    created_at: i64,
    suspended_reason: Option<String>,
    suspended_at: Option<i64>,
    suspended_by: Option<String>,
    #[serde(default)]
    transfer_id: Option<String>,
    /// The server's primary allocation.
    #[sqlx(skip)]
    #[serde(default)]
    allocation: Option<JsonAllocation>,
}

const SERVER_COLUMNS: &str = "SELECT s.id, s.name, s.owner_id, s.node_id, s.game_plugin, \
     s.game_version, s.game_type, s.image, s.startup_command, s.variables, s.memory_mb, s.disk_mb, s.cpu_percent, \
     s.state, s.created_at, s.suspended_reason, s.suspended_at, s.suspended_by, s.transfer_id \
     FROM servers s";

impl TryFrom<ServerRow> for Server {
    type Error = DbError;

    fn try_from(row: ServerRow) -> Result<Self, DbError> {
        let suspension = match (row.suspended_reason, row.suspended_at) {
            (None, None) => None,
            (Some(reason), Some(at)) => Some(Suspension {
                reason,
                since: from_micros(at)?,
                by: row.suspended_by,
            }),
            _ => {
                return Err(DbError::Corrupt(format!(
                    "server {} has half a suspension (a reason without a time, or a time without a reason)",
                    row.id
                )));
            }
        };
        Ok(Server {
            suspension,
            transfer_id: row.transfer_id,
            limits: ServerResourceLimits {
                memory_mb: to_u64(row.memory_mb, "servers.memory_mb")?,
                disk_mb: to_u64(row.disk_mb, "servers.disk_mb")?,
                cpu_percent: to_u64(row.cpu_percent, "servers.cpu_percent")?,
            },
            created_at: from_micros(row.created_at)?,
            id: row.id,
            name: row.name,
            owner_id: row.owner_id,
            node_id: row.node_id,
            game_plugin: row.game_plugin,
            game_version: row.game_version,
            game_type: row.game_type,
            image: row.image,
            startup_command: row.startup_command,
            variables: row.variables.0,
            state: row.state,
        })
    }
}

/// The server `id`, if it exists.
///
/// # Errors
///
/// Database errors.
pub async fn get(db: &Database, id: &str) -> Result<Option<Server>, DbError> {
    let row: Option<ServerRow> = on_pool!(db, |pool| {
        let mut qb = query_builder(pool, SERVER_COLUMNS);
        qb.push(" WHERE s.id = ").push_bind(id);
        qb.build_query_as::<ServerRow>()
            .fetch_optional(pool)
            .await?
    });
    row.map(Server::try_from).transpose()
}

/// Whose servers a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility<'a> {
    /// Every server (administrators, plugins).
    All,
    /// Those the user owns or is a subuser of.
    User(&'a str),
}

/// Appends to a query over `servers s` the page filter [`list`] and
/// [`list_with_allocations`] share: what `visibility` shows, after the
/// cursor id `after`, by id, one more than `limit` (to tell whether more
/// follow). A macro because each backend's query builder is its own type.
macro_rules! push_page_filter {
    ($qb:ident, $visibility:expr, $after:expr, $limit:expr) => {
        $qb.push(" WHERE 1 = 1");
        if let Visibility::User(user) = $visibility {
            $qb.push(" AND (s.owner_id = ")
                .push_bind(user)
                .push(" OR s.id IN (SELECT u.server_id FROM server_subusers u WHERE u.user_id = ")
                .push_bind(user)
                .push("))");
        }
        if let Some(after) = $after {
            $qb.push(" AND s.id > ").push_bind(after);
        }
        $qb.push(" ORDER BY s.id LIMIT ")
            .push_bind(i64::from($limit) + 1);
    };
}

/// Up to `limit` servers visible as `visibility` says, after the id
/// `after`, by id (creation order), and whether more follow.
///
/// # Errors
///
/// Database errors.
pub async fn list(
    db: &Database,
    visibility: Visibility<'_>,
    after: Option<&str>,
    limit: u32,
) -> Result<(Vec<Server>, bool), DbError> {
    let rows: Vec<ServerRow> = on_pool!(db, |pool| {
        let mut qb = query_builder(pool, SERVER_COLUMNS);
        push_page_filter!(qb, visibility, after, limit);
        qb.build_query_as::<ServerRow>().fetch_all(pool).await?
    });
    let mut servers = rows
        .into_iter()
        .map(Server::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    let more = servers.len() > limit as usize;
    servers.truncate(limit as usize);
    Ok((servers, more))
}

/// [`list`], with each server's primary allocation.
///
/// On SQLite the page comes back as one JSON document built by SQLite
/// itself: sqlx runs each SQLite connection on a worker thread and hands
/// every row over a channel, so a hundred rows cost a hundred thread
/// wake-ups, which dominated the cost of listing servers. PostgreSQL and
/// MySQL stream rows over their socket and take the plain queries.
///
/// # Errors
///
/// Database errors.
pub async fn list_with_allocations(
    db: &Database,
    visibility: Visibility<'_>,
    after: Option<&str>,
    limit: u32,
) -> Result<(Vec<(Server, Option<nodes::Allocation>)>, bool), DbError> {
    let crate::db::Pool::Sqlite(pool) = &db.pool else {
        let (servers, more) = list(db, visibility, after, limit).await?;
        let ids: Vec<&str> = servers.iter().map(|s| s.id.as_str()).collect();
        let mut allocations = nodes::primary_allocations(db, &ids).await?;
        let page = servers
            .into_iter()
            .map(|server| {
                let allocation = allocations.remove(&server.id);
                (server, allocation)
            })
            .collect();
        return Ok((page, more));
    };
    let mut qb = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
        "SELECT json_group_array(json_object(\
         'id', s.id, 'name', s.name, 'owner_id', s.owner_id, 'node_id', s.node_id, \
         'game_plugin', s.game_plugin, 'game_version', s.game_version, \
         'game_type', s.game_type, 'image', s.image, 'startup_command', s.startup_command, \
         'variables', json(s.variables), 'memory_mb', s.memory_mb, 'disk_mb', s.disk_mb, \
         'cpu_percent', s.cpu_percent, 'state', s.state, 'created_at', s.created_at, \
         'suspended_reason', s.suspended_reason, 'suspended_at', s.suspended_at, \
         'suspended_by', s.suspended_by, 'transfer_id', s.transfer_id, \
         'allocation', json((SELECT json_object('node_id', a.node_id, 'ip', a.ip, 'port', a.port, \
             'notes', a.notes, 'is_primary', a.is_primary) \
             FROM allocations a WHERE a.server_id = s.id ORDER BY a.is_primary DESC, a.ip, a.port \
             LIMIT 1)))) \
         FROM (SELECT * FROM servers s",
    );
    push_page_filter!(qb, visibility, after, limit);
    qb.push(") s");
    let document: String = qb.build_query_scalar().fetch_one(pool).await?;
    let rows: Vec<ServerRow> = serde_json::from_str(&document)
        .map_err(|e| DbError::Corrupt(format!("the page of servers SQLite built: {e}")))?;
    let mut page = rows
        .into_iter()
        .map(ServerRow::into_parts)
        .collect::<Result<Vec<_>, _>>()?;
    // json_group_array promises no order.
    page.sort_unstable_by(|(a, _), (b, _)| a.id.cmp(&b.id));
    let more = page.len() > limit as usize;
    page.truncate(limit as usize);
    Ok((page, more))
}

/// An allocation as SQLite's JSON functions write it.
#[derive(serde::Deserialize)]
struct JsonAllocation {
    node_id: String,
    ip: String,
    port: i64,
    notes: Option<String>,
    is_primary: i64,
}

impl ServerRow {
    /// The server and its allocation.
    fn into_parts(mut self) -> Result<(Server, Option<nodes::Allocation>), DbError> {
        let allocation = self
            .allocation
            .take()
            .map(|a| {
                Ok::<_, DbError>(nodes::Allocation {
                    port: u16::try_from(a.port)
                        .map_err(|_| DbError::Corrupt(format!("allocation port {}", a.port)))?,
                    node_id: a.node_id,
                    ip: a.ip,
                    server_id: Some(self.id.clone()),
                    notes: a.notes,
                    primary: a.is_primary != 0,
                })
            })
            .transpose()?;
        Ok((Server::try_from(self)?, allocation))
    }
}

/// The before/after hook payload for `server`.
pub(crate) fn server_info(server: &Server) -> ServerInfo {
    ServerInfo {
        id: server.id.clone(),
        name: server.name.clone(),
        owner_id: server.owner_id.clone(),
        node_id: server.node_id.clone().unwrap_or_default(),
        game_type: server.game_plugin.clone(),
        memory_mb: server.limits.memory_mb,
        disk_mb: server.limits.disk_mb,
        cpu_percent: u32::try_from(server.limits.cpu_percent).unwrap_or(u32::MAX),
        variables: server
            .variables
            .iter()
            .map(|(key, value)| KeyValue {
                key: key.clone(),
                value: value.clone(),
            })
            .collect(),
        state: server.state.clone(),
    }
}

/// Why `node` cannot run servers of the game type `manifest` describes,
/// or `None` when it can: the node must advertise one of the game type's
/// runtimes (`native-process`, `container`). A node whose Agent has not
/// registered yet advertises nothing and is not judged: its first command
/// is (see [`crate::agents::plans`]).
pub fn runtime_problem(node: &nodes::Node, manifest: &cap_runtime::Manifest) -> Option<String> {
    if node.capabilities.is_empty() {
        return None;
    }
    let runtimes = manifest.game_runtimes();
    if runtimes
        .iter()
        .any(|r| node.capabilities.iter().any(|c| c == r.capability()))
    {
        return None;
    }
    let offered = runtimes
        .iter()
        .map(|r| r.capability())
        .collect::<Vec<_>>()
        .join(" or ");
    let node_runs = if node.capabilities.iter().any(|c| c == "container") {
        "in containers"
    } else {
        "as native processes"
    };
    Some(format!(
        "node {} runs servers {node_runs}, and the game type {} runs only as {offered}",
        node.name, manifest.plugin.id
    ))
}

/// The active game-type plugin `id` and its game type `game_type` (the
/// plugin's only one when `None`).
pub(crate) async fn game(
    plugins: Option<&PluginManager>,
    id: &str,
    version: Option<&str>,
    game_type: Option<&str>,
) -> Result<(cap_runtime::Plugin, api::GameInfo), ServersError> {
    let plugin = plugins
        .and_then(|p| p.active(id))
        .filter(|p| p.manifest().has_kind(PluginKind::GameType))
        .ok_or_else(|| ServersError::field("game.plugin", "is not an active game-type plugin"))?;
    let active = plugin.manifest().plugin.version.to_string();
    if let Some(version) = version
        && version != active
    {
        return Err(ServersError::field(
            "game.version",
            format!("the active version of {id} is {active}"),
        ));
    }
    let games = plugin
        .game_types()
        .await
        .map_err(|e| ServersError::PluginUnavailable {
            plugin: id.to_owned(),
            reason: e.to_string(),
        })?;
    let info = pick_game_type(id, games, game_type)?;
    Ok((plugin, info))
}

/// The game type `wanted` among `games` (plugin `plugin`'s), or its only
/// one when `wanted` is `None`.
fn pick_game_type(
    plugin: &str,
    mut games: Vec<api::GameInfo>,
    wanted: Option<&str>,
) -> Result<api::GameInfo, ServersError> {
    let found = match wanted {
        Some(wanted) => games.iter().position(|g| g.id == wanted),
        None if games.len() == 1 => Some(0),
        None => None,
    };
    if let Some(found) = found {
        return Ok(games.swap_remove(found));
    }
    let ids: Vec<&str> = games.iter().map(|g| g.id.as_str()).collect();
    let offered = if ids.is_empty() {
        "it offers none yet".to_owned()
    } else {
        format!("it offers {}", ids.join(", "))
    };
    Err(ServersError::field(
        "game.type",
        match wanted {
            Some(wanted) => format!("{plugin} has no game type {wanted:?}: {offered}"),
            None => format!("is required: {plugin} offers several game types or none; {offered}"),
        },
    ))
}

/// The value of `result`, or, when it is a problem, the problem added to
/// `problems` and nothing (callers refuse once any problem is recorded).
fn or_problem<T>(
    problems: &mut Vec<FieldProblem>,
    result: Result<Option<T>, FieldProblem>,
) -> Option<T> {
    result.unwrap_or_else(|problem| {
        problems.push(problem);
        None
    })
}

/// `wanted` when it is one of `offered`, what the game type `info` lists
/// for `field` (its `what`), else a problem naming `field` and what is
/// offered; nothing wanted: `default`.
fn pick_offered(
    info: &api::GameInfo,
    (field, what): (&str, &str),
    offered: &[&str],
    wanted: Option<&str>,
    default: Option<String>,
) -> Result<Option<String>, FieldProblem> {
    let Some(wanted) = wanted else {
        return Ok(default);
    };
    if offered.contains(&wanted) {
        return Ok(Some(wanted.to_owned()));
    }
    let message = if offered.is_empty() {
        format!(
            "the game type {} lists no {what} to pick from, so not {wanted:?}",
            info.id
        )
    } else {
        format!(
            "{wanted:?} is not one of the game type's {what}: {}",
            offered.join(", ")
        )
    };
    Err(FieldProblem::new(field, message))
}

/// The startup command a server of game type `info` runs: `wanted` when
/// the game type names it; `None` (its first) when nothing is wanted.
fn pick_startup_command(
    info: &api::GameInfo,
    wanted: Option<&str>,
) -> Result<Option<String>, FieldProblem> {
    let names: Vec<&str> = info.startup_commands.iter().map(String::as_str).collect();
    pick_offered(
        info,
        ("startup_command", "startup commands"),
        &names,
        wanted,
        None,
    )
}

/// The image a server of game type `info` runs in: `wanted` when the game
/// type lists it, else its first; `None` when it lists none (the package's
/// image applies).
fn pick_image(info: &api::GameInfo, wanted: Option<&str>) -> Result<Option<String>, FieldProblem> {
    let references: Vec<&str> = info.images.iter().map(|i| i.reference.as_str()).collect();
    let first = info.images.first().map(|i| i.reference.clone());
    pick_offered(info, ("image", "images"), &references, wanted, first)
}

/// Resolves variables by the game's rules, then asks its `validate`.
async fn checked_variables(
    plugin: &cap_runtime::Plugin,
    info: &api::GameInfo,
    given: &BTreeMap<String, String>,
    current: &BTreeMap<String, String>,
    privileged: bool,
) -> Result<BTreeMap<String, String>, ServersError> {
    if given.len() > MAX_VARIABLES {
        return Err(ServersError::field(
            "variables",
            format!("at most {MAX_VARIABLES} variables"),
        ));
    }
    let resolved = variables::resolve(&info.variables, given, current, privileged)
        .map_err(ServersError::Invalid)?;
    let pairs: Vec<KeyValue> = resolved
        .iter()
        .map(|(key, value)| KeyValue {
            key: key.clone(),
            value: value.clone(),
        })
        .collect();
    match plugin.validate_variables(&info.id, &pairs).await {
        Ok(Ok(())) => Ok(resolved),
        Ok(Err(errors)) => Err(ServersError::Invalid(
            errors
                .into_iter()
                .map(|e| FieldProblem::new(format!("variables.{}", e.key), e.message))
                .collect(),
        )),
        Err(e) => Err(ServersError::PluginUnavailable {
            plugin: plugin.id().to_owned(),
            reason: e.to_string(),
        }),
    }
}

fn check_limits(
    problems: &mut Vec<FieldProblem>,
    limits: &ServerResourceLimits,
    min_memory_mb: u32,
) {
    check_resource(problems, "limits.memory_mb", limits.memory_mb);
    check_resource(problems, "limits.disk_mb", limits.disk_mb);
    check_resource(problems, "limits.cpu_percent", limits.cpu_percent);
    if limits.memory_mb < u64::from(min_memory_mb) {
        problems.push(FieldProblem::new(
            "limits.memory_mb",
            format!("the game needs at least {min_memory_mb} MiB"),
        ));
    }
    if limits.cpu_percent == 0 {
        problems.push(FieldProblem::new(
            "limits.cpu_percent",
            "must be at least 1",
        ));
    }
}

/// Problems with fitting `wanted` into `node`, given what is `used`.
pub(crate) fn check_fit(
    problems: &mut Vec<FieldProblem>,
    node: &nodes::Node,
    used: &nodes::Usage,
    wanted: &ServerResourceLimits,
) {
    for (field, offered, used, wanted) in [
        (
            "limits.memory_mb",
            node.memory_mb,
            used.memory_mb,
            wanted.memory_mb,
        ),
        ("limits.disk_mb", node.disk_mb, used.disk_mb, wanted.disk_mb),
        (
            "limits.cpu_percent",
            node.cpu_percent,
            used.cpu_percent,
            wanted.cpu_percent,
        ),
    ] {
        let free = offered.saturating_sub(used);
        if wanted > free {
            problems.push(FieldProblem::new(
                field,
                format!("the node has {free} left of {offered}"),
            ));
        }
    }
}

/// Applies a before-hook's modification of the server fields to `server`.
fn apply_modification(server: &mut Server, event: &api::Event) {
    if let Payload::Server(info) = &event.payload {
        server.name = info.name.clone();
        server.limits = ServerResourceLimits {
            memory_mb: info.memory_mb,
            disk_mb: info.disk_mb,
            cpu_percent: u64::from(info.cpu_percent),
        };
        server.variables = info
            .variables
            .iter()
            .map(|kv| (kv.key.clone(), kv.value.clone()))
            .collect();
    }
}

/// Creates a server; see the module documentation for the steps.
/// `privileged` callers (server administrators) may set variables that are
/// not user-editable.
///
/// # Errors
///
/// [`ServersError::Invalid`] per field, [`ServersError::HookDenied`],
/// [`ServersError::PluginUnavailable`], [`ServersError::Conflict`] when a
/// concurrent request took the allocation (`allocation-unavailable`) or the
/// node's last resources (`node-full`), database errors.
pub async fn create(
    db: &Database,
    plugins: Option<&PluginManager>,
    new: &NewServer,
    privileged: bool,
    actor: &Actor,
) -> Result<Server, ServersError> {
    let mut problems = Vec::new();
    check_text(&mut problems, "name", &new.name, MAX_NAME_LEN);
    let node = nodes::get(db, &new.node_id).await?;
    if node.is_none() {
        problems.push(FieldProblem::new("node_id", "there is no such node"));
    }
    let allocation = match &node {
        None => None,
        Some(node) => {
            let free = nodes::list_allocations(db, &node.id, nodes::AllocationFilter::Free).await?;
            match &new.allocation {
                Some((ip, port)) => {
                    let ip = ip
                        .parse::<std::net::IpAddr>()
                        .map(|ip| ip.to_canonical().to_string())
                        .unwrap_or_else(|_| ip.clone());
                    let found = free.into_iter().find(|a| a.ip == ip && a.port == *port);
                    if found.is_none() {
                        problems.push(FieldProblem::new(
                            "allocation",
                            "is not a free allocation of the node",
                        ));
                    }
                    found
                }
                None => {
                    let first = free.into_iter().next();
                    if first.is_none() {
                        problems.push(FieldProblem::new(
                            "allocation",
                            "the node has no free allocation",
                        ));
                    }
                    first
                }
            }
        }
    };
    let game = game(
        plugins,
        &new.game_plugin,
        new.game_version.as_deref(),
        new.game_type.as_deref(),
    )
    .await;
    let (plugin, info) = match game {
        Ok(game) => game,
        Err(ServersError::Invalid(mut more)) => {
            problems.append(&mut more);
            return Err(ServersError::Invalid(problems));
        }
        Err(other) => return Err(other),
    };
    check_limits(&mut problems, &new.limits, info.min_memory_mb);
    if let Some(node) = &node
        && let Some(problem) = runtime_problem(node, plugin.manifest())
    {
        problems.push(FieldProblem::new("node_id", problem));
    }
    let image = or_problem(&mut problems, pick_image(&info, new.image.as_deref()));
    let startup_command = or_problem(
        &mut problems,
        pick_startup_command(&info, new.startup_command.as_deref()),
    );
    let resolved =
        match checked_variables(&plugin, &info, &new.variables, &BTreeMap::new(), privileged).await
        {
            Ok(resolved) => resolved,
            Err(ServersError::Invalid(mut more)) => {
                problems.append(&mut more);
                BTreeMap::new()
            }
            Err(other) => return Err(other),
        };
    if let Some(node) = &node {
        let used = nodes::usage(db, &node.id).await?;
        check_fit(&mut problems, node, &used, &new.limits);
    }
    if !problems.is_empty() {
        return Err(ServersError::Invalid(problems));
    }
    let (Some(node), Some(allocation)) = (node, allocation) else {
        return Err(ServersError::field("node_id", "there is no such node"));
    };
    let mut server = Server {
        id: new_id("srv"),
        name: new.name.trim().to_owned(),
        owner_id: new.owner_id.clone(),
        node_id: Some(node.id.clone()),
        game_plugin: new.game_plugin.clone(),
        game_version: plugin.manifest().plugin.version.to_string(),
        game_type: Some(info.id.clone()),
        image,
        startup_command,
        variables: resolved,
        limits: new.limits,
        state: STATE_OFFLINE.to_owned(),
        created_at: now(),
        suspension: None,
        transfer_id: None,
    };
    let event = hook_event(
        EventKind::ServerCreate,
        Payload::Server(server_info(&server)),
        actor,
    );
    let allowed = run_before(plugins, event).await?;
    let before = server.clone();
    apply_modification(&mut server, &allowed);
    if server != before {
        recheck(&plugin, &info, &mut server).await?;
    }
    insert(db, &server, &allocation, secret_variables(&info), actor).await?;
    let after = hook_event(
        EventKind::ServerCreate,
        Payload::Server(server_info(&server)),
        actor,
    );
    spawn_after(plugins, after);
    Ok(server)
}

/// The variables whose values the audit log withholds: those the game
/// hides from users (`hidden()` in the SDK; `user-viewable: false` in the
/// WIT), such as an RCON password. The event store keeps the values, since
/// replay rebuilds servers from them; the audit-log API redacts them.
fn secret_variables(info: &api::GameInfo) -> Vec<String> {
    info.variables
        .iter()
        .filter(|v| !v.user_viewable)
        .map(|v| v.key.clone())
        .collect()
}

/// A server's limits, as events store them.
fn resources(limits: &ServerResourceLimits) -> Resources {
    Resources {
        memory_mb: limits.memory_mb,
        disk_mb: limits.disk_mb,
        cpu_percent: limits.cpu_percent,
    }
}

/// Checks a server's fields again after a hook modified them.
async fn recheck(
    plugin: &cap_runtime::Plugin,
    info: &api::GameInfo,
    server: &mut Server,
) -> Result<(), ServersError> {
    let mut problems = Vec::new();
    check_text(&mut problems, "name", &server.name, MAX_NAME_LEN);
    check_limits(&mut problems, &server.limits, info.min_memory_mb);
    // The node's resources are checked again in the transaction.
    match checked_variables(plugin, info, &server.variables, &BTreeMap::new(), true).await {
        Ok(resolved) => server.variables = resolved,
        Err(ServersError::Invalid(mut more)) => problems.append(&mut more),
        Err(other) => return Err(other),
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ServersError::Invalid(problems))
    }
}

/// Inserts `server`, takes `allocation` as its primary and appends
/// `server.created`, in one transaction that first locks the node's row.
async fn insert(
    db: &Database,
    server: &Server,
    allocation: &nodes::Allocation,
    secret: Vec<String>,
    actor: &Actor,
) -> Result<(), ServersError> {
    let node_id = server.node_id.as_deref().unwrap_or_default();
    let at = to_micros(server.created_at);
    let event = NewEvent::new(ServerEvent::Created {
        subject: ServerId::new(&server.id),
        data: ServerCreated {
            name: server.name.clone(),
            owner_id: server.owner_id.clone(),
            node_id: node_id.to_owned(),
            allocation: format!("{}:{}", allocation.ip, allocation.port),
            game: GameVersion {
                plugin: server.game_plugin.clone(),
                version: server.game_version.clone(),
                game_type: server.game_type.clone(),
            },
            image: server.image.clone(),
            startup_command: server.startup_command.clone(),
            limits: resources(&server.limits),
            variable_values: server.variables.clone(),
            secret_variables: secret,
            state: server.state.clone(),
            at,
        },
    })
    .actor(actor.clone());
    on_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        // Touching the node first serializes creations on it.
        let mut qb = query_builder(pool, "UPDATE nodes SET updated_at = updated_at WHERE id = ");
        qb.push_bind(node_id);
        qb.build().execute(&mut *tx).await?;
        let mut qb = query_builder(pool, nodes::NODE_COLUMNS);
        qb.push(" WHERE id = ").push_bind(node_id);
        let node: Option<nodes::NodeRow> = qb.build_query_as().fetch_optional(&mut *tx).await?;
        let Some(node) = node.map(nodes::Node::try_from).transpose()? else {
            return Err(ServersError::field("node_id", "there is no such node"));
        };
        let mut qb = query_builder(pool, USAGE_QUERY);
        qb.push_bind(node_id);
        let used = sum_usage(qb.build_query_as().fetch_all(&mut *tx).await?)?;
        let mut problems = Vec::new();
        check_fit(&mut problems, &node, &used, &server.limits);
        if !problems.is_empty() {
            return Err(ServersError::Invalid(problems));
        }
        let mut qb = query_builder(
            pool,
            "INSERT INTO servers (id, name, owner_id, node_id, game_plugin, game_version, game_type, \
             image, startup_command, variables, memory_mb, disk_mb, cpu_percent, state, created_at) \
             VALUES (",
        );
        qb.separated(", ")
            .push_bind(server.id.as_str())
            .push_bind(server.name.as_str())
            .push_bind(server.owner_id.as_str())
            .push_bind(node_id)
            .push_bind(server.game_plugin.as_str())
            .push_bind(server.game_version.as_str())
            .push_bind(server.game_type.as_deref())
            .push_bind(server.image.as_deref())
            .push_bind(server.startup_command.as_deref())
            .push_bind(Json(&server.variables))
            .push_bind(to_i64(server.limits.memory_mb))
            .push_bind(to_i64(server.limits.disk_mb))
            .push_bind(to_i64(server.limits.cpu_percent))
            .push_bind(server.state.as_str())
            .push_bind(at);
        qb.push(")");
        qb.build().execute(&mut *tx).await?;
        let mut qb = query_builder(pool, "UPDATE allocations SET server_id = ");
        qb.push_bind(server.id.as_str())
            .push(", is_primary = ")
            .push_bind(true)
            .push(", notes = NULL WHERE node_id = ")
            .push_bind(node_id)
            .push(" AND ip = ")
            .push_bind(allocation.ip.as_str())
            .push(" AND port = ")
            .push_bind(i32::from(allocation.port))
            .push(" AND server_id IS NULL");
        if qb.build().execute(&mut *tx).await?.rows_affected() != 1 {
            return Err(ServersError::conflict(
                Code::AllocationUnavailable,
                format!(
                    "{}:{} was just taken; try again",
                    allocation.ip, allocation.port
                ),
            ));
        }
        tx.record(&event).await?;
        tx.commit().await?;
    });
    Ok(())
}

/// Changes a server's name, variables and limits (each optional), with the
/// same checks and hooks (`server.update`) as a creation. `privileged`
/// callers may change variables that are not user-editable.
///
/// # Errors
///
/// As for [`create`].
pub async fn update(
    db: &Database,
    plugins: Option<&PluginManager>,
    current: &Server,
    changes: &ServerChanges,
    privileged: bool,
    actor: &Actor,
) -> Result<Server, ServersError> {
    let mut problems = Vec::new();
    if let Some(name) = &changes.name {
        check_text(&mut problems, "name", name, MAX_NAME_LEN);
    }
    let (plugin, info) = game(
        plugins,
        &current.game_plugin,
        None,
        current.game_type.as_deref(),
    )
    .await?;
    let limits = changes.limits.unwrap_or(current.limits);
    if changes.limits.is_some() {
        check_limits(&mut problems, &limits, info.min_memory_mb);
    }
    let variables = match &changes.variables {
        None => current.variables.clone(),
        Some(given) => {
            match checked_variables(&plugin, &info, given, &current.variables, privileged).await {
                Ok(resolved) => resolved,
                Err(ServersError::Invalid(mut more)) => {
                    problems.append(&mut more);
                    BTreeMap::new()
                }
                Err(other) => return Err(other),
            }
        }
    };
    let image = match &changes.image {
        None => current.image.clone(),
        Some(wanted) => or_problem(&mut problems, pick_image(&info, Some(wanted))),
    };
    let startup_command = match &changes.startup_command {
        None => current.startup_command.clone(),
        Some(wanted) => or_problem(&mut problems, pick_startup_command(&info, Some(wanted))),
    };
    if !problems.is_empty() {
        return Err(ServersError::Invalid(problems));
    }
    let mut server = Server {
        image,
        startup_command,
        name: changes
            .name
            .as_deref()
            .map_or_else(|| current.name.clone(), |n| n.trim().to_owned()),
        variables,
        limits,
        game_version: plugin.manifest().plugin.version.to_string(),
        ..current.clone()
    };
    let event = hook_event(
        EventKind::ServerUpdate,
        Payload::Server(server_info(&server)),
        actor,
    );
    let allowed = run_before(plugins, event).await?;
    let before = server.clone();
    apply_modification(&mut server, &allowed);
    if server != before {
        recheck(&plugin, &info, &mut server).await?;
    }
    let event = NewEvent::new(ServerEvent::Updated {
        subject: ServerId::new(&server.id),
        data: ServerUpdated {
            name: server.name.clone(),
            variables: server.variables.keys().cloned().collect(),
            limits: resources(&server.limits),
            variable_values: server.variables.clone(),
            secret_variables: secret_variables(&info),
            game_version: server.game_version.clone(),
            image: server.image.clone(),
            startup_command: server.startup_command.clone(),
        },
    })
    .actor(actor.clone());
    let node_id = server.node_id.clone().unwrap_or_default();
    on_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        let mut qb = query_builder(pool, "UPDATE nodes SET updated_at = updated_at WHERE id = ");
        qb.push_bind(node_id.as_str());
        qb.build().execute(&mut *tx).await?;
        let mut qb = query_builder(pool, nodes::NODE_COLUMNS);
        qb.push(" WHERE id = ").push_bind(node_id.as_str());
        let node: Option<nodes::NodeRow> = qb.build_query_as().fetch_optional(&mut *tx).await?;
        if let Some(node) = node.map(nodes::Node::try_from).transpose()? {
            let mut qb = query_builder(
                pool,
                "SELECT memory_mb, disk_mb, cpu_percent FROM servers WHERE id <> ",
            );
            qb.push_bind(server.id.as_str())
                .push(" AND node_id = ")
                .push_bind(node_id.as_str());
            let used = sum_usage(qb.build_query_as().fetch_all(&mut *tx).await?)?;
            let mut problems = Vec::new();
            check_fit(&mut problems, &node, &used, &server.limits);
            if !problems.is_empty() {
                return Err(ServersError::Invalid(problems));
            }
        }
        let mut qb = query_builder(pool, "UPDATE servers SET name = ");
        qb.push_bind(server.name.as_str())
            .push(", variables = ")
            .push_bind(Json(&server.variables))
            .push(", game_version = ")
            .push_bind(server.game_version.as_str())
            .push(", image = ")
            .push_bind(server.image.as_deref())
            .push(", startup_command = ")
            .push_bind(server.startup_command.as_deref())
            .push(", memory_mb = ")
            .push_bind(to_i64(server.limits.memory_mb))
            .push(", disk_mb = ")
            .push_bind(to_i64(server.limits.disk_mb))
            .push(", cpu_percent = ")
            .push_bind(to_i64(server.limits.cpu_percent))
            .push(" WHERE id = ")
            .push_bind(server.id.as_str());
        if qb.build().execute(&mut *tx).await?.rows_affected() != 1 {
            return Err(ServersError::NotFound(format!("server {}", server.id)));
        }
        tx.record(&event).await?;
        tx.commit().await?;
    });
    let after = hook_event(
        EventKind::ServerUpdate,
        Payload::Server(server_info(&server)),
        actor,
    );
    spawn_after(plugins, after);
    Ok(server)
}

/// Sets the state the server's Agent reported, appending
/// `server.state.changed` (with `from`, `to` and `reason`). Nothing
/// changes, and `None` is returned, when the server is gone, already in
/// that state, or being deleted (`deleting` ends only with the Agent's
/// confirmation of the delete command).
///
/// # Errors
///
/// Database errors.
pub async fn set_state(
    db: &Database,
    id: &str,
    state: &str,
    reason: Option<&str>,
) -> Result<Option<Server>, DbError> {
    let Some(current) = get(db, id).await? else {
        return Ok(None);
    };
    if current.state == state || current.state == STATE_DELETING {
        return Ok(None);
    }
    let at = now();
    let reason = reason.map(|r| r.chars().take(512).collect::<String>());
    let event = NewEvent::new(ServerEvent::StateChanged {
        subject: ServerId::new(id),
        data: StateChanged {
            from: current.state.clone(),
            to: state.to_owned(),
            reason,
            at: to_micros(at),
        },
    })
    .actor(Actor::system());
    let changed = on_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        let mut qb = query_builder(pool, "UPDATE servers SET state = ");
        qb.push_bind(state)
            .push(" WHERE id = ")
            .push_bind(id)
            .push(" AND state = ")
            .push_bind(current.state.as_str());
        let changed = qb.build().execute(&mut *tx).await?.rows_affected() == 1;
        if changed {
            tx.record(&event).await?;
        }
        tx.commit().await?;
        changed
    });
    Ok(changed.then(|| Server {
        state: state.to_owned(),
        ..current
    }))
}

/// The id and state of every server placed on node `node_id`.
///
/// # Errors
///
/// Database errors.
pub async fn states_on_node(
    db: &Database,
    node_id: &str,
) -> Result<Vec<(String, String)>, DbError> {
    let rows: Vec<(String, String)> = on_pool!(db, |pool| {
        let mut qb = query_builder(pool, "SELECT id, state FROM servers WHERE node_id = ");
        qb.push_bind(node_id).push(" ORDER BY id");
        qb.build_query_as::<(String, String)>()
            .fetch_all(pool)
            .await?
    });
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> Server {
        Server {
            id: "srv_1".into(),
            name: "survival".into(),
            owner_id: "usr_alice".into(),
            node_id: Some("node_1".into()),
            game_plugin: "test-game".into(),
            game_version: "1.0.0".into(),
            game_type: None,
            image: None,
            startup_command: None,
            variables: BTreeMap::from([("MAX_PLAYERS".to_owned(), "20".to_owned())]),
            limits: ServerResourceLimits {
                memory_mb: 4096,
                disk_mb: 1000,
                cpu_percent: 100,
            },
            state: STATE_OFFLINE.into(),
            created_at: now(),
            suspension: None,
            transfer_id: None,
        }
    }

    #[test]
    fn a_hook_modification_changes_the_allowed_fields_and_nothing_else() {
        let original = server();
        let event = hook_event(
            EventKind::ServerCreate,
            Payload::Server(server_info(&original)),
            &Actor::system(),
        );
        let patched = cap_runtime::hooks::apply_patch(
            &event,
            r#"{"memory-mb": 2048, "name": "smaller",
                "variables": [{"key": "MAX_PLAYERS", "value": "5"}]}"#,
        )
        .expect("an allowed patch");
        let mut modified = original.clone();
        apply_modification(&mut modified, &patched);
        assert_eq!(modified.name, "smaller");
        assert_eq!(modified.limits.memory_mb, 2048);
        assert_eq!(modified.limits.disk_mb, 1000);
        assert_eq!(modified.variables["MAX_PLAYERS"], "5");
        assert_eq!(
            (&modified.id, &modified.owner_id, &modified.node_id),
            (&original.id, &original.owner_id, &original.node_id)
        );
    }
}
