//! Criterion benchmarks of the egg bridge, the plugin that makes eggs game
//! types, with the real component in the real runtime:
//!
//! - **import**: the 15 community eggs of `egg/tests/fixtures` through
//!   `game-catalogue.preview` (parse, check, map to a game type, across the
//!   sandbox boundary), against `cap_egg::Egg::parse` of the same bytes
//!   natively in the same run;
//! - **console**: one Minetest console line through the bridge's
//!   `game-console.classify-line` (the egg's `done` pattern, with the
//!   startup plan's console context), against the same call into the
//!   0.1.0 `test-game` plugin's classifier and a native substring match:
//!   lines/s is one over the time per line.

use std::hint::black_box;
use std::path::PathBuf;

use cap_e2e::{load, runtime};
use cap_runtime::api::{AllocatedPort, Arch, KeyValue, Os, Platform, ServerContext};
use cap_runtime::{HostServices, RuntimeConfig};
use criterion::{Criterion, criterion_group, criterion_main};

/// The fixture eggs' bytes.
fn eggs() -> Vec<Vec<u8>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../egg/tests/fixtures");
    let mut eggs = Vec::new();
    for dir in ["pterodactyl", "pelican"] {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(root.join(dir))
            .expect("the fixtures")
            .map(|e| e.expect("an entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        paths.sort();
        eggs.extend(paths.iter().map(|p| std::fs::read(p).expect("an egg")));
    }
    assert_eq!(eggs.len(), 15, "the 15 community eggs");
    eggs
}

fn import(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let engine = runtime(RuntimeConfig::default());
    let bridge = rt.block_on(load(&engine, "egg-bridge", HostServices::in_memory()));
    let eggs = eggs();

    c.bench_function("15 eggs: cap_egg::Egg::parse natively (baseline)", |b| {
        b.iter(|| {
            for egg in &eggs {
                black_box(cap_egg::Egg::parse(black_box(egg)).expect("a valid egg"));
            }
        })
    });
    c.bench_function("15 eggs: egg-bridge game-catalogue.preview", |b| {
        b.to_async(&rt).iter(|| async {
            for egg in &eggs {
                black_box(
                    bridge
                        .catalogue_preview(black_box(egg))
                        .await
                        .expect("a call")
                        .expect("a valid egg"),
                );
            }
        })
    });
}

fn console(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let engine = runtime(RuntimeConfig::default());
    let bridge = rt.block_on(load(&engine, "egg-bridge", HostServices::in_memory()));
    let test_game = rt.block_on(load(&engine, "test-game", HostServices::in_memory()));
    let egg = std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../egg/tests/fixtures/pelican/egg-pterodactyl-minetest.json"),
    )
    .expect("the Minetest egg");
    let entry = rt
        .block_on(bridge.catalogue_import(&egg, true))
        .expect("a call")
        .expect("imported");
    // What the Panel sends: every variable, defaults filled in.
    let variables = entry
        .game
        .variables
        .iter()
        .map(|v| KeyValue {
            key: v.key.clone(),
            value: if v.key == "SERVER_ADMIN_NAME" {
                "admin".to_owned()
            } else {
                v.default_value.clone().unwrap_or_default()
            },
        })
        .collect();
    let context = ServerContext {
        server_id: "srv-bench".into(),
        name: "bench".into(),
        memory_mb: 1024,
        disk_mb: 4096,
        cpu_percent: 100,
        variables,
        ports: vec![AllocatedPort {
            name: "game".into(),
            ip: "127.0.0.1".into(),
            port: 30000,
        }],
        platform: Platform {
            os: Os::Linux,
            arch: Arch::Amd64,
        },
        game_type: entry.game.id.clone(),
        image: entry.game.images.first().map(|i| i.reference.clone()),
        startup_command: None,
        node: Default::default(),
    };
    let startup = rt
        .block_on(bridge.startup_plan(&context))
        .expect("a call")
        .expect("a plan");
    let console_context = startup.console_context;
    let line = "2026-12-06 12:00:00: ACTION[Main]: player joined the game from 127.0.0.1";

    c.bench_function("console line: native substring match (baseline)", |b| {
        b.iter(|| black_box(black_box(line).contains(" Server for gameid")))
    });
    c.bench_function("console line: test-game classify-line (0.1.0)", |b| {
        b.to_async(&rt).iter(|| async {
            test_game
                .classify_line("", black_box(line))
                .await
                .expect("a call")
        })
    });
    c.bench_function(
        "console line: egg-bridge classify-line (0.2.0, done patterns)",
        |b| {
            b.to_async(&rt).iter(|| async {
                bridge
                    .classify_line(black_box(&console_context), black_box(line))
                    .await
                    .expect("a call")
            })
        },
    );
}

criterion_group!(benches, import, console);
criterion_main!(benches);
