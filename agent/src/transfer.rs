//! File transfers: the Agent's HTTP endpoints that move file contents
//! between clients (browsers, API scripts) and a server's directory,
//! authorised by grants the Panel signed ([`cap_protocol::files::FileGrant`]).
//!
//! | Endpoint | What |
//! | --- | --- |
//! | `GET /api/files/download?token=` | the file, streamed; `Range: bytes=…` answers `206` with that part |
//! | `PUT /api/files/upload?token=` | the whole file as the body, put in place when complete |
//! | `HEAD /api/files/upload?token=` | `Upload-Offset`: how much of a chunked upload arrived |
//! | `PATCH /api/files/upload?token=` | one chunk at `Upload-Offset`; with `Upload-Complete: ?1` the file is put in place |
//! | `GET /api/backups/download?token=` | a backup kept on this node (`<data>/backups`), streamed, with `Range` like file downloads |
//! | `GET /api/transfers/receive?token=` | may a server moving here come, with the size its source declares? ([`crate::relocation`]) |
//! | `POST /api/transfers/receive?token=` | a server moving here from another node: its files as the backup archive, unpacked in place |
//!
//! Key decisions:
//!
//! - **The grant is the only authority.** Each request carries a grant:
//!   an EdDSA JWT checked against the key the Panel sent after the hello
//!   ([`Transfers::set_key`]), for this node (`aud`), unexpired, for this
//!   operation. The grant names the server, the file and the
//!   [`FileScope`](cap_protocol::files::FileScope) (denylist, disk limit),
//!   which [`crate::files::ServerFiles`] enforces; the Agent keeps no
//!   policy of its own. Before the first key arrives every request is
//!   refused.
//! - **Nothing is buffered whole.** Downloads stream from the open file
//!   (the `body` module: 1 MiB reads, one ahead, into buffers used again),
//!   uploads stream into a staging file outside the server's directory
//!   (`<data>/uploads`), each body chunk written as hyper received it,
//!   moved into place only when complete: a game server never sees half a
//!   file, and a failed upload leaves the old one.
//! - **Resumable by name, not by grant.** The staging file is named after
//!   server, path and user, so a client whose grant expired mid-upload asks
//!   the Panel for a new one and goes on from `HEAD`'s offset.
//! - **CORS for the Panel's origin only.** Browsers on the Panel's pages
//!   call these endpoints cross-origin; the origin allowed is the one the
//!   Panel announced with its key, never one taken from a request.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use cap_protocol::AgentMessage;
use cap_protocol::files::{
    FileAnswer, FileChange, FileEntry, FileError, FileErrorCode, FileGrant, FileOp, FileRequest,
    FileResponse, FileScope, GRANT_ISSUER, GrantOp,
};
use cap_protocol::transfers::{ReceiveRefusal, TRANSFER_SIZE_HEADER, TransferErrorCode};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;

use crate::files::ServerFiles;

mod body;

/// The header a chunk's offset travels in (and `HEAD` answers with).
pub const UPLOAD_OFFSET: HeaderName = HeaderName::from_static("upload-offset");
/// The header that marks the last chunk (`?1`).
pub const UPLOAD_COMPLETE: HeaderName = HeaderName::from_static("upload-complete");
/// Seconds of clock skew tolerated on a grant's expiry.
pub const LEEWAY_SECS: u64 = 5;

/// What the transfer endpoints share.
pub struct Transfers {
    node_id: String,
    data_dir: PathBuf,
    receiving: Arc<crate::relocation::Receiving>,
    servers_dir: PathBuf,
    staging_dir: PathBuf,
    backups_dir: PathBuf,
    keys: RwLock<Option<Keys>>,
    changes: mpsc::Sender<AgentMessage>,
    read_only: Arc<crate::files::ReadOnlyServers>,
    usage: Arc<crate::files::DiskUsage>,
}

struct Keys {
    key: DecodingKey,
    origin: Option<HeaderValue>,
}

impl std::fmt::Debug for Transfers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transfers")
            .field("node_id", &self.node_id)
            .field("servers_dir", &self.servers_dir)
            .finish_non_exhaustive()
    }
}

/// Why a transfer was refused.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// No grant, a forged, expired or malformed one, or one for another
    /// node or operation.
    #[error("invalid grant: {0}")]
    Grant(String),
    /// The Agent has no key yet (not linked to its Panel since it started).
    #[error("this Agent has not received the Panel's grant key yet; try again shortly")]
    NoKey,
    /// The file operation itself was refused.
    #[error(transparent)]
    File(#[from] FileError),
    /// A request header is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// The requested range is outside the file.
    #[error("the range is outside the file's {0} bytes")]
    Range(u64),
}

impl TransferError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            TransferError::Grant(_) => (StatusCode::FORBIDDEN, "invalid-grant"),
            TransferError::NoKey => (StatusCode::SERVICE_UNAVAILABLE, "no-grant-key"),
            TransferError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad-request"),
            TransferError::Range(_) => (StatusCode::RANGE_NOT_SATISFIABLE, "range-not-satisfiable"),
            TransferError::File(error) => {
                let status = match error.code {
                    FileErrorCode::NotFound | FileErrorCode::UnknownServer => StatusCode::NOT_FOUND,
                    FileErrorCode::Denied => StatusCode::FORBIDDEN,
                    FileErrorCode::AlreadyExists
                    | FileErrorCode::NotADirectory
                    | FileErrorCode::IsADirectory
                    | FileErrorCode::SpecialFile
                    | FileErrorCode::ReadOnly
                    | FileErrorCode::OffsetMismatch => StatusCode::CONFLICT,
                    FileErrorCode::DiskLimit => StatusCode::INSUFFICIENT_STORAGE,
                    FileErrorCode::Io => StatusCode::INTERNAL_SERVER_ERROR,
                    _ => StatusCode::UNPROCESSABLE_ENTITY,
                };
                (status, error.code.as_str())
            }
        }
    }
}

impl IntoResponse for TransferError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let body = serde_json::json!({
            "status": status.as_u16(),
            "code": code,
            "detail": self.to_string(),
        });
        let mut response = (status, axum::Json(body)).into_response();
        if let TransferError::Range(size) = self
            && let Ok(value) = HeaderValue::from_str(&format!("bytes */{size}"))
        {
            response.headers_mut().insert(header::CONTENT_RANGE, value);
        }
        response
    }
}

/// The query string of every endpoint.
#[derive(Debug, Deserialize)]
pub struct TokenQuery {
    /// The grant.
    pub token: String,
}

impl Transfers {
    /// Transfers for node `node_id`, whose servers live under
    /// `<data_dir>/servers` and whose staged uploads go to
    /// `<data_dir>/uploads`; changes are reported through `changes` (the
    /// link's event queue); disk limits are checked against `usage` (the
    /// runtime's figures, [`crate::runtime::NodeRuntime::disk_usage`]).
    pub fn new(
        node_id: &str,
        data_dir: &std::path::Path,
        changes: mpsc::Sender<AgentMessage>,
        usage: Arc<crate::files::DiskUsage>,
    ) -> Arc<Transfers> {
        Arc::new(Transfers {
            node_id: node_id.to_owned(),
            data_dir: data_dir.to_owned(),
            receiving: Arc::default(),
            servers_dir: data_dir.join("servers"),
            staging_dir: data_dir.join("uploads"),
            backups_dir: data_dir.join("backups"),
            keys: RwLock::new(None),
            changes,
            read_only: crate::files::ReadOnlyServers::new(),
            usage,
        })
    }

    /// The disk usage figures its file operations check and keep current.
    pub fn disk_usage(&self) -> &Arc<crate::files::DiskUsage> {
        &self.usage
    }

    /// The node's data directory.
    pub fn data_dir(&self) -> &std::path::Path {
        &self.data_dir
    }

    /// The servers this node is receiving from another node now.
    pub fn receiving(&self) -> &Arc<crate::relocation::Receiving> {
        &self.receiving
    }

    /// The servers whose files are read-only now (suspended), which the
    /// link keeps current: transfers and file requests open their files
    /// read-only whatever the grant's or request's scope says, so an
    /// upload grant signed before a suspension writes nothing after it.
    pub fn read_only(&self) -> &Arc<crate::files::ReadOnlyServers> {
        &self.read_only
    }

    /// Takes the Panel's grant key and origin ([`cap_protocol::PanelMessage::GrantKey`]).
    ///
    /// # Errors
    ///
    /// The key is not base64url.
    pub fn set_key(&self, public_key: &str, panel_origin: Option<&str>) -> Result<(), String> {
        let key = DecodingKey::from_ed_components(public_key)
            .map_err(|e| format!("the Panel's grant key is malformed: {e}"))?;
        let origin = panel_origin.and_then(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok());
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Some(Keys { key, origin });
        Ok(())
    }

    /// Checks `token` for `op` and returns its claims.
    ///
    /// # Errors
    ///
    /// [`TransferError::NoKey`] or [`TransferError::Grant`].
    pub fn verify(&self, token: &str, op: GrantOp) -> Result<FileGrant, TransferError> {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        let keys = keys.as_ref().ok_or(TransferError::NoKey)?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_audience(&[&self.node_id]);
        validation.set_issuer(&[GRANT_ISSUER]);
        validation.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
        validation.leeway = LEEWAY_SECS;
        let grant = jsonwebtoken::decode::<FileGrant>(token, &keys.key, &validation)
            .map_err(|e| TransferError::Grant(e.to_string()))?
            .claims;
        if grant.op != op {
            return Err(TransferError::Grant(format!(
                "the grant is for {:?}, not {op:?}",
                grant.op
            )));
        }
        Ok(grant)
    }

    fn origin(&self) -> Option<HeaderValue> {
        self.keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .and_then(|k| k.origin.clone())
    }

    /// The server's files, as the grant allows them.
    fn files(&self, grant: &FileGrant) -> Result<ServerFiles, TransferError> {
        Ok(self.server_files(&grant.sub, grant.scope.clone())?)
    }

    /// Server `server_id`'s files with `scope` (read-only while the server
    /// is in [`Transfers::read_only`]).
    fn server_files(
        &self,
        server_id: &str,
        mut scope: FileScope,
    ) -> Result<ServerFiles, FileError> {
        let unknown = || {
            FileError::new(
                FileErrorCode::UnknownServer,
                format!("server {server_id} is not on this node"),
            )
        };
        // Server ids are single path components the Panel made; anything
        // else names no server here.
        if server_id.is_empty()
            || server_id.starts_with('.')
            || !server_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(unknown());
        }
        let dir = self.servers_dir.join(server_id);
        if !dir.is_dir() {
            return Err(unknown());
        }
        scope.read_only |= self.read_only.contains(server_id);
        Ok(ServerFiles::open(&dir, scope)?.with_usage(self.usage.clone()))
    }

    fn staging(&self) -> Result<cap_std::fs::Dir, TransferError> {
        use std::os::unix::fs::DirBuilderExt as _;
        let io = |e: std::io::Error| {
            TransferError::File(FileError::new(
                FileErrorCode::Io,
                format!("cannot open the upload staging directory: {e}"),
            ))
        };
        match std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&self.staging_dir)
        {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io(e)),
        }
        cap_std::fs::Dir::open_ambient_dir(&self.staging_dir, cap_std::ambient_authority())
            .map_err(io)
    }

    async fn report(&self, grant: &FileGrant, entry: &FileEntry) {
        let change = FileChange {
            server_id: grant.sub.clone(),
            user_id: grant.user.clone(),
            via: "upload".into(),
            action: "write".into(),
            path: entry.path.clone(),
            bytes: Some(entry.size),
        };
        let _ = self.changes.send(AgentMessage::FileChanged(change)).await;
    }
}

impl Transfers {
    /// Runs a file request from the Panel ([`cap_protocol::PanelMessage::FileRequest`]).
    pub async fn run(&self, request: FileRequest) -> FileResponse {
        let FileRequest {
            request_id,
            server_id,
            scope,
            op,
        } = request;
        let result = async {
            let files = self.server_files(&server_id, scope)?;
            match op {
                FileOp::Pull {
                    url,
                    directory,
                    file_name,
                    allowed_hosts,
                } => {
                    let entry = files
                        .pull(&url, &directory, file_name.as_deref(), &allowed_hosts)
                        .await?;
                    Ok(FileAnswer::Entry { entry })
                }
                op => tokio::task::spawn_blocking(move || files.run(op))
                    .await
                    .map_err(|e| {
                        FileError::new(FileErrorCode::Io, format!("the operation failed: {e}"))
                    })?,
            }
        }
        .await;
        FileResponse {
            request_id,
            result: result.into(),
        }
    }
}

/// The staging name of an upload: the same for the same server, path and
/// user, whatever grant carries it.
pub fn staging_id(grant: &FileGrant) -> String {
    let mut hasher = Sha256::new();
    for part in [&grant.sub, &grant.path, &grant.user] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    hex::encode(&hasher.finalize()[..16])
}

/// The transfer routes, with CORS for the Panel's origin.
pub fn router(transfers: Arc<Transfers>) -> Router {
    Router::new()
        .route("/api/files/download", get(download).options(preflight))
        .route(
            "/api/backups/download",
            get(backup_download).options(preflight),
        )
        .route(
            cap_protocol::transfers::RECEIVE_PATH,
            get(transfer_check).post(transfer_receive),
        )
        .route(
            "/api/files/upload",
            axum::routing::put(upload_whole)
                .patch(upload_chunk)
                .head(upload_status)
                .options(preflight),
        )
        .layer(axum::middleware::from_fn_with_state(
            transfers.clone(),
            cors,
        ))
        .with_state(transfers)
}

async fn cors(
    State(transfers): State<Arc<Transfers>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let asked = request.headers().get(header::ORIGIN).cloned();
    let mut response = next.run(request).await;
    if let (Some(asked), Some(allowed)) = (asked, transfers.origin())
        && asked == allowed
    {
        let headers = response.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
        headers.insert(header::VARY, HeaderValue::from_static("Origin"));
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(
                "upload-offset, content-range, accept-ranges, content-length, content-disposition",
            ),
        );
    }
    response
}

async fn preflight() -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, HEAD, PUT, PATCH"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("content-type, range, upload-offset, upload-complete"),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    (StatusCode::NO_CONTENT, headers).into_response()
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, TransferError> + Send + 'static,
) -> Result<T, TransferError> {
    tokio::task::spawn_blocking(work).await.map_err(|e| {
        TransferError::File(FileError::new(
            FileErrorCode::Io,
            format!("the file operation failed: {e}"),
        ))
    })?
}

async fn download(
    State(transfers): State<Arc<Transfers>>,
    Query(query): Query<TokenQuery>,
    headers: HeaderMap,
) -> Result<Response, TransferError> {
    let grant = transfers.verify(&query.token, GrantOp::Download)?;
    let files = transfers.files(&grant)?;
    let path = grant.path.clone();
    let (file, entry) = blocking(move || Ok(files.open_read(&path)?)).await?;
    serve(
        file,
        entry.size,
        &entry.name,
        entry.mime.as_deref(),
        &headers,
    )
    .await
}

async fn backup_download(
    State(transfers): State<Arc<Transfers>>,
    Query(query): Query<TokenQuery>,
    headers: HeaderMap,
) -> Result<Response, TransferError> {
    let grant = transfers.verify(&query.token, GrantOp::BackupDownload)?;
    let missing = || {
        TransferError::File(FileError::at(
            FileErrorCode::NotFound,
            &grant.path,
            format!("backup {} is not on this node", grant.path),
        ))
    };
    if !cap_protocol::backups::is_safe_id(&grant.sub)
        || !cap_protocol::backups::is_safe_id(&grant.path)
    {
        return Err(missing());
    }
    let name = cap_protocol::backups::local_file_name(&grant.path);
    let path = transfers.backups_dir.join(&grant.sub).join(&name);
    let file = match std::fs::File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(missing()),
        Err(e) => {
            return Err(TransferError::File(FileError::at(
                FileErrorCode::Io,
                &grant.path,
                format!("cannot open backup {}: {e}", grant.path),
            )));
        }
    };
    let size = file
        .metadata()
        .map_err(|e| {
            TransferError::File(FileError::at(
                FileErrorCode::Io,
                &grant.path,
                format!("cannot read backup {}: {e}", grant.path),
            ))
        })?
        .len();
    serve(file, size, &name, Some("application/zstd"), &headers).await
}

/// Streams `file` (`size` bytes, shown as `name`), or the one range the
/// request asks for.
async fn serve(
    file: std::fs::File,
    size: u64,
    name: &str,
    mime: Option<&str>,
    headers: &HeaderMap,
) -> Result<Response, TransferError> {
    let range = match headers.get(header::RANGE) {
        None => None,
        Some(value) => {
            let text = value
                .to_str()
                .map_err(|_| TransferError::BadRequest("the Range header is not text".into()))?;
            let ranges = http_range_header::parse_range_header(text)
                .map_err(|e| TransferError::BadRequest(format!("Range: {e}")))?
                .validate(size)
                .map_err(|_| TransferError::Range(size))?;
            match ranges.as_slice() {
                [one] => Some(one.clone()),
                // Several ranges would need multipart/byteranges: answered
                // with the whole file, as RFC 9110 allows.
                _ => None,
            }
        }
    };
    let (start, length) = match &range {
        Some(r) => (*r.start(), r.end() - r.start() + 1),
        None => (0, size),
    };
    let body = Body::from_stream(body::file_range(file, start, length));
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    headers.insert(
        header::CONTENT_TYPE,
        mime.and_then(|m| HeaderValue::from_str(m).ok())
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    if let Ok(value) = HeaderValue::from_str(&content_disposition(name)) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    if let Some(r) = range {
        if let Ok(value) = HeaderValue::from_str(&format!("bytes {}-{}/{size}", r.start(), r.end()))
        {
            headers.insert(header::CONTENT_RANGE, value);
        }
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
    }
    Ok(response)
}

/// `attachment` with the name as RFC 6266 and RFC 8187 spell it.
fn content_disposition(name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// The size a transfer's source declared ([`TRANSFER_SIZE_HEADER`]).
fn declared_size(headers: &HeaderMap) -> Result<u64, crate::relocation::Failure> {
    headers
        .get(TRANSFER_SIZE_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .ok_or_else(|| crate::relocation::Failure {
            code: TransferErrorCode::Archive,
            reason: format!("a transfer declares its size in bytes ({TRANSFER_SIZE_HEADER})"),
        })
}

/// A transfer refusal as the JSON a source reads ([`ReceiveRefusal`]).
fn refused(failure: crate::relocation::Failure) -> Response {
    let status = match failure.code {
        TransferErrorCode::DiskFull | TransferErrorCode::DiskLimit => {
            StatusCode::INSUFFICIENT_STORAGE
        }
        TransferErrorCode::Conflict | TransferErrorCode::UnknownServer => StatusCode::CONFLICT,
        TransferErrorCode::Unauthorized => StatusCode::FORBIDDEN,
        TransferErrorCode::Archive | TransferErrorCode::Mismatch => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        TransferErrorCode::Link | TransferErrorCode::Io => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let body = ReceiveRefusal {
        code: failure.code,
        reason: failure.reason,
    };
    (status, axum::Json(body)).into_response()
}

/// The grant and the declared size of a transfer request, or why it is
/// refused.
fn admitted(
    transfers: &Transfers,
    query: &TokenQuery,
    headers: &HeaderMap,
) -> Result<(FileGrant, u64), crate::relocation::Failure> {
    let grant = transfers
        .verify(&query.token, GrantOp::TransferReceive)
        .map_err(|error| crate::relocation::Failure {
            code: TransferErrorCode::Unauthorized,
            reason: format!("the target node refused the grant: {error}"),
        })?;
    Ok((grant, declared_size(headers)?))
}

/// `GET /api/transfers/receive`: may this transfer come, with the size
/// declared? `204`, or the refusal.
async fn transfer_check(
    State(transfers): State<Arc<Transfers>>,
    Query(query): Query<TokenQuery>,
    headers: HeaderMap,
) -> Response {
    let (grant, declared) = match admitted(&transfers, &query, &headers) {
        Ok(admitted) => admitted,
        Err(failure) => return refused(failure),
    };
    if transfers.receiving.contains(&grant.sub) {
        return refused(crate::relocation::Failure {
            code: TransferErrorCode::Conflict,
            reason: format!("server {} is being received already", grant.sub),
        });
    }
    match crate::relocation::check_receive(
        &transfers.data_dir,
        &transfers.node_id,
        &grant,
        declared,
    ) {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(failure) => refused(failure),
    }
}

/// `POST /api/transfers/receive`: the server's files, as the backup
/// archive; answers [`cap_protocol::transfers::Received`] once they are in
/// place.
async fn transfer_receive(
    State(transfers): State<Arc<Transfers>>,
    Query(query): Query<TokenQuery>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    use futures::TryStreamExt as _;
    let (grant, declared) = match admitted(&transfers, &query, &headers) {
        Ok(admitted) => admitted,
        Err(failure) => return refused(failure),
    };
    let stream = body.into_data_stream().map_err(|e| {
        std::io::Error::other(format!("the stream from the source node was cut: {e}"))
    });
    let received = crate::relocation::receive(
        &transfers.data_dir,
        &transfers.node_id,
        &transfers.receiving,
        &grant,
        declared,
        stream,
    )
    .await;
    // A figure kept from before the server left this node once is stale.
    transfers
        .usage
        .forget(&transfers.servers_dir.join(&grant.sub));
    match received {
        Ok(received) => {
            tracing::info!(server = %grant.sub, transfer = %grant.jti, bytes = received.bytes, "received a server from another node");
            (StatusCode::OK, axum::Json(received)).into_response()
        }
        Err(failure) => refused(failure),
    }
}

async fn upload_status(
    State(transfers): State<Arc<Transfers>>,
    Query(query): Query<TokenQuery>,
) -> Result<Response, TransferError> {
    let grant = transfers.verify(&query.token, GrantOp::Upload)?;
    let files = transfers.files(&grant)?;
    let staging = transfers.staging()?;
    let id = staging_id(&grant);
    let received = blocking(move || Ok(files.upload_status(&staging, &id)?)).await?;
    Ok((
        StatusCode::NO_CONTENT,
        [
            (UPLOAD_OFFSET, HeaderValue::from(received)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
    )
        .into_response())
}

async fn upload_whole(
    State(transfers): State<Arc<Transfers>>,
    Query(query): Query<TokenQuery>,
    body: Body,
) -> Result<Response, TransferError> {
    let grant = transfers.verify(&query.token, GrantOp::Upload)?;
    receive(&transfers, grant, None, true, body).await
}

async fn upload_chunk(
    State(transfers): State<Arc<Transfers>>,
    Query(query): Query<TokenQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, TransferError> {
    let grant = transfers.verify(&query.token, GrantOp::Upload)?;
    let offset = headers
        .get(&UPLOAD_OFFSET)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .ok_or_else(|| {
            TransferError::BadRequest("a chunk needs an Upload-Offset header (bytes)".into())
        })?;
    let complete = match headers.get(&UPLOAD_COMPLETE).map(HeaderValue::as_bytes) {
        None | Some(b"?0") => false,
        Some(b"?1") => true,
        Some(_) => {
            return Err(TransferError::BadRequest(
                "Upload-Complete must be ?1 or ?0".into(),
            ));
        }
    };
    receive(&transfers, grant, Some(offset), complete, body).await
}

/// Streams `body` into the upload's staging file at `offset` (`None`: a
/// whole file, starting over), then, when `complete`, puts it in place.
async fn receive(
    transfers: &Arc<Transfers>,
    grant: FileGrant,
    offset: Option<u64>,
    complete: bool,
    body: Body,
) -> Result<Response, TransferError> {
    use futures::TryStreamExt as _;
    let files = transfers.files(&grant)?;
    let staging = transfers.staging()?;
    let id = staging_id(&grant);
    let path = grant.path.clone();
    let declared = grant.size;
    let stream = body
        .into_data_stream()
        .map_err(|e| std::io::Error::other(format!("the upload was cut: {e}")));
    let reader = tokio_util::io::StreamReader::new(stream);
    let finished = blocking(move || {
        let mut reader = tokio_util::io::SyncIoBridge::new(reader);
        let offset = match offset {
            Some(offset) => offset,
            None => {
                files.upload_abort(&staging, &id)?;
                0
            }
        };
        let received = files.upload_append(&staging, &id, &path, offset, &mut reader, declared)?;
        if complete {
            let entry = files.upload_finish(&staging, &id, &path)?;
            Ok((received, Some(entry)))
        } else {
            Ok((received, None))
        }
    })
    .await?;
    match finished {
        (_, Some(entry)) => {
            transfers.report(&grant, &entry).await;
            Ok((StatusCode::CREATED, axum::Json(entry)).into_response())
        }
        (received, None) => Ok((
            StatusCode::NO_CONTENT,
            [(UPLOAD_OFFSET, HeaderValue::from(received))],
        )
            .into_response()),
    }
}
