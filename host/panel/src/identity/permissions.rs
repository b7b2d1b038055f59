//! The permission catalog: `resource.action` strings.
//!
//! The core's own permissions start from Pterodactyl's set (server control,
//! files, subusers, schedules, backups…) plus admin-only ones (`admin.*`,
//! `audit.read`, `settings.*`). Plugins may declare more in their manifest;
//! the plugin manager registers them with [`register_plugin_permissions`]
//! so they can be granted to roles and API keys like built-in ones.
//! Administrators hold every permission known at the time of the request.

use std::collections::BTreeSet;
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

fn plugin_permissions() -> &'static RwLock<BTreeSet<String>> {
    static REGISTRY: OnceLock<RwLock<BTreeSet<String>>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

/// True if and only if `permission` is a well-formed `resource.action`
/// string: two or more dot-separated parts of lowercase letters, digits and
/// `-`, at most 128 characters.
pub fn is_valid_permission(permission: &str) -> bool {
    permission.len() <= 128
        && permission.split('.').count() >= 2
        && permission.split('.').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        })
}

/// Registers permissions a plugin declares, so they become known (granted
/// to administrators, assignable to roles and API keys). Returns the ones
/// refused as malformed.
pub fn register_plugin_permissions<I, P>(permissions: I) -> Vec<String>
where
    I: IntoIterator<Item = P>,
    P: Into<String>,
{
    let mut refused = Vec::new();
    let mut registry = plugin_permissions()
        .write()
        .unwrap_or_else(|p| p.into_inner());
    for permission in permissions {
        let permission = permission.into();
        if is_valid_permission(&permission) {
            registry.insert(permission);
        } else {
            refused.push(permission);
        }
    }
    refused
}

/// Every known permission: the built-in ones and those plugins registered.
pub fn all() -> BTreeSet<String> {
    let mut all: BTreeSet<String> = BUILTIN.iter().map(|(p, _)| (*p).to_owned()).collect();
    all.extend(
        plugin_permissions()
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
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
            .contains(permission)
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

    #[test]
    fn plugin_permissions_become_known_once_registered() {
        assert!(!is_known("quota-guard.override"));
        let refused = register_plugin_permissions(["quota-guard.override", "bad"]);
        assert_eq!(refused, vec!["bad".to_owned()]);
        assert!(is_known("quota-guard.override"));
        assert!(all().contains("quota-guard.override"));
        assert!(all().contains("control.console"));
    }
}
