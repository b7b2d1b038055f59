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

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::ws::{
    Message, WebSocket, WebSocketUpgrade, rejection::WebSocketUpgradeRejection,
};
use axum::extract::{ConnectInfo, Path, State};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::ConsoleFrame;
use crate::db::Actor;
use crate::http::{ApiError, AppState};
use crate::servers::commands::{self, CommandAction};
use crate::servers::{ServersError, server};

/// How long a console token is valid.
pub const TOKEN_TTL: Duration = Duration::from_secs(10 * 60);
/// How long before expiry the browser is warned.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(60);
/// How long a new socket has to authenticate.
const AUTH_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest frame a browser may send.
const MAX_FRAME: usize = 16 * 1024;

/// The keys console tokens are signed and checked with.
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
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
        }
    }

    /// A token for `user` on `server` with `permissions`, and its claims.
    ///
    /// # Errors
    ///
    /// Signing failed (it cannot with an HMAC key).
    pub fn issue(
        &self,
        user: &str,
        server: &str,
        permissions: Vec<String>,
    ) -> Result<(String, ConsoleClaims), ApiError> {
        let iat = epoch_secs();
        let claims = ConsoleClaims {
            sub: user.to_owned(),
            srv: server.to_owned(),
            perms: permissions,
            iat,
            exp: iat + TOKEN_TTL.as_secs(),
            aud: AUDIENCE.to_owned(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| ApiError::Internal(Box::new(e)))?;
        Ok((token, claims))
    }

    /// Checks a token for `server`.
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
) -> Response {
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => {
            return ApiError::BadRequest(format!("a WebSocket upgrade is required: {rejection}"))
                .into_response();
        }
    };
    let ip = Some(peer.ip().to_canonical());
    upgrade
        .max_message_size(MAX_FRAME)
        .on_upgrade(move |socket| async move {
            Viewer {
                state,
                server_id,
                ip,
                claims: None,
            }
            .run(socket)
            .await;
        })
}

struct Viewer {
    state: AppState,
    server_id: String,
    ip: Option<std::net::IpAddr>,
    claims: Option<ConsoleClaims>,
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
        let mut frames = channel.subscribe();
        if self.send_status(&mut *sink).await.is_err()
            || send_history(&mut *sink, &channel).await.is_err()
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
        match self.state.console_tokens().verify(token, &self.server_id) {
            Ok(claims) => {
                if let Some(old) = &self.claims
                    && old.sub != claims.sub
                {
                    let _ = sink
                        .send(frame("jwt error", json!(["the token is for another user"])))
                        .await;
                    return false;
                }
                self.claims = Some(claims);
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
        channel: &super::ConsoleChannel,
        Inbound { event, args }: Inbound,
    ) -> bool {
        let arg = args.first().and_then(Value::as_str).unwrap_or_default();
        let reply = match event.as_str() {
            "auth" => return self.authenticate(sink, &args).await,
            "send logs" => return send_history(sink, channel).await.is_ok(),
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

    async fn command(&self, action: CommandAction, line: Option<&str>) -> Message {
        let Some(claims) = &self.claims else {
            return error_frame("unauthenticated", "send auth first");
        };
        let permission = action.permission();
        if !claims.perms.iter().any(|p| p == permission) {
            return error_frame(
                "forbidden",
                &format!("missing permission {permission} on this server"),
            );
        }
        let server = match server::get(self.state.db(), &self.server_id).await {
            Ok(Some(server)) => server,
            Ok(None) => return error_frame("not-found", "the server no longer exists"),
            Err(_) => return error_frame("unavailable", "the database is unavailable"),
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
            Err(ServersError::Conflict { code, message }) => error_frame(code, &message),
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

async fn send_history(sink: &mut Sink, channel: &super::ConsoleChannel) -> Result<(), axum::Error> {
    for line in channel.history() {
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
            .issue("usr_1", "srv_1", vec!["control.console".into()])
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
            br#"{"sub":"u","srv":"srv_1","perms":["control.console"],"iat":1,"exp":99999999999,"aud":"cap-console"}"#,
        );
        assert_eq!(
            keys.verify(&format!("{header}.{body}."), "srv_1"),
            Err(TokenError::Invalid)
        );
    }
}
