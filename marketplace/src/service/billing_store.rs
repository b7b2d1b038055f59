//! The billing half of the [`Store`]: prices, payout accounts, Panel
//! instances, checkouts, entitlements and processed Stripe events.
//!
//! Webhook effects run inside the caller's transaction together with the
//! event's row in `stripe_events`, so an event is either fully applied and
//! remembered, or neither (and Stripe's retry applies it).

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::store::{Price, Store};

/// An entitlement's state.
pub const ACTIVE: &str = "active";
/// A revoked entitlement's state.
pub const REVOKED: &str = "revoked";

/// A price row: `version` is `None` for the package-wide price.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceRow {
    /// The version it applies to, or every version without its own.
    pub version: Option<String>,
    /// The price.
    pub price: Price,
}

/// A started checkout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkout {
    /// The Marketplace's id.
    pub id: String,
    /// Stripe's session id, once created.
    pub session_id: Option<String>,
    /// Plugin id.
    pub package_id: String,
    /// Version bought.
    pub version: String,
    /// Buying Panel instance.
    pub panel_instance: String,
    /// Minor units.
    pub amount: i64,
    /// Currency.
    pub currency: String,
    /// The Marketplace's fee, minor units.
    pub application_fee: i64,
    /// The publisher's connected account.
    pub destination: String,
    /// When started.
    pub created_at: i64,
}

/// A purchase of a plugin for a Panel instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entitlement {
    /// Id (in license claims).
    pub id: String,
    /// Plugin id.
    pub package_id: String,
    /// Panel instance.
    pub panel_instance: String,
    /// The checkout it came from.
    pub checkout_id: String,
    /// Stripe PaymentIntent.
    pub payment_intent: Option<String>,
    /// Whether still active.
    pub active: bool,
    /// Why revoked.
    pub revoke_reason: Option<String>,
    /// When granted.
    pub created_at: i64,
    /// When revoked.
    pub revoked_at: Option<i64>,
}

fn checkout_row(row: &AnyRow) -> Result<Checkout, sqlx::Error> {
    Ok(Checkout {
        id: row.try_get("id")?,
        session_id: row.try_get("session_id")?,
        package_id: row.try_get("package_id")?,
        version: row.try_get("version")?,
        panel_instance: row.try_get("panel_instance")?,
        amount: row.try_get("amount")?,
        currency: row.try_get("currency")?,
        application_fee: row.try_get("application_fee")?,
        destination: row.try_get("destination")?,
        created_at: row.try_get("created_at")?,
    })
}

fn entitlement_row(row: &AnyRow) -> Result<Entitlement, sqlx::Error> {
    Ok(Entitlement {
        id: row.try_get("id")?,
        package_id: row.try_get("package_id")?,
        panel_instance: row.try_get("panel_instance")?,
        checkout_id: row.try_get("checkout_id")?,
        payment_intent: row.try_get("payment_intent")?,
        active: row.try_get::<String, _>("status")? == ACTIVE,
        revoke_reason: row.try_get("revoke_reason")?,
        created_at: row.try_get("created_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

const CHECKOUT_COLUMNS: &str = "id, session_id, package_id, version, panel_instance, amount, currency, application_fee, destination, created_at";
const ENTITLEMENT_COLUMNS: &str = "id, package_id, panel_instance, checkout_id, payment_intent, status, revoke_reason, created_at, revoked_at";

impl Store {
    /// Sets the price of a package (`version` `None`) or one version.
    pub async fn set_price(
        &self,
        package_id: &str,
        version: Option<&str>,
        price: &Price,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let version = version.unwrap_or("");
        sqlx::query("DELETE FROM prices WHERE package_id = $1 AND version = $2")
            .bind(package_id)
            .bind(version)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO prices (package_id, version, amount, currency, updated_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(package_id)
        .bind(version)
        .bind(price.amount)
        .bind(&price.currency)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    /// Removes a price; whether there was one.
    pub async fn clear_price(
        &self,
        package_id: &str,
        version: Option<&str>,
    ) -> Result<bool, sqlx::Error> {
        let result = sqlx::query("DELETE FROM prices WHERE package_id = $1 AND version = $2")
            .bind(package_id)
            .bind(version.unwrap_or(""))
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected() > 0)
    }

    /// Every price of a package.
    pub async fn prices(&self, package_id: &str) -> Result<Vec<PriceRow>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT version, amount, currency FROM prices WHERE package_id = $1 ORDER BY version",
        )
        .bind(package_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let version: String = r.try_get("version")?;
                Ok(PriceRow {
                    version: (!version.is_empty()).then_some(version),
                    price: Price {
                        amount: r.try_get("amount")?,
                        currency: r.try_get("currency")?,
                    },
                })
            })
            .collect()
    }

    /// Sets a publisher's Stripe connected account.
    pub async fn set_payout_account(
        &self,
        publisher_id: &str,
        account: &str,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM payout_accounts WHERE publisher_id = $1")
            .bind(publisher_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO payout_accounts (publisher_id, stripe_account, updated_at) VALUES ($1, $2, $3)",
        )
        .bind(publisher_id)
        .bind(account)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    /// The connected account of the publisher owning `package_id`.
    pub async fn payout_account_of_package(
        &self,
        package_id: &str,
    ) -> Result<Option<String>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT a.stripe_account FROM payout_accounts a JOIN packages p ON p.publisher_id = a.publisher_id WHERE p.id = $1",
        )
        .bind(package_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| r.try_get("stripe_account")).transpose()
    }

    /// Registers a Panel instance.
    pub async fn create_panel(
        &self,
        id: &str,
        token_hash: &str,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("INSERT INTO panel_instances (id, token_hash, created_at) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(token_hash)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The Panel instance holding a token (by its hash).
    pub async fn panel_by_token(&self, token_hash: &str) -> Result<Option<String>, sqlx::Error> {
        let row = sqlx::query("SELECT id FROM panel_instances WHERE token_hash = $1")
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| r.try_get("id")).transpose()
    }

    /// Records a checkout before Stripe is asked for a session.
    pub async fn insert_checkout(&self, checkout: &Checkout) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO checkouts (id, session_id, package_id, version, panel_instance, amount, currency, application_fee, destination, created_at) \
             VALUES ($1, NULL, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&checkout.id)
        .bind(&checkout.package_id)
        .bind(&checkout.version)
        .bind(&checkout.panel_instance)
        .bind(checkout.amount)
        .bind(&checkout.currency)
        .bind(checkout.application_fee)
        .bind(&checkout.destination)
        .bind(checkout.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records Stripe's session id for a checkout.
    pub async fn set_checkout_session(&self, id: &str, session: &str) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE checkouts SET session_id = $1 WHERE id = $2")
            .bind(session)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The checkout with Stripe session `session`, or else with
    /// Marketplace id `fallback_id` (from the session's metadata, for a
    /// session whose id was never recorded).
    pub async fn checkout_for_session(
        &self,
        tx: &mut Transaction<'static, Any>,
        session: &str,
        fallback_id: Option<&str>,
    ) -> Result<Option<Checkout>, sqlx::Error> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {CHECKOUT_COLUMNS} FROM checkouts WHERE session_id = $1"
        )))
        .bind(session)
        .fetch_optional(&mut **tx)
        .await?;
        if let Some(row) = row {
            return checkout_row(&row).map(Some);
        }
        let Some(id) = fallback_id else {
            return Ok(None);
        };
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {CHECKOUT_COLUMNS} FROM checkouts WHERE id = $1 AND session_id IS NULL"
        )))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
        row.as_ref().map(checkout_row).transpose()
    }

    /// The active entitlement of a Panel instance to a plugin.
    pub async fn active_entitlement(
        &self,
        package_id: &str,
        panel_instance: &str,
    ) -> Result<Option<Entitlement>, sqlx::Error> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ENTITLEMENT_COLUMNS} FROM entitlements WHERE package_id = $1 AND panel_instance = $2 AND status = $3 ORDER BY created_at LIMIT 1"
        )))
        .bind(package_id)
        .bind(panel_instance)
        .bind(ACTIVE)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(entitlement_row).transpose()
    }

    /// Every entitlement of a Panel instance, newest first.
    pub async fn entitlements_of(
        &self,
        panel_instance: &str,
    ) -> Result<Vec<Entitlement>, sqlx::Error> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ENTITLEMENT_COLUMNS} FROM entitlements WHERE panel_instance = $1 ORDER BY created_at DESC, id"
        )))
        .bind(panel_instance)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(entitlement_row).collect()
    }

    /// Grants the entitlement of a paid checkout (once per checkout).
    /// Returns the entitlement and whether it is new (an existing one,
    /// active or revoked, is returned unchanged).
    pub async fn grant_entitlement(
        &self,
        tx: &mut Transaction<'static, Any>,
        id: &str,
        checkout: &Checkout,
        payment_intent: Option<&str>,
        now: i64,
    ) -> Result<(Entitlement, bool), sqlx::Error> {
        let existing = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ENTITLEMENT_COLUMNS} FROM entitlements WHERE checkout_id = $1"
        )))
        .bind(&checkout.id)
        .fetch_optional(&mut **tx)
        .await?;
        if let Some(row) = existing {
            return Ok((entitlement_row(&row)?, false));
        }
        sqlx::query(
            "INSERT INTO entitlements (id, package_id, panel_instance, checkout_id, payment_intent, status, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id)
        .bind(&checkout.package_id)
        .bind(&checkout.panel_instance)
        .bind(&checkout.id)
        .bind(payment_intent)
        .bind(ACTIVE)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        Ok((
            Entitlement {
                id: id.to_owned(),
                package_id: checkout.package_id.clone(),
                panel_instance: checkout.panel_instance.clone(),
                checkout_id: checkout.id.clone(),
                payment_intent: payment_intent.map(str::to_owned),
                active: true,
                revoke_reason: None,
                created_at: now,
                revoked_at: None,
            },
            true,
        ))
    }

    /// Revokes the active entitlements paid by `payment_intent`; how many.
    pub async fn revoke_by_payment_intent(
        &self,
        tx: &mut Transaction<'static, Any>,
        payment_intent: &str,
        reason: &str,
        now: i64,
    ) -> Result<u64, sqlx::Error> {
        let result = sqlx::query(
            "UPDATE entitlements SET status = $1, revoke_reason = $2, revoked_at = $3 WHERE payment_intent = $4 AND status = $5",
        )
        .bind(REVOKED)
        .bind(reason)
        .bind(now)
        .bind(payment_intent)
        .bind(ACTIVE)
        .execute(&mut **tx)
        .await?;
        Ok(result.rows_affected())
    }

    /// Remembers a processed event; `false` if it was seen before.
    pub async fn record_event(
        &self,
        tx: &mut Transaction<'static, Any>,
        id: &str,
        event_type: &str,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        let seen = sqlx::query("SELECT id FROM stripe_events WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?
            .is_some();
        if seen {
            return Ok(false);
        }
        sqlx::query("INSERT INTO stripe_events (id, event_type, received_at) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(event_type)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        Ok(true)
    }
}
