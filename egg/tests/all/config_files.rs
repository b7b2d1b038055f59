//! Config file rewriting with every parser, as Wings does it.

use cap_egg::{ConfigFile, Context, Egg, config_files};
use serde_json::json;

use crate::support::egg_json;

fn ctx() -> Context {
    let mut c = Context {
        ip: "0.0.0.0".into(),
        port: 27015,
        memory_mb: 1024,
        ..Context::default()
    };
    c.variables.insert("SERVER_NAME".into(), "My Server".into());
    c.variables.insert("MAX".into(), "32".into());
    c.config
        .insert("docker.interface".into(), "172.18.0.1".into());
    c
}

/// The first config file of an egg whose `config.files` is `files`.
fn file(files: serde_json::Value) -> ConfigFile {
    let egg = Egg::parse(&egg_json(|e| {
        e["config"]["files"] = json!(files.to_string())
    }))
    .expect("an egg");
    egg.config.files[0].clone()
}

fn apply(f: &ConfigFile, current: Option<&str>) -> String {
    let out = config_files::apply(f, current.map(str::as_bytes), &ctx()).expect("applied");
    String::from_utf8(out).expect("UTF-8")
}

#[test]
fn the_file_parser_replaces_lines_by_prefix() {
    let f = file(json!({"minetest.conf": {"parser": "file", "find": {
        "port": "port = {{server.build.default.port}}",
        "server_name": "server_name = {{server.build.env.SERVER_NAME}}"
    }}}));
    let out = apply(&f, Some("# conf\r\nport = 1\nserver_name = old\nother = 2"));
    assert_eq!(
        out,
        "# conf\nport = 27015\nserver_name = My Server\nother = 2\n"
    );
    assert_eq!(
        apply(&f, None),
        "",
        "a missing file stays empty, as in Wings"
    );
}

#[test]
fn the_properties_parser_sets_keys_and_keeps_the_header() {
    // `json!` sorts keys: the replacements run in this order.
    let f = file(
        json!({"server.properties": {"parser": "properties", "find": {
            "server-ip": "0.0.0.0",
            "server-port": "{{server.build.default.port}}",
            "motd": "{{env.SERVER_NAME}} \u{e9}",
            "new-key": "x"
        }}}),
    );
    let out = apply(
        &f,
        Some(
            "#Minecraft server properties\n#Mon Jan 01\nserver-port=25565\nmotd=A Minecraft Server\nlevel-name=world\n",
        ),
    );
    assert_eq!(
        out,
        "#Minecraft server properties\n#Mon Jan 01\nserver-port=27015\nmotd=My Server \\u00e9\nlevel-name=world\nnew-key=x\nserver-ip=0.0.0.0\n"
    );
}

#[test]
fn the_properties_parser_honours_if_value() {
    let f = file(json!({"a.properties": {"parser": "properties", "find": {
        "mode": {"survival": "creative"}
    }}}));
    assert_eq!(apply(&f, Some("mode=survival\n")), "mode=creative\n");
    assert_eq!(apply(&f, Some("mode=hardcore\n")), "mode=hardcore\n");
}

#[test]
fn the_ini_parser_edits_in_place_and_keeps_comments() {
    let f = file(json!({"Game.ini": {"parser": "ini", "find": {
        "[/Script/Engine.GameSession].MaxPlayers": "{{server.build.env.MAX}}",
        "ServerSettings.Name": "{{env.SERVER_NAME}}",
        "top": "1",
        "New.key": "v"
    }}}));
    let out = apply(
        &f,
        Some(
            "; top comment\ntop=0\n\n[/Script/Engine.GameSession]\nMaxPlayers = 10\n\n[ServerSettings]\n# the name\nName=Old\n",
        ),
    );
    assert_eq!(
        out,
        "; top comment\ntop=1\n\n[/Script/Engine.GameSession]\nMaxPlayers = 32\n\n[ServerSettings]\n# the name\nName=My Server\n\n[New]\nkey = v\n"
    );
}

#[test]
fn the_json_parser_sets_paths_wildcards_and_list_elements() {
    let f = file(json!({"config.json": {"parser": "json", "find": {
        "server.port": "{{server.build.default.port}}",
        "server.name": "{{env.SERVER_NAME}}",
        "servers.*.address": {"regex:^(127\\.0\\.0\\.1|localhost)(:\\d{1,5})?$": "{{config.docker.interface}}$2"},
        "listeners[0].host": "0.0.0.0:{{server.build.default.port}}",
        "flags.enabled": true
    }}}));
    let out = apply(
        &f,
        Some(
            r#"{"server": {"port": 1}, "servers": {"lobby": {"address": "localhost:25566"}, "far": {"address": "10.1.1.1:25565"}}, "listeners": [{"host": "x"}]}"#,
        ),
    );
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(
        v["server"]["port"], 27015,
        "a whole number is written as a number"
    );
    assert_eq!(v["server"]["name"], "My Server");
    assert_eq!(v["servers"]["lobby"]["address"], "172.18.0.1:25566");
    assert_eq!(v["servers"]["far"]["address"], "10.1.1.1:25565");
    assert_eq!(v["listeners"][0]["host"], "0.0.0.0:27015");
    assert_eq!(v["flags"]["enabled"], true);
    assert!(out.contains("\n    \"server\""), "four-space indent: {out}");
    let fresh: serde_json::Value = serde_json::from_str(&apply(&f, None)).expect("JSON");
    assert_eq!(fresh["listeners"][0]["host"], "0.0.0.0:27015");
}

#[test]
fn the_yaml_parser_sets_paths_like_the_bungeecord_egg() {
    let egg = Egg::parse(
        &std::fs::read(
            crate::support::eggs_dir().join("pterodactyl/minecraft__egg-bungeecord.json"),
        )
        .expect("the egg"),
    )
    .expect("an egg");
    let f = &egg.config.files[0];
    let out = config_files::apply(
        f,
        Some(b"listeners:\n- query_port: 25577\n  host: 0.0.0.0:25577\nservers:\n  lobby:\n    address: localhost:25565\n"),
        &ctx(),
    )
    .expect("applied");
    let v: serde_json::Value = serde_yaml_ng::from_slice(&out).expect("YAML");
    assert_eq!(v["listeners"][0]["query_port"], 27015);
    assert_eq!(v["listeners"][0]["host"], "0.0.0.0:27015");
    assert_eq!(v["servers"]["lobby"]["address"], "172.18.0.1:25565");
}

#[test]
fn the_xml_parser_sets_elements_and_attributes_like_the_trackmania_egg() {
    let f = file(json!({"dedicated_cfg.xml": {"parser": "xml", "find": {
        "dedicated.server_options.name": "{{server.environment.SERVER_NAME}}",
        "dedicated.system_config.server_port": "{{server.allocations.default.port}}",
        "dedicated.system_config.bind": "[ip='{{server.build.default.ip}}']",
        "dedicated.*.max_players": "{{env.MAX}}"
    }}}));
    let out = apply(
        &f,
        Some(
            "<?xml version=\"1.0\" encoding=\"utf-8\" ?>\n<dedicated>\n  <!-- options -->\n  <server_options><name>old &amp; gone</name><max_players>4</max_players></server_options>\n  <system_config/>\n</dedicated>\n",
        ),
    );
    assert!(out.contains("<name>My Server</name>"), "{out}");
    assert!(out.contains("<server_port>27015</server_port>"), "{out}");
    assert!(out.contains("<bind ip=\"0.0.0.0\"/>"), "{out}");
    assert!(out.contains("<max_players>32</max_players>"), "{out}");
    assert!(out.contains("<!-- options -->"), "{out}");
    let fresh = apply(&f, None);
    assert!(fresh.starts_with("<?xml"), "{fresh}");
    assert!(fresh.contains("<dedicated>"), "{fresh}");
}

#[test]
fn unreadable_current_contents_are_an_error_naming_the_file() {
    let f = file(json!({"c.json": {"parser": "json", "find": {"a": "b"}}}));
    let err = config_files::apply(&f, Some(b"{nope"), &ctx()).expect_err("not JSON");
    assert!(
        err.to_string()
            .starts_with("config file \"c.json\" (json):"),
        "{err}"
    );
}

#[test]
fn the_properties_parser_keeps_comments_and_spacing_of_lines_it_does_not_set() {
    let f = file(
        json!({"server.properties": {"parser": "properties", "find": {
            "server-port": "{{server.build.default.port}}"
        }}}),
    );
    assert_eq!(
        apply(
            &f,
            Some("#header\nmotd = A server\n# the port\nserver-port: 1\n")
        ),
        "#header\nmotd = A server\n# the port\nserver-port=27015\n"
    );
}

#[test]
fn a_file_value_with_a_line_break_is_refused_naming_the_key() {
    let f = file(json!({"minetest.conf": {"parser": "file", "find": {
        "server_name": "server_name = {{env.SERVER_NAME}}"
    }}}));
    let mut c = ctx();
    c.variables.insert(
        "SERVER_NAME".into(),
        "x\nsecure.enable_security = false".into(),
    );
    let err = config_files::apply(&f, Some(b"server_name = a\n"), &c).expect_err("refused");
    assert!(
        matches!(&err, cap_egg::Error::ConfigLineBreak { key, .. } if key == "server_name"),
        "{err}"
    );
}

#[test]
fn the_plan_dialect_spells_keys_as_the_plugin_api_does() {
    use cap_egg::Parser;
    use cap_egg::config_files::{Dialect, Edit, edit};
    let text = |parser, current: &str, edits: &[Edit]| {
        let out =
            edit("f", parser, Dialect::Plan, Some(current.as_bytes()), edits).expect("edited");
        String::from_utf8(out).expect("UTF-8")
    };
    // INI: the section is everything before the last dot.
    assert_eq!(
        text(
            Parser::Ini,
            "[a.b]\nport = 1\n",
            &[Edit::set("a.b.port", "2")]
        ),
        "[a.b]\nport = 2\n"
    );
    // XML: a path below the root, `@` for an attribute, `*` for any element.
    let xml = text(
        Parser::Xml,
        "<server><net><port>1</port></net></server>",
        &[
            Edit::set("net/port", "2"),
            Edit::set("net@bind", "0.0.0.0"),
            Edit::set("*/port@open", "yes"),
        ],
    );
    assert!(xml.contains("<net bind=\"0.0.0.0\">"), "{xml}");
    assert!(xml.contains("<port open=\"yes\">2</port>"), "{xml}");
    // Plain files: a prefix no line has is appended.
    assert_eq!(
        text(
            Parser::File,
            "eula=false\n",
            &[
                Edit::set("eula=", "eula=true"),
                Edit::set("motd=", "motd=hi")
            ]
        ),
        "eula=true\nmotd=hi\n"
    );
    // YAML: values typed as YAML reads them.
    let yaml = text(
        Parser::Yaml,
        "",
        &[Edit::set("a.on", "true"), Edit::set("a.ratio", "0.5")],
    );
    assert_eq!(yaml, "a:\n  on: true\n  ratio: 0.5\n");
}

#[test]
fn conditions_hold_the_same_way_in_every_format() {
    use cap_egg::Parser;
    use cap_egg::config_files::{Dialect, Edit, EditValue, edit};
    let when = |key: &str, if_value: &str, value: &str| Edit {
        key: key.into(),
        value: EditValue::Text(value.into()),
        when: Some(if_value.into()),
    };
    let text = |parser, current: &str, edits: &[Edit]| {
        let out =
            edit("f", parser, Dialect::Plan, Some(current.as_bytes()), edits).expect("edited");
        String::from_utf8(out).expect("UTF-8")
    };
    let local = "regex:^(127\\.0\\.0\\.1|localhost)(:\\d{1,5})?$";
    // Properties and INI: literal and `regex:` conditions on the value.
    assert_eq!(
        text(
            Parser::Properties,
            "a=localhost:1\nb=10.0.0.1:2\n",
            &[when("a", local, "10.88.0.1$2"), when("b", local, "x")]
        ),
        "a=10.88.0.1:1\nb=10.0.0.1:2\n"
    );
    assert_eq!(
        text(
            Parser::Ini,
            "[s]\nhost = 127.0.0.1\nmode = on\n",
            &[
                when("s.host", local, "10.88.0.1$2"),
                when("s.mode", "off", "on2")
            ]
        ),
        "[s]\nhost = 10.88.0.1\nmode = on\n"
    );
    // A plain file: the condition is about the whole line.
    assert_eq!(
        text(
            Parser::File,
            "bind=127.0.0.1\n",
            &[when(
                "bind=",
                "regex:^bind=127\\.0\\.0\\.1$",
                "bind=0.0.0.0"
            )]
        ),
        "bind=0.0.0.0\n"
    );
    // XML: the attribute the edit sets, else the element's text.
    let xml = text(
        Parser::Xml,
        "<c><s host=\"localhost\">a</s><s host=\"10.0.0.1\">b</s></c>",
        &[when("s@host", "localhost", "10.88.0.1")],
    );
    assert!(xml.contains("<s host=\"10.88.0.1\">a</s>"), "{xml}");
    assert!(xml.contains("<s host=\"10.0.0.1\">b</s>"), "{xml}");
    // A key without a value is never written by a condition, in any format.
    for (parser, current) in [
        (Parser::Json, "{}"),
        (Parser::Yaml, "a: 1\n"),
        (Parser::Properties, "a=1\n"),
        (Parser::Ini, "[s]\na = 1\n"),
        (Parser::File, "a=1\n"),
    ] {
        let missing = match parser {
            Parser::Ini => "s.missing",
            Parser::File => "missing=",
            _ => "missing",
        };
        assert_eq!(
            text(
                parser,
                current,
                &[when(missing, "", "x"), when(missing, "regex:.*", "x")]
            ),
            text(parser, current, &[]),
            "{parser:?}"
        );
    }
}

#[test]
fn an_invalid_condition_pattern_is_refused_naming_the_key_before_anything_is_applied() {
    use cap_egg::Parser;
    use cap_egg::config_files::{Dialect, Edit, EditValue, edit};
    let edits = [
        Edit::set("a", "2"),
        Edit {
            key: "servers.*.address".into(),
            value: EditValue::Text("x".into()),
            when: Some("regex:(unclosed".into()),
        },
    ];
    let error = edit(
        "proxy.yml",
        Parser::Yaml,
        Dialect::Plan,
        Some(b"a: 1\n"),
        &edits,
    )
    .expect_err("refused");
    let message = error.to_string();
    assert!(message.contains("servers.*.address"), "{message}");
    assert!(
        message.contains("not a valid regular expression"),
        "{message}"
    );
}
