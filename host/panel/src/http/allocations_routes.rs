//! `/api/v1/servers/{id}/allocations`: a server's allocations (its
//! "Network"), and the administrator's limit on them.
//!
//! Every route needs a permission on the server (see
//! [`crate::servers::access`]; a caller who may not see the server gets
//! `404`, one who lacks the permission `403 forbidden`), checked before
//! anything else:
//!
//! | route | permission |
//! | --- | --- |
//! | `GET /allocations` (with the limit) | `allocation.read` |
//! | `POST /allocations` (`{ip, port}`, or `{}` for the node's first free one) | `allocation.create` |
//! | `PATCH /allocations/{ip}/{port}` (`{notes}`), `POST /allocations/{ip}/{port}/primary` | `allocation.update` |
//! | `DELETE /allocations/{ip}/{port}` (back to the node's pool) | `allocation.delete` |
//! | `PUT /servers/{id}/allocation-limit` | `admin.servers` |
//!
//! An IPv6 address is one path segment, percent-encoded (`%3A%3A1`) or not
//! (`::1`). Refusals have codes of their own (`409`):
//! `allocation-limit-reached`, `no-free-allocation`, `allocation-assigned`
//! (taken by another server, or held already), `allocation-primary` (the
//! primary cannot be removed), `server-deleting`; an allocation that is not
//! in the node's pool is a `422` naming `port`.
//!
//! The game sees the change at its next start ([`crate::servers::allocations`]);
//! the answers of an addition and of a primary switch say so
//! (`applies_at_next_start`) while the server runs.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Authenticated;
use super::error::ApiResult;
use super::extract::ApiJson;
use super::servers_routes::visible;
use crate::identity::permissions::{Gate, Permission};
use crate::servers::ServersError;
use crate::servers::allocations;
use crate::servers::nodes::Allocation;
use crate::servers::server::Server;

/// Server states in which a process runs, so that a change of the
/// allocations reaches the game only at its next start.
const RUNNING: [&str; 3] = ["starting", "running", "stopping"];

/// One allocation of the server.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ServerAllocationBody {
    /// The IP address (canonical form).
    pub ip: String,
    /// The port.
    pub port: u16,
    /// What the server's users wrote about it.
    pub notes: Option<String>,
    /// Whether it is the primary, which the game runs on (`SERVER_IP`,
    /// `SERVER_PORT`); the others are extra allocations.
    pub primary: bool,
}

impl From<Allocation> for ServerAllocationBody {
    fn from(a: Allocation) -> Self {
        ServerAllocationBody {
            ip: a.ip,
            port: a.port,
            notes: a.notes,
            primary: a.primary,
        }
    }
}

/// The server's allocations and its limit.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ServerAllocationList {
    /// The primary first, then the extra ones by ip and port.
    pub items: Vec<ServerAllocationBody>,
    /// How many allocations the server may hold besides its primary (0:
    /// the primary only).
    pub limit: u32,
}

/// An allocation just added or made primary.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ServerAllocationChanged {
    /// The allocation.
    #[serde(flatten)]
    pub allocation: ServerAllocationBody,
    /// True while the server runs: its game sees the change at its next
    /// start (restart it to apply it now).
    pub applies_at_next_start: bool,
}

/// An allocation to take from the node's pool: both fields, or neither
/// for the node's first free one.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerAllocationCreate {
    /// The IP address.
    #[serde(default)]
    pub ip: Option<String>,
    /// The port.
    #[serde(default)]
    pub port: Option<u16>,
}

/// New notes of an allocation.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerAllocationPatch {
    /// At most 255 characters on one line; `null` or empty clears them.
    pub notes: Option<String>,
}

/// A server's allocation limit.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AllocationLimitBody {
    /// How many allocations the server may hold besides its primary (0 to
    /// 100; 0: the primary only).
    pub limit: u32,
}

/// The server `id` and `gate` checked on it.
async fn server_for(
    state: &AppState,
    auth: &Authenticated,
    id: &str,
    gate: Gate,
) -> ApiResult<Server> {
    let (server, access) = visible(state, auth, id).await?;
    access.require(gate)?;
    Ok(server)
}

fn changed(server: &Server, allocation: Allocation) -> ServerAllocationChanged {
    ServerAllocationChanged {
        allocation: allocation.into(),
        applies_at_next_start: RUNNING.contains(&server.state.as_str()),
    }
}

/// Lists the server's allocations, the primary first, and its limit
/// (`allocation.read`).
#[utoipa::path(
    get,
    path = "/servers/{id}/allocations",
    tag = "allocations",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::AllocationRead]))),
    params(("id" = String, Path, description = "The server's id")),
    responses(
        (status = 200, description = "The allocations and the limit", body = ServerAllocationList),
        (status = 404, description = "No such server"),
    )
)]
pub(super) async fn list(
    auth: Authenticated,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<ServerAllocationList>> {
    let server = server_for(&state, &auth, &id, Gate::ALLOCATION_READ).await?;
    let items = allocations::list(state.db(), &server).await?;
    let limit = allocations::limit(state.db(), &server.id)
        .await
        .map_err(ServersError::from)?;
    Ok(Json(ServerAllocationList {
        items: items.into_iter().map(ServerAllocationBody::from).collect(),
        limit,
    }))
}

/// Takes a free allocation of the server's node (`allocation.create`): the
/// one named by `ip` and `port`, or with `{}` the node's first free one,
/// within the server's limit.
#[utoipa::path(
    post,
    path = "/servers/{id}/allocations",
    tag = "allocations",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::AllocationCreate]))),
    params(("id" = String, Path, description = "The server's id")),
    request_body = ServerAllocationCreate,
    responses(
        (status = 201, description = "Taken; the game sees it at its next start", body = ServerAllocationChanged),
        (status = 404, description = "No such server"),
        (status = 409, description = "At the limit (allocation-limit-reached), none free (no-free-allocation), taken (allocation-assigned), or the server is being deleted (server-deleting)"),
        (status = 422, description = "Not an address, only one of ip and port, or not in the node's pool"),
    )
)]
pub(super) async fn add(
    auth: Authenticated,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ServerAllocationCreate>,
) -> ApiResult<(StatusCode, Json<ServerAllocationChanged>)> {
    let server = server_for(&state, &auth, &id, Gate::ALLOCATION_CREATE).await?;
    let wanted = match (&body.ip, body.port) {
        (Some(ip), Some(port)) => Some((ip.as_str(), port)),
        (None, None) => None,
        (Some(_), None) => {
            return Err(ServersError::field("port", "is required with ip").into());
        }
        (None, Some(_)) => {
            return Err(ServersError::field("ip", "is required with port").into());
        }
    };
    let added = allocations::add(state.db(), &server, wanted, &auth.actor).await?;
    Ok((StatusCode::CREATED, Json(changed(&server, added))))
}

/// Writes or clears the notes of one of the server's allocations
/// (`allocation.update`).
#[utoipa::path(
    patch,
    path = "/servers/{id}/allocations/{ip}/{port}",
    tag = "allocations",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::AllocationUpdate]))),
    params(
        ("id" = String, Path, description = "The server's id"),
        ("ip" = String, Path, description = "The IP address (IPv6 percent-encoded or not)"),
        ("port" = u16, Path, description = "The port"),
    ),
    request_body = ServerAllocationPatch,
    responses(
        (status = 200, description = "Changed", body = ServerAllocationBody),
        (status = 404, description = "No such server, or the server does not hold this allocation"),
        (status = 409, description = "The server is being deleted (server-deleting)"),
        (status = 422, description = "Notes longer than 255 characters or not one line"),
    )
)]
pub(super) async fn update(
    auth: Authenticated,
    State(state): State<AppState>,
    Path((id, ip, port)): Path<(String, String, u16)>,
    ApiJson(body): ApiJson<ServerAllocationPatch>,
) -> ApiResult<Json<ServerAllocationBody>> {
    let server = server_for(&state, &auth, &id, Gate::ALLOCATION_UPDATE).await?;
    let changed = allocations::set_notes(
        state.db(),
        &server,
        &ip,
        port,
        body.notes.as_deref(),
        &auth.actor,
    )
    .await?;
    Ok(Json(changed.into()))
}

/// Makes one of the server's allocations its primary, the one the game
/// runs on (`allocation.update`). Allowed while the server runs: the game
/// moves to it at its next start.
#[utoipa::path(
    post,
    path = "/servers/{id}/allocations/{ip}/{port}/primary",
    tag = "allocations",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::AllocationUpdate]))),
    params(
        ("id" = String, Path, description = "The server's id"),
        ("ip" = String, Path, description = "The IP address (IPv6 percent-encoded or not)"),
        ("port" = u16, Path, description = "The port"),
    ),
    responses(
        (status = 200, description = "It is the primary; the game moves to it at its next start", body = ServerAllocationChanged),
        (status = 404, description = "No such server, or the server does not hold this allocation"),
        (status = 409, description = "The server is being deleted (server-deleting)"),
    )
)]
pub(super) async fn make_primary(
    auth: Authenticated,
    State(state): State<AppState>,
    Path((id, ip, port)): Path<(String, String, u16)>,
) -> ApiResult<Json<ServerAllocationChanged>> {
    let server = server_for(&state, &auth, &id, Gate::ALLOCATION_UPDATE).await?;
    let primary = allocations::set_primary(state.db(), &server, &ip, port, &auth.actor).await?;
    Ok(Json(changed(&server, primary)))
}

/// Gives one of the server's extra allocations back to its node's pool,
/// its notes cleared (`allocation.delete`). A running game keeps the port
/// until its next start.
#[utoipa::path(
    delete,
    path = "/servers/{id}/allocations/{ip}/{port}",
    tag = "allocations",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::AllocationDelete]))),
    params(
        ("id" = String, Path, description = "The server's id"),
        ("ip" = String, Path, description = "The IP address (IPv6 percent-encoded or not)"),
        ("port" = u16, Path, description = "The port"),
    ),
    responses(
        (status = 204, description = "Back in the node's pool"),
        (status = 404, description = "No such server, or the server does not hold this allocation"),
        (status = 409, description = "It is the primary (allocation-primary), or the server is being deleted (server-deleting)"),
    )
)]
pub(super) async fn remove(
    auth: Authenticated,
    State(state): State<AppState>,
    Path((id, ip, port)): Path<(String, String, u16)>,
) -> ApiResult<StatusCode> {
    let server = server_for(&state, &auth, &id, Gate::ALLOCATION_DELETE).await?;
    allocations::remove(state.db(), &server, &ip, port, &auth.actor).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sets how many allocations a server may hold besides its primary
/// (`admin.servers`); 0 allows the primary only. Allocations over a lowered
/// limit stay.
#[utoipa::path(
    put,
    path = "/servers/{id}/allocation-limit",
    tag = "allocations",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::AdminServers]))),
    params(("id" = String, Path, description = "The server's id")),
    request_body = AllocationLimitBody,
    responses(
        (status = 200, description = "The limit now", body = AllocationLimitBody),
        (status = 404, description = "No such server"),
        (status = 422, description = "Over 100"),
    )
)]
pub(super) async fn set_limit(
    auth: Authenticated,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<AllocationLimitBody>,
) -> ApiResult<Json<AllocationLimitBody>> {
    auth.principal.require(Gate::ADMIN_SERVERS)?;
    let (server, _) = visible(&state, &auth, &id).await?;
    allocations::set_limit(state.db(), &server.id, body.limit, &auth.actor).await?;
    Ok(Json(body))
}

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, add))
        .routes(routes!(update, remove))
        .routes(routes!(make_primary))
        .routes(routes!(set_limit))
}
