//! Property tests of the wire format: every message the Panel or an Agent
//! can build survives `encode` and `decode` unchanged, and no frame a peer
//! can send — arbitrary text, arbitrary JSON, a valid frame with one field
//! broken — makes `decode` panic: it answers with a message or a typed
//! [`ProtocolError`].
//!
//! Case counts are bounded so the file runs in a few seconds in the normal
//! `cargo test`; the cargo-fuzz target `protocol_message` (in `fuzz/`)
//! explores the same parsers without a bound.

#![allow(clippy::unwrap_used)]

use cap_protocol::{
    Action, AgentMessage, Command, CommandOutcome, ConditionalSet, ConfigEdit, ConfigFormat,
    ConsoleEvent, ConsoleInput, Download, GamePackage, HealthReport, InstallPlan, InstallStep,
    KeyValue, LimitsApplied, PROTOCOL_VERSION, PanelMessage, PortAllocation, ProtocolError,
    RegistrationRequest, RegistrationResponse, ResourceLimits, RestartPolicy, Script, ServerLimits,
    ServerReport, ServerSpec, ServerState, Signal, StartupPlan, StopMethod, StopPlan,
    SupportedGame, WriteFile, decode, encode,
};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use serde_json::Value;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        // Failing cases are saved beside this file and replayed first.
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    }
}

/// Any characters, control characters and astral planes included.
fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(any::<char>(), 0..12).prop_map(String::from_iter)
}

/// Finite floats: JSON has no NaN or infinity (see
/// `a_non_finite_float_is_refused_by_decode_not_by_a_panic`).
fn finite() -> impl Strategy<Value = f64> {
    prop::num::f64::POSITIVE
        | prop::num::f64::NEGATIVE
        | prop::num::f64::NORMAL
        | prop::num::f64::SUBNORMAL
        | prop::num::f64::ZERO
}

fn key_values() -> impl Strategy<Value = Vec<KeyValue>> {
    prop::collection::vec(
        (text(), text()).prop_map(|(k, v)| KeyValue::new(k, v)),
        0..4,
    )
}

fn state() -> impl Strategy<Value = ServerState> {
    prop_oneof![
        Just(ServerState::Offline),
        Just(ServerState::Installing),
        Just(ServerState::Starting),
        Just(ServerState::Running),
        Just(ServerState::Stopping),
        Just(ServerState::Crashed),
        Just(ServerState::InstallFailed),
    ]
}

fn format() -> impl Strategy<Value = ConfigFormat> {
    prop_oneof![
        Just(ConfigFormat::Properties),
        Just(ConfigFormat::Yaml),
        Just(ConfigFormat::Json),
        Just(ConfigFormat::Ini),
        Just(ConfigFormat::Xml),
        Just(ConfigFormat::Plain),
    ]
}

fn config_edit() -> impl Strategy<Value = ConfigEdit> {
    (text(), format(), key_values(), key_values()).prop_map(|(path, format, set, when)| {
        ConfigEdit {
            path,
            format,
            set,
            set_if: when
                .into_iter()
                .map(|kv| ConditionalSet {
                    if_value: format!("regex:{}", kv.value),
                    key: kv.key,
                    value: kv.value,
                })
                .collect(),
        }
    })
}

fn install_plan() -> impl Strategy<Value = InstallPlan> {
    let step = prop_oneof![
        (text(), text(), text(), any::<bool>()).prop_map(
            |(url, sha256, destination, executable)| {
                InstallStep::Download(Download {
                    url,
                    sha256,
                    destination,
                    executable,
                })
            }
        ),
        (text(), text(), key_values(), any::<u32>()).prop_map(
            |(interpreter, contents, env, timeout_secs)| InstallStep::RunScript(Script {
                interpreter,
                contents,
                env,
                timeout_secs,
            })
        ),
        (text(), text(), any::<u32>()).prop_map(|(path, contents, mode)| {
            InstallStep::WriteFile(WriteFile {
                path,
                contents,
                mode,
            })
        }),
        config_edit().prop_map(InstallStep::EditConfig),
    ];
    (prop::collection::vec(step, 0..4), any::<bool>()).prop_map(|(steps, wipe)| InstallPlan {
        steps,
        image: None,
        wipe,
    })
}

fn server_spec() -> impl Strategy<Value = ServerSpec> {
    let signal = prop_oneof![
        Just(Signal::Interrupt),
        Just(Signal::Terminate),
        Just(Signal::Quit),
        Just(Signal::Hangup),
        Just(Signal::Kill),
    ];
    let method = prop_oneof![
        text().prop_map(|command| StopMethod::ConsoleCommand { command }),
        signal.prop_map(|signal| StopMethod::SendSignal { signal }),
    ];
    let startup = (
        text(),
        prop::collection::vec(text(), 0..3),
        key_values(),
        text(),
        prop::collection::vec(config_edit(), 0..2),
    )
        .prop_map(
            |(program, args, env, working_dir, config_edits)| StartupPlan {
                program,
                args,
                env,
                working_dir,
                config_edits,
                console_context: String::new(),
            },
        );
    let limits = (any::<u64>(), any::<u32>(), any::<u32>(), any::<u64>()).prop_map(
        |(memory_mb, cpu_percent, max_processes, disk_mb)| ServerLimits {
            memory_mb,
            cpu_percent,
            max_processes,
            disk_mb,
        },
    );
    let image = prop::option::of(text());
    let ports = prop::collection::vec(
        (text(), any::<u16>()).prop_map(|(ip, port)| PortAllocation { ip, port }),
        0..3,
    );
    let restart = (
        any::<bool>(),
        any::<u32>(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
    )
        .prop_map(
            |(enabled, max_attempts, initial_backoff_ms, max_backoff_ms, stable_secs)| {
                RestartPolicy {
                    enabled,
                    max_attempts,
                    initial_backoff_ms,
                    max_backoff_ms,
                    stable_secs,
                }
            },
        );
    let plugin = prop::option::of((text(), text(), text()).prop_map(
        |(id, version, component_sha256)| GamePackage {
            id,
            version,
            component_sha256,
        },
    ));
    (
        text(),
        startup,
        (method, any::<u32>()).prop_map(|(method, grace_secs)| StopPlan { method, grace_secs }),
        limits,
        restart,
        plugin,
        image,
        ports,
    )
        .prop_map(
            |(game, startup, stop, limits, restart, plugin, image, ports)| ServerSpec {
                game,
                startup,
                stop,
                limits,
                restart,
                plugin,
                image,
                ports,
            },
        )
}

fn panel_message() -> impl Strategy<Value = PanelMessage> {
    let action = prop_oneof![
        install_plan().prop_map(Action::Install),
        server_spec().prop_map(Action::Start),
        Just(Action::Stop),
        server_spec().prop_map(Action::Restart),
        Just(Action::Kill),
        Just(Action::Delete),
        text().prop_map(|line| Action::ConsoleInput(ConsoleInput { line })),
    ];
    prop_oneof![
        (text(), text(), action).prop_map(|(id, server_id, action)| {
            PanelMessage::Command(Command {
                id,
                server_id,
                action,
            })
        }),
        text().prop_map(|nonce| PanelMessage::Ping { nonce }),
        prop::collection::vec(text(), 0..4)
            .prop_map(|server_ids| PanelMessage::ReadOnlyServers { server_ids }),
    ]
}

fn agent_message() -> impl Strategy<Value = AgentMessage> {
    let limits = prop_oneof![
        text().prop_map(|path| LimitsApplied::CgroupV2 { path }),
        Just(LimitsApplied::Rlimit),
        text().prop_map(|reason| LimitsApplied::None { reason }),
        (text(), text()).prop_map(|(id, image)| LimitsApplied::Container { id, image }),
    ];
    let report = (
        text(),
        state(),
        any::<Option<u32>>(),
        any::<Option<u64>>(),
        any::<Option<i32>>(),
        prop::option::of(limits),
    )
        .prop_map(
            |(server_id, state, pid, uptime_secs, exit_code, limits)| ServerReport {
                server_id,
                state,
                pid,
                uptime_secs,
                exit_code,
                limits,
            },
        );
    let health = (
        any::<u64>(),
        any::<u32>(),
        any::<u32>(),
        finite(),
        any::<u64>(),
        any::<u64>(),
    )
        .prop_map(
            |(
                agent_uptime_secs,
                servers_running,
                servers_total,
                load_average,
                memory_available_mb,
                disk_available_mb,
            )| HealthReport {
                agent_uptime_secs,
                servers_running,
                servers_total,
                load_average,
                memory_available_mb,
                disk_available_mb,
            },
        );
    let event = prop_oneof![
        Just(ConsoleEvent::Ready),
        text().prop_map(|name| ConsoleEvent::PlayerJoined { name }),
        text().prop_map(|name| ConsoleEvent::PlayerLeft { name }),
        text().prop_map(|text| ConsoleEvent::Warning { text }),
        text().prop_map(|cause| ConsoleEvent::Crash { cause }),
    ];
    let outcome = prop_oneof![
        Just(CommandOutcome::Ok),
        (text(), text()).prop_map(|(code, message)| CommandOutcome::Failed { code, message }),
    ];
    prop_oneof![
        (
            text(),
            text(),
            prop::collection::vec(report, 0..3),
            prop::option::of(prop::collection::vec(text(), 0..3)),
            prop::option::of(text()),
            prop::option::of(text()),
            prop::option::of(any::<u16>()),
        )
            .prop_map(
                |(
                    node_id,
                    agent_version,
                    servers,
                    capabilities,
                    host_address,
                    files_url,
                    sftp_port,
                )| {
                    AgentMessage::Hello {
                        node_id,
                        agent_version,
                        servers,
                        capabilities,
                        host_address,
                        files_url,
                        sftp_port,
                    }
                }
            ),
        any::<u64>().prop_map(|sent_at_ms| AgentMessage::Heartbeat { sent_at_ms }),
        health.prop_map(AgentMessage::Health),
        text().prop_map(|nonce| AgentMessage::Pong { nonce }),
        text().prop_map(|command_id| AgentMessage::Ack { command_id }),
        (text(), outcome).prop_map(|(command_id, outcome)| AgentMessage::CommandResult {
            command_id,
            outcome,
        }),
        (text(), state(), state(), prop::option::of(text())).prop_map(
            |(server_id, previous, state, reason)| AgentMessage::StateChange {
                server_id,
                previous,
                state,
                reason,
            }
        ),
        (text(), prop::collection::vec(text(), 0..4), any::<u64>()).prop_map(
            |(server_id, lines, dropped)| AgentMessage::ConsoleLines {
                server_id,
                lines,
                dropped,
            }
        ),
        (text(), event)
            .prop_map(|(server_id, event)| AgentMessage::ConsoleEvent { server_id, event }),
        (
            text(),
            finite(),
            any::<u64>(),
            any::<u64>(),
            any::<Option<u32>>(),
            any::<Option<u64>>(),
            any::<Option<u64>>(),
            any::<Option<u64>>()
        )
            .prop_map(
                |(
                    server_id,
                    cpu_percent,
                    memory_bytes,
                    uptime_secs,
                    players,
                    network_rx_bytes,
                    network_tx_bytes,
                    disk_bytes,
                )| {
                    AgentMessage::Stats {
                        server_id,
                        cpu_percent,
                        memory_bytes,
                        uptime_secs,
                        players,
                        network_rx_bytes,
                        network_tx_bytes,
                        disk_bytes,
                    }
                }
            ),
    ]
}

/// Arbitrary JSON documents, nested a few levels.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        finite().prop_map(Value::from),
        text().prop_map(Value::String),
        // The names the messages use, so objects sometimes get far.
        prop::sample::select(vec![
            "protocol",
            "type",
            "data",
            "hello",
            "command",
            "action",
            "payload",
            "install",
            "start",
            "kind",
            "steps",
            "edit-config",
        ])
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    text(),
                    prop::sample::select(vec![
                        "protocol", "type", "data", "id", "serverId", "action", "payload",
                        "nodeId", "steps", "kind", "sentAtMs", "nonce",
                    ])
                    .prop_map(String::from),
                ],
                inner,
                0..6
            )
            .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn every_panel_message_survives_encode_and_decode(message in panel_message()) {
        let frame = encode(&message).unwrap();
        prop_assert_eq!(decode::<PanelMessage>(&frame).unwrap(), message);
    }

    #[test]
    fn every_agent_message_survives_encode_and_decode(message in agent_message()) {
        let frame = encode(&message).unwrap();
        let decoded = decode::<AgentMessage>(&frame).unwrap();
        // Floats compare by their encoding: JSON keeps the shortest
        // representation that reads back as the same number.
        prop_assert_eq!(encode(&decoded).unwrap(), frame);
    }

    #[test]
    fn registration_bodies_survive_a_json_round_trip(
        token in text(),
        agent_id in text(),
        version in text(),
        capabilities in prop::collection::vec(text(), 0..3),
        games in prop::collection::vec((text(), text()), 0..3),
        limits in (any::<u64>(), any::<u64>(), any::<u32>()),
        health_endpoint in text(),
        answer in (text(), "[0-9a-f]{16,32}", text(), any::<u32>()),
    ) {
        let request = RegistrationRequest {
            token,
            agent_id,
            version,
            capabilities,
            supported_games: games
                .into_iter()
                .map(|(plugin, version)| SupportedGame { plugin, version })
                .collect(),
            resource_limits: ResourceLimits {
                memory_mb: limits.0,
                disk_mb: limits.1,
                cpu_percent: limits.2,
            },
            health_endpoint,
        };
        let body = serde_json::to_string(&request).unwrap();
        prop_assert_eq!(serde_json::from_str::<RegistrationRequest>(&body).unwrap(), request);

        let response = RegistrationResponse {
            node_id: answer.0,
            node_token: answer.1,
            panel_url: answer.2,
            heartbeat_seconds: answer.3,
        };
        let body = serde_json::to_string(&response).unwrap();
        prop_assert!(serde_json::from_str::<RegistrationResponse>(&body).unwrap() == response);
        // Node ids and URLs are at most 12 characters: they cannot contain
        // the 16-character token by accident.
        prop_assert!(
            !format!("{response:?}").contains(&response.node_token),
            "the node token shows in Debug output"
        );
    }

    #[test]
    fn arbitrary_text_is_decoded_or_refused_never_a_panic(frame in ".{0,200}") {
        check_decode(&frame);
    }

    #[test]
    fn arbitrary_json_is_decoded_or_refused_never_a_panic(document in json()) {
        check_decode(&document.to_string());
        // The same document under the right version reaches the message
        // parser itself.
        if let Value::Object(mut map) = document {
            map.insert("protocol".into(), PROTOCOL_VERSION.into());
            check_decode(&Value::Object(map).to_string());
        }
    }

    #[test]
    fn a_frame_with_another_protocol_version_is_refused_before_its_message(
        message in panel_message(),
        theirs in any::<u32>().prop_filter("another version", |v| *v != PROTOCOL_VERSION),
    ) {
        let mut frame: Value = serde_json::from_str(&encode(&message).unwrap()).unwrap();
        frame["protocol"] = theirs.into();
        frame["data"] = Value::from("not even the right shape");
        match decode::<PanelMessage>(&frame.to_string()) {
            Err(ProtocolError::VersionMismatch { ours, theirs: got }) => {
                prop_assert_eq!(ours, PROTOCOL_VERSION);
                prop_assert_eq!(got, theirs);
            }
            other => prop_assert!(false, "expected a version mismatch, got {:?}", other),
        }
    }

    #[test]
    fn a_valid_frame_with_one_value_replaced_decodes_or_is_malformed(
        message in panel_message(),
        replacement in json(),
        pick in any::<prop::sample::Index>(),
    ) {
        let mut frame: Value = serde_json::from_str(&encode(&message).unwrap()).unwrap();
        let mut paths = Vec::new();
        collect_paths(&frame, &mut Vec::new(), &mut paths);
        let path = pick.get(&paths).clone();
        // The root and `protocol` are the version check's, tested above.
        if !path.is_empty() && path[0] != "protocol" {
            *pointer_mut(&mut frame, &path) = replacement;
            match decode::<PanelMessage>(&frame.to_string()) {
                Ok(_) | Err(ProtocolError::Malformed(_)) => {}
                Err(other) => prop_assert!(false, "unexpected error {:?}", other),
            }
        }
    }
}

/// `decode` answers with a message or a typed error for both directions,
/// and an error's code is one of the documented ones.
fn check_decode(frame: &str) {
    for code in [
        decode::<PanelMessage>(frame).err().map(|e| e.code()),
        decode::<AgentMessage>(frame).err().map(|e| e.code()),
    ]
    .into_iter()
    .flatten()
    {
        assert!(
            ["missing-version", "version-mismatch", "malformed-message"].contains(&code),
            "{code}"
        );
    }
}

fn collect_paths(value: &Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    out.push(prefix.clone());
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                prefix.push(key.clone());
                collect_paths(child, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                prefix.push(i.to_string());
                collect_paths(child, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

fn pointer_mut<'a>(value: &'a mut Value, path: &[String]) -> &'a mut Value {
    path.iter().fold(value, |node, part| match node {
        Value::Object(map) => map.get_mut(part).unwrap(),
        Value::Array(items) => &mut items[part.parse::<usize>().unwrap()],
        _ => unreachable!("paths only run through containers"),
    })
}

#[test]
fn a_non_finite_float_is_refused_by_decode_not_by_a_panic() {
    // JSON has no NaN: serde_json writes it as `null`, which the peer then
    // refuses as a malformed message. Neither side panics.
    let frame = encode(&AgentMessage::Stats {
        server_id: "s".into(),
        cpu_percent: f64::NAN,
        memory_bytes: 0,
        uptime_secs: 0,
        players: None,
        network_rx_bytes: None,
        network_tx_bytes: None,
        disk_bytes: None,
    })
    .unwrap();
    assert!(frame.contains(r#""cpuPercent":null"#), "{frame}");
    assert!(matches!(
        decode::<AgentMessage>(&frame),
        Err(ProtocolError::Malformed(_))
    ));
}

#[test]
fn a_load_average_reads_back_as_the_exact_number_sent() {
    // Found by `every_agent_message_survives_encode_and_decode`: without
    // serde_json's `float_roundtrip` this came back one unit in the last
    // place away.
    let sent = AgentMessage::Health(HealthReport {
        agent_uptime_secs: 0,
        servers_running: 0,
        servers_total: 0,
        load_average: -2.6872590404614163e-257,
        memory_available_mb: 0,
        disk_available_mb: 0,
    });
    let frame = encode(&sent).unwrap();
    assert_eq!(decode::<AgentMessage>(&frame).unwrap(), sent);
}
