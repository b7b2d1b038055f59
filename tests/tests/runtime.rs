//! Loading, caching, versions and concurrency with real components.

use std::sync::Arc;
use std::time::Duration;

use cap_e2e::{component, load, manifest, runtime, server_create};
use cap_runtime::api::Verdict;
use cap_runtime::component::inspect;
use cap_runtime::{CodeSource, Grants, HostServices, LoadError, PluginSpec, RuntimeConfig};

fn cached(dir: &std::path::Path) -> RuntimeConfig {
    RuntimeConfig {
        cache_dir: Some(dir.to_path_buf()),
        ..RuntimeConfig::default()
    }
}

#[tokio::test]
async fn a_second_runtime_loads_the_compiled_artifact_from_the_cache() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = runtime(cached(dir.path()));
    let plugin = load(&first, "test-game", HostServices::in_memory()).await;
    assert_eq!(plugin.code_source(), CodeSource::Compiled);
    drop(plugin);

    let second = runtime(cached(dir.path()));
    let plugin = load(&second, "test-game", HostServices::in_memory()).await;
    assert_eq!(plugin.code_source(), CodeSource::Cache);
    let kind = plugin
        .classify_line("", "READY")
        .await
        .expect("works from cached code");
    assert_eq!(kind, cap_runtime::api::LineKind::Ready);
}

#[tokio::test]
async fn a_tampered_cache_file_is_refused_and_recompiled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = runtime(cached(dir.path()));
    let plugin = load(&rt, "test-game", HostServices::in_memory()).await;
    let sha = plugin.component_info().sha256.clone();
    drop(plugin);

    let path = dir.path().join(format!("{sha}-{}.cwasm", rt.fingerprint()));
    let mut bytes = std::fs::read(&path).expect("artifact exists");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&path, &bytes).expect("tamper");

    let again = runtime(cached(dir.path()));
    let plugin = load(&again, "test-game", HostServices::in_memory()).await;
    assert_eq!(
        plugin.code_source(),
        CodeSource::Compiled,
        "the tampered artifact must not be used"
    );
    let kind = plugin.classify_line("", "READY").await.expect("works");
    assert_eq!(kind, cap_runtime::api::LineKind::Ready);
    assert_ne!(
        std::fs::read(&path).expect("rewritten"),
        bytes,
        "the cache holds a fresh artifact"
    );
}

/// Rewrites the API-version section's contents in place (same length).
fn with_api_version(mut bytes: Vec<u8>, from: &str, to: &str) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let name = b"ctrl-alt-play:api-version";
    let at = bytes
        .windows(name.len())
        .position(|w| w == name)
        .expect("the SDK wrote the section")
        + name.len();
    assert_eq!(&bytes[at..at + from.len()], from.as_bytes());
    bytes[at..at + to.len()].copy_from_slice(to.as_bytes());
    bytes
}

#[tokio::test]
async fn a_component_for_an_unsupported_api_version_is_refused_before_compiling() {
    let bytes = with_api_version(component("test-game"), "0.1.0", "0.9.0");
    let err = inspect(&bytes, u64::MAX).unwrap_err();
    assert_eq!(
        err.to_string(),
        "component targets plugin API 0.9.0, but this host supports >=0.1.0, <0.3.0"
    );

    let rt = runtime(RuntimeConfig::default());
    let mut m = manifest("test-game");
    m.plugin.api = semver::Version::new(0, 9, 0);
    let err = rt
        .load(PluginSpec {
            manifest: m,
            component: Arc::from(bytes),
            grants: Grants::none(),
            limit_caps: None,
            services: HostServices::in_memory(),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, LoadError::UnsupportedApiVersion { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn a_manifest_declaring_a_kind_the_component_lacks_is_refused() {
    let rt = runtime(RuntimeConfig::default());
    let empty = wat::parse_str(r#"(component (@custom "ctrl-alt-play:api-version" "0.1.0"))"#)
        .expect("wat");
    let err = rt
        .load(PluginSpec {
            manifest: manifest("quota-guard"),
            component: Arc::from(empty),
            grants: Grants::none(),
            limit_caps: None,
            services: HostServices::in_memory(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "plugin.toml declares kind hooks, but the component does not export `ctrl-alt-play:plugin/hooks`"
    );
}

#[tokio::test]
async fn many_tasks_call_one_plugin_concurrently() {
    let rt = runtime(RuntimeConfig::default());
    let plugin = load(&rt, "adversarial", HostServices::in_memory()).await;
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let plugin = plugin.clone();
            tokio::spawn(async move {
                let verdict = plugin
                    .hook_before(&server_create(&format!("ok-{i}"), "u1", 1))
                    .await
                    .expect("call");
                assert_eq!(verdict, Verdict::Allow);
            })
        })
        .collect();
    for t in futures::future::join_all(tasks).await {
        t.expect("task");
    }
    let status = plugin.status();
    assert_eq!(status.calls, 64);
    assert_eq!(status.failures, 0);
    assert!(
        plugin.warm_instances() >= 1,
        "instances are kept warm after use"
    );
}

#[tokio::test]
async fn the_admin_cap_overrides_a_manifest_asking_for_more() {
    let rt = runtime(RuntimeConfig {
        max_limits: cap_runtime::Limits {
            memory_bytes: 16 << 20,
            timeout: Duration::from_millis(100),
        },
        ..RuntimeConfig::default()
    });
    let plugin = load(&rt, "test-game", HostServices::in_memory()).await;
    assert_eq!(plugin.limits().memory_bytes, 16 << 20);
    assert_eq!(plugin.limits().timeout, Duration::from_millis(100));
}
