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
//! * **A publisher's keys, not its bearer token, carry its trust.** The
//!   token (which expires and rotates) adds only an account's first key;
//!   every later addition or revocation is a key-change statement signed by
//!   one of the publisher's current keys, fresh and used once
//!   ([`signing::key_change_message`]). A publisher's revocation never
//!   reaches back over releases the key already signed; only the
//!   Marketplace's admin, checking out of band, recovers an account that
//!   lost its keys or revokes a leaked key back in time.
//! * **Uploads are authenticated before they are read.** `publish` checks
//!   the key and the signature over the upload's sha256 (with the id and
//!   version the headers claim) before it unpacks a byte, and the package
//!   reader bounds the whole decompressed stream and every header entry
//!   ([`cap_runtime::package`]).
//! * **The Marketplace** checks the author signature against the
//!   publisher's keys, countersigns it, and appends a signed entry to the
//!   package's append-only, hash-chained **log** ([`log`]). Key grants and
//!   revocations, yanks and unyanks are log entries too.
//! * A signed **index timestamp** with an expiry states every log's head.
//! * **The Marketplace's own keys rotate.** An offline root key certifies
//!   each online key (which signs entries, countersignatures, timestamps
//!   and licenses) with the time from which it signs ([`rotation`]);
//!   clients pin the root and verify each signature with the online key
//!   valid at its time, timestamps only with the newest.
//! * **Clients** keep a [`trust::TrustStore`]: the pinned key, the key chain and the
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
//! # What belongs here, and why
//!
//! This crate is what a Panel and `cap` link: the [`client`], signing
//! ([`keys`], [`signing`]), the transparency [`log`], key [`rotation`],
//! [`trust`] and [`verify`], [`resolve`] and [`lockfile`], [`license`]
//! checks, and the [`wire`] types (the request and response bodies the
//! client and the server share). It has no web server, no database driver
//! and no payment client: those are the registry service's alone and live
//! in `cap-marketplace-server` (`marketplace/server`), so a Panel's build
//! and trust base carry none of them, and the wire types are the one
//! interface between the two crates.
//!
//! # Service
//!
//! The registry itself (publishers, keys, publishing, yanking, downloads,
//! search, the logs and the timestamp over HTTP; SQLite or PostgreSQL) is
//! `cap-marketplace-server`. [`client`] talks to it: `cap plugin publish`
//! uploads with it, and Panels browse, fetch logs, timestamps and files
//! with it (verifying them with a [`TrustStore`]).
//!
//! # Billing
//!
//! The server sells paid plugins through Stripe Checkout and turns paid
//! purchases into entitlements; [`license`] tokens, signed by the
//! Marketplace key, let a Panel check an entitlement offline. Panels
//! register, buy and renew through [`client::MarketplaceClient`].

pub mod client;
pub mod keys;
pub mod license;
pub mod lockfile;
pub mod log;
pub mod resolve;
pub mod rotation;
pub mod signing;
pub mod trust;
pub mod verify;
pub mod wire;

pub use keys::{KeyError, KeyId, PublicKey, SecretKey, Signature};
pub use lockfile::Lockfile;
pub use log::{LogEntry, LogEvent, LogHead, Notary, SignedTimestamp};
pub use trust::TrustStore;
pub use verify::{Download, VerifiedPackage, VerifyError};
