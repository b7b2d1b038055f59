//! # egg-bridge
//!
//! Pterodactyl and Pelican eggs as game types. The bridge is a game-type
//! plugin like any other (API 0.2.0, kinds `game-type` and
//! `game-catalogue`): an admin imports an egg through the Panel, the bridge
//! checks it with [`cap_egg`], keeps it in its key-value store, and from
//! then on lists it as a game type and makes the plans of servers created
//! from it. The Panel knows nothing of eggs; an imported egg is the
//! bridge's data.
//!
//! | Module | Holds |
//! |---|---|
//! | `info` | an egg's game-type id, [`GameInfo`], catalogue entry and the Panel's rules checked at import |
//! | `plans` | install, startup (config edits included) and stop plans, as Wings runs an egg |
//! | `console` | the console context and classifying console lines with the egg's done patterns |
//! | `store` | keeping eggs in KV, chunked, all of an import or nothing |
//! | `catalogue` | import, list, export, update check, removal, parsed eggs cached |
//! | `update` | what a newer egg changes, for people |
//!
//! ## Decisions
//!
//! - **The id is the egg's name**, slugged (`Counter-Strike: Global
//!   Offensive` → `counter-strike-global-offensive`): stable across
//!   re-imports, updates and exports, readable in the Panel. Two eggs of one
//!   name are one game type: the second import answers `exists` unless it
//!   replaces.
//! - **Everything the egg says is kept as it came.** The imported bytes are
//!   stored; the egg is parsed again when an instance first needs it (and
//!   cached by digest), so a newer cap-egg reads what the admin imported,
//!   and export writes the egg's own format (`cap_egg::Egg::export`).
//! - **The Panel's own rules are checked at import.** The host checks every
//!   game type the plugin lists, and one bad game type would fail the list
//!   for all. So an egg whose variable names, images or install container
//!   the Panel cannot use is refused at import, naming the field, beside
//!   what cap-egg refuses.
//! - **Typed rules never say more than the egg.** The Panel checks a
//!   variable's typed rules before it asks `validate`; they are taken from
//!   the egg only where they mean exactly the egg's rule (or less), and
//!   `validate` checks every egg rule with cap-egg.
//! - **What cannot be honoured is listed**, in the entry's `unsupported`:
//!   features, log settings, conditional config replacements (a config edit
//!   sets values unconditionally), node settings in config values, extra
//!   startup commands, the file denylist.
//! - **Failures the WIT cannot carry trap.** `list-game-types`,
//!   `list-entries` and `validate` have no error case; when the store
//!   cannot be read they panic (the host reports the call failed) rather
//!   than answer "no game types", which the Panel would take for the truth.
//!   A stop plan for an egg that cannot be read stops with SIGTERM.
//! - **Minecraft Java eggs save around a backup.** Eggs say nothing of
//!   backups; an egg with the `eula` feature that stops with `stop` (every
//!   Minecraft Java server egg, and no proxy's) asks for `save-off` and
//!   `save-all flush` before a backup of a running server and `save-on`
//!   after (`plans::backup`).

mod catalogue;
mod console;
mod info;
mod plans;
mod store;
mod update;

use cap_plugin_sdk::catalogue::{CatalogueError, Entry, GameCatalogue, Update};
use cap_plugin_sdk::game::{
    BackupCommands, FieldError, GameInfo, GameTypes, InstallPlan, LineKind, ServerContext, Signal,
    StartupPlan, StopMethod, StopPlan,
};
use cap_plugin_sdk::types::{KeyValue, PluginError};

use crate::catalogue::{Cache, Catalogue, Kept};
use crate::store::HostKv;

/// How long an update check waits for the egg's update URL.
const UPDATE_TIMEOUT_MS: u32 = 10_000;

/// The plugin: parsed eggs and compiled console patterns, cached for the
/// life of the component instance.
#[derive(Default)]
struct EggBridge {
    eggs: Cache,
    console: console::Patterns,
}

impl EggBridge {
    fn catalogue(&self) -> Catalogue<'_> {
        Catalogue {
            kv: &HostKv,
            cache: &self.eggs,
        }
    }

    fn all(&self) -> Vec<std::sync::Arc<Kept>> {
        match self.catalogue().all() {
            Ok(all) => all,
            Err(e) => panic!("the eggs cannot be listed: {e}"),
        }
    }

    fn kept(&self, game_type: &str) -> Result<std::sync::Arc<Kept>, PluginError> {
        self.catalogue().get(game_type).map_err(|e| match e {
            CatalogueError::Failed(error) => error,
            other => PluginError::new("not-found", catalogue::describe(&other)),
        })
    }
}

impl GameTypes for EggBridge {
    fn list(&self) -> Vec<GameInfo> {
        self.all().iter().map(|k| k.entry.game.clone()).collect()
    }

    fn validate(&self, game_type: &str, variables: &[KeyValue]) -> Result<(), Vec<FieldError>> {
        let kept = match self.catalogue().get(game_type) {
            Ok(kept) => kept,
            Err(CatalogueError::NotFound(_)) => {
                return Err(vec![FieldError::new(
                    "game-type",
                    format!("no egg is kept as {game_type}"),
                )]);
            }
            Err(e) => panic!("egg {game_type}: {}", catalogue::describe(&e)),
        };
        let errors = validate(&kept.egg, variables);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    fn install_plan(&self, server: &ServerContext) -> Result<InstallPlan, PluginError> {
        plans::install(&self.kept(&server.game_type)?.egg, server)
    }

    fn startup_plan(&self, server: &ServerContext) -> Result<StartupPlan, PluginError> {
        plans::startup(&self.kept(&server.game_type)?.egg, server)
    }

    fn stop_plan(&self, server: &ServerContext) -> StopPlan {
        match self.kept(&server.game_type) {
            Ok(kept) => plans::stop(&kept.egg),
            Err(e) => {
                cap_plugin_sdk::log::error!(
                    "stopping {} with SIGTERM: egg {}: {}",
                    server.server_id,
                    server.game_type,
                    e.message
                );
                StopPlan {
                    method: StopMethod::SendSignal(Signal::Terminate),
                    grace_secs: plans::STOP_GRACE_SECS,
                }
            }
        }
    }

    fn classify_line(&self, context: &str, line: &str) -> LineKind {
        self.console.classify(context, line)
    }

    fn backup_commands(&self, server: &ServerContext) -> Option<BackupCommands> {
        plans::backup(&self.kept(&server.game_type).ok()?.egg)
    }
}

/// One error per variable whose value (the given one, else the egg's
/// default) breaks one of its egg rules, and one per name the egg has no
/// variable for.
fn validate(egg: &cap_egg::Egg, variables: &[KeyValue]) -> Vec<FieldError> {
    let mut errors: Vec<FieldError> = variables
        .iter()
        .filter(|kv| egg.variable(&kv.key).is_none())
        .map(|kv| FieldError::new(&kv.key, "the egg has no such variable"))
        .collect();
    for variable in &egg.variables {
        let value = cap_plugin_sdk::types::lookup(variables, &variable.env_variable)
            .unwrap_or(&variable.default_value);
        if let Err(why) = variable.rules.check(value) {
            errors.push(FieldError::new(&variable.env_variable, why));
        }
    }
    errors
}

impl GameCatalogue for EggBridge {
    fn preview(&self, document: &[u8]) -> Result<Entry, CatalogueError> {
        self.catalogue().preview(document)
    }

    fn import(&self, document: &[u8], replace: bool) -> Result<Entry, CatalogueError> {
        self.catalogue().import(document, replace)
    }

    fn entries(&self) -> Vec<Entry> {
        self.all().iter().map(|k| k.entry.clone()).collect()
    }

    fn export(&self, game_type: &str) -> Result<Vec<u8>, CatalogueError> {
        self.catalogue().export(game_type)
    }

    fn check_update(&self, game_type: &str) -> Result<Update, CatalogueError> {
        self.catalogue().check_update(game_type, fetch)
    }

    fn remove(&self, game_type: &str) -> Result<(), CatalogueError> {
        self.catalogue().remove(game_type)
    }
}

/// The body at `url`, through the host's HTTP capability.
fn fetch(url: &str) -> Result<Vec<u8>, PluginError> {
    let response = cap_plugin_sdk::http::get(url)
        .timeout_ms(UPDATE_TIMEOUT_MS)
        .send()
        .map_err(|e| {
            PluginError::new(
                "update-unreachable",
                format!("{url}: {}", cap_plugin_sdk::http::describe(&e)),
            )
        })?;
    if !response.is_success() {
        return Err(PluginError::new(
            "update-unreachable",
            format!("{url} answered {}", response.status),
        ));
    }
    Ok(response.body)
}

cap_plugin_sdk::export_plugin!(EggBridge: game_type, game_catalogue);

#[cfg(test)]
mod tests {
    //! Helpers shared by the modules' tests, and the plugin's own.

    use std::path::PathBuf;

    use cap_plugin_sdk::game::{AllocatedPort, Arch, NodeContext, Os, Platform, ServerContext};
    use cap_plugin_sdk::types::KeyValue;

    /// The community eggs cap-egg tests with (`egg/tests/fixtures`).
    fn fixtures() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../egg/tests/fixtures")
    }

    /// A community egg's bytes, e.g. `pelican/egg-pterodactyl-minetest.json`.
    pub(crate) fn fixture(name: &str) -> Vec<u8> {
        let path = fixtures().join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// Every community egg as (file name, bytes).
    pub(crate) fn community_eggs() -> Vec<(String, Vec<u8>)> {
        let mut eggs = Vec::new();
        for dir in ["pterodactyl", "pelican"] {
            let mut names: Vec<String> = std::fs::read_dir(fixtures().join(dir))
                .expect("the fixtures")
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.ends_with(".json"))
                .collect();
            names.sort();
            for name in names {
                let name = format!("{dir}/{name}");
                eggs.push((name.clone(), fixture(&name)));
            }
        }
        eggs
    }

    /// A small valid PTDL_v2 egg named `Test` (one variable, `NAME`,
    /// default `world`, `required|string|max:20`), with `patch` applied.
    pub(crate) fn minimal_egg(patch: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
        let mut egg: serde_json::Value =
            serde_json::from_str(include_str!("../../../../egg/tests/test-egg.json"))
                .expect("the test egg");
        patch(&mut egg);
        serde_json::to_vec(&egg).expect("JSON")
    }

    /// [`minimal_egg`] as PLCN_v3 with two named startup commands,
    /// `Default` (`./run`) and `Low memory` (`./run --small`), with `patch`
    /// applied.
    pub(crate) fn startup_commands_egg(patch: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
        minimal_egg(|e| {
            e["meta"]["version"] = serde_json::json!("PLCN_v3");
            e.as_object_mut().expect("an object").remove("startup");
            e["startup_commands"] =
                serde_json::json!({"Default": "./run", "Low memory": "./run --small"});
            patch(e);
        })
    }

    /// A server of game type `game_type` with 1 GiB, `variables` and one
    /// allocation at `port`.
    pub(crate) fn server(game_type: &str, variables: &[(&str, &str)], port: u16) -> ServerContext {
        ServerContext {
            server_id: "srv-1".into(),
            name: "Server".into(),
            memory_mb: 1024,
            disk_mb: 10_240,
            cpu_percent: 100,
            variables: variables
                .iter()
                .map(|(k, v)| KeyValue::new(*k, *v))
                .collect(),
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
            node: NodeContext {
                name: "n1".into(),
                address: "127.0.0.1".into(),
                host_address: String::new(),
            },
        }
    }

    #[test]
    fn validation_names_every_variable_that_breaks_an_egg_rule() {
        let egg = cap_egg::Egg::parse(&fixture(
            "pterodactyl/source-engine__egg-counter--strike--global-offensive.json",
        ))
        .expect("parses");
        let errors = super::validate(&egg, &[KeyValue::new("SRCDS_MAP", "a map with spaces")]);
        let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
        // The map's rules forbid spaces; the Steam token is required and
        // has no default.
        assert!(keys.contains(&"SRCDS_MAP"), "{errors:?}");
        assert!(keys.contains(&"STEAM_ACC"), "{errors:?}");
        let ok = super::validate(
            &egg,
            &[
                KeyValue::new("SRCDS_MAP", "de_dust2"),
                KeyValue::new("STEAM_ACC", "0123456789ABCDEF0123456789ABCDEF"),
            ],
        );
        assert!(ok.is_empty(), "{ok:?}");
    }

    #[test]
    fn validation_refuses_a_name_the_egg_has_no_variable_for() {
        let egg = cap_egg::Egg::parse(&minimal_egg(|_| {})).expect("parses");
        let errors = super::validate(&egg, &[KeyValue::new("NOPE", "1")]);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].key, "NOPE");
    }
}
