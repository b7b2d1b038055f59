//! Sealing: AES-256-GCM-SIV with a random nonce per value and the value's
//! purpose and row as associated data.
//!
//! The stored form is `v1.` followed by the URL-safe base64 (no padding)
//! of the nonce, the ciphertext and the tag: text, so it fits the existing
//! `TEXT`/`VARCHAR` columns of every backend (a 32-character TOTP secret
//! becomes 83 characters). The version prefix leaves room for another
//! algorithm later.

use aws_lc_rs::aead::{AES_256_GCM_SIV, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::SecretKey;

const VERSION_PREFIX: &str = "v1.";

/// What a sealed value is and which row it belongs to: the associated data,
/// so a value opens only where it was sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purpose(String);

impl Purpose {
    fn new(parts: &[&str]) -> Purpose {
        // NUL cannot occur in any of the parts (ids, names, URLs), so the
        // joined form is unambiguous.
        Purpose(parts.join("\0"))
    }

    /// The TOTP secret of `user_id`.
    pub fn totp(user_id: &str) -> Purpose {
        Purpose::new(&["totp-secret", user_id])
    }

    /// The plugin secret `name` of `plugin_id`.
    pub fn plugin_secret(plugin_id: &str, name: &str) -> Purpose {
        Purpose::new(&["plugin-secret", plugin_id, name])
    }

    /// The instance token the Marketplace at `marketplace` issued.
    pub fn marketplace_token(marketplace: &str) -> Purpose {
        Purpose::new(&["marketplace-instance-token", marketplace])
    }

    /// The password of the Panel's SMTP settings ([`crate::mail`]).
    pub fn mail_password() -> Purpose {
        Purpose::new(&["mail-password"])
    }

    /// The secret access key of the S3-compatible storage backups go to
    /// (`backup_storage.secret`).
    pub fn backup_storage_secret() -> Purpose {
        Purpose::new(&["backup-storage-secret"])
    }

    /// The administrative password of database host `host_id`
    /// (`database_hosts.password`).
    pub fn database_host_password(host_id: &str) -> Purpose {
        Purpose::new(&["database-host-password", host_id])
    }

    /// The password of the user of server database `database_id`
    /// (`server_databases.password`).
    pub fn server_database_password(database_id: &str) -> Purpose {
        Purpose::new(&["server-database-password", database_id])
    }

    /// The JWT signing key `kid`.
    pub fn jwt_key(kid: &str) -> Purpose {
        Purpose::new(&["jwt-signing-key", kid])
    }

    /// The value that tells whether a key is the one a database was sealed
    /// with.
    pub fn key_check() -> Purpose {
        Purpose::new(&["key-check"])
    }

    /// A short name for messages (the kind, without the row).
    pub fn kind(&self) -> &str {
        self.0.split('\0').next().unwrap_or_default()
    }
}

/// Why a value could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// This database handle was opened without a secret key.
    #[error("no secret key was given, so sealed secrets can be neither read nor written")]
    NoKey,
    /// The key is not the one the database was sealed with.
    #[error(
        "the secret key does not match the one this database's secrets were sealed with: start with the original key (`CAP_SECRET_KEY` or <data>/secret.key)"
    )]
    WrongKey,
    /// One value does not open: it was altered, moved to another row, or
    /// sealed under another key.
    #[error(
        "a sealed {0} does not open: it was altered, moved from another row, or sealed with another key"
    )]
    Undecryptable(String),
}

/// Seals and opens values with one [`SecretKey`], and derives keys of
/// other purposes from it.
pub struct Sealer {
    key: LessSafeKey,
    derive: hmac::Key,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer").finish_non_exhaustive()
    }
}

impl Sealer {
    /// A sealer with `key`.
    pub fn new(key: &SecretKey) -> Sealer {
        // Cannot fail: the key has the algorithm's length.
        let unbound = UnboundKey::new(&AES_256_GCM_SIV, key.bytes())
            .unwrap_or_else(|_| unreachable!("a 32-byte key fits AES-256-GCM-SIV"));
        Sealer {
            key: LessSafeKey::new(unbound),
            derive: hmac::Key::new(hmac::HMAC_SHA256, key.bytes()),
        }
    }

    /// A 32-byte key for `label`, derived from the secret key with
    /// HMAC-SHA-256: the same on every Panel that shares the secret key (and
    /// the database), different for every label, and telling nothing about
    /// the secret key. Used for the file-grant signing key
    /// ([`crate::files::grants`]).
    pub fn derive_key(&self, label: &str) -> [u8; 32] {
        let tag = hmac::sign(&self.derive, label.as_bytes());
        let mut key = [0u8; 32];
        key.copy_from_slice(tag.as_ref());
        key
    }

    /// Seals `plaintext` for `purpose`.
    pub fn seal(&self, purpose: &Purpose, plaintext: &str) -> String {
        let nonce_bytes: [u8; NONCE_LEN] = rand::random();
        let mut buffer = plaintext.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(purpose.0.as_bytes()),
                &mut buffer,
            )
            .unwrap_or_else(|_| unreachable!("sealing fails only for inputs above 64 GiB"));
        let mut stored = nonce_bytes.to_vec();
        stored.extend_from_slice(&buffer);
        format!("{VERSION_PREFIX}{}", URL_SAFE_NO_PAD.encode(stored))
    }

    /// Opens `stored`, sealed for `purpose`.
    ///
    /// # Errors
    ///
    /// [`SealError::Undecryptable`] if it is malformed, was altered, belongs
    /// to another purpose or row, or was sealed with another key.
    pub fn open(&self, purpose: &Purpose, stored: &str) -> Result<String, SealError> {
        let undecryptable = || SealError::Undecryptable(purpose.kind().to_owned());
        let mut bytes = stored
            .strip_prefix(VERSION_PREFIX)
            .and_then(|b64| URL_SAFE_NO_PAD.decode(b64).ok())
            .filter(|b| b.len() >= NONCE_LEN)
            .ok_or_else(undecryptable)?;
        let mut ciphertext = bytes.split_off(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&bytes).map_err(|_| undecryptable())?;
        let plaintext = self
            .key
            .open_in_place(nonce, Aad::from(purpose.0.as_bytes()), &mut ciphertext)
            .map_err(|_| undecryptable())?;
        String::from_utf8(plaintext.to_vec()).map_err(|_| undecryptable())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_with_its_key_and_purpose() {
        let sealer = Sealer::new(&SecretKey::generate());
        let purpose = Purpose::totp("usr_1");
        let sealed = sealer.seal(&purpose, "JBSWY3DPEHPK3PXP");
        assert!(!sealed.contains("JBSWY3DPEHPK3PXP"));
        assert_eq!(
            sealer.open(&purpose, &sealed).expect("opens"),
            "JBSWY3DPEHPK3PXP"
        );
        assert!(matches!(
            sealer.open(&Purpose::totp("usr_2"), &sealed),
            Err(SealError::Undecryptable(kind)) if kind == "totp-secret"
        ));
        let other = Sealer::new(&SecretKey::generate());
        assert!(other.open(&purpose, &sealed).is_err());
        assert!(sealer.open(&purpose, "JBSWY3DPEHPK3PXP").is_err());
    }

    #[test]
    fn every_seal_uses_a_fresh_nonce() {
        let sealer = Sealer::new(&SecretKey::generate());
        let purpose = Purpose::key_check();
        assert_ne!(sealer.seal(&purpose, "same"), sealer.seal(&purpose, "same"));
    }
}
