//! Shared test setup: the stand-in binary, the test-game plugin, specs and
//! an event recorder.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cap_agent::{Classifiers, NodeRuntime, NodeRuntimeConfig, PluginClassifier};
use cap_protocol::{
    AgentMessage, ConsoleEvent, InstallPlan, RestartPolicy, ServerLimits, ServerSpec, ServerState,
};
use cap_runtime::HostServices;
use cap_runtime::api::{AllocatedPort, Arch, KeyValue, Os, Platform, ServerContext};
use tokio::sync::mpsc;

/// The `cap-standin-game` binary, built once.
pub(crate) fn standin() -> &'static Path {
    cap_e2e::standin()
}

/// The test-game plugin, loaded into a plugin runtime (returned too, to
/// keep it alive) with a shared compilation cache.
pub(crate) async fn test_game() -> (cap_runtime::Runtime, cap_runtime::Plugin) {
    let cache = std::env::temp_dir().join("cap-agent-tests-plugin-cache");
    let runtime = cap_e2e::runtime(cap_runtime::RuntimeConfig {
        cache_dir: Some(cache),
        ..cap_runtime::RuntimeConfig::default()
    });
    let plugin = cap_e2e::load(&runtime, "test-game", HostServices::in_memory()).await;
    (runtime, plugin)
}

/// A free TCP port on loopback.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The server context the Panel would send for a test-game server.
pub(crate) fn context(server_id: &str, ready_delay_ms: u32) -> ServerContext {
    ServerContext {
        server_id: server_id.into(),
        name: format!("Server {server_id}"),
        memory_mb: 256,
        disk_mb: 100,
        cpu_percent: 100,
        variables: vec![
            KeyValue {
                key: "STANDIN_PATH".into(),
                value: standin().display().to_string(),
            },
            KeyValue {
                key: "READY_DELAY_MS".into(),
                value: ready_delay_ms.to_string(),
            },
            KeyValue {
                key: "MAX_PLAYERS".into(),
                value: "4".into(),
            },
        ],
        ports: vec![AllocatedPort {
            name: "game".into(),
            ip: "127.0.0.1".into(),
            port: free_port(),
        }],
        platform: Platform {
            os: Os::Linux,
            arch: Arch::Amd64,
        },
        game_type: String::new(),
        image: None,
        startup_command: None,
        node: Default::default(),
    }
}

/// The install plan and spec the plugin makes for `context`.
pub(crate) async fn plans(
    plugin: &cap_runtime::Plugin,
    context: &ServerContext,
    restart: RestartPolicy,
) -> (InstallPlan, ServerSpec) {
    let install = plugin
        .install_plan(context)
        .await
        .expect("call")
        .expect("install plan");
    let startup = plugin
        .startup_plan(context)
        .await
        .expect("call")
        .expect("startup plan");
    let stop = plugin.stop_plan(context).await.expect("call");
    (
        install.into(),
        ServerSpec {
            game: "test-game".into(),
            startup: startup.into(),
            stop: stop.into(),
            limits: ServerLimits {
                memory_mb: context.memory_mb,
                cpu_percent: context.cpu_percent,
                max_processes: 0,
                disk_mb: 0,
            },
            restart,
            plugin: None,
            image: None,
            ports: Vec::new(),
        },
    )
}

/// Every message the runtime sent, in order.
#[derive(Clone, Default)]
pub(crate) struct Recorder {
    messages: Arc<Mutex<Vec<AgentMessage>>>,
}

impl Recorder {
    /// Drains `events` into the recorder until the sender is gone.
    pub(crate) fn spawn(mut events: mpsc::Receiver<AgentMessage>) -> Self {
        let recorder = Self::default();
        let messages = recorder.messages.clone();
        tokio::spawn(async move {
            while let Some(message) = events.recv().await {
                messages.lock().unwrap().push(message);
            }
        });
        recorder
    }

    /// A copy of everything so far.
    pub(crate) fn all(&self) -> Vec<AgentMessage> {
        self.messages.lock().unwrap().clone()
    }

    /// Waits until `find` returns something for the messages so far.
    pub(crate) async fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut find: impl FnMut(&[AgentMessage]) -> Option<T>,
    ) -> T {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(found) = find(&self.messages.lock().unwrap()) {
                return found;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}; got {:#?}",
                    summarize(&self.all())
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for the `nth` (1-based) change of `server` into `state`;
    /// returns its reason.
    pub(crate) async fn wait_state(
        &self,
        server: &str,
        state: ServerState,
        nth: usize,
    ) -> Option<String> {
        self.wait_for(
            &format!("{server} {state:?} #{nth}"),
            Duration::from_secs(20),
            |all| {
                all.iter()
                    .filter_map(|m| match m {
                        AgentMessage::StateChange {
                            server_id,
                            state: s,
                            reason,
                            ..
                        } if server_id == server && *s == state => Some(reason.clone()),
                        _ => None,
                    })
                    .nth(nth - 1)
            },
        )
        .await
    }

    /// The state changes of `server`, as `(previous, state)`.
    pub(crate) fn transitions(&self, server: &str) -> Vec<(ServerState, ServerState)> {
        self.all()
            .iter()
            .filter_map(|m| match m {
                AgentMessage::StateChange {
                    server_id,
                    previous,
                    state,
                    ..
                } if server_id == server => Some((*previous, *state)),
                _ => None,
            })
            .collect()
    }

    /// Waits for a console event of `server` matching `event`.
    pub(crate) async fn wait_event(&self, server: &str, event: ConsoleEvent) {
        self.wait_for(
            &format!("{server} {event:?}"),
            Duration::from_secs(10),
            |all| {
                all.iter()
                    .any(|m| {
                        matches!(m, AgentMessage::ConsoleEvent { server_id, event: e }
                    if server_id == server && *e == event)
                    })
                    .then_some(())
            },
        )
        .await;
    }

    /// Every console line forwarded for `server`, and the dropped total.
    pub(crate) fn console(&self, server: &str) -> (Vec<String>, u64) {
        console_of(&self.all(), server)
    }
}

/// Every console line forwarded for `server` in `messages`, and the
/// dropped total.
pub(crate) fn console_of(messages: &[AgentMessage], server: &str) -> (Vec<String>, u64) {
    let mut lines = Vec::new();
    let mut dropped = 0;
    for message in messages {
        if let AgentMessage::ConsoleLines {
            server_id,
            lines: batch,
            dropped: d,
        } = message
            && server_id == server
        {
            lines.extend(batch.iter().cloned());
            dropped += d;
        }
    }
    (lines, dropped)
}

fn summarize(messages: &[AgentMessage]) -> Vec<String> {
    messages
        .iter()
        .rev()
        .take(40)
        .rev()
        .map(|m| {
            let text = format!("{m:?}");
            text.chars().take(200).collect()
        })
        .collect()
}

/// A runtime on `data_dir` with the test-game classifier and fast test
/// timings; its events are recorded.
pub(crate) async fn open_runtime(
    data_dir: &Path,
    plugin: &cap_runtime::Plugin,
    tweak: impl FnOnce(&mut NodeRuntimeConfig),
) -> (NodeRuntime, Recorder) {
    let mut config = NodeRuntimeConfig::new(data_dir);
    config.term_grace = Duration::from_secs(2);
    config.stats_interval = Duration::from_millis(200);
    config.disk_interval = Duration::from_millis(200);
    config.cgroups = None;
    tweak(&mut config);
    let mut classifiers = Classifiers::new();
    classifiers.insert(
        "test-game".into(),
        Arc::new(PluginClassifier::new(plugin.clone())),
    );
    let (tx, rx) = mpsc::channel(1024);
    let runtime = NodeRuntime::open(config, classifiers, tx)
        .await
        .expect("runtime opens");
    (runtime, Recorder::spawn(rx))
}

/// Resident memory of this process in KiB.
pub(crate) fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap()
}
