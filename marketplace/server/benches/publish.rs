//! Publish-to-installable latency: from the start of the upload of a new
//! version (the real `quota-guard` component, packed with a fresh version)
//! to the moment a client holds it verified — the Marketplace validates,
//! checks the author signature, countersigns and logs it; the client
//! fetches a timestamp, the log and the file, and runs every
//! [`TrustStore`] check. Over real HTTP on loopback against a
//! [`MarketplaceServer`] on SQLite. Packing the package (the author's work
//! before publishing) is outside the measured time.
//!
//! Run: `cargo bench --workspace --locked --bench publish`.
//!
//! Every iteration publishes the first version of a package of its own
//! (`quota-guard-<n>`), so the log the client checks is one release long
//! whatever the number of iterations; only the signed timestamp, which
//! lists every package's head, grows by one small entry each time. (Until
//! 2026-12-05 every iteration added a version to one package, and since the
//! client checks a package's whole log the latency grew with the run: 39 ms
//! at about 80 versions, 138 ms at about 700.)

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cap_marketplace::TrustStore;
use cap_marketplace::client::MarketplaceClient;
use cap_marketplace::keys::SecretKey;
use cap_marketplace::signing::sign_package;
use cap_marketplace::verify::Download;
use cap_marketplace_server::service::rate_limit::RateLimit;
use cap_marketplace_server::{MarketplaceConfig, MarketplaceServer};
use criterion::{Criterion, criterion_group, criterion_main};

fn publish_to_installable(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut config = MarketplaceConfig::new(dir.path());
    config.rate_limit = RateLimit {
        per_minute: 1_000_000,
        burst: 1_000_000,
    };
    let server = runtime.block_on(async {
        MarketplaceServer::bind(config)
            .await
            .expect("the Marketplace binds")
            .spawn()
    });
    let client = MarketplaceClient::new(&server.url()).expect("a client");
    let key = SecretKey::from_seed(&[5; 32]);
    let token = runtime.block_on(async {
        let token = client
            .create_publisher("bench")
            .await
            .expect("a publisher")
            .token;
        client
            .add_key(&token, "bench", &key, None)
            .await
            .expect("a key");
        token
    });
    let component = cap_e2e::component("quota-guard");
    let manifest = std::fs::read_to_string(
        cap_e2e::repo_root().join("example-plugins/quota-guard/plugin.toml"),
    )
    .expect("the manifest");
    let marketplace_key = server.public_key().clone();
    let version = semver::Version::new(1, 0, 0);
    let mut published = 0u64;
    c.bench_function("publish-to-installable/quota-guard", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                published += 1;
                let id = format!("quota-guard-{published}");
                let text = manifest.replacen("id = \"quota-guard\"", &format!("id = \"{id}\""), 1);
                assert!(
                    text.contains(&format!("version = \"{version}\"")),
                    "quota-guard is at version {version}"
                );
                let (package, bytes) = cap_runtime::Package::build(
                    text.into_bytes(),
                    component.clone(),
                    BTreeMap::new(),
                    u64::MAX,
                )
                .expect("the package builds");
                let start = Instant::now();
                runtime.block_on(async {
                    let signature = sign_package(&key, &id, &version, &package.sha256);
                    client
                        .publish(
                            &token,
                            &bytes,
                            (id.as_str(), &version),
                            key.id(),
                            &signature,
                            &[],
                        )
                        .await
                        .expect("published");
                    let timestamp = client.timestamp().await.expect("a timestamp");
                    let log = client.log(&id).await.expect("the log");
                    let file = client.download(&id, &version).await.expect("the file");
                    let mut trust = TrustStore::in_memory(marketplace_key.clone());
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .expect("after 1970")
                        .as_secs() as i64;
                    trust
                        .verify_download(
                            &timestamp,
                            Download {
                                package: &id,
                                version: &version,
                                bytes: &file,
                                log: &log,
                            },
                            now,
                        )
                        .expect("verified");
                });
                total += start.elapsed();
            }
            total
        })
    });
    runtime
        .block_on(server.stop())
        .expect("the Marketplace stops");
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(20));
    targets = publish_to_installable
}
criterion_main!(benches);
