//! Signing file grants: the Ed25519 key and the JWTs the Agents check.
//!
//! The key is derived from the Panel's secret key
//! ([`crate::secrets::Sealer::derive_key`], label [`KEY_LABEL`]), so every
//! Panel sharing the secret key signs alike and a restart changes nothing:
//! nothing is stored. The public half travels to each Agent after its hello
//! ([`cap_protocol::PanelMessage::GrantKey`]).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cap_protocol::files::FileGrant;
use jsonwebtoken::{Algorithm, EncodingKey, Header};

/// The label the signing key is derived under; changing it changes the key.
pub const KEY_LABEL: &str = "cap-panel file grants v1";

/// Signs [`FileGrant`]s.
#[derive(Clone)]
pub struct GrantSigner {
    encoding: EncodingKey,
    public_key: String,
}

impl std::fmt::Debug for GrantSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrantSigner")
            .field("public_key", &self.public_key)
            .finish_non_exhaustive()
    }
}

impl GrantSigner {
    /// The signer whose Ed25519 key has `seed`.
    pub fn from_seed(seed: &[u8; 32]) -> GrantSigner {
        use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
        // Neither can fail: any 32 bytes are an Ed25519 seed, and a key
        // pair always serialises.
        let pair = Ed25519KeyPair::from_seed_unchecked(seed)
            .unwrap_or_else(|_| unreachable!("32 bytes are an Ed25519 seed"));
        let pkcs8 = pair
            .to_pkcs8()
            .unwrap_or_else(|_| unreachable!("an Ed25519 key pair serialises"));
        GrantSigner {
            encoding: EncodingKey::from_ed_der(pkcs8.as_ref()),
            public_key: URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
        }
    }

    /// The public key, base64url without padding (a JWK's `x`).
    pub fn public_key(&self) -> &str {
        &self.public_key
    }

    /// `grant` as a signed EdDSA JWT.
    pub fn sign(&self, grant: &FileGrant) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), grant, &self.encoding)
            .unwrap_or_else(|_| unreachable!("a grant serialises and an Ed25519 key signs"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use cap_protocol::files::{FileScope, GRANT_ISSUER, GrantOp};
    use jsonwebtoken::{DecodingKey, Validation};

    use super::*;

    fn grant() -> FileGrant {
        FileGrant {
            iss: GRANT_ISSUER.into(),
            aud: "node-1".into(),
            sub: "srv_1".into(),
            jti: "g1".into(),
            exp: u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp()).unwrap() + 60,
            user: "usr_1".into(),
            op: GrantOp::Download,
            path: "/server.properties".into(),
            scope: FileScope::default(),
            size: None,
        }
    }

    fn validation(node: &str) -> Validation {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_audience(&[node]);
        validation.set_issuer(&[GRANT_ISSUER]);
        validation
    }

    #[test]
    fn a_grant_verifies_with_the_public_key_it_announces() {
        let signer = GrantSigner::from_seed(&[7; 32]);
        let token = signer.sign(&grant());
        let key = DecodingKey::from_ed_components(signer.public_key()).unwrap();
        let read = jsonwebtoken::decode::<FileGrant>(&token, &key, &validation("node-1")).unwrap();
        assert_eq!(read.claims, grant());
    }

    #[test]
    fn a_grant_does_not_verify_for_another_node_or_under_another_key() {
        let signer = GrantSigner::from_seed(&[7; 32]);
        let token = signer.sign(&grant());
        let key = DecodingKey::from_ed_components(signer.public_key()).unwrap();
        assert!(jsonwebtoken::decode::<FileGrant>(&token, &key, &validation("node-2")).is_err());
        let other = GrantSigner::from_seed(&[8; 32]);
        let other_key = DecodingKey::from_ed_components(other.public_key()).unwrap();
        assert!(
            jsonwebtoken::decode::<FileGrant>(&token, &other_key, &validation("node-1")).is_err()
        );
    }
}
