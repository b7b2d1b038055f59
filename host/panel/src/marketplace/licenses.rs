//! Licenses of paid plugins on the Panel: the instance registration, the
//! stored tokens, the offline check before every load ([`LicenseGate`])
//! and the rows behind the background renewal.
//!
//! Key decisions:
//!
//! * **Which plugins are paid.** A plugin whose signed manifest names a
//!   `price`, or one with a row in `marketplace_licenses` (written when the
//!   Marketplace listed it as paid at install). The manifest cannot be
//!   changed without breaking the author signature; the row keeps a plugin
//!   priced only on the Marketplace paid after it was installed.
//! * **Verification is offline.** [`verify_offline`] reads the stored
//!   token and checks it with [`cap_marketplace::license::verify_license`]
//!   against the pinned Marketplace key (configured, or the one the trust
//!   store pinned), this Panel's instance id and the clock: no network
//!   while a token is valid or in grace.
//! * **The instance token is sealed.** The Marketplace keeps only its
//!   hash; the Panel must present it, so it keeps it, encrypted with the
//!   secret key kept outside the database and bound to its Marketplace URL
//!   ([`crate::secrets::Purpose::marketplace_token`]).

use std::sync::Arc;

use cap_marketplace::TrustStore;
use cap_marketplace::keys::PublicKey;
use cap_marketplace::license::{
    LicenseClaims, LicenseError, LicenseStatus, verify_license_claims_with,
};
use cap_marketplace::rotation::MarketplaceKeys;
use cap_runtime::Manifest;
use cap_runtime::capabilities::BoxFuture;
use time::OffsetDateTime;

use crate::db::{Database, DbError, Unrecorded, from_micros, on_pool, query_builder, to_micros};
use crate::plugins::{LoadGate, store};
use crate::secrets::Purpose;

/// What the Marketplace said last about a license.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LicenseState {
    /// A token was issued: the entitlement is active.
    Active,
    /// Refunded or lost in a dispute: renewal is refused.
    Revoked,
    /// No entitlement (never bought, or not yet paid).
    Missing,
}

impl LicenseState {
    fn as_str(self) -> &'static str {
        match self {
            LicenseState::Active => "active",
            LicenseState::Revoked => "revoked",
            LicenseState::Missing => "missing",
        }
    }

    fn parse(s: &str) -> Result<Self, DbError> {
        match s {
            "active" => Ok(LicenseState::Active),
            "revoked" => Ok(LicenseState::Revoked),
            "missing" => Ok(LicenseState::Missing),
            other => Err(DbError::Corrupt(format!(
                "unknown license status {other:?}"
            ))),
        }
    }
}

/// One row of `marketplace_licenses`.
#[derive(Debug, Clone, PartialEq)]
pub struct LicenseRecord {
    /// The plugin.
    pub plugin: String,
    /// What the Marketplace said last.
    pub state: LicenseState,
    /// The entitlement the token stems from.
    pub entitlement: Option<String>,
    /// The newest token (kept after a revocation: it runs out on its own).
    pub token: Option<String>,
    /// The token's expiry.
    pub expires_at: Option<OffsetDateTime>,
    /// The end of its grace period.
    pub grace_until: Option<OffsetDateTime>,
    /// When to renew it.
    pub renew_after: Option<OffsetDateTime>,
    /// The last renewal failure, or why the plugin was deactivated.
    pub problem: Option<String>,
    /// When the row last changed.
    pub updated_at: OffsetDateTime,
}

impl LicenseRecord {
    /// A row for `plugin` without a token.
    pub fn without_token(plugin: &str, state: LicenseState, problem: Option<String>) -> Self {
        LicenseRecord {
            plugin: plugin.to_owned(),
            state,
            entitlement: None,
            token: None,
            expires_at: None,
            grace_until: None,
            renew_after: None,
            problem,
            updated_at: crate::db::now(),
        }
    }

    /// An active row holding a verified token.
    pub fn with_token(
        token: String,
        claims: &LicenseClaims,
        renew_after: OffsetDateTime,
    ) -> LicenseRecord {
        LicenseRecord {
            plugin: claims.plugin.clone(),
            state: LicenseState::Active,
            entitlement: Some(claims.entitlement.clone()),
            token: Some(token),
            expires_at: Some(claims.expires_at),
            grace_until: Some(claims.grace_until()),
            renew_after: Some(renew_after),
            problem: None,
            updated_at: crate::db::now(),
        }
    }
}

/// Why a paid plugin's license was refused. [`LicenseProblem::check`]
/// names the check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LicenseProblem {
    /// This Panel has no entitlement to the plugin.
    #[error(
        "this Panel holds no license to {plugin}: buy it first (POST /api/v1/marketplace/checkout or `cap panel marketplace buy {plugin}`), then install again"
    )]
    NotEntitled {
        /// The plugin.
        plugin: String,
    },
    /// The entitlement was revoked and no usable token is left.
    #[error("the license to {plugin} was revoked: {reason}")]
    Revoked {
        /// The plugin.
        plugin: String,
        /// The Marketplace's reason (refund, lost dispute).
        reason: String,
    },
    /// The token failed an offline check.
    #[error(transparent)]
    Invalid(#[from] LicenseError),
    /// No Marketplace key is trusted yet.
    #[error(
        "no Marketplace key is trusted to check licenses with: configure [marketplace] public-key (CAP_MARKETPLACE_KEY) or install from the Marketplace once"
    )]
    NoTrustedKey,
    /// The Panel never registered with the Marketplace.
    #[error(
        "this Panel is not registered with a Marketplace, so it holds no licenses: configure [marketplace] url and buy the plugin there"
    )]
    NotRegistered,
}

impl LicenseProblem {
    /// The failed check's name, e.g. `license-expiry`.
    pub fn check(&self) -> &'static str {
        match self {
            LicenseProblem::NotEntitled { .. } => "license-entitled",
            LicenseProblem::Revoked { .. } => "license-not-revoked",
            LicenseProblem::NoTrustedKey => "license-key",
            LicenseProblem::NotRegistered => "license-instance",
            LicenseProblem::Invalid(e) => match e {
                LicenseError::Malformed(_) => "license-format",
                LicenseError::BadSignature => "license-signature",
                LicenseError::WrongPlugin { .. } => "license-plugin",
                LicenseError::WrongInstance { .. } => "license-instance",
                LicenseError::Expired { .. } => "license-expiry",
            },
        }
    }

    /// `the `<check>` check failed: <why>`.
    pub fn explain(&self) -> String {
        format!("the `{}` check failed: {self}", self.check())
    }
}

// ---------------------------------------------------------------- rows

/// The instance id and token this Panel registered with `marketplace`.
pub(crate) async fn instance(
    db: &Database,
    marketplace: &str,
) -> Result<Option<(String, String)>, DbError> {
    let row = on_pool!(db, |pool| {
        let mut qb = query_builder(
            pool,
            "SELECT instance_id, token FROM marketplace_instance WHERE marketplace = ",
        );
        qb.push_bind(marketplace);
        qb.build_query_as::<(String, String)>()
            .fetch_optional(pool)
            .await?
    });
    let Some((instance_id, sealed)) = row else {
        return Ok(None);
    };
    let token = db
        .sealer()?
        .open(&Purpose::marketplace_token(marketplace), &sealed)?;
    Ok(Some((instance_id, token)))
}

/// Records the registration with `marketplace`.
pub(crate) async fn save_instance(
    db: &Database,
    marketplace: &str,
    instance_id: &str,
    token: &str,
) -> Result<(), DbError> {
    let at = to_micros(crate::db::now());
    let token = db
        .sealer()?
        .seal(&Purpose::marketplace_token(marketplace), token);
    on_pool!(db, |pool| {
        let mut qb = query_builder(
            pool,
            "INSERT INTO marketplace_instance (marketplace, instance_id, token, registered_at) VALUES (",
        );
        qb.separated(", ")
            .push_bind(marketplace)
            .push_bind(instance_id)
            .push_bind(&token)
            .push_bind(at);
        qb.push(")");
        qb.build()
            .execute(pool.unrecorded(Unrecorded::Marketplace))
            .await?;
    });
    Ok(())
}

type Row = (
    String,
    String,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<String>,
    i64,
);

const COLUMNS: &str = "SELECT plugin_id, status, entitlement, token, expires_at, grace_until, renew_after, problem, updated_at FROM marketplace_licenses";

fn record(row: Row) -> Result<LicenseRecord, DbError> {
    let time = |t: Option<i64>| t.map(from_micros).transpose();
    Ok(LicenseRecord {
        plugin: row.0,
        state: LicenseState::parse(&row.1)?,
        entitlement: row.2,
        token: row.3,
        expires_at: time(row.4)?,
        grace_until: time(row.5)?,
        renew_after: time(row.6)?,
        problem: row.7,
        updated_at: from_micros(row.8)?,
    })
}

/// The license row of `plugin`.
pub(crate) async fn license(db: &Database, plugin: &str) -> Result<Option<LicenseRecord>, DbError> {
    let row: Option<Row> = on_pool!(db, |pool| {
        let mut qb = query_builder(pool, COLUMNS);
        qb.push(" WHERE plugin_id = ").push_bind(plugin);
        qb.build_query_as::<Row>().fetch_optional(pool).await?
    });
    row.map(record).transpose()
}

/// Every license row, by plugin id.
pub(crate) async fn licenses(db: &Database) -> Result<Vec<LicenseRecord>, DbError> {
    let rows: Vec<Row> = on_pool!(db, |pool| {
        let mut qb = query_builder(pool, COLUMNS);
        qb.push(" ORDER BY plugin_id");
        qb.build_query_as::<Row>().fetch_all(pool).await?
    });
    rows.into_iter().map(record).collect()
}

/// Writes `row`, replacing the plugin's row, in one transaction.
pub(crate) async fn save_license(db: &Database, row: &LicenseRecord) -> Result<(), DbError> {
    let micros = |t: Option<OffsetDateTime>| t.map(to_micros);
    on_pool!(db, |pool| {
        let mut tx = pool.begin_unrecorded(Unrecorded::Marketplace).await?;
        let mut qb = query_builder(pool, "DELETE FROM marketplace_licenses WHERE plugin_id = ");
        qb.push_bind(&row.plugin);
        qb.build().execute(&mut *tx).await?;
        let mut qb = query_builder(
            pool,
            "INSERT INTO marketplace_licenses (plugin_id, status, entitlement, token, expires_at, grace_until, renew_after, problem, updated_at) VALUES (",
        );
        qb.separated(", ")
            .push_bind(&row.plugin)
            .push_bind(row.state.as_str())
            .push_bind(&row.entitlement)
            .push_bind(&row.token)
            .push_bind(micros(row.expires_at))
            .push_bind(micros(row.grace_until))
            .push_bind(micros(row.renew_after))
            .push_bind(&row.problem)
            .push_bind(to_micros(row.updated_at));
        qb.push(")");
        qb.build().execute(&mut *tx).await?;
        tx.commit().await?;
    });
    Ok(())
}

// ---------------------------------------------------------------- checks

/// The Marketplace keys licenses are checked against: the online keys over
/// time of the stored trust state (its key chain, verified against the
/// pinned key) when it pins the configured key or nothing is configured;
/// else the configured key alone.
pub(crate) async fn trusted_keys(
    db: &Database,
    configured: Option<&PublicKey>,
) -> Result<Option<MarketplaceKeys>, DbError> {
    let stored = store::marketplace_state(db, super::TRUST).await?;
    let stored = stored.and_then(|text| {
        let pinned = TrustStore::trusted_key_in(&text).ok()?;
        TrustStore::from_json(&text, pinned).ok()
    });
    Ok(match (stored, configured) {
        (Some(store), None) => Some(store.keys().clone()),
        (Some(store), Some(key)) if store.marketplace_key() == key => Some(store.keys().clone()),
        (_, Some(key)) => Some(MarketplaceKeys::single(key.clone())),
        (None, None) => None,
    })
}

/// Checks `plugin`'s stored license offline: the token's signature with
/// `key`, its plugin, this Panel's `instance` and the time.
pub fn check_record(
    plugin: &str,
    record: Option<&LicenseRecord>,
    keys: Option<&MarketplaceKeys>,
    instance: Option<&str>,
    now: OffsetDateTime,
) -> Result<(LicenseStatus, LicenseClaims), LicenseProblem> {
    let instance = instance.ok_or(LicenseProblem::NotRegistered)?;
    let token = match record {
        Some(LicenseRecord {
            token: Some(token), ..
        }) => token,
        Some(LicenseRecord {
            state: LicenseState::Revoked,
            problem,
            ..
        }) => {
            return Err(LicenseProblem::Revoked {
                plugin: plugin.to_owned(),
                reason: problem.clone().unwrap_or_else(|| "no reason given".into()),
            });
        }
        _ => {
            return Err(LicenseProblem::NotEntitled {
                plugin: plugin.to_owned(),
            });
        }
    };
    let keys = keys.ok_or(LicenseProblem::NoTrustedKey)?;
    Ok(verify_license_claims_with(
        token, keys, plugin, instance, now,
    )?)
}

/// Whether `plugin` needs a license: its manifest names a price, or it has
/// a license row.
pub fn is_paid(manifest: &Manifest, record: Option<&LicenseRecord>) -> bool {
    manifest.plugin.price.is_some() || record.is_some()
}

/// The offline check of a stored license, with the instance and key
/// looked up.
pub(crate) async fn verify_offline(
    db: &Database,
    marketplace: Option<&str>,
    configured_key: Option<&PublicKey>,
    plugin: &str,
    record: Option<&LicenseRecord>,
) -> Result<Result<(LicenseStatus, LicenseClaims), LicenseProblem>, DbError> {
    let instance = match marketplace {
        Some(url) => instance(db, url).await?.map(|(id, _)| id),
        None => None,
    };
    let keys = trusted_keys(db, configured_key).await?;
    Ok(check_record(
        plugin,
        record,
        keys.as_ref(),
        instance.as_deref(),
        OffsetDateTime::now_utc(),
    ))
}

/// The [`LoadGate`] of the Panel: a paid plugin loads only with a license
/// that passes [`check_record`]. Free plugins pass untouched.
#[derive(Clone)]
pub struct LicenseGate {
    db: Database,
    marketplace: Option<String>,
    configured_key: Option<PublicKey>,
}

impl std::fmt::Debug for LicenseGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LicenseGate")
            .field("marketplace", &self.marketplace)
            .finish_non_exhaustive()
    }
}

impl LicenseGate {
    /// The gate for licenses from `marketplace` (`None`: no Marketplace
    /// configured, so no paid plugin can load), checked against
    /// `configured_key` or the pinned one.
    pub fn new(
        db: Database,
        marketplace: Option<String>,
        configured_key: Option<PublicKey>,
    ) -> Arc<LicenseGate> {
        Arc::new(LicenseGate {
            db,
            marketplace,
            configured_key,
        })
    }
}

impl LoadGate for LicenseGate {
    fn check<'a>(
        &'a self,
        id: &'a str,
        manifest: &'a Manifest,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let record = license(&self.db, id).await.map_err(|e| e.to_string())?;
            if !is_paid(manifest, record.as_ref()) {
                return Ok(());
            }
            let checked = verify_offline(
                &self.db,
                self.marketplace.as_deref(),
                self.configured_key.as_ref(),
                id,
                record.as_ref(),
            )
            .await
            .map_err(|e| e.to_string())?;
            match checked {
                Ok((LicenseStatus::Valid, _)) => Ok(()),
                Ok((LicenseStatus::InGrace { until }, _)) => {
                    tracing::warn!(plugin = id, %until, "a paid plugin runs on a license in its grace period");
                    Ok(())
                }
                Err(problem) => Err(problem.explain()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use cap_marketplace::keys::SecretKey;
    use cap_marketplace::license::issue_license;

    use super::*;

    fn at(unix: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(unix).unwrap()
    }

    fn signed(key: &SecretKey) -> LicenseRecord {
        let claims = LicenseClaims {
            plugin: "quota-guard".into(),
            panel_instance: "panel-1".into(),
            entitlement: "ent_1".into(),
            issued_at: at(1_000),
            expires_at: at(2_000),
            grace_seconds: 500,
        };
        LicenseRecord::with_token(issue_license(key, &claims), &claims, at(1_500))
    }

    #[test]
    fn each_refusal_names_its_check() {
        let key = SecretKey::from_seed(&[3; 32]);
        let public = key.public();
        let row = signed(&key);
        let check = |record: Option<&LicenseRecord>,
                     key: Option<&PublicKey>,
                     instance: Option<&str>,
                     now: i64| {
            let keys = key.map(|k| MarketplaceKeys::single(k.clone()));
            check_record("quota-guard", record, keys.as_ref(), instance, at(now))
                .map_err(|e| e.check())
        };
        assert!(matches!(
            check(Some(&row), Some(public), Some("panel-1"), 1_200),
            Ok((LicenseStatus::Valid, _))
        ));
        assert!(matches!(
            check(Some(&row), Some(public), Some("panel-1"), 2_200),
            Ok((LicenseStatus::InGrace { .. }, _))
        ));
        assert_eq!(
            check(Some(&row), Some(public), Some("panel-1"), 2_501).err(),
            Some("license-expiry")
        );
        assert_eq!(
            check(Some(&row), Some(public), Some("panel-2"), 1_200).err(),
            Some("license-instance")
        );
        let stranger = SecretKey::from_seed(&[4; 32]);
        assert_eq!(
            check(Some(&row), Some(stranger.public()), Some("panel-1"), 1_200).err(),
            Some("license-signature")
        );
        assert_eq!(
            check(Some(&row), None, Some("panel-1"), 1_200).err(),
            Some("license-key")
        );
        assert_eq!(
            check(Some(&row), Some(public), None, 1_200).err(),
            Some("license-instance")
        );
        assert_eq!(
            check(None, Some(public), Some("panel-1"), 1_200).err(),
            Some("license-entitled")
        );
        let revoked = LicenseRecord::without_token(
            "quota-guard",
            LicenseState::Revoked,
            Some("charge ch_1 refunded".into()),
        );
        let problem = check_record(
            "quota-guard",
            Some(&revoked),
            Some(&MarketplaceKeys::single(public.clone())),
            Some("panel-1"),
            at(1),
        )
        .unwrap_err();
        assert_eq!(problem.check(), "license-not-revoked");
        assert!(
            problem.explain().contains("charge ch_1 refunded"),
            "{problem}"
        );
    }
}
