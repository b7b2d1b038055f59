//! `/api/v1/servers/{id}/databases`: a server's MySQL/MariaDB and
//! PostgreSQL databases; `/api/v1/database-hosts`: the database servers
//! they are created on (see [`crate::databases`]).
//!
//! Every server route needs a database permission on the server (see
//! [`crate::servers::access`]; a caller who may not see the server gets
//! `404`, one who lacks the permission `403 forbidden`), checked before
//! anything else:
//!
//! | route | permission |
//! | --- | --- |
//! | `GET /databases`, `GET /databases/{database}` | `database.read`; the password and the connection string with it only with `database.view-password` too |
//! | `POST /databases` (`201`) | `database.create` |
//! | `POST /databases/{database}/rotate-password` | `database.update` |
//! | `DELETE /databases/{database}` | `database.delete` |
//! | `PUT /servers/{id}/database-limit` | `admin.servers` |
//! | `GET`, `POST /database-hosts`, `GET`, `PUT`, `DELETE /database-hosts/{host}` | `admin.nodes` |
//!
//! Database hosts are gated by `admin.nodes`, not `settings.write`: a
//! host is infrastructure beside the nodes, registered with an address
//! and credentials and tied to the nodes whose servers may use it, so
//! whoever decides which machines run game servers decides which
//! database servers they get. `settings.write` is about how the Panel
//! itself behaves.
//!
//! Creating and changing a host connects to it first: a host that cannot
//! be reached is refused with `502 database-host-unreachable`, one that
//! refuses the user name or password with `502
//! database-host-login-refused`, and nothing is stored. A host's password
//! is never answered.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use cap_runtime::api::EventKind;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Authenticated;
use super::error::{ApiError, ApiResult, FieldError, FieldLocation};
use super::extract::ApiJson;
use super::servers_routes::visible;
use crate::databases::{
    self, DatabaseHost, DatabasesError, HostSettings, Kind, NewDatabase, ServerDatabase, names,
};
use crate::identity::permissions::{Gate, Permission};
use crate::plugins::hooks;
use crate::servers::access::ServerAccess;
use crate::servers::nodes;
use crate::servers::server::Server;

/// The longest host name.
const MAX_HOST_NAME: usize = 191;
/// The longest address.
const MAX_ADDRESS: usize = 255;
/// The longest administrative user name.
const MAX_USERNAME: usize = 80;
/// The longest administrative password.
const MAX_PASSWORD: usize = 1024;
/// The most nodes a host may name.
const MAX_NODES: usize = 1000;

impl From<DatabasesError> for ApiError {
    fn from(error: DatabasesError) -> Self {
        match error {
            DatabasesError::Db(error) => ApiError::from(error),
            other => ApiError::refused(other.code(), other.to_string()),
        }
    }
}

/// The host of a database, as its users see it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseHostRef {
    /// The host's id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// `mysql` (MySQL or MariaDB) or `postgres`.
    pub kind: Kind,
    /// Its address.
    pub host: String,
    /// Its port.
    pub port: u16,
}

impl From<&DatabaseHost> for DatabaseHostRef {
    fn from(host: &DatabaseHost) -> Self {
        DatabaseHostRef {
            id: host.id.clone(),
            name: host.name.clone(),
            kind: host.kind,
            host: host.host.clone(),
            port: host.port,
        }
    }
}

/// A database of a server.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseBody {
    /// Its id (`sdb_…`).
    pub id: String,
    /// Its name on the host: the server's prefix and the name picked.
    pub name: String,
    /// Its user's name.
    pub username: String,
    /// Its user's password: only for callers with `database.view-password`.
    pub password: Option<String>,
    /// Where its user may connect from (a MySQL host pattern, `%` for
    /// anywhere).
    pub remote: String,
    /// The host it is on.
    pub host: DatabaseHostRef,
    /// `mysql://user:password@host:port/name` (or `postgresql://…`); with
    /// the password only for callers with `database.view-password`.
    pub connection_string: String,
    /// When it was created (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When its password was last set (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// A host a new database of the server may go to.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostChoice {
    /// The host's id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// `mysql` or `postgres`.
    pub kind: Kind,
}

/// A server's databases.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseList {
    /// Oldest first.
    pub items: Vec<DatabaseBody>,
    /// The most databases the server may have (0: none).
    pub limit: u32,
    /// The prefix of the server's database names (`s<8 hex>_`).
    pub prefix: String,
    /// The hosts a new database may go to (those serving the server's
    /// node, with room).
    pub hosts: Vec<HostChoice>,
}

fn default_remote() -> String {
    "%".to_owned()
}

/// A database to create.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DatabaseCreate {
    /// The name after the server's prefix: 1 to 48 characters of
    /// `[a-z0-9_]`.
    pub name: String,
    /// Where its user may connect from: a MySQL host pattern (`%` for
    /// anywhere, the default; `10.0.0.%`; a host name), at most 255
    /// characters of letters, digits and `. % _ : / -`. PostgreSQL hosts
    /// take `%` only (their `pg_hba.conf` decides).
    #[serde(default = "default_remote")]
    pub remote: String,
    /// The host's id; default: the host serving the server's node with
    /// the fewest databases.
    #[serde(default)]
    pub host: Option<String>,
}

/// A server's database limit.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DatabaseLimit {
    /// The most databases the server may have (0 to 1000); 0 allows none.
    pub limit: u32,
}

/// A database host, as administrators see it (never its password).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseHostBody {
    /// Its id (`dbh_…`).
    pub id: String,
    /// Its name.
    pub name: String,
    /// `mysql` (MySQL or MariaDB) or `postgres`.
    pub kind: Kind,
    /// Its address.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// The administrative user the Panel connects as.
    pub username: String,
    /// The nodes whose servers may use it; empty for every node.
    pub node_ids: Vec<String>,
    /// The most databases it may hold; absent for no limit.
    pub max_databases: Option<u32>,
    /// How many databases it holds.
    pub databases: u64,
    /// When it was registered (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it was last changed (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl From<DatabaseHost> for DatabaseHostBody {
    fn from(host: DatabaseHost) -> Self {
        DatabaseHostBody {
            id: host.id,
            name: host.name,
            kind: host.kind,
            host: host.host,
            port: host.port,
            username: host.username,
            node_ids: host.node_ids,
            max_databases: host.max_databases,
            databases: host.databases,
            created_at: host.created_at,
            updated_at: host.updated_at,
        }
    }
}

/// The database hosts.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DatabaseHostList {
    /// By name.
    pub items: Vec<DatabaseHostBody>,
}

/// A database host's settings. The Panel connects with them before it
/// stores them.
#[derive(Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DatabaseHostPut {
    /// Its name for people (unique).
    pub name: String,
    /// `mysql` (MySQL or MariaDB) or `postgres`.
    pub kind: Kind,
    /// Its address: a host name or IP address, as the Panel reaches it
    /// (and as servers' connection strings name it).
    pub host: String,
    /// Its port (default 3306 for MySQL, 5432 for PostgreSQL).
    #[serde(default)]
    pub port: Option<u16>,
    /// An administrative user that may create databases and users (and
    /// grant privileges, or on PostgreSQL create roles and databases).
    pub username: String,
    /// Its password; absent: none when creating, the stored one when
    /// changing. Never shown again.
    #[serde(default)]
    pub password: Option<String>,
    /// The nodes whose servers may use it; empty (the default) for every
    /// node.
    #[serde(default)]
    pub node_ids: Vec<String>,
    /// The most databases it may hold; absent for no limit.
    #[serde(default)]
    pub max_databases: Option<u32>,
}

impl std::fmt::Debug for DatabaseHostPut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseHostPut")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("node_ids", &self.node_ids)
            .field("max_databases", &self.max_databases)
            .finish_non_exhaustive()
    }
}

fn invalid(field: &str, message: impl Into<String>) -> FieldError {
    FieldError::new(FieldLocation::Body, field, message)
}

/// The server and the caller's access, checked for `gate`.
async fn server_for(
    state: &AppState,
    auth: &Authenticated,
    id: &str,
    gate: Gate,
) -> ApiResult<(Server, ServerAccess)> {
    let (server, access) = visible(state, auth, id).await?;
    access.require(gate)?;
    Ok((server, access))
}

async fn database_of(
    state: &AppState,
    server: &Server,
    database_id: &str,
) -> ApiResult<ServerDatabase> {
    databases::get(state.db(), &server.id, database_id)
        .await?
        .ok_or_else(|| DatabasesError::NotFound(database_id.to_owned()).into())
}

async fn host_of(state: &AppState, database: &ServerDatabase) -> ApiResult<DatabaseHost> {
    databases::get_host(state.db(), &database.host_id)
        .await?
        .ok_or_else(|| DatabasesError::HostNotFound(database.host_id.clone()).into())
}

/// `database` as `access` may see it.
fn body(
    state: &AppState,
    database: ServerDatabase,
    host: &DatabaseHost,
    access: &ServerAccess,
) -> ApiResult<DatabaseBody> {
    let password = if access.passes(Gate::DATABASE_VIEW_PASSWORD) {
        Some(database.password(state.db())?)
    } else {
        None
    };
    let credentials = match &password {
        Some(password) => format!("{}:{password}", database.username),
        None => database.username.clone(),
    };
    let connection_string = format!(
        "{}://{credentials}@{}/{}",
        host.kind.scheme(),
        databases::address(&host.host, host.port),
        database.name
    );
    Ok(DatabaseBody {
        id: database.id,
        name: database.name,
        username: database.username,
        password,
        remote: database.remote,
        host: host.into(),
        connection_string,
        created_at: database.created_at,
        updated_at: database.updated_at,
    })
}

/// Lists the server's databases (`database.read`; passwords with
/// `database.view-password`).
#[utoipa::path(
    get,
    path = "/servers/{id}/databases",
    tag = "databases",
    security(("bearer" = [])),
    extensions(
        ("x-permissions" = json!([Permission::DatabaseRead])),
        ("x-permissions-visibility" = json!([Permission::DatabaseViewPassword]))
    ),
    params(("id" = String, Path, description = "The server's id")),
    responses(
        (status = 200, description = "The databases, the limit, the name prefix and the hosts a new one may go to", body = DatabaseList),
        (status = 404, description = "No such server"),
    )
)]
pub(super) async fn list(
    auth: Authenticated,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<DatabaseList>> {
    let (server, access) = server_for(&state, &auth, &id, Gate::DATABASE_READ).await?;
    let hosts = databases::list_hosts(state.db()).await?;
    let mut items = Vec::new();
    for database in databases::list(state.db(), &server.id).await? {
        let host = hosts
            .iter()
            .find(|h| h.id == database.host_id)
            .ok_or_else(|| DatabasesError::HostNotFound(database.host_id.clone()))?;
        items.push(body(&state, database, host, &access)?);
    }
    let node = server.node_id.as_deref();
    Ok(Json(DatabaseList {
        items,
        limit: databases::limit(state.db(), &server.id).await?,
        prefix: names::prefix(&server.id),
        hosts: hosts
            .iter()
            .filter(|h| h.serves(node) && !h.is_full())
            .map(|h| HostChoice {
                id: h.id.clone(),
                name: h.name.clone(),
                kind: h.kind,
            })
            .collect(),
    }))
}

/// One database (`database.read`; its password with
/// `database.view-password`).
#[utoipa::path(
    get,
    path = "/servers/{id}/databases/{database}",
    tag = "databases",
    security(("bearer" = [])),
    extensions(
        ("x-permissions" = json!([Permission::DatabaseRead])),
        ("x-permissions-visibility" = json!([Permission::DatabaseViewPassword]))
    ),
    params(
        ("id" = String, Path, description = "The server's id"),
        ("database" = String, Path, description = "The database's id"),
    ),
    responses(
        (status = 200, description = "The database", body = DatabaseBody),
        (status = 404, description = "No such server or database (database-not-found)"),
    )
)]
pub(super) async fn get(
    auth: Authenticated,
    State(state): State<AppState>,
    Path((id, database)): Path<(String, String)>,
) -> ApiResult<Json<DatabaseBody>> {
    let (server, access) = server_for(&state, &auth, &id, Gate::DATABASE_READ).await?;
    let database = database_of(&state, &server, &database).await?;
    let host = host_of(&state, &database).await?;
    Ok(Json(body(&state, database, &host, &access)?))
}

/// Creates a database and its user on a database host
/// (`database.create`): the name is the server's prefix and `name`, the
/// user name and password are generated.
#[utoipa::path(
    post,
    path = "/servers/{id}/databases",
    tag = "databases",
    security(("bearer" = [])),
    extensions(
        ("x-permissions" = json!([Permission::DatabaseCreate])),
        ("x-permissions-visibility" = json!([Permission::DatabaseViewPassword]))
    ),
    params(("id" = String, Path, description = "The server's id")),
    request_body = DatabaseCreate,
    responses(
        (status = 201, description = "Created on the host; the password only with `database.view-password`", body = DatabaseBody),
        (status = 403, description = "a plugin denied it (hook-denied)"),
        (status = 404, description = "No such server, or no such host (database-host-not-found)"),
        (status = 409, description = "The name is taken (database-name-taken), the server is at its limit (database-limit-reached), no host serves its node (no-database-host), the host named does not (database-host-not-allowed) or is full (database-host-full)"),
        (status = 422, description = "Invalid name or host pattern"),
        (status = 502, description = "The host could not be reached (database-host-unreachable), refused the Panel's login (database-host-login-refused) or a statement (database-host-failed)"),
    )
)]
pub(super) async fn create(
    auth: Authenticated,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<DatabaseCreate>,
) -> ApiResult<(StatusCode, Json<DatabaseBody>)> {
    let (server, access) = server_for(&state, &auth, &id, Gate::DATABASE_CREATE).await?;
    let remote = request.remote.trim().to_owned();
    let mut problems = Vec::new();
    if let Err(message) = names::check_name(&request.name) {
        problems.push(invalid("name", message));
    }
    if let Err(message) = names::check_remote(&remote) {
        problems.push(invalid("remote", message));
    }
    if !problems.is_empty() {
        return Err(ApiError::Validation(problems));
    }
    let existing = databases::list(state.db(), &server.id).await?;
    let limit = databases::limit(state.db(), &server.id).await?;
    if existing.len() >= limit as usize {
        return Err(DatabasesError::LimitReached {
            server: server.id.clone(),
            limit,
        }
        .into());
    }
    let name = names::database_name(&server.id, &request.name);
    if existing.iter().any(|d| d.name == name) {
        return Err(DatabasesError::NameTaken(format!(
            "the server has a database called {name} already"
        ))
        .into());
    }
    let host = databases::pick_host(
        state.db(),
        server.node_id.as_deref(),
        request.host.as_deref(),
    )
    .await?;
    if host.kind == Kind::Postgres && remote != "%" {
        return Err(ApiError::Validation(vec![invalid(
            "remote",
            format!(
                "must be % on PostgreSQL hosts ({} is one): where a role may connect from is set in the host's pg_hba.conf",
                host.name
            ),
        )]));
    }
    let new = NewDatabase {
        id: databases::new_id(),
        server_id: server.id.clone(),
        name,
        username: names::username(&server.id),
        password: names::password(),
        remote,
    };
    let created = hooks::run_before(
        state.plugins(),
        hooks::event(
            EventKind::DatabaseCreate,
            databases::hook_payload(
                &new.id,
                &server.id,
                &new.name,
                &host,
                &new.username,
                &new.remote,
            ),
            &auth.actor,
        ),
    )
    .await?;
    let database = databases::create(state.db(), &host, &new, &auth.actor).await?;
    hooks::spawn_after(state.plugins(), created);
    let host = databases::get_host(state.db(), &host.id)
        .await?
        .unwrap_or(host);
    Ok((
        StatusCode::CREATED,
        Json(body(&state, database, &host, &access)?),
    ))
}

/// Gives the database's user a new random password, on its host
/// (`database.update`).
#[utoipa::path(
    post,
    path = "/servers/{id}/databases/{database}/rotate-password",
    tag = "databases",
    security(("bearer" = [])),
    extensions(
        ("x-permissions" = json!([Permission::DatabaseUpdate])),
        ("x-permissions-visibility" = json!([Permission::DatabaseViewPassword]))
    ),
    params(
        ("id" = String, Path, description = "The server's id"),
        ("database" = String, Path, description = "The database's id"),
    ),
    responses(
        (status = 200, description = "The database with its new password (shown with `database.view-password`)", body = DatabaseBody),
        (status = 404, description = "No such server or database (database-not-found)"),
        (status = 502, description = "The host could not be reached or refused; the old password stays"),
    )
)]
pub(super) async fn rotate_password(
    auth: Authenticated,
    State(state): State<AppState>,
    Path((id, database)): Path<(String, String)>,
) -> ApiResult<Json<DatabaseBody>> {
    let (server, access) = server_for(&state, &auth, &id, Gate::DATABASE_UPDATE).await?;
    let database = database_of(&state, &server, &database).await?;
    let rotated = databases::rotate_password(state.db(), &database, &auth.actor).await?;
    let host = host_of(&state, &rotated).await?;
    Ok(Json(body(&state, rotated, &host, &access)?))
}

/// Drops the database and its user on the host (`database.delete`).
#[utoipa::path(
    delete,
    path = "/servers/{id}/databases/{database}",
    tag = "databases",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::DatabaseDelete]))),
    params(
        ("id" = String, Path, description = "The server's id"),
        ("database" = String, Path, description = "The database's id"),
    ),
    responses(
        (status = 204, description = "Dropped on the host, and gone"),
        (status = 403, description = "a plugin denied it (hook-denied)"),
        (status = 404, description = "No such server or database (database-not-found)"),
        (status = 502, description = "The host could not be reached or refused: nothing was deleted"),
    )
)]
pub(super) async fn delete(
    auth: Authenticated,
    State(state): State<AppState>,
    Path((id, database)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let (server, _) = server_for(&state, &auth, &id, Gate::DATABASE_DELETE).await?;
    let database = database_of(&state, &server, &database).await?;
    let host = host_of(&state, &database).await?;
    let event = hooks::run_before(
        state.plugins(),
        hooks::event(
            EventKind::DatabaseDelete,
            databases::hook_payload(
                &database.id,
                &server.id,
                &database.name,
                &host,
                &database.username,
                &database.remote,
            ),
            &auth.actor,
        ),
    )
    .await?;
    databases::delete(state.db(), &database, &auth.actor).await?;
    hooks::spawn_after(state.plugins(), event);
    Ok(StatusCode::NO_CONTENT)
}

/// Sets a server's database limit (`admin.servers`); 0 allows none.
/// Databases over a lowered limit stay.
#[utoipa::path(
    put,
    path = "/servers/{id}/database-limit",
    tag = "databases",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::AdminServers]))),
    params(("id" = String, Path, description = "The server's id")),
    request_body = DatabaseLimit,
    responses(
        (status = 200, description = "The limit now", body = DatabaseLimit),
        (status = 404, description = "No such server"),
        (status = 422, description = "Over 1000"),
    )
)]
pub(super) async fn set_limit(
    auth: Authenticated,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<DatabaseLimit>,
) -> ApiResult<Json<DatabaseLimit>> {
    auth.principal.require(Gate::ADMIN_SERVERS)?;
    let (server, _) = visible(&state, &auth, &id).await?;
    if request.limit > databases::MAX_LIMIT {
        return Err(ApiError::Validation(vec![invalid(
            "limit",
            format!("must be 0 to {}", databases::MAX_LIMIT),
        )]));
    }
    databases::set_limit(state.db(), &server.id, request.limit, &auth.actor).await?;
    Ok(Json(request))
}

// ------------------------------------------------------------- hosts

/// Checks `request` and makes the settings to store; `stored` is the
/// host's current password (changing a host without a password keeps
/// it). The second value says whether the password is new.
async fn settings(
    state: &AppState,
    request: DatabaseHostPut,
    stored: Option<String>,
) -> ApiResult<(HostSettings, bool)> {
    let mut problems = Vec::new();
    let name = request.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > MAX_HOST_NAME || name.chars().any(char::is_control)
    {
        problems.push(invalid(
            "name",
            format!("must be 1 to {MAX_HOST_NAME} characters without control characters"),
        ));
    }
    let host = request.host.trim().to_owned();
    if host.is_empty()
        || host.len() > MAX_ADDRESS
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:_".contains(&b))
    {
        problems.push(invalid(
            "host",
            "must be a host name or IP address (letters, digits, `.`, `-`, `:`; no scheme or port)",
        ));
    }
    let port = request.port.unwrap_or(match request.kind {
        Kind::MySql => 3306,
        Kind::Postgres => 5432,
    });
    if port == 0 {
        problems.push(invalid("port", "must be 1 to 65535"));
    }
    let username = request.username.trim().to_owned();
    if username.is_empty()
        || username.chars().count() > MAX_USERNAME
        || username.chars().any(char::is_control)
    {
        problems.push(invalid(
            "username",
            format!("must be 1 to {MAX_USERNAME} characters without control characters"),
        ));
    }
    let changed = request.password.is_some();
    let password = match (request.password, stored) {
        (Some(password), _) => password,
        (None, Some(stored)) => stored,
        (None, None) => String::new(),
    };
    if password.len() > MAX_PASSWORD || password.chars().any(char::is_control) {
        problems.push(invalid(
            "password",
            format!("must be at most {MAX_PASSWORD} bytes without control characters"),
        ));
    }
    let mut node_ids: Vec<String> = Vec::new();
    if request.node_ids.len() > MAX_NODES {
        problems.push(invalid(
            "nodeIds",
            format!("may name at most {MAX_NODES} nodes"),
        ));
    } else {
        for (i, node) in request.node_ids.iter().enumerate() {
            let node = node.trim();
            if node_ids.iter().any(|n| n == node) {
                continue;
            }
            if node.is_empty() || nodes::get(state.db(), node).await?.is_none() {
                problems.push(invalid(
                    &format!("nodeIds[{i}]"),
                    format!("no node has the id {node:?}"),
                ));
            } else {
                node_ids.push(node.to_owned());
            }
        }
    }
    if request
        .max_databases
        .is_some_and(|max| max > databases::MAX_HOST_DATABASES)
    {
        problems.push(invalid(
            "maxDatabases",
            format!("must be at most {}", databases::MAX_HOST_DATABASES),
        ));
    }
    if !problems.is_empty() {
        return Err(ApiError::Validation(problems));
    }
    Ok((
        HostSettings {
            name,
            kind: request.kind,
            host,
            port,
            username,
            password,
            node_ids,
            max_databases: request.max_databases,
        },
        changed,
    ))
}

/// Lists the database hosts (`admin.nodes`).
#[utoipa::path(
    get,
    path = "/database-hosts",
    tag = "databases",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::AdminNodes]))),
    responses(
        (status = 200, description = "The hosts, by name, with how many databases each holds", body = DatabaseHostList),
    )
)]
pub(super) async fn list_hosts(
    auth: Authenticated,
    State(state): State<AppState>,
) -> ApiResult<Json<DatabaseHostList>> {
    auth.principal.require(Gate::ADMIN_NODES)?;
    let items = databases::list_hosts(state.db()).await?;
    Ok(Json(DatabaseHostList {
        items: items.into_iter().map(DatabaseHostBody::from).collect(),
    }))
}

/// One database host (`admin.nodes`).
#[utoipa::path(
    get,
    path = "/database-hosts/{host}",
    tag = "databases",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::AdminNodes]))),
    params(("host" = String, Path, description = "The host's id")),
    responses(
        (status = 200, description = "The host", body = DatabaseHostBody),
        (status = 404, description = "No such host (database-host-not-found)"),
    )
)]
pub(super) async fn get_host(
    auth: Authenticated,
    State(state): State<AppState>,
    Path(host): Path<String>,
) -> ApiResult<Json<DatabaseHostBody>> {
    auth.principal.require(Gate::ADMIN_NODES)?;
    let found = databases::get_host(state.db(), &host)
        .await?
        .ok_or(DatabasesError::HostNotFound(host))?;
    Ok(Json(found.into()))
}

/// Registers a database host (`admin.nodes`), once the Panel connected to
/// it with the settings given.
#[utoipa::path(
    post,
    path = "/database-hosts",
    tag = "databases",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::AdminNodes]))),
    request_body = DatabaseHostPut,
    responses(
        (status = 201, description = "Registered", body = DatabaseHostBody),
        (status = 409, description = "The name is taken (database-host-name-taken)"),
        (status = 422, description = "Invalid fields, or a node that does not exist"),
        (status = 502, description = "The host could not be reached (database-host-unreachable) or refused the user name or password (database-host-login-refused)"),
    )
)]
pub(super) async fn create_host(
    auth: Authenticated,
    State(state): State<AppState>,
    ApiJson(request): ApiJson<DatabaseHostPut>,
) -> ApiResult<(StatusCode, Json<DatabaseHostBody>)> {
    auth.principal.require(Gate::ADMIN_NODES)?;
    let (settings, _) = settings(&state, request, None).await?;
    databases::test_connection(&settings).await?;
    let host = databases::create_host(state.db(), &settings, &auth.actor).await?;
    Ok((StatusCode::CREATED, Json(host.into())))
}

/// Changes a database host (`admin.nodes`), once the Panel connected to
/// it with the new settings; without `password`, the stored one is kept.
/// Its databases stay where they are: a new address must reach the same
/// server.
#[utoipa::path(
    put,
    path = "/database-hosts/{host}",
    tag = "databases",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::AdminNodes]))),
    params(("host" = String, Path, description = "The host's id")),
    request_body = DatabaseHostPut,
    responses(
        (status = 200, description = "Changed", body = DatabaseHostBody),
        (status = 404, description = "No such host (database-host-not-found)"),
        (status = 409, description = "The name is taken (database-host-name-taken)"),
        (status = 422, description = "Invalid fields, a node that does not exist, or a new kind for a host that holds databases"),
        (status = 502, description = "The host could not be reached or refused the user name or password"),
    )
)]
pub(super) async fn update_host(
    auth: Authenticated,
    State(state): State<AppState>,
    Path(host): Path<String>,
    ApiJson(request): ApiJson<DatabaseHostPut>,
) -> ApiResult<Json<DatabaseHostBody>> {
    auth.principal.require(Gate::ADMIN_NODES)?;
    let current = databases::get_host(state.db(), &host)
        .await?
        .ok_or_else(|| DatabasesError::HostNotFound(host.clone()))?;
    if request.kind != current.kind && current.databases > 0 {
        return Err(ApiError::Validation(vec![invalid(
            "kind",
            format!(
                "cannot change while the host holds {} databases",
                current.databases
            ),
        )]));
    }
    let stored = current.endpoint(state.db())?.password;
    let (settings, changed) = settings(&state, request, Some(stored)).await?;
    databases::test_connection(&settings).await?;
    let updated =
        databases::update_host(state.db(), &current.id, &settings, changed, &auth.actor).await?;
    Ok(Json(updated.into()))
}

/// Removes a database host (`admin.nodes`); refused while it holds
/// databases.
#[utoipa::path(
    delete,
    path = "/database-hosts/{host}",
    tag = "databases",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::AdminNodes]))),
    params(("host" = String, Path, description = "The host's id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such host (database-host-not-found)"),
        (status = 409, description = "It holds databases; `detail` says how many (database-host-in-use)"),
    )
)]
pub(super) async fn delete_host(
    auth: Authenticated,
    State(state): State<AppState>,
    Path(host): Path<String>,
) -> ApiResult<StatusCode> {
    auth.principal.require(Gate::ADMIN_NODES)?;
    databases::delete_host(state.db(), &host, &auth.actor).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get, delete))
        .routes(routes!(rotate_password))
        .routes(routes!(set_limit))
        .routes(routes!(list_hosts, create_host))
        .routes(routes!(get_host, update_host, delete_host))
}
