//! Paid plugins: prices, Stripe Checkout with Connect destination charges,
//! the Stripe webhook, entitlements and license tokens.
//!
//! # Flow
//!
//! 1. A publisher connects a Stripe account (`acct_…`) and sets a price on
//!    a package or one version (integer minor units and a currency; free by
//!    default).
//! 2. A Panel instance (registered with the Marketplace, see
//!    [`crate::service`]) asks for a checkout: the Marketplace creates a
//!    Stripe Checkout Session in `payment` mode whose PaymentIntent is a
//!    *destination charge* to the publisher's account
//!    (`payment_intent_data.transfer_data.destination`) with an
//!    `application_fee_amount` of [`application_fee`] — the Marketplace's
//!    revenue share.
//! 3. Stripe calls the webhook. [`webhook::verify_signature`] checks the
//!    `Stripe-Signature` header over the raw body; events are recorded by
//!    id so a replay changes nothing. `checkout.session.completed` (paid)
//!    grants an **entitlement** for (plugin, Panel instance);
//!    `charge.refunded` (fully refunded) and `charge.dispute.closed` with
//!    status `lost` revoke it. Other event types are acknowledged and
//!    ignored.
//! 4. The Panel fetches license tokens ([`cap_marketplace::license`]) for its active
//!    entitlements and renews them in the background; a revoked
//!    entitlement is not renewed.
//!
//! Events are read as JSON with only the fields used here, so a Stripe API
//! version that adds fields does not break the webhook; requests to Stripe
//! go through `async-stripe`'s typed builders ([`stripe`]).

pub mod stripe;
pub mod webhook;

/// Basis points in a whole.
const BPS: i64 = 10_000;

/// How the Marketplace bills.
#[derive(Debug, Clone)]
pub struct BillingConfig {
    /// Stripe secret API key (`sk_…`).
    pub stripe_secret_key: String,
    /// Stripe API base URL; `None` for Stripe itself. Tests point it at a
    /// local stub.
    pub stripe_api_base: Option<String>,
    /// The webhook endpoint's signing secret (`whsec_…`).
    pub webhook_secret: String,
    /// The Marketplace's share of each sale in basis points (1500 = 15%).
    pub revenue_share_bps: u32,
    /// Accepted clock difference for webhook timestamps, seconds.
    pub webhook_tolerance: i64,
    /// Lifetime of a license token, seconds.
    pub license_ttl: i64,
    /// Grace period after a token's expiry, seconds.
    pub license_grace: i64,
}

impl BillingConfig {
    /// Defaults: 15% revenue share, 300 s webhook tolerance, 14-day
    /// licenses with a 7-day grace period.
    pub fn new(
        stripe_secret_key: impl Into<String>,
        webhook_secret: impl Into<String>,
    ) -> BillingConfig {
        BillingConfig {
            stripe_secret_key: stripe_secret_key.into(),
            stripe_api_base: None,
            webhook_secret: webhook_secret.into(),
            revenue_share_bps: 1_500,
            webhook_tolerance: webhook::DEFAULT_TOLERANCE,
            license_ttl: 14 * 24 * 3600,
            license_grace: 7 * 24 * 3600,
        }
    }
}

/// The Marketplace's fee on a sale of `amount` minor units at
/// `share_bps` basis points, in minor units: `amount × share / 10000`
/// rounded half up, computed in integers (no floating point), never more
/// than `amount`. `None` for a negative amount or a share above 100%.
pub fn application_fee(amount: i64, share_bps: u32) -> Option<i64> {
    let share = i64::from(share_bps);
    if amount < 0 || share > BPS {
        return None;
    }
    let scaled = i128::from(amount) * i128::from(share);
    let fee = (scaled + i128::from(BPS / 2)) / i128::from(BPS);
    i64::try_from(fee).ok().map(|fee| fee.min(amount))
}

#[cfg(test)]
mod tests {
    use super::application_fee;

    #[test]
    fn the_fee_is_the_share_of_the_amount_rounded_half_up_in_minor_units() {
        assert_eq!(application_fee(1_000, 1_500), Some(150));
        assert_eq!(application_fee(999, 1_500), Some(150)); // 149.85
        assert_eq!(application_fee(10, 1_500), Some(2)); // 1.5 → 2
        assert_eq!(application_fee(3, 1_500), Some(0)); // 0.45
        assert_eq!(application_fee(0, 1_500), Some(0));
        assert_eq!(application_fee(500, 0), Some(0));
        assert_eq!(application_fee(500, 10_000), Some(500));
        assert_eq!(application_fee(i64::MAX, 10_000), Some(i64::MAX));
        assert_eq!(application_fee(-1, 1_500), None);
        assert_eq!(application_fee(100, 10_001), None);
    }
}
