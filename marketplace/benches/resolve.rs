//! Resolution, signature verification and hashing throughput.
//!
//! * `resolve/30-of-10000x20`: a synthetic registry of 10,000 packages with
//!   20 versions each (deps: up to 3 earlier packages, caret requirements
//!   on older or newer major lines, some versions yanked, two API lines),
//!   resolving an install set of 30 plugins. Target: median ≤ 50 ms.
//! * `verify/author-signature`: one Ed25519 strict verification of an
//!   author message.
//! * `sha256/1MiB`: hashing a 1 MiB package.
//!
//! Run: `cargo bench -p cap-marketplace --bench resolve`. Figures, with
//! their date and conditions, are in `BENCHMARKS.md` (2026-12-05, bench
//! profile, busy 2-core machine: resolve 3.69 ms median with 428 packages
//! selected, author-signature verification 45.8 µs, sha256 1.36 GiB/s).

use std::collections::BTreeMap;
use std::hint::black_box;

use cap_marketplace::keys::SecretKey;
use cap_marketplace::resolve::{Index, IndexRelease, PanelApiVersions, resolve};
use cap_marketplace::signing::{author_message, sign_package};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use semver::{Version, VersionReq};

/// A deterministic generator (xorshift) so every run sees the same registry.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

const PACKAGES: usize = 10_000;
const VERSIONS: u64 = 20;

fn version_of(i: u64) -> Version {
    // 20 versions over 4 major lines: 1.0.0 … 4.4.0.
    Version::new(1 + i / 5, i % 5, 0)
}

fn registry() -> Index {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut index = Index::new();
    for p in 0..PACKAGES {
        for i in 0..VERSIONS {
            let mut dependencies = BTreeMap::new();
            if p > 0 {
                for _ in 0..rng.below(4) {
                    let dep = rng.below(p as u64);
                    let major = 1 + rng.below(4);
                    let req = VersionReq::parse(&format!("^{major}.0")).expect("req");
                    dependencies.insert(format!("pkg-{dep}"), req);
                }
            }
            let api = if i < 15 {
                Version::new(0, 1, 0)
            } else {
                Version::new(0, 2, 0)
            };
            index.insert(
                format!("pkg-{p}"),
                version_of(i),
                IndexRelease {
                    sha256: format!("{:064x}", rng.next()),
                    api,
                    dependencies,
                    yanked: rng.below(20) == 0,
                },
            );
        }
    }
    index
}

fn bench(c: &mut Criterion) {
    let index = registry();
    let panel = PanelApiVersions::new([Version::new(0, 1, 0), Version::new(0, 2, 0)]);
    let mut rng = Rng(42);
    let request: BTreeMap<String, VersionReq> = (0..30)
        .map(|_| {
            (
                format!("pkg-{}", rng.below(PACKAGES as u64)),
                VersionReq::STAR,
            )
        })
        .collect();
    // Fail loudly if the synthetic set has no solution: a benchmark of an
    // error path would measure the wrong thing.
    let solution = resolve(&index, &panel, &request, None).expect("the bench request resolves");
    eprintln!("resolved {} packages", solution.packages.len());

    let mut group = c.benchmark_group("resolve");
    group.sample_size(30);
    group.bench_function("30-of-10000x20", |b| {
        b.iter(|| resolve(black_box(&index), &panel, black_box(&request), None).expect("resolves"))
    });
    group.finish();

    let key = SecretKey::from_seed(&[7; 32]);
    let version = Version::new(1, 2, 3);
    let digest = "ab".repeat(32);
    let signature = sign_package(&key, "quota-guard", &version, &digest);
    let message = author_message("quota-guard", &version, &digest);
    c.bench_function("verify/author-signature", |b| {
        b.iter(|| {
            assert!(
                key.public()
                    .verify(black_box(&message), black_box(&signature))
            )
        })
    });

    let data = vec![0x5au8; 1024 * 1024];
    let mut group = c.benchmark_group("sha256");
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.bench_function("1MiB", |b| {
        b.iter(|| cap_runtime::component::sha256_hex(black_box(&data)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
