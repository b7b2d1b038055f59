//! Request and response bodies of the registry's endpoints: publishers,
//! keys, packages, releases, search, yanks and the Marketplace's key.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::billing::PriceView;

/// The health report.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok` or `unavailable`.
    pub status: String,
    /// The Marketplace's version.
    pub version: String,
    /// Whether the database answers.
    pub database: bool,
}

/// The Marketplace's public key.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MarketplaceKey {
    /// The online key's id: what signs now.
    pub key_id: String,
    /// The online key, 64 hex digits.
    pub public_key: String,
    /// The online key in the public key-file format.
    pub key_file: String,
    /// The root key's id: what clients pin.
    pub root_key_id: Option<String>,
    /// The root key, 64 hex digits.
    pub root_key: Option<String>,
    /// The root's certificates of every online key with the time from which
    /// each signs, and the first online key's endorsement of the root (a
    /// `KeyChain`, see the `rotation` module).
    #[schema(value_type = Option<Object>)]
    pub chain: Option<crate::rotation::KeyChain>,
}

/// A new publisher.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NewPublisher {
    /// `^[a-z][a-z0-9-]{1,62}$`.
    pub name: String,
}

/// A created publisher and its token (shown once), or a rotated token.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PublisherCreated {
    /// The name.
    pub name: String,
    /// The bearer token. Store it; it is not shown again.
    pub token: String,
    /// When the token expires (unix seconds); rotate it before then with
    /// `POST /publishers/me/token`.
    pub expires_at: i64,
}

/// A publisher key.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct KeyView {
    /// Key id.
    pub key_id: String,
    /// The key, 64 hex digits.
    pub public_key: String,
    /// When added (unix seconds).
    pub created_at: i64,
    /// From when revoked (unix seconds).
    pub revoked_at: Option<i64>,
    /// Why revoked.
    pub revoke_reason: Option<String>,
}

/// A publisher's public profile.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PublisherView {
    /// The name.
    pub name: String,
    /// Keys, revoked ones included.
    pub keys: Vec<KeyView>,
    /// Package ids.
    pub packages: Vec<String>,
}

/// A statement, signed by one of the publisher's current keys, that
/// authorises a key change (see [`crate::signing::key_change_message`]).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct KeyChangeAuthorization {
    /// The signing key's id: one of the publisher's keys, not revoked.
    pub key_id: String,
    /// When the statement was made (unix seconds), within 300 s of the
    /// Marketplace's clock.
    pub issued_at: i64,
    /// 16 to 64 lowercase hex digits, never used before.
    pub nonce: String,
    /// The signature over the statement, 128 hex digits.
    pub signature: String,
}

/// A key to add.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NewKey {
    /// The public key: 64 hex digits, or a public key file.
    pub public_key: String,
    /// Signature by the key of `ctrl-alt-play/key-proof/v1\n<publisher>\n<key id>`.
    pub proof: String,
    /// The statement `add <key id>` signed by one of the publisher's
    /// current keys; required unless this is the publisher's first key.
    #[serde(default)]
    pub authorization: Option<KeyChangeAuthorization>,
}

/// A key a publisher who lost every key asks the admin to add.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RecoveryKey {
    /// The public key: 64 hex digits, or a public key file.
    pub public_key: String,
    /// Signature by the key of `ctrl-alt-play/key-proof/v1\n<publisher>\n<key id>`.
    pub proof: String,
    /// How the admin checked who asked (1 to 500 characters), for the
    /// record.
    pub reason: String,
}

/// A revocation.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RevokeKey {
    /// Why (1 to 500 characters).
    pub reason: String,
    /// From when signatures are invalid (unix seconds, not in the future,
    /// after the key's last release; default the statement's `issued_at`).
    /// Releases signed since then become uninstallable.
    #[serde(default)]
    pub effective_at: Option<i64>,
    /// The statement `revoke <key id> <effective at> <sha256 of reason>`
    /// signed by one of the publisher's current keys (the revoked key
    /// itself included).
    #[serde(default)]
    pub authorization: Option<KeyChangeAuthorization>,
}

/// An admin-approved revocation.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AdminRevocation {
    /// Why (1 to 500 characters), including how the admin checked the
    /// request.
    pub reason: String,
    /// From when signatures are invalid (unix seconds, not in the future).
    /// Unlike a publisher's revocation it may reach back over releases:
    /// this is how a key that leaked and signed a malicious release is
    /// revoked back to before it.
    pub effective_at: i64,
}

/// One version of a package.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReleaseView {
    /// Version.
    pub version: String,
    /// sha256 of the file.
    pub sha256: String,
    /// Size in bytes.
    pub size: i64,
    /// Target plugin API.
    pub api: String,
    /// Dependencies: id → requirement.
    pub dependencies: BTreeMap<String, String>,
    /// The author's key.
    pub key_id: String,
    /// The author's signature.
    pub author_signature: String,
    /// The Marketplace's countersignature.
    pub countersignature: String,
    /// Whether yanked.
    pub yanked: bool,
    /// Why yanked.
    pub yank_reason: Option<String>,
    /// Downloads of this version.
    pub downloads: i64,
    /// When published (unix seconds).
    pub published_at: i64,
    /// What this version costs (its own price or the package-wide one);
    /// absent: free.
    pub price: Option<PriceView>,
}

/// A package in listings.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PackageSummary {
    /// Plugin id.
    pub id: String,
    /// Publisher name.
    pub publisher: String,
    /// Display name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Plugin kinds.
    pub kinds: Vec<String>,
    /// Games it is for.
    pub games: Vec<String>,
    /// Whether it is paid (priced, or its manifest names a price).
    pub paid: bool,
    /// The newest version's price; absent: free or not yet priced.
    pub price: Option<PriceView>,
    /// Total downloads.
    pub downloads: i64,
    /// Newest version.
    pub latest_version: String,
    /// First published (unix seconds).
    pub created_at: i64,
    /// Last published (unix seconds).
    pub updated_at: i64,
}

/// A package with all its versions.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PackageView {
    /// The listing.
    #[serde(flatten)]
    pub summary: PackageSummary,
    /// Versions, newest first.
    pub versions: Vec<ReleaseView>,
}

/// Publish parameters.
#[derive(Debug, Default, Deserialize, IntoParams)]
pub struct PublishParams {
    /// Comma-separated games the package is for (e.g. `minecraft`).
    #[serde(default)]
    pub games: Option<String>,
}

/// Search parameters.
#[derive(Debug, Default, Deserialize, IntoParams)]
pub struct SearchParams {
    /// Words to find in id, name or description.
    #[serde(default)]
    pub q: Option<String>,
    /// Plugin kind: `game-type`, `auth-provider`, `hooks`, `ui`.
    #[serde(default)]
    pub kind: Option<String>,
    /// Game.
    #[serde(default)]
    pub game: Option<String>,
    /// `true` for paid, `false` for free.
    #[serde(default)]
    pub paid: Option<bool>,
    /// `downloads` or `recent` (default).
    #[serde(default)]
    pub sort: Option<String>,
    /// Page, from 1.
    #[serde(default)]
    pub page: Option<i64>,
    /// Page size, 1 to 100 (default 20).
    #[serde(default)]
    pub per_page: Option<i64>,
}

/// A page of packages.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PackagePage {
    /// The packages.
    pub items: Vec<PackageSummary>,
    /// This page.
    pub page: i64,
    /// Page size.
    pub per_page: i64,
    /// Matches in all pages.
    pub total: i64,
}

/// A yank.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Yank {
    /// Why (1 to 500 characters).
    pub reason: String,
}
