//! Plugin management: installing packages, granting capabilities,
//! activating, updating and removing plugins, and the services the Panel
//! lends them.
//!
//! [`PluginManager`] owns the [`cap_runtime::Runtime`] (its compiled-artifact
//! cache lives under `<data>/cache`) and the set of active, loaded plugins.
//! The database (`plugins`, `plugin_config`, `plugin_secrets`; see
//! [`store`]) is the source of truth; the in-memory set mirrors the rows in
//! state `active` and is rebuilt from them by [`PluginManager::start`].
//!
//! Key decisions:
//!
//! - **Components live on disk, checked on load.** An uploaded package is
//!   validated with [`cap_runtime::Package::read`]; its component is written
//!   to `<data>/plugins/<sha256>.wasm` (content-addressed, so versions never
//!   overwrite each other) and its sha256 is recomputed every time it is
//!   read back, so a file changed behind the Panel's back is refused.
//! - **Request, then grant.** Installing grants nothing: the response lists
//!   what the manifest requests, and the admin grants a subset. The runtime
//!   enforces the intersection at call time.
//! - **Update is load-then-swap.** A newer version of an active plugin is
//!   loaded first; only when that succeeds does it replace the old one, in
//!   memory and in the database. If it fails, nothing changes: the old
//!   version stays installed and active (rollback).
//! - **One writer at a time.** Changes are serialized by a mutex so the
//!   database row and the loaded set cannot disagree.
//! - **Paid plugins pass a gate before every load.** A [`LoadGate`] (the
//!   Panel installs [`crate::marketplace::licenses::LicenseGate`]) checks
//!   the license offline whenever a plugin is loaded — at start, on
//!   activation, after a grant or an update — so a paid plugin never runs
//!   without a valid license. The Marketplace's install path
//!   ([`PluginManager::install_set`]) checks licenses online itself just
//!   before, so it loads without the gate.
//! - **Every change is an event** (`plugin.installed`, `plugin.updated`,
//!   `plugin.granted`, `plugin.activated`, `plugin.deactivated`,
//!   `plugin.uninstalled`, `plugin.config.updated`, `plugin.secret.set`,
//!   `plugin.quarantined`, `plugin.released`), appended in the same
//!   transaction. Secrets never appear in events.
//! - **Quarantine outlives a restart.** When the runtime quarantines a
//!   plugin, the reason and time go to its row (`plugin.quarantined`, by
//!   the system); every load of that plugin — at start, on activation, after
//!   a grant — puts the stored quarantine back, so restarting the Panel or
//!   reactivating the plugin does not lift it. Only an admin's release
//!   ([`PluginManager::release`], `plugin.released`) does; a new version
//!   starts unquarantined.
//! - **Lifecycle hooks** ([`hooks`]): installing (or updating), activating
//!   and uninstalling fire `plugin.install`, `plugin.activate` and
//!   `plugin.uninstall`, which the other active plugins' before-hooks may
//!   refuse once the Panel's own checks passed (nothing is written then);
//!   deactivating fires `plugin.deactivate` to after-hooks only, because
//!   deactivation must always work — it is how an admin gets out of a
//!   plugin that misbehaves, refusals of other operations included. A
//!   plugin is never asked about its own lifecycle. After-hooks hear of a
//!   change once it is committed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use cap_runtime::api::{EventKind, Payload};
use cap_runtime::capabilities::config::ConfigStore;
use cap_runtime::capabilities::kv::{KvStore, MemoryKv};
use cap_runtime::capabilities::panel::{NoPanel, PanelApi};
use cap_runtime::capabilities::{BoxFuture, ServiceError};
use cap_runtime::component::sha256_hex;
use cap_runtime::{
    Grants, HostServices, LoadError, Manifest, Package, PackageError, Plugin, PluginSpec, Runtime,
    RuntimeConfig,
};

use crate::db::domain::{
    Empty, PluginConfigUpdated, PluginDeactivated, PluginEvent, PluginGranted, PluginId,
    PluginInstalled, PluginQuarantined, PluginSecretSet, PluginUninstalled, PluginUpdated,
    PluginVersion,
};
use crate::db::{Actor, Database, DbError, NewEvent, now};

pub mod hooks;
pub mod store;

pub use store::{PluginLifecycle, PluginRecord};

/// Largest component accepted in an uploaded package, bytes.
pub const MAX_COMPONENT_BYTES: u64 = 32 << 20;

/// Instances the runtime's pooling allocator reserves, for all plugins of
/// one Panel together. Several Panels run in one test process, and each
/// pool reserves address space for every slot.
const POOL_INSTANCES: u32 = 64;

/// Why a plugin operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// No plugin with this id is installed.
    #[error("there is no plugin {0:?}")]
    NotFound(String),
    /// The package is not valid.
    #[error("invalid package: {0}")]
    InvalidPackage(#[from] PackageError),
    /// The same or a newer version is already installed.
    #[error("{id} {installed} is installed; upload a newer version to update it")]
    NotNewer {
        /// The plugin.
        id: String,
        /// The installed version.
        installed: semver::Version,
    },
    /// The admin granted something the manifest does not request.
    #[error("{0} is not requested by the plugin's manifest")]
    NotRequested(String),
    /// Required configuration keys have no value.
    #[error("required configuration is missing: {}", .0.join(", "))]
    MissingConfig(Vec<String>),
    /// Configuration values are unknown or of the wrong type.
    #[error("invalid configuration")]
    InvalidConfig(Vec<(String, String)>),
    /// The runtime refused to load the plugin.
    #[error("the plugin failed to load: {0}")]
    Load(#[from] LoadError),
    /// The stored component is missing or does not match its sha256.
    #[error("the stored component of {id} is damaged: {reason}")]
    Damaged {
        /// The plugin.
        id: String,
        /// What is wrong.
        reason: String,
    },
    /// The plugin is not active.
    #[error("{0} is not active")]
    NotActive(String),
    /// The [`LoadGate`] refused: a paid plugin without a valid license.
    #[error("{id} is a paid plugin and may not run: {reason}")]
    Unlicensed {
        /// The plugin.
        id: String,
        /// Which license check failed, and why.
        reason: String,
    },
    /// Another plugin's before-hook refused the install, activation or
    /// uninstall (see [`hooks`]).
    #[error(transparent)]
    HookDenied(#[from] hooks::HookDenied),
    /// Writing the component file failed.
    #[error("cannot store the component")]
    Io(#[from] std::io::Error),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// The outcome of [`PluginManager::install`].
#[derive(Debug, Clone)]
pub struct Installed {
    /// The row as stored now.
    pub record: PluginRecord,
    /// The version replaced, for an update.
    pub replaced: Option<semver::Version>,
}

/// Values for the `kv` and `panel` capabilities, supplied by other parts of
/// the Panel. Configuration, secrets and timers are always the database's.
#[derive(Clone)]
pub struct PluginServices {
    /// Backs `kv` (default: in memory).
    pub kv: Arc<dyn KvStore>,
    /// Backs `panel` (default: [`NoPanel`]).
    pub panel: Arc<dyn PanelApi>,
}

impl Default for PluginServices {
    fn default() -> Self {
        PluginServices {
            kv: Arc::new(MemoryKv::default()),
            panel: Arc::new(NoPanel),
        }
    }
}

impl std::fmt::Debug for PluginServices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginServices").finish_non_exhaustive()
    }
}

/// Installs, activates and holds the Panel's plugins. Cheap to clone.
#[derive(Clone)]
pub struct PluginManager {
    inner: Arc<Inner>,
}

struct Inner {
    db: Database,
    runtime: Runtime,
    dir: PathBuf,
    services: HostServices,
    active: RwLock<BTreeMap<String, Plugin>>,
    writer: tokio::sync::Mutex<()>,
    listeners: RwLock<Vec<ActivationListener>>,
    gate: std::sync::OnceLock<Arc<dyn LoadGate>>,
    timers: crate::timers::Timers,
}

/// A [`PluginManager`] that does not keep it alive: for services the
/// manager's own plugins hold (the `panel` capability), which would
/// otherwise keep the manager — and its runtime — alive forever.
#[derive(Clone, Default)]
pub struct WeakPluginManager(std::sync::Weak<Inner>);

impl WeakPluginManager {
    /// The manager, while it exists.
    pub fn upgrade(&self) -> Option<PluginManager> {
        self.0.upgrade().map(|inner| PluginManager { inner })
    }
}

impl std::fmt::Debug for WeakPluginManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeakPluginManager").finish_non_exhaustive()
    }
}

/// Decides whether a plugin may be loaded; the Panel's offline license
/// check of paid plugins.
pub trait LoadGate: Send + Sync {
    /// `Err(reason)` refuses loading plugin `id` with `manifest`; the
    /// reason names the failed check.
    fn check<'a>(
        &'a self,
        id: &'a str,
        manifest: &'a Manifest,
    ) -> BoxFuture<'a, Result<(), String>>;
}

/// Told each time a plugin becomes active (with the loaded plugin) or stops
/// being active (`None`).
pub type ActivationListener = Arc<dyn Fn(&str, Option<&Plugin>) + Send + Sync>;

impl std::fmt::Debug for PluginManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginManager")
            .field("dir", &self.inner.dir)
            .field("active", &self.active_ids())
            .finish_non_exhaustive()
    }
}

/// [`ConfigStore`] over `plugin_config` and `plugin_secrets`.
#[derive(Debug, Clone)]
pub struct DbConfigStore {
    db: Database,
}

impl DbConfigStore {
    /// The store of `db`.
    pub fn new(db: Database) -> Self {
        DbConfigStore { db }
    }
}

fn unavailable(e: DbError) -> ServiceError {
    ServiceError::Unavailable(e.to_string())
}

impl ConfigStore for DbConfigStore {
    fn get<'a>(
        &'a self,
        plugin: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, ServiceError>> {
        Box::pin(async move {
            store::value(&self.db, store::Values::Config, plugin, key)
                .await
                .map_err(unavailable)
        })
    }

    fn get_secret<'a>(
        &'a self,
        plugin: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, ServiceError>> {
        Box::pin(async move {
            store::value(&self.db, store::Values::Secrets, plugin, key)
                .await
                .map_err(unavailable)
        })
    }
}

/// The event `what` happened to plugin `id`, by `actor`.
fn event(id: &str, actor: &Actor, what: impl FnOnce(PluginId) -> PluginEvent) -> NewEvent {
    NewEvent::new(what(PluginId::new(id))).actor(actor.clone())
}

impl PluginManager {
    /// A manager storing components under `<data_dir>/plugins` and compiled
    /// artifacts under `<data_dir>/cache`. Loads nothing yet: see
    /// [`PluginManager::start`].
    ///
    /// # Errors
    ///
    /// [`PluginError::Load`] if the runtime cannot be built,
    /// [`PluginError::Io`] if the directories cannot be created.
    pub fn new(
        db: Database,
        data_dir: &Path,
        services: PluginServices,
    ) -> Result<Self, PluginError> {
        let dir = data_dir.join("plugins");
        std::fs::create_dir_all(&dir)?;
        let runtime = Runtime::new(RuntimeConfig {
            cache_dir: Some(data_dir.join("cache")),
            max_component_bytes: MAX_COMPONENT_BYTES,
            pool_instances: POOL_INSTANCES,
            ..RuntimeConfig::default()
        })?;
        // Timers are always the database's: the delivery loop reads them
        // there (see `crate::timers`).
        let timers = crate::timers::Timers::new(db.clone());
        let services = HostServices {
            kv: services.kv,
            config: Arc::new(DbConfigStore::new(db.clone())),
            panel: services.panel,
            timers: Arc::new(timers.clone()),
            ..HostServices::in_memory()
        };
        Ok(PluginManager {
            inner: Arc::new(Inner {
                db,
                runtime,
                dir,
                services,
                active: RwLock::new(BTreeMap::new()),
                writer: tokio::sync::Mutex::new(()),
                listeners: RwLock::new(Vec::new()),
                gate: std::sync::OnceLock::new(),
                timers,
            }),
        })
    }

    /// Loads every plugin the database says is active. A plugin that fails
    /// to load is logged and left out (its row keeps saying `active`, so the
    /// next start tries again); returns the ids of those that failed.
    ///
    /// # Errors
    ///
    /// Database errors only.
    pub async fn start(&self) -> Result<Vec<String>, PluginError> {
        let _writer = self.inner.writer.lock().await;
        let mut failed = Vec::new();
        for record in store::list(&self.inner.db).await? {
            if record.state != PluginLifecycle::Active {
                continue;
            }
            match self.load(&record).await {
                Ok(plugin) => {
                    self.set_active(&record.id, Some(plugin));
                }
                Err(error) => {
                    tracing::error!(plugin = %record.id, %error, "cannot load an active plugin");
                    failed.push(record.id);
                }
            }
        }
        Ok(failed)
    }

    /// Installs the gate every load passes (except
    /// [`PluginManager::install_set`]'s); only the first call has an
    /// effect. Install it before [`PluginManager::start`].
    pub fn set_load_gate(&self, gate: Arc<dyn LoadGate>) {
        let _ = self.inner.gate.set(gate);
    }

    /// A handle that does not keep this manager alive.
    pub fn downgrade(&self) -> WeakPluginManager {
        WeakPluginManager(Arc::downgrade(&self.inner))
    }

    /// The runtime.
    pub fn runtime(&self) -> &Runtime {
        &self.inner.runtime
    }

    /// The plugins' timers (the `timers` capability's store, which the
    /// delivery loop of [`crate::timers`] fires).
    pub fn timers(&self) -> &crate::timers::Timers {
        &self.inner.timers
    }

    /// The loaded plugin `id`, if active.
    pub fn active(&self, id: &str) -> Option<Plugin> {
        self.read_active().get(id).cloned()
    }

    /// Every loaded plugin, by id.
    pub fn active_plugins(&self) -> Vec<Plugin> {
        self.read_active().values().cloned().collect()
    }

    /// The ids of the loaded plugins.
    pub fn active_ids(&self) -> Vec<String> {
        self.read_active().keys().cloned().collect()
    }

    fn read_active(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Plugin>> {
        self.inner.active.read().unwrap_or_else(|p| p.into_inner())
    }

    fn set_active(&self, id: &str, plugin: Option<Plugin>) {
        if let Some(plugin) = &plugin {
            // Known before the plugin is visible, so nothing it renders or
            // is asked about names a permission roles cannot hold yet.
            let manifest = plugin.manifest();
            let refused = crate::identity::permissions::register_plugin_permissions(
                &manifest.plugin.id,
                manifest.permissions.clone(),
            );
            if !refused.is_empty() {
                tracing::warn!(plugin = %id, ?refused, "declared permissions refused");
            }
        }
        {
            let mut active = self.inner.active.write().unwrap_or_else(|p| p.into_inner());
            match &plugin {
                Some(plugin) => active.insert(id.to_owned(), plugin.clone()),
                None => active.remove(id),
            };
        }
        // What the Panel reads through plugins (which variables users may
        // see) may differ now: answers cached before this are stale.
        self.inner.db.invalidate_reads();
        let listeners = self
            .inner
            .listeners
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for listener in listeners {
            listener(id, plugin.as_ref());
        }
    }

    /// Calls `listener` for every plugin active now, then on every
    /// activation and deactivation (including reloads after a grant or an
    /// update). Other parts of the Panel keep their views of the active
    /// plugins — the login providers, say — in step this way.
    pub fn on_activation(&self, listener: ActivationListener) {
        for plugin in self.active_plugins() {
            listener(plugin.id(), Some(&plugin));
        }
        self.inner
            .listeners
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(listener);
    }

    /// One installed plugin.
    ///
    /// # Errors
    ///
    /// [`PluginError::NotFound`], database errors.
    pub async fn get(&self, id: &str) -> Result<PluginRecord, PluginError> {
        store::get(&self.inner.db, id)
            .await?
            .ok_or_else(|| PluginError::NotFound(id.to_owned()))
    }

    /// Every installed plugin, by id.
    ///
    /// # Errors
    ///
    /// Database errors.
    pub async fn list(&self) -> Result<Vec<PluginRecord>, PluginError> {
        Ok(store::list(&self.inner.db).await?)
    }

    /// Installs a package, or updates the installed plugin with its id when
    /// the package's version is newer.
    ///
    /// A new plugin is stored in state `installed` with no grants. An update
    /// keeps the state and the grants that the new manifest still requests;
    /// if the plugin is active, the new version is loaded first and swapped
    /// in only if that succeeds — otherwise the old version stays active and
    /// the error is returned.
    ///
    /// # Errors
    ///
    /// [`PluginError::InvalidPackage`], [`PluginError::NotNewer`], for an
    /// active plugin's update [`PluginError::MissingConfig`] and
    /// [`PluginError::Load`], I/O and database errors.
    pub async fn install(&self, bytes: &[u8], actor: &Actor) -> Result<Installed, PluginError> {
        let package = Package::read(bytes, MAX_COMPONENT_BYTES)?;
        let manifest = package.manifest.clone();
        let id = manifest.plugin.id.clone();
        let _writer = self.inner.writer.lock().await;
        let previous = store::get(&self.inner.db, &id).await?;
        if let Some(previous) = &previous
            && previous.version >= manifest.plugin.version
        {
            return Err(PluginError::NotNewer {
                id,
                installed: previous.version.clone(),
            });
        }
        let subject = || hooks::plugin_ref(&id, &manifest.plugin.version);
        self.ask(EventKind::PluginInstall, subject(), &id, actor)
            .await?;
        let component_sha256 = sha256_hex(&package.component);
        let path = self.component_path(&component_sha256);
        if !path.exists() {
            let partial = path.with_extension("wasm.partial");
            tokio::fs::write(&partial, &package.component).await?;
            tokio::fs::rename(&partial, &path).await?;
        }
        let at = now();
        let record = PluginRecord {
            id: id.clone(),
            version: manifest.plugin.version.clone(),
            package_sha256: package.sha256.clone(),
            component_sha256,
            manifest: manifest.to_toml(),
            state: previous
                .as_ref()
                .map_or(PluginLifecycle::Installed, |p| p.state),
            grants: previous
                .as_ref()
                .map_or_else(Grants::none, |p| p.grants.effective(&manifest)),
            installed_at: previous.as_ref().map_or(at, |p| p.installed_at),
            updated_at: at,
        };
        let loaded = if record.state == PluginLifecycle::Active {
            Some(self.load(&record).await?)
        } else {
            None
        };
        let event = event(&id, actor, |subject| match &previous {
            Some(p) => PluginEvent::Updated {
                subject,
                data: PluginUpdated {
                    from: p.version.to_string(),
                    to: record.version.to_string(),
                    sha256: record.package_sha256.clone(),
                    version: None,
                    source: None,
                    state: None,
                },
            },
            None => PluginEvent::Installed {
                subject,
                data: PluginInstalled {
                    version: record.version.to_string(),
                    sha256: record.package_sha256.clone(),
                    source: None,
                    state: None,
                    grants: None,
                },
            },
        });
        store::upsert(&self.inner.db, &record, previous.is_some(), &event).await?;
        if let Some(plugin) = loaded {
            self.set_active(&id, Some(plugin));
        }
        self.tell(EventKind::PluginInstall, subject(), actor);
        Ok(Installed {
            record,
            replaced: previous.map(|p| p.version),
        })
    }

    /// Installs or updates several packages at once, all or nothing (the
    /// Marketplace's install and "update all"), and writes `state` rows of
    /// `marketplace_state` in the same transaction.
    ///
    /// Every package is validated, its component stored and — when it is
    /// to be active — loaded first; only when all of that succeeded are the
    /// rows written, in one transaction, and the loaded plugins swapped in.
    /// On any failure nothing changes: no row, no state, no newly written
    /// component file, and the plugins active before stay active.
    ///
    /// A new plugin gets [`SetItem::grants`] (which must be a subset of what
    /// its manifest requests) and is activated if [`SetItem::activate`]; an
    /// update keeps the installed plugin's state and the grants the new
    /// manifest still requests.
    ///
    /// # Errors
    ///
    /// As [`PluginManager::install`], and [`PluginError::NotRequested`].
    pub async fn install_set(
        &self,
        items: Vec<SetItem>,
        state: &[(&str, String)],
        source: &str,
        actor: &Actor,
    ) -> Result<Vec<Installed>, PluginError> {
        let _writer = self.inner.writer.lock().await;
        let mut written: Vec<PathBuf> = Vec::new();
        let result = self.prepare_set(items, source, actor, &mut written).await;
        let prepared = match result {
            Ok(prepared) => prepared,
            Err(e) => {
                remove_files(&written).await;
                return Err(e);
            }
        };
        let rows: Vec<store::SetRow> = prepared
            .iter()
            .map(|p| (p.record.clone(), p.previous.is_some(), p.event.clone()))
            .collect();
        if let Err(e) = store::commit_set(&self.inner.db, &rows, state).await {
            remove_files(&written).await;
            return Err(e.into());
        }
        let mut installed = Vec::with_capacity(prepared.len());
        for p in prepared {
            if let Some(plugin) = p.loaded {
                self.set_active(&p.record.id, Some(plugin));
            }
            let subject = || hooks::plugin_ref(&p.record.id, &p.record.version);
            self.tell(EventKind::PluginInstall, subject(), actor);
            if p.activated {
                self.tell(EventKind::PluginActivate, subject(), actor);
            }
            installed.push(Installed {
                record: p.record,
                replaced: p.previous.map(|r| r.version),
            });
        }
        Ok(installed)
    }

    async fn prepare_set(
        &self,
        items: Vec<SetItem>,
        source: &str,
        actor: &Actor,
        written: &mut Vec<PathBuf>,
    ) -> Result<Vec<Prepared>, PluginError> {
        let mut prepared = Vec::with_capacity(items.len());
        for item in items {
            let package = Package::read(&item.bytes, MAX_COMPONENT_BYTES)?;
            let manifest = package.manifest.clone();
            let id = manifest.plugin.id.clone();
            let previous = store::get(&self.inner.db, &id).await?;
            if let Some(previous) = &previous
                && previous.version >= manifest.plugin.version
            {
                return Err(PluginError::NotNewer {
                    id,
                    installed: previous.version.clone(),
                });
            }
            let subject = || hooks::plugin_ref(&id, &manifest.plugin.version);
            self.ask(EventKind::PluginInstall, subject(), &id, actor)
                .await?;
            if previous.is_none() && item.activate {
                self.ask(EventKind::PluginActivate, subject(), &id, actor)
                    .await?;
            }
            let component_sha256 = sha256_hex(&package.component);
            let path = self.component_path(&component_sha256);
            if !path.exists() {
                let partial = path.with_extension("wasm.partial");
                tokio::fs::write(&partial, &package.component).await?;
                tokio::fs::rename(&partial, &path).await?;
                written.push(path);
            }
            let (state, grants) = match &previous {
                Some(p) => (p.state, p.grants.effective(&manifest)),
                None => {
                    let grants = item.grants.unwrap_or_else(Grants::none);
                    if let Some(extra) = beyond_request(&grants, &manifest) {
                        return Err(PluginError::NotRequested(format!("{id}: {extra}")));
                    }
                    let state = if item.activate {
                        PluginLifecycle::Active
                    } else {
                        PluginLifecycle::Installed
                    };
                    (state, grants)
                }
            };
            let at = now();
            let record = PluginRecord {
                id: id.clone(),
                version: manifest.plugin.version.clone(),
                package_sha256: package.sha256.clone(),
                component_sha256,
                manifest: manifest.to_toml(),
                state,
                grants,
                installed_at: previous.as_ref().map_or(at, |p| p.installed_at),
                updated_at: at,
            };
            // The Marketplace checked the licenses of everything in the set
            // online just before; the gate's offline check would need the
            // key it is only now pinning.
            let loaded = if record.state == PluginLifecycle::Active {
                Some(self.load_ungated(&record, manifest.clone()).await?)
            } else {
                None
            };
            let event = event(&id, actor, |subject| match &previous {
                Some(p) => PluginEvent::Updated {
                    subject,
                    data: PluginUpdated {
                        from: p.version.to_string(),
                        to: record.version.to_string(),
                        sha256: record.package_sha256.clone(),
                        version: Some(record.version.to_string()),
                        source: Some(source.to_owned()),
                        state: Some(record.state.as_str().to_owned()),
                    },
                },
                None => PluginEvent::Installed {
                    subject,
                    data: PluginInstalled {
                        version: record.version.to_string(),
                        sha256: record.package_sha256.clone(),
                        source: Some(source.to_owned()),
                        state: Some(record.state.as_str().to_owned()),
                        grants: Some(record.grants.clone()),
                    },
                },
            });
            prepared.push(Prepared {
                event,
                activated: previous.is_none() && record.state == PluginLifecycle::Active,
                record,
                previous,
                loaded,
            });
        }
        Ok(prepared)
    }

    /// Records what the admin grants; it must be a subset of what the
    /// manifest requests. Replaces earlier grants. An active plugin is
    /// reloaded with the new grants.
    ///
    /// # Errors
    ///
    /// [`PluginError::NotFound`], [`PluginError::NotRequested`], load and
    /// database errors.
    pub async fn grant(
        &self,
        id: &str,
        grants: Grants,
        actor: &Actor,
    ) -> Result<PluginRecord, PluginError> {
        let _writer = self.inner.writer.lock().await;
        let mut record = self.get(id).await?;
        let manifest = parse_manifest(&record)?;
        if let Some(extra) = beyond_request(&grants, &manifest) {
            return Err(PluginError::NotRequested(extra));
        }
        record.grants = grants;
        let loaded = if record.state == PluginLifecycle::Active {
            Some(self.load(&record).await?)
        } else {
            None
        };
        let granted = event(id, actor, |subject| PluginEvent::Granted {
            subject,
            data: PluginGranted {
                grants: record.grants.clone(),
            },
        });
        store::update(&self.inner.db, id, record.state, &record.grants, &granted).await?;
        if let Some(plugin) = loaded {
            self.set_active(id, Some(plugin));
        }
        Ok(record)
    }

    /// Loads the plugin into the runtime and marks it active. Activating an
    /// active plugin does nothing.
    ///
    /// # Errors
    ///
    /// [`PluginError::NotFound`], [`PluginError::MissingConfig`] when a
    /// required configuration key has no value, [`PluginError::Load`] when
    /// the runtime refuses it, [`PluginError::Damaged`], database errors.
    pub async fn activate(&self, id: &str, actor: &Actor) -> Result<PluginRecord, PluginError> {
        let _writer = self.inner.writer.lock().await;
        let mut record = self.get(id).await?;
        if record.state == PluginLifecycle::Active && self.active(id).is_some() {
            return Ok(record);
        }
        let subject = || hooks::plugin_ref(id, &record.version);
        self.ask(EventKind::PluginActivate, subject(), id, actor)
            .await?;
        let plugin = self.load(&record).await?;
        let activated = event(id, actor, |subject| PluginEvent::Activated {
            subject,
            data: PluginVersion {
                version: record.version.to_string(),
            },
        });
        store::update(
            &self.inner.db,
            id,
            PluginLifecycle::Active,
            &record.grants,
            &activated,
        )
        .await?;
        self.set_active(id, Some(plugin));
        self.tell(EventKind::PluginActivate, subject(), actor);
        record.state = PluginLifecycle::Active;
        Ok(record)
    }

    /// Unloads the plugin and marks it inactive. Never refused by a hook
    /// (see the module docs); the `plugin.deactivate` after-hooks hear of
    /// it.
    ///
    /// # Errors
    ///
    /// [`PluginError::NotFound`], database errors.
    pub async fn deactivate(&self, id: &str, actor: &Actor) -> Result<PluginRecord, PluginError> {
        self.deactivate_with(id, None, actor).await
    }

    /// [`PluginManager::deactivate`] by the Panel itself, for `reason`
    /// (recorded in the `plugin.deactivated` event), e.g. a paid plugin
    /// whose license lapsed.
    ///
    /// # Errors
    ///
    /// [`PluginError::NotFound`], database errors.
    pub async fn deactivate_because(
        &self,
        id: &str,
        reason: &str,
        actor: &Actor,
    ) -> Result<PluginRecord, PluginError> {
        self.deactivate_with(id, Some(reason), actor).await
    }

    async fn deactivate_with(
        &self,
        id: &str,
        reason: Option<&str>,
        actor: &Actor,
    ) -> Result<PluginRecord, PluginError> {
        let _writer = self.inner.writer.lock().await;
        let mut record = self.get(id).await?;
        let deactivated = event(id, actor, |subject| PluginEvent::Deactivated {
            subject,
            data: PluginDeactivated {
                reason: reason.map(str::to_owned),
            },
        });
        store::update(
            &self.inner.db,
            id,
            PluginLifecycle::Inactive,
            &record.grants,
            &deactivated,
        )
        .await?;
        self.set_active(id, None);
        self.tell(
            EventKind::PluginDeactivate,
            hooks::plugin_ref(id, &record.version),
            actor,
        );
        record.state = PluginLifecycle::Inactive;
        Ok(record)
    }

    /// Unloads and uninstalls the plugin; with `purge`, its configuration
    /// and secrets go too (otherwise they wait for a reinstall). The
    /// component file stays: another version or plugin may share it.
    ///
    /// # Errors
    ///
    /// [`PluginError::NotFound`], [`PluginError::HookDenied`], database
    /// errors.
    pub async fn uninstall(&self, id: &str, purge: bool, actor: &Actor) -> Result<(), PluginError> {
        let _writer = self.inner.writer.lock().await;
        let record = self.get(id).await?;
        let subject = || hooks::plugin_ref(id, &record.version);
        self.ask(EventKind::PluginUninstall, subject(), id, actor)
            .await?;
        let uninstalled = event(id, actor, |subject| PluginEvent::Uninstalled {
            subject,
            data: PluginUninstalled {
                version: record.version.to_string(),
                purge,
            },
        });
        store::delete(&self.inner.db, id, purge, &uninstalled).await?;
        self.set_active(id, None);
        self.tell(EventKind::PluginUninstall, subject(), actor);
        Ok(())
    }

    /// Asks the before-hooks of every active plugin but `subject_id` (the
    /// plugin the event is about) about a lifecycle event of `kind`.
    async fn ask(
        &self,
        kind: EventKind,
        subject: Payload,
        subject_id: &str,
        actor: &Actor,
    ) -> Result<(), hooks::HookDenied> {
        let asked = hooks::event(kind, subject, actor);
        hooks::run_before_with(
            Some(self),
            asked,
            hooks::Failures::AsDeclared,
            Some(subject_id),
        )
        .await?;
        Ok(())
    }

    /// Tells the after-hooks of the active plugins about a committed
    /// lifecycle event of `kind`.
    fn tell(&self, kind: EventKind, subject: Payload, actor: &Actor) {
        hooks::spawn_after(Some(self), hooks::event(kind, subject, actor));
    }

    /// The plugin's configuration: every key its manifest declares, with
    /// the stored value or, failing that, the default.
    ///
    /// # Errors
    ///
    /// [`PluginError::NotFound`], database errors.
    pub async fn config(&self, id: &str) -> Result<Vec<ConfigEntry>, PluginError> {
        let record = self.get(id).await?;
        let manifest = parse_manifest(&record)?;
        let stored = store::values(&self.inner.db, store::Values::Config, id).await?;
        Ok(manifest
            .config
            .iter()
            .map(|key| ConfigEntry {
                key: key.key.clone(),
                value_type: key.value_type.as_str().to_owned(),
                required: key.required,
                default: key.default.clone(),
                value: stored.get(&key.key).cloned(),
            })
            .collect())
    }

    /// Sets configuration values (a `None` value removes the stored value).
    /// Each key must be declared in the manifest and each value must parse
    /// as its type. Active plugins read configuration at call time, so the
    /// change applies at once.
    ///
    /// # Errors
    ///
    /// [`PluginError::NotFound`], [`PluginError::InvalidConfig`] listing
    /// every bad key, database errors.
    pub async fn set_config(
        &self,
        id: &str,
        values: &BTreeMap<String, Option<String>>,
        actor: &Actor,
    ) -> Result<Vec<ConfigEntry>, PluginError> {
        {
            let _writer = self.inner.writer.lock().await;
            let record = self.get(id).await?;
            let manifest = parse_manifest(&record)?;
            let mut problems = Vec::new();
            let mut set = BTreeMap::new();
            let mut remove = Vec::new();
            for (key, value) in values {
                match manifest.config.iter().find(|c| &c.key == key) {
                    None => problems.push((key.clone(), "is not declared by the plugin".into())),
                    Some(declared) => match value {
                        Some(v) if !declared.value_type.check(v) => problems.push((
                            key.clone(),
                            format!("must be a {}", declared.value_type.as_str()),
                        )),
                        Some(v) => {
                            set.insert(key.clone(), v.clone());
                        }
                        None => remove.push(key.clone()),
                    },
                }
            }
            if !problems.is_empty() {
                return Err(PluginError::InvalidConfig(problems));
            }
            let updated = event(id, actor, |subject| PluginEvent::ConfigUpdated {
                subject,
                data: PluginConfigUpdated {
                    values: values.clone(),
                },
            });
            store::write_values(
                &self.inner.db,
                store::Values::Config,
                id,
                &set,
                &remove,
                &updated,
            )
            .await?;
        }
        self.config(id).await
    }

    /// Sets a secret. The key must be one the manifest requests; the value
    /// is never returned by any API and never appears in events.
    ///
    /// # Errors
    ///
    /// [`PluginError::NotFound`], [`PluginError::InvalidConfig`] for an
    /// undeclared key, database errors.
    pub async fn set_secret(
        &self,
        id: &str,
        key: &str,
        value: &str,
        actor: &Actor,
    ) -> Result<(), PluginError> {
        let _writer = self.inner.writer.lock().await;
        let record = self.get(id).await?;
        let manifest = parse_manifest(&record)?;
        if !manifest.capabilities.secrets.contains(key) {
            return Err(PluginError::InvalidConfig(vec![(
                key.to_owned(),
                "is not a secret the plugin requests".into(),
            )]));
        }
        let set = BTreeMap::from([(key.to_owned(), value.to_owned())]);
        store::write_values(
            &self.inner.db,
            store::Values::Secrets,
            id,
            &set,
            &[],
            &event(id, actor, |subject| PluginEvent::SecretSet {
                subject,
                data: PluginSecretSet {
                    key: key.to_owned(),
                },
            }),
        )
        .await?;
        Ok(())
    }

    /// The names of the secrets that have a value (never the values).
    ///
    /// # Errors
    ///
    /// Database errors.
    pub async fn secret_names(&self, id: &str) -> Result<Vec<String>, PluginError> {
        Ok(store::values(&self.inner.db, store::Values::Secrets, id)
            .await?
            .into_keys()
            .collect())
    }

    /// Plugin `id`'s record and stored component bytes (what Agents pull).
    ///
    /// # Errors
    ///
    /// [`PluginError::NotFound`], I/O and database errors.
    pub async fn component(&self, id: &str) -> Result<(PluginRecord, Vec<u8>), PluginError> {
        let record = self.get(id).await?;
        let bytes = tokio::fs::read(self.component_path(&record.component_sha256)).await?;
        Ok((record, bytes))
    }

    fn component_path(&self, sha256: &str) -> PathBuf {
        self.inner.dir.join(format!("{sha256}.wasm"))
    }

    /// Passes the [`LoadGate`], then [`PluginManager::load_ungated`].
    async fn load(&self, record: &PluginRecord) -> Result<Plugin, PluginError> {
        let manifest = parse_manifest(record)?;
        if let Some(gate) = self.inner.gate.get() {
            gate.check(&record.id, &manifest)
                .await
                .map_err(|reason| PluginError::Unlicensed {
                    id: record.id.clone(),
                    reason,
                })?;
        }
        self.load_ungated(record, manifest).await
    }

    /// Checks required configuration, reads and verifies the component and
    /// loads it into the runtime.
    async fn load_ungated(
        &self,
        record: &PluginRecord,
        manifest: Manifest,
    ) -> Result<Plugin, PluginError> {
        let stored = store::values(&self.inner.db, store::Values::Config, &record.id).await?;
        let missing: Vec<String> = manifest
            .config
            .iter()
            .filter(|c| c.required && c.default.is_none() && !stored.contains_key(&c.key))
            .map(|c| c.key.clone())
            .collect();
        if !missing.is_empty() {
            return Err(PluginError::MissingConfig(missing));
        }
        let damaged = |reason: String| PluginError::Damaged {
            id: record.id.clone(),
            reason,
        };
        let component = tokio::fs::read(self.component_path(&record.component_sha256))
            .await
            .map_err(|e| damaged(format!("cannot read the component file: {e}")))?;
        if sha256_hex(&component) != record.component_sha256 {
            return Err(damaged("the component file's sha256 does not match".into()));
        }
        let plugin = self
            .inner
            .runtime
            .load(PluginSpec {
                manifest,
                component: Arc::from(component),
                grants: record.grants.clone(),
                limit_caps: None,
                services: self.inner.services.clone(),
            })
            .await?;
        self.keep_quarantine(&plugin, record).await?;
        Ok(plugin)
    }
}

impl PluginManager {
    /// Lifts plugin `id`'s quarantine, in memory and in the database.
    ///
    /// # Errors
    ///
    /// [`PluginError::NotFound`], database errors.
    pub async fn release(&self, id: &str, actor: &Actor) -> Result<(), PluginError> {
        let _writer = self.inner.writer.lock().await;
        self.get(id).await?;
        if let Some(plugin) = self.active(id) {
            plugin.release_quarantine();
        }
        store::set_quarantine(
            &self.inner.db,
            id,
            None,
            &event(id, actor, |subject| PluginEvent::Released {
                subject,
                data: Empty {},
            }),
        )
        .await?;
        Ok(())
    }

    /// Puts `plugin`'s stored quarantine back and has future quarantines
    /// stored (see the module docs).
    async fn keep_quarantine(
        &self,
        plugin: &Plugin,
        record: &PluginRecord,
    ) -> Result<(), PluginError> {
        let stored = store::quarantine(&self.inner.db, plugin.id(), &record.component_sha256);
        if let Some((reason, at)) = stored.await? {
            plugin.restore_quarantine(cap_runtime::Quarantine {
                reason,
                since: at.into(),
            });
        }
        let db = self.inner.db.clone();
        plugin.on_quarantine(Arc::new(move |id: &str, quarantine: &cap_runtime::Quarantine| {
            let Ok(handle) = tokio::runtime::Handle::try_current() else {
                tracing::error!(plugin = %id, "cannot persist a quarantine outside the runtime");
                return;
            };
            let db = db.clone();
            let id = id.to_owned();
            let reason = quarantine.reason.clone();
            let at = time::OffsetDateTime::from(quarantine.since);
            handle.spawn(async move {
                let event = event(&id, &Actor::system(), |subject| {
                    PluginEvent::Quarantined {
                        subject,
                        data: PluginQuarantined {
                            reason: reason.clone(),
                        },
                    }
                });
                if let Err(error) =
                    store::set_quarantine(&db, &id, Some((&reason, at)), &event).await
                {
                    tracing::error!(plugin = %id, %error, "cannot persist the quarantine");
                }
            });
        }));
        Ok(())
    }
}

/// One package of [`PluginManager::install_set`].
#[derive(Debug, Clone)]
pub struct SetItem {
    /// The `.cap` file.
    pub bytes: Vec<u8>,
    /// For a new plugin: what the admin grants (default: nothing).
    pub grants: Option<Grants>,
    /// For a new plugin: activate it.
    pub activate: bool,
}

struct Prepared {
    record: PluginRecord,
    /// A new plugin, activated by its install.
    activated: bool,
    previous: Option<PluginRecord>,
    loaded: Option<Plugin>,
    event: NewEvent,
}

async fn remove_files(paths: &[PathBuf]) {
    for path in paths {
        if let Err(error) = tokio::fs::remove_file(path).await {
            tracing::warn!(path = %path.display(), %error, "cannot remove a component of a failed install");
        }
    }
}

/// One declared configuration key and its value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct ConfigEntry {
    /// The key.
    pub key: String,
    /// `string`, `integer` or `boolean`.
    #[serde(rename = "type")]
    pub value_type: String,
    /// Whether activation needs a value.
    pub required: bool,
    /// The manifest's default.
    pub default: Option<String>,
    /// The value the admin set, if any.
    pub value: Option<String>,
}

fn parse_manifest(record: &PluginRecord) -> Result<Manifest, PluginError> {
    Manifest::parse(record.manifest.as_bytes()).map_err(|e| PluginError::Damaged {
        id: record.id.clone(),
        reason: format!("stored manifest: {e}"),
    })
}

/// The first thing `grants` gives that `manifest` does not request.
fn beyond_request(grants: &Grants, manifest: &Manifest) -> Option<String> {
    let requested = Grants::all_requested(manifest);
    let flag =
        |granted: bool, asked: bool, name: &str| (granted && !asked).then(|| name.to_owned());
    flag(grants.kv, requested.kv, "kv")
        .or_else(|| flag(grants.config, requested.config, "config"))
        .or_else(|| flag(grants.clock, requested.clock, "clock"))
        .or_else(|| flag(grants.random, requested.random, "random"))
        .or_else(|| flag(grants.timers, requested.timers, "timers"))
        .or_else(|| first_extra(&grants.secrets, &requested.secrets, "secret"))
        .or_else(|| {
            grants
                .http_hosts
                .iter()
                .find(|h| !requested.http_hosts.contains(h))
                .map(|h| format!("http host {h}"))
        })
        .or_else(|| {
            first_extra(
                &grants.events_publish,
                &requested.events_publish,
                "event topic",
            )
        })
        .or_else(|| {
            grants
                .panel
                .difference(&requested.panel)
                .next()
                .map(|s| format!("panel scope {}", s.as_str()))
        })
}

fn first_extra(
    granted: &BTreeSet<String>,
    requested: &BTreeSet<String>,
    what: &str,
) -> Option<String> {
    granted
        .difference(requested)
        .next()
        .map(|s| format!("{what} {s}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{DatabaseLocation, DatabaseOptions};

    // Activation and deactivation also append events, which move the
    // version too; this pins down the epoch that covers the moment between
    // their commit and the swap of the loaded plugins.
    #[tokio::test]
    async fn a_change_to_the_loaded_plugins_moves_the_read_version_without_any_write() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let location = DatabaseLocation::SqliteFile(dir.path().join("panel.db"));
        let db = Database::connect(&DatabaseOptions::new(location))
            .await
            .expect("SQLite connects");
        let manager = PluginManager::new(db.clone(), dir.path(), PluginServices::default())
            .expect("a plugin manager");
        let before = db.read_version().await.expect("reads").expect("some");

        manager.set_active("test-game", None);

        let after = db.read_version().await.expect("reads").expect("some");
        assert!(
            after.supersedes(&before),
            "answers cached with the old set of plugins must not match: {before:?} -> {after:?}"
        );
    }
}
