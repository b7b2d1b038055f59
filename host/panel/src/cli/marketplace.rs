//! `cap marketplace`: serve the plugin Marketplace (registry, signing,
//! transparency logs, timestamps) on its own.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use cap_marketplace::{MarketplaceConfig, MarketplaceServer};
use clap::Args;

/// Flags of `cap marketplace`.
#[derive(Debug, Args)]
pub(crate) struct MarketplaceArgs {
    /// Address to listen on
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
    /// Data directory: the SQLite database, package files, the signing key
    #[arg(long, value_name = "DIR", default_value = "./data/marketplace")]
    data: PathBuf,
    /// Database URL (sqlite:… or postgres://…) [default: SQLite in DATA]
    #[arg(long, value_name = "URL", env = "CAP_MARKETPLACE_DATABASE_URL")]
    database_url: Option<String>,
}

pub(crate) fn run(args: MarketplaceArgs) -> anyhow::Result<()> {
    let mut config = MarketplaceConfig::new(args.data);
    config.listen = args.listen;
    config.database_url = args.database_url;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let running = MarketplaceServer::bind(config)
            .await
            .context("starting the Marketplace")?
            .spawn();
        // The first line on stdout is the URL; scripts and tests read it.
        println!("Marketplace listening on {}", running.url());
        cap_panel::shutdown_signal().await;
        running.stop().await.context("stopping the Marketplace")
    })
}
