//! `plugin.*`: installed plugins, their grants, configuration and secrets
//! ([`crate::plugins`]). A secret is named by its key, never copied.

use std::collections::BTreeMap;

use cap_runtime::Grants;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Empty, PluginId, namespace};

namespace! {
    /// `plugin.*`: plugins (the subject is the plugin).
    pub enum PluginEvent {
        /// A plugin was installed.
        Installed = "plugin.installed" { subject: PluginId, data: PluginInstalled },
        /// A newer version of an installed plugin replaced it.
        Updated = "plugin.updated" { subject: PluginId, data: PluginUpdated },
        /// An administrator changed what the plugin is granted.
        Granted = "plugin.granted" { subject: PluginId, data: PluginGranted },
        /// The plugin was loaded and marked active.
        Activated = "plugin.activated" { subject: PluginId, data: PluginVersion },
        /// The plugin was unloaded and marked inactive.
        Deactivated = "plugin.deactivated" { subject: PluginId, data: PluginDeactivated },
        /// The plugin was uninstalled.
        Uninstalled = "plugin.uninstalled" { subject: PluginId, data: PluginUninstalled },
        /// Configuration values were set or removed.
        ConfigUpdated = "plugin.config.updated" { subject: PluginId, data: PluginConfigUpdated },
        /// A secret was set (its value is never recorded).
        SecretSet = "plugin.secret.set" { subject: PluginId, data: PluginSecretSet },
        /// An administrator released the plugin from quarantine.
        Released = "plugin.released" { subject: PluginId, data: Empty },
        /// The runtime quarantined the plugin.
        Quarantined = "plugin.quarantined" { subject: PluginId, data: PluginQuarantined },
    }
}

/// A new plugin. A Marketplace install also records where it came from,
/// its state and its grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PluginInstalled {
    /// Its version.
    pub version: String,
    /// SHA-256 of the package.
    pub sha256: String,
    /// Where it came from (Marketplace installs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    pub source: Option<String>,
    /// `installed`, `active` or `inactive` (Marketplace installs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    pub state: Option<String>,
    /// What it was granted (Marketplace installs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>, required = false)]
    pub grants: Option<Grants>,
}

/// A plugin replaced by a newer version. A Marketplace update also records
/// the version, where it came from and the state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PluginUpdated {
    /// The version before.
    pub from: String,
    /// The version now.
    pub to: String,
    /// SHA-256 of the new package.
    pub sha256: String,
    /// The version now (Marketplace updates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    pub version: Option<String>,
    /// Where it came from (Marketplace updates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    pub source: Option<String>,
    /// Its state (Marketplace updates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    pub state: Option<String>,
}

/// What a plugin is granted now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PluginGranted {
    /// The grants.
    #[schema(value_type = Object)]
    pub grants: Grants,
}

/// A plugin's version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PluginVersion {
    /// The version.
    pub version: String,
}

/// A deactivation; by the Panel itself, with its reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PluginDeactivated {
    /// Why the Panel deactivated it (absent when an administrator did).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    pub reason: Option<String>,
}

/// An uninstalled plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PluginUninstalled {
    /// The version that was installed.
    pub version: String,
    /// Whether its configuration and secrets went too.
    pub purge: bool,
}

/// Configuration changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PluginConfigUpdated {
    /// The values set, by key; `null` removed the value.
    pub values: BTreeMap<String, Option<String>>,
}

/// A secret set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PluginSecretSet {
    /// The secret's key.
    pub key: String,
}

/// A quarantine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PluginQuarantined {
    /// Why.
    pub reason: String,
}
