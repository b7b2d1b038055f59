//! The billing half of the [`Store`]: prices, payout accounts, Panel
//! instances, checkouts, entitlements and processed Stripe events.
//!
//! Webhook effects run inside the caller's transaction together with the
//! event's row in `stripe_events`, so an event is either fully applied and
//! remembered, or neither (and Stripe's retry applies it).

use super::{Price, Store, Tx, on_pool, on_tx};

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
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
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

/// A row of [`ENTITLEMENT_COLUMNS`].
#[derive(sqlx::FromRow)]
struct EntitlementRecord {
    id: String,
    package_id: String,
    panel_instance: String,
    checkout_id: String,
    payment_intent: Option<String>,
    status: String,
    revoke_reason: Option<String>,
    created_at: i64,
    revoked_at: Option<i64>,
}

impl From<EntitlementRecord> for Entitlement {
    fn from(row: EntitlementRecord) -> Entitlement {
        Entitlement {
            id: row.id,
            package_id: row.package_id,
            panel_instance: row.panel_instance,
            checkout_id: row.checkout_id,
            payment_intent: row.payment_intent,
            active: row.status == ACTIVE,
            revoke_reason: row.revoke_reason,
            created_at: row.created_at,
            revoked_at: row.revoked_at,
        }
    }
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
        let mut tx = self.begin().await?;
        let version = version.unwrap_or("");
        on_tx!(tx, |conn| {
            sqlx::query("DELETE FROM prices WHERE package_id = $1 AND version = $2")
                .bind(package_id)
                .bind(version)
                .execute(&mut *conn)
                .await?;
            sqlx::query(
                "INSERT INTO prices (package_id, version, amount, currency, updated_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(package_id)
            .bind(version)
            .bind(price.amount)
            .bind(&price.currency)
            .bind(now)
            .execute(&mut *conn)
            .await?;
        });
        tx.commit().await
    }

    /// Removes a price; whether there was one.
    pub async fn clear_price(
        &self,
        package_id: &str,
        version: Option<&str>,
    ) -> Result<bool, sqlx::Error> {
        let affected = on_pool!(self, |pool| sqlx::query(
            "DELETE FROM prices WHERE package_id = $1 AND version = $2"
        )
        .bind(package_id)
        .bind(version.unwrap_or(""))
        .execute(pool)
        .await?
        .rows_affected());
        Ok(affected > 0)
    }

    /// Every price of a package.
    pub async fn prices(&self, package_id: &str) -> Result<Vec<PriceRow>, sqlx::Error> {
        let rows: Vec<(String, i64, String)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT version, amount, currency FROM prices WHERE package_id = $1 ORDER BY version",
            )
            .bind(package_id)
            .fetch_all(pool)
            .await
        })?;
        Ok(rows
            .into_iter()
            .map(|(version, amount, currency)| PriceRow {
                version: (!version.is_empty()).then_some(version),
                price: Price { amount, currency },
            })
            .collect())
    }

    /// Sets a publisher's Stripe connected account.
    pub async fn set_payout_account(
        &self,
        publisher_id: &str,
        account: &str,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        let mut tx = self.begin().await?;
        on_tx!(tx, |conn| {
            sqlx::query("DELETE FROM payout_accounts WHERE publisher_id = $1")
                .bind(publisher_id)
                .execute(&mut *conn)
                .await?;
            sqlx::query(
                "INSERT INTO payout_accounts (publisher_id, stripe_account, updated_at) VALUES ($1, $2, $3)",
            )
            .bind(publisher_id)
            .bind(account)
            .bind(now)
            .execute(&mut *conn)
            .await?;
        });
        tx.commit().await
    }

    /// The connected account of the publisher owning `package_id`.
    pub async fn payout_account_of_package(
        &self,
        package_id: &str,
    ) -> Result<Option<String>, sqlx::Error> {
        on_pool!(self, |pool| {
            sqlx::query_scalar(
                "SELECT a.stripe_account FROM payout_accounts a JOIN packages p ON p.publisher_id = a.publisher_id WHERE p.id = $1",
            )
            .bind(package_id)
            .fetch_optional(pool)
            .await
        })
    }

    /// Registers a Panel instance.
    pub async fn create_panel(
        &self,
        id: &str,
        token_hash: &str,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        on_pool!(self, |pool| sqlx::query(
            "INSERT INTO panel_instances (id, token_hash, created_at) VALUES ($1, $2, $3)"
        )
        .bind(id)
        .bind(token_hash)
        .bind(now)
        .execute(pool)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// The Panel instance holding a token (by its hash).
    pub async fn panel_by_token(&self, token_hash: &str) -> Result<Option<String>, sqlx::Error> {
        on_pool!(self, |pool| sqlx::query_scalar(
            "SELECT id FROM panel_instances WHERE token_hash = $1"
        )
        .bind(token_hash)
        .fetch_optional(pool)
        .await)
    }

    /// Records a checkout before Stripe is asked for a session.
    pub async fn insert_checkout(&self, checkout: &Checkout) -> Result<(), sqlx::Error> {
        on_pool!(self, |pool| {
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
            .execute(pool)
            .await
            .map(|_| ())
        })?;
        Ok(())
    }

    /// Records Stripe's session id for a checkout.
    pub async fn set_checkout_session(&self, id: &str, session: &str) -> Result<(), sqlx::Error> {
        on_pool!(self, |pool| sqlx::query(
            "UPDATE checkouts SET session_id = $1 WHERE id = $2"
        )
        .bind(session)
        .bind(id)
        .execute(pool)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// The checkout with Stripe session `session`, or else with
    /// Marketplace id `fallback_id` (from the session's metadata, for a
    /// session whose id was never recorded).
    pub async fn checkout_for_session(
        &self,
        tx: &mut Tx,
        session: &str,
        fallback_id: Option<&str>,
    ) -> Result<Option<Checkout>, sqlx::Error> {
        let by_session = format!("SELECT {CHECKOUT_COLUMNS} FROM checkouts WHERE session_id = $1");
        let by_id = format!(
            "SELECT {CHECKOUT_COLUMNS} FROM checkouts WHERE id = $1 AND session_id IS NULL"
        );
        on_tx!(tx, |conn| {
            let found: Option<Checkout> = sqlx::query_as(sqlx::AssertSqlSafe(by_session))
                .bind(session)
                .fetch_optional(&mut *conn)
                .await?;
            match (found, fallback_id) {
                (Some(checkout), _) => Ok(Some(checkout)),
                (None, None) => Ok(None),
                (None, Some(id)) => {
                    sqlx::query_as(sqlx::AssertSqlSafe(by_id))
                        .bind(id)
                        .fetch_optional(&mut *conn)
                        .await
                }
            }
        })
    }

    /// The active entitlement of a Panel instance to a plugin.
    pub async fn active_entitlement(
        &self,
        package_id: &str,
        panel_instance: &str,
    ) -> Result<Option<Entitlement>, sqlx::Error> {
        let sql = format!(
            "SELECT {ENTITLEMENT_COLUMNS} FROM entitlements WHERE package_id = $1 AND panel_instance = $2 AND status = $3 ORDER BY created_at LIMIT 1"
        );
        let row: Option<EntitlementRecord> =
            on_pool!(self, |pool| sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(package_id)
                .bind(panel_instance)
                .bind(ACTIVE)
                .fetch_optional(pool)
                .await)?;
        Ok(row.map(Entitlement::from))
    }

    /// Every entitlement of a Panel instance, newest first.
    pub async fn entitlements_of(
        &self,
        panel_instance: &str,
    ) -> Result<Vec<Entitlement>, sqlx::Error> {
        let sql = format!(
            "SELECT {ENTITLEMENT_COLUMNS} FROM entitlements WHERE panel_instance = $1 ORDER BY created_at DESC, id"
        );
        let rows: Vec<EntitlementRecord> =
            on_pool!(self, |pool| sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(panel_instance)
                .fetch_all(pool)
                .await)?;
        Ok(rows.into_iter().map(Entitlement::from).collect())
    }

    /// Grants the entitlement of a paid checkout (once per checkout).
    /// Returns the entitlement and whether it is new (an existing one,
    /// active or revoked, is returned unchanged).
    pub async fn grant_entitlement(
        &self,
        tx: &mut Tx,
        id: &str,
        checkout: &Checkout,
        payment_intent: Option<&str>,
        now: i64,
    ) -> Result<(Entitlement, bool), sqlx::Error> {
        let sql = format!("SELECT {ENTITLEMENT_COLUMNS} FROM entitlements WHERE checkout_id = $1");
        let existing: Option<EntitlementRecord> =
            on_tx!(tx, |conn| sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(&checkout.id)
                .fetch_optional(&mut *conn)
                .await)?;
        if let Some(row) = existing {
            return Ok((Entitlement::from(row), false));
        }
        on_tx!(tx, |conn| {
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
            .execute(&mut *conn)
            .await
            .map(|_| ())
        })?;
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
        tx: &mut Tx,
        payment_intent: &str,
        reason: &str,
        now: i64,
    ) -> Result<u64, sqlx::Error> {
        let result = on_tx!(tx, |conn| {
            sqlx::query(
                "UPDATE entitlements SET status = $1, revoke_reason = $2, revoked_at = $3 WHERE payment_intent = $4 AND status = $5",
            )
            .bind(REVOKED)
            .bind(reason)
            .bind(now)
            .bind(payment_intent)
            .bind(ACTIVE)
            .execute(&mut *conn)
            .await?
            .rows_affected()
        });
        Ok(result)
    }

    /// Remembers a processed event; `false` if it was seen before.
    pub async fn record_event(
        &self,
        tx: &mut Tx,
        id: &str,
        event_type: &str,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        on_tx!(tx, |conn| {
            let seen = sqlx::query("SELECT id FROM stripe_events WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?
                .is_some();
            if seen {
                return Ok(false);
            }
            sqlx::query(
                "INSERT INTO stripe_events (id, event_type, received_at) VALUES ($1, $2, $3)",
            )
            .bind(id)
            .bind(event_type)
            .bind(now)
            .execute(&mut *conn)
            .await?;
            Ok(true)
        })
    }
}
