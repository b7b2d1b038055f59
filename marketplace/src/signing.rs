//! What is signed, and the publisher keyring.
//!
//! Every signed message starts with a domain-separation line naming its
//! purpose and format version, so a signature made for one purpose can never
//! be replayed as another (an author signature is not a countersignature,
//! a log entry is not a timestamp):
//!
//! | Purpose | Message |
//! | --- | --- |
//! | author signature | `ctrl-alt-play/package/v1\n<id>\n<version>\n<sha256>` |
//! | countersignature | `ctrl-alt-play/countersign/v1\n<id>\n<version>\n<sha256>\n<author key id>\n<author signature>` |
//! | log entry | `ctrl-alt-play/log-entry/v1\n<entry hash>` |
//! | index timestamp | `ctrl-alt-play/timestamp/v1\n<canonical JSON body>` |
//! | key change | `ctrl-alt-play/key-change/v1\n<publisher>\n<change>\n<issued at>\n<nonce>` (see [`KeyChange`]) |
//!
//! The author signs the package file's sha256, not its bytes: verification
//! hashes the download once and every signature covers that digest.
//!
//! A publisher holds several keys at once (one per machine or person, say);
//! each may be revoked with a reason and an effective time, which may lie in
//! the past ("this key leaked on Monday"). Anything signed with a key at or
//! after its revocation time is invalid, including releases logged before
//! the revocation was announced.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::keys::{KeyId, PublicKey, SecretKey, Signature};

/// The message an author signs for a release.
pub fn author_message(id: &str, version: &semver::Version, sha256: &str) -> Vec<u8> {
    format!("ctrl-alt-play/package/v1\n{id}\n{version}\n{sha256}").into_bytes()
}

/// The message the Marketplace countersigns for a release: the author's
/// message plus the author's key id and signature.
pub fn countersign_message(
    id: &str,
    version: &semver::Version,
    sha256: &str,
    author_key: &KeyId,
    author_signature: &Signature,
) -> Vec<u8> {
    format!(
        "ctrl-alt-play/countersign/v1\n{id}\n{version}\n{sha256}\n{author_key}\n{}",
        author_signature.to_hex()
    )
    .into_bytes()
}

/// An author's signature of a release.
pub fn sign_package(
    key: &SecretKey,
    id: &str,
    version: &semver::Version,
    sha256: &str,
) -> Signature {
    key.sign(&author_message(id, version, sha256))
}

/// A change to a publisher's keyring, which one of the publisher's
/// current keys signs ([`key_change_message`]): a bearer token alone never
/// adds or revokes a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyChange {
    /// Add the key with this id. Line form: `add\n<key id>`.
    Add {
        /// The key to add.
        key: KeyId,
    },
    /// Revoke the key with this id from `effective_at`, for `reason`.
    /// Line form: `revoke\n<key id>\n<effective at>\n<sha256 of reason>`
    /// (the reason is hashed so that any text keeps the lines unambiguous).
    Revoke {
        /// The key to revoke.
        key: KeyId,
        /// From when its signatures are invalid (unix seconds).
        effective_at: i64,
        /// Why.
        reason: String,
    },
}

/// The canonical bytes of a key-change statement. Domain-separated from
/// every other signed message, bound to the publisher's name (a statement
/// for one publisher is nothing for another), and carrying its issue time
/// and a random nonce: the Marketplace accepts a statement only within
/// [`KEY_CHANGE_WINDOW`] seconds of its issue time and only once per nonce,
/// so a captured statement cannot be replayed.
pub fn key_change_message(
    publisher: &str,
    change: &KeyChange,
    issued_at: i64,
    nonce: &str,
) -> Vec<u8> {
    use sha2::Digest;
    let change = match change {
        KeyChange::Add { key } => format!("add\n{key}"),
        KeyChange::Revoke {
            key,
            effective_at,
            reason,
        } => format!(
            "revoke\n{key}\n{effective_at}\n{}",
            hex::encode(sha2::Sha256::digest(reason.as_bytes()))
        ),
    };
    format!("ctrl-alt-play/key-change/v1\n{publisher}\n{change}\n{issued_at}\n{nonce}").into_bytes()
}

/// How far (seconds) a key-change statement's issue time may lie from the
/// Marketplace's clock.
pub const KEY_CHANGE_WINDOW: i64 = 300;

/// A fresh nonce for a key-change statement: 32 random hex digits.
pub fn key_change_nonce() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)?;
    Ok(hex::encode(bytes))
}

/// A key's revocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// Why, for people ("laptop stolen").
    pub reason: String,
    /// From when signatures by the key are invalid (unix seconds).
    pub effective_at: i64,
}

/// One key in a [`Keyring`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyringEntry {
    /// The key.
    pub key: PublicKey,
    /// When it became valid (unix seconds).
    pub granted_at: i64,
    /// Its revocation, if any.
    pub revoked: Option<Revocation>,
}

/// Why a key may not be used for a signature made at some time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyUseError {
    /// The key is not in the keyring.
    #[error("key {0} is not one of the publisher's keys")]
    Unknown(KeyId),
    /// The key was granted after the time of use.
    #[error("key {key} was granted at {granted_at}, after the signature's time {at}")]
    NotYetValid {
        /// The key.
        key: KeyId,
        /// When it was granted.
        granted_at: i64,
        /// When it was used.
        at: i64,
    },
    /// The key was revoked at or before the time of use.
    #[error("key {key} was revoked from {effective_at} ({reason}); the signature is from {at}")]
    Revoked {
        /// The key.
        key: KeyId,
        /// Why it was revoked.
        reason: String,
        /// From when.
        effective_at: i64,
        /// When it was used.
        at: i64,
    },
}

/// A publisher's keys, current and revoked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keyring {
    keys: BTreeMap<KeyId, KeyringEntry>,
}

impl Keyring {
    /// An empty keyring.
    pub fn new() -> Keyring {
        Keyring::default()
    }

    /// Adds a key valid from `granted_at`; returns false if it was already there.
    pub fn grant(&mut self, key: PublicKey, granted_at: i64) -> bool {
        if self.keys.contains_key(key.id()) {
            return false;
        }
        self.keys.insert(
            key.id().clone(),
            KeyringEntry {
                key,
                granted_at,
                revoked: None,
            },
        );
        true
    }

    /// Revokes a key. A second revocation may only move the effective
    /// time earlier (a revocation is never undone).
    pub fn revoke(&mut self, id: &KeyId, revocation: Revocation) -> Result<(), KeyUseError> {
        let entry = self
            .keys
            .get_mut(id)
            .ok_or_else(|| KeyUseError::Unknown(id.clone()))?;
        match &entry.revoked {
            Some(old) if old.effective_at <= revocation.effective_at => {}
            _ => entry.revoked = Some(revocation),
        }
        Ok(())
    }

    /// The key, if known.
    pub fn get(&self, id: &KeyId) -> Option<&KeyringEntry> {
        self.keys.get(id)
    }

    /// Every key, revoked ones included.
    pub fn entries(&self) -> impl Iterator<Item = &KeyringEntry> {
        self.keys.values()
    }

    /// Keys usable now (`at`).
    pub fn active_at(&self, at: i64) -> impl Iterator<Item = &KeyringEntry> {
        self.keys
            .values()
            .filter(move |e| self.usable(e.key.id(), at).is_ok())
    }

    /// The key, if it may sign at time `at`.
    pub fn usable(&self, id: &KeyId, at: i64) -> Result<&PublicKey, KeyUseError> {
        let entry = self
            .keys
            .get(id)
            .ok_or_else(|| KeyUseError::Unknown(id.clone()))?;
        if at < entry.granted_at {
            return Err(KeyUseError::NotYetValid {
                key: id.clone(),
                granted_at: entry.granted_at,
                at,
            });
        }
        if let Some(revoked) = &entry.revoked
            && revoked.effective_at <= at
        {
            return Err(KeyUseError::Revoked {
                key: id.clone(),
                reason: revoked.reason.clone(),
                effective_at: revoked.effective_at,
                at,
            });
        }
        Ok(&entry.key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_revoked_in_the_past_invalidates_use_from_then_on() {
        let key = SecretKey::from_seed(&[9; 32]);
        let mut ring = Keyring::new();
        assert!(ring.grant(key.public().clone(), 100));
        assert!(ring.usable(key.id(), 150).is_ok());
        ring.revoke(
            key.id(),
            Revocation {
                reason: "laptop stolen".into(),
                effective_at: 120,
            },
        )
        .expect("known key");
        assert!(ring.usable(key.id(), 119).is_ok());
        assert!(matches!(
            ring.usable(key.id(), 150),
            Err(KeyUseError::Revoked { .. })
        ));
        assert!(matches!(
            ring.usable(key.id(), 50),
            Err(KeyUseError::NotYetValid { .. })
        ));
        // A later revocation cannot move the time forward again.
        ring.revoke(
            key.id(),
            Revocation {
                reason: "oops".into(),
                effective_at: 500,
            },
        )
        .expect("known key");
        assert!(ring.usable(key.id(), 150).is_err());
    }

    #[test]
    fn key_change_statements_differ_by_every_field() {
        let a = SecretKey::from_seed(&[1; 32]);
        let b = SecretKey::from_seed(&[2; 32]);
        let add = KeyChange::Add {
            key: b.id().clone(),
        };
        let revoke = |effective_at, reason: &str| KeyChange::Revoke {
            key: b.id().clone(),
            effective_at,
            reason: reason.into(),
        };
        let base = key_change_message("acme", &add, 100, "00");
        for other in [
            key_change_message("acme2", &add, 100, "00"),
            key_change_message("acme", &add, 101, "00"),
            key_change_message("acme", &add, 100, "01"),
            key_change_message(
                "acme",
                &KeyChange::Add {
                    key: a.id().clone(),
                },
                100,
                "00",
            ),
            key_change_message("acme", &revoke(100, "x"), 100, "00"),
        ] {
            assert_ne!(base, other);
        }
        assert_ne!(
            key_change_message("acme", &revoke(100, "x"), 1, "00"),
            key_change_message("acme", &revoke(101, "x"), 1, "00")
        );
        assert_ne!(
            key_change_message("acme", &revoke(100, "x\n1"), 1, "00"),
            key_change_message("acme", &revoke(100, "x"), 1, "00")
        );
        assert!(base.starts_with(b"ctrl-alt-play/key-change/v1\n"));
        assert_ne!(
            key_change_nonce().expect("random"),
            key_change_nonce().expect("random")
        );
    }

    #[test]
    fn several_keys_are_active_at_once() {
        let a = SecretKey::from_seed(&[1; 32]);
        let b = SecretKey::from_seed(&[2; 32]);
        let mut ring = Keyring::new();
        ring.grant(a.public().clone(), 0);
        ring.grant(b.public().clone(), 0);
        assert_eq!(ring.active_at(10).count(), 2);
        let v = semver::Version::new(1, 0, 0);
        let sig = sign_package(&b, "x", &v, "00");
        let key = ring.usable(b.id(), 10).expect("usable");
        assert!(key.verify(&author_message("x", &v, "00"), &sig));
        assert!(!key.verify(&author_message("y", &v, "00"), &sig));
    }
}
