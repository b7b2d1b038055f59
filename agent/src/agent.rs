//! Executing the Panel's commands: once per command id, in order per
//! server.
//!
//! [`Agent::accept`] records a command id the first time it is seen; a
//! re-delivery (after a reconnect, say) is recognised, acknowledged again
//! and — when it already finished — answered with the stored outcome
//! instead of running again. The ids of finished commands are kept (the
//! last [`COMMAND_LOG_SIZE`]) in `commands.json` in the data directory, so
//! this holds across Agent restarts too. Commands for one server run one
//! after another in arrival order (a queue per server); different servers'
//! commands run concurrently.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use cap_protocol::files::{FileError, FileErrorCode, FileRequest, FileResponse, FileResult};
use cap_protocol::sftp::SftpAuthResponse;
use cap_protocol::{Action, AgentMessage, Command, CommandOutcome, ServerSpec};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::backups::Backups;
use crate::install::write_atomically;
use crate::plugins::PluginSource;
use crate::runtime::ServerRuntime;
use crate::sftp::PanelAuth;
use crate::transfer::Transfers;

/// How many finished command ids are remembered.
pub const COMMAND_LOG_SIZE: usize = 4_096;

/// What [`Agent::accept`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// First delivery: it has been queued.
    New,
    /// Delivered before and still running: its result will follow.
    InProgress,
    /// Delivered before and finished: this was the outcome.
    Done(CommandOutcome),
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct CommandLog {
    /// Finished commands, oldest first.
    done: VecDeque<(String, CommandOutcome)>,
    #[serde(skip)]
    running: HashMap<String, ()>,
}

impl CommandLog {
    fn outcome(&self, id: &str) -> Option<&CommandOutcome> {
        self.done
            .iter()
            .rev()
            .find(|(d, _)| d == id)
            .map(|(_, o)| o)
    }
}

/// Runs commands on a [`ServerRuntime`]. Cheap to clone.
pub struct Agent<R> {
    runtime: Arc<R>,
    log: Arc<Mutex<CommandLog>>,
    log_path: PathBuf,
    queues: Arc<Mutex<HashMap<String, mpsc::UnboundedSender<Command>>>>,
    results: mpsc::UnboundedSender<AgentMessage>,
    plugins: Option<Arc<PluginSource>>,
    transfers: Option<Arc<Transfers>>,
    sftp: Option<Arc<PanelAuth>>,
    backups: Arc<Backups>,
}

impl<R> Clone for Agent<R> {
    fn clone(&self) -> Self {
        Self {
            runtime: self.runtime.clone(),
            log: self.log.clone(),
            log_path: self.log_path.clone(),
            queues: self.queues.clone(),
            results: self.results.clone(),
            plugins: self.plugins.clone(),
            transfers: self.transfers.clone(),
            sftp: self.sftp.clone(),
            backups: self.backups.clone(),
        }
    }
}

impl<R: ServerRuntime> Agent<R> {
    /// An agent keeping its command log in `data_dir`; finished commands'
    /// [`AgentMessage::CommandResult`]s go to the returned receiver.
    pub fn new(
        runtime: Arc<R>,
        data_dir: impl Into<PathBuf>,
    ) -> (Self, mpsc::UnboundedReceiver<AgentMessage>) {
        let data_dir = data_dir.into();
        let log_path = data_dir.join("commands.json");
        let log = std::fs::read(&log_path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        let (results, receiver) = mpsc::unbounded_channel();
        (
            Self {
                runtime,
                log: Arc::new(Mutex::new(log)),
                log_path,
                queues: Arc::new(Mutex::new(HashMap::new())),
                results,
                plugins: None,
                transfers: None,
                sftp: None,
                backups: Backups::new(&data_dir),
            },
            receiver,
        )
    }

    /// Pulls the game-type plugins start commands name from `source` when
    /// the runtime has no classifier for them yet.
    pub fn with_plugins(mut self, source: Arc<PluginSource>) -> Self {
        self.plugins = Some(source);
        self
    }

    /// Serves file requests and transfers with `transfers`.
    pub fn with_transfers(mut self, transfers: Arc<Transfers>) -> Self {
        self.backups.keep_usage(transfers.disk_usage().clone());
        self.transfers = Some(transfers);
        self
    }

    /// Hands SFTP sign-in answers to `auth`, and tells it whether the link
    /// is up.
    pub fn with_sftp(mut self, auth: Arc<PanelAuth>) -> Self {
        self.sftp = Some(auth);
        self
    }

    /// The link to the Panel came up (`true`) or went down.
    pub fn set_linked(&self, linked: bool) {
        if let Some(auth) = &self.sftp {
            auth.set_connected(linked);
        }
    }

    /// Takes the Panel's set of read-only (suspended) servers
    /// ([`cap_protocol::PanelMessage::ReadOnlyServers`]): SFTP sessions and
    /// file transfers refuse writes to them from now on.
    pub fn set_read_only(&self, server_ids: Vec<String>) {
        if let Some(transfers) = &self.transfers {
            transfers.read_only().replace(server_ids.iter().cloned());
        }
        if let Some(auth) = &self.sftp {
            auth.read_only().replace(server_ids);
        }
    }

    /// Takes the Panel's answer to an SFTP sign-in.
    pub fn sftp_answer(&self, response: SftpAuthResponse) {
        if let Some(auth) = &self.sftp {
            auth.answer(response);
        }
    }

    /// Takes the Panel's grant key ([`cap_protocol::PanelMessage::GrantKey`]).
    pub fn set_grant_key(&self, public_key: &str, panel_origin: Option<&str>) {
        if let Some(transfers) = &self.transfers
            && let Err(error) = transfers.set_key(public_key, panel_origin)
        {
            tracing::warn!(%error, "file transfers stay closed");
        }
    }

    /// Runs a file request on a task of its own; its
    /// [`AgentMessage::FileResponse`] goes out with the command results.
    pub fn file_request(&self, request: FileRequest) {
        let results = self.results.clone();
        let Some(transfers) = self.transfers.clone() else {
            let response = FileResponse {
                request_id: request.request_id,
                result: FileResult::Err(FileError::new(
                    FileErrorCode::Io,
                    "this Agent serves no server files",
                )),
            };
            let _ = results.send(AgentMessage::FileResponse(response));
            return;
        };
        tokio::spawn(async move {
            let response = transfers.run(request).await;
            let _ = results.send(AgentMessage::FileResponse(response));
        });
    }

    /// Runs a backup operation on a task of its own (after any other of
    /// the same server); its [`AgentMessage::BackupDone`] goes out with the
    /// command results.
    pub fn backup_request(&self, request: cap_protocol::backups::BackupRequest) {
        let results = self.results.clone();
        let backups = self.backups.clone();
        let runtime = self.runtime.clone();
        tokio::spawn(async move {
            let report = backups.run(request, &*runtime).await;
            let _ = results.send(AgentMessage::BackupDone(report));
        });
    }

    /// Runs a step of a transfer between nodes on a task of its own; its
    /// progress and its [`AgentMessage::TransferDone`] go out with the
    /// command results.
    pub fn transfer_request(&self, request: cap_protocol::transfers::TransferRequest) {
        let results = self.results.clone();
        let runtime = self.runtime.clone();
        let Some(transfers) = self.transfers.clone() else {
            let report = cap_protocol::transfers::TransferReport {
                transfer_id: request.transfer_id,
                server_id: request.server_id,
                op: request.op.name().to_owned(),
                result: cap_protocol::transfers::TransferResult::Failed {
                    code: cap_protocol::transfers::TransferErrorCode::Io,
                    reason: "this Agent serves no file transfers (no --files-listen)".into(),
                },
            };
            let _ = results.send(AgentMessage::TransferDone(report));
            return;
        };
        tokio::spawn(async move {
            let report = crate::relocation::run(
                request,
                transfers.data_dir(),
                &*runtime,
                transfers.receiving(),
                &results,
            )
            .await;
            let _ = results.send(AgentMessage::TransferDone(report));
        });
    }

    /// The node's backups.
    pub fn backups(&self) -> &Arc<Backups> {
        &self.backups
    }

    /// Makes sure the runtime can classify `spec`'s console lines.
    async fn ensure_classifier(&self, spec: &ServerSpec) -> Result<(), CommandOutcome> {
        let (Some(source), Some(package)) = (&self.plugins, &spec.plugin) else {
            return Ok(());
        };
        if self.runtime.has_classifier(&spec.game) {
            return Ok(());
        }
        match source.classifier(package).await {
            Ok(classifier) => {
                tracing::info!(plugin = %package.id, version = %package.version, "pulled a game-type plugin from the Panel");
                self.runtime.set_classifier(&spec.game, classifier);
                Ok(())
            }
            Err(error) => Err(CommandOutcome::Failed {
                code: error.code().to_owned(),
                message: error.to_string(),
            }),
        }
    }

    /// The runtime.
    pub fn runtime(&self) -> &Arc<R> {
        &self.runtime
    }

    fn log(&self) -> std::sync::MutexGuard<'_, CommandLog> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a delivery of `command` and queues it when it is new.
    pub fn accept(&self, command: Command) -> Delivery {
        {
            let mut log = self.log();
            if let Some(outcome) = log.outcome(&command.id) {
                return Delivery::Done(outcome.clone());
            }
            if log.running.contains_key(&command.id) {
                return Delivery::InProgress;
            }
            log.running.insert(command.id.clone(), ());
        }
        let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        let sender = queues
            .entry(command.server_id.clone())
            .or_insert_with(|| self.spawn_queue());
        if let Err(mpsc::error::SendError(command)) = sender.send(command) {
            // The worker is gone (cannot happen while we hold a sender, but
            // a new one costs nothing).
            let sender = self.spawn_queue();
            let _ = sender.send(command.clone());
            queues.insert(command.server_id, sender);
        }
        Delivery::New
    }

    fn spawn_queue(&self) -> mpsc::UnboundedSender<Command> {
        let (sender, mut receiver) = mpsc::unbounded_channel::<Command>();
        let agent = self.clone();
        tokio::spawn(async move {
            while let Some(command) = receiver.recv().await {
                let id = command.id.clone();
                let outcome = agent.execute(command).await;
                agent.finish(&id, outcome.clone());
                let _ = agent.results.send(AgentMessage::CommandResult {
                    command_id: id,
                    outcome,
                });
            }
        });
        sender
    }

    fn finish(&self, id: &str, outcome: CommandOutcome) {
        let bytes = {
            let mut log = self.log();
            log.running.remove(id);
            log.done.push_back((id.to_owned(), outcome));
            while log.done.len() > COMMAND_LOG_SIZE {
                log.done.pop_front();
            }
            serde_json::to_vec(&*log)
        };
        if let Err(error) = bytes
            .map_err(std::io::Error::other)
            .and_then(|bytes| write_atomically(&self.log_path, &bytes, Some(0o600)))
        {
            tracing::warn!(%error, "could not persist the command log");
        }
    }

    /// Runs one command now (no deduplication: use [`Agent::accept`]).
    pub async fn execute(&self, command: Command) -> CommandOutcome {
        let server = command.server_id.as_str();
        tracing::info!(command = %command.id, server, action = command.action.name(), "running command");
        if let Action::Start(spec) | Action::Restart(spec) = &command.action
            && let Err(outcome) = self.ensure_classifier(spec).await
        {
            return outcome;
        }
        let result = match command.action {
            Action::Install(plan) => self.runtime.install(server, &plan).await,
            Action::Start(spec) => self.runtime.start(server, spec).await,
            Action::Stop => self.runtime.stop(server).await,
            Action::Restart(spec) => self.runtime.restart(server, spec).await,
            Action::Kill => self.runtime.kill(server).await,
            Action::Delete => match self.runtime.delete(server).await {
                // Its local backups go with it (the Panel deletes S3 ones).
                Ok(()) => {
                    if let Err(error) = self.backups.forget_server(server).await {
                        tracing::warn!(server, %error, "could not delete a deleted server's backups");
                    }
                    Ok(())
                }
                Err(error) => Err(error),
            },
            Action::ConsoleInput(input) => self.runtime.console_input(server, &input.line).await,
        };
        match result {
            Ok(()) => CommandOutcome::Ok,
            Err(error) => CommandOutcome::Failed {
                code: error.code().to_owned(),
                message: error.to_string(),
            },
        }
    }
}
