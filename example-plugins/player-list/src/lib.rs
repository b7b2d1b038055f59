//! Shows the players currently on a server, with a "Kick" button per player.
//!
//! ## Where the players come from
//!
//! The Agent reports `console.player-joined` and `console.player-left`
//! events (the game-type plugin recognises them in the console); this plugin
//! subscribes to both as after-hooks and keeps each server's player set in
//! its key-value store under `players/<server-id>`, as a sorted JSON list.
//! After-hooks are retried by the Panel, so both updates are idempotent: a
//! join of a player already listed, or a leave of one not listed, changes
//! nothing.
//!
//! ## The widget
//!
//! The `players` contribution (a server widget) renders a table of names.
//! Viewers holding `control.console` on the server, or the permission this
//! plugin declares in its manifest, `player-list.kick` (granted through a
//! role, say to moderators who may not use the console), get a "Kick"
//! button per row; the action sends `kick <name>` to the server's console through the
//! `panel` capability (`console.send`). The player stays listed until the
//! game reports that they left: the list shows what the game says, not what
//! was asked for. The plugin re-checks the permission in the action itself,
//! since the Panel passes the viewer's permissions to both calls.
//!
//! The permissions are those of the `render-context`, which for a server
//! widget the Panel fills with what the viewer may do *on that server*
//! alone (an owner's or a subuser's grant there), plus this plugin's own
//! declared permissions the viewer holds. So `control.console` in the set
//! means the console of this server: a subuser without it here gets no
//! button and no kick, even if a role gives them the console of servers
//! they own. The plugin trusts that set and nothing else; it never asks for
//! the viewer's global permissions.
//!
//! Player names come from a game's console, so they are untrusted text; the
//! plugin passes them on as plain strings and the Panel renders them as text.
//! A name is accepted in a `kick` command only if it is one line without
//! spaces, so a crafted name cannot smuggle a second console command.

use std::collections::BTreeSet;

use cap_plugin_sdk::hooks::{Event, EventKind, Hooks, Verdict};
use cap_plugin_sdk::kv;
use cap_plugin_sdk::panel;
use cap_plugin_sdk::types::PluginError;
use cap_plugin_sdk::ui::{
    Action, ActionResult, Button, Element, RenderContext, Table, TableRow, Tone, TreeBuilder, Ui,
    UiTree,
};

/// The plugin. Stateless: the player sets live in the key-value store.
#[derive(Debug, Default)]
pub struct PlayerList;

cap_plugin_sdk::export_plugin!(PlayerList: hooks, ui);

/// The contribution id in `plugin.toml`.
const CONTRIBUTION: &str = "players";
/// The action of a row's "Kick" button.
const KICK: &str = "kick";
/// Either of these permissions allows kicking: the server's console, or
/// the permission `plugin.toml` declares for exactly this.
const KICK_PERMISSIONS: [&str; 2] = ["control.console", "player-list.kick"];
/// Most players remembered per server; more joins are ignored (and logged).
const MAX_PLAYERS: usize = 500;

impl Hooks for PlayerList {
    fn before(&self, _event: &Event) -> Verdict {
        Verdict::Allow
    }

    fn after(&self, event: &Event) -> Result<(), PluginError> {
        let joined = match event.kind {
            EventKind::ConsolePlayerJoined => true,
            EventKind::ConsolePlayerLeft => false,
            _ => return Ok(()),
        };
        let Some(console) = event.console() else {
            return Ok(());
        };
        let Some(name) = console
            .detail
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
        else {
            cap_plugin_sdk::log::warn!("a player event without a player name: {}", console.line);
            return Ok(());
        };
        let key = players_key(&console.server_id);
        let mut players = load(&key)?;
        let changed = if joined {
            apply_join(&mut players, name)
        } else {
            players.remove(name)
        };
        if changed {
            kv::set_json(&key, &players)?;
        }
        Ok(())
    }
}

impl Ui for PlayerList {
    fn render(&self, context: &RenderContext) -> Result<UiTree, PluginError> {
        let server_id = server_of(context)?;
        let players = load(&players_key(server_id))?;
        Ok(players_tree(&players, may_kick(context)))
    }

    fn handle_action(
        &self,
        context: &RenderContext,
        action: &Action,
    ) -> Result<ActionResult, PluginError> {
        let server_id = server_of(context)?;
        if action.name != KICK {
            return Err(PluginError::new(
                "unknown-action",
                format!("the player list has no action `{}`", action.name),
            ));
        }
        if !may_kick(context) {
            return Err(PluginError::new(
                "forbidden",
                format!(
                    "kicking needs {} on this server, or {}",
                    KICK_PERMISSIONS[0], KICK_PERMISSIONS[1]
                ),
            ));
        }
        // A row action carries the row's cells; the first is the name.
        let name = action
            .values
            .iter()
            .find(|kv| kv.key == "0" || kv.key == "name")
            .map(|kv| kv.value.as_str())
            .unwrap_or_default();
        let command = kick_command(name)?;
        panel::send_console_command(server_id, &command)?;
        Ok(ActionResult::Notify((
            format!("Sent `{command}` to the console"),
            Tone::Success,
        )))
    }
}

fn players_key(server_id: &str) -> String {
    format!("players/{server_id}")
}

fn load(key: &str) -> Result<BTreeSet<String>, PluginError> {
    Ok(kv::get_json::<BTreeSet<String>>(key)?.unwrap_or_default())
}

/// Adds `name` unless the set is full; whether the set changed.
fn apply_join(players: &mut BTreeSet<String>, name: &str) -> bool {
    if players.contains(name) {
        return false;
    }
    if players.len() >= MAX_PLAYERS {
        cap_plugin_sdk::log::warn!("more than {MAX_PLAYERS} players; {name} is not listed");
        return false;
    }
    players.insert(name.to_owned())
}

fn server_of(context: &RenderContext) -> Result<&str, PluginError> {
    if context.contribution != CONTRIBUTION {
        return Err(PluginError::new(
            "unknown-contribution",
            format!(
                "the player list has no contribution `{}`",
                context.contribution
            ),
        ));
    }
    context
        .server_id
        .as_deref()
        .ok_or_else(|| PluginError::new("no-server", "the player list is shown on a server page"))
}

fn may_kick(context: &RenderContext) -> bool {
    context
        .permissions
        .iter()
        .any(|p| KICK_PERMISSIONS.contains(&p.as_str()))
}

/// `kick <name>`, if `name` is a single word.
fn kick_command(name: &str) -> Result<String, PluginError> {
    if name.is_empty()
        || name.len() > 64
        || name.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(PluginError::new(
            "invalid-player",
            "a player name is one word of at most 64 bytes",
        ));
    }
    Ok(format!("kick {name}"))
}

/// The widget: a count and a table of names, with kick buttons if allowed.
fn players_tree(players: &BTreeSet<String>, kick: bool) -> UiTree {
    let mut tree = TreeBuilder::new();
    let count = tree.push(Element::Badge((
        match players.len() {
            1 => "1 player online".to_owned(),
            n => format!("{n} players online"),
        },
        if players.is_empty() {
            Tone::Neutral
        } else {
            Tone::Success
        },
    )));
    let body = if players.is_empty() {
        tree.push(Element::Text("Nobody is online.".into()))
    } else {
        let rows = players
            .iter()
            .map(|name| TableRow {
                cells: vec![name.clone()],
                actions: if kick {
                    vec![Button {
                        label: "Kick".into(),
                        action: KICK.into(),
                        tone: Tone::Danger,
                        confirm: Some(format!("Kick {name}?")),
                    }]
                } else {
                    Vec::new()
                },
            })
            .collect();
        tree.push(Element::Table(Table {
            columns: vec!["Player".into()],
            rows,
        }))
    };
    let root = tree.section(None, [count, body]);
    tree.finish(root)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn a_join_adds_the_player_once() {
        let mut players = set(&["alice"]);
        assert!(apply_join(&mut players, "bob"));
        assert!(!apply_join(&mut players, "bob"));
        assert_eq!(players, set(&["alice", "bob"]));
    }

    #[test]
    fn a_full_server_list_ignores_more_joins() {
        let mut players: BTreeSet<String> = (0..MAX_PLAYERS).map(|i| format!("p{i}")).collect();
        assert!(!apply_join(&mut players, "late"));
        assert_eq!(players.len(), MAX_PLAYERS);
    }

    #[test]
    fn a_kick_command_names_one_word() {
        assert_eq!(kick_command("Steve").unwrap(), "kick Steve");
        assert!(kick_command("").is_err());
        assert!(kick_command("a b").is_err());
        assert!(kick_command("a\nop evil").is_err());
        assert!(kick_command(&"x".repeat(65)).is_err());
    }

    #[test]
    fn the_tree_has_a_kick_button_per_player_only_for_console_users() {
        let players = set(&["alice", "bob"]);
        let with = players_tree(&players, true);
        assert_eq!(with.check(), Ok(()));
        let Element::Table(table) = &with.nodes[1].element else {
            panic!("the second node is the table");
        };
        assert_eq!(table.rows.len(), 2);
        assert!(table.rows.iter().all(|r| r.actions.len() == 1));
        let without = players_tree(&players, false);
        let Element::Table(table) = &without.nodes[1].element else {
            panic!("the second node is the table");
        };
        assert!(table.rows.iter().all(|r| r.actions.is_empty()));
    }

    #[test]
    fn the_console_or_the_declared_kick_permission_allows_kicking() {
        let context = |permissions: &[&str]| RenderContext {
            contribution: CONTRIBUTION.into(),
            server_id: Some("srv_1".into()),
            user_id: "usr_1".into(),
            permissions: permissions.iter().map(|p| (*p).to_owned()).collect(),
        };
        assert!(may_kick(&context(&["control.console"])));
        assert!(may_kick(&context(&["control.start", "player-list.kick"])));
        assert!(!may_kick(&context(&["control.start", "file.read"])));
        let declared = include_str!("../plugin.toml");
        assert!(
            declared.contains("\"player-list.kick\" ="),
            "plugin.toml declares the permission the plugin checks"
        );
    }

    #[test]
    fn an_empty_server_says_nobody_is_online() {
        let tree = players_tree(&BTreeSet::new(), true);
        assert!(matches!(&tree.nodes[1].element, Element::Text(t) if t == "Nobody is online."));
    }
}
