//! `cap egg check`: offline, prints the game type, exits non-zero naming
//! the field of a bad egg.

use std::process::Command;

use crate::support::cap_binary;

fn eggs_dir() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../egg/tests/fixtures")
}

#[test]
fn egg_check_prints_the_game_type_an_egg_would_create() {
    let out = Command::new(cap_binary())
        .args(["egg", "check"])
        .arg(eggs_dir().join("pelican/egg-pterodactyl-minetest.json"))
        .output()
        .expect("cap runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "Game type: Minetest",
        "Format: PTDL_v2 (Json)",
        "Minetest: ghcr.io/parkervcp/games:minetest (default)",
        "Default: minetest --server --port {{SERVER_PORT}}",
        "SERVER_NAME (Server name): default \"Minetest server\"; rules required|string|max:64; user-editable",
        "SERVER_ADMIN_NAME",
        "must be set when a server is created",
        ".minetest/minetest.conf (file)",
        "Stop: the console command \"/shutdown\"",
        "\" Server for gameid\"",
        "Not supported yet:",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
}

#[test]
fn egg_check_lists_the_features_it_does_not_act_on() {
    let out = Command::new(cap_binary())
        .args(["egg", "check"])
        .arg(eggs_dir().join("pterodactyl/minecraft__egg-paper.json"))
        .output()
        .expect("cap runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        stdout.contains("features[0]: feature \"eula\" is not acted on yet"),
        "{stdout}"
    );
}

#[test]
fn egg_check_exits_non_zero_naming_the_field_of_a_bad_egg() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = dir.path().join("bad.json");
    let mut egg: serde_json::Value = serde_json::from_slice(
        &std::fs::read(eggs_dir().join("pterodactyl/minecraft__egg-paper.json")).expect("the egg"),
    )
    .expect("JSON");
    egg["variables"][0]["rules"] = serde_json::json!("nullable|string|shiny");
    std::fs::write(&file, serde_json::to_vec(&egg).expect("JSON")).expect("write");
    let out = Command::new(cap_binary())
        .args(["egg", "check"])
        .arg(&file)
        .output()
        .expect("cap runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "nothing half-printed");
    assert!(
        stderr.contains("variables[0].rules: unknown rule \"shiny\""),
        "{stderr}"
    );
}
