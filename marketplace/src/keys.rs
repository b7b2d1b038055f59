//! Ed25519 keys, key ids, signatures and the text key-file format.
//!
//! # Key files
//!
//! Keys are stored as small UTF-8 text files so that people can read, copy
//! and diff them. Lines starting with `#` and blank lines are ignored; every
//! other line is `name: value`. The first meaningful line names the format
//! and its version:
//!
//! ```text
//! # Ctrl-Alt-Play publisher key. Keep this file private.
//! ctrl-alt-play-secret-key: v1
//! algorithm: ed25519
//! key-id: 8d4c0a7d9b5e21f3
//! secret: 9f3c…(64 hex digits: the 32-byte Ed25519 seed)
//! ```
//!
//! ```text
//! ctrl-alt-play-public-key: v1
//! algorithm: ed25519
//! key-id: 8d4c0a7d9b5e21f3
//! public: 3b6a…(64 hex digits: the 32-byte Ed25519 public key)
//! ```
//!
//! The key id is the first 8 bytes (16 hex digits) of
//! `sha256("ctrl-alt-play/key-id/v1\n" || public key)`. It is written into
//! the file and checked on reading, so a file whose key was edited or
//! truncated is refused rather than silently producing another identity.
//! Unknown fields are refused too: a newer format must bump the version.

use std::fmt;
use std::path::Path;

use ed25519_dalek::Signer;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

/// Why a key, key file or signature could not be read.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file is not in the documented format.
    #[error("key file: {0}")]
    Format(String),
    /// The key id written in the file is not the key's id.
    #[error("key file says key id {written} but the key's id is {actual}")]
    IdMismatch {
        /// What the file says.
        written: String,
        /// What the key hashes to.
        actual: String,
    },
    /// Hex or length problem in a key or signature.
    #[error("invalid {what}: {reason}")]
    Encoding {
        /// What was being decoded.
        what: &'static str,
        /// Why it failed.
        reason: String,
    },
    /// The operating system's random source failed.
    #[error("no randomness available: {0}")]
    Random(String),
    /// Reading or writing a key file failed.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
}

/// A key's short, stable identifier (16 lowercase hex digits).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyId(String);

impl KeyId {
    /// The id of an Ed25519 public key.
    pub fn of(public: &[u8; 32]) -> KeyId {
        let mut hash = Sha256::new();
        hash.update(b"ctrl-alt-play/key-id/v1\n");
        hash.update(public);
        KeyId(hex::encode(&hash.finalize()[..8]))
    }

    /// Parses a key id written as 16 hex digits.
    pub fn parse(text: &str) -> Result<KeyId, KeyError> {
        if text.len() == 16 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(KeyId(text.to_ascii_lowercase()))
        } else {
            Err(KeyError::Encoding {
                what: "key id",
                reason: "expected 16 hex digits".into(),
            })
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An Ed25519 signature, written as 128 hex digits.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(ed25519_dalek::Signature);

impl Signature {
    /// Parses 128 hex digits.
    pub fn from_hex(text: &str) -> Result<Signature, KeyError> {
        let bytes = decode_fixed::<64>("signature", text)?;
        Ok(Signature(ed25519_dalek::Signature::from_bytes(&bytes)))
    }

    /// The signature as 128 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0.to_bytes())
    }

    /// The raw 64 bytes.
    pub fn to_bytes(&self) -> [u8; 64] {
        self.0.to_bytes()
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", self.to_hex())
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for Signature {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Signature::from_hex(&text).map_err(serde::de::Error::custom)
    }
}

/// A public key with its id: what verifies signatures.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    id: KeyId,
    key: ed25519_dalek::VerifyingKey,
}

impl PublicKey {
    /// A public key from its 32 bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<PublicKey, KeyError> {
        let key =
            ed25519_dalek::VerifyingKey::from_bytes(bytes).map_err(|e| KeyError::Encoding {
                what: "public key",
                reason: e.to_string(),
            })?;
        Ok(PublicKey {
            id: KeyId::of(bytes),
            key,
        })
    }

    /// A public key from 64 hex digits.
    pub fn from_hex(text: &str) -> Result<PublicKey, KeyError> {
        PublicKey::from_bytes(&decode_fixed::<32>("public key", text)?)
    }

    /// The key's id.
    pub fn id(&self) -> &KeyId {
        &self.id
    }

    /// The Ed25519 verifying key (for [`crate::license::verify_license`]).
    pub fn verifying_key(&self) -> &ed25519_dalek::VerifyingKey {
        &self.key
    }

    /// The key as 64 hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.key.as_bytes())
    }

    /// Whether `signature` is this key's signature of `message` (strict
    /// verification: no malleable or small-order signatures).
    pub fn verify(&self, message: &[u8], signature: &Signature) -> bool {
        self.key.verify_strict(message, &signature.0).is_ok()
    }

    /// The key in the public key-file format.
    pub fn to_file(&self) -> String {
        format!(
            "# Ctrl-Alt-Play public key. Safe to share.\n\
             ctrl-alt-play-public-key: v1\n\
             algorithm: ed25519\n\
             key-id: {}\n\
             public: {}\n",
            self.id,
            self.to_hex()
        )
    }

    /// Parses the public key-file format.
    pub fn from_file(text: &str) -> Result<PublicKey, KeyError> {
        let fields = parse_key_file(text, "ctrl-alt-play-public-key", "public")?;
        let key = PublicKey::from_hex(&fields.value)?;
        fields.check_id(&key.id)?;
        Ok(key)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.id)
    }
}

impl Serialize for PublicKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        PublicKey::from_hex(&text).map_err(serde::de::Error::custom)
    }
}

/// A secret signing key. Its `Debug` form never shows the secret.
#[derive(Clone)]
pub struct SecretKey {
    key: ed25519_dalek::SigningKey,
    public: PublicKey,
}

impl SecretKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Result<SecretKey, KeyError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(SecretKey::from_seed(&seed))
    }

    /// The key derived from a 32-byte seed (deterministic; for tests and
    /// benchmarks, and for reading key files).
    pub fn from_seed(seed: &[u8; 32]) -> SecretKey {
        let key = ed25519_dalek::SigningKey::from_bytes(seed);
        let bytes = key.verifying_key().to_bytes();
        let public = PublicKey {
            id: KeyId::of(&bytes),
            key: key.verifying_key(),
        };
        SecretKey { key, public }
    }

    /// The matching public key.
    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// The key's id.
    pub fn id(&self) -> &KeyId {
        &self.public.id
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> Signature {
        Signature(self.key.sign(message))
    }

    /// The key in the secret key-file format.
    pub fn to_file(&self) -> String {
        format!(
            "# Ctrl-Alt-Play secret key. Keep this file private: anyone holding it can sign as you.\n\
             ctrl-alt-play-secret-key: v1\n\
             algorithm: ed25519\n\
             key-id: {}\n\
             secret: {}\n",
            self.public.id,
            hex::encode(self.key.to_bytes())
        )
    }

    /// Parses the secret key-file format.
    pub fn from_file(text: &str) -> Result<SecretKey, KeyError> {
        let fields = parse_key_file(text, "ctrl-alt-play-secret-key", "secret")?;
        let key = SecretKey::from_seed(&decode_fixed::<32>("secret key", &fields.value)?);
        fields.check_id(key.id())?;
        Ok(key)
    }

    /// Reads a secret key file.
    pub fn read(path: &Path) -> Result<SecretKey, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
            path: path.display().to_string(),
            source,
        })?;
        SecretKey::from_file(&text)
    }

    /// Writes the key to a new file readable only by its owner (fails if
    /// the file exists, so a key is never overwritten by accident).
    pub fn write_new(&self, path: &Path) -> Result<(), KeyError> {
        use std::io::Write;
        let io = |source| KeyError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(path).map_err(io)?;
        file.write_all(self.to_file().as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({}, secret redacted)", self.public.id)
    }
}

struct KeyFileFields {
    key_id: String,
    value: String,
}

impl KeyFileFields {
    fn check_id(&self, actual: &KeyId) -> Result<(), KeyError> {
        if self.key_id.eq_ignore_ascii_case(actual.as_str()) {
            Ok(())
        } else {
            Err(KeyError::IdMismatch {
                written: self.key_id.clone(),
                actual: actual.to_string(),
            })
        }
    }
}

fn parse_key_file(text: &str, header: &str, value_name: &str) -> Result<KeyFileFields, KeyError> {
    let mut lines = text
        .lines()
        .map(str::trim)
        .enumerate()
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'));
    let mut split = |expect_first: bool| -> Result<Option<(usize, String, String)>, KeyError> {
        let Some((n, line)) = lines.next() else {
            return if expect_first {
                Err(KeyError::Format(format!("empty; expected `{header}: v1`")))
            } else {
                Ok(None)
            };
        };
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| KeyError::Format(format!("line {}: expected `name: value`", n + 1)))?;
        Ok(Some((
            n + 1,
            name.trim().to_owned(),
            value.trim().to_owned(),
        )))
    };
    match split(true)? {
        Some((_, name, value)) if name == header && value == "v1" => {}
        Some((n, name, value)) => {
            return Err(KeyError::Format(format!(
                "line {n}: expected `{header}: v1` first, found `{name}: {value}`"
            )));
        }
        None => return Err(KeyError::Format("empty".into())),
    }
    let (mut algorithm, mut key_id, mut value) = (None, None, None);
    while let Some((n, name, v)) = split(false)? {
        let slot = match name.as_str() {
            "algorithm" => &mut algorithm,
            "key-id" => &mut key_id,
            other if other == value_name => &mut value,
            other => {
                return Err(KeyError::Format(format!(
                    "line {n}: unknown field `{other}`"
                )));
            }
        };
        if slot.replace(v).is_some() {
            return Err(KeyError::Format(format!(
                "line {n}: `{name}` appears twice"
            )));
        }
    }
    match algorithm.as_deref() {
        Some("ed25519") => {}
        Some(other) => {
            return Err(KeyError::Format(format!(
                "algorithm `{other}` is not supported (only ed25519)"
            )));
        }
        None => return Err(KeyError::Format("missing `algorithm`".into())),
    }
    Ok(KeyFileFields {
        key_id: key_id.ok_or_else(|| KeyError::Format("missing `key-id`".into()))?,
        value: value.ok_or_else(|| KeyError::Format(format!("missing `{value_name}`")))?,
    })
}

fn decode_fixed<const N: usize>(what: &'static str, text: &str) -> Result<[u8; N], KeyError> {
    let bytes = hex::decode(text.trim()).map_err(|e| KeyError::Encoding {
        what,
        reason: e.to_string(),
    })?;
    bytes.try_into().map_err(|b: Vec<u8>| KeyError::Encoding {
        what,
        reason: format!("expected {N} bytes, found {}", b.len()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_key_file_round_trips_and_names_its_key() {
        let key = SecretKey::from_seed(&[7; 32]);
        let text = key.to_file();
        let back = SecretKey::from_file(&text).expect("parses");
        assert_eq!(back.public(), key.public());
        assert!(text.contains(key.id().as_str()));
        assert!(!format!("{key:?}").contains(&hex::encode([7u8; 32])));
    }

    #[test]
    fn a_public_key_file_with_an_edited_key_is_refused() {
        let key = SecretKey::from_seed(&[1; 32]);
        let other = SecretKey::from_seed(&[2; 32]);
        let text = key
            .public()
            .to_file()
            .replace(&key.public().to_hex(), &other.public().to_hex());
        assert!(matches!(
            PublicKey::from_file(&text),
            Err(KeyError::IdMismatch { .. })
        ));
    }

    #[test]
    fn a_key_file_with_an_unknown_field_or_header_is_refused() {
        let key = SecretKey::from_seed(&[3; 32]);
        let extra = format!("{}comment: hi\n", key.public().to_file());
        assert!(matches!(
            PublicKey::from_file(&extra),
            Err(KeyError::Format(_))
        ));
        let as_secret = key.public().to_file();
        assert!(matches!(
            SecretKey::from_file(&as_secret),
            Err(KeyError::Format(_))
        ));
    }

    #[test]
    fn a_signature_verifies_only_for_its_key_and_message() {
        let key = SecretKey::from_seed(&[4; 32]);
        let other = SecretKey::from_seed(&[5; 32]);
        let sig = key.sign(b"hello");
        assert!(key.public().verify(b"hello", &sig));
        assert!(!key.public().verify(b"hellO", &sig));
        assert!(!other.public().verify(b"hello", &sig));
        let back = Signature::from_hex(&sig.to_hex()).expect("hex");
        assert_eq!(back, sig);
    }
}
