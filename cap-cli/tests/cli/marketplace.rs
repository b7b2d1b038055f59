//! `cap marketplace rotate-key` end to end: on the data directory of a
//! Marketplace that ran once, with the root key where the first start
//! wrote it and with one given elsewhere.

use cap_marketplace::keys::SecretKey;
use cap_marketplace::rotation::KeyChain;
use cap_marketplace_server::{MarketplaceConfig, MarketplaceServer};

use crate::support::{cap_binary, private_tempdir};

/// Starts and stops a Marketplace on `dir` once; returns its online key.
async fn ran_once(dir: &std::path::Path) -> cap_marketplace::PublicKey {
    let server = MarketplaceServer::bind(MarketplaceConfig::new(dir))
        .await
        .expect("binds")
        .spawn();
    let key = server.public_key().clone();
    server.stop().await.expect("stops");
    key
}

fn chain(dir: &std::path::Path) -> KeyChain {
    serde_json::from_slice(&std::fs::read(dir.join("marketplace-keys.json")).expect("chain"))
        .expect("chain JSON")
}

fn rotate(args: &[&std::ffi::OsStr]) -> std::process::Output {
    std::process::Command::new(cap_binary())
        .args(["marketplace", "rotate-key"])
        .args(args)
        .output()
        .expect("cap runs")
}

#[tokio::test]
async fn rotate_key_certifies_a_new_online_key_with_the_root_from_the_data_directory() {
    let dir = private_tempdir();
    let old = ran_once(dir.path()).await;
    let output = rotate(&["--data".as_ref(), dir.path().as_os_str()]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let chain = chain(dir.path());
    assert_eq!(chain.certificates.len(), 2);
    let new = &chain.certificates[1].certificate.online_key;
    assert_ne!(*new, old);
    assert!(stdout.contains(new.id().as_str()), "{stdout}");
    // The Marketplace starts again, signing with the certified key.
    assert_eq!(ran_once(dir.path()).await, *new);
}

#[tokio::test]
async fn rotate_key_with_a_root_moved_offline_or_another_key_says_which() {
    let dir = private_tempdir();
    ran_once(dir.path()).await;
    let root_path = dir.path().join("marketplace-root.key");
    let offline = private_tempdir();
    let moved = offline.path().join("root.key");
    std::fs::rename(&root_path, &moved).expect("moves the root offline");

    // Without --root-key the default place is empty now.
    let output = rotate(&["--data".as_ref(), dir.path().as_os_str()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("reading the root key"), "{stderr}");

    // Another key is not the chain's root; nothing changes.
    let stranger = offline.path().join("stranger.key");
    SecretKey::generate()
        .expect("key")
        .write_new(&stranger)
        .expect("writes");
    let before = chain(dir.path());
    let output = rotate(&[
        "--data".as_ref(),
        dir.path().as_os_str(),
        "--root-key".as_ref(),
        stranger.as_os_str(),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("is not this chain's root"), "{stderr}");
    assert_eq!(chain(dir.path()), before);

    // The real root, from where it is kept offline.
    let output = rotate(&[
        "--data".as_ref(),
        dir.path().as_os_str(),
        "--root-key".as_ref(),
        moved.as_os_str(),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(chain(dir.path()).certificates.len(), 2);
}
