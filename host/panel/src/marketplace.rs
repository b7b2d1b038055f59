//! Installing plugins from a Marketplace: resolve → download → verify →
//! license check → grant → activate, all or nothing.
//!
//! Key decisions:
//!
//! * **Which Marketplace key is trusted.** `[marketplace] public-key`
//!   (`CAP_MARKETPLACE_KEY`) pins it. Without it the Panel trusts the key
//!   the Marketplace presents the first time it installs anything (trust on
//!   first use) and stores it with the rest of its trust state; from then
//!   on a Marketplace presenting another key is refused
//!   ([`MarketplaceError::KeyMismatch`]), configured or not. `cap up`
//!   configures the key of its in-process Marketplace.
//! * **The trust state and the lockfile live in the Panel database**
//!   (`marketplace_state`, migration 0006): the
//!   [`cap_marketplace::TrustStore`] as JSON (Marketplace key, newest
//!   timestamp, every log head accepted), the
//!   [`cap_marketplace::Lockfile`] as TOML, and the admins' requirements
//!   (id → semver requirement) as JSON. They are written in the same
//!   transaction as the plugin rows, so the Panel never trusts a state it
//!   did not install from, nor installs without recording why.
//! * **Resolution uses verified logs only.** The index PubGrub sees is
//!   built from package logs that passed [`TrustStore::check_log`] against
//!   a fresh signed timestamp, not from the Marketplace's listings, so a
//!   lying listing cannot steer resolution. The Panel's API range is the
//!   runtime's ([`cap_runtime::api_version::ApiVersion::latest`], 0.1.x).
//! * **Everything resolved is downloaded and verified together**
//!   ([`TrustStore::verify_install`]): every dependency must be part of the
//!   verified set, so a substituted dependency is caught even when the
//!   plugin depending on it is the only new one.
//! * **Paid packages** pass [`check_license`] first. The license service
//!   (`cap_marketplace::license`) is not part of this build, so it refuses
//!   every paid package with [`MarketplaceError::LicenseRequired`].
//! * **One operation at a time**, behind a mutex, so two installs cannot
//!   interleave their reads and writes of the trust state.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use cap_marketplace::client::{ClientError, MarketplaceClient};
use cap_marketplace::keys::PublicKey;
use cap_marketplace::resolve::{Index, IndexRelease, PanelApi, ResolveError, resolve};
use cap_marketplace::verify::{Download, VerifiedPackage, VerifyError};
use cap_marketplace::{Lockfile, LogEntry, TrustStore};
use cap_runtime::Grants;

use crate::db::{Actor, Database, DbError};
use crate::plugins::{Installed, PluginError, PluginManager, SetItem, store};

/// Why a Marketplace operation failed. Nothing was installed.
#[derive(Debug, thiserror::Error)]
pub enum MarketplaceError {
    /// The Marketplace could not be reached or answered wrongly.
    #[error("the Marketplace failed: {0}")]
    Client(#[source] ClientError),
    /// The package does not exist on the Marketplace.
    #[error("there is no package {0:?} on the Marketplace")]
    UnknownPackage(String),
    /// The requirement is not a semver requirement.
    #[error("{requirement:?} is not a version requirement (e.g. 1.2, ^1, >=1.0, <2): {reason}")]
    BadRequirement {
        /// What was given.
        requirement: String,
        /// The parser's reason.
        reason: String,
    },
    /// The Marketplace presents another key than the one trusted.
    #[error(
        "the Marketplace presents key {presented}, but this Panel trusts {trusted}; if the Marketplace rotated its key, configure the new one"
    )]
    KeyMismatch {
        /// The key trusted.
        trusted: String,
        /// The key presented.
        presented: String,
    },
    /// A verification check failed.
    #[error("the `{check}` check failed: {0}", check = .0.check())]
    Verify(#[from] VerifyError),
    /// No versions satisfy the request, or the lock is inconsistent.
    #[error("{0}")]
    Resolve(#[from] ResolveError),
    /// A paid package has no valid license.
    #[error(
        "{id} {version} is a paid plugin; installing it needs a license, which this Panel cannot check yet"
    )]
    LicenseRequired {
        /// The package.
        id: String,
        /// The version.
        version: semver::Version,
    },
    /// The grant list names a plugin that is not being installed.
    #[error("grants name {0}, which this install does not include")]
    GrantForOther(String),
    /// The stored trust state, lockfile or requests cannot be read.
    #[error("the stored Marketplace state is damaged: {0}")]
    Corrupt(String),
    /// Installing failed.
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<ClientError> for MarketplaceError {
    fn from(e: ClientError) -> Self {
        MarketplaceError::Client(e)
    }
}

/// An install request.
#[derive(Debug, Clone, Default)]
pub struct InstallRequest {
    /// Plugin id.
    pub package: String,
    /// Version requirement (default: any).
    pub requirement: Option<String>,
    /// What the admin grants, per plugin id, to plugins new to this Panel.
    pub grants: BTreeMap<String, Grants>,
    /// Activate the plugins new to this Panel.
    pub activate: bool,
}

/// What an install or update did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Plugins installed or updated, by id.
    pub installed: Vec<Installed>,
    /// The lockfile now.
    pub lockfile: Lockfile,
    /// The requirements now.
    pub requests: BTreeMap<String, String>,
}

/// The Panel's connection to one Marketplace. Cheap to clone.
#[derive(Clone)]
pub struct MarketplaceService {
    inner: std::sync::Arc<Inner>,
}

struct Inner {
    client: MarketplaceClient,
    configured_key: Option<PublicKey>,
    db: Database,
    plugins: PluginManager,
    api: PanelApi,
    busy: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for MarketplaceService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MarketplaceService")
            .field("url", &self.inner.client.url())
            .finish_non_exhaustive()
    }
}

/// Checks that a paid package may be installed. The license service is not
/// in this build, so every paid package is refused with
/// [`MarketplaceError::LicenseRequired`]; free packages pass.
pub fn check_license(package: &VerifiedPackage) -> Result<(), MarketplaceError> {
    let plugin = &package.package.manifest.plugin;
    match &plugin.price {
        None => Ok(()),
        Some(_) => Err(MarketplaceError::LicenseRequired {
            id: plugin.id.clone(),
            version: plugin.version.clone(),
        }),
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

const TRUST: &str = "trust";
const LOCKFILE: &str = "lockfile";
const REQUESTS: &str = "requests";

impl MarketplaceService {
    /// The Marketplace at `url`, its key pinned to `key` (64 hex digits)
    /// or trusted on first use.
    ///
    /// # Errors
    ///
    /// [`MarketplaceError::Client`] for a bad URL,
    /// [`MarketplaceError::Corrupt`] for a bad key.
    pub fn new(
        url: &str,
        key: Option<&str>,
        db: Database,
        plugins: PluginManager,
    ) -> Result<MarketplaceService, MarketplaceError> {
        let client = MarketplaceClient::new(url)?;
        let configured_key = key
            .map(|k| {
                let k = k.trim();
                if k.contains("ctrl-alt-play-public-key") {
                    PublicKey::from_file(k)
                } else {
                    PublicKey::from_hex(k)
                }
            })
            .transpose()
            .map_err(|e| {
                MarketplaceError::Corrupt(format!("the configured Marketplace key: {e}"))
            })?;
        Ok(MarketplaceService {
            inner: std::sync::Arc::new(Inner {
                client,
                configured_key,
                db,
                plugins,
                api: PanelApi::new([cap_runtime::api_version::ApiVersion::latest()]),
                busy: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// The client, for browsing.
    pub fn client(&self) -> &MarketplaceClient {
        &self.inner.client
    }

    /// The stored lockfile and requirements.
    ///
    /// # Errors
    ///
    /// [`MarketplaceError::Corrupt`], database errors.
    pub async fn locked(&self) -> Result<(Lockfile, BTreeMap<String, String>), MarketplaceError> {
        Ok((self.lockfile().await?, self.requests().await?))
    }

    async fn lockfile(&self) -> Result<Lockfile, MarketplaceError> {
        match store::marketplace_state(&self.inner.db, LOCKFILE).await? {
            None => Ok(Lockfile::default()),
            Some(text) => {
                Lockfile::from_toml(&text).map_err(|e| MarketplaceError::Corrupt(e.to_string()))
            }
        }
    }

    async fn requests(&self) -> Result<BTreeMap<String, String>, MarketplaceError> {
        match store::marketplace_state(&self.inner.db, REQUESTS).await? {
            None => Ok(BTreeMap::new()),
            Some(text) => serde_json::from_str(&text)
                .map_err(|e| MarketplaceError::Corrupt(format!("requests: {e}"))),
        }
    }

    /// The trust store: the stored one, checked against the configured
    /// key; else a fresh one trusting the configured key or, on first use,
    /// the key the Marketplace presents.
    async fn trust(&self) -> Result<TrustStore, MarketplaceError> {
        let stored = store::marketplace_state(&self.inner.db, TRUST).await?;
        let corrupt =
            |e: cap_marketplace::trust::TrustStoreError| MarketplaceError::Corrupt(e.to_string());
        match (stored, &self.inner.configured_key) {
            (Some(text), Some(key)) => {
                let trusted = TrustStore::trusted_key_in(&text).map_err(corrupt)?;
                if trusted != *key {
                    return Err(MarketplaceError::KeyMismatch {
                        trusted: trusted.id().to_string(),
                        presented: key.id().to_string(),
                    });
                }
                TrustStore::from_json(&text, key.clone()).map_err(corrupt)
            }
            (Some(text), None) => {
                let trusted = TrustStore::trusted_key_in(&text).map_err(corrupt)?;
                TrustStore::from_json(&text, trusted).map_err(corrupt)
            }
            (None, Some(key)) => Ok(TrustStore::in_memory(key.clone())),
            (None, None) => {
                let key = self.inner.client.marketplace_key().await?;
                tracing::info!(key_id = %key.id(), "trusting the Marketplace key on first use");
                Ok(TrustStore::in_memory(key))
            }
        }
    }

    /// Installs `request.package` (with its dependencies), keeping every
    /// plugin installed from the Marketplace before at its locked version
    /// where it still fits.
    ///
    /// # Errors
    ///
    /// [`MarketplaceError`]; nothing is installed.
    pub async fn install(
        &self,
        request: InstallRequest,
        actor: &Actor,
    ) -> Result<Outcome, MarketplaceError> {
        let requirement = request.requirement.clone().unwrap_or_else(|| "*".into());
        semver::VersionReq::parse(&requirement).map_err(|e| MarketplaceError::BadRequirement {
            requirement: requirement.clone(),
            reason: e.to_string(),
        })?;
        if !cap_runtime::manifest::is_valid_id(&request.package) {
            return Err(MarketplaceError::Resolve(ResolveError::InvalidId(
                request.package.clone(),
            )));
        }
        let _busy = self.inner.busy.lock().await;
        let mut requests = self.requests().await?;
        requests.insert(request.package.clone(), requirement);
        let lock = self.lockfile().await?;
        self.apply(
            requests,
            Some(lock),
            &request.package,
            &request.grants,
            request.activate,
            actor,
        )
        .await
    }

    /// Resolves every requirement again to the newest versions and installs
    /// the changes, all or nothing.
    ///
    /// # Errors
    ///
    /// [`MarketplaceError`]; nothing is changed.
    pub async fn update_all(&self, actor: &Actor) -> Result<Outcome, MarketplaceError> {
        let _busy = self.inner.busy.lock().await;
        let requests = self.requests().await?;
        let first = requests.keys().next().cloned().unwrap_or_default();
        self.apply(requests, None, &first, &BTreeMap::new(), false, actor)
            .await
    }

    async fn apply(
        &self,
        requests: BTreeMap<String, String>,
        lock: Option<Lockfile>,
        first: &str,
        grants: &BTreeMap<String, Grants>,
        activate: bool,
        actor: &Actor,
    ) -> Result<Outcome, MarketplaceError> {
        let client = &self.inner.client;
        let mut trust = self.trust().await?;
        let presented = client.marketplace_key().await?;
        if presented != *trust.marketplace_key() {
            return Err(MarketplaceError::KeyMismatch {
                trusted: trust.marketplace_key().id().to_string(),
                presented: presented.id().to_string(),
            });
        }
        let now = unix_now();
        let timestamp = client.timestamp().await?;
        trust.check_timestamp(&timestamp, now)?;

        // The index, from verified logs of everything reachable.
        let parsed: BTreeMap<String, semver::VersionReq> = requests
            .iter()
            .map(|(id, req)| {
                semver::VersionReq::parse(req)
                    .map(|r| (id.clone(), r))
                    .map_err(|e| MarketplaceError::Corrupt(format!("requirement of {id}: {e}")))
            })
            .collect::<Result<_, _>>()?;
        let mut queue: VecDeque<String> = parsed.keys().cloned().collect();
        if let Some(lock) = &lock {
            queue.extend(lock.packages.iter().map(|p| p.id.clone()));
        }
        let mut seen = BTreeSet::new();
        let mut logs: BTreeMap<String, Vec<LogEntry>> = BTreeMap::new();
        let mut index = Index::new();
        while let Some(id) = queue.pop_front() {
            if !seen.insert(id.clone()) {
                continue;
            }
            let log = match client.log(&id).await {
                Ok(log) => log,
                // An unknown dependency is left for the resolver to explain.
                Err(ClientError::NotFound(_)) if !parsed.contains_key(&id) => continue,
                Err(ClientError::NotFound(_)) => return Err(MarketplaceError::UnknownPackage(id)),
                Err(e) => return Err(e.into()),
            };
            let state = trust.check_log(&id, &log, &timestamp)?;
            for (version, release) in &state.releases {
                queue.extend(release.dependencies.keys().cloned());
                index.insert(
                    id.clone(),
                    version.clone(),
                    IndexRelease {
                        sha256: release.sha256.clone(),
                        api: release.api.clone(),
                        dependencies: release.dependencies.clone(),
                        yanked: release.yanked,
                    },
                );
            }
            logs.insert(id, log);
        }
        let resolution = resolve(&index, &self.inner.api, &parsed, lock.as_ref())?;
        for id in grants.keys() {
            if !resolution.packages.contains_key(id) {
                return Err(MarketplaceError::GrantForOther(id.clone()));
            }
        }

        // Download everything resolved, the requested package first.
        let mut order: Vec<&String> = resolution.packages.keys().collect();
        order.sort_by_key(|id| id.as_str() != first);
        let mut files = Vec::with_capacity(order.len());
        for id in &order {
            let (version, _) = &resolution.packages[*id];
            files.push(client.download(id, version).await?);
        }
        let empty = Vec::new();
        let downloads: Vec<Download<'_>> = order
            .iter()
            .zip(&files)
            .map(|(id, bytes)| Download {
                package: id.as_str(),
                version: &resolution.packages[*id].0,
                bytes,
                log: logs.get(*id).unwrap_or(&empty),
            })
            .collect();
        let verified = trust
            .verify_install(&timestamp, &downloads, now)
            .map_err(|e| match e {
                cap_marketplace::trust::InstallError::Verify(v) => MarketplaceError::Verify(v),
                cap_marketplace::trust::InstallError::Store(s) => {
                    MarketplaceError::Corrupt(s.to_string())
                }
            })?;
        for package in &verified {
            check_license(package)?;
        }

        // Install what changed, all or nothing, with the new state.
        let mut items = Vec::new();
        for (package, bytes) in verified.iter().zip(files) {
            let id = &package.package.manifest.plugin.id;
            let current = match self.inner.plugins.get(id).await {
                Ok(record) => Some(record),
                Err(PluginError::NotFound(_)) => None,
                Err(e) => return Err(e.into()),
            };
            if current
                .as_ref()
                .is_some_and(|r| r.package_sha256 == package.package.sha256)
            {
                continue;
            }
            items.push(SetItem {
                bytes,
                grants: grants.get(id).cloned(),
                activate,
            });
        }
        let lockfile = resolution.lockfile();
        let state = [
            (TRUST, trust.to_json()),
            (LOCKFILE, lockfile.to_toml()),
            (
                REQUESTS,
                serde_json::to_string(&requests)
                    .map_err(|e| MarketplaceError::Corrupt(e.to_string()))?,
            ),
        ];
        let installed = self
            .inner
            .plugins
            .install_set(items, &state, "marketplace", actor)
            .await?;
        Ok(Outcome {
            installed,
            lockfile,
            requests,
        })
    }
}
