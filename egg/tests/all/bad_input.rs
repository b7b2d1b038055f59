//! Bad eggs: each refused with an error naming the field.

use cap_egg::{Egg, Error, MAX_EGG_BYTES};
use serde_json::json;

use crate::support::egg_json;

fn refused(bytes: &[u8]) -> String {
    match Egg::parse(bytes) {
        Ok(_) => panic!("the egg was accepted"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn malformed_json_is_refused_with_its_line_and_column() {
    let message = refused(b"{\n  \"meta\": {\"version\": \"PTDL_v2\"},\n  \"name\": \n}");
    assert!(message.starts_with("malformed JSON:"), "{message}");
    assert!(message.contains("line 4"), "{message}");
}

#[test]
fn malformed_yaml_is_refused_with_its_line() {
    let message = refused(b"meta:\n  version: PLCN_v3\nname: [unclosed\nstartup: x\n");
    assert!(message.starts_with("malformed YAML:"), "{message}");
    assert!(message.contains("line"), "{message}");
}

#[test]
fn a_valid_yaml_egg_is_read() {
    let yaml = b"meta:\n  version: PLCN_v3\n  update_url: null\nname: Y\ndocker_images:\n  Debian: debian:stable\nstartup_commands:\n  Default: ./run\nconfig:\n  files: {}\n  startup:\n    done: [ready, 'regex:^up']\n  logs: {}\n  stop: ^^C\nvariables:\n  - name: On\n    env_variable: ON\n    default_value: true\n    user_viewable: true\n    user_editable: false\n    rules: [required, 'in:true,false']\n";
    let egg = Egg::parse(yaml).expect("a YAML egg");
    assert_eq!(egg.variables[0].default_value, "true");
    assert_eq!(egg.config.done.len(), 2);
    assert!(egg.config.done[1].matches("up and running"));
    assert_eq!(Egg::parse(egg.export().as_bytes()).expect("again"), egg);
}

#[test]
fn an_unknown_meta_version_is_refused_naming_meta_version() {
    let message = refused(&egg_json(|e| e["meta"]["version"] = json!("PTDL_v9")));
    assert!(
        message.starts_with("meta.version: unknown version \"PTDL_v9\""),
        "{message}"
    );
}

#[test]
fn a_missing_startup_is_refused_naming_startup() {
    let message = refused(&egg_json(|e| {
        e.as_object_mut().expect("an object").remove("startup");
    }));
    assert_eq!(message, "startup: missing");
}

#[test]
fn a_plcn_v3_egg_without_startup_commands_is_refused_naming_them() {
    let message = refused(&egg_json(|e| e["meta"]["version"] = json!("PLCN_v3")));
    assert_eq!(message, "startup_commands: missing");
}

#[test]
fn a_default_that_breaks_its_own_rule_is_refused_naming_the_variable() {
    let message = refused(&egg_json(|e| {
        e["variables"][0]["default_value"] = json!("a name far longer than twenty characters")
    }));
    assert!(
        message.starts_with("variables[0].default_value:"),
        "{message}"
    );
    assert!(message.contains("NAME"), "{message}");
    assert!(message.contains("max:20"), "{message}");
}

#[test]
fn an_unknown_rule_is_refused_by_name() {
    let message = refused(&egg_json(|e| {
        e["variables"][0]["rules"] = json!("required|foo")
    }));
    assert_eq!(message, "variables[0].rules: unknown rule \"foo\"");
}

#[test]
fn an_unknown_rule_in_the_list_form_is_refused_by_name() {
    let message = refused(&egg_json(|e| {
        e["variables"][0]["rules"] = json!(["required", "uuid"])
    }));
    assert_eq!(message, "variables[0].rules: unknown rule \"uuid\"");
}

#[test]
fn a_regex_rule_with_look_around_is_refused_naming_the_rule() {
    let message = refused(&egg_json(|e| {
        e["variables"][0]["rules"] = json!(["required", "regex:/^(?!x).*$/"])
    }));
    assert!(
        message.starts_with("variables[0].rules: rule \"regex\""),
        "{message}"
    );
}

#[test]
fn a_config_file_with_an_unknown_parser_is_refused_naming_it() {
    let message = refused(&egg_json(|e| {
        e["config"]["files"] = json!(r#"{"server.cfg": {"parser": "toml", "find": {"a": "b"}}}"#)
    }));
    assert!(
        message.starts_with("config.files.\"server.cfg\".parser: unknown parser \"toml\""),
        "{message}"
    );
}

#[test]
fn a_config_file_path_outside_the_server_directory_is_refused_naming_it() {
    for path in [
        "../../etc/passwd",
        "/etc/passwd",
        "configs/../../x",
        "C:\\x.ini",
    ] {
        let files = json!({ path: {"parser": "file", "find": {"a": "b"}} }).to_string();
        let message = refused(&egg_json(|e| e["config"]["files"] = json!(files)));
        assert!(
            message.contains("path leaves the server directory"),
            "{path}: {message}"
        );
        assert!(
            message.starts_with(&format!("config.files.{path:?}")),
            "{path}: {message}"
        );
    }
}

#[test]
fn an_install_section_of_the_wrong_type_is_refused_naming_it() {
    let message = refused(&egg_json(|e| {
        e["scripts"]["installation"] = json!("bash install.sh")
    }));
    assert_eq!(
        message,
        "scripts.installation: expected an object, got a string"
    );
}

#[test]
fn config_files_that_are_not_json_are_refused_naming_config_files() {
    let message = refused(&egg_json(|e| e["config"]["files"] = json!("{not json")));
    assert!(
        message.starts_with("config.files: not valid JSON"),
        "{message}"
    );
}

#[test]
fn a_reserved_variable_name_is_refused_naming_the_field() {
    let message = refused(&egg_json(|e| {
        e["variables"][0]["env_variable"] = json!("SERVER_PORT")
    }));
    assert!(
        message.starts_with("variables[0].env_variable: \"SERVER_PORT\" is reserved"),
        "{message}"
    );
}

#[test]
fn an_unknown_stop_signal_is_refused_naming_config_stop() {
    let message = refused(&egg_json(|e| e["config"]["stop"] = json!("^Z")));
    assert_eq!(message, "config.stop: unknown signal \"^Z\"");
}

#[test]
fn a_fifty_megabyte_egg_is_refused_without_being_read_whole() {
    struct Endless {
        served: usize,
    }
    impl std::io::Read for Endless {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.served >= 50 * 1024 * 1024 {
                return Ok(0);
            }
            buf.fill(b' ');
            self.served += buf.len();
            Ok(buf.len())
        }
    }
    let mut reader = Endless { served: 0 };
    let err = Egg::read(&mut reader).expect_err("too large");
    assert_eq!(
        err,
        Error::TooLarge {
            limit: MAX_EGG_BYTES
        }
    );
    assert_eq!(
        err.to_string(),
        "the egg is larger than the 4194304 byte limit"
    );
    assert!(
        reader.served <= MAX_EGG_BYTES + 64 * 1024,
        "read {} bytes",
        reader.served
    );

    let bytes = vec![b' '; 50 * 1024 * 1024];
    assert_eq!(
        Egg::parse(&bytes).expect_err("too large"),
        Error::TooLarge {
            limit: MAX_EGG_BYTES
        }
    );
}

#[test]
fn a_conditional_replacement_whose_pattern_is_invalid_is_refused_naming_its_key() {
    let message = refused(&egg_json(|e| {
        e["config"]["files"] = json!(
            r#"{"proxy.yml": {"parser": "yaml", "find": {"servers.*.address": {"regex:(unclosed": "x"}}}}"#
        )
    }));
    assert!(
        message.starts_with("config.files.\"proxy.yml\".find.\"servers.*.address\""),
        "{message}"
    );
    assert!(message.contains("bad pattern"), "{message}");
}
