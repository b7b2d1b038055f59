//! Client-side verification: a genuine download passes, and each kind of
//! tampering is refused with the error naming the failed check.

use cap_marketplace::keys::SecretKey;
use cap_marketplace::log::LogEvent;
use cap_marketplace::trust::{InstallError, TrustStore};
use cap_marketplace::verify::{Download, VerifyError};

use cap_test_support::packages::{pack, pack_version};

use crate::support::Fixture;

const T0: i64 = 1_800_000_000;

fn author() -> SecretKey {
    SecretKey::from_seed(&[1; 32])
}

fn download<'a>(
    fixture: &'a Fixture,
    bytes: &'a [u8],
    package: &'a cap_runtime::Package,
) -> Download<'a> {
    Download {
        package: &package.manifest.plugin.id,
        version: &package.manifest.plugin.version,
        bytes,
        log: fixture
            .logs
            .get(&package.manifest.plugin.id)
            .map(Vec::as_slice)
            .unwrap_or(&[]),
    }
}

fn refused(result: Result<impl std::fmt::Debug, InstallError>) -> VerifyError {
    match result {
        Err(InstallError::Verify(e)) => e,
        other => panic!("expected a verification error, got {other:?}"),
    }
}

#[test]
fn a_genuine_download_verifies_and_advances_the_trusted_state() {
    let (package, bytes) = pack("quota-guard", |t| t);
    let mut fixture = Fixture::new();
    fixture.grant("quota-guard", &author(), T0);
    fixture.release(&package, &author(), T0 + 1);
    let ts = fixture.timestamp(T0 + 2, 3600);
    let mut store = TrustStore::in_memory(fixture.notary.public_key().clone());
    let verified = store
        .verify_download(&ts, download(&fixture, &bytes, &package), T0 + 10)
        .expect("a genuine package verifies");
    assert_eq!(verified.package.sha256, package.sha256);
    assert_eq!(verified.release.key_id, *author().id());
    assert_eq!(
        store.trusted_head("quota-guard"),
        fixture.head("quota-guard").as_ref()
    );
}

#[test]
fn a_flipped_byte_in_the_package_is_refused() {
    let (package, bytes) = pack("quota-guard", |t| t);
    let mut fixture = Fixture::new();
    fixture.grant("quota-guard", &author(), T0);
    fixture.release(&package, &author(), T0 + 1);
    let ts = fixture.timestamp(T0 + 2, 3600);
    let mut store = TrustStore::in_memory(fixture.notary.public_key().clone());
    let mut tampered = bytes.clone();
    let middle = tampered.len() / 2;
    tampered[middle] ^= 0x01;
    let err = refused(store.verify_download(&ts, download(&fixture, &tampered, &package), T0 + 10));
    assert!(matches!(err, VerifyError::DigestMismatch { .. }), "{err}");
    // Nothing was recorded by the failed verification.
    assert_eq!(store.trusted_head("quota-guard"), None);
}

#[test]
fn a_release_signed_with_a_key_the_log_never_granted_is_refused() {
    let (package, bytes) = pack("quota-guard", |t| t);
    let stranger = SecretKey::from_seed(&[66; 32]);
    let mut fixture = Fixture::new();
    fixture.grant("quota-guard", &author(), T0);
    fixture.release(&package, &stranger, T0 + 1);
    let ts = fixture.timestamp(T0 + 2, 3600);
    let mut store = TrustStore::in_memory(fixture.notary.public_key().clone());
    let err = refused(store.verify_download(&ts, download(&fixture, &bytes, &package), T0 + 10));
    assert!(matches!(err, VerifyError::UnknownKey { .. }), "{err}");
}

#[test]
fn a_signature_by_the_wrong_key_under_a_granted_key_id_is_refused() {
    let (package, bytes) = pack("quota-guard", |t| t);
    let stranger = SecretKey::from_seed(&[66; 32]);
    let mut fixture = Fixture::new();
    fixture.grant("quota-guard", &author(), T0);
    fixture.release_claiming(&package, &stranger, &author(), T0 + 1);
    let ts = fixture.timestamp(T0 + 2, 3600);
    let mut store = TrustStore::in_memory(fixture.notary.public_key().clone());
    let err = refused(store.verify_download(&ts, download(&fixture, &bytes, &package), T0 + 10));
    assert!(
        matches!(err, VerifyError::BadAuthorSignature { .. }),
        "{err}"
    );
}

#[test]
fn logs_signed_by_another_marketplace_are_refused() {
    let (package, bytes) = pack("quota-guard", |t| t);
    let mut fixture = Fixture::new();
    fixture.grant("quota-guard", &author(), T0);
    fixture.release(&package, &author(), T0 + 1);
    let ts = fixture.timestamp(T0 + 2, 3600);
    let impostor = SecretKey::from_seed(&[201; 32]);
    let mut store = TrustStore::in_memory(impostor.public().clone());
    let err = refused(store.verify_download(&ts, download(&fixture, &bytes, &package), T0 + 10));
    assert_eq!(err, VerifyError::BadTimestampSignature);
}

#[test]
fn an_edited_log_entry_is_refused() {
    let (package, bytes) = pack("quota-guard", |t| t);
    let mut fixture = Fixture::new();
    fixture.grant("quota-guard", &author(), T0);
    fixture.release(&package, &author(), T0 + 1);
    let ts = fixture.timestamp(T0 + 2, 3600);
    let logs = fixture.logs.get_mut("quota-guard").expect("log");
    logs[1].time += 1;
    let store = TrustStore::in_memory(fixture.notary.public_key().clone());
    let err = store
        .check_install(&ts, &[download(&fixture, &bytes, &package)], T0 + 10)
        .expect_err("an edited entry must not verify");
    assert!(
        matches!(err, VerifyError::BadLogSignature { seq: 1, .. }),
        "{err}"
    );
}

#[test]
fn a_release_by_a_key_revoked_before_it_was_signed_is_refused() {
    let (package, bytes) = pack("quota-guard", |t| t);
    let (other, other_bytes) = pack_version("quota-guard", "0.9.0");
    let mut fixture = Fixture::new();
    fixture.grant("quota-guard", &author(), T0);
    fixture.release(&other, &author(), T0 + 5);
    fixture.release(&package, &author(), T0 + 100);
    // Announced later, effective before the 1.0.0 release.
    fixture.append(
        "quota-guard",
        T0 + 200,
        LogEvent::KeyRevoke {
            key_id: author().id().clone(),
            reason: "laptop stolen".into(),
            effective_at: T0 + 50,
        },
    );
    let ts = fixture.timestamp(T0 + 300, 3600);
    let mut store = TrustStore::in_memory(fixture.notary.public_key().clone());
    let err = refused(store.verify_download(&ts, download(&fixture, &bytes, &package), T0 + 310));
    assert!(
        matches!(err, VerifyError::KeyNotValidAtSigning { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("laptop stolen"), "{err}");
    // The release signed before the compromise still installs.
    store
        .verify_download(&ts, download(&fixture, &other_bytes, &other), T0 + 310)
        .expect("0.9.0 predates the revocation");
}

#[test]
fn a_rolled_back_log_is_refused() {
    let (v1, v1_bytes) = pack("quota-guard", |t| t);
    let (v2, _) = pack_version("quota-guard", "1.1.0");
    let mut fixture = Fixture::new();
    fixture.grant("quota-guard", &author(), T0);
    fixture.release(&v1, &author(), T0 + 1);
    let old_log = fixture.logs["quota-guard"].clone();
    fixture.release(&v2, &author(), T0 + 2);
    let mut store = TrustStore::in_memory(fixture.notary.public_key().clone());
    let ts = fixture.timestamp(T0 + 3, 3600);
    let full = fixture.logs["quota-guard"].clone();
    store
        .verify_download(
            &ts,
            cap_marketplace::Download {
                package: "quota-guard",
                version: &v1.manifest.plugin.version,
                bytes: &v1_bytes,
                log: &full,
            },
            T0 + 4,
        )
        .expect("the full log verifies");
    // A mirror now serves the shorter log (hiding 1.1.0), with a timestamp
    // the Marketplace key signed over it.
    fixture.logs.insert("quota-guard".into(), old_log.clone());
    let ts = fixture.timestamp(T0 + 5, 3600);
    let err = refused(store.verify_download(
        &ts,
        cap_marketplace::Download {
            package: "quota-guard",
            version: &v1.manifest.plugin.version,
            bytes: &v1_bytes,
            log: &old_log,
        },
        T0 + 6,
    ));
    assert!(
        matches!(
            err,
            VerifyError::RolledBackLog {
                len: 2,
                trusted_len: 3,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn a_forked_log_that_rewrites_trusted_history_is_refused() {
    let (v1, v1_bytes) = pack("quota-guard", |t| t);
    let mut fixture = Fixture::new();
    fixture.grant("quota-guard", &author(), T0);
    fixture.release(&v1, &author(), T0 + 1);
    let mut store = TrustStore::in_memory(fixture.notary.public_key().clone());
    let ts = fixture.timestamp(T0 + 2, 3600);
    store
        .verify_download(&ts, download(&fixture, &v1_bytes, &v1), T0 + 3)
        .expect("verifies");
    // History rewritten from the start: same length and more, other hashes.
    let mut forked = Fixture {
        notary: fixture.notary.clone(),
        logs: Default::default(),
    };
    forked.grant("quota-guard", &author(), T0 + 7);
    forked.release(&v1, &author(), T0 + 8);
    let ts = forked.timestamp(T0 + 9, 3600);
    let err = refused(store.verify_download(&ts, download(&forked, &v1_bytes, &v1), T0 + 10));
    assert!(matches!(err, VerifyError::ForkedLog { .. }), "{err}");
}

#[test]
fn a_stale_or_replayed_timestamp_is_refused() {
    let (package, bytes) = pack("quota-guard", |t| t);
    let mut fixture = Fixture::new();
    fixture.grant("quota-guard", &author(), T0);
    fixture.release(&package, &author(), T0 + 1);
    let mut store = TrustStore::in_memory(fixture.notary.public_key().clone());
    let old = fixture.timestamp(T0 + 2, 60);
    // Frozen index: the timestamp expired.
    let err = refused(store.verify_download(&old, download(&fixture, &bytes, &package), T0 + 62));
    assert_eq!(
        err,
        VerifyError::StaleTimestamp {
            expires_at: T0 + 62,
            now: T0 + 62
        }
    );
    let newer = fixture.timestamp(T0 + 100, 60);
    store
        .verify_download(&newer, download(&fixture, &bytes, &package), T0 + 101)
        .expect("a fresh timestamp verifies");
    // Replay of an older, still unexpired timestamp.
    let older = fixture.timestamp(T0 + 90, 600);
    let err =
        refused(store.verify_download(&older, download(&fixture, &bytes, &package), T0 + 102));
    assert!(
        matches!(err, VerifyError::RolledBackTimestamp { .. }),
        "{err}"
    );
}

#[test]
fn a_log_that_is_not_the_one_the_timestamp_states_is_refused() {
    let (v1, v1_bytes) = pack("quota-guard", |t| t);
    let (v2, _) = pack_version("quota-guard", "1.1.0");
    let mut fixture = Fixture::new();
    fixture.grant("quota-guard", &author(), T0);
    fixture.release(&v1, &author(), T0 + 1);
    let short = fixture.logs["quota-guard"].clone();
    fixture.release(&v2, &author(), T0 + 2);
    let ts = fixture.timestamp(T0 + 3, 3600);
    let mut store = TrustStore::in_memory(fixture.notary.public_key().clone());
    let err = refused(store.verify_download(
        &ts,
        cap_marketplace::Download {
            package: "quota-guard",
            version: &v1.manifest.plugin.version,
            bytes: &v1_bytes,
            log: &short,
        },
        T0 + 4,
    ));
    assert!(matches!(err, VerifyError::LogHeadMismatch { .. }), "{err}");
}

#[test]
fn a_substituted_dependency_is_refused() {
    let (dep, dep_bytes) = pack("quota-guard", |t| t);
    let (app, app_bytes) = pack("discord-webhook", |t| {
        format!("{t}\n[dependencies]\nquota-guard = \"1\"\n")
    });
    // Another, validly packed quota-guard 1.0.0 with different bytes.
    let (_, evil_bytes) = pack("quota-guard", |t| {
        t.replace("Denies server creation", "Allows")
    });
    let mut fixture = Fixture::new();
    for p in ["quota-guard", "discord-webhook"] {
        fixture.grant(p, &author(), T0);
    }
    fixture.release(&dep, &author(), T0 + 1);
    fixture.release(&app, &author(), T0 + 1);
    let ts = fixture.timestamp(T0 + 2, 3600);
    let store = TrustStore::in_memory(fixture.notary.public_key().clone());
    let genuine = [
        download(&fixture, &app_bytes, &app),
        download(&fixture, &dep_bytes, &dep),
    ];
    store
        .check_install(&ts, &genuine, T0 + 3)
        .expect("the genuine set verifies");
    let substituted = [
        download(&fixture, &app_bytes, &app),
        download(&fixture, &evil_bytes, &dep),
    ];
    let err = store
        .check_install(&ts, &substituted, T0 + 3)
        .expect_err("a substituted dependency must be refused");
    assert!(
        matches!(&err, VerifyError::DependencyDigestMismatch { dependent, package, .. }
            if dependent == "discord-webhook" && package == "quota-guard"),
        "{err}"
    );
    let missing = [download(&fixture, &app_bytes, &app)];
    let err = store
        .check_install(&ts, &missing, T0 + 3)
        .expect_err("a missing dependency must be refused");
    assert!(
        matches!(err, VerifyError::MissingDependency { .. }),
        "{err}"
    );
}

#[test]
fn the_trust_store_file_remembers_the_trusted_state_across_opens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("trust.json");
    let (v1, v1_bytes) = pack("quota-guard", |t| t);
    let (v2, _) = pack_version("quota-guard", "1.1.0");
    let mut fixture = Fixture::new();
    fixture.grant("quota-guard", &author(), T0);
    fixture.release(&v1, &author(), T0 + 1);
    let short = fixture.logs["quota-guard"].clone();
    let short_ts = fixture.timestamp(T0 + 2, 3600);
    fixture.release(&v2, &author(), T0 + 3);
    let ts = fixture.timestamp(T0 + 4, 3600);
    {
        let mut store =
            TrustStore::open(&path, fixture.notary.public_key().clone()).expect("creates");
        store
            .verify_download(&ts, download(&fixture, &v1_bytes, &v1), T0 + 5)
            .expect("verifies");
    }
    let mut store = TrustStore::open(&path, fixture.notary.public_key().clone()).expect("opens");
    assert_eq!(store.trusted_head("quota-guard").map(|h| h.len), Some(3));
    let err = refused(store.verify_download(
        &short_ts,
        cap_marketplace::Download {
            package: "quota-guard",
            version: &v1.manifest.plugin.version,
            bytes: &v1_bytes,
            log: &short,
        },
        T0 + 6,
    ));
    assert!(
        matches!(err, VerifyError::RolledBackTimestamp { .. }),
        "{err}"
    );
    let other = SecretKey::from_seed(&[3; 32]);
    assert!(TrustStore::open(&path, other.public().clone()).is_err());
}
