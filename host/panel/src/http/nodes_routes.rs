//! `/api/v1/nodes` (needs `admin.nodes`): nodes, their allocations and
//! registration tokens; and `POST /api/v1/agents/register`, where an Agent
//! spends a registration token (no user authentication: the token is the
//! credential).
//!
//! Problem codes of their own: `node-name-taken`, `node-has-servers`,
//! `allocation-exists`, `allocation-assigned` (`409`);
//! `registration-token-invalid`, `registration-token-expired` (`401`),
//! `registration-token-used` (`409`).

use std::collections::BTreeSet;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::{Authenticated, client_ip};
use super::error::{ApiError, ApiResult};
use super::extract::{ApiJson, ApiQuery};
use super::pagination::{Cursor, PageParams, Pagination};
use super::request_id::RequestId;
use crate::db::Actor;
use crate::identity::permissions::{Gate, Permission};
use crate::servers::ServersError;
use crate::servers::nodes::{self, AllocationFilter, NewNode, Node, NodeUpdate, SupportedGame};
use crate::servers::registration::{self, HEARTBEAT_SECONDS, RegistrationRequest};
use axum::extract::FromRequestParts;

/// A node to create.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeCreate {
    /// Unique display name.
    pub name: String,
    /// FQDN or IP address.
    pub address: String,
    /// Memory it offers, MiB (the Agent reports the real value when it
    /// registers).
    #[serde(default)]
    pub memory_mb: u64,
    /// Disk it offers, MiB.
    #[serde(default)]
    pub disk_mb: u64,
    /// CPU it offers, percent of one core.
    #[serde(default)]
    pub cpu_percent: u64,
}

/// Changes to a node.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NodePatch {
    /// New name.
    #[serde(default)]
    pub name: Option<String>,
    /// New address.
    #[serde(default)]
    pub address: Option<String>,
    /// New memory offer; not below what its servers use.
    #[serde(default)]
    pub memory_mb: Option<u64>,
    /// New disk offer.
    #[serde(default)]
    pub disk_mb: Option<u64>,
    /// New CPU offer.
    #[serde(default)]
    pub cpu_percent: Option<u64>,
}

/// What a node's servers use.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UsageBody {
    /// Servers on it.
    pub servers: u64,
    /// Their memory, MiB.
    pub memory_mb: u64,
    /// Their disk, MiB.
    pub disk_mb: u64,
    /// Their CPU, percent.
    pub cpu_percent: u64,
}

/// A node.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NodeBody {
    /// Its id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// FQDN or IP address.
    pub address: String,
    /// Memory it offers, MiB.
    pub memory_mb: u64,
    /// Disk it offers, MiB.
    pub disk_mb: u64,
    /// CPU it offers, percent of one core.
    pub cpu_percent: u64,
    /// Whether its Agent is connected.
    pub online: bool,
    /// When its Agent was last heard from (RFC 3339).
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_seen_at: Option<OffsetDateTime>,
    /// Whether an Agent has registered.
    pub registered: bool,
    /// The Agent's id.
    pub agent_id: Option<String>,
    /// The Agent's version.
    pub agent_version: Option<String>,
    /// What the Agent can do.
    pub capabilities: Vec<String>,
    /// The games it can run.
    pub supported_games: Vec<SupportedGame>,
    /// The Agent's health endpoint.
    pub health_endpoint: Option<String>,
    /// What its servers use (on single-node reads).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<UsageBody>,
    /// When it was created (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it last changed (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl NodeBody {
    fn new(node: Node, usage: Option<nodes::Usage>) -> Self {
        NodeBody {
            registered: node.registered_at.is_some(),
            usage: usage.map(|u| UsageBody {
                servers: u.servers,
                memory_mb: u.memory_mb,
                disk_mb: u.disk_mb,
                cpu_percent: u.cpu_percent,
            }),
            id: node.id,
            name: node.name,
            address: node.address,
            memory_mb: node.memory_mb,
            disk_mb: node.disk_mb,
            cpu_percent: node.cpu_percent,
            online: node.online,
            last_seen_at: node.last_seen_at,
            agent_id: node.agent_id,
            agent_version: node.agent_version,
            capabilities: node.capabilities,
            supported_games: node.supported_games,
            health_endpoint: node.health_endpoint,
            created_at: node.created_at,
            updated_at: node.updated_at,
        }
    }
}

/// A page of nodes.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NodePage {
    /// The nodes, oldest first.
    pub items: Vec<NodeBody>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// Allocations to add: one ip, ports and ranges.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AllocationsCreate {
    /// The IP address.
    pub ip: String,
    /// Ports (`25565`) and inclusive ranges (`"25565-25570"`).
    pub ports: Vec<Value>,
}

/// One allocation.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AllocationBody {
    /// The IP address.
    pub ip: String,
    /// The port.
    pub port: u16,
    /// The server holding it.
    pub server_id: Option<String>,
}

impl From<nodes::Allocation> for AllocationBody {
    fn from(a: nodes::Allocation) -> Self {
        AllocationBody {
            ip: a.ip,
            port: a.port,
            server_id: a.server_id,
        }
    }
}

/// A list of allocations.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AllocationList {
    /// By ip and port.
    pub items: Vec<AllocationBody>,
}

/// Which allocations to list.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AllocationState {
    /// Every one.
    #[default]
    All,
    /// Not held by a server.
    Free,
    /// Held by a server.
    Assigned,
}

/// `?state=` of the allocation list.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AllocationParams {
    /// `all` (default), `free` or `assigned`.
    #[serde(default)]
    #[param(inline)]
    pub state: AllocationState,
}

/// A registration token to issue.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenCreate {
    /// Its lifetime, seconds (default 3600, at most 7 days).
    #[serde(default)]
    pub expires_in_seconds: Option<i64>,
}

/// A registration token, shown once.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TokenBody {
    /// The token's id.
    pub id: String,
    /// The node it registers.
    pub node_id: String,
    /// The secret (`capreg_…`); never shown again.
    pub token: String,
    /// When it expires (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// What a registered Agent receives (camelCase).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationBody {
    /// The node the Agent is.
    pub node_id: String,
    /// Its token (`capnode_…`) for the Agent link; never shown again.
    pub node_token: String,
    /// The Panel's configured public URL (`public-url`, else
    /// `http://<listen>`), never taken from the request; informational, as
    /// the Agent keeps the URL it registered with.
    pub panel_url: String,
    /// How often to send a heartbeat.
    pub heartbeat_seconds: u32,
}

fn not_found(id: &str) -> ServersError {
    ServersError::NotFound(format!("node {id}"))
}

/// Creates a node.
#[utoipa::path(
    post,
    path = "/nodes",
    tag = "nodes",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::AdminNodes]))),
    request_body = NodeCreate,
    responses(
        (status = 201, description = "Created", body = NodeBody),
        (status = 403, description = "A plugin's before-hook refused (hook-denied)"),
        (status = 409, description = "Name taken"),
        (status = 422, description = "Invalid fields"),
    )
)]
pub(super) async fn create(
    auth: Authenticated,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<NodeCreate>,
) -> ApiResult<(StatusCode, Json<NodeBody>)> {
    auth.principal.require(Gate::ADMIN_NODES)?;
    let node = nodes::create(
        state.db(),
        state.plugins(),
        &NewNode {
            name: body.name,
            address: body.address,
            memory_mb: body.memory_mb,
            disk_mb: body.disk_mb,
            cpu_percent: body.cpu_percent,
        },
        &auth.actor,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(NodeBody::new(node, None))))
}

/// Lists nodes, oldest first.
#[utoipa::path(
    get,
    path = "/nodes",
    tag = "nodes",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::AdminNodes]))),
    params(PageParams),
    responses(
        (status = 200, description = "A page of nodes", body = NodePage),
        (status = 422, description = "Bad limit or cursor"),
    )
)]
pub(super) async fn list(
    auth: Authenticated,
    State(state): State<AppState>,
    page: Pagination,
) -> ApiResult<Json<NodePage>> {
    auth.principal.require(Gate::ADMIN_NODES)?;
    let (items, more) = nodes::list(state.db(), page.after_key(), page.limit).await?;
    Ok(Json(NodePage {
        next_cursor: more
            .then(|| items.last().map(|n| Cursor::after(&n.id).encode()))
            .flatten(),
        items: items.into_iter().map(|n| NodeBody::new(n, None)).collect(),
    }))
}

/// Reads a node, with what its servers use.
#[utoipa::path(
    get,
    path = "/nodes/{id}",
    tag = "nodes",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::AdminNodes]))),
    params(("id" = String, Path, description = "The node's id")),
    responses(
        (status = 200, description = "The node", body = NodeBody),
        (status = 404, description = "No such node"),
    )
)]
pub(super) async fn get(
    auth: Authenticated,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<NodeBody>> {
    auth.principal.require(Gate::ADMIN_NODES)?;
    let node = nodes::get(state.db(), &id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    let usage = nodes::usage(state.db(), &id).await?;
    Ok(Json(NodeBody::new(node, Some(usage))))
}

/// Changes a node.
#[utoipa::path(
    patch,
    path = "/nodes/{id}",
    tag = "nodes",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::AdminNodes]))),
    params(("id" = String, Path, description = "The node's id")),
    request_body = NodePatch,
    responses(
        (status = 200, description = "Changed", body = NodeBody),
        (status = 404, description = "No such node"),
        (status = 409, description = "Name taken"),
        (status = 422, description = "Invalid fields, or an offer below what its servers use"),
    )
)]
pub(super) async fn update(
    auth: Authenticated,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<NodePatch>,
) -> ApiResult<Json<NodeBody>> {
    auth.principal.require(Gate::ADMIN_NODES)?;
    let node = nodes::update(
        state.db(),
        &id,
        &NodeUpdate {
            name: body.name,
            address: body.address,
            memory_mb: body.memory_mb,
            disk_mb: body.disk_mb,
            cpu_percent: body.cpu_percent,
        },
        &auth.actor,
    )
    .await?;
    let usage = nodes::usage(state.db(), &id).await?;
    Ok(Json(NodeBody::new(node, Some(usage))))
}

/// Deletes a node without servers, with its allocations.
#[utoipa::path(
    delete,
    path = "/nodes/{id}",
    tag = "nodes",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::AdminNodes]))),
    params(("id" = String, Path, description = "The node's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "A plugin's before-hook refused (hook-denied)"),
        (status = 404, description = "No such node"),
        (status = 409, description = "It still has servers (node-has-servers)"),
    )
)]
pub(super) async fn delete(
    auth: Authenticated,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    auth.principal.require(Gate::ADMIN_NODES)?;
    nodes::delete(state.db(), state.plugins(), &id, &auth.actor).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Adds allocations: one ip with ports and ranges, all or nothing.
#[utoipa::path(
    post,
    path = "/nodes/{id}/allocations",
    tag = "nodes",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::AdminNodes]))),
    params(("id" = String, Path, description = "The node's id")),
    request_body = AllocationsCreate,
    responses(
        (status = 201, description = "Added", body = AllocationList),
        (status = 404, description = "No such node"),
        (status = 409, description = "Some exist already (allocation-exists)"),
        (status = 422, description = "Bad ip or ports"),
    )
)]
pub(super) async fn add_allocations(
    auth: Authenticated,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<AllocationsCreate>,
) -> ApiResult<(StatusCode, Json<AllocationList>)> {
    auth.principal.require(Gate::ADMIN_NODES)?;
    let ports: BTreeSet<u16> = nodes::parse_ports(&body.ports).map_err(ServersError::Invalid)?;
    let added = nodes::add_allocations(state.db(), &id, &body.ip, &ports, &auth.actor).await?;
    Ok((
        StatusCode::CREATED,
        Json(AllocationList {
            items: added.into_iter().map(AllocationBody::from).collect(),
        }),
    ))
}

/// Lists a node's allocations: `?state=free`, `assigned` or `all`.
#[utoipa::path(
    get,
    path = "/nodes/{id}/allocations",
    tag = "nodes",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::AdminNodes]))),
    params(("id" = String, Path, description = "The node's id"), AllocationParams),
    responses(
        (status = 200, description = "The allocations", body = AllocationList),
        (status = 404, description = "No such node"),
        (status = 422, description = "Bad state"),
    )
)]
pub(super) async fn list_allocations(
    auth: Authenticated,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(params): ApiQuery<AllocationParams>,
) -> ApiResult<Json<AllocationList>> {
    auth.principal.require(Gate::ADMIN_NODES)?;
    if nodes::get(state.db(), &id).await?.is_none() {
        return Err(not_found(&id).into());
    }
    let filter = match params.state {
        AllocationState::All => AllocationFilter::All,
        AllocationState::Free => AllocationFilter::Free,
        AllocationState::Assigned => AllocationFilter::Assigned,
    };
    let items = nodes::list_allocations(state.db(), &id, filter).await?;
    Ok(Json(AllocationList {
        items: items.into_iter().map(AllocationBody::from).collect(),
    }))
}

/// Deletes a free allocation.
#[utoipa::path(
    delete,
    path = "/nodes/{id}/allocations/{ip}/{port}",
    tag = "nodes",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::AdminNodes]))),
    params(
        ("id" = String, Path, description = "The node's id"),
        ("ip" = String, Path, description = "The IP address"),
        ("port" = u16, Path, description = "The port"),
    ),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such allocation"),
        (status = 409, description = "A server holds it (allocation-assigned)"),
    )
)]
pub(super) async fn delete_allocation(
    auth: Authenticated,
    State(state): State<AppState>,
    Path((id, ip, port)): Path<(String, String, u16)>,
) -> ApiResult<StatusCode> {
    auth.principal.require(Gate::ADMIN_NODES)?;
    nodes::delete_allocation(state.db(), &id, &ip, port, &auth.actor).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Issues a single-use registration token for a node; the secret is shown
/// only in this answer.
#[utoipa::path(
    post,
    path = "/nodes/{id}/registration-tokens",
    tag = "nodes",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::AdminNodes]))),
    params(("id" = String, Path, description = "The node's id")),
    request_body = TokenCreate,
    responses(
        (status = 201, description = "Issued", body = TokenBody),
        (status = 404, description = "No such node"),
        (status = 422, description = "Bad lifetime"),
    )
)]
pub(super) async fn issue_token(
    auth: Authenticated,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<TokenCreate>,
) -> ApiResult<(StatusCode, Json<TokenBody>)> {
    auth.principal.require(Gate::ADMIN_NODES)?;
    let lifetime = body.expires_in_seconds.map_or(
        registration::DEFAULT_TOKEN_LIFETIME,
        time::Duration::seconds,
    );
    let issued = registration::issue_token(state.db(), &id, lifetime, &auth.actor).await?;
    Ok((
        StatusCode::CREATED,
        Json(TokenBody {
            id: issued.id,
            node_id: issued.node_id,
            token: issued.token,
            expires_at: issued.expires_at,
        }),
    ))
}

/// An unauthenticated caller as the event store records it (address and
/// request id).
pub(super) struct Anonymous {
    actor: Actor,
}

impl FromRequestParts<AppState> for Anonymous {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &AppState) -> Result<Self, ApiError> {
        Ok(Anonymous {
            actor: Actor {
                user_id: None,
                ip: client_ip(parts),
                request_id: parts
                    .extensions
                    .get::<RequestId>()
                    .map(|id| id.as_str().to_owned()),
            },
        })
    }
}

/// Registers an Agent with a registration token (no user authentication).
#[utoipa::path(
    post,
    path = "/agents/register",
    tag = "agents",
    request_body = RegistrationRequest,
    responses(
        (status = 201, description = "Registered; the node token is shown only here", body = RegistrationBody),
        (status = 401, description = "Unknown (registration-token-invalid) or expired (registration-token-expired) token"),
        (status = 409, description = "Token already used (registration-token-used)"),
        (status = 422, description = "Invalid fields"),
    )
)]
pub(super) async fn register(
    State(state): State<AppState>,
    caller: Anonymous,
    ApiJson(body): ApiJson<RegistrationRequest>,
) -> ApiResult<(StatusCode, Json<RegistrationBody>)> {
    let registered = registration::register(state.db(), &body, &caller.actor).await?;
    Ok((
        StatusCode::CREATED,
        Json(RegistrationBody {
            node_id: registered.node_id,
            node_token: registered.node_token,
            panel_url: state.config().base_url(),
            heartbeat_seconds: HEARTBEAT_SECONDS,
        }),
    ))
}

/// The node and Agent routes, relative to `/api/v1`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(get, update, delete))
        .routes(routes!(add_allocations, list_allocations))
        .routes(routes!(delete_allocation))
        .routes(routes!(issue_token))
        .routes(routes!(register))
}
