//! `/api/v1/servers/{id}/transfer(s)`: moving a server to another node,
//! for administrators (`admin.servers`).
//!
//! | route | what |
//! | --- | --- |
//! | `POST /servers/{id}/transfer` `{"node_id", "allocation"?}` | starts moving it (`202`, the transfer); the steps run on after the answer |
//! | `GET /servers/{id}/transfers` | its transfers, newest first, with their stage, bytes and reasons |
//! | `GET /servers/{id}/transfers/{transfer_id}` | one of them |
//!
//! A caller who may not see the server gets `404`, one who sees it without
//! `admin.servers` `403 forbidden`. Moving a server that is in a transfer
//! is `409 server-transferring`; a target that is the server's node, does
//! not exist, cannot run its game or has no room for it is `422` naming
//! `node_id`; a target without free allocations `409
//! no-free-allocation`; a node that is not connected `503 node-offline`.
//! What a transfer does, and what a failed one leaves, is
//! [`crate::agents::transfers`]'s and [`crate::servers::transfers`]'s to
//! say.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Authenticated;
use super::error::{ApiError, ApiResult};
use super::extract::ApiJson;
use super::servers_routes::visible;
use crate::agents::transfers::{self, TransferContext};
use crate::identity::permissions::{Gate, Permission};
use crate::servers::transfers::{self as records, Stage, Transfer, TransferAsk};

/// An address and port of the target node.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferAllocation {
    /// The address.
    pub ip: String,
    /// The port.
    pub port: u16,
}

/// `POST /servers/{id}/transfer`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerTransferRequest {
    /// The node to move the server to.
    pub node_id: String,
    /// The target's allocation to make the server's primary; absent: its
    /// first free one. The server's extra allocations get the next free
    /// ones.
    #[serde(default)]
    pub allocation: Option<TransferAllocation>,
}

/// A transfer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ServerTransferBody {
    /// Its id.
    pub id: String,
    /// The server.
    pub server_id: String,
    /// The node the server was on.
    pub from_node: String,
    /// The node it goes to.
    pub to_node: String,
    /// The target's allocations it takes, the primary first.
    pub allocations: Vec<TransferAllocation>,
    /// Whether the server was running when it began (it is started again
    /// where it ends up).
    pub was_running: bool,
    /// `running`, `done` or `failed`.
    pub state: String,
    /// How far it got: `stopping`, `sending`, `committing`, `starting`,
    /// `done`.
    pub stage: Stage,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// Bytes of the files' tar stream sent so far.
    pub sent_bytes: u64,
    /// Bytes of the whole stream.
    pub total_bytes: u64,
    /// The archive's size, once the target holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive_bytes: Option<u64>,
    /// The archive's SHA-256, once the target holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// When it began (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// When it ended (RFC 3339).
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub ended_at: Option<OffsetDateTime>,
}

impl From<Transfer> for ServerTransferBody {
    fn from(t: Transfer) -> Self {
        ServerTransferBody {
            allocations: t
                .allocations
                .into_iter()
                .map(|(ip, port)| TransferAllocation { ip, port })
                .collect(),
            id: t.id,
            server_id: t.server_id,
            from_node: t.from_node,
            to_node: t.to_node,
            was_running: t.was_running,
            state: t.state,
            stage: t.stage,
            failure: t.failure,
            sent_bytes: t.sent_bytes,
            total_bytes: t.total_bytes,
            archive_bytes: t.archive_bytes,
            sha256: t.sha256,
            started_at: t.started_at,
            ended_at: t.ended_at,
        }
    }
}

/// A server's transfers.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ServerTransferList {
    /// Newest first (at most 50).
    pub items: Vec<ServerTransferBody>,
}

/// Moves a server to another node (`admin.servers`): it is stopped if it
/// runs, its files go from its node's Agent straight to the target's, it
/// keeps its id, owner, subusers, databases and schedules, takes
/// allocations on the target, and starts there if it was running. The
/// answer comes at once; follow the transfer at
/// `/servers/{id}/transfers/{transfer_id}` or on the console.
#[utoipa::path(
    post,
    path = "/servers/{id}/transfer",
    tag = "servers",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::AdminServers]))),
    params(("id" = String, Path, description = "The server's id")),
    request_body = ServerTransferRequest,
    responses(
        (status = 202, description = "Begun: the transfer", body = ServerTransferBody),
        (status = 403, description = "Not an administrator (forbidden), or a plugin denied it (hook-denied)"),
        (status = 404, description = "No such server"),
        (status = 409, description = "In a transfer already (server-transferring), being deleted (server-deleting), installing (server-running), no free allocation on the target (no-free-allocation), the asked allocation is taken (allocation-assigned)"),
        (status = 422, description = "The target is the server's node, does not exist, cannot run its game or has no room for it; a malformed allocation"),
        (status = 503, description = "The server's node or the target is offline (node-offline), or the target serves no transfers (node-no-transfers)"),
    )
)]
pub(super) async fn transfer(
    auth: Authenticated,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ServerTransferRequest>,
) -> ApiResult<(StatusCode, Json<ServerTransferBody>)> {
    let (server, _) = visible(&state, &auth, &id).await?;
    auth.principal.require(Gate::ADMIN_SERVERS)?;
    let signer = state.file_grants().map_err(ApiError::from)?.clone();
    let context = TransferContext {
        db: state.db().clone(),
        hub: state.agents().clone(),
        signer,
    };
    let ask = TransferAsk {
        node_id: body.node_id,
        allocation: body.allocation.map(|a| (a.ip, a.port)),
    };
    let begun = transfers::begin(context, state.plugins(), &server, &ask, &auth.actor).await?;
    Ok((StatusCode::ACCEPTED, Json(begun.into())))
}

/// A server's transfers, newest first (`admin.servers`).
#[utoipa::path(
    get,
    path = "/servers/{id}/transfers",
    tag = "servers",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::AdminServers]))),
    params(("id" = String, Path, description = "The server's id")),
    responses(
        (status = 200, description = "Its transfers", body = ServerTransferList),
        (status = 403, description = "Not an administrator"),
        (status = 404, description = "No such server"),
    )
)]
pub(super) async fn list(
    auth: Authenticated,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<ServerTransferList>> {
    let (server, _) = visible(&state, &auth, &id).await?;
    auth.principal.require(Gate::ADMIN_SERVERS)?;
    let items = records::list_for_server(state.db(), &server.id, 50)
        .await
        .map_err(ApiError::from)?
        .into_iter()
        .map(ServerTransferBody::from)
        .collect();
    Ok(Json(ServerTransferList { items }))
}

/// One of a server's transfers (`admin.servers`).
#[utoipa::path(
    get,
    path = "/servers/{id}/transfers/{transfer_id}",
    tag = "servers",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::AdminServers]))),
    params(
        ("id" = String, Path, description = "The server's id"),
        ("transfer_id" = String, Path, description = "The transfer's id"),
    ),
    responses(
        (status = 200, description = "The transfer", body = ServerTransferBody),
        (status = 403, description = "Not an administrator"),
        (status = 404, description = "No such server, or no such transfer of it"),
    )
)]
pub(super) async fn get_one(
    auth: Authenticated,
    State(state): State<AppState>,
    Path((id, transfer_id)): Path<(String, String)>,
) -> ApiResult<Json<ServerTransferBody>> {
    let (server, _) = visible(&state, &auth, &id).await?;
    auth.principal.require(Gate::ADMIN_SERVERS)?;
    let found = records::get(state.db(), &transfer_id)
        .await
        .map_err(ApiError::from)?
        .filter(|t| t.server_id == server.id)
        .ok_or_else(|| ApiError::NotFound(format!("transfer {transfer_id}")))?;
    Ok(Json(found.into()))
}

/// The routes of this module, relative to `/api/v1`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(transfer))
        .routes(routes!(list))
        .routes(routes!(get_one))
}
