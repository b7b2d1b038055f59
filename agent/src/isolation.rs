//! Who game servers and install scripts run as, and what they can reach.
//!
//! An Agent running as root never hands root to a game server: servers and
//! install scripts run as an unprivileged user of their own ([`RunAs`]),
//! `cap-game` by default (created as a system user when absent, and
//! `nobody` when it cannot be), or the user `--run-as` names. The switch
//! happens in the child between `fork` and `exec` ([`crate::limits`]): the
//! supplementary groups are dropped, then the group and the user are set,
//! and `no_new_privs` keeps a setuid program from getting root back.
//!
//! What the servers' user can reach of the Agent's own files:
//!
//! - the data directory is `0711`: servers can pass through it to their
//!   own directory but cannot list it;
//! - `credentials.json` (the node token) and `agent-id` are `0600`, the
//!   bookkeeping directory `run/` (console logs, the console FIFOs, state)
//!   and the plugin cache `plugins/` (its key included) are `0700`, all
//!   owned by the Agent's user;
//! - `servers/` is `0711` and each `servers/<id>` belongs to the servers'
//!   user, mode `0700` ([`chown_tree`] runs before every start and
//!   install, as the Agent writes downloads and config edits as itself).
//!
//! Every server shares the one user; what keeps two servers apart is their
//! directories (mode `0700` each would not: they share the owner). Servers
//! that must not see one another need a user each (`--run-as` per Agent)
//! or the container runtime.
//!
//! An Agent that does not run as root cannot switch users: its servers run
//! as the Agent's user and can read what it can. It says so at start.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::OnceLock;

/// The default user for game servers.
pub const DEFAULT_USER: &str = "cap-game";

/// An unprivileged identity for servers and install scripts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    /// The user's name.
    pub name: String,
    /// Its user id (never 0).
    pub uid: u32,
    /// Its primary group id.
    pub gid: u32,
}

/// A `--run-as` user that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum IsolationError {
    /// No such user in `/etc/passwd`.
    #[error(
        "no user `{0}` exists on this machine (create it, or leave --run-as out for `cap-game`)"
    )]
    UnknownUser(String),
    /// The user is root.
    #[error("user `{0}` has uid 0; game servers must not run as root")]
    Root(String),
}

impl RunAs {
    /// Looks `name` up in `/etc/passwd`.
    ///
    /// # Errors
    ///
    /// [`IsolationError`] for an unknown user or one with uid 0.
    pub fn lookup(name: &str) -> Result<Self, IsolationError> {
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        let found = passwd.lines().find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            match fields.as_slice() {
                [user, _, uid, gid, ..] if *user == name => {
                    Some((uid.parse::<u32>().ok()?, gid.parse::<u32>().ok()?))
                }
                _ => None,
            }
        });
        match found {
            Some((0, _)) => Err(IsolationError::Root(name.to_owned())),
            Some((uid, gid)) => Ok(Self {
                name: name.to_owned(),
                uid,
                gid,
            }),
            None => Err(IsolationError::UnknownUser(name.to_owned())),
        }
    }

    /// The identity an Agent running as root gives its servers by default:
    /// `cap-game` (created as a system user if absent), else `nobody`.
    /// `None` when the Agent is not root (it cannot switch users). Decided
    /// once per process.
    pub fn default_for_agent() -> Option<Self> {
        static DEFAULT: OnceLock<Option<RunAs>> = OnceLock::new();
        DEFAULT
            .get_or_init(|| {
                if !agent_is_root() {
                    tracing::warn!(
                        "the Agent does not run as root: game servers run as the Agent's own user and can read its files"
                    );
                    return None;
                }
                if let Ok(user) = Self::lookup(DEFAULT_USER) {
                    return Some(user);
                }
                let created = std::process::Command::new("useradd")
                    .args([
                        "--system",
                        "--user-group",
                        "--no-create-home",
                        "--home-dir",
                        "/nonexistent",
                        "--shell",
                        "/usr/sbin/nologin",
                        DEFAULT_USER,
                    ])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .status();
                match Self::lookup(DEFAULT_USER) {
                    Ok(user) => {
                        tracing::info!(uid = user.uid, "created the system user `cap-game` for game servers");
                        Some(user)
                    }
                    Err(_) => {
                        tracing::warn!(?created, "cannot create the user `cap-game`; game servers run as `nobody`");
                        Self::lookup("nobody").ok().or(Some(Self {
                            name: "nobody".into(),
                            uid: 65534,
                            gid: 65534,
                        }))
                    }
                }
            })
            .clone()
    }
}

/// Whether the Agent runs as root (and can therefore switch users).
pub fn agent_is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Gives `dir` and everything below it to `user` (symbolic links are
/// changed themselves, never followed), and makes `dir` itself `0700`.
///
/// # Errors
///
/// The first I/O error.
pub fn chown_tree(dir: &Path, user: &RunAs) -> std::io::Result<()> {
    fn walk(path: &Path, user: &RunAs) -> std::io::Result<()> {
        std::os::unix::fs::lchown(path, Some(user.uid), Some(user.gid))?;
        let meta = std::fs::symlink_metadata(path)?;
        if meta.is_dir() {
            for entry in std::fs::read_dir(path)? {
                walk(&entry?.path(), user)?;
            }
        }
        Ok(())
    }
    walk(dir, user)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Sets the modes described in the module docs on the data directory and
/// the Agent's own entries in it (those that exist).
///
/// # Errors
///
/// The first I/O error.
pub fn protect_data_dir(data_dir: &Path) -> std::io::Result<()> {
    let set = |path: &Path, mode: u32| -> std::io::Result<()> {
        match std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    };
    set(data_dir, 0o711)?;
    set(&data_dir.join("servers"), 0o711)?;
    set(&data_dir.join("run"), 0o700)?;
    set(&data_dir.join("plugins"), 0o700)?;
    set(&data_dir.join("credentials.json"), 0o600)?;
    set(&data_dir.join("agent-id"), 0o600)
}
