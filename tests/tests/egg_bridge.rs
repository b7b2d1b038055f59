//! The egg bridge (`example-plugins/v0.2/egg-bridge`), a 0.2.0 game-type and
//! game-catalogue plugin, run by the real host: the community eggs import,
//! list and export back; bad eggs are refused by field and leave nothing
//! behind; the Minetest egg's plans and console; update checks over HTTP;
//! and a 0.1.0 plugin beside it in one runtime.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use cap_e2e::{load, runtime};
use cap_runtime::api::{
    AllocatedPort, Arch, CatalogueEntry, CatalogueError, ConfigFormat, InstallStep, KeyValue,
    LineKind, Os, Platform, ServerContext, Signal, StopMethod,
};
use cap_runtime::{HostServices, Plugin, RuntimeConfig};
use serde_json::json;

const BRIDGE: &str = "egg-bridge";

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: value.into(),
    }
}

/// The directory holding `pterodactyl/` and `pelican/` eggs: `CAP_EGGS_DIR`,
/// or the copies cap-egg tests with.
fn eggs_dir() -> PathBuf {
    std::env::var_os("CAP_EGGS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| cap_e2e::repo_root().join("egg/tests/fixtures"))
}

fn egg(name: &str) -> Vec<u8> {
    let path = eggs_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every community egg as (name, bytes), sorted.
fn community_eggs() -> Vec<(String, Vec<u8>)> {
    let mut eggs = Vec::new();
    for dir in ["pterodactyl", "pelican"] {
        let mut names: Vec<String> = std::fs::read_dir(eggs_dir().join(dir))
            .expect("the eggs directory")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".json") || n.ends_with(".yaml") || n.ends_with(".yml"))
            .collect();
        names.sort();
        eggs.extend(names.into_iter().map(|n| {
            let name = format!("{dir}/{n}");
            let bytes = egg(&name);
            (name, bytes)
        }));
    }
    eggs
}

/// A small valid egg named `Test` (variable `NAME`, default `world`,
/// `required|string|max:20`), with `patch` applied.
fn test_egg(patch: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let mut egg: serde_json::Value =
        serde_json::from_str(include_str!("../../egg/tests/test-egg.json")).expect("the test egg");
    patch(&mut egg);
    serde_json::to_vec(&egg).expect("JSON")
}

/// A runtime whose compiled components are cached for the whole test
/// binary: the bridge is compiled once, not once per test.
fn bridge_runtime() -> cap_runtime::Runtime {
    static CACHE: OnceLock<tempfile::TempDir> = OnceLock::new();
    let cache = CACHE.get_or_init(|| tempfile::tempdir().expect("a cache directory"));
    runtime(RuntimeConfig {
        cache_dir: Some(cache.path().to_path_buf()),
        ..RuntimeConfig::default()
    })
}

async fn bridge() -> Plugin {
    load(&bridge_runtime(), BRIDGE, HostServices::in_memory()).await
}

async fn import(
    bridge: &Plugin,
    document: &[u8],
    replace: bool,
) -> Result<CatalogueEntry, CatalogueError> {
    bridge
        .catalogue_import(document, replace)
        .await
        .expect("the call completes")
}

async fn entries(bridge: &Plugin) -> Vec<CatalogueEntry> {
    bridge.catalogue_entries().await.expect("the entries")
}

/// A server of `game_type` with one allocation, `game` at `port`.
fn server(game_type: &str, variables: Vec<KeyValue>, port: u16) -> ServerContext {
    ServerContext {
        server_id: "srv-egg".into(),
        name: "Egg server".into(),
        memory_mb: 2048,
        disk_mb: 10_240,
        cpu_percent: 100,
        variables,
        ports: vec![AllocatedPort {
            name: "game".into(),
            ip: "0.0.0.0".into(),
            port,
        }],
        platform: Platform {
            os: Os::Linux,
            arch: Arch::Amd64,
        },
        game_type: game_type.into(),
        image: None,
        startup_command: None,
        node: Default::default(),
    }
}

/// The game type's defaults, with `overrides`.
fn variables(entry: &CatalogueEntry, overrides: &[(&str, &str)]) -> Vec<KeyValue> {
    let mut vars: Vec<KeyValue> = entry
        .game
        .variables
        .iter()
        .filter_map(|v| v.default_value.as_ref().map(|d| kv(&v.key, d)))
        .collect();
    for (key, value) in overrides {
        vars.retain(|v| v.key != *key);
        vars.push(kv(key, value));
    }
    vars
}

#[tokio::test]
async fn every_community_egg_imports_lists_and_exports_back_to_the_same_game_type() {
    let bridge = bridge().await;
    let eggs = community_eggs();
    assert_eq!(eggs.len(), 15, "the shared eggs");
    let mut ids = Vec::new();
    for (name, bytes) in &eggs {
        let entry = import(&bridge, bytes, false)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        let exported = bridge
            .catalogue_export(&entry.game.id)
            .await
            .expect("the call")
            .unwrap_or_else(|e| panic!("{name}: export: {e:?}"));
        let again = import(&bridge, &exported, true)
            .await
            .unwrap_or_else(|e| panic!("{name}: the export does not import: {e:?}"));
        assert_eq!(
            again, entry,
            "{name}: export -> import gives another game type"
        );
        ids.push(entry.game.id);
    }
    let listed = entries(&bridge).await;
    assert_eq!(listed.len(), 15);
    let games = bridge
        .game_types()
        .await
        .expect("the game types pass the host's checks");
    let mut game_ids: Vec<String> = games.into_iter().map(|g| g.id).collect();
    game_ids.sort();
    ids.sort();
    assert_eq!(game_ids, ids);
}

#[tokio::test]
async fn each_bad_egg_is_invalid_naming_its_field_and_keeps_nothing() {
    let bridge = bridge().await;
    import(
        &bridge,
        &egg("pelican/egg-pterodactyl-minetest.json"),
        false,
    )
    .await
    .expect("a good egg first");
    let before = entries(&bridge).await;

    let mut fifty_megabytes = b"{\"meta\": {\"version\": \"PTDL_v2\"}, \"name\": \"".to_vec();
    fifty_megabytes.resize(50 * 1024 * 1024, b'a');
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "malformed JSON",
            b"{\"meta\": {\"version\": \"PTDL_v2\"},".to_vec(),
            "document",
        ),
        (
            "malformed YAML",
            b"meta:\n  version: PLCN_v3\nname: [unclosed\n".to_vec(),
            "document",
        ),
        (
            "an unknown meta.version",
            test_egg(|e| e["meta"]["version"] = json!("PTDL_v9")),
            "meta.version",
        ),
        (
            "a missing startup",
            test_egg(|e| {
                e.as_object_mut().expect("an object").remove("startup");
            }),
            "startup",
        ),
        (
            "a default that breaks its own rule",
            test_egg(|e| {
                e["variables"][0]["default_value"] = json!("far longer than twenty characters")
            }),
            "variables[0].default_value",
        ),
        (
            "an unknown rule",
            test_egg(|e| e["variables"][0]["rules"] = json!("required|frobnicate")),
            "variables[0].rules",
        ),
        (
            "an unknown config parser",
            test_egg(|e| {
                e["config"]["files"] =
                    json!(r#"{"server.cfg": {"parser": "toml", "find": {"a": "b"}}}"#)
            }),
            "config.files.\"server.cfg\".parser",
        ),
        (
            "a config file outside the server directory",
            test_egg(|e| {
                e["config"]["files"] =
                    json!(r#"{"../../etc/passwd": {"parser": "file", "find": {"root": "x"}}}"#)
            }),
            "config.files.\"../../etc/passwd\"",
        ),
        (
            "an install section of the wrong type",
            test_egg(|e| e["scripts"]["installation"] = json!("bash install.sh")),
            "scripts.installation",
        ),
        (
            "a variable the Panel cannot name",
            test_egg(|e| e["variables"][0]["env_variable"] = json!("lower_case")),
            "variables[0].env_variable",
        ),
        ("a 50 MB egg", fifty_megabytes, "document"),
    ];
    for (what, document, field) in cases {
        for replace in [false, true] {
            match import(&bridge, &document, replace).await {
                Err(CatalogueError::Invalid(fields)) => {
                    assert!(
                        fields.iter().any(|f| f.key == field),
                        "{what}: {fields:?} does not name {field}"
                    );
                }
                other => panic!("{what}: {other:?}"),
            }
        }
        let preview = bridge.catalogue_preview(&document).await.expect("the call");
        assert!(
            matches!(preview, Err(CatalogueError::Invalid(_))),
            "{what}: preview {preview:?}"
        );
        assert_eq!(entries(&bridge).await, before, "{what}: something was kept");
    }
}

#[tokio::test]
async fn a_second_import_of_a_game_type_is_exists_unless_it_replaces() {
    let bridge = bridge().await;
    let first = import(&bridge, &test_egg(|_| {}), false)
        .await
        .expect("imported");
    assert_eq!(first.game.id, "test");
    let newer = test_egg(|e| e["variables"][0]["default_value"] = json!("earth"));
    match import(&bridge, &newer, false).await {
        Err(CatalogueError::Exists(id)) => assert_eq!(id, "test"),
        other => panic!("{other:?}"),
    }
    assert_eq!(entries(&bridge).await, std::slice::from_ref(&first));
    let replaced = import(&bridge, &newer, true).await.expect("replaced");
    assert_eq!(
        replaced.game.variables[0].default_value.as_deref(),
        Some("earth")
    );
    assert_ne!(replaced.game.version, first.game.version);
    assert_eq!(entries(&bridge).await, [replaced]);
}

#[tokio::test]
async fn an_imported_egg_is_kept_for_a_fresh_instance_and_removed_for_all() {
    let services = HostServices::in_memory();
    let rt = bridge_runtime();
    let first = load(&rt, BRIDGE, services.clone()).await;
    import(&first, &test_egg(|_| {}), false)
        .await
        .expect("imported");
    let second = load(&rt, BRIDGE, services).await;
    let ids: Vec<String> = second
        .game_types()
        .await
        .expect("listed")
        .into_iter()
        .map(|g| g.id)
        .collect();
    assert_eq!(ids, ["test"]);
    second
        .catalogue_remove("test")
        .await
        .expect("the call")
        .expect("removed");
    assert!(first.game_types().await.expect("listed").is_empty());
    match first.catalogue_remove("test").await.expect("the call") {
        Err(CatalogueError::NotFound(id)) => assert_eq!(id, "test"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn validate_enforces_the_eggs_own_rules() {
    let bridge = bridge().await;
    let csgo = import(
        &bridge,
        &egg("pterodactyl/source-engine__egg-counter--strike--global-offensive.json"),
        false,
    )
    .await
    .expect("imported");
    let id = &csgo.game.id;
    // `alpha_dash` and `alpha_num|size:32` are egg rules the Panel's typed
    // rules do not hold: the bridge checks them.
    let errors = bridge
        .validate_variables(
            id,
            &variables(
                &csgo,
                &[("SRCDS_MAP", "de dust 2"), ("STEAM_ACC", "not-a-token")],
            ),
        )
        .await
        .expect("the call")
        .expect_err("refused");
    let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
    assert!(
        keys.contains(&"SRCDS_MAP") && keys.contains(&"STEAM_ACC"),
        "{errors:?}"
    );
    bridge
        .validate_variables(
            id,
            &variables(&csgo, &[("STEAM_ACC", "0123456789ABCDEF0123456789ABCDEF")]),
        )
        .await
        .expect("the call")
        .expect("valid");
}

#[tokio::test]
async fn the_minetest_plans_name_its_images_quote_user_values_and_stop_with_shutdown() {
    let bridge = bridge().await;
    let minetest = import(
        &bridge,
        &egg("pelican/egg-pterodactyl-minetest.json"),
        false,
    )
    .await
    .expect("imported");
    assert_eq!(minetest.game.id, "minetest");
    assert_eq!(minetest.game.images.len(), 1);
    assert_eq!(
        minetest.game.images[0].reference,
        "ghcr.io/parkervcp/games:minetest"
    );
    let vars = variables(
        &minetest,
        &[
            ("SERVER_ADMIN_NAME", "admin"),
            ("WORLD_NAME", "w; touch /tmp/x"),
            ("SERVER_NAME", "Egg & co"),
        ],
    );
    bridge
        .validate_variables("minetest", &vars)
        .await
        .expect("the call")
        .expect("valid");
    let server = server("minetest", vars, 30000);

    let install = bridge
        .install_plan(&server)
        .await
        .expect("the call")
        .expect("a plan");
    assert_eq!(
        install.image.as_deref(),
        Some("ghcr.io/parkervcp/installers:debian")
    );
    let [InstallStep::RunScript(script)] = install.steps.as_slice() else {
        panic!("one script: {:?}", install.steps);
    };
    assert_eq!(script.interpreter, "bash");
    assert!(script.contents.starts_with("#!/bin/bash\n"));
    assert!(!script.contents.contains('\r'));
    assert!(script.env.contains(&kv("SERVER_PORT", "30000")));
    assert!(script.env.contains(&kv("SERVER_MEMORY", "2048")));

    let startup = bridge
        .startup_plan(&server)
        .await
        .expect("the call")
        .expect("a plan");
    assert_eq!(startup.program, "/bin/sh");
    let line = startup.args.last().expect("the startup line");
    assert!(
        line.starts_with("minetest --server --port 30000 --gameid minetest --world "),
        "{line}"
    );
    assert!(
        line.contains("--world /home/container/.minetest/worlds/'w; touch /tmp/x' "),
        "{line}"
    );
    assert!(startup.env.contains(&kv("WORLD_NAME", "w; touch /tmp/x")));
    assert!(startup.env.iter().any(|e| e.key == "STARTUP"));
    let edit = &startup.config_edits[0];
    assert_eq!(edit.path, ".minetest/minetest.conf");
    assert_eq!(edit.format, ConfigFormat::Plain);
    assert!(
        edit.set
            .contains(&kv("server_name", "server_name = Egg & co"))
    );
    assert!(edit.set.contains(&kv("name", "name = admin")));

    let stop = bridge.stop_plan(&server).await.expect("the call");
    assert_eq!(stop.method, StopMethod::ConsoleCommand("/shutdown".into()));

    let done = "2024-05-01 12:00:00: ACTION[Main]: Server for gameid=\"minetest\" listening on 0.0.0.0:30000.";
    assert_eq!(
        bridge
            .classify_line(&startup.console_context, done)
            .await
            .expect("the call"),
        LineKind::Ready
    );
    assert_eq!(
        bridge
            .classify_line(
                &startup.console_context,
                "2024-05-01 12:00:00: ACTION[Main]: loading"
            )
            .await
            .expect("the call"),
        LineKind::Plain
    );
}

#[tokio::test]
async fn an_egg_stopped_with_ctrl_c_gets_an_interrupt() {
    let bridge = bridge().await;
    let entry = import(
        &bridge,
        &test_egg(|e| e["config"]["stop"] = json!("^C")),
        false,
    )
    .await
    .expect("imported");
    let stop = bridge
        .stop_plan(&server(&entry.game.id, Vec::new(), 1))
        .await
        .expect("the call");
    assert_eq!(stop.method, StopMethod::SendSignal(Signal::Interrupt));
}

/// An HTTP server on loopback answering every request with `body`.
async fn serve(body: Vec<u8>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let app = axum::Router::new().fallback(move || {
        let body = body.clone();
        async move { body }
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

/// The bridge with loopback granted for HTTP, as an admin granting a local
/// mirror would (plugin HTTP refuses loopback otherwise).
async fn bridge_granting_loopback() -> Plugin {
    let mut manifest = cap_e2e::manifest(BRIDGE);
    manifest
        .capabilities
        .http
        .as_mut()
        .expect("the bridge requests HTTP")
        .allowed_hosts
        .push("127.0.0.1:*".into());
    let grants = cap_runtime::Grants::all_requested(&manifest);
    bridge_runtime()
        .load(cap_runtime::PluginSpec {
            manifest,
            component: Arc::from(cap_e2e::component(BRIDGE)),
            grants,
            limit_caps: None,
            services: HostServices::in_memory(),
        })
        .await
        .expect("the bridge loads")
}

#[tokio::test]
async fn an_update_check_fetches_the_update_url_and_reports_a_changed_default() {
    let placeholder = "http://127.0.0.1:1/egg.json";
    let newer_at = |url: &str| {
        test_egg(|e| {
            e["meta"]["update_url"] = json!(url);
            e["variables"][0]["default_value"] = json!("earth");
        })
    };
    // The newer egg names the same URL as the kept one: serve it first.
    let base = serve(newer_at(placeholder)).await;
    let url = format!("{base}/egg.json");
    let bridge = bridge_granting_loopback().await;
    let kept = test_egg(|e| e["meta"]["update_url"] = json!(url));
    import(&bridge, &kept, false).await.expect("imported");
    let before = entries(&bridge).await;
    let update = bridge
        .catalogue_check_update("test")
        .await
        .expect("the call")
        .expect("an update");
    assert!(
        update
            .changes
            .contains(&"variable NAME: default world -> earth".to_owned()),
        "{:?}",
        update.changes
    );
    assert_eq!(update.document, newer_at(placeholder));
    assert_eq!(entries(&bridge).await, before, "a check keeps nothing");
}

#[tokio::test]
async fn an_update_url_on_a_host_the_admin_did_not_grant_is_not_fetched() {
    let base = serve(test_egg(|_| {})).await;
    let bridge = bridge().await;
    import(
        &bridge,
        &test_egg(|e| e["meta"]["update_url"] = json!(format!("{base}/egg.json"))),
        false,
    )
    .await
    .expect("imported");
    match bridge
        .catalogue_check_update("test")
        .await
        .expect("the call")
    {
        Err(CatalogueError::Failed(error)) => {
            assert_eq!(error.code, "update-unreachable");
            assert!(error.message.contains("denied"), "{}", error.message);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_0_1_0_plugin_and_the_0_2_0_bridge_work_side_by_side_in_one_runtime() {
    let rt = bridge_runtime();
    let test_game = load(&rt, "test-game", HostServices::in_memory()).await;
    let bridge = load(&rt, BRIDGE, HostServices::in_memory()).await;
    assert_eq!(test_game.component_info().api_version.to_string(), "0.1.0");
    assert_eq!(bridge.component_info().api_version.to_string(), "0.2.0");

    import(&bridge, &egg("pelican/egg-veloren.json"), false)
        .await
        .expect("imported");
    let old: Vec<String> = test_game
        .game_types()
        .await
        .expect("the 0.1.0 game type")
        .into_iter()
        .map(|g| g.id)
        .collect();
    let new: Vec<String> = bridge
        .game_types()
        .await
        .expect("the egg's game type")
        .into_iter()
        .map(|g| g.id)
        .collect();
    assert_eq!(old, ["test-game"]);
    assert_eq!(new, ["veloren"]);
    let stop = bridge
        .stop_plan(&server("veloren", Vec::new(), 14004))
        .await
        .expect("the call");
    assert_eq!(
        stop.method,
        StopMethod::ConsoleCommand("shutdown graceful 10".into())
    );
    let stop = test_game
        .stop_plan(&server("test-game", Vec::new(), 25565))
        .await
        .expect("the 0.1.0 call");
    assert!(stop.grace_secs > 0);
}

#[tokio::test]
async fn an_egg_with_a_three_mebibyte_install_script_imports_and_exports_whole() {
    let bridge = bridge().await;
    let script = "echo 'a long install step'\n".repeat((3 << 20) / 25);
    let egg = test_egg(|e| e["scripts"]["installation"]["script"] = json!(script));
    assert!(egg.len() > 3 << 20, "{} bytes", egg.len());
    let entry = bridge
        .catalogue_import(&egg, false)
        .await
        .expect("a call")
        .expect("imported");
    let exported = bridge
        .catalogue_export(&entry.game.id)
        .await
        .expect("an export larger than the runtime's answer limit for other calls")
        .expect("exported");
    let again: serde_json::Value = serde_json::from_slice(&exported).expect("JSON");
    assert_eq!(again["scripts"]["installation"]["script"], json!(script));
}
