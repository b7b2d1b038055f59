#![allow(clippy::unwrap_used)]

use serde_json::json;

use super::*;

fn spec() -> ServerSpec {
    ServerSpec {
        game: "test-game".into(),
        startup: StartupPlan {
            program: "cap-standin-game".into(),
            args: vec!["--port".into(), "30000".into()],
            env: vec![KeyValue::new("SERVER_PORT", "30000")],
            working_dir: ".".into(),
            config_edits: vec![ConfigEdit {
                path: "standin.cfg".into(),
                format: ConfigFormat::Properties,
                set: vec![KeyValue::new("server-port", "30000")],
                set_if: vec![],
            }],
            console_context: String::new(),
        },
        stop: StopPlan {
            method: StopMethod::ConsoleCommand {
                command: "stop".into(),
            },
            grace_secs: 5,
        },
        limits: ServerLimits {
            memory_mb: 512,
            cpu_percent: 100,
            max_processes: 64,
            disk_mb: 0,
        },
        restart: RestartPolicy {
            enabled: true,
            ..RestartPolicy::default()
        },
        plugin: Some(GamePackage {
            id: "test-game".into(),
            version: "1.0.0".into(),
            component_sha256: "ab".repeat(32),
        }),
        image: None,
        ports: Vec::new(),
    }
}

fn every_agent_message() -> Vec<AgentMessage> {
    vec![
        AgentMessage::Hello {
            node_id: "n-1".into(),
            agent_version: "0.1.0".into(),
            servers: vec![ServerReport {
                server_id: "s-1".into(),
                state: ServerState::Running,
                pid: Some(42),
                uptime_secs: Some(7),
                exit_code: None,
                limits: Some(LimitsApplied::Rlimit),
            }],
            capabilities: Some(vec!["container".into(), "os-linux".into()]),
            host_address: Some("10.88.0.1".into()),
            files_url: Some("https://node1.example.com:8443".into()),
            sftp_port: Some(2022),
        },
        AgentMessage::FileResponse(crate::files::FileResponse {
            request_id: "frq_1".into(),
            result: crate::files::FileResult::Err(crate::files::FileError::at(
                crate::files::FileErrorCode::OutsideServer,
                "/../etc",
                "/../etc leaves the server directory",
            )),
        }),
        AgentMessage::FileChanged(crate::files::FileChange {
            server_id: "s-1".into(),
            user_id: "u-1".into(),
            via: "upload".into(),
            action: "write".into(),
            path: "/server.properties".into(),
            bytes: Some(42),
        }),
        AgentMessage::BackupDone(crate::backups::BackupReport {
            backup_id: "bkp_1".into(),
            server_id: "s-1".into(),
            op: "create".into(),
            result: crate::backups::BackupResult::Ok {
                sha256: "ab".repeat(32),
                bytes: 4096,
            },
        }),
        AgentMessage::TransferProgress(crate::transfers::TransferProgress {
            transfer_id: "xfr_1".into(),
            server_id: "s-1".into(),
            sent_bytes: 10,
            total_bytes: 20,
        }),
        AgentMessage::TransferDone(crate::transfers::TransferReport {
            transfer_id: "xfr_1".into(),
            server_id: "s-1".into(),
            op: "send".into(),
            result: crate::transfers::TransferResult::Ok {
                sha256: "ab".repeat(32),
                bytes: 4096,
                files_bytes: 9000,
            },
        }),
        AgentMessage::Heartbeat { sent_at_ms: 1 },
        AgentMessage::Health(HealthReport {
            agent_uptime_secs: 3,
            servers_running: 1,
            servers_total: 2,
            load_average: 0.5,
            memory_available_mb: 1024,
            disk_available_mb: 2048,
        }),
        AgentMessage::Pong { nonce: "x".into() },
        AgentMessage::Ack {
            command_id: "c-1".into(),
        },
        AgentMessage::CommandResult {
            command_id: "c-1".into(),
            outcome: CommandOutcome::Failed {
                code: "checksum-mismatch".into(),
                message: "bad".into(),
            },
        },
        AgentMessage::StateChange {
            server_id: "s-1".into(),
            previous: ServerState::Starting,
            state: ServerState::Running,
            reason: None,
        },
        AgentMessage::ConsoleLines {
            server_id: "s-1".into(),
            lines: vec!["READY".into()],
            dropped: 12,
        },
        AgentMessage::ConsoleEvent {
            server_id: "s-1".into(),
            event: ConsoleEvent::PlayerJoined {
                name: "alice".into(),
            },
        },
        AgentMessage::Stats {
            server_id: "s-1".into(),
            cpu_percent: 12.5,
            memory_bytes: 1 << 20,
            uptime_secs: 9,
            players: Some(1),
            network_rx_bytes: Some(1024),
            network_tx_bytes: Some(2048),
            disk_bytes: Some(4096),
        },
    ]
}

fn every_panel_message() -> Vec<PanelMessage> {
    let command = |action| {
        PanelMessage::Command(Command {
            id: "c-1".into(),
            server_id: "s-1".into(),
            action,
        })
    };
    vec![
        command(Action::Install(InstallPlan {
            image: None,
            wipe: true,
            steps: vec![
                InstallStep::Download(Download {
                    url: "http://127.0.0.1/x".into(),
                    sha256: "00".repeat(32),
                    destination: "x".into(),
                    executable: true,
                }),
                InstallStep::RunScript(Script {
                    interpreter: "sh".into(),
                    contents: "true".into(),
                    env: vec![],
                    timeout_secs: 5,
                }),
                InstallStep::WriteFile(WriteFile {
                    path: "a".into(),
                    contents: "b".into(),
                    mode: 0o644,
                }),
            ],
        })),
        command(Action::Start(spec())),
        command(Action::Stop),
        command(Action::Restart(spec())),
        command(Action::Kill),
        command(Action::Delete),
        command(Action::ConsoleInput(ConsoleInput {
            line: "say hi".into(),
        })),
        PanelMessage::Ping { nonce: "n".into() },
        PanelMessage::ReadOnlyServers {
            server_ids: vec!["s-1".into(), "s-2".into()],
        },
        PanelMessage::Backup(crate::backups::BackupRequest {
            backup_id: "bkp_1".into(),
            server_id: "s-1".into(),
            scope: crate::files::FileScope::default(),
            op: crate::backups::BackupOp::Restore {
                target: crate::backups::BackupTarget::Local,
                sha256: "ab".repeat(32),
                truncate: true,
            },
        }),
        PanelMessage::Transfer(crate::transfers::TransferRequest {
            transfer_id: "xfr_1".into(),
            server_id: "s-1".into(),
            op: crate::transfers::TransferOp::Discard,
        }),
    ]
}

#[test]
fn every_message_survives_a_round_trip() {
    for message in every_agent_message() {
        let frame = encode(&message).unwrap();
        assert_eq!(decode::<AgentMessage>(&frame).unwrap(), message, "{frame}");
    }
    for message in every_panel_message() {
        let frame = encode(&message).unwrap();
        assert_eq!(decode::<PanelMessage>(&frame).unwrap(), message, "{frame}");
    }
}

#[test]
fn a_frame_of_another_version_is_refused_before_its_message_is_read() {
    let frame = json!({"protocol": 2, "type": "no-such-message", "data": {}}).to_string();
    let error = decode::<PanelMessage>(&frame).unwrap_err();
    assert!(
        matches!(error, ProtocolError::VersionMismatch { ours: 1, theirs: 2 }),
        "{error}"
    );
    assert_eq!(error.code(), "version-mismatch");
}

#[test]
fn a_hello_from_an_agent_older_than_capabilities_still_reads() {
    let old = r#"{"protocol":1,"type":"hello","data":{"nodeId":"n-1","agentVersion":"0.1.0","servers":[]}}"#;
    let message: AgentMessage = decode(old).expect("an old hello decodes");
    assert!(
        matches!(
            &message,
            AgentMessage::Hello {
                capabilities: None,
                host_address: None,
                sftp_port: None,
                ..
            }
        ),
        "{message:?}"
    );
}

#[test]
fn a_frame_without_a_version_or_with_an_unknown_type_is_a_typed_error() {
    let missing = decode::<PanelMessage>(r#"{"type":"ping","data":{"nonce":"n"}}"#).unwrap_err();
    assert_eq!(missing.code(), "missing-version");
    let text = decode::<PanelMessage>(r#"{"protocol":"1"}"#).unwrap_err();
    assert_eq!(text.code(), "missing-version");
    let unknown =
        decode::<PanelMessage>(r#"{"protocol":1,"type":"launch-missiles","data":{}}"#).unwrap_err();
    assert_eq!(unknown.code(), "malformed-message");
}

#[test]
fn a_command_has_the_documented_wire_shape() {
    let frame = encode(&PanelMessage::Command(Command {
        id: "c-9".into(),
        server_id: "s-1".into(),
        action: Action::ConsoleInput(ConsoleInput {
            line: "say hi".into(),
        }),
    }))
    .unwrap();
    let value: serde_json::Value = serde_json::from_str(&frame).unwrap();
    assert_eq!(
        value,
        json!({"protocol": 1, "type": "command", "data": {
            "id": "c-9", "serverId": "s-1", "action": "console-input",
            "payload": {"line": "say hi"}}})
    );
    let stop = encode(&PanelMessage::Command(Command {
        id: "c-10".into(),
        server_id: "s-1".into(),
        action: Action::Stop,
    }))
    .unwrap();
    let value: serde_json::Value = serde_json::from_str(&stop).unwrap();
    assert_eq!(value["data"]["action"], "stop");
}

#[test]
fn console_lines_and_events_use_camel_case_fields_and_kebab_case_tags() {
    let frame = encode(&AgentMessage::ConsoleEvent {
        server_id: "s-1".into(),
        event: ConsoleEvent::Crash {
            cause: "out of cheese".into(),
        },
    })
    .unwrap();
    let value: serde_json::Value = serde_json::from_str(&frame).unwrap();
    assert_eq!(
        value,
        json!({"protocol": 1, "type": "console-event", "data": {
            "serverId": "s-1", "event": {"kind": "crash", "cause": "out of cheese"}}})
    );
}

#[test]
fn the_registration_request_is_exactly_the_agreed_json() {
    let body = json!({
        "token": "reg-token",
        "agentId": "agent-1",
        "version": "0.1.0",
        "capabilities": ["native", "rlimit"],
        "supportedGames": [{"plugin": "test-game", "version": "1.0.0"}],
        "resourceLimits": {"memoryMb": 4096, "diskMb": 10240, "cpuPercent": 400},
        "healthEndpoint": "http://127.0.0.1:8081/health"
    });
    let request: RegistrationRequest = serde_json::from_value(body.clone()).unwrap();
    assert_eq!(request.supported_games[0].plugin, "test-game");
    assert_eq!(request.resource_limits.cpu_percent, 400);
    assert_eq!(serde_json::to_value(&request).unwrap(), body);

    let answer = json!({"nodeId": "n-1", "nodeToken": "secret", "panelUrl": "http://127.0.0.1:1", "heartbeatSeconds": 15});
    let response: RegistrationResponse = serde_json::from_value(answer.clone()).unwrap();
    assert_eq!(serde_json::to_value(&response).unwrap(), answer);
    assert!(!format!("{response:?}").contains("secret"));
}

#[test]
fn a_registration_request_with_a_misspelled_field_is_refused() {
    let body = json!({
        "token": "t", "agent_id": "a", "version": "0.1.0", "capabilities": [],
        "supportedGames": [], "resourceLimits": {"memoryMb": 1, "diskMb": 1, "cpuPercent": 1},
        "healthEndpoint": "h"
    });
    assert!(serde_json::from_value::<RegistrationRequest>(body).is_err());
}

#[test]
fn an_install_plan_names_wipe_only_when_it_wipes() {
    let keep = serde_json::to_value(InstallPlan::default()).unwrap();
    assert!(keep.get("wipe").is_none(), "older Agents read it: {keep}");
    let old: InstallPlan = serde_json::from_value(json!({"steps": []})).unwrap();
    assert!(!old.wipe, "a plan without the field keeps the files");
    let wipe = InstallPlan {
        wipe: true,
        ..InstallPlan::default()
    };
    assert_eq!(serde_json::to_value(&wipe).unwrap()["wipe"], json!(true));
}
