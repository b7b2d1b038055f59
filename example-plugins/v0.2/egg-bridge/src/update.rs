//! What a newer egg changes, one line per change for the admin who decides
//! whether to import it (`variable SERVER_PORT: default 25565 -> 25566`).

use cap_egg::{ConfigFile, Egg, StartupCommand};

/// Every difference between `old` and `new` that changes what a server
/// made from the egg does, or what admins and users see; empty when the
/// eggs mean the same.
pub(crate) fn changes(old: &Egg, new: &Egg) -> Vec<String> {
    let mut out = Vec::new();
    let mut add = |line: String| out.push(line);
    if old.version != new.version {
        add(format!("format: {} -> {}", old.version, new.version));
    }
    if old.name != new.name {
        let (from, to) = (
            crate::info::game_type_id(&old.name),
            crate::info::game_type_id(&new.name),
        );
        if from == to {
            add(format!("name: {:?} -> {:?}", old.name, new.name));
        } else {
            add(format!(
                "name: {:?} -> {:?}: imports as a new game type, {to}, beside {from}",
                old.name, new.name
            ));
        }
    }
    if old.description != new.description {
        add("description changed".into());
    }
    if old.update_url != new.update_url {
        add(format!(
            "update URL: {} -> {}",
            shown(old.update_url.as_deref()),
            shown(new.update_url.as_deref())
        ));
    }
    startup_changes(&old.startup_commands, &new.startup_commands, &mut add);
    image_changes(old, new, &mut add);
    match (&old.install, &new.install) {
        (None, None) => {}
        (None, Some(_)) => add("install script added".into()),
        (Some(_), None) => add("install script removed".into()),
        (Some(a), Some(b)) => {
            if a.container != b.container {
                add(format!(
                    "install container: {} -> {}",
                    a.container, b.container
                ));
            }
            if a.entrypoint != b.entrypoint {
                add(format!(
                    "install entrypoint: {} -> {}",
                    a.entrypoint, b.entrypoint
                ));
            }
            if a.script.replace("\r\n", "\n") != b.script.replace("\r\n", "\n") {
                add("install script changed".into());
            }
        }
    }
    config_file_changes(&old.config.files, &new.config.files, &mut add);
    let done =
        |egg: &Egg| -> Vec<String> { egg.config.done.iter().map(|d| d.as_egg_text()).collect() };
    if done(old) != done(new) {
        add(format!("done patterns: {:?} -> {:?}", done(old), done(new)));
    }
    if old.config.stop != new.config.stop {
        add(format!(
            "stop: {} -> {}",
            old.config.stop.as_egg_text(),
            new.config.stop.as_egg_text()
        ));
    }
    for feature in new.features.iter().filter(|f| !old.features.contains(f)) {
        add(format!("feature {feature:?} added"));
    }
    for feature in old.features.iter().filter(|f| !new.features.contains(f)) {
        add(format!("feature {feature:?} removed"));
    }
    if old.file_denylist != new.file_denylist {
        add(format!(
            "file denylist: {:?} -> {:?}",
            old.file_denylist, new.file_denylist
        ));
    }
    variable_changes(old, new, &mut add);
    out
}

fn shown(value: Option<&str>) -> &str {
    value.unwrap_or("none")
}

fn startup_changes(old: &[StartupCommand], new: &[StartupCommand], add: &mut impl FnMut(String)) {
    for command in new {
        match old.iter().find(|c| c.name == command.name) {
            None => add(format!(
                "startup {:?} added: {}",
                command.name, command.command
            )),
            Some(before) if before.command != command.command => add(format!(
                "startup {:?}: {} -> {}",
                command.name, before.command, command.command
            )),
            Some(_) => {}
        }
    }
    for command in old.iter().filter(|c| !new.iter().any(|n| n.name == c.name)) {
        add(format!("startup {:?} removed", command.name));
    }
}

fn image_changes(old: &Egg, new: &Egg, add: &mut impl FnMut(String)) {
    for image in &new.docker_images {
        match old
            .docker_images
            .iter()
            .find(|i| i.display_name == image.display_name)
        {
            None => add(format!(
                "image {:?} added: {}",
                image.display_name, image.image
            )),
            Some(before) if before.image != image.image => add(format!(
                "image {:?}: {} -> {}",
                image.display_name, before.image, image.image
            )),
            Some(_) => {}
        }
    }
    for image in old.docker_images.iter().filter(|i| {
        !new.docker_images
            .iter()
            .any(|n| n.display_name == i.display_name)
    }) {
        add(format!(
            "image {:?} removed: {}",
            image.display_name, image.image
        ));
    }
    let default = |egg: &Egg| egg.docker_images.first().map(|i| i.image.clone());
    if default(old) != default(new) {
        add(format!(
            "default image: {} -> {}",
            shown(default(old).as_deref()),
            shown(default(new).as_deref())
        ));
    }
}

fn config_file_changes(old: &[ConfigFile], new: &[ConfigFile], add: &mut impl FnMut(String)) {
    for file in new {
        match old.iter().find(|f| f.path == file.path) {
            None => add(format!("config file {:?} added", file.path)),
            Some(before) if before.parser != file.parser => add(format!(
                "config file {:?}: parser {} -> {}",
                file.path,
                before.parser.as_str(),
                file.parser.as_str()
            )),
            Some(before) if before.find != file.find => {
                add(format!("config file {:?}: replacements changed", file.path));
            }
            Some(_) => {}
        }
    }
    for file in old.iter().filter(|f| !new.iter().any(|n| n.path == f.path)) {
        add(format!("config file {:?} removed", file.path));
    }
}

fn variable_changes(old: &Egg, new: &Egg, add: &mut impl FnMut(String)) {
    for var in &new.variables {
        let key = &var.env_variable;
        let Some(before) = old.variable(key) else {
            add(format!(
                "variable {key} added (default {:?}, rules {})",
                var.default_value,
                rules_text(var)
            ));
            continue;
        };
        if before.default_value != var.default_value {
            add(format!(
                "variable {key}: default {} -> {}",
                before.default_value, var.default_value
            ));
        }
        if before.rules != var.rules {
            add(format!(
                "variable {key}: rules {} -> {}",
                rules_text(before),
                rules_text(var)
            ));
        }
        if before.name != var.name {
            add(format!(
                "variable {key}: name {:?} -> {:?}",
                before.name, var.name
            ));
        }
        if before.description != var.description {
            add(format!("variable {key}: description changed"));
        }
        if before.user_viewable != var.user_viewable {
            add(format!(
                "variable {key}: users {} see it",
                if var.user_viewable {
                    "now"
                } else {
                    "no longer"
                }
            ));
        }
        if before.user_editable != var.user_editable {
            add(format!(
                "variable {key}: users {} change it",
                if var.user_editable {
                    "now"
                } else {
                    "no longer"
                }
            ));
        }
    }
    for var in old
        .variables
        .iter()
        .filter(|v| new.variable(&v.env_variable).is_none())
    {
        add(format!("variable {} removed", var.env_variable));
    }
}

fn rules_text(var: &cap_egg::Variable) -> String {
    match var.rules.to_pipe_string() {
        rules if rules.is_empty() => "none".into(),
        rules => rules,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{fixture, minimal_egg};
    use serde_json::json;

    fn egg(patch: impl FnOnce(&mut serde_json::Value)) -> Egg {
        Egg::parse(&minimal_egg(patch)).expect("parses")
    }

    #[test]
    fn the_same_egg_changes_nothing() {
        let a = Egg::parse(&fixture("pterodactyl/minecraft__egg-paper.json")).expect("parses");
        let b = Egg::parse(a.export().as_bytes()).expect("again");
        assert_eq!(changes(&a, &b), Vec::<String>::new());
    }

    #[test]
    fn a_changed_default_is_one_line_naming_the_variable() {
        let old = egg(|_| {});
        let new = egg(|e| e["variables"][0]["default_value"] = json!("earth"));
        assert_eq!(
            changes(&old, &new),
            ["variable NAME: default world -> earth"]
        );
    }

    #[test]
    fn added_and_removed_variables_images_and_rules_are_listed() {
        let old = egg(|_| {});
        let new = egg(|e| {
            e["variables"][0]["rules"] = json!("required|string|max:30");
            e["variables"].as_array_mut().expect("a list").push(json!({
                "name": "Seed", "description": "", "env_variable": "SEED", "default_value": "",
                "user_viewable": true, "user_editable": true, "rules": "nullable|string"
            }));
            e["docker_images"] = json!({"Trixie": "debian:trixie"});
            e["startup"] = json!("./server --seed {{SEED}}");
            e["config"]["stop"] = json!("^C");
        });
        let lines = changes(&old, &new);
        for expected in [
            "variable NAME: rules required|string|max:20 -> required|string|max:30",
            "variable SEED added (default \"\", rules nullable|string)",
            "image \"Trixie\" added: debian:trixie",
            "image \"Debian\" removed: debian:stable",
            "default image: debian:stable -> debian:trixie",
            "stop: stop -> ^C",
        ] {
            assert!(
                lines.iter().any(|l| l == expected),
                "{expected:?} in {lines:#?}"
            );
        }
        assert!(
            lines.iter().any(|l| l.starts_with("startup \"Default\": ")),
            "{lines:#?}"
        );
    }

    #[test]
    fn a_renamed_egg_says_it_imports_as_a_new_game_type() {
        let old = egg(|_| {});
        let new = egg(|e| e["name"] = json!("Test Two"));
        assert_eq!(
            changes(&old, &new),
            ["name: \"Test\" -> \"Test Two\": imports as a new game type, test-two, beside test"]
        );
    }
}
