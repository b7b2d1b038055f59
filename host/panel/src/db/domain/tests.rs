//! Every [`DomainEvent`] variant through JSON and the stored form.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;
use utoipa::PartialSchema;

use super::*;

/// One event of every kind, with every optional field both set and unset
/// somewhere.
fn one_of_each() -> Vec<DomainEvent> {
    let user = || UserId::new("usr_1");
    let node = || NodeId::new("node_1");
    let server = || ServerId::new("srv_1");
    let plugin = || PluginId::new("quota-guard");
    let role = || RoleId::new("rol_1");
    let session = || SessionRef {
        session: "ses_1".into(),
    };
    let settled = |detail: Option<&str>| CommandSettled {
        command_id: "cmd_1".into(),
        action: "delete".into(),
        node_id: "node_1".into(),
        detail: detail.map(str::to_owned),
        at: 7,
    };
    let resources = Resources {
        memory_mb: 1024,
        disk_mb: 2048,
        cpu_percent: 100,
    };
    let game = GameVersion {
        plugin: "test-game".into(),
        version: "1.0.0".into(),
        game_type: None,
    };
    let values = BTreeMap::from([
        ("MAX_PLAYERS".to_owned(), "20".to_owned()),
        ("RCON_PASSWORD".to_owned(), "hunter2".to_owned()),
    ]);
    let grants = cap_runtime::Grants {
        kv: true,
        secrets: BTreeSet::from(["webhook-url".to_owned()]),
        ..cap_runtime::Grants::none()
    };
    vec![
        SettingEvent::Created {
            subject: SettingName::new("motd"),
            data: SettingValueData {
                value: json!({"text": "hi ✓", "lines": [1, null]}),
            },
        }
        .into(),
        SettingEvent::Updated {
            subject: SettingName::new("motd"),
            data: SettingValueData { value: json!(true) },
        }
        .into(),
        SettingEvent::Deleted {
            subject: SettingName::new("motd"),
            data: Empty {},
        }
        .into(),
        SecretsEvent::Sealed {
            subject: Null,
            data: SecretsSealed {
                totp_secrets: 1,
                plugin_secrets: 2,
                marketplace_tokens: 0,
            },
        }
        .into(),
        UserEvent::Created {
            subject: user(),
            data: UserCreated {
                username: "dave".into(),
                admin: false,
            },
        }
        .into(),
        UserEvent::Updated {
            subject: user(),
            data: UserUpdated {
                email: Some(None),
                display_name: Some(Some("Dave".into())),
                admin: None,
            },
        }
        .into(),
        UserEvent::RolesSet {
            subject: user(),
            data: UserRoles {
                roles: BTreeSet::from(["rol_1".to_owned(), "rol_0".to_owned()]),
            },
        }
        .into(),
        UserEvent::Disabled {
            subject: user(),
            data: UserDisabled {
                sessions_revoked: 2,
                api_keys_revoked: 1,
            },
        }
        .into(),
        UserEvent::Enabled {
            subject: user(),
            data: Empty {},
        }
        .into(),
        UserEvent::Deleted {
            subject: user(),
            data: UserDeleted {
                username: "dave".into(),
            },
        }
        .into(),
        UserEvent::PasswordChanged {
            subject: user(),
            data: PasswordChanged {
                provider: "local-password".into(),
                sessions_revoked: 3,
            },
        }
        .into(),
        UserEvent::LinkIssued {
            subject: user(),
            data: LinkIssued {
                link: "lnk_1".into(),
                purpose: "invitation".into(),
                expires_at: 1_700_000_000_000_000,
                mail: true,
            },
        }
        .into(),
        UserEvent::PasswordSet {
            subject: user(),
            data: PasswordSet {
                provider: "local-password".into(),
                by: "reset".into(),
                link: Some("lnk_2".into()),
                must_change: false,
                sessions_revoked: 2,
            },
        }
        .into(),
        UserEvent::SshKeyAdded {
            subject: user(),
            data: SshKeyAdded {
                key: "ssh_1".into(),
                name: "laptop".into(),
                fingerprint: "SHA256:abc".into(),
            },
        }
        .into(),
        UserEvent::SshKeyRemoved {
            subject: user(),
            data: SshKeyRef {
                key: "ssh_1".into(),
                fingerprint: "SHA256:abc".into(),
            },
        }
        .into(),
        MailEvent::Configured {
            subject: Null,
            data: MailConfigured {
                host: "smtp.example.org".into(),
                port: 587,
                security: "starttls".into(),
                username: Some("panel".into()),
                has_password: true,
                from: "Panel <panel@example.org>".into(),
            },
        }
        .into(),
        MailEvent::Cleared {
            subject: Null,
            data: Empty {},
        }
        .into(),
        IdentityEvent::Linked {
            subject: user(),
            data: IdentityLinked {
                provider: "oidc".into(),
                subject: "dave@idp".into(),
            },
        }
        .into(),
        RoleEvent::Created {
            subject: role(),
            data: RoleCreated {
                name: "mods".into(),
                permissions: vec!["audit.read".into(), "audit.read".into()],
            },
        }
        .into(),
        RoleEvent::Updated {
            subject: role(),
            data: RoleUpdated {
                name: None,
                description: Some("new".into()),
                permissions: Some(BTreeSet::new()),
            },
        }
        .into(),
        RoleEvent::Deleted {
            subject: role(),
            data: RoleDeleted {
                name: "mods".into(),
            },
        }
        .into(),
        RoleEvent::Assigned {
            subject: user(),
            data: RoleAssigned {
                role: "rol_1".into(),
            },
        }
        .into(),
        SessionEvent::Created {
            subject: user(),
            data: SessionCreated {
                session: "ses_1".into(),
                provider: "local-password".into(),
            },
        }
        .into(),
        SessionEvent::Revoked {
            subject: user(),
            data: session(),
        }
        .into(),
        SessionEvent::ReuseDetected {
            subject: user(),
            data: session(),
        }
        .into(),
        SessionEvent::Expired {
            subject: user(),
            data: session(),
        }
        .into(),
        JwtKeyEvent::Created {
            subject: JwtKeyId::new("a1b2"),
            data: Empty {},
        }
        .into(),
        ApiKeyEvent::Created {
            subject: user(),
            data: ApiKeyCreated {
                key: "key_1".into(),
                name: "ci".into(),
                prefix: "cap_12345678".into(),
                scopes: vec![],
            },
        }
        .into(),
        ApiKeyEvent::Revoked {
            subject: user(),
            data: ApiKeyRef {
                key: "key_1".into(),
            },
        }
        .into(),
        TotpEvent::EnrollmentStarted {
            subject: user(),
            data: Empty {},
        }
        .into(),
        TotpEvent::Enabled {
            subject: user(),
            data: RecoveryCodes { recovery_codes: 10 },
        }
        .into(),
        TotpEvent::RecoveryCodeUsed {
            subject: user(),
            data: RecoveryCodeUsed { remaining: 9 },
        }
        .into(),
        TotpEvent::Locked {
            subject: user(),
            data: TotpLocked {
                failed_attempts: 5,
                locked_for_seconds: 900,
            },
        }
        .into(),
        TotpEvent::Disabled {
            subject: user(),
            data: Empty {},
        }
        .into(),
        TotpEvent::RecoveryCodesRegenerated {
            subject: user(),
            data: RecoveryCodes { recovery_codes: 10 },
        }
        .into(),
        TotpEvent::Reset {
            subject: user(),
            data: Empty {},
        }
        .into(),
        NodeEvent::Created {
            subject: node(),
            data: NodeCreated {
                name: "n1".into(),
                address: "n1.example.net".into(),
                memory_mb: 4096,
                disk_mb: 1,
                cpu_percent: 400,
                token_hash: "ab".into(),
                at: 1,
            },
        }
        .into(),
        NodeEvent::Updated {
            subject: node(),
            data: NodeUpdated {
                name: "n1".into(),
                address: "::1".into(),
                memory_mb: 1,
                disk_mb: 2,
                cpu_percent: 3,
                at: 2,
            },
        }
        .into(),
        NodeEvent::Deleted {
            subject: node(),
            data: Empty {},
        }
        .into(),
        NodeEvent::Online {
            subject: node(),
            data: At { at: 3 },
        }
        .into(),
        NodeEvent::Offline {
            subject: node(),
            data: At { at: 4 },
        }
        .into(),
        NodeEvent::RegistrationTokenIssued {
            subject: node(),
            data: RegistrationTokenIssued {
                token_id: "rtk_1".into(),
                expires_at: 9,
                token_hash: "cd".into(),
                at: 5,
            },
        }
        .into(),
        NodeEvent::Registered {
            subject: node(),
            data: NodeRegistered {
                agent_id: "agent".into(),
                version: "0.1.0".into(),
                capabilities: vec!["native-process".into()],
                supported_games: vec![game.clone()],
                resource_limits: resources,
                health_endpoint: "http://127.0.0.1:1/health".into(),
                token_id: "rtk_1".into(),
                token_hash: "ef".into(),
                at: 6,
            },
        }
        .into(),
        NodeEvent::CapabilitiesChanged {
            subject: node(),
            data: NodeCapabilities {
                capabilities: vec!["container".into(), "os-linux".into()],
                at: 7,
            },
        }
        .into(),
        NodeEvent::AllocationsAdded {
            subject: node(),
            data: AllocationsAdded {
                ip: "10.0.0.1".into(),
                ports: BTreeSet::from([25566, 25565]),
            },
        }
        .into(),
        NodeEvent::AllocationDeleted {
            subject: node(),
            data: AllocationPort {
                ip: "10.0.0.1".into(),
                port: 25565,
            },
        }
        .into(),
        ServerEvent::Created {
            subject: server(),
            data: ServerCreated {
                name: "one".into(),
                owner_id: "usr_1".into(),
                node_id: "node_1".into(),
                allocation: "::1:25565".into(),
                game: GameVersion {
                    game_type: Some("minetest".into()),
                    ..game.clone()
                },
                image: Some("ghcr.io/parkervcp/games:minetest".into()),
                startup_command: Some("Default".into()),
                limits: resources,
                variable_values: values.clone(),
                secret_variables: vec!["RCON_PASSWORD".into()],
                state: "offline".into(),
                at: 7,
            },
        }
        .into(),
        ServerEvent::Updated {
            subject: server(),
            data: ServerUpdated {
                name: "one".into(),
                variables: values.keys().cloned().collect(),
                limits: resources,
                variable_values: values,
                secret_variables: vec![],
                game_version: "1.1.0".into(),
                image: None,
                startup_command: None,
            },
        }
        .into(),
        ServerEvent::StateChanged {
            subject: server(),
            data: StateChanged {
                from: "offline".into(),
                to: "running".into(),
                reason: None,
                at: 8,
            },
        }
        .into(),
        ServerEvent::Deleted {
            subject: server(),
            data: ServerDeleted {
                command_id: "cmd_1".into(),
            },
        }
        .into(),
        ServerEvent::CommandQueued {
            subject: server(),
            data: CommandQueued {
                command_id: "cmd_1".into(),
                action: "command".into(),
                plugin: Some("quota-guard".into()),
                node_id: None,
                payload: Some(json!({"line": "say hi"})),
                at: 9,
            },
        }
        .into(),
        ServerEvent::CommandAcked {
            subject: server(),
            data: settled(None),
        }
        .into(),
        ServerEvent::CommandDone {
            subject: server(),
            data: settled(None),
        }
        .into(),
        ServerEvent::CommandFailed {
            subject: server(),
            data: settled(Some("busy")),
        }
        .into(),
        ServerEvent::AllocationLimitSet {
            subject: server(),
            data: AllocationLimit { limit: 2 },
        }
        .into(),
        ServerEvent::AllocationAdded {
            subject: server(),
            data: ServerAllocation {
                node_id: "node_1".into(),
                ip: "::1".into(),
                port: 25566,
            },
        }
        .into(),
        ServerEvent::AllocationNotesSet {
            subject: server(),
            data: AllocationNotes {
                node_id: "node_1".into(),
                ip: "::1".into(),
                port: 25566,
                notes: Some("query port ✓".into()),
            },
        }
        .into(),
        ServerEvent::PrimaryAllocationSet {
            subject: server(),
            data: ServerAllocation {
                node_id: "node_1".into(),
                ip: "::1".into(),
                port: 25566,
            },
        }
        .into(),
        ServerEvent::AllocationRemoved {
            subject: server(),
            data: ServerAllocation {
                node_id: "node_1".into(),
                ip: "10.0.0.1".into(),
                port: 25565,
            },
        }
        .into(),
        ServerEvent::Suspended {
            subject: server(),
            data: ServerSuspended {
                reason: "invoice 2041 is unpaid ✓".into(),
                at: 12,
            },
        }
        .into(),
        ServerEvent::Unsuspended {
            subject: server(),
            data: ServerUnsuspended {
                reason: "invoice 2041 is unpaid ✓".into(),
                at: 13,
            },
        }
        .into(),
        ServerEvent::TransferStarted {
            subject: server(),
            data: TransferStarted {
                transfer_id: "xfr_1".into(),
                from_node: "node_1".into(),
                to_node: "node_2".into(),
                at: 14,
            },
        }
        .into(),
        ServerEvent::Transferred {
            subject: server(),
            data: ServerTransferred {
                transfer_id: "xfr_1".into(),
                from_node: "node_1".into(),
                to_node: "node_2".into(),
                allocations: vec![IpPort {
                    ip: "10.0.0.2".into(),
                    port: 25565,
                }],
                at: 15,
            },
        }
        .into(),
        ServerEvent::TransferFailed {
            subject: server(),
            data: TransferFailed {
                transfer_id: "xfr_2".into(),
                reason: "node node_2 has 10 bytes free".into(),
                at: 16,
            },
        }
        .into(),
        SubuserEvent::Added {
            subject: server(),
            data: SubuserPermissions {
                user_id: "usr_2".into(),
                permissions: BTreeSet::from(["control.start".to_owned()]),
                at: 10,
            },
        }
        .into(),
        SubuserEvent::Updated {
            subject: server(),
            data: SubuserPermissions {
                user_id: "usr_2".into(),
                permissions: BTreeSet::new(),
                at: 11,
            },
        }
        .into(),
        SubuserEvent::Removed {
            subject: server(),
            data: SubuserRemoved {
                user_id: "usr_2".into(),
                permissions: Null,
            },
        }
        .into(),
        PluginEvent::Installed {
            subject: plugin(),
            data: PluginInstalled {
                version: "1.0.0".into(),
                sha256: "00".into(),
                source: Some("marketplace".into()),
                state: Some("active".into()),
                grants: Some(grants.clone()),
            },
        }
        .into(),
        PluginEvent::Updated {
            subject: plugin(),
            data: PluginUpdated {
                from: "1.0.0".into(),
                to: "1.1.0".into(),
                sha256: "01".into(),
                version: None,
                source: None,
                state: None,
            },
        }
        .into(),
        PluginEvent::Granted {
            subject: plugin(),
            data: PluginGranted { grants },
        }
        .into(),
        PluginEvent::Activated {
            subject: plugin(),
            data: PluginVersion {
                version: "1.1.0".into(),
            },
        }
        .into(),
        PluginEvent::Deactivated {
            subject: plugin(),
            data: PluginDeactivated {
                reason: Some("the license lapsed".into()),
            },
        }
        .into(),
        PluginEvent::Uninstalled {
            subject: plugin(),
            data: PluginUninstalled {
                version: "1.1.0".into(),
                purge: true,
            },
        }
        .into(),
        PluginEvent::ConfigUpdated {
            subject: plugin(),
            data: PluginConfigUpdated {
                values: BTreeMap::from([
                    ("max-memory-mb".to_owned(), Some("2048".to_owned())),
                    ("gone".to_owned(), None),
                ]),
            },
        }
        .into(),
        PluginEvent::SecretSet {
            subject: plugin(),
            data: PluginSecretSet {
                key: "token".into(),
            },
        }
        .into(),
        PluginEvent::Released {
            subject: plugin(),
            data: Empty {},
        }
        .into(),
        PluginEvent::Quarantined {
            subject: plugin(),
            data: PluginQuarantined {
                reason: "5 failed calls".into(),
            },
        }
        .into(),
        BackupEvent::Started {
            subject: server(),
            data: BackupStarted {
                backup_id: "bkp_1".into(),
                name: "before the update".into(),
                ignored: vec!["*.log".into()],
                target: "local".into(),
                node_id: "node_1".into(),
                at: 1_700_000_000_000_000,
            },
        }
        .into(),
        BackupEvent::Completed {
            subject: server(),
            data: BackupCompleted {
                backup_id: "bkp_1".into(),
                sha256: "ab".repeat(32),
                bytes: 1234,
                at: 1_700_000_000_000_001,
            },
        }
        .into(),
        BackupEvent::Failed {
            subject: server(),
            data: BackupFailed {
                backup_id: "bkp_2".into(),
                reason: "node node_1 went offline".into(),
                at: 1_700_000_000_000_002,
            },
        }
        .into(),
        BackupEvent::Deleted {
            subject: server(),
            data: BackupDeleted {
                backup_id: "bkp_2".into(),
                rotated: true,
            },
        }
        .into(),
        BackupEvent::LockChanged {
            subject: server(),
            data: BackupLock {
                backup_id: "bkp_1".into(),
                locked: true,
            },
        }
        .into(),
        BackupEvent::RestoreStarted {
            subject: server(),
            data: RestoreStarted {
                backup_id: "bkp_1".into(),
                truncate: true,
                at: 1_700_000_000_000_003,
            },
        }
        .into(),
        BackupEvent::RestoreFinished {
            subject: server(),
            data: RestoreFinished {
                backup_id: "bkp_1".into(),
                ok: false,
                reason: Some("corrupt".into()),
                at: 1_700_000_000_000_004,
            },
        }
        .into(),
        BackupEvent::LimitSet {
            subject: server(),
            data: BackupLimitSet { limit: 3 },
        }
        .into(),
        BackupStorageEvent::Configured {
            subject: Null,
            data: BackupStorageConfigured {
                endpoint: "https://s3.example.org".into(),
                region: "us-east-1".into(),
                bucket: "backups".into(),
                prefix: "panel".into(),
                access_key_id: "AKIA".into(),
                path_style: true,
            },
        }
        .into(),
        BackupStorageEvent::Cleared {
            subject: Null,
            data: Empty {},
        }
        .into(),
        DatabaseHostEvent::Created {
            subject: DatabaseHostId::new("dbh_1"),
            data: DatabaseHostCreated {
                name: "MariaDB 1".into(),
                kind: "mysql".into(),
                host: "10.0.0.5".into(),
                port: 3306,
                username: "panel".into(),
                node_ids: vec!["node_1".into()],
                max_databases: Some(100),
            },
        }
        .into(),
        DatabaseHostEvent::Updated {
            subject: DatabaseHostId::new("dbh_1"),
            data: DatabaseHostUpdated {
                name: "MariaDB 1".into(),
                kind: "mysql".into(),
                host: "10.0.0.6".into(),
                port: 3307,
                username: "panel".into(),
                node_ids: Vec::new(),
                max_databases: None,
                password_changed: true,
            },
        }
        .into(),
        DatabaseHostEvent::Deleted {
            subject: DatabaseHostId::new("dbh_1"),
            data: Empty {},
        }
        .into(),
        DatabaseEvent::Created {
            subject: server(),
            data: DatabaseCreated {
                database_id: "sdb_1".into(),
                host_id: "dbh_1".into(),
                name: "s0a1b2c3d_world".into(),
                username: "u0a1b2c3d_x7k2p9".into(),
                remote: "%".into(),
            },
        }
        .into(),
        DatabaseEvent::PasswordRotated {
            subject: server(),
            data: DatabaseRef {
                database_id: "sdb_1".into(),
            },
        }
        .into(),
        DatabaseEvent::Deleted {
            subject: server(),
            data: DatabaseDeleted {
                database_id: "sdb_1".into(),
                host_id: "dbh_1".into(),
                name: "s0a1b2c3d_world".into(),
                dropped: true,
            },
        }
        .into(),
        DatabaseEvent::LimitSet {
            subject: server(),
            data: DatabaseLimitSet { limit: 2 },
        }
        .into(),
    ]
}

#[test]
fn one_of_each_covers_every_kind_exactly_once() {
    let kinds: Vec<&str> = one_of_each().iter().map(DomainEvent::kind).collect();
    let unique: BTreeSet<&str> = kinds.iter().copied().collect();
    assert_eq!(unique.len(), kinds.len(), "a kind twice: {kinds:?}");
    assert_eq!(unique, DomainEvent::kinds().collect::<BTreeSet<_>>());
}

#[test]
fn every_variant_round_trips_through_json() {
    for event in one_of_each() {
        let text = serde_json::to_string(&event).expect("serialises");
        let back: DomainEvent = serde_json::from_str(&text).expect(&text);
        assert_eq!(back, event, "{text}");
        let value = serde_json::to_value(&event).expect("serialises");
        assert_eq!(value["kind"], event.kind(), "the tag is the kind");
    }
}

#[test]
fn every_variant_round_trips_through_the_stored_form() {
    for event in one_of_each() {
        let stored = event.to_stored().expect("a stored form");
        assert_eq!(stored.kind, event.kind());
        assert!(
            stored.data.is_object(),
            "{}: {:?}",
            stored.kind,
            stored.data
        );
        let back = DomainEvent::from_stored(stored.kind, stored.subject.as_ref(), stored.data)
            .expect("decodes");
        assert_eq!(back, event);
    }
}

#[test]
fn the_stored_form_keeps_the_subject_out_of_the_data() {
    let event: DomainEvent = RoleEvent::Assigned {
        subject: UserId::new("usr_1"),
        data: RoleAssigned {
            role: "rol_1".into(),
        },
    }
    .into();
    let stored = event.to_stored().expect("a stored form");
    assert_eq!(stored.kind, "role.assigned");
    assert_eq!(stored.subject, Some(Subject::new("user", "usr_1")));
    assert_eq!(stored.data, json!({ "role": "rol_1" }));
    let sealed: DomainEvent = SecretsEvent::Sealed {
        subject: Null,
        data: SecretsSealed {
            totp_secrets: 0,
            plugin_secrets: 0,
            marketplace_tokens: 1,
        },
    }
    .into();
    assert_eq!(sealed.to_stored().expect("a stored form").subject, None);
}

#[test]
fn absent_optional_fields_stay_absent_and_null_ones_stay_null() {
    let data = |event: &DomainEvent| event.to_stored().expect("a stored form").data;
    let events = one_of_each();
    let find = |kind: &str| {
        events
            .iter()
            .find(|e| e.kind() == kind)
            .expect("one of each")
    };
    assert_eq!(
        data(find("user.updated")),
        json!({ "email": null, "display_name": "Dave" })
    );
    assert_eq!(
        data(find("plugin.updated")),
        json!({ "from": "1.0.0", "to": "1.1.0", "sha256": "01" })
    );
    assert_eq!(
        data(find("subuser.removed")),
        json!({ "user_id": "usr_2", "permissions": null })
    );
    assert_eq!(
        data(find("server.state.changed"))["reason"],
        serde_json::Value::Null
    );
}

#[test]
fn a_subject_of_another_type_is_refused_naming_both() {
    let error = DomainEvent::from_stored(
        "node.online",
        Some(&Subject::new("server", "srv_1")),
        json!({ "at": 1 }),
    )
    .expect_err("a server is no node");
    let DecodeError::Invalid { kind, reason } = error else {
        panic!("expected an invalid event, got {error:?}");
    };
    assert_eq!(kind, "node.online");
    assert!(reason.contains("must be a node, not a server"), "{reason}");
}

#[test]
fn a_missing_field_is_named_and_an_unknown_kind_is_told_apart() {
    let error = DomainEvent::from_stored(
        "setting.updated",
        Some(&Subject::new("setting", "motd")),
        json!({}),
    )
    .expect_err("no value");
    assert!(
        error.to_string().contains("missing field `value`"),
        "{error}"
    );
    assert_eq!(
        DomainEvent::from_stored("server.teleported", None, json!({})),
        Err(DecodeError::UnknownKind("server.teleported".into()))
    );
}

#[test]
fn an_event_written_before_hidden_variables_existed_still_decodes() {
    let old = json!({
        "name": "one", "owner_id": "u", "node_id": "n", "allocation": "10.0.0.1:1",
        "game": {"plugin": "g", "version": "1"},
        "limits": {"memory_mb": 1, "disk_mb": 1, "cpu_percent": 1},
        "variable_values": {}, "state": "offline", "at": 1
    });
    let event = DomainEvent::from_stored("server.created", Some(&Subject::new("server", "s")), old)
        .expect("decodes");
    let DomainEvent::Server(ServerEvent::Created { data, .. }) = event else {
        panic!("a server.created");
    };
    assert!(data.secret_variables.is_empty());
}

#[test]
fn redaction_hides_the_hidden_variables_and_nothing_else() {
    let mut events = one_of_each();
    let created = events
        .iter_mut()
        .find(|e| e.kind() == "server.created")
        .expect("one of each");
    created.redact();
    let data = created.to_stored().expect("a stored form").data;
    assert_eq!(data["variable_values"]["RCON_PASSWORD"], REDACTED);
    assert_eq!(data["variable_values"]["MAX_PLAYERS"], "20");
    let mut setting = events[0].clone();
    setting.redact();
    assert_eq!(setting, events[0]);
}

#[test]
fn the_openapi_document_describes_every_kind_with_its_data() {
    let doc = crate::http::openapi();
    let schemas = &doc.components.as_ref().expect("components").schemas;
    let json = serde_json::to_value(schemas).expect("JSON");
    let text = json.to_string();
    for kind in DomainEvent::kinds() {
        assert!(text.contains(&format!("\"{kind}\"")), "{kind} is missing");
    }
    for name in [
        "DomainEvent",
        "ServerCreated",
        "NodeRegistered",
        "AuditEvent",
    ] {
        assert!(json.get(name).is_some(), "no schema {name}");
    }
    let _ = DomainEvent::schema();
}
