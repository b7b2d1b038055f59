//! Stripe webhooks: the `Stripe-Signature` check and the events the
//! Marketplace acts on.
//!
//! # Signature
//!
//! Stripe sends `Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>…]`
//! (other schemes such as `v0` may appear and are ignored). The `v1`
//! value is HMAC-SHA256 keyed with the endpoint secret over
//! `<t>.<raw body>`. The check runs over the **raw** body bytes — never a
//! re-serialised JSON — rejects a timestamp more than the tolerance
//! (default 300 s) away from now in either direction (replays of old
//! deliveries), accepts the request if any `v1` entry matches (Stripe
//! sends several while a secret is being rolled), and compares in constant
//! time.
//!
//! # Events
//!
//! [`parse_event`] reads only the fields the Marketplace needs from the
//! event JSON, so new API versions with extra fields keep working.

use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The header Stripe signs deliveries with.
pub const SIGNATURE_HEADER: &str = "stripe-signature";

/// Stripe's default tolerance, seconds.
pub const DEFAULT_TOLERANCE: i64 = 300;

/// Why a delivery's signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No `Stripe-Signature` header.
    #[error("no Stripe-Signature header")]
    Missing,
    /// The header has no usable `t=` timestamp.
    #[error("the Stripe-Signature header has no valid timestamp")]
    NoTimestamp,
    /// The header has no `v1=` signature.
    #[error("the Stripe-Signature header has no v1 signature")]
    NoSignature,
    /// The timestamp is outside the tolerance.
    #[error("the signature timestamp {timestamp} is more than {tolerance} s from now ({now})")]
    Stale {
        /// The header's timestamp.
        timestamp: i64,
        /// The current time.
        now: i64,
        /// The tolerance.
        tolerance: i64,
    },
    /// No `v1` signature matches the body.
    #[error("no v1 signature matches the payload")]
    Mismatch,
    /// The configured secret is empty: anyone could sign with it.
    #[error("the webhook secret is empty; nothing verifies against it")]
    NoSecret,
}

type HmacSha256 = Hmac<Sha256>;

fn tag(secret: &str, timestamp: &str, body: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length.
    let mut mac = match <HmacSha256 as KeyInit>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return [0; 32],
    };
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().into()
}

/// Checks a delivery: `header` is the `Stripe-Signature` value (if any),
/// `body` the raw request body, `now` unix seconds.
pub fn verify_signature(
    header: Option<&str>,
    body: &[u8],
    secret: &str,
    now: i64,
    tolerance: i64,
) -> Result<(), SignatureError> {
    if secret.trim().is_empty() {
        return Err(SignatureError::NoSecret);
    }
    let header = header.ok_or(SignatureError::Missing)?;
    let mut timestamp: Option<&str> = None;
    let mut candidates: Vec<&str> = Vec::new();
    for item in header.split(',') {
        let Some((scheme, value)) = item.trim().split_once('=') else {
            continue;
        };
        match scheme {
            "t" if timestamp.is_none() => timestamp = Some(value),
            "v1" => candidates.push(value),
            _ => {}
        }
    }
    let timestamp_text = timestamp.ok_or(SignatureError::NoTimestamp)?;
    let ts: i64 = timestamp_text
        .parse()
        .map_err(|_| SignatureError::NoTimestamp)?;
    if candidates.is_empty() {
        return Err(SignatureError::NoSignature);
    }
    if now.abs_diff(ts) > tolerance.unsigned_abs() {
        return Err(SignatureError::Stale {
            timestamp: ts,
            now,
            tolerance,
        });
    }
    let expected = tag(secret, timestamp_text, body);
    let mut matched = subtle::Choice::from(0);
    for candidate in candidates {
        if let Ok(bytes) = hex::decode(candidate)
            && bytes.len() == expected.len()
        {
            matched |= expected.as_slice().ct_eq(&bytes);
        }
    }
    if bool::from(matched) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[derive(Debug, Deserialize)]
struct RawEvent {
    id: String,
    #[serde(rename = "type")]
    event_type: String,
    data: RawData,
}

#[derive(Debug, Deserialize)]
struct RawData {
    object: serde_json::Value,
}

/// What an event means to the Marketplace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BillingEvent {
    /// A Checkout Session was paid (`checkout.session.completed` with
    /// `payment_status` `paid`, or `checkout.session.async_payment_succeeded`).
    SessionPaid {
        /// `cs_…`.
        session: String,
        /// The PaymentIntent (`pi_…`), if any.
        payment_intent: Option<String>,
        /// The Marketplace checkout id from the session's metadata.
        checkout: Option<String>,
    },
    /// A charge was refunded in full (`charge.refunded`, `refunded: true`).
    Refunded {
        /// The charge's PaymentIntent.
        payment_intent: Option<String>,
        /// `ch_…`.
        charge: String,
    },
    /// A dispute was lost (`charge.dispute.closed`, `status: lost`).
    DisputeLost {
        /// The disputed PaymentIntent.
        payment_intent: Option<String>,
        /// The disputed charge.
        charge: Option<String>,
    },
    /// An event the Marketplace does not act on (other types, unpaid
    /// sessions, partial refunds, won disputes).
    Ignored,
}

/// A delivered event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `evt_…`, the idempotency key.
    pub id: String,
    /// The event type.
    pub event_type: String,
    /// What it means.
    pub meaning: BillingEvent,
}

/// Why an event body could not be read.
#[derive(Debug, thiserror::Error)]
#[error("not a Stripe event: {0}")]
pub struct EventError(String);

fn string(object: &serde_json::Value, field: &str) -> Option<String> {
    match object.get(field)? {
        serde_json::Value::String(s) => Some(s.clone()),
        // Expanded objects carry their id.
        serde_json::Value::Object(o) => o.get("id")?.as_str().map(str::to_owned),
        _ => None,
    }
}

/// Reads an event delivery (after [`verify_signature`]).
pub fn parse_event(body: &[u8]) -> Result<Event, EventError> {
    let raw: RawEvent = serde_json::from_slice(body).map_err(|e| EventError(e.to_string()))?;
    if raw.id.is_empty() || raw.id.len() > 255 {
        return Err(EventError("the event id is empty or too long".into()));
    }
    let object = &raw.data.object;
    let meaning = match raw.event_type.as_str() {
        "checkout.session.completed" | "checkout.session.async_payment_succeeded" => {
            let paid = object.get("payment_status").and_then(|v| v.as_str()) == Some("paid");
            match string(object, "id") {
                Some(session) if paid => BillingEvent::SessionPaid {
                    session,
                    payment_intent: string(object, "payment_intent"),
                    checkout: object
                        .get("metadata")
                        .and_then(|m| m.get("cap_checkout"))
                        .and_then(|v| v.as_str())
                        .map(str::to_owned),
                },
                Some(_) => BillingEvent::Ignored,
                None => return Err(EventError("the session has no id".into())),
            }
        }
        "charge.refunded" => {
            let full = object.get("refunded").and_then(|v| v.as_bool()) == Some(true);
            match string(object, "id") {
                Some(charge) if full => BillingEvent::Refunded {
                    payment_intent: string(object, "payment_intent"),
                    charge,
                },
                Some(_) => BillingEvent::Ignored,
                None => return Err(EventError("the charge has no id".into())),
            }
        }
        "charge.dispute.closed" => {
            if object.get("status").and_then(|v| v.as_str()) == Some("lost") {
                BillingEvent::DisputeLost {
                    payment_intent: string(object, "payment_intent"),
                    charge: string(object, "charge"),
                }
            } else {
                BillingEvent::Ignored
            }
        }
        _ => BillingEvent::Ignored,
    };
    Ok(Event {
        id: raw.id,
        event_type: raw.event_type,
        meaning,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test";

    fn header(t: i64, body: &[u8], secret: &str) -> String {
        format!(
            "t={t},v1={}",
            hex::encode(tag(secret, &t.to_string(), body))
        )
    }

    #[test]
    fn an_empty_secret_verifies_nothing_not_even_a_signature_made_with_it() {
        let body = br#"{"id":"evt_1"}"#;
        for secret in ["", "  "] {
            let h = header(1_000, body, secret);
            assert_eq!(
                verify_signature(Some(&h), body, secret, 1_000, 300),
                Err(SignatureError::NoSecret)
            );
        }
    }

    #[test]
    fn a_correct_signature_within_the_tolerance_verifies() {
        let body = br#"{"id":"evt_1"}"#;
        let h = header(1_000, body, SECRET);
        assert_eq!(verify_signature(Some(&h), body, SECRET, 1_200, 300), Ok(()));
    }

    #[test]
    fn any_of_several_v1_signatures_may_match() {
        let body = b"{}";
        let good = header(1_000, body, SECRET);
        let good_v1 = good.split_once(",v1=").map(|(_, v)| v).unwrap_or_default();
        let h = format!("t=1000,v1={},v0=abc,v1={good_v1}", "00".repeat(32));
        assert_eq!(verify_signature(Some(&h), body, SECRET, 1_000, 300), Ok(()));
    }

    #[test]
    fn a_changed_body_wrong_secret_or_old_timestamp_is_refused() {
        let body = b"{\"a\":1}";
        let h = header(1_000, body, SECRET);
        assert_eq!(
            verify_signature(Some(&h), b"{\"a\":2}", SECRET, 1_000, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(Some(&h), body, "whsec_other", 1_000, 300),
            Err(SignatureError::Mismatch)
        );
        assert!(matches!(
            verify_signature(Some(&h), body, SECRET, 1_301, 300),
            Err(SignatureError::Stale { .. })
        ));
        assert!(matches!(
            verify_signature(Some(&h), body, SECRET, 699, 300),
            Err(SignatureError::Stale { .. })
        ));
        assert_eq!(
            verify_signature(None, body, SECRET, 1_000, 300),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify_signature(Some("v1=00"), body, SECRET, 1_000, 300),
            Err(SignatureError::NoTimestamp)
        );
        assert_eq!(
            verify_signature(Some("t=1000,v0=00"), body, SECRET, 1_000, 300),
            Err(SignatureError::NoSignature)
        );
    }

    #[test]
    fn events_are_read_for_what_the_marketplace_acts_on() {
        let paid = br#"{"id":"evt_1","type":"checkout.session.completed","data":{"object":{"id":"cs_1","payment_status":"paid","payment_intent":"pi_1"}}}"#;
        assert_eq!(
            parse_event(paid).map(|e| e.meaning).ok(),
            Some(BillingEvent::SessionPaid {
                session: "cs_1".into(),
                payment_intent: Some("pi_1".into()),
                checkout: None,
            })
        );
        let unpaid = br#"{"id":"evt_2","type":"checkout.session.completed","data":{"object":{"id":"cs_1","payment_status":"unpaid"}}}"#;
        assert_eq!(
            parse_event(unpaid).map(|e| e.meaning).ok(),
            Some(BillingEvent::Ignored)
        );
        let partial = br#"{"id":"evt_3","type":"charge.refunded","data":{"object":{"id":"ch_1","refunded":false,"payment_intent":"pi_1"}}}"#;
        assert_eq!(
            parse_event(partial).map(|e| e.meaning).ok(),
            Some(BillingEvent::Ignored)
        );
        let won = br#"{"id":"evt_4","type":"charge.dispute.closed","data":{"object":{"id":"dp_1","status":"won","charge":"ch_1"}}}"#;
        assert_eq!(
            parse_event(won).map(|e| e.meaning).ok(),
            Some(BillingEvent::Ignored)
        );
        assert!(parse_event(b"[]").is_err());
    }
}
