//! Memory held by 1,000 idle warm instances of a real plugin, measured as
//! the growth of the process's resident set (Linux `/proc/self/statm`).

use cap_e2e::load;
use cap_runtime::{HostServices, Runtime, RuntimeConfig};

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux /proc");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("statm");
    pages * 4096
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to configure.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let engine = Runtime::new(RuntimeConfig {
        pool_instances: 1100,
        warm_instances_per_plugin: 1000,
        ..RuntimeConfig::default()
    })
    .expect("runtime");
    let plugin = rt.block_on(load(&engine, "adversarial", HostServices::in_memory()));
    // One call first so code pages and lazily initialised state are resident.
    rt.block_on(plugin.prewarm(1)).expect("prewarm");
    let before = rss_bytes();
    let added = rt.block_on(plugin.prewarm(999)).expect("prewarm") + 1;
    let after = rss_bytes();
    let per = (after - before) as f64 / added as f64;
    println!(
        "idle instances: {added}; RSS before {:.1} MiB, after {:.1} MiB; {:.1} KiB per idle instance",
        before as f64 / 1048576.0,
        after as f64 / 1048576.0,
        per / 1024.0
    );
}
