//! `cap up`: the Panel with its bundled plugins, a local Agent and a
//! Marketplace on embedded defaults, for a first look on one machine.
//!
//! On the first run it installs the plugins this binary carries
//! ([`crate::bundled`]) through the Panel's own plugin manager — validation,
//! grant, activation, exactly as an admin's upload would — and creates the
//! first administrator, printing the credentials once. Later runs find everything in the data directory and
//! start at once.
//!
//! `cap up` is **single-tenant**, and says so in its output: the Panel, the
//! Marketplace, the local Agent and the game servers share one machine,
//! and its admins (and the authors of the game plugins they install) run
//! code on it. Servers run as an unprivileged user when `cap up` runs as
//! root ([`cap_agent::isolation`]), but every server shares that user and
//! the kernel; several tenants need Agents on machines of their own.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use cap_panel::config::{Config, ConfigLayer};
use clap::Args;

use crate::bundled::BundledPlugin;

/// Flags of `cap up`; the same layering as `cap panel`.
#[derive(Debug, Args)]
pub(crate) struct UpArgs {
    /// Address to listen on [env: CAP_LISTEN] [default: 127.0.0.1:8080]
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Data directory: the SQLite database, plugins, caches [env: CAP_DATA] [default: ./data]
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// TOML config file [env: CAP_CONFIG]
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Do not install the example plugins on first run.
    #[arg(long)]
    no_examples: bool,
    /// Do not start the local Agent (data under DATA/agent).
    #[arg(long)]
    no_agent: bool,
    /// Where the local Agent serves SFTP (e.g. 0.0.0.0:2022; sign-ins as
    /// `<panel username>.<server>`); none unless given
    #[arg(long, value_name = "ADDR", env = "CAP_SFTP_LISTEN", default_value = "")]
    sftp_listen: String,
    #[command(flatten)]
    runtime: crate::agent::RuntimeArgs,
}

impl From<&UpArgs> for ConfigLayer {
    fn from(args: &UpArgs) -> Self {
        ConfigLayer {
            listen: args.listen,
            data_dir: args.data.clone(),
            config_file: args.config.clone(),
            ..ConfigLayer::default()
        }
    }
}

pub(crate) fn run(args: UpArgs) -> anyhow::Result<()> {
    let config =
        Config::load((&args).into(), std::env::vars_os()).context("loading configuration")?;
    let bundle: &[BundledPlugin] = if args.no_examples {
        &[BundledPlugin::LocalPassword]
    } else {
        &BundledPlugin::ALL
    };
    crate::panel::serve(
        config,
        bundle,
        crate::panel::Extras {
            marketplace: true,
            agent: if args.no_agent {
                None
            } else {
                Some(args.runtime.choice()?)
            },
            sftp_listen: crate::agent::sftp_listen(&args.sftp_listen, false)?,
        },
    )
}
