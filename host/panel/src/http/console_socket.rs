//! The browsers' console: short-lived per-server tokens and the WebSocket
//! at `/api/v1/servers/{id}/console`.
//!
//! As in Pterodactyl, a browser first asks `GET /api/v1/servers/{id}/websocket`
//! (an ordinary authenticated request) for a console token: a JWT (HS256)
//! naming the user, the server and the user's permissions on it, valid for
//! [`TOKEN_TTL`]. It opens the socket and sends `{"event":"auth","args":[token]}`;
//! browsers cannot set headers on WebSockets, and the token never appears in
//! a URL. Frames are `{"event": …, "args": […]}` with Pterodactyl's names:
//!
//! | From the Panel | args |
//! | --- | --- |
//! | `auth success` | — |
//! | `status` | the server's state |
//! | `console output` | one line (the history first, then live) |
//! | `console event` | a classified line: `{"kind":"ready"}`, `{"kind":"player-joined","name":…}`, … |
//! | `stats` | `{"cpuPercent","memoryBytes","uptimeSecs","players"}` |
//! | `dropped` | lines this browser or the Agent's throttle dropped |
//! | `token expiring` / `token expired` | — (send `auth` with a fresh token) |
//! | `jwt error` | why a token was refused |
//! | `access revoked` | why the socket closes: the session, user, server or a permission went (see below) |
//! | `error` | `{"code","message"}`: a refused command (`forbidden`, `hook-denied`, …) |
//! | `command accepted` | the queued command's id |
//!
//! | From the browser | args |
//! | --- | --- |
//! | `auth` | a token |
//! | `send command` | one console line (needs `control.console`) |
//! | `set state` | `start`, `stop`, `restart` or `kill` (needs the action's permission) |
//! | `send logs` | — (the history again) |
//!
//! Key decisions: the signing key is random per Panel process (a restart
//! invalidates tokens; browsers fetch new ones on `jwt error`); commands go
//! through the same path as the REST API ([`commands::enqueue`]: before-hooks,
//! the outbox, events with the user and address); a browser that reads
//! too slowly skips ahead and is told how many lines it missed.
//!
//! # Revocation
//!
//! A token is a ticket to open (or re-authenticate) one socket, not a
//! licence for ten minutes:
//!
//! - **Single use.** Each token has an id (`jti`); the Panel remembers the
//!   ids it issued, with the caller who asked and how they authenticated
//!   (their session or API key, [`Credential`](crate::http::Credential)), until the token is used or
//!   expires. Using a token forgets it, so a second `auth` with the same
//!   token is a `jwt error` ("used before"). The memory is bounded: expired
//!   entries are dropped on every issue, and past [`MAX_OUTSTANDING`] the
//!   oldest go first.
//! - **Every command is authorised now.** Before a `send command` or `set
//!   state` is queued, the caller is read again ([`auth::recheck`]: the
//!   session is still active, the API key not revoked, the user neither
//!   disabled nor deleted) and their access to the server resolved again
//!   ([`access::resolve`]); the command needs its permission both in the
//!   token and now.
//! - **Sockets close when access goes.** Every [`REVALIDATE_EVERY`], when
//!   the database changed since the last look, the socket checks the same
//!   things; if the session ended, the user was disabled, the server went,
//!   or any permission the token carried is no longer held (a subuser grant
//!   removed or reduced, a role changed), the browser gets `access revoked`
//!   with the reason and the socket closes. A browser that may still use
//!   the console fetches a fresh token and reconnects. A socket opened with
//!   a login session's token also closes when that session reaches its
//!   absolute lifetime (`[auth] session-lifetime-days`), changed database
//!   or not.
//!
//! Principals from an authenticator that records no credential (tests'
//! own) cannot be asked again; for them only the server access is
//! re-resolved.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use axum::extract::ws::{
    Message, WebSocket, WebSocketUpgrade, rejection::WebSocketUpgradeRejection,
};
use axum::extract::{ConnectInfo, Path, State};
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::auth;
use super::{ApiError, ApiResult, AppState, Principal};
use crate::agents::ConsoleFrame;
use crate::db::{Actor, ReadVersion};
use crate::identity::permissions::Permission;
use crate::servers::commands::{self, CommandAction};
use crate::servers::{ServersError, access, server};

/// How long a console token is valid.
pub const TOKEN_TTL: Duration = Duration::from_secs(10 * 60);
/// How long before expiry the browser is warned.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(60);
/// How long a new socket has to authenticate.
const AUTH_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest frame a browser may send.
const MAX_FRAME: usize = 16 * 1024;
/// How often an open socket checks that its caller may still see the
/// console (when the database changed meanwhile).
pub const REVALIDATE_EVERY: Duration = Duration::from_secs(2);
/// Most tokens issued and not yet used or expired; past it the oldest are
/// forgotten (and can no longer open a socket).
pub const MAX_OUTSTANDING: usize = 65_536;

/// The keys console tokens are signed and checked with, and the tokens
/// issued and not yet used (see the module docs on revocation).
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// By token id: who asked for it, and when it expires.
    outstanding: Mutex<HashMap<String, (Principal, u64)>>,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKeys(..)")
    }
}

/// What a console token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsoleClaims {
    /// The user.
    pub sub: String,
    /// The server.
    pub srv: String,
    /// The user's permissions on the server when the token was issued.
    pub perms: Vec<String>,
    /// Issued at, seconds since the epoch.
    pub iat: u64,
    /// Expires at, seconds since the epoch.
    pub exp: u64,
    /// Marks console tokens apart from every other JWT the Panel signs.
    pub aud: String,
    /// The token's id: each is accepted once.
    pub jti: String,
}

const AUDIENCE: &str = "cap-console";

/// Why a console token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Bad signature, wrong algorithm, wrong audience or malformed.
    #[error("the token is invalid")]
    Invalid,
    /// It expired.
    #[error("the token has expired")]
    Expired,
    /// It is for another server.
    #[error("the token is for another server")]
    WrongServer,
    /// It was used before (or forgotten: the Panel restarted, or too many
    /// tokens were outstanding).
    #[error("the token was used before; fetch a new one")]
    Used,
}

fn epoch_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl TokenKeys {
    /// Fresh random keys.
    pub fn generate() -> Self {
        let secret: [u8; 32] = rand::random();
        TokenKeys {
            encoding: EncodingKey::from_secret(&secret),
            decoding: DecodingKey::from_secret(&secret),
            outstanding: Mutex::default(),
        }
    }

    /// A single-use token for `principal` on `server` with `permissions`
    /// (theirs there), and its claims.
    ///
    /// # Errors
    ///
    /// Signing failed (it cannot with an HMAC key).
    pub fn issue(
        &self,
        principal: &Principal,
        server: &str,
        permissions: Vec<String>,
    ) -> Result<(String, ConsoleClaims), ApiError> {
        let iat = epoch_secs();
        let claims = ConsoleClaims {
            sub: principal.user_id().to_owned(),
            srv: server.to_owned(),
            perms: permissions,
            iat,
            exp: iat + TOKEN_TTL.as_secs(),
            aud: AUDIENCE.to_owned(),
            jti: hex::encode(rand::random::<[u8; 16]>()),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| ApiError::Internal(Box::new(e)))?;
        let mut outstanding = self.outstanding.lock().unwrap_or_else(|p| p.into_inner());
        outstanding.retain(|_, (_, exp)| *exp > iat);
        while outstanding.len() >= MAX_OUTSTANDING {
            let oldest = outstanding
                .iter()
                .min_by_key(|(_, (_, exp))| *exp)
                .map(|(jti, _)| jti.clone());
            match oldest {
                Some(jti) => outstanding.remove(&jti),
                None => break,
            };
        }
        outstanding.insert(claims.jti.clone(), (principal.clone(), claims.exp));
        Ok((token, claims))
    }

    /// Checks a token for `server` and uses it up: the claims and the
    /// caller who asked for it.
    ///
    /// # Errors
    ///
    /// [`TokenError`]; [`TokenError::Used`] the second time.
    pub fn redeem(
        &self,
        token: &str,
        server: &str,
    ) -> Result<(ConsoleClaims, Principal), TokenError> {
        let claims = self.verify(token, server)?;
        let mut outstanding = self.outstanding.lock().unwrap_or_else(|p| p.into_inner());
        match outstanding.remove(&claims.jti) {
            Some((principal, _)) if principal.user_id() == claims.sub => Ok((claims, principal)),
            _ => Err(TokenError::Used),
        }
    }

    /// Checks a token's signature, audience, expiry and server (without
    /// using it up).
    ///
    /// # Errors
    ///
    /// [`TokenError`].
    pub fn verify(&self, token: &str, server: &str) -> Result<ConsoleClaims, TokenError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[AUDIENCE]);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "aud", "sub"]);
        let claims = jsonwebtoken::decode::<ConsoleClaims>(token, &self.decoding, &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })?
            .claims;
        if claims.srv != server {
            return Err(TokenError::WrongServer);
        }
        Ok(claims)
    }
}

#[derive(Debug, Deserialize)]
struct Inbound {
    event: String,
    #[serde(default)]
    args: Vec<Value>,
}

fn frame(event: &str, args: Value) -> Message {
    Message::Text(json!({ "event": event, "args": args }).to_string().into())
}

/// The browsers' console WebSocket.
pub async fn socket(
    State(state): State<AppState>,
    Path(server_id): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let upgrade = upgrade.map_err(|rejection| {
        ApiError::BadRequest(format!("a WebSocket upgrade is required: {rejection}"))
    })?;
    let ip = Some(peer.ip().to_canonical());
    Ok(upgrade
        .max_message_size(MAX_FRAME)
        .on_upgrade(move |socket| async move {
            Viewer {
                state,
                server_id,
                ip,
                claims: None,
                principal: None,
                checked_at: None,
                session_ends_at: None,
            }
            .run(socket)
            .await;
        }))
}

struct Viewer {
    state: AppState,
    server_id: String,
    ip: Option<std::net::IpAddr>,
    claims: Option<ConsoleClaims>,
    /// Who asked for the token, as authenticated then.
    principal: Option<Principal>,
    /// The database version access was last checked at (`None`: never, or
    /// a backend without versions, which checks every time).
    checked_at: Option<ReadVersion>,
    /// When the login session behind the token reaches its absolute
    /// lifetime (`None`: an API key, or a principal without a session).
    session_ends_at: Option<time::OffsetDateTime>,
}

/// Why a socket's caller may no longer use it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum Revoked {
    #[error("the session ended, or the user was disabled or deleted")]
    Credential,
    #[error("the server no longer exists or is no longer visible to you")]
    Server,
    #[error("your permissions on this server changed (lost {0}); fetch a new token")]
    Reduced(String),
    #[error("the database is unavailable")]
    Unavailable,
}

type Sink = futures::stream::SplitSink<WebSocket, Message>;

impl Viewer {
    async fn run(self, socket: WebSocket) {
        let mut guard = self.state.agents().session();
        let (mut sink, stream) = socket.split();
        tokio::select! {
            () = self.watch(&mut sink, stream) => {}
            () = guard.closing() => {
                let _ = sink.send(Message::Close(None)).await;
            }
        }
    }

    async fn watch(mut self, sink: &mut Sink, mut stream: futures::stream::SplitStream<WebSocket>) {
        // Authenticate first; nothing is sent before.
        let first = tokio::time::timeout(AUTH_TIMEOUT, read(&mut stream)).await;
        let Ok(Some(Inbound { event, args })) = first else {
            return;
        };
        if event != "auth" || !self.authenticate(&mut *sink, &args).await {
            let _ = sink.send(Message::Close(None)).await;
            return;
        }
        let channel = self.state.agents().console(&self.server_id);
        let (history, mut frames) = channel.history_and_subscribe();
        if self.send_status(&mut *sink).await.is_err()
            || send_lines(&mut *sink, history).await.is_err()
        {
            return;
        }
        if let Some(stats) = channel.stats()
            && sink.send(frame("stats", json!([stats]))).await.is_err()
        {
            return;
        }
        // The expiry the browser was last warned about.
        let mut warned = 0u64;
        let mut revalidate = tokio::time::interval(REVALIDATE_EVERY);
        revalidate.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let exp = self.claims.as_ref().map_or(0, |c| c.exp);
            let now = epoch_secs();
            let warn_at = exp.saturating_sub(EXPIRY_WARNING.as_secs());
            let until_warning = Duration::from_secs(warn_at.saturating_sub(now));
            let until_expiry = Duration::from_secs(exp.saturating_sub(now));
            tokio::select! {
                () = tokio::time::sleep(until_warning), if warned != exp => {
                    warned = exp;
                    if sink.send(frame("token expiring", json!([]))).await.is_err() {
                        return;
                    }
                }
                _ = revalidate.tick() => {
                    if let Err(revoked) = self.revalidate().await {
                        if revoked == Revoked::Unavailable {
                            continue;
                        }
                        let _ = sink.send(frame("access revoked", json!([revoked.to_string()]))).await;
                        let _ = sink.send(Message::Close(None)).await;
                        return;
                    }
                }
                () = tokio::time::sleep(until_expiry) => {
                    let _ = sink.send(frame("token expired", json!([]))).await;
                    let _ = sink.send(Message::Close(None)).await;
                    return;
                }
                received = frames.recv() => {
                    let message = match received {
                        Ok(ConsoleFrame::Lines(lines)) => {
                            let mut ok = true;
                            for line in lines.iter() {
                                if sink.send(frame("console output", json!([line]))).await.is_err() {
                                    ok = false;
                                    break;
                                }
                            }
                            if !ok {
                                return;
                            }
                            continue;
                        }
                        Ok(ConsoleFrame::Dropped(n)) => frame("dropped", json!([n])),
                        Ok(ConsoleFrame::Event(event)) => frame("console event", json!([event])),
                        Ok(ConsoleFrame::Stats(stats)) => frame("stats", json!([stats])),
                        Ok(ConsoleFrame::State(state)) => frame("status", json!([state])),
                        Err(RecvError::Lagged(missed)) => frame("dropped", json!([missed])),
                        Err(RecvError::Closed) => return,
                    };
                    if sink.send(message).await.is_err() {
                        return;
                    }
                }
                inbound = read(&mut stream) => {
                    let Some(inbound) = inbound else { return };
                    if !self.handle(&mut *sink, &channel, inbound).await {
                        return;
                    }
                }
            }
        }
    }

    /// Checks an `auth` frame's token; answers `auth success` or
    /// `jwt error`.
    async fn authenticate(&mut self, sink: &mut Sink, args: &[Value]) -> bool {
        let token = args.first().and_then(Value::as_str).unwrap_or_default();
        match self.state.console_tokens().redeem(token, &self.server_id) {
            Ok((claims, principal)) => {
                if let Some(old) = &self.claims
                    && old.sub != claims.sub
                {
                    let _ = sink
                        .send(frame("jwt error", json!(["the token is for another user"])))
                        .await;
                    return false;
                }
                self.session_ends_at = match self.session_end(&principal).await {
                    Ok(end) => end,
                    Err(()) => {
                        let _ = sink
                            .send(frame("jwt error", json!(["the database is unavailable"])))
                            .await;
                        return false;
                    }
                };
                self.claims = Some(claims);
                self.principal = Some(principal);
                self.checked_at = None;
                sink.send(frame("auth success", json!([]))).await.is_ok()
            }
            Err(error) => {
                let _ = sink
                    .send(frame("jwt error", json!([error.to_string()])))
                    .await;
                false
            }
        }
    }

    async fn send_status(&self, sink: &mut Sink) -> Result<(), axum::Error> {
        let state = match server::get(self.state.db(), &self.server_id).await {
            Ok(Some(server)) => server.state,
            _ => "unknown".to_owned(),
        };
        sink.send(frame("status", json!([state]))).await
    }

    /// Handles one browser frame; `false` ends the session.
    async fn handle(
        &mut self,
        sink: &mut Sink,
        channel: &crate::agents::ConsoleChannel,
        Inbound { event, args }: Inbound,
    ) -> bool {
        let arg = args.first().and_then(Value::as_str).unwrap_or_default();
        let reply = match event.as_str() {
            "auth" => return self.authenticate(sink, &args).await,
            "send logs" => return send_lines(sink, channel.history()).await.is_ok(),
            "send command" => self.command(CommandAction::Console, Some(arg)).await,
            "set state" => match arg {
                "start" => self.command(CommandAction::Start, None).await,
                "stop" => self.command(CommandAction::Stop, None).await,
                "restart" => self.command(CommandAction::Restart, None).await,
                "kill" => self.command(CommandAction::Kill, None).await,
                other => error_frame(
                    "invalid-state",
                    &format!("unknown power action {other:?}; use start, stop, restart or kill"),
                ),
            },
            other => error_frame("unknown-event", &format!("unknown event {other:?}")),
        };
        sink.send(reply).await.is_ok()
    }

    /// When `principal`'s login session reaches its absolute lifetime.
    async fn session_end(&self, principal: &Principal) -> Result<Option<time::OffsetDateTime>, ()> {
        let (Some(crate::http::Credential::Session(session_id)), Some(identity)) =
            (principal.credential(), self.state.identity())
        else {
            return Ok(None);
        };
        let lifetime = time::Duration::try_from(identity.options().session_lifetime)
            .unwrap_or(time::Duration::MAX);
        let started = crate::identity::users::session_started_at(self.state.db(), session_id)
            .await
            .map_err(|_| ())?;
        Ok(started.map(|started| started.saturating_add(lifetime)))
    }

    /// The caller and their access to the server as the database says now.
    async fn access_now(&self) -> Result<(server::Server, access::ServerAccess), Revoked> {
        if self
            .session_ends_at
            .is_some_and(|end| time::OffsetDateTime::now_utc() >= end)
        {
            return Err(Revoked::Credential);
        }
        let db = self.state.db();
        let Some(principal) = &self.principal else {
            return Err(Revoked::Credential);
        };
        // A caller who must set a new password first keeps no console.
        let principal = auth::recheck(db, principal)
            .await
            .map_err(|_| Revoked::Unavailable)?
            .filter(|p| !p.password_change_required())
            .ok_or(Revoked::Credential)?;
        let server = server::get(db, &self.server_id)
            .await
            .map_err(|_| Revoked::Unavailable)?
            .ok_or(Revoked::Server)?;
        let access = access::resolve(db, &principal, &server)
            .await
            .map_err(|_| Revoked::Unavailable)?
            .ok_or(Revoked::Server)?;
        Ok((server, access))
    }

    /// Checks, if the database changed since the last check, that the
    /// caller still holds every permission the token carried.
    async fn revalidate(&mut self) -> Result<(), Revoked> {
        // The session's end comes with time, not with a database change.
        if self
            .session_ends_at
            .is_some_and(|end| time::OffsetDateTime::now_utc() >= end)
        {
            return Err(Revoked::Credential);
        }
        let version = self
            .state
            .db()
            .read_version()
            .await
            .map_err(|_| Revoked::Unavailable)?;
        if version.is_some() && version == self.checked_at {
            return Ok(());
        }
        let (_, access) = self.access_now().await?;
        if let Some(claims) = &self.claims
            && let Some(lost) = claims
                .perms
                .iter()
                .find(|p| !p.parse::<Permission>().is_ok_and(|p| access.has(p)))
        {
            return Err(Revoked::Reduced(lost.clone()));
        }
        self.checked_at = version;
        Ok(())
    }

    async fn command(&self, action: CommandAction, line: Option<&str>) -> Message {
        let Some(claims) = &self.claims else {
            return error_frame("unauthenticated", "send auth first");
        };
        let gate = action.permission();
        let permission = gate.permission().as_str();
        let forbidden = || {
            error_frame(
                "forbidden",
                &format!("missing permission {permission} on this server"),
            )
        };
        if !claims.perms.iter().any(|p| p == permission) {
            return forbidden();
        }
        // Authorised now, not by the token's snapshot.
        let server = match self.access_now().await {
            Ok((server, access)) if access.passes(gate) => server,
            Ok(_) => return forbidden(),
            Err(Revoked::Unavailable) => {
                return error_frame("unavailable", "the database is unavailable");
            }
            Err(Revoked::Server) => {
                return error_frame("not-found", "the server no longer exists");
            }
            Err(revoked) => return error_frame("access-revoked", &revoked.to_string()),
        };
        let actor = Actor {
            user_id: Some(claims.sub.clone()),
            ip: self.ip,
            request_id: None,
        };
        match commands::enqueue(
            self.state.db(),
            self.state.plugins(),
            &server,
            action,
            line,
            &actor,
        )
        .await
        {
            Ok(command) => {
                if let Some(node) = &command.node_id {
                    self.state.agents().wake(node);
                }
                frame("command accepted", json!([command.id]))
            }
            Err(ServersError::HookDenied { reason, .. }) => error_frame("hook-denied", &reason),
            Err(ServersError::Invalid(problems)) => error_frame(
                "validation-failed",
                &problems
                    .iter()
                    .map(|p| format!("{}: {}", p.field, p.message))
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            Err(ServersError::Conflict { code, message }) => error_frame(code.as_str(), &message),
            Err(error) => {
                tracing::warn!(%error, "a console command failed");
                error_frame("unavailable", "the command could not be queued")
            }
        }
    }
}

fn error_frame(code: &str, message: &str) -> Message {
    frame("error", json!([{ "code": code, "message": message }]))
}

async fn send_lines(sink: &mut Sink, lines: Vec<String>) -> Result<(), axum::Error> {
    for line in lines {
        sink.send(frame("console output", json!([line]))).await?;
    }
    Ok(())
}

/// The next well-formed frame; `None` when the socket closed. Malformed
/// frames are skipped.
async fn read(stream: &mut futures::stream::SplitStream<WebSocket>) -> Option<Inbound> {
    loop {
        match stream.next().await? {
            Ok(Message::Text(text)) => {
                if let Ok(inbound) = serde_json::from_str::<Inbound>(text.as_str()) {
                    return Some(inbound);
                }
            }
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_verifies_only_for_its_server_and_only_with_its_key() {
        let keys = TokenKeys::generate();
        let (token, claims) = keys
            .issue(
                &Principal::new("usr_1"),
                "srv_1",
                vec!["control.console".into()],
            )
            .unwrap();
        assert_eq!(keys.verify(&token, "srv_1").unwrap(), claims);
        assert_eq!(keys.verify(&token, "srv_2"), Err(TokenError::WrongServer));
        assert_eq!(
            TokenKeys::generate().verify(&token, "srv_1"),
            Err(TokenError::Invalid)
        );
        assert_eq!(keys.verify("not.a.jwt", "srv_1"), Err(TokenError::Invalid));
    }

    #[test]
    fn an_expired_token_is_refused_as_expired() {
        let keys = TokenKeys::generate();
        let claims = ConsoleClaims {
            sub: "usr_1".into(),
            srv: "srv_1".into(),
            perms: vec![],
            iat: 1,
            exp: 2,
            aud: AUDIENCE.into(),
            jti: "0".into(),
        };
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &keys.encoding).unwrap();
        assert_eq!(keys.verify(&token, "srv_1"), Err(TokenError::Expired));
    }

    #[test]
    fn an_unsigned_token_is_refused() {
        let keys = TokenKeys::generate();
        // {"alg":"none"} . claims . no signature
        let header = "eyJhbGciOiJub25lIn0";
        let body = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            br#"{"sub":"u","srv":"srv_1","perms":["control.console"],"iat":1,"exp":99999999999,"aud":"cap-console","jti":"0"}"#,
        );
        assert_eq!(
            keys.verify(&format!("{header}.{body}."), "srv_1"),
            Err(TokenError::Invalid)
        );
    }

    #[test]
    fn a_token_is_redeemed_once_for_the_caller_who_asked_for_it() {
        let keys = TokenKeys::generate();
        let principal = Principal::new("usr_1")
            .with_credential(crate::http::Credential::Session("ses_1".into()));
        let (token, claims) = keys
            .issue(&principal, "srv_1", vec!["control.console".into()])
            .unwrap();
        assert_eq!(
            keys.redeem(&token, "srv_2").map(|_| ()),
            Err(TokenError::WrongServer)
        );
        assert_eq!(
            keys.redeem(&token, "srv_1").unwrap(),
            (claims, principal.clone())
        );
        assert_eq!(
            keys.redeem(&token, "srv_1").map(|_| ()),
            Err(TokenError::Used)
        );
        // Another token of the same caller is its own ticket.
        let (again, _) = keys.issue(&principal, "srv_1", vec![]).unwrap();
        assert!(keys.redeem(&again, "srv_1").is_ok());
    }
}
