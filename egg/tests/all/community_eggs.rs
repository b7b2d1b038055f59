//! The 15 community eggs: each imports, and import → export → import
//! gives an equal egg.

use cap_egg::{Egg, Parser, Stop, StopSignal, Syntax, Version};

use crate::support::community_eggs;

fn load(name: &str) -> Egg {
    let (_, bytes) = community_eggs()
        .into_iter()
        .find(|(n, _)| n.ends_with(name))
        .unwrap_or_else(|| panic!("no egg {name}"));
    Egg::parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn all_fifteen_community_eggs_import_and_round_trip_through_export() {
    let eggs = community_eggs();
    assert_eq!(eggs.len(), 15, "the shared eggs: 10 Pterodactyl, 5 Pelican");
    for (name, bytes) in eggs {
        let egg = Egg::parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let exported = egg.export();
        let again = Egg::parse(exported.as_bytes())
            .unwrap_or_else(|e| panic!("{name}: the export does not import: {e}\n{exported}"));
        assert_eq!(again, egg, "{name}: export changed the egg");
        assert_eq!(again.export(), exported, "{name}: export is not stable");
    }
}

#[test]
fn every_format_of_the_community_eggs_is_exported_in_its_own_version() {
    let mut seen = Vec::new();
    for (name, bytes) in community_eggs() {
        let egg = Egg::parse(&bytes).expect("an egg");
        let exported: serde_json::Value = serde_json::from_str(&egg.export()).expect("JSON");
        assert_eq!(exported["meta"]["version"], egg.version.as_str(), "{name}");
        seen.push(egg.version);
    }
    for v in [
        Version::PtdlV1,
        Version::PtdlV2,
        Version::PlcnV1,
        Version::PlcnV2,
        Version::PlcnV3,
    ] {
        assert!(seen.contains(&v), "{v} is among the community eggs");
    }
}

#[test]
fn a_ptdl_v1_image_list_reads_as_images_named_by_themselves() {
    let egg = load("egg-team-fortress2.json");
    assert_eq!(egg.version, Version::PtdlV1);
    assert_eq!(egg.docker_images.len(), 1);
    assert_eq!(
        egg.docker_images[0].display_name,
        "ghcr.io/pterodactyl/games:source"
    );
    assert_eq!(
        egg.docker_images[0].image,
        "ghcr.io/pterodactyl/games:source"
    );
    assert!(egg.export().contains("\"images\""));
}

#[test]
fn a_plcn_v3_egg_has_named_startup_commands_and_an_icon() {
    let egg = load("egg-spacestation14.json");
    assert_eq!(egg.version, Version::PlcnV3);
    assert_eq!(egg.startup_commands[0].name, "Default");
    assert_eq!(egg.startup_commands[0].command, "./Robust.Server");
    assert!(
        egg.icon
            .as_deref()
            .is_some_and(|i| i.starts_with("data:image/png;base64,"))
    );
    assert_eq!(egg.config.stop, Stop::Signal(StopSignal::Interrupt));
}

#[test]
fn the_minetest_egg_reads_its_config_file_done_pattern_stop_and_variables() {
    let egg = load("egg-pterodactyl-minetest.json");
    assert_eq!(
        egg.docker_images[0].image,
        "ghcr.io/parkervcp/games:minetest"
    );
    assert_eq!(egg.config.files[0].path, ".minetest/minetest.conf");
    assert_eq!(egg.config.files[0].parser, Parser::File);
    assert!(egg.config.done[0].matches("2024-01-01 ACTION[Main]:  Server for gameid=\"minetest\""));
    assert_eq!(egg.config.stop, Stop::Command("/shutdown".into()));
    let admin = egg
        .variable("SERVER_ADMIN_NAME")
        .expect("the admin variable");
    assert!(admin.needs_value(), "required with an empty default");
    assert!(
        egg.variable("SERVER_NAME")
            .is_some_and(|v| !v.needs_value())
    );
}

#[test]
fn features_are_reported_as_not_acted_on() {
    let egg = load("minecraft__egg-paper.json");
    let unsupported: Vec<String> = egg.unsupported().iter().map(ToString::to_string).collect();
    for feature in ["eula", "java_version", "pid_limit"] {
        assert!(
            unsupported
                .iter()
                .any(|u| u.contains(feature) && u.contains("not acted on")),
            "{feature} in {unsupported:?}"
        );
    }
}

#[test]
fn teamspeak_log_settings_are_kept_and_reported() {
    let egg = load("voice-servers__egg-teamspeak3-server.json");
    assert_eq!(egg.config.logs["location"], "logs/ts3.log");
    assert!(egg.unsupported().iter().any(|u| u.path == "config.logs"));
}

#[test]
fn a_yaml_export_of_a_community_egg_imports_to_the_same_egg() {
    for (name, bytes) in community_eggs() {
        let mut egg = Egg::parse(&bytes).expect("an egg");
        egg.syntax = Syntax::Yaml;
        egg.layout.config_as_strings = false;
        let yaml = egg.export();
        let again = Egg::parse(yaml.as_bytes()).unwrap_or_else(|e| panic!("{name}: {e}\n{yaml}"));
        assert_eq!(again.syntax, Syntax::Yaml);
        assert_eq!(again, egg, "{name}");
    }
}
