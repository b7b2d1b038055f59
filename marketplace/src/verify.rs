//! Verification errors and the inputs and outputs of download
//! verification (the checks themselves run in [`crate::trust::TrustStore`]).

use crate::keys::KeyId;
use crate::log::{LogEntry, LoggedRelease};

/// A verification check failed. Each variant names the check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The log's structure is wrong: sequence, chain or content.
    #[error("log of {package} is broken at entry {seq}: {reason}")]
    BrokenLog {
        /// The package.
        package: String,
        /// The entry.
        seq: u64,
        /// What is wrong.
        reason: String,
    },
    /// A log entry is not signed by the Marketplace key.
    #[error("log of {package}: entry {seq} is not signed by the trusted Marketplace key")]
    BadLogSignature {
        /// The package.
        package: String,
        /// The entry.
        seq: u64,
    },
    /// A release is signed by a key its log never granted.
    #[error("{package} {version} is signed by key {key}, which is not one of the publisher's keys")]
    UnknownKey {
        /// The package.
        package: String,
        /// The version.
        version: semver::Version,
        /// The key.
        key: KeyId,
    },
    /// A release's key was revoked (or not yet granted) when it signed.
    #[error("{package} {version}: the signing key was not valid when it signed: {reason}")]
    KeyNotValidAtSigning {
        /// The package.
        package: String,
        /// The version.
        version: semver::Version,
        /// Why.
        reason: String,
    },
    /// The author's signature does not verify.
    #[error("{package} {version}: the author's signature does not verify")]
    BadAuthorSignature {
        /// The package.
        package: String,
        /// The version.
        version: semver::Version,
    },
    /// The Marketplace's countersignature does not verify.
    #[error("{package} {version}: the Marketplace countersignature does not verify")]
    BadCountersignature {
        /// The package.
        package: String,
        /// The version.
        version: semver::Version,
    },
    /// The downloaded bytes are not the bytes the log released.
    #[error("{package} {version}: downloaded file has sha256 {actual}, the log says {expected}")]
    DigestMismatch {
        /// The package.
        package: String,
        /// The version.
        version: semver::Version,
        /// sha256 in the log.
        expected: String,
        /// sha256 of the bytes.
        actual: String,
    },
    /// A dependency's bytes are not the bytes its log released.
    #[error(
        "dependency {package} {version} of {dependent}: file has sha256 {actual}, its log says {expected}"
    )]
    DependencyDigestMismatch {
        /// The package depending on it.
        dependent: String,
        /// The dependency.
        package: String,
        /// Its version (boxed to keep the error small).
        version: Box<semver::Version>,
        /// sha256 in the log.
        expected: String,
        /// sha256 of the bytes.
        actual: String,
    },
    /// A dependency the manifest declares was not supplied.
    #[error("{dependent} needs {package} {requirement}, which is not part of the download")]
    MissingDependency {
        /// The package depending on it.
        dependent: String,
        /// The dependency.
        package: String,
        /// The requirement.
        requirement: semver::VersionReq,
    },
    /// A supplied dependency's version does not satisfy the requirement.
    #[error("{dependent} needs {package} {requirement}, but {version} was supplied")]
    DependencyOutOfRange {
        /// The package depending on it.
        dependent: String,
        /// The dependency.
        package: String,
        /// The requirement.
        requirement: semver::VersionReq,
        /// The supplied version.
        version: semver::Version,
    },
    /// The version is not in the package's log.
    #[error("{package} {version} is not released in its log")]
    NotReleased {
        /// The package.
        package: String,
        /// The version.
        version: semver::Version,
    },
    /// The file is not a valid package.
    #[error("{package} {version}: not a valid package: {reason}")]
    BadPackage {
        /// The package.
        package: String,
        /// The version.
        version: semver::Version,
        /// Why.
        reason: String,
    },
    /// The package's manifest disagrees with the log (id, version, API or
    /// dependencies).
    #[error("{package} {version}: the manifest disagrees with the log: {reason}")]
    ManifestMismatch {
        /// The package.
        package: String,
        /// The version.
        version: semver::Version,
        /// What differs.
        reason: String,
    },
    /// The index timestamp is not signed by the Marketplace key.
    #[error("the index timestamp is not signed by the trusted Marketplace key")]
    BadTimestampSignature,
    /// The index timestamp has expired: the index may be frozen.
    #[error(
        "the index timestamp expired at {expires_at} (now {now}); the index may be frozen by a mirror or an attacker"
    )]
    StaleTimestamp {
        /// When it expired.
        expires_at: i64,
        /// The time of verification.
        now: i64,
    },
    /// The index timestamp is older than one already trusted.
    #[error("the index timestamp was issued at {issued_at}, before the trusted one of {trusted}")]
    RolledBackTimestamp {
        /// Its issue time.
        issued_at: i64,
        /// The newest trusted issue time.
        trusted: i64,
    },
    /// The timestamp does not cover the package's log.
    #[error("the index timestamp does not cover the log of {package}")]
    NotInTimestamp {
        /// The package.
        package: String,
    },
    /// The log's head is not the one the timestamp states.
    #[error(
        "log of {package} ends at entry {len} ({hash}), but the timestamp states {expected_len} ({expected_hash})"
    )]
    LogHeadMismatch {
        /// The package.
        package: String,
        /// The log's length.
        len: u64,
        /// The log's head hash.
        hash: String,
        /// The timestamp's length.
        expected_len: u64,
        /// The timestamp's hash.
        expected_hash: String,
    },
    /// The log is shorter than one already trusted.
    #[error("log of {package} has {len} entries, fewer than the {trusted_len} already trusted")]
    RolledBackLog {
        /// The package.
        package: String,
        /// Its length.
        len: u64,
        /// The trusted length.
        trusted_len: u64,
    },
    /// The log rewrites history already trusted.
    #[error("log of {package} differs from the trusted log at entry {seq}: history was rewritten")]
    ForkedLog {
        /// The package.
        package: String,
        /// The first differing entry.
        seq: u64,
    },
    /// The Marketplace's key chain is not signed by the trusted root, or
    /// rolls back the chain trusted before.
    #[error(transparent)]
    KeyChain(#[from] crate::rotation::ChainError),
}

impl VerifyError {
    /// The check that failed, as a stable kebab-case name (for problem
    /// documents and logs): `sha256`, `author-signature`,
    /// `countersignature`, `key-not-revoked`, `log-rollback`,
    /// `timestamp-fresh`, `dependency-sha256`, …
    pub fn check(&self) -> &'static str {
        match self {
            VerifyError::BrokenLog { .. } => "log-chain",
            VerifyError::BadLogSignature { .. } => "log-signature",
            VerifyError::UnknownKey { .. } => "author-key",
            VerifyError::KeyNotValidAtSigning { .. } => "key-not-revoked",
            VerifyError::BadAuthorSignature { .. } => "author-signature",
            VerifyError::BadCountersignature { .. } => "countersignature",
            VerifyError::DigestMismatch { .. } => "sha256",
            VerifyError::DependencyDigestMismatch { .. } => "dependency-sha256",
            VerifyError::MissingDependency { .. } => "dependency-missing",
            VerifyError::DependencyOutOfRange { .. } => "dependency-range",
            VerifyError::NotReleased { .. } => "released",
            VerifyError::BadPackage { .. } => "package",
            VerifyError::ManifestMismatch { .. } => "manifest",
            VerifyError::BadTimestampSignature => "timestamp-signature",
            VerifyError::StaleTimestamp { .. } => "timestamp-fresh",
            VerifyError::RolledBackTimestamp { .. } => "timestamp-rollback",
            VerifyError::NotInTimestamp { .. } => "timestamp-coverage",
            VerifyError::LogHeadMismatch { .. } => "log-head",
            VerifyError::RolledBackLog { .. } => "log-rollback",
            VerifyError::ForkedLog { .. } => "log-fork",
            VerifyError::KeyChain(_) => "key-chain",
        }
    }
}

/// One downloaded package with the log it is verified against.
#[derive(Debug, Clone, Copy)]
pub struct Download<'a> {
    /// Package id.
    pub package: &'a str,
    /// Version.
    pub version: &'a semver::Version,
    /// The `.cap` file.
    pub bytes: &'a [u8],
    /// The package's complete log.
    pub log: &'a [LogEntry],
}

/// A package that passed every check.
#[derive(Debug, Clone)]
pub struct VerifiedPackage {
    /// The parsed, validated package.
    pub package: cap_runtime::Package,
    /// What its log says about this release.
    pub release: LoggedRelease,
}
