//! Turning a queued command into what travels to the Agent.
//!
//! Power and install commands carry plans the game-type plugin makes for
//! the server as it is at delivery time: [`to_wire`] builds the plugin's
//! `server-context` (variables, limits, allocated ports, the node's
//! platform), asks for the install, startup and stop plans, and wraps them
//! in a [`cap_protocol::Command`]. When the plugin is not active or fails,
//! the command cannot be delivered and fails with a [`PlanError`] naming
//! why, rather than sitting in the queue forever. A start, restart or
//! install of a server suspended since it was queued fails the same way
//! (`server-suspended`); an install's plan says `wipe` when the command
//! asked for the server's directory to be emptied first.

use cap_protocol::{Action, ConsoleInput, GamePackage, RestartPolicy, ServerLimits, ServerSpec};
use cap_runtime::api;

use crate::db::{Database, DbError};
use crate::plugins::PluginManager;
use crate::servers::{Command, CommandAction, Node, Server, nodes, server};

/// Why a command could not be turned into a wire command.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The server no longer exists.
    #[error("the server {0} no longer exists")]
    ServerGone(String),
    /// Its game-type plugin is not active on this Panel.
    #[error("the game-type plugin {0} is not active")]
    GameInactive(String),
    /// The plugin failed to make a plan.
    #[error("the game-type plugin {plugin} could not plan the {action}: {reason}")]
    Plugin {
        /// The plugin.
        plugin: String,
        /// The command's action.
        action: &'static str,
        /// What it said, or how it failed.
        reason: String,
    },
    /// A console command without its line.
    #[error("the console command has no line")]
    MissingLine,
    /// The server's node cannot run its game type.
    #[error("{0}")]
    Unsupported(String),
    /// The server was suspended after the command was queued: a start,
    /// restart or install is not delivered.
    #[error("the server is suspended: {0}")]
    Suspended(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl PlanError {
    /// A stable code for the command's `failed` detail.
    pub fn code(&self) -> &'static str {
        match self {
            PlanError::ServerGone(_) => "server-gone",
            PlanError::GameInactive(_) => "game-inactive",
            PlanError::Plugin { .. } => "plan-failed",
            PlanError::MissingLine => "missing-line",
            PlanError::Unsupported(_) => "unsupported-runtime",
            PlanError::Suspended(_) => "server-suspended",
            PlanError::Db(_) => "database",
        }
    }

    /// Whether trying again later may succeed (the database was down),
    /// as opposed to a permanent failure of this command.
    pub fn is_transient(&self) -> bool {
        matches!(self, PlanError::Db(_))
    }
}

/// The platform a node's Agent announced in its capabilities
/// (`os-linux`, `arch-arm64`); Linux on amd64 when it did not.
pub fn node_platform(node: Option<&Node>) -> api::Platform {
    let has = |cap: &str| node.is_some_and(|n| n.capabilities.iter().any(|c| c == cap));
    api::Platform {
        os: if has("os-windows") {
            api::Os::Windows
        } else if has("os-macos") {
            api::Os::Macos
        } else {
            api::Os::Linux
        },
        arch: if has("arch-arm64") {
            api::Arch::Arm64
        } else {
            api::Arch::Amd64
        },
    }
}

/// The `server-context` the game-type plugin plans for. `host_address` is
/// what the node's Agent said in its hello: where servers reach the
/// node's host (`node-context.host-address`); empty when it did not say.
///
/// # Errors
///
/// Database errors.
pub async fn server_context(
    db: &Database,
    server: &Server,
    host_address: Option<&str>,
) -> Result<api::ServerContext, DbError> {
    let allocations = nodes::allocations_of_server(db, &server.id).await?;
    let node = match &server.node_id {
        Some(id) => nodes::get(db, id).await?,
        None => None,
    };
    Ok(api::ServerContext {
        server_id: server.id.clone(),
        name: server.name.clone(),
        memory_mb: server.limits.memory_mb,
        disk_mb: server.limits.disk_mb,
        cpu_percent: u32::try_from(server.limits.cpu_percent).unwrap_or(u32::MAX),
        variables: server
            .variables
            .iter()
            .map(|(key, value)| api::KeyValue {
                key: key.clone(),
                value: value.clone(),
            })
            .collect(),
        // The primary first (`game`), then the extra allocations.
        ports: allocations
            .iter()
            .enumerate()
            .map(|(i, a)| api::AllocatedPort {
                name: if i == 0 {
                    "game".to_owned()
                } else {
                    api::AllocatedPort::extra_name(i)
                },
                ip: a.ip.clone(),
                port: a.port,
            })
            .collect(),
        platform: node_platform(node.as_ref()),
        // Servers from before plugins offered several game types name
        // none: the plugin's only one (filled in by `to_wire`).
        game_type: server.game_type.clone().unwrap_or_default(),
        image: server.image.clone(),
        startup_command: server.startup_command.clone(),
        node: api::NodeContext {
            name: node.as_ref().map(|n| n.name.clone()).unwrap_or_default(),
            address: node.as_ref().map(|n| n.address.clone()).unwrap_or_default(),
            host_address: host_address.unwrap_or_default().to_owned(),
        },
    })
}

/// The wire command for `command`.
///
/// # Errors
///
/// [`PlanError`].
pub async fn to_wire(
    db: &Database,
    plugins: Option<&PluginManager>,
    command: &Command,
    host_address: Option<&str>,
) -> Result<cap_protocol::Command, PlanError> {
    let action = match command.action {
        CommandAction::Stop => Action::Stop,
        CommandAction::Kill => Action::Kill,
        CommandAction::Delete => Action::Delete,
        CommandAction::Console => {
            let line = command
                .payload
                .as_ref()
                .and_then(|p| p.get("line"))
                .and_then(|l| l.as_str())
                .ok_or(PlanError::MissingLine)?;
            Action::ConsoleInput(ConsoleInput {
                line: line.to_owned(),
            })
        }
        CommandAction::Start | CommandAction::Restart | CommandAction::Install => {
            let server = server::get(db, &command.server_id)
                .await?
                .ok_or_else(|| PlanError::ServerGone(command.server_id.clone()))?;
            // The suspension fails pending commands as it commits; this
            // catches one read from the outbox just before.
            if let Some(suspension) = &server.suspension {
                return Err(PlanError::Suspended(suspension.reason.clone()));
            }
            let plugin = plugins
                .and_then(|p| p.active(&server.game_plugin))
                .ok_or_else(|| PlanError::GameInactive(server.game_plugin.clone()))?;
            let mut context = server_context(db, &server, host_address).await?;
            if context.game_type.is_empty() {
                let games = plugin.game_types().await.map_err(|e| PlanError::Plugin {
                    plugin: server.game_plugin.clone(),
                    action: command.action.as_str(),
                    reason: e.to_string(),
                })?;
                if let [only] = games.as_slice() {
                    context.game_type.clone_from(&only.id);
                }
            }
            let node = match &server.node_id {
                Some(id) => nodes::get(db, id).await?,
                None => None,
            };
            if let Some(problem) = node
                .as_ref()
                .and_then(|node| server::runtime_problem(node, plugin.manifest()))
            {
                return Err(PlanError::Unsupported(problem));
            }
            let in_container = node
                .as_ref()
                .is_some_and(|n| n.capabilities.iter().any(|c| c == "container"));
            // The server's image (one its game type lists), else the
            // package's; installs run in the plan's image, else the
            // package's install image, else the server's image.
            let game = plugin.manifest().game.clone();
            let image = server
                .image
                .clone()
                .or_else(|| game.as_ref().and_then(|g| g.image.clone()))
                .filter(|_| in_container);
            let install_image = game
                .as_ref()
                .and_then(|g| g.install_image.clone())
                .or_else(|| image.clone())
                .filter(|_| in_container);
            let failed = |reason: String| PlanError::Plugin {
                plugin: server.game_plugin.clone(),
                action: command.action.as_str(),
                reason,
            };
            if command.action == CommandAction::Install {
                let plan = plugin
                    .install_plan(&context)
                    .await
                    .map_err(|e| failed(e.to_string()))?
                    .map_err(|e| failed(e.message))?;
                let mut plan: cap_protocol::InstallPlan = plan.into();
                plan.image = plan.image.take().or(install_image).filter(|_| in_container);
                // A reinstall asked with `wipe` (the command's payload).
                plan.wipe = command
                    .payload
                    .as_ref()
                    .and_then(|p| p.get("wipe"))
                    .and_then(serde_json::Value::as_bool)
                    .unwrap_or(false);
                Action::Install(plan)
            } else {
                let startup = plugin
                    .startup_plan(&context)
                    .await
                    .map_err(|e| failed(e.to_string()))?
                    .map_err(|e| failed(e.message))?;
                let stop = plugin
                    .stop_plan(&context)
                    .await
                    .map_err(|e| failed(e.to_string()))?;
                let spec = ServerSpec {
                    game: server.game_plugin.clone(),
                    startup: startup.into(),
                    stop: stop.into(),
                    limits: ServerLimits {
                        memory_mb: server.limits.memory_mb,
                        cpu_percent: u32::try_from(server.limits.cpu_percent).unwrap_or(u32::MAX),
                        max_processes: 0,
                        disk_mb: server.limits.disk_mb,
                    },
                    restart: RestartPolicy {
                        enabled: true,
                        ..RestartPolicy::default()
                    },
                    plugin: match plugins {
                        Some(manager) => {
                            manager
                                .get(&server.game_plugin)
                                .await
                                .ok()
                                .map(|record| GamePackage {
                                    id: record.id,
                                    version: record.version.to_string(),
                                    component_sha256: record.component_sha256,
                                })
                        }
                        None => None,
                    },
                    image,
                    ports: context
                        .ports
                        .iter()
                        .map(|p| cap_protocol::PortAllocation {
                            ip: p.ip.clone(),
                            port: p.port,
                        })
                        .collect(),
                };
                if command.action == CommandAction::Start {
                    Action::Start(spec)
                } else {
                    Action::Restart(spec)
                }
            }
        }
    };
    Ok(cap_protocol::Command {
        id: command.id.clone(),
        server_id: command.server_id.clone(),
        action,
    })
}
