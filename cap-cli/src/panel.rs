//! `cap panel`: serve the Panel.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use cap_marketplace_server::{MarketplaceConfig, MarketplaceServer};
use cap_panel::Panel;
use cap_panel::bundled::{self, Progress};
use cap_panel::config::{Config, ConfigLayer};
use cap_panel::identity::bootstrap::{
    ADMIN_USERNAME, BootstrapError, BootstrapOutcome, bootstrap_admin,
};
use cap_panel::identity::rate_limit::Rule;
use cap_panel::identity::{IdentityOptions, ProviderRegistry};
use clap::{Args, Subcommand};

use crate::bundled::BundledPlugin;
use crate::local_agent;

/// Flags of `cap panel`. Each overrides its `CAP_*` variable, which
/// overrides the config file, which overrides the default.
#[derive(Debug, Args)]
pub(crate) struct PanelArgs {
    /// Address to listen on [env: CAP_LISTEN] [default: 127.0.0.1:8080]
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// The Panel's URL as Agents and browsers reach it, e.g.
    /// https://panel.example.com [env: CAP_PUBLIC_URL] [default: http://LISTEN]
    #[arg(long, value_name = "URL")]
    public_url: Option<cap_panel::config::PublicUrl>,
    /// Data directory: the SQLite database, plugins, caches [env: CAP_DATA] [default: ./data]
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Database URL: sqlite:…, postgres://… or mysql://… [env: CAP_DATABASE_URL, DATABASE_URL]
    /// [default: SQLite at DATA/panel.db]
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
    /// TOML config file [env: CAP_CONFIG]
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// A rate limit, NAME=BURST/PERIOD, e.g. login-per-ip=5/10s; repeatable
    /// [env: CAP_RATE_LIMIT_<NAME>]. Names: login-per-ip, login-per-account,
    /// refresh-per-ip, second-factor-per-ip, second-factor-per-account
    #[arg(long = "rate-limit", value_name = "NAME=RULE", value_parser = cap_panel::config::parse_rate_limit_flag)]
    rate_limits: Vec<(String, Rule)>,
    /// A maintenance task instead of serving.
    #[command(subcommand)]
    command: Option<PanelCommand>,
}

/// Maintenance tasks of `cap panel`.
#[derive(Debug, Subcommand)]
pub(crate) enum PanelCommand {
    /// Rebuild the projections (settings, nodes, allocations, servers,
    /// subusers, commands) from the event store, in one transaction, and
    /// print the row counts.
    Replay(ReplayArgs),
    /// Create a new JWT signing key now. Running Panels load it within a
    /// minute and sign with it two minutes after it was created; tokens
    /// signed with the previous key stay valid for 30 minutes after that.
    /// A serving Panel also rotates by itself every 30 days.
    RotateJwtKey(ReplayArgs),
    /// Browse, install, update, buy and license Marketplace plugins on a
    /// running Panel through its admin API (needs an admin's token).
    Marketplace(crate::panel_marketplace::MarketplaceAdminArgs),
}

/// Flags of `cap panel replay` and `cap panel rotate-jwt-key`, with the same
/// precedence as `cap panel`.
#[derive(Debug, Args)]
pub(crate) struct ReplayArgs {
    /// Data directory [env: CAP_DATA] [default: ./data]
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Database URL [env: CAP_DATABASE_URL, DATABASE_URL] [default: SQLite at DATA/panel.db]
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
    /// TOML config file [env: CAP_CONFIG]
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

impl From<PanelArgs> for ConfigLayer {
    fn from(args: PanelArgs) -> Self {
        ConfigLayer {
            listen: args.listen,
            public_url: args.public_url,
            data_dir: args.data,
            database_url: args.database_url,
            config_file: args.config,
            rate_limits: args.rate_limits.into_iter().collect(),
            ..ConfigLayer::default()
        }
    }
}

pub(crate) fn run(mut args: PanelArgs) -> anyhow::Result<()> {
    match args.command.take() {
        Some(PanelCommand::Replay(replay)) => return run_replay(replay),
        Some(PanelCommand::RotateJwtKey(args)) => return run_rotate_jwt_key(args),
        Some(PanelCommand::Marketplace(market)) => return crate::panel_marketplace::run(market),
        None => {}
    }
    let config = Config::load(args.into(), std::env::vars_os()).context("loading configuration")?;
    serve(config, &[BundledPlugin::LocalPassword], Extras::default())
}

/// `cap panel replay`: rebuilds the projections and prints what it did.
fn run_replay(args: ReplayArgs) -> anyhow::Result<()> {
    let layer = ConfigLayer {
        data_dir: args.data,
        database_url: args.database_url,
        config_file: args.config,
        ..ConfigLayer::default()
    };
    let config = Config::load(layer, std::env::vars_os()).context("loading configuration")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let db = cap_panel::db::Database::connect(&config.database_options())
            .await
            .with_context(|| format!("connecting to {}", config.database_location()))?;
        let result = cap_panel::db::replay::replay(&db).await;
        db.close().await;
        let report = result.context("replaying the event store; nothing was changed")?;
        println!("{report}");
        Ok(())
    })
}

/// `cap panel rotate-jwt-key`: stores a new signing key and prints its id.
fn run_rotate_jwt_key(args: ReplayArgs) -> anyhow::Result<()> {
    let layer = ConfigLayer {
        data_dir: args.data,
        database_url: args.database_url,
        config_file: args.config,
        ..ConfigLayer::default()
    };
    let config = Config::load(layer, std::env::vars_os()).context("loading configuration")?;
    let key = match &config.secret_key {
        Some(key) => key.clone(),
        None => {
            // Never create a key here: a new key would not open the
            // database's secrets.
            let path = config.data_dir.join(cap_panel::secrets::KEY_FILE_NAME);
            anyhow::ensure!(
                path.exists(),
                "no secret key: set {} or start the Panel once to create {}",
                cap_panel::secrets::SECRET_KEY_ENV,
                path.display()
            );
            cap_panel::secrets::SecretKey::load_or_create(&config.data_dir)?
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let options = config.database_options().secret_key(key);
        let db = cap_panel::db::Database::connect(&options)
            .await
            .with_context(|| format!("connecting to {}", config.database_location()))?;
        let result =
            cap_panel::identity::tokens::rotate_jwt_key(&db, &cap_panel::db::Actor::system()).await;
        db.close().await;
        let kid = result.context("rotating the JWT signing key")?;
        println!("created JWT signing key {kid}");
        Ok(())
    })
}

/// Prints install progress as steps on stderr.
struct StderrProgress;

impl Progress for StderrProgress {
    fn step(&self, message: &str) {
        eprintln!("==> {message}");
    }
}

/// What runs beside the Panel.
#[derive(Debug, Clone, Default)]
pub(crate) struct Extras {
    /// A Marketplace with its data under `<data>/marketplace`.
    pub(crate) marketplace: bool,
    /// A local Agent with its data under `<data>/agent`, running servers
    /// natively or in containers.
    pub(crate) agent: Option<cap_agent::node::BackendChoice>,
    /// Where the local Agent serves SFTP, if anywhere.
    pub(crate) sftp_listen: Option<std::net::SocketAddr>,
}

/// Starts the Panel with identity (and the `extras`), makes sure `bundle`
/// is installed, creates the first administrator if there is none, prints
/// the URLs and the admin's credentials, and serves until Ctrl-C or
/// SIGTERM.
pub(crate) fn serve(
    mut config: Config,
    bundle: &[BundledPlugin],
    extras: Extras,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let providers = ProviderRegistry::new();
        let options = IdentityOptions::from_config(&config);
        let marketplace_dir = config.data_dir.join("marketplace");
        let agent_dir = config.data_dir.join("agent");
        // The in-process Marketplace starts first so the Panel can be
        // wired to it: its URL and its key (configured, not trusted on
        // first use), unless the configuration names another Marketplace.
        let marketplace = if extras.marketplace {
            let server = MarketplaceServer::bind(MarketplaceConfig::new(marketplace_dir))
                .await
                .context("starting the Marketplace")?;
            let running = server.spawn();
            if config.marketplace_url.is_none() {
                config.marketplace_url = Some(running.url());
                config.marketplace_key = Some(running.root_key().to_hex());
            }
            Some(running)
        } else {
            None
        };
        let panel = Panel::builder(config)
            .identity(providers.clone(), options)
            .bind()
            .await
            .context("starting the Panel")?;
        let state = panel.state().clone();
        let plugins = state
            .plugins()
            .context("the Panel started without plugin management")?;
        // A Panel without its bundled plugins still serves (an admin can
        // upload them); it says loudly what is missing instead of refusing.
        let packages: Vec<_> = bundle.iter().map(|p| p.bundled()).collect();
        match bundled::ensure_installed(plugins, &packages, &StderrProgress).await {
            Ok(0) => {}
            Ok(n) => eprintln!("==> {n} bundled plugin(s) installed"),
            Err(e) => eprintln!(
                "warning: the bundled plugins are not installed: {:#}",
                anyhow::Error::from(e)
            ),
        }
        let password = std::env::var("CAP_ADMIN_PASSWORD").ok();
        let admin = match bootstrap_admin(state.db(), &providers, password).await {
            Ok(outcome) => Some(outcome),
            Err(BootstrapError::NoProvider) => {
                eprintln!(
                    "warning: no administrator was created: the local-password provider is not installed, so nobody can sign in yet"
                );
                None
            }
            Err(e) => return Err(anyhow::Error::from(e).context("creating the first administrator")),
        };

        let url = format!("http://{}", panel.local_addr());
        // The local Agent talks to its Panel over loopback, even when the
        // Panel listens on every address.
        let local_url = {
            let mut addr = panel.local_addr();
            if addr.ip().is_unspecified() {
                addr.set_ip(match addr.ip() {
                    std::net::IpAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                    std::net::IpAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
                });
            }
            format!("http://{addr}")
        };
        let running = panel.spawn();
        let agent = if let Some(backend) = extras.agent.clone() {
            // The stand-in game the test-game plugin runs; without it the
            // Agent still runs every other game.
            let bin = agent_dir.join("bin");
            if let Err(e) = local_agent::ensure_standin(&bin) {
                eprintln!("warning: the test-game stand-in is not available: {:#}", anyhow::Error::from(e));
            }
            let options = local_agent::LocalAgentOptions {
                data_dir: agent_dir.clone(),
                panel_url: local_url,
                program_dirs: vec![bin],
                backend,
                sftp_listen: extras.sftp_listen,
            };
            match local_agent::start(&state, options).await {
                Ok(node) => Some(node),
                Err(e) => {
                    eprintln!("warning: the local Agent did not start: {:#}", anyhow::Error::from(e));
                    None
                }
            }
        } else {
            None
        };
        // The first line on stdout is the URL; scripts and tests read it.
        println!("Panel listening on {url}");
        println!("  API:     {url}/api/v1 (OpenAPI document: {url}/api/v1/openapi.json)");
        match admin {
            None => println!("  Admin:   none yet (install an auth-provider plugin)"),
            Some(BootstrapOutcome::Created {
                generated_password: Some(password),
                ..
            }) => println!(
                "  Admin:   {ADMIN_USERNAME} / {password}  (shown once; CAP_ADMIN_PASSWORD chooses it)"
            ),
            Some(BootstrapOutcome::Created { .. }) => {
                println!("  Admin:   {ADMIN_USERNAME} (password from CAP_ADMIN_PASSWORD)")
            }
            Some(BootstrapOutcome::AlreadyExists) => {
                println!("  Admin:   {ADMIN_USERNAME} (created on an earlier run)")
            }
        }
        println!("  Plugins: {}", plugins.active_ids().join(", "));
        if let Some(marketplace) = &marketplace {
            println!("  Market:  {} (OpenAPI: {}/api/v1/openapi.json)", marketplace.url(), marketplace.url());
        }
        if extras.agent == Some(cap_agent::node::BackendChoice::Native) {
            println!(
                "  Note:    single-tenant: the Panel, the Agent and every game server share this machine; \
                 give accounts only to people you would trust with it (see README)"
            );
        }
        match &agent {
            Some(node) => println!(
                "  Agent:   node {} (data in {}, health http://{}/health{})",
                node.node_id,
                agent_dir.display(),
                node.health_addr,
                node.sftp_addr
                    .map(|addr| format!(", SFTP on {addr}"))
                    .unwrap_or_default()
            ),
            None if extras.agent.is_some() => println!("  Agent:   not started (see the warning above)"),
            None => {}
        }
        std::io::stdout().flush().context("writing to stdout")?;
        cap_panel::shutdown_signal().await;
        // Game servers keep running; the next start re-adopts them.
        if let Some(node) = agent {
            node.stop().await;
        }
        running.stop().await.context("serving")
    })
}
