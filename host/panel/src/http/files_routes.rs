//! `/api/v1/servers/{id}/files`: a server's files.
//!
//! Every route acts on one server and needs a file permission there (see
//! [`crate::servers::access`]; a caller who may not see the server gets
//! `404`, one who lacks the permission `403 forbidden`):
//!
//! | route | permission |
//! | --- | --- |
//! | `GET /files?path=` (list), `GET /files/stat?path=` | `file.read` |
//! | `POST /files/download` (a signed URL) | `file.read-content` |
//! | `POST /files/upload` (a signed URL) | `file.create` for a new file, `file.update` to replace one |
//! | `POST /files/folders`, `POST /files/copy`, `POST /files/pull` | `file.create` |
//! | `POST /files/rename`, `POST /files/chmod` | `file.update` |
//! | `POST /files/delete` | `file.delete` |
//! | `POST /files/compress`, `POST /files/decompress` | `file.archive` |
//!
//! The operations run on the server's Agent ([`crate::files`]); contents
//! move between the client and the Agent through the signed URLs, never
//! through the Panel. The Agent's refusals keep their meaning as problem
//! codes: `file-not-found`, `file-denied` (the game type's denylist),
//! `file-outside-server`, `disk-limit`, `archive-refused`, and the rest of
//! the "Server files" rows of the code table; a node that is not connected
//! answers `503 node-offline`. A suspended server's files are read-only:
//! every write route and upload grant answers `409 files-read-only`,
//! naming the suspension's reason; lists, stats and downloads go on.

use axum::Json;
use axum::extract::{Path, State};
use cap_protocol::files::{
    ArchiveFormat, FileAnswer, FileChange, FileEntry, FileError, FileErrorCode, FileKind, FileOp,
    GrantOp,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Authenticated;
use super::error::{ApiError, ApiResult, FieldError, FieldLocation};
use super::extract::{ApiJson, ApiQuery};
use super::servers_routes::visible;
use crate::files::{self, FilesError};
use crate::identity::permissions::{Gate, Permission};
use crate::plugins::hooks;
use crate::servers::access::ServerAccess;
use crate::servers::server::Server;
use cap_runtime::api::{EventKind, FileInfo, Payload};

/// Most entries one delete or compress may name.
pub const MAX_PATHS: usize = 1000;
/// Longest path accepted, bytes (the Agent checks again).
pub const MAX_PATH_BYTES: usize = 4096;

impl From<FilesError> for ApiError {
    fn from(error: FilesError) -> Self {
        match error {
            FilesError::Servers(error) => ApiError::from(error),
            other => ApiError::refused(other.code(), other.to_string()),
        }
    }
}

/// A path in the query string.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PathQuery {
    /// A path from the server's directory (`/` is the directory itself).
    #[serde(default = "root")]
    pub path: String,
}

fn root() -> String {
    "/".to_owned()
}

/// A directory's entries.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FileList {
    /// The directory, as asked.
    pub path: String,
    /// Its entries, directories first, then by name; entries the game type
    /// denies are not listed.
    pub items: Vec<FileEntry>,
}

/// One path.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PathBody {
    /// A path from the server's directory.
    pub path: String,
}

/// A move or a copy.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FromTo {
    /// The entry.
    pub from: String,
    /// Where it goes; nothing may be there yet.
    pub to: String,
}

/// Entries to delete.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeleteBody {
    /// The entries (1 to 1000); all are checked before any is deleted.
    pub paths: Vec<String>,
}

/// How many entries were deleted.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Deleted {
    /// Entries removed.
    pub deleted: u32,
}

/// A mode change.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChmodBody {
    /// The entry.
    pub path: String,
    /// The permission bits in octal, as `chmod` takes them: `"644"`,
    /// `"0755"`.
    pub mode: String,
}

/// A URL to download into the server's files.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PullBody {
    /// An `http` or `https` URL on a public address.
    pub url: String,
    /// The directory to put the file in.
    pub directory: String,
    /// The file's name; default: the URL's last path segment.
    #[serde(default)]
    pub file_name: Option<String>,
}

/// Entries to archive.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CompressBody {
    /// The directory the entries are in; the archive is written there.
    pub root: String,
    /// The entries' names in `root` (1 to 1000).
    pub paths: Vec<String>,
    /// `tar-gz` (the default) or `zip`.
    #[serde(default = "tar_gz")]
    pub format: ArchiveFormat,
    /// The archive's file name; default `archive-<date>.<ext>`.
    #[serde(default)]
    pub name: Option<String>,
}

fn tar_gz() -> ArchiveFormat {
    ArchiveFormat::TarGz
}

/// An archive to extract.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DecompressBody {
    /// The archive: zip, tar, tar.gz, tar.xz, tar.zst or 7z, told by its
    /// content.
    pub path: String,
    /// The directory to extract into (created when missing).
    pub destination: String,
}

/// What an extraction wrote.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Extracted {
    /// Files and directories written.
    pub entries: u64,
    /// Bytes written.
    pub bytes: u64,
}

/// A transfer to ask a signed URL for.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TransferBody {
    /// The file.
    pub path: String,
    /// For uploads: the file's size in bytes, when known; the Agent then
    /// refuses more and checks the disk limit at once.
    #[serde(default)]
    pub size: Option<u64>,
}

/// A signed URL on the server's node.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransferUrl {
    /// The URL, on the node's Agent, token included. Downloads: `GET`, with
    /// `Range` requests. Uploads: `PUT` the whole file, or send it in
    /// chunks with `PATCH` and an `Upload-Offset` header (`HEAD` tells how
    /// much arrived, to resume), the last with `Upload-Complete: ?1`.
    pub url: String,
    /// When it can no longer start a transfer (a started one runs on).
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

fn check_path(field: &str, path: &str) -> Result<(), ApiError> {
    if path.len() > MAX_PATH_BYTES || path.contains('\0') {
        return Err(ApiError::Validation(vec![FieldError::new(
            FieldLocation::Body,
            field,
            format!("must be a path of at most {MAX_PATH_BYTES} bytes without NUL"),
        )]));
    }
    Ok(())
}

fn check_paths(field: &str, paths: &[String]) -> Result<(), ApiError> {
    if paths.is_empty() || paths.len() > MAX_PATHS {
        return Err(ApiError::Validation(vec![FieldError::new(
            FieldLocation::Body,
            field,
            format!("must name 1 to {MAX_PATHS} entries"),
        )]));
    }
    paths.iter().try_for_each(|p| check_path(field, p))
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

/// Runs `op` on the server's files; a write goes past the `file.write`
/// before-hooks first and tells the after-hooks once it succeeded.
async fn run(
    state: &AppState,
    auth: &Authenticated,
    server: &Server,
    op: FileOp,
) -> ApiResult<FileAnswer> {
    let scope = files::scope(state.plugins(), server)
        .await
        .map_err(FilesError::from)?;
    let write = write_event(server, &op);
    if write.is_some()
        && let Some(refusal) = files::read_only_refusal(server)
    {
        return Err(refusal.into());
    }
    let event = match write {
        Some(info) => Some(
            hooks::run_before(
                state.plugins(),
                hooks::event(EventKind::FileWrite, info, &auth.actor),
            )
            .await?,
        ),
        None => None,
    };
    let answer = files::request(state.agents(), server, scope, op).await?;
    if let Some(event) = event {
        hooks::spawn_after(state.plugins(), event);
    }
    Ok(answer)
}

/// The `file.write` payload of `op`, `None` for a read.
fn write_event(server: &Server, op: &FileOp) -> Option<Payload> {
    let (action, paths) = match op {
        FileOp::List { .. } | FileOp::Stat { .. } => return None,
        FileOp::CreateFolder { path } => ("create-folder", vec![path.clone()]),
        FileOp::Rename { from, to } => ("rename", vec![from.clone(), to.clone()]),
        FileOp::Copy { from, to } => ("copy", vec![from.clone(), to.clone()]),
        FileOp::Delete { paths } => ("delete", paths.clone()),
        FileOp::Chmod { path, .. } => ("chmod", vec![path.clone()]),
        FileOp::Pull { directory, .. } => ("pull", vec![directory.clone()]),
        FileOp::Compress { root, paths, .. } => (
            "compress",
            paths
                .iter()
                .map(|p| format!("{}/{p}", root.trim_end_matches('/')))
                .collect(),
        ),
        FileOp::Decompress { path, destination } => {
            ("decompress", vec![path.clone(), destination.clone()])
        }
    };
    Some(file_payload(&server.id, action, paths, "api"))
}

fn file_payload(server_id: &str, action: &str, paths: Vec<String>, via: &str) -> Payload {
    Payload::File(FileInfo {
        server_id: server_id.to_owned(),
        action: action.to_owned(),
        paths,
        via: via.to_owned(),
    })
}

/// The routes whose answer is one entry: the permission `gate`, then the
/// named `paths`, then `op`.
async fn entry_op(
    state: &AppState,
    auth: &Authenticated,
    id: &str,
    gate: Gate,
    paths: &[(&str, &str)],
    op: FileOp,
) -> ApiResult<Json<FileEntry>> {
    let (server, _) = server_for(state, auth, id, gate).await?;
    for (field, path) in paths {
        check_path(field, path)?;
    }
    entry(run(state, auth, &server, op).await?)
}

fn entry(answer: FileAnswer) -> ApiResult<Json<FileEntry>> {
    match answer {
        FileAnswer::Entry { entry } => Ok(Json(entry)),
        other => Err(unexpected(&other)),
    }
}

fn unexpected(answer: &FileAnswer) -> ApiError {
    ApiError::internal(format!(
        "the Agent answered {answer:?} to another operation"
    ))
}

/// Lists a directory (`file.read`).
#[utoipa::path(
    get,
    path = "/servers/{id}/files",
    tag = "files",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::FileRead]))),
    params(("id" = String, Path, description = "The server's id"), PathQuery),
    responses(
        (status = 200, description = "The directory's entries", body = FileList),
        (status = 404, description = "No such server or directory"),
        (status = 503, description = "The node is offline"),
    )
)]
pub(super) async fn list(
    auth: Authenticated,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<PathQuery>,
) -> ApiResult<Json<FileList>> {
    let (server, _) = server_for(&state, &auth, &id, Gate::FILE_READ).await?;
    check_path("path", &query.path)?;
    let answer = run(
        &state,
        &auth,
        &server,
        FileOp::List {
            path: query.path.clone(),
        },
    )
    .await?;
    match answer {
        FileAnswer::Entries { entries } => Ok(Json(FileList {
            path: query.path,
            items: entries,
        })),
        other => Err(unexpected(&other)),
    }
}

/// One entry (`file.read`).
#[utoipa::path(
    get,
    path = "/servers/{id}/files/stat",
    tag = "files",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::FileRead]))),
    params(("id" = String, Path, description = "The server's id"), PathQuery),
    responses(
        (status = 200, description = "The entry", body = FileEntry),
        (status = 404, description = "No such server or entry"),
        (status = 503, description = "The node is offline"),
    )
)]
pub(super) async fn stat(
    auth: Authenticated,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<PathQuery>,
) -> ApiResult<Json<FileEntry>> {
    let paths = [("path", query.path.as_str())];
    let op = FileOp::Stat {
        path: query.path.clone(),
    };
    entry_op(&state, &auth, &id, Gate::FILE_READ, &paths, op).await
}

/// Creates a directory and its missing parents (`file.create`).
#[utoipa::path(
    post,
    path = "/servers/{id}/files/folders",
    tag = "files",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::FileCreate]))),
    params(("id" = String, Path, description = "The server's id")),
    request_body = PathBody,
    responses(
        (status = 200, description = "The directory", body = FileEntry),
        (status = 409, description = "Something else is there"),
        (status = 404, description = "No such server, or no such file"),
        (status = 503, description = "The node is offline"),
    )
)]
pub(super) async fn create_folder(
    auth: Authenticated,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PathBody>,
) -> ApiResult<Json<FileEntry>> {
    let paths = [("path", body.path.as_str())];
    let op = FileOp::CreateFolder {
        path: body.path.clone(),
    };
    entry_op(&state, &auth, &id, Gate::FILE_CREATE, &paths, op).await
}

/// Renames or moves an entry (`file.update`).
#[utoipa::path(
    post,
    path = "/servers/{id}/files/rename",
    tag = "files",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::FileUpdate]))),
    params(("id" = String, Path, description = "The server's id")),
    request_body = FromTo,
    responses(
        (status = 200, description = "The entry at its new path", body = FileEntry),
        (status = 409, description = "Something is at the new path"),
        (status = 404, description = "No such server, or no such file"),
        (status = 503, description = "The node is offline"),
    )
)]
pub(super) async fn rename(
    auth: Authenticated,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<FromTo>,
) -> ApiResult<Json<FileEntry>> {
    let paths = [("from", body.from.as_str()), ("to", body.to.as_str())];
    let op = FileOp::Rename {
        from: body.from.clone(),
        to: body.to.clone(),
    };
    entry_op(&state, &auth, &id, Gate::FILE_UPDATE, &paths, op).await
}

/// Copies a file or a directory tree (`file.create`).
#[utoipa::path(
    post,
    path = "/servers/{id}/files/copy",
    tag = "files",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::FileCreate]))),
    params(("id" = String, Path, description = "The server's id")),
    request_body = FromTo,
    responses(
        (status = 200, description = "The copy", body = FileEntry),
        (status = 409, description = "Something is at the copy's path"),
        (status = 507, description = "Over the disk limit"),
        (status = 404, description = "No such server, or no such file"),
        (status = 503, description = "The node is offline"),
    )
)]
pub(super) async fn copy(
    auth: Authenticated,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<FromTo>,
) -> ApiResult<Json<FileEntry>> {
    let paths = [("from", body.from.as_str()), ("to", body.to.as_str())];
    let op = FileOp::Copy {
        from: body.from.clone(),
        to: body.to.clone(),
    };
    entry_op(&state, &auth, &id, Gate::FILE_CREATE, &paths, op).await
}

/// Deletes entries, directories with their contents (`file.delete`).
#[utoipa::path(
    post,
    path = "/servers/{id}/files/delete",
    tag = "files",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::FileDelete]))),
    params(("id" = String, Path, description = "The server's id")),
    request_body = DeleteBody,
    responses(
        (status = 200, description = "How many were deleted", body = Deleted),
        (status = 404, description = "An entry does not exist: none was deleted"),
        (status = 503, description = "The node is offline"),
    )
)]
pub(super) async fn delete(
    auth: Authenticated,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<DeleteBody>,
) -> ApiResult<Json<Deleted>> {
    let (server, _) = server_for(&state, &auth, &id, Gate::FILE_DELETE).await?;
    check_paths("paths", &body.paths)?;
    match run(&state, &auth, &server, FileOp::Delete { paths: body.paths }).await? {
        FileAnswer::Deleted { count } => Ok(Json(Deleted { deleted: count })),
        other => Err(unexpected(&other)),
    }
}

/// Changes an entry's permission bits (`file.update`).
#[utoipa::path(
    post,
    path = "/servers/{id}/files/chmod",
    tag = "files",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::FileUpdate]))),
    params(("id" = String, Path, description = "The server's id")),
    request_body = ChmodBody,
    responses(
        (status = 200, description = "The entry", body = FileEntry),
        (status = 422, description = "Not an octal mode of permission bits"),
        (status = 404, description = "No such server, or no such file"),
        (status = 503, description = "The node is offline"),
    )
)]
pub(super) async fn chmod(
    auth: Authenticated,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ChmodBody>,
) -> ApiResult<Json<FileEntry>> {
    let (server, _) = server_for(&state, &auth, &id, Gate::FILE_UPDATE).await?;
    check_path("path", &body.path)?;
    let mode = u32::from_str_radix(&body.mode, 8)
        .ok()
        .filter(|m| *m <= 0o777 && !body.mode.is_empty() && body.mode.len() <= 4)
        .ok_or_else(|| {
            ApiError::Validation(vec![FieldError::new(
                FieldLocation::Body,
                "mode",
                "must be permission bits in octal, such as 644 or 0755 (no set-id or sticky bits)",
            )])
        })?;
    let op = FileOp::Chmod {
        path: body.path,
        mode,
    };
    entry(run(&state, &auth, &server, op).await?)
}

/// Downloads a URL into a directory (`file.create`). The URL must be on a
/// public address, as for plugins' HTTP, unless the admin allows its host
/// (`[files] pull_allowed_hosts`); the admin can turn pulls off, and so
/// can the game type (feature `no-file-pull`).
#[utoipa::path(
    post,
    path = "/servers/{id}/files/pull",
    tag = "files",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::FileCreate]))),
    params(("id" = String, Path, description = "The server's id")),
    request_body = PullBody,
    responses(
        (status = 200, description = "The downloaded file", body = FileEntry),
        (status = 422, description = "The URL may not be pulled"),
        (status = 502, description = "The URL could not be fetched"),
        (status = 404, description = "No such server, or no such file"),
        (status = 503, description = "The node is offline"),
    )
)]
pub(super) async fn pull(
    auth: Authenticated,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PullBody>,
) -> ApiResult<Json<FileEntry>> {
    let (server, _) = server_for(&state, &auth, &id, Gate::FILE_CREATE).await?;
    if let Some(refusal) = files::read_only_refusal(&server) {
        return Err(refusal.into());
    }
    let settings = &state.config().files;
    if !settings.pull {
        return Err(ApiError::refused(
            crate::error_code::Code::PullRefused,
            "pulling files from URLs is turned off on this Panel",
        ));
    }
    if !files::pull_allowed(state.plugins(), &server)
        .await
        .map_err(FilesError::from)?
    {
        return Err(ApiError::refused(
            crate::error_code::Code::PullRefused,
            format!(
                "the server's game type turns pulling files from URLs off (feature `{}`)",
                files::NO_FILE_PULL
            ),
        ));
    }
    check_path("directory", &body.directory)?;
    let op = FileOp::Pull {
        url: body.url,
        directory: body.directory,
        file_name: body.file_name,
        allowed_hosts: settings.pull_allowed_hosts.clone(),
    };
    entry(run(&state, &auth, &server, op).await?)
}

/// Archives entries of one directory into it (`file.archive`).
#[utoipa::path(
    post,
    path = "/servers/{id}/files/compress",
    tag = "files",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::FileArchive]))),
    params(("id" = String, Path, description = "The server's id")),
    request_body = CompressBody,
    responses(
        (status = 200, description = "The archive", body = FileEntry),
        (status = 507, description = "Over the disk limit: no archive is left"),
        (status = 404, description = "No such server, or no such file"),
        (status = 503, description = "The node is offline"),
    )
)]
pub(super) async fn compress(
    auth: Authenticated,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CompressBody>,
) -> ApiResult<Json<FileEntry>> {
    let (server, _) = server_for(&state, &auth, &id, Gate::FILE_ARCHIVE).await?;
    check_path("root", &body.root)?;
    check_paths("paths", &body.paths)?;
    let op = FileOp::Compress {
        root: body.root,
        paths: body.paths,
        format: body.format,
        name: body.name,
    };
    entry(run(&state, &auth, &server, op).await?)
}

/// Extracts an archive (`file.archive`). Bounded in size, entry count and
/// compression ratio; entries that would leave the destination, absolute
/// paths and devices are refused, and a refused archive leaves nothing
/// behind.
#[utoipa::path(
    post,
    path = "/servers/{id}/files/decompress",
    tag = "files",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::FileArchive]))),
    params(("id" = String, Path, description = "The server's id")),
    request_body = DecompressBody,
    responses(
        (status = 200, description = "What was extracted", body = Extracted),
        (status = 422, description = "Unreadable or refused archive"),
        (status = 507, description = "Over the disk limit"),
        (status = 404, description = "No such server, or no such file"),
        (status = 503, description = "The node is offline"),
    )
)]
pub(super) async fn decompress(
    auth: Authenticated,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<DecompressBody>,
) -> ApiResult<Json<Extracted>> {
    let (server, _) = server_for(&state, &auth, &id, Gate::FILE_ARCHIVE).await?;
    check_path("path", &body.path)?;
    check_path("destination", &body.destination)?;
    let op = FileOp::Decompress {
        path: body.path,
        destination: body.destination,
    };
    match run(&state, &auth, &server, op).await? {
        FileAnswer::Extracted { entries, bytes } => Ok(Json(Extracted { entries, bytes })),
        other => Err(unexpected(&other)),
    }
}

/// A signed URL to download one file from the server's node
/// (`file.read-content`).
#[utoipa::path(
    post,
    path = "/servers/{id}/files/download",
    tag = "files",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::FileReadContent]))),
    params(("id" = String, Path, description = "The server's id")),
    request_body = TransferBody,
    responses(
        (status = 200, description = "The URL", body = TransferUrl),
        (status = 503, description = "The node is offline or serves no transfers"),
        (status = 404, description = "No such server, or no such file"),
    )
)]
pub(super) async fn download(
    auth: Authenticated,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<TransferBody>,
) -> ApiResult<Json<TransferUrl>> {
    let (server, _) = server_for(&state, &auth, &id, Gate::FILE_READ_CONTENT).await?;
    check_path("path", &body.path)?;
    let scope = files::scope(state.plugins(), &server)
        .await
        .map_err(FilesError::from)?;
    // Refuses a directory, a device or a denied file now rather than at
    // the Agent's door.
    let found = files::request(
        state.agents(),
        &server,
        scope.clone(),
        FileOp::Stat {
            path: body.path.clone(),
        },
    )
    .await?;
    // (A symlink is left to the Agent, which follows it within the server
    // when the transfer opens it.)
    if let FileAnswer::Entry { entry } = &found {
        let refusal = match entry.kind {
            FileKind::File | FileKind::Symlink => None,
            FileKind::Directory => Some((FileErrorCode::IsADirectory, "is a directory")),
            FileKind::Other => Some((FileErrorCode::SpecialFile, "is not a regular file")),
        };
        if let Some((code, what)) = refusal {
            let message = format!("{} {what}", body.path);
            return Err(FilesError::Agent(FileError::at(code, &body.path, message)).into());
        }
    }
    signed(&state, &auth, &server, scope, GrantOp::Download, body)
}

/// A signed URL to upload one file to the server's node: `file.create`
/// for a new file, `file.update` to replace an existing one.
#[utoipa::path(
    post,
    path = "/servers/{id}/files/upload",
    tag = "files",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::FileCreate, Permission::FileUpdate]))),
    params(("id" = String, Path, description = "The server's id")),
    request_body = TransferBody,
    responses(
        (status = 200, description = "The URL", body = TransferUrl),
        (status = 503, description = "The node is offline or serves no transfers"),
        (status = 404, description = "No such server, or no such file"),
    )
)]
pub(super) async fn upload(
    auth: Authenticated,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<TransferBody>,
) -> ApiResult<Json<TransferUrl>> {
    let (server, access) = visible(&state, &auth, &id).await?;
    if !access.has(Permission::FileCreate) && !access.has(Permission::FileUpdate) {
        access.require(Gate::FILE_CREATE)?;
    }
    check_path("path", &body.path)?;
    if let Some(refusal) = files::read_only_refusal(&server) {
        return Err(refusal.into());
    }
    let scope = files::scope(state.plugins(), &server)
        .await
        .map_err(FilesError::from)?;
    let existing = files::request(
        state.agents(),
        &server,
        scope.clone(),
        FileOp::Stat {
            path: body.path.clone(),
        },
    )
    .await;
    match existing {
        Ok(_) => access.require(Gate::FILE_UPDATE)?,
        Err(FilesError::Agent(error)) if error.code == FileErrorCode::NotFound => {
            access.require(Gate::FILE_CREATE)?;
        }
        Err(error) => return Err(error.into()),
    }
    // Refused here, before a byte is sent; the after-hooks hear of it
    // when the Agent reports the file in place.
    hooks::run_before(
        state.plugins(),
        hooks::event(
            EventKind::FileWrite,
            file_payload(&server.id, "upload", vec![body.path.clone()], "api"),
            &auth.actor,
        ),
    )
    .await?;
    signed(&state, &auth, &server, scope, GrantOp::Upload, body)
}

fn signed(
    state: &AppState,
    auth: &Authenticated,
    server: &Server,
    scope: cap_protocol::files::FileScope,
    op: GrantOp,
    body: TransferBody,
) -> ApiResult<Json<TransferUrl>> {
    let signer = state.file_grants()?;
    let url = files::grant(
        state.agents(),
        signer,
        server,
        scope,
        auth.principal.user_id(),
        files::Transfer {
            op,
            path: &body.path,
            size: body.size,
        },
    )?;
    Ok(Json(TransferUrl {
        url: url.url,
        expires_at: url.expires_at,
    }))
}

/// Tells the `file.write` after-hooks of a change an Agent reports (an
/// upload put in place, an SFTP session's write).
pub(crate) fn record_change(state: &AppState, change: FileChange) {
    tracing::info!(
        server = %change.server_id,
        user = %change.user_id,
        via = %change.via,
        action = %change.action,
        path = %change.path,
        "server files changed"
    );
    let action = if change.via == "upload" {
        "upload"
    } else {
        change.action.as_str()
    };
    let via = if change.via == "sftp" { "sftp" } else { "api" };
    let actor = crate::db::Actor {
        user_id: Some(change.user_id.clone()),
        ..crate::db::Actor::system()
    };
    let event = hooks::event(
        EventKind::FileWrite,
        file_payload(&change.server_id, action, vec![change.path.clone()], via),
        &actor,
    );
    hooks::spawn_after(state.plugins(), event);
}

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(stat))
        .routes(routes!(create_folder))
        .routes(routes!(rename))
        .routes(routes!(copy))
        .routes(routes!(delete))
        .routes(routes!(chmod))
        .routes(routes!(pull))
        .routes(routes!(compress))
        .routes(routes!(decompress))
        .routes(routes!(download))
        .routes(routes!(upload))
}
