//! Asking the Panel whether an SFTP client may sign in, over the link.
//!
//! [`PanelAuth::ask`] sends an [`AgentMessage::SftpAuth`] through the
//! link's event queue and waits for the [`SftpAuthResponse`] the link hands
//! to [`PanelAuth::answer`]. Every way of not getting an answer is a
//! refusal: the link is down ([`PanelAuth::set_connected`]), it dropped
//! while waiting, or the Panel took longer than [`AUTH_TIMEOUT`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cap_protocol::AgentMessage;
use cap_protocol::sftp::{SftpAuthRequest, SftpAuthResponse, SftpCredential, SftpDecision};
use tokio::sync::{mpsc, oneshot};

use crate::files::ReadOnlyServers;

/// How long a sign-in waits for the Panel's decision (a password check
/// goes through an auth-provider plugin, which may hash slowly).
pub const AUTH_TIMEOUT: Duration = Duration::from_secs(30);

/// Sign-ins waiting for the Panel at once before more are refused.
pub const MAX_PENDING: usize = 256;

/// The Agent's side of SFTP sign-ins. Cheap to share.
#[derive(Debug)]
pub struct PanelAuth {
    outgoing: mpsc::Sender<AgentMessage>,
    pending: Mutex<HashMap<String, oneshot::Sender<SftpDecision>>>,
    connected: AtomicBool,
    next: AtomicU64,
    timeout: Duration,
    read_only: Arc<ReadOnlyServers>,
}

impl PanelAuth {
    /// Asks through `outgoing` (the link's event queue), with a set of
    /// read-only servers of its own.
    pub fn new(outgoing: mpsc::Sender<AgentMessage>) -> Arc<PanelAuth> {
        PanelAuth::with_read_only(outgoing, ReadOnlyServers::new())
    }

    /// Asks through `outgoing`; sessions refuse writes to the servers in
    /// `read_only` (the set the link keeps up to date, shared with the file
    /// transfers), whatever scope they signed in with.
    pub fn with_read_only(
        outgoing: mpsc::Sender<AgentMessage>,
        read_only: Arc<ReadOnlyServers>,
    ) -> Arc<PanelAuth> {
        Arc::new(PanelAuth {
            outgoing,
            pending: Mutex::new(HashMap::new()),
            connected: AtomicBool::new(false),
            next: AtomicU64::new(0),
            timeout: AUTH_TIMEOUT,
            read_only,
        })
    }

    /// The servers whose files are read-only now.
    pub fn read_only(&self) -> &Arc<ReadOnlyServers> {
        &self.read_only
    }

    /// The link is up (`true`) or down: going down refuses every sign-in
    /// waiting for an answer.
    pub fn set_connected(&self, connected: bool) {
        self.connected.store(connected, Ordering::SeqCst);
        if !connected {
            self.lock().clear();
        }
    }

    /// Whether the link is up.
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::SeqCst)
    }

    /// Hands the Panel's answer to the sign-in waiting for it (late and
    /// unknown answers are dropped).
    pub fn answer(&self, response: SftpAuthResponse) {
        if let Some(waiting) = self.lock().remove(&response.request_id) {
            let _ = waiting.send(response.decision);
        }
    }

    /// Asks the Panel whether `username` may sign in with `credential`.
    /// Never fails: anything but the Panel's allow is a deny with a reason.
    pub async fn ask(
        &self,
        username: &str,
        credential: SftpCredential,
        client_addr: Option<String>,
    ) -> SftpDecision {
        let deny = |reason: &str| SftpDecision::Deny {
            reason: reason.to_owned(),
        };
        if !self.is_connected() {
            return deny("the Agent is not connected to its Panel, which decides sign-ins");
        }
        let request_id = format!(
            "sftp-{}-{}",
            self.next.fetch_add(1, Ordering::Relaxed),
            uuid::Uuid::new_v4().simple()
        );
        let (answer, answered) = oneshot::channel();
        {
            let mut pending = self.lock();
            if pending.len() >= MAX_PENDING {
                return deny("too many sign-ins are waiting for the Panel");
            }
            pending.insert(request_id.clone(), answer);
        }
        let request = SftpAuthRequest {
            request_id: request_id.clone(),
            username: username.to_owned(),
            credential,
            client_addr,
        };
        let asked = tokio::time::timeout(
            Duration::from_secs(5),
            self.outgoing.send(AgentMessage::SftpAuth(request)),
        )
        .await;
        if !matches!(asked, Ok(Ok(()))) {
            self.lock().remove(&request_id);
            return deny("the link to the Panel is busy or closed");
        }
        let decision = match tokio::time::timeout(self.timeout, answered).await {
            Ok(Ok(decision)) => decision,
            Ok(Err(_)) => deny("the link to the Panel dropped before it answered"),
            Err(_) => deny("the Panel did not answer in time"),
        };
        self.lock().remove(&request_id);
        decision
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, oneshot::Sender<SftpDecision>>> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cap_protocol::sftp::SftpPermissions;

    fn password() -> SftpCredential {
        SftpCredential::Password {
            password: "pw".into(),
        }
    }

    #[tokio::test]
    async fn a_sign_in_while_the_link_is_down_is_refused_without_asking() {
        let (tx, mut rx) = mpsc::channel(4);
        let auth = PanelAuth::new(tx);
        let decision = auth.ask("a.deadbeef", password(), None).await;
        assert!(matches!(decision, SftpDecision::Deny { .. }));
        assert!(rx.try_recv().is_err(), "nothing was sent");
    }

    #[tokio::test]
    async fn the_panels_answer_reaches_the_sign_in_that_asked() {
        let (tx, mut rx) = mpsc::channel(4);
        let auth = PanelAuth::new(tx);
        auth.set_connected(true);
        let asking = {
            let task = {
                let auth = auth.clone();
                tokio::spawn(async move { auth.ask("a.deadbeef", password(), None).await })
            };
            let Some(AgentMessage::SftpAuth(request)) = rx.recv().await else {
                panic!("no request was sent");
            };
            let allow = SftpDecision::Allow {
                server_id: "srv_deadbeef".into(),
                user_id: "usr_1".into(),
                scope: Default::default(),
                permissions: SftpPermissions::all(),
            };
            auth.answer(SftpAuthResponse {
                request_id: request.request_id,
                decision: allow.clone(),
            });
            (task, allow)
        };
        let (task, allow) = asking;
        assert_eq!(task.await.expect("joins"), allow);
    }

    #[tokio::test]
    async fn a_link_that_drops_refuses_the_sign_ins_waiting() {
        let (tx, mut rx) = mpsc::channel(4);
        let auth = PanelAuth::new(tx);
        auth.set_connected(true);
        let task = {
            let auth = auth.clone();
            tokio::spawn(async move { auth.ask("a.deadbeef", password(), None).await })
        };
        let _ = rx.recv().await;
        auth.set_connected(false);
        assert!(matches!(
            task.await.expect("joins"),
            SftpDecision::Deny { .. }
        ));
    }
}
