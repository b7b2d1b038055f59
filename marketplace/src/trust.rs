//! The client side: a [`TrustStore`] remembering the last trusted state of
//! the Marketplace, and verification of downloads against it.
//!
//! The store holds the key it pins (the Marketplace's root key, or for a
//! store from before roots the Marketplace's first online key; trusted on
//! first use or configured), the newest key chain accepted
//! ([`crate::rotation`]: which online key signed when), the issue time of the newest index timestamp accepted, and
//! the head of every package log accepted. It is a small JSON file, written
//! atomically (temporary file, then rename) only after a verification
//! succeeds, so a failed or interrupted verification never moves it.
//!
//! [`TrustStore::verify_install`] runs these checks, in order, and stops at
//! the first failure with a [`VerifyError`] naming it:
//!
//! 0. ([`TrustStore::accept_chain`], before any of these) a key chain the
//!    Marketplace presents is signed by the pinned root and extends the
//!    trusted chain;
//! 1. the index timestamp is signed by the current online key, not older than
//!    the trusted one (replay) and not expired (frozen index);
//! 2. each package's log replays cleanly (chain, signatures, author
//!    signatures and countersignatures, see [`crate::log::replay`]);
//! 3. each log extends the trusted log for that package: not shorter
//!    (rollback) and agreeing on every trusted entry (fork);
//! 4. each log's head is the one the timestamp states;
//! 5. each file's sha256 is the one the log released for that version, and
//!    the release's key was valid when it was logged;
//! 6. each file is a valid package whose manifest agrees with the log;
//! 7. every dependency a manifest declares is supplied, in range, and its
//!    bytes are the ones its own log released.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::keys::PublicKey;
use crate::log::{LogHead, LogState, LoggedRelease, SignedTimestamp, replay};
use crate::rotation::{KeyChain, MarketplaceKeys};
use crate::verify::{Download, VerifiedPackage, VerifyError};

/// Why the trust store file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TrustStoreError {
    /// Reading or writing failed.
    #[error("trust store {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The file is not a trust store.
    #[error("trust store {path} is corrupt: {reason}")]
    Corrupt {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The file trusts another Marketplace key.
    #[error("trust store {path} trusts Marketplace key {trusted}, not {given}")]
    OtherKey {
        /// The file.
        path: String,
        /// The key it trusts.
        trusted: String,
        /// The key given.
        given: String,
    },
}

/// Either kind of failure of a verification that also persists state.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// A check failed.
    #[error(transparent)]
    Verify(#[from] VerifyError),
    /// The verified state could not be saved.
    #[error(transparent)]
    Store(#[from] TrustStoreError),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct TrustState {
    format: u32,
    /// The pinned key: the root, or a pre-root Marketplace's first key.
    marketplace_key: PublicKey,
    timestamp_issued_at: i64,
    heads: BTreeMap<String, LogHead>,
    /// The newest key chain accepted; absent until the Marketplace
    /// presents one (and in stores written before roots existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key_chain: Option<KeyChain>,
}

/// The last trusted state of one Marketplace, optionally persisted.
#[derive(Debug, Clone)]
pub struct TrustStore {
    path: Option<PathBuf>,
    state: TrustState,
    /// The online keys by time, from `state.key_chain` (verified against
    /// the pinned key) or the pinned key alone.
    keys: MarketplaceKeys,
}

impl TrustStore {
    /// A store kept in memory only.
    pub fn in_memory(marketplace_key: PublicKey) -> TrustStore {
        TrustStore {
            path: None,
            keys: MarketplaceKeys::single(marketplace_key.clone()),
            state: TrustState {
                format: 1,
                marketplace_key,
                timestamp_issued_at: i64::MIN,
                heads: BTreeMap::new(),
                key_chain: None,
            },
        }
    }

    /// Accepts the key chain the Marketplace presents: it must be signed by
    /// the pinned root (or by the root the pinned first key endorsed) and
    /// extend the chain accepted before. From then on, signatures are
    /// checked with the online key valid at their time and timestamps with
    /// the newest online key. Persisted with the next successful
    /// verification ([`TrustStore::verify_install`]).
    ///
    /// # Errors
    ///
    /// [`VerifyError::KeyChain`] naming what is wrong with the chain.
    pub fn accept_chain(&mut self, chain: &KeyChain) -> Result<(), VerifyError> {
        let keys = chain.accepted_by(&self.state.marketplace_key)?;
        if let Some(trusted) = &self.state.key_chain {
            chain.extends(trusted)?;
        }
        self.keys = keys;
        self.state.key_chain = Some(chain.clone());
        Ok(())
    }

    /// The online keys by time: from the accepted chain, or the pinned key
    /// alone before a chain was accepted.
    pub fn keys(&self) -> &MarketplaceKeys {
        &self.keys
    }

    /// Opens the store at `path`, creating it (trusting `marketplace_key`)
    /// if it does not exist. An existing store must trust the same key.
    pub fn open(path: &Path, marketplace_key: PublicKey) -> Result<TrustStore, TrustStoreError> {
        let shown = path.display().to_string();
        match std::fs::read(path) {
            Ok(bytes) => {
                let state = parse_state(&shown, &bytes)?;
                if state.marketplace_key != marketplace_key {
                    return Err(TrustStoreError::OtherKey {
                        path: shown,
                        trusted: state.marketplace_key.id().to_string(),
                        given: marketplace_key.id().to_string(),
                    });
                }
                let keys = keys_of(&shown, &state)?;
                Ok(TrustStore {
                    path: Some(path.to_owned()),
                    state,
                    keys,
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let store = TrustStore {
                    path: Some(path.to_owned()),
                    ..TrustStore::in_memory(marketplace_key)
                };
                store.save()?;
                Ok(store)
            }
            Err(source) => Err(TrustStoreError::Io {
                path: shown,
                source,
            }),
        }
    }

    /// A store kept elsewhere (a database row, say) in the form
    /// [`TrustStore::to_json`] wrote. It must trust `marketplace_key`.
    /// [`TrustStore::save`] does nothing for it: the caller persists
    /// [`TrustStore::to_json`] after a successful verification.
    pub fn from_json(
        text: &str,
        marketplace_key: PublicKey,
    ) -> Result<TrustStore, TrustStoreError> {
        let state = parse_state("(stored state)", text.as_bytes())?;
        if state.marketplace_key != marketplace_key {
            return Err(TrustStoreError::OtherKey {
                path: "(stored state)".into(),
                trusted: state.marketplace_key.id().to_string(),
                given: marketplace_key.id().to_string(),
            });
        }
        let keys = keys_of("(stored state)", &state)?;
        Ok(TrustStore {
            path: None,
            state,
            keys,
        })
    }

    /// The Marketplace key a stored state trusts, without checking it
    /// against anything (for trust on first use: the key comes from the
    /// state itself).
    pub fn trusted_key_in(text: &str) -> Result<PublicKey, TrustStoreError> {
        Ok(parse_state("(stored state)", text.as_bytes())?.marketplace_key)
    }

    /// The state as JSON, for [`TrustStore::from_json`].
    pub fn to_json(&self) -> String {
        // Strings, integers and maps of them always serialize.
        serde_json::to_string(&self.state).unwrap_or_default()
    }

    /// The issue time of the newest timestamp trusted (`i64::MIN` before
    /// the first).
    pub fn trusted_timestamp(&self) -> i64 {
        self.state.timestamp_issued_at
    }

    /// The pinned key (the root, or a pre-root Marketplace's first key).
    pub fn marketplace_key(&self) -> &PublicKey {
        &self.state.marketplace_key
    }

    /// The trusted head of a package's log.
    pub fn trusted_head(&self, package: &str) -> Option<&LogHead> {
        self.state.heads.get(package)
    }

    /// Writes the state (no-op for an in-memory store).
    pub fn save(&self) -> Result<(), TrustStoreError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let io = |source| TrustStoreError::Io {
            path: path.display().to_string(),
            source,
        };
        let json =
            serde_json::to_vec_pretty(&self.state).map_err(|e| TrustStoreError::Corrupt {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, json).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// Checks a timestamp: signature, not older than trusted, not expired.
    pub fn check_timestamp(
        &self,
        timestamp: &SignedTimestamp,
        now: i64,
    ) -> Result<(), VerifyError> {
        if !timestamp.verify(self.keys.current()) {
            return Err(VerifyError::BadTimestampSignature);
        }
        if timestamp.body.issued_at < self.state.timestamp_issued_at {
            return Err(VerifyError::RolledBackTimestamp {
                issued_at: timestamp.body.issued_at,
                trusted: self.state.timestamp_issued_at,
            });
        }
        if now >= timestamp.body.expires_at {
            return Err(VerifyError::StaleTimestamp {
                expires_at: timestamp.body.expires_at,
                now,
            });
        }
        Ok(())
    }

    /// Checks a package's log against the trusted state and the timestamp
    /// (which must already have passed [`TrustStore::check_timestamp`]).
    pub fn check_log(
        &self,
        package: &str,
        log: &[crate::log::LogEntry],
        timestamp: &SignedTimestamp,
    ) -> Result<LogState, VerifyError> {
        let state = replay(package, log, &self.keys)?;
        if let Some(trusted) = self.state.heads.get(package) {
            if state.head.len < trusted.len {
                return Err(VerifyError::RolledBackLog {
                    package: package.to_owned(),
                    len: state.head.len,
                    trusted_len: trusted.len,
                });
            }
            let at = trusted.len.saturating_sub(1);
            if trusted.len > 0 && state.hashes.get(at as usize) != Some(&trusted.hash) {
                // Only the trusted head's hash is stored; because each entry
                // commits to its predecessor, a different hash at `at` means
                // history at or before `at` was rewritten.
                return Err(VerifyError::ForkedLog {
                    package: package.to_owned(),
                    seq: at,
                });
            }
        }
        let expected =
            timestamp
                .body
                .heads
                .get(package)
                .ok_or_else(|| VerifyError::NotInTimestamp {
                    package: package.to_owned(),
                })?;
        if *expected != state.head {
            return Err(VerifyError::LogHeadMismatch {
                package: package.to_owned(),
                len: state.head.len,
                hash: state.head.hash.clone(),
                expected_len: expected.len,
                expected_hash: expected.hash.clone(),
            });
        }
        Ok(state)
    }

    /// Verifies one package that has no dependencies and records the new
    /// trusted state.
    pub fn verify_download(
        &mut self,
        timestamp: &SignedTimestamp,
        download: Download<'_>,
        now: i64,
    ) -> Result<VerifiedPackage, InstallError> {
        let mut verified = self.verify_install(timestamp, &[download], now)?;
        // `verify_install` returns one package per download.
        verified.pop().ok_or_else(|| {
            InstallError::Verify(VerifyError::NotReleased {
                package: download.package.to_owned(),
                version: download.version.clone(),
            })
        })
    }

    /// Verifies a set of downloads — the first is what was asked for, the
    /// rest its dependencies — and, when every check passes, records the
    /// timestamp and the logs' heads as the new trusted state.
    pub fn verify_install(
        &mut self,
        timestamp: &SignedTimestamp,
        downloads: &[Download<'_>],
        now: i64,
    ) -> Result<Vec<VerifiedPackage>, InstallError> {
        let verified = self.check_install(timestamp, downloads, now)?;
        self.state.timestamp_issued_at = timestamp.body.issued_at;
        for (download, _) in downloads.iter().zip(&verified) {
            if let Some(head) = timestamp.body.heads.get(download.package) {
                self.state
                    .heads
                    .insert(download.package.to_owned(), head.clone());
            }
        }
        self.save()?;
        Ok(verified)
    }

    /// [`TrustStore::verify_install`] without recording anything.
    pub fn check_install(
        &self,
        timestamp: &SignedTimestamp,
        downloads: &[Download<'_>],
        now: i64,
    ) -> Result<Vec<VerifiedPackage>, VerifyError> {
        self.check_timestamp(timestamp, now)?;
        let mut releases = Vec::with_capacity(downloads.len());
        for download in downloads {
            let state = self.check_log(download.package, download.log, timestamp)?;
            let release =
                state
                    .releases
                    .get(download.version)
                    .ok_or_else(|| VerifyError::NotReleased {
                        package: download.package.to_owned(),
                        version: download.version.clone(),
                    })?;
            releases.push(release.clone());
        }
        let mut verified = Vec::with_capacity(downloads.len());
        for (index, (download, release)) in downloads.iter().zip(&releases).enumerate() {
            let actual = cap_runtime::component::sha256_hex(download.bytes);
            if actual != release.sha256 {
                return Err(if index == 0 {
                    VerifyError::DigestMismatch {
                        package: download.package.to_owned(),
                        version: download.version.clone(),
                        expected: release.sha256.clone(),
                        actual,
                    }
                } else {
                    VerifyError::DependencyDigestMismatch {
                        dependent: dependent_of(downloads, &releases, download.package),
                        package: download.package.to_owned(),
                        version: Box::new(download.version.clone()),
                        expected: release.sha256.clone(),
                        actual,
                    }
                });
            }
            if let Some(reason) = &release.key_problem {
                return Err(VerifyError::KeyNotValidAtSigning {
                    package: download.package.to_owned(),
                    version: download.version.clone(),
                    reason: reason.clone(),
                });
            }
            let package =
                cap_runtime::Package::read(download.bytes, cap_runtime::package::MAX_PACKAGE_BYTES)
                    .map_err(|e| VerifyError::BadPackage {
                        package: download.package.to_owned(),
                        version: download.version.clone(),
                        reason: e.to_string(),
                    })?;
            let mismatch = |reason: String| VerifyError::ManifestMismatch {
                package: download.package.to_owned(),
                version: download.version.clone(),
                reason,
            };
            let plugin = &package.manifest.plugin;
            if plugin.id != download.package || plugin.version != *download.version {
                return Err(mismatch(format!(
                    "the manifest is {} {}",
                    plugin.id, plugin.version
                )));
            }
            if plugin.api != release.api {
                return Err(mismatch(format!(
                    "the manifest targets API {}, the log says {}",
                    plugin.api, release.api
                )));
            }
            if package.manifest.dependencies != release.dependencies {
                return Err(mismatch("the dependencies differ".into()));
            }
            verified.push(VerifiedPackage {
                package,
                release: release.clone(),
            });
        }
        for item in &verified {
            let dependent = &item.package.manifest.plugin.id;
            for (name, requirement) in &item.package.manifest.dependencies {
                let supplied = verified
                    .iter()
                    .find(|v| v.package.manifest.plugin.id == *name)
                    .ok_or_else(|| VerifyError::MissingDependency {
                        dependent: dependent.clone(),
                        package: name.clone(),
                        requirement: requirement.clone(),
                    })?;
                let version = &supplied.package.manifest.plugin.version;
                if !requirement.matches(version) {
                    return Err(VerifyError::DependencyOutOfRange {
                        dependent: dependent.clone(),
                        package: name.clone(),
                        requirement: requirement.clone(),
                        version: version.clone(),
                    });
                }
            }
        }
        Ok(verified)
    }
}

fn parse_state(shown: &str, bytes: &[u8]) -> Result<TrustState, TrustStoreError> {
    let state: TrustState =
        serde_json::from_slice(bytes).map_err(|e| TrustStoreError::Corrupt {
            path: shown.to_owned(),
            reason: e.to_string(),
        })?;
    if state.format != 1 {
        return Err(TrustStoreError::Corrupt {
            path: shown.to_owned(),
            reason: format!("unknown format {}", state.format),
        });
    }
    Ok(state)
}

/// The online keys a parsed state trusts: its chain verified against its
/// pinned key, or the pinned key alone.
fn keys_of(shown: &str, state: &TrustState) -> Result<MarketplaceKeys, TrustStoreError> {
    match &state.key_chain {
        None => Ok(MarketplaceKeys::single(state.marketplace_key.clone())),
        Some(chain) => {
            chain
                .accepted_by(&state.marketplace_key)
                .map_err(|e| TrustStoreError::Corrupt {
                    path: shown.to_owned(),
                    reason: e.to_string(),
                })
        }
    }
}

/// The first other download whose release declares a dependency on
/// `package`, for error messages; the requested package when none does.
fn dependent_of(downloads: &[Download<'_>], releases: &[LoggedRelease], package: &str) -> String {
    downloads
        .iter()
        .zip(releases)
        .find(|(d, r)| d.package != package && r.dependencies.contains_key(package))
        .or_else(|| downloads.iter().zip(releases).next())
        .map(|(d, _)| d.package.to_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SecretKey;
    use crate::rotation::KeyChain;

    #[test]
    fn a_trust_state_round_trips_through_json_and_refuses_another_key() {
        let key = SecretKey::from_seed(&[3; 32]);
        let other = SecretKey::from_seed(&[4; 32]);
        let mut store = TrustStore::in_memory(key.public().clone());
        store.state.timestamp_issued_at = 1234;
        store.state.heads.insert(
            "quota-guard".into(),
            LogHead {
                len: 2,
                hash: "ab".repeat(32),
            },
        );
        let json = store.to_json();
        assert_eq!(
            TrustStore::trusted_key_in(&json).expect("parses"),
            *key.public()
        );
        let back = TrustStore::from_json(&json, key.public().clone()).expect("same key");
        assert_eq!(back.trusted_timestamp(), 1234);
        assert_eq!(
            back.trusted_head("quota-guard"),
            store.trusted_head("quota-guard")
        );
        assert!(matches!(
            TrustStore::from_json(&json, other.public().clone()),
            Err(TrustStoreError::OtherKey { .. })
        ));
        assert!(matches!(
            TrustStore::from_json("{}", key.public().clone()),
            Err(TrustStoreError::Corrupt { .. })
        ));
    }

    #[test]
    fn an_accepted_key_chain_is_kept_in_the_json_and_checked_when_read_back() {
        let root = SecretKey::from_seed(&[1; 32]);
        let first = SecretKey::from_seed(&[2; 32]);
        let second = SecretKey::from_seed(&[3; 32]);
        let mut chain = KeyChain::create(&root, &first);
        chain.rotate(&root, second.public(), 100).expect("rotates");
        let mut store = TrustStore::in_memory(root.public().clone());
        store.accept_chain(&chain).expect("accepted");
        let json = store.to_json();
        let back = TrustStore::from_json(&json, root.public().clone()).expect("reads");
        assert_eq!(back.keys().current(), second.public());
        assert_eq!(back.keys().key_at(99), first.public());
        // A store edited to certify another key is corrupt, not trusted.
        let forged = json.replace(
            &second.public().to_hex(),
            &SecretKey::from_seed(&[9; 32]).public().to_hex(),
        );
        assert!(matches!(
            TrustStore::from_json(&forged, root.public().clone()),
            Err(TrustStoreError::Corrupt { .. })
        ));
    }

    #[test]
    fn a_store_written_before_key_chains_still_reads() {
        let key = SecretKey::from_seed(&[3; 32]);
        let old = format!(
            r#"{{"format":1,"marketplace_key":"{}","timestamp_issued_at":5,"heads":{{}}}}"#,
            key.public().to_hex()
        );
        let store = TrustStore::from_json(&old, key.public().clone()).expect("reads");
        assert_eq!(store.keys().current(), key.public());
        assert_eq!(store.trusted_timestamp(), 5);
    }
}
