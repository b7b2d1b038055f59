//! Criterion benchmarks of the plugin runtime with a real component:
//! warm hook call, fresh instance + call, artifact cache load vs compile,
//! and the native baseline for the same hook logic.

use std::hint::black_box;
use std::sync::Arc;

use cap_e2e::{component, load, runtime, server_create};
use cap_runtime::api::{Event, Payload, Verdict};
use cap_runtime::component::sha256_hex;
use cap_runtime::{HostServices, RuntimeConfig};
use criterion::{Criterion, criterion_group, criterion_main};

/// The hook the adversarial plugin runs for a harmless server name, in
/// native Rust: the baseline for the warm call.
fn native_before(event: &Event) -> Verdict {
    match &event.payload {
        Payload::Server(s) => match s.name.as_str() {
            "spin" | "bomb" | "recurse" | "panic" | "huge" | "kv" | "http" => {
                Verdict::Deny(s.name.clone())
            }
            _ => Verdict::Allow,
        },
        _ => Verdict::Allow,
    }
}

fn calls(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let engine = runtime(RuntimeConfig::default());
    let plugin = rt.block_on(load(&engine, "adversarial", HostServices::in_memory()));
    let event = server_create("bench", "u1", 1024);

    c.bench_function("native hook (baseline)", |b| {
        b.iter(|| native_before(black_box(&event)))
    });
    c.bench_function("warm hook call (pooled instance)", |b| {
        b.to_async(&rt)
            .iter(|| async { plugin.hook_before(black_box(&event)).await.expect("call") })
    });
    c.bench_function("fresh instance + hook call", |b| {
        b.to_async(&rt).iter(|| async {
            plugin
                .hook_before_fresh(black_box(&event))
                .await
                .expect("call")
        })
    });
}

fn loading(c: &mut Criterion) {
    let bytes = component("minecraft-paper");
    let sha = sha256_hex(&bytes);
    let dir = tempfile::tempdir().expect("tempdir");
    let uncached = runtime(RuntimeConfig::default());
    let cached = runtime(RuntimeConfig {
        cache_dir: Some(dir.path().to_path_buf()),
        ..RuntimeConfig::default()
    });
    cached
        .compile_blocking(&bytes, &sha)
        .expect("prime the cache");
    let bytes: Arc<[u8]> = Arc::from(bytes);

    let mut group = c.benchmark_group("load minecraft-paper");
    group.sample_size(10);
    group.bench_function("compile", |b| {
        b.iter(|| uncached.compile_blocking(&bytes, &sha).expect("compile"))
    });
    group.bench_function("from artifact cache", |b| {
        b.iter(|| cached.compile_blocking(&bytes, &sha).expect("cache hit"))
    });
    group.finish();
}

criterion_group!(benches, calls, loading);
criterion_main!(benches);
