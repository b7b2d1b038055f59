//! Nodes — the machines that run game servers through an Agent — and
//! their allocations (the ip:port pairs servers listen on).
//!
//! A node offers memory, disk and CPU (`cpu_percent`, 100 per core); the
//! servers placed on it must fit in what it offers. An admin creates a node
//! with a name and an address, then issues a registration token
//! ([`super::registration`]); when the Agent registers, it reports what the
//! machine really offers, and its online state and last contact are kept
//! here by the Agent link ([`mark_seen`], [`set_online`]).
//!
//! Allocations are added in sets (one ip, ports and ranges such as
//! `"25565-25570"`), listed free or assigned, and deleted only while no
//! server holds them. A server holds its primary allocation and, within
//! its limit, extra ones with notes ([`super::allocations`]).

use std::collections::BTreeSet;
use std::net::IpAddr;

use cap_runtime::api::{EventKind, NodeInfo, Payload};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::types::Json;
use time::OffsetDateTime;

use super::{
    FieldProblem, ServersError, check_text, digest, new_id, random_secret, to_i64, to_u64,
};
use crate::db::domain::{
    AllocationPort, AllocationsAdded, At, Empty, NodeCapabilities, NodeCreated, NodeEvent, NodeId,
    NodeUpdated,
};
use crate::db::{
    Actor, Database, DbError, NewEvent, Unrecorded, from_micros, now, on_pool, query_builder,
    to_micros,
};
use crate::error_code::Code;
use crate::plugins::PluginManager;
use crate::plugins::hooks;

/// Longest node name, characters.
pub const MAX_NAME_LEN: usize = 128;
/// Longest node address, characters.
pub const MAX_ADDRESS_LEN: usize = 255;
/// Most ports one request may add.
pub const MAX_PORTS_PER_REQUEST: usize = 1000;
/// The largest amount a node may offer or a server may use (memory and
/// disk in MiB, CPU in percent of one core): 1 PiB / 10 000 cores, far
/// above any real machine, so arithmetic on sums cannot overflow.
pub const MAX_RESOURCE: u64 = 1 << 30;

/// A game the node's Agent can run: a game-type plugin and its version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SupportedGame {
    /// The game-type plugin's id.
    pub plugin: String,
    /// Its version.
    pub version: String,
}

/// A node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Its id (`node_…`).
    pub id: String,
    /// Unique display name.
    pub name: String,
    /// FQDN or IP address players and the Panel reach it at.
    pub address: String,
    /// Memory it offers to servers, MiB.
    pub memory_mb: u64,
    /// Disk it offers to servers, MiB.
    pub disk_mb: u64,
    /// CPU it offers to servers, percent of one core.
    pub cpu_percent: u64,
    /// Whether its Agent is connected now.
    pub online: bool,
    /// When its Agent was last heard from.
    pub last_seen_at: Option<OffsetDateTime>,
    /// The Agent's id, once registered.
    pub agent_id: Option<String>,
    /// The Agent's version, once registered.
    pub agent_version: Option<String>,
    /// What the Agent can do (`native-process`, `docker`…).
    pub capabilities: Vec<String>,
    /// The games the Agent can run.
    pub supported_games: Vec<SupportedGame>,
    /// The Agent's health endpoint.
    pub health_endpoint: Option<String>,
    /// When the Agent registered; `None` until then.
    pub registered_at: Option<OffsetDateTime>,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// When it last changed.
    pub updated_at: OffsetDateTime,
}

/// A node to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewNode {
    /// Unique display name, 1 to 128 characters.
    pub name: String,
    /// FQDN or IP address, 1 to 255 characters, no whitespace.
    pub address: String,
    /// Memory it offers, MiB.
    pub memory_mb: u64,
    /// Disk it offers, MiB.
    pub disk_mb: u64,
    /// CPU it offers, percent of one core.
    pub cpu_percent: u64,
}

/// Changes to a node; `None` keeps the current value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeUpdate {
    /// New name.
    pub name: Option<String>,
    /// New address.
    pub address: Option<String>,
    /// New memory offer; not below what its servers use.
    pub memory_mb: Option<u64>,
    /// New disk offer; not below what its servers use.
    pub disk_mb: Option<u64>,
    /// New CPU offer; not below what its servers use.
    pub cpu_percent: Option<u64>,
}

/// What the servers on a node use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Servers placed on it.
    pub servers: u64,
    /// Their memory, MiB.
    pub memory_mb: u64,
    /// Their disk, MiB.
    pub disk_mb: u64,
    /// Their CPU, percent.
    pub cpu_percent: u64,
}

/// One ip:port on a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    /// The node.
    pub node_id: String,
    /// The IP address.
    pub ip: String,
    /// The port.
    pub port: u16,
    /// The server holding it, if any.
    pub server_id: Option<String>,
    /// What the server's users wrote about it (none while it is free).
    pub notes: Option<String>,
    /// Whether it is its server's primary allocation (never while free).
    pub primary: bool,
}

/// Which allocations to list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AllocationFilter {
    /// Every one.
    #[default]
    All,
    /// Those no server holds.
    Free,
    /// Those a server holds.
    Assigned,
}

#[derive(sqlx::FromRow)]
pub(crate) struct NodeRow {
    id: String,
    name: String,
    address: String,
    memory_mb: i64,
    disk_mb: i64,
    cpu_percent: i64,
    online: bool,
    last_seen_at: Option<i64>,
    agent_id: Option<String>,
    agent_version: Option<String>,
    capabilities: Option<Json<Vec<String>>>,
    supported_games: Option<Json<Vec<SupportedGame>>>,
    health_endpoint: Option<String>,
    registered_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

pub(crate) const NODE_COLUMNS: &str = "SELECT id, name, address, memory_mb, disk_mb, cpu_percent, \
     online, last_seen_at, agent_id, agent_version, capabilities, supported_games, \
     health_endpoint, registered_at, created_at, updated_at FROM nodes";

impl TryFrom<NodeRow> for Node {
    type Error = DbError;

    fn try_from(row: NodeRow) -> Result<Node, DbError> {
        Ok(Node {
            memory_mb: to_u64(row.memory_mb, "nodes.memory_mb")?,
            disk_mb: to_u64(row.disk_mb, "nodes.disk_mb")?,
            cpu_percent: to_u64(row.cpu_percent, "nodes.cpu_percent")?,
            online: row.online,
            last_seen_at: row.last_seen_at.map(from_micros).transpose()?,
            agent_id: row.agent_id,
            agent_version: row.agent_version,
            capabilities: row.capabilities.map(|j| j.0).unwrap_or_default(),
            supported_games: row.supported_games.map(|j| j.0).unwrap_or_default(),
            health_endpoint: row.health_endpoint,
            registered_at: row.registered_at.map(from_micros).transpose()?,
            created_at: from_micros(row.created_at)?,
            updated_at: from_micros(row.updated_at)?,
            id: row.id,
            name: row.name,
            address: row.address,
        })
    }
}

fn check_address(problems: &mut Vec<FieldProblem>, address: &str) {
    check_text(problems, "address", address, MAX_ADDRESS_LEN);
    if address.trim().chars().any(char::is_whitespace) {
        problems.push(FieldProblem::new("address", "must not contain whitespace"));
    }
}

/// Checks a resource amount against [`MAX_RESOURCE`].
pub(crate) fn check_resource(problems: &mut Vec<FieldProblem>, field: &str, value: u64) {
    if value > MAX_RESOURCE {
        problems.push(FieldProblem::new(
            field,
            format!("must be at most {MAX_RESOURCE}"),
        ));
    }
}

/// `event` by `actor`.
fn node_event(event: NodeEvent, actor: &Actor) -> NewEvent {
    NewEvent::new(event).actor(actor.clone())
}

fn name_taken(error: DbError) -> ServersError {
    match error {
        DbError::Conflict { .. } => {
            ServersError::conflict(Code::NodeNameTaken, "another node has this name")
        }
        other => ServersError::Db(other),
    }
}

/// Creates a node, appending `node.created` by `actor`. Until its Agent
/// registers, the node's token hash is that of a secret nobody knows.
///
/// Once the fields are valid, the `node.create` before-hooks of `plugins`
/// may refuse; the after-hooks hear of the node once it is stored (see
/// [`crate::plugins::hooks`]).
///
/// # Errors
///
/// [`ServersError::Invalid`] per field, [`ServersError::HookDenied`],
/// [`ServersError::Conflict`] (`node-name-taken`), database errors.
pub async fn create(
    db: &Database,
    plugins: Option<&PluginManager>,
    node: &NewNode,
    actor: &Actor,
) -> Result<Node, ServersError> {
    let mut problems = Vec::new();
    check_text(&mut problems, "name", &node.name, MAX_NAME_LEN);
    check_address(&mut problems, &node.address);
    check_resource(&mut problems, "memory_mb", node.memory_mb);
    check_resource(&mut problems, "disk_mb", node.disk_mb);
    check_resource(&mut problems, "cpu_percent", node.cpu_percent);
    if !problems.is_empty() {
        return Err(ServersError::Invalid(problems));
    }
    let id = new_id("node");
    let at = now();
    let name = node.name.trim();
    let address = node.address.trim();
    let info = |id: &str| {
        Payload::Node(NodeInfo {
            id: id.to_owned(),
            name: name.to_owned(),
            address: address.to_owned(),
        })
    };
    hooks::run_before(
        plugins,
        hooks::event(EventKind::NodeCreate, info(&id), actor),
    )
    .await?;
    let unusable = digest(&random_secret("unregistered_"));
    let event = node_event(
        NodeEvent::Created {
            subject: NodeId::new(&id),
            data: NodeCreated {
                name: name.to_owned(),
                address: address.to_owned(),
                memory_mb: node.memory_mb,
                disk_mb: node.disk_mb,
                cpu_percent: node.cpu_percent,
                token_hash: unusable.clone(),
                at: to_micros(at),
            },
        },
        actor,
    );
    let result: Result<(), DbError> = on_pool!(db, |pool| {
        async {
            let mut tx = pool.begin().await?;
            let mut qb = query_builder(
                pool,
                "INSERT INTO nodes (id, name, address, token_hash, created_at, memory_mb, disk_mb, \
                 cpu_percent, online, updated_at) VALUES (",
            );
            qb.separated(", ")
                .push_bind(id.as_str())
                .push_bind(name)
                .push_bind(address)
                .push_bind(unusable.as_str())
                .push_bind(to_micros(at))
                .push_bind(to_i64(node.memory_mb))
                .push_bind(to_i64(node.disk_mb))
                .push_bind(to_i64(node.cpu_percent))
                .push_bind(false)
                .push_bind(to_micros(at));
            qb.push(")");
            qb.build().execute(&mut *tx).await?;
            tx.record(&event).await?;
            tx.commit().await?;
            Ok(())
        }
        .await
    });
    result.map_err(name_taken)?;
    hooks::spawn_after(
        plugins,
        hooks::event(EventKind::NodeCreate, info(&id), actor),
    );
    get(db, &id)
        .await?
        .ok_or_else(|| ServersError::NotFound(format!("node {id}")))
}

/// The node `id`, if it exists.
///
/// # Errors
///
/// Database errors.
pub async fn get(db: &Database, id: &str) -> Result<Option<Node>, DbError> {
    let row: Option<NodeRow> = on_pool!(db, |pool| {
        let mut qb = query_builder(pool, NODE_COLUMNS);
        qb.push(" WHERE id = ").push_bind(id);
        qb.build_query_as::<NodeRow>().fetch_optional(pool).await?
    });
    row.map(Node::try_from).transpose()
}

/// Up to `limit` nodes after the id `after`, by id (creation order), and
/// whether more follow.
///
/// # Errors
///
/// Database errors.
pub async fn list(
    db: &Database,
    after: Option<&str>,
    limit: u32,
) -> Result<(Vec<Node>, bool), DbError> {
    let rows: Vec<NodeRow> = on_pool!(db, |pool| {
        let mut qb = query_builder(pool, NODE_COLUMNS);
        qb.push(" WHERE 1 = 1");
        if let Some(after) = after {
            qb.push(" AND id > ").push_bind(after);
        }
        qb.push(" ORDER BY id LIMIT ")
            .push_bind(i64::from(limit) + 1);
        qb.build_query_as::<NodeRow>().fetch_all(pool).await?
    });
    let mut nodes = rows
        .into_iter()
        .map(Node::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    let more = nodes.len() > limit as usize;
    nodes.truncate(limit as usize);
    Ok((nodes, more))
}

/// What the servers on node `id` use.
///
/// # Errors
///
/// Database errors.
pub async fn usage(db: &Database, id: &str) -> Result<Usage, DbError> {
    let rows: Vec<(i64, i64, i64)> = on_pool!(db, |pool| {
        let mut qb = query_builder(pool, USAGE_QUERY);
        qb.push_bind(id);
        qb.build_query_as().fetch_all(pool).await?
    });
    sum_usage(rows)
}

/// Selects `(memory_mb, disk_mb, cpu_percent)` of the servers on the node
/// bound next.
pub(crate) const USAGE_QUERY: &str =
    "SELECT memory_mb, disk_mb, cpu_percent FROM servers WHERE node_id = ";

/// Adds up rows of [`USAGE_QUERY`].
pub(crate) fn sum_usage(rows: Vec<(i64, i64, i64)>) -> Result<Usage, DbError> {
    let mut usage = Usage::default();
    for (memory, disk, cpu) in rows {
        usage.servers += 1;
        usage.memory_mb = usage
            .memory_mb
            .saturating_add(to_u64(memory, "servers.memory_mb")?);
        usage.disk_mb = usage
            .disk_mb
            .saturating_add(to_u64(disk, "servers.disk_mb")?);
        usage.cpu_percent = usage
            .cpu_percent
            .saturating_add(to_u64(cpu, "servers.cpu_percent")?);
    }
    Ok(usage)
}
/// Changes a node, appending `node.updated` by `actor`. An offer may not
/// drop below what the node's servers already use.
///
/// # Errors
///
/// [`ServersError::NotFound`], [`ServersError::Invalid`] per field,
/// [`ServersError::Conflict`] (`node-name-taken`), database errors.
pub async fn update(
    db: &Database,
    id: &str,
    changes: &NodeUpdate,
    actor: &Actor,
) -> Result<Node, ServersError> {
    let current = get(db, id)
        .await?
        .ok_or_else(|| ServersError::NotFound(format!("node {id}")))?;
    let used = usage(db, id).await?;
    let mut problems = Vec::new();
    if let Some(name) = &changes.name {
        check_text(&mut problems, "name", name, MAX_NAME_LEN);
    }
    if let Some(address) = &changes.address {
        check_address(&mut problems, address);
    }
    for (field, value, in_use) in [
        ("memory_mb", changes.memory_mb, used.memory_mb),
        ("disk_mb", changes.disk_mb, used.disk_mb),
        ("cpu_percent", changes.cpu_percent, used.cpu_percent),
    ] {
        if let Some(value) = value {
            check_resource(&mut problems, field, value);
            if value < in_use {
                problems.push(FieldProblem::new(
                    field,
                    format!("must be at least {in_use}, what the node's servers use"),
                ));
            }
        }
    }
    if !problems.is_empty() {
        return Err(ServersError::Invalid(problems));
    }
    let name = changes
        .name
        .as_deref()
        .map_or(current.name.as_str(), str::trim);
    let address = changes
        .address
        .as_deref()
        .map_or(current.address.as_str(), str::trim);
    let memory = changes.memory_mb.unwrap_or(current.memory_mb);
    let disk = changes.disk_mb.unwrap_or(current.disk_mb);
    let cpu = changes.cpu_percent.unwrap_or(current.cpu_percent);
    let at = now();
    let event = node_event(
        NodeEvent::Updated {
            subject: NodeId::new(id),
            data: NodeUpdated {
                name: name.to_owned(),
                address: address.to_owned(),
                memory_mb: memory,
                disk_mb: disk,
                cpu_percent: cpu,
                at: to_micros(at),
            },
        },
        actor,
    );
    let result: Result<(), DbError> = on_pool!(db, |pool| {
        async {
            let mut tx = pool.begin().await?;
            let mut qb = query_builder(pool, "UPDATE nodes SET name = ");
            qb.push_bind(name)
                .push(", address = ")
                .push_bind(address)
                .push(", memory_mb = ")
                .push_bind(to_i64(memory))
                .push(", disk_mb = ")
                .push_bind(to_i64(disk))
                .push(", cpu_percent = ")
                .push_bind(to_i64(cpu))
                .push(", updated_at = ")
                .push_bind(to_micros(at))
                .push(" WHERE id = ")
                .push_bind(id);
            qb.build().execute(&mut *tx).await?;
            tx.record(&event).await?;
            tx.commit().await?;
            Ok(())
        }
        .await
    });
    result.map_err(name_taken)?;
    get(db, id)
        .await?
        .ok_or_else(|| ServersError::NotFound(format!("node {id}")))
}

/// Deletes a node with its allocations and registration tokens, appending
/// `node.deleted` by `actor`. A node that still has servers is kept.
///
/// The `node.delete` before-hooks of `plugins` may refuse a node that
/// exists and has no servers; the after-hooks hear of the deletion once it
/// is committed (see [`crate::plugins::hooks`]).
///
/// # Errors
///
/// [`ServersError::NotFound`], [`ServersError::Conflict`]
/// (`node-has-servers`), [`ServersError::HookDenied`], database errors.
pub async fn delete(
    db: &Database,
    plugins: Option<&PluginManager>,
    id: &str,
    actor: &Actor,
) -> Result<(), ServersError> {
    let node = get(db, id)
        .await?
        .ok_or_else(|| ServersError::NotFound(format!("node {id}")))?;
    let servers = count_servers(db, id).await?;
    if servers > 0 {
        return Err(has_servers(servers));
    }
    let info = || {
        Payload::Node(NodeInfo {
            id: node.id.clone(),
            name: node.name.clone(),
            address: node.address.clone(),
        })
    };
    hooks::run_before(plugins, hooks::event(EventKind::NodeDelete, info(), actor)).await?;
    let event = node_event(
        NodeEvent::Deleted {
            subject: NodeId::new(id),
            data: Empty {},
        },
        actor,
    );
    on_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        let mut qb = query_builder(pool, "SELECT COUNT(*) FROM servers WHERE node_id = ");
        qb.push_bind(id);
        let servers: i64 = qb.build_query_scalar().fetch_one(&mut *tx).await?;
        if servers > 0 {
            return Err(has_servers(servers));
        }
        let mut qb = query_builder(pool, "DELETE FROM nodes WHERE id = ");
        qb.push_bind(id);
        if qb.build().execute(&mut *tx).await?.rows_affected() == 0 {
            return Err(ServersError::NotFound(format!("node {id}")));
        }
        tx.record(&event).await?;
        tx.commit().await?;
    });
    hooks::spawn_after(plugins, hooks::event(EventKind::NodeDelete, info(), actor));
    Ok(())
}

/// How many servers node `id` has.
async fn count_servers(db: &Database, id: &str) -> Result<i64, DbError> {
    Ok(on_pool!(db, |pool| {
        let mut qb = query_builder(pool, "SELECT COUNT(*) FROM servers WHERE node_id = ");
        qb.push_bind(id);
        qb.build_query_scalar::<i64>().fetch_one(pool).await?
    }))
}

/// `node-has-servers`, for a node with `servers` servers.
fn has_servers(servers: i64) -> ServersError {
    ServersError::conflict(
        Code::NodeHasServers,
        format!("the node still has {servers} server(s); delete or move them first"),
    )
}

/// Records that the node's Agent was heard from now (no event: this
/// happens on every heartbeat).
///
/// # Errors
///
/// [`DbError::NotFound`] for an unknown node, database errors.
pub async fn mark_seen(db: &Database, id: &str) -> Result<(), DbError> {
    let affected = on_pool!(db, |pool| {
        let mut qb = query_builder(pool, "UPDATE nodes SET last_seen_at = ");
        qb.push_bind(to_micros(now()))
            .push(" WHERE id = ")
            .push_bind(id);
        qb.build()
            .execute(pool.unrecorded(Unrecorded::Liveness))
            .await?
            .rows_affected()
    });
    if affected == 0 {
        return Err(DbError::NotFound);
    }
    Ok(())
}

/// Takes over the capabilities the node's Agent reports on connecting, so
/// that an Agent restarted with another runtime (`--runtime container`) is
/// placed by what it can run now. Appends `node.capabilities.changed` when
/// they differ from what the node had; returns whether they did.
///
/// # Errors
///
/// [`ServersError::Invalid`] for capabilities registration would refuse
/// (the node keeps its own), [`ServersError::NotFound`] for an unknown
/// node, database errors.
pub async fn set_capabilities(
    db: &Database,
    id: &str,
    capabilities: &[String],
) -> Result<bool, ServersError> {
    let problems = super::registration::check_capabilities(capabilities);
    if !problems.is_empty() {
        return Err(ServersError::Invalid(problems));
    }
    let event = node_event(
        NodeEvent::CapabilitiesChanged {
            subject: NodeId::new(id),
            data: NodeCapabilities {
                capabilities: capabilities.to_vec(),
                at: to_micros(now()),
            },
        },
        &Actor::system(),
    );
    let changed = on_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        let mut qb = query_builder(pool, "SELECT capabilities FROM nodes WHERE id = ");
        qb.push_bind(id);
        let had: Option<Option<Json<Vec<String>>>> =
            qb.build_query_scalar().fetch_optional(&mut *tx).await?;
        let Some(had) = had else {
            return Err(ServersError::NotFound(format!("node {id}")));
        };
        if had.is_some_and(|Json(had)| had == capabilities) {
            false
        } else {
            let mut qb = query_builder(pool, "UPDATE nodes SET capabilities = ");
            qb.push_bind(Json(capabilities))
                .push(" WHERE id = ")
                .push_bind(id);
            qb.build().execute(&mut *tx).await?;
            tx.record(&event).await?;
            tx.commit().await?;
            true
        }
    });
    Ok(changed)
}

/// Sets whether the node's Agent is connected, appending `node.online` or
/// `node.offline` when that changes. Also marks it seen when going online.
///
/// # Errors
///
/// [`DbError::NotFound`] for an unknown node, database errors.
pub async fn set_online(db: &Database, id: &str, online: bool) -> Result<(), DbError> {
    let at = now();
    let (subject, data) = (NodeId::new(id), At { at: to_micros(at) });
    let event = node_event(
        if online {
            NodeEvent::Online { subject, data }
        } else {
            NodeEvent::Offline { subject, data }
        },
        &Actor::system(),
    );
    on_pool!(db, |pool| {
        // Marking an online node seen again is liveness; a change is an
        // event.
        let mut tx = pool.begin_unrecorded(Unrecorded::Liveness).await?;
        let mut qb = query_builder(pool, "SELECT online FROM nodes WHERE id = ");
        qb.push_bind(id);
        let was: Option<bool> = qb.build_query_scalar().fetch_optional(&mut *tx).await?;
        let Some(was) = was else {
            return Err(DbError::NotFound);
        };
        let mut qb = query_builder(pool, "UPDATE nodes SET online = ");
        qb.push_bind(online);
        if online {
            qb.push(", last_seen_at = ").push_bind(to_micros(at));
        }
        qb.push(" WHERE id = ").push_bind(id);
        qb.build().execute(&mut *tx).await?;
        if was != online {
            tx.record(&event).await?;
        }
        tx.commit().await?;
    });
    Ok(())
}

/// Parses port specifications: numbers, or strings holding a port or an
/// inclusive range `"25565-25570"`. Problems name `ports[i]`.
///
/// # Errors
///
/// The problems, one per bad entry, or one for too many ports in all.
pub fn parse_ports(specs: &[Value]) -> Result<BTreeSet<u16>, Vec<FieldProblem>> {
    let mut ports = BTreeSet::new();
    let mut problems = Vec::new();
    let parse_one = |s: &str| s.trim().parse::<u16>().ok().filter(|p| *p >= 1);
    for (i, spec) in specs.iter().enumerate() {
        let field = format!("ports[{i}]");
        let range = match spec {
            Value::Number(n) => n
                .as_u64()
                .and_then(|n| u16::try_from(n).ok())
                .filter(|p| *p >= 1)
                .map(|p| (p, p)),
            Value::String(s) => match s.split_once('-') {
                Some((a, b)) => parse_one(a).zip(parse_one(b)),
                None => parse_one(s).map(|p| (p, p)),
            },
            _ => None,
        };
        match range {
            None => problems.push(FieldProblem::new(
                field,
                "must be a port (1-65535) or a range such as \"25565-25570\"",
            )),
            Some((start, end)) if start > end => problems.push(FieldProblem::new(
                field,
                "the range must not end before it starts",
            )),
            Some((start, end)) => {
                if ports.len() + usize::from(end - start) + 1 > MAX_PORTS_PER_REQUEST {
                    problems.push(FieldProblem::new(
                        "ports",
                        format!("at most {MAX_PORTS_PER_REQUEST} ports per request"),
                    ));
                    break;
                }
                ports.extend(start..=end);
            }
        }
    }
    if specs.is_empty() {
        problems.push(FieldProblem::new("ports", "must list at least one port"));
    }
    if problems.is_empty() {
        Ok(ports)
    } else {
        Err(problems)
    }
}

/// Adds allocations `ip`:`ports` to node `node_id`, appending
/// `node.allocations.added` by `actor`. All or nothing: if any of them
/// exists already, none is added.
///
/// # Errors
///
/// [`ServersError::NotFound`] for an unknown node,
/// [`ServersError::Invalid`] for a bad ip, [`ServersError::Conflict`]
/// (`allocation-exists`) naming the existing ones, database errors.
pub async fn add_allocations(
    db: &Database,
    node_id: &str,
    ip: &str,
    ports: &BTreeSet<u16>,
    actor: &Actor,
) -> Result<Vec<Allocation>, ServersError> {
    let ip: IpAddr = ip
        .trim()
        .parse()
        .map_err(|_| ServersError::field("ip", "must be an IPv4 or IPv6 address"))?;
    let ip = ip.to_canonical().to_string();
    if ports.is_empty() {
        return Err(ServersError::field("ports", "must list at least one port"));
    }
    let event = node_event(
        NodeEvent::AllocationsAdded {
            subject: NodeId::new(node_id),
            data: AllocationsAdded {
                ip: ip.clone(),
                ports: ports.clone(),
            },
        },
        actor,
    );
    on_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        let mut qb = query_builder(pool, "SELECT COUNT(*) FROM nodes WHERE id = ");
        qb.push_bind(node_id);
        let exists: i64 = qb.build_query_scalar().fetch_one(&mut *tx).await?;
        if exists == 0 {
            return Err(ServersError::NotFound(format!("node {node_id}")));
        }
        let mut qb = query_builder(pool, "SELECT port FROM allocations WHERE node_id = ");
        qb.push_bind(node_id)
            .push(" AND ip = ")
            .push_bind(ip.as_str());
        let existing: Vec<i32> = qb.build_query_scalar().fetch_all(&mut *tx).await?;
        let taken: Vec<i32> = existing
            .into_iter()
            .filter(|p| u16::try_from(*p).is_ok_and(|p| ports.contains(&p)))
            .collect();
        if !taken.is_empty() {
            return Err(ServersError::conflict(
                Code::AllocationExists,
                format!(
                    "{ip} already has port(s) {}",
                    taken
                        .iter()
                        .map(i32::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        for chunk in ports.iter().collect::<Vec<_>>().chunks(200) {
            let mut qb = query_builder(pool, "INSERT INTO allocations (node_id, ip, port) ");
            qb.push_values(chunk.iter(), |mut row, port| {
                row.push_bind(node_id)
                    .push_bind(ip.as_str())
                    .push_bind(i32::from(**port));
            });
            qb.build().execute(&mut *tx).await?;
        }
        tx.record(&event).await?;
        tx.commit().await?;
    });
    Ok(ports
        .iter()
        .map(|port| Allocation {
            node_id: node_id.to_owned(),
            ip: ip.clone(),
            port: *port,
            server_id: None,
            notes: None,
            primary: false,
        })
        .collect())
}

#[derive(sqlx::FromRow)]
pub(crate) struct AllocationRow {
    node_id: String,
    ip: String,
    port: i32,
    server_id: Option<String>,
    notes: Option<String>,
    is_primary: bool,
}

/// Selects [`AllocationRow`]s; a `WHERE` follows.
pub(crate) const ALLOCATION_COLUMNS: &str =
    "SELECT node_id, ip, port, server_id, notes, is_primary FROM allocations";

impl TryFrom<AllocationRow> for Allocation {
    type Error = DbError;

    fn try_from(row: AllocationRow) -> Result<Self, DbError> {
        Ok(Allocation {
            port: u16::try_from(row.port)
                .map_err(|_| DbError::Corrupt(format!("allocation port {}", row.port)))?,
            node_id: row.node_id,
            ip: row.ip,
            server_id: row.server_id,
            notes: row.notes,
            primary: row.is_primary,
        })
    }
}

/// The allocations of node `node_id` matching `filter`, by ip and port.
///
/// # Errors
///
/// Database errors.
pub async fn list_allocations(
    db: &Database,
    node_id: &str,
    filter: AllocationFilter,
) -> Result<Vec<Allocation>, DbError> {
    let rows: Vec<AllocationRow> = on_pool!(db, |pool| {
        let mut qb = query_builder(pool, ALLOCATION_COLUMNS);
        qb.push(" WHERE node_id = ").push_bind(node_id);
        match filter {
            AllocationFilter::All => {}
            AllocationFilter::Free => {
                qb.push(" AND server_id IS NULL");
            }
            AllocationFilter::Assigned => {
                qb.push(" AND server_id IS NOT NULL");
            }
        }
        qb.push(" ORDER BY ip, port");
        qb.build_query_as::<AllocationRow>().fetch_all(pool).await?
    });
    rows.into_iter().map(Allocation::try_from).collect()
}

/// The allocations server `server_id` holds: its primary first, then the
/// others by ip and port.
///
/// # Errors
///
/// Database errors.
pub async fn allocations_of_server(
    db: &Database,
    server_id: &str,
) -> Result<Vec<Allocation>, DbError> {
    let rows: Vec<AllocationRow> = on_pool!(db, |pool| {
        let mut qb = query_builder(pool, ALLOCATION_COLUMNS);
        qb.push(" WHERE server_id = ")
            .push_bind(server_id)
            .push(" ORDER BY is_primary DESC, ip, port");
        qb.build_query_as::<AllocationRow>().fetch_all(pool).await?
    });
    rows.into_iter().map(Allocation::try_from).collect()
}

/// The primary allocation of each of `server_ids` that has one, in one
/// query — for lists, instead of one query per server.
///
/// # Errors
///
/// Database errors.
pub async fn primary_allocations(
    db: &Database,
    server_ids: &[&str],
) -> Result<std::collections::HashMap<String, Allocation>, DbError> {
    let mut first = std::collections::HashMap::new();
    if server_ids.is_empty() {
        return Ok(first);
    }
    let rows: Vec<AllocationRow> = on_pool!(db, |pool| {
        let mut qb = query_builder(pool, ALLOCATION_COLUMNS);
        qb.push(" WHERE server_id IN (");
        let mut ids = qb.separated(", ");
        for id in server_ids {
            ids.push_bind(*id);
        }
        qb.push(") ORDER BY server_id, is_primary DESC, ip, port");
        qb.build_query_as::<AllocationRow>().fetch_all(pool).await?
    });
    for row in rows {
        let allocation = Allocation::try_from(row)?;
        if let Some(server) = allocation.server_id.clone() {
            first.entry(server).or_insert(allocation);
        }
    }
    Ok(first)
}

/// Deletes one free allocation, appending `node.allocation.deleted` by
/// `actor`.
///
/// # Errors
///
/// [`ServersError::NotFound`], [`ServersError::Conflict`]
/// (`allocation-assigned`) while a server holds it, database errors.
pub async fn delete_allocation(
    db: &Database,
    node_id: &str,
    ip: &str,
    port: u16,
    actor: &Actor,
) -> Result<(), ServersError> {
    let canonical = ip
        .parse::<IpAddr>()
        .map(|ip| ip.to_canonical().to_string())
        .unwrap_or_else(|_| ip.to_owned());
    let event = node_event(
        NodeEvent::AllocationDeleted {
            subject: NodeId::new(node_id),
            data: AllocationPort {
                ip: canonical.clone(),
                port,
            },
        },
        actor,
    );
    on_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        let mut qb = query_builder(pool, "SELECT server_id FROM allocations WHERE node_id = ");
        qb.push_bind(node_id)
            .push(" AND ip = ")
            .push_bind(canonical.as_str())
            .push(" AND port = ")
            .push_bind(i32::from(port));
        let holder: Option<Option<String>> =
            qb.build_query_scalar().fetch_optional(&mut *tx).await?;
        match holder {
            None => {
                return Err(ServersError::NotFound(format!(
                    "allocation {canonical}:{port}"
                )));
            }
            Some(Some(server)) => {
                return Err(ServersError::conflict(
                    Code::AllocationAssigned,
                    format!(
                        "{canonical}:{port} is assigned to server {server}; delete or move the server first"
                    ),
                ));
            }
            Some(None) => {}
        }
        let mut qb = query_builder(pool, "DELETE FROM allocations WHERE node_id = ");
        qb.push_bind(node_id)
            .push(" AND ip = ")
            .push_bind(canonical.as_str())
            .push(" AND port = ")
            .push_bind(i32::from(port))
            .push(" AND server_id IS NULL");
        qb.build().execute(&mut *tx).await?;
        tx.record(&event).await?;
        tx.commit().await?;
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn parses_ports_and_ranges_into_one_set() {
        let ports =
            parse_ports(&[json!(25565), json!("25570-25572"), json!(" 8080 ")]).expect("valid");
        assert_eq!(
            ports.into_iter().collect::<Vec<_>>(),
            [8080, 25565, 25570, 25571, 25572]
        );
    }

    #[test]
    fn names_each_bad_port_spec() {
        let problems =
            parse_ports(&[json!(0), json!("10-5"), json!("x"), json!(70000)]).expect_err("invalid");
        let fields: Vec<_> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["ports[0]", "ports[1]", "ports[2]", "ports[3]"]);
    }

    #[test]
    fn refuses_more_ports_than_one_request_may_add() {
        let problems = parse_ports(&[json!("1-2000")]).expect_err("too many");
        assert_eq!(problems[0].field, "ports");
    }
}
