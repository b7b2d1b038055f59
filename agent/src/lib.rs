//! # cap-agent
//!
//! The Ctrl-Alt-Play Agent: it runs game servers on a node for the Panel.
//!
//! - [`runtime`]: the [`ServerRuntime`] trait and [`NodeRuntime`] (one
//!   directory and one process group or container per server, stop
//!   escalation, limits, crash detection with automatic restarts,
//!   re-adoption of servers that kept running while the Agent was down).
//! - [`container`]: the container engine (Docker Engine API, for Docker
//!   and Podman) the container backend runs servers and installs in.
//! - [`install`]: install plans (sha256-verified downloads, scripts with
//!   time limits, files) and [`config_edit`] (properties, YAML, JSON, INI,
//!   XML, plain).
//! - [`files`]: a server's files confined to its directory (cap-std):
//!   listing, reading, resumable uploads, renames, copies, deletes,
//!   archives and pulls, within the Panel's denylist and disk limit.
//! - [`backups`]: tar.zst archives of a server's directory on the node's
//!   disk or in S3-compatible storage (streamed multipart uploads), and
//!   restores through the file manager's bounded extraction.
//! - [`isolation`]: the unprivileged user servers and install scripts run
//!   as, and the modes that keep the Agent's secrets from them.
//! - [`console`]: lines (or a drawn screen through [`terminal`]), history
//!   ring, per-server throttling, classification by
//!   the game-type plugin in the sandbox.
//! - [`agent`]: commands run once per id, in order per server.
//! - [`link`]: registration and the WebSocket to the Panel.
//! - [`plugins`]: game-type plugins pulled from the Panel (SHA-256
//!   checked) for console classification in the Agent's sandbox.
//! - [`transfer`]: server files for the Panel — file requests over the
//!   link and the HTTP endpoints that stream contents to and from clients
//!   holding a grant the Panel signed (the operations themselves are in
//!   [`files`]).
//! - [`relocation`]: moving a server to another node, as the source
//!   (streaming its files to the target Agent) or the target (unpacking
//!   them).
//! - [`sftp`]: the SFTP server, whose sign-ins the Panel decides over the
//!   link, on the same confined [`files`] layer.
//! - [`node`]: all of it assembled, as `cap agent` and `cap up` run it.
//!
//! The messages themselves live in `cap-protocol`, shared with the Panel.

pub mod agent;
pub mod backups;
pub mod config_edit;
pub mod console;
pub mod container;
pub mod files;
pub mod install;
pub mod isolation;
pub mod limits;
pub mod link;
pub mod node;
pub mod paths;
pub mod plugins;
pub mod procfs;
pub mod relocation;
pub mod runtime;
pub mod sftp;
pub mod signals;
pub mod terminal;
pub mod tls;
pub mod transfer;

pub use agent::{Agent, Delivery};
pub use console::{Classifier, ConsoleConfig, PluginClassifier};
pub use runtime::{
    Backend, Classifiers, ContainerConfig, NodeRuntime, NodeRuntimeConfig, RuntimeError,
    ServerRuntime,
};
