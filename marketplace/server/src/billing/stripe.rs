//! The calls the Marketplace makes to Stripe, through `async-stripe`.
//!
//! Only one: creating a Checkout Session for a plugin purchase, as a
//! Connect *destination charge* with an application fee. The request
//! carries an idempotency key (the Marketplace's checkout id), so a retried
//! request never creates a second session. The API base URL is
//! configurable ([`super::BillingConfig::stripe_api_base`]) so tests talk
//! to a local stub.

use std::collections::HashMap;
use std::time::Duration;

use stripe::{Client, ClientBuilder, IdempotencyKey, RequestStrategy, StripeRequest};
use stripe_checkout::CheckoutSessionMode;
use stripe_checkout::checkout_session::{
    CreateCheckoutSession, CreateCheckoutSessionLineItems, CreateCheckoutSessionLineItemsPriceData,
    CreateCheckoutSessionPaymentIntentData, CreateCheckoutSessionPaymentIntentDataTransferData,
    ProductData,
};

use super::BillingConfig;

/// Why a Stripe call failed.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The client could not be configured (bad key or URL).
    #[error("Stripe client configuration: {0}")]
    Config(String),
    /// Stripe (or the network) refused the request.
    #[error("Stripe request failed: {0}")]
    Request(String),
}

/// One plugin purchase to start.
#[derive(Debug, Clone)]
pub struct CheckoutRequest {
    /// The Marketplace's checkout id: idempotency key and metadata.
    pub checkout_id: String,
    /// Plugin id.
    pub plugin: String,
    /// Plugin display name, shown on the payment page.
    pub plugin_name: String,
    /// Version being bought (metadata only: the entitlement covers the plugin).
    pub version: String,
    /// Price in minor units.
    pub amount: i64,
    /// ISO 4217 code, lowercase.
    pub currency: String,
    /// The Marketplace's fee in minor units.
    pub application_fee: i64,
    /// The publisher's connected account, `acct_…`.
    pub destination: String,
    /// The buying Panel instance.
    pub panel_instance: String,
    /// Where Stripe sends the buyer after paying.
    pub success_url: String,
    /// Where Stripe sends the buyer after cancelling.
    pub cancel_url: String,
}

/// A created Checkout Session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedSession {
    /// `cs_…`.
    pub id: String,
    /// The payment page.
    pub url: Option<String>,
    /// When the session expires (unix seconds).
    pub expires_at: i64,
}

/// A configured Stripe client.
#[derive(Clone)]
pub struct Gateway {
    client: Client,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").finish_non_exhaustive()
    }
}

impl Gateway {
    /// A client for `config`'s key and API base.
    ///
    /// # Errors
    ///
    /// [`GatewayError::Config`] for an empty Stripe key or webhook secret:
    /// an empty webhook secret would let anyone forge payment events.
    pub fn new(config: &BillingConfig) -> Result<Gateway, GatewayError> {
        if config.stripe_secret_key.trim().is_empty() {
            return Err(GatewayError::Config(
                "the Stripe secret key is empty; set it to the account's secret key (sk_…)".into(),
            ));
        }
        if config.webhook_secret.trim().is_empty() {
            return Err(GatewayError::Config(
                "the Stripe webhook secret is empty; set it to the webhook endpoint's signing secret (whsec_…)"
                    .into(),
            ));
        }
        let mut builder = ClientBuilder::new(config.stripe_secret_key.clone())
            .timeout(Duration::from_secs(20))
            .app_info(
                "ctrl-alt-play-marketplace",
                Some(env!("CARGO_PKG_VERSION").to_owned()),
                None,
            );
        if let Some(base) = &config.stripe_api_base {
            let base = if base.ends_with('/') {
                base.clone()
            } else {
                format!("{base}/")
            };
            builder = builder.url(base);
        }
        let client = builder
            .build()
            .map_err(|e| GatewayError::Config(e.to_string()))?;
        Ok(Gateway { client })
    }

    /// Creates the Checkout Session for `request`.
    pub async fn create_checkout(
        &self,
        request: &CheckoutRequest,
    ) -> Result<CreatedSession, GatewayError> {
        let metadata: HashMap<String, String> = [
            ("cap_checkout", request.checkout_id.as_str()),
            ("cap_plugin", request.plugin.as_str()),
            ("cap_version", request.version.as_str()),
            ("cap_panel_instance", request.panel_instance.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let currency: stripe_types::Currency = request
            .currency
            .parse()
            .unwrap_or_else(|e: std::convert::Infallible| match e {});
        let mut price = CreateCheckoutSessionLineItemsPriceData::new(currency);
        price.unit_amount = Some(request.amount);
        price.product_data = Some(ProductData::new(format!(
            "{} ({})",
            request.plugin_name, request.plugin
        )));
        let mut item = CreateCheckoutSessionLineItems::new();
        item.price_data = Some(price);
        item.quantity = Some(1);
        let mut intent = CreateCheckoutSessionPaymentIntentData::new();
        intent.application_fee_amount = Some(request.application_fee);
        intent.transfer_data = Some(CreateCheckoutSessionPaymentIntentDataTransferData::new(
            request.destination.clone(),
        ));
        intent.metadata = Some(metadata.clone());
        let key = IdempotencyKey::new(format!("cap-checkout-{}", request.checkout_id))
            .map_err(|e| GatewayError::Config(e.to_string()))?;
        let session = CreateCheckoutSession::new()
            .mode(CheckoutSessionMode::Payment)
            .line_items(vec![item])
            .payment_intent_data(intent)
            .client_reference_id(request.panel_instance.clone())
            .metadata(metadata)
            .success_url(request.success_url.clone())
            .cancel_url(request.cancel_url.clone())
            .customize()
            .request_strategy(RequestStrategy::Idempotent(key))
            .send(&self.client)
            .await
            .map_err(|e| GatewayError::Request(e.to_string()))?;
        Ok(CreatedSession {
            id: session.id.as_str().to_owned(),
            url: session.url,
            expires_at: session.expires_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_billing_config_with_an_empty_webhook_secret_is_refused() {
        for secret in ["", " "] {
            let err = Gateway::new(&BillingConfig::new("sk_test_x", secret)).unwrap_err();
            assert!(err.to_string().contains("webhook secret is empty"), "{err}");
        }
        let err = Gateway::new(&BillingConfig::new("", "whsec_x")).unwrap_err();
        assert!(err.to_string().contains("secret key is empty"), "{err}");
        assert!(Gateway::new(&BillingConfig::new("sk_test_x", "whsec_x")).is_ok());
    }
}
