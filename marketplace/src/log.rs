//! The per-package transparency log and the signed index timestamp.
//!
//! Each package has an append-only log of entries: key grants and
//! revocations (copied from the publisher's keyring, so a package's log is
//! self-contained), releases, yanks and unyanks. Entry `n` records the hash
//! of entry `n - 1` (`prev`, 64 zeros for the first), so the whole history
//! is committed to by the hash of the last entry, the log's *head*. The
//! Marketplace signs each entry's hash.
//!
//! Entry times never decrease along a log. Each entry, and each release's
//! countersignature, is verified with the online key valid at the entry's
//! time ([`crate::rotation`]), so an online key that was rotated away cannot
//! append to any log after its successor took over.
//!
//! The entry hash is `sha256("ctrl-alt-play/log-entry/v1\n" || JSON)`
//! where JSON is the entry without its signature, serialized by this crate
//! (fields in declaration order, maps sorted), so the hash is a function of
//! the entry's content only.
//!
//! [`replay`] checks a whole log — sequence numbers, hash chain, the
//! Marketplace's signature on every entry, author signatures and
//! countersignatures of releases against the keys valid at the release's
//! time, immutability of versions — and returns the state it describes.
//!
//! A [`SignedTimestamp`] lists every log's head (length and hash) with an
//! issue and expiry time. Clients refuse an expired one (an index frozen by
//! a mirror or attacker) and one older than the newest they have seen (a
//! replayed index); see [`crate::trust`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::keys::{KeyId, PublicKey, SecretKey, Signature};
use crate::rotation::{KeyChain, MarketplaceKeys};
use crate::signing::{Keyring, Revocation, author_message, countersign_message};
use crate::verify::VerifyError;

/// The `prev` of a log's first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What happened, in one log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum LogEvent {
    /// A publisher key may sign releases from the entry's time on.
    KeyGrant {
        /// The key's id.
        key_id: KeyId,
        /// The key.
        public_key: PublicKey,
    },
    /// A key is revoked from `effective_at` (which may be earlier than the entry).
    KeyRevoke {
        /// The key's id.
        key_id: KeyId,
        /// Why.
        reason: String,
        /// From when its signatures are invalid (unix seconds).
        effective_at: i64,
    },
    /// A version was published.
    Release {
        /// The version.
        version: semver::Version,
        /// sha256 of the package file.
        sha256: String,
        /// The WIT API version the plugin targets.
        api: semver::Version,
        /// Its dependencies, as declared in its manifest.
        dependencies: BTreeMap<String, semver::VersionReq>,
        /// The author's key.
        key_id: KeyId,
        /// The author's signature (see [`author_message`]).
        author_signature: Signature,
        /// The Marketplace's countersignature (see [`countersign_message`]).
        countersignature: Signature,
    },
    /// A version should not be chosen for new installs.
    Yank {
        /// The version.
        version: semver::Version,
        /// Why, for people.
        reason: String,
    },
    /// A yank is withdrawn.
    Unyank {
        /// The version.
        version: semver::Version,
    },
}

/// One signed log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// The package whose log this is.
    pub package: String,
    /// Position, from 0.
    pub seq: u64,
    /// Hash of the previous entry ([`GENESIS`] for the first).
    pub prev: String,
    /// When the Marketplace appended it (unix seconds).
    pub time: i64,
    /// What happened.
    pub event: LogEvent,
    /// The Marketplace's signature of [`LogEntry::hash`].
    pub signature: Signature,
}

#[derive(Serialize)]
struct Unsigned<'a> {
    package: &'a str,
    seq: u64,
    prev: &'a str,
    time: i64,
    event: &'a LogEvent,
}

fn entry_hash(package: &str, seq: u64, prev: &str, time: i64, event: &LogEvent) -> String {
    let body = Unsigned {
        package,
        seq,
        prev,
        time,
        event,
    };
    // Serializing plain structs, strings and integers cannot fail.
    let json = serde_json::to_vec(&body).unwrap_or_default();
    let mut hash = Sha256::new();
    hash.update(b"ctrl-alt-play/log-entry/v1\n");
    hash.update(&json);
    hex::encode(hash.finalize())
}

fn entry_message(hash: &str) -> Vec<u8> {
    format!("ctrl-alt-play/log-entry/v1\n{hash}").into_bytes()
}

impl LogEntry {
    /// The entry's hash (over everything but the signature).
    pub fn hash(&self) -> String {
        entry_hash(&self.package, self.seq, &self.prev, self.time, &self.event)
    }
}

/// A log's head: how many entries, and the last one's hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogHead {
    /// Number of entries.
    pub len: u64,
    /// Hash of the last entry.
    pub hash: String,
}

/// The body of a [`SignedTimestamp`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimestampBody {
    /// When it was issued (unix seconds).
    pub issued_at: i64,
    /// After when clients must refuse it (unix seconds).
    pub expires_at: i64,
    /// Every package log's head.
    pub heads: BTreeMap<String, LogHead>,
}

impl TimestampBody {
    fn message(&self) -> Vec<u8> {
        let mut message = b"ctrl-alt-play/timestamp/v1\n".to_vec();
        message.extend(serde_json::to_vec(self).unwrap_or_default());
        message
    }
}

/// The Marketplace's signed statement of all log heads at a time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedTimestamp {
    /// What is stated.
    pub body: TimestampBody,
    /// The Marketplace's signature.
    pub signature: Signature,
}

impl SignedTimestamp {
    /// Whether the Marketplace key signed this body.
    pub fn verify(&self, marketplace: &PublicKey) -> bool {
        marketplace.verify(&self.body.message(), &self.signature)
    }
}

/// The Marketplace's signing side: appends entries, countersigns releases,
/// issues timestamps.
#[derive(Debug, Clone)]
pub struct Notary {
    key: SecretKey,
    chain: Option<KeyChain>,
    /// When `key`'s certificate starts: nothing is signed with an earlier
    /// time, or clients would check it against the previous key.
    signs_from: i64,
}

impl Notary {
    /// A notary signing with `key`, without a root (clients pin `key`).
    pub fn new(key: SecretKey) -> Notary {
        Notary {
            key,
            chain: None,
            signs_from: i64::MIN,
        }
    }

    /// A notary signing with `key`, the current online key of `chain`.
    pub fn with_chain(key: SecretKey, chain: KeyChain) -> Notary {
        let signs_from = chain
            .certificates
            .last()
            .map_or(i64::MIN, |c| c.certificate.valid_from);
        Notary {
            key,
            chain: Some(chain),
            signs_from,
        }
    }

    /// The online key: what signs now.
    pub fn public_key(&self) -> &PublicKey {
        self.key.public()
    }

    /// The root's certificates of every online key, if the Marketplace has
    /// a root.
    pub fn chain(&self) -> Option<&KeyChain> {
        self.chain.as_ref()
    }

    /// The time from which the online key signs: log entries and licenses
    /// never carry an earlier time.
    pub fn signs_from(&self) -> i64 {
        self.signs_from
    }

    /// The key clients pin: the root, or the online key without one.
    pub fn pinned_key(&self) -> &PublicKey {
        self.chain
            .as_ref()
            .map_or_else(|| self.key.public(), |chain| &chain.root)
    }

    /// A license token for `claims`, signed with the Marketplace key.
    pub fn issue_license(&self, claims: &crate::license::LicenseClaims) -> String {
        crate::license::issue_license(&self.key, claims)
    }

    /// The countersignature of an author's release signature.
    pub fn countersign(
        &self,
        id: &str,
        version: &semver::Version,
        sha256: &str,
        author_key: &KeyId,
        author_signature: &Signature,
    ) -> Signature {
        self.key.sign(&countersign_message(
            id,
            version,
            sha256,
            author_key,
            author_signature,
        ))
    }

    /// The entry following `prev` (or the first entry when `prev` is `None`),
    /// at `time` or, if later, when this notary's key starts signing.
    pub fn append(
        &self,
        package: &str,
        prev: Option<&LogHead>,
        time: i64,
        event: LogEvent,
    ) -> LogEntry {
        let (seq, prev) = match prev {
            Some(head) => (head.len, head.hash.clone()),
            None => (0, GENESIS.to_owned()),
        };
        // An entry checked against the previous online key would fail.
        let time = time.max(self.signs_from);
        let hash = entry_hash(package, seq, &prev, time, &event);
        LogEntry {
            package: package.to_owned(),
            seq,
            prev,
            time,
            event,
            signature: self.key.sign(&entry_message(&hash)),
        }
    }

    /// A timestamp over `heads`, valid for `ttl_seconds` from `now`.
    pub fn timestamp(
        &self,
        heads: BTreeMap<String, LogHead>,
        now: i64,
        ttl_seconds: i64,
    ) -> SignedTimestamp {
        let body = TimestampBody {
            issued_at: now,
            expires_at: now.saturating_add(ttl_seconds),
            heads,
        };
        let signature = self.key.sign(&body.message());
        SignedTimestamp { body, signature }
    }
}

/// A release as the log describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRelease {
    /// sha256 of the package file.
    pub sha256: String,
    /// Target API version.
    pub api: semver::Version,
    /// Declared dependencies.
    pub dependencies: BTreeMap<String, semver::VersionReq>,
    /// The author's key.
    pub key_id: KeyId,
    /// When it was logged.
    pub time: i64,
    /// Whether it is yanked now.
    pub yanked: bool,
    /// Why its key was not valid at its time (revoked or not yet granted);
    /// such a release must not be installed.
    pub key_problem: Option<String>,
}

/// What a verified log says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogState {
    /// The package.
    pub package: String,
    /// Its head.
    pub head: LogHead,
    /// The publisher keys the log granted and revoked.
    pub keys: Keyring,
    /// Releases by version.
    pub releases: BTreeMap<semver::Version, LoggedRelease>,
    /// Every entry's hash, by position (for consistency checks).
    pub hashes: Vec<String>,
}

/// Checks a complete log and returns what it says.
///
/// Every entry's signature and every countersignature is checked with the
/// online key of `marketplace` valid at the entry's time, and entry times
/// must not decrease.
///
/// A bad signature anywhere, or a release by a key the log never granted,
/// makes the whole log invalid. A release whose key was revoked effective
/// at or before the release's time is only marked
/// ([`LoggedRelease::key_problem`]), even when the revocation entry comes
/// later: the key was compromised before anyone noticed, so that release
/// must not be installed, but the package's other releases stay usable.
pub fn replay(
    package: &str,
    entries: &[LogEntry],
    marketplace: &MarketplaceKeys,
) -> Result<LogState, VerifyError> {
    let mut keys = Keyring::new();
    let mut releases: BTreeMap<semver::Version, LoggedRelease> = BTreeMap::new();
    let mut hashes = Vec::with_capacity(entries.len());
    let mut prev = GENESIS.to_owned();
    let mut prev_time = i64::MIN;
    for (n, entry) in entries.iter().enumerate() {
        let seq = n as u64;
        let broken = |reason: String| VerifyError::BrokenLog {
            package: package.to_owned(),
            seq,
            reason,
        };
        if entry.package != package {
            return Err(broken(format!(
                "entry belongs to package {:?}",
                entry.package
            )));
        }
        if entry.seq != seq {
            return Err(broken(format!("entry has sequence number {}", entry.seq)));
        }
        if entry.prev != prev {
            return Err(broken(
                "entry does not follow the previous entry's hash".into(),
            ));
        }
        if entry.time < prev_time {
            return Err(broken(format!(
                "entry time {} is before the previous entry's {prev_time}",
                entry.time
            )));
        }
        prev_time = entry.time;
        let online = marketplace.key_at(entry.time);
        let hash = entry.hash();
        if !online.verify(&entry_message(&hash), &entry.signature) {
            return Err(VerifyError::BadLogSignature {
                package: package.to_owned(),
                seq,
            });
        }
        match &entry.event {
            LogEvent::KeyGrant { key_id, public_key } => {
                if key_id != public_key.id() {
                    return Err(broken("granted key id does not match the key".into()));
                }
                keys.grant(public_key.clone(), entry.time);
            }
            LogEvent::KeyRevoke {
                key_id,
                reason,
                effective_at,
            } => {
                keys.revoke(
                    key_id,
                    Revocation {
                        reason: reason.clone(),
                        effective_at: *effective_at,
                    },
                )
                .map_err(|e| broken(e.to_string()))?;
            }
            LogEvent::Release {
                version,
                sha256,
                api,
                dependencies,
                key_id,
                author_signature,
                countersignature,
            } => {
                if releases.contains_key(version) {
                    return Err(broken(format!("version {version} is released twice")));
                }
                let key = &keys
                    .get(key_id)
                    .ok_or_else(|| VerifyError::UnknownKey {
                        package: package.to_owned(),
                        version: version.clone(),
                        key: key_id.clone(),
                    })?
                    .key;
                if !key.verify(&author_message(package, version, sha256), author_signature) {
                    return Err(VerifyError::BadAuthorSignature {
                        package: package.to_owned(),
                        version: version.clone(),
                    });
                }
                if !online.verify(
                    &countersign_message(package, version, sha256, key_id, author_signature),
                    countersignature,
                ) {
                    return Err(VerifyError::BadCountersignature {
                        package: package.to_owned(),
                        version: version.clone(),
                    });
                }
                releases.insert(
                    version.clone(),
                    LoggedRelease {
                        sha256: sha256.clone(),
                        api: api.clone(),
                        dependencies: dependencies.clone(),
                        key_id: key_id.clone(),
                        time: entry.time,
                        yanked: false,
                        key_problem: None,
                    },
                );
            }
            LogEvent::Yank { version, .. } | LogEvent::Unyank { version } => {
                let yank = matches!(entry.event, LogEvent::Yank { .. });
                let release = releases
                    .get_mut(version)
                    .ok_or_else(|| broken(format!("version {version} was never released")))?;
                release.yanked = yank;
            }
        }
        hashes.push(hash.clone());
        prev = hash;
    }
    // Whether each release's key was valid at its time is decided with the
    // final keyring: a revocation logged after a release may be effective
    // before it.
    for release in releases.values_mut() {
        release.key_problem = keys
            .usable(&release.key_id, release.time)
            .err()
            .map(|e| e.to_string());
    }
    Ok(LogState {
        package: package.to_owned(),
        head: LogHead {
            len: entries.len() as u64,
            hash: prev,
        },
        keys,
        releases,
        hashes,
    })
}
