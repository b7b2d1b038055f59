//! Every adversarial behaviour is contained within its deadline with a typed
//! error, while other plugins keep answering.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cap_e2e::{load, runtime, server_create};
use cap_runtime::api::ServerSummary;
use cap_runtime::api::Verdict;
use cap_runtime::capabilities::panel::PanelApi;
use cap_runtime::capabilities::{BoxFuture, ServiceError};
use cap_runtime::{CallError, HostServices, Limits, RuntimeConfig};

fn config() -> RuntimeConfig {
    RuntimeConfig {
        default_limits: Limits {
            memory_bytes: 32 << 20,
            timeout: Duration::from_millis(300),
        },
        quarantine_after: 100,
        ..RuntimeConfig::default()
    }
}

async fn before(name: &str) -> (Result<Verdict, CallError>, Duration) {
    let rt = runtime(config());
    let plugin = load(&rt, "adversarial", HostServices::in_memory()).await;
    let started = Instant::now();
    let result = plugin.hook_before(&server_create(name, "u1", 1024)).await;
    (result, started.elapsed())
}

#[tokio::test]
async fn an_infinite_loop_times_out_at_its_deadline() {
    let (result, elapsed) = before("spin").await;
    assert!(
        matches!(result, Err(CallError::Timeout { .. })),
        "{result:?}"
    );
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
}

#[tokio::test]
async fn a_plugin_sleeping_in_the_host_times_out_at_its_deadline() {
    let (result, elapsed) = before("sleep").await;
    assert!(
        matches!(result, Err(CallError::Timeout { .. })),
        "{result:?}"
    );
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
}

/// A Panel API that never answers.
struct HangingPanel;

impl PanelApi for HangingPanel {
    fn list_servers<'a>(
        &'a self,
        _: &'a str,
    ) -> BoxFuture<'a, Result<Vec<ServerSummary>, ServiceError>> {
        Box::pin(std::future::pending())
    }
    fn get_server<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
    ) -> BoxFuture<'a, Result<ServerSummary, ServiceError>> {
        Box::pin(std::future::pending())
    }
    fn send_console_command<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
        _: &'a str,
    ) -> BoxFuture<'a, Result<(), ServiceError>> {
        Box::pin(std::future::pending())
    }
}

#[tokio::test]
async fn a_host_service_that_never_answers_ends_the_call_at_its_deadline() {
    let rt = runtime(config());
    let services = HostServices {
        panel: Arc::new(HangingPanel),
        ..HostServices::in_memory()
    };
    let plugin = load(&rt, "quota-guard", services).await;
    let started = Instant::now();
    let result = plugin.hook_before(&server_create("s1", "u1", 1024)).await;
    let elapsed = started.elapsed();
    assert!(
        matches!(result, Err(CallError::Timeout { .. })),
        "{result:?}"
    );
    assert!(elapsed >= Duration::from_millis(300), "took {elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
}

#[tokio::test]
async fn a_memory_bomb_hits_its_memory_limit() {
    // The adversarial manifest asks for 16 MiB, below the 32 MiB default.
    let (result, _) = before("bomb").await;
    assert!(
        matches!(result, Err(CallError::MemoryLimit { limit_bytes, .. }) if limit_bytes == 16 << 20),
        "{result:?}"
    );
}

#[tokio::test]
async fn deep_recursion_on_the_call_stack_is_a_stack_overflow() {
    let (result, _) = before("deep-calls").await;
    assert!(
        matches!(result, Err(CallError::StackOverflow { .. })),
        "{result:?}"
    );
}

#[tokio::test]
async fn recursion_exhausting_the_guest_shadow_stack_is_a_trap() {
    // Rust keeps address-taken locals on a stack in linear memory; running
    // it out underflows the stack pointer into an out-of-bounds access.
    let (result, _) = before("recurse").await;
    match result {
        Err(CallError::Trap { message, .. }) => {
            assert!(message.contains("out of bounds"), "{message}")
        }
        Err(CallError::StackOverflow { .. }) => {}
        other => panic!("expected a trap, got {other:?}"),
    }
}

#[tokio::test]
async fn a_string_that_is_not_utf8_is_refused_while_lifting() {
    let (result, _) = before("bad-utf8").await;
    match result {
        Err(CallError::BadOutput { reason, .. }) => assert!(reason.contains("utf-8"), "{reason}"),
        other => panic!("expected bad output, got {other:?}"),
    }
}

#[tokio::test]
async fn a_panic_is_a_trap_carrying_the_panic_message() {
    let (result, _) = before("panic").await;
    match result {
        Err(CallError::Trap { stderr, .. }) => {
            assert!(
                stderr.contains("adversarial panic requested"),
                "stderr was {stderr:?}"
            )
        }
        other => panic!("expected a trap, got {other:?}"),
    }
}

#[tokio::test]
async fn a_huge_result_is_refused_as_bad_output() {
    let (result, _) = before("huge").await;
    assert!(
        matches!(result, Err(CallError::BadOutput { .. })),
        "{result:?}"
    );
}

#[tokio::test]
async fn an_ungranted_kv_call_is_denied_and_the_plugin_is_told_why() {
    let (result, _) = before("kv").await;
    match result {
        Ok(Verdict::Deny(reason)) => assert!(reason.contains("Denied"), "{reason}"),
        other => panic!("expected the plugin to report the denial, got {other:?}"),
    }
}

#[tokio::test]
async fn http_to_a_host_not_on_the_allow_list_is_denied() {
    let (result, _) = before("http").await;
    match result {
        Ok(Verdict::Deny(reason)) => assert!(reason.contains("Denied"), "{reason}"),
        other => panic!("expected the plugin to report the denial, got {other:?}"),
    }
}

#[tokio::test]
async fn invalid_game_definitions_and_ui_trees_are_refused() {
    let rt = runtime(config());
    let plugin = load(&rt, "adversarial", HostServices::in_memory()).await;
    let described = plugin.describe_game().await;
    assert!(
        matches!(described, Err(CallError::BadOutput { .. })),
        "{described:?}"
    );
    for contribution in ["cyclic", "out-of-bounds"] {
        let ctx = cap_runtime::api::RenderContext {
            contribution: contribution.into(),
            server_id: None,
            user_id: "u1".into(),
            permissions: vec![],
            server_permissions: vec![],
        };
        let rendered = plugin.render_ui(&ctx).await;
        assert!(
            matches!(rendered, Err(CallError::BadOutput { .. })),
            "{contribution}: {rendered:?}"
        );
    }
}

#[tokio::test]
async fn other_plugins_keep_answering_while_one_misbehaves() {
    // A long deadline for the spinning call, so that "while it runs" is a
    // matter of order, not of how fast a loaded machine is.
    let rt = runtime(RuntimeConfig {
        default_limits: Limits {
            memory_bytes: 32 << 20,
            timeout: Duration::from_secs(10),
        },
        ..config()
    });
    let bad = load(&rt, "adversarial", HostServices::in_memory()).await;
    let good = load(&rt, "test-game", HostServices::in_memory()).await;
    let spinning = tokio::spawn({
        let bad = bad.clone();
        async move { bad.hook_before(&server_create("spin", "u1", 1)).await }
    });
    // While the spinning call runs, the healthy plugin answers, call after
    // call: nothing waits for the spinning one to end.
    for _ in 0..20 {
        let kind = good.classify_line("", "READY").await.expect("classify");
        assert_eq!(kind, cap_runtime::api::LineKind::Ready);
        assert!(
            !spinning.is_finished(),
            "the healthy plugin's answer came only after the spinning call ended"
        );
    }
    let spun = spinning.await.expect("join");
    assert!(matches!(spun, Err(CallError::Timeout { .. })), "{spun:?}");
    // And the misbehaving plugin still answers its next, harmless call.
    let ok = bad.hook_before(&server_create("fine", "u1", 1)).await;
    assert_eq!(ok, Ok(Verdict::Allow));
}

#[tokio::test]
async fn repeat_offenders_are_quarantined_with_a_readable_reason() {
    let rt = runtime(RuntimeConfig {
        quarantine_after: 3,
        ..config()
    });
    let plugin = load(&rt, "adversarial", HostServices::in_memory()).await;
    for _ in 0..3 {
        let r = plugin.hook_before(&server_create("panic", "u1", 1)).await;
        assert!(matches!(r, Err(CallError::Trap { .. })), "{r:?}");
    }
    let status = plugin.status();
    let quarantine = status.quarantine.expect("quarantined after three failures");
    assert!(
        quarantine.reason.contains("3 consecutive failed calls"),
        "{}",
        quarantine.reason
    );
    assert!(
        quarantine.reason.contains("adversarial panic requested"),
        "{}",
        quarantine.reason
    );
    let refused = plugin.hook_before(&server_create("fine", "u1", 1)).await;
    assert!(
        matches!(refused, Err(CallError::Quarantined { .. })),
        "{refused:?}"
    );

    plugin.release_quarantine();
    assert_eq!(
        plugin.hook_before(&server_create("fine", "u1", 1)).await,
        Ok(Verdict::Allow)
    );
}

#[tokio::test]
async fn a_success_resets_the_failure_streak() {
    let rt = runtime(RuntimeConfig {
        quarantine_after: 2,
        ..config()
    });
    let plugin = load(&rt, "adversarial", HostServices::in_memory()).await;
    for _ in 0..5 {
        assert!(
            plugin
                .hook_before(&server_create("panic", "u1", 1))
                .await
                .is_err()
        );
        assert_eq!(
            plugin.hook_before(&server_create("fine", "u1", 1)).await,
            Ok(Verdict::Allow)
        );
    }
    assert!(plugin.status().quarantine.is_none());
    assert_eq!(plugin.status().failures, 5);
}
