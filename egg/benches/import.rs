//! Parse + validate time of the 15 community eggs, against a same-run
//! baseline: `serde_json::from_slice::<serde_json::Value>` of the same bytes.

use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};

fn eggs() -> Vec<Vec<u8>> {
    let dir = std::env::var_os("CAP_EGGS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"));
    let mut out = Vec::new();
    for sub in ["pterodactyl", "pelican"] {
        let mut paths: Vec<_> = std::fs::read_dir(dir.join(sub))
            .expect("the eggs directory")
            .map(|e| e.expect("a directory entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        paths.sort();
        for p in paths {
            out.push(std::fs::read(p).expect("an egg"));
        }
    }
    assert_eq!(out.len(), 15, "the 15 community eggs");
    out
}

fn import(c: &mut Criterion) {
    let eggs = eggs();
    let mut group = c.benchmark_group("egg import (15 eggs)");
    group.bench_function("serde_json::Value (baseline)", |b| {
        b.iter(|| {
            for egg in &eggs {
                std::hint::black_box(
                    serde_json::from_slice::<serde_json::Value>(egg).expect("JSON"),
                );
            }
        })
    });
    group.bench_function("cap_egg::Egg::parse", |b| {
        b.iter(|| {
            for egg in &eggs {
                std::hint::black_box(cap_egg::Egg::parse(egg).expect("an egg"));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, import);
criterion_main!(benches);
