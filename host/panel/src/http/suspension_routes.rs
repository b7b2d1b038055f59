//! `/api/v1/servers/{id}/suspension`: suspending a server and lifting the
//! suspension, for administrators (`admin.servers`).
//!
//! | route | what |
//! | --- | --- |
//! | `POST /servers/{id}/suspension` `{"reason"}` | suspends it: stopped, no starts, restarts, reinstalls or console commands, read-only files (`200`, the server) |
//! | `DELETE /servers/{id}/suspension` | lifts it (`200`, the server); it stays stopped |
//!
//! A caller who may not see the server gets `404`, one who sees it without
//! `admin.servers` (its owner, a subuser) `403 forbidden`. Suspending a
//! suspended server is `409 server-suspended` (naming the reason in
//! force), lifting a suspension that is not there `409
//! server-not-suspended`; a `server.suspend` or `server.unsuspend`
//! before-hook may refuse (`403 hook-denied`). What a suspension does is
//! [`crate::servers::suspension`]'s to say.

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Authenticated;
use super::error::ApiResult;
use super::extract::ApiJson;
use super::servers_routes::{ServerBody, server_body, visible};
use crate::identity::permissions::{Gate, Permission};
use crate::servers::suspension;

/// `POST /servers/{id}/suspension`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SuspendRequest {
    /// Why, as the server's owner and subusers are shown it: one line of
    /// 1 to 512 characters.
    pub reason: String,
}

/// Suspends a server (`admin.servers`): it is stopped, cannot be started,
/// restarted, reinstalled or sent console commands, and its files are
/// read-only, until the suspension is lifted.
#[utoipa::path(
    post,
    path = "/servers/{id}/suspension",
    tag = "servers",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::AdminServers]))),
    params(("id" = String, Path, description = "The server's id")),
    request_body = SuspendRequest,
    responses(
        (status = 200, description = "Suspended: the server, with its suspension", body = ServerBody),
        (status = 403, description = "Not an administrator (forbidden), or a plugin denied it (hook-denied)"),
        (status = 404, description = "No such server"),
        (status = 409, description = "Suspended already (server-suspended), or being deleted (server-deleting)"),
        (status = 422, description = "No reason, or one that is not one line of at most 512 characters"),
    )
)]
pub(super) async fn suspend(
    auth: Authenticated,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<SuspendRequest>,
) -> ApiResult<Json<ServerBody>> {
    let (server, access) = visible(&state, &auth, &id).await?;
    auth.principal.require(Gate::ADMIN_SERVERS)?;
    let (suspended, _stop) = suspension::suspend(
        state.db(),
        state.plugins(),
        &server,
        &body.reason,
        &auth.actor,
        None,
    )
    .await?;
    // The stop, and the read-only files, reach the Agent at once.
    if let Some(node) = &suspended.node_id {
        state.agents().wake(node);
    }
    Ok(Json(server_body(&state, &suspended, &access).await?))
}

/// Lifts a server's suspension (`admin.servers`). The server stays
/// stopped: starting it is its users' call.
#[utoipa::path(
    delete,
    path = "/servers/{id}/suspension",
    tag = "servers",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::AdminServers]))),
    params(("id" = String, Path, description = "The server's id")),
    responses(
        (status = 200, description = "Lifted: the server", body = ServerBody),
        (status = 403, description = "Not an administrator (forbidden), or a plugin denied it (hook-denied)"),
        (status = 404, description = "No such server"),
        (status = 409, description = "Not suspended (server-not-suspended)"),
    )
)]
pub(super) async fn unsuspend(
    auth: Authenticated,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<ServerBody>> {
    let (server, access) = visible(&state, &auth, &id).await?;
    auth.principal.require(Gate::ADMIN_SERVERS)?;
    let lifted =
        suspension::unsuspend(state.db(), state.plugins(), &server, &auth.actor, None).await?;
    if let Some(node) = &lifted.node_id {
        state.agents().wake(node);
    }
    Ok(Json(server_body(&state, &lifted, &access).await?))
}

/// The routes of this module, relative to `/api/v1`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(suspend, unsuspend))
}
