//! What an egg is as a game type: its id, its [`GameInfo`] and catalogue
//! [`Entry`], and the checks that keep the Panel's own rules (the host
//! checks every game type the plugin lists; an egg that would fail them is
//! refused at import, naming the field, rather than breaking the list for
//! every other egg).

use cap_egg::{Egg, Error as EggError, FindValue, Parser, Stop, StopSignal, Version};
use cap_plugin_sdk::catalogue::Entry;
use cap_plugin_sdk::game::{
    Arch, FieldError, GameInfo, Image, Os, Platform, PortProtocol, PortRequest, ValidationRule,
    Variable, VariableType,
};
use sha2::{Digest, Sha256};

/// The name of the one port an egg's server gets, the allocation players
/// connect to (`SERVER_PORT`; eggs take more ports through variables).
pub(crate) const PORT_NAME: &str = "game";

/// Largest console context, in bytes (the host refuses larger ones).
pub(crate) const MAX_CONSOLE_CONTEXT_BYTES: usize = 64 * 1024;

/// The game type id of an egg: its name in lowercase, every run of other
/// characters one `-`, starting with a letter and 2-63 characters long
/// (`egg-` in front when the name starts otherwise or is too short). It
/// depends on the name alone, so a re-import of the egg (an update, an
/// export of it) keeps its id.
pub(crate) fn game_type_id(name: &str) -> String {
    let mut id = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            id.push(c.to_ascii_lowercase());
        } else if !id.is_empty() && !id.ends_with('-') {
            id.push('-');
        }
    }
    let mut id = id.trim_end_matches('-').to_owned();
    if !id.starts_with(|c: char| c.is_ascii_lowercase()) || id.len() < 2 {
        id = format!("egg-{id}").trim_end_matches('-').to_owned();
    }
    id.truncate(63);
    id.trim_end_matches('-').to_owned()
}

/// The game type's version: `1.0.0` with the first 12 hex digits of the
/// SHA-256 of the egg as exported as build metadata. Eggs carry no version
/// of their own; this one changes exactly when what the egg says changes,
/// and an egg's export has the same one (export → import gives an equal egg).
pub(crate) fn version(egg: &Egg) -> String {
    let digest = Sha256::digest(egg.export().as_bytes());
    let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("1.0.0+{hex}")
}

/// One [`FieldError`] for a refused egg (cap-egg names the first problem:
/// the field, or `document` for bytes that are no egg at all).
pub(crate) fn egg_error(error: &EggError) -> FieldError {
    match error {
        EggError::Field { path, message } => FieldError::new(path.clone(), message.clone()),
        other => FieldError::new("document", other.to_string()),
    }
}

/// The catalogue entry of `egg`, or every field the Panel could not take.
pub(crate) fn entry(egg: &Egg) -> Result<Entry, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut unsupported: Vec<String> = egg.unsupported().iter().map(ToString::to_string).collect();
    let variables = egg
        .variables
        .iter()
        .enumerate()
        .map(|(i, v)| {
            if !is_env_name(&v.env_variable) {
                errors.push(FieldError::new(
                    format!("variables[{i}].env_variable"),
                    format!(
                        "{:?} is not an environment variable name the Panel can set \
                         (A-Z, 0-9 and _, not starting with a digit, at most 128)",
                        v.env_variable
                    ),
                ));
            }
            variable(v)
        })
        .collect();
    let images = images(egg, &mut errors, &mut unsupported);
    if let Some(install) = &egg.install
        && !install.script.trim().is_empty()
        && !install.container.is_empty()
        && !is_image_reference(&install.container)
    {
        errors.push(FieldError::new(
            "scripts.installation.container",
            format!("{:?} is not a container image reference", install.container),
        ));
    }
    check_config_files(egg, &mut errors, &mut unsupported);
    let context = crate::console::context(egg);
    if context.len() > MAX_CONSOLE_CONTEXT_BYTES {
        errors.push(FieldError::new(
            "config.startup.done",
            format!("the done patterns take more than {MAX_CONSOLE_CONTEXT_BYTES} bytes"),
        ));
    }
    let startup_commands = startup_commands(egg, &mut errors);
    if let Stop::Signal(StopSignal::Named(name)) = &egg.config.stop
        && crate::plans::named_signal(name).is_none()
    {
        unsupported.push(format!(
            "config.stop: the Panel cannot send {name}; the server is killed instead, as Wings does"
        ));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Entry {
        game: GameInfo {
            id: game_type_id(&egg.name),
            name: egg.name.clone(),
            version: version(egg),
            description: egg.description.clone().unwrap_or_default(),
            variables,
            ports: vec![PortRequest {
                name: PORT_NAME.into(),
                protocol: PortProtocol::TcpAndUdp,
                primary: true,
                env: Some("SERVER_PORT".into()),
            }],
            platforms: vec![Platform {
                os: Os::Linux,
                arch: Arch::Amd64,
            }],
            features: egg.features.clone(),
            min_memory_mb: 0,
            images,
            startup_commands,
            file_denylist: egg.file_denylist.clone(),
        },
        format: egg.version.as_str().to_owned(),
        update_url: egg.update_url.clone(),
        unsupported,
    })
}

/// The names of the egg's startup commands when it has several (PLCN_v3),
/// for servers to pick among; none when it has one.
fn startup_commands(egg: &Egg, errors: &mut Vec<FieldError>) -> Vec<String> {
    if egg.startup_commands.len() < 2 {
        return Vec::new();
    }
    let mut names: Vec<String> = Vec::new();
    for (i, command) in egg.startup_commands.iter().enumerate() {
        let name = command.name.trim();
        if name.is_empty() || name.len() > 191 || name.contains(char::is_control) {
            errors.push(FieldError::new(
                egg.startup_path(i),
                "a startup command's name is 1-191 bytes on one line",
            ));
        } else if names.iter().any(|n| n == name) {
            errors.push(FieldError::new(
                egg.startup_path(i),
                format!("the startup command {name:?} is named twice"),
            ));
        } else {
            names.push(name.to_owned());
        }
    }
    names
}

/// The egg's docker images as the game's images, each reference once.
fn images(egg: &Egg, errors: &mut Vec<FieldError>, unsupported: &mut Vec<String>) -> Vec<Image> {
    let mut images: Vec<Image> = Vec::new();
    for (i, image) in egg.docker_images.iter().enumerate() {
        let field = match egg.version {
            Version::PtdlV1 => format!("images[{i}]"),
            _ => format!("docker_images.{:?}", image.display_name),
        };
        if !is_image_reference(&image.image) {
            errors.push(FieldError::new(
                field,
                format!("{:?} is not a container image reference", image.image),
            ));
            continue;
        }
        let name = image.display_name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            errors.push(FieldError::new(
                field,
                "an image needs a name of 1-100 characters",
            ));
            continue;
        }
        if let Some(first) = images.iter().find(|i| i.reference == image.image) {
            unsupported.push(format!(
                "{field}: the same image as {:?}, offered once",
                first.name
            ));
            continue;
        }
        images.push(Image::new(name, image.image.clone()));
    }
    images
}

/// Config files the Agent cannot edit as the egg says: a `file` key or
/// value with a line break (one edit is one line) is refused (cap-egg
/// refuses conditions that are no valid pattern); node settings the Panel
/// does not know are reported.
fn check_config_files(egg: &Egg, errors: &mut Vec<FieldError>, unsupported: &mut Vec<String>) {
    for file in &egg.config.files {
        // cap-egg keeps paths inside the server directory; the Agent also
        // wants them `/`-separated and bounded.
        if file.path.contains('\\') || file.path.len() > 1024 {
            errors.push(FieldError::new(
                format!("config.files.{:?}", file.path),
                "a config file path is `/`-separated and at most 1024 bytes",
            ));
        }
        for find in &file.find {
            let field = format!("config.files.{:?}.find.{:?}", file.path, find.key);
            let values: Vec<&serde_json::Value> = match &find.value {
                FindValue::Set(value) => vec![value],
                FindValue::When(pairs) => pairs.iter().map(|(_, value)| value).collect(),
            };
            if file.parser == Parser::File
                && (find.key.contains(['\r', '\n', '\0'])
                    || values
                        .iter()
                        .any(|v| v.as_str().is_some_and(|s| s.contains(['\r', '\n', '\0']))))
            {
                errors.push(FieldError::new(
                    field.clone(),
                    "a `file` replacement is one line: its key and value may not hold a line break",
                ));
            }
            for value in values {
                let Some(text) = value.as_str() else {
                    continue;
                };
                for name in cap_egg::referenced_names(text) {
                    if let Some(setting) = name.strip_prefix("config.")
                        && !crate::plans::NODE_SETTINGS.contains(&setting)
                    {
                        unsupported.push(format!(
                            "{field}: the node setting {setting:?} is not known to the Panel: \
                             it renders empty"
                        ));
                    }
                }
            }
        }
    }
}

/// The Panel's variable for an egg variable. Types and typed rules are
/// taken only where they mean what the egg's rule means (never stricter:
/// the host checks them before `validate`, which checks every egg rule
/// with cap-egg).
pub(crate) fn variable(v: &cap_egg::Variable) -> Variable {
    let names: Vec<&str> = v.rules.iter().map(cap_egg::Rule::name).collect();
    let integer = names.iter().any(|n| matches!(*n, "integer" | "int"));
    let numeric_context = integer || names.contains(&"numeric");
    let mut rules = Vec::new();
    let mut choice = false;
    for rule in v.rules.iter() {
        if rule.name() == "required" {
            rules.push(ValidationRule::Required);
        } else if let Some(options) = rule.choices() {
            rules.push(ValidationRule::OneOf(options.to_vec()));
            choice = true;
        } else if rule.name() == "boolean" {
            rules.push(ValidationRule::OneOf(vec!["0".into(), "1".into()]));
            choice = true;
        } else if let Some((lo, hi)) = rule.digits() {
            rules.push(ValidationRule::Pattern("[0-9]*".into()));
            rules.extend(length(Some(lo as f64), Some(hi as f64)));
        } else if let Some((lo, hi)) = rule.size_bounds() {
            // Sizes compare numbers on whole-number variables, lengths on
            // the others; with `numeric` alone they compare numbers the
            // Panel's typed rules cannot hold (decimals): left to
            // `validate`.
            if integer {
                rules.extend(bounds(lo, hi));
            } else if !numeric_context {
                rules.extend(length(lo, hi));
            }
        }
    }
    let kind = if integer {
        VariableType::Integer
    } else if choice {
        VariableType::Choice
    } else {
        VariableType::String
    };
    Variable {
        key: v.env_variable.clone(),
        name: v.name.clone(),
        description: v.description.clone(),
        kind,
        default_value: (!v.needs_value()).then(|| v.default_value.clone()),
        user_viewable: v.user_viewable,
        user_editable: v.user_editable,
        rules,
    }
}

/// Length rules for a value between `lo` and `hi` characters.
fn length(lo: Option<f64>, hi: Option<f64>) -> Vec<ValidationRule> {
    let mut rules = Vec::new();
    if let Some(lo) = lo.map(f64::ceil).filter(|n| *n > 0.0) {
        rules.push(ValidationRule::MinLength(clamp_u32(lo)));
    }
    if let Some(hi) = hi.map(f64::floor).filter(|n| *n >= 0.0) {
        rules.push(ValidationRule::MaxLength(clamp_u32(hi)));
    }
    rules
}

/// Number rules for a whole number between `lo` and `hi`.
fn bounds(lo: Option<f64>, hi: Option<f64>) -> Vec<ValidationRule> {
    let mut rules = Vec::new();
    if let Some(lo) = lo {
        rules.push(ValidationRule::Min(clamp_i64(lo.ceil())));
    }
    if let Some(hi) = hi {
        rules.push(ValidationRule::Max(clamp_i64(hi.floor())));
    }
    rules
}

fn clamp_u32(n: f64) -> u32 {
    // `as` saturates for floats: the intent here.
    n.clamp(0.0, f64::from(u32::MAX)) as u32
}

fn clamp_i64(n: f64) -> i64 {
    n as i64
}

/// The host's rule for variable keys.
fn is_env_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        && !s.as_bytes()[0].is_ascii_digit()
}

/// The host's rule for image references.
pub(crate) fn is_image_reference(image: &str) -> bool {
    !image.is_empty()
        && image.len() <= 255
        && !image.starts_with(['-', '/', ':', '@'])
        && !image.ends_with(['/', ':', '@'])
        && image.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/' | b':' | b'@')
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{fixture, minimal_egg};

    fn rules_of(rules: &str) -> Variable {
        let egg = Egg::parse(&minimal_egg(|e| {
            e["variables"][0]["rules"] = serde_json::json!(rules);
            e["variables"][0]["default_value"] = serde_json::json!("");
        }))
        .expect("the egg parses");
        variable(&egg.variables[0])
    }

    #[test]
    fn an_id_is_the_name_in_lowercase_with_dashes() {
        assert_eq!(game_type_id("Minetest"), "minetest");
        assert_eq!(
            game_type_id("Counter-Strike: Global Offensive"),
            "counter-strike-global-offensive"
        );
        assert_eq!(game_type_id("  Team  Fortress 2 "), "team-fortress-2");
        assert_eq!(game_type_id("7 Days to Die"), "egg-7-days-to-die");
        assert_eq!(game_type_id("X"), "egg-x");
        assert_eq!(game_type_id("Ünïcödé"), "n-c-d");
        assert_eq!(game_type_id(&"a".repeat(100)).len(), 63);
        assert_eq!(
            game_type_id(&format!("{}-b", "a".repeat(62))),
            "a".repeat(62)
        );
    }

    #[test]
    fn every_derived_id_is_one_the_panel_accepts() {
        for name in [
            "",
            "-",
            "??",
            "Ab",
            "9",
            "a--b",
            "a -- b",
            "😀 game",
            "GAME_SERVER v2",
        ] {
            let id = game_type_id(name);
            assert!((2..=63).contains(&id.len()), "{name:?} -> {id:?}");
            assert!(id.starts_with(|c: char| c.is_ascii_lowercase()), "{id}");
            assert!(!id.ends_with('-') && !id.contains("--"), "{id}");
            assert!(
                id.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                "{id}"
            );
        }
    }

    #[test]
    fn string_sizes_become_length_rules_and_integer_sizes_number_rules() {
        assert_eq!(
            rules_of("required|string|max:20").rules,
            [ValidationRule::Required, ValidationRule::MaxLength(20)]
        );
        let players = rules_of("required|integer|between:1,64");
        assert_eq!(players.kind, VariableType::Integer);
        assert_eq!(
            players.rules,
            [
                ValidationRule::Required,
                ValidationRule::Min(1),
                ValidationRule::Max(64)
            ]
        );
        // `numeric` allows decimals: its sizes are left to `validate`.
        assert_eq!(rules_of("numeric|max:2.5").rules, []);
    }

    #[test]
    fn choices_and_booleans_become_one_of_rules() {
        let mode = rules_of("required|in:survival,\"creative, peaceful\"");
        assert_eq!(mode.kind, VariableType::Choice);
        assert_eq!(
            mode.rules[1],
            ValidationRule::OneOf(vec!["survival".into(), "creative, peaceful".into()])
        );
        let flag = rules_of("boolean");
        assert_eq!(flag.kind, VariableType::Choice);
        assert_eq!(
            flag.rules,
            [ValidationRule::OneOf(vec!["0".into(), "1".into()])]
        );
    }

    #[test]
    fn a_required_variable_with_an_empty_default_has_no_default() {
        let token = rules_of("required|string");
        assert_eq!(token.default_value, None);
        let optional = rules_of("nullable|string");
        assert_eq!(optional.default_value.as_deref(), Some(""));
    }

    #[test]
    fn the_minetest_egg_is_one_game_with_its_image_and_a_game_port() {
        let egg = Egg::parse(&fixture("pelican/egg-pterodactyl-minetest.json")).expect("parses");
        let entry = entry(&egg).expect("the Panel takes it");
        assert_eq!(entry.game.id, "minetest");
        assert_eq!(entry.format, "PTDL_v2");
        assert_eq!(
            entry.game.images,
            [Image::new("Minetest", "ghcr.io/parkervcp/games:minetest")]
        );
        assert_eq!(entry.game.ports.len(), 1);
        assert_eq!(entry.game.ports[0].env.as_deref(), Some("SERVER_PORT"));
        assert!(
            entry.game.version.starts_with("1.0.0+"),
            "{}",
            entry.game.version
        );
    }

    #[test]
    fn a_conditional_replacement_is_taken_and_features_are_listed_as_unsupported() {
        let egg =
            Egg::parse(&fixture("pterodactyl/minecraft__egg-bungeecord.json")).expect("parses");
        let entry = entry(&egg).expect("the Panel takes it");
        let lines = entry.unsupported.join("\n");
        assert!(!lines.contains("servers.*.address"), "{lines}");
        assert!(!lines.contains("docker.interface"), "{lines}");
        assert!(lines.contains("feature \"eula\""), "{lines}");
    }

    #[test]
    fn pelican_startup_commands_are_offered_by_name_and_the_denylist_is_carried() {
        let egg = Egg::parse(&crate::tests::startup_commands_egg(|e| {
            e["file_denylist"] = serde_json::json!(["*.jar", "!server.jar"]);
        }))
        .expect("parses");
        let entry = entry(&egg).expect("taken");
        assert_eq!(entry.game.startup_commands, ["Default", "Low memory"]);
        assert_eq!(entry.game.file_denylist, ["*.jar", "!server.jar"]);
        assert!(
            !entry
                .unsupported
                .iter()
                .any(|l| l.contains("startup_commands") || l.contains("file_denylist")),
            "{:?}",
            entry.unsupported
        );
        let one = Egg::parse(&minimal_egg(|_| {})).expect("parses");
        assert!(
            super::entry(&one)
                .expect("taken")
                .game
                .startup_commands
                .is_empty(),
            "one startup: no choice"
        );
    }

    #[test]
    fn a_lowercase_variable_name_is_refused_naming_the_field() {
        let egg = Egg::parse(&minimal_egg(|e| {
            e["variables"][0]["env_variable"] = serde_json::json!("server_name");
        }))
        .expect("cap-egg takes it");
        let errors = entry(&egg).expect_err("the Panel cannot set it");
        assert_eq!(errors[0].key, "variables[0].env_variable");
    }

    #[test]
    fn an_image_that_is_no_reference_is_refused_naming_it() {
        let egg = Egg::parse(&minimal_egg(|e| {
            e["docker_images"] =
                serde_json::json!({"Debian": "debian:stable", "Bad": "no spaces please"});
        }))
        .expect("cap-egg takes it");
        let errors = entry(&egg).expect_err("refused");
        assert_eq!(errors[0].key, "docker_images.\"Bad\"");
    }

    #[test]
    fn the_same_image_twice_is_offered_once() {
        let egg = Egg::parse(&minimal_egg(|e| {
            e["docker_images"] = serde_json::json!({"A": "debian:stable", "B": "debian:stable"});
        }))
        .expect("parses");
        let entry = entry(&egg).expect("taken");
        assert_eq!(entry.game.images, [Image::new("A", "debian:stable")]);
        assert!(
            entry
                .unsupported
                .iter()
                .any(|l| l.starts_with("docker_images.\"B\""))
        );
    }

    #[test]
    fn only_node_settings_the_panel_does_not_know_are_listed_as_unsupported() {
        let egg = Egg::parse(&minimal_egg(|e| {
            e["config"]["files"] = serde_json::json!(
                r#"{"config.yml": {"parser": "yaml", "find": {
                    "host": "{{config.docker.interface}}",
                    "sftp": "{{config.system.sftp.bind_port}}"
                }}}"#
            );
        }))
        .expect("parses");
        let entry = entry(&egg).expect("taken");
        let lines = entry.unsupported.join("\n");
        assert!(
            lines.contains(
                "config.files.\"config.yml\".find.\"sftp\": the node setting \"system.sftp.bind_port\""
            ),
            "{lines}"
        );
        assert!(!lines.contains("find.\"host\""), "{lines}");
    }

    #[test]
    fn a_config_path_with_backslashes_is_refused_naming_it() {
        let egg = Egg::parse(&minimal_egg(|e| {
            e["config"]["files"] =
                serde_json::json!(r#"{"cfg\\server.ini": {"parser": "ini", "find": {"a": "b"}}}"#);
        }))
        .expect("cap-egg takes it");
        let errors = entry(&egg).expect_err("the Agent would not");
        assert_eq!(errors[0].key, "config.files.\"cfg\\\\server.ini\"");
    }

    #[test]
    fn the_version_follows_what_the_egg_says() {
        let a = Egg::parse(&minimal_egg(|_| {})).expect("parses");
        let b = Egg::parse(&minimal_egg(|e| {
            e["startup"] = serde_json::json!("./other")
        }))
        .expect("parses");
        assert_eq!(
            version(&a),
            version(&Egg::parse(a.export().as_bytes()).expect("again"))
        );
        assert_ne!(version(&a), version(&b));
    }
}
