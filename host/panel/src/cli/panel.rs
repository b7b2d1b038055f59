//! `cap panel`: serve the Panel.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use cap_panel::Panel;
use cap_panel::config::{Config, ConfigLayer};
use cap_panel::identity::rate_limit::Rule;
use clap::Args;

/// Flags of `cap panel`. Each overrides its `CAP_*` variable, which
/// overrides the config file, which overrides the default.
#[derive(Debug, Args)]
pub(crate) struct PanelArgs {
    /// Address to listen on [env: CAP_LISTEN] [default: 127.0.0.1:8080]
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
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
}

impl From<PanelArgs> for ConfigLayer {
    fn from(args: PanelArgs) -> Self {
        ConfigLayer {
            listen: args.listen,
            data_dir: args.data,
            database_url: args.database_url,
            config_file: args.config,
            rate_limits: args.rate_limits.into_iter().collect(),
            ..ConfigLayer::default()
        }
    }
}

pub(crate) fn run(args: PanelArgs) -> anyhow::Result<()> {
    let config = Config::load(args.into(), std::env::vars_os()).context("loading configuration")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let panel = Panel::bind(config).await.context("starting the Panel")?;
        // The first line on stdout is the URL; scripts and tests read it.
        println!("Panel listening on http://{}", panel.local_addr());
        panel
            .serve(cap_panel::shutdown_signal())
            .await
            .context("serving")
    })
}
