//! Snapshots of how every public [`crate::api`] type looks to the outside:
//! its serde JSON (what the Panel stores, sends to Agents and checks output
//! sizes with) and its `Debug` / `Display` text (what error messages show).
//!
//! The snapshots were taken while the types were still the bindgen output of
//! `ctrl-alt-play:plugin@0.1.0`; the hand-written, version-neutral types must
//! reproduce them byte for byte. Every value also goes through a JSON round
//! trip. Each enum and variant appears with every case.

use std::fmt::{Debug, Display, Write as _};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::*;

/// The text of one snapshot, built value by value.
#[derive(Default)]
struct Samples {
    json: String,
    debug: String,
}

impl Samples {
    /// Records `value`'s JSON and `Debug`, after checking its round trip.
    fn add<T>(&mut self, value: &T) -> &mut Self
    where
        T: Serialize + DeserializeOwned + PartialEq + Debug,
    {
        self.add_json(value);
        writeln!(self.debug, "{value:?}").expect("write");
        self
    }

    /// Records an error type's JSON, `Debug` and `Display`.
    fn add_error<T>(&mut self, value: &T) -> &mut Self
    where
        T: Serialize + DeserializeOwned + PartialEq + Debug + Display + std::error::Error,
    {
        self.add(value);
        writeln!(self.debug, "display: {value}").expect("write");
        self
    }

    /// Records `value`'s JSON only: for the host-side types whose Rust name
    /// in this module differs from their WIT name (`HttpRequest` is WIT's
    /// `request`), so their `Debug` text names a different type.
    fn add_json<T>(&mut self, value: &T) -> &mut Self
    where
        T: Serialize + DeserializeOwned + PartialEq + Debug,
    {
        let json = serde_json::to_string_pretty(value).expect("serializes");
        let back: T = serde_json::from_str(&json).expect("deserializes");
        assert_eq!(&back, value, "the JSON round trip changed the value");
        self.json.push_str(&json);
        self.json.push('\n');
        self
    }

    fn check(&self, name: &str) {
        insta::assert_snapshot!(format!("{name}_json"), self.json);
        if !self.debug.is_empty() {
            insta::assert_snapshot!(format!("{name}_debug"), self.debug);
        }
    }
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: value.into(),
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_string()).collect()
}

#[test]
fn shared_types_keep_their_representation() {
    let mut s = Samples::default();
    s.add(&kv("EULA", "true"));
    s.add_error(&PluginError {
        code: "upstream-down".into(),
        message: "the \"API\" is down".into(),
    });
    for e in [
        CapabilityError::Denied("kv".into()),
        CapabilityError::NotFound("a".into()),
        CapabilityError::Invalid("b".into()),
        CapabilityError::LimitExceeded("c".into()),
        CapabilityError::Unavailable("d".into()),
    ] {
        s.add_error(&e);
    }
    s.add(&ServerSummary {
        id: "srv-1".into(),
        name: "Survival".into(),
        owner_id: "u-1".into(),
        node_id: "n-1".into(),
        game_type: "minecraft-paper".into(),
        state: "running".into(),
    });
    s.check("shared");
}

#[test]
fn host_capability_types_keep_their_representation() {
    let mut s = Samples::default();
    for level in [
        LogLevel::Trace,
        LogLevel::Debug,
        LogLevel::Info,
        LogLevel::Warn,
        LogLevel::Error,
    ] {
        s.add_json(&level);
    }
    for method in [
        HttpMethod::Get,
        HttpMethod::Head,
        HttpMethod::Post,
        HttpMethod::Put,
        HttpMethod::Patch,
        HttpMethod::Delete,
    ] {
        s.add_json(&method);
    }
    s.add_json(&HttpRequest {
        method: HttpMethod::Post,
        url: "https://discord.com/api/webhooks/1".into(),
        headers: vec![kv("Content-Type", "application/json")],
        body: b"{}".to_vec(),
        timeout_ms: Some(2500),
    });
    s.add_json(&HttpRequest {
        method: HttpMethod::Get,
        url: "http://127.0.0.1/".into(),
        headers: vec![],
        body: vec![],
        timeout_ms: None,
    });
    s.add_json(&HttpResponse {
        status: 204,
        headers: vec![kv("x-a", "1"), kv("x-b", "2")],
        body: vec![0, 255, 7],
    });
    for e in [
        HttpError::Denied("off the list".into()),
        HttpError::InvalidRequest("bad URL".into()),
        HttpError::Timeout,
        HttpError::Transport("reset".into()),
        HttpError::TooLarge,
    ] {
        s.add_error(&e);
    }
    s.check("host_capabilities");
}

#[test]
fn auth_provider_types_keep_their_representation() {
    let mut s = Samples::default();
    for kind in [
        ProviderKind::Password,
        ProviderKind::Redirect,
        ProviderKind::Token,
    ] {
        s.add(&ProviderInfo {
            id: "local-password".into(),
            name: "Local".into(),
            kind,
            description: "Passwords".into(),
        });
    }
    let password = PasswordCredentials {
        username: "alice".into(),
        password: "hunter2".into(),
        second_factor: Some("123456".into()),
    };
    s.add(&password);
    s.add(&Credentials::Password(PasswordCredentials {
        second_factor: None,
        ..password
    }));
    s.add(&Credentials::Token("tok".into()));
    s.add(&Identity {
        subject: "sub-1".into(),
        username: "alice".into(),
        email: Some("alice@example.com".into()),
        display_name: None,
        groups: strings(&["admins", "players"]),
        claims: vec![kv("iss", "local")],
        may_create_account: true,
    });
    for e in [
        AuthError::InvalidCredentials,
        AuthError::Locked(Some(30)),
        AuthError::Locked(None),
        AuthError::NeedsSecondFactor,
        AuthError::ProviderUnavailable("ldap down".into()),
        AuthError::Unsupported,
        AuthError::PolicyViolation(strings(&["too short", "no digit"])),
        AuthError::InvalidRequest("no state".into()),
    ] {
        s.add_error(&e);
    }
    s.add(&LoginRedirect {
        authorize_url: "https://id.example/authorize?x=1".into(),
        state: "opaque".into(),
    });
    s.check("auth_provider");
}

#[test]
fn game_console_types_keep_their_representation() {
    let mut s = Samples::default();
    for kind in [
        LineKind::Plain,
        LineKind::Ready,
        LineKind::PlayerJoined("Steve".into()),
        LineKind::PlayerLeft("Alex".into()),
        LineKind::Warning("lag".into()),
        LineKind::Crash("OutOfMemoryError".into()),
    ] {
        s.add(&kind);
    }
    s.add(&PlayerStatus {
        online: 2,
        max: 20,
        players: strings(&["Steve", "Alex"]),
    });
    s.check("game_console");
}

#[test]
fn game_type_types_keep_their_representation() {
    let mut s = Samples::default();
    let rules = vec![
        ValidationRule::Required,
        ValidationRule::MinLength(1),
        ValidationRule::MaxLength(64),
        ValidationRule::Min(-5),
        ValidationRule::Max(i64::MAX),
        ValidationRule::Pattern("^[a-z]+$".into()),
        ValidationRule::OneOf(strings(&["a", "b"])),
    ];
    let variables = [
        VariableType::String,
        VariableType::Integer,
        VariableType::Boolean,
        VariableType::Choice,
    ]
    .into_iter()
    .map(|kind| Variable {
        key: "MINECRAFT_VERSION".into(),
        name: "Version".into(),
        description: "Which release".into(),
        kind,
        default_value: Some("latest".into()),
        user_viewable: true,
        user_editable: false,
        rules: rules.clone(),
    })
    .collect::<Vec<_>>();
    let ports = [
        PortProtocol::Tcp,
        PortProtocol::Udp,
        PortProtocol::TcpAndUdp,
    ]
    .into_iter()
    .map(|protocol| PortRequest {
        name: "game".into(),
        protocol,
        primary: protocol == PortProtocol::Tcp,
        env: None,
    })
    .collect();
    let platforms = vec![
        Platform {
            os: Os::Linux,
            arch: Arch::Amd64,
        },
        Platform {
            os: Os::Windows,
            arch: Arch::Arm64,
        },
        Platform {
            os: Os::Macos,
            arch: Arch::Arm64,
        },
    ];
    s.add(&GameInfo {
        id: "minecraft-paper".into(),
        name: "Minecraft (Paper)".into(),
        version: "1.2.3".into(),
        description: "A block game".into(),
        variables,
        ports,
        platforms,
        features: strings(&["eula"]),
        min_memory_mb: 1024,
        images: vec![Image {
            name: "Java 21".into(),
            reference: "ghcr.io/pterodactyl/yolks:java_21".into(),
        }],
        startup_commands: strings(&["Default", "With Aikar's flags"]),
        file_denylist: strings(&["*.jar", "!server.jar"]),
    });
    let context = ServerContext {
        server_id: "srv-1".into(),
        name: "Survival".into(),
        memory_mb: 4096,
        disk_mb: 10_240,
        cpu_percent: 200,
        variables: vec![kv("EULA", "true")],
        ports: vec![AllocatedPort {
            name: "game".into(),
            ip: "0.0.0.0".into(),
            port: 25565,
        }],
        platform: Platform {
            os: Os::Linux,
            arch: Arch::Amd64,
        },
        game_type: "minecraft-paper".into(),
        image: Some("ghcr.io/pterodactyl/yolks:java_21".into()),
        startup_command: Some("Default".into()),
        node: NodeContext {
            name: "fra-1".into(),
            address: "fra-1.example.net".into(),
            host_address: "10.88.0.1".into(),
        },
    };
    s.add(&context);
    s.add(&FieldError {
        key: "EULA".into(),
        message: "must be true".into(),
    });
    let edits = [
        ConfigFormat::Properties,
        ConfigFormat::Yaml,
        ConfigFormat::Json,
        ConfigFormat::Ini,
        ConfigFormat::Xml,
        ConfigFormat::Plain,
    ]
    .into_iter()
    .map(|format| ConfigEdit {
        path: "server.properties".into(),
        format,
        set: vec![kv("server-port", "25565")],
        set_if: vec![ConditionalSet {
            key: "server-ip".into(),
            if_value: "regex:^127\\.0\\.0\\.1$".into(),
            value: "0.0.0.0".into(),
        }],
    })
    .collect::<Vec<_>>();
    s.add(&InstallPlan {
        steps: vec![
            InstallStep::Download(Download {
                url: "https://example.com/paper.jar".into(),
                sha256: "ab".repeat(32),
                destination: "paper.jar".into(),
                executable: false,
            }),
            InstallStep::RunScript(Script {
                interpreter: "bash".into(),
                contents: "echo hi\n".into(),
                env: vec![kv("A", "1")],
                timeout_secs: 60,
            }),
            InstallStep::WriteFile(WriteFile {
                path: "eula.txt".into(),
                contents: "eula=true\n".into(),
                mode: 0o644,
            }),
            InstallStep::EditConfig(edits[0].clone()),
        ],
        image: Some("ghcr.io/pterodactyl/installers:debian".into()),
    });
    s.add(&StartupPlan {
        program: "java".into(),
        args: strings(&["-jar", "paper.jar"]),
        env: vec![kv("JAVA_OPTS", "-Xmx1G")],
        working_dir: ".".into(),
        config_edits: edits,
        console_context: String::new(),
    });
    for signal in [
        Signal::Interrupt,
        Signal::Terminate,
        Signal::Quit,
        Signal::Hangup,
        Signal::Kill,
    ] {
        s.add(&StopPlan {
            method: StopMethod::SendSignal(signal),
            grace_secs: 10,
        });
    }
    s.add(&StopPlan {
        method: StopMethod::ConsoleCommand("stop".into()),
        grace_secs: 30,
    });
    s.check("game_type");
}

#[test]
fn hooks_types_keep_their_representation() {
    let mut s = Samples::default();
    let payloads = [
        Payload::User(UserInfo {
            id: "u-1".into(),
            username: "alice".into(),
            email: None,
            admin: true,
        }),
        Payload::Server(ServerInfo {
            id: "srv-1".into(),
            name: "Survival".into(),
            owner_id: "u-1".into(),
            node_id: "n-1".into(),
            game_type: "minecraft-paper".into(),
            memory_mb: 4096,
            disk_mb: 10_240,
            cpu_percent: 100,
            variables: vec![kv("EULA", "true")],
            state: "offline".into(),
        }),
        Payload::Node(NodeInfo {
            id: "n-1".into(),
            name: "Node".into(),
            address: "10.0.0.2:8443".into(),
        }),
        Payload::Plugin(PluginRef {
            id: "quota-guard".into(),
            version: "0.1.0".into(),
        }),
        Payload::Console(ConsoleInfo {
            server_id: "srv-1".into(),
            line: "Steve joined the game".into(),
            detail: Some("Steve".into()),
        }),
        Payload::Schedule(ScheduleInfo {
            name: "nightly".into(),
            server_id: None,
        }),
    ];
    let kinds = [
        EventKind::UserCreate,
        EventKind::UserUpdate,
        EventKind::UserDelete,
        EventKind::UserLogin,
        EventKind::UserLogout,
        EventKind::ServerCreate,
        EventKind::ServerUpdate,
        EventKind::ServerDelete,
        EventKind::ServerInstall,
        EventKind::ServerStart,
        EventKind::ServerStop,
        EventKind::ServerRestart,
        EventKind::ServerKill,
        EventKind::ServerStateChanged,
        EventKind::NodeCreate,
        EventKind::NodeDelete,
        EventKind::NodeOnline,
        EventKind::NodeOffline,
        EventKind::PluginInstall,
        EventKind::PluginActivate,
        EventKind::PluginDeactivate,
        EventKind::PluginUninstall,
        EventKind::ConsoleCommand,
        EventKind::ConsoleReady,
        EventKind::ConsolePlayerJoined,
        EventKind::ConsolePlayerLeft,
        EventKind::ConsoleCrash,
        EventKind::ScheduleTick,
    ];
    for kind in kinds {
        s.add(&kind);
    }
    for (i, payload) in payloads.into_iter().enumerate() {
        s.add(&Event {
            id: format!("evt-{i}"),
            kind: kinds[i],
            occurred_at_ms: 1_700_000_000_000,
            actor: Actor {
                user_id: Some("u-1".into()),
                ip: Some("203.0.113.9".into()),
                request_id: None,
            },
            payload,
        });
    }
    for verdict in [
        Verdict::Allow,
        Verdict::Deny("over quota".into()),
        Verdict::Modify(r#"{"memory_mb":1024}"#.into()),
    ] {
        s.add(&verdict);
    }
    s.check("hooks");
}

#[test]
fn ui_types_keep_their_representation() {
    let mut s = Samples::default();
    let tones = [
        Tone::Neutral,
        Tone::Info,
        Tone::Success,
        Tone::Warning,
        Tone::Danger,
    ];
    let button = |tone: Tone| Button {
        label: "Restart".into(),
        action: "restart".into(),
        tone,
        confirm: Some("Sure?".into()),
    };
    for tone in tones {
        s.add(&button(tone));
    }
    let fields = [
        FieldKind::Text,
        FieldKind::Number,
        FieldKind::Toggle,
        FieldKind::Select,
        FieldKind::Secret,
    ]
    .into_iter()
    .map(|kind| FormField {
        name: "limit".into(),
        label: "Limit".into(),
        kind,
        value: None,
        options: strings(&["1", "2"]),
        required: true,
    })
    .collect();
    let elements = vec![
        Element::Section(Some("Players".into())),
        Element::Section(None),
        Element::Row,
        Element::Heading("Online".into()),
        Element::Text("2 players".into()),
        Element::Badge(("beta".into(), Tone::Info)),
        Element::Stat(kv("TPS", "20")),
        Element::Alert(("lagging".into(), Tone::Warning)),
        Element::Button(button(Tone::Danger)),
        Element::Form(Form {
            fields,
            submit: button(Tone::Success),
        }),
        Element::Table(Table {
            columns: strings(&["Name", "Ping"]),
            rows: vec![TableRow {
                cells: strings(&["Steve", "12"]),
                actions: vec![button(Tone::Neutral)],
            }],
        }),
        Element::Chart(Chart {
            kind: ChartKind::Line,
            series: vec![Series {
                name: "tps".into(),
                points: vec![(0.0, 20.0), (1.5, 19.25)],
            }],
        }),
        Element::Chart(Chart {
            kind: ChartKind::Bar,
            series: vec![],
        }),
        Element::Divider,
    ];
    let count = u32::try_from(elements.len()).expect("few");
    s.add(&UiTree {
        root: 0,
        nodes: elements
            .into_iter()
            .enumerate()
            .map(|(i, element)| Node {
                element,
                children: if i == 0 { (1..count).collect() } else { vec![] },
            })
            .collect(),
    });
    let context = RenderContext {
        contribution: "players".into(),
        server_id: Some("srv-1".into()),
        user_id: "u-1".into(),
        permissions: strings(&["servers.read"]),
        server_permissions: strings(&["control.console"]),
    };
    s.add(&context);
    s.add(&Action {
        name: "kick".into(),
        values: vec![kv("player", "Steve")],
    });
    s.add(&ActionResult::Refresh);
    s.add(&ActionResult::Notify(("kicked".into(), Tone::Success)));
    s.check("ui");
}
