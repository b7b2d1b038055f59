//! `config`: admin-set configuration values and secrets of the calling plugin.

use std::collections::HashMap;
use std::sync::RwLock;

use super::{BoxFuture, ServiceError, until_deadline};
use crate::api::CapabilityError;
use crate::plugin::PluginState;

/// Storage behind `config`. Values a manifest declares with a default are
/// resolved by the embedder; the runtime only enforces grants.
pub trait ConfigStore: Send + Sync {
    /// A configuration value.
    fn get<'a>(
        &'a self,
        plugin: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, ServiceError>>;
    /// A secret value.
    fn get_secret<'a>(
        &'a self,
        plugin: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, ServiceError>>;
}

/// In-memory [`ConfigStore`].
#[derive(Debug, Default)]
pub struct MemoryConfig {
    values: RwLock<HashMap<(String, String), String>>,
    secrets: RwLock<HashMap<(String, String), String>>,
}

impl MemoryConfig {
    /// Sets a configuration value.
    pub fn set(&self, plugin: &str, key: &str, value: &str) {
        self.values
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert((plugin.into(), key.into()), value.into());
    }

    /// Sets a secret.
    pub fn set_secret(&self, plugin: &str, key: &str, value: &str) {
        self.secrets
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert((plugin.into(), key.into()), value.into());
    }
}

impl ConfigStore for MemoryConfig {
    fn get<'a>(
        &'a self,
        plugin: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, ServiceError>> {
        Box::pin(async move {
            Ok(self
                .values
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .get(&(plugin.to_string(), key.to_string()))
                .cloned())
        })
    }

    fn get_secret<'a>(
        &'a self,
        plugin: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, ServiceError>> {
        Box::pin(async move {
            Ok(self
                .secrets
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .get(&(plugin.to_string(), key.to_string()))
                .cloned())
        })
    }
}

/// `config.get`: the admin's value, else the manifest's default.
pub(crate) async fn get(
    state: &mut PluginState,
    key: String,
) -> Result<Option<String>, CapabilityError> {
    if !state.caps.grants.config {
        return Err(state.caps.deny("config"));
    }
    if let Some(value) = until_deadline(
        state.deadline,
        state.caps.services.config.get(&state.caps.plugin_id, &key),
    )
    .await?
    {
        return Ok(Some(value));
    }
    Ok(state.config_defaults.get(&key).cloned())
}

/// `config.get-secret`.
pub(crate) async fn get_secret(
    state: &mut PluginState,
    key: String,
) -> Result<Option<String>, CapabilityError> {
    if !state.caps.grants.secrets.contains(&key) {
        return Err(state.caps.deny(&format!("secrets.{key}")));
    }
    Ok(until_deadline(
        state.deadline,
        state
            .caps
            .services
            .config
            .get_secret(&state.caps.plugin_id, &key),
    )
    .await?)
}
