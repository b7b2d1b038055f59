//! Auth-provider plugins: the [`ProviderRegistry`] the Panel logs users in
//! through, and [`load_local_password`] for the bundled provider.
//!
//! The core checks no password itself. A provider answers
//! `authenticate(credentials)` with a verified identity (a stable subject)
//! or a typed refusal; the core maps the subject to a user through the
//! `identities` table.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use cap_runtime::{Grants, HostServices, LoadError, Manifest, Plugin, PluginSpec, Runtime};

use crate::db::Database;
use crate::plugin_kv::DbKv;

/// The id of the bundled password provider.
pub const LOCAL_PASSWORD: &str = "local-password";

/// The auth-provider plugins, by plugin id. Cheap to clone; clones share
/// the map, so providers installed later are seen by a running Panel.
#[derive(Debug, Clone, Default)]
pub struct ProviderRegistry {
    inner: Arc<RwLock<BTreeMap<String, Plugin>>>,
}

impl ProviderRegistry {
    /// An empty registry.
    pub fn new() -> ProviderRegistry {
        ProviderRegistry::default()
    }

    /// Adds (or replaces) `plugin` under its id.
    pub fn insert(&self, plugin: Plugin) {
        self.inner
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(plugin.id().to_owned(), plugin);
    }

    /// Removes the provider `id`, returning it.
    pub fn remove(&self, id: &str) -> Option<Plugin> {
        self.inner
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id)
    }

    /// The provider `id`.
    pub fn get(&self, id: &str) -> Option<Plugin> {
        self.inner
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    /// The ids of every provider, sorted.
    pub fn ids(&self) -> Vec<String> {
        self.inner
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect()
    }
}

/// Host services for plugins on `db`: the database-backed KV store, the
/// rest in memory.
pub fn panel_services(db: &Database) -> HostServices {
    let mut services = HostServices::in_memory();
    services.kv = Arc::new(DbKv::new(db.clone()));
    services
}

/// Loads the bundled `local-password` provider from its manifest
/// (`plugin.toml` bytes) and component bytes, granting what it requests,
/// with its accounts in `db`'s `plugin_kv` table.
///
/// # Errors
///
/// [`LoadError`] when the manifest or component is refused.
pub async fn load_local_password(
    runtime: &Runtime,
    db: &Database,
    manifest: &[u8],
    component: impl Into<Arc<[u8]>>,
) -> Result<Plugin, LoadError> {
    let manifest = Manifest::parse(manifest)?;
    load_provider(runtime, db, manifest, component).await
}

/// Loads an auth-provider plugin with every capability its manifest
/// requests granted and plugin KV in `db`.
///
/// # Errors
///
/// [`LoadError`] when the manifest or component is refused.
pub async fn load_provider(
    runtime: &Runtime,
    db: &Database,
    manifest: Manifest,
    component: impl Into<Arc<[u8]>>,
) -> Result<Plugin, LoadError> {
    let grants = Grants::all_requested(&manifest);
    runtime
        .load(PluginSpec {
            manifest,
            component: component.into(),
            grants,
            limit_caps: None,
            services: panel_services(db),
        })
        .await
}
