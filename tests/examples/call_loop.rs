//! Runs N warm (or, with `fresh`, fresh-instance) hook calls and exits, for
//! counting instructions per call with `valgrind --tool=callgrind`, which is
//! repeatable on a busy machine where wall-clock benchmarks are not:
//!
//! ```sh
//! cargo build --release -p cap-e2e --example call_loop
//! valgrind --tool=callgrind target/release/examples/call_loop warm 1000
//! valgrind --tool=callgrind target/release/examples/call_loop warm 2000
//! ```
//!
//! The difference of the two totals divided by 1000 is the cost of a call.

use std::hint::black_box;

use cap_e2e::{load, runtime, server_create};
use cap_runtime::{HostServices, RuntimeConfig};

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "warm".into());
    let n: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(1000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");
    rt.block_on(async {
        let engine = runtime(RuntimeConfig {
            pool_instances: 2,
            ..RuntimeConfig::default()
        });
        let plugin = load(&engine, "adversarial", HostServices::in_memory()).await;
        let event = server_create("bench", "u1", 1024);
        plugin.hook_before(&event).await.expect("first call");
        for _ in 0..n {
            let verdict = if mode == "fresh" {
                plugin.hook_before_fresh(black_box(&event)).await
            } else {
                plugin.hook_before(black_box(&event)).await
            };
            black_box(verdict.expect("call"));
        }
    });
}
