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
//! `allocations` (with a server's notes and primary flag), `servers` (with
//! the allocation limit), `server_subusers` and `server_commands`. Their
//! writers ([`crate::db::settings`] and [`crate::servers`]) put everything
//! a row holds into the event they append with it: values, timestamps
//! (`data.at`, or the event's own `occurred_at` for settings) and, for
//! secrets, only their SHA-256 (`token_hash`), never the secret itself.
//! Who did it is the event's actor: a command's `actor_user_id` and a
//! suspension's `suspended_by` are rebuilt from it.
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
//! - **Typed.** Each event of a projection's namespace is decoded into its
//!   [`DomainEvent`] and applied by a `match` on it, so a field a writer
//!   stops writing fails to compile here rather than at the next replay;
//!   an event whose data lacks a field (or names a subject of another
//!   type) is refused, naming it.
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

use serde_json::Value;
use sqlx::types::Json;

use super::domain::{
    CommandQueued, CommandSettled, DecodeError, DomainEvent, GameVersion, IpPort, NodeCreated,
    NodeEvent, NodeRegistered, ServerCreated, ServerEvent, ServerTransferred, SettingEvent,
    SubuserEvent,
};
use super::{Backend, Database, DbError, EventId, Subject, on_pool, query_builder};

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

/// Writes every row of `$state` (a [`Projections`]) into the emptied
/// projection tables, in chunks of [`CHUNK`] rows, inside `$tx` on
/// `$pool` (expanded once per backend by `on_pool!`).
macro_rules! insert_projections {
    ($pool:ident, $tx:ident, $state:ident) => {{
        let (pool, tx, state) = ($pool, &mut $tx, &$state);
        let settings: Vec<_> = state.settings.iter().collect();
        for chunk in settings.chunks(CHUNK) {
            let mut qb = query_builder(pool, "INSERT INTO settings (name, value, updated_at) ");
            qb.push_values(chunk, |mut row, (name, s)| {
                row.push_bind(name.as_str())
                    .push_bind(Json(&s.value))
                    .push_bind(s.updated_at);
            });
            qb.build().execute(&mut **tx).await?;
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
            qb.build().execute(&mut **tx).await?;
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
            qb.build().execute(&mut **tx).await?;
        }
        let allocations: Vec<_> = state.allocations.iter().collect();
        for chunk in allocations.chunks(CHUNK) {
            let mut qb = query_builder(
                pool,
                "INSERT INTO allocations (node_id, ip, port, server_id, notes, is_primary) ",
            );
            qb.push_values(chunk, |mut row, ((node, ip, port), a)| {
                row.push_bind(node.as_str())
                    .push_bind(ip.as_str())
                    .push_bind(*port)
                    .push_bind(a.server.as_deref())
                    .push_bind(a.notes.as_deref())
                    .push_bind(a.primary);
            });
            qb.build().execute(&mut **tx).await?;
        }
        let servers: Vec<_> = state.servers.iter().collect();
        for chunk in servers.chunks(CHUNK) {
            let mut qb = query_builder(
                pool,
                "INSERT INTO servers (id, name, owner_id, node_id, game_plugin, game_version, \
                 game_type, image, startup_command, variables, memory_mb, disk_mb, cpu_percent, \
                 state, created_at, allocation_limit, suspended_reason, suspended_at, \
                 suspended_by, transfer_id) ",
            );
            qb.push_values(chunk, |mut row, (id, s)| {
                row.push_bind(id.as_str())
                    .push_bind(s.name.as_str())
                    .push_bind(s.owner_id.as_str())
                    .push_bind(s.node_id.as_deref())
                    .push_bind(s.game_plugin.as_str())
                    .push_bind(s.game_version.as_str())
                    .push_bind(s.game_type.as_deref())
                    .push_bind(s.image.as_deref())
                    .push_bind(s.startup_command.as_deref())
                    .push_bind(Json(&s.variables))
                    .push_bind(s.memory_mb)
                    .push_bind(s.disk_mb)
                    .push_bind(s.cpu_percent)
                    .push_bind(s.state.as_str())
                    .push_bind(s.created_at)
                    .push_bind(s.allocation_limit)
                    .push_bind(s.suspension.as_ref().map(|x| x.reason.as_str()))
                    .push_bind(s.suspension.as_ref().map(|x| x.at))
                    .push_bind(s.suspension.as_ref().and_then(|x| x.by.as_deref()))
                    .push_bind(s.transfer_id.as_deref());
            });
            qb.build().execute(&mut **tx).await?;
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
            qb.build().execute(&mut **tx).await?;
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
            qb.build().execute(&mut **tx).await?;
        }
    }};
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
        // The pool itself: replay writes projections from their events.
        let mut tx = pool.raw().begin().await?;
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
            let full = page.len() == PAGE as usize;
            for event in page {
                report.events += 1;
                after = event.id;
                let (id, kind) = (event.id, event.kind.clone());
                let applied = state
                    .apply(event)
                    .map_err(|reason| ReplayError::Unapplicable {
                        event: EventId(id),
                        kind,
                        reason,
                    })?;
                if applied {
                    report.applied += 1;
                }
            }
            if !full {
                break;
            }
        }
        let seen: HashMap<String, Option<i64>> = seen.into_iter().collect();
        for (id, node) in &mut state.nodes {
            if let Some(Some(live)) = seen.get(id) {
                node.last_seen_at = Some(node.last_seen_at.map_or(*live, |at| at.max(*live)));
            }
        }

        insert_projections!(pool, tx, state);
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
    supported_games: Option<Vec<GameVersion>>,
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
    game_type: Option<String>,
    image: Option<String>,
    startup_command: Option<String>,
    variables: BTreeMap<String, String>,
    memory_mb: i64,
    disk_mb: i64,
    cpu_percent: i64,
    state: String,
    created_at: i64,
    /// How many allocations it may hold besides its primary.
    allocation_limit: i32,
    suspension: Option<SuspensionState>,
    /// The transfer it is in.
    transfer_id: Option<String>,
}

/// A server's suspension: `server.suspended`'s reason and time, and its
/// actor.
#[derive(Debug, Clone, PartialEq)]
struct SuspensionState {
    reason: String,
    at: i64,
    by: Option<String>,
}

/// An allocation: the server holding it, with its notes and whether it is
/// that server's primary (a free one has neither).
#[derive(Debug, Clone, Default, PartialEq)]
struct AllocationState {
    server: Option<String>,
    notes: Option<String>,
    primary: bool,
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
    /// (node, ip, port) → who holds it, how.
    allocations: BTreeMap<(String, String, i32), AllocationState>,
    servers: BTreeMap<String, ServerState>,
    /// (server, user).
    subusers: BTreeMap<(String, String), SubuserState>,
    commands: BTreeMap<String, CommandState>,
}

/// Kind prefixes whose events must all be known here.
const NAMESPACES: [&str; 4] = ["setting.", "node.", "server.", "subuser."];

/// A non-negative amount, as stored.
fn amount(value: u64, field: &str) -> Result<i64, String> {
    i64::try_from(value).map_err(|_| format!("data.{field} is too large"))
}

impl Projections {
    /// Applies `event`; `Ok(false)` for an event of no projection.
    fn apply(&mut self, event: EventRow) -> Result<bool, String> {
        if !NAMESPACES.iter().any(|ns| event.kind.starts_with(ns)) {
            return Ok(false);
        }
        let subject = match (event.subject_type, event.subject_id) {
            (Some(kind), Some(id)) => Some(Subject { kind, id }),
            _ => None,
        };
        let decoded = DomainEvent::from_stored(&event.kind, subject.as_ref(), event.data.0)
            .map_err(|error| match error {
                DecodeError::UnknownKind(_) => {
                    "unknown event kind in a projection's namespace".to_owned()
                }
                DecodeError::Invalid { reason, .. } => reason,
            })?;
        match decoded {
            DomainEvent::Setting(e) => self.apply_setting(e, event.occurred_at)?,
            DomainEvent::Node(e) => self.apply_node(e)?,
            DomainEvent::Server(e) => self.apply_server(e, event.actor_user_id)?,
            DomainEvent::Subuser(e) => self.apply_subuser(e)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn apply_setting(&mut self, event: SettingEvent, occurred_at: i64) -> Result<(), String> {
        match event {
            SettingEvent::Created { subject, data } => {
                if self.settings.contains_key(subject.as_str()) {
                    return Err(format!("setting {} exists already", subject.0));
                }
                self.put_setting(subject.0, data.value, occurred_at);
            }
            SettingEvent::Updated { subject, data } => {
                self.put_setting(subject.0, data.value, occurred_at);
            }
            SettingEvent::Deleted { subject, .. } => {
                if self.settings.remove(subject.as_str()).is_none() {
                    return Err(format!("setting {} does not exist", subject.0));
                }
            }
        }
        Ok(())
    }

    fn put_setting(&mut self, name: String, value: Value, updated_at: i64) {
        self.settings
            .insert(name, SettingState { value, updated_at });
    }

    fn apply_node(&mut self, event: NodeEvent) -> Result<(), String> {
        match event {
            NodeEvent::Created { subject, data } => self.create_node(subject.0, data)?,
            NodeEvent::Updated { subject, data } => {
                let node = self.node(subject.as_str())?;
                node.name = data.name;
                node.address = data.address;
                node.memory_mb = amount(data.memory_mb, "memory_mb")?;
                node.disk_mb = amount(data.disk_mb, "disk_mb")?;
                node.cpu_percent = amount(data.cpu_percent, "cpu_percent")?;
                node.updated_at = data.at;
            }
            NodeEvent::Deleted { subject, .. } => {
                let id = subject.0;
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
            NodeEvent::Online { subject, data } => {
                let node = self.node(subject.as_str())?;
                node.online = true;
                node.last_seen_at = Some(data.at);
            }
            NodeEvent::Offline { subject, .. } => {
                self.node(subject.as_str())?.online = false;
            }
            NodeEvent::RegistrationTokenIssued { subject, data } => {
                let node_id = subject.0;
                self.node(&node_id)?;
                if self.tokens.contains_key(&data.token_id) {
                    return Err(format!(
                        "registration token {} exists already",
                        data.token_id
                    ));
                }
                let token = TokenState {
                    node_id,
                    token_hash: data.token_hash,
                    created_at: data.at,
                    expires_at: data.expires_at,
                    used_at: None,
                };
                self.tokens.insert(data.token_id, token);
            }
            NodeEvent::Registered { subject, data } => self.register(&subject.0, data)?,
            NodeEvent::CapabilitiesChanged { subject, data } => {
                self.node(subject.as_str())?.capabilities = Some(data.capabilities);
            }
            NodeEvent::AllocationsAdded { subject, data } => {
                let node_id = subject.0;
                self.node(&node_id)?;
                if data.ports.is_empty() {
                    return Err("data.ports is empty".into());
                }
                for port in data.ports {
                    let key = (node_id.clone(), data.ip.clone(), i32::from(port));
                    if self
                        .allocations
                        .insert(key, AllocationState::default())
                        .is_some()
                    {
                        return Err(format!("allocation {}:{port} exists already", data.ip));
                    }
                }
            }
            NodeEvent::AllocationDeleted { subject, data } => {
                let (ip, port) = (data.ip, data.port);
                match self
                    .allocations
                    .remove(&(subject.0, ip.clone(), i32::from(port)))
                    .map(|a| a.server)
                {
                    None => return Err(format!("allocation {ip}:{port} does not exist")),
                    Some(Some(server)) => {
                        return Err(format!("allocation {ip}:{port} is held by {server}"));
                    }
                    Some(None) => {}
                }
            }
        }
        Ok(())
    }

    fn apply_server(
        &mut self,
        event: ServerEvent,
        actor_user_id: Option<String>,
    ) -> Result<(), String> {
        match event {
            ServerEvent::Created { subject, data } => self.create_server(subject.0, data)?,
            ServerEvent::Updated { subject, data } => {
                let (memory, disk, cpu) = (
                    amount(data.limits.memory_mb, "memory_mb")?,
                    amount(data.limits.disk_mb, "disk_mb")?,
                    amount(data.limits.cpu_percent, "cpu_percent")?,
                );
                let server = self.server(subject.as_str())?;
                server.name = data.name;
                server.variables = data.variable_values;
                server.game_version = data.game_version;
                server.image = data.image;
                server.startup_command = data.startup_command;
                server.memory_mb = memory;
                server.disk_mb = disk;
                server.cpu_percent = cpu;
            }
            ServerEvent::StateChanged { subject, data } => {
                let id = subject.0;
                let server = self.server(&id)?;
                if server.state != data.from {
                    return Err(format!(
                        "server {id} is {}, not {}, before changing to {}",
                        server.state, data.from, data.to
                    ));
                }
                server.state = data.to;
            }
            ServerEvent::Deleted { subject, .. } => {
                let id = subject.0;
                if self.servers.remove(&id).is_none() {
                    return Err(format!("server {id} does not exist"));
                }
                for allocation in self.allocations.values_mut() {
                    if allocation.server.as_deref() == Some(id.as_str()) {
                        *allocation = AllocationState::default();
                    }
                }
                // The foreign key cascades on the live tables.
                self.subusers.retain(|(server, _), _| *server != id);
            }
            ServerEvent::CommandQueued { subject, data } => {
                self.queue_command(subject.0, data, actor_user_id)?;
            }
            ServerEvent::CommandAcked { subject, data } => {
                self.settle(&subject.0, data, "acked")?;
            }
            ServerEvent::CommandDone { subject, data } => {
                self.settle(&subject.0, data, "done")?;
            }
            ServerEvent::CommandFailed { subject, data } => {
                self.settle(&subject.0, data, "failed")?;
            }
            ServerEvent::AllocationLimitSet { subject, data } => {
                let limit =
                    i32::try_from(data.limit).map_err(|_| "data.limit is too large".to_owned())?;
                self.server(subject.as_str())?.allocation_limit = limit;
            }
            ServerEvent::AllocationAdded { subject, data } => {
                let id = subject.0;
                self.server_on(&id, &data.node_id)?;
                let (ip, port) = (data.ip, data.port);
                let allocation = self
                    .allocations
                    .get_mut(&(data.node_id, ip.clone(), i32::from(port)))
                    .ok_or_else(|| format!("allocation {ip}:{port} does not exist"))?;
                if let Some(other) = &allocation.server {
                    return Err(format!("allocation {ip}:{port} is held by {other}"));
                }
                *allocation = AllocationState {
                    server: Some(id),
                    notes: None,
                    primary: false,
                };
            }
            ServerEvent::AllocationNotesSet { subject, data } => {
                let allocation = self.held(&subject.0, &data.node_id, &data.ip, data.port)?;
                allocation.notes = data.notes;
            }
            ServerEvent::PrimaryAllocationSet { subject, data } => {
                let id = subject.0;
                self.held(&id, &data.node_id, &data.ip, data.port)?;
                for allocation in self.allocations.values_mut() {
                    if allocation.server.as_deref() == Some(id.as_str()) {
                        allocation.primary = false;
                    }
                }
                self.held(&id, &data.node_id, &data.ip, data.port)?.primary = true;
            }
            ServerEvent::AllocationRemoved { subject, data } => {
                let (ip, port) = (data.ip.clone(), data.port);
                let allocation = self.held(&subject.0, &data.node_id, &data.ip, data.port)?;
                if allocation.primary {
                    return Err(format!(
                        "allocation {ip}:{port} is the primary of {}",
                        subject.0
                    ));
                }
                *allocation = AllocationState::default();
            }
            ServerEvent::Suspended { subject, data } => {
                let id = subject.0;
                let server = self.server(&id)?;
                if let Some(current) = &server.suspension {
                    return Err(format!(
                        "server {id} is suspended already ({})",
                        current.reason
                    ));
                }
                server.suspension = Some(SuspensionState {
                    reason: data.reason,
                    at: data.at,
                    by: actor_user_id,
                });
            }
            ServerEvent::Unsuspended { subject, .. } => {
                let id = subject.0;
                if self.server(&id)?.suspension.take().is_none() {
                    return Err(format!("server {id} is not suspended"));
                }
            }
            ServerEvent::TransferStarted { subject, data } => {
                let id = subject.0;
                self.server_on(&id, &data.from_node)?;
                if !self.nodes.contains_key(&data.to_node) {
                    return Err(format!("node {} does not exist", data.to_node));
                }
                let server = self.server(&id)?;
                if let Some(current) = &server.transfer_id {
                    return Err(format!("server {id} is in transfer {current} already"));
                }
                server.transfer_id = Some(data.transfer_id);
            }
            ServerEvent::Transferred { subject, data } => self.transfer(subject.0, data)?,
            ServerEvent::TransferFailed { subject, data } => {
                let id = subject.0;
                let server = self.server(&id)?;
                if server.transfer_id.as_deref() != Some(data.transfer_id.as_str()) {
                    return Err(format!(
                        "server {id} is not in transfer {}",
                        data.transfer_id
                    ));
                }
                server.transfer_id = None;
            }
        }
        Ok(())
    }

    /// Server `id` moves as `data` says: off its allocations on the
    /// source, onto those named on the target (the first its primary).
    fn transfer(&mut self, id: String, data: ServerTransferred) -> Result<(), String> {
        self.server_on(&id, &data.from_node)?;
        if self.server(&id)?.transfer_id.as_deref() != Some(data.transfer_id.as_str()) {
            return Err(format!(
                "server {id} is not in transfer {}",
                data.transfer_id
            ));
        }
        if data.allocations.is_empty() {
            return Err("data.allocations is empty".into());
        }
        for allocation in self.allocations.values_mut() {
            if allocation.server.as_deref() == Some(id.as_str()) {
                *allocation = AllocationState::default();
            }
        }
        for (n, IpPort { ip, port }) in data.allocations.into_iter().enumerate() {
            let allocation = self
                .allocations
                .get_mut(&(data.to_node.clone(), ip.clone(), i32::from(port)))
                .ok_or_else(|| format!("allocation {ip}:{port} does not exist"))?;
            if let Some(other) = &allocation.server {
                return Err(format!("allocation {ip}:{port} is held by {other}"));
            }
            *allocation = AllocationState {
                server: Some(id.clone()),
                notes: None,
                primary: n == 0,
            };
        }
        let server = self.server(&id)?;
        server.node_id = Some(data.to_node);
        server.transfer_id = None;
        Ok(())
    }

    /// The server `server_id`, which must be on node `node_id`.
    fn server_on(&mut self, server_id: &str, node_id: &str) -> Result<(), String> {
        let server = self.server(server_id)?;
        if server.node_id.as_deref() == Some(node_id) {
            Ok(())
        } else {
            Err(format!("server {server_id} is not on node {node_id}"))
        }
    }

    /// The allocation `node_id`/`ip`/`port`, which `server_id` must hold.
    fn held(
        &mut self,
        server_id: &str,
        node_id: &str,
        ip: &str,
        port: u16,
    ) -> Result<&mut AllocationState, String> {
        self.allocations
            .get_mut(&(node_id.to_owned(), ip.to_owned(), i32::from(port)))
            .filter(|a| a.server.as_deref() == Some(server_id))
            .ok_or_else(|| format!("server {server_id} does not hold allocation {ip}:{port}"))
    }

    fn create_node(&mut self, id: String, data: NodeCreated) -> Result<(), String> {
        if self.nodes.contains_key(&id) {
            return Err(format!("node {id} exists already"));
        }
        let node = NodeState {
            name: data.name,
            address: data.address,
            token_hash: data.token_hash,
            created_at: data.at,
            memory_mb: amount(data.memory_mb, "memory_mb")?,
            disk_mb: amount(data.disk_mb, "disk_mb")?,
            cpu_percent: amount(data.cpu_percent, "cpu_percent")?,
            online: false,
            last_seen_at: None,
            agent_id: None,
            agent_version: None,
            capabilities: None,
            supported_games: None,
            health_endpoint: None,
            registered_at: None,
            updated_at: data.at,
        };
        self.nodes.insert(id, node);
        Ok(())
    }

    /// An Agent registered for `node_id`, spending a registration token.
    fn register(&mut self, node_id: &str, data: NodeRegistered) -> Result<(), String> {
        let token = self
            .tokens
            .get_mut(&data.token_id)
            .filter(|t| t.node_id == node_id)
            .ok_or_else(|| {
                format!(
                    "registration token {} of node {node_id} does not exist",
                    data.token_id
                )
            })?;
        if token.used_at.is_some() {
            return Err(format!(
                "registration token {} was used already",
                data.token_id
            ));
        }
        token.used_at = Some(data.at);
        let limits = data.resource_limits;
        let (memory, disk, cpu) = (
            amount(limits.memory_mb, "memory_mb")?,
            amount(limits.disk_mb, "disk_mb")?,
            amount(limits.cpu_percent, "cpu_percent")?,
        );
        let node = self.node(node_id)?;
        node.token_hash = data.token_hash;
        node.agent_id = Some(data.agent_id);
        node.agent_version = Some(data.version);
        node.capabilities = Some(data.capabilities);
        node.supported_games = Some(data.supported_games);
        node.health_endpoint = Some(data.health_endpoint);
        node.memory_mb = memory;
        node.disk_mb = disk;
        node.cpu_percent = cpu;
        node.registered_at = Some(data.at);
        node.updated_at = data.at;
        Ok(())
    }

    fn create_server(&mut self, id: String, data: ServerCreated) -> Result<(), String> {
        if self.servers.contains_key(&id) {
            return Err(format!("server {id} exists already"));
        }
        self.node(&data.node_id)?;
        let allocation = &data.allocation;
        let (ip, port) = allocation
            .rsplit_once(':')
            .and_then(|(ip, port)| Some((ip.to_owned(), port.parse::<u16>().ok()?)))
            .ok_or_else(|| format!("data.allocation {allocation:?} is not ip:port"))?;
        match self
            .allocations
            .get_mut(&(data.node_id.clone(), ip, i32::from(port)))
        {
            Some(taken) if taken.server.is_none() => {
                // A new server's allocation is its primary.
                *taken = AllocationState {
                    server: Some(id.clone()),
                    notes: None,
                    primary: true,
                };
            }
            Some(taken) => {
                let other = taken.server.as_deref().unwrap_or_default();
                return Err(format!("allocation {allocation} is held by {other}"));
            }
            None => return Err(format!("allocation {allocation} does not exist")),
        }
        let server = ServerState {
            name: data.name,
            owner_id: data.owner_id,
            node_id: Some(data.node_id),
            game_plugin: data.game.plugin,
            game_version: data.game.version,
            game_type: data.game.game_type,
            image: data.image,
            startup_command: data.startup_command,
            variables: data.variable_values,
            memory_mb: amount(data.limits.memory_mb, "memory_mb")?,
            disk_mb: amount(data.limits.disk_mb, "disk_mb")?,
            cpu_percent: amount(data.limits.cpu_percent, "cpu_percent")?,
            state: data.state,
            created_at: data.at,
            allocation_limit: 0,
            suspension: None,
            transfer_id: None,
        };
        self.servers.insert(id, server);
        Ok(())
    }

    /// A command queued for `server_id`; a delete marks the server
    /// `deleting`.
    fn queue_command(
        &mut self,
        server_id: String,
        data: CommandQueued,
        actor_user_id: Option<String>,
    ) -> Result<(), String> {
        let id = data.command_id;
        if self.commands.contains_key(&id) {
            return Err(format!("command {id} exists already"));
        }
        if data.action == "delete" {
            let server = self.server(&server_id)?;
            if server.state == "deleting" {
                return Err(format!("server {server_id} is being deleted already"));
            }
            server.state = "deleting".into();
        }
        let command = CommandState {
            node_id: data.node_id,
            payload: data.payload,
            actor_user_id,
            detail: None,
            state: "pending".into(),
            created_at: data.at,
            updated_at: data.at,
            server_id,
            action: data.action,
        };
        self.commands.insert(id, command);
        Ok(())
    }

    /// Moves command `data.command_id` of `server_id` to `to` (`acked`,
    /// `done` or `failed`), forward only; a failed delete puts its server
    /// back `offline`.
    fn settle(&mut self, server_id: &str, data: CommandSettled, to: &str) -> Result<(), String> {
        let id = data.command_id;
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
        to.clone_into(&mut command.state);
        command.detail = data.detail;
        command.updated_at = data.at;
        if command.action == "delete"
            && to == "failed"
            && let Some(server) = self.servers.get_mut(server_id)
            && server.state == "deleting"
        {
            server.state = "offline".into();
        }
        Ok(())
    }

    fn apply_subuser(&mut self, event: SubuserEvent) -> Result<(), String> {
        match event {
            SubuserEvent::Added { subject, data } => {
                let server_id = subject.0;
                self.server(&server_id)?;
                let user_id = data.user_id;
                let subuser = SubuserState {
                    permissions: data.permissions,
                    created_at: data.at,
                    updated_at: data.at,
                };
                if self
                    .subusers
                    .insert((server_id, user_id.clone()), subuser)
                    .is_some()
                {
                    return Err(format!("subuser {user_id} exists already"));
                }
            }
            SubuserEvent::Updated { subject, data } => {
                let user_id = data.user_id;
                let subuser = self
                    .subusers
                    .get_mut(&(subject.0, user_id.clone()))
                    .ok_or_else(|| format!("subuser {user_id} does not exist"))?;
                subuser.permissions = data.permissions;
                subuser.updated_at = data.at;
            }
            SubuserEvent::Removed { subject, data } => {
                let user_id = data.user_id;
                if self
                    .subusers
                    .remove(&(subject.0, user_id.clone()))
                    .is_none()
                {
                    return Err(format!("subuser {user_id} does not exist"));
                }
            }
        }
        Ok(())
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
        state.apply(node_created(1)).expect("created");
        state
            .apply(event(
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
            .apply(event(3, "server.created", ("server", "srv_a"), server("a")))
            .expect("the IPv6 allocation is parsed and taken");
        let error = state
            .apply(event(4, "server.created", ("server", "srv_b"), server("b")))
            .expect_err("taken");
        assert!(error.contains("held by srv_a"), "{error}");
    }

    #[test]
    fn extra_allocations_notes_and_the_primary_fold_and_contradictions_are_refused() {
        let mut state = Projections::default();
        state.apply(node_created(1)).expect("created");
        state
            .apply(event(
                2,
                "node.allocations.added",
                ("node", "node_1"),
                json!({"ip": "::1", "ports": [25565, 25566, 25567]}),
            ))
            .expect("added");
        let server = json!({"name": "a", "owner_id": "u", "node_id": "node_1",
            "allocation": "::1:25565", "game": {"plugin": "g", "version": "1.0.0"},
            "limits": {"memory_mb": 1, "disk_mb": 1, "cpu_percent": 1},
            "variable_values": {}, "state": "offline", "at": 7});
        state
            .apply(event(3, "server.created", ("server", "srv_a"), server))
            .expect("created");
        let one = |port: u16| json!({"node_id": "node_1", "ip": "::1", "port": port});
        let steps = [
            ("server.allocation-limit.set", json!({"limit": 2})),
            ("server.allocation.added", one(25566)),
            (
                "server.allocation.notes.set",
                json!({"node_id": "node_1", "ip": "::1", "port": 25566, "notes": "query"}),
            ),
            ("server.allocation.primary.set", one(25566)),
            ("server.allocation.added", one(25567)),
            ("server.allocation.removed", one(25567)),
        ];
        for (i, (kind, data)) in steps.into_iter().enumerate() {
            let id = 4 + i64::try_from(i).expect("few");
            state
                .apply(event(id, kind, ("server", "srv_a"), data))
                .unwrap_or_else(|e| panic!("{kind}: {e}"));
        }
        let at = |state: &Projections, port: i32| {
            state.allocations[&("node_1".to_owned(), "::1".to_owned(), port)].clone()
        };
        assert_eq!(
            at(&state, 25565),
            AllocationState {
                server: Some("srv_a".into()),
                notes: None,
                primary: false
            }
        );
        assert_eq!(
            at(&state, 25566),
            AllocationState {
                server: Some("srv_a".into()),
                notes: Some("query".into()),
                primary: true
            }
        );
        assert_eq!(
            at(&state, 25567),
            AllocationState::default(),
            "back in the pool"
        );
        assert_eq!(state.servers["srv_a"].allocation_limit, 2);

        let error = state
            .apply(event(
                20,
                "server.allocation.removed",
                ("server", "srv_a"),
                one(25566),
            ))
            .expect_err("the primary stays");
        assert!(error.contains("primary"), "{error}");
        let error = state
            .apply(event(
                21,
                "server.allocation.notes.set",
                ("server", "srv_a"),
                json!({"node_id": "node_1", "ip": "::1", "port": 25567, "notes": null}),
            ))
            .expect_err("not held");
        assert!(error.contains("does not hold"), "{error}");

        // Deleting the server frees both, notes and primary flag gone.
        state
            .apply(event(
                22,
                "server.deleted",
                ("server", "srv_a"),
                json!({"command_id": "cmd_1"}),
            ))
            .expect("deleted");
        assert_eq!(at(&state, 25566), AllocationState::default());
    }

    #[test]
    fn a_suspension_replays_with_its_actor_and_is_neither_doubled_nor_lifted_twice() {
        let mut state = Projections::default();
        state.apply(node_created(1)).expect("created");
        state
            .apply(event(
                2,
                "node.allocations.added",
                ("node", "node_1"),
                json!({"ip": "10.0.0.1", "ports": [25565]}),
            ))
            .expect("added");
        state
            .apply(event(
                3,
                "server.created",
                ("server", "srv_a"),
                json!({"name": "a", "owner_id": "u", "node_id": "node_1",
                       "allocation": "10.0.0.1:25565",
                       "game": {"plugin": "g", "version": "1.0.0"},
                       "limits": {"memory_mb": 1, "disk_mb": 1, "cpu_percent": 1},
                       "variable_values": {}, "state": "offline", "at": 7}),
            ))
            .expect("created");
        let mut suspended = event(
            4,
            "server.suspended",
            ("server", "srv_a"),
            json!({"reason": "invoice 2041 is unpaid", "at": 9}),
        );
        suspended.actor_user_id = Some("plugin:billing".into());
        state.apply(suspended.clone()).expect("suspended");
        assert_eq!(
            state.servers["srv_a"].suspension,
            Some(SuspensionState {
                reason: "invoice 2041 is unpaid".into(),
                at: 9,
                by: Some("plugin:billing".into()),
            })
        );
        let twice = state
            .apply(EventRow { id: 5, ..suspended })
            .expect_err("suspended twice");
        assert!(twice.contains("is suspended already"), "{twice}");
        let lifted = || {
            event(
                6,
                "server.unsuspended",
                ("server", "srv_a"),
                json!({"reason": "invoice 2041 is unpaid", "at": 10}),
            )
        };
        state.apply(lifted()).expect("lifted");
        assert_eq!(state.servers["srv_a"].suspension, None);
        let again = state.apply(lifted()).expect_err("lifted twice");
        assert!(again.contains("is not suspended"), "{again}");
        let unknown = state
            .apply(event(
                7,
                "server.suspended",
                ("server", "srv_gone"),
                json!({"reason": "x", "at": 11}),
            ))
            .expect_err("no such server");
        assert!(unknown.contains("does not exist"), "{unknown}");
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
        let error = state.apply(old).expect_err("incomplete");
        assert!(error.contains("missing field `token_hash`"), "{error}");
    }

    #[test]
    fn an_event_about_a_subject_of_another_type_is_refused() {
        let mut state = Projections::default();
        let mut created = node_created(1);
        created.subject_type = Some("server".into());
        let error = state.apply(created).expect_err("a server is no node");
        assert!(error.contains("the subject must be a node"), "{error}");
    }

    #[test]
    fn unknown_kinds_fail_only_in_a_projections_namespace() {
        let mut state = Projections::default();
        let plugin = event(1, "plugin.installed", ("plugin", "p"), json!({}));
        assert_eq!(state.apply(plugin), Ok(false));
        let unknown = event(2, "server.teleported", ("server", "s"), json!({}));
        assert_eq!(
            state.apply(unknown),
            Err("unknown event kind in a projection's namespace".to_owned())
        );
    }
}
