//! The Marketplace's keys over time: an offline **root** key certifies the
//! **online** key that signs log entries, countersignatures, timestamps and
//! licenses, so that the online key can be replaced without every Panel
//! re-pinning anything.
//!
//! This is the split TUF makes between its root role and its online roles,
//! cut down to what a single Marketplace needs:
//!
//! * A [`KeyChain`] is the root's public key and an append-only list of
//!   [`SignedCertificate`]s. Certificate `n` (serial `n`, from 1) says "the
//!   online key is K from time T on"; the root signs it over
//!   `ctrl-alt-play/online-key/v1\n` and the certificate's JSON. Serials
//!   count up by one and validity starts strictly increase, so every moment
//!   has exactly one online key: [`MarketplaceKeys::key_at`].
//! * **What is verified with which key.** A log entry (and a release's
//!   countersignature) with the key valid at the entry's time; log entry
//!   times never decrease along a log ([`crate::log::replay`]), so an old
//!   online key, even stolen, cannot append after the rotation that
//!   replaced it. A timestamp only with the current key: a client that has
//!   seen the newer certificate refuses timestamps by every older key, and a
//!   log extended by a stolen old key never matches a timestamp the current
//!   key signs. A license with the key valid when it was issued.
//! * **What a client pins.** A Panel pins the root key (configured, or
//!   trusted on first use). It accepts a chain only if it is signed by that
//!   root and extends the chain it already trusts (the same certificates,
//!   maybe more): a Marketplace, mirror or attacker cannot roll a Panel back
//!   to an older online key.
//! * **Panels that pinned the online key before roots existed.** The first
//!   online key signs an *endorsement* of the root
//!   (`ctrl-alt-play/root-endorsement/v1\n` and the root's hex). A client
//!   pinning that key accepts the root it endorses, and from then on follows
//!   the root ([`KeyChain::accepted_by`]). A Marketplace that existed before
//!   this module gets its root on the first start with it: its existing key
//!   becomes certificate 1, valid from the beginning of time.
//!
//! **Out of scope, and why:** rotating the root itself (TUF chains root
//! versions, each signed by the previous one). The root signs one small
//! certificate per rotation and can stay offline between them, so its
//! exposure is small; a compromised root means re-pinning by hand, which
//! [`crate::trust::TrustStoreError::OtherKey`] makes explicit. Thresholds of
//! several root keys are out of scope for the same reason.
//!
//! # Example
//!
//! ```
//! use cap_marketplace::keys::SecretKey;
//! use cap_marketplace::rotation::KeyChain;
//!
//! let root = SecretKey::from_seed(&[1; 32]);
//! let first = SecretKey::from_seed(&[2; 32]);
//! let mut chain = KeyChain::create(&root, &first);
//! let second = SecretKey::from_seed(&[3; 32]);
//! chain.rotate(&root, second.public(), 1_000).expect("rotates");
//!
//! let keys = chain.verify(root.public()).expect("signed by the root");
//! assert_eq!(keys.key_at(999), first.public());
//! assert_eq!(keys.key_at(1_000), second.public());
//! assert_eq!(keys.current(), second.public());
//! // A Panel that pinned the first online key follows the root it endorsed.
//! assert!(chain.accepted_by(first.public()).is_ok());
//! ```

use serde::{Deserialize, Serialize};

use crate::keys::{PublicKey, SecretKey, Signature};

/// The validity start of the first certificate: the beginning of time, so
/// that everything a Marketplace signed before it had a root stays valid.
pub const BEGINNING: i64 = i64::MIN;

/// What the root states in one certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certificate {
    /// Position in the chain, from 1.
    pub serial: u64,
    /// The online key.
    pub online_key: PublicKey,
    /// From when (unix seconds) the online key signs; it signs until the
    /// next certificate's `valid_from`.
    pub valid_from: i64,
}

impl Certificate {
    fn message(&self) -> Vec<u8> {
        let mut message = b"ctrl-alt-play/online-key/v1\n".to_vec();
        // Integers and hex strings always serialize.
        message.extend(serde_json::to_vec(self).unwrap_or_default());
        message
    }
}

/// A certificate and the root's signature of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedCertificate {
    /// What is stated.
    pub certificate: Certificate,
    /// The root's signature.
    pub signature: Signature,
}

/// The root, every certificate it issued, and the first online key's
/// endorsement of the root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyChain {
    /// The root key.
    pub root: PublicKey,
    /// Every certificate, serial 1 first.
    pub certificates: Vec<SignedCertificate>,
    /// The first online key's signature of the root.
    pub endorsement: Signature,
}

/// Why a key chain is not to be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// The chain has no certificate.
    #[error("the Marketplace key chain has no certificate")]
    Empty,
    /// A certificate's signature is not the root's.
    #[error("certificate {serial} of the Marketplace key chain is not signed by root key {root}")]
    BadCertificateSignature {
        /// The certificate.
        serial: u64,
        /// The root's key id.
        root: String,
    },
    /// Serials do not count 1, 2, 3, … or validity does not move forward.
    #[error("certificate {serial} of the Marketplace key chain is out of order: {reason}")]
    OutOfOrder {
        /// The certificate.
        serial: u64,
        /// What is wrong.
        reason: String,
    },
    /// The first online key did not endorse this root.
    #[error("the Marketplace's first key {first} did not endorse root key {root}")]
    BadEndorsement {
        /// The first online key's id.
        first: String,
        /// The root's key id.
        root: String,
    },
    /// The chain's root is not the pinned key, and the pinned key did not
    /// endorse it.
    #[error(
        "the Marketplace presents root key {presented}, which the trusted key {trusted} neither is nor endorsed"
    )]
    UntrustedRoot {
        /// The pinned key's id.
        trusted: String,
        /// The presented root's id.
        presented: String,
    },
    /// The chain does not extend the trusted chain.
    #[error(
        "the Marketplace key chain rolls back or rewrites certificate {serial} of the trusted chain"
    )]
    RolledBack {
        /// The first certificate that differs or is missing.
        serial: u64,
    },
    /// A rotation would not move validity forward.
    #[error(
        "a new online key cannot be valid from {valid_from}: the current one is valid from {current}"
    )]
    NotLater {
        /// The requested start.
        valid_from: i64,
        /// The current key's start.
        current: i64,
    },
    /// A rotation with a key the chain already certified.
    #[error("online key {0} was certified before; a rotation needs a new key")]
    ReusedKey(String),
    /// A rotation signed with another key than the chain's root.
    #[error("the given root key {given} is not this chain's root {root}")]
    WrongRoot {
        /// The given key's id.
        given: String,
        /// The chain's root id.
        root: String,
    },
}

fn endorsement_message(root: &PublicKey) -> Vec<u8> {
    format!("ctrl-alt-play/root-endorsement/v1\n{}", root.to_hex()).into_bytes()
}

impl KeyChain {
    /// A chain whose first certificate makes `online` the online key from
    /// [`BEGINNING`], endorsed by `online`.
    pub fn create(root: &SecretKey, online: &SecretKey) -> KeyChain {
        let certificate = Certificate {
            serial: 1,
            online_key: online.public().clone(),
            valid_from: BEGINNING,
        };
        KeyChain {
            root: root.public().clone(),
            certificates: vec![SignedCertificate {
                signature: root.sign(&certificate.message()),
                certificate,
            }],
            endorsement: online.sign(&endorsement_message(root.public())),
        }
    }

    /// Certifies `online` as the online key from `valid_from` on.
    ///
    /// # Errors
    ///
    /// [`ChainError::WrongRoot`] for another root, [`ChainError::NotLater`]
    /// unless `valid_from` is after the current key's start,
    /// [`ChainError::ReusedKey`] for a key certified before.
    pub fn rotate(
        &mut self,
        root: &SecretKey,
        online: &PublicKey,
        valid_from: i64,
    ) -> Result<&Certificate, ChainError> {
        if root.public() != &self.root {
            return Err(ChainError::WrongRoot {
                given: root.id().to_string(),
                root: self.root.id().to_string(),
            });
        }
        let last = &self
            .certificates
            .last()
            .ok_or(ChainError::Empty)?
            .certificate;
        if valid_from <= last.valid_from {
            return Err(ChainError::NotLater {
                valid_from,
                current: last.valid_from,
            });
        }
        if self
            .certificates
            .iter()
            .any(|c| c.certificate.online_key == *online)
        {
            return Err(ChainError::ReusedKey(online.id().to_string()));
        }
        let certificate = Certificate {
            serial: last.serial + 1,
            online_key: online.clone(),
            valid_from,
        };
        self.certificates.push(SignedCertificate {
            signature: root.sign(&certificate.message()),
            certificate,
        });
        Ok(&self.certificates[self.certificates.len() - 1].certificate)
    }

    /// Checks every signature and the order against `root`, and returns
    /// the keys by time.
    ///
    /// # Errors
    ///
    /// [`ChainError::UntrustedRoot`] when the chain's root is not `root`;
    /// the chain's own faults otherwise.
    pub fn verify(&self, root: &PublicKey) -> Result<MarketplaceKeys, ChainError> {
        if *root != self.root {
            return Err(ChainError::UntrustedRoot {
                trusted: root.id().to_string(),
                presented: self.root.id().to_string(),
            });
        }
        let first = self.certificates.first().ok_or(ChainError::Empty)?;
        if !first
            .certificate
            .online_key
            .verify(&endorsement_message(&self.root), &self.endorsement)
        {
            return Err(ChainError::BadEndorsement {
                first: first.certificate.online_key.id().to_string(),
                root: self.root.id().to_string(),
            });
        }
        let mut periods: Vec<(i64, PublicKey)> = Vec::with_capacity(self.certificates.len());
        for (index, signed) in self.certificates.iter().enumerate() {
            let certificate = &signed.certificate;
            let out_of_order = |reason: String| ChainError::OutOfOrder {
                serial: certificate.serial,
                reason,
            };
            if certificate.serial != index as u64 + 1 {
                return Err(out_of_order(format!("expected serial {}", index + 1)));
            }
            if !self.root.verify(&certificate.message(), &signed.signature) {
                return Err(ChainError::BadCertificateSignature {
                    serial: certificate.serial,
                    root: self.root.id().to_string(),
                });
            }
            match periods.last() {
                None if certificate.valid_from != BEGINNING => {
                    return Err(out_of_order(
                        "the first certificate must be valid from the beginning".into(),
                    ));
                }
                Some((previous, _)) if certificate.valid_from <= *previous => {
                    return Err(out_of_order(format!(
                        "valid from {}, not after the previous certificate's {previous}",
                        certificate.valid_from
                    )));
                }
                _ => {}
            }
            periods.push((certificate.valid_from, certificate.online_key.clone()));
        }
        Ok(MarketplaceKeys { periods })
    }

    /// Verifies the chain for a client that pins `pinned`: the chain's
    /// root, or the first online key of a Marketplace from before roots,
    /// which endorsed the root.
    ///
    /// # Errors
    ///
    /// [`ChainError::UntrustedRoot`] when `pinned` is neither; the chain's
    /// own faults otherwise.
    pub fn accepted_by(&self, pinned: &PublicKey) -> Result<MarketplaceKeys, ChainError> {
        if *pinned == self.root {
            return self.verify(pinned);
        }
        let endorsed_by_pinned = self
            .certificates
            .first()
            .is_some_and(|first| first.certificate.online_key == *pinned);
        if !endorsed_by_pinned {
            return Err(ChainError::UntrustedRoot {
                trusted: pinned.id().to_string(),
                presented: self.root.id().to_string(),
            });
        }
        // `verify` checks the first key's endorsement of the root.
        self.verify(&self.root)
    }

    /// Checks that this chain extends `trusted`: the same root and every
    /// trusted certificate, unchanged, in place.
    ///
    /// # Errors
    ///
    /// [`ChainError::UntrustedRoot`] for another root,
    /// [`ChainError::RolledBack`] for a missing or rewritten certificate.
    pub fn extends(&self, trusted: &KeyChain) -> Result<(), ChainError> {
        if self.root != trusted.root {
            return Err(ChainError::UntrustedRoot {
                trusted: trusted.root.id().to_string(),
                presented: self.root.id().to_string(),
            });
        }
        for (index, certificate) in trusted.certificates.iter().enumerate() {
            if self.certificates.get(index) != Some(certificate) {
                return Err(ChainError::RolledBack {
                    serial: index as u64 + 1,
                });
            }
        }
        Ok(())
    }
}

/// The online keys of a verified chain, by the time from which each signs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarketplaceKeys {
    /// `(valid_from, key)`, in increasing `valid_from`, never empty.
    periods: Vec<(i64, PublicKey)>,
}

impl MarketplaceKeys {
    /// One key valid at every time: a Marketplace without a chain (tests,
    /// and clients that pinned a key and have not seen a chain yet).
    pub fn single(key: PublicKey) -> MarketplaceKeys {
        MarketplaceKeys {
            periods: vec![(BEGINNING, key)],
        }
    }

    /// The online key that signed at `time`.
    pub fn key_at(&self, time: i64) -> &PublicKey {
        let index = self.periods.partition_point(|(from, _)| *from <= time);
        // `periods` is never empty and starts at `BEGINNING`, so at least
        // one period starts at or before any time.
        &self.periods[index.saturating_sub(1)].1
    }

    /// The online key now: the last certified.
    pub fn current(&self) -> &PublicKey {
        // Never empty, see `periods`.
        &self.periods[self.periods.len() - 1].1
    }

    /// Every online key with the time from which it signs.
    pub fn periods(&self) -> impl Iterator<Item = (i64, &PublicKey)> {
        self.periods.iter().map(|(from, key)| (*from, key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> SecretKey {
        SecretKey::from_seed(&[n; 32])
    }

    #[test]
    fn a_rotated_chain_names_the_key_valid_at_each_time() {
        let root = key(1);
        let mut chain = KeyChain::create(&root, &key(2));
        chain.rotate(&root, key(3).public(), 100).expect("rotates");
        chain.rotate(&root, key(4).public(), 200).expect("rotates");
        let keys = chain.verify(root.public()).expect("valid");
        assert_eq!(keys.key_at(i64::MIN), key(2).public());
        assert_eq!(keys.key_at(99), key(2).public());
        assert_eq!(keys.key_at(100), key(3).public());
        assert_eq!(keys.key_at(199), key(3).public());
        assert_eq!(keys.key_at(200), key(4).public());
        assert_eq!(keys.current(), key(4).public());
    }

    #[test]
    fn a_certificate_signed_by_another_key_than_the_root_is_refused() {
        let root = key(1);
        let mut chain = KeyChain::create(&root, &key(2));
        chain.rotate(&root, key(3).public(), 100).expect("rotates");
        // An attacker holding an old online key certifies their own key.
        let forged = Certificate {
            serial: 3,
            online_key: key(9).public().clone(),
            valid_from: 300,
        };
        chain.certificates.push(SignedCertificate {
            signature: key(3).sign(&forged.message()),
            certificate: forged,
        });
        assert_eq!(
            chain.verify(root.public()),
            Err(ChainError::BadCertificateSignature {
                serial: 3,
                root: root.id().to_string()
            })
        );
    }

    #[test]
    fn a_chain_dropping_or_rewriting_a_trusted_certificate_is_a_rollback() {
        let root = key(1);
        let mut trusted = KeyChain::create(&root, &key(2));
        trusted
            .rotate(&root, key(3).public(), 100)
            .expect("rotates");
        let older = KeyChain::create(&root, &key(2));
        assert_eq!(
            older.extends(&trusted),
            Err(ChainError::RolledBack { serial: 2 })
        );
        let mut rewritten = KeyChain::create(&root, &key(2));
        rewritten
            .rotate(&root, key(4).public(), 100)
            .expect("rotates");
        assert_eq!(
            rewritten.extends(&trusted),
            Err(ChainError::RolledBack { serial: 2 })
        );
        let mut newer = trusted.clone();
        newer.rotate(&root, key(5).public(), 200).expect("rotates");
        assert_eq!(newer.extends(&trusted), Ok(()));
    }

    #[test]
    fn rotation_refuses_a_reused_key_an_earlier_start_and_another_root() {
        let root = key(1);
        let mut chain = KeyChain::create(&root, &key(2));
        chain.rotate(&root, key(3).public(), 100).expect("rotates");
        assert_eq!(
            chain.rotate(&root, key(2).public(), 200).map(|_| ()),
            Err(ChainError::ReusedKey(key(2).id().to_string()))
        );
        assert_eq!(
            chain.rotate(&root, key(4).public(), 100).map(|_| ()),
            Err(ChainError::NotLater {
                valid_from: 100,
                current: 100
            })
        );
        assert!(matches!(
            chain.rotate(&key(7), key(4).public(), 300),
            Err(ChainError::WrongRoot { .. })
        ));
    }

    #[test]
    fn a_pinned_first_key_accepts_only_the_root_it_endorsed() {
        let root = key(1);
        let first = key(2);
        let chain = KeyChain::create(&root, &first);
        assert!(chain.accepted_by(first.public()).is_ok());
        assert!(chain.accepted_by(root.public()).is_ok());
        // An attacker's root certifying the pinned key, without its
        // endorsement, is refused.
        let attacker = key(8);
        let mut forged = KeyChain::create(&attacker, &first);
        forged.endorsement = attacker.sign(&endorsement_message(attacker.public()));
        assert!(matches!(
            forged.accepted_by(first.public()),
            Err(ChainError::BadEndorsement { .. })
        ));
        assert!(matches!(
            chain.accepted_by(key(5).public()),
            Err(ChainError::UntrustedRoot { .. })
        ));
    }

    #[test]
    fn a_gap_in_the_serials_or_a_start_that_does_not_move_forward_is_refused() {
        let root = key(1);
        let mut chain = KeyChain::create(&root, &key(2));
        // A gap in the serials, signed by the root all the same.
        let skipped = Certificate {
            serial: 3,
            online_key: key(3).public().clone(),
            valid_from: 100,
        };
        chain.certificates.push(SignedCertificate {
            signature: root.sign(&skipped.message()),
            certificate: skipped,
        });
        assert!(matches!(
            chain.verify(root.public()),
            Err(ChainError::OutOfOrder { serial: 3, .. })
        ));
        // A start that does not move forward.
        let mut chain = KeyChain::create(&root, &key(2));
        let backwards = Certificate {
            serial: 2,
            online_key: key(3).public().clone(),
            valid_from: BEGINNING,
        };
        chain.certificates.push(SignedCertificate {
            signature: root.sign(&backwards.message()),
            certificate: backwards,
        });
        assert!(matches!(
            chain.verify(root.public()),
            Err(ChainError::OutOfOrder { serial: 2, .. })
        ));
    }
}
