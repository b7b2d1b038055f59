//! The Ctrl-Alt-Play Marketplace service: the registry that publishers
//! publish to and Panels browse, buy from and download from.
//!
//! # What belongs here, and why
//!
//! Everything only the running Marketplace needs: the HTTP API (axum,
//! [`service`]), its database ([`store`], SQLite or PostgreSQL with
//! numbered migrations), billing through Stripe ([`billing`]), per-address
//! rate limits, and the data directory with the Marketplace's key files
//! and its lock ([`server`]).
//!
//! What a Panel or `cap plugin publish` needs — the client, signing and
//! verification, the transparency log, key rotation, trust, resolution,
//! lockfiles, license checks and the wire types — lives in
//! [`cap_marketplace`], which this crate builds on. The split keeps a web
//! server, a database driver and a payment client out of every Panel
//! binary's trust base and build, and makes the wire format the one
//! interface between the two: the server answers with
//! [`cap_marketplace::wire`] bodies, the client decodes the same types.
//!
//! `cap marketplace serve` runs a [`MarketplaceServer`] and
//! `cap marketplace rotate-key` calls [`server::rotate_online_key`]; tests
//! start one on `127.0.0.1:0`.
//!
//! # Example
//!
//! ```no_run
//! use cap_marketplace_server::{MarketplaceConfig, MarketplaceServer};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = MarketplaceConfig::new("/var/lib/cap-marketplace");
//! let running = MarketplaceServer::bind(config).await?.spawn();
//! println!("listening on {}", running.url());
//! running.stop().await?;
//! # Ok(())
//! # }
//! ```

pub mod billing;
pub mod server;
pub mod service;
pub mod store;

pub use server::{MarketplaceConfig, MarketplaceServer, RunningMarketplace};
