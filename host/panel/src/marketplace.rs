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
//!   lying listing cannot steer resolution. The Panel's API lines are the
//!   runtime's ([`cap_runtime::api_version::ApiVersion::served`]: 0.1.x and
//!   0.2.x, served side by side).
//! * **Everything resolved is downloaded and verified together**
//!   ([`TrustStore::verify_install`]): every dependency must be part of the
//!   verified set, so a substituted dependency is caught even when the
//!   plugin depending on it is the only new one.
//! * **Paid packages need a license before anything is installed.** A
//!   package is paid when its signed manifest names a `price`, the
//!   Marketplace lists it as paid, or this Panel holds a license row for
//!   it ([`licenses`]). For each, the Panel registers itself as an instance
//!   with the Marketplace once (`POST /panels`, credentials kept in
//!   `marketplace_instance`, migration 0007), renews the token
//!   (`POST /panels/me/licenses/{plugin}/renew`) unless the stored one is
//!   still before its `renew_after`, and verifies it **offline** with
//!   [`cap_marketplace::license::verify_license_claims`] against the same
//!   Marketplace key the trust store uses. A refusal is
//!   [`MarketplaceError::License`], naming the failed check
//!   ([`licenses::LicenseProblem::check`]). The verified tokens are stored
//!   before the plugin rows: a token is the Marketplace's signed statement
//!   about an entitlement, valid whether or not the install then succeeds,
//!   so a refused install changes no plugin, lock or trust state.
//! * **Already installed paid plugins are checked offline on every load**
//!   by [`licenses::LicenseGate`] (start, activation, grants, updates): no
//!   network while a token is valid or in grace.
//! * **Renewal runs in the background** ([`MarketplaceService::spawn_upkeep`]):
//!   one `GET /panels/me/licenses` renews every token past its
//!   `renew_after` (half its lifetime), long before expiry, so nobody
//!   re-activates anything by hand. A revoked entitlement (refund, lost
//!   dispute) is not renewed; once its last token is past its grace period
//!   the plugin is deactivated by the Panel with the failed check as the
//!   reason (in the `plugin.deactivated` event and the license's
//!   `problem`). A license that becomes valid again (bought anew) brings a
//!   plugin whose row is still `active` back.
//! * **One operation at a time**, behind a mutex, so two installs cannot
//!   interleave their reads and writes of the trust state.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use cap_marketplace::client::{ClientError, MarketplaceClient};
use cap_marketplace::keys::PublicKey;
use cap_marketplace::license::{LicenseStatus, verify_license_claims_with};
use cap_marketplace::resolve::{Index, IndexRelease, PanelApiVersions, ResolveError, resolve};
use cap_marketplace::rotation::{ChainError, MarketplaceKeys};
use cap_marketplace::verify::{Download, VerifiedPackage, VerifyError};
use cap_marketplace::wire::{CheckoutView, LicenseView, NewCheckout};
use cap_marketplace::{Lockfile, LogEntry, TrustStore};
use cap_runtime::Grants;

use crate::db::{Actor, Database, DbError};
use crate::plugins::{Installed, PluginError, PluginLifecycle, PluginManager, SetItem, store};

pub mod licenses;

use licenses::{LicenseProblem, LicenseRecord, LicenseState};

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
    /// A paid package has no valid license; nothing was installed.
    #[error("{id} is a paid plugin and {}", .problem.explain())]
    License {
        /// The package.
        id: String,
        /// The failed check.
        problem: LicenseProblem,
    },
    /// The Marketplace refused to start a checkout (not for sale, already
    /// owned, billing off, …); its problem code is relayed to the Panel's
    /// client, with the status the Panel's code table gives it.
    #[error("the Marketplace refused the checkout ({code}): {detail}")]
    CheckoutRefused {
        /// The Marketplace's HTTP status.
        status: u16,
        /// Its problem code (`not-for-sale`, `already-entitled`, …).
        code: String,
        /// Its explanation.
        detail: String,
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
    api: PanelApiVersions,
    busy: tokio::sync::Mutex<()>,
    registering: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for MarketplaceService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MarketplaceService")
            .field("url", &self.inner.client.url())
            .finish_non_exhaustive()
    }
}

/// A license as the Panel holds it, with the outcome of the offline check.
#[derive(Debug, Clone)]
pub struct LicenseReport {
    /// The stored row.
    pub record: LicenseRecord,
    /// The offline check now: the status, or the failed check.
    pub check: Result<LicenseStatus, LicenseProblem>,
    /// The plugin's state on this Panel, if installed.
    pub plugin_state: Option<PluginLifecycle>,
    /// Whether it is loaded and running.
    pub running: bool,
}

fn renew_after_of(
    view: &LicenseView,
    claims: &cap_marketplace::license::LicenseClaims,
) -> time::OffsetDateTime {
    view.renew_after
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .unwrap_or_else(|| {
            let lifetime = claims.expires_at - claims.issued_at;
            claims.issued_at + lifetime / 2
        })
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
                api: PanelApiVersions::new(cap_runtime::api_version::ApiVersion::served()),
                busy: tokio::sync::Mutex::new(()),
                registering: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// The client, for browsing.
    pub fn client(&self) -> &MarketplaceClient {
        &self.inner.client
    }

    /// The gate that checks paid plugins' licenses offline before every
    /// load, for [`PluginManager::set_load_gate`].
    pub fn license_gate(&self) -> std::sync::Arc<licenses::LicenseGate> {
        licenses::LicenseGate::new(
            self.inner.db.clone(),
            Some(self.inner.client.url()),
            self.inner.configured_key.clone(),
        )
    }

    /// This Panel's instance id and token at the Marketplace, registering
    /// once (`POST /panels`) if it never did.
    ///
    /// # Errors
    ///
    /// [`MarketplaceError::Client`], database errors.
    pub async fn instance(&self) -> Result<(String, String), MarketplaceError> {
        let url = self.inner.client.url();
        let _one = self.inner.registering.lock().await;
        if let Some(found) = licenses::instance(&self.inner.db, &url).await? {
            return Ok(found);
        }
        let created = self.inner.client.register_panel(None).await?;
        licenses::save_instance(&self.inner.db, &url, &created.instance_id, &created.token).await?;
        tracing::info!(instance = %created.instance_id, marketplace = %url, "registered with the Marketplace");
        Ok((created.instance_id, created.token))
    }

    /// This Panel's instance id at the Marketplace, if it registered.
    ///
    /// # Errors
    ///
    /// Database errors.
    pub async fn registered_instance(&self) -> Result<Option<String>, MarketplaceError> {
        Ok(licenses::instance(&self.inner.db, &self.inner.client.url())
            .await?
            .map(|(id, _)| id))
    }

    /// Starts buying `plugin` for this Panel: the Marketplace creates a
    /// Stripe Checkout Session; the admin pays on its page, and the
    /// license is there once Stripe has told the Marketplace.
    ///
    /// # Errors
    ///
    /// [`MarketplaceError::CheckoutRefused`] with the Marketplace's reason,
    /// [`MarketplaceError::UnknownPackage`], [`MarketplaceError::Client`].
    pub async fn checkout(
        &self,
        plugin: &str,
        request: &NewCheckout,
    ) -> Result<CheckoutView, MarketplaceError> {
        let (_, token) = self.instance().await?;
        match self.inner.client.checkout(&token, plugin, request).await {
            Ok(view) => Ok(view),
            Err(ClientError::NotFound(_)) => Err(MarketplaceError::UnknownPackage(plugin.into())),
            Err(ClientError::Problem {
                status,
                code,
                detail,
            }) if (400..500).contains(&status) || status == 503 => {
                Err(MarketplaceError::CheckoutRefused {
                    status,
                    code,
                    detail,
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The licenses this Panel holds, each checked offline now.
    ///
    /// # Errors
    ///
    /// Database errors.
    pub async fn licenses(&self) -> Result<Vec<LicenseReport>, MarketplaceError> {
        let db = &self.inner.db;
        let url = self.inner.client.url();
        let instance = licenses::instance(db, &url).await?.map(|(id, _)| id);
        let key = licenses::trusted_keys(db, self.inner.configured_key.as_ref()).await?;
        let now = time::OffsetDateTime::now_utc();
        let mut reports = Vec::new();
        for record in licenses::licenses(db).await? {
            let check = licenses::check_record(
                &record.plugin,
                Some(&record),
                key.as_ref(),
                instance.as_deref(),
                now,
            )
            .map(|(status, _)| status);
            let plugin_state = match self.inner.plugins.get(&record.plugin).await {
                Ok(p) => Some(p.state),
                Err(PluginError::NotFound(_)) => None,
                Err(e) => return Err(e.into()),
            };
            let running = self.inner.plugins.active(&record.plugin).is_some();
            reports.push(LicenseReport {
                record,
                check,
                plugin_state,
                running,
            });
        }
        Ok(reports)
    }

    /// Renews what is due and enforces what lapsed, once: every license
    /// past its `renew_after` (or without a token) is renewed with one
    /// `GET /panels/me/licenses`; then every installed paid plugin is
    /// checked offline — one that fails while active is deactivated with
    /// the failed check as the reason, one that passes while its row says
    /// active but is not running is loaded again. An unreachable
    /// Marketplace is recorded as each due license's `problem` and changes
    /// nothing else (the tokens' grace periods cover it).
    ///
    /// # Errors
    ///
    /// Database errors; Marketplace failures are recorded, not returned.
    pub async fn upkeep(&self) -> Result<Vec<LicenseReport>, MarketplaceError> {
        let db = &self.inner.db;
        let plugins = &self.inner.plugins;
        let now = time::OffsetDateTime::now_utc();
        let mut rows: BTreeMap<String, LicenseRecord> = licenses::licenses(db)
            .await?
            .into_iter()
            .map(|r| (r.plugin.clone(), r))
            .collect();
        // Installed plugins whose manifest names a price need a row too.
        let installed = plugins.list().await?;
        for record in &installed {
            let priced = cap_runtime::Manifest::parse(record.manifest.as_bytes())
                .map(|m| m.plugin.price.is_some())
                .unwrap_or(false);
            if priced && !rows.contains_key(&record.id) {
                rows.insert(
                    record.id.clone(),
                    LicenseRecord::without_token(&record.id, LicenseState::Missing, None),
                );
            }
        }
        let due: Vec<String> = rows
            .values()
            .filter(|r| r.token.is_none() || r.renew_after.is_none_or(|at| now >= at))
            .map(|r| r.plugin.clone())
            .collect();
        if !due.is_empty() {
            self.renew(&mut rows, &due).await?;
        }
        // Enforce, offline.
        let instance = licenses::instance(db, &self.inner.client.url())
            .await?
            .map(|(id, _)| id);
        let key = licenses::trusted_keys(db, self.inner.configured_key.as_ref()).await?;
        let now = time::OffsetDateTime::now_utc();
        for record in installed
            .iter()
            .filter(|r| r.state == PluginLifecycle::Active)
        {
            let Some(row) = rows.get_mut(&record.id) else {
                continue;
            };
            let check = licenses::check_record(
                &record.id,
                Some(&*row),
                key.as_ref(),
                instance.as_deref(),
                now,
            );
            match check {
                Err(problem) => {
                    let reason = format!(
                        "deactivated: {} is a paid plugin and {}",
                        record.id,
                        problem.explain()
                    );
                    tracing::warn!(plugin = %record.id, %reason, "a paid plugin's license lapsed");
                    plugins
                        .deactivate_because(&record.id, &reason, &Actor::system())
                        .await?;
                    row.problem = Some(reason);
                    row.updated_at = crate::db::now();
                    licenses::save_license(db, row).await?;
                }
                Ok(_) if plugins.active(&record.id).is_none() => {
                    match plugins.activate(&record.id, &Actor::system()).await {
                        Ok(_) => {
                            tracing::info!(plugin = %record.id, "a paid plugin runs again with a valid license")
                        }
                        Err(error) => {
                            tracing::warn!(plugin = %record.id, %error, "a licensed plugin still cannot load")
                        }
                    }
                }
                Ok(_) => {}
            }
        }
        self.licenses().await
    }

    /// Renews the `due` rows of `rows` from the Marketplace's listing and
    /// stores them; failures become each row's `problem`.
    async fn renew(
        &self,
        rows: &mut BTreeMap<String, LicenseRecord>,
        due: &[String],
    ) -> Result<(), MarketplaceError> {
        let db = &self.inner.db;
        let fail = |rows: &mut BTreeMap<String, LicenseRecord>, problem: String| {
            for id in due {
                if let Some(row) = rows.get_mut(id) {
                    row.problem = Some(problem.clone());
                    row.updated_at = crate::db::now();
                }
            }
        };
        let listed = match self.instance().await {
            Ok((instance, token)) => match self.inner.client.licenses(&token).await {
                Ok(list) => Some((instance, list)),
                Err(e) => {
                    fail(rows, format!("renewal failed: {e}"));
                    None
                }
            },
            Err(e) => {
                fail(rows, format!("renewal failed: {e}"));
                None
            }
        };
        let key = licenses::trusted_keys(db, self.inner.configured_key.as_ref()).await?;
        if let Some((instance, list)) = listed {
            let now = time::OffsetDateTime::now_utc();
            for id in due {
                let Some(row) = rows.get_mut(id) else {
                    continue;
                };
                let mut mine = list.licenses.iter().filter(|l| &l.plugin == id);
                let active = mine.clone().find(|l| l.status == "active");
                let updated = match (active, mine.next()) {
                    (Some(view), _) => {
                        let token = view.token.clone().unwrap_or_default();
                        let checked = match &key {
                            Some(key) => {
                                verify_license_claims_with(&token, key, id, &instance, now)
                                    .map_err(LicenseProblem::from)
                            }
                            None => Err(LicenseProblem::NoTrustedKey),
                        };
                        match checked {
                            Ok((_, claims)) => LicenseRecord::with_token(
                                token,
                                &claims,
                                renew_after_of(view, &claims),
                            ),
                            Err(problem) => LicenseRecord {
                                problem: Some(format!(
                                    "the renewed token was refused: {}",
                                    problem.explain()
                                )),
                                updated_at: crate::db::now(),
                                ..row.clone()
                            },
                        }
                    }
                    (None, Some(revoked)) => LicenseRecord {
                        state: LicenseState::Revoked,
                        problem: Some(format!(
                            "renewal refused: the entitlement {} was revoked: {}",
                            revoked.entitlement,
                            revoked
                                .revoke_reason
                                .as_deref()
                                .unwrap_or("no reason given")
                        )),
                        updated_at: crate::db::now(),
                        ..row.clone()
                    },
                    (None, None) => LicenseRecord {
                        state: LicenseState::Missing,
                        problem: Some(format!(
                            "the Marketplace holds no entitlement of this Panel to {id}"
                        )),
                        updated_at: crate::db::now(),
                        ..row.clone()
                    },
                };
                *row = updated;
            }
        }
        for id in due {
            if let Some(row) = rows.get(id) {
                licenses::save_license(db, row).await?;
            }
        }
        Ok(())
    }

    /// Runs [`MarketplaceService::upkeep`] every `every` (the first run at
    /// once) until the task is aborted. Failures are logged.
    pub fn spawn_upkeep(&self, every: std::time::Duration) -> tokio::task::JoinHandle<()> {
        let service = self.clone();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(every);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                if let Err(error) = service.upkeep().await {
                    tracing::warn!(%error, "license upkeep failed");
                }
            }
        })
    }

    /// The install path's license check of one verified package: nothing
    /// for a free package; for a paid one the renewed (or still fresh
    /// stored) token, verified offline with `key`.
    async fn check_license(
        &self,
        package: &VerifiedPackage,
        key: &MarketplaceKeys,
    ) -> Result<Option<LicenseRecord>, MarketplaceError> {
        let plugin = &package.package.manifest.plugin;
        let id = plugin.id.as_str();
        let db = &self.inner.db;
        let stored = licenses::license(db, id).await?;
        let listed_paid = match self.inner.client.package(id).await {
            Ok(view) => view.summary.paid,
            Err(ClientError::NotFound(_)) => false,
            Err(e) => return Err(e.into()),
        };
        if !licenses::is_paid(&package.package.manifest, stored.as_ref()) && !listed_paid {
            return Ok(None);
        }
        let refused = |problem: LicenseProblem| MarketplaceError::License {
            id: id.to_owned(),
            problem,
        };
        let (instance, token) = self.instance().await?;
        let now = time::OffsetDateTime::now_utc();
        let stored_ok = stored.as_ref().is_some_and(|record| {
            licenses::check_record(id, Some(record), Some(key), Some(&instance), now).is_ok()
        });
        if stored_ok
            && stored
                .as_ref()
                .and_then(|r| r.renew_after)
                .is_some_and(|at| now < at)
        {
            return Ok(None);
        }
        match self.inner.client.renew_license(&token, id).await {
            Ok(view) => {
                let token = view.token.clone().ok_or_else(|| {
                    MarketplaceError::Client(ClientError::Invalid(format!(
                        "the renewed license to {id} carries no token"
                    )))
                })?;
                let (_, claims) = verify_license_claims_with(&token, key, id, &instance, now)
                    .map_err(|e| refused(LicenseProblem::Invalid(e)))?;
                let renew_after = renew_after_of(&view, &claims);
                Ok(Some(LicenseRecord::with_token(token, &claims, renew_after)))
            }
            Err(ClientError::NotFound(_)) => Err(refused(LicenseProblem::NotEntitled {
                plugin: id.to_owned(),
            })),
            Err(ClientError::EntitlementRevoked(reason)) => Err(refused(LicenseProblem::Revoked {
                plugin: id.to_owned(),
                reason,
            })),
            // Offline with a stored token that still verifies: fine.
            Err(ClientError::Unreachable { .. }) if stored_ok => Ok(None),
            Err(e) => Err(e.into()),
        }
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
        let (presented, chain) = client.marketplace_keys().await?;
        match &chain {
            // Signed by the pinned root (or the root the pinned first key
            // endorsed) and extending the chain trusted before.
            Some(chain) => trust.accept_chain(chain).map_err(|e| match e {
                VerifyError::KeyChain(ChainError::UntrustedRoot { trusted, presented }) => {
                    MarketplaceError::KeyMismatch { trusted, presented }
                }
                other => MarketplaceError::Verify(other),
            })?,
            None if presented != *trust.marketplace_key() => {
                return Err(MarketplaceError::KeyMismatch {
                    trusted: trust.marketplace_key().id().to_string(),
                    presented: presented.id().to_string(),
                });
            }
            None => {}
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
        let keys = trust.keys().clone();
        let mut renewed = Vec::new();
        for package in &verified {
            if let Some(record) = self.check_license(package, &keys).await? {
                renewed.push(record);
            }
        }
        // See the module docs: tokens are stored before the plugin rows.
        for record in &renewed {
            licenses::save_license(&self.inner.db, record).await?;
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
