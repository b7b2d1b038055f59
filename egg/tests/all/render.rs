//! Startup lines and placeholders: values are substituted and quoted,
//! never executed.

use std::collections::BTreeMap;
use std::process::Command;

use cap_egg::{Context, Egg, render_startup, render_value};

use crate::support::egg_json;

fn ctx(vars: &[(&str, &str)]) -> Context {
    Context {
        variables: vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ip: "10.0.0.5".into(),
        port: 25565,
        memory_mb: 2048,
        ..Context::default()
    }
}

/// Runs `line` with `sh -c 'printf "%s\n" <line>'`-style: prints each word
/// the shell sees, one per line.
fn shell_words(line: &str) -> Vec<String> {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("printf '%s\\n' {line}"))
        .current_dir(std::env::temp_dir())
        .output()
        .expect("sh runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("UTF-8")
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_startup_line_with_shell_metacharacters_in_a_user_editable_variable_is_quoted_not_executed() {
    let egg = Egg::parse(&egg_json(|_| {})).expect("an egg");
    assert!(egg.variable("NAME").is_some_and(|v| v.user_editable));
    let marker = std::env::temp_dir().join(format!("cap-egg-pwned-{}", std::process::id()));
    let _ = std::fs::remove_file(&marker);
    let evil = format!(
        "x; touch {m} $(touch {m}) `touch {m}` '\"$HOME\" && touch {m}",
        m = marker.display()
    );
    let mut values = BTreeMap::new();
    values.insert("NAME".to_owned(), evil.clone());
    let mut c = ctx(&[]);
    // The rules allow at most 20 characters: check the quoting on its own.
    assert!(egg.environment(&values).is_err());
    c.variables = values;
    let line = render_startup(&egg.startup_commands[0].command, &c);
    let words = shell_words(line.trim_start_matches("./server "));
    assert_eq!(words, ["--port", "25565", "--name", evil.as_str()]);
    assert!(!marker.exists(), "a value ran as a command");
}

#[test]
fn values_inside_double_quotes_are_escaped_for_double_quotes() {
    let c = ctx(&[("DESC", "say \"hi\" $HOME `id` \\ ok")]);
    let line = render_startup(r#"-n"{{DESC}}" -x"#, &c);
    assert_eq!(shell_words(&line), [r#"-nsay "hi" $HOME `id` \ ok"#, "-x"]);
}

#[test]
fn values_inside_single_quotes_cannot_close_them() {
    let c = ctx(&[("V", "it's; id")]);
    let line = render_startup("'pre {{V}} post'", &c);
    assert_eq!(shell_words(&line), ["pre it's; id post"]);
}

#[test]
fn values_inside_a_command_substitution_in_double_quotes_stay_literal() {
    let c = ctx(&[("SERVER_JARFILE", "a b;c.jar")]);
    let line = render_startup(
        r#"$( [ ! -f /nonexistent ] && printf %s "-jar {{SERVER_JARFILE}}" || printf %s "@args" )"#,
        &c,
    );
    assert_eq!(shell_words(&format!("\"{line}\"")), ["-jar a b;c.jar"]);
}

#[test]
fn dollar_brace_variables_and_server_build_placeholders_are_substituted() {
    let c = ctx(&[("MAP", "de_dust2")]);
    assert_eq!(
        render_startup(
            "./srcds +map ${MAP} +ip {{server.build.default.ip}} -port {{server.build.default.port}} -m {{server.build.memory}} {{SERVER_PORT}} {{server.build.env.MAP}}",
            &c
        ),
        "./srcds +map de_dust2 +ip 10.0.0.5 -port 25565 -m 2048 25565 de_dust2"
    );
    assert_eq!(
        render_startup("'${MAP}'", &c),
        "'${MAP}'",
        "single quotes keep a dollar-brace literal"
    );
}

#[test]
fn an_empty_value_renders_as_an_empty_word() {
    let c = ctx(&[("PASS", "")]);
    let line = render_startup("run -p {{PASS}} -q", &c);
    assert_eq!(line, "run -p '' -q");
    assert_eq!(shell_words(&line), ["run", "-p", "", "-q"]);
}

#[test]
fn config_values_substitute_every_spelling_of_a_placeholder_unquoted() {
    let mut c = ctx(&[("SERVER_NAME", "My \"Server\"")]);
    c.config
        .insert("docker.interface".into(), "172.18.0.1".into());
    assert_eq!(
        render_value("port = {{server.allocations.default.port}}", &c),
        "port = 25565"
    );
    assert_eq!(render_value("{{server.build.default.port}}", &c), "25565");
    assert_eq!(
        render_value("n={{server.environment.SERVER_NAME}}", &c),
        "n=My \"Server\""
    );
    assert_eq!(
        render_value("{{env.SERVER_NAME}}|{{server.build.env.SERVER_NAME}}", &c),
        "My \"Server\"|My \"Server\""
    );
    assert_eq!(
        render_value("{{config.docker.interface}}$2", &c),
        "172.18.0.1$2"
    );
    assert_eq!(render_value("{{server.nothing}}x", &c), "x");
    assert_eq!(
        render_value("mode = {{server.environment.X}", &c),
        "mode = {{server.environment.X}"
    );
}

#[test]
fn a_startup_placeholder_no_variable_defines_is_reported() {
    let egg = Egg::parse(&egg_json(|e| {
        e["startup"] = serde_json::json!("./run {{NAME}} {{MISSING}}")
    }))
    .expect("an egg");
    let unsupported: Vec<String> = egg.unsupported().iter().map(ToString::to_string).collect();
    assert!(
        unsupported
            .iter()
            .any(|u| u.starts_with("startup:") && u.contains("MISSING")),
        "{unsupported:?}"
    );
    assert!(
        !unsupported.iter().any(|u| u.contains("\"NAME\"")),
        "{unsupported:?}"
    );
}

#[test]
fn the_environment_uses_defaults_and_refuses_values_that_break_rules() {
    let egg = Egg::parse(&egg_json(|_| {})).expect("an egg");
    let env = egg.environment(&BTreeMap::new()).expect("defaults");
    assert_eq!(env["NAME"], "world");
    let mut values = BTreeMap::new();
    values.insert("NAME".to_owned(), String::new());
    let err = egg.environment(&values).expect_err("required");
    assert!(err.to_string().starts_with("NAME:"), "{err}");
    values.clear();
    values.insert("OTHER".to_owned(), "x".into());
    assert!(egg.environment(&values).is_err());
}
