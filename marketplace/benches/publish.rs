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
//! Every iteration adds a version to the same package's log, which the
//! client fetches and checks whole, so the latency grows over a run (39 ms
//! at about 80 versions to 138 ms at about 700 on 2026-12-05): the median
//! depends on how many iterations criterion chooses. See `BENCHMARKS.md`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cap_marketplace::client::MarketplaceClient;
use cap_marketplace::keys::SecretKey;
use cap_marketplace::service::rate_limit::RateLimit;
use cap_marketplace::signing::sign_package;
use cap_marketplace::verify::Download;
use cap_marketplace::{MarketplaceConfig, MarketplaceServer, TrustStore};
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
        client.add_key(&token, "bench", &key).await.expect("a key");
        token
    });
    let component = cap_e2e::component("quota-guard");
    let manifest = std::fs::read_to_string(
        cap_e2e::repo_root().join("example-plugins/quota-guard/plugin.toml"),
    )
    .expect("the manifest");
    let marketplace_key = server.public_key().clone();
    let mut patch = 0u64;
    c.bench_function("publish-to-installable/quota-guard", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                patch += 1;
                let version = semver::Version::new(1, 0, patch);
                let text = manifest.replacen(
                    "version = \"1.0.0\"",
                    &format!("version = \"{version}\""),
                    1,
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
                    let signature = sign_package(&key, "quota-guard", &version, &package.sha256);
                    client
                        .publish(&token, &bytes, key.id(), &signature, &[])
                        .await
                        .expect("published");
                    let timestamp = client.timestamp().await.expect("a timestamp");
                    let log = client.log("quota-guard").await.expect("the log");
                    let file = client
                        .download("quota-guard", &version)
                        .await
                        .expect("the file");
                    let mut trust = TrustStore::in_memory(marketplace_key.clone());
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .expect("after 1970")
                        .as_secs() as i64;
                    trust
                        .verify_download(
                            &timestamp,
                            Download {
                                package: "quota-guard",
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
