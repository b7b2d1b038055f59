//! Replay: rebuild the projections of current state from the event store.
//!
//! The `events` table is the record of everything that changed; the tables
//! the Panel reads from day to day are *projections* of it. [`replay`]
//! deletes the projection rows and folds every event, in id order, back
//! into them, in one transaction. On a consistent database the result
//! equals the live state row for row; `cap panel replay` runs it.
//!
//! # Which tables are projections
//!
//! [`PROJECTION_TABLES`]: `settings`, `nodes`, `node_registration_tokens`,
//! `allocations`, `servers`, `server_subusers` and `server_commands`. Their
//! writers ([`crate::db::settings`] and [`crate::servers`]) put everything
//! a row holds into the event they append with it: values, timestamps
//! (`data.at`, or the event's own `occurred_at` for settings) and, for
//! secrets, only their SHA-256 (`token_hash`), never the secret itself.
//! `node_registration_tokens` is in the set because deleting a node
//! cascades to its tokens, so they have to be rebuilt with it.
//!
//! Out of scope, with the reason:
//!
//! - **Identity** (`users`, `identities`, `roles`, `sessions`,
//!   `refresh_tokens`, `api_keys`, TOTP, recovery codes, login
//!   challenges): much of it is security state that deliberately has no
//!   event per change (token use and rotation, `last_used_at`, failed TOTP
//!   attempts) and some of it is secret material (the TOTP secret, the
//!   signing keys in `jwt_keys`) that must never be copied into
//!   the audit log. Rebuilding it from events would either be lossy or
//!   leak secrets.
//! - **Plugins** (`plugins`, `plugin_config`, `plugin_secrets`,
//!   `plugin_kv`): packages, their secrets and the plugins' own key/value
//!   data are content, not changes; they stay as they are.
//!
//! # Decisions
//!
//! - **Fold in memory, then write.** Events are read in pages inside the
//!   transaction and folded into an in-memory model; then the projection
//!   rows are written back. Every event is checked against the state
//!   before it (a node must exist to be updated, an allocation must be
//!   free to be taken, a command moves only forward), so a log that does
//!   not describe a consistent history is refused with
//!   [`ReplayError::Unapplicable`] naming the event's id and kind, and
//!   the transaction is rolled back: nothing changes.
//! - **Unknown kinds in a projection's namespace are errors.** Events
//!   whose kind starts with `setting.`, `node.`, `server.` or `subuser.`
//!   must be known here; a new writer that forgot to teach replay its
//!   event fails loudly instead of producing a silently different state.
//!   Every other kind (identity, plugins, `panel.*`) is skipped.
//! - **Isolation.** On PostgreSQL the projection tables are locked
//!   (`EXCLUSIVE`: readers go on, writers wait) before anything is read;
//!   SQLite's single write lock is taken by the first statement; on
//!   MySQL/MariaDB the live nodes are read with a locking read and the
//!   deletes come next, which waits for writers in flight and holds back
//!   new ones, and only then are the events read (so the
//!   `REPEATABLE READ` snapshot is taken after them). Writers append their event in the same transaction as
//!   their change, so the events read are exactly the changes the deleted
//!   rows held. Replay is a maintenance operation: a writer caught in a
//!   lock cycle with it may be aborted by the database's deadlock
//!   detection (or the replay is, and nothing changes).
//! - **Liveness is not an event.** `nodes.last_seen_at` moves on every
//!   Agent heartbeat without an event; replay takes the later of the
//!   time of the node's last `node.online` and the live row's value, so
//!   a replay over live rows keeps it, and a replay over empty tables
//!   restores it to the last time the node came online.
//! - **Idempotent.** Replaying a replayed database changes nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use serde::de::DeserializeOwned;
use serde_json::Value;
use sqlx::types::Json;

use super::{Backend, Database, DbError, EventId, on_pool, query_builder};
use crate::servers::nodes::SupportedGame;

/// The tables [`replay`] rebuilds, children after their parents.
pub const PROJECTION_TABLES: [&str; 7] = [
    "settings",
    "nodes",
    "node_registration_tokens",
    "allocations",
    "servers",
    "server_subusers",
    "server_commands",
];

/// Events read per round trip.
const PAGE: u32 = 500;
/// Rows inserted per statement.
const CHUNK: usize = 100;

/// Why a replay failed. Either way, nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// An event cannot be applied to the state before it: its data lacks
    /// a field, or it contradicts that state (an update of a node that
    /// does not exist, an allocation taken twice…), or its kind is unknown
    /// in a projection's namespace.
    #[error("event {} ({kind}) cannot be applied: {reason}", .event.0)]
    Unapplicable {
        /// The event's id.
        event: EventId,
        /// Its kind.
        kind: String,
        /// What is wrong.
        reason: String,
    },
    /// The database failed (including a constraint the rebuilt rows
    /// break).
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for ReplayError {
    fn from(error: sqlx::Error) -> Self {
        ReplayError::Db(DbError::from(error))
    }
}

/// What a replay did: events read and applied, and the rows each
/// projection holds afterwards.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// Events read (all of them).
    pub events: u64,
    /// Events that changed a projection; the rest belong to other parts of
    /// the Panel (identity, plugins).
    pub applied: u64,
    /// Rows in `settings`.
    pub settings: u64,
    /// Rows in `nodes`.
    pub nodes: u64,
    /// Rows in `node_registration_tokens`.
    pub registration_tokens: u64,
    /// Rows in `allocations`.
    pub allocations: u64,
    /// Rows in `servers`.
    pub servers: u64,
    /// Rows in `server_subusers`.
    pub subusers: u64,
    /// Rows in `server_commands`.
    pub commands: u64,
}

impl ReplayReport {
    /// `(table, rows)` for each projection table, in
    /// [`PROJECTION_TABLES`] order.
    pub fn rows(&self) -> [(&'static str, u64); 7] {
        [
            ("settings", self.settings),
            ("nodes", self.nodes),
            ("node_registration_tokens", self.registration_tokens),
            ("allocations", self.allocations),
            ("servers", self.servers),
            ("server_subusers", self.subusers),
            ("server_commands", self.commands),
        ]
    }
}

/// One line per table after a summary line.
impl fmt::Display for ReplayReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "replayed {} events ({} applied to projections)",
            self.events, self.applied
        )?;
        for (table, rows) in self.rows() {
            write!(f, "\n  {table}: {rows} rows")?;
        }
        Ok(())
    }
}

/// Rebuilds the [`PROJECTION_TABLES`] from the event store in one
/// transaction; see the module documentation.
///
/// # Errors
///
/// [`ReplayError::Unapplicable`] for an event that cannot be applied,
/// [`ReplayError::Db`] when the database fails; in both cases the
/// transaction is rolled back and nothing changes.
pub async fn replay(db: &Database) -> Result<ReplayReport, ReplayError> {
    let backend = db.backend();
    on_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        // Shut out writers before anything is read (see "Isolation").
        let seen_sql = match backend {
            Backend::Postgres => {
                sqlx::query(
                    "LOCK TABLE settings, nodes, node_registration_tokens, allocations, servers, \
                     server_subusers, server_commands IN EXCLUSIVE MODE",
                )
                .execute(&mut *tx)
                .await?;
                "SELECT id, last_seen_at FROM nodes"
            }
            // Takes the database's write lock now, so that the reads below
            // see the latest state and no writer comes between.
            Backend::Sqlite => {
                sqlx::query("UPDATE nodes SET last_seen_at = last_seen_at WHERE 1 = 0")
                    .execute(&mut *tx)
                    .await?;
                "SELECT id, last_seen_at FROM nodes"
            }
            // A locking read: it waits for writers in flight and does not
            // fix the snapshot the events are read from later.
            Backend::MySql => "SELECT id, last_seen_at FROM nodes FOR UPDATE",
        };
        let mut qb = query_builder(pool, seen_sql);
        let seen: Vec<(String, Option<i64>)> = qb.build_query_as().fetch_all(&mut *tx).await?;
        // Children first, for the foreign keys.
        for table in PROJECTION_TABLES.iter().rev() {
            let mut qb = query_builder(pool, "DELETE FROM ");
            qb.push(*table);
            qb.build().execute(&mut *tx).await?;
        }

        let mut state = Projections::default();
        let mut report = ReplayReport::default();
        let mut after = 0_i64;
        loop {
            let mut qb = query_builder(
                pool,
                "SELECT id, occurred_at, actor_user_id, kind, subject_type, subject_id, data \
                 FROM events WHERE id > ",
            );
            qb.push_bind(after)
                .push(" ORDER BY id LIMIT ")
                .push_bind(i64::from(PAGE));
            let page: Vec<EventRow> = qb.build_query_as().fetch_all(&mut *tx).await?;
            for event in &page {
                report.events += 1;
                let applied = state
                    .apply(event)
                    .map_err(|reason| ReplayError::Unapplicable {
                        event: EventId(event.id),
                        kind: event.kind.clone(),
                        reason,
                    })?;
                if applied {
                    report.applied += 1;
                }
            }
            match page.last() {
                Some(last) if page.len() == PAGE as usize => after = last.id,
                _ => break,
            }
        }
        let seen: HashMap<String, Option<i64>> = seen.into_iter().collect();
        for (id, node) in &mut state.nodes {
            if let Some(Some(live)) = seen.get(id) {
                node.last_seen_at = Some(node.last_seen_at.map_or(*live, |at| at.max(*live)));
            }
        }

        let settings: Vec<_> = state.settings.iter().collect();
        for chunk in settings.chunks(CHUNK) {
            let mut qb = query_builder(pool, "INSERT INTO settings (name, value, updated_at) ");
            qb.push_values(chunk, |mut row, (name, s)| {
                row.push_bind(name.as_str())
                    .push_bind(Json(&s.value))
                    .push_bind(s.updated_at);
            });
            qb.build().execute(&mut *tx).await?;
        }
        let nodes: Vec<_> = state.nodes.iter().collect();
        for chunk in nodes.chunks(CHUNK) {
            let mut qb = query_builder(
                pool,
                "INSERT INTO nodes (id, name, address, token_hash, created_at, memory_mb, disk_mb, \
                 cpu_percent, online, last_seen_at, agent_id, agent_version, capabilities, \
                 supported_games, health_endpoint, registered_at, updated_at) ",
            );
            qb.push_values(chunk, |mut row, (id, n)| {
                row.push_bind(id.as_str())
                    .push_bind(n.name.as_str())
                    .push_bind(n.address.as_str())
                    .push_bind(n.token_hash.as_str())
                    .push_bind(n.created_at)
                    .push_bind(n.memory_mb)
                    .push_bind(n.disk_mb)
                    .push_bind(n.cpu_percent)
                    .push_bind(n.online)
                    .push_bind(n.last_seen_at)
                    .push_bind(n.agent_id.as_deref())
                    .push_bind(n.agent_version.as_deref())
                    .push_bind(n.capabilities.as_ref().map(Json))
                    .push_bind(n.supported_games.as_ref().map(Json))
                    .push_bind(n.health_endpoint.as_deref())
                    .push_bind(n.registered_at)
                    .push_bind(n.updated_at);
            });
            qb.build().execute(&mut *tx).await?;
        }
        let tokens: Vec<_> = state.tokens.iter().collect();
        for chunk in tokens.chunks(CHUNK) {
            let mut qb = query_builder(
                pool,
                "INSERT INTO node_registration_tokens (id, node_id, token_hash, created_at, \
                 expires_at, used_at) ",
            );
            qb.push_values(chunk, |mut row, (id, t)| {
                row.push_bind(id.as_str())
                    .push_bind(t.node_id.as_str())
                    .push_bind(t.token_hash.as_str())
                    .push_bind(t.created_at)
                    .push_bind(t.expires_at)
                    .push_bind(t.used_at);
            });
            qb.build().execute(&mut *tx).await?;
        }
        let allocations: Vec<_> = state.allocations.iter().collect();
        for chunk in allocations.chunks(CHUNK) {
            let mut qb = query_builder(
                pool,
                "INSERT INTO allocations (node_id, ip, port, server_id) ",
            );
            qb.push_values(chunk, |mut row, ((node, ip, port), server)| {
                row.push_bind(node.as_str())
                    .push_bind(ip.as_str())
                    .push_bind(*port)
                    .push_bind(server.as_deref());
            });
            qb.build().execute(&mut *tx).await?;
        }
        let servers: Vec<_> = state.servers.iter().collect();
        for chunk in servers.chunks(CHUNK) {
            let mut qb = query_builder(
                pool,
                "INSERT INTO servers (id, name, owner_id, node_id, game_plugin, game_version, \
                 variables, memory_mb, disk_mb, cpu_percent, state, created_at) ",
            );
            qb.push_values(chunk, |mut row, (id, s)| {
                row.push_bind(id.as_str())
                    .push_bind(s.name.as_str())
                    .push_bind(s.owner_id.as_str())
                    .push_bind(s.node_id.as_deref())
                    .push_bind(s.game_plugin.as_str())
                    .push_bind(s.game_version.as_str())
                    .push_bind(Json(&s.variables))
                    .push_bind(s.memory_mb)
                    .push_bind(s.disk_mb)
                    .push_bind(s.cpu_percent)
                    .push_bind(s.state.as_str())
                    .push_bind(s.created_at);
            });
            qb.build().execute(&mut *tx).await?;
        }
        let subusers: Vec<_> = state.subusers.iter().collect();
        for chunk in subusers.chunks(CHUNK) {
            let mut qb = query_builder(
                pool,
                "INSERT INTO server_subusers (server_id, user_id, permissions, created_at, \
                 updated_at) ",
            );
            qb.push_values(chunk, |mut row, ((server, user), s)| {
                row.push_bind(server.as_str())
                    .push_bind(user.as_str())
                    .push_bind(Json(&s.permissions))
                    .push_bind(s.created_at)
                    .push_bind(s.updated_at);
            });
            qb.build().execute(&mut *tx).await?;
        }
        let commands: Vec<_> = state.commands.iter().collect();
        for chunk in commands.chunks(CHUNK) {
            let mut qb = query_builder(
                pool,
                "INSERT INTO server_commands (id, server_id, node_id, action, state, payload, \
                 actor_user_id, detail, created_at, updated_at) ",
            );
            qb.push_values(chunk, |mut row, (id, c)| {
                row.push_bind(id.as_str())
                    .push_bind(c.server_id.as_str())
                    .push_bind(c.node_id.as_deref())
                    .push_bind(c.action.as_str())
                    .push_bind(c.state.as_str())
                    .push_bind(c.payload.as_ref().map(Json))
                    .push_bind(c.actor_user_id.as_deref())
                    .push_bind(c.detail.as_deref())
                    .push_bind(c.created_at)
                    .push_bind(c.updated_at);
            });
            qb.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;

        let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        report.settings = count(state.settings.len());
        report.nodes = count(state.nodes.len());
        report.registration_tokens = count(state.tokens.len());
        report.allocations = count(state.allocations.len());
        report.servers = count(state.servers.len());
        report.subusers = count(state.subusers.len());
        report.commands = count(state.commands.len());
        Ok(report)
    })
}

/// One `events` row, as much of it as the projections need.
#[derive(Debug, Clone, sqlx::FromRow)]
struct EventRow {
    id: i64,
    occurred_at: i64,
    actor_user_id: Option<String>,
    kind: String,
    subject_type: Option<String>,
    subject_id: Option<String>,
    data: Json<Value>,
}

#[derive(Debug, Clone, PartialEq)]
struct SettingState {
    value: Value,
    updated_at: i64,
}

#[derive(Debug, Clone, PartialEq)]
struct NodeState {
    name: String,
    address: String,
    token_hash: String,
    created_at: i64,
    memory_mb: i64,
    disk_mb: i64,
    cpu_percent: i64,
    online: bool,
    last_seen_at: Option<i64>,
    agent_id: Option<String>,
    agent_version: Option<String>,
    capabilities: Option<Vec<String>>,
    supported_games: Option<Vec<SupportedGame>>,
    health_endpoint: Option<String>,
    registered_at: Option<i64>,
    updated_at: i64,
}

#[derive(Debug, Clone, PartialEq)]
struct TokenState {
    node_id: String,
    token_hash: String,
    created_at: i64,
    expires_at: i64,
    used_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
struct ServerState {
    name: String,
    owner_id: String,
    node_id: Option<String>,
    game_plugin: String,
    game_version: String,
    variables: BTreeMap<String, String>,
    memory_mb: i64,
    disk_mb: i64,
    cpu_percent: i64,
    state: String,
    created_at: i64,
}

#[derive(Debug, Clone, PartialEq)]
struct SubuserState {
    permissions: BTreeSet<String>,
    created_at: i64,
    updated_at: i64,
}

#[derive(Debug, Clone, PartialEq)]
struct CommandState {
    server_id: String,
    node_id: Option<String>,
    action: String,
    state: String,
    payload: Option<Value>,
    actor_user_id: Option<String>,
    detail: Option<String>,
    created_at: i64,
    updated_at: i64,
}

/// The projections, folded in memory.
#[derive(Debug, Default)]
struct Projections {
    settings: BTreeMap<String, SettingState>,
    nodes: BTreeMap<String, NodeState>,
    tokens: BTreeMap<String, TokenState>,
    /// (node, ip, port) → the server holding it.
    allocations: BTreeMap<(String, String, i32), Option<String>>,
    servers: BTreeMap<String, ServerState>,
    /// (server, user).
    subusers: BTreeMap<(String, String), SubuserState>,
    commands: BTreeMap<String, CommandState>,
}

/// Kind prefixes whose events must all be known here.
const NAMESPACES: [&str; 4] = ["setting.", "node.", "server.", "subuser."];

/// Typed access to an event's `data`, with errors naming the field.
struct Data<'a>(&'a Value);

impl Data<'_> {
    fn get<T: DeserializeOwned>(&self, key: &str) -> Result<T, String> {
        let value = self
            .0
            .get(key)
            .ok_or_else(|| format!("data.{key} is missing"))?;
        serde_json::from_value(value.clone()).map_err(|e| format!("data.{key}: {e}"))
    }

    /// A non-negative amount, as stored.
    fn amount(&self, key: &str) -> Result<i64, String> {
        let value: u64 = self.get(key)?;
        i64::try_from(value).map_err(|_| format!("data.{key} is too large"))
    }

    fn nested(&self, key: &str) -> Result<Data<'_>, String> {
        match self.0.get(key) {
            Some(value @ Value::Object(_)) => Ok(Data(value)),
            Some(_) => Err(format!("data.{key} is not an object")),
            None => Err(format!("data.{key} is missing")),
        }
    }
}

impl Projections {
    /// Applies `event`; `Ok(false)` for an event of no projection.
    fn apply(&mut self, event: &EventRow) -> Result<bool, String> {
        let kind = event.kind.as_str();
        let data = Data(&event.data.0);
        let subject = |expected: &str| -> Result<String, String> {
            match (&event.subject_type, &event.subject_id) {
                (Some(kind), Some(id)) if kind == expected => Ok(id.clone()),
                _ => Err(format!("the subject must be a {expected}")),
            }
        };
        match kind {
            "setting.created" | "setting.updated" => {
                let name = subject("setting")?;
                if kind == "setting.created" && self.settings.contains_key(&name) {
                    return Err(format!("setting {name} exists already"));
                }
                let value: Value = data.get("value")?;
                self.settings.insert(
                    name,
                    SettingState {
                        value,
                        updated_at: event.occurred_at,
                    },
                );
            }
            "setting.deleted" => {
                let name = subject("setting")?;
                if self.settings.remove(&name).is_none() {
                    return Err(format!("setting {name} does not exist"));
                }
            }
            "node.created" => {
                let id = subject("node")?;
                if self.nodes.contains_key(&id) {
                    return Err(format!("node {id} exists already"));
                }
                let at: i64 = data.get("at")?;
                let node = NodeState {
                    name: data.get("name")?,
                    address: data.get("address")?,
                    token_hash: data.get("token_hash")?,
                    created_at: at,
                    memory_mb: data.amount("memory_mb")?,
                    disk_mb: data.amount("disk_mb")?,
                    cpu_percent: data.amount("cpu_percent")?,
                    online: false,
                    last_seen_at: None,
                    agent_id: None,
                    agent_version: None,
                    capabilities: None,
                    supported_games: None,
                    health_endpoint: None,
                    registered_at: None,
                    updated_at: at,
                };
                self.nodes.insert(id, node);
            }
            "node.updated" => {
                let node = self.node(&subject("node")?)?;
                node.name = data.get("name")?;
                node.address = data.get("address")?;
                node.memory_mb = data.amount("memory_mb")?;
                node.disk_mb = data.amount("disk_mb")?;
                node.cpu_percent = data.amount("cpu_percent")?;
                node.updated_at = data.get("at")?;
            }
            "node.deleted" => {
                let id = subject("node")?;
                if self.nodes.remove(&id).is_none() {
                    return Err(format!("node {id} does not exist"));
                }
                if self
                    .servers
                    .values()
                    .any(|s| s.node_id.as_deref() == Some(id.as_str()))
                {
                    return Err(format!("node {id} still has servers"));
                }
                self.allocations.retain(|(node, _, _), _| *node != id);
                self.tokens.retain(|_, t| t.node_id != id);
            }
            "node.online" | "node.offline" => {
                let node = self.node(&subject("node")?)?;
                node.online = kind == "node.online";
                if node.online {
                    node.last_seen_at = Some(data.get("at")?);
                }
            }
            "node.registration-token.issued" => {
                let node_id = subject("node")?;
                self.node(&node_id)?;
                let id: String = data.get("token_id")?;
                if self.tokens.contains_key(&id) {
                    return Err(format!("registration token {id} exists already"));
                }
                let token = TokenState {
                    node_id,
                    token_hash: data.get("token_hash")?,
                    created_at: data.get("at")?,
                    expires_at: data.get("expires_at")?,
                    used_at: None,
                };
                self.tokens.insert(id, token);
            }
            "node.registered" => {
                let node_id = subject("node")?;
                let at: i64 = data.get("at")?;
                let token_id: String = data.get("token_id")?;
                let token = self
                    .tokens
                    .get_mut(&token_id)
                    .filter(|t| t.node_id == node_id)
                    .ok_or_else(|| {
                        format!("registration token {token_id} of node {node_id} does not exist")
                    })?;
                if token.used_at.is_some() {
                    return Err(format!("registration token {token_id} was used already"));
                }
                token.used_at = Some(at);
                let limits = data.nested("resource_limits")?;
                let (memory, disk, cpu) = (
                    limits.amount("memory_mb")?,
                    limits.amount("disk_mb")?,
                    limits.amount("cpu_percent")?,
                );
                let token_hash = data.get("token_hash")?;
                let agent_id = data.get("agent_id")?;
                let agent_version = data.get("version")?;
                let capabilities = data.get("capabilities")?;
                let supported_games = data.get("supported_games")?;
                let health_endpoint = data.get("health_endpoint")?;
                let node = self.node(&node_id)?;
                node.token_hash = token_hash;
                node.agent_id = Some(agent_id);
                node.agent_version = Some(agent_version);
                node.capabilities = Some(capabilities);
                node.supported_games = Some(supported_games);
                node.health_endpoint = Some(health_endpoint);
                node.memory_mb = memory;
                node.disk_mb = disk;
                node.cpu_percent = cpu;
                node.registered_at = Some(at);
                node.updated_at = at;
            }
            "node.allocations.added" => {
                let node_id = subject("node")?;
                self.node(&node_id)?;
                let ip: String = data.get("ip")?;
                let ports: Vec<u16> = data.get("ports")?;
                if ports.is_empty() {
                    return Err("data.ports is empty".into());
                }
                for port in ports {
                    let key = (node_id.clone(), ip.clone(), i32::from(port));
                    if self.allocations.insert(key, None).is_some() {
                        return Err(format!("allocation {ip}:{port} exists already"));
                    }
                }
            }
            "node.allocation.deleted" => {
                let node_id = subject("node")?;
                let ip: String = data.get("ip")?;
                let port: u16 = data.get("port")?;
                match self
                    .allocations
                    .remove(&(node_id, ip.clone(), i32::from(port)))
                {
                    None => return Err(format!("allocation {ip}:{port} does not exist")),
                    Some(Some(server)) => {
                        return Err(format!("allocation {ip}:{port} is held by {server}"));
                    }
                    Some(None) => {}
                }
            }
            "server.created" => {
                let id = subject("server")?;
                if self.servers.contains_key(&id) {
                    return Err(format!("server {id} exists already"));
                }
                let node_id: String = data.get("node_id")?;
                self.node(&node_id)?;
                let allocation: String = data.get("allocation")?;
                let (ip, port) = allocation
                    .rsplit_once(':')
                    .and_then(|(ip, port)| Some((ip.to_owned(), port.parse::<u16>().ok()?)))
                    .ok_or_else(|| format!("data.allocation {allocation:?} is not ip:port"))?;
                match self
                    .allocations
                    .get_mut(&(node_id.clone(), ip, i32::from(port)))
                {
                    Some(holder @ None) => *holder = Some(id.clone()),
                    Some(Some(other)) => {
                        return Err(format!("allocation {allocation} is held by {other}"));
                    }
                    None => return Err(format!("allocation {allocation} does not exist")),
                }
                let game = data.nested("game")?;
                let limits = data.nested("limits")?;
                let server = ServerState {
                    name: data.get("name")?,
                    owner_id: data.get("owner_id")?,
                    node_id: Some(node_id),
                    game_plugin: game.get("plugin")?,
                    game_version: game.get("version")?,
                    variables: data.get("variable_values")?,
                    memory_mb: limits.amount("memory_mb")?,
                    disk_mb: limits.amount("disk_mb")?,
                    cpu_percent: limits.amount("cpu_percent")?,
                    state: data.get("state")?,
                    created_at: data.get("at")?,
                };
                self.servers.insert(id, server);
            }
            "server.updated" => {
                let id = subject("server")?;
                let limits = data.nested("limits")?;
                let (memory, disk, cpu) = (
                    limits.amount("memory_mb")?,
                    limits.amount("disk_mb")?,
                    limits.amount("cpu_percent")?,
                );
                let name = data.get("name")?;
                let variables = data.get("variable_values")?;
                let game_version = data.get("game_version")?;
                let server = self.server(&id)?;
                server.name = name;
                server.variables = variables;
                server.game_version = game_version;
                server.memory_mb = memory;
                server.disk_mb = disk;
                server.cpu_percent = cpu;
            }
            "server.state.changed" => {
                let id = subject("server")?;
                let from: String = data.get("from")?;
                let to: String = data.get("to")?;
                let server = self.server(&id)?;
                if server.state != from {
                    return Err(format!(
                        "server {id} is {}, not {from}, before changing to {to}",
                        server.state
                    ));
                }
                server.state = to;
            }
            "server.deleted" => {
                let id = subject("server")?;
                if self.servers.remove(&id).is_none() {
                    return Err(format!("server {id} does not exist"));
                }
                for holder in self.allocations.values_mut() {
                    if holder.as_deref() == Some(id.as_str()) {
                        *holder = None;
                    }
                }
                // The foreign key cascades on the live tables.
                self.subusers.retain(|(server, _), _| *server != id);
            }
            "server.command.queued" => {
                let server_id = subject("server")?;
                let id: String = data.get("command_id")?;
                if self.commands.contains_key(&id) {
                    return Err(format!("command {id} exists already"));
                }
                let action: String = data.get("action")?;
                let at: i64 = data.get("at")?;
                let command = CommandState {
                    node_id: data.get("node_id")?,
                    payload: data.get("payload")?,
                    actor_user_id: event.actor_user_id.clone(),
                    detail: None,
                    state: "pending".into(),
                    created_at: at,
                    updated_at: at,
                    server_id: server_id.clone(),
                    action: action.clone(),
                };
                if action == "delete" {
                    let server = self.server(&server_id)?;
                    if server.state == "deleting" {
                        return Err(format!("server {server_id} is being deleted already"));
                    }
                    server.state = "deleting".into();
                }
                self.commands.insert(id, command);
            }
            "server.command.acked" | "server.command.done" | "server.command.failed" => {
                let server_id = subject("server")?;
                let id: String = data.get("command_id")?;
                let to = kind.trim_start_matches("server.command.");
                let detail: Option<String> = data.get("detail")?;
                let at: i64 = data.get("at")?;
                let command = self
                    .commands
                    .get_mut(&id)
                    .filter(|c| c.server_id == server_id)
                    .ok_or_else(|| format!("command {id} of server {server_id} does not exist"))?;
                let allowed = match to {
                    "acked" => command.state == "pending",
                    _ => command.state == "pending" || command.state == "acked",
                };
                if !allowed {
                    return Err(format!(
                        "command {id} is {}; it cannot become {to}",
                        command.state
                    ));
                }
                command.state = to.to_owned();
                command.detail = detail;
                command.updated_at = at;
                if command.action == "delete"
                    && to == "failed"
                    && let Some(server) = self.servers.get_mut(&server_id)
                    && server.state == "deleting"
                {
                    server.state = "offline".into();
                }
            }
            "subuser.added" => {
                let server_id = subject("server")?;
                self.server(&server_id)?;
                let user_id: String = data.get("user_id")?;
                let at: i64 = data.get("at")?;
                let subuser = SubuserState {
                    permissions: data.get("permissions")?,
                    created_at: at,
                    updated_at: at,
                };
                if self
                    .subusers
                    .insert((server_id, user_id.clone()), subuser)
                    .is_some()
                {
                    return Err(format!("subuser {user_id} exists already"));
                }
            }
            "subuser.updated" => {
                let server_id = subject("server")?;
                let user_id: String = data.get("user_id")?;
                let permissions = data.get("permissions")?;
                let at: i64 = data.get("at")?;
                let subuser = self
                    .subusers
                    .get_mut(&(server_id, user_id.clone()))
                    .ok_or_else(|| format!("subuser {user_id} does not exist"))?;
                subuser.permissions = permissions;
                subuser.updated_at = at;
            }
            "subuser.removed" => {
                let server_id = subject("server")?;
                let user_id: String = data.get("user_id")?;
                if self
                    .subusers
                    .remove(&(server_id, user_id.clone()))
                    .is_none()
                {
                    return Err(format!("subuser {user_id} does not exist"));
                }
            }
            other if NAMESPACES.iter().any(|ns| other.starts_with(ns)) => {
                return Err("unknown event kind in a projection's namespace".into());
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn node(&mut self, id: &str) -> Result<&mut NodeState, String> {
        self.nodes
            .get_mut(id)
            .ok_or_else(|| format!("node {id} does not exist"))
    }

    fn server(&mut self, id: &str) -> Result<&mut ServerState, String> {
        self.servers
            .get_mut(id)
            .ok_or_else(|| format!("server {id} does not exist"))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(id: i64, kind: &str, subject: (&str, &str), data: Value) -> EventRow {
        EventRow {
            id,
            occurred_at: 1_700_000_000_000_000,
            actor_user_id: None,
            kind: kind.into(),
            subject_type: Some(subject.0.into()),
            subject_id: Some(subject.1.into()),
            data: Json(data),
        }
    }

    fn node_created(id: i64) -> EventRow {
        event(
            id,
            "node.created",
            ("node", "node_1"),
            json!({"name": "n1", "address": "10.0.0.1", "memory_mb": 1024, "disk_mb": 1,
                   "cpu_percent": 100, "token_hash": "ab", "at": 5}),
        )
    }

    #[test]
    fn an_allocation_cannot_be_taken_twice() {
        let mut state = Projections::default();
        state.apply(&node_created(1)).expect("created");
        state
            .apply(&event(
                2,
                "node.allocations.added",
                ("node", "node_1"),
                json!({"ip": "::1", "ports": [25565]}),
            ))
            .expect("added");
        let server = |id: &str| {
            json!({"name": id, "owner_id": "u", "node_id": "node_1", "allocation": "::1:25565",
                   "game": {"plugin": "g", "version": "1.0.0"},
                   "limits": {"memory_mb": 1, "disk_mb": 1, "cpu_percent": 1},
                   "variable_values": {}, "state": "offline", "at": 7})
        };
        state
            .apply(&event(
                3,
                "server.created",
                ("server", "srv_a"),
                server("a"),
            ))
            .expect("the IPv6 allocation is parsed and taken");
        let error = state
            .apply(&event(
                4,
                "server.created",
                ("server", "srv_b"),
                server("b"),
            ))
            .expect_err("taken");
        assert!(error.contains("held by srv_a"), "{error}");
    }

    #[test]
    fn an_event_missing_a_field_names_it() {
        let mut state = Projections::default();
        let mut old = node_created(1);
        old.data
            .0
            .as_object_mut()
            .expect("object")
            .remove("token_hash");
        assert_eq!(
            state.apply(&old).expect_err("incomplete"),
            "data.token_hash is missing"
        );
    }

    #[test]
    fn unknown_kinds_fail_only_in_a_projections_namespace() {
        let mut state = Projections::default();
        let plugin = event(1, "plugin.installed", ("plugin", "p"), json!({}));
        assert_eq!(state.apply(&plugin), Ok(false));
        let unknown = event(2, "server.teleported", ("server", "s"), json!({}));
        assert!(state.apply(&unknown).is_err());
    }
}
