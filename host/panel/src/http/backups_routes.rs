//! `/api/v1/servers/{id}/backups`: a server's backups, and the
//! administrator's settings for them.
//!
//! Every server route needs a backup permission on the server (see
//! [`crate::servers::access`]; a caller who may not see the server gets
//! `404`, one who lacks the permission `403 forbidden`), checked before
//! anything else:
//!
//! | route | permission |
//! | --- | --- |
//! | `GET /backups`, `GET /backups/{backup}` | `backup.read` |
//! | `POST /backups` (`202`: the Agent makes it) | `backup.create` |
//! | `DELETE /backups/{backup}`, `POST /backups/{backup}/lock` (toggle) | `backup.delete` |
//! | `POST /backups/{backup}/restore` (`202`; `409 server-suspended` while the server is suspended) | `backup.restore` |
//! | `POST /backups/{backup}/download` (a signed URL) | `backup.download` |
//! | `PUT /servers/{id}/backup-limit` | `admin.servers` |
//! | `GET`, `PUT`, `DELETE /backup-storage` (S3 settings) | `settings.read`, `settings.write` |
//!
//! Creating and restoring are asynchronous: the answer is the backup as
//! recorded (`state: pending`, or `restore.state: running`), and the
//! Agent's report moves it on (see [`crate::backups`]). Downloads never
//! pass through the Panel: a backup on a node's disk is served by its
//! Agent with a grant the Panel signed (minutes long, for that backup
//! only), one in S3 by the bucket with a presigned URL. A node that is not
//! connected answers `503 node-offline` where the Agent is needed.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use cap_protocol::backups::{BackupOp, BackupRequest, BackupTarget, S3Target};
use cap_protocol::files::{FileScope, GrantOp};
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
use crate::agents::backups::{self as jobs, BackupAsk, BackupJobError};
use crate::backups::{self, Backup, BackupsError, storage};
use crate::files::{self, GRANT_TTL};
use crate::identity::permissions::{Gate, Permission};
use crate::plugins::hooks;
use crate::servers::server::Server;
use crate::servers::{ServersError, suspension};
use cap_runtime::api::EventKind;

pub use crate::agents::backups::{MAX_IGNORE_BYTES, MAX_IGNORE_LINES, MAX_NAME};
/// Server states in which a restore may run.
const RESTORABLE: [&str; 3] = ["offline", "crashed", "install-failed"];

impl From<BackupsError> for ApiError {
    fn from(error: BackupsError) -> Self {
        match error {
            BackupsError::Db(error) => ApiError::from(ServersError::from(error)),
            other => ApiError::refused(other.code(), other.to_string()),
        }
    }
}

impl From<BackupJobError> for ApiError {
    fn from(error: BackupJobError) -> Self {
        match error {
            BackupJobError::Invalid { field, message } => invalid(field, message),
            BackupJobError::Backups(error) => error.into(),
            BackupJobError::Files(error) => error.into(),
            BackupJobError::HookDenied(denied) => denied.into(),
            BackupJobError::Servers(error) => error.into(),
        }
    }
}

/// A backup.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupBody {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its `.pteroignore` lines.
    pub ignored: Vec<String>,
    /// `pending` (the Agent is making it), `done` or `failed`.
    pub state: String,
    /// Lowercase hex SHA-256 of the archive, once done.
    pub sha256: Option<String>,
    /// The archive's size in bytes, once done.
    pub bytes: u64,
    /// Locked against deletion (by users and by rotation).
    pub locked: bool,
    /// Where the archive is: `local` (the node's disk) or `s3`.
    pub target: String,
    /// Why it failed.
    pub failure: Option<String>,
    /// The last restore from it, if any.
    pub restore: Option<RestoreBody>,
    /// When it was asked for (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it was done or failed (RFC 3339).
    #[serde(with = "time::serde::rfc3339::option")]
    pub completed_at: Option<OffsetDateTime>,
}

/// A restore's state.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoreBody {
    /// `running`, `done` or `failed`.
    pub state: String,
    /// Why it failed; the server's files are as they were unless it says
    /// otherwise.
    pub failure: Option<String>,
    /// When it ended (RFC 3339).
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
}

impl From<Backup> for BackupBody {
    fn from(backup: Backup) -> Self {
        BackupBody {
            restore: backup.restore_state.clone().map(|state| RestoreBody {
                state,
                failure: backup.restore_failure.clone(),
                finished_at: backup.restored_at,
            }),
            id: backup.id,
            name: backup.name,
            ignored: backup.ignored,
            state: backup.state,
            sha256: backup.sha256,
            bytes: backup.bytes,
            locked: backup.locked,
            target: backup.target,
            failure: backup.failure,
            created_at: backup.created_at,
            completed_at: backup.completed_at,
        }
    }
}

/// A server's backups.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupList {
    /// Newest first.
    pub items: Vec<BackupBody>,
    /// The most backups the server keeps (0: backups are off); pending and
    /// done ones count, failed ones do not.
    pub limit: u32,
}

/// A backup to make.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackupCreate {
    /// Its name (at most 191 characters); default: the date and time.
    #[serde(default)]
    pub name: Option<String>,
    /// Paths to leave out, as a `.pteroignore` file: one `.gitignore`
    /// pattern a line (`*.log`, `/cache/`, `!keep.log`), matched from the
    /// server's directory.
    #[serde(default)]
    pub ignored: String,
    /// Lock it against deletion from the start.
    #[serde(default)]
    pub locked: bool,
}

/// A restore.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RestoreRequest {
    /// Remove every file of the server first (once the archive has been
    /// read whole and verified); otherwise the backup's files replace
    /// files of the same name and the rest stays.
    #[serde(default)]
    pub truncate: bool,
}

/// A signed URL to download a backup.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupUrl {
    /// `GET` it (with `Range` requests): the node's Agent, or the bucket.
    pub url: String,
    /// When it can no longer start a download (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// A server's backup limit.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackupLimit {
    /// The most backups the server keeps (0 to 1000); 0 turns backups off.
    pub limit: u32,
}

/// The S3-compatible storage backups go to, as shown.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageBody {
    /// The endpoint URL.
    pub endpoint: String,
    /// The region.
    pub region: String,
    /// The bucket.
    pub bucket: String,
    /// The key prefix.
    pub prefix: String,
    /// The access key id.
    pub access_key_id: String,
    /// Path-style URLs.
    pub path_style: bool,
    /// Whether a secret key is stored (it is never shown).
    pub has_secret: bool,
    /// When they were set (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// New storage settings.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StoragePut {
    /// The endpoint URL (`https://s3.eu-central-1.amazonaws.com`,
    /// `http://minio.internal:9000`).
    pub endpoint: String,
    /// The region (`us-east-1` when the storage does not care).
    pub region: String,
    /// The bucket (it must exist).
    pub bucket: String,
    /// A key prefix inside the bucket.
    #[serde(default)]
    pub prefix: String,
    /// The access key id.
    pub access_key_id: String,
    /// The secret key: absent keeps the stored one.
    #[serde(default)]
    pub secret_access_key: Option<String>,
    /// Path-style URLs (MinIO and most self-hosted storage need them).
    #[serde(default)]
    pub path_style: bool,
}

fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::Validation(vec![FieldError::new(FieldLocation::Body, field, message)])
}

/// The server and the caller's access, checked for `gate`.
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

async fn backup_of(state: &AppState, server: &Server, backup_id: &str) -> ApiResult<Backup> {
    backups::get(state.db(), &server.id, backup_id)
        .await
        .map_err(BackupsError::from)?
        .ok_or_else(|| BackupsError::NotFound(backup_id.to_owned()).into())
}

/// The node of `server`, connected.
fn connected_node(state: &AppState, server: &Server) -> ApiResult<String> {
    Ok(jobs::connected_node(state.agents(), server)?)
}

/// The target `backup` was made for.
async fn target_of(state: &AppState, backup: &Backup) -> ApiResult<BackupTarget> {
    Ok(jobs::target_of(state.db(), backup).await?)
}

fn send(state: &AppState, node: &str, request: BackupRequest) -> ApiResult<()> {
    Ok(jobs::send(state.agents(), node, request)?)
}

/// Lists the server's backups (`backup.read`).
#[utoipa::path(
    get,
    path = "/servers/{id}/backups",
    tag = "backups",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::BackupRead]))),
    params(("id" = String, Path, description = "The server's id")),
    responses(
        (status = 200, description = "The backups, newest first, and the limit", body = BackupList),
        (status = 404, description = "No such server"),
    )
)]
pub(super) async fn list(
    auth: Authenticated,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<BackupList>> {
    let server = server_for(&state, &auth, &id, Gate::BACKUP_READ).await?;
    let items = backups::list(state.db(), &server.id)
        .await
        .map_err(BackupsError::from)?;
    let limit = backups::limit(state.db(), &server.id)
        .await
        .map_err(BackupsError::from)?;
    Ok(Json(BackupList {
        items: items.into_iter().map(BackupBody::from).collect(),
        limit,
    }))
}

/// One backup (`backup.read`).
#[utoipa::path(
    get,
    path = "/servers/{id}/backups/{backup}",
    tag = "backups",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::BackupRead]))),
    params(
        ("id" = String, Path, description = "The server's id"),
        ("backup" = String, Path, description = "The backup's id"),
    ),
    responses(
        (status = 200, description = "The backup", body = BackupBody),
        (status = 404, description = "No such server or backup"),
    )
)]
pub(super) async fn get(
    auth: Authenticated,
    State(state): State<AppState>,
    Path((id, backup)): Path<(String, String)>,
) -> ApiResult<Json<BackupBody>> {
    let server = server_for(&state, &auth, &id, Gate::BACKUP_READ).await?;
    Ok(Json(backup_of(&state, &server, &backup).await?.into()))
}

/// Starts a backup of the server's directory (`backup.create`). At the
/// server's limit, the oldest unlocked complete backup is deleted first.
#[utoipa::path(
    post,
    path = "/servers/{id}/backups",
    tag = "backups",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::BackupCreate]))),
    params(("id" = String, Path, description = "The server's id")),
    request_body = BackupCreate,
    responses(
        (status = 202, description = "Asked of the Agent: `pending` until it reports", body = BackupBody),
        (status = 409, description = "Backups are off for the server, it is at its limit with every backup locked, or a backup or restore of it runs (`backup-busy`)"),
        (status = 404, description = "No such server"),
        (status = 503, description = "The node is offline"),
    )
)]
pub(super) async fn create(
    auth: Authenticated,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<BackupCreate>,
) -> ApiResult<(StatusCode, Json<BackupBody>)> {
    let server = server_for(&state, &auth, &id, Gate::BACKUP_CREATE).await?;
    let ask = BackupAsk {
        name: body.name,
        ignored: body.ignored,
        locked: body.locked,
    };
    let started = jobs::start(
        state.db(),
        state.agents(),
        state.plugins(),
        &server,
        &ask,
        &auth.actor,
    )
    .await?;
    for event in started.after {
        hooks::spawn_after(state.plugins(), event);
    }
    Ok((StatusCode::ACCEPTED, Json(started.backup.into())))
}

/// Deletes a backup and its archive (`backup.delete`); a locked one is
/// refused.
#[utoipa::path(
    delete,
    path = "/servers/{id}/backups/{backup}",
    tag = "backups",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::BackupDelete]))),
    params(
        ("id" = String, Path, description = "The server's id"),
        ("backup" = String, Path, description = "The backup's id"),
    ),
    responses(
        (status = 204, description = "Deleted"),
        (status = 409, description = "The backup is locked, pending, or being restored"),
        (status = 404, description = "No such server or backup"),
        (status = 503, description = "The node holding the archive is offline"),
    )
)]
pub(super) async fn delete(
    auth: Authenticated,
    State(state): State<AppState>,
    Path((id, backup)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let server = server_for(&state, &auth, &id, Gate::BACKUP_DELETE).await?;
    let backup = backup_of(&state, &server, &backup).await?;
    if backup.locked {
        return Err(BackupsError::Locked(backup.id).into());
    }
    if backup.state == backups::state::PENDING {
        return Err(BackupsError::NotComplete {
            id: backup.id,
            state: backup.state,
        }
        .into());
    }
    if backup.restoring() {
        return Err(BackupsError::Busy("restore").into());
    }
    let event = jobs::before_delete(state.plugins(), &backup, &auth.actor).await?;
    jobs::remove(
        state.db(),
        state.agents(),
        &server,
        &backup,
        false,
        &auth.actor,
    )
    .await?;
    hooks::spawn_after(state.plugins(), event);
    Ok(StatusCode::NO_CONTENT)
}

/// Locks a backup against deletion, or unlocks a locked one
/// (`backup.delete`).
#[utoipa::path(
    post,
    path = "/servers/{id}/backups/{backup}/lock",
    tag = "backups",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::BackupDelete]))),
    params(
        ("id" = String, Path, description = "The server's id"),
        ("backup" = String, Path, description = "The backup's id"),
    ),
    responses(
        (status = 200, description = "The backup, locked or unlocked", body = BackupBody),
        (status = 404, description = "No such server or backup"),
    )
)]
pub(super) async fn lock(
    auth: Authenticated,
    State(state): State<AppState>,
    Path((id, backup)): Path<(String, String)>,
) -> ApiResult<Json<BackupBody>> {
    let server = server_for(&state, &auth, &id, Gate::BACKUP_DELETE).await?;
    let backup = backup_of(&state, &server, &backup).await?;
    backups::set_locked(
        state.db(),
        &server.id,
        &backup.id,
        !backup.locked,
        &auth.actor,
    )
    .await
    .map_err(BackupsError::from)?;
    Ok(Json(backup_of(&state, &server, &backup.id).await?.into()))
}

/// Restores a backup into the server's directory (`backup.restore`); the
/// server must be stopped. The archive is verified against its SHA-256
/// before any file changes.
#[utoipa::path(
    post,
    path = "/servers/{id}/backups/{backup}/restore",
    tag = "backups",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::BackupRestore]))),
    params(
        ("id" = String, Path, description = "The server's id"),
        ("backup" = String, Path, description = "The backup's id"),
    ),
    request_body = RestoreRequest,
    responses(
        (status = 202, description = "Asked of the Agent: `restore.state` is `running` until it reports", body = BackupBody),
        (status = 409, description = "The backup is not complete, the server is running or suspended, or a backup or restore runs"),
        (status = 404, description = "No such server or backup"),
        (status = 503, description = "The node is offline"),
    )
)]
pub(super) async fn restore(
    auth: Authenticated,
    State(state): State<AppState>,
    Path((id, backup)): Path<(String, String)>,
    ApiJson(body): ApiJson<RestoreRequest>,
) -> ApiResult<(StatusCode, Json<BackupBody>)> {
    let server = server_for(&state, &auth, &id, Gate::BACKUP_RESTORE).await?;
    // A restore writes the server's files, which a suspension makes
    // read-only (creating and downloading backups only read them).
    if let Some(suspended) = &server.suspension {
        return Err(suspension::refusal(&server.id, suspended).into());
    }
    let backup = backup_of(&state, &server, &backup).await?;
    let sha256 = match (&backup.sha256, backup.state.as_str()) {
        (Some(sha256), backups::state::DONE) => sha256.clone(),
        _ => {
            return Err(BackupsError::NotComplete {
                id: backup.id,
                state: backup.state,
            }
            .into());
        }
    };
    let node = connected_node(&state, &server)?;
    if !RESTORABLE.contains(&server.state.as_str()) {
        return Err(BackupsError::ServerRunning(server.state.clone()).into());
    }
    let all = backups::list(state.db(), &server.id)
        .await
        .map_err(BackupsError::from)?;
    if let Some(running) = backups::running(&all) {
        return Err(BackupsError::Busy(running).into());
    }
    let target = target_of(&state, &backup).await?;
    let event = hooks::run_before(
        state.plugins(),
        hooks::event(
            EventKind::BackupRestore,
            backups::hook_payload(&backup),
            &auth.actor,
        ),
    )
    .await?;
    backups::restore_started(
        state.db(),
        &server.id,
        &backup.id,
        body.truncate,
        &auth.actor,
    )
    .await
    .map_err(BackupsError::from)?;
    let request = BackupRequest {
        backup_id: backup.id.clone(),
        server_id: server.id.clone(),
        scope: FileScope {
            denylist: Vec::new(),
            disk_mb: server.limits.disk_mb,
            read_only: false,
        },
        op: BackupOp::Restore {
            target,
            sha256,
            truncate: body.truncate,
        },
    };
    if let Err(error) = send(&state, &node, request) {
        let _ = backups::restore_finished(
            state.db(),
            &server.id,
            &backup.id,
            Some("the request could not be sent to the node"),
            &auth.actor,
        )
        .await;
        return Err(error);
    }
    hooks::spawn_after(state.plugins(), event);
    Ok((
        StatusCode::ACCEPTED,
        Json(backup_of(&state, &server, &backup.id).await?.into()),
    ))
}

/// A signed URL to download a backup's archive (`backup.download`): from
/// its node's Agent, or presigned on the bucket.
#[utoipa::path(
    post,
    path = "/servers/{id}/backups/{backup}/download",
    tag = "backups",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::BackupDownload]))),
    params(
        ("id" = String, Path, description = "The server's id"),
        ("backup" = String, Path, description = "The backup's id"),
    ),
    responses(
        (status = 200, description = "The URL", body = BackupUrl),
        (status = 409, description = "The backup is not complete"),
        (status = 404, description = "No such server or backup"),
        (status = 503, description = "The node holding the archive is offline or serves no transfers"),
    )
)]
pub(super) async fn download(
    auth: Authenticated,
    State(state): State<AppState>,
    Path((id, backup)): Path<(String, String)>,
) -> ApiResult<Json<BackupUrl>> {
    let server = server_for(&state, &auth, &id, Gate::BACKUP_DOWNLOAD).await?;
    let backup = backup_of(&state, &server, &backup).await?;
    if backup.state != backups::state::DONE {
        return Err(BackupsError::NotComplete {
            id: backup.id,
            state: backup.state,
        }
        .into());
    }
    match target_of(&state, &backup).await? {
        BackupTarget::S3(s3) => {
            let expires_at = OffsetDateTime::now_utc() + GRANT_TTL;
            let url = storage::presigned_get(&s3, &server.id, &backup.id, GRANT_TTL).await?;
            Ok(Json(BackupUrl { url, expires_at }))
        }
        BackupTarget::Local => {
            // The archive is on the node that made it.
            let on_node = Server {
                node_id: Some(backup.node_id.clone()),
                ..server
            };
            let signer = state.file_grants().map_err(BackupsError::from)?;
            let url = files::grant(
                state.agents(),
                signer,
                &on_node,
                FileScope::default(),
                auth.principal.user_id(),
                files::Transfer {
                    op: GrantOp::BackupDownload,
                    path: &backup.id,
                    size: None,
                },
            )?;
            Ok(Json(BackupUrl {
                url: url.url,
                expires_at: url.expires_at,
            }))
        }
    }
}

/// Sets a server's backup limit (`admin.servers`); 0 turns its backups
/// off. Backups over a lowered limit stay until the next backup rotates
/// them out.
#[utoipa::path(
    put,
    path = "/servers/{id}/backup-limit",
    tag = "backups",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::AdminServers]))),
    params(("id" = String, Path, description = "The server's id")),
    request_body = BackupLimit,
    responses(
        (status = 200, description = "The limit now", body = BackupLimit),
        (status = 404, description = "No such server"),
    )
)]
pub(super) async fn set_limit(
    auth: Authenticated,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<BackupLimit>,
) -> ApiResult<Json<BackupLimit>> {
    auth.principal.require(Gate::ADMIN_SERVERS)?;
    let (server, _) = visible(&state, &auth, &id).await?;
    if body.limit > backups::MAX_LIMIT {
        return Err(invalid(
            "limit",
            format!("must be 0 to {}", backups::MAX_LIMIT),
        ));
    }
    backups::set_limit(state.db(), &server.id, body.limit, &auth.actor)
        .await
        .map_err(BackupsError::from)?;
    Ok(Json(body))
}

fn storage_body(target: S3Target, updated_at: OffsetDateTime) -> StorageBody {
    StorageBody {
        has_secret: !target.secret_access_key.is_empty(),
        endpoint: target.endpoint,
        region: target.region,
        bucket: target.bucket,
        prefix: target.prefix,
        access_key_id: target.access_key_id,
        path_style: target.path_style,
        updated_at,
    }
}

/// The S3-compatible storage backups go to, without the secret key
/// (`settings.read`); `404` when backups stay on the nodes.
#[utoipa::path(
    get,
    path = "/backup-storage",
    tag = "settings",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::SettingsRead]))),
    responses(
        (status = 200, description = "The settings", body = StorageBody),
        (status = 404, description = "No storage: backups stay on the nodes"),
    )
)]
pub(super) async fn get_storage(
    auth: Authenticated,
    State(state): State<AppState>,
) -> ApiResult<Json<StorageBody>> {
    auth.principal.require(Gate::SETTINGS_READ)?;
    let (target, updated_at) = storage::load(state.db())
        .await
        .map_err(BackupsError::from)?
        .ok_or_else(not_configured)?;
    Ok(Json(storage_body(target, updated_at)))
}

fn not_configured() -> ApiError {
    ApiError::refused(
        crate::error_code::Code::NotFound,
        "the Panel has no backup storage: backups stay on the nodes",
    )
}

/// Sends new backups to S3-compatible storage (`settings.write`); the
/// secret key is sealed at rest and never shown again. Backups made
/// before stay where they are.
#[utoipa::path(
    put,
    path = "/backup-storage",
    tag = "settings",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::SettingsWrite]))),
    request_body = StoragePut,
    responses(
        (status = 200, description = "The settings", body = StorageBody),
        (status = 422, description = "Invalid fields"),
    )
)]
pub(super) async fn put_storage(
    auth: Authenticated,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<StoragePut>,
) -> ApiResult<Json<StorageBody>> {
    auth.principal.require(Gate::SETTINGS_WRITE)?;
    let secret = match body.secret_access_key {
        Some(secret) => secret,
        None => storage::load(state.db())
            .await
            .map_err(BackupsError::from)?
            .map(|(old, _)| old.secret_access_key)
            .unwrap_or_default(),
    };
    let target = S3Target {
        endpoint: body.endpoint.trim().trim_end_matches('/').to_owned(),
        region: body.region.trim().to_owned(),
        bucket: body.bucket.trim().to_owned(),
        prefix: body.prefix.trim().trim_matches('/').to_owned(),
        access_key_id: body.access_key_id.trim().to_owned(),
        secret_access_key: secret,
        path_style: body.path_style,
    };
    let problems = storage::problems(&target);
    if !problems.is_empty() {
        return Err(ApiError::Validation(
            problems
                .into_iter()
                .map(|(field, message)| FieldError::new(FieldLocation::Body, field, message))
                .collect(),
        ));
    }
    storage::save(state.db(), &target, &auth.actor)
        .await
        .map_err(BackupsError::from)?;
    let (target, updated_at) = storage::load(state.db())
        .await
        .map_err(BackupsError::from)?
        .ok_or_else(not_configured)?;
    Ok(Json(storage_body(target, updated_at)))
}

/// Removes the storage settings (`settings.write`): new backups stay on
/// the nodes; backups already in the bucket can no longer be downloaded
/// or restored until the settings are back.
#[utoipa::path(
    delete,
    path = "/backup-storage",
    tag = "settings",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::SettingsWrite]))),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "There were none"),
    )
)]
pub(super) async fn delete_storage(
    auth: Authenticated,
    State(state): State<AppState>,
) -> ApiResult<StatusCode> {
    auth.principal.require(Gate::SETTINGS_WRITE)?;
    if storage::clear(state.db(), &auth.actor)
        .await
        .map_err(BackupsError::from)?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_configured())
    }
}

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get, delete))
        .routes(routes!(lock))
        .routes(routes!(restore))
        .routes(routes!(download))
        .routes(routes!(set_limit))
        .routes(routes!(get_storage, put_storage, delete_storage))
}
