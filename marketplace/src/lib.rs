//! The Ctrl-Alt-Play Marketplace: where plugin packages (`.cap` files, see
//! [`cap_runtime::package`]) are published, signed, logged, found and
//! verified.
//!
//! # Trust model
//!
//! * **Publishers** sign each release with one of their Ed25519 keys
//!   ([`keys`], [`signing`]): the signature covers the package file's
//!   sha256 in a domain-separated message. A publisher may hold several
//!   keys and revoke one with a reason and an effective time.
//! * **The Marketplace** checks the author signature against the
//!   publisher's keys, countersigns it, and appends a signed entry to the
//!   package's append-only, hash-chained **log** ([`log`]). Key grants and
//!   revocations, yanks and unyanks are log entries too.
//! * A signed **index timestamp** with an expiry states every log's head.
//! * **Clients** keep a [`trust::TrustStore`]: the Marketplace key and the
//!   last heads and timestamp they accepted. A download is installed only
//!   if its bytes, signatures, keys, log, timestamp and dependencies all
//!   check out; a rolled-back or forked log, a frozen index or a
//!   substituted dependency is refused with a [`verify::VerifyError`]
//!   naming the failed check.
//!
//! # Resolution
//!
//! [`resolve`] picks versions with PubGrub: cargo-style requirements, the
//! Panel's supported plugin API as virtual packages, newest compatible
//! versions, yanked versions only when a [`lockfile::Lockfile`] pins them,
//! and failures explained in sentences a person can act on.
//!
//! # Service
//!
//! [`server::MarketplaceServer`] is the registry: publishers, keys,
//! publishing, yanking, downloads, search, the logs and the timestamp over
//! HTTP (axum, SQLite or PostgreSQL through sqlx). [`client`] talks to it:
//! `cap plugin publish` uploads with it, and Panels browse, fetch logs,
//! timestamps and files with it (verifying them with a [`TrustStore`]).
//!
//! # Billing
//!
//! [`billing`] sells paid plugins through Stripe Checkout (Connect
//! destination charges with the Marketplace's fee) and turns paid
//! purchases into entitlements; [`license`] tokens, signed by the
//! Marketplace key, let a Panel check an entitlement offline. Panels
//! register, buy and renew through [`client::MarketplaceClient`] too.

pub mod billing;
pub mod client;
pub mod keys;
pub mod license;
pub mod lockfile;
pub mod log;
pub mod resolve;
pub mod signing;
pub mod trust;
pub mod verify;

pub use keys::{KeyError, KeyId, PublicKey, SecretKey, Signature};
pub use lockfile::Lockfile;
pub use log::{LogEntry, LogEvent, LogHead, Notary, SignedTimestamp};
pub use trust::TrustStore;
pub use verify::{Download, VerifiedPackage, VerifyError};
pub mod server;
pub mod service;

pub use server::{MarketplaceConfig, MarketplaceServer, RunningMarketplace};
