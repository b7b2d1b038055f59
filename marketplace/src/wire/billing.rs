//! Request and response bodies of the billing endpoints: prices, payout
//! accounts, Panel registration, checkout, the Stripe webhook's answer and
//! licenses.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// A price.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PriceView {
    /// Minor units (cents).
    pub amount: i64,
    /// ISO 4217 code, lowercase.
    pub currency: String,
}

/// A price to set.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NewPrice {
    /// Minor units, 1 to 99,999,999.
    pub amount: i64,
    /// ISO 4217 code, three lowercase letters (`usd`, `eur`).
    pub currency: String,
    /// A published version to price on its own; absent for the whole
    /// package (every version without its own price).
    #[serde(default)]
    pub version: Option<String>,
}

/// One price of a package.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PriceEntry {
    /// The version, or absent for the package-wide price.
    pub version: Option<String>,
    /// The price.
    #[serde(flatten)]
    pub price: PriceView,
}

/// A package's prices.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PriceList {
    /// Plugin id.
    pub package: String,
    /// Package-wide and per-version prices. Empty: free.
    pub prices: Vec<PriceEntry>,
}

/// Which price to clear.
#[derive(Debug, Default, Deserialize, IntoParams)]
pub struct PriceTarget {
    /// The version whose own price to clear; absent for the package-wide one.
    #[serde(default)]
    pub version: Option<String>,
}

/// The publisher's Stripe connected account.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Payouts {
    /// `acct_…`: sales are destination charges to this account.
    pub stripe_account: String,
}

/// A Panel registering.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct NewPanel {
    /// The Panel's own instance id, `^[a-z][a-z0-9-]{1,62}$`; absent to
    /// let the Marketplace pick one.
    #[serde(default)]
    pub instance_id: Option<String>,
}

/// A registered Panel and its token (shown once).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PanelCreated {
    /// The instance id licenses are bound to.
    pub instance_id: String,
    /// The bearer token. Store it; it is not shown again.
    pub token: String,
}

/// A purchase to start.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NewCheckout {
    /// The version to buy (its own price applies if it has one); default
    /// the newest. The entitlement covers the plugin, not one version.
    #[serde(default)]
    pub version: Option<String>,
    /// Where Stripe sends the buyer after paying (http or https URL).
    pub success_url: String,
    /// Where Stripe sends the buyer after cancelling.
    pub cancel_url: String,
}

/// A started purchase.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CheckoutView {
    /// The Marketplace's checkout id.
    pub checkout_id: String,
    /// Stripe's Checkout Session id.
    pub session_id: String,
    /// The payment page to send the buyer to.
    pub url: Option<String>,
    /// Price in minor units.
    pub amount: i64,
    /// Currency.
    pub currency: String,
    /// The Marketplace's share, minor units; the rest goes to the publisher.
    pub application_fee: i64,
    /// When the session expires (unix seconds).
    pub expires_at: i64,
}

/// The webhook's answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookReceipt {
    /// The event id.
    pub event: String,
    /// `true` if the event had been processed before (nothing changed).
    pub duplicate: bool,
    /// What the event did: `entitlement-granted`, `entitlement-revoked`,
    /// `unchanged` (the checkout's entitlement exists already), `ignored`
    /// or `duplicate`.
    pub effect: String,
}

/// One of a Panel's licenses.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LicenseView {
    /// Plugin id.
    pub plugin: String,
    /// The entitlement id.
    pub entitlement: String,
    /// `active` or `revoked`.
    pub status: String,
    /// A fresh license token (active entitlements only).
    pub token: Option<String>,
    /// The token's expiry (unix seconds).
    pub expires_at: Option<i64>,
    /// The end of its grace period (unix seconds).
    pub grace_until: Option<i64>,
    /// When to renew (unix seconds): half the token's lifetime.
    pub renew_after: Option<i64>,
    /// Why revoked.
    pub revoke_reason: Option<String>,
}

/// A Panel's licenses.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LicenseList {
    /// The Panel instance.
    pub panel_instance: String,
    /// One per entitlement, newest first.
    pub licenses: Vec<LicenseView>,
}
