//! The permission catalogue: every built-in permission, defined once.
//!
//! Permissions are `resource.action` strings (`control.start`,
//! `admin.nodes`). The built-in ones are the variants of [`Permission`],
//! each with its name, its description and its [`Scope`], all written in
//! one table at the top of this file. Everything else is derived from it:
//!
//! | What | Derived how |
//! | --- | --- |
//! | the server-scoped set (what an owner holds on a server, what subusers may be given) | [`Scope::Server`] and [`Scope::ServerOwner`], read by [`crate::servers::access`] |
//! | every route check | a `Gate` per permission (below); no route names a permission string |
//! | the OpenAPI document | the `Permission` schema (an enum of the names, with their descriptions), each operation's `x-permissions` and the sentences and `403` answers [`crate::http::openapi`] generates from them |
//! | the web UI's list | `GET /api/v1/permissions` ([`crate::http::roles_routes`]): the UI keeps no list of its own |
//!
//! # A permission exists only where it gates something
//!
//! Routes check a permission through its `Gate` (`Gate::ADMIN_NODES`,
//! passed to `Principal::require` or `ServerAccess::require`), and the
//! gates are generated from the table with `#[deny(dead_code)]`: a
//! permission that no code checks is an *unused associated constant*, and
//! the crate does not compile. So the catalogue cannot offer a permission
//! that does nothing. The gates are crate-private for that reason: a public
//! item is never "unused" to the compiler. Each feature brought its
//! permissions back with its routes (files did: `file.*`, and `file.sftp`
//! with the Agents' SFTP server, which asks the Panel to decide each
//! sign-in; backups did: `backup.*`; servers' databases: `database.*`; a
//! server's allocations: `allocation.*`; each with the meanings they had
//! when they were retired).
//! Schedules brought `schedule.*` back, checked by the plugin that keeps
//! them (next section).
//!
//! # Permissions a bundled plugin checks
//!
//! Schedules are not in the core: the bundled, removable `scheduler`
//! plugin keeps them (issue 18), and checks `schedule.read`, `.create`,
//! `.update` and `.delete` itself, in its server widget, against the
//! viewer's permissions on the server (the render context's
//! `server-permissions`, see [`crate::http::ui_routes`]). They are built in
//! all the same, in the table's `checked_by_plugins` part, because only
//! built-in permissions are server-scoped: as [`Scope::Server`] entries
//! the owner of a server holds them there, subusers can be granted them on
//! one server, API keys can carry them, and the widget sees exactly the
//! viewer's grant on the server it is shown for. Plugin-declared
//! permissions (see below) are Panel-wide grants an administrator gives,
//! which neither owners nor subusers would hold.
//!
//! These entries have no gate (no route checks them) and name the plugin
//! that does ([`Permission::CHECKED_BY_PLUGINS`], shown in the OpenAPI
//! document and `GET /api/v1/permissions`); a test reads that plugin's
//! source for each name, so an entry no plugin checks cannot stay. They
//! keep the meanings they had when they were retired, so grants stored
//! under them then apply again. Without the plugin installed they gate
//! nothing, like the permissions of any feature that is switched off.
//!
//! # Permissions that were removed
//!
//! [`RETIRED`] lists the names that were once built in and were removed
//! because nothing checked them. Roles, API keys and subuser grants stored
//! before the removal may still name them (`role_permissions`,
//! `api_keys.scopes`, `server_subusers.permissions` and the events that
//! recorded them). They are **ignored on load**: [`drop_retired`] filters
//! them out wherever those rows are read (a role's permissions, a user's
//! permissions, an API key's scopes, a subuser's grant), with one warning
//! per name and process, so startup, login, listing and replay go on as
//! before and a grant never carries a permission the catalogue does not
//! have. They are **dropped on the next write** of the set that names
//! them (a role's or subuser's new permission set is written whole). Rows
//! are not rewritten by a migration because the events that recorded them
//! are history and replay must rebuild the rows exactly as they are
//! ([`crate::db::replay`]). Retired names stay reserved: a plugin cannot
//! declare one, and a request naming one gets the same `422` as any
//! unknown permission.
//!
//! A feature that brings a retired name back takes it off [`RETIRED`];
//! grants stored under that name then apply again, so it must keep the
//! meaning the name had (the descriptions are in the list), or use a new
//! name.
//!
//! # Plugin-declared permissions
//!
//! Plugins may declare more in their manifest's `[permissions]` (each
//! prefixed with the plugin's id); the plugin manager registers them with
//! [`register_plugin_permissions`] so they can be granted to roles and API
//! keys like built-in ones. They are strings, not variants: they are known
//! only at run time, the plugin checks them itself (the Panel hands the
//! caller's permissions to its UI render context), and they are never
//! server-scoped. [`all`] and [`is_known`] cover both kinds.
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
//! - the [admin-only](is_admin_only) permissions (those of
//!   [`Scope::Admin`], plus any plugin-declared `admin.*`) are granted by
//!   administrators only, even by a non-administrator who holds one: they
//!   steer the Panel itself, and spreading them is an administrator's
//!   decision.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;
use std::sync::{Mutex, OnceLock, RwLock};

/// Where a permission applies, and who may be given it: `server` (on one
/// server; subusers may be given it), `server-owner` (on one server, for its
/// owner and holders of `admin.servers`; never for subusers), `panel`
/// (Panel-wide) or `admin` (Panel-wide, granted by administrators only).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// On one server: its owner holds it through their own permissions,
    /// and it may be granted to the server's subusers.
    Server,
    /// On one server, for its owner (and holders of `admin.servers`) only:
    /// never granted to subusers.
    ServerOwner,
    /// Panel-wide.
    Panel,
    /// Panel-wide, and granted by administrators only.
    Admin,
}

impl Scope {
    /// The scope's name in the API: `server`, `server-owner`, `panel`,
    /// `admin`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Scope::Server => "server",
            Scope::ServerOwner => "server-owner",
            Scope::Panel => "panel",
            Scope::Admin => "admin",
        }
    }

    /// True if and only if the permission applies to one server
    /// ([`Scope::Server`] or [`Scope::ServerOwner`]).
    pub const fn is_server(self) -> bool {
        matches!(self, Scope::Server | Scope::ServerOwner)
    }
}

/// A permission a route checks: the only way to ask whether a caller holds
/// a built-in permission before doing something.
///
/// Each permission has one, `Gate::` + its name in capitals
/// (`Gate::ADMIN_NODES`); see the [module documentation](self) for why a
/// permission without a used gate does not compile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Gate(Permission);

impl Gate {
    /// The permission this gate checks.
    pub(crate) const fn permission(self) -> Permission {
        self.0
    }
}

/// Declares the catalogue: the enum, its tables, one gate per entry the
/// Panel checks, and the entries a bundled plugin checks instead (with the
/// plugin's id, and no gate).
macro_rules! catalogue {
    (
        $($variant:ident / $gate:ident = $name:literal, $scope:ident, $description:literal;)*
        @checked_by_plugins {
            $($pvariant:ident = $pname:literal, $pscope:ident, $pdescription:literal, $plugin:literal;)*
        }
    ) => {
        /// A built-in permission.
        ///
        /// Serialised as its name (`"control.start"`); parsed from it with
        /// [`FromStr`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Permission {
            $(
                #[doc = concat!("`", $name, "`: ", $description, ".")]
                $variant,
            )*
            $(
                #[doc = concat!("`", $pname, "`: ", $pdescription, " (checked by the `", $plugin, "` plugin).")]
                $pvariant,
            )*
        }

        impl Permission {
            /// Every built-in permission, in catalogue order.
            pub const ALL: &'static [Permission] =
                &[$(Permission::$variant,)* $(Permission::$pvariant,)*];

            /// The built-in permissions that no route checks, with the id of
            /// the bundled plugin that checks them (see the [module
            /// documentation](self#permissions-a-bundled-plugin-checks)).
            pub const CHECKED_BY_PLUGINS: &'static [(Permission, &'static str)] =
                &[$((Permission::$pvariant, $plugin),)*];

            /// Its name, `resource.action`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Permission::$variant => $name,)*
                    $(Permission::$pvariant => $pname,)*
                }
            }

            /// What it allows, for people.
            pub const fn description(self) -> &'static str {
                match self {
                    $(Permission::$variant => $description,)*
                    $(Permission::$pvariant => $pdescription,)*
                }
            }

            /// Where it applies.
            pub const fn scope(self) -> Scope {
                match self {
                    $(Permission::$variant => Scope::$scope,)*
                    $(Permission::$pvariant => Scope::$pscope,)*
                }
            }

            /// The bundled plugin that checks it, for the few no route
            /// checks ([`Permission::CHECKED_BY_PLUGINS`]).
            pub fn checked_by(self) -> Option<&'static str> {
                Permission::CHECKED_BY_PLUGINS
                    .iter()
                    .find(|(p, _)| *p == self)
                    .map(|(_, plugin)| *plugin)
            }
        }

        // Crate-private and denied dead code: a catalogue entry whose gate
        // no route uses does not compile (see the module documentation).
        #[deny(dead_code)]
        impl Gate {
            $(
                #[doc = concat!("Checks `", $name, "`.")]
                pub(crate) const $gate: Gate = Gate(Permission::$variant);
            )*
        }
    };
}

catalogue! {
    ControlConsole / CONTROL_CONSOLE = "control.console", Server, "Send commands to a server's console";
    ControlStart / CONTROL_START = "control.start", Server, "Start a server";
    ControlStop / CONTROL_STOP = "control.stop", Server, "Stop or kill a server";
    ControlRestart / CONTROL_RESTART = "control.restart", Server, "Restart a server";
    UserCreate / USER_CREATE = "user.create", Server, "Add subusers to a server";
    UserRead / USER_READ = "user.read", Server, "See a server's subusers";
    UserUpdate / USER_UPDATE = "user.update", Server, "Change a server's subusers";
    UserDelete / USER_DELETE = "user.delete", Server, "Remove subusers from a server";
    StartupRead / STARTUP_READ = "startup.read", Server, "See startup variables";
    StartupUpdate / STARTUP_UPDATE = "startup.update", Server, "Change startup variables";
    StartupDockerImage / STARTUP_DOCKER_IMAGE = "startup.docker-image", Server, "Pick the image a server runs in";
    SettingsRename / SETTINGS_RENAME = "settings.rename", Server, "Rename a server";
    SettingsReinstall / SETTINGS_REINSTALL = "settings.reinstall", Server, "Reinstall a server";
    ActivityRead / ACTIVITY_READ = "activity.read", Server, "See a server's command history";
    FileRead / FILE_READ = "file.read", Server, "List and read files";
    FileReadContent / FILE_READ_CONTENT = "file.read-content", Server, "Read the content of files";
    FileCreate / FILE_CREATE = "file.create", Server, "Create files";
    FileUpdate / FILE_UPDATE = "file.update", Server, "Change files";
    FileDelete / FILE_DELETE = "file.delete", Server, "Delete files";
    FileArchive / FILE_ARCHIVE = "file.archive", Server, "Archive and extract files";
    FileSftp / FILE_SFTP = "file.sftp", Server, "Connect over SFTP";
    BackupCreate / BACKUP_CREATE = "backup.create", Server, "Create backups";
    BackupRead / BACKUP_READ = "backup.read", Server, "See backups";
    BackupDelete / BACKUP_DELETE = "backup.delete", Server, "Delete backups";
    BackupDownload / BACKUP_DOWNLOAD = "backup.download", Server, "Download backups";
    BackupRestore / BACKUP_RESTORE = "backup.restore", Server, "Restore backups";
    DatabaseCreate / DATABASE_CREATE = "database.create", Server, "Create databases";
    DatabaseRead / DATABASE_READ = "database.read", Server, "See databases";
    DatabaseUpdate / DATABASE_UPDATE = "database.update", Server, "Change databases";
    DatabaseDelete / DATABASE_DELETE = "database.delete", Server, "Delete databases";
    DatabaseViewPassword / DATABASE_VIEW_PASSWORD = "database.view-password", Server, "See database passwords";
    AllocationRead / ALLOCATION_READ = "allocation.read", Server, "See a server's allocations";
    AllocationCreate / ALLOCATION_CREATE = "allocation.create", Server, "Add allocations to a server";
    AllocationUpdate / ALLOCATION_UPDATE = "allocation.update", Server, "Change a server's allocations";
    AllocationDelete / ALLOCATION_DELETE = "allocation.delete", Server, "Remove allocations from a server";
    ServerDelete / SERVER_DELETE = "server.delete", ServerOwner, "Delete servers";
    ServerCreate / SERVER_CREATE = "server.create", Panel, "Create servers";
    AdminUsers / ADMIN_USERS = "admin.users", Admin, "Manage users and roles";
    AdminNodes / ADMIN_NODES = "admin.nodes", Admin, "Manage nodes";
    AdminPlugins / ADMIN_PLUGINS = "admin.plugins", Admin, "Manage plugins";
    AdminServers / ADMIN_SERVERS = "admin.servers", Admin, "Manage every server";
    AuditRead / AUDIT_READ = "audit.read", Admin, "Read the audit log";
    SettingsRead / SETTINGS_READ = "settings.read", Admin, "Read Panel settings";
    SettingsWrite / SETTINGS_WRITE = "settings.write", Admin, "Change Panel settings";
    @checked_by_plugins {
        ScheduleCreate = "schedule.create", Server, "Create schedules", "scheduler";
        ScheduleRead = "schedule.read", Server, "See schedules", "scheduler";
        ScheduleUpdate = "schedule.update", Server, "Change schedules", "scheduler";
        ScheduleDelete = "schedule.delete", Server, "Delete schedules", "scheduler";
    }
}

/// Names that were built-in permissions and were removed because nothing
/// checked them, with what they were to mean; stored grants naming them are
/// ignored (see the [module documentation](self#permissions-that-were-removed)).
pub const RETIRED: &[(&str, &str)] = &[("server.read", "See servers")];

impl Permission {
    /// The permissions that apply to one server ([`Scope::is_server`]):
    /// what an owner may hold there and administrators of servers hold on
    /// every one.
    pub fn on_servers() -> impl Iterator<Item = Permission> {
        Permission::ALL
            .iter()
            .copied()
            .filter(|p| p.scope().is_server())
    }

    /// The permissions that may be granted to subusers ([`Scope::Server`]).
    pub fn for_subusers() -> impl Iterator<Item = Permission> {
        Permission::ALL
            .iter()
            .copied()
            .filter(|p| p.scope() == Scope::Server)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not a built-in permission.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a built-in permission")]
pub struct UnknownPermission(pub String);

impl FromStr for Permission {
    type Err = UnknownPermission;

    fn from_str(name: &str) -> Result<Permission, UnknownPermission> {
        Permission::ALL
            .iter()
            .copied()
            .find(|p| p.as_str() == name)
            .ok_or_else(|| UnknownPermission(name.to_owned()))
    }
}

impl serde::Serialize for Permission {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Permission {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

impl utoipa::PartialSchema for Permission {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
        let mut description = String::from(
            "A built-in permission. Plugins may declare more (prefixed with their id); \
             those are not listed here.\n\n| Name | Scope | Allows |\n| --- | --- | --- |\n",
        );
        for p in Permission::ALL {
            let checked_by = p
                .checked_by()
                .map(|plugin| format!(" (checked by the `{plugin}` plugin)"))
                .unwrap_or_default();
            description.push_str(&format!(
                "| `{}` | {} | {}{checked_by} |\n",
                p.as_str(),
                p.scope().as_str(),
                p.description()
            ));
        }
        ObjectBuilder::new()
            .schema_type(SchemaType::new(Type::String))
            .enum_values(Some(Permission::ALL.iter().map(|p| p.as_str())))
            .description(Some(description))
            .into()
    }
}

impl utoipa::ToSchema for Permission {}

/// True if and only if only administrators may grant `permission`: a
/// built-in one of [`Scope::Admin`], or any other `admin.*` (a plugin may
/// declare one).
pub fn is_admin_only(permission: &str) -> bool {
    permission.starts_with("admin.")
        || permission
            .parse::<Permission>()
            .is_ok_and(|p| p.scope() == Scope::Admin)
}

/// True if and only if `name` is in [`RETIRED`].
pub fn is_retired(name: &str) -> bool {
    RETIRED.iter().any(|(retired, _)| *retired == name)
}

/// `stored` without its [retired](RETIRED) names, for code that loads a
/// stored permission set (`whose` says which, for the log). Each retired
/// name found is logged as a warning once per process.
pub fn drop_retired<C>(stored: C, whose: &str) -> C
where
    C: IntoIterator<Item = String> + FromIterator<String>,
{
    stored
        .into_iter()
        .filter(|name| {
            let retired = is_retired(name);
            if retired {
                warn_once(name, whose);
            }
            !retired
        })
        .collect()
}

fn warn_once(name: &str, whose: &str) {
    static WARNED: OnceLock<Mutex<BTreeSet<String>>> = OnceLock::new();
    let mut warned = WARNED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if warned.insert(name.to_owned()) {
        tracing::warn!(
            permission = name,
            found_in = whose,
            "a stored grant names a removed permission; it is ignored, and dropped when the \
             grant is next written"
        );
    }
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
/// refused as malformed, as a built-in permission or as a
/// [retired](RETIRED) one.
pub fn register_plugin_permissions<I>(plugin: &str, permissions: I) -> Vec<String>
where
    I: IntoIterator<Item = (String, String)>,
{
    let mut refused = Vec::new();
    let mut registry = plugin_permissions()
        .write()
        .unwrap_or_else(|p| p.into_inner());
    for (name, description) in permissions {
        if is_valid_permission(&name) && name.parse::<Permission>().is_err() && !is_retired(&name) {
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
    let mut all: BTreeSet<String> = Permission::ALL
        .iter()
        .map(|p| p.as_str().to_owned())
        .collect();
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
    permission.parse::<Permission>().is_ok()
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

    #[test]
    fn every_permission_round_trips_through_its_name_and_names_are_unique_and_well_formed() {
        let mut names = BTreeSet::new();
        for permission in Permission::ALL {
            let name = permission.as_str();
            assert!(is_valid_permission(name), "{name}");
            assert!(names.insert(name), "{name} is in the catalogue twice");
            assert_eq!(name.parse::<Permission>(), Ok(*permission));
            assert_eq!(permission.to_string(), name);
            assert_eq!(
                serde_json::to_value(permission).expect("serialises"),
                serde_json::json!(name)
            );
            assert_eq!(
                serde_json::from_value::<Permission>(serde_json::json!(name)).expect("parses"),
                *permission
            );
            assert!(!permission.description().is_empty(), "{name}");
            assert!(!is_retired(name), "{name} is both built in and retired");
        }
        for (name, description) in RETIRED {
            assert!(is_valid_permission(name), "{name}");
            assert!(!description.is_empty(), "{name}");
            assert_eq!(
                name.parse::<Permission>(),
                Err(UnknownPermission((*name).to_owned()))
            );
        }
        assert!(serde_json::from_value::<Permission>(serde_json::json!("server.read")).is_err());
        assert_eq!("file.sftp".parse::<Permission>(), Ok(Permission::FileSftp));
    }

    #[test]
    fn the_server_scoped_sets_follow_the_scopes() {
        let on_servers: Vec<&str> = Permission::on_servers().map(Permission::as_str).collect();
        let for_subusers: Vec<&str> = Permission::for_subusers().map(Permission::as_str).collect();
        assert!(on_servers.contains(&"server.delete"));
        assert!(
            !for_subusers.contains(&"server.delete"),
            "never for subusers"
        );
        assert!(for_subusers.contains(&"control.start"));
        assert!(!on_servers.contains(&"server.create"));
        assert!(!on_servers.contains(&"admin.servers"));
        assert!(for_subusers.iter().all(|p| on_servers.contains(p)));
    }

    #[test]
    fn the_gates_check_the_permission_they_are_named_after() {
        assert_eq!(Gate::ADMIN_NODES.permission(), Permission::AdminNodes);
        assert_eq!(
            Gate::CONTROL_CONSOLE.permission().as_str(),
            "control.console"
        );
    }

    fn held(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|p| (*p).to_owned()).collect()
    }

    #[test]
    fn admin_scoped_permissions_and_admin_prefixes_are_admin_only() {
        for permission in Permission::ALL {
            assert_eq!(
                is_admin_only(permission.as_str()),
                permission.scope() == Scope::Admin,
                "{permission}"
            );
        }
        assert!(is_admin_only("admin.some-plugin-thing"));
        assert!(!is_admin_only("control.console"));
        assert!(!is_admin_only("player-list.kick"));
    }

    #[test]
    fn a_grant_needs_every_permission_held_and_admin_only_ones_need_an_administrator() {
        let mine = held(&["admin.users", "control.start", "activity.read"]);
        assert_eq!(
            check_grant(["control.start", "activity.read"], &mine, false),
            Ok(())
        );
        assert_eq!(check_grant([], &mine, false), Ok(()));
        assert_eq!(
            check_grant(
                ["control.start", "control.console", "startup.read"],
                &mine,
                false
            ),
            Err(GrantRefusal::NotHeld(vec![
                "control.console".into(),
                "startup.read".into()
            ]))
        );
        // Held, but admin-only: refused to a non-administrator.
        assert_eq!(
            check_grant(
                ["admin.users", "admin.nodes", "activity.read"],
                &mine,
                false
            ),
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
    fn retired_names_are_unknown_and_dropped_from_stored_sets() {
        for (name, _) in RETIRED {
            assert!(!is_known(name), "{name}");
            assert!(!all().contains(*name), "{name}");
        }
        let stored: Vec<String> = [
            "schedule.read",
            "control.start",
            "server.read",
            "my-plugin.go",
        ]
        .map(str::to_owned)
        .into();
        assert_eq!(
            drop_retired(stored, "a test"),
            ["schedule.read", "control.start", "my-plugin.go"],
            "built-in and plugin names stay, in order (schedule.* came back with schedules)"
        );
        let stored: BTreeSet<String> = held(&[
            "allocation.read",
            "server.read",
            "user.read",
            "backup.read",
            "database.read",
        ]);
        assert_eq!(
            drop_retired(stored, "a test"),
            held(&[
                "allocation.read",
                "backup.read",
                "database.read",
                "user.read"
            ]),
            "backup.*, database.* and allocation.* came back with their features and are kept"
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

    #[test]
    fn a_plugin_cannot_declare_a_retired_name() {
        // A plugin whose id is `server` may declare `server.*` names, but
        // not one that stored grants may still hold.
        let refused = register_plugin_permissions(
            "server",
            [
                ("server.read".to_owned(), "See servers".to_owned()),
                ("server.tail".to_owned(), "Follow a server".to_owned()),
            ],
        );
        assert_eq!(refused, ["server.read"]);
        assert!(!is_known("server.read"));
        assert!(is_known("server.tail"));
    }

    #[test]
    fn a_plugin_cannot_declare_a_permission_a_bundled_plugin_checks() {
        let refused = register_plugin_permissions(
            "schedule",
            [("schedule.read".to_owned(), "See schedules".to_owned())],
        );
        assert_eq!(refused, ["schedule.read"], "built in");
        assert_eq!(
            plugin_declared().get("schedule.read"),
            None,
            "not registered as the plugin's"
        );
    }

    /// Each permission a bundled plugin checks is server-scoped (owners
    /// hold it, subusers may be given it) and is named in the source of
    /// the plugin said to check it, so no entry outlives its checker.
    #[test]
    fn the_permissions_bundled_plugins_check_are_server_scoped_and_named_in_their_source() {
        let plugins =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../example-plugins");
        assert!(!Permission::CHECKED_BY_PLUGINS.is_empty());
        for (permission, plugin) in Permission::CHECKED_BY_PLUGINS {
            assert_eq!(permission.scope(), Scope::Server, "{permission}");
            assert!(!is_retired(permission.as_str()), "{permission}");
            assert_eq!(permission.checked_by(), Some(*plugin));
            let dir = [plugins.join(plugin), plugins.join("v0.2").join(plugin)]
                .into_iter()
                .find(|d| d.join("plugin.toml").is_file())
                .unwrap_or_else(|| panic!("no example plugin {plugin}"));
            let mut sources = String::new();
            for entry in std::fs::read_dir(dir.join("src")).expect("the plugin's sources") {
                let path = entry.expect("an entry").path();
                if path.extension().is_some_and(|e| e == "rs") {
                    sources.push_str(&std::fs::read_to_string(&path).expect("a source file"));
                }
            }
            assert!(
                sources.contains(&format!("\"{}\"", permission.as_str())),
                "{plugin} does not check {permission}"
            );
        }
        assert_eq!(Permission::ControlStart.checked_by(), None);
        assert!(Permission::for_subusers().any(|p| p == Permission::ScheduleCreate));
    }
}
