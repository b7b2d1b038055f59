//! The plans for a server made from an egg, as Pterodactyl's Wings would
//! run it: the install script in the egg's install container, the startup
//! line rendered and run by a shell in the image the server uses, the
//! egg's config files edited before every start, and the egg's stop.
//!
//! - **Environment.** Installs get every variable plus `SERVER_MEMORY`,
//!   `SERVER_IP` and `SERVER_PORT`, as Wings gives its install containers;
//!   starts get those, `STARTUP` (the egg's startup line as written) and
//!   `P_SERVER_UUID`, as Wings sets them. The timezone is the node's
//!   business, not the egg's: no `TZ` is set here.
//! - **Startup.** The line is rendered with cap-egg's quoting-safe
//!   [`render_startup`]: every substituted value is one literal shell word,
//!   whatever a user typed. Wings' images run the line through `bash`
//!   (their entrypoints `eval` it), and community eggs use bash syntax
//!   (`[[ … ]]`, `==`), so it runs in `bash` where the image has one and in
//!   `sh` otherwise: `/bin/sh -c 'exec bash -c "$1"' startup <line>`.
//! - **Install.** The script's `\r\n` become `\n` (eggs edited on Windows
//!   carry them; Wings converts them too), it runs with the egg's
//!   entrypoint (`sh` when it names none) for at most
//!   [`INSTALL_TIMEOUT_SECS`].
//! - **Config files.** Each `config.files` entry is one [`ConfigEdit`]
//!   whose values are rendered for the server (`{{server.build.default.port}}`,
//!   `{{env.X}}`, …, and the node settings of [`NODE_SETTINGS`] from the
//!   server context's node; other `{{config.…}}` render empty and are
//!   listed as unsupported at import). Keys follow the documented meaning of each format:
//!   `file` becomes `plain` (a line prefix), `properties` and `ini` keys
//!   stay, YAML and JSON paths write list indexes as path segments
//!   (`a[0].b` → `a.0.b`), XML paths are `/`-separated below the root
//!   element (the egg's path names the root) with `[attr='v']` values
//!   setting `@attr`. `*` stays as it is: it means "every child". A
//!   replacement on a condition (`{"regex:…": "…$1"}` or a plain value)
//!   is a `set-if` of the edit, its `if_value` as the egg wrote it and its
//!   value rendered; the Agent applies those after the plain ones.
//! - **Startup commands.** PLCN_v3's named startup commands are the game
//!   type's `startup-commands`; a server runs the one it picked
//!   (`server-context.startup-command`), else the first.
//! - **Stop.** A command is written to the console; `^C` sends SIGINT;
//!   `^^C` kills at once (Wings sends SIGKILL); `^SIGTERM` and the like
//!   send that signal, and one the Panel cannot send kills, as Wings does.

use std::collections::BTreeMap;

use cap_egg::{
    ConfigFile, Context, Egg, FindValue, Parser, Stop, StopSignal, render_startup, render_value,
};
use cap_plugin_sdk::game::{
    BackupCommands, ConditionalSet, ConfigEdit, ConfigFormat, InstallPlan, InstallStep, Script,
    ServerContext, Signal, StartupPlan, StopMethod, StopPlan,
};
use cap_plugin_sdk::types::{KeyValue, PluginError};

/// Longest an install may run. Wings sets none; installs download game
/// files (a Source-engine game is tens of gigabytes), so the bound is
/// generous and only stops a script that hangs.
pub(crate) const INSTALL_TIMEOUT_SECS: u32 = 2 * 60 * 60;

/// Seconds between the egg's stop and SIGKILL.
pub(crate) const STOP_GRACE_SECS: u32 = 30;

/// The shell script that runs a rendered startup line (`$1`) in bash when
/// the image has it, in sh otherwise.
pub(crate) const STARTUP_SHELL: &str =
    "if command -v bash >/dev/null 2>&1; then exec bash -c \"$1\"; fi; exec sh -c \"$1\"";

/// What placeholders resolve to for `server`: the egg's variables (the
/// server's values, the egg's defaults for variables the server has no
/// value for, each checked against its rules), the primary allocation, the
/// memory limit and the server's other facts.
///
/// # Errors
///
/// `invalid-variable` for a value that breaks its variable's rules,
/// `no-port` when the server has no allocation.
pub(crate) fn context(egg: &Egg, server: &ServerContext) -> Result<Context, PluginError> {
    let mut variables = BTreeMap::new();
    for variable in &egg.variables {
        let value = server
            .variable(&variable.env_variable)
            .map_or_else(|| variable.default_value.clone(), str::to_owned);
        variable
            .check(&value)
            .map_err(|e| PluginError::new("invalid-variable", e.to_string()))?;
        variables.insert(variable.env_variable.clone(), value);
    }
    let port = server
        .port(crate::info::PORT_NAME)
        .or_else(|| server.ports.first())
        .ok_or_else(|| PluginError::new("no-port", "the server has no allocation"))?;
    let facts = BTreeMap::from([
        ("uuid".to_owned(), server.server_id.clone()),
        ("name".to_owned(), server.name.clone()),
        ("build.disk".to_owned(), server.disk_mb.to_string()),
        ("build.cpu".to_owned(), server.cpu_percent.to_string()),
    ]);
    Ok(Context {
        variables,
        ip: port.ip.clone(),
        port: port.port,
        memory_mb: server.memory_mb,
        server: facts,
        config: node_settings(server),
    })
}

/// The node settings eggs name as `{{config.…}}`: Wings' configuration
/// keys the Panel knows an answer for. Both spellings of the Docker
/// network's interface (`docker.interface`, the one eggs use, and Wings'
/// own `docker.network.interface`) are where a game server reaches its
/// node's host.
pub(crate) const NODE_SETTINGS: [&str; 2] = ["docker.interface", "docker.network.interface"];

fn node_settings(server: &ServerContext) -> BTreeMap<String, String> {
    let host = &server.node.host_address;
    if host.is_empty() {
        return BTreeMap::new();
    }
    NODE_SETTINGS
        .iter()
        .map(|key| ((*key).to_owned(), host.clone()))
        .collect()
}

/// The variables and the allocation as environment, Wings' names.
fn environment(ctx: &Context) -> Vec<KeyValue> {
    let mut env: Vec<KeyValue> = ctx
        .variables
        .iter()
        .map(|(k, v)| KeyValue::new(k, v))
        .collect();
    env.push(KeyValue::new("SERVER_MEMORY", ctx.memory_mb.to_string()));
    env.push(KeyValue::new("SERVER_IP", &ctx.ip));
    env.push(KeyValue::new("SERVER_PORT", ctx.port.to_string()));
    env
}

/// The install: the egg's script in its install container; nothing when
/// the egg has no script.
pub(crate) fn install(egg: &Egg, server: &ServerContext) -> Result<InstallPlan, PluginError> {
    let ctx = context(egg, server)?;
    let Some(install) = egg.install.as_ref().filter(|i| !i.script.trim().is_empty()) else {
        return Ok(InstallPlan {
            steps: Vec::new(),
            image: None,
        });
    };
    let interpreter = match install.entrypoint.trim() {
        "" => "sh".to_owned(),
        entrypoint => entrypoint.to_owned(),
    };
    Ok(InstallPlan {
        steps: vec![InstallStep::RunScript(Script {
            interpreter,
            contents: install.script.replace("\r\n", "\n"),
            env: environment(&ctx),
            timeout_secs: INSTALL_TIMEOUT_SECS,
        })],
        image: (!install.container.is_empty()).then(|| install.container.clone()),
    })
}

/// The start: the rendered startup line in a shell, the config edits, the
/// console context.
pub(crate) fn startup(egg: &Egg, server: &ServerContext) -> Result<StartupPlan, PluginError> {
    let ctx = context(egg, server)?;
    let template = &match &server.startup_command {
        None => egg
            .startup_commands
            .first()
            .ok_or_else(|| PluginError::new("no-startup", "the egg has no startup line"))?,
        Some(name) => egg
            .startup_commands
            .iter()
            .find(|c| c.name == *name)
            .ok_or_else(|| {
                PluginError::new(
                    "unknown-startup-command",
                    format!("the egg names no startup command {name:?}"),
                )
            })?,
    }
    .command;
    let line = render_startup(template, &ctx);
    let mut env = environment(&ctx);
    env.push(KeyValue::new("STARTUP", template));
    env.push(KeyValue::new("P_SERVER_UUID", &server.server_id));
    Ok(StartupPlan {
        program: "/bin/sh".into(),
        args: vec!["-c".into(), STARTUP_SHELL.into(), "startup".into(), line],
        env,
        working_dir: ".".into(),
        config_edits: egg
            .config
            .files
            .iter()
            .map(|file| config_edit(file, &ctx))
            .collect(),
        console_context: crate::console::context(egg),
    })
}

/// The stop.
pub(crate) fn stop(egg: &Egg) -> StopPlan {
    let method = match &egg.config.stop {
        Stop::Command(command) => StopMethod::ConsoleCommand(command.clone()),
        Stop::Signal(StopSignal::Interrupt) => StopMethod::SendSignal(Signal::Interrupt),
        Stop::Signal(StopSignal::Kill) => StopMethod::SendSignal(Signal::Kill),
        Stop::Signal(StopSignal::Named(name)) => {
            StopMethod::SendSignal(named_signal(name).unwrap_or(Signal::Kill))
        }
    };
    StopPlan {
        method,
        grace_secs: STOP_GRACE_SECS,
    }
}

/// How long a Minecraft server is given to finish `save-all flush` before
/// its files are archived.
pub(crate) const SAVE_SETTLE_MS: u32 = 5_000;

/// The console commands around a backup of a running server of `egg`:
/// for a Minecraft Java server, `save-off` and `save-all flush` before and
/// `save-on` after, so the world on disk is whole and stays so while it is
/// archived. Eggs say nothing of backups; a Minecraft Java server is one
/// whose egg has the `eula` feature (every Minecraft Java egg of
/// Pterodactyl's has) and stops with `stop` (the proxies, BungeeCord and
/// Velocity, stop with `end` and save no world). Every other egg: `None`,
/// the files are archived as they are.
pub(crate) fn backup(egg: &Egg) -> Option<BackupCommands> {
    let minecraft = egg.features.iter().any(|f| f == "eula")
        && matches!(&egg.config.stop, Stop::Command(command) if command == "stop");
    minecraft.then(|| BackupCommands {
        before: vec!["save-off".into(), "save-all flush".into()],
        settle_ms: SAVE_SETTLE_MS,
        after: vec!["save-on".into()],
    })
}

/// The signal a `^NAME` stop names, if the Panel can send it (`SIG` is
/// optional, case does not matter).
pub(crate) fn named_signal(name: &str) -> Option<Signal> {
    let upper = name.to_ascii_uppercase();
    Some(match upper.strip_prefix("SIG").unwrap_or(&upper) {
        "INT" => Signal::Interrupt,
        "TERM" => Signal::Terminate,
        "QUIT" => Signal::Quit,
        "HUP" => Signal::Hangup,
        "KILL" => Signal::Kill,
        _ => return None,
    })
}

/// One config file's edit, its values rendered for the server.
pub(crate) fn config_edit(file: &ConfigFile, ctx: &Context) -> ConfigEdit {
    let format = match file.parser {
        Parser::File => ConfigFormat::Plain,
        Parser::Properties => ConfigFormat::Properties,
        Parser::Ini => ConfigFormat::Ini,
        Parser::Yaml => ConfigFormat::Yaml,
        Parser::Json => ConfigFormat::Json,
        Parser::Xml => ConfigFormat::Xml,
    };
    let rendered = |value: &serde_json::Value| match value {
        serde_json::Value::String(text) => render_value(text, ctx),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    };
    let pair = |key: &str, value: String| match file.parser {
        Parser::Yaml | Parser::Json => KeyValue::new(tree_path(key), value),
        Parser::Xml => xml_pair(key, value),
        Parser::File | Parser::Properties | Parser::Ini => KeyValue::new(key, value),
    };
    let mut set = Vec::new();
    let mut set_if = Vec::new();
    for find in &file.find {
        match &find.value {
            FindValue::Set(value) => set.push(pair(&find.key, rendered(value))),
            FindValue::When(cases) => {
                for (if_value, value) in cases {
                    let KeyValue { key, value } = pair(&find.key, rendered(value));
                    set_if.push(ConditionalSet {
                        key,
                        if_value: if_value.clone(),
                        value,
                    });
                }
            }
        }
    }
    ConfigEdit {
        path: file.path.clone(),
        format,
        set,
        set_if,
    }
}

/// A YAML or JSON path with list indexes as segments: `a[0].b` → `a.0.b`.
fn tree_path(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut chars = key.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '[' => {
                if !out.is_empty() && !out.ends_with('.') {
                    out.push('.');
                }
            }
            ']' => {
                if chars.peek().is_some_and(|next| *next != '.') {
                    out.push('.');
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// An XML replacement: the path below the root element, `/`-separated,
/// and an attribute value `[name='v']` as `path@name` = `v`.
fn xml_pair(key: &str, value: String) -> KeyValue {
    let below_root = key.split('.').skip(1).collect::<Vec<_>>().join("/");
    let attribute = value
        .strip_prefix('[')
        .and_then(|v| v.strip_suffix("']"))
        .and_then(|v| v.split_once("='"))
        .filter(|(name, _)| {
            !name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || c == '_')
        });
    match attribute {
        Some((name, v)) => KeyValue::new(format!("{below_root}@{name}"), v),
        None => KeyValue::new(below_root, value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{fixture, minimal_egg, server};

    #[test]
    fn list_indexes_become_path_segments() {
        assert_eq!(tree_path("listeners[0].host"), "listeners.0.host");
        assert_eq!(tree_path("a.b[2][1].c"), "a.b.2.1.c");
        assert_eq!(tree_path("servers.*.address"), "servers.*.address");
        assert_eq!(tree_path("list[3]"), "list.3");
    }

    #[test]
    fn xml_paths_drop_the_root_and_attributes_get_an_at() {
        assert_eq!(
            xml_pair("dedicated.system_config.server_port", "2350".into()),
            KeyValue::new("system_config/server_port", "2350")
        );
        assert_eq!(
            xml_pair("config.server", "[port='25565']".into()),
            KeyValue::new("server@port", "25565")
        );
    }

    #[test]
    fn minecraft_java_eggs_save_around_a_backup_and_proxies_and_other_games_do_not() {
        for name in [
            "pterodactyl/minecraft__egg-paper.json",
            "pterodactyl/minecraft__egg-vanilla-minecraft.json",
            "pterodactyl/minecraft__egg-forge-minecraft.json",
            "pterodactyl/minecraft__egg-sponge--sponge-vanilla.json",
        ] {
            let egg = Egg::parse(&fixture(name)).expect("parses");
            let commands = backup(&egg).unwrap_or_else(|| panic!("{name} saves"));
            assert_eq!(commands.before, ["save-off", "save-all flush"], "{name}");
            assert_eq!(commands.after, ["save-on"], "{name}");
            assert_eq!(commands.settle_ms, SAVE_SETTLE_MS);
        }
        for name in [
            "pterodactyl/minecraft__egg-bungeecord.json",
            "pterodactyl/source-engine__egg-garrys-mod.json",
            "pelican/egg-pterodactyl-minetest.json",
        ] {
            let egg = Egg::parse(&fixture(name)).expect("parses");
            assert_eq!(backup(&egg), None, "{name}");
        }
        // The feature alone is not enough: the stop command must be `stop`.
        let egg = Egg::parse(&minimal_egg(|egg| {
            egg["features"] = serde_json::json!(["eula"]);
            egg["config"]["stop"] = "^C".into();
        }))
        .expect("parses");
        assert_eq!(backup(&egg), None);
    }

    #[test]
    fn a_user_value_with_shell_syntax_is_one_quoted_word_of_the_startup_line() {
        let egg = Egg::parse(&minimal_egg(|_| {})).expect("parses");
        let plan =
            startup(&egg, &server("test", &[("NAME", "x; rm -rf / #")], 27015)).expect("a plan");
        assert_eq!(plan.program, "/bin/sh");
        assert_eq!(
            plan.args.last().map(String::as_str),
            Some("./server --port 27015 --name 'x; rm -rf / #'")
        );
    }

    #[test]
    fn the_startup_environment_has_the_variables_the_allocation_and_the_line() {
        let egg = Egg::parse(&minimal_egg(|_| {})).expect("parses");
        let plan = startup(&egg, &server("test", &[], 27015)).expect("a plan");
        let env = |key: &str| {
            plan.env
                .iter()
                .find(|kv| kv.key == key)
                .map(|kv| kv.value.clone())
        };
        assert_eq!(env("NAME").as_deref(), Some("world"));
        assert_eq!(env("SERVER_PORT").as_deref(), Some("27015"));
        assert_eq!(env("SERVER_MEMORY").as_deref(), Some("1024"));
        assert_eq!(
            env("STARTUP").as_deref(),
            Some("./server --port {{SERVER_PORT}} --name {{NAME}}")
        );
    }

    #[test]
    fn a_value_that_breaks_its_rule_fails_the_plan() {
        let egg = Egg::parse(&minimal_egg(|_| {})).expect("parses");
        let error =
            startup(&egg, &server("test", &[("NAME", &"x".repeat(30))], 1)).expect_err("refused");
        assert_eq!(error.code, "invalid-variable");
    }

    #[test]
    fn the_minetest_config_file_becomes_plain_line_edits_with_the_servers_values() {
        let egg = Egg::parse(&fixture("pelican/egg-pterodactyl-minetest.json")).expect("parses");
        let plan = startup(
            &egg,
            &server(
                "minetest",
                &[("SERVER_NAME", "My world"), ("SERVER_ADMIN_NAME", "admin")],
                30000,
            ),
        )
        .expect("a plan");
        let edit = &plan.config_edits[0];
        assert_eq!(edit.path, ".minetest/minetest.conf");
        assert_eq!(edit.format, ConfigFormat::Plain);
        assert!(
            edit.set
                .contains(&KeyValue::new("server_name", "server_name = My world")),
            "{:?}",
            edit.set
        );
        assert!(
            edit.set
                .contains(&KeyValue::new("bind_address", "bind_address = 0.0.0.0"))
        );
    }

    #[test]
    fn the_bungeecord_yaml_edit_writes_the_port_and_points_local_servers_at_the_node() {
        let egg =
            Egg::parse(&fixture("pterodactyl/minecraft__egg-bungeecord.json")).expect("parses");
        let mut server = server("bungeecord", &[], 25577);
        server.node.host_address = "10.88.0.1".into();
        let plan = startup(&egg, &server).expect("a plan");
        let edit = &plan.config_edits[0];
        assert_eq!(edit.format, ConfigFormat::Yaml);
        assert_eq!(
            edit.set,
            [
                KeyValue::new("listeners.0.query_port", "25577"),
                KeyValue::new("listeners.0.host", "0.0.0.0:25577"),
            ]
        );
        assert_eq!(
            edit.set_if,
            [ConditionalSet {
                key: "servers.*.address".into(),
                if_value: "regex:^(127\\.0\\.0\\.1|localhost)(:\\d{1,5})?$".into(),
                value: "10.88.0.1$2".into(),
            }]
        );
    }

    #[test]
    fn a_server_runs_the_startup_command_it_picked() {
        let egg = Egg::parse(&crate::tests::startup_commands_egg(|_| {})).expect("parses");
        let line = |picked: Option<&str>| {
            let mut server = server("test", &[], 27015);
            server.startup_command = picked.map(str::to_owned);
            startup(&egg, &server).map(|plan| plan.args.last().cloned().unwrap_or_default())
        };
        assert_eq!(line(None).expect("a plan"), "./run");
        assert_eq!(line(Some("Low memory")).expect("a plan"), "./run --small");
        let error = line(Some("Turbo")).expect_err("no such command");
        assert_eq!(error.code, "unknown-startup-command");
    }

    #[test]
    fn stops_follow_the_egg() {
        let stop_of = |text: &str| {
            let egg = Egg::parse(&minimal_egg(|e| {
                e["config"]["stop"] = serde_json::json!(text)
            }))
            .expect("parses");
            stop(&egg).method
        };
        assert_eq!(stop_of("stop"), StopMethod::ConsoleCommand("stop".into()));
        assert_eq!(stop_of("^C"), StopMethod::SendSignal(Signal::Interrupt));
        assert_eq!(stop_of("^^C"), StopMethod::SendSignal(Signal::Kill));
        assert_eq!(
            stop_of("^SIGTERM"),
            StopMethod::SendSignal(Signal::Terminate)
        );
        assert_eq!(stop_of("^hup"), StopMethod::SendSignal(Signal::Hangup));
        assert_eq!(stop_of("^SIGUSR1"), StopMethod::SendSignal(Signal::Kill));
    }

    #[test]
    fn the_install_runs_the_script_in_its_container_with_unix_line_ends() {
        let egg = Egg::parse(&minimal_egg(|e| {
            e["scripts"]["installation"]["script"] = serde_json::json!("echo a\r\necho b\r\n");
        }))
        .expect("parses");
        let plan = install(&egg, &server("test", &[], 25565)).expect("a plan");
        assert_eq!(plan.image.as_deref(), Some("debian:stable"));
        let [InstallStep::RunScript(script)] = plan.steps.as_slice() else {
            panic!("one script: {:?}", plan.steps);
        };
        assert_eq!(script.interpreter, "bash");
        assert_eq!(script.contents, "echo a\necho b\n");
        assert!(script.env.contains(&KeyValue::new("SERVER_PORT", "25565")));
        assert!(script.env.contains(&KeyValue::new("NAME", "world")));
    }
}
