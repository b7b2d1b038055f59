//! The Marketplace's HTTP wire format: the request and response bodies,
//! query parameters, headers and signed messages that the client
//! ([`crate::client`]) sends and the server (`cap-marketplace-server`)
//! answers.
//!
//! They live here, in the crate a Panel links, rather than beside the
//! server's handlers, so that the client and the server compile against
//! one definition of each body and a Panel never links the server to name
//! them. Each body derives its OpenAPI schema (`utoipa::ToSchema`), so the
//! server's `/api/v1/openapi.json` describes exactly these types.
//!
//! Everything is under `/api/v1`; errors are problem documents whose
//! `code` the client maps to [`crate::client::ClientError`].

use crate::keys::KeyId;

mod billing;
mod registry;

pub use billing::{
    CheckoutView, LicenseList, LicenseView, NewCheckout, NewPanel, NewPrice, PanelCreated, Payouts,
    PriceEntry, PriceList, PriceTarget, PriceView, WebhookReceipt,
};
pub use registry::{
    AdminRevocation, Health, KeyChangeAuthorization, KeyView, MarketplaceKey, NewKey, NewPublisher,
    PackagePage, PackageSummary, PackageView, PublishParams, PublisherCreated, PublisherView,
    RecoveryKey, ReleaseView, RevokeKey, SearchParams, Yank,
};

/// The media type of package files.
pub const PACKAGE_MEDIA_TYPE: &str = "application/vnd.ctrl-alt-play.package";
/// Header carrying the author's key id on publish.
pub const KEY_ID_HEADER: &str = "x-cap-key-id";
/// Header carrying the author's signature on publish.
pub const SIGNATURE_HEADER: &str = "x-cap-signature";
/// Header carrying the id of the package being published, as its
/// `plugin.toml` declares it.
pub const PACKAGE_ID_HEADER: &str = "x-cap-package";
/// Header carrying the version of the package being published.
pub const PACKAGE_VERSION_HEADER: &str = "x-cap-version";
/// Header carrying the sha256 of a downloaded package.
pub const SHA256_HEADER: &str = "x-cap-sha256";

/// The message a publisher signs to prove it holds a key it adds.
///
/// ```
/// use cap_marketplace::keys::SecretKey;
/// use cap_marketplace::wire::key_proof_message;
///
/// let key = SecretKey::from_seed(&[7; 32]);
/// let proof = key.sign(&key_proof_message("acme", key.id()));
/// assert!(key.public().verify(&key_proof_message("acme", key.id()), &proof));
/// ```
pub fn key_proof_message(publisher: &str, key: &KeyId) -> Vec<u8> {
    format!("ctrl-alt-play/key-proof/v1\n{publisher}\n{key}").into_bytes()
}
