//! ID token validation: a compact JWS checked against the provider's JWKS,
//! then its claims against what this login expects.
//!
//! Only `RS256` (keys of 2048 bits or more) and `ES256` are accepted: the
//! algorithm comes from the header, but a key is used only for the
//! algorithm its type and its own `alg` (when it says) allow, so `none`,
//! the `HS*` family (a public key used as an HMAC secret) and a token whose
//! header names another key type are refused before any signature work.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::{Map, Value};

/// Seconds of clock difference tolerated on `exp` and `iat`.
pub(crate) const LEEWAY_SECS: i64 = 60;

/// Why an ID token is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TokenError {
    /// Not three base64url parts of JSON.
    Malformed(String),
    /// `alg` is `none` or an algorithm this plugin does not accept.
    Algorithm(String),
    /// No key of the JWKS has the token's `kid` (and type): the caller may
    /// fetch the JWKS once more.
    UnknownKey(Option<String>),
    /// The signature does not verify.
    BadSignature,
    /// `iss` is not the provider's issuer.
    Issuer(String),
    /// `aud` does not name this client, or `azp` is wrong.
    Audience(String),
    /// Expired, or issued in the future.
    Time(String),
    /// `nonce` is not this login's.
    Nonce,
    /// A required claim is missing.
    Missing(&'static str),
}

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Malformed(why) => write!(f, "the ID token is malformed: {why}"),
            Self::Algorithm(alg) => write!(f, "the ID token's algorithm {alg:?} is refused"),
            Self::UnknownKey(kid) => {
                write!(
                    f,
                    "no key of the provider's JWKS signed the ID token ({kid:?})"
                )
            }
            Self::BadSignature => write!(f, "the ID token's signature does not verify"),
            Self::Issuer(iss) => write!(f, "the ID token's issuer {iss:?} is not the provider"),
            Self::Audience(why) => write!(f, "the ID token is not for this client: {why}"),
            Self::Time(why) => write!(f, "the ID token is not valid now: {why}"),
            Self::Nonce => write!(f, "the ID token's nonce is not this login's"),
            Self::Missing(claim) => write!(f, "the ID token has no {claim:?} claim"),
        }
    }
}

/// One key of a JWKS, as far as this plugin reads it.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Jwk {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default, rename = "use")]
    use_: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
}

/// A JWK Set (`jwks_uri`'s answer).
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Jwks {
    pub(crate) keys: Vec<Jwk>,
}

/// What the claims must say.
#[derive(Debug, Clone)]
pub(crate) struct Expected<'a> {
    /// The issuer, exactly as discovery and the configuration say.
    pub(crate) issuer: &'a str,
    /// This client's id.
    pub(crate) client_id: &'a str,
    /// The nonce sent with this login.
    pub(crate) nonce: &'a str,
    /// Now, in seconds since the Unix epoch.
    pub(crate) now: i64,
}

#[derive(Debug, Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

/// Checks `token`'s signature against `jwks` and its claims against
/// `expected`, answering the claims.
pub(crate) fn validate(
    token: &str,
    jwks: &Jwks,
    expected: &Expected<'_>,
) -> Result<Map<String, Value>, TokenError> {
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed("not three parts".into()));
    };
    let header: Header = decode_json(header_b64, "header")?;
    if !matches!(header.alg.as_str(), "RS256" | "ES256") {
        return Err(TokenError::Algorithm(header.alg));
    }
    let signature = URL_SAFE_NO_PAD
        .decode(signature_b64)
        .map_err(|_| TokenError::Malformed("the signature is not base64url".into()))?;
    if signature.is_empty() {
        return Err(TokenError::Algorithm("unsigned".into()));
    }
    let key = jwks
        .keys
        .iter()
        .filter(|k| k.use_.as_deref().is_none_or(|u| u == "sig"))
        .filter(|k| k.alg.as_deref().is_none_or(|a| a == header.alg))
        .filter(|k| match header.alg.as_str() {
            "RS256" => k.kty == "RSA",
            _ => k.kty == "EC" && k.crv.as_deref() == Some("P-256"),
        })
        .find(|k| match (&header.kid, &k.kid) {
            (Some(wanted), Some(have)) => wanted == have,
            // A token without `kid` may only be checked against a JWKS of
            // one key.
            (None, _) => jwks.keys.len() == 1,
            (Some(_), None) => false,
        })
        .ok_or_else(|| TokenError::UnknownKey(header.kid.clone()))?;
    let signed = &token[..header_b64.len() + 1 + payload_b64.len()];
    verify(key, &header.alg, signed.as_bytes(), &signature)?;
    let claims: Map<String, Value> = decode_json(payload_b64, "payload")?;
    check_claims(&claims, expected)?;
    Ok(claims)
}

fn decode_json<T: serde::de::DeserializeOwned>(part: &str, what: &str) -> Result<T, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| TokenError::Malformed(format!("the {what} is not base64url")))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| TokenError::Malformed(format!("the {what} is not a JSON object: {e}")))
}

fn key_part(value: &Option<String>, name: &str) -> Result<Vec<u8>, TokenError> {
    value
        .as_deref()
        .and_then(|v| URL_SAFE_NO_PAD.decode(v).ok())
        .ok_or_else(|| TokenError::Malformed(format!("the JWKS key has no valid {name:?}")))
}

fn verify(key: &Jwk, alg: &str, signed: &[u8], signature: &[u8]) -> Result<(), TokenError> {
    use sha2::Digest as _;
    match alg {
        "RS256" => {
            let n = rsa::BigUint::from_bytes_be(&key_part(&key.n, "n")?);
            let e = rsa::BigUint::from_bytes_be(&key_part(&key.e, "e")?);
            let public = rsa::RsaPublicKey::new(n, e)
                .map_err(|e| TokenError::Malformed(format!("the JWKS key is not RSA: {e}")))?;
            if rsa::traits::PublicKeyParts::size(&public) < 256 {
                return Err(TokenError::Algorithm(
                    "RS256 with a key under 2048 bits".into(),
                ));
            }
            let digest = sha2::Sha256::digest(signed);
            public
                .verify(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), &digest, signature)
                .map_err(|_| TokenError::BadSignature)
        }
        _ => {
            use p256::ecdsa::signature::Verifier as _;
            let coordinate = |part: &Option<String>, name: &str| {
                <[u8; 32]>::try_from(key_part(part, name)?)
                    .map_err(|_| TokenError::Malformed("the P-256 key has the wrong size".into()))
            };
            let x = p256::FieldBytes::from(coordinate(&key.x, "x")?);
            let y = p256::FieldBytes::from(coordinate(&key.y, "y")?);
            let point = p256::EncodedPoint::from_affine_coordinates(&x, &y, false);
            let public = p256::ecdsa::VerifyingKey::from_encoded_point(&point)
                .map_err(|_| TokenError::Malformed("the P-256 key is not on the curve".into()))?;
            let signature = p256::ecdsa::Signature::from_slice(signature)
                .map_err(|_| TokenError::BadSignature)?;
            public
                .verify(signed, &signature)
                .map_err(|_| TokenError::BadSignature)
        }
    }
}

fn check_claims(claims: &Map<String, Value>, expected: &Expected<'_>) -> Result<(), TokenError> {
    let iss = claims
        .get("iss")
        .and_then(Value::as_str)
        .ok_or(TokenError::Missing("iss"))?;
    if iss != expected.issuer {
        return Err(TokenError::Issuer(iss.to_owned()));
    }
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(aud)) => vec![aud.as_str()],
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
        _ => return Err(TokenError::Missing("aud")),
    };
    if !audiences.contains(&expected.client_id) {
        return Err(TokenError::Audience(format!("aud is {audiences:?}")));
    }
    let azp = claims.get("azp").and_then(Value::as_str);
    if (audiences.len() > 1 || azp.is_some()) && azp != Some(expected.client_id) {
        return Err(TokenError::Audience(format!(
            "several audiences and azp is {azp:?}"
        )));
    }
    let exp = claims
        .get("exp")
        .and_then(Value::as_i64)
        .ok_or(TokenError::Missing("exp"))?;
    if exp + LEEWAY_SECS <= expected.now {
        return Err(TokenError::Time(format!(
            "expired {} seconds ago",
            expected.now - exp
        )));
    }
    let iat = claims
        .get("iat")
        .and_then(Value::as_i64)
        .ok_or(TokenError::Missing("iat"))?;
    if iat - LEEWAY_SECS > expected.now {
        return Err(TokenError::Time(format!(
            "issued {} seconds in the future",
            iat - expected.now
        )));
    }
    match claims.get("nonce").and_then(Value::as_str) {
        Some(nonce) if nonce == expected.nonce => {}
        _ => return Err(TokenError::Nonce),
    }
    if claims
        .get("sub")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Err(TokenError::Missing("sub"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::RsaPrivateKey;
    use rsa::traits::PublicKeyParts as _;
    use serde_json::json;
    use sha2::Digest as _;

    const ISSUER: &str = "https://id.example";
    const CLIENT: &str = "panel";
    const NOW: i64 = 1_800_000_000;

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// A 2048-bit key made once (key generation is slow unoptimised), from
    /// a fixed seed so the tests are repeatable.
    fn rsa_key(seed: u8) -> RsaPrivateKey {
        use rand_core_seeded::Rng;
        RsaPrivateKey::new(&mut Rng::new(seed), 2048).expect("a key")
    }

    /// A tiny deterministic generator, enough for test keys.
    mod rand_core_seeded {
        pub(super) struct Rng(u64);
        impl Rng {
            pub(super) fn new(seed: u8) -> Self {
                Rng(u64::from(seed).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
            }
        }
        impl rsa::rand_core::RngCore for Rng {
            fn next_u32(&mut self) -> u32 {
                (self.next_u64() >> 32) as u32
            }
            fn next_u64(&mut self) -> u64 {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                self.0
            }
            fn fill_bytes(&mut self, dest: &mut [u8]) {
                for chunk in dest.chunks_mut(8) {
                    let v = self.next_u64().to_le_bytes();
                    chunk.copy_from_slice(&v[..chunk.len()]);
                }
            }
            fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rsa::rand_core::Error> {
                self.fill_bytes(dest);
                Ok(())
            }
        }
        impl rsa::rand_core::CryptoRng for Rng {}
    }

    fn keys() -> &'static (RsaPrivateKey, RsaPrivateKey) {
        static KEYS: std::sync::OnceLock<(RsaPrivateKey, RsaPrivateKey)> =
            std::sync::OnceLock::new();
        KEYS.get_or_init(|| (rsa_key(1), rsa_key(2)))
    }

    fn jwk_of(key: &RsaPrivateKey, kid: &str) -> Value {
        let public = key.to_public_key();
        json!({
            "kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
            "n": b64(&public.n().to_bytes_be()), "e": b64(&public.e().to_bytes_be()),
        })
    }

    fn jwks(keys: Vec<Value>) -> Jwks {
        serde_json::from_value(json!({ "keys": keys })).expect("a JWKS")
    }

    fn claims() -> Value {
        json!({
            "iss": ISSUER, "aud": CLIENT, "sub": "user-1", "nonce": "n-1",
            "iat": NOW - 10, "exp": NOW + 300,
        })
    }

    fn sign(key: &RsaPrivateKey, header: Value, claims: &Value) -> String {
        let signed = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let digest = sha2::Sha256::digest(signed.as_bytes());
        let signature = key
            .sign(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), &digest)
            .expect("signs");
        format!("{signed}.{}", b64(&signature))
    }

    fn token(claims: &Value) -> String {
        sign(&keys().0, json!({ "alg": "RS256", "kid": "k1" }), claims)
    }

    fn check(token: &str) -> Result<Map<String, Value>, TokenError> {
        validate(
            token,
            &jwks(vec![jwk_of(&keys().0, "k1")]),
            &Expected {
                issuer: ISSUER,
                client_id: CLIENT,
                nonce: "n-1",
                now: NOW,
            },
        )
    }

    fn with(change: impl FnOnce(&mut Map<String, Value>)) -> Value {
        let mut claims = claims();
        change(claims.as_object_mut().expect("an object"));
        claims
    }

    #[test]
    fn a_token_signed_by_the_providers_key_with_the_expected_claims_is_accepted() {
        let claims = check(&token(&claims())).expect("accepted");
        assert_eq!(claims["sub"], "user-1");
    }

    #[test]
    fn a_token_of_another_issuer_is_refused() {
        let token = token(&with(|c| {
            c.insert("iss".into(), json!("https://evil.example"));
        }));
        assert!(matches!(check(&token), Err(TokenError::Issuer(_))));
    }

    #[test]
    fn a_token_for_another_client_is_refused() {
        let token = token(&with(|c| {
            c.insert("aud".into(), json!("someone-else"));
        }));
        assert!(matches!(check(&token), Err(TokenError::Audience(_))));
    }

    #[test]
    fn several_audiences_need_an_azp_naming_this_client() {
        let without = token(&with(|c| {
            c.insert("aud".into(), json!([CLIENT, "other"]));
        }));
        assert!(matches!(check(&without), Err(TokenError::Audience(_))));
        let wrong = token(&with(|c| {
            c.insert("aud".into(), json!([CLIENT, "other"]));
            c.insert("azp".into(), json!("other"));
        }));
        assert!(matches!(check(&wrong), Err(TokenError::Audience(_))));
        let right = token(&with(|c| {
            c.insert("aud".into(), json!([CLIENT, "other"]));
            c.insert("azp".into(), json!(CLIENT));
        }));
        assert!(check(&right).is_ok());
    }

    #[test]
    fn an_expired_token_is_refused_past_the_leeway_only() {
        let just = token(&with(|c| {
            c.insert("exp".into(), json!(NOW - LEEWAY_SECS + 5));
        }));
        assert!(check(&just).is_ok());
        let expired = token(&with(|c| {
            c.insert("exp".into(), json!(NOW - LEEWAY_SECS - 1));
        }));
        assert!(matches!(check(&expired), Err(TokenError::Time(_))));
    }

    #[test]
    fn a_token_issued_in_the_future_is_refused() {
        let token = token(&with(|c| {
            c.insert("iat".into(), json!(NOW + 3600));
        }));
        assert!(matches!(check(&token), Err(TokenError::Time(_))));
    }

    #[test]
    fn a_token_with_another_nonce_or_none_is_refused() {
        let other = token(&with(|c| {
            c.insert("nonce".into(), json!("n-2"));
        }));
        assert_eq!(check(&other), Err(TokenError::Nonce));
        let none = token(&with(|c| {
            c.remove("nonce");
        }));
        assert_eq!(check(&none), Err(TokenError::Nonce));
    }

    #[test]
    fn an_unsigned_token_is_refused() {
        let header = b64(br#"{"alg":"none"}"#);
        let payload = b64(claims().to_string().as_bytes());
        let token = format!("{header}.{payload}.");
        assert!(matches!(check(&token), Err(TokenError::Algorithm(_))));
        let header = b64(br#"{"alg":"RS256","kid":"k1"}"#);
        let token = format!("{header}.{payload}.");
        assert!(matches!(check(&token), Err(TokenError::Algorithm(_))));
    }

    #[test]
    fn an_hmac_token_is_refused_whatever_its_secret() {
        let header = b64(br#"{"alg":"HS256","kid":"k1"}"#);
        let payload = b64(claims().to_string().as_bytes());
        let token = format!("{header}.{payload}.c2lnbmF0dXJl");
        assert_eq!(check(&token), Err(TokenError::Algorithm("HS256".into())));
    }

    #[test]
    fn a_token_signed_by_a_key_not_in_the_jwks_is_refused() {
        let same_kid = sign(&keys().1, json!({ "alg": "RS256", "kid": "k1" }), &claims());
        assert_eq!(check(&same_kid), Err(TokenError::BadSignature));
        let other_kid = sign(&keys().1, json!({ "alg": "RS256", "kid": "k2" }), &claims());
        assert_eq!(
            check(&other_kid),
            Err(TokenError::UnknownKey(Some("k2".into())))
        );
    }

    #[test]
    fn a_changed_payload_breaks_the_signature() {
        let token = token(&claims());
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = b64(with(|c| {
            c.insert("sub".into(), json!("admin"));
        })
        .to_string()
        .as_bytes());
        parts[1] = &forged;
        assert_eq!(check(&parts.join(".")), Err(TokenError::BadSignature));
    }

    #[test]
    fn garbage_is_malformed() {
        for garbage in ["", "a.b", "a.b.c.d", "!!.??.**", "e30.e30.e30"] {
            assert!(check(garbage).is_err(), "{garbage:?}");
        }
    }

    #[test]
    fn an_es256_token_verifies_against_a_p256_key() {
        use p256::ecdsa::signature::Signer as _;
        let secret = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).expect("a key");
        let point = secret.verifying_key().to_encoded_point(false);
        let jwk = json!({
            "kty": "EC", "crv": "P-256", "kid": "e1",
            "x": b64(point.x().expect("x")), "y": b64(point.y().expect("y")),
        });
        let signed = format!(
            "{}.{}",
            b64(br#"{"alg":"ES256","kid":"e1"}"#),
            b64(claims().to_string().as_bytes())
        );
        let signature: p256::ecdsa::Signature = secret.sign(signed.as_bytes());
        let token = format!("{signed}.{}", b64(&signature.to_bytes()));
        let expected = Expected {
            issuer: ISSUER,
            client_id: CLIENT,
            nonce: "n-1",
            now: NOW,
        };
        assert!(validate(&token, &jwks(vec![jwk.clone()]), &expected).is_ok());
        // The same key claimed for RS256 is not used.
        let rs = sign(&keys().0, json!({ "alg": "RS256", "kid": "e1" }), &claims());
        assert!(matches!(
            validate(&rs, &jwks(vec![jwk]), &expected),
            Err(TokenError::UnknownKey(_))
        ));
    }
}
