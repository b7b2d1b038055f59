//! License tokens for paid plugins: issued by the Marketplace for an
//! entitlement, verified **offline** by the Panel before it activates a
//! paid plugin.
//!
//! # Format
//!
//! `cap-license.v1.<claims>.<signature>`, where `<claims>` is the
//! base64url (no padding) of the claims' JSON and `<signature>` the
//! base64url of an Ed25519 signature by the Marketplace key over
//! `ctrl-alt-play/license/v1\n` followed by the exact claim bytes. The
//! signature is checked over the bytes as sent, before they are parsed, so
//! no JSON canonicalisation is needed and a changed claim never parses
//! into something trusted.
//!
//! # Time
//!
//! A token is [`LicenseStatus::Valid`] until `expires_at`, then
//! [`LicenseStatus::InGrace`] for `grace_seconds` more, then refused with
//! [`LicenseError::Expired`]. The Panel renews in the background long
//! before expiry (the Marketplace suggests renewing once half the lifetime
//! has passed); the grace period covers a Marketplace that is unreachable
//! for a while, so nobody re-activates anything by hand. A revoked
//! entitlement is not renewed, so its last token lapses at expiry plus
//! grace. Verification does no I/O.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature as DalekSignature, VerifyingKey};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::keys::SecretKey;

/// The token prefix naming the format and its version.
pub const TOKEN_PREFIX: &str = "cap-license.v1.";

/// The domain separator of the signed message.
const DOMAIN: &[u8] = b"ctrl-alt-play/license/v1\n";

/// The longest token accepted (a guard against absurd input).
const MAX_TOKEN_LEN: usize = 8 * 1024;

/// What a license token states.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LicenseClaims {
    /// The plugin id the license is for.
    pub plugin: String,
    /// The Panel instance the license is bound to.
    pub panel_instance: String,
    /// The entitlement (purchase) the license stems from.
    pub entitlement: String,
    /// When the token was issued.
    #[serde(with = "time::serde::timestamp")]
    pub issued_at: OffsetDateTime,
    /// When the token stops being [`LicenseStatus::Valid`].
    #[serde(with = "time::serde::timestamp")]
    pub expires_at: OffsetDateTime,
    /// Seconds after `expires_at` during which the plugin keeps working
    /// ([`LicenseStatus::InGrace`]).
    pub grace_seconds: i64,
}

impl LicenseClaims {
    /// The end of the grace period: the last moment the token is usable.
    pub fn grace_until(&self) -> OffsetDateTime {
        self.expires_at
            .checked_add(time::Duration::seconds(self.grace_seconds.max(0)))
            .unwrap_or(self.expires_at)
    }
}

/// The outcome of a successful check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LicenseStatus {
    /// Within its lifetime.
    Valid,
    /// Past expiry but within the grace period, usable until `until`.
    InGrace {
        /// The end of the grace period.
        until: OffsetDateTime,
    },
}

/// Why a token was refused: one variant per failed check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LicenseError {
    /// The token is not a license token of this format.
    #[error("malformed license token: {0}")]
    Malformed(String),
    /// The signature does not verify with the Marketplace key.
    #[error("the license signature does not verify with the Marketplace key")]
    BadSignature,
    /// The token is for another plugin.
    #[error("the license is for plugin {actual}, not {expected}")]
    WrongPlugin {
        /// The plugin asked about.
        expected: String,
        /// The plugin in the token.
        actual: String,
    },
    /// The token is bound to another Panel instance.
    #[error("the license is bound to Panel instance {actual}, not {expected}")]
    WrongInstance {
        /// This Panel's instance id.
        expected: String,
        /// The instance in the token.
        actual: String,
    },
    /// The token expired and its grace period is over.
    #[error("the license expired at {expires_at} and its grace period ended at {grace_until}")]
    Expired {
        /// Expiry.
        expires_at: OffsetDateTime,
        /// End of the grace period.
        grace_until: OffsetDateTime,
    },
}

fn message(claims: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(DOMAIN.len() + claims.len());
    m.extend_from_slice(DOMAIN);
    m.extend_from_slice(claims);
    m
}

/// Signs `claims` with the Marketplace key into a token.
pub fn issue_license(key: &SecretKey, claims: &LicenseClaims) -> String {
    // Serialising a struct of strings, integers and timestamps cannot fail.
    let json = serde_json::to_vec(claims).unwrap_or_default();
    let signature = key.sign(&message(&json));
    format!(
        "{TOKEN_PREFIX}{}.{}",
        URL_SAFE_NO_PAD.encode(&json),
        URL_SAFE_NO_PAD.encode(signature.to_bytes())
    )
}

/// Checks a token's signature and reads its claims, without checking
/// plugin, instance or time (for display and renewal scheduling).
pub fn decode_license(token: &str, key: &VerifyingKey) -> Result<LicenseClaims, LicenseError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(LicenseError::Malformed("longer than 8 KiB".into()));
    }
    let rest = token
        .trim()
        .strip_prefix(TOKEN_PREFIX)
        .ok_or_else(|| LicenseError::Malformed(format!("does not start with {TOKEN_PREFIX}")))?;
    let (claims_b64, sig_b64) = rest
        .split_once('.')
        .ok_or_else(|| LicenseError::Malformed("no signature part".into()))?;
    let claims = URL_SAFE_NO_PAD
        .decode(claims_b64)
        .map_err(|e| LicenseError::Malformed(format!("claims are not base64url: {e}")))?;
    let sig = URL_SAFE_NO_PAD
        .decode(sig_b64)
        .map_err(|e| LicenseError::Malformed(format!("signature is not base64url: {e}")))?;
    let sig: [u8; 64] = sig
        .try_into()
        .map_err(|_| LicenseError::Malformed("the signature is not 64 bytes".into()))?;
    key.verify_strict(&message(&claims), &DalekSignature::from_bytes(&sig))
        .map_err(|_| LicenseError::BadSignature)?;
    serde_json::from_slice(&claims)
        .map_err(|e| LicenseError::Malformed(format!("claims do not parse: {e}")))
}

/// [`verify_license`] that also returns the claims.
pub fn verify_license_claims(
    token: &str,
    key: &VerifyingKey,
    plugin: &str,
    panel_instance: &str,
    now: OffsetDateTime,
) -> Result<(LicenseStatus, LicenseClaims), LicenseError> {
    check_claims(decode_license(token, key)?, plugin, panel_instance, now)
}

/// [`verify_license_claims`] with the Marketplace's online keys over time:
/// the token must be signed by the online key valid when it was issued
/// ([`crate::rotation`]), so a license issued before a rotation keeps
/// working until it expires, and a rotated-away key cannot issue new ones.
pub fn verify_license_claims_with(
    token: &str,
    keys: &crate::rotation::MarketplaceKeys,
    plugin: &str,
    panel_instance: &str,
    now: OffsetDateTime,
) -> Result<(LicenseStatus, LicenseClaims), LicenseError> {
    for (_, key) in keys.periods() {
        match decode_license(token, key.verifying_key()) {
            // A key that did not sign at the claimed issue time is no
            // better than a wrong signature.
            Ok(claims) if keys.key_at(claims.issued_at.unix_timestamp()) == key => {
                return check_claims(claims, plugin, panel_instance, now);
            }
            Ok(_) | Err(LicenseError::BadSignature) => {}
            Err(other) => return Err(other),
        }
    }
    Err(LicenseError::BadSignature)
}

fn check_claims(
    claims: LicenseClaims,
    plugin: &str,
    panel_instance: &str,
    now: OffsetDateTime,
) -> Result<(LicenseStatus, LicenseClaims), LicenseError> {
    if claims.plugin != plugin {
        return Err(LicenseError::WrongPlugin {
            expected: plugin.to_owned(),
            actual: claims.plugin,
        });
    }
    if claims.panel_instance != panel_instance {
        return Err(LicenseError::WrongInstance {
            expected: panel_instance.to_owned(),
            actual: claims.panel_instance,
        });
    }
    let status = if now <= claims.expires_at {
        LicenseStatus::Valid
    } else if now <= claims.grace_until() {
        LicenseStatus::InGrace {
            until: claims.grace_until(),
        }
    } else {
        return Err(LicenseError::Expired {
            expires_at: claims.expires_at,
            grace_until: claims.grace_until(),
        });
    };
    Ok((status, claims))
}

/// Verifies a license token offline: the Marketplace signature, then the
/// plugin, the Panel instance and the time (expiry, then grace).
pub fn verify_license(
    token: &str,
    key: &VerifyingKey,
    plugin: &str,
    panel_instance: &str,
    now: OffsetDateTime,
) -> Result<LicenseStatus, LicenseError> {
    verify_license_claims(token, key, plugin, panel_instance, now).map(|(status, _)| status)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn at(unix: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(unix).unwrap()
    }

    fn claims() -> LicenseClaims {
        LicenseClaims {
            plugin: "quota-guard".into(),
            panel_instance: "panel-1".into(),
            entitlement: "ent-1".into(),
            issued_at: at(1_000),
            expires_at: at(2_000),
            grace_seconds: 500,
        }
    }

    fn key() -> SecretKey {
        SecretKey::from_seed(&[7; 32])
    }

    fn vk(key: &SecretKey) -> VerifyingKey {
        *key.public().verifying_key()
    }

    #[test]
    fn a_token_is_valid_until_expiry_then_in_grace_then_expired() {
        let key = key();
        let token = issue_license(&key, &claims());
        let check = |now| verify_license(&token, &vk(&key), "quota-guard", "panel-1", at(now));
        assert_eq!(check(1_500), Ok(LicenseStatus::Valid));
        assert_eq!(check(2_000), Ok(LicenseStatus::Valid));
        assert_eq!(
            check(2_001),
            Ok(LicenseStatus::InGrace { until: at(2_500) })
        );
        assert!(matches!(check(2_501), Err(LicenseError::Expired { .. })));
    }

    #[test]
    fn each_failed_check_has_its_own_error() {
        let key = key();
        let token = issue_license(&key, &claims());
        let now = at(1_500);
        assert!(matches!(
            verify_license(&token, &vk(&key), "other", "panel-1", now),
            Err(LicenseError::WrongPlugin { .. })
        ));
        assert!(matches!(
            verify_license(&token, &vk(&key), "quota-guard", "panel-2", now),
            Err(LicenseError::WrongInstance { .. })
        ));
        let stranger = SecretKey::from_seed(&[8; 32]);
        assert_eq!(
            verify_license(&token, &vk(&stranger), "quota-guard", "panel-1", now),
            Err(LicenseError::BadSignature)
        );
        for bad in ["", "cap-license.v1.", "cap-license.v1.!!.AA", "jwt.a.b"] {
            assert!(
                matches!(
                    verify_license(bad, &vk(&key), "quota-guard", "panel-1", now),
                    Err(LicenseError::Malformed(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_changed_claim_breaks_the_signature() {
        let key = key();
        let token = issue_license(&key, &claims());
        let rest = token.strip_prefix(TOKEN_PREFIX).unwrap();
        let (body, sig) = rest.split_once('.').unwrap();
        let json = String::from_utf8(URL_SAFE_NO_PAD.decode(body).unwrap()).unwrap();
        let forged = json.replace("\"expires_at\":2000", "\"expires_at\":9999999999");
        assert_ne!(json, forged);
        let forged = format!(
            "{TOKEN_PREFIX}{}.{sig}",
            URL_SAFE_NO_PAD.encode(forged.as_bytes())
        );
        assert_eq!(
            verify_license(&forged, &vk(&key), "quota-guard", "panel-1", at(1_500)),
            Err(LicenseError::BadSignature)
        );
    }
}
