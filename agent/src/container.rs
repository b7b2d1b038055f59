//! Containers through the Docker Engine API, for Docker and Podman alike.
//!
//! [`Engine`] is the one client the Agent has for a container engine: it
//! speaks the Docker Engine API through `bollard`, which Docker serves and
//! Podman serves as well (`podman system service`). Nothing here knows
//! Podman's own API; what differs between the two engines is handled by
//! asking only for what both implement (API version 1.41, which Podman 4
//! serves).
//!
//! Key decisions:
//!
//! - **Finding the engine**: an explicit host (`--container-host`), else
//!   `DOCKER_HOST`, else the usual sockets in order: Docker's
//!   `/var/run/docker.sock`, rootful Podman's `/run/podman/podman.sock`,
//!   rootless Podman's `$XDG_RUNTIME_DIR/podman/podman.sock`. The first
//!   that answers a ping wins; when none does, [`EngineError::Unreachable`]
//!   names every place tried.
//! - **Ownership by label**: every container this Agent makes carries
//!   [`LABEL_AGENT`] (the Agent's instance id, kept in its data directory),
//!   [`LABEL_SERVER`] and [`LABEL_ROLE`]. Listing filters on the instance
//!   label, so two Agents on one engine never see (or remove) each other's
//!   containers, and a restarted Agent finds its own again.
//! - **Names**: `cap-<instance>-<server>` for a server and
//!   `cap-<instance>-<server>-install` for its install, so a name clash
//!   between Agents cannot happen either.
//! - **No registry traffic unless needed**: an image that is present is
//!   used as it is; an absent one is pulled, with progress reported, and a
//!   failed pull is [`EngineError::Pull`] naming the image and the
//!   engine's reason.

use std::collections::HashMap;
use std::path::PathBuf;
use std::pin::Pin;

use bollard::models::{
    ContainerCreateBody, HostConfig, HostConfigLogConfig, PortBinding, ResourcesUlimits,
};
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, CreateImageOptionsBuilder,
    KillContainerOptionsBuilder, ListContainersOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, ResizeContainerTTYOptionsBuilder, StatsOptionsBuilder,
    WaitContainerOptionsBuilder,
};
use bollard::{ClientVersion, Docker};
use futures::{Stream, StreamExt};
use tokio::io::AsyncWrite;

/// The most console output, in MiB, the engine keeps per container.
pub const ENGINE_LOG_MAX_MB: u32 = 16;

/// The label naming the Agent instance that owns a container.
pub const LABEL_AGENT: &str = "org.ctrl-alt-play.agent";
/// The label naming the server a container belongs to.
pub const LABEL_SERVER: &str = "org.ctrl-alt-play.server";
/// The label saying what a container is for: [`Role::Server`] or
/// [`Role::Install`].
pub const LABEL_ROLE: &str = "org.ctrl-alt-play.role";

/// The Docker Engine API version asked for: the newest that Podman 4
/// serves, and old enough for every Docker still maintained.
const API_VERSION: ClientVersion = ClientVersion {
    major_version: 1,
    minor_version: 41,
};

/// Seconds an engine request may take (pulls and attaches are streams and
/// are not bound by it).
const REQUEST_TIMEOUT_SECS: u64 = 120;

/// Something the container engine could not do.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// No engine answered at any of the places tried.
    #[error("no container engine answered (tried {tried}): {message}")]
    Unreachable {
        /// The hosts tried, comma-separated.
        tried: String,
        /// The last error.
        message: String,
    },
    /// The image is not present and could not be pulled.
    #[error("image `{image}` is not present and could not be pulled: {message}")]
    Pull {
        /// The image reference.
        image: String,
        /// The engine's reason.
        message: String,
    },
    /// The engine refused or failed a request.
    #[error("container engine: {context}: {message}")]
    Api {
        /// What was being done.
        context: String,
        /// The engine's message.
        message: String,
    },
    /// The container does not exist (any more).
    #[error("container `{0}` does not exist")]
    NoSuchContainer(String),
}

impl EngineError {
    /// A stable code for command results.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unreachable { .. } => "engine-unreachable",
            Self::Pull { .. } => "image-unavailable",
            Self::Api { .. } => "engine-error",
            Self::NoSuchContainer(_) => "no-such-container",
        }
    }
}

fn api(context: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> EngineError {
    let context = context.into();
    move |error| EngineError::Api {
        context,
        message: error_message(&error),
    }
}

fn error_message(error: &bollard::errors::Error) -> String {
    match error {
        bollard::errors::Error::DockerResponseServerError { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

fn is_not_found(error: &bollard::errors::Error) -> bool {
    matches!(
        error,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// What a container is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A game server.
    Server,
    /// A server's install script.
    Install,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Self::Server => "server",
            Self::Install => "install",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "server" => Some(Self::Server),
            "install" => Some(Self::Install),
            _ => None,
        }
    }
}

/// A directory of the node mounted into a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    /// The node's directory.
    pub host: PathBuf,
    /// Where it appears in the container.
    pub container: String,
    /// Mounted read-only.
    pub read_only: bool,
}

/// An address and port published from the container, TCP and UDP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The node address to bind (`0.0.0.0` for all).
    pub ip: String,
    /// The port, the same on the node and in the container.
    pub port: u16,
}

/// Everything a container is made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSpec {
    /// The server it belongs to.
    pub server_id: String,
    /// What it is for.
    pub role: Role,
    /// The image reference.
    pub image: String,
    /// The entrypoint, when the image's is replaced.
    pub entrypoint: Option<Vec<String>>,
    /// The command (arguments of the entrypoint).
    pub cmd: Vec<String>,
    /// `KEY=value` environment entries.
    pub env: Vec<String>,
    /// The working directory in the container.
    pub working_dir: String,
    /// `uid:gid` the processes run as.
    pub user: String,
    /// Bind mounts.
    pub mounts: Vec<BindMount>,
    /// Memory limit in bytes (swap included: no swap beyond it); 0 is none.
    pub memory_bytes: i64,
    /// CPU in percent of one core; 0 is none.
    pub cpu_percent: u32,
    /// Most processes and threads.
    pub pids_limit: i64,
    /// Most open files.
    pub nofile: i64,
    /// Capabilities kept (every other one is dropped).
    pub cap_add: Vec<String>,
    /// Size of the private `/tmp` in MiB.
    pub tmp_mb: u64,
    /// Ports published.
    pub ports: Vec<Published>,
}

impl ContainerSpec {
    fn body(&self, instance: &str) -> ContainerCreateBody {
        let labels = HashMap::from([
            (LABEL_AGENT.to_owned(), instance.to_owned()),
            (LABEL_SERVER.to_owned(), self.server_id.clone()),
            (LABEL_ROLE.to_owned(), self.role.as_str().to_owned()),
        ]);
        let mut exposed = Vec::new();
        let mut bindings = HashMap::new();
        for port in &self.ports {
            for proto in ["tcp", "udp"] {
                let key = format!("{}/{proto}", port.port);
                exposed.push(key.clone());
                bindings.insert(
                    key,
                    Some(vec![PortBinding {
                        host_ip: Some(port.ip.clone()),
                        host_port: Some(port.port.to_string()),
                    }]),
                );
            }
        }
        let binds = self
            .mounts
            .iter()
            .map(|m| {
                format!(
                    "{}:{}:{}",
                    m.host.display(),
                    m.container,
                    if m.read_only { "ro" } else { "rw" }
                )
            })
            .collect();
        let host_config = HostConfig {
            binds: Some(binds),
            memory: (self.memory_bytes > 0).then_some(self.memory_bytes),
            memory_swap: (self.memory_bytes > 0).then_some(self.memory_bytes),
            nano_cpus: (self.cpu_percent > 0).then(|| i64::from(self.cpu_percent) * 10_000_000),
            pids_limit: Some(self.pids_limit),
            ulimits: Some(vec![
                ResourcesUlimits {
                    name: Some("nofile".into()),
                    soft: Some(self.nofile),
                    hard: Some(self.nofile),
                },
                ResourcesUlimits {
                    name: Some("nproc".into()),
                    soft: Some(self.pids_limit),
                    hard: Some(self.pids_limit),
                },
            ]),
            cap_drop: Some(vec!["ALL".into()]),
            cap_add: (!self.cap_add.is_empty()).then(|| self.cap_add.clone()),
            security_opt: Some(vec!["no-new-privileges".into()]),
            tmpfs: Some(HashMap::from([(
                "/tmp".to_owned(),
                format!("rw,nosuid,nodev,size={}m", self.tmp_mb.max(1)),
            )])),
            port_bindings: (!bindings.is_empty()).then_some(bindings),
            // The TTY's size (engines honouring it at creation; `start`
            // sets it again for those that do not).
            console_size: Some(vec![
                usize::from(crate::terminal::ROWS),
                usize::from(crate::terminal::COLUMNS),
            ]),
            init: Some(false),
            privileged: Some(false),
            // The engine keeps a copy of the console (re-adoption reads it
            // back); bounded, so a flooding server cannot fill the node's
            // disk outside its own quota. `json-file` is Docker's file
            // driver and Podman's alias of its own (`k8s-file`); both take
            // `max-size`.
            log_config: Some(HostConfigLogConfig {
                typ: Some("json-file".into()),
                config: Some(HashMap::from([(
                    "max-size".to_owned(),
                    format!("{ENGINE_LOG_MAX_MB}m"),
                )])),
            }),
            ..HostConfig::default()
        };
        // Programs that size their screen from the environment (ncurses
        // does, before asking the TTY) see the same size as the TTY.
        let mut env = vec![
            format!("COLUMNS={}", crate::terminal::COLUMNS),
            format!("LINES={}", crate::terminal::ROWS),
        ];
        env.extend(self.env.iter().cloned());
        ContainerCreateBody {
            image: Some(self.image.clone()),
            entrypoint: self.entrypoint.clone(),
            cmd: Some(self.cmd.clone()),
            env: Some(env),
            working_dir: Some(self.working_dir.clone()),
            user: Some(self.user.clone()),
            labels: Some(labels),
            exposed_ports: (!exposed.is_empty()).then_some(exposed),
            attach_stdin: Some(true),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            open_stdin: Some(true),
            stdin_once: Some(false),
            // With a TTY the engine keeps stdin open when the Agent's
            // attach connection goes (an Agent or engine restart); without
            // one Podman closes it, and a game reading its console exits.
            // As with Wings, commands written to the console are echoed.
            // The TTY is `terminal::ROWS` × `terminal::COLUMNS`, the size
            // the console pipeline renders a drawn screen at.
            tty: Some(true),
            host_config: Some(host_config),
            ..ContainerCreateBody::default()
        }
    }
}

/// A container of this Agent, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owned {
    /// The container id.
    pub id: String,
    /// The server it belongs to.
    pub server_id: String,
    /// What it is for.
    pub role: Role,
    /// Whether it is running.
    pub running: bool,
}

/// How a container ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ended {
    /// Its exit code, when the engine knows it.
    pub exit_code: Option<i64>,
    /// Whether the kernel's OOM killer ended it.
    pub oom_killed: bool,
}

/// What [`Engine::wait`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waited {
    /// The container is not running any more.
    Ended(Ended),
    /// The connection broke and the container still runs: attach again.
    Interrupted,
}

/// One stats sample.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sample {
    /// CPU time used in all, nanoseconds.
    pub cpu_ns: u64,
    /// Memory in use, bytes.
    pub memory_bytes: u64,
    /// Bytes received on every interface.
    pub rx_bytes: u64,
    /// Bytes sent on every interface.
    pub tx_bytes: u64,
}

/// An attached container's console: its output and its stdin.
pub struct Attached {
    /// stdout and stderr, as they come.
    pub output: Pin<Box<dyn Stream<Item = Result<bytes::Bytes, EngineError>> + Send>>,
    /// The container's stdin.
    pub input: Pin<Box<dyn AsyncWrite + Send>>,
}

impl std::fmt::Debug for Attached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attached").finish_non_exhaustive()
    }
}

/// A connection to a container engine on behalf of one Agent instance.
/// Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    docker: Docker,
    host: String,
    instance: String,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("host", &self.host)
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

/// The places an engine is looked for, in order (see the module docs).
pub fn candidate_hosts(explicit: Option<&str>) -> Vec<String> {
    if let Some(host) = explicit.filter(|h| !h.trim().is_empty()) {
        return vec![host.to_owned()];
    }
    if let Ok(host) = std::env::var("DOCKER_HOST")
        && !host.trim().is_empty()
    {
        return vec![host];
    }
    let mut hosts = vec![
        "unix:///var/run/docker.sock".to_owned(),
        "unix:///run/podman/podman.sock".to_owned(),
    ];
    if let Ok(dir) = std::env::var("XDG_RUNTIME_DIR") {
        hosts.push(format!("unix://{dir}/podman/podman.sock"));
    }
    hosts
}

fn connect_one(host: &str) -> Result<Docker, bollard::errors::Error> {
    if let Some(path) = host.strip_prefix("unix://") {
        Docker::connect_with_unix(path, REQUEST_TIMEOUT_SECS, &API_VERSION)
    } else if host.starts_with('/') {
        Docker::connect_with_unix(host, REQUEST_TIMEOUT_SECS, &API_VERSION)
    } else {
        Docker::connect_with_http(host, REQUEST_TIMEOUT_SECS, &API_VERSION)
    }
}

impl Engine {
    /// Connects to the first engine of [`candidate_hosts`] that answers a
    /// ping, for the Agent instance `instance`.
    ///
    /// # Errors
    ///
    /// [`EngineError::Unreachable`] when none answers.
    pub async fn connect(explicit: Option<&str>, instance: &str) -> Result<Self, EngineError> {
        let hosts = candidate_hosts(explicit);
        let mut last = String::from("no host to try");
        for host in &hosts {
            match connect_one(host) {
                Ok(docker) => match docker.ping().await {
                    Ok(_) => {
                        return Ok(Self {
                            docker,
                            host: host.clone(),
                            instance: instance.to_owned(),
                        });
                    }
                    Err(error) => last = format!("{host}: {}", error_message(&error)),
                },
                Err(error) => last = format!("{host}: {}", error_message(&error)),
            }
        }
        Err(EngineError::Unreachable {
            tried: hosts.join(", "),
            message: last,
        })
    }

    /// The host this engine was reached at.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The Agent instance whose containers this engine handle sees.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The address a container on the engine's default network reaches
    /// the node's host at: the gateway of its `bridge` network (Docker's
    /// `docker0`; Podman serves its default network under that name too),
    /// where servers' containers are attached. `None` when the engine
    /// names no gateway.
    ///
    /// # Errors
    ///
    /// [`EngineError::Api`] when the engine cannot say.
    pub async fn host_address(&self) -> Result<Option<String>, EngineError> {
        let network = self
            .docker
            .inspect_network("bridge", None)
            .await
            .map_err(api("inspecting the `bridge` network".to_owned()))?;
        Ok(network
            .ipam
            .and_then(|ipam| ipam.config)
            .into_iter()
            .flatten()
            .find_map(|config| config.gateway.filter(|g| !g.is_empty())))
    }

    /// The name of a server's container of role `role`.
    pub fn container_name(&self, server_id: &str, role: Role) -> String {
        match role {
            Role::Server => format!("cap-{}-{server_id}", self.instance),
            Role::Install => format!("cap-{}-{server_id}-install", self.instance),
        }
    }

    /// Makes sure `image` is present, pulling it when it is not; every
    /// progress line of a pull goes to `progress`: `pulling image …`, the
    /// engine's status of each layer (`<layer>: Pulling fs layer`,
    /// `<layer>: Downloading <n>/<total> bytes`, `<layer>: Already
    /// exists`, …) and `pulled image …` once it is there.
    ///
    /// # Errors
    ///
    /// [`EngineError::Pull`] when it is absent and cannot be pulled.
    pub async fn ensure_image(
        &self,
        image: &str,
        mut progress: impl FnMut(String) + Send,
    ) -> Result<(), EngineError> {
        match self.docker.inspect_image(image).await {
            Ok(_) => return Ok(()),
            Err(error) if is_not_found(&error) => {}
            Err(error) => return Err(api(format!("inspecting image `{image}`"))(error)),
        }
        progress(format!("pulling image {image}"));
        let options = CreateImageOptionsBuilder::default()
            .from_image(image)
            .build();
        let mut stream = self.docker.create_image(Some(options), None, None);
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(error) = info.error_detail.and_then(|d| d.message) {
                        return Err(EngineError::Pull {
                            image: image.to_owned(),
                            message: error,
                        });
                    }
                    let detail = info
                        .progress_detail
                        .and_then(|d| Some(format!("{}/{} bytes", d.current?, d.total?)));
                    let line = [info.status, detail]
                        .into_iter()
                        .flatten()
                        .collect::<Vec<_>>()
                        .join(" ");
                    // Prefixed by the layer it is about, as `docker pull`
                    // shows it.
                    match info.id {
                        Some(layer) if !line.is_empty() => progress(format!("{layer}: {line}")),
                        _ if !line.is_empty() => progress(line),
                        _ => {}
                    }
                }
                Err(error) => {
                    return Err(EngineError::Pull {
                        image: image.to_owned(),
                        message: error_message(&error),
                    });
                }
            }
        }
        match self.docker.inspect_image(image).await {
            Ok(_) => {
                progress(format!("pulled image {image}"));
                Ok(())
            }
            Err(error) => Err(EngineError::Pull {
                image: image.to_owned(),
                message: error_message(&error),
            }),
        }
    }

    /// Creates the container for `spec` (removing a leftover of the same
    /// name first) and returns its id.
    ///
    /// # Errors
    ///
    /// The engine refuses it.
    pub async fn create(&self, spec: &ContainerSpec) -> Result<String, EngineError> {
        let name = self.container_name(&spec.server_id, spec.role);
        self.remove(&name).await?;
        let options = CreateContainerOptionsBuilder::default().name(&name).build();
        let created = self
            .docker
            .create_container(Some(options), spec.body(&self.instance))
            .await
            .map_err(api(format!("creating container `{name}`")))?;
        Ok(created.id)
    }

    /// Attaches to a container's stdin, stdout and stderr (from now on).
    ///
    /// # Errors
    ///
    /// The engine refuses it.
    pub async fn attach(&self, id: &str) -> Result<Attached, EngineError> {
        let options = AttachContainerOptionsBuilder::default()
            .stdin(true)
            .stdout(true)
            .stderr(true)
            .stream(true)
            .logs(false)
            .build();
        let attached = self
            .docker
            .attach_container(id, Some(options))
            .await
            .map_err(api(format!("attaching to `{id}`")))?;
        let output = attached.output.map(|item| {
            item.map(bollard::container::LogOutput::into_bytes)
                .map_err(api("reading the console"))
        });
        Ok(Attached {
            output: Box::pin(output),
            input: attached.input,
        })
    }

    /// The output a container printed since `since` (Unix seconds), up to
    /// now: what a re-attaching Agent missed.
    pub async fn logs_since(&self, id: &str, since: i64) -> Vec<bytes::Bytes> {
        let options = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .follow(false)
            .since(i32::try_from(since).unwrap_or(0))
            .build();
        self.docker
            .logs(id, Some(options))
            .filter_map(
                |item| async move { item.ok().map(bollard::container::LogOutput::into_bytes) },
            )
            .collect()
            .await
    }

    /// Starts a created container.
    ///
    /// # Errors
    ///
    /// The engine refuses it (a missing program, a port in use, …).
    pub async fn start(&self, id: &str) -> Result<(), EngineError> {
        self.docker
            .start_container(id, None)
            .await
            .map_err(api(format!("starting `{id}`")))?;
        // The TTY's size, for engines that ignore it at creation (Podman
        // 4's Docker API does); a container that already ended is no
        // error, and neither is an engine refusing: the game still has
        // `COLUMNS` and `LINES`.
        let size = ResizeContainerTTYOptionsBuilder::new()
            .h(i32::from(crate::terminal::ROWS))
            .w(i32::from(crate::terminal::COLUMNS))
            .build();
        if let Err(error) = self.docker.resize_container_tty(id, size).await {
            tracing::debug!(container = %id, error = %error_message(&error), "could not size the TTY");
        }
        Ok(())
    }

    /// Sends `signal` (`SIGTERM`, `SIGKILL`, …) to the container's main
    /// process. A container that is not running is not an error.
    ///
    /// # Errors
    ///
    /// The engine fails the request.
    pub async fn signal(&self, id: &str, signal: &str) -> Result<(), EngineError> {
        let options = KillContainerOptionsBuilder::default()
            .signal(signal)
            .build();
        match self.docker.kill_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(error) if is_not_found(&error) => Err(EngineError::NoSuchContainer(id.to_owned())),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 409, ..
            }) => Ok(()),
            Err(error) => {
                // Podman answers 500 "container state improper" for a
                // container that has just stopped: not running is fine.
                match self.running(id).await {
                    Ok(false) => Ok(()),
                    _ => Err(api(format!("sending {signal} to `{id}`"))(error)),
                }
            }
        }
    }

    /// The container's first process on the node, while it runs.
    pub async fn pid(&self, id: &str) -> Option<u32> {
        let state = self.inspect_state(id).await.ok()?;
        state
            .pid
            .and_then(|pid| u32::try_from(pid).ok())
            .filter(|pid| *pid > 0)
    }

    /// Whether the container runs.
    ///
    /// # Errors
    ///
    /// [`EngineError::NoSuchContainer`], or the engine fails the request.
    pub async fn running(&self, id: &str) -> Result<bool, EngineError> {
        let state = self.inspect_state(id).await?;
        Ok(state.running.unwrap_or(false))
    }

    async fn inspect_state(
        &self,
        id: &str,
    ) -> Result<bollard::models::ContainerState, EngineError> {
        match self.docker.inspect_container(id, None).await {
            Ok(info) => Ok(info.state.unwrap_or_default()),
            Err(error) if is_not_found(&error) => Err(EngineError::NoSuchContainer(id.to_owned())),
            Err(error) => Err(api(format!("inspecting `{id}`"))(error)),
        }
    }

    /// How the container ended, or `None` while it runs; a container
    /// that is gone ended unknown. The server backend asks this when the
    /// console stream ends (the container stopped, or the connection to
    /// the engine broke) instead of holding a `wait` request open per
    /// container: Podman 4.3 answers each open `wait` by polling, which
    /// cost its service about a core for 50 idle containers.
    ///
    /// # Errors
    ///
    /// The engine fails the request.
    pub async fn exited(&self, id: &str) -> Result<Option<Ended>, EngineError> {
        match self.inspect_state(id).await {
            Ok(state) if state.running.unwrap_or(false) => Ok(None),
            Ok(state) => Ok(Some(Ended {
                exit_code: state.exit_code,
                oom_killed: state.oom_killed.unwrap_or(false),
            })),
            Err(EngineError::NoSuchContainer(_)) => Ok(Some(Ended {
                exit_code: None,
                oom_killed: false,
            })),
            Err(error) => Err(error),
        }
    }

    /// Waits until the container is not running and says how it ended,
    /// or until the connection to the engine broke while it still runs
    /// ([`Waited::Interrupted`]: an engine restart, which containers
    /// outlive). An engine that is away is waited for.
    pub async fn wait(&self, id: &str) -> Waited {
        let gone = Waited::Ended(Ended {
            exit_code: None,
            oom_killed: false,
        });
        loop {
            let options = WaitContainerOptionsBuilder::default()
                .condition("not-running")
                .build();
            let mut stream = self.docker.wait_container(id, Some(options));
            let waited = stream.next().await;
            drop(stream);
            let broken = match waited {
                Some(Ok(_))
                | Some(Err(bollard::errors::Error::DockerContainerWaitError { .. })) => false,
                Some(Err(error)) if is_not_found(&error) => return gone,
                _ => true,
            };
            loop {
                match self.inspect_state(id).await {
                    Ok(state) if !state.running.unwrap_or(false) => {
                        return Waited::Ended(Ended {
                            exit_code: state.exit_code,
                            oom_killed: state.oom_killed.unwrap_or(false),
                        });
                    }
                    Ok(_) if broken => return Waited::Interrupted,
                    Ok(_) => break,
                    Err(EngineError::NoSuchContainer(_)) => return gone,
                    Err(_) => tokio::time::sleep(std::time::Duration::from_millis(500)).await,
                }
            }
        }
    }

    /// Removes the container by id or name, killing it first; a container
    /// that does not exist is not an error.
    ///
    /// # Errors
    ///
    /// The engine fails the request.
    pub async fn remove(&self, id: &str) -> Result<(), EngineError> {
        let options = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        match self.docker.remove_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(error) if is_not_found(&error) => Ok(()),
            Err(error) => Err(api(format!("removing `{id}`"))(error)),
        }
    }

    /// This Agent instance's containers.
    ///
    /// # Errors
    ///
    /// The engine fails the request.
    pub async fn list_own(&self) -> Result<Vec<Owned>, EngineError> {
        let filters = HashMap::from([(
            "label".to_owned(),
            vec![format!("{LABEL_AGENT}={}", self.instance)],
        )]);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let listed = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(api("listing containers"))?;
        Ok(listed
            .into_iter()
            .filter_map(|summary| {
                let labels = summary.labels.unwrap_or_default();
                if labels.get(LABEL_AGENT).map(String::as_str) != Some(self.instance.as_str()) {
                    return None;
                }
                Some(Owned {
                    id: summary.id?,
                    server_id: labels.get(LABEL_SERVER)?.clone(),
                    role: Role::parse(labels.get(LABEL_ROLE)?)?,
                    running: summary
                        .state
                        .is_some_and(|s| s == bollard::models::ContainerSummaryStateEnum::RUNNING),
                })
            })
            .collect())
    }

    /// One stats sample of a running container.
    pub async fn sample(&self, id: &str) -> Option<Sample> {
        let options = StatsOptionsBuilder::default()
            .stream(false)
            .one_shot(true)
            .build();
        let stats = self.docker.stats(id, Some(options)).next().await?.ok()?;
        let (rx_bytes, tx_bytes) = stats
            .networks
            .unwrap_or_default()
            .values()
            .fold((0, 0), |(rx, tx), n| {
                (rx + n.rx_bytes.unwrap_or(0), tx + n.tx_bytes.unwrap_or(0))
            });
        Some(Sample {
            cpu_ns: stats
                .cpu_stats
                .and_then(|c| c.cpu_usage)
                .and_then(|u| u.total_usage)
                .unwrap_or(0),
            memory_bytes: stats.memory_stats.and_then(|m| m.usage).unwrap_or(0),
            rx_bytes,
            tx_bytes,
        })
    }
}

/// Whether the kernel's OOM killer struck a container, watched from its
/// cgroup v1 memory controller.
///
/// Docker reports OOM kills itself; Podman on a cgroup v1 machine does
/// not (`OOMKilled` stays false while the container ends with 137). So the
/// Agent registers for the controller's documented OOM notification (an
/// eventfd in `cgroup.event_control` for `memory.oom_control`) while the
/// container runs, and a kill it notices counts whatever the engine says.
/// On a cgroup v2 machine the engine's own report is used.
#[derive(Debug, Clone, Default)]
pub struct OomWatch(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl OomWatch {
    /// Starts watching the memory cgroup of container `id`, before the
    /// container starts: the group appears when the engine starts it, and
    /// the watch registers within a millisecond, before the container's
    /// program can fill its memory. `pid`, when the container already runs
    /// (a re-adopted one), finds the group at once. A watch that cannot be
    /// set up never fires.
    pub fn start(id: &str, pid: Option<u32>) -> Self {
        let watch = Self::default();
        let fired = watch.0.clone();
        let candidates = memory_cgroup_candidates(id);
        // The eventfd is read blocking, on a small thread of its own: the
        // group's removal wakes it too, so it ends with the container.
        let spawned = std::thread::Builder::new()
            .name("cap-oom-watch".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
                let dir = loop {
                    let found = pid.and_then(memory_cgroup).or_else(|| {
                        candidates
                            .iter()
                            .find(|dir| dir.join("memory.oom_control").is_file())
                            .cloned()
                    });
                    if let Some(dir) = found {
                        break dir;
                    }
                    if std::time::Instant::now() > deadline {
                        return;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(1));
                };
                if let Err(error) = watch_oom(&dir, &fired) {
                    tracing::debug!(cgroup = %dir.display(), %error, "no OOM watch");
                }
            });
        if let Err(error) = spawned {
            tracing::debug!(%error, "no OOM watch thread");
        }
        watch
    }

    /// Whether an OOM kill was seen.
    pub fn fired(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Where engines put a container's cgroup v1 memory group: Podman with
/// the cgroupfs or systemd manager, Docker with cgroupfs or systemd.
fn memory_cgroup_candidates(id: &str) -> Vec<PathBuf> {
    let root = PathBuf::from("/sys/fs/cgroup/memory");
    vec![
        root.join(format!("libpod_parent/libpod-{id}")),
        root.join(format!("machine.slice/libpod-{id}.scope")),
        root.join(format!("docker/{id}")),
        root.join(format!("system.slice/docker-{id}.scope")),
    ]
}

/// The cgroup v1 memory directory of `pid`.
fn memory_cgroup(pid: u32) -> Option<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let path = text.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        controllers
            .split(',')
            .any(|c| c == "memory")
            .then(|| path.to_owned())
    })?;
    let dir = PathBuf::from("/sys/fs/cgroup/memory").join(path.trim_start_matches('/'));
    dir.join("memory.oom_control").is_file().then_some(dir)
}

/// The `oom_kill` count of a memory cgroup; `None` once it is gone.
fn oom_kills(dir: &std::path::Path) -> Option<u64> {
    let text = std::fs::read_to_string(dir.join("memory.oom_control")).ok()?;
    Some(
        text.lines()
            .find_map(|l| l.strip_prefix("oom_kill "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0),
    )
}

fn watch_oom(dir: &std::path::Path, fired: &std::sync::atomic::AtomicBool) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    let control = std::fs::File::open(dir.join("memory.oom_control"))?;
    let event = rustix::event::eventfd(0, rustix::event::EventfdFlags::CLOEXEC)?;
    std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join("cgroup.event_control"))?
        .write_all(format!("{} {}", event.as_raw_fd(), control.as_raw_fd()).as_bytes())?;
    // The group is the container's own, made at its start: any kill it
    // counts is this container's, including one before the watch began.
    if oom_kills(dir).is_some_and(|kills| kills > 0) {
        fired.store(true, std::sync::atomic::Ordering::SeqCst);
        return Ok(());
    }
    loop {
        let mut count = [0u8; 8];
        match rustix::io::read(&event, &mut count) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(error) => return Err(error.into()),
        }
        // An OOM event, or the group's removal, which ends the watch. The
        // kernel notifies before it picks and kills a process, so the kill
        // count is looked at for a moment after the wake-up.
        for _ in 0..100 {
            match oom_kills(dir) {
                Some(kills) if kills > 0 => {
                    fired.store(true, std::sync::atomic::Ordering::SeqCst);
                    return Ok(());
                }
                Some(_) => std::thread::sleep(std::time::Duration::from_millis(2)),
                None => return Ok(()),
            }
        }
    }
}
