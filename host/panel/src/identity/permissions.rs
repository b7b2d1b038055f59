//! The permission catalog: `resource.action` strings.
//!
//! The core's own permissions start from Pterodactyl's set (server control,
//! files, subusers, schedules, backups…) plus admin-only ones (`admin.*`,
//! `audit.read`, `settings.*`). Plugins may declare more in their manifest;
//! the plugin manager registers them with [`register_plugin_permissions`]
//! so they can be granted to roles and API keys like built-in ones.
//! Administrators hold every permission known at the time of the request.
//!
//! # Who may grant what
//!
//! Roles and API keys hand permissions on, so the routes that write them
//! follow two rules, checked by [`check_grant`]:
//!
//! - nobody grants a permission they do not hold themselves (through a
//!   role's permission set, a role assignment or an API key's scopes): a
//!   holder of `admin.users` cannot make a role with `admin.nodes` and
//!   give it to themselves or a friend;
//! - the [admin-only](is_admin_only) permissions (every `admin.*`, plus
//!   `audit.read` and `settings.*`) are granted by administrators only,
//!   even by a non-administrator who holds one: they steer the Panel
//!   itself, and spreading them is an administrator's decision.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{OnceLock, RwLock};

/// The built-in permissions, each with a description.
pub const BUILTIN: &[(&str, &str)] = &[
    ("control.console", "Send commands to a server's console"),
    ("control.start", "Start a server"),
    ("control.stop", "Stop a server"),
    ("control.restart", "Restart a server"),
    ("user.create", "Add subusers to a server"),
    ("user.read", "See a server's subusers"),
    ("user.update", "Change a server's subusers"),
    ("user.delete", "Remove subusers from a server"),
    ("file.create", "Create files"),
    ("file.read", "List and read files"),
    ("file.read-content", "Read the content of files"),
    ("file.update", "Change files"),
    ("file.delete", "Delete files"),
    ("file.archive", "Archive and extract files"),
    ("file.sftp", "Connect over SFTP"),
    ("backup.create", "Create backups"),
    ("backup.read", "See backups"),
    ("backup.delete", "Delete backups"),
    ("backup.download", "Download backups"),
    ("backup.restore", "Restore backups"),
    ("allocation.read", "See a server's allocations"),
    ("allocation.create", "Add allocations to a server"),
    ("allocation.update", "Change a server's allocations"),
    ("allocation.delete", "Remove allocations from a server"),
    ("startup.read", "See startup variables"),
    ("startup.update", "Change startup variables"),
    ("database.create", "Create databases"),
    ("database.read", "See databases"),
    ("database.update", "Change databases"),
    ("database.delete", "Delete databases"),
    ("database.view-password", "See database passwords"),
    ("schedule.create", "Create schedules"),
    ("schedule.read", "See schedules"),
    ("schedule.update", "Change schedules"),
    ("schedule.delete", "Delete schedules"),
    ("settings.rename", "Rename a server"),
    ("settings.reinstall", "Reinstall a server"),
    ("activity.read", "See a server's activity"),
    ("server.create", "Create servers"),
    ("server.read", "See servers"),
    ("server.delete", "Delete servers"),
    ("admin.users", "Manage users and roles"),
    ("admin.nodes", "Manage nodes"),
    ("admin.plugins", "Manage plugins"),
    ("admin.servers", "Manage every server"),
    ("audit.read", "Read the audit log"),
    ("settings.read", "Read Panel settings"),
    ("settings.write", "Change Panel settings"),
];

/// The built-in permissions only administrators may grant (to a role, or
/// by assigning a role that holds them); see [`is_admin_only`].
pub const ADMIN_ONLY: &[&str] = &[
    "admin.users",
    "admin.nodes",
    "admin.plugins",
    "admin.servers",
    "audit.read",
    "settings.read",
    "settings.write",
];

/// True if and only if only administrators may grant `permission`: one of
/// [`ADMIN_ONLY`], or any other `admin.*` (a plugin may declare one).
pub fn is_admin_only(permission: &str) -> bool {
    ADMIN_ONLY.contains(&permission) || permission.starts_with("admin.")
}

/// Why [`check_grant`] refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantRefusal {
    /// A non-administrator grants admin-only permissions (listed, sorted).
    #[error("only administrators may grant {}", .0.join(", "))]
    AdminOnly(Vec<String>),
    /// The grantor does not hold these permissions (listed, sorted).
    #[error("you cannot grant permissions you do not hold: {}", .0.join(", "))]
    NotHeld(Vec<String>),
}

/// `Ok` if someone holding `held` (an administrator if `admin`) may grant
/// every permission in `granted`: each is held, and none is
/// [admin-only](is_admin_only) unless the grantor is an administrator.
///
/// # Errors
///
/// [`GrantRefusal::AdminOnly`] first, then [`GrantRefusal::NotHeld`], each
/// listing every offending permission once.
pub fn check_grant<'a, I>(
    granted: I,
    held: &BTreeSet<String>,
    admin: bool,
) -> Result<(), GrantRefusal>
where
    I: IntoIterator<Item = &'a str>,
{
    let granted: BTreeSet<&str> = granted.into_iter().collect();
    let admin_only: Vec<String> = granted
        .iter()
        .filter(|p| !admin && is_admin_only(p))
        .map(|p| (*p).to_owned())
        .collect();
    if !admin_only.is_empty() {
        return Err(GrantRefusal::AdminOnly(admin_only));
    }
    let not_held: Vec<String> = granted
        .iter()
        .filter(|p| !held.contains(**p))
        .map(|p| (*p).to_owned())
        .collect();
    if not_held.is_empty() {
        Ok(())
    } else {
        Err(GrantRefusal::NotHeld(not_held))
    }
}

/// A permission a plugin declared in its manifest's `[permissions]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginPermission {
    /// The declaring plugin's id.
    pub plugin: String,
    /// What it allows, for admins.
    pub description: String,
}

fn plugin_permissions() -> &'static RwLock<BTreeMap<String, PluginPermission>> {
    static REGISTRY: OnceLock<RwLock<BTreeMap<String, PluginPermission>>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

/// True if and only if `permission` is a well-formed `resource.action`
/// string: two or more dot-separated parts of lowercase letters, digits and
/// `-`, at most 128 characters (the rule plugin manifests follow too).
pub fn is_valid_permission(permission: &str) -> bool {
    cap_runtime::manifest::is_valid_permission(permission)
}

/// Registers the permissions `plugin` declares (name and description), so
/// they become known: granted to administrators, assignable to roles and
/// API keys. They stay known for the life of the process, so roles that
/// hold them stay editable while the plugin is inactive. Returns the names
/// refused as malformed or as a built-in permission.
pub fn register_plugin_permissions<I>(plugin: &str, permissions: I) -> Vec<String>
where
    I: IntoIterator<Item = (String, String)>,
{
    let mut refused = Vec::new();
    let mut registry = plugin_permissions()
        .write()
        .unwrap_or_else(|p| p.into_inner());
    for (name, description) in permissions {
        if is_valid_permission(&name) && !BUILTIN.iter().any(|(b, _)| *b == name) {
            let declared = PluginPermission {
                plugin: plugin.to_owned(),
                description,
            };
            registry.insert(name, declared);
        } else {
            refused.push(name);
        }
    }
    refused
}

/// The permissions plugins declared, by name.
pub fn plugin_declared() -> BTreeMap<String, PluginPermission> {
    plugin_permissions()
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
}

/// Every known permission: the built-in ones and those plugins registered.
pub fn all() -> BTreeSet<String> {
    let mut all: BTreeSet<String> = BUILTIN.iter().map(|(p, _)| (*p).to_owned()).collect();
    all.extend(
        plugin_permissions()
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned(),
    );
    all
}

/// True if and only if `permission` is known (see [`all`]).
pub fn is_known(permission: &str) -> bool {
    BUILTIN.iter().any(|(p, _)| *p == permission)
        || plugin_permissions()
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(permission)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_resource_action_strings_only() {
        assert!(is_valid_permission("control.start"));
        assert!(is_valid_permission("plugin.my-hooks.run"));
        assert!(!is_valid_permission("control"));
        assert!(!is_valid_permission("Control.Start"));
        assert!(!is_valid_permission("control..start"));
    }

    fn held(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|p| (*p).to_owned()).collect()
    }

    #[test]
    fn every_admin_only_permission_is_a_builtin_one_and_admin_prefixes_are_admin_only() {
        for permission in ADMIN_ONLY {
            assert!(BUILTIN.iter().any(|(p, _)| p == permission), "{permission}");
            assert!(is_admin_only(permission));
        }
        assert!(is_admin_only("admin.some-plugin-thing"));
        assert!(!is_admin_only("control.console"));
        assert!(!is_admin_only("player-list.kick"));
    }

    #[test]
    fn a_grant_needs_every_permission_held_and_admin_only_ones_need_an_administrator() {
        let mine = held(&["admin.users", "control.start", "file.read"]);
        assert_eq!(
            check_grant(["control.start", "file.read"], &mine, false),
            Ok(())
        );
        assert_eq!(check_grant([], &mine, false), Ok(()));
        assert_eq!(
            check_grant(
                ["control.start", "control.console", "backup.read"],
                &mine,
                false
            ),
            Err(GrantRefusal::NotHeld(vec![
                "backup.read".into(),
                "control.console".into()
            ]))
        );
        // Held, but admin-only: refused to a non-administrator.
        assert_eq!(
            check_grant(["admin.users", "admin.nodes", "file.read"], &mine, false),
            Err(GrantRefusal::AdminOnly(vec![
                "admin.nodes".into(),
                "admin.users".into()
            ]))
        );
        let everything = all();
        assert_eq!(
            check_grant(["admin.nodes", "settings.write"], &everything, true),
            Ok(())
        );
        // An administrator still grants only what the credential holds.
        assert_eq!(
            check_grant(["admin.nodes"], &mine, true),
            Err(GrantRefusal::NotHeld(vec!["admin.nodes".into()]))
        );
    }

    #[test]
    fn plugin_permissions_become_known_once_registered() {
        assert!(!is_known("quota-guard.override"));
        let declared = |name: &str| (name.to_owned(), format!("allows {name}"));
        let refused = register_plugin_permissions(
            "quota-guard",
            [
                declared("quota-guard.override"),
                declared("bad"),
                declared("control.start"),
            ],
        );
        assert_eq!(
            refused,
            ["bad", "control.start"],
            "malformed and built-in names are refused"
        );
        assert!(is_known("quota-guard.override"));
        assert!(all().contains("quota-guard.override"));
        assert!(all().contains("control.console"));
        assert_eq!(
            plugin_declared().get("quota-guard.override"),
            Some(&PluginPermission {
                plugin: "quota-guard".into(),
                description: "allows quota-guard.override".into()
            })
        );
    }
}
