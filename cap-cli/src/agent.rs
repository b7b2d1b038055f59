//! `cap agent`: run this machine as a node of a Panel.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use cap_agent::NodeRuntimeConfig;
use cap_agent::node::{BackendChoice, NodeOptions, start};
use clap::{Args, ValueEnum};

/// Where game servers run (`--runtime`, `--container-host`), for
/// `cap agent` and `cap up` alike.
#[derive(Debug, Clone, Args)]
pub(crate) struct RuntimeArgs {
    /// Where game servers run: native processes of this machine, or
    /// containers of a Docker Engine API (Docker or Podman)
    #[arg(long, value_enum, env = "CAP_AGENT_RUNTIME", default_value = "native")]
    runtime: RuntimeKind,
    /// The container engine, unix:///path/to.sock or tcp://host:port
    /// [default: DOCKER_HOST, then the Docker and Podman sockets]
    #[arg(long, value_name = "HOST", env = "CAP_CONTAINER_HOST")]
    container_host: Option<String>,
}

/// The values of `--runtime`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum RuntimeKind {
    /// Processes of this machine, under an unprivileged user.
    Native,
    /// Containers of a Docker Engine API.
    Container,
}

impl RuntimeArgs {
    /// The backend these flags choose.
    ///
    /// # Errors
    ///
    /// `--container-host` without `--runtime container`.
    pub(crate) fn choice(&self) -> anyhow::Result<BackendChoice> {
        match self.runtime {
            RuntimeKind::Native => {
                anyhow::ensure!(
                    self.container_host.is_none(),
                    "--container-host is for --runtime container only"
                );
                Ok(BackendChoice::Native)
            }
            RuntimeKind::Container => Ok(BackendChoice::Container {
                host: self.container_host.clone(),
            }),
        }
    }
}

/// Flags of `cap agent`.
#[derive(Debug, Args)]
pub(crate) struct AgentArgs {
    /// The Panel's URL, e.g. https://panel.example.com (first run only)
    #[arg(long, value_name = "URL", env = "CAP_AGENT_PANEL")]
    panel: Option<String>,
    /// Accept a cleartext http:// Panel URL that is not loopback: the node
    /// token and install scripts then cross the network unencrypted
    #[arg(long, env = "CAP_AGENT_INSECURE")]
    insecure: bool,
    /// A registration token from the Panel's admin (first run only; used once)
    #[arg(
        long,
        value_name = "TOKEN",
        env = "CAP_AGENT_TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
    /// Data directory: credentials (mode 0600), servers, bookkeeping
    #[arg(
        long,
        value_name = "DIR",
        env = "CAP_AGENT_DATA",
        default_value = "./data/agent"
    )]
    data: PathBuf,
    /// Where GET /health is served
    #[arg(
        long,
        value_name = "ADDR",
        env = "CAP_AGENT_HEALTH",
        default_value = "127.0.0.1:8081"
    )]
    health_listen: SocketAddr,
    /// Where file transfers (uploads and downloads with grants the Panel
    /// signs) are served: over TLS with --files-tls-cert and
    /// --files-tls-key, else plain HTTP to put a TLS proxy in front of
    /// (name its URL with --public-url)
    #[arg(
        long,
        value_name = "ADDR",
        env = "CAP_AGENT_FILES_LISTEN",
        default_value = "0.0.0.0:8443"
    )]
    files_listen: SocketAddr,
    /// The URL browsers reach --files-listen at, e.g.
    /// https://node1.example.com:8443 [default: http://<files listen
    /// address> (https:// with --files-tls-cert) when it is a specific
    /// address]
    #[arg(long, value_name = "URL", env = "CAP_AGENT_PUBLIC_URL")]
    public_url: Option<String>,
    /// The certificate chain (PEM, leaf first, e.g. certbot's
    /// fullchain.pem) file transfers are served with over TLS, loaded
    /// again within a minute when it is renewed; needs --files-tls-key
    #[arg(
        long,
        value_name = "FILE",
        env = "CAP_AGENT_FILES_TLS_CERT",
        requires = "files_tls_key"
    )]
    files_tls_cert: Option<PathBuf>,
    /// The private key (PEM: PKCS#8, PKCS#1 or SEC1) of --files-tls-cert
    #[arg(
        long,
        value_name = "FILE",
        env = "CAP_AGENT_FILES_TLS_KEY",
        requires = "files_tls_cert"
    )]
    files_tls_key: Option<PathBuf>,
    /// Serve no file transfers (the file manager then lists, moves and
    /// archives files but cannot up- or download them)
    #[arg(long, env = "CAP_AGENT_NO_FILES")]
    no_files: bool,
    /// Where SFTP is served (sign-ins as `<panel username>.<server>`,
    /// decided by the Panel); an empty value serves none, like --no-sftp
    #[arg(
        long,
        value_name = "ADDR",
        env = "CAP_AGENT_SFTP_LISTEN",
        default_value = "0.0.0.0:2022"
    )]
    sftp_listen: String,
    /// Serve no SFTP
    #[arg(long, env = "CAP_AGENT_NO_SFTP")]
    no_sftp: bool,
    /// A directory searched for game programs after the server directory
    /// and before PATH; repeatable
    #[arg(long = "program-dir", value_name = "DIR")]
    program_dirs: Vec<PathBuf>,
    /// Console lines forwarded per second per server; the rest are
    /// dropped and counted
    #[arg(
        long,
        value_name = "N",
        env = "CAP_AGENT_CONSOLE_RATE",
        default_value_t = 200
    )]
    console_lines_per_second: u32,
    /// The unprivileged user game servers and install scripts run as when
    /// the Agent runs as root [default: cap-game, created if absent]
    #[arg(long, value_name = "USER", env = "CAP_AGENT_RUN_AS")]
    run_as: Option<String>,
    #[command(flatten)]
    runtime: RuntimeArgs,
}

pub(crate) fn run(args: AgentArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let backend = args.runtime.choice()?;
    let sftp_listen = sftp_listen(&args.sftp_listen, args.no_sftp)?;
    runtime.block_on(async move {
        let mut config = NodeRuntimeConfig::new(&args.data);
        config.program_dirs = args.program_dirs;
        config.console.lines_per_second = args.console_lines_per_second.max(1);
        if let Some(name) = &args.run_as {
            anyhow::ensure!(
                cap_agent::isolation::agent_is_root(),
                "--run-as needs the Agent to run as root (it switches users)"
            );
            config.run_as = Some(cap_agent::isolation::RunAs::lookup(name)?);
        }
        let node = start(NodeOptions {
            panel_url: args.panel,
            registration_token: args.token,
            data_dir: args.data.clone(),
            health_listen: args.health_listen,
            classifiers: cap_agent::Classifiers::new(),
            supported_games: Vec::new(),
            runtime: Some(config),
            resource_limits: None,
            insecure: args.insecure,
            backend,
            files_listen: (!args.no_files).then_some(args.files_listen),
            files_public_url: args.public_url,
            files_tls: match (args.files_tls_cert, args.files_tls_key) {
                (Some(cert), Some(key)) => Some(cap_agent::node::FilesTls { cert, key }),
                _ => None,
            },
            sftp_listen,
        })
        .await
        .context("starting the Agent")?;
        println!(
            "Agent running as node {} (health http://{}/health, data in {})",
            node.node_id,
            node.health_addr,
            args.data.display()
        );
        cap_panel::shutdown_signal().await;
        // Game servers keep running; the next start re-adopts them.
        node.stop().await;
        Ok(())
    })
}

/// The SFTP address `--sftp-listen` names: `None` when it is empty or
/// `--no-sftp` is given.
pub(crate) fn sftp_listen(value: &str, off: bool) -> anyhow::Result<Option<SocketAddr>> {
    let value = value.trim();
    if off || value.is_empty() {
        return Ok(None);
    }
    value
        .parse()
        .map(Some)
        .with_context(|| format!("--sftp-listen `{value}` is not an address like 0.0.0.0:2022"))
}
